//! `softnet quantize`: an int8 copy of an f32 model file (dense or convolutional).

use std::path::PathBuf;

use softnet::io::model_file::{ARCHITECTURE_KEY, VERSION_KEY};
use softnet::io::quantized::{
    is_quantized, quantized_to_bytes, read_metadata, read_model_file, QuantizedModel,
    QUANTIZATION_KEY,
};

/// Flags of `softnet quantize`.
#[derive(Debug, clap::Args)]
pub struct QuantizeArgs {
    /// F32 model file written by `softnet train --save`.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// Where to write the int8 model (safetensors).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
}

pub fn run(args: QuantizeArgs) -> anyhow::Result<()> {
    let bytes = read_model_file(&args.model)?;
    if is_quantized(&bytes) {
        anyhow::bail!("{}: already quantized", args.model.display());
    }
    let model = softnet::io::load_model_bytes(&bytes, &args.model)?;
    // Carry the source's metadata (training settings) over; the writer sets its own keys.
    let mut extra: Vec<(String, String)> = read_metadata(&bytes, &args.model)?
        .into_iter()
        .filter(|(k, _)| ![ARCHITECTURE_KEY, VERSION_KEY, QUANTIZATION_KEY].contains(&k.as_str()))
        .collect();
    extra.sort();
    let extra: Vec<(&str, String)> = extra.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let quantized = QuantizedModel::quantize(&model);
    let out = quantized_to_bytes(&quantized, &extra);
    softnet::io::write_atomically(&args.output, &out)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.output.display()))?;
    println!(
        "wrote {} ({}, int8): {} bytes, {:.2}x smaller than {} bytes",
        args.output.display(),
        model.architecture().describe(),
        out.len(),
        bytes.len() as f64 / out.len() as f64,
        bytes.len()
    );
    Ok(())
}
