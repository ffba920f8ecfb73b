//! `softnet report`: one self-contained HTML page about a model.

use std::path::{Path, PathBuf};

use anyhow::Context;
use softnet::render::pictures::{model_report, ReportOptions};

use crate::DataArgs;

/// Flags of `softnet report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Model file written by `softnet train --save`.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Output HTML file (pictures embedded, no network needed).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Target class of the weight-image attack.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u8).range(0..=9))]
    target: u8,
    /// FGSM step size quoted in the report.
    #[arg(long, default_value_t = 0.1, value_parser = crate::fool::eps_arg)]
    eps: f32,
}

/// The model file's metadata (architecture, softnet version, training settings), sorted.
fn file_metadata(path: &Path) -> Vec<(String, String)> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let Ok((_, header)) = safetensors::SafeTensors::read_metadata(&bytes) else {
        return Vec::new();
    };
    let mut rows: Vec<(String, String)> = header
        .metadata()
        .iter()
        .flatten()
        .filter(|(k, _)| !matches!(k.as_str(), "format" | "architecture"))
        .map(|(k, v)| (format!("model file: {k}"), v.clone()))
        .collect();
    rows.sort();
    rows
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let model = softnet::io::load_model(&args.model)?;
    let mnist = args.data.load()?;
    let opts = ReportOptions {
        model_name: args
            .model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| args.model.display().to_string()),
        metadata: file_metadata(&args.model),
        target: args.target,
        eps: args.eps,
        ..ReportOptions::default()
    };
    let (report, n) = model_report(&model, &mnist, &opts)?;
    report
        .save(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!("Accuracy: {:.4}", n.accuracy);
    println!("Loss: {:.4}", n.loss);
    println!("ECE: {:.4}", n.calibration.ece);
    if let Some((t, cal)) = &n.tempered {
        println!("Temperature: {t:.4}  ECE after: {:.4}", cal.ece);
    }
    if let Some(sweep) = &n.weight_sweep {
        for (s, r) in sweep {
            println!(
                "Fooling rate towards {} at scale {s}: {:.2}%",
                args.target,
                r * 100.0
            );
        }
    }
    let f = n.fgsm_chosen();
    println!(
        "FGSM eps {}: success {:.2}%, accuracy {:.2}%",
        f.eps,
        f.success_rate * 100.0,
        f.accuracy_after * 100.0
    );
    println!("wrote {}", args.output.display());
    Ok(())
}
