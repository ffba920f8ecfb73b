//! TensorBoard event files: the TFRecord framing reader (length, CRCs).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(records) = softnet::summary::record::read_records(std::path::Path::new("fuzz"), data)
    {
        let framed: usize = records
            .iter()
            .map(|r| softnet::summary::record::framed_len(r.len()))
            .sum();
        assert_eq!(framed, data.len());
    }
});
