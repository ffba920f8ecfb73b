//! IDX labels: the raw parser (labels checked below 10), and the gzip path.
#![no_main]
use libfuzzer_sys::fuzz_target;
use softnet::data::idx::{decompress_if_gzip, parse_labels};

fuzz_target!(|data: &[u8]| {
    if let Ok(labels) = parse_labels(data, 10) {
        assert!(labels.iter().all(|&l| l < 10));
    }
    if let Ok(inflated) = decompress_if_gzip(data.to_vec()) {
        let _ = parse_labels(&inflated, 10);
    }
});
