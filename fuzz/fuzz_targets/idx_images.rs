//! IDX images: the raw parser, and the gzip path the loader takes for `.gz` files.
#![no_main]
use libfuzzer_sys::fuzz_target;
use softnet::data::idx::{decompress_if_gzip, parse_images};

fuzz_target!(|data: &[u8]| {
    if let Ok(images) = parse_images(data) {
        assert_eq!(
            images.pixels.len(),
            images.count * images.rows * images.cols
        );
    }
    if let Ok(inflated) = decompress_if_gzip(data.to_vec()) {
        let _ = parse_images(&inflated);
    }
});
