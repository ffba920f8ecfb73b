//! The dense-equivalent arithmetic of a network, which every GFLOP/s of `softnet bench`
//! divides by a time: two FLOPs per multiply-add of the dense products, every tap of a
//! convolution included (zeros that softnet skips and the SAME padding count as done).

use softnet::nn::{Architecture, LayerSpec};

/// Multiply-adds of one example through layer `i` of `arch`, dense-equivalent: a linear
/// layer's `in·out`; a convolution's `H_out·W_out·C_out·K·K·C_in`, every tap counted,
/// those on the SAME padding included.
fn layer_macs(arch: &Architecture, i: usize) -> u64 {
    let (input, output) = (arch.input_shape(i), arch.shapes()[i]);
    let macs = match arch.layers()[i] {
        LayerSpec::Linear { out } => input.len() * out,
        LayerSpec::Conv2d { kernel, .. } => output.len() * kernel * kernel * input.channels,
        _ => 0,
    };
    macs as u64
}

/// FLOPs of one example's forward pass: two per multiply-add of every linear and
/// convolutional layer (`2·H_out·W_out·C_out·K·K·C_in` for a convolution, so
/// `2·N·H_out·W_out·C_out·K·K·C_in` for a batch of `N`). Pooling, ReLU, dropout and the
/// softmax are not counted.
pub fn forward_flops(arch: &Architecture) -> f64 {
    (0..arch.layers().len())
        .map(|i| 2.0 * layer_macs(arch, i) as f64)
        .sum()
}

/// FLOPs of one example's training step: the forward pass, then for every layer with
/// parameters twice its forward FLOPs again (the gradient of its input and that of its
/// weights: `2·N·H_out·W_out·C_out·K·K·C_in` each for a convolution), except the input
/// gradient of the first such layer when nothing comes before it: nobody needs the
/// gradient of the pixels and softnet (as TensorFlow) does not compute it.
pub fn training_flops(arch: &Architecture) -> f64 {
    let first_reads_pixels = arch
        .layers()
        .first()
        .is_some_and(|l| matches!(l, LayerSpec::Linear { .. } | LayerSpec::Conv2d { .. }));
    let skipped = if first_reads_pixels {
        2.0 * layer_macs(arch, 0) as f64
    } else {
        0.0
    };
    3.0 * forward_flops(arch) - skipped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tutorial_cnn_counts_its_convolutions_by_the_formula() {
        let cnn = Architecture::cnn();
        // 2·H_out·W_out·C_out·K·K·C_in per image: conv1 28·28·32·25·1, conv2 14·14·64·25·32;
        // then fc1 3136·1024 and fc2 1024·10.
        let conv1 = 2.0 * (28 * 28 * 32 * 25) as f64;
        let conv2 = 2.0 * (14 * 14 * 64 * 25 * 32) as f64;
        let fc = 2.0 * (7 * 7 * 64 * 1024 + 1024 * 10) as f64;
        assert_eq!(forward_flops(&cnn), conv1 + conv2 + fc);
        assert_eq!(forward_flops(&cnn), 2.0 * cnn.forward_macs() as f64);
        // Backward: twice the forward, less conv1's input gradient.
        assert_eq!(training_flops(&cnn), 3.0 * (conv1 + conv2 + fc) - conv1);
    }

    #[test]
    fn softmax_regression_trains_at_four_flops_a_weight() {
        let softmax = Architecture::softmax_regression();
        assert_eq!(training_flops(&softmax), 4.0 * 7840.0);
        let mlp = Architecture::mlp(&[256]);
        let macs = (784 * 256 + 256 * 10) as f64;
        assert_eq!(training_flops(&mlp), 2.0 * (3.0 * macs - 784.0 * 256.0));
    }
}
