//! `softnet train`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::ValueEnum;
use softnet::data::BatchOrder;
use softnet::nn::{Architecture, Model};
use softnet::optim::{Optimizer, OptimizerKind, Schedule};
use softnet::summary::TensorBoardObserver;
use softnet::train::{EvalEvent, Evaluator, Observer, OnNan, RunConfig, StepStats, Trainer};

use crate::DataArgs;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Order {
    /// Training images in file order (the reference runs).
    Sequential,
    /// A seeded shuffle every epoch (the tutorial's `next_batch`).
    Shuffle,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModelName {
    /// The tutorial's CNN: conv5x5x32,pool2,conv5x5x64,pool2,fc1024,dropout0.5,fc10.
    Cnn,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OptimizerName {
    /// Plain stochastic gradient descent (the tutorial's).
    Sgd,
    /// SGD with momentum (--momentum).
    Momentum,
    /// Adam (--beta1, --beta2, --adam-eps).
    Adam,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScheduleName {
    /// The same learning rate throughout.
    Constant,
    /// Multiply the rate by --lr-gamma every --lr-step updates.
    Step,
    /// Cosine decay to 0 over the run.
    Cosine,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NanPolicy {
    /// Stop with an error naming the step; no model is saved.
    Stop,
    /// Skip the update and go on.
    Skip,
}

fn positive_usize(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

fn positive_finite(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err("must be a finite number above 0".into())
    }
}

fn unit_interval(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be in [0, 1)".into())
    }
}

fn non_negative(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err("must be a finite number, 0 or above".into())
    }
}

fn steps_arg(s: &str) -> Result<u64, String> {
    let v: u64 = s.parse().map_err(|e| format!("{e}"))?;
    if v == 0 || v > 1_000_000_000 {
        Err("must be between 1 and 1000000000".into())
    } else {
        Ok(v)
    }
}

fn hidden_arg(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|w| positive_usize(w.trim()).map_err(|e| format!("hidden width {w:?}: {e}")))
        .collect()
}

fn arch_arg(s: &str) -> Result<Architecture, String> {
    Architecture::from_spec(s).map_err(|e| e.to_string())
}

/// Flags of `softnet train`. The defaults are the tutorial's run.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Number of SGD updates.
    #[arg(long, default_value_t = 2000, value_parser = steps_arg, conflicts_with = "epochs")]
    steps: u64,
    /// Train for this many passes over the training set instead of --steps.
    #[arg(long, value_parser = steps_arg)]
    epochs: Option<u64>,
    /// Examples per update.
    #[arg(long, default_value_t = 100, value_parser = positive_usize)]
    batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.1, value_parser = positive_finite)]
    lr: f32,
    /// Evaluate on the test set every N updates (0: only at the end).
    #[arg(long, default_value_t = 100)]
    eval_every: u64,
    /// Order of the training examples.
    #[arg(long, value_enum, default_value_t = Order::Shuffle)]
    order: Order,
    /// Seed of the shuffles, of the initial weights of hidden layers and of dropout masks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long, value_parser = positive_usize)]
    threads: Option<usize>,
    /// Save the trained model here (safetensors).
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Hidden ReLU layer widths, e.g. 256 or 512,256 (none: softmax regression).
    #[arg(long, value_parser = hidden_arg, value_name = "W1,W2,...")]
    // Spelled out so clap takes one value parsed as a whole list; a bare `Option<Vec<_>>`
    // means "several usize values" to clap's derive and panics when `hidden_arg` answers a Vec.
    hidden: Option<::std::vec::Vec<usize>>,
    /// Network layers, comma-separated: conv<k>x<k>x<out> (SAME, stride 1; add s<stride>
    /// and/or valid, e.g. conv3x3x16s2valid), pool<size> (stride = size; or pool3s2),
    /// fc<out>, dropout<rate>. ReLU follows every conv and every fc but the last; the last
    /// must be fc10. E.g. conv5x5x32,pool2,conv5x5x64,pool2,fc1024,dropout0.5,fc10.
    #[arg(long, value_name = "LAYERS", value_parser = arch_arg, conflicts_with_all = ["hidden", "model"])]
    arch: Option<Architecture>,
    /// A named network: cnn is the tutorial's convolutional network (the --arch example).
    #[arg(long, value_enum, conflicts_with = "hidden")]
    model: Option<ModelName>,
    /// Start from weights in DIR: W1.npy, W2.npy, ... (or W.npy), biases b1.npy ... if present, else zero;
    /// for a network with convolutions conv1_w.npy, conv1_b.npy, ..., fc1_w.npy, ... as TensorFlow dumps them (HWIO filters).
    #[arg(long, value_name = "DIR")]
    init: Option<PathBuf>,
    /// Update rule.
    #[arg(long, value_enum, default_value_t = OptimizerName::Sgd)]
    optimizer: OptimizerName,
    /// Momentum of --optimizer momentum.
    #[arg(long, default_value_t = 0.9, value_parser = unit_interval)]
    momentum: f32,
    /// Adam's beta1.
    #[arg(long, default_value_t = 0.9, value_parser = unit_interval)]
    beta1: f32,
    /// Adam's beta2.
    #[arg(long, default_value_t = 0.999, value_parser = unit_interval)]
    beta2: f32,
    /// Adam's epsilon.
    #[arg(long, default_value_t = 1e-8, value_parser = positive_finite)]
    adam_eps: f32,
    /// L2 weight decay (0: off).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
    weight_decay: f32,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = ScheduleName::Constant)]
    schedule: ScheduleName,
    /// Updates between drops of --schedule step.
    #[arg(long, default_value_t = 2000, value_parser = steps_arg)]
    lr_step: u64,
    /// Factor of each drop of --schedule step.
    #[arg(long, default_value_t = 0.1, value_parser = positive_finite)]
    lr_gamma: f32,
    /// What to do when the loss becomes NaN or infinite.
    #[arg(long, value_enum, default_value_t = NanPolicy::Stop)]
    on_nan: NanPolicy,
    /// Write TensorBoard summaries into DIR/train and DIR/test (from step 0, at each evaluation).
    #[arg(long, value_name = "DIR")]
    logdir: Option<PathBuf>,
    /// Write a crash-safe checkpoint (model, optimiser state, data position) into DIR.
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    checkpoint_dir: Option<PathBuf>,
    /// Updates between checkpoints.
    #[arg(long, default_value_t = 100, value_parser = steps_arg, value_name = "N")]
    checkpoint_every: u64,
    /// Continue from the newest checkpoint in DIR (same other flags), checkpointing there.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Print only the final accuracy.
    #[arg(long, short)]
    quiet: bool,
}

/// Prints each evaluation as the tutorial does and drives the progress bar.
struct Console {
    bar: indicatif::ProgressBar,
    quiet: bool,
}

impl Observer for Console {
    fn on_step(&mut self, _trainer: &Trainer, stats: &StepStats) -> Result<(), String> {
        self.bar.inc(1);
        if self.bar.position() % 50 == 0 {
            self.bar.set_message(format!("loss {:.4}", stats.loss));
        }
        Ok(())
    }

    fn on_eval(&mut self, e: &EvalEvent<'_>) -> Result<(), String> {
        if !self.quiet {
            self.bar.suspend(|| {
                println!(
                    "step: {}, test_accuracy: {:.4}, test_loss: {:.4}",
                    e.step, e.test.accuracy, e.test.loss
                )
            });
        }
        Ok(())
    }
}

fn build_model(args: &TrainArgs) -> anyhow::Result<Model> {
    let arch = match (&args.model, &args.arch, &args.hidden) {
        (Some(ModelName::Cnn), _, _) => Architecture::cnn(),
        (None, Some(arch), _) => arch.clone(),
        (None, None, Some(h)) => Architecture::mlp(h),
        (None, None, None) => Architecture::softmax_regression(),
    };
    if arch.classes() != softnet::data::CLASSES {
        bail!(
            "--arch: the last layer has {} outputs, MNIST has {} classes (end with fc{})",
            arch.classes(),
            softnet::data::CLASSES,
            softnet::data::CLASSES
        );
    }
    let mut model = if arch.is_softmax_regression() {
        Model::zeros(arch)
    } else {
        Model::he_normal(arch, args.seed)
    };
    if let Some(dir) = &args.init {
        softnet::io::npy::load_init_dir(&mut model, dir)?;
    }
    Ok(model)
}

/// The data of a run: loaded, or with the training images still to inflate while it trains.
enum Data {
    Loaded(softnet::data::Mnist),
    Arriving(softnet::data::PendingMnist),
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if let Some(path) = &args.save {
        check_writable(path)?;
    }
    let pending = args.data.open()?;
    // Batches in file order can start while the training images inflate; otherwise (and
    // when the TensorBoard logs need the training set from step 0) everything loads first.
    let overlapped = matches!(args.order, Order::Sequential) && args.logdir.is_none();
    let (train_len, data) = match pending.train_len() {
        Some(len) if overlapped => (len, Data::Arriving(pending)),
        _ => {
            let mnist = pending.load()?;
            (mnist.train.len(), Data::Loaded(mnist))
        }
    };
    let loaded = started.elapsed();
    let model = build_model(&args)?;
    let kind = match args.optimizer {
        OptimizerName::Sgd => OptimizerKind::Sgd,
        OptimizerName::Momentum => OptimizerKind::Momentum {
            momentum: args.momentum,
        },
        OptimizerName::Adam => OptimizerKind::Adam {
            beta1: args.beta1,
            beta2: args.beta2,
            eps: args.adam_eps,
        },
    };
    let steps = match args.epochs {
        Some(e) => (e * train_len as u64).div_ceil(args.batch as u64),
        None => args.steps,
    };
    let mut optimizer = Optimizer::new(kind, args.lr, model.params().len());
    optimizer.weight_decay = args.weight_decay;
    optimizer.schedule = match args.schedule {
        ScheduleName::Constant => Schedule::Constant,
        ScheduleName::Step => Schedule::Step {
            every: args.lr_step,
            gamma: args.lr_gamma,
        },
        ScheduleName::Cosine => Schedule::Cosine { total: steps },
    };
    let order = match args.order {
        Order::Sequential => BatchOrder::Sequential,
        Order::Shuffle => BatchOrder::Shuffle { seed: args.seed },
    };
    let mut trainer = Trainer::new(model, optimizer, train_len, args.batch, order, args.threads);
    trainer.set_seed(args.seed);
    let checkpointer = checkpoints(&args, &mut trainer, steps)?;
    let bar = if std::io::stderr().is_terminal() && !args.quiet {
        let bar = indicatif::ProgressBar::new(steps);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} steps {elapsed} {msg}")
                .expect("a valid template"),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let console = Console {
        bar,
        quiet: args.quiet,
    };
    let tensorboard = match &args.logdir {
        Some(dir) => Some(
            TensorBoardObserver::create(dir, trainer.model().architecture())
                .with_context(|| format!("writing TensorBoard logs into {}", dir.display()))?,
        ),
        None => None,
    };
    let mut observers = (console, tensorboard);
    let config = RunConfig {
        steps,
        eval_every: args.eval_every,
        on_nan: match args.on_nan {
            NanPolicy::Stop => OnNan::Stop,
            NanPolicy::Skip => OnNan::Skip,
        },
    };
    let train_started = Instant::now();
    observers.0.bar.set_position(trainer.steps_done());
    let load_overlapped = matches!(data, Data::Arriving(_));
    let summary = match data {
        Data::Loaded(mnist) => {
            let mut evaluator =
                Evaluator::with_pool(trainer.model(), mnist.test.len(), trainer.pool().clone());
            if observers.1.is_some() {
                // The logs start from the initial weights, as the tutorial's do.
                softnet::train::observe_initial(&trainer, &mnist, &mut evaluator, &mut observers)?;
            }
            let mut observer = softnet::io::checkpoint::Checkpointed {
                inner: &mut observers,
                checkpointer,
            };
            softnet::train::run(&mut trainer, &mnist, &config, &mut evaluator, &mut observer)?
        }
        Data::Arriving(pending) => {
            let mut observer = softnet::io::checkpoint::Checkpointed {
                inner: &mut observers,
                checkpointer,
            };
            softnet::train::run_while_loading(&mut trainer, pending, &config, &mut observer)?.1
        }
    };
    let trained = train_started.elapsed();
    observers.0.bar.finish_and_clear();
    println!("Accuracy: {:.4}", summary.test.accuracy);
    if !args.quiet {
        eprintln!(
            "{} ({} parameters), {} updates of {} on {} thread(s): {}",
            trainer.model().architecture().describe(),
            trainer.model().params().len(),
            steps,
            args.batch,
            trainer.threads(),
            if load_overlapped {
                format!(
                    "files read in {:.3} s, then inflating overlapped with train+eval: {:.3} s",
                    loaded.as_secs_f64(),
                    trained.as_secs_f64()
                )
            } else {
                format!(
                    "load {:.3} s, train+eval {:.3} s",
                    loaded.as_secs_f64(),
                    trained.as_secs_f64()
                )
            }
        );
    }
    if let Some(path) = &args.save {
        let settings = format!(
            "{{\"steps\":{steps},\"batch\":{},\"lr\":{},\"order\":\"{:?}\",\"seed\":{},\"optimizer\":\"{:?}\"}}",
            args.batch, args.lr, args.order, args.seed, args.optimizer
        );
        softnet::io::save_model(trainer.model(), path, &[("training", settings)])
            .with_context(|| format!("saving the model to {}", path.display()))?;
    }
    Ok(())
}

/// Fails early, before training, if the model could not be saved.
fn check_writable(path: &std::path::Path) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        bail!(
            "cannot save the model to {}: folder {} does not exist",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        bail!(
            "cannot save the model to {}: it is a folder",
            path.display()
        );
    }
    Ok(())
}

/// Sets up `--checkpoint-dir`/`--resume`: restores the newest checkpoint into `trainer` when
/// resuming, and returns the observer that writes the next ones.
fn checkpoints(
    args: &TrainArgs,
    trainer: &mut Trainer,
    steps: u64,
) -> anyhow::Result<Option<softnet::io::checkpoint::Checkpointer>> {
    use softnet::io::checkpoint::{load_latest, Checkpointer};
    let Some(dir) = args.resume.as_ref().or(args.checkpoint_dir.as_ref()) else {
        return Ok(None);
    };
    // Everything that shapes the trained weights: a resume must match it exactly.
    let config = serde_json::json!({
        "steps": steps, "batch": args.batch, "lr": args.lr, "order": format!("{:?}", args.order),
        "seed": args.seed, "hidden": args.hidden, "init": args.init, "optimizer": format!("{:?}", args.optimizer),
        "momentum": args.momentum, "beta1": args.beta1, "beta2": args.beta2, "adam_eps": args.adam_eps,
        "weight_decay": args.weight_decay, "schedule": format!("{:?}", args.schedule), "lr_step": args.lr_step,
        "lr_gamma": args.lr_gamma, "on_nan": format!("{:?}", args.on_nan),
    })
    .to_string();
    if args.resume.is_some() {
        let (checkpoint, path) = load_latest(dir)?;
        checkpoint.restore_into(trainer, &config, &path)?;
        if !args.quiet {
            eprintln!(
                "resuming from {} (step {})",
                path.display(),
                checkpoint.steps
            );
        }
    }
    Ok(Some(Checkpointer::new(
        dir,
        args.checkpoint_every,
        &config,
    )?))
}
