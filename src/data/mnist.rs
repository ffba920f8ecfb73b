//! The four MNIST files: finding their folder, loading them into [`Dataset`]s.

use std::path::{Path, PathBuf};

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
/// batch by batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
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
            labels.iter().all(|&l| usize::from(l) < CLASSES),
            "labels must be below 10"
        );
        Dataset {
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
        let at = |path: &Path| {
            let path = path.to_path_buf();
            move |kind| IdxError { path, kind }
        };
        let image_bytes = idx::decompress_if_gzip(images).map_err(at(images_path))?;
        let label_bytes = idx::decompress_if_gzip(labels).map_err(at(labels_path))?;
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
            image_bytes,
            pixels_at,
            labels,
        })
    }

    /// Reads an images file and a labels file from disk.
    pub fn load(images_path: &Path, labels_path: &Path) -> Result<Self, IdxError> {
        let read = |path: &Path| {
            super::buffer::read_file(path).map_err(|e| IdxError {
                path: path.to_path_buf(),
                kind: IdxErrorKind::Io(e.to_string()),
            })
        };
        Self::from_idx(
            read(images_path)?,
            images_path,
            read(labels_path)?,
            labels_path,
        )
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
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
        let paths: Vec<PathBuf> = FILE_NAMES
            .iter()
            .map(|name| {
                resolve_file(dir, name).ok_or_else(|| DataError::NotFound {
                    searched: dir.display().to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        let (train, test) = std::thread::scope(|s| {
            let test = s.spawn(|| Dataset::load(&paths[2], &paths[3]));
            let train = Dataset::load(&paths[0], &paths[1]);
            (
                train,
                test.join().expect("the test-set loader does not panic"),
            )
        });
        Ok(Mnist {
            train: train?,
            test: test?,
        })
    }
}
