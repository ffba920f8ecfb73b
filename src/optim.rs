//! Optimisers: they walk the flat parameter arena and its gradient, knowing no layers.

use crate::kernels::elementwise::AdamStep;

/// Which update rule, with its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerKind {
    /// Plain SGD: `w -= lr * g` (the tutorial's `GradientDescentOptimizer`).
    Sgd,
    /// SGD with (heavy-ball) momentum: `v = μ v + g; w -= lr * v`, as PyTorch's SGD.
    Momentum {
        /// μ, typically 0.9.
        momentum: f32,
    },
    /// Adam (Kingma & Ba), bias-corrected.
    Adam {
        /// β1, typically 0.9.
        beta1: f32,
        /// β2, typically 0.999.
        beta2: f32,
        /// ε, typically 1e-8.
        eps: f32,
    },
}

/// Learning-rate schedule over the run's updates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// The same rate throughout.
    Constant,
    /// Multiply by `gamma` every `every` updates.
    Step {
        /// Updates between drops.
        every: u64,
        /// Factor of each drop.
        gamma: f32,
    },
    /// Cosine decay from the base rate to 0 over `total` updates.
    Cosine {
        /// Updates of the whole run.
        total: u64,
    },
}

impl Schedule {
    /// The rate for update number `step` (0-based) from base rate `lr`.
    pub fn rate(&self, lr: f32, step: u64) -> f32 {
        match *self {
            Schedule::Constant => lr,
            Schedule::Step { every, gamma } => lr * gamma.powi((step / every.max(1)) as i32),
            Schedule::Cosine { total } => {
                let t = (step as f64 / total.max(1) as f64).min(1.0);
                (f64::from(lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
            }
        }
    }
}

/// An optimiser with its state (velocity or moments), sized once for the arena.
#[derive(Debug, Clone, PartialEq)]
pub struct Optimizer {
    /// Update rule.
    pub kind: OptimizerKind,
    /// Base learning rate.
    pub lr: f32,
    /// L2 weight decay λ: adds `λ w` to the gradient (0 turns it off).
    pub weight_decay: f32,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Updates applied so far.
    pub steps: u64,
    /// Momentum velocity, or Adam's first moment.
    pub first: Vec<f32>,
    /// Adam's second moment.
    pub second: Vec<f32>,
}

impl Optimizer {
    /// An optimiser for `params` parameters.
    pub fn new(kind: OptimizerKind, lr: f32, params: usize) -> Self {
        let (first, second) = match kind {
            OptimizerKind::Sgd => (Vec::new(), Vec::new()),
            OptimizerKind::Momentum { .. } => (vec![0.0; params], Vec::new()),
            OptimizerKind::Adam { .. } => (vec![0.0; params], vec![0.0; params]),
        };
        Optimizer {
            kind,
            lr,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            steps: 0,
            first,
            second,
        }
    }

    /// Plain SGD at rate `lr`.
    pub fn sgd(lr: f32) -> Self {
        Self::new(OptimizerKind::Sgd, lr, 0)
    }

    /// The rate of the next update.
    pub fn current_rate(&self) -> f32 {
        self.schedule.rate(self.lr, self.steps)
    }

    /// Applies one update to `params` from `grad` (same length).
    pub fn apply(&mut self, params: &mut [f32], grad: &[f32]) {
        assert_eq!(
            params.len(),
            grad.len(),
            "parameters and gradient differ in size"
        );
        let (update, first, second) = self.begin_update();
        update.apply_part(params, grad, first, second);
    }

    /// Whether the state (velocity, moments) is empty or as long as an arena of `params`,
    /// so that it splits with the arena into parts.
    pub(crate) fn state_fits(&self, params: usize) -> bool {
        [self.first.len(), self.second.len()]
            .iter()
            .all(|&l| l == 0 || l == params)
    }

    /// Starts one update, for applying it part by part ([`Update::apply_part`]): counts it,
    /// and returns its rule with this step's rates and the state the rule changes (the
    /// velocity or the moments; empty slices for plain SGD). [`Optimizer::apply`] is this
    /// with the whole arena as one part.
    pub fn begin_update(&mut self) -> (Update, &mut [f32], &mut [f32]) {
        let lr = self.current_rate();
        self.steps += 1;
        let (c1, c2) = match self.kind {
            OptimizerKind::Adam { beta1, beta2, .. } => {
                let t = self.steps as i32;
                (1.0 - beta1.powi(t), 1.0 - beta2.powi(t))
            }
            _ => (1.0, 1.0),
        };
        let update = Update {
            kind: self.kind,
            lr,
            weight_decay: self.weight_decay,
            c1,
            c2,
        };
        (update, &mut self.first, &mut self.second)
    }
}

/// One update's rule and rates, the same for every parameter (from
/// [`Optimizer::begin_update`]). Each parameter's new value depends on its own weight,
/// gradient and state alone, so the arena can be updated in parts, in any order or in
/// parallel, with the bits of one whole-arena update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Update {
    kind: OptimizerKind,
    lr: f32,
    weight_decay: f32,
    /// Adam's bias corrections, `1 - β^t`.
    c1: f32,
    c2: f32,
}

impl Update {
    /// Updates `params` from `grad`, with `first` and `second` the same part of the
    /// optimiser's state (empty where the rule keeps none).
    pub fn apply_part(
        &self,
        params: &mut [f32],
        grad: &[f32],
        first: &mut [f32],
        second: &mut [f32],
    ) {
        let Update {
            lr,
            weight_decay: wd,
            c1,
            c2,
            ..
        } = *self;
        match self.kind {
            OptimizerKind::Sgd if wd == 0.0 => crate::kernels::scaled_add(params, -lr, grad),
            OptimizerKind::Sgd => {
                for (w, g) in params.iter_mut().zip(grad) {
                    *w -= lr * (g + wd * *w);
                }
            }
            OptimizerKind::Momentum { momentum } => {
                for ((w, g), v) in params.iter_mut().zip(grad).zip(first) {
                    *v = momentum * *v + (g + wd * *w);
                    *w -= lr * *v;
                }
            }
            OptimizerKind::Adam { beta1, beta2, eps } => {
                let step = AdamStep {
                    lr,
                    weight_decay: wd,
                    beta1,
                    beta2,
                    eps,
                    c1,
                    c2,
                };
                crate::kernels::elementwise::adam(params, grad, first, second, step);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_is_w_minus_lr_g() {
        let mut o = Optimizer::sgd(0.5);
        let mut w = [1.0, 2.0];
        o.apply(&mut w, &[1.0, -2.0]);
        assert_eq!(w, [0.5, 3.0]);
    }

    #[test]
    fn momentum_accumulates_velocity() {
        let mut o = Optimizer::new(OptimizerKind::Momentum { momentum: 0.9 }, 1.0, 1);
        let mut w = [0.0];
        o.apply(&mut w, &[1.0]);
        o.apply(&mut w, &[1.0]);
        assert!((w[0] - -(1.0 + 1.9)).abs() < 1e-6);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        let kind = OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let mut o = Optimizer::new(kind, 0.01, 2);
        let mut w = [1.0, 1.0];
        o.apply(&mut w, &[3.0, -0.5]);
        assert!(
            (w[0] - 0.99).abs() < 1e-6 && (w[1] - 1.01).abs() < 1e-6,
            "{w:?}"
        );
    }

    #[test]
    fn adam_gives_the_bits_of_the_scalar_formula_on_every_level() {
        let step = AdamStep {
            lr: 0.003,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            c1: 1.0 - 0.9f32.powi(3),
            c2: 1.0 - 0.999f32.powi(3),
        };
        let value = |i: usize, scale: f32| ((i * 7919 % 263) as f32 - 131.0) * scale;
        for len in [0, 1, 15, 16, 17, 40, 1000] {
            let w0: Vec<f32> = (0..len).map(|i| value(i, 0.01)).collect();
            let g: Vec<f32> = (0..len).map(|i| value(i + 5, 0.3)).collect();
            let m0: Vec<f32> = (0..len).map(|i| value(i + 9, 0.02)).collect();
            let v0: Vec<f32> = (0..len).map(|i| value(i + 2, 0.05).abs()).collect();
            let (mut w, mut m, mut v) = (w0.clone(), m0.clone(), v0.clone());
            for i in 0..len {
                let gi = g[i] + step.weight_decay * w[i];
                m[i] = step.beta1 * m[i] + (1.0 - step.beta1) * gi;
                v[i] = step.beta2 * v[i] + (1.0 - step.beta2) * gi * gi;
                w[i] -= step.lr * (m[i] / step.c1) / ((v[i] / step.c2).sqrt() + step.eps);
            }
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            for level in crate::kernels::simd::Level::supported() {
                let (mut wk, mut mk, mut vk) = (w0.clone(), m0.clone(), v0.clone());
                crate::kernels::simd::with_level(level, || {
                    crate::kernels::elementwise::adam(&mut wk, &g, &mut mk, &mut vk, step)
                });
                assert_eq!(bits(&wk), bits(&w), "{level} on {len}");
                assert_eq!(bits(&mk), bits(&m), "{level} on {len}");
                assert_eq!(bits(&vk), bits(&v), "{level} on {len}");
            }
        }
    }

    #[test]
    fn schedules() {
        assert_eq!(
            Schedule::Step {
                every: 10,
                gamma: 0.5
            }
            .rate(1.0, 25),
            0.25
        );
        assert!((Schedule::Cosine { total: 100 }.rate(1.0, 50) - 0.5).abs() < 1e-6);
        assert_eq!(Schedule::Cosine { total: 100 }.rate(1.0, 100), 0.0);
        assert_eq!(Schedule::Constant.rate(0.1, 1000), 0.1);
    }
}
