//! One run folder, one event file.

use super::histogram::histogram;
use super::proto::{event, summary, Event, GraphDef, Summary};
use super::{record, SummaryError};
use prost::Message;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Version string TensorBoard expects in the first event of a file.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Writes the events of one run (`<logdir>/train`) into one event file.
///
/// Records are framed into an in-memory buffer by the `add_*` methods and reach the file only
/// at [`flush`](Self::flush) (and on drop). The trainer logs only at evaluations, a few
/// kilobytes (tens with images) each, so the flush is one `write` of that buffer into the page
/// cache: microseconds next to the evaluation pass that produced the numbers. A background
/// thread would add a channel and a join for no measurable gain. No `fsync`: the page cache
/// already survives a killed process, which is what "readable up to the last flush" needs.
#[derive(Debug)]
pub struct SummaryWriter {
    path: PathBuf,
    file: File,
    buffer: Vec<u8>,
    scratch: Vec<u8>,
}

/// Makes file names unique among writers of one process created in the same second.
static FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl SummaryWriter {
    /// Creates `run_dir` (and its parents) and a new event file
    /// `events.out.tfevents.<unix seconds>.<hostname>.<pid>.<n>` in it, and queues the
    /// `file_version` event. Nothing is written to the file until [`flush`](Self::flush).
    pub fn create(run_dir: &Path) -> Result<Self, SummaryError> {
        std::fs::create_dir_all(run_dir).map_err(|source| SummaryError::CreateDir {
            path: run_dir.to_path_buf(),
            source,
        })?;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let host = hostname();
        let pid = std::process::id();
        loop {
            let n = FILE_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = run_dir.join(format!("events.out.tfevents.{secs:010}.{host}.{pid}.{n}"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    let mut writer = SummaryWriter {
                        path,
                        file,
                        buffer: Vec::with_capacity(64 * 1024),
                        scratch: Vec::new(),
                    };
                    writer.add_event(0, event::What::FileVersion(FILE_VERSION.into()));
                    return Ok(writer);
                }
                // Another process with our pid (another container) wrote here: take the next n.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(SummaryError::CreateFile { path, source }),
            }
        }
    }

    /// The event file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a scalar.
    pub fn add_scalar(&mut self, tag: &str, value: f32, step: i64) {
        self.add_values(
            step,
            vec![value_of(tag, summary::value::Kind::SimpleValue(value))],
        );
    }

    /// Queues a histogram of `values` in TensorFlow's bucket layout.
    pub fn add_histogram(&mut self, tag: &str, values: &[f32], step: i64) {
        let histo = histogram(values);
        self.add_values(
            step,
            vec![value_of(tag, summary::value::Kind::Histo(histo))],
        );
    }

    /// PNG-encodes a greyscale image (`pixels` row-major, `width * height` bytes) and queues it.
    pub fn add_image_gray(
        &mut self,
        tag: &str,
        width: u32,
        height: u32,
        pixels: &[u8],
        step: i64,
    ) -> Result<(), SummaryError> {
        self.add_image(tag, width, height, pixels, png::ColorType::Grayscale, step)
    }

    /// PNG-encodes an RGB image (`pixels` row-major, `3 * width * height` bytes) and queues it.
    pub fn add_image_rgb(
        &mut self,
        tag: &str,
        width: u32,
        height: u32,
        pixels: &[u8],
        step: i64,
    ) -> Result<(), SummaryError> {
        self.add_image(tag, width, height, pixels, png::ColorType::Rgb, step)
    }

    /// Queues the graph for the Graphs tab (usually once, in the train run).
    pub fn add_graph(&mut self, graph: &GraphDef) {
        self.add_event(0, event::What::GraphDef(graph.encode_to_vec()));
    }

    /// Queues several values as one event at `step`.
    pub fn add_summary(&mut self, summary: Summary, step: i64) {
        self.add_event(step, event::What::Summary(summary));
    }

    /// Writes the queued records to the file. After it returns, a reader (or a crash) sees
    /// every record added so far.
    pub fn flush(&mut self) -> Result<(), SummaryError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let result = self
            .file
            .write_all(&self.buffer)
            .and_then(|()| self.file.flush());
        // On error the file may hold part of the buffer; retrying would duplicate records, and
        // TensorBoard drops the rest of a file at a bad record anyway, so drop the buffer.
        self.buffer.clear();
        result.map_err(|source| SummaryError::Write {
            path: self.path.clone(),
            source,
        })
    }

    fn add_image(
        &mut self,
        tag: &str,
        width: u32,
        height: u32,
        pixels: &[u8],
        color: png::ColorType,
        step: i64,
    ) -> Result<(), SummaryError> {
        let channels = color.samples() as u32;
        let expected = (width as usize)
            .checked_mul(height as usize)
            .and_then(|n| n.checked_mul(channels as usize));
        if expected != Some(pixels.len()) || width == 0 || height == 0 {
            return Err(SummaryError::ImageSize {
                tag: tag.to_string(),
                width,
                height,
                channels,
                got: pixels.len(),
            });
        }
        let png_error = |source| SummaryError::Png {
            tag: tag.to_string(),
            source,
        };
        let mut encoded = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut encoded, width, height);
            encoder.set_color(color);
            encoder.set_depth(png::BitDepth::Eight);
            let mut png_writer = encoder.write_header().map_err(png_error)?;
            png_writer.write_image_data(pixels).map_err(png_error)?;
            png_writer.finish().map_err(png_error)?;
        }
        let image = summary::Image {
            height: height as i32,
            width: width as i32,
            colorspace: channels as i32,
            encoded_image_string: encoded,
        };
        self.add_values(
            step,
            vec![value_of(tag, summary::value::Kind::Image(image))],
        );
        Ok(())
    }

    fn add_values(&mut self, step: i64, value: Vec<summary::Value>) {
        self.add_event(step, event::What::Summary(Summary { value }));
    }

    fn add_event(&mut self, step: i64, what: event::What) {
        let event = Event {
            wall_time: wall_time(),
            step,
            what: Some(what),
        };
        self.scratch.clear();
        event
            .encode(&mut self.scratch)
            .expect("a Vec grows to fit any message");
        record::write_record(&mut self.buffer, &self.scratch);
    }
}

impl Drop for SummaryWriter {
    fn drop(&mut self) {
        // Best effort: errors have nowhere to go here; call `flush` to see them.
        let _ = self.flush();
    }
}

fn value_of(tag: &str, kind: summary::value::Kind) -> summary::Value {
    summary::Value {
        tag: tag.to_string(),
        kind: Some(kind),
    }
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The host name for event file names, reduced to characters safe in a file name.
fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::record::read_records;

    fn events(path: &Path) -> Vec<Event> {
        let bytes = std::fs::read(path).unwrap();
        read_records(path, &bytes)
            .unwrap()
            .into_iter()
            .map(|r| Event::decode(r).unwrap())
            .collect()
    }

    #[test]
    fn file_name_and_buffering() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("a/train");
        let mut w = SummaryWriter::create(&run).unwrap();
        let name = w.path().file_name().unwrap().to_str().unwrap().to_string();
        let parts: Vec<&str> = name.split('.').collect();
        assert_eq!(&parts[..3], ["events", "out", "tfevents"]);
        assert_eq!(parts[3].len(), 10);
        assert!(parts[3].bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(parts[5], std::process::id().to_string());
        assert_eq!(w.path().parent().unwrap(), run);

        // Nothing reaches the file before flush.
        w.add_scalar("x", 1.0, 3);
        assert_eq!(std::fs::metadata(w.path()).unwrap().len(), 0);
        w.flush().unwrap();
        let ev = events(w.path());
        assert_eq!(ev.len(), 2);
        assert_eq!(
            ev[0].what,
            Some(event::What::FileVersion(FILE_VERSION.into()))
        );
        assert_eq!(ev[1].step, 3);

        // A second writer in the same folder gets its own file.
        let w2 = SummaryWriter::create(&run).unwrap();
        assert_ne!(w2.path(), w.path());
    }

    #[test]
    fn images_and_histograms() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SummaryWriter::create(dir.path()).unwrap();
        let pixels: Vec<u8> = (0..6).map(|i| i * 40).collect();
        w.add_image_gray("img", 3, 2, &pixels, 5).unwrap();
        w.add_image_rgb("rgb", 1, 2, &pixels, 5).unwrap();
        let err = w.add_image_gray("bad", 3, 3, &pixels, 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image bad: 6 bytes given for 3x3 with 1 channel(s)"
        );
        w.add_histogram("h", &[1.0, 2.0, 3.0], 7);
        let path = w.path().to_path_buf();
        drop(w); // flushes
        let ev = events(&path);
        assert_eq!(ev.len(), 4);
        let Some(event::What::Summary(s)) = &ev[1].what else {
            panic!("not a summary")
        };
        let Some(summary::value::Kind::Image(img)) = &s.value[0].kind else {
            panic!("not an image")
        };
        assert_eq!((img.width, img.height, img.colorspace), (3, 2, 1));
        let decoder = png::Decoder::new(std::io::Cursor::new(&img.encoded_image_string));
        let mut reader = decoder.read_info().unwrap();
        let mut out = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut out).unwrap();
        assert_eq!((info.width, info.height), (3, 2));
        assert_eq!(&out[..6], &pixels[..]);
        let Some(event::What::Summary(s)) = &ev[3].what else {
            panic!("not a summary")
        };
        let Some(summary::value::Kind::Histo(h)) = &s.value[0].kind else {
            panic!("not a histogram")
        };
        assert_eq!((h.num, h.sum, h.min, h.max), (3.0, 6.0, 1.0, 3.0));
    }
}
