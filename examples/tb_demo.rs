//! Writes a fake training log with [`TensorBoardLogger`], for trying TensorBoard and for
//! `tests/tensorboard_check.py` before (or besides) `softnet train --logdir`.
//!
//! `cargo run --example tb_demo -- LOGDIR [ACCURACY_FILE] [--hidden 256,64]`
//!
//! ACCURACY_FILE receives `step accuracy` lines, the test accuracies logged, as the trainer
//! prints them.

use softnet::summary::graph::layer_names;
use softnet::summary::{ParamView, SummaryError, TensorBoardLogger};
use std::io::Write;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut logdir = None;
    let mut accuracy_file = None;
    let mut hidden: Vec<usize> = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--hidden" {
            let list = args.next().ok_or("--hidden needs a list like 256,64")?;
            hidden = list.split(',').map(str::parse).collect::<Result<_, _>>()?;
        } else if logdir.is_none() {
            logdir = Some(PathBuf::from(arg));
        } else {
            accuracy_file = Some(PathBuf::from(arg));
        }
    }
    let logdir = logdir.ok_or("usage: tb_demo LOGDIR [ACCURACY_FILE] [--hidden 256,64]")?;
    let accuracies = write_fake_run(&logdir, &hidden)?;
    if let Some(path) = accuracy_file {
        let mut f = std::fs::File::create(&path)?;
        for (step, acc) in accuracies {
            writeln!(f, "{step} {acc}")?;
        }
    }
    println!("wrote {}", logdir.display());
    Ok(())
}

/// Logs 11 evaluations (steps 0, 100, ..., 1000) of a model with synthetic parameters and
/// returns the test accuracies logged.
fn write_fake_run(
    logdir: &std::path::Path,
    hidden: &[usize],
) -> Result<Vec<(i64, f32)>, SummaryError> {
    let (input, classes) = (784usize, 10usize);
    let widths: Vec<usize> = std::iter::once(input)
        .chain(hidden.iter().copied())
        .chain(std::iter::once(classes))
        .collect();
    let names = layer_names(hidden.len());
    let mut tb = TensorBoardLogger::create(logdir)?;
    tb.log_graph(input, hidden, classes)?;
    let mut accuracies = Vec::new();
    let mut spent = std::time::Duration::ZERO;
    let mut params: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for step in (0..=1000i64).step_by(100) {
        let t = step as f32 / 1000.0;
        params.clear();
        for (k, layer) in names.iter().enumerate() {
            let (n_in, n_out) = (widths[k], widths[k + 1]);
            // A blob per output column, in a different place for each column, growing with t.
            let weight: Vec<f32> = (0..n_in * n_out)
                .map(|i| {
                    let (r, c) = (i / n_out, i % n_out);
                    let (y, x) = ((r / 28) as f32, (r % 28) as f32);
                    let (cy, cx) = (8.0 + (c % 3) as f32 * 6.0, 8.0 + (c / 3 % 4) as f32 * 4.0);
                    let d2 = (y - cy).powi(2) + (x - cx).powi(2);
                    t * ((-d2 / 20.0).exp() - 0.1 * ((i % 7) as f32 - 3.0) / 3.0)
                })
                .collect();
            let bias: Vec<f32> = (0..n_out).map(|c| t * (c as f32 - 4.5) * 0.01).collect();
            params.push((layer.weight.clone(), vec![n_in, n_out], weight));
            params.push((layer.bias.clone(), vec![n_out], bias));
        }
        let views: Vec<ParamView<'_>> = params
            .iter()
            .map(|(path, shape, values)| ParamView {
                path,
                shape,
                values,
            })
            .collect();
        let train_acc = 0.1 + 0.82 * (1.0 - (-6.0 * t).exp());
        let test_acc = train_acc - 0.005 * t;
        let train_loss = 2.3 * (-3.0 * t).exp() + 0.3;
        let test_loss = train_loss + 0.01;
        let logits: Vec<f32> = (0..10_000 * classes)
            .map(|i| t * (((i * 7919) % 1000) as f32 / 100.0 - 5.0))
            .collect();
        let started = std::time::Instant::now();
        tb.log_eval(
            step,
            (train_loss, train_acc),
            (test_loss, test_acc),
            &views,
            &logits[..100 * classes],
            &logits,
        )?;
        spent += started.elapsed();
        accuracies.push((step, test_acc));
        if step == 1000 {
            tb.log_weight_images(step, &views)?;
        }
    }
    println!(
        "log_eval: {:.2} ms per evaluation (10000 test logits)",
        spent.as_secs_f64() * 1e3 / accuracies.len() as f64
    );
    Ok(accuracies)
}
