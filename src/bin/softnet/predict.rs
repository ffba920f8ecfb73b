//! `softnet predict`: classify PNG files, or raw 784-byte records from standard input.

use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use softnet::data::PIXELS;
use softnet::Classifier;

/// Flags of `softnet predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// Model file: f32 (`softnet train --save`, dense or convolutional) or int8 (`softnet
    /// quantize`).
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// Read raw images from standard input instead: 784 bytes each (28x28, row-major,
    /// 0 = background), one line of output per record, named by its index from 0.
    #[arg(long, conflicts_with = "images")]
    stdin: bool,
    /// PNG images, any size, grayscale or colour: each is converted the way MNIST was made
    /// (inverted if the background is light, cropped, scaled into 20x20, centred by mass).
    #[arg(value_name = "IMAGE", required_unless_present = "stdin")]
    images: Vec<PathBuf>,
}

/// `name class c:p c:p c:p`: the predicted class, then the top three with probabilities.
fn print_line(
    out: &mut impl Write,
    classifier: &Classifier,
    name: &str,
    image: &[u8; PIXELS],
) -> std::io::Result<()> {
    let top = classifier.predict_top3(image);
    write!(out, "{name} {}", top[0].0)?;
    for (class, p) in top.iter().filter(|(c, _)| *c != usize::MAX) {
        write!(out, " {class}:{p:.4}")?;
    }
    writeln!(out)
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    let classifier = Classifier::from_file(&args.model)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    if args.stdin {
        let mut input = std::io::stdin().lock();
        let mut record = [0u8; PIXELS];
        for index in 0usize.. {
            // Fill one record; a clean end of input falls between records.
            let mut filled = 0;
            while filled < PIXELS {
                match input.read(&mut record[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e).context("reading standard input"),
                }
            }
            if filled == 0 {
                break;
            }
            if filled < PIXELS {
                anyhow::bail!(
                    "standard input ends inside record {index}: {filled} of {PIXELS} bytes"
                );
            }
            print_line(&mut out, &classifier, &index.to_string(), &record)?;
        }
    } else {
        let mut failed = 0;
        for path in &args.images {
            let image = std::fs::read(path)
                .map_err(anyhow::Error::from)
                .and_then(|bytes| Ok(softnet::preprocess::mnist_from_png(&bytes)?));
            match image {
                Ok(image) => {
                    print_line(&mut out, &classifier, &path.display().to_string(), &image)?
                }
                Err(e) => {
                    out.flush()?;
                    eprintln!("error: {}: {e}", path.display());
                    failed += 1;
                }
            }
        }
        if failed > 0 {
            out.flush()?;
            anyhow::bail!("{failed} of {} images could not be read", args.images.len());
        }
    }
    out.flush()?;
    Ok(())
}
