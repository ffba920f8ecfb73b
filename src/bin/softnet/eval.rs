//! `softnet eval`.

use std::path::PathBuf;

use crate::DataArgs;

/// Flags of `softnet eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Model file written by `softnet train --save`.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let model = softnet::io::load_model(&args.model)?;
    let mnist = args.data.load()?;
    let result = softnet::train::evaluate(&model, &mnist.test);
    println!(
        "model: {} ({})",
        args.model.display(),
        model.architecture().describe()
    );
    println!("Accuracy: {:.4}", result.accuracy);
    println!("Loss: {:.4}", result.loss);
    println!("Confusion matrix (rows: true digit, columns: predicted):");
    print!("     ");
    for c in 0..result.confusion.len() {
        print!("{c:>6}");
    }
    println!();
    for (t, row) in result.confusion.iter().enumerate() {
        print!("{t:>5}");
        for v in row {
            print!("{v:>6}");
        }
        println!();
    }
    Ok(())
}
