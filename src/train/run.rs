//! A whole training run: steps, periodic evaluation, a divergence guard, observers.

use super::{EvalResult, Evaluator, StepStats, Trainer};
use crate::data::{Dataset, Mnist, PendingMnist, Rows};
use crate::error::DataError;
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
    /// The data did not load ([`run_while_loading`]).
    #[error(transparent)]
    Data(#[from] DataError),
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
    /// Logits of the latest training batch, before its update, `[batch, classes]` (at step
    /// 0, of the training examples [`observe_initial`] evaluates).
    pub train_logits: &'a [f32],
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
    let head = mnist.train.head(mnist.test.len());
    let train = evaluator.evaluate(model, &head);
    let train_logits = evaluator.logits(head.len()).to_vec();
    let test = evaluator.evaluate(model, &mnist.test);
    let event = EvalEvent {
        step: trainer.steps_done(),
        model,
        train_loss: train.loss,
        train_accuracy: train.accuracy,
        test: &test,
        train_logits: &train_logits,
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
    trainer.in_pool(|trainer| {
        let progress = Progress::default();
        run_rest(progress, trainer, mnist, config, evaluator, observer)
    })
}

/// The rest of a run from `progress`, on the whole data.
fn run_rest(
    mut progress: Progress,
    trainer: &mut Trainer,
    mnist: &Mnist,
    config: &RunConfig,
    evaluator: &mut Evaluator,
    observer: &mut (dyn Observer + Send),
) -> Result<RunSummary, TrainError> {
    while trainer.steps_done() < config.steps {
        let ctx = Context {
            test: &mnist.test,
            config,
            evaluator: &mut *evaluator,
            observer: &mut *observer,
        };
        progress.step(trainer, (&mnist.train).into(), ctx)?;
    }
    Ok(progress.finish(trainer, &mnist.test, evaluator))
}

/// [`run`] on data still loading: the steps start on the first batches of training images
/// while the rest are inflated on another thread, instead of after. Returns the data, once
/// whole, with the summary; the trained weights, the history and the observers' calls are
/// exactly [`run`]'s.
///
/// Only batches in file order ([`BatchOrder::Sequential`](crate::data::BatchOrder)) can
/// start early; with others the run starts once the data is loaded. Evaluations run on
/// the trainer's threads.
pub fn run_while_loading(
    trainer: &mut Trainer,
    data: PendingMnist,
    config: &RunConfig,
    observer: &mut (dyn Observer + Send),
) -> Result<(Mnist, RunSummary), TrainError> {
    // Pieces of whole batches (about 1,000 examples, 0.8 MB), so no batch straddles two.
    let batch = trainer.batch_size();
    let rows_per_piece = batch * 1000usize.div_ceil(batch);
    let mut progress = Progress::default();
    let (mnist, early) = data.load_while(rows_per_piece, |arriving, test| {
        let mut evaluator =
            Evaluator::with_pool(trainer.model(), test.len(), trainer.pool().clone());
        let steps = trainer.in_pool(|trainer| {
            // Once all have arrived, the whole data is a join away.
            while trainer.steps_done() < config.steps && !arriving.all_arrived() {
                let Some(rows) = trainer.next_rows().and_then(|r| arriving.rows(r)) else {
                    break;
                };
                let ctx = Context {
                    test,
                    config,
                    evaluator: &mut evaluator,
                    observer: &mut *observer,
                };
                progress.step(trainer, rows, ctx)?;
            }
            Ok::<_, TrainError>(())
        });
        steps.map(|()| evaluator)
    })?;
    let mut evaluator = early?;
    let summary = trainer
        .in_pool(|trainer| run_rest(progress, trainer, &mnist, config, &mut evaluator, observer))?;
    Ok((mnist, summary))
}

/// What a step needs besides its training examples.
struct Context<'a, 'o> {
    test: &'a Dataset,
    config: &'a RunConfig,
    evaluator: &'a mut Evaluator,
    observer: &'a mut (dyn Observer + Send + 'o),
}

/// Where a run stands between steps.
#[derive(Debug, Default)]
struct Progress {
    history: Vec<(u64, f64, f64)>,
    /// Training loss summed, examples right and seen since the last evaluation.
    loss_sum: f64,
    correct: usize,
    seen: usize,
    skipped: u64,
    last_eval: Option<EvalResult>,
    /// The latest batch's logits at an evaluation (reused from one to the next).
    train_logits: Vec<f32>,
}

impl Progress {
    /// One update on `rows`, then the evaluation on the test set if one is due.
    fn step(
        &mut self,
        trainer: &mut Trainer,
        rows: Rows<'_>,
        ctx: Context<'_, '_>,
    ) -> Result<(), TrainError> {
        let Context {
            test: test_set,
            config,
            evaluator,
            observer,
        } = ctx;
        match trainer.step_guarded(rows, config.on_nan)? {
            Some(stats) => {
                self.loss_sum += stats.loss;
                self.correct += stats.correct;
                self.seen += trainer.batch_size();
                observer
                    .on_step(trainer, &stats)
                    .map_err(TrainError::Observer)?;
            }
            None => self.skipped += 1,
        }
        let step = trainer.steps_done();
        let due = config.eval_every > 0 && step % config.eval_every == 0;
        if due || step == config.steps {
            let test = evaluator.evaluate(trainer.model(), test_set);
            let batches = (self.seen / trainer.batch_size()).max(1);
            trainer.batch_logits(&mut self.train_logits);
            let event = EvalEvent {
                step,
                model: trainer.model(),
                train_loss: self.loss_sum / batches as f64,
                train_accuracy: self.correct as f64 / self.seen.max(1) as f64,
                test: &test,
                train_logits: &self.train_logits,
                test_logits: evaluator.logits(test_set.len()),
            };
            if due {
                self.history.push((step, test.loss, test.accuracy));
            }
            observer.on_eval(&event).map_err(TrainError::Observer)?;
            (self.loss_sum, self.correct, self.seen) = (0.0, 0, 0);
            self.last_eval = Some(test);
        }
        Ok(())
    }

    fn finish(self, trainer: &Trainer, test: &Dataset, evaluator: &mut Evaluator) -> RunSummary {
        let test = match self.last_eval {
            Some(t) => t,
            None => evaluator.evaluate(trainer.model(), test),
        };
        RunSummary {
            test,
            history: self.history,
            skipped: self.skipped,
        }
    }
}
