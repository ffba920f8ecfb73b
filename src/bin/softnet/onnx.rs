//! `softnet export --onnx` and `softnet import`: models to and from ONNX.

use std::path::PathBuf;

use softnet::io::AnyModel;
use softnet::onnx::{ExportOptions, LOGITS_NAME, OPSET, PROBABILITIES_NAME};

/// Flags of `softnet export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// F32 model file written by `softnet train --save` (or `softnet import`).
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// Where to write the ONNX model (opset 13): input `pixels` [N, 784], float pixels / 255;
    /// output `logits` [N, classes].
    #[arg(long, value_name = "FILE")]
    onnx: PathBuf,
    /// Also output `probabilities`, the softmax of the logits.
    #[arg(long)]
    probabilities: bool,
}

/// Flags of `softnet import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// ONNX model: a chain of Gemm (or MatMul + Add), Relu, Conv, MaxPool, Flatten, Reshape,
    /// Transpose, optionally a final Softmax or LogSoftmax; NCHW (PyTorch) or NHWC (TensorFlow,
    /// softnet).
    #[arg(value_name = "MODEL.onnx")]
    input: PathBuf,
    /// Where to write the softnet model (safetensors).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let model = match softnet::io::load_any_model(&args.model)? {
        AnyModel::F32(m) => m,
        AnyModel::Int8(_) => anyhow::bail!(
            "{}: an int8 model; export the f32 model it was quantized from",
            args.model.display()
        ),
    };
    let options = ExportOptions {
        probabilities: args.probabilities,
    };
    softnet::onnx::export_file(&model, &args.onnx, &options)?;
    let outputs = if args.probabilities {
        format!("{LOGITS_NAME}, {PROBABILITIES_NAME}")
    } else {
        LOGITS_NAME.to_string()
    };
    println!(
        "wrote {} ({}, ONNX opset {OPSET}): input {} [N, {}] (pixels / 255), output {outputs} [N, {}]",
        args.onnx.display(),
        model.architecture().describe(),
        softnet::onnx::INPUT_NAME,
        model.architecture().input_len(),
        model.architecture().classes()
    );
    Ok(())
}

pub fn import(args: ImportArgs) -> anyhow::Result<()> {
    let imported = softnet::onnx::import_file(&args.input)?;
    let source = args
        .input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    softnet::io::save_model(&imported.model, &args.output, &[("imported_from", source)])?;
    println!(
        "wrote {} ({}, {} parameters) from {}",
        args.output.display(),
        imported.model.architecture().describe(),
        imported.model.architecture().parameter_count(),
        args.input.display()
    );
    for note in &imported.notes {
        println!("note: {note}");
    }
    Ok(())
}
