//! The PNG input path of `predict`: decode, find the ink, centre into 28x28.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = softnet::preprocess::mnist_from_png(data);
});
