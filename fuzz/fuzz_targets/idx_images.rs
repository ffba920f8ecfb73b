//! IDX images: the raw parser, and the gzip paths the loader takes for `.gz` files (whole,
//! and in pieces as a run that starts while loading takes them).
#![no_main]
use libfuzzer_sys::fuzz_target;
use softnet::data::idx::{
    decompress_if_gzip, decompress_prefix, images_header, inflate_images_in_pieces,
    parse_images, IMAGES_HEADER_LEN,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(images) = parse_images(data) {
        assert_eq!(
            images.pixels.len(),
            images.count * images.rows * images.cols
        );
    }
    let whole = decompress_if_gzip(data.to_vec());
    if let Ok(inflated) = &whole {
        let _ = parse_images(inflated);
    }
    let Some(header) = decompress_prefix(data, IMAGES_HEADER_LEN) else {
        return;
    };
    let Some([count, rows, cols]) = images_header(&header) else {
        return;
    };
    let len = count * rows * cols;
    if len > 1 << 20 {
        return;
    }
    // Inflated in pieces, the pixels are accepted exactly when the whole file parses.
    let mut pixels = vec![0u8; len];
    let mut arrived = 0;
    let complete = inflate_images_in_pieces(data, &mut pixels, 100, |piece| arrived += piece.len());
    let parsed = whole.as_ref().ok().and_then(|w| parse_images(w).ok());
    assert_eq!(complete, parsed.is_some());
    if let Some(images) = parsed {
        assert_eq!(arrived, len);
        assert_eq!(images.pixels, &pixels[..]);
    }
});
