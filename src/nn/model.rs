//! [`Model`]: an [`Architecture`]'s parameters in one flat arena, and the forward and
//! backward passes as a loop over its layers.
//!
//! Each layer reads the buffer its predecessor wrote and writes its own, sized `[rows,
//! h·w·c]` in the [`Workspace`]; ReLU, dropout and flatten work in place on their input's
//! buffer. Backward runs the list in reverse over two gradient buffers (the current layer's
//! output gradient and its input gradient, swapped after each layer that is not in place).

use std::ops::Range;

use super::activation;
use super::aligned::AlignedF32;
use super::arch::{Architecture, LayerSpec};
use super::conv2d::Conv2d;
use super::dropout::{self, DropoutKey};
use super::init::fill_normal;
use super::linear::{is_narrow, Fork, Input, Linear, ListedWeights, Serial};
use super::maxpool::MaxPool2d;
use super::workspace::Workspace;
use crate::kernels;
use crate::kernels::pool::PoolGeometry;

/// Whether a forward pass trains (dropout on, keyed for this update) or evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Evaluation and inference: dropout is the identity.
    #[default]
    Eval,
    /// A training pass: dropout draws its masks from the key.
    Train(DropoutKey),
}

/// Where one layer with parameters (linear or convolutional) keeps them in the arena, and
/// their names. A filter `[kh, kw, in, out]` is, row-major, the `[kh·kw·in, out]` matrix its
/// product uses, so `fan_in`/`fan_out` describe both kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerParams {
    /// Inputs each output sums over (`in` for a linear layer, `kh·kw·in` for a filter).
    pub fan_in: usize,
    /// Outputs (units or channels).
    pub fan_out: usize,
    /// The weights: `[fan_in, fan_out]`, or `[kh, kw, in, out]` for a filter.
    pub weight: Range<usize>,
    /// `[fan_out]` bias.
    pub bias: Range<usize>,
    /// Path of the weights (`variables/Weight`, `layer1/weight`, `conv1/weight`).
    pub weight_path: String,
    /// Path of the bias (`variables/Bias`, `layer1/bias`, `conv1/bias`).
    pub bias_path: String,
    /// Shape of the weights (`[fan_in, fan_out]` or `[kh, kw, in, out]`).
    pub weight_shape: Vec<usize>,
    /// Whether this is a convolution's filter (else a linear layer's matrix).
    pub convolutional: bool,
}

/// One named parameter tensor, as the parameter visitor hands it out.
#[derive(Debug, Clone, Copy)]
pub struct ParamView<'a> {
    /// Its path: `variables/Weight`, `layer1/bias`, `logits/weight`, `conv1/weight`, ...
    pub path: &'a str,
    /// Its shape: `[fan_in, fan_out]`, `[kh, kw, in, out]` or `[fan_out]`.
    pub shape: &'a [usize],
    /// Its values, row-major.
    pub values: &'a [f32],
}

/// A layer of the list as the passes run it.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Linear(Linear),
    Conv2d(Conv2d),
    MaxPool2d(MaxPool2d),
    Relu,
    Flatten,
    Dropout { rate: f32 },
}

/// One layer's place in the passes: what it computes, the buffers it reads and writes,
/// its parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Step {
    kind: Kind,
    /// The buffer holding its input (None: the pass's [`Input`], read as it is).
    pub(crate) src: Option<usize>,
    /// The buffer its output goes to (its input's for in-place layers).
    pub(crate) dst: usize,
    /// Values per example of its input and output.
    pub(crate) in_len: usize,
    pub(crate) out_len: usize,
    /// Index in [`Model::layers`] of its parameters.
    params: Option<usize>,
}

impl Step {
    /// Whether it works on its input's buffer.
    fn in_place(&self) -> bool {
        matches!(self.kind, Kind::Relu | Kind::Flatten | Kind::Dropout { .. })
    }
}

/// The layers as the passes run them, and the buffers they need.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub(crate) steps: Vec<Step>,
    /// Values per example of each buffer.
    pub(crate) buffers: Vec<usize>,
    /// The buffer the input is copied into as f32, when the first layer is not linear (a
    /// linear first layer reads pixels as they are).
    input_buffer: Option<usize>,
}

impl Plan {
    /// Scratch floats the layers need for a pass over `rows` examples (shared).
    pub(crate) fn scratch_len(&self, rows: usize) -> usize {
        self.steps
            .iter()
            .map(|s| match &s.kind {
                Kind::Conv2d(c) => c.scratch_len(rows),
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    }

    /// Per layer, values per example it keeps from forward for backward beyond its output:
    /// `(dropout multipliers, pooling argmax)`.
    pub(crate) fn kept_lens(&self) -> Vec<(usize, usize)> {
        self.steps
            .iter()
            .map(|s| match s.kind {
                Kind::Dropout { .. } => (s.out_len, 0),
                Kind::MaxPool2d(_) => (0, s.out_len),
                _ => (0, 0),
            })
            .collect()
    }

    /// The widest activation, input included (the gradient buffers' width).
    pub(crate) fn widest(&self) -> usize {
        self.steps
            .iter()
            .map(|s| s.in_len.max(s.out_len))
            .max()
            .unwrap_or(0)
    }
}

/// A network's architecture and parameters. All parameters live in one flat arena
/// (`[W1, b1, W2, b2, …]`, in layer order), so optimisers and reductions walk one slice.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    arch: Architecture,
    layers: Vec<LayerParams>,
    plan: Plan,
    params: AlignedF32,
    listed_weights: ListedWeights,
}

/// `(lower, upper)` buffers, `src < dst`: the one read and the one written.
fn read_write(buffers: &mut [Vec<f32>], src: usize, dst: usize) -> (&[f32], &mut [f32]) {
    debug_assert!(src < dst);
    let (lo, hi) = buffers.split_at_mut(dst);
    (&lo[src], &mut hi[0])
}

impl Model {
    /// A model of this architecture with every parameter zero (the tutorial's init).
    pub fn zeros(arch: Architecture) -> Self {
        let mut layers = Vec::new();
        let mut steps = Vec::new();
        let mut buffers = Vec::new();
        let mut at = 0;
        let input_buffer =
            (!matches!(arch.layers().first(), Some(LayerSpec::Linear { .. }))).then(|| {
                buffers.push(arch.input_len());
                0
            });
        let mut current = input_buffer;
        for (i, spec) in arch.layers().iter().enumerate() {
            let input = arch.input_shape(i);
            let output = arch.shapes()[i];
            let mut params = None;
            let param_specs = arch.params_of(i);
            if let [w, b] = &param_specs[..] {
                let weight = at..at + w.shape.iter().product::<usize>();
                let bias = weight.end..weight.end + b.shape[0];
                at = bias.end;
                let fan_out = b.shape[0];
                params = Some(layers.len());
                layers.push(LayerParams {
                    fan_in: weight.len() / fan_out,
                    fan_out,
                    weight,
                    bias,
                    weight_path: w.path.clone(),
                    bias_path: b.path.clone(),
                    weight_shape: w.shape.clone(),
                    convolutional: matches!(spec, LayerSpec::Conv2d { .. }),
                });
            }
            let kind = match *spec {
                LayerSpec::Linear { out } => Kind::Linear(Linear {
                    k: input.len(),
                    n: out,
                }),
                LayerSpec::Conv2d { .. } => Kind::Conv2d(Conv2d {
                    geometry: spec.conv_geometry(input).expect("a convolution"),
                }),
                LayerSpec::MaxPool2d { size, stride } => Kind::MaxPool2d(MaxPool2d {
                    geometry: PoolGeometry {
                        height: input.height,
                        width: input.width,
                        channels: input.channels,
                        size,
                        stride,
                    },
                }),
                LayerSpec::Relu => Kind::Relu,
                LayerSpec::Flatten => Kind::Flatten,
                LayerSpec::Dropout { rate } => Kind::Dropout { rate },
            };
            let mut step = Step {
                kind,
                src: current,
                dst: 0,
                in_len: input.len(),
                out_len: output.len(),
                params,
            };
            step.dst = match current {
                // A first in-place layer has the input's f32 copy to work on.
                Some(b) if step.in_place() => b,
                _ => {
                    buffers.push(output.len());
                    buffers.len() - 1
                }
            };
            current = Some(step.dst);
            steps.push(step);
        }
        Model {
            arch,
            layers,
            plan: Plan {
                steps,
                buffers,
                input_buffer,
            },
            params: AlignedF32::zeros(at),
            listed_weights: ListedWeights::default(),
        }
    }

    /// The tutorial's zero-initialised softmax regression, `W[784, 10]`, `b[10]`.
    pub fn softmax_regression() -> Self {
        Self::zeros(Architecture::softmax_regression())
    }

    /// He-normal weights (std `sqrt(2 / fan_in)`, `fan_in = kh·kw·in` for filters) from
    /// ChaCha8 seeded with `seed`, one stream per layer with parameters; zero biases.
    /// Reproducible on every machine.
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

    /// The layers with parameters (linear and convolutional), input to output.
    pub fn layers(&self) -> &[LayerParams] {
        &self.layers
    }

    /// The passes' layout, for sizing workspaces.
    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Whether [`Input::Listed`] makes passes faster: the first layer is linear and narrow
    /// (the classes, as in softmax regression), so its product runs over the listed inputs.
    pub fn reads_listed_inputs(&self) -> bool {
        matches!(self.plan.steps.first(), Some(Step { kind: Kind::Linear(l), .. }) if is_narrow(l.n))
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

    /// Weights of the `i`-th layer with parameters (`[fan_in, fan_out]` or
    /// `[kh, kw, in, out]`, row-major).
    pub fn weight(&self, i: usize) -> &[f32] {
        &self.params[self.layers[i].weight.clone()]
    }

    /// Bias of the `i`-th layer with parameters.
    pub fn bias(&self, i: usize) -> &[f32] {
        &self.params[self.layers[i].bias.clone()]
    }

    /// Hands every parameter tensor, with its path and shape, to `visit`, input to output.
    /// Summaries, model files and pictures all see the weights through this walk.
    pub fn visit_params<'a>(&'a self, mut visit: impl FnMut(ParamView<'a>)) {
        for layer in &self.layers {
            visit(ParamView {
                path: &layer.weight_path,
                shape: &layer.weight_shape,
                values: &self.params[layer.weight.clone()],
            });
            visit(ParamView {
                path: &layer.bias_path,
                shape: std::slice::from_ref(&layer.fan_out),
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
        self.logits(ws, rows)
    }

    /// The logits the last forward pass over `rows` examples left in `ws`,
    /// `[rows, classes]`.
    pub fn logits<'w>(&self, ws: &'w Workspace, rows: usize) -> &'w [f32] {
        let last = self.plan.steps.last().expect("a model has layers");
        &ws.buffers[last.dst][..rows * self.arch.classes()]
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
        let classes = self.arch.classes();
        let n = rows * classes;
        let last = self.plan.steps.last().expect("a model has layers");
        let (logits, grad) = (&ws.buffers[last.dst][..n], &mut ws.grad_a[..n]);
        kernels::softmax_cross_entropy(logits, labels, classes, grad_scale, grad)
    }

    /// Forward pass of `rows` examples for evaluation (dropout off): every layer's output is
    /// kept in `ws` for backward.
    pub fn forward(&self, x: Input<'_>, rows: usize, ws: &mut Workspace) {
        self.forward_with(x, rows, ws, Mode::Eval);
    }

    /// Forward pass of `rows` examples in `mode`: a training pass draws dropout masks from
    /// its key (and needs a workspace from [`Workspace::new`] when the model has dropout).
    pub fn forward_with(&self, x: Input<'_>, rows: usize, ws: &mut Workspace, mode: Mode) {
        let all = 0..self.plan.steps.len();
        self.forward_steps(Some(x), rows, ws, mode, all, &Serial);
    }

    /// Where the dense head of a convolutional model begins: the first of the layers after
    /// the last convolution or pooling, when they are linear layers, ReLU and dropout
    /// alone. Each row of the head reads only its own row of the layer before, and its wide
    /// products are best done over a whole batch at once (a trainer runs the convolutions
    /// in shards of the batch, the head over all of it).
    pub(crate) fn head_start(&self) -> Option<usize> {
        let steps = &self.plan.steps;
        let last_conv = steps
            .iter()
            .rposition(|s| matches!(s.kind, Kind::Conv2d(_) | Kind::MaxPool2d(_)))?;
        let start = last_conv
            + 1
            + steps[last_conv + 1..]
                .iter()
                .position(|s| matches!(s.kind, Kind::Linear(_)))?;
        let dense = steps[start..]
            .iter()
            .all(|s| matches!(s.kind, Kind::Linear(_) | Kind::Relu | Kind::Dropout { .. }));
        dense.then_some(start)
    }

    /// Where in the arena the parameters of the layers from step `from` on begin (the
    /// arena's length if none has any).
    pub(crate) fn params_from(&self, from: usize) -> usize {
        self.plan.steps[from..]
            .iter()
            .find_map(|s| s.params)
            .map_or(self.params.len(), |p| self.layers[p].weight.start)
    }

    /// Forward pass of the layers before `head` ([`Model::head_start`]), as
    /// [`Model::forward_with`]; their output is [`Model::head_input`]'s.
    pub(crate) fn forward_body(
        &self,
        x: Input<'_>,
        rows: usize,
        ws: &mut Workspace,
        mode: Mode,
        head: usize,
    ) {
        self.forward_steps(Some(x), rows, ws, mode, 0..head, &Serial);
    }

    /// Forward pass of the head from `head` on, from the input [`Model::head_input`] left
    /// in `ws` (a [`Workspace::head`]), its wide products split into pieces on `fork`.
    pub(crate) fn forward_head(
        &self,
        rows: usize,
        ws: &mut Workspace,
        mode: Mode,
        head: usize,
        fork: &impl Fork,
    ) {
        let steps = head..self.plan.steps.len();
        self.forward_steps(None, rows, ws, mode, steps, fork);
    }

    /// The values the head starting at `head` reads, `[rows, values]`: the body's output
    /// in its workspace, the head's input in its own.
    pub(crate) fn head_input<'w>(
        &self,
        ws: &'w mut Workspace,
        rows: usize,
        head: usize,
    ) -> &'w mut [f32] {
        let step = &self.plan.steps[head];
        let src = step.src.expect("a head reads a buffer");
        &mut ws.buffers[src][..rows * step.in_len]
    }

    /// The gradient with respect to the head's input (`[rows, values]`): what
    /// [`Model::backward_head`] leaves and [`Model::backward_body`] starts from.
    pub(crate) fn head_input_grad<'w>(
        &self,
        ws: &'w mut Workspace,
        rows: usize,
        head: usize,
    ) -> &'w mut [f32] {
        &mut ws.grad_a[..rows * self.plan.steps[head].in_len]
    }

    fn forward_steps(
        &self,
        x: Option<Input<'_>>,
        rows: usize,
        ws: &mut Workspace,
        mode: Mode,
        range: Range<usize>,
        fork: &impl Fork,
    ) {
        let input_len = self.arch.input_len();
        if let Some(x) = x {
            assert_eq!(x.len(), rows * input_len, "input is not rows x {input_len}");
        }
        assert!(
            rows <= ws.rows,
            "workspace holds {} rows, asked {rows}",
            ws.rows
        );
        let key = match mode {
            Mode::Train(key) => Some(key),
            Mode::Eval => None,
        };
        if let (Some(b), Some(x), 0) = (self.plan.input_buffer, x, range.start) {
            x.to_unit(&mut ws.buffers[b][..rows * input_len]);
        }
        ws.dropout_on = false;
        for (i, step) in self.plan.steps.iter().enumerate() {
            if !range.contains(&i) {
                continue;
            }
            let (n_in, n_out) = (rows * step.in_len, rows * step.out_len);
            let params = step.params.map(|p| {
                let p = &self.layers[p];
                (&self.params[p.weight.clone()], &self.params[p.bias.clone()])
            });
            match (&step.kind, params) {
                (Kind::Relu, _) => activation::relu_forward(&mut ws.buffers[step.dst][..n_out]),
                (Kind::Flatten, _) => {}
                (&Kind::Dropout { rate }, _) => {
                    if let Some(key) = &key {
                        assert!(
                            ws.trainable,
                            "a training pass needs a workspace from Workspace::new"
                        );
                        let x = &mut ws.buffers[step.dst][..n_out];
                        dropout::forward_train(key, i, rate, rows, x, &mut ws.masks[i][..n_out]);
                        ws.dropout_on = true;
                    }
                }
                (Kind::Linear(l), Some((w, b))) => {
                    let packed =
                        (i == 0 && matches!(x, Some(Input::Listed { .. })) && is_narrow(l.n))
                            .then(|| self.listed_weights.get(w, l.k, l.n));
                    let packed = packed.as_deref().map(|p| &p.weights);
                    match (step.src, &mut ws.split) {
                        (None, _) => {
                            let x = x.expect("the first layer reads the input");
                            let out = &mut ws.buffers[step.dst][..n_out];
                            l.forward(x, rows, w, b, out, &mut ws.gemm, packed);
                        }
                        (Some(s), Some(split)) if !is_narrow(l.n) => {
                            let (input, out) = read_write(&mut ws.buffers, s, step.dst);
                            let (input, out) = (&input[..n_in], &mut out[..n_out]);
                            l.forward_split(input, rows, w, b, out, split, fork);
                        }
                        (Some(s), _) => {
                            let (input, out) = read_write(&mut ws.buffers, s, step.dst);
                            let input = Input::Hidden(&input[..n_in]);
                            l.forward(input, rows, w, b, &mut out[..n_out], &mut ws.gemm, packed);
                        }
                    }
                }
                (Kind::Conv2d(c), Some((w, b))) => {
                    let s = step.src.expect("a convolution reads a buffer");
                    let (input, out) = read_write(&mut ws.buffers, s, step.dst);
                    c.forward(
                        rows,
                        &input[..n_in],
                        w,
                        b,
                        &mut out[..n_out],
                        &mut ws.scratch,
                        &mut ws.gemm,
                    );
                }
                (Kind::MaxPool2d(p), _) => {
                    let s = step.src.expect("pooling reads a buffer");
                    let (input, out) = read_write(&mut ws.buffers, s, step.dst);
                    let argmax = ws.trainable.then(|| &mut ws.argmax[i][..n_out]);
                    p.forward(rows, &input[..n_in], &mut out[..n_out], argmax);
                }
                (Kind::Linear(_) | Kind::Conv2d(_), None) => unreachable!("layers have params"),
            }
        }
    }

    /// Backward pass after [`Model::forward`] (or [`Model::forward_with`]) and
    /// [`Model::loss`]: writes the gradient of every parameter into `grads` (the arena's
    /// layout, overwritten, not accumulated). With `input_grad`, also writes the gradient
    /// with respect to the input `x` (`[rows, input]`).
    pub fn backward(
        &self,
        x: Input<'_>,
        rows: usize,
        ws: &mut Workspace,
        grads: &mut [f32],
        input_grad: Option<&mut [f32]>,
    ) {
        assert_eq!(
            grads.len(),
            self.params.len(),
            "gradient arena has the wrong size"
        );
        let all = 0..self.plan.steps.len();
        self.backward_steps(Some(x), rows, ws, grads, input_grad, all, &Serial, false);
    }

    /// Backward pass of the layers before `head`, after [`Model::forward_body`], from the
    /// gradient of their output put in [`Model::head_input_grad`]: writes their
    /// parameters' gradients into `grads` (the start of the arena's layout, up to
    /// [`Model::params_from`] `head` at least).
    pub(crate) fn backward_body(
        &self,
        x: Input<'_>,
        rows: usize,
        ws: &mut Workspace,
        grads: &mut [f32],
        head: usize,
    ) {
        self.backward_steps(Some(x), rows, ws, grads, None, 0..head, &Serial, false);
    }

    /// Backward pass of the head from `head` on, after [`Model::forward_head`] and
    /// [`Model::loss`]: writes the head's parameters' gradients into `grads` (the arena's
    /// layout; the body's are left alone) and leaves the gradient of its input in
    /// [`Model::head_input_grad`]. With `defer_weight` (where
    /// [`Model::head_weight_deferrable`]), the first layer's weight gradient is not
    /// computed: [`Model::head_weight_operands`] gives what it is the product of.
    pub(crate) fn backward_head(
        &self,
        rows: usize,
        ws: &mut Workspace,
        grads: &mut [f32],
        head: usize,
        fork: &impl Fork,
        defer_weight: bool,
    ) {
        let steps = head..self.plan.steps.len();
        self.backward_steps(None, rows, ws, grads, None, steps, fork, defer_weight);
    }

    // --- The head's first weight gradient, left to the trainer (fused with the update).

    /// The shape `(k, n)` of the weight of the head's first layer when
    /// [`Model::backward_head`] can leave its gradient to the caller: a wide linear layer
    /// (the head's products split into pieces), not the model's first layer.
    pub(crate) fn head_weight_deferrable(&self, head: usize) -> Option<(usize, usize)> {
        let step = &self.plan.steps[head];
        match &step.kind {
            Kind::Linear(l) if step.src.is_some() && !is_narrow(l.n) => Some((l.k, l.n)),
            _ => None,
        }
    }

    /// After [`Model::backward_head`] deferred the first layer's weight gradient: the
    /// layer's input `X` (`[rows, k]`), the gradient of its output `dZ` (`[rows, n]`,
    /// which the backward pass leaves in the buffer it swapped out) and where its weight
    /// lies in the arena; the weight gradient is `Xᵀ·dZ`.
    pub(crate) fn head_weight_operands<'w>(
        &self,
        ws: &'w Workspace,
        rows: usize,
        head: usize,
    ) -> (&'w [f32], &'w [f32], Range<usize>) {
        let step = &self.plan.steps[head];
        let (src, p) = (step.src, step.params);
        let (src, p) = (
            src.expect("a head reads a buffer"),
            p.expect("a linear layer"),
        );
        let x = &ws.buffers[src][..rows * step.in_len];
        let d_out = &ws.grad_b[..rows * step.out_len];
        (x, d_out, self.layers[p].weight.clone())
    }

    #[allow(clippy::too_many_arguments)]
    fn backward_steps(
        &self,
        x: Option<Input<'_>>,
        rows: usize,
        ws: &mut Workspace,
        grads: &mut [f32],
        mut input_grad: Option<&mut [f32]>,
        range: Range<usize>,
        fork: &impl Fork,
        defer_first_weight: bool,
    ) {
        assert!(
            ws.trainable,
            "backward needs a workspace from Workspace::new, not ::inference"
        );
        assert!(
            grads.len() >= self.params_from(range.end),
            "gradient arena is too short"
        );
        let steps = &self.plan.steps;
        let first_params = steps.iter().position(|s| s.params.is_some());
        // ws.grad_a: the gradient of the current layer's output, [rows, out_len].
        for (i, step) in steps.iter().enumerate().rev() {
            if !range.contains(&i) {
                continue;
            }
            let (n_in, n_out) = (rows * step.in_len, rows * step.out_len);
            // Whether anything below this layer needs the gradient of its input.
            let wanted = input_grad.is_some() || first_params.is_some_and(|f| f < i);
            let params = step.params.map(|p| &self.layers[p]);
            // Where a layer that is not in place writes its input's gradient.
            let d_in: Option<&mut [f32]> = match () {
                _ if !wanted || step.in_place() => None,
                _ if i > 0 => Some(&mut ws.grad_b[..n_in]),
                _ => input_grad.as_deref_mut().map(|g| &mut g[..n_in]),
            };
            let to_grad_b = wanted && !step.in_place() && i > 0;
            match (&step.kind, params) {
                (Kind::Relu, _) if wanted => {
                    activation::relu_backward(
                        &mut ws.grad_a[..n_out],
                        &ws.buffers[step.dst][..n_out],
                    );
                }
                (Kind::Dropout { .. }, _) if wanted && ws.dropout_on => {
                    dropout::backward(&mut ws.grad_a[..n_out], &ws.masks[i][..n_out]);
                }
                (Kind::Relu | Kind::Dropout { .. } | Kind::Flatten, _) => {}
                (Kind::Linear(l), Some(p))
                    if step.src.is_some() && ws.split.is_some() && !is_narrow(l.n) =>
                {
                    let s = step.src.expect("checked");
                    let (dw, db) = grads[p.weight.start..p.bias.end].split_at_mut(p.weight.len());
                    let dw = (!(defer_first_weight && i == range.start)).then_some(dw);
                    let w = &self.params[p.weight.clone()];
                    let split = ws.split.as_mut().expect("checked");
                    let input = &ws.buffers[s][..n_in];
                    l.backward_split(
                        input,
                        rows,
                        w,
                        &ws.grad_a[..n_out],
                        dw,
                        db,
                        d_in,
                        split,
                        fork,
                    );
                }
                (Kind::Linear(l), Some(p)) => {
                    let input = match step.src {
                        None => x.expect("the first layer reads the input"),
                        Some(s) => Input::Hidden(&ws.buffers[s][..n_in]),
                    };
                    let (dw, db) = grads[p.weight.start..p.bias.end].split_at_mut(p.weight.len());
                    let w = &self.params[p.weight.clone()];
                    l.backward(
                        input,
                        rows,
                        w,
                        &ws.grad_a[..n_out],
                        dw,
                        db,
                        d_in,
                        &mut ws.gemm,
                    );
                }
                (Kind::Conv2d(c), Some(p)) => {
                    let s = step.src.expect("a convolution reads a buffer");
                    let (dw, db) = grads[p.weight.start..p.bias.end].split_at_mut(p.weight.len());
                    c.backward(
                        rows,
                        &ws.buffers[s][..n_in],
                        &self.params[p.weight.clone()],
                        &ws.grad_a[..n_out],
                        dw,
                        db,
                        d_in,
                        &mut ws.scratch,
                        &mut ws.gemm,
                    );
                }
                (Kind::MaxPool2d(pool), _) => {
                    if let Some(d_in) = d_in {
                        pool.backward(rows, &ws.grad_a[..n_out], &ws.argmax[i][..n_out], d_in);
                    }
                }
                (Kind::Linear(_) | Kind::Conv2d(_), None) => unreachable!("layers have params"),
            }
            if to_grad_b {
                std::mem::swap(&mut ws.grad_a, &mut ws.grad_b);
            }
            if i == 0 && step.in_place() {
                if let Some(g) = input_grad.as_deref_mut() {
                    g[..n_in].copy_from_slice(&ws.grad_a[..n_in]);
                }
            }
        }
    }
}
