//! Buffers for the forward and backward passes, sized once for a model and a row count.

use super::linear::Split;
use super::model::Model;
use crate::kernels::GemmWorkspace;

/// Activations, gradient ping-pong buffers, what layers keep from forward for backward
/// (dropout multipliers, pooling argmax), convolution scratch and packing space for up to
/// `rows` examples, sized once from the model's layer list. Created once and passed `&mut`
/// to every pass, so no pass allocates.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub(crate) rows: usize,
    // Per buffer of the model's plan: [rows, h·w·c] (a layer's output; in-place layers share
    // their input's; the logits last; the input's f32 copy first when the first layer is not
    // linear).
    pub(crate) buffers: Vec<Vec<f32>>,
    // Gradient with respect to the current layer's output, and its input's:
    // [rows, widest activation] each.
    pub(crate) grad_a: Vec<f32>,
    pub(crate) grad_b: Vec<f32>,
    // Per layer: dropout's multipliers [rows, units] (empty for other layers).
    pub(crate) masks: Vec<Vec<f32>>,
    // Per layer: max-pooling's argmax [rows, oh, ow, c] (empty for other layers).
    pub(crate) argmax: Vec<Vec<u32>>,
    // Convolution patches, shared by the layers: [the largest layer's scratch_len(rows)].
    pub(crate) scratch: Vec<f32>,
    pub(crate) gemm: GemmWorkspace,
    // For a dense head run over a whole batch (`Workspace::head`): the wide linear layers'
    // products split into pieces for a thread pool.
    pub(crate) split: Option<Split>,
    // Whether the gradient buffers exist (false for `Workspace::inference`).
    pub(crate) trainable: bool,
    // Whether the last forward pass drew dropout masks (a training pass).
    pub(crate) dropout_on: bool,
}

impl Workspace {
    /// A workspace for forward passes only ([`Model::inference`], [`Model::forward`]) of
    /// `model` over at most `rows` examples: no gradient buffers, which for the input layer
    /// are `rows x 784` floats each. [`Model::backward`] refuses it.
    pub fn inference(model: &Model, rows: usize) -> Self {
        let plan = model.plan();
        Workspace {
            rows,
            buffers: plan
                .buffers
                .iter()
                .map(|&len| vec![0.0; rows * len])
                .collect(),
            grad_a: Vec::new(),
            grad_b: Vec::new(),
            masks: Vec::new(),
            argmax: Vec::new(),
            scratch: vec![0.0; plan.scratch_len(rows)],
            gemm: GemmWorkspace::new(),
            split: None,
            trainable: false,
            dropout_on: false,
        }
    }

    /// A workspace for forward and backward passes of `model` over at most `rows` examples.
    pub fn new(model: &Model, rows: usize) -> Self {
        let plan = model.plan();
        let widest = plan.widest();
        let kept = plan.kept_lens();
        Workspace {
            grad_a: vec![0.0; rows * widest],
            grad_b: vec![0.0; rows * widest],
            masks: kept.iter().map(|&(m, _)| vec![0.0; rows * m]).collect(),
            argmax: kept.iter().map(|&(_, a)| vec![0; rows * a]).collect(),
            trainable: true,
            ..Self::inference(model, rows)
        }
    }

    /// A workspace for the dense head of `model` (the layers from `from` on, which
    /// [`Model::head_start`] names) over `rows` examples: the buffers those layers read and
    /// write, and the products of its wide linear layers split into pieces for `threads`
    /// threads.
    pub(crate) fn head(model: &Model, rows: usize, from: usize, threads: usize) -> Self {
        let plan = model.plan();
        let steps = &plan.steps[from..];
        let used: Vec<usize> = steps
            .iter()
            .flat_map(|s| s.src.into_iter().chain([s.dst]))
            .collect();
        let widest = steps
            .iter()
            .map(|s| s.in_len.max(s.out_len))
            .max()
            .unwrap_or(0);
        let kept = plan.kept_lens();
        let mut ws = Workspace {
            rows,
            buffers: (plan.buffers.iter().enumerate())
                .map(|(b, &len)| vec![0.0; if used.contains(&b) { rows * len } else { 0 }])
                .collect(),
            grad_a: vec![0.0; rows * widest],
            grad_b: vec![0.0; rows * widest],
            masks: (kept.iter().enumerate())
                .map(|(i, &(m, _))| vec![0.0; if i >= from { rows * m } else { 0 }])
                .collect(),
            argmax: (kept.iter().enumerate())
                .map(|(i, &(_, a))| vec![0; if i >= from { rows * a } else { 0 }])
                .collect(),
            scratch: Vec::new(),
            gemm: GemmWorkspace::new(),
            split: None,
            trainable: true,
            dropout_on: false,
        };
        ws.split = Some(Split::new(threads, rows, widest));
        ws
    }

    /// Floats the workspace holds (activations, gradients, kept values, scratch), for
    /// sizing how many rows to give it.
    pub fn floats(&self) -> usize {
        self.buffers.iter().map(Vec::len).sum::<usize>()
            + self.grad_a.len()
            + self.grad_b.len()
            + self.masks.iter().map(Vec::len).sum::<usize>()
            + self.argmax.iter().map(Vec::len).sum::<usize>()
            + self.scratch.len()
    }

    /// The most examples one pass may take.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The gradient of the loss with respect to the logits, as [`Model::loss`] left it
    /// (`[rows, classes]`).
    pub fn logits_grad(&self, rows: usize, classes: usize) -> &[f32] {
        &self.grad_a[..rows * classes]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Architecture, Input};

    #[test]
    fn inference_workspace_gives_the_same_logits_without_gradient_buffers() {
        let model = Model::he_normal(Architecture::mlp(&[12]), 5);
        let x: Vec<f32> = (0..3 * 784).map(|i| (i % 17) as f32 / 17.0).collect();
        let mut full = Workspace::new(&model, 3);
        let mut lean = Workspace::inference(&model, 3);
        let want = model.inference(Input::Unit(&x), 3, &mut full).to_vec();
        assert_eq!(model.inference(Input::Unit(&x), 3, &mut lean), &want[..]);
        assert!(lean.grad_a.is_empty() && lean.grad_b.is_empty());
        assert_eq!(full.grad_a.len(), 3 * 784);
    }

    #[test]
    fn pixels_give_the_bits_of_their_unit_values() {
        // Mostly zero, like MNIST, so the narrow products skip whole groups.
        let rows = 9;
        let pixels: Vec<u8> = (0..rows * 784)
            .map(|i| {
                if i % 784 > 300 && i % 5 != 0 {
                    (i % 256) as u8
                } else {
                    0
                }
            })
            .collect();
        let unit: Vec<f32> = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
        let labels: Vec<u8> = (0..rows as u8).collect();
        for arch in [Architecture::softmax_regression(), Architecture::mlp(&[20])] {
            let model = Model::he_normal(arch, 2);
            let run = |input: Input<'_>| {
                let mut ws = Workspace::new(&model, rows);
                model.forward(input, rows, &mut ws);
                let loss = model.loss(&labels, 1.0 / rows as f32, &mut ws);
                let mut grads = vec![0.0; model.params().len()];
                model.backward(input, rows, &mut ws, &mut grads, None);
                (loss.to_bits(), grads)
            };
            assert_eq!(run(Input::Pixels(&pixels)), run(Input::Unit(&unit)));
        }
    }

    #[test]
    #[should_panic(expected = "not ::inference")]
    fn backward_refuses_an_inference_workspace() {
        let model = Model::softmax_regression();
        let x = vec![0.5f32; 784];
        let mut ws = Workspace::inference(&model, 1);
        model.forward(Input::Unit(&x), 1, &mut ws);
        let mut grads = vec![0.0; model.params().len()];
        model.backward(Input::Unit(&x), 1, &mut ws, &mut grads, None);
    }
}
