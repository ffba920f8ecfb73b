//! Typed errors, one per boundary: IDX files and model files.
//!
//! Each error names the file it concerns and says what is wrong with it, in lowercase,
//! so a person can act on it without a backtrace.

#[cfg(feature = "std")]
use std::path::PathBuf;

/// What is wrong with a model file given to the no_std [`ClassifierRef`](crate::ClassifierRef).
pub use crate::infer::ParseError;

/// What is wrong with an IDX file (the MNIST container format).
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdxErrorKind {
    /// The file has no bytes at all.
    #[error("the file is empty")]
    Empty,
    /// Fewer bytes than the header needs, or than its dimensions claim.
    #[error("truncated: expected {expected} bytes, found {found}")]
    Truncated {
        /// Bytes the header or the dimensions call for.
        expected: u64,
        /// Bytes the file has.
        found: u64,
    },
    /// More bytes than the header's dimensions claim.
    #[error("{extra} unexpected trailing bytes after the data the header describes")]
    TrailingBytes {
        /// Bytes past the end of the data.
        extra: u64,
    },
    /// The magic number does not say "unsigned bytes" of the expected rank.
    #[error("bad magic number 0x{found:08x}, expected 0x{expected:08x}")]
    BadMagic {
        /// The magic number read.
        found: u32,
        /// The one this kind of file has.
        expected: u32,
    },
    /// The header's dimensions multiply past what any real file can hold.
    #[error("the header's dimensions {dims:?} are too large")]
    DimensionsTooLarge {
        /// The dimensions the header gives.
        dims: Vec<u32>,
    },
    /// Images of a shape other than the one asked for.
    #[error("images are {rows}x{cols}, expected {expected_rows}x{expected_cols}")]
    WrongImageShape {
        /// Rows of each image in the file.
        rows: usize,
        /// Columns of each image in the file.
        cols: usize,
        /// Rows asked for.
        expected_rows: usize,
        /// Columns asked for.
        expected_cols: usize,
    },
    /// A label outside 0..classes.
    #[error("label {value} at index {index} is not a class in 0..{classes}")]
    LabelOutOfRange {
        /// The example's index in the file.
        index: usize,
        /// Its label.
        value: u8,
        /// The number of classes.
        classes: usize,
    },
    /// The images file and the labels file disagree on the number of examples.
    #[error("{images} images but {labels} labels")]
    CountMismatch {
        /// Images in the images file.
        images: usize,
        /// Labels in the labels file.
        labels: usize,
    },
    /// The gzip stream is corrupt or ends early.
    #[error("corrupt gzip data: {0}")]
    Gzip(
        /// What the decoder said.
        String,
    ),
    /// The gzip stream inflates past the size limit.
    #[error("inflates to more than {limit} bytes (a gzip bomb?)")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The file names itself `.gz` or starts like gzip but is not gzip; or gzip support is off.
    #[error("gzip'd file, but softnet was built without the `gz` feature")]
    GzipUnsupported,
    /// Reading the file failed.
    #[error("cannot read: {0}")]
    Io(
        /// What the OS said.
        String,
    ),
}

/// An IDX file could not be used; names the file and what is wrong.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct IdxError {
    /// The file concerned.
    pub path: PathBuf,
    /// What is wrong with it.
    pub kind: IdxErrorKind,
}

/// The MNIST data folder could not be found or loaded.
#[cfg(feature = "std")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// No folder holds the four files.
    #[error(
        "MNIST data not found in {searched}.\n\
         softnet needs these four files (gzip'd or raw IDX) in one folder:\n  \
         train-images-idx3-ubyte.gz\n  train-labels-idx1-ubyte.gz\n  \
         t10k-images-idx3-ubyte.gz\n  t10k-labels-idx1-ubyte.gz\n\
         They are the MNIST database of Yann LeCun, Corinna Cortes and Christopher Burges \
         (http://yann.lecun.com/exdb/mnist/, mirrored at https://ossci-datasets.s3.amazonaws.com/mnist/).\n\
         Point softnet at them with --data DIR or MNIST_DIR=DIR, or fetch them with `softnet download`."
    )]
    NotFound {
        /// The folders looked in, comma-separated.
        searched: String,
    },
    /// One of the files is malformed.
    #[error(transparent)]
    Idx(#[from] IdxError),
}

/// A model file could not be read, written or trusted.
#[cfg(feature = "std")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Reading or writing the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid model file.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file (or `<bytes>`) concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

#[cfg(feature = "std")]
impl ModelError {
    pub(crate) fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        ModelError::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
