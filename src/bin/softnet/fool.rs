//! `softnet fool`: fooling the classifier, by adding a class's weight image (the tutorial)
//! or by the fast gradient sign method.

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use softnet::analysis::inspect::{self, fgsm_sweep, to_unit, weight_fool, weight_fooling_sweep};
use softnet::data::PIXELS;
use softnet::render::pictures::{changed_digits_picture, FGSM_EPSILONS, WEIGHT_SCALES};
use softnet::render::plots::fooling_rate_plot;

use crate::DataArgs;

/// How the digits are changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Add `scale * W[:, target]` (softmax regression only, as in the tutorial).
    Weights,
    /// Fast gradient sign method: `clip(x + eps * sign(dLoss/dx), 0, 1)` (any model).
    Fgsm,
}

fn finite(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err("must be finite".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// `--eps`: a step size in [0, 1] (pixels are in [0, 1]).
pub(crate) fn eps_arg(s: &str) -> Result<f32, String> {
    match finite(s)? {
        v if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err("must be in [0, 1] (pixels are in [0, 1])".into()),
    }
}

/// Flags of `softnet fool`.
#[derive(Debug, clap::Args)]
pub struct FoolArgs {
    /// Model file written by `softnet train --save`.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Class the weight image is taken from (the digits should turn into it).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u8).range(0..=9))]
    target: u8,
    /// Scale of the added weight image for the digits shown (--method weights).
    #[arg(long, default_value_t = 1.0, value_parser = finite)]
    scale: f32,
    /// Scales of the fooling-rate sweep over the whole test set (--method weights).
    #[arg(long, value_delimiter = ',', value_parser = finite, default_values_t = WEIGHT_SCALES)]
    scales: Vec<f32>,
    /// How to change the digits.
    #[arg(long, value_enum, default_value_t = Method::Weights)]
    method: Method,
    /// FGSM step size in pixel units (--method fgsm).
    #[arg(long, default_value_t = 0.1, value_parser = eps_arg)]
    eps: f32,
    /// Digits shown, from the first test digit.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=400))]
    count: u32,
    /// Output PNG: the changed digits with their new predictions.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Also draw the sweep (rate against scale or eps) into this PNG.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

fn line(predictions: &[u8]) -> String {
    let p: Vec<String> = predictions.iter().map(|p| p.to_string()).collect();
    format!("[{}]", p.join(" "))
}

pub fn run(args: FoolArgs) -> anyhow::Result<()> {
    let model = softnet::io::load_model(&args.model)?;
    let target = usize::from(args.target);
    if args.method == Method::Weights {
        // Fails before loading the data when the model has hidden layers.
        inspect::weight_direction(&model, target)?;
    }
    let mnist = args.data.load()?;
    let test = &mnist.test;
    let n = (args.count as usize).min(test.len());
    let labels = &test.labels()[..n];
    let (picture, points, x_label, plot_title) = match args.method {
        Method::Weights => {
            let shown = to_unit(&test.pixels()[..n * PIXELS]);
            let fooled = weight_fool(&model, &shown, target, args.scale)?;
            println!("{}", line(&fooled.predictions));
            let picture = changed_digits_picture(
                &fooled.images,
                labels,
                &fooled.predictions,
                &format!("Test digits + {} \u{00d7} W[:, {target}]", args.scale),
                |l, p| p == args.target && l != args.target,
            )?;
            let sweep = weight_fooling_sweep(&model, test, target, &args.scales)?;
            let eligible = test.labels().iter().filter(|&&l| l != args.target).count();
            println!(
                "fooling rate towards {target} over the {} test digits not labelled {target}:",
                eligible
            );
            for (s, r) in &sweep {
                println!("  scale {s}: {:.2}%", r * 100.0);
            }
            (
                picture,
                sweep,
                format!("scale of the added weight image W[:, {target}]"),
                format!(
                    "Fooling rate towards {target} over {} test digits",
                    test.len()
                ),
            )
        }
        Method::Fgsm => {
            let all = to_unit(test.pixels());
            let mut eps: Vec<f32> = FGSM_EPSILONS.to_vec();
            eps.push(args.eps);
            let (outcomes, adversarial) = fgsm_sweep(&model, &all, test.labels(), &eps)?;
            let chosen = &outcomes[outcomes.len() - 1];
            println!("{}", line(&chosen.predictions[..n]));
            let picture = changed_digits_picture(
                &adversarial[..n * PIXELS],
                labels,
                &chosen.predictions[..n],
                &format!("FGSM, eps {}", args.eps),
                |l, p| l != p,
            )?;
            println!(
                "FGSM at eps {} on {} test digits: success rate {:.2}% (correct digits made wrong), \
                 accuracy {:.2}% -> {:.2}%, mean change L-inf {:.4}, L2 {:.4}",
                chosen.eps,
                test.len(),
                chosen.success_rate * 100.0,
                chosen.accuracy_before * 100.0,
                chosen.accuracy_after * 100.0,
                chosen.mean_linf,
                chosen.mean_l2
            );
            println!("sweep:");
            for o in &outcomes[..outcomes.len() - 1] {
                println!(
                    "  eps {}: success {:.2}%, accuracy {:.2}%, L-inf {:.4}, L2 {:.4}",
                    o.eps,
                    o.success_rate * 100.0,
                    o.accuracy_after * 100.0,
                    o.mean_linf,
                    o.mean_l2
                );
            }
            let points = outcomes[..outcomes.len() - 1]
                .iter()
                .map(|o| (o.eps, o.success_rate))
                .collect();
            (
                picture,
                points,
                "FGSM step eps (pixel values in [0, 1])".to_string(),
                "FGSM success rate (correct digits made wrong)".to_string(),
            )
        }
    };
    picture
        .save_png(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!("wrote {}", args.output.display());
    if let Some(path) = &args.plot {
        fooling_rate_plot(&points, &x_label, &plot_title)?
            .save_png(path)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
