//! Model files: round trips, names, validation.

use std::path::Path;

use softnet::io::{load_model, load_model_bytes, model_to_bytes, save_model};
use softnet::nn::{Architecture, Model};

#[test]
fn saves_atomically_and_loads_back_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let model = Model::he_normal(Architecture::mlp(&[20, 10]), 4);
    save_model(&model, &path, &[]).unwrap();
    assert_eq!(load_model(&path).unwrap(), model);
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn softmax_tensors_carry_the_tutorial_scopes_and_metadata() {
    let bytes = model_to_bytes(
        &Model::softmax_regression(),
        &[("training", "{\"lr\":0.1}".into())],
    );
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("variables/Weight").unwrap().shape(), [784, 10]);
    assert_eq!(st.tensor("variables/Bias").unwrap().shape(), [10]);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["architecture"], "784-10");
    assert_eq!(meta["softnet_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(meta["training"], "{\"lr\":0.1}");
}

#[test]
fn unreadable_or_hostile_files_are_refused_with_the_path() {
    let err = load_model(Path::new("/nonexistent/m.safetensors")).unwrap_err();
    assert!(
        err.to_string().starts_with("/nonexistent/m.safetensors: "),
        "{err}"
    );
    // A header length far past the end of the file.
    let mut bytes = u64::MAX.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    assert!(load_model_bytes(&bytes, Path::new("h")).is_err());
    // Overlapping offsets.
    let header = br#"{"variables/Weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"variables/Bias":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 12]);
    assert!(load_model_bytes(&bytes, Path::new("o")).is_err());
    // Wrong dtype.
    let model = Model::softmax_regression();
    let mut bytes = model_to_bytes(&model, &[]);
    let at = bytes.windows(5).position(|w| w == b"\"F32\"").unwrap();
    bytes[at + 1] = b'I';
    let err = load_model_bytes(&bytes, Path::new("d")).unwrap_err();
    assert!(err.to_string().contains("I32"), "{err}");
}

#[test]
fn architecture_is_inferred_from_names_when_metadata_is_absent() {
    let model = Model::he_normal(Architecture::mlp(&[8]), 1);
    let mut tensors = Vec::new();
    model.visit_params(|p| {
        let bytes: Vec<u8> = p.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((p.path.to_string(), p.shape.to_vec(), bytes));
    });
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    assert_eq!(load_model_bytes(&bytes, Path::new("p")).unwrap(), model);
}

#[test]
fn a_cnn_file_holds_its_layer_list_and_hwio_filters_and_old_files_still_load() {
    let model = Model::he_normal(Architecture::cnn(), 2);
    let bytes = model_to_bytes(&model, &[]);
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(
        header.metadata().as_ref().unwrap()["architecture"],
        "28x28x1:conv5x5x32,relu,pool2,conv5x5x64,relu,pool2,flatten,fc1024,relu,dropout0.5,fc10"
    );
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("conv1/weight").unwrap().shape(), [5, 5, 1, 32]);
    assert_eq!(st.tensor("conv2/weight").unwrap().shape(), [5, 5, 32, 64]);
    assert_eq!(st.tensor("fc1/weight").unwrap().shape(), [3136, 1024]);
    assert_eq!(st.tensor("fc2/bias").unwrap().shape(), [10]);
    let back = load_model_bytes(&bytes, Path::new("cnn.safetensors")).unwrap();
    assert_eq!(back, model);

    // A file written before layer lists ("784-10" metadata, the tutorial's names).
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/softmax.safetensors");
    let old = load_model(&fixture).unwrap();
    assert_eq!(old.architecture(), &Architecture::softmax_regression());
    assert!(old.weight(0).iter().any(|&w| w != 0.0));

    // A layer list that does not parse is named in the error.
    let mut bad = bytes.clone();
    let at = bad.windows(6).position(|w| w == b"pool2,").unwrap();
    bad[at..at + 4].copy_from_slice(b"poox");
    let err = load_model_bytes(&bad, Path::new("bad.safetensors")).unwrap_err();
    assert!(err.to_string().contains("\"poox2\""), "{err}");
}
