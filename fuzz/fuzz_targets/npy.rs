//! `.npy` arrays (the `--init` weights): a parsed array's values fill its shape.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = softnet::io::npy::parse_npy(data) {
        assert_eq!(a.values.len(), a.shape.iter().product::<usize>());
    }
});
