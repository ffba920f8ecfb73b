//! ONNX models: a graph that imports is a valid softnet model whose parameters are finite,
//! and exporting it and importing that again gives the same parameters.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz");
    if let Ok(imported) = softnet::onnx::import_bytes(data, path) {
        let model = imported.model;
        assert!(model.params().iter().all(|v| v.is_finite()));
        assert_eq!(model.params().len(), model.architecture().parameter_count());
        let again = softnet::onnx::export_bytes(&model, &Default::default());
        let back = softnet::onnx::import_bytes(&again, path).expect("softnet reads its own export");
        assert_eq!(back.model.params(), model.params());
    }
});
