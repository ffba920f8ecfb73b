//! A tiny classifier with its model baked in: `include_bytes!` puts the safetensors file
//! into the binary, [`softnet::Classifier`] validates it once at start-up.
//!
//! ```text
//! cargo build --release --example embed --no-default-features --features render
//! target/release/examples/embed tests/fixtures/drawn/*.png
//! target/release/examples/embed --model cnn.safetensors tests/fixtures/drawn/*.png
//! ```
//!
//! Each argument is a PNG (any size, grey or colour; converted the way MNIST was made) or a
//! raw 784-byte image (28x28, 0 = background). `--model FILE` runs another model file
//! instead of the baked-in one: any kind `softnet train --save` or `softnet quantize`
//! writes, a CNN (f32 or int8) included. Needs the `render` feature only for PNG decoding;
//! the classifier itself needs `std` alone (and `softnet::ClassifierRef` not even that).

use std::process::ExitCode;

use softnet::data::PIXELS;
use softnet::Classifier;

/// Softmax regression trained with `softnet train -q --save` (91.49% on the test set).
static MODEL: &[u8] = include_bytes!("../tests/fixtures/softmax.safetensors");

/// A PNG, or a raw 784-byte image.
fn read_image(path: &str) -> Result<[u8; PIXELS], String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    if !bytes.starts_with(b"\x89PNG") {
        if let Ok(raw) = <[u8; PIXELS]>::try_from(bytes.as_slice()) {
            return Ok(raw);
        }
    }
    softnet::preprocess::mnist_from_png(&bytes).map_err(|e| format!("{path}: {e}"))
}

fn main() -> ExitCode {
    let mut paths: Vec<String> = std::env::args().skip(1).collect();
    let loaded = if paths.first().map(String::as_str) == Some("--model") && paths.len() > 1 {
        let file = paths.drain(..2).nth(1).unwrap_or_default();
        Classifier::from_file(std::path::Path::new(&file))
    } else {
        Classifier::from_bytes(MODEL)
    };
    let classifier = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: the model: {e}");
            return ExitCode::FAILURE;
        }
    };
    if paths.is_empty() {
        eprintln!("usage: embed [--model FILE] IMAGE.png|IMAGE.raw ...");
        return ExitCode::from(2);
    }
    let mut status = ExitCode::SUCCESS;
    for path in &paths {
        match read_image(path) {
            Ok(image) => {
                let (class, confidence) = classifier.predict(&image);
                println!("{path}: {class} ({:.1}%)", 100.0 * confidence);
            }
            Err(e) => {
                eprintln!("error: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
