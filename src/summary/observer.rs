//! The trainer's TensorBoard log: a [`train::Observer`](crate::train::Observer) that writes
//! each evaluation of a run through a [`TensorBoardLogger`].

use super::{ParamView, SummaryError, TensorBoardLogger};
use crate::nn::{Architecture, Model};
use crate::train::{EvalEvent, Observer};
use std::path::Path;

/// Logs a training run for TensorBoard: the graph once, at creation; then at each evaluation,
/// into both the train and the test run, the loss and accuracy, every parameter's statistics
/// and histogram and the logits' histogram (of a training batch, of the test set), and the
/// first weight matrix as images into the train run; and flushes, so a run stopped at any
/// moment leaves files readable up to its last evaluation.
///
/// Nothing is computed between evaluations (it has no `on_step`), so the training loop runs
/// as fast as without it.
///
/// ```no_run
/// use softnet::summary::TensorBoardObserver;
/// use softnet::train::{observe_initial, run, Evaluator, RunConfig, Trainer};
/// # fn demo(mut trainer: Trainer, mnist: softnet::data::Mnist, config: RunConfig)
/// #     -> Result<(), Box<dyn std::error::Error>> {
/// let model = trainer.model();
/// let mut tb = TensorBoardObserver::create("runs/softmax".as_ref(), model.architecture())?;
/// let mut evaluator = Evaluator::new(model, mnist.test.len(), None);
/// observe_initial(&trainer, &mnist, &mut evaluator, &mut tb)?; // step 0
/// run(&mut trainer, &mnist, &config, &mut evaluator, &mut tb)?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TensorBoardObserver {
    logger: TensorBoardLogger,
}

impl TensorBoardObserver {
    /// Creates the runs `<logdir>/train` and `<logdir>/test` (see [`TensorBoardLogger::create`])
    /// and writes the graph of a model of architecture `arch` into the train run.
    pub fn create(logdir: &Path, arch: &Architecture) -> Result<Self, SummaryError> {
        let mut logger = TensorBoardLogger::create(logdir)?;
        logger.log_architecture_graph(arch)?;
        Ok(TensorBoardObserver { logger })
    }

    /// Logs one evaluation (what [`Observer::on_eval`] does, with the typed error).
    ///
    /// The weight images are logged at every evaluation: ten 28x28 PNGs cost far less than
    /// the test-set pass that precedes them.
    pub fn log(&mut self, event: &EvalEvent<'_>) -> Result<(), SummaryError> {
        let step = i64::try_from(event.step).unwrap_or(i64::MAX);
        let params = param_views(event.model);
        self.logger.log_eval(
            step,
            (event.train_loss as f32, event.train_accuracy as f32),
            (event.test.loss as f32, event.test.accuracy as f32),
            &params,
            event.train_logits,
            event.test_logits,
        )?;
        self.logger.log_weight_images(step, &params)
    }

    /// The logger, to log more into the same runs.
    pub fn logger(&mut self) -> &mut TensorBoardLogger {
        &mut self.logger
    }
}

impl Observer for TensorBoardObserver {
    fn on_eval(&mut self, event: &EvalEvent<'_>) -> Result<(), String> {
        self.log(event)
            .map_err(|e| format!("tensorboard log at step {}: {e}", event.step))
    }
}

/// The model's parameters as the summary module's views (same paths, shapes and values).
fn param_views(model: &Model) -> Vec<ParamView<'_>> {
    let mut views = Vec::new();
    model.visit_params(|p| {
        views.push(ParamView {
            path: p.path,
            shape: p.shape,
            values: p.values,
        });
    });
    views
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::proto::{event, summary, Event};
    use crate::summary::record::read_records;
    use crate::train::EvalResult;
    use prost::Message;

    fn events(dir: &Path) -> Vec<Event> {
        let file = std::fs::read_dir(dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let bytes = std::fs::read(&file).unwrap();
        read_records(&file, &bytes)
            .unwrap()
            .into_iter()
            .map(|r| Event::decode(r).unwrap())
            .collect()
    }

    fn tags_at(events: &[Event], step: i64) -> Vec<String> {
        events
            .iter()
            .filter(|e| e.step == step)
            .filter_map(|e| match &e.what {
                Some(event::What::Summary(s)) => Some(s.value.iter().map(|v| v.tag.clone())),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn logs_an_mlp_evaluation_under_the_model_paths() {
        let dir = tempfile::tempdir().unwrap();
        let model = Model::he_normal(Architecture::mlp(&[16]), 3);
        let mut tb = TensorBoardObserver::create(dir.path(), model.architecture()).unwrap();
        let test = EvalResult {
            loss: 0.25,
            accuracy: 0.875,
            correct: 7,
            count: 8,
            confusion: vec![vec![0; 10]; 10],
        };
        let logits = vec![0.5f32; 8 * 10];
        let train_logits = vec![0.25f32; 4 * 10];
        let event = EvalEvent {
            step: 300,
            model: &model,
            train_loss: 0.5,
            train_accuracy: 0.75,
            test: &test,
            train_logits: &train_logits,
            test_logits: &logits,
        };
        Observer::on_eval(&mut tb, &event).unwrap();

        let train = events(&dir.path().join("train"));
        assert!(train
            .iter()
            .any(|e| matches!(e.what, Some(event::What::GraphDef(_)))));
        let test_events = events(&dir.path().join("test"));
        // Both runs carry every summary, as the tutorial's merged summary does.
        for (run, events) in [("train", &train), ("test", &test_events)] {
            let tags = tags_at(events, 300);
            for p in [
                "layer1/weight",
                "layer1/bias",
                "logits/weight",
                "logits/bias",
            ] {
                for s in ["mean", "stddev", "max", "min", "histogram"] {
                    let tag = format!("{p}/summaries/{s}");
                    assert!(tags.contains(&tag), "{run}: {tag} missing from {tags:?}");
                }
            }
            assert!(tags.contains(&"logits/logits_histogram".to_string()));
        }
        // Ten columns of the first weight (16 hidden units) as images, in the train run.
        let tags = tags_at(&train, 300);
        let images: Vec<_> = tags.iter().filter(|t| t.contains("/images/")).collect();
        assert_eq!(images.len(), 10);
        assert_eq!(images[0], "layer1/weight/images/image/0");

        let scalars = |events: &[Event], tag: &str| -> Vec<f32> {
            events
                .iter()
                .filter_map(|e| match &e.what {
                    Some(event::What::Summary(s)) => Some(s.value.clone()),
                    _ => None,
                })
                .flatten()
                .filter(|v| v.tag == tag)
                .filter_map(|v| match v.kind {
                    Some(summary::value::Kind::SimpleValue(x)) => Some(x),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(scalars(&test_events, "loss/cross_entropy"), [0.25]);
        assert_eq!(scalars(&test_events, "evaluation/accuracy"), [0.875]);
        assert_eq!(scalars(&train, "loss/cross_entropy"), [0.5]);
        assert_eq!(scalars(&train, "evaluation/accuracy"), [0.75]);
        // The logits histograms count what each run was given.
        let logits_count = |events: &[Event]| -> Vec<f64> {
            events
                .iter()
                .filter_map(|e| match &e.what {
                    Some(event::What::Summary(s)) => Some(s.value.clone()),
                    _ => None,
                })
                .flatten()
                .filter(|v| v.tag == "logits/logits_histogram")
                .filter_map(|v| match v.kind {
                    Some(summary::value::Kind::Histo(h)) => Some(h.num),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(logits_count(&train), [40.0]);
        assert_eq!(logits_count(&test_events), [80.0]);
    }

    #[test]
    fn an_unwritable_logdir_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let err = TensorBoardObserver::create(&file, &Architecture::softmax_regression())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot create run folder") && err.contains("a-file"),
            "{err}"
        );
    }
}
