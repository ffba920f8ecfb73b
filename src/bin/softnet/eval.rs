//! `softnet eval`.

use std::path::PathBuf;

use crate::DataArgs;

/// Flags of `softnet eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Model file written by `softnet train --save` (or `softnet quantize`).
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let model = softnet::io::load_any_model(&args.model)?;
    let mnist = args.data.load()?;
    let result = match &model {
        softnet::io::AnyModel::F32(m) => softnet::train::evaluate(m, &mnist.test),
        softnet::io::AnyModel::Int8(q) => {
            softnet::Classifier::from_quantized(q)?.evaluate(&mnist.test)
        }
    };
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
