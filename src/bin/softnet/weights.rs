//! `softnet weights`: the model's first-layer weights as images.

use std::path::PathBuf;

use anyhow::Context;
use softnet::render::pictures::weights_picture;

/// Flags of `softnet weights`.
#[derive(Debug, clap::Args)]
pub struct WeightsArgs {
    /// Model file written by `softnet train --save`.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// Output PNG.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// For a model with hidden layers: how many first-layer units to draw; for a
    /// convolutional model: how many first-layer filters (softmax regression always shows
    /// its 10 class columns).
    /// [default: 16 units, or every filter]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    units: Option<u32>,
}

pub fn run(args: WeightsArgs) -> anyhow::Result<()> {
    let model = softnet::io::load_model(&args.model)?;
    let units = match args.units {
        Some(units) => units as usize,
        None if model.layers().first().is_some_and(|l| l.convolutional) => usize::MAX,
        None => 16,
    };
    let img = weights_picture(&model, units)?;
    img.save_png(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!(
        "wrote {} ({}x{}, {})",
        args.output.display(),
        img.width,
        img.height,
        model.architecture().describe()
    );
    Ok(())
}
