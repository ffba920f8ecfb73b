//! Predictions perform no heap allocation: counted by a global allocator wrapper (its own
//! test binary, so no other test allocates meanwhile).

use softnet::data::PIXELS;
use softnet::io::quantized::quantized_to_bytes;
use softnet::io::QuantizedModel;
use softnet::nn::{Architecture, Model};
use softnet::Classifier;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

#[test]
fn predictions_do_not_allocate() {
    let images: Vec<u8> = (0..8 * PIXELS).map(|i| (i * 31 % 251) as u8).collect();
    let x: Vec<f32> = images[..PIXELS]
        .iter()
        .map(|&p| f32::from(p) / 255.0)
        .collect();
    let mut classes = vec![0u8; 8];
    let mut confidence = vec![0.0f32; 8];
    let mut probs = vec![0.0f32; 10];
    let mut classifiers = Vec::new();
    // Small and large stack buffers, f32 and int8.
    for arch in [
        Architecture::softmax_regression(),
        Architecture::mlp(&[64]),
        Architecture::mlp(&[2000, 30]),
    ] {
        let model = Model::he_normal(arch, 3);
        classifiers.push(Classifier::from_model(&model).unwrap());
        classifiers.push(Classifier::from_quantized(&QuantizedModel::quantize(&model)).unwrap());
    }
    // Convolutional networks, f32 and int8 (loaded from a file's bytes, as `softnet predict`
    // does): their workspaces are made by this thread's first prediction, below, and then
    // reused.
    for spec in [
        "conv3x3x4,pool2,conv3x3x6s2,fc10",
        "conv5x5x8,pool2,conv5x5x16,pool2,fc64,dropout0.5,fc10",
    ] {
        let model = Model::he_normal(Architecture::from_spec(spec).unwrap(), 3);
        let bytes = softnet::io::model_to_bytes(&model, &[]);
        classifiers.push(Classifier::from_bytes(&bytes).unwrap());
        // And their int8 copies, as `softnet quantize` writes them.
        let q8 = quantized_to_bytes(&QuantizedModel::quantize(&model), &[]);
        classifiers.push(Classifier::from_bytes(&q8).unwrap());
    }
    // The tutorial's CNN in int8, a zero point (no ReLU between the convolutions) too.
    for arch in [
        Architecture::cnn(),
        Architecture::parse_described("28x28x1:conv3x3x4,conv3x3x6s2,flatten,fc10").unwrap(),
    ] {
        let model = Model::he_normal(arch, 4);
        classifiers.push(Classifier::from_quantized(&QuantizedModel::quantize(&model)).unwrap());
    }
    for c in &classifiers {
        let image: &[u8; PIXELS] = images[..PIXELS].try_into().unwrap();
        // Warm-up: a thread's first prediction with a convolutional network makes its
        // workspaces (one image, and a batch).
        c.predict(image);
        c.predict_batch(&images, &mut classes, &mut confidence);
        let before = allocations();
        let mut checksum = 0usize;
        for _ in 0..10 {
            checksum += c.predict(image).0;
            checksum += c.predict_f32(&x).0;
            checksum += c.predict_top3(image)[2].0;
            checksum += c.probabilities_into(image, &mut probs);
            c.predict_batch(&images, &mut classes, &mut confidence);
        }
        let after = allocations();
        assert_eq!(
            after - before,
            0,
            "{:?} {:?} allocated",
            c.architecture(),
            c.precision()
        );
        assert!(checksum < 10 * 4 * 10);
        assert!(confidence.iter().all(|p| (0.0..=1.0).contains(p)));
    }
}
