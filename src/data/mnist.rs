//! The four MNIST files: finding their folder, loading them into [`Dataset`]s.

use std::path::{Path, PathBuf};

use super::buffer::FileBytes;
use super::idx;
use crate::error::{DataError, IdxError, IdxErrorKind};

/// Pixels per side of an MNIST image.
pub const SIDE: usize = 28;
/// Pixels per MNIST image (28 x 28).
pub const PIXELS: usize = SIDE * SIDE;
/// Number of digit classes.
pub const CLASSES: usize = 10;

/// File names of the training images, training labels, test images and test labels.
pub const FILE_NAMES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// Labelled images kept as u8 pixels (row-major, `len() x PIXELS`); converted to f32 only
/// batch by batch. Equal when their pixels and labels are.
///
/// A dataset never changes once made, so [`Dataset::id`] names its content: what is
/// derived from it once (such as an evaluator's lists of non-zero pixels) can be kept.
#[derive(Debug, Clone, Eq)]
pub struct Dataset {
    // Unique to each dataset made; clones share it, as they share the content.
    id: u64,
    // The whole decompressed images file; the pixels start after its header, so loading
    // copies nothing.
    image_bytes: Vec<u8>,
    pixels_at: usize,
    labels: Vec<u8>,
}

impl Dataset {
    /// Builds a dataset from pixels (`labels.len() x PIXELS`) and labels (each below 10).
    ///
    /// # Panics
    /// If the lengths disagree or a label is not a class: this is for data made in code;
    /// files go through [`Dataset::from_idx`], which returns errors instead.
    pub fn new(pixels: Vec<u8>, labels: Vec<u8>) -> Self {
        assert_eq!(
            pixels.len(),
            labels.len() * PIXELS,
            "pixels must be labels.len() x 784"
        );
        assert!(
            first_label_out_of_range(&labels, CLASSES).is_none(),
            "labels must be below 10"
        );
        Dataset {
            id: next_dataset_id(),
            image_bytes: pixels,
            pixels_at: 0,
            labels,
        }
    }

    /// Builds a dataset from the contents of an images file and a labels file (each raw or
    /// gzip'd IDX). The paths only name the files in errors.
    pub fn from_idx(
        images: Vec<u8>,
        images_path: &Path,
        labels: Vec<u8>,
        labels_path: &Path,
    ) -> Result<Self, IdxError> {
        Self::from_files(
            FileBytes::Read(images),
            images_path,
            FileBytes::Read(labels),
            labels_path,
        )
    }

    /// [`Dataset::from_idx`] on files mapped or read.
    fn from_files(
        images: FileBytes,
        images_path: &Path,
        labels: FileBytes,
        labels_path: &Path,
    ) -> Result<Self, IdxError> {
        let at = |path: &Path| {
            let path = path.to_path_buf();
            move |kind| IdxError { path, kind }
        };
        let image_bytes = decoded(images).map_err(at(images_path))?;
        let label_bytes = decoded(labels).map_err(at(labels_path))?;
        let parsed = idx::parse_images(&image_bytes).map_err(at(images_path))?;
        if (parsed.rows, parsed.cols) != (SIDE, SIDE) {
            return Err(at(images_path)(IdxErrorKind::WrongImageShape {
                rows: parsed.rows,
                cols: parsed.cols,
                expected_rows: SIDE,
                expected_cols: SIDE,
            }));
        }
        let count = parsed.count;
        let pixels_at = image_bytes.len() - parsed.pixels.len();
        let labels = idx::parse_labels(&label_bytes, CLASSES)
            .map_err(at(labels_path))?
            .to_vec();
        if labels.len() != count {
            return Err(at(labels_path)(IdxErrorKind::CountMismatch {
                images: count,
                labels: labels.len(),
            }));
        }
        Ok(Dataset {
            id: next_dataset_id(),
            image_bytes,
            pixels_at,
            labels,
        })
    }

    /// Reads an images file and a labels file from disk.
    pub fn load(images_path: &Path, labels_path: &Path) -> Result<Self, IdxError> {
        Self::from_files(
            read_idx_file(images_path)?,
            images_path,
            read_idx_file(labels_path)?,
            labels_path,
        )
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// A number that no other dataset made in this process has (clones share it, as they
    /// share the content).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// All pixels, `len() x 784`, row-major.
    pub fn pixels(&self) -> &[u8] {
        &self.image_bytes[self.pixels_at..]
    }

    /// The 784 pixels of example `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels()[i * PIXELS..(i + 1) * PIXELS]
    }

    /// All labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The first `n` examples (or all, if fewer), as a new dataset.
    pub fn head(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset::new(
            self.pixels()[..n * PIXELS].to_vec(),
            self.labels[..n].to_vec(),
        )
    }
}

/// A fresh [`Dataset::id`].
fn next_dataset_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl PartialEq for Dataset {
    /// Whether the pixels and labels are equal (however the file's header was kept).
    fn eq(&self, other: &Self) -> bool {
        self.pixels() == other.pixels() && self.labels == other.labels
    }
}

/// The first label that is not a class in `0..classes`, with its index: the one check of
/// labels that files, datasets and analyses share.
pub fn first_label_out_of_range(labels: &[u8], classes: usize) -> Option<(usize, u8)> {
    labels
        .iter()
        .position(|&l| usize::from(l) >= classes)
        .map(|i| (i, labels[i]))
}

/// The MNIST training and test sets.
#[derive(Debug, Clone)]
pub struct Mnist {
    /// 60,000 training examples.
    pub train: Dataset,
    /// 10,000 test examples.
    pub test: Dataset,
}

/// Finds the data folder: `explicit` (the `--data` flag), then `$MNIST_DIR`, then
/// `./data/mnist`. The folder must hold the training images, under its `.gz` name or without
/// the suffix.
pub fn locate_data_dir(explicit: Option<&Path>) -> Result<PathBuf, DataError> {
    let mut searched = Vec::new();
    let candidates = explicit
        .map(Path::to_path_buf)
        .into_iter()
        .chain(std::env::var_os("MNIST_DIR").map(PathBuf::from))
        .chain(std::iter::once(PathBuf::from("data/mnist")));
    for dir in candidates {
        if resolve_file(&dir, FILE_NAMES[0]).is_some() {
            return Ok(dir);
        }
        searched.push(dir.display().to_string());
        if explicit.is_some() {
            // An explicit folder that lacks the data is an error, not a hint to look elsewhere.
            break;
        }
    }
    Err(DataError::NotFound {
        searched: searched.join(", "),
    })
}

/// The path of `name` in `dir`, or of its raw twin without `.gz`.
fn resolve_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let gz = dir.join(name);
    if gz.is_file() {
        return Some(gz);
    }
    let raw = dir.join(name.trim_end_matches(".gz"));
    raw.is_file().then_some(raw)
}

impl Mnist {
    /// Loads the four files from `dir`, decoding them in parallel (inflating the training
    /// images dominates the load time).
    pub fn load(dir: &Path) -> Result<Mnist, DataError> {
        Self::open(dir)?.load()
    }

    /// Reads the four files from `dir` without decoding them yet: see [`PendingMnist`].
    pub fn open(dir: &Path) -> Result<PendingMnist, DataError> {
        let paths: Vec<PathBuf> = FILE_NAMES
            .iter()
            .map(|name| {
                resolve_file(dir, name).ok_or_else(|| DataError::NotFound {
                    searched: dir.display().to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        let files = paths
            .iter()
            .map(|path| read_idx_file(path))
            .collect::<Result<Vec<_>, _>>()?;
        let arriving_labels = labels_if_images_can_arrive(&files[0], &files[1]);
        Ok(PendingMnist {
            paths,
            files,
            arriving_labels,
        })
    }
}

fn read_idx_file(path: &Path) -> Result<FileBytes, IdxError> {
    super::buffer::map_file(path).map_err(|e| IdxError {
        path: path.to_path_buf(),
        kind: IdxErrorKind::Io(e.to_string()),
    })
}

/// A file's IDX bytes: inflated if gzip'd, else as they are (in a buffer of their own).
fn decoded(bytes: FileBytes) -> Result<Vec<u8>, IdxErrorKind> {
    if bytes.starts_with(&idx::GZIP_MAGIC) {
        idx::inflate_gzip(&bytes)
    } else {
        Ok(bytes.into_vec())
    }
}

/// The training labels, when the images can be handed out as they inflate: a gzip'd
/// images file whose header describes 28x28 images, as many as the labels file (valid)
/// holds. Anything else loads whole, through [`Dataset::from_idx`] and its errors.
fn labels_if_images_can_arrive(images: &[u8], labels: &[u8]) -> Option<Vec<u8>> {
    if !images.starts_with(&idx::GZIP_MAGIC) {
        return None;
    }
    let header = idx::decompress_prefix(images, idx::IMAGES_HEADER_LEN)?;
    let [count, rows, cols] = idx::images_header(&header)?;
    let labels = idx::decompress_if_gzip(labels.to_vec()).ok()?;
    let labels = idx::parse_labels(&labels, CLASSES).ok()?;
    ((rows, cols) == (SIDE, SIDE) && labels.len() == count).then(|| labels.to_vec())
}

/// The four MNIST files, read but not yet decoded, from [`Mnist::open`].
///
/// [`PendingMnist::load_while`] inflates the training images on a thread of their own and
/// hands them out in file order as they arrive, so that a run taking its batches in that
/// order can start long before the 47 MB are inflated; [`PendingMnist::load`] just waits.
#[derive(Debug)]
pub struct PendingMnist {
    paths: Vec<PathBuf>,
    files: Vec<FileBytes>,
    arriving_labels: Option<Vec<u8>>,
}

impl PendingMnist {
    /// Number of training examples, when the images will arrive while they inflate (the
    /// files are gzip'd, and their headers and the training labels are sound); `None` when
    /// [`PendingMnist::load_while`] can only hand them out once all are loaded.
    pub fn train_len(&self) -> Option<usize> {
        self.arriving_labels.as_ref().map(Vec::len)
    }

    /// Decodes everything (the training images on a thread of their own, the rest here).
    pub fn load(self) -> Result<Mnist, DataError> {
        // One piece: nobody takes the images early, and every piece costs a call into the
        // inflater and a message.
        Ok(self.load_while(usize::MAX, |_, _| ())?.0)
    }

    /// Decodes everything, running `work` as soon as the test set is decoded, while the
    /// training images still inflate: [`Arriving::rows`] hands them out in pieces of
    /// `rows_per_piece` examples as they arrive. Returns the data, whole, with the result
    /// of `work`.
    ///
    /// The errors are those of [`Mnist::load`] (the images that already arrived were
    /// sound, but a file corrupt further on still fails). When the test set does not load,
    /// `work` is not run.
    pub fn load_while<R>(
        self,
        rows_per_piece: usize,
        work: impl FnOnce(&mut Arriving<'_>, &Dataset) -> R,
    ) -> Result<(Mnist, R), DataError> {
        let PendingMnist {
            paths,
            files,
            arriving_labels,
        } = self;
        let [train_images, train_labels, test_images, test_labels]: [FileBytes; 4] =
            files.try_into().expect("four files were read");
        let labels = arriving_labels.unwrap_or_default();
        let mut pixels = match labels.len() {
            0 => Vec::new(),
            count => super::buffer::large_zeroed(count * PIXELS),
        };
        let rows_per_piece = rows_per_piece.max(1);
        let (inflated, test, result) = std::thread::scope(|s| {
            let (arrive, arrivals) = std::sync::mpsc::channel();
            let inflating = (!labels.is_empty()).then(|| {
                let (gz, out) = (&train_images[..], pixels.as_mut_slice());
                s.spawn(move || {
                    idx::inflate_images_in_pieces(
                        gz,
                        out,
                        rows_per_piece.saturating_mul(PIXELS),
                        |piece| {
                            // A `work` that has returned no longer listens; inflating goes on.
                            let _ = arrive.send(piece);
                        },
                    )
                })
            });
            let test = Dataset::from_files(test_images, &paths[2], test_labels, &paths[3]);
            let result = test.as_ref().ok().map(|test| {
                let mut arriving = Arriving {
                    arrivals,
                    pieces: Vec::new(),
                    rows_per_piece,
                    labels: &labels,
                };
                work(&mut arriving, test)
            });
            let inflated = inflating
                .is_some_and(|thread| thread.join().expect("the inflating thread does not panic"));
            (inflated, test, result)
        });
        let train = if inflated {
            Ok(Dataset {
                id: next_dataset_id(),
                image_bytes: pixels,
                pixels_at: 0,
                labels,
            })
        } else {
            // Not gzip, or something wrong in the stream: the whole-file path decodes it and
            // names the exact fault.
            Dataset::from_files(train_images, &paths[0], train_labels, &paths[1])
        };
        let mnist = Mnist {
            train: train?,
            test: test?,
        };
        Ok((mnist, result.expect("work ran: the test set loaded")))
    }
}

/// Examples `first..first + len` of a dataset, borrowed: what a training step reads.
/// Examples keep their dataset's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rows<'a> {
    first: usize,
    pixels: &'a [u8],
    labels: &'a [u8],
}

impl<'a> Rows<'a> {
    /// The number of the first example.
    pub fn first(&self) -> usize {
        self.first
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of example `i` (numbered as in the whole dataset).
    ///
    /// # Panics
    /// If example `i` is not among these.
    pub fn image(&self, i: usize) -> &'a [u8] {
        let at = self.position(i);
        &self.pixels[at * PIXELS..(at + 1) * PIXELS]
    }

    /// The label of example `i` (numbered as in the whole dataset).
    ///
    /// # Panics
    /// If example `i` is not among these.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[self.position(i)]
    }

    /// The pixels of example `i`, if it is among these.
    pub fn get_image(&self, i: usize) -> Option<&'a [u8]> {
        let at = self.index(i)?;
        Some(&self.pixels[at * PIXELS..(at + 1) * PIXELS])
    }

    fn index(&self, i: usize) -> Option<usize> {
        i.checked_sub(self.first).filter(|&at| at < self.len())
    }

    fn position(&self, i: usize) -> usize {
        self.index(i).unwrap_or_else(|| {
            panic!(
                "example {i} is not among examples {}..{}",
                self.first,
                self.first + self.len()
            )
        })
    }
}

impl<'a> From<&'a Dataset> for Rows<'a> {
    fn from(data: &'a Dataset) -> Self {
        Rows {
            first: 0,
            pixels: data.pixels(),
            labels: data.labels(),
        }
    }
}

/// Training examples handed out as they are inflated ([`PendingMnist::load_while`]).
#[derive(Debug)]
pub struct Arriving<'a> {
    arrivals: std::sync::mpsc::Receiver<&'a [u8]>,
    pieces: Vec<&'a [u8]>,
    rows_per_piece: usize,
    labels: &'a [u8],
}

impl<'a> Arriving<'a> {
    /// Whether every example has arrived (the whole data then comes from `load_while`).
    pub fn all_arrived(&mut self) -> bool {
        while let Ok(piece) = self.arrivals.try_recv() {
            self.pieces.push(piece);
        }
        self.pieces.len() * self.rows_per_piece >= self.labels.len()
    }

    /// Examples `range`, waiting until they are inflated. `None` when they do not all lie
    /// in one piece (pieces hold `rows_per_piece` examples, the last one fewer), lie beyond
    /// the data, or inflating stopped before them (the error comes from `load_while`).
    pub fn rows(&mut self, range: std::ops::Range<usize>) -> Option<Rows<'a>> {
        let piece = range.start / self.rows_per_piece;
        let last = range.end.checked_sub(1)? / self.rows_per_piece;
        if range.is_empty() || last != piece || range.end > self.labels.len() {
            return None;
        }
        while self.pieces.len() <= piece {
            self.pieces.push(self.arrivals.recv().ok()?);
        }
        let at = range.start - piece * self.rows_per_piece;
        Some(Rows {
            first: range.start,
            pixels: &self.pieces[piece][at * PIXELS..(at + range.len()) * PIXELS],
            labels: &self.labels[range],
        })
    }
}
