//! The zero-copy model parser (`ClassifierRef`, the no_std engine): never panics, and a model
//! it accepts predicts a class in range. Where the std loader accepts the bytes too, both
//! see the same number of classes and predict the same class for a plain image.
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
    if let Ok(std) = softnet::Classifier::from_bytes(data) {
        assert_eq!(std.classes(), model.classes());
        let mut a = vec![0.0f32; model.classes()];
        let mut b = a.clone();
        model.logits_into(&image, &mut scratch, &mut a);
        std.logits_into(&image, &mut b);
        // Finite logits agree up to summation order; the argmax may flip only at a near-tie.
        if a.iter().chain(&b).all(|v| v.is_finite()) {
            let spread = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() <= 1e-3 * spread, "{a:?} vs {b:?}");
            }
        }
    }
});
