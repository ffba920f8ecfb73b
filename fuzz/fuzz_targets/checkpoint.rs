//! Training checkpoints: a checkpoint that parses round-trips through its own writer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use softnet::train::checkpoint::Checkpoint;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz");
    if let Ok(c) = Checkpoint::from_bytes(data, path) {
        let again = Checkpoint::from_bytes(&c.to_bytes(), path).expect("own bytes parse");
        assert_eq!(c.steps, again.steps);
        assert_eq!(c.params.len(), again.params.len());
    }
});
