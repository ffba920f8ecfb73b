//! `softnet calibration`: confidence against accuracy, ECE, temperature scaling.

use std::path::PathBuf;

use anyhow::Context;
use softnet::analysis::inspect::{self, calibration_at, evaluate_with_logits};
use softnet::render::pictures::stack_vertically;
use softnet::render::plots::calibration_figure;

use crate::DataArgs;

/// `--temperature`: a fixed value, or fitted on held-out training digits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Temperature {
    /// Divide the logits by this.
    Fixed(f32),
    /// Fit it (minimum NLL) on the last `--fit-on` training digits.
    Fit,
}

fn temperature_arg(s: &str) -> Result<Temperature, String> {
    if s.eq_ignore_ascii_case("fit") {
        return Ok(Temperature::Fit);
    }
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Temperature::Fixed(v)),
        _ => Err("must be \"fit\" or a number above 0".into()),
    }
}

/// Flags of `softnet calibration`.
#[derive(Debug, clap::Args)]
pub struct CalibrationArgs {
    /// Model file written by `softnet train --save`.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Output PNG: histograms of the max posterior of correct and wrong digits, accuracy per
    /// confidence bin; with a temperature, the same after scaling below it.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Temperature applied to the logits: "fit" (fitted on held-out training digits) or a
    /// number. Default: none (1).
    #[arg(long, value_parser = temperature_arg, value_name = "fit|T")]
    temperature: Option<Temperature>,
    /// With --temperature fit: fit on the last N training digits.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=60000))]
    fit_on: u32,
}

pub fn run(args: CalibrationArgs) -> anyhow::Result<()> {
    let model = softnet::io::load_model(&args.model)?;
    let mnist = args.data.load()?;
    let test = &mnist.test;
    let classes = model.architecture().classes();
    let ev = evaluate_with_logits(&model, test)?;
    let before = calibration_at(&ev.logits, test.labels(), classes, 1.0)?;
    println!(
        "Accuracy: {:.4}  ECE (10 bins): {:.4}  on {} test digits",
        before.accuracy,
        before.ece,
        test.len()
    );
    let mut figures = vec![calibration_figure(&before, "Test set")?];
    let tempered = match args.temperature {
        None => None,
        Some(Temperature::Fixed(t)) => Some((t, "given".to_string())),
        Some(Temperature::Fit) => {
            let held = inspect::tail(&mnist.train, args.fit_on as usize);
            let t = inspect::fit_model_temperature(&model, &held)?;
            Some((
                t,
                format!(
                    "fitted on the last {} training digits (held out only if training skipped them)",
                    held.len()
                ),
            ))
        }
    };
    if let Some((t, how)) = tempered {
        let after = calibration_at(&ev.logits, test.labels(), classes, t)?;
        println!("Temperature: {t:.4} ({how})");
        println!("ECE before: {:.4}  after: {:.4}", before.ece, after.ece);
        figures.push(calibration_figure(
            &after,
            &format!("Test set, temperature {t:.2}"),
        )?);
    }
    let img = stack_vertically(&figures);
    img.save_png(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    for b in &before.bins {
        if b.count > 0 {
            println!(
                "  confidence {:.1}-{:.1}: {:>5} digits, mean confidence {:.3}, accuracy {:.3}",
                b.lower, b.upper, b.count, b.mean_confidence, b.accuracy
            );
        }
    }
    println!("wrote {}", args.output.display());
    Ok(())
}
