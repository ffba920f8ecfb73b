//! A whole training run: steps, periodic evaluation, a divergence guard, observers.

use super::{EvalResult, Evaluator, StepStats, Trainer};
use crate::data::Mnist;
use crate::nn::Model;

/// What to do when a step's loss is NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnNan {
    /// Stop with [`TrainError::Diverged`], keeping the last finite parameters.
    #[default]
    Stop,
    /// Skip that update and go on.
    Skip,
}

/// Settings of a run (the model, optimiser and batches are the [`Trainer`]'s).
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// Updates to do in all (counting those a resumed trainer already did).
    pub steps: u64,
    /// Evaluate on the test set every this many updates (0: only at the end).
    pub eval_every: u64,
    /// Divergence policy.
    pub on_nan: OnNan,
}

/// A run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The loss became NaN, infinite, or exploded past `DIVERGED_LOSS`.
    #[error("training diverged at step {step}: the loss is {loss} (try a smaller --lr)")]
    Diverged {
        /// The 1-based update at which it happened.
        step: u64,
        /// The loss seen.
        loss: f64,
    },
    /// An observer (logging, checkpoints) failed.
    #[error("{0}")]
    Observer(String),
}

/// What an observer sees at each evaluation.
#[derive(Debug)]
pub struct EvalEvent<'a> {
    /// Updates done.
    pub step: u64,
    /// The model after them.
    pub model: &'a Model,
    /// Mean training loss over the updates since the previous evaluation.
    pub train_loss: f64,
    /// Training accuracy over the batches since the previous evaluation (before each update).
    pub train_accuracy: f64,
    /// Test-set results.
    pub test: &'a EvalResult,
    /// Test-set logits, `[test examples, classes]`.
    pub test_logits: &'a [f32],
}

/// Hooks into a run; every method has a default that does nothing.
pub trait Observer {
    /// After every update.
    fn on_step(&mut self, _trainer: &Trainer, _stats: &StepStats) -> Result<(), String> {
        Ok(())
    }
    /// After every evaluation.
    fn on_eval(&mut self, _event: &EvalEvent<'_>) -> Result<(), String> {
        Ok(())
    }
}

/// An observer that observes nothing.
#[derive(Debug, Default)]
pub struct Silent;
impl Observer for Silent {}

/// Two observers, told in order (`.0` first); the first error stops the run.
impl<A: Observer, B: Observer> Observer for (A, B) {
    fn on_step(&mut self, trainer: &Trainer, stats: &StepStats) -> Result<(), String> {
        self.0.on_step(trainer, stats)?;
        self.1.on_step(trainer, stats)
    }
    fn on_eval(&mut self, event: &EvalEvent<'_>) -> Result<(), String> {
        self.0.on_eval(event)?;
        self.1.on_eval(event)
    }
}

/// An observer that may be absent (an optional log).
impl<O: Observer> Observer for Option<O> {
    fn on_step(&mut self, trainer: &Trainer, stats: &StepStats) -> Result<(), String> {
        self.as_mut().map_or(Ok(()), |o| o.on_step(trainer, stats))
    }
    fn on_eval(&mut self, event: &EvalEvent<'_>) -> Result<(), String> {
        self.as_mut().map_or(Ok(()), |o| o.on_eval(event))
    }
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Final test-set evaluation.
    pub test: EvalResult,
    /// Each periodic evaluation: `(step, test loss, test accuracy)`.
    pub history: Vec<(u64, f64, f64)>,
    /// Updates skipped for a non-finite loss.
    pub skipped: u64,
}

/// Shows `observer` the model as it is before [`run`] (step [`Trainer::steps_done`], 0 for a
/// fresh one), as an evaluation, so logs start from the initial weights as the tutorial's do.
/// The test set goes through `evaluator`; since no batch has been seen yet, the train loss
/// and accuracy are those of the first training examples, as many as the test set has (10,000:
/// the examples between two evaluations of the default run, and one more test-sized pass
/// instead of a six times longer one over the whole training set). Returns the test result.
pub fn observe_initial(
    trainer: &Trainer,
    mnist: &Mnist,
    evaluator: &mut Evaluator,
    observer: &mut dyn Observer,
) -> Result<EvalResult, TrainError> {
    let model = trainer.model();
    let train = evaluator.evaluate(model, &mnist.train.head(mnist.test.len()));
    let test = evaluator.evaluate(model, &mnist.test);
    let event = EvalEvent {
        step: trainer.steps_done(),
        model,
        train_loss: train.loss,
        train_accuracy: train.accuracy,
        test: &test,
        test_logits: evaluator.logits(mnist.test.len()),
    };
    observer.on_eval(&event).map_err(TrainError::Observer)?;
    Ok(test)
}

/// Trains until `config.steps` updates are done, evaluating on the test set every
/// `config.eval_every` updates and at the end.
pub fn run(
    trainer: &mut Trainer,
    mnist: &Mnist,
    config: &RunConfig,
    evaluator: &mut Evaluator,
    observer: &mut (dyn Observer + Send),
) -> Result<RunSummary, TrainError> {
    trainer.in_pool(|trainer| run_here(trainer, mnist, config, evaluator, observer))
}

fn run_here(
    trainer: &mut Trainer,
    mnist: &Mnist,
    config: &RunConfig,
    evaluator: &mut Evaluator,
    observer: &mut (dyn Observer + Send),
) -> Result<RunSummary, TrainError> {
    let mut history = Vec::new();
    let (mut loss_sum, mut correct, mut seen, mut skipped) = (0.0f64, 0usize, 0usize, 0u64);
    let mut last_eval = None;
    while trainer.steps_done() < config.steps {
        let stats = trainer.step_guarded(&mnist.train, config.on_nan)?;
        match stats {
            Some(stats) => {
                loss_sum += stats.loss;
                correct += stats.correct;
                seen += trainer.batch_size();
                observer
                    .on_step(trainer, &stats)
                    .map_err(TrainError::Observer)?;
            }
            None => skipped += 1,
        }
        let step = trainer.steps_done();
        let due = config.eval_every > 0 && step % config.eval_every == 0;
        if due || step == config.steps {
            let test = evaluator.evaluate(trainer.model(), &mnist.test);
            let batches = (seen / trainer.batch_size()).max(1);
            let event = EvalEvent {
                step,
                model: trainer.model(),
                train_loss: loss_sum / batches as f64,
                train_accuracy: correct as f64 / seen.max(1) as f64,
                test: &test,
                test_logits: evaluator.logits(mnist.test.len()),
            };
            if due {
                history.push((step, test.loss, test.accuracy));
            }
            observer.on_eval(&event).map_err(TrainError::Observer)?;
            (loss_sum, correct, seen) = (0.0, 0, 0);
            last_eval = Some(test);
        }
    }
    let test = match last_eval {
        Some(t) => t,
        None => evaluator.evaluate(trainer.model(), &mnist.test),
    };
    Ok(RunSummary {
        test,
        history,
        skipped,
    })
}
