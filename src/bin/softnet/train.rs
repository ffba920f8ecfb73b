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
    /// Examples per update.
    #[arg(long, help_heading = "Data", default_value_t = 100, value_parser = positive_usize)]
    batch: usize,
    /// Order of the training examples.
    #[arg(long, help_heading = "Data", value_enum, default_value_t = Order::Shuffle)]
    order: Order,
    /// Hidden ReLU layer widths, e.g. 256 or 512,256 (none: softmax regression).
    #[arg(long, help_heading = "Model", value_parser = hidden_arg, value_name = "W1,W2,...")]
    // Spelled out so clap takes one value parsed as a whole list; a bare `Option<Vec<_>>`
    // means "several usize values" to clap's derive and panics when `hidden_arg` answers a Vec.
    hidden: Option<::std::vec::Vec<usize>>,
    /// Network layers, comma-separated: conv<k>x<k>x<out> (SAME, stride 1; add s<stride>
    /// and/or valid, e.g. conv3x3x16s2valid), pool<size> (stride = size; or pool3s2),
    /// fc<out>, dropout<rate>. ReLU follows every conv and every fc but the last; the last
    /// must be fc10. E.g. conv5x5x32,pool2,conv5x5x64,pool2,fc1024,dropout0.5,fc10.
    #[arg(long, help_heading = "Model", value_name = "LAYERS", value_parser = arch_arg, conflicts_with_all = ["hidden", "model"])]
    arch: Option<Architecture>,
    /// A named network: cnn is the tutorial's convolutional network (the --arch example).
    #[arg(long, help_heading = "Model", value_enum, conflicts_with = "hidden")]
    model: Option<ModelName>,
    /// Start from weights in DIR: W1.npy, W2.npy, ... (or W.npy), biases b1.npy ... if present, else zero;
    /// for a network with convolutions conv1_w.npy, conv1_b.npy, ..., fc1_w.npy, ... as TensorFlow dumps them (HWIO filters).
    #[arg(long, help_heading = "Model", value_name = "DIR")]
    init: Option<PathBuf>,
    /// Seed of the shuffles, of the initial weights of hidden layers and of dropout masks.
    #[arg(long, help_heading = "Model", default_value_t = 0)]
    seed: u64,
    /// Update rule.
    #[arg(long, help_heading = "Optimiser", value_enum, default_value_t = OptimizerName::Sgd)]
    optimizer: OptimizerName,
    /// Learning rate.
    #[arg(long, help_heading = "Optimiser", default_value_t = 0.1, value_parser = positive_finite)]
    lr: f32,
    /// Momentum of --optimizer momentum.
    #[arg(long, help_heading = "Optimiser", default_value_t = 0.9, value_parser = unit_interval)]
    momentum: f32,
    /// Adam's beta1.
    #[arg(long, help_heading = "Optimiser", default_value_t = 0.9, value_parser = unit_interval)]
    beta1: f32,
    /// Adam's beta2.
    #[arg(long, help_heading = "Optimiser", default_value_t = 0.999, value_parser = unit_interval)]
    beta2: f32,
    /// Adam's epsilon.
    #[arg(long, help_heading = "Optimiser", default_value_t = 1e-8, value_parser = positive_finite)]
    adam_eps: f32,
    /// L2 weight decay (0: off).
    #[arg(long, help_heading = "Optimiser", default_value_t = 0.0, value_parser = non_negative)]
    weight_decay: f32,
    /// What to do when the loss becomes NaN or infinite.
    #[arg(long, help_heading = "Optimiser", value_enum, default_value_t = NanPolicy::Stop)]
    on_nan: NanPolicy,
    /// Number of SGD updates.
    #[arg(long, help_heading = "Schedule", default_value_t = 2000, value_parser = steps_arg, conflicts_with = "epochs")]
    steps: u64,
    /// Train for this many passes over the training set instead of --steps.
    #[arg(long, help_heading = "Schedule", value_parser = steps_arg)]
    epochs: Option<u64>,
    /// Learning-rate schedule.
    #[arg(long, help_heading = "Schedule", value_enum, default_value_t = ScheduleName::Constant)]
    schedule: ScheduleName,
    /// Updates between drops of --schedule step.
    #[arg(long, help_heading = "Schedule", default_value_t = 2000, value_parser = steps_arg)]
    lr_step: u64,
    /// Factor of each drop of --schedule step.
    #[arg(long, help_heading = "Schedule", default_value_t = 0.1, value_parser = positive_finite)]
    lr_gamma: f32,
    /// Evaluate on the test set every N updates (0: only at the end).
    #[arg(long, help_heading = "Output", default_value_t = 100)]
    eval_every: u64,
    /// Save the trained model here (safetensors).
    #[arg(long, help_heading = "Output", value_name = "FILE")]
    save: Option<PathBuf>,
    /// Write TensorBoard summaries into DIR/train and DIR/test (from step 0, at each evaluation).
    #[arg(long, help_heading = "Output", value_name = "DIR")]
    logdir: Option<PathBuf>,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long, help_heading = "Output", value_parser = positive_usize)]
    threads: Option<usize>,
    /// Print only the final accuracy.
    #[arg(long, help_heading = "Output", short)]
    quiet: bool,
    /// Write a crash-safe checkpoint (model, optimiser state, data position) into DIR.
    #[arg(long, help_heading = "Checkpoints", value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Updates between checkpoints.
    #[arg(long, help_heading = "Checkpoints", default_value_t = 100, value_parser = steps_arg, value_name = "N")]
    checkpoint_every: u64,
    /// Continue from the newest checkpoint in DIR, checkpointing there: add it to the command
    /// that was interrupted (flags that change the result must stay as they were).
    #[arg(long, help_heading = "Checkpoints", value_name = "DIR")]
    resume: Option<PathBuf>,
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
    let checkpoint_dir = args.resume.clone().or_else(|| args.checkpoint_dir.clone());
    let logging = observers.1.is_some();
    interrupt::install();
    let mut observer = Interruptible(softnet::train::checkpoint::Checkpointed {
        inner: &mut observers,
        checkpointer,
    });
    let outcome = match data {
        Data::Loaded(mnist) => {
            let mut evaluator =
                Evaluator::with_pool(trainer.model(), mnist.test.len(), trainer.pool().clone());
            let initial = if logging {
                // The logs start from the initial weights, as the tutorial's do.
                softnet::train::observe_initial(
                    &trainer,
                    &mnist,
                    &mut evaluator,
                    &mut *observer.0.inner,
                )
                .map(drop)
            } else {
                Ok(())
            };
            initial.and_then(|()| {
                softnet::train::run(&mut trainer, &mnist, &config, &mut evaluator, &mut observer)
            })
        }
        Data::Arriving(pending) => {
            softnet::train::run_while_loading(&mut trainer, pending, &config, &mut observer)
                .map(|(_, summary)| summary)
        }
    };
    drop(observer);
    let summary = match outcome {
        Err(_) if interrupt::requested() => {
            observers.0.bar.finish_and_clear();
            return Err(interrupted(trainer.steps_done(), checkpoint_dir.as_deref()));
        }
        other => other?,
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
        if !args.quiet {
            eprintln!("model saved to {}", path.display());
        }
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
) -> anyhow::Result<Option<softnet::train::checkpoint::Checkpointer>> {
    use softnet::train::checkpoint::Checkpointer;
    let dir = match (&args.resume, &args.checkpoint_dir) {
        (Some(resume), Some(dir)) if resume != dir => bail!(
            "--resume {} and --checkpoint-dir {} name different folders: a resumed run \
             checkpoints where it resumes from",
            resume.display(),
            dir.display()
        ),
        (Some(dir), _) | (None, Some(dir)) => dir,
        (None, None) => return Ok(None),
    };
    let settings = RunSettings::of(args, steps);
    if args.resume.is_some() {
        let (checkpoint, path) = newest_checkpoint(dir, args.checkpoint_every)?;
        let arch = trainer.model().architecture().describe();
        settings.check_against(&checkpoint, &arch, &path)?;
        // The flags that shape the result are the checkpoint's (just checked); the others
        // (--steps with a constant rate, say) may differ, so the checkpoint's own record is
        // what the library's check compares with.
        checkpoint.restore_into(trainer, &checkpoint.config, &path)?;
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
        &settings.to_json(),
    )?))
}

/// The newest checkpoint in `dir`, or an error that says how to start when there is none.
fn newest_checkpoint(
    dir: &std::path::Path,
    every: u64,
) -> anyhow::Result<(softnet::train::checkpoint::Checkpoint, PathBuf)> {
    use softnet::train::checkpoint::{list_checkpoints, load_latest, CheckpointError};
    let none_yet = match list_checkpoints(dir) {
        Ok(list) => list.is_empty(),
        Err(CheckpointError::Io { source, .. }) => source.kind() == std::io::ErrorKind::NotFound,
        Err(e) => return Err(e.into()),
    };
    if none_yet {
        bail!(
            "{}: no checkpoint (ckpt-*.safetensors) to resume from yet. To start this run, \
             give the same command with --checkpoint-dir {} instead of --resume (it writes a \
             checkpoint every {every} updates, --checkpoint-every)",
            dir.display(),
            dir.display()
        );
    }
    Ok(load_latest(dir)?)
}

/// An enum flag's value as the command line spells it.
fn flag_value(value: &impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_string())
}

/// The flags of a run that shape its result, as `(flag, value)` the way the command line
/// takes them; a checkpoint records them, and a resume must give the same.
struct RunSettings(Vec<(&'static str, String)>);

impl RunSettings {
    /// Every flag a run may record, in the order they are listed.
    const ORDER: [&'static str; 15] = [
        "--batch",
        "--lr",
        "--order",
        "--seed",
        "--optimizer",
        "--momentum",
        "--beta1",
        "--beta2",
        "--adam-eps",
        "--weight-decay",
        "--schedule",
        "--lr-step",
        "--lr-gamma",
        "--steps",
        "--on-nan",
    ];

    fn of(args: &TrainArgs, steps: u64) -> Self {
        let mut flags: Vec<(&'static str, String)> = vec![
            ("--batch", args.batch.to_string()),
            ("--lr", format!("{:?}", args.lr)),
            ("--order", flag_value(&args.order)),
            ("--seed", args.seed.to_string()),
            ("--optimizer", flag_value(&args.optimizer)),
        ];
        match args.optimizer {
            OptimizerName::Sgd => {}
            OptimizerName::Momentum => flags.push(("--momentum", format!("{:?}", args.momentum))),
            OptimizerName::Adam => flags.extend([
                ("--beta1", format!("{:?}", args.beta1)),
                ("--beta2", format!("{:?}", args.beta2)),
                ("--adam-eps", format!("{:?}", args.adam_eps)),
            ]),
        }
        flags.push(("--weight-decay", format!("{:?}", args.weight_decay)));
        flags.push(("--schedule", flag_value(&args.schedule)));
        match args.schedule {
            ScheduleName::Constant => {}
            ScheduleName::Step => flags.extend([
                ("--lr-step", args.lr_step.to_string()),
                ("--lr-gamma", format!("{:?}", args.lr_gamma)),
            ]),
            // The rate at every update depends on the length of the run.
            ScheduleName::Cosine => flags.push(("--steps", steps.to_string())),
        }
        flags.push(("--on-nan", flag_value(&args.on_nan)));
        RunSettings(flags)
    }

    /// What a checkpoint records: a JSON object of flag and value.
    fn to_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .0
            .iter()
            .map(|(flag, value)| (flag.to_string(), value.clone().into()))
            .collect();
        serde_json::Value::Object(map).to_string()
    }

    /// Fails, naming each flag that differs with both values, unless this command trains
    /// what the checkpoint's run trained (`arch`, from [`Architecture::describe`]) with the
    /// same settings.
    fn check_against(
        &self,
        checkpoint: &softnet::train::checkpoint::Checkpoint,
        arch: &str,
        path: &std::path::Path,
    ) -> anyhow::Result<()> {
        let recorded: Option<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_str(&checkpoint.config).ok();
        let Some(recorded) = recorded else {
            bail!(
                "{}: cannot resume: it was written by an older softnet, which recorded its \
                 settings differently; start a new run in another --checkpoint-dir",
                path.display()
            );
        };
        let mut differences = Vec::new();
        if checkpoint.architecture != arch {
            differences.push(format!(
                "  the model: {} in the checkpoint's run, {arch} here (--hidden, --arch or --model)",
                checkpoint.architecture
            ));
        }
        // This command's flags in their order, then those only the checkpoint's run used.
        let mut flags: Vec<&str> = self.0.iter().map(|(f, _)| *f).collect();
        let theirs_only: Vec<&str> = recorded
            .keys()
            .map(String::as_str)
            .filter(|f| !flags.contains(f))
            .collect();
        flags.extend(
            RunSettings::ORDER
                .iter()
                .filter(|f| theirs_only.contains(f)),
        );
        flags.extend(
            theirs_only
                .iter()
                .filter(|f| !RunSettings::ORDER.contains(f)),
        );
        for flag in flags {
            let theirs = recorded.get(flag).and_then(|v| v.as_str());
            let ours = self
                .0
                .iter()
                .find(|(f, _)| *f == flag)
                .map(|(_, v)| v.as_str());
            if theirs != ours {
                let shown = |v: Option<&str>| v.unwrap_or("not used").to_string();
                differences.push(format!(
                    "  {flag}: {} in the checkpoint's run, {} here",
                    shown(theirs),
                    shown(ours)
                ));
            }
        }
        if differences.is_empty() {
            return Ok(());
        }
        bail!(
            "{}: cannot resume: this command differs from the run that wrote the checkpoint \
             in what shapes the result:\n{}\nGive those flags the checkpoint's values, or \
             start a new run in another --checkpoint-dir.",
            path.display(),
            differences.join("\n")
        )
    }
}

/// The observers of a run, stopped at the end of the update during which Ctrl-C was pressed,
/// after a checkpoint of that update when the run writes checkpoints.
struct Interruptible<'a>(softnet::train::checkpoint::Checkpointed<'a>);

impl Observer for Interruptible<'_> {
    fn on_step(&mut self, trainer: &Trainer, stats: &StepStats) -> Result<(), String> {
        self.0.on_step(trainer, stats)?;
        if !interrupt::requested() {
            return Ok(());
        }
        if let Some(checkpointer) = &mut self.0.checkpointer {
            checkpointer.write(trainer).map_err(|e| e.to_string())?;
        }
        Err("interrupted".into())
    }

    fn on_eval(&mut self, event: &EvalEvent<'_>) -> Result<(), String> {
        self.0.on_eval(event)
    }
}

/// What an interrupted run says: where it stopped and the command that goes on from there.
fn interrupted(steps: u64, checkpoint_dir: Option<&std::path::Path>) -> anyhow::Error {
    let Some(dir) = checkpoint_dir else {
        return anyhow::anyhow!(
            "interrupted after {steps} updates. Nothing was saved; with --checkpoint-dir DIR a \
             run can be resumed"
        );
    };
    let mut words: Vec<String> = std::env::args_os()
        .map(|a| shell_word(&a.to_string_lossy()))
        .collect();
    if !std::env::args_os().any(|a| a == "--resume") {
        words.push("--resume".into());
        words.push(shell_word(&dir.to_string_lossy()));
    }
    anyhow::anyhow!(
        "interrupted after {steps} updates, checkpointed in {}. To go on from there:\n  {}",
        dir.display(),
        words.join(" ")
    )
}

/// `word` as a POSIX shell reads it back: as it is when it holds nothing the shell treats
/// specially, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Ctrl-C during training: the first press asks the run to stop after the current update
/// (checkpointed, so it can be resumed); a second press ends the process at once.
mod interrupt {
    use std::sync::atomic::{AtomicBool, Ordering};

    static REQUESTED: AtomicBool = AtomicBool::new(false);

    /// Whether Ctrl-C was pressed since [`install`].
    pub fn requested() -> bool {
        REQUESTED.load(Ordering::Relaxed)
    }

    #[cfg(unix)]
    extern "C" fn on_sigint(_: libc::c_int) {
        REQUESTED.store(true, Ordering::Relaxed);
        // SAFETY: `signal` is async-signal-safe; restoring the default action is all it does.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
        }
    }

    /// Routes SIGINT to [`requested`].
    #[cfg(unix)]
    pub fn install() {
        // SAFETY: the handler only stores to an atomic and calls `signal`, both
        // async-signal-safe; it is a plain `extern "C" fn` that lives as long as the process.
        unsafe {
            libc::signal(
                libc::SIGINT,
                on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }

    #[cfg(not(unix))]
    pub fn install() {}
}
