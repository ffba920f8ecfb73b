//! `softnet show`: a grid of MNIST digits with their labels.

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use softnet::render::pictures::digits_picture;

use crate::DataArgs;

/// Which MNIST split.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Split {
    /// The 10000 test digits.
    Test,
    /// The 60000 training digits.
    Train,
}

/// Flags of `softnet show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Which split to take the digits from.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    split: Split,
    /// How many digits, from the first (25 make a 5x5 grid).
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=400))]
    count: u32,
    /// Output PNG.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

pub fn run(args: ShowArgs) -> anyhow::Result<()> {
    let mnist = args.data.load()?;
    let (data, name) = match args.split {
        Split::Test => (&mnist.test, "test"),
        Split::Train => (&mnist.train, "training"),
    };
    let n = (args.count as usize).min(data.len());
    let title = format!("The first {n} {name} digits");
    let img = digits_picture(data, n, Some(&title))?;
    img.save_png(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    let labels: Vec<String> = data.labels()[..n].iter().map(|l| l.to_string()).collect();
    println!("[{}]", labels.join(" "));
    println!(
        "wrote {} ({}x{})",
        args.output.display(),
        img.width,
        img.height
    );
    Ok(())
}
