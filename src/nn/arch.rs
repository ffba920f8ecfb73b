//! [`Architecture`]: an input shape and a list of [`LayerSpec`]s, the shape rule that runs
//! through them, their text forms and the names of their parameters.
//!
//! Activations are NHWC (`[rows, height, width, channels]`, row-major), as in TensorFlow; a
//! flat feature vector is the shape `1x1xN`. Flattening is the identity on the buffer (it
//! reads the values in `(h, w, c)` order), so a [`LayerSpec::Linear`] takes any input shape as
//! its `h·w·c` features.

use super::graph::scope;
use crate::kernels::conv::ConvGeometry;
pub use crate::kernels::conv::Padding;

/// The shape of one example's activations: `height x width x channels` (NHWC without the
/// batch). Flat features are `1x1xN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Rows of the image.
    pub height: usize,
    /// Columns of the image.
    pub width: usize,
    /// Channels of each pixel.
    pub channels: usize,
}

impl Shape {
    /// An image shape.
    pub const fn new(height: usize, width: usize, channels: usize) -> Self {
        Shape {
            height,
            width,
            channels,
        }
    }

    /// `n` flat features, `1x1xn`.
    pub const fn flat(n: usize) -> Self {
        Shape::new(1, 1, n)
    }

    /// Values per example, `height · width · channels`.
    pub const fn len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Whether an example holds no values.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is a flat feature vector (`1x1xN`).
    pub const fn is_flat(&self) -> bool {
        self.height == 1 && self.width == 1
    }

    /// MNIST's images, `28x28x1`.
    pub const fn mnist() -> Self {
        Shape::new(28, 28, 1)
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.height, self.width, self.channels)
    }
}

/// One layer of a network, as data. Each kind lives in its own file under `nn/`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerSpec {
    /// Fully connected: `x·W + b`, `W` `[in, out]` with `in` the input's `h·w·c`.
    Linear {
        /// Output features.
        out: usize,
    },
    /// `max(x, 0)`, elementwise.
    Relu,
    /// 2-D convolution with a square `kernel x kernel` filter, HWIO `[k, k, in, out]`, plus a
    /// bias `[out]`; TensorFlow's SAME or VALID padding.
    Conv2d {
        /// Output channels (filters).
        out_channels: usize,
        /// Filter height and width.
        kernel: usize,
        /// Step between windows, both directions.
        stride: usize,
        /// TensorFlow's padding rule.
        padding: Padding,
    },
    /// Max over `size x size` windows every `stride` pixels (VALID: windows inside the image).
    MaxPool2d {
        /// Window height and width.
        size: usize,
        /// Step between windows.
        stride: usize,
    },
    /// `h x w x c` to `1x1x(h·w·c)` in `(h, w, c)` order: the identity on the buffer.
    Flatten,
    /// During training, zeroes each unit with probability `rate` and scales the others by
    /// `1 / (1 - rate)` (TensorFlow's rule); the identity at evaluation and inference.
    Dropout {
        /// Probability of dropping a unit, in `[0, 1)`.
        rate: f32,
    },
}

impl LayerSpec {
    /// The convolution a [`LayerSpec::Conv2d`] runs on an input of shape `input`; None for
    /// every other kind of layer.
    pub fn conv_geometry(&self, input: Shape) -> Option<ConvGeometry> {
        match *self {
            LayerSpec::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
            } => Some(ConvGeometry {
                height: input.height,
                width: input.width,
                in_channels: input.channels,
                out_channels,
                kernel_h: kernel,
                kernel_w: kernel,
                stride,
                padding,
            }),
            _ => None,
        }
    }
}

/// An architecture that cannot be built or parsed: the token or layer at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct ArchError {
    what: String,
    reason: String,
}

impl ArchError {
    fn new(what: impl Into<String>, reason: impl Into<String>) -> Self {
        ArchError {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// Largest image side, channel count, or layer width an architecture may have.
const MAX_DIM: usize = 1 << 16;
/// Most values one example's activations of one layer may hold.
const MAX_ACTIVATION: usize = 1 << 26;
/// Most parameters an architecture may have.
const MAX_PARAMS: usize = 1 << 30;

/// A network: an input shape and its layers, input to output. The last layer is a
/// [`LayerSpec::Linear`] whose outputs are the classes' logits. Built by
/// [`Architecture::new`], which checks every layer's shape rule, so a value of this type is
/// always a network that can run.
#[derive(Debug, Clone, PartialEq)]
pub struct Architecture {
    input: Shape,
    layers: Vec<LayerSpec>,
    /// Output shape of each layer.
    shapes: Vec<Shape>,
}

/// A parameter tensor of a layer: its path and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// Its path (`conv1/weight`, `layer1/bias`, `variables/Weight`).
    pub path: String,
    /// Its shape (`[kh, kw, in, out]`, `[in, out]`, `[out]`).
    pub shape: Vec<usize>,
}

impl Architecture {
    /// Checks the layers' shape rules from `input` on: every size positive, windows that fit
    /// the image, rates in `[0, 1)`, a linear last layer, sizes softnet can allocate.
    pub fn new(input: Shape, layers: Vec<LayerSpec>) -> Result<Self, ArchError> {
        for d in [input.height, input.width, input.channels] {
            if d == 0 || d > MAX_DIM {
                return Err(ArchError::new(
                    format!("input {input}"),
                    format!("sizes must be 1 to {MAX_DIM}"),
                ));
            }
        }
        if input.len() > MAX_ACTIVATION {
            return Err(ArchError::new(format!("input {input}"), "too large"));
        }
        if !matches!(layers.last(), Some(LayerSpec::Linear { .. })) {
            return Err(ArchError::new(
                "architecture",
                "the last layer must be linear (the logits)",
            ));
        }
        let mut shapes = Vec::with_capacity(layers.len());
        let mut shape = input;
        let mut params = 0usize;
        for (i, spec) in layers.iter().enumerate() {
            let what = || format!("layer {} ({})", i + 1, spec_token(spec));
            let fail = |reason: &str| Err(ArchError::new(what(), reason));
            let positive = |v: usize| (1..=MAX_DIM).contains(&v);
            let (next, count) = match *spec {
                LayerSpec::Linear { out } => {
                    if !positive(out) {
                        return fail("width must be 1 to 65536");
                    }
                    (
                        Shape::flat(out),
                        shape.len().checked_mul(out).map(|w| w + out),
                    )
                }
                LayerSpec::Conv2d {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                } => {
                    if !positive(out_channels) || !positive(kernel) || !positive(stride) {
                        return fail("channels, kernel and stride must be positive");
                    }
                    let side = |n: usize| match padding {
                        Padding::Same => Some(n.div_ceil(stride)),
                        Padding::Valid => (n >= kernel).then(|| (n - kernel) / stride + 1),
                    };
                    let (Some(h), Some(w)) = (side(shape.height), side(shape.width)) else {
                        return fail(&format!("a {kernel}x{kernel} VALID window exceeds {shape}"));
                    };
                    let weights = kernel
                        .checked_mul(kernel)
                        .and_then(|k| k.checked_mul(shape.channels))
                        .and_then(|k| k.checked_mul(out_channels));
                    (
                        Shape::new(h, w, out_channels),
                        weights.map(|w| w + out_channels),
                    )
                }
                LayerSpec::MaxPool2d { size, stride } => {
                    if !positive(size) || !positive(stride) {
                        return fail("size and stride must be positive");
                    }
                    if size > shape.height || size > shape.width {
                        return fail(&format!("a {size}x{size} window exceeds {shape}"));
                    }
                    let side = |n: usize| (n - size) / stride + 1;
                    (
                        Shape::new(side(shape.height), side(shape.width), shape.channels),
                        Some(0),
                    )
                }
                LayerSpec::Flatten => (super::flatten::output_shape(shape), Some(0)),
                LayerSpec::Relu => (shape, Some(0)),
                LayerSpec::Dropout { rate } => {
                    if !(0.0..1.0).contains(&rate) {
                        return fail("rate must be in [0, 1)");
                    }
                    (shape, Some(0))
                }
            };
            params = count
                .and_then(|c| params.checked_add(c))
                .filter(|&p| p <= MAX_PARAMS)
                .ok_or_else(|| ArchError::new(what(), "too many parameters"))?;
            if next.len() > MAX_ACTIVATION {
                return fail("its output is too large");
            }
            shapes.push(next);
            shape = next;
        }
        Ok(Architecture {
            input,
            layers,
            shapes,
        })
    }

    /// The tutorial's model: 784 inputs straight to 10 classes.
    pub fn softmax_regression() -> Self {
        Self::mlp(&[])
    }

    /// A multi-layer perceptron on MNIST's 784 pixels: a linear layer and a ReLU per hidden
    /// width, then a linear layer to the 10 classes.
    ///
    /// # Panics
    /// If a width is 0 or above 65536.
    pub fn mlp(hidden: &[usize]) -> Self {
        Self::dense(crate::data::PIXELS, hidden, crate::data::CLASSES)
            .expect("hidden widths are 1 to 65536")
    }

    /// `input → hidden… → classes` flat features, ReLU after every hidden layer.
    pub fn dense(input: usize, hidden: &[usize], classes: usize) -> Result<Self, ArchError> {
        let mut layers = Vec::new();
        for &out in hidden {
            layers.push(LayerSpec::Linear { out });
            layers.push(LayerSpec::Relu);
        }
        layers.push(LayerSpec::Linear { out: classes });
        Self::new(Shape::flat(input), layers)
    }

    /// The convolutional network of the tutorial's sequel ("Deep MNIST"): conv 5x5 32 SAME,
    /// ReLU, max-pool 2/2, conv 5x5 64 SAME, ReLU, max-pool 2/2, flatten, fc 1024, ReLU,
    /// dropout 0.5, fc 10.
    pub fn cnn() -> Self {
        Self::from_spec("conv5x5x32,pool2,conv5x5x64,pool2,fc1024,dropout0.5,fc10")
            .expect("the tutorial's network is valid")
    }

    /// The input shape.
    pub fn input(&self) -> Shape {
        self.input
    }

    /// Values of one input example (784 for MNIST).
    pub fn input_len(&self) -> usize {
        self.input.len()
    }

    /// The layers, input to output.
    pub fn layers(&self) -> &[LayerSpec] {
        &self.layers
    }

    /// The output shape of each layer.
    pub fn shapes(&self) -> &[Shape] {
        &self.shapes
    }

    /// The input shape of layer `i`.
    pub fn input_shape(&self, i: usize) -> Shape {
        if i == 0 {
            self.input
        } else {
            self.shapes[i - 1]
        }
    }

    /// Output classes (the last layer's width).
    pub fn classes(&self) -> usize {
        self.shapes.last().map_or(0, Shape::len)
    }

    /// Parameter tensors of layer `i` with their paths, weight first.
    pub fn params_of(&self, i: usize) -> Vec<ParamSpec> {
        let input = self.input_shape(i);
        let shapes: Vec<Vec<usize>> = match self.layers[i] {
            LayerSpec::Linear { out } => vec![vec![input.len(), out], vec![out]],
            LayerSpec::Conv2d {
                out_channels,
                kernel,
                ..
            } => vec![
                vec![kernel, kernel, input.channels, out_channels],
                vec![out_channels],
            ],
            _ => return Vec::new(),
        };
        let (weight, bias) = self.param_paths(i);
        vec![
            ParamSpec {
                path: weight,
                shape: shapes[0].clone(),
            },
            ParamSpec {
                path: bias,
                shape: shapes[1].clone(),
            },
        ]
    }

    /// The scope of layer `i`: the name its parameters and operations go under.
    ///
    /// The one place names are made. A network without convolutions keeps the names of
    /// softnet's dense models (model files, checkpoints and reference tests rely on them):
    /// `variables` for softmax regression's one layer (its operation is `logits`), `layer<k>`
    /// for the k-th hidden linear layer and `logits` for the last. A network with
    /// convolutions numbers each kind: `conv1`, `conv2`, `pool1`, `fc1`, `fc2`, ... (the
    /// reference dumps' `conv1_w.npy` is `conv1/weight`); ReLU and dropout take the scope of
    /// the layer they follow (`fc1/Relu`), flatten is `flatten`.
    pub fn layer_scope(&self, i: usize) -> String {
        let count =
            |kind: fn(&LayerSpec) -> bool| self.layers[..=i].iter().filter(|s| kind(s)).count();
        let linear = |s: &LayerSpec| matches!(s, LayerSpec::Linear { .. });
        let total_linear = self.layers.iter().filter(|s| linear(s)).count();
        let convolutional = self
            .layers
            .iter()
            .any(|s| matches!(s, LayerSpec::Conv2d { .. } | LayerSpec::MaxPool2d { .. }));
        match self.layers[i] {
            LayerSpec::Linear { .. } if convolutional => format!("fc{}", count(linear)),
            LayerSpec::Linear { .. } if count(linear) == total_linear => scope::LOGITS.into(),
            LayerSpec::Linear { .. } => format!("layer{}", count(linear)),
            LayerSpec::Conv2d { .. } => {
                format!("conv{}", count(|s| matches!(s, LayerSpec::Conv2d { .. })))
            }
            LayerSpec::MaxPool2d { .. } => {
                format!(
                    "pool{}",
                    count(|s| matches!(s, LayerSpec::MaxPool2d { .. }))
                )
            }
            LayerSpec::Flatten => "flatten".into(),
            LayerSpec::Relu | LayerSpec::Dropout { .. } if i > 0 => self.layer_scope(i - 1),
            LayerSpec::Relu => "relu".into(),
            LayerSpec::Dropout { .. } => "dropout".into(),
        }
    }

    /// `(weight, bias)` paths of layer `i` (a linear or convolutional layer).
    fn param_paths(&self, i: usize) -> (String, String) {
        if self.is_softmax_regression() {
            return (scope::WEIGHT.into(), scope::BIAS.into());
        }
        let scope = self.layer_scope(i);
        (format!("{scope}/weight"), format!("{scope}/bias"))
    }

    /// Total number of parameters.
    pub fn parameter_count(&self) -> usize {
        (0..self.layers.len())
            .flat_map(|i| self.params_of(i))
            .map(|p| p.shape.iter().product::<usize>())
            .sum()
    }

    /// Multiply-adds of one example's forward pass (linear and convolutional layers).
    pub fn forward_macs(&self) -> usize {
        (0..self.layers.len())
            .map(|i| {
                let out = self.shapes[i];
                match self.layers[i] {
                    LayerSpec::Linear { out } => self.input_shape(i).len() * out,
                    LayerSpec::Conv2d { kernel, .. } => {
                        out.len() * kernel * kernel * self.input_shape(i).channels
                    }
                    _ => 0,
                }
            })
            .sum()
    }

    /// Weights (parameters that multiply, not biases): each is used `forward_macs /
    /// weight_count` times per example on average.
    pub fn weight_count(&self) -> usize {
        (0..self.layers.len())
            .flat_map(|i| self.params_of(i).into_iter().take(1))
            .map(|p| p.shape.iter().product::<usize>())
            .sum()
    }

    /// Whether this is plain softmax regression (one linear layer on flat features).
    pub fn is_softmax_regression(&self) -> bool {
        self.dense_widths().is_some_and(|w| w.len() == 2)
    }

    /// `[input, hidden…, classes]` when this is a dense network on flat features (linear
    /// layers with a ReLU between each two); None otherwise.
    pub fn dense_widths(&self) -> Option<Vec<usize>> {
        if !self.input.is_flat() {
            return None;
        }
        let mut widths = vec![self.input.len()];
        let mut pending_relu = false;
        for spec in &self.layers {
            match (*spec, pending_relu) {
                (LayerSpec::Linear { out }, false) => {
                    widths.push(out);
                    pending_relu = true;
                }
                (LayerSpec::Relu, true) => pending_relu = false,
                _ => return None,
            }
        }
        pending_relu.then_some(widths)
    }

    /// Whether the network has convolutional or pooling layers.
    pub fn is_convolutional(&self) -> bool {
        self.layers
            .iter()
            .any(|s| matches!(s, LayerSpec::Conv2d { .. } | LayerSpec::MaxPool2d { .. }))
    }

    /// The text form [`Architecture::parse`] reads back: `784-256-10` for a dense network
    /// (what model files have always held), otherwise the input shape and every layer
    /// (ReLU and flatten included), e.g.
    /// `28x28x1:conv5x5x32,relu,pool2,conv5x5x64,relu,pool2,flatten,fc1024,relu,dropout0.5,fc10`.
    pub fn describe(&self) -> String {
        if let Some(widths) = self.dense_widths() {
            return widths
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("-");
        }
        let tokens: Vec<String> = self.layers.iter().map(spec_token).collect();
        format!("{}:{}", self.input, tokens.join(","))
    }

    /// Parses [`Architecture::describe`]'s forms back (`"784-256-10"`, or
    /// `"28x28x1:conv5x5x32,relu,…"`); None if the text is neither or the network is invalid.
    pub fn parse(text: &str) -> Option<Self> {
        Self::parse_described(text).ok()
    }

    /// Like [`Architecture::parse`], saying what is wrong.
    pub fn parse_described(text: &str) -> Result<Self, ArchError> {
        let text = text.trim();
        if let Some((shape, layers)) = text.split_once(':') {
            let input = parse_shape(shape)?;
            let layers = layers
                .split(',')
                .map(|t| parse_token(t.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            return Self::new(input, layers);
        }
        let widths: Vec<usize> =
            text.split('-')
                .map(|w| {
                    w.trim().parse().ok().filter(|&v| v > 0).ok_or_else(|| {
                        ArchError::new(format!("width {w:?}"), "not a positive number")
                    })
                })
                .collect::<Result<_, _>>()?;
        if widths.len() < 2 {
            return Err(ArchError::new(
                format!("{text:?}"),
                "expected widths like 784-256-10 or a layer list like 28x28x1:conv5x5x32,…",
            ));
        }
        Self::dense(
            widths[0],
            &widths[1..widths.len() - 1],
            widths[widths.len() - 1],
        )
    }

    /// Parses the command line's layer list for MNIST's `28x28x1` images: comma-separated
    /// tokens `conv<k>x<k>x<out>` (optionally `s<stride>` and `valid`, e.g. `conv3x3x16s2valid`;
    /// SAME padding and stride 1 by default), `pool<size>` (optionally `s<stride>`; stride =
    /// size by default), `fc<out>`, `dropout<rate>`. A ReLU follows every conv and every fc
    /// but the last; the first fc after a conv or pool flattens. The last token must be an fc
    /// (the classes). `conv5x5x32,pool2,conv5x5x64,pool2,fc1024,dropout0.5,fc10` is
    /// [`Architecture::cnn`].
    pub fn from_spec(text: &str) -> Result<Self, ArchError> {
        let tokens: Vec<&str> = text.split(',').map(str::trim).collect();
        let mut layers = Vec::new();
        let mut flat = false;
        for (i, token) in tokens.iter().enumerate() {
            let spec = parse_token(token)?;
            match spec {
                LayerSpec::Relu | LayerSpec::Flatten => {
                    return Err(ArchError::new(
                        format!("token {token:?}"),
                        "ReLU and flatten are implied (after every conv and fc but the last; \
                         before the first fc)",
                    ))
                }
                LayerSpec::Linear { .. } => {
                    if !flat {
                        if !layers.is_empty() {
                            layers.push(LayerSpec::Flatten);
                        }
                        flat = true;
                    }
                    layers.push(spec);
                    if i + 1 < tokens.len() {
                        layers.push(LayerSpec::Relu);
                    }
                }
                LayerSpec::Conv2d { .. } | LayerSpec::MaxPool2d { .. } if flat => {
                    return Err(ArchError::new(
                        format!("token {token:?}"),
                        "a convolution or pooling cannot follow an fc layer",
                    ))
                }
                LayerSpec::Conv2d { .. } => {
                    layers.push(spec);
                    layers.push(LayerSpec::Relu);
                }
                LayerSpec::MaxPool2d { .. } | LayerSpec::Dropout { .. } => layers.push(spec),
            }
        }
        let input = if layers
            .iter()
            .any(|s| matches!(s, LayerSpec::Conv2d { .. } | LayerSpec::MaxPool2d { .. }))
        {
            Shape::mnist()
        } else {
            Shape::flat(crate::data::PIXELS)
        };
        Self::new(input, layers).map_err(|e| match tokens.last() {
            Some(last) if e.what == "architecture" => ArchError::new(
                format!("token {last:?}"),
                "the last layer must be an fc layer",
            ),
            _ => e,
        })
    }
}

/// `28x28x1`.
fn parse_shape(text: &str) -> Result<Shape, ArchError> {
    let dims: Vec<usize> = text
        .split('x')
        .map(|d| d.trim().parse().ok())
        .collect::<Option<_>>()
        .ok_or_else(|| ArchError::new(format!("input {text:?}"), "expected HxWxC"))?;
    match dims[..] {
        [h, w, c] => Ok(Shape::new(h, w, c)),
        _ => Err(ArchError::new(format!("input {text:?}"), "expected HxWxC")),
    }
}

/// The token of one layer in [`Architecture::describe`]'s form.
fn spec_token(spec: &LayerSpec) -> String {
    match *spec {
        LayerSpec::Linear { out } => format!("fc{out}"),
        LayerSpec::Relu => "relu".into(),
        LayerSpec::Conv2d {
            out_channels,
            kernel,
            stride,
            padding,
        } => {
            let mut t = format!("conv{kernel}x{kernel}x{out_channels}");
            if stride != 1 {
                t += &format!("s{stride}");
            }
            if padding == Padding::Valid {
                t += "valid";
            }
            t
        }
        LayerSpec::MaxPool2d { size, stride } if stride == size => format!("pool{size}"),
        LayerSpec::MaxPool2d { size, stride } => format!("pool{size}s{stride}"),
        LayerSpec::Flatten => "flatten".into(),
        LayerSpec::Dropout { rate } => format!("dropout{rate}"),
    }
}

/// One token of either text form.
fn parse_token(token: &str) -> Result<LayerSpec, ArchError> {
    let bad = |reason: &str| ArchError::new(format!("token {token:?}"), reason);
    let number = |s: &str| -> Result<usize, ArchError> {
        s.parse::<usize>()
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| bad(&format!("{s:?} is not a positive whole number")))
    };
    if let Some(rest) = token.strip_prefix("conv") {
        let (rest, padding) = match rest.strip_suffix("valid") {
            Some(r) => (r, Padding::Valid),
            None => (rest.strip_suffix("same").unwrap_or(rest), Padding::Same),
        };
        let (dims, stride) = match rest.split_once('s') {
            Some((d, s)) => (d, number(s)?),
            None => (rest, 1),
        };
        let dims: Vec<&str> = dims.split('x').collect();
        let [kh, kw, out] = dims[..] else {
            return Err(bad("expected conv<k>x<k>x<out>[s<stride>][valid]"));
        };
        let (kh, kw, out_channels) = (number(kh)?, number(kw)?, number(out)?);
        if kh != kw {
            return Err(bad("only square kernels are supported"));
        }
        return Ok(LayerSpec::Conv2d {
            out_channels,
            kernel: kh,
            stride,
            padding,
        });
    }
    if let Some(rest) = token.strip_prefix("pool") {
        let (size, stride) = match rest.split_once('s') {
            Some((z, s)) => (number(z)?, number(s)?),
            None => {
                let z = number(rest)?;
                (z, z)
            }
        };
        return Ok(LayerSpec::MaxPool2d { size, stride });
    }
    if let Some(rest) = token.strip_prefix("fc") {
        return Ok(LayerSpec::Linear { out: number(rest)? });
    }
    if let Some(rest) = token.strip_prefix("dropout") {
        let rate: f32 = rest
            .parse()
            .map_err(|_| bad(&format!("{rest:?} is not a number")))?;
        if !(0.0..1.0).contains(&rate) {
            return Err(bad("the rate must be in [0, 1)"));
        }
        return Ok(LayerSpec::Dropout { rate });
    }
    match token {
        "relu" => Ok(LayerSpec::Relu),
        "flatten" => Ok(LayerSpec::Flatten),
        _ => Err(bad(
            "expected conv<k>x<k>x<out>, pool<size>, fc<out> or dropout<rate>",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_convolution_gives_its_geometry_and_other_layers_none() {
        let cnn = Architecture::cnn();
        let layers = cnn.layers();
        // conv2 reads conv1's pooled 14x14x32 output.
        let conv2 = layers
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.conv_geometry(cnn.input_shape(i)))
            .nth(1)
            .expect("two convolutions");
        assert_eq!(
            conv2,
            ConvGeometry {
                height: 14,
                width: 14,
                in_channels: 32,
                out_channels: 64,
                kernel_h: 5,
                kernel_w: 5,
                stride: 1,
                padding: Padding::Same,
            }
        );
        assert_eq!((conv2.out_height(), conv2.out_width()), (14, 14));
        let others = (0..layers.len())
            .filter(|&i| layers[i].conv_geometry(cnn.input_shape(i)).is_none())
            .count();
        assert_eq!(others, layers.len() - 2);
    }

    #[test]
    fn the_tutorials_cnn_has_its_shapes_names_and_counts() {
        let cnn = Architecture::cnn();
        assert_eq!(cnn.input(), Shape::mnist());
        let shapes: Vec<String> = cnn.shapes().iter().map(Shape::to_string).collect();
        assert_eq!(
            shapes,
            [
                "28x28x32", "28x28x32", "14x14x32", "14x14x64", "14x14x64", "7x7x64", "1x1x3136",
                "1x1x1024", "1x1x1024", "1x1x1024", "1x1x10"
            ]
        );
        let paths: Vec<(String, Vec<usize>)> = (0..cnn.layers().len())
            .flat_map(|i| cnn.params_of(i))
            .map(|p| (p.path, p.shape))
            .collect();
        assert_eq!(
            paths,
            [
                ("conv1/weight".to_string(), vec![5, 5, 1, 32]),
                ("conv1/bias".into(), vec![32]),
                ("conv2/weight".into(), vec![5, 5, 32, 64]),
                ("conv2/bias".into(), vec![64]),
                ("fc1/weight".into(), vec![3136, 1024]),
                ("fc1/bias".into(), vec![1024]),
                ("fc2/weight".into(), vec![1024, 10]),
                ("fc2/bias".into(), vec![10]),
            ]
        );
        assert_eq!(cnn.parameter_count(), 3_274_634);
        assert_eq!(
            cnn.forward_macs(),
            28 * 28 * 32 * 25 + 14 * 14 * 64 * 25 * 32 + 3136 * 1024 + 10240
        );
        assert_eq!(cnn.classes(), 10);
        let text = cnn.describe();
        assert_eq!(
            text,
            "28x28x1:conv5x5x32,relu,pool2,conv5x5x64,relu,pool2,flatten,fc1024,relu,dropout0.5,fc10"
        );
        assert_eq!(Architecture::parse(&text), Some(cnn));
    }

    #[test]
    fn dense_networks_keep_their_names_and_text() {
        let mlp = Architecture::mlp(&[256]);
        assert_eq!(mlp.describe(), "784-256-10");
        assert_eq!(Architecture::parse("784-256-10"), Some(mlp.clone()));
        assert_eq!(mlp.params_of(0)[0].path, "layer1/weight");
        assert_eq!(mlp.params_of(2)[1].path, "logits/bias");
        let sr = Architecture::softmax_regression();
        assert_eq!(sr.describe(), "784-10");
        assert!(sr.is_softmax_regression() && !mlp.is_softmax_regression());
        assert_eq!(sr.params_of(0)[0].path, "variables/Weight");
        assert_eq!(sr.params_of(0)[1].shape, [10]);
        assert_eq!(mlp.parameter_count(), 784 * 256 + 256 + 2570);
    }

    #[test]
    fn command_line_specs_parse_and_bad_tokens_are_named() {
        let a = Architecture::from_spec("conv3x3x8s2valid,pool3s2,fc10").unwrap();
        assert_eq!(
            a.describe(),
            "28x28x1:conv3x3x8s2valid,relu,pool3s2,flatten,fc10"
        );
        assert_eq!(a.shapes()[0], Shape::new(13, 13, 8));
        assert_eq!(a.shapes()[2], Shape::new(6, 6, 8));
        assert_eq!(
            Architecture::from_spec("fc256,fc10").unwrap(),
            Architecture::mlp(&[256])
        );
        for (spec, token) in [
            ("conv5x5,fc10", "conv5x5"),
            ("conv5x5x32,fc10,pool2", "pool2"),
            ("fc10,dropout1.5", "dropout1.5"),
            ("conv5x5x32,pool2,banana,fc10", "banana"),
            ("conv5x5x32,pool2", "pool2"),
            ("conv5x5x32s0,fc10", "conv5x5x32s0"),
        ] {
            let e = Architecture::from_spec(spec).unwrap_err().to_string();
            assert!(e.contains(&format!("{token:?}")), "{spec}: {e}");
        }
        let e = Architecture::from_spec("conv29x29x4valid,fc10").unwrap_err();
        assert!(e.to_string().contains("exceeds 28x28x1"), "{e}");
    }
}
