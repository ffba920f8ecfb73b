//! `softnet::preprocess` on the hand-drawn digits in `tests/fixtures/drawn/` (made by
//! `make_digits.py` there): each comes out MNIST-shaped, and looks like MNIST's own digits of
//! its class more than like any other class. And the digit pad's check: what the page in `web/`
//! showed for its canvases equals what the library computes from their PNGs.

use std::path::{Path, PathBuf};

use softnet::preprocess::{decode_gray, mnist_from_png, mnist_from_rgba, PreprocessError};
use softnet::Classifier;

const DRAWN: [(&str, u8); 10] = [
    ("zero", 0),
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/drawn")
        .join(format!("{name}.png"))
}

fn load(name: &str) -> [u8; 784] {
    let bytes = std::fs::read(fixture(name)).unwrap();
    mnist_from_png(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn drawn_digits_come_out_mnist_shaped() {
    for (name, _) in DRAWN {
        let img = load(name);
        let (mut x0, mut y0, mut x1, mut y1) = (28, 28, 0, 0);
        let (mut m, mut mx, mut my) = (0.0, 0.0, 0.0);
        for (i, &v) in img.iter().enumerate() {
            let (x, y) = (i % 28, i / 28);
            if v > 0 {
                (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
            }
            let v = f64::from(v);
            (m, mx, my) = (m + v, mx + v * x as f64, my + v * y as f64);
        }
        // Portrait digits: 20 px tall (a 1 is narrow, others wider).
        assert_eq!(y1 - y0 + 1, 20, "{name}");
        assert!(
            (3..=20).contains(&(x1 - x0 + 1)),
            "{name}: width {}",
            x1 - x0 + 1
        );
        let (cx, cy) = (mx / m, my / m);
        assert!(
            (cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5,
            "{name}: {cx} {cy}"
        );
        assert_eq!(*img.iter().max().unwrap(), 255, "{name}");
        // Strokes, not blobs: MNIST digits cover about 19% of the frame.
        let inked = img.iter().filter(|&&v| v > 0).count();
        assert!((60..=300).contains(&inked), "{name}: {inked} pixels inked");
    }
}

#[test]
fn a_blank_png_is_an_empty_error() {
    let mut out = Vec::new();
    let mut e = png::Encoder::new(&mut out, 50, 40);
    e.set_color(png::ColorType::Grayscale);
    let mut w = e.write_header().unwrap();
    w.write_image_data(&[250; 2000]).unwrap();
    w.finish().unwrap();
    assert!(matches!(mnist_from_png(&out), Err(PreprocessError::Empty)));
}

/// Nearest neighbours in MNIST's test set (5-NN, Euclidean): a classifier that needs no
/// trained model (about 96% on MNIST itself), so it checks the drawings and the preprocessing
/// together: a badly scaled, off-centre or inverted digit has no close MNIST neighbours of its
/// class.
#[test]
#[cfg_attr(
    any(softnet_no_mnist, not(feature = "gz")),
    ignore = "needs MNIST: MNIST_DIR or ../shared/data/mnist"
)]
fn drawn_digits_have_mnist_neighbours_of_their_class() {
    let mnist = crate::common::real_mnist();
    let (images, labels) = (mnist.test.pixels(), mnist.test.labels());
    let mut wrong = Vec::new();
    for (name, digit) in DRAWN {
        let img = load(name);
        let mut dists: Vec<(u32, u8)> = images
            .chunks_exact(784)
            .zip(labels)
            .map(|(m, &l)| {
                let d = m
                    .iter()
                    .zip(&img)
                    .map(|(&a, &b)| (i32::from(a) - i32::from(b)).pow(2) as u32)
                    .sum();
                (d, l)
            })
            .collect();
        dists.sort_unstable();
        let mut votes = [0; 10];
        for &(_, l) in &dists[..5] {
            votes[l as usize] += 1;
        }
        // Majority; ties go to the class of the nearer neighbour (max_by_key keeps the last
        // maximum, so scan the neighbours from farthest to nearest).
        let best = dists[..5]
            .iter()
            .rev()
            .max_by_key(|(_, l)| votes[*l as usize])
            .unwrap()
            .1;
        if best != digit {
            wrong.push(format!("{name} -> {best} (votes {votes:?})"));
        }
    }
    assert!(
        wrong.is_empty(),
        "nearest MNIST neighbours disagree: {wrong:?}"
    );
}

#[test]
fn rgba_pixels_give_what_their_png_gives() {
    // The digit pad hands a canvas's RGBA to mnist_from_rgba; `softnet predict` reads the
    // canvas saved as PNG. Opaque pixels of the drawings' grey levels must agree.
    for (name, _) in DRAWN {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let (w, h, gray) = decode_gray(&bytes).unwrap();
        let rgba: Vec<u8> = gray.iter().flat_map(|&g| [g, g, g, 255]).collect();
        assert_eq!(mnist_from_rgba(w, h, &rgba).unwrap(), load(name), "{name}");
    }
}

/// What the digit pad showed, as `web/test/check.cjs` recorded it (`results.json`: per drawing
/// the canvas's PNG, the 28x28 image the page computed and, per model, the digit and the top
/// three), against the library on the PNG: the images byte for byte, the classes equal and the
/// probabilities within 1e-5 (the page runs the portable kernels in WebAssembly, this the
/// machine's SIMD ones, which sum in another order). Run by `.ci/steps/38-digit-pad.sh`.
#[test]
#[ignore = "needs the digit pad's results: SOFTNET_DIGIT_PAD_RESULTS and SOFTNET_DIGIT_PAD_MODELS"]
fn digit_pad_matches_the_library() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let results_path = PathBuf::from(var("SOFTNET_DIGIT_PAD_RESULTS"));
    let models = PathBuf::from(var("SOFTNET_DIGIT_PAD_MODELS"));
    let text = std::fs::read_to_string(&results_path).unwrap();
    let results: serde_json::Value = serde_json::from_str(&text).unwrap();
    let results = results.as_array().expect("an array of drawings");
    assert!(
        !results.is_empty(),
        "no drawings in {}",
        results_path.display()
    );
    let mut classifiers = std::collections::BTreeMap::new();
    let (mut checked, mut worst) = (0, 0f32);
    for r in results {
        let name = r["name"].as_str().unwrap();
        let png = results_path
            .parent()
            .unwrap()
            .join(r["png"].as_str().unwrap());
        let image = mnist_from_png(&std::fs::read(&png).unwrap()).unwrap();
        let page: Vec<u8> = r["pixels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| u8::try_from(v.as_u64().unwrap()).unwrap())
            .collect();
        assert_eq!(
            page, image,
            "{name}: the page's 28x28 image differs from the library's"
        );
        for (model, shown) in r["models"].as_object().unwrap() {
            let classifier = classifiers.entry(model.clone()).or_insert_with(|| {
                Classifier::from_file(&models.join(format!("{model}.safetensors"))).unwrap()
            });
            let want = classifier.predict_top3(&image);
            assert_eq!(
                shown["digit"].as_u64(),
                Some(want[0].0 as u64),
                "{name} {model}"
            );
            for (k, (class, p)) in want.iter().enumerate() {
                let got = &shown["top3"][k];
                assert_eq!(
                    got[0].as_u64(),
                    Some(*class as u64),
                    "{name} {model} top {k}"
                );
                let diff = (got[1].as_f64().unwrap() as f32 - p).abs();
                assert!(
                    diff <= 1e-5,
                    "{name} {model} top {k}: page {got}, library {p}"
                );
                worst = worst.max(diff);
            }
            checked += 1;
        }
    }
    eprintln!(
        "digit pad: {checked} (drawing, model) pairs agree with the library; \
         largest probability difference {worst:e}"
    );
}
