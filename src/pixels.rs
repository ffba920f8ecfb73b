//! How a pixel byte becomes a network input: `p / 255`, the tutorial's scaling.
//!
//! One table serves the data pipeline, the kernels that read u8 pixels directly and the
//! `no_std` [`ClassifierRef`](crate::ClassifierRef), so all of them see the same f32 values.

/// `PIXEL_TO_UNIT[v] == v as f32 / 255.0`, exactly as a division rounds it (a multiplication
/// by 1/255 would differ in the last bit for some values).
///
/// ```
/// assert_eq!(softnet::pixels::PIXEL_TO_UNIT[255], 1.0);
/// assert_eq!(softnet::pixels::PIXEL_TO_UNIT[51], 51.0 / 255.0);
/// ```
pub const PIXEL_TO_UNIT: [f32; 256] = {
    let mut table = [0.0f32; 256];
    let mut v = 0;
    while v < 256 {
        table[v] = v as f32 / 255.0;
        v += 1;
    }
    table
};
