//! The zero-copy model parser (`ClassifierRef`, the no_std engine): never panics, and a model
//! it accepts predicts a class in range with caller scratch of the length it asks for.
//! Where the std loader accepts the bytes too, both see the same number of classes. (The
//! logits are not compared: weights as large as f32 allows cancel differently in another
//! summation order.)
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(model) = softnet::ClassifierRef::parse(data) else {
        return;
    };
    let mut scratch = vec![0.0f32; model.scratch_len()];
    let image: [u8; 784] = std::array::from_fn(|i| data.get(i).copied().unwrap_or(0));
    let (class, _) = model.predict(&image, &mut scratch);
    assert!(class < model.classes());
    let mut probs = vec![0.0f32; model.classes()];
    model.probabilities_into(&image, &mut scratch, &mut probs);
    if let Ok(std) = softnet::Classifier::from_bytes(data) {
        assert_eq!(std.classes(), model.classes());
    }
});
