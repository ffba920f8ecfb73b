//! [`Architecture`], [`Model`]: parameters in one flat arena, forward and backward passes.

use std::ops::Range;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use super::graph::scope;
use super::init::fill_normal;
use super::workspace::Workspace;
use crate::kernels::listed::{self, NonZeroRows, PackedWeights};
use crate::kernels::{self, gemm, narrow, GemmWorkspace, MatRef, PixelRef};

/// A batch of inputs, `[rows, input]` row-major: f32 features, or u8 pixels that the first
/// layer reads as `value / 255` without an f32 copy.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Features as f32.
    Unit(&'a [f32]),
    /// MNIST pixels, scaled by 1/255 on the fly.
    Pixels(&'a [u8]),
    /// Pixels with their non-zero inputs listed ([`NonZeroRows::list`] on the same
    /// pixels), for rows multiplied again and again, such as a test set evaluated during
    /// training: a narrow first layer multiplies only the listed inputs, other layers read
    /// the pixels. Results are bit for bit those of the pixels alone (for finite weights).
    Listed {
        /// The pixels.
        pixels: &'a [u8],
        /// Their non-zero inputs.
        listed: &'a NonZeroRows,
    },
}

impl Input<'_> {
    /// Number of stored values.
    pub fn len(&self) -> usize {
        match self {
            Input::Unit(x) => x.len(),
            Input::Pixels(x) => x.len(),
            Input::Listed { pixels, .. } => pixels.len(),
        }
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a layer of `n` outputs takes the narrow kernels (the classes), not the blocked
/// gemm.
fn is_narrow(n: usize) -> bool {
    (narrow::MIN_WIDTH..=narrow::MAX_WIDTH).contains(&n)
}

/// `out[rows, n] = X·W` for an input `X[rows, k]`: the narrow kernels for 9 to 16 outputs
/// (the classes), the blocked gemm otherwise.
#[allow(clippy::too_many_arguments)]
fn input_times_weight(
    input: Input<'_>,
    rows: usize,
    k: usize,
    n: usize,
    w: &[f32],
    out: &mut [f32],
    ws: &mut GemmWorkspace,
    listed_weights: Option<&PackedWeights>,
) {
    let narrow = is_narrow(n);
    let wm = MatRef::row_major(w, n);
    match input {
        Input::Listed { listed: x, .. } if narrow => {
            assert_eq!(
                (x.rows(), x.k()),
                (rows, k),
                "listed rows are not {rows}x{k}"
            );
            let packed = listed_weights.expect("a listed input comes with its packed weights");
            listed::matmul(x, packed, out)
        }
        Input::Unit(x) if narrow => narrow::matmul(rows, k, n, x, w, out),
        Input::Pixels(x) | Input::Listed { pixels: x, .. } if narrow => {
            narrow::matmul(rows, k, n, x, w, out)
        }
        Input::Unit(x) => gemm(rows, n, k, MatRef::row_major(x, k), wm, out, n, false, ws),
        Input::Pixels(x) | Input::Listed { pixels: x, .. } => {
            gemm(rows, n, k, PixelRef::row_major(x, k), wm, out, n, false, ws)
        }
    }
}

/// `dw[k, n] = Xᵀ·d` for an input `X[rows, k]` and output gradient `d[rows, n]`.
fn input_t_times_grad(
    input: Input<'_>,
    rows: usize,
    k: usize,
    n: usize,
    d: &[f32],
    dw: &mut [f32],
    ws: &mut GemmWorkspace,
) {
    let narrow = n <= narrow::MAX_WIDTH;
    let dm = MatRef::row_major(d, n);
    match input {
        Input::Unit(x) if narrow => narrow::matmul_tn(rows, k, n, x, d, dw),
        Input::Pixels(x) | Input::Listed { pixels: x, .. } if narrow => {
            narrow::matmul_tn(rows, k, n, x, d, dw)
        }
        Input::Unit(x) => gemm(
            k,
            n,
            rows,
            MatRef::row_major(x, k).t(),
            dm,
            dw,
            n,
            false,
            ws,
        ),
        Input::Pixels(x) | Input::Listed { pixels: x, .. } => gemm(
            k,
            n,
            rows,
            PixelRef::row_major(x, k).t(),
            dm,
            dw,
            n,
            false,
            ws,
        ),
    }
}

/// Layer sizes: `input → hidden[0] → … → classes`, ReLU after every hidden layer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Architecture {
    /// Input features (784 for MNIST).
    pub input: usize,
    /// Widths of the hidden ReLU layers; empty for softmax regression.
    pub hidden: Vec<usize>,
    /// Output classes (10 for MNIST).
    pub classes: usize,
}

impl Architecture {
    /// The tutorial's model: 784 inputs straight to 10 classes.
    pub fn softmax_regression() -> Self {
        Architecture {
            input: crate::data::PIXELS,
            hidden: Vec::new(),
            classes: crate::data::CLASSES,
        }
    }

    /// A multi-layer perceptron on MNIST with the given hidden widths.
    pub fn mlp(hidden: &[usize]) -> Self {
        Architecture {
            hidden: hidden.to_vec(),
            ..Self::softmax_regression()
        }
    }

    /// `(fan_in, fan_out)` of each affine layer, input to output.
    pub fn layer_shapes(&self) -> Vec<(usize, usize)> {
        let mut widths = vec![self.input];
        widths.extend(&self.hidden);
        widths.push(self.classes);
        widths.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// Total number of parameters.
    pub fn parameter_count(&self) -> usize {
        self.layer_shapes().iter().map(|(i, o)| i * o + o).sum()
    }

    /// Multiply-adds of one example's forward pass.
    pub fn forward_macs(&self) -> usize {
        self.layer_shapes().iter().map(|(i, o)| i * o).sum()
    }

    /// Whether this is plain softmax regression (no hidden layer).
    pub fn is_softmax_regression(&self) -> bool {
        self.hidden.is_empty()
    }

    /// `784-256-10` style description.
    pub fn describe(&self) -> String {
        let mut widths = vec![self.input];
        widths.extend(&self.hidden);
        widths.push(self.classes);
        widths
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Parses `describe()`'s form back (`"784-256-10"`).
    pub fn parse(text: &str) -> Option<Self> {
        let widths: Vec<usize> = text
            .split('-')
            .map(|w| w.trim().parse().ok().filter(|&v| v > 0))
            .collect::<Option<_>>()?;
        if widths.len() < 2 {
            return None;
        }
        Some(Architecture {
            input: widths[0],
            hidden: widths[1..widths.len() - 1].to_vec(),
            classes: widths[widths.len() - 1],
        })
    }
}

/// Where one layer's parameters sit in the arena, and their names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerParams {
    /// Inputs of the layer.
    pub fan_in: usize,
    /// Outputs of the layer.
    pub fan_out: usize,
    /// `[fan_in, fan_out]` weights.
    pub weight: Range<usize>,
    /// `[fan_out]` bias.
    pub bias: Range<usize>,
    /// Path of the weights (`variables/Weight`, `layer1/weight`).
    pub weight_path: String,
    /// Path of the bias (`variables/Bias`, `layer1/bias`).
    pub bias_path: String,
}

/// One named parameter tensor, as the parameter visitor hands it out.
#[derive(Debug, Clone, Copy)]
pub struct ParamView<'a> {
    /// Its path: `variables/Weight`, `layer1/bias`, `logits/weight`, ...
    pub path: &'a str,
    /// Its shape: `[fan_in, fan_out]` or `[fan_out]`.
    pub shape: &'a [usize],
    /// Its values, row-major.
    pub values: &'a [f32],
}

/// A network's architecture and parameters. All parameters live in one flat arena
/// (`[W1, b1, W2, b2, …]`), so optimisers and reductions walk one slice.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    arch: Architecture,
    layers: Vec<LayerParams>,
    shapes: Vec<[usize; 2]>, // per layer: [fan_in, fan_out]
    params: Vec<f32>,
    listed_weights: ListedWeights,
}

/// The first layer's weights laid out for [`Input::Listed`], shared by every pass over the
/// model: packed by the first such pass after the parameters last changed. One copy, not
/// one per workspace: with an evaluation's twenty chunks each packing their own (twenty
/// packs, a megabyte of copies in the caches) it took 4 to 9% longer.
#[derive(Debug, Default)]
struct ListedWeights(RwLock<PackedLayer>);

#[derive(Debug, Default)]
struct PackedLayer {
    weights: PackedWeights,
    /// Whether `weights` are the parameters as they are now.
    current: bool,
}

impl ListedWeights {
    /// The parameters are about to change.
    fn invalidate(&mut self) {
        self.0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .current = false;
    }
}

impl Clone for ListedWeights {
    /// A clone packs its own on first use.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for ListedWeights {
    /// Derived from the parameters, which models compare.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Model {
    /// A model of this architecture with every parameter zero (the tutorial's init).
    pub fn zeros(arch: Architecture) -> Self {
        let mut layers = Vec::new();
        let mut at = 0;
        let shapes = arch.layer_shapes();
        let regression = arch.is_softmax_regression();
        for (i, &(fan_in, fan_out)) in shapes.iter().enumerate() {
            let weight = at..at + fan_in * fan_out;
            let bias = weight.end..weight.end + fan_out;
            at = bias.end;
            // The tutorial's names for softmax regression; `layer<k>/…` for hidden layers and
            // the `logits` scope for the output layer of a deeper network.
            let (weight_path, bias_path) = if regression {
                (scope::WEIGHT.to_string(), scope::BIAS.to_string())
            } else if i + 1 == shapes.len() {
                (
                    format!("{}/weight", scope::LOGITS),
                    format!("{}/bias", scope::LOGITS),
                )
            } else {
                (
                    format!("layer{}/weight", i + 1),
                    format!("layer{}/bias", i + 1),
                )
            };
            layers.push(LayerParams {
                fan_in,
                fan_out,
                weight,
                bias,
                weight_path,
                bias_path,
            });
        }
        Model {
            shapes: shapes.iter().map(|&(i, o)| [i, o]).collect(),
            arch,
            layers,
            params: vec![0.0; at],
            listed_weights: ListedWeights::default(),
        }
    }

    /// The tutorial's zero-initialised softmax regression, `W[784, 10]`, `b[10]`.
    pub fn softmax_regression() -> Self {
        Self::zeros(Architecture::softmax_regression())
    }

    /// He-normal weights (std `sqrt(2 / fan_in)`) from ChaCha8 seeded with `seed`, one
    /// stream per layer; zero biases. Reproducible on every machine.
    pub fn he_normal(arch: Architecture, seed: u64) -> Self {
        let mut model = Self::zeros(arch);
        for i in 0..model.layers.len() {
            let layer = model.layers[i].clone();
            let std = (2.0 / layer.fan_in as f64).sqrt();
            fill_normal(&mut model.params[layer.weight], std, seed, i as u64);
        }
        model
    }

    /// The architecture.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// The layers' places in the arena.
    pub fn layers(&self) -> &[LayerParams] {
        &self.layers
    }

    /// Whether [`Input::Listed`] makes passes faster: the first layer is narrow (the
    /// classes, as in softmax regression), so its product runs over the listed inputs.
    pub fn reads_listed_inputs(&self) -> bool {
        self.layers.first().is_some_and(|l| is_narrow(l.fan_out))
    }

    /// The first layer's weights packed for [`Input::Listed`], packing them if the
    /// parameters changed since they last were.
    fn packed_first_layer(&self) -> RwLockReadGuard<'_, PackedLayer> {
        let read = || {
            self.listed_weights
                .0
                .read()
                .unwrap_or_else(PoisonError::into_inner)
        };
        {
            let packed = read();
            if packed.current {
                return packed;
            }
        }
        {
            let mut packed = self
                .listed_weights
                .0
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            // Another pass may have packed them while this one waited.
            if !packed.current {
                let layer = &self.layers[0];
                packed.weights.pack(
                    &self.params[layer.weight.clone()],
                    layer.fan_in,
                    layer.fan_out,
                );
                packed.current = true;
            }
        }
        read()
    }

    /// All parameters, `[W1, b1, W2, b2, …]`.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// All parameters, mutable.
    pub fn params_mut(&mut self) -> &mut [f32] {
        self.listed_weights.invalidate();
        &mut self.params
    }

    /// Weights of layer `i` (`[fan_in, fan_out]`, row-major).
    pub fn weight(&self, i: usize) -> &[f32] {
        &self.params[self.layers[i].weight.clone()]
    }

    /// Bias of layer `i`.
    pub fn bias(&self, i: usize) -> &[f32] {
        &self.params[self.layers[i].bias.clone()]
    }

    /// Hands every parameter tensor, with its path and shape, to `visit`, input to output.
    /// Summaries, model files and pictures all see the weights through this walk.
    pub fn visit_params<'a>(&'a self, mut visit: impl FnMut(ParamView<'a>)) {
        for (layer, shape) in self.layers.iter().zip(&self.shapes) {
            visit(ParamView {
                path: &layer.weight_path,
                shape,
                values: &self.params[layer.weight.clone()],
            });
            visit(ParamView {
                path: &layer.bias_path,
                shape: &shape[1..],
                values: &self.params[layer.bias.clone()],
            });
        }
    }

    /// Copies parameter `path` from `values` (shape-checked by length); false if unknown.
    pub fn set_param(&mut self, path: &str, values: &[f32]) -> bool {
        for layer in &self.layers {
            for (name, range) in [
                (&layer.weight_path, &layer.weight),
                (&layer.bias_path, &layer.bias),
            ] {
                if name == path && range.len() == values.len() {
                    self.listed_weights.invalidate();
                    self.params[range.clone()].copy_from_slice(values);
                    return true;
                }
            }
        }
        false
    }

    /// `inference`: the logits of `rows` examples `x` (`[rows, input]`), left in the
    /// workspace and returned (`[rows, classes]`).
    pub fn inference<'w>(&self, x: Input<'_>, rows: usize, ws: &'w mut Workspace) -> &'w [f32] {
        self.forward(x, rows, ws);
        &ws.activations[self.layers.len() - 1][..rows * self.arch.classes]
    }

    /// `loss`: sum over rows of softmax cross-entropy of the logits the last
    /// [`Model::forward`] left in `ws`, writing `grad_scale * (p - onehot)` as the logits'
    /// gradient for [`Model::backward`].
    pub fn loss(&self, labels: &[u8], grad_scale: f32, ws: &mut Workspace) -> f64 {
        assert!(
            ws.trainable,
            "loss needs a workspace from Workspace::new, not ::inference"
        );
        let rows = labels.len();
        let n = rows * self.arch.classes;
        let last = self.layers.len() - 1;
        let (logits, grad) = (&ws.activations[last][..n], &mut ws.grad_a[..n]);
        kernels::softmax_cross_entropy(logits, labels, self.arch.classes, grad_scale, grad)
    }

    /// Forward pass of `rows` examples: every layer's output is kept in `ws` for backward.
    pub fn forward(&self, x: Input<'_>, rows: usize, ws: &mut Workspace) {
        assert_eq!(
            x.len(),
            rows * self.arch.input,
            "input is not rows x {}",
            self.arch.input
        );
        assert!(
            rows <= ws.rows,
            "workspace holds {} rows, asked {rows}",
            ws.rows
        );
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let (before, rest) = ws.activations.split_at_mut(i);
            let out = &mut rest[0][..rows * layer.fan_out];
            let input = if i == 0 {
                x
            } else {
                Input::Unit(&before[i - 1][..rows * layer.fan_in])
            };
            let weight = &self.params[layer.weight.clone()];
            let packed =
                (i == 0 && matches!(input, Input::Listed { .. }) && is_narrow(layer.fan_out))
                    .then(|| self.packed_first_layer());
            input_times_weight(
                input,
                rows,
                layer.fan_in,
                layer.fan_out,
                weight,
                out,
                &mut ws.gemm,
                packed.as_deref().map(|layer| &layer.weights),
            );
            kernels::add_bias_rows(out, &self.params[layer.bias.clone()]);
            if i != last {
                kernels::relu_in_place(out);
            }
        }
    }

    /// Backward pass after [`Model::forward`] and [`Model::loss`]: writes the gradient of
    /// every parameter into `grads` (the arena's layout, overwritten, not accumulated).
    /// With `input_grad`, also writes the gradient with respect to the input `x`.
    pub fn backward(
        &self,
        x: Input<'_>,
        rows: usize,
        ws: &mut Workspace,
        grads: &mut [f32],
        mut input_grad: Option<&mut [f32]>,
    ) {
        assert!(
            ws.trainable,
            "backward needs a workspace from Workspace::new, not ::inference"
        );
        assert_eq!(
            grads.len(),
            self.params.len(),
            "gradient arena has the wrong size"
        );
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let input = if i == 0 {
                x
            } else {
                Input::Unit(&ws.activations[i - 1][..rows * layer.fan_in])
            };
            // d_out: [rows, fan_out]; dW = inputᵀ · d_out: [fan_in, rows] x [rows, fan_out].
            let d_out = &ws.grad_a[..rows * layer.fan_out];
            let dw = &mut grads[layer.weight.clone()];
            input_t_times_grad(
                input,
                rows,
                layer.fan_in,
                layer.fan_out,
                d_out,
                dw,
                &mut ws.gemm,
            );
            kernels::column_sums_into(d_out, &mut grads[layer.bias.clone()], false);
            let d_in_target: &mut [f32] = if i > 0 {
                &mut ws.grad_b[..rows * layer.fan_in]
            } else if let Some(g) = input_grad.as_deref_mut() {
                &mut g[..rows * layer.fan_in]
            } else {
                continue;
            };
            // d_in = d_out · Wᵀ: [rows, fan_out] x [fan_out, fan_in]
            gemm(
                rows,
                layer.fan_in,
                layer.fan_out,
                MatRef::row_major(d_out, layer.fan_out),
                MatRef::row_major(&self.params[layer.weight.clone()], layer.fan_out).t(),
                d_in_target,
                layer.fan_in,
                false,
                &mut ws.gemm,
            );
            if i > 0 {
                kernels::relu_backward_in_place(
                    &mut ws.grad_b[..rows * layer.fan_in],
                    &ws.activations[i - 1][..rows * layer.fan_in],
                );
                std::mem::swap(&mut ws.grad_a, &mut ws.grad_b);
            }
        }
    }
}
