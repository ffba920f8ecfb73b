//! The architecture string of a model file's metadata (`784-256-10`, or
//! `28x28x1:conv5x5x32,relu,pool2,…`), parsed into a fixed array of layers: the no-alloc
//! twin of [`crate::nn::Architecture::parse_described`] with the same shape rules and the
//! same parameter names.

use core::fmt::{self, Write};

/// Most layers (ReLU, flatten and dropout count) a model may have for [`super::ClassifierRef`].
pub const MAX_LAYERS: usize = 24;

/// Largest image side, channel count or layer width (as in `nn::arch`).
const MAX_DIM: u32 = 1 << 16;
/// Most values one layer's activations may hold (as in `nn::arch`).
const MAX_ACTIVATION: u64 = 1 << 26;
/// Most parameters (as in `nn::arch`).
const MAX_PARAMS: u64 = 1 << 30;

/// One layer, as the metadata names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layer {
    Linear {
        out: u32,
    },
    Relu,
    Conv {
        out: u32,
        kernel: u32,
        stride: u32,
        same: bool,
    },
    Pool {
        size: u32,
        stride: u32,
    },
    Flatten,
    Dropout,
}

/// An image shape, `height x width x channels` (NHWC without the batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Dims3 {
    pub h: u32,
    pub w: u32,
    pub c: u32,
}

impl Dims3 {
    /// Values in the shape, in u64: three sides of up to 2^16 overflow a 32-bit usize.
    pub fn len64(self) -> u64 {
        u64::from(self.h) * u64::from(self.w) * u64::from(self.c)
    }

    /// Values in a checked shape (at most 2^26, so the cast is exact on any target).
    pub fn len(self) -> usize {
        self.len64() as usize
    }
}

/// A checked network: its input shape, layers and each layer's output shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ArchRef {
    pub input: Dims3,
    pub n: usize,
    pub layers: [Layer; MAX_LAYERS],
    pub shapes: [Dims3; MAX_LAYERS],
}

/// Why an architecture string is refused.
pub(super) type ArchError = &'static str;

fn number(s: &str) -> Result<u32, ArchError> {
    match s.trim().parse::<u32>() {
        Ok(v) if v > 0 && v <= MAX_DIM => Ok(v),
        _ => Err("a size is not a whole number from 1 to 65536"),
    }
}

fn token(t: &str) -> Result<Layer, ArchError> {
    let t = t.trim();
    if let Some(rest) = t.strip_prefix("conv") {
        let (rest, same) = match rest.strip_suffix("valid") {
            Some(r) => (r, false),
            None => (rest.strip_suffix("same").unwrap_or(rest), true),
        };
        let (dims, stride) = match rest.split_once('s') {
            Some((d, s)) => (d, number(s)?),
            None => (rest, 1),
        };
        let mut it = dims.split('x');
        let (Some(kh), Some(kw), Some(out), None) = (it.next(), it.next(), it.next(), it.next())
        else {
            return Err("a convolution is not conv<k>x<k>x<out>[s<stride>][valid]");
        };
        let (kh, kw, out) = (number(kh)?, number(kw)?, number(out)?);
        if kh != kw {
            return Err("only square kernels are supported");
        }
        return Ok(Layer::Conv {
            out,
            kernel: kh,
            stride,
            same,
        });
    }
    if let Some(rest) = t.strip_prefix("pool") {
        let (size, stride) = match rest.split_once('s') {
            Some((z, s)) => (number(z)?, number(s)?),
            None => (number(rest)?, number(rest)?),
        };
        return Ok(Layer::Pool { size, stride });
    }
    if let Some(rest) = t.strip_prefix("fc") {
        return Ok(Layer::Linear { out: number(rest)? });
    }
    if let Some(rest) = t.strip_prefix("dropout") {
        return match rest.parse::<f32>() {
            Ok(rate) if (0.0..1.0).contains(&rate) => Ok(Layer::Dropout),
            _ => Err("a dropout rate is not a number in [0, 1)"),
        };
    }
    match t {
        "relu" => Ok(Layer::Relu),
        "flatten" => Ok(Layer::Flatten),
        _ => Err("unknown layer (expected conv, pool, fc, dropout, relu or flatten)"),
    }
}

impl ArchRef {
    /// Parses either text form and checks the shape rules.
    pub fn parse(text: &str) -> Result<Self, ArchError> {
        let text = text.trim();
        let mut layers = [Layer::Relu; MAX_LAYERS];
        let mut n = 0;
        let mut push = |layer: Layer| {
            if n == MAX_LAYERS {
                return Err("more layers than the no_std engine holds (24)");
            }
            layers[n] = layer;
            n += 1;
            Ok(())
        };
        let input;
        if let Some((shape, list)) = text.split_once(':') {
            let mut it = shape.split('x');
            let (Some(h), Some(w), Some(c), None) = (it.next(), it.next(), it.next(), it.next())
            else {
                return Err("the input shape is not HxWxC");
            };
            input = Dims3 {
                h: number(h)?,
                w: number(w)?,
                c: number(c)?,
            };
            for t in list.split(',') {
                push(token(t)?)?;
            }
        } else {
            let mut widths = text.split('-').map(number);
            let first = widths.next().ok_or("no widths")??;
            input = Dims3 {
                h: 1,
                w: 1,
                c: first,
            };
            let mut count = 0;
            for w in widths {
                if count > 0 {
                    push(Layer::Relu)?;
                }
                push(Layer::Linear { out: w? })?;
                count += 1;
            }
            if count == 0 {
                return Err(
                    "expected widths like 784-256-10 or a layer list like 28x28x1:conv5x5x32,…",
                );
            }
        }
        Self::check(input, layers, n)
    }

    /// The shape rules of `nn::Architecture::new`.
    fn check(input: Dims3, layers: [Layer; MAX_LAYERS], n: usize) -> Result<Self, ArchError> {
        if input.len64() > MAX_ACTIVATION {
            return Err("the input is too large");
        }
        if !matches!(layers[..n].last(), Some(Layer::Linear { .. })) {
            return Err("the last layer must be linear (the logits)");
        }
        let mut shapes = [Dims3::default(); MAX_LAYERS];
        let mut shape = input;
        let mut params = 0u64;
        for (i, layer) in layers[..n].iter().enumerate() {
            let (next, count) = match *layer {
                Layer::Linear { out } => (
                    Dims3 { h: 1, w: 1, c: out },
                    shape.len64() * u64::from(out) + u64::from(out),
                ),
                Layer::Conv {
                    out,
                    kernel,
                    stride,
                    same,
                } => {
                    let side = |n: u32| {
                        if same {
                            Some(n.div_ceil(stride))
                        } else {
                            (n >= kernel).then(|| (n - kernel) / stride + 1)
                        }
                    };
                    let (Some(h), Some(w)) = (side(shape.h), side(shape.w)) else {
                        return Err("a VALID convolution's window exceeds its input");
                    };
                    let k = u64::from(kernel);
                    (
                        Dims3 { h, w, c: out },
                        k * k * u64::from(shape.c) * u64::from(out) + u64::from(out),
                    )
                }
                Layer::Pool { size, stride } => {
                    if size > shape.h || size > shape.w {
                        return Err("a pooling window exceeds its input");
                    }
                    let side = |n: u32| (n - size) / stride + 1;
                    (
                        Dims3 {
                            h: side(shape.h),
                            w: side(shape.w),
                            c: shape.c,
                        },
                        0,
                    )
                }
                Layer::Flatten => (
                    Dims3 {
                        h: 1,
                        w: 1,
                        // At most MAX_ACTIVATION: fits in u32.
                        c: shape.len() as u32,
                    },
                    0,
                ),
                Layer::Relu | Layer::Dropout => (shape, 0),
            };
            // Each term is below 2^48: the u64 sum is checked against the limit each step.
            params = params
                .checked_add(count)
                .filter(|&p| p <= MAX_PARAMS)
                .ok_or("too many parameters")?;
            if next.len64() > MAX_ACTIVATION {
                return Err("a layer's output is too large");
            }
            shapes[i] = next;
            shape = next;
        }
        Ok(ArchRef {
            input,
            n,
            layers,
            shapes,
        })
    }

    pub fn layers(&self) -> &[Layer] {
        &self.layers[..self.n]
    }

    /// The input shape of layer `i`.
    pub fn input_shape(&self, i: usize) -> Dims3 {
        if i == 0 {
            self.input
        } else {
            self.shapes[i - 1]
        }
    }

    pub fn classes(&self) -> usize {
        self.shapes[self.n - 1].len()
    }

    fn convolutional(&self) -> bool {
        self.layers()
            .iter()
            .any(|l| matches!(l, Layer::Conv { .. } | Layer::Pool { .. }))
    }

    /// Whether this is a dense network on flat features (linear layers with a ReLU between
    /// each two): the shape `nn::Architecture::dense_widths` accepts.
    pub fn is_dense(&self) -> bool {
        if self.input.h != 1 || self.input.w != 1 {
            return false;
        }
        let mut pending_relu = false;
        for layer in self.layers() {
            match (layer, pending_relu) {
                (Layer::Linear { .. }, false) => pending_relu = true,
                (Layer::Relu, true) => pending_relu = false,
                _ => return false,
            }
        }
        pending_relu
    }

    /// Writes the path of layer `i`'s weight (or bias) as `nn::Architecture` names it.
    pub fn param_path(&self, i: usize, bias: bool, out: &mut impl Write) -> fmt::Result {
        let linear = |l: &Layer| matches!(l, Layer::Linear { .. });
        if self.is_dense() && self.layers().iter().filter(|l| linear(l)).count() == 1 {
            return out.write_str(if bias {
                "variables/Bias"
            } else {
                "variables/Weight"
            });
        }
        let upto = &self.layers()[..=i];
        let kind = if bias { "bias" } else { "weight" };
        match self.layers[i] {
            Layer::Linear { .. } => {
                let k = upto.iter().filter(|l| linear(l)).count();
                if self.convolutional() {
                    write!(out, "fc{k}/{kind}")
                } else if k == self.layers().iter().filter(|l| linear(l)).count() {
                    write!(out, "logits/{kind}")
                } else {
                    write!(out, "layer{k}/{kind}")
                }
            }
            Layer::Conv { .. } => {
                let k = upto
                    .iter()
                    .filter(|l| matches!(l, Layer::Conv { .. }))
                    .count();
                write!(out, "conv{k}/{kind}")
            }
            _ => Err(fmt::Error),
        }
    }
}

/// A tensor name written into a fixed buffer (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TensorName {
    buf: [u8; 40],
    len: u8,
}

impl TensorName {
    pub(super) fn new() -> Self {
        TensorName {
            buf: [0; 40],
            len: 0,
        }
    }

    /// The name (cut at 40 bytes, on a character boundary).
    pub fn as_str(&self) -> &str {
        let bytes = &self.buf[..usize::from(self.len)];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl Write for TensorName {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if usize::from(self.len) == self.buf.len() {
                return Err(fmt::Error);
            }
            self.buf[usize::from(self.len)] = b;
            self.len += 1;
        }
        Ok(())
    }
}

impl fmt::Debug for TensorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TensorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tests of the no_std core (`cargo test --no-default-features` runs them).
#[cfg(test)]
mod core_tests {
    use super::*;

    #[test]
    fn the_tutorials_cnn_has_its_shapes_and_names() {
        let text = "28x28x1:conv5x5x32,relu,pool2,conv5x5x64,relu,pool2,flatten,fc1024,relu,dropout0.5,fc10";
        let a = ArchRef::parse(text).unwrap();
        let sides: std::vec::Vec<(u32, u32, u32)> =
            a.shapes[..a.n].iter().map(|s| (s.h, s.w, s.c)).collect();
        assert_eq!(
            sides,
            [
                (28, 28, 32),
                (28, 28, 32),
                (14, 14, 32),
                (14, 14, 64),
                (14, 14, 64),
                (7, 7, 64),
                (1, 1, 3136),
                (1, 1, 1024),
                (1, 1, 1024),
                (1, 1, 1024),
                (1, 1, 10)
            ]
        );
        let mut name = TensorName::new();
        a.param_path(3, false, &mut name).unwrap();
        assert_eq!(name.as_str(), "conv2/weight");
        let mut name = TensorName::new();
        a.param_path(10, true, &mut name).unwrap();
        assert_eq!(name.as_str(), "fc2/bias");
        assert!(!a.is_dense());
        let mlp = ArchRef::parse("784-256-10").unwrap();
        assert!(mlp.is_dense());
        let mut name = TensorName::new();
        mlp.param_path(2, false, &mut name).unwrap();
        assert_eq!(name.as_str(), "logits/weight");
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::nn::Architecture;

    #[test]
    fn parses_what_the_std_parser_parses_with_the_same_names_and_shapes() {
        for text in [
            "784-10",
            "784-256-10",
            "784-32-16-10",
            "28x28x1:conv5x5x32,relu,pool2,conv5x5x64,relu,pool2,flatten,fc1024,relu,dropout0.5,fc10",
            "28x28x1:conv3x3x8s2valid,relu,pool3s2,flatten,fc10",
            "28x28x1:conv3x3x4,pool2,conv3x3x6s2,fc10",
            "28x28x1:flatten,fc10",
            "1x1x784:fc10",
        ] {
            let ours = ArchRef::parse(text).unwrap();
            let std = Architecture::parse_described(text).unwrap();
            assert_eq!(ours.n, std.layers().len(), "{text}");
            assert_eq!(ours.classes(), std.classes(), "{text}");
            for (i, s) in std.shapes().iter().enumerate() {
                assert_eq!(
                    (ours.shapes[i].h, ours.shapes[i].w, ours.shapes[i].c),
                    (s.height as u32, s.width as u32, s.channels as u32),
                    "{text} layer {i}"
                );
                for (k, p) in std.params_of(i).iter().enumerate() {
                    let mut name = TensorName::new();
                    ours.param_path(i, k == 1, &mut name).unwrap();
                    assert_eq!(name.as_str(), p.path, "{text} layer {i}");
                }
            }
            assert_eq!(ours.is_dense(), std.dense_widths().is_some(), "{text}");
        }
    }

    #[test]
    fn refuses_what_the_std_parser_refuses() {
        for text in [
            "",
            "784",
            "784-0-10",
            "784-x-10",
            "28x28:fc10",
            "28x28x1:conv5x5x32",
            "28x28x1:conv5x4x32,fc10",
            "28x28x1:conv29x29x4valid,fc10",
            "28x28x1:pool29,fc10",
            "28x28x1:dropout1.5,fc10",
            "28x28x1:banana,fc10",
            "28x28x1:fc70000",
            "65536x65536x65536:fc10",
        ] {
            assert!(ArchRef::parse(text).is_err(), "{text}");
            assert!(Architecture::parse_described(text).is_err(), "{text}");
        }
        let long = "28x28x1:relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,relu,fc10";
        assert_eq!(
            ArchRef::parse(long).unwrap_err(),
            "more layers than the no_std engine holds (24)"
        );
    }
}
