//! Model files (safetensors): a model that loads has only finite parameters.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = softnet::io::load_model_bytes(data, std::path::Path::new("fuzz")) {
        assert!(model.params().iter().all(|v| v.is_finite()));
        assert_eq!(model.params().len(), model.architecture().parameter_count());
    }
});
