//! The `softnet` command line: parses flags, calls the library, prints.
//!
//! Exit codes: 0 success, 1 runtime failure (bad data, diverged training, unwritable
//! output), 2 usage error (unknown or invalid flags).

mod bench;
mod calibration;
#[cfg(feature = "download")]
mod download;
mod eval;
mod fool;
mod onnx;
mod predict;
mod quantize;
mod report;
mod serve_web;
mod show;
mod train;
mod weights;

use std::path::PathBuf;
use std::process::ExitCode;
#[cfg(feature = "download")]
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Softmax regression, dense and convolutional networks on MNIST, on the CPU.
#[derive(Debug, Parser)]
#[command(name = "softnet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model (by default the tutorial's softmax regression) and print its accuracy.
    Train(Box<train::TrainArgs>),
    /// Evaluate a saved model on the test set: accuracy, mean loss, confusion matrix.
    Eval(eval::EvalArgs),
    /// Measure the performance targets on this machine (medians of repeated runs).
    Bench(bench::BenchArgs),
    /// Classify PNG images (or raw 784-byte records with --stdin): class and top three.
    Predict(predict::PredictArgs),
    /// Write an int8 copy of a model (per-channel weights, about 4x smaller).
    Quantize(quantize::QuantizeArgs),
    /// Draw the first MNIST digits in a grid with their labels.
    Show(show::ShowArgs),
    /// Draw the model's first-layer weights as images (softmax regression: W[:, 0..9]).
    Weights(weights::WeightsArgs),
    /// Fool the classifier: add a class's weight image, or the fast gradient sign attack.
    Fool(fool::FoolArgs),
    /// Confidence against accuracy: histograms, reliability bins, ECE, temperature scaling.
    Calibration(calibration::CalibrationArgs),
    /// One self-contained HTML page: numbers, every picture, confusion matrix, worst mistakes.
    Report(report::ReportArgs),
    /// Fetch the four MNIST files from public mirrors, verifying their SHA-256.
    #[cfg(feature = "download")]
    Download(download::DownloadArgs),
    /// Serve the digit pad (web/: draw a digit, see what the models say) on this machine.
    ServeWeb(serve_web::ServeWebArgs),
    /// Write a model as ONNX (opset 13) for onnxruntime and other runtimes.
    Export(onnx::ExportArgs),
    /// Read an ONNX model (PyTorch's or TensorFlow's export of a dense or CNN network).
    Import(onnx::ImportArgs),
}

/// Where the MNIST files are: `--data`, then `$MNIST_DIR`, then `./data/mnist`; fetched into
/// the default folder when none has them (as the tutorial's `input_data` does).
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Folder holding the four MNIST files (gzip'd or raw IDX). Default: $MNIST_DIR, then
    /// ./data/mnist, downloaded there if missing.
    #[arg(long, help_heading = "Data", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Check the SHA-256 of the four files' decompressed content against the published MNIST
    /// files before using them.
    #[cfg(feature = "download")]
    #[arg(long, help_heading = "Data")]
    pub verify: bool,
    /// Never download: fail when the data folder lacks MNIST (also SOFTNET_OFFLINE=1).
    #[cfg(feature = "download")]
    #[arg(long, help_heading = "Data")]
    pub offline: bool,
    /// URL prefix of a mirror to download MNIST from when it is missing, tried in the order
    /// given, replacing the built-in list (as `softnet download --mirror`).
    #[cfg(feature = "download")]
    #[arg(long = "mirror", help_heading = "Data", value_name = "URL")]
    pub mirrors: Vec<String>,
}

impl DataArgs {
    /// Loads the dataset from the folder these flags point to.
    pub fn load(&self) -> anyhow::Result<softnet::data::Mnist> {
        Ok(self.open()?.load()?)
    }

    /// Reads the four files from the folder these flags point to, leaving the decoding to
    /// the caller (see [`softnet::data::PendingMnist`]).
    pub fn open(&self) -> anyhow::Result<softnet::data::PendingMnist> {
        let dir = self.locate()?;
        #[cfg(feature = "download")]
        if self.verify {
            softnet::download::verify_dir(&dir)?;
        }
        Ok(softnet::data::Mnist::open(&dir)?)
    }

    /// The data folder; when no folder has MNIST and none was named with `--data`, the
    /// default one after downloading the files into it.
    fn locate(&self) -> anyhow::Result<PathBuf> {
        let err = match softnet::data::locate_data_dir(self.data.as_deref()) {
            Ok(dir) => return Ok(dir),
            Err(e) => e,
        };
        #[cfg(feature = "download")]
        if self.data.is_none() {
            if self.offline || std::env::var_os("SOFTNET_OFFLINE").is_some_and(|v| v == "1") {
                anyhow::bail!("{err}\n(Not downloaded: --offline or SOFTNET_OFFLINE=1 is set.)");
            }
            let dir = std::env::var_os("MNIST_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("data/mnist"));
            eprintln!(
                "MNIST is not here yet: downloading the four files into {} (--offline to stop this)",
                dir.display()
            );
            let summary = download::fetch(&dir, &self.mirrors, Duration::from_secs(30), true)?;
            for line in download::outcomes(&summary) {
                eprintln!("{line}");
            }
            return Ok(dir);
        }
        Err(err.into())
    }
}

fn main() -> ExitCode {
    restore_default_sigpipe();
    // `--version` names the SIMD path too, which is known only at run time.
    let version = format!(
        "{}\nsimd: {}\nint8: {}",
        env!("CARGO_PKG_VERSION"),
        softnet::kernels::simd::describe(),
        softnet::infer::int8_kernels()
    );
    let matches = Cli::command()
        .version(&*Box::leak(version.into_boxed_str()))
        .get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Train(args) => train::run(*args),
        Command::Eval(args) => eval::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Show(args) => show::run(args),
        Command::Weights(args) => weights::run(args),
        Command::Fool(args) => fool::run(args),
        Command::Calibration(args) => calibration::run(args),
        Command::Report(args) => report::run(args),
        Command::ServeWeb(args) => serve_web::run(args),
        #[cfg(feature = "download")]
        Command::Download(args) => download::run(args),
        Command::Export(args) => onnx::export(args),
        Command::Import(args) => onnx::import(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, `: `-separated, leaving out a cause whose text already ends the
/// message: the library's errors name their OS error in their own text and also hand it out
/// as their source, and it should be printed once.
fn describe(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Ends the process quietly, as `cat` or `grep` do, when the reader of its output goes away
/// (`softnet eval | head`). Rust starts programs with SIGPIPE ignored, which turns the next
/// `println!` into a panic.
#[cfg(unix)]
fn restore_default_sigpipe() {
    // SAFETY: runs first in `main`, before any other thread exists; setting a signal's action
    // to the default has no other requirement.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn restore_default_sigpipe() {}
