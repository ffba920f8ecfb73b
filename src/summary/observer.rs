//! The trainer's TensorBoard log: a [`train::Observer`](crate::train::Observer) that writes
//! each evaluation of a run through a [`TensorBoardLogger`].

use super::{ParamView, SummaryError, TensorBoardLogger};
use crate::nn::{Architecture, Model};
use crate::train::{EvalEvent, Observer};
use std::path::Path;

/// Logs a training run for TensorBoard: the graph once, at creation; then at each evaluation
/// the train and test loss and accuracy, every parameter's statistics and histogram, the
/// test logits' histogram and the first weight matrix as images; and flushes, so a run
/// stopped at any moment leaves files readable up to its last evaluation.
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
        let event = EvalEvent {
            step: 300,
            model: &model,
            train_loss: 0.5,
            train_accuracy: 0.75,
            test: &test,
            test_logits: &logits,
        };
        Observer::on_eval(&mut tb, &event).unwrap();

        let train = events(&dir.path().join("train"));
        assert!(train
            .iter()
            .any(|e| matches!(e.what, Some(event::What::GraphDef(_)))));
        let tags = tags_at(&train, 300);
        for p in [
            "layer1/weight",
            "layer1/bias",
            "logits/weight",
            "logits/bias",
        ] {
            for s in ["mean", "stddev", "max", "min", "histogram"] {
                let tag = format!("{p}/summaries/{s}");
                assert!(tags.contains(&tag), "{tag} missing from {tags:?}");
            }
        }
        // Ten columns of the first weight (16 hidden units) as images.
        let images: Vec<_> = tags.iter().filter(|t| t.contains("/images/")).collect();
        assert_eq!(images.len(), 10);
        assert_eq!(images[0], "layer1/weight/images/image/0");

        let test_events = events(&dir.path().join("test"));
        let values: Vec<(String, f32)> = test_events
            .iter()
            .filter_map(|e| match &e.what {
                Some(event::What::Summary(s)) => Some(s.value.clone()),
                _ => None,
            })
            .flatten()
            .filter_map(|v| match v.kind {
                Some(summary::value::Kind::SimpleValue(x)) => Some((v.tag, x)),
                _ => None,
            })
            .collect();
        assert_eq!(
            values,
            [
                ("loss/cross_entropy".to_string(), 0.25),
                ("evaluation/accuracy".to_string(), 0.875)
            ]
        );
        assert!(tags_at(&test_events, 300).contains(&"logits/logits_histogram".to_string()));
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
