//! Data: IDX bytes → [`Dataset`] (u8 pixels and labels) → batches of f32 in reused buffers.

pub mod batch;
mod buffer;
pub mod idx;
pub mod mnist;

pub use batch::{BatchOrder, Batcher};
pub use mnist::{
    locate_data_dir, Arriving, Dataset, Mnist, PendingMnist, Rows, CLASSES, FILE_NAMES, PIXELS,
    SIDE,
};
