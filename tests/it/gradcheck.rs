//! Every layer kind's backward pass against central differences of the loss in f64: the
//! f32 analytic gradients of the model (parameters and input) must match
//! `(L(θ + h) - L(θ - h)) / 2h` computed by a forward pass written here from scratch in
//! f64, with `h = 1e-6`, within `1e-4 · (1 + |numeric|)` (the f32 passes round at about
//! 1e-7 relative; a gradient that is wrong is off by far more).

use softnet::nn::dropout::{forward_train, DropoutKey};
use softnet::nn::{Architecture, Input, LayerSpec, Mode, Model, Padding, Shape, Workspace};

/// The logits of `x` (`[rows, input]`) by a naive f64 pass over the layer list, with the
/// dropout multipliers `masks[i]` (`[rows, units]`) of layer `i` applied.
fn logits_f64(
    arch: &Architecture,
    params: &[f64],
    x: &[f64],
    rows: usize,
    masks: &[Option<Vec<f64>>],
) -> Vec<f64> {
    let mut act = x.to_vec();
    let mut at = 0;
    for (i, spec) in arch.layers().iter().enumerate() {
        let input = arch.input_shape(i);
        let output = arch.shapes()[i];
        let (h, w, c) = (input.height, input.width, input.channels);
        let mut out = vec![0.0; rows * output.len()];
        match *spec {
            LayerSpec::Linear { out: n } => {
                let k = input.len();
                let (wt, b) = (&params[at..at + k * n], &params[at + k * n..at + k * n + n]);
                at += k * n + n;
                for r in 0..rows {
                    for j in 0..n {
                        let mut s = b[j];
                        for q in 0..k {
                            s += act[r * k + q] * wt[q * n + j];
                        }
                        out[r * n + j] = s;
                    }
                }
            }
            LayerSpec::Conv2d {
                out_channels: co,
                kernel: kk,
                stride,
                padding,
            } => {
                let (oh, ow) = (output.height, output.width);
                let pad = |n: usize, o: usize| match padding {
                    Padding::Valid => 0,
                    Padding::Same => ((o - 1) * stride + kk).saturating_sub(n) / 2,
                };
                let (top, left) = (pad(h, oh), pad(w, ow));
                let len = kk * kk * c * co;
                let (f, b) = (&params[at..at + len], &params[at + len..at + len + co]);
                at += len + co;
                for r in 0..rows {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            for o in 0..co {
                                let mut s = b[o];
                                for ky in 0..kk {
                                    for kx in 0..kk {
                                        let iy = (oy * stride + ky) as isize - top as isize;
                                        let ix = (ox * stride + kx) as isize - left as isize;
                                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize
                                        {
                                            continue;
                                        }
                                        let (iy, ix) = (iy as usize, ix as usize);
                                        for ci in 0..c {
                                            s += act[((r * h + iy) * w + ix) * c + ci]
                                                * f[((ky * kk + kx) * c + ci) * co + o];
                                        }
                                    }
                                }
                                out[((r * oh + oy) * ow + ox) * co + o] = s;
                            }
                        }
                    }
                }
            }
            LayerSpec::MaxPool2d { size, stride } => {
                let (oh, ow) = (output.height, output.width);
                for r in 0..rows {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            for ch in 0..c {
                                let mut m = f64::NEG_INFINITY;
                                for dy in 0..size {
                                    for dx in 0..size {
                                        let (iy, ix) = (oy * stride + dy, ox * stride + dx);
                                        m = m.max(act[((r * h + iy) * w + ix) * c + ch]);
                                    }
                                }
                                out[((r * oh + oy) * ow + ox) * c + ch] = m;
                            }
                        }
                    }
                }
            }
            LayerSpec::Relu => out = act.iter().map(|v| v.max(0.0)).collect(),
            LayerSpec::Flatten => out = act.clone(),
            LayerSpec::Dropout { .. } => {
                let m = masks[i].as_ref().expect("a mask for every dropout layer");
                out = act.iter().zip(m).map(|(v, m)| v * m).collect();
            }
        }
        act = out;
    }
    act
}

fn mean_xent(logits: &[f64], labels: &[u8], classes: usize) -> f64 {
    let rows = labels.len();
    let mut loss = 0.0;
    for r in 0..rows {
        let z = &logits[r * classes..(r + 1) * classes];
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        loss += lse - z[usize::from(labels[r])];
    }
    loss / rows as f64
}

fn check(arch: Architecture, seed: u64) {
    let name = arch.describe();
    let mut model = Model::he_normal(arch.clone(), seed);
    for (i, p) in model.params_mut().iter_mut().enumerate() {
        // Non-zero biases, so every term of the gradient is exercised.
        if i % 3 == 0 {
            *p += 0.05 * ((i % 7) as f32 - 3.0);
        }
    }
    let rows = 2;
    let classes = arch.classes();
    let input_len = arch.input_len();
    let x: Vec<f32> = (0..rows * input_len)
        .map(|i| ((i * 37 % 17) as f32) / 17.0 - 0.3)
        .collect();
    let labels: Vec<u8> = (0..rows).map(|i| (i % classes) as u8).collect();
    let key = DropoutKey {
        seed: 4,
        step: 2,
        first_row: 5,
    };
    // The multipliers the training pass draws, from the same public function.
    let masks: Vec<Option<Vec<f64>>> = arch
        .layers()
        .iter()
        .enumerate()
        .map(|(i, spec)| match *spec {
            LayerSpec::Dropout { rate } => {
                let n = rows * arch.shapes()[i].len();
                let (mut ones, mut m) = (vec![1.0f32; n], vec![0.0f32; n]);
                forward_train(&key, i, rate, rows, &mut ones, &mut m);
                assert!(m.contains(&0.0) && m.iter().any(|&v| v > 1.0), "{name}");
                Some(m.iter().map(|&v| f64::from(v)).collect())
            }
            _ => None,
        })
        .collect();

    let mut ws = Workspace::new(&model, rows);
    model.forward_with(Input::Unit(&x), rows, &mut ws, Mode::Train(key));
    model.loss(&labels, 1.0 / rows as f32, &mut ws);
    let n = model.params().len();
    let mut grads = vec![0.0f32; n];
    let mut input_grad = vec![0.0f32; x.len()];
    model.backward(
        Input::Unit(&x),
        rows,
        &mut ws,
        &mut grads,
        Some(&mut input_grad),
    );

    let p64: Vec<f64> = model.params().iter().map(|&v| f64::from(v)).collect();
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let loss =
        |p: &[f64], x: &[f64]| mean_xent(&logits_f64(&arch, p, x, rows, &masks), &labels, classes);
    let h = 1e-6;
    let mut nonzero = 0;
    for (what, values, analytic) in [("param", &p64, &grads), ("input", &x64, &input_grad)] {
        for i in 0..values.len() {
            let (mut plus, mut minus) = (values.clone(), values.clone());
            plus[i] += h;
            minus[i] -= h;
            let numeric = if what == "param" {
                (loss(&plus, &x64) - loss(&minus, &x64)) / (2.0 * h)
            } else {
                (loss(&p64, &plus) - loss(&p64, &minus)) / (2.0 * h)
            };
            let err = (numeric - f64::from(analytic[i])).abs();
            assert!(
                err < 1e-4 * (1.0 + numeric.abs()),
                "{name}: {what} {i}: analytic {} vs numeric {numeric}",
                analytic[i]
            );
            nonzero += usize::from(numeric.abs() > 1e-6);
        }
    }
    assert!(nonzero > n / 3, "{name}: only {nonzero} non-zero gradients");
}

#[test]
fn every_layer_kind_matches_central_differences_in_f64() {
    use LayerSpec::*;
    let conv = |out_channels, kernel, stride, padding| Conv2d {
        out_channels,
        kernel,
        stride,
        padding,
    };
    let cases = [
        // Conv SAME stride 1, ReLU, pool 2/2, flatten, linear, ReLU, dropout, linear.
        (
            Shape::new(6, 6, 2),
            vec![
                conv(3, 3, 1, Padding::Same),
                Relu,
                MaxPool2d { size: 2, stride: 2 },
                Flatten,
                Linear { out: 5 },
                Relu,
                Dropout { rate: 0.25 },
                Linear { out: 4 },
            ],
        ),
        // Conv VALID stride 2, an even kernel with SAME's uneven padding, overlapping pool.
        (
            Shape::new(7, 7, 2),
            vec![
                conv(3, 3, 2, Padding::Valid),
                Relu,
                conv(2, 2, 1, Padding::Same),
                Relu,
                MaxPool2d { size: 2, stride: 1 },
                Linear { out: 4 },
            ],
        ),
        // Conv SAME stride 2 (padding on both sides), dropout on images.
        (
            Shape::new(5, 5, 1),
            vec![
                conv(2, 3, 2, Padding::Same),
                Dropout { rate: 0.5 },
                Relu,
                Linear { out: 3 },
            ],
        ),
        // An in-place first layer, pooling to one pixel.
        (
            Shape::new(4, 4, 2),
            vec![
                Dropout { rate: 0.2 },
                conv(2, 2, 1, Padding::Valid),
                MaxPool2d { size: 3, stride: 1 },
                Linear { out: 3 },
            ],
        ),
        // Sixteen channels in and out at stride 1: the convolution kernels' vector paths
        // (direct forward, filter and input gradients where the kernels have them).
        (
            Shape::new(5, 5, 16),
            vec![
                conv(16, 3, 1, Padding::Same),
                Relu,
                MaxPool2d { size: 2, stride: 1 },
                Linear { out: 3 },
            ],
        ),
    ];
    for (seed, (input, layers)) in cases.into_iter().enumerate() {
        check(Architecture::new(input, layers).unwrap(), seed as u64);
    }
}
