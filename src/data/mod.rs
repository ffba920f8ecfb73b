//! Data: IDX bytes → [`Dataset`] (u8 pixels and labels) → batches gathered into reused buffers.

pub mod batch;
#[allow(unsafe_code)]
mod buffer;
pub mod idx;
pub mod mnist;

pub use batch::{BatchOrder, Batcher};
pub use mnist::{
    first_label_out_of_range, locate_data_dir, Arriving, Dataset, Mnist, PendingMnist, Rows,
    CLASSES, FILE_NAMES, PIXELS, SIDE,
};
