//! Crash-safe training checkpoints: everything a [`Trainer`] needs to continue a run so that
//! it ends bit-identical to an uninterrupted one.
//!
//! A checkpoint is one safetensors file `DIR/ckpt-<steps>.safetensors` (steps zero-padded to
//! 12 digits so names sort by step) holding
//! - `params` `[P]`: the flat parameter arena, exact f32 bits;
//! - `optimizer/first` `[P]` and `optimizer/second` `[P]` when the optimiser has them
//!   (momentum velocity, Adam's moments);
//! - metadata `softnet_checkpoint`: JSON with the updates done, the batcher position
//!   `(epoch, position)` (the shuffle is a pure function of seed and epoch, so the position
//!   *is* the RNG state), the optimiser's own step count, its kind, the architecture and the
//!   run settings the caller passed in, which a resume must match.
//!
//! Files are written with [`write_atomically`] (temporary file, fsync, rename, fsync of the
//! folder): a crash at any instant leaves every `ckpt-*.safetensors` complete. The newest
//! `keep` checkpoints are kept: older ones are removed before each write and again after the
//! new one is in place, so however often runs are killed the folder holds at most `keep + 1`.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use super::{EvalEvent, Observer, StepStats, Trainer};
use crate::io::write_atomically;

/// Metadata key holding the checkpoint's JSON.
pub const METADATA_KEY: &str = "softnet_checkpoint";
/// Format version written in the JSON; a reader refuses others.
pub const FORMAT_VERSION: u64 = 1;
/// Largest checkpoint file read (params plus two moments of a model softnet can load).
const MAX_CHECKPOINT_BYTES: u64 = 3 << 30;

/// A checkpoint could not be written, read or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading, writing, listing or removing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a softnet checkpoint.
    #[error("{}: not a valid checkpoint: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The checkpoint was written by a run with other settings or another model.
    #[error("{}: cannot resume: {reason}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// The folder holds no checkpoint.
    #[error("{}: no checkpoint (ckpt-*.safetensors) to resume from", dir.display())]
    NoCheckpoint {
        /// The folder searched.
        dir: PathBuf,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A training state read back from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Updates done (the trainer's count, skipped updates included).
    pub steps: u64,
    /// The batcher's `(epoch, position)`.
    pub position: (u64, usize),
    /// Updates the optimiser applied (drives Adam's bias correction and the schedule).
    pub optimizer_steps: u64,
    /// The parameter arena, `[P]`.
    pub params: Vec<f32>,
    /// Momentum velocity or Adam's first moment, `[P]` or empty.
    pub first: Vec<f32>,
    /// Adam's second moment, `[P]` or empty.
    pub second: Vec<f32>,
    /// The architecture, as [`crate::nn::Architecture::describe`] writes it.
    pub architecture: String,
    /// The optimiser kind, in Rust debug notation (checked on resume).
    pub optimizer: String,
    /// The caller's description of the run settings (checked on resume).
    pub config: String,
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl Checkpoint {
    /// The state of `trainer` now, with the caller's settings `config` (any text, e.g. JSON).
    pub fn capture(trainer: &Trainer, config: &str) -> Self {
        let opt = trainer.optimizer();
        Checkpoint {
            steps: trainer.steps_done(),
            position: trainer.batch_position(),
            optimizer_steps: opt.steps,
            params: trainer.model().params().to_vec(),
            first: opt.first.clone(),
            second: opt.second.clone(),
            architecture: trainer.model().architecture().describe(),
            optimizer: format!("{:?}", opt.kind),
            config: config.to_string(),
        }
    }

    /// The safetensors bytes of this checkpoint.
    pub fn to_bytes(&self) -> Vec<u8> {
        let tensors: Vec<(&str, Vec<u8>, usize)> = [
            ("params", &self.params),
            ("optimizer/first", &self.first),
            ("optimizer/second", &self.second),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(name, v)| (name, f32_bytes(v), v.len()))
        .collect();
        let views = tensors.iter().map(|(name, bytes, len)| {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![*len], bytes)
                .expect("f32 bytes match their length");
            (name.to_string(), view)
        });
        let json = serde_json::json!({
            "format": FORMAT_VERSION,
            "steps": self.steps,
            "epoch": self.position.0,
            "position": self.position.1,
            "optimizer_steps": self.optimizer_steps,
            "optimizer": self.optimizer,
            "architecture": self.architecture,
            "config": self.config,
        });
        // A single metadata key: safetensors writes its metadata map in hash order, and one
        // key keeps the bytes of a checkpoint a function of the state alone.
        let metadata = HashMap::from([(METADATA_KEY.to_string(), json.to_string())]);
        safetensors::serialize(views, Some(metadata)).expect("checkpoint tensors serialize")
    }

    /// Parses checkpoint `bytes`; `path` only names the source in errors. Never panics.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, CheckpointError> {
        let invalid = |reason: String| CheckpointError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| invalid(format!("{e}")))?;
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| invalid(format!("{e}")))?;
        let text = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(METADATA_KEY))
            .ok_or_else(|| invalid(format!("no {METADATA_KEY:?} metadata")))?;
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("metadata: {e}")))?;
        let int = |key: &str| {
            json.get(key)
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| invalid(format!("metadata lacks the integer {key:?}")))
        };
        let string = |key: &str| {
            json.get(key)
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| invalid(format!("metadata lacks the string {key:?}")))
        };
        let format = int("format")?;
        if format != FORMAT_VERSION {
            return Err(invalid(format!(
                "format {format}, this softnet reads {FORMAT_VERSION}"
            )));
        }
        let vector = |name: &str, required: bool| -> Result<Vec<f32>, CheckpointError> {
            let view = match tensors.tensor(name) {
                Ok(v) => v,
                Err(_) if !required => return Ok(Vec::new()),
                Err(_) => return Err(invalid(format!("missing tensor {name:?}"))),
            };
            if view.dtype() != Dtype::F32 || view.shape().len() != 1 {
                return Err(invalid(format!(
                    "tensor {name:?} is {:?} {:?}, expected a F32 vector",
                    view.dtype(),
                    view.shape()
                )));
            }
            Ok(view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let params = vector("params", true)?;
        let first = vector("optimizer/first", false)?;
        let second = vector("optimizer/second", false)?;
        for (name, v) in [("optimizer/first", &first), ("optimizer/second", &second)] {
            if !v.is_empty() && v.len() != params.len() {
                return Err(invalid(format!(
                    "tensor {name:?} has {} values, params has {}",
                    v.len(),
                    params.len()
                )));
            }
        }
        let position = usize::try_from(int("position")?)
            .map_err(|_| invalid("position does not fit in usize".into()))?;
        Ok(Checkpoint {
            steps: int("steps")?,
            position: (int("epoch")?, position),
            optimizer_steps: int("optimizer_steps")?,
            params,
            first,
            second,
            architecture: string("architecture")?,
            optimizer: string("optimizer")?,
            config: string("config")?,
        })
    }

    /// Reads the checkpoint at `path`.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let len = std::fs::metadata(path).map_err(io_err(path))?.len();
        if len > MAX_CHECKPOINT_BYTES {
            return Err(CheckpointError::Invalid {
                path: path.to_path_buf(),
                reason: format!("{len} bytes is larger than any softnet checkpoint"),
            });
        }
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        Self::from_bytes(&bytes, path)
    }

    /// Puts this state into `trainer`, after checking it was written for the same model,
    /// optimiser and settings (`config` must equal the text given to [`Checkpoint::capture`]).
    /// `path` names the checkpoint in errors.
    pub fn restore_into(
        &self,
        trainer: &mut Trainer,
        config: &str,
        path: &Path,
    ) -> Result<(), CheckpointError> {
        let mismatch = |reason: String| CheckpointError::Mismatch {
            path: path.to_path_buf(),
            reason,
        };
        let arch = trainer.model().architecture().describe();
        if self.architecture != arch {
            return Err(mismatch(format!(
                "it holds a {} model, this run trains {arch}",
                self.architecture
            )));
        }
        let mut optimizer = trainer.optimizer().clone();
        let kind = format!("{:?}", optimizer.kind);
        if self.optimizer != kind {
            return Err(mismatch(format!(
                "it was written with optimiser {}, this run uses {kind}",
                self.optimizer
            )));
        }
        if self.config != config {
            return Err(mismatch(format!(
                "it was written with other settings (use the same flags as the first run)\n  \
                 checkpoint: {}\n  this run:   {config}",
                self.config
            )));
        }
        if self.params.len() != trainer.model().params().len()
            || self.first.len() != optimizer.first.len()
            || self.second.len() != optimizer.second.len()
        {
            return Err(mismatch(
                "its tensor sizes do not fit the model and optimiser".into(),
            ));
        }
        optimizer.steps = self.optimizer_steps;
        optimizer.first.copy_from_slice(&self.first);
        optimizer.second.copy_from_slice(&self.second);
        trainer.restore(&self.params, optimizer, self.position, self.steps);
        Ok(())
    }
}

/// The file of the checkpoint after `steps` updates in `dir`.
pub fn checkpoint_path(dir: &Path, steps: u64) -> PathBuf {
    dir.join(format!("ckpt-{steps:012}.safetensors"))
}

/// The checkpoints in `dir` as `(steps, path)`, oldest first. Only complete files carry the
/// `ckpt-<steps>.safetensors` name; temporary files are not listed.
pub fn list_checkpoints(dir: &Path) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let steps = name
            .strip_prefix("ckpt-")
            .and_then(|n| n.strip_suffix(".safetensors"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(steps) = steps {
            found.push((steps, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// The newest checkpoint in `dir` with its path.
pub fn load_latest(dir: &Path) -> Result<(Checkpoint, PathBuf), CheckpointError> {
    let (_, path) = list_checkpoints(dir)?
        .pop()
        .ok_or_else(|| CheckpointError::NoCheckpoint {
            dir: dir.to_path_buf(),
        })?;
    Ok((Checkpoint::load(&path)?, path))
}

/// An [`Observer`] that writes a checkpoint every `every` updates.
#[derive(Debug)]
pub struct Checkpointer {
    dir: PathBuf,
    every: u64,
    keep: usize,
    config: String,
    written: u64,
}

impl Checkpointer {
    /// Checkpoints into `dir` (created if missing) every `every` updates (0: never), keeping
    /// the newest 2, recording `config` for the resume check. Removes temporary files a
    /// killed run left behind.
    pub fn new(dir: &Path, every: u64, config: &str) -> Result<Self, CheckpointError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // `write_atomically`'s temporaries: `.ckpt-….safetensors.tmp.<pid>`.
            if name.starts_with(".ckpt-") && name.contains(".safetensors.tmp.") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Checkpointer {
            dir: dir.to_path_buf(),
            every,
            keep: 2,
            config: config.to_string(),
            written: 0,
        })
    }

    /// Keeps the newest `keep` checkpoints (at least 1).
    pub fn keep(mut self, keep: usize) -> Self {
        self.keep = keep.max(1);
        self
    }

    /// Checkpoints written by this checkpointer.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes `trainer`'s state now, then removes checkpoints beyond the newest `keep`.
    ///
    /// Surplus checkpoints are also removed *before* the write: a run killed between a write
    /// and its pruning leaves `keep + 1`, and without this each further such kill of a resumed
    /// run would leave one more. With it the folder never holds more than `keep + 1`.
    pub fn write(&mut self, trainer: &Trainer) -> Result<PathBuf, CheckpointError> {
        self.prune()?;
        let path = checkpoint_path(&self.dir, trainer.steps_done());
        let bytes = Checkpoint::capture(trainer, &self.config).to_bytes();
        write_atomically(&path, &bytes).map_err(io_err(&path))?;
        self.written += 1;
        self.prune()?;
        Ok(path)
    }

    /// Removes checkpoints beyond the newest `keep`.
    fn prune(&self) -> Result<(), CheckpointError> {
        let all = list_checkpoints(&self.dir)?;
        for (_, old) in all.iter().rev().skip(self.keep) {
            std::fs::remove_file(old).map_err(io_err(old))?;
        }
        Ok(())
    }
}

impl Observer for Checkpointer {
    fn on_step(&mut self, trainer: &Trainer, _stats: &StepStats) -> Result<(), String> {
        if self.every > 0 && trainer.steps_done() % self.every == 0 {
            self.write(trainer).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Another observer with an optional [`Checkpointer`] beside it: both see every event.
pub struct Checkpointed<'a> {
    /// The observer wrapped.
    pub inner: &'a mut (dyn Observer + Send),
    /// The checkpointer, if any.
    pub checkpointer: Option<Checkpointer>,
}

impl Observer for Checkpointed<'_> {
    fn on_step(&mut self, trainer: &Trainer, stats: &StepStats) -> Result<(), String> {
        self.inner.on_step(trainer, stats)?;
        match &mut self.checkpointer {
            Some(c) => c.on_step(trainer, stats),
            None => Ok(()),
        }
    }

    fn on_eval(&mut self, event: &EvalEvent<'_>) -> Result<(), String> {
        self.inner.on_eval(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{BatchOrder, Dataset, PIXELS};
    use crate::nn::{Architecture, Model};
    use crate::optim::{Optimizer, OptimizerKind};

    fn data() -> Dataset {
        let n = 64;
        let pixels = (0..n * PIXELS).map(|i| (i * 31 % 251) as u8).collect();
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        Dataset::new(pixels, labels)
    }

    fn trainer() -> Trainer {
        let model = Model::he_normal(Architecture::mlp(&[8]), 3);
        let kind = OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let opt = Optimizer::new(kind, 0.01, model.params().len());
        Trainer::new(model, opt, 64, 10, BatchOrder::Shuffle { seed: 5 }, Some(1))
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn round_trips_and_resumes_bit_identically() {
        let data = data();
        let mut straight = trainer();
        for _ in 0..23 {
            straight.step(&data);
        }
        let mut first = trainer();
        for _ in 0..11 {
            first.step(&data);
        }
        let bytes = Checkpoint::capture(&first, "cfg").to_bytes();
        let ckpt = Checkpoint::from_bytes(&bytes, Path::new("c")).unwrap();
        assert_eq!(ckpt, Checkpoint::capture(&first, "cfg"));
        assert_eq!((ckpt.steps, ckpt.optimizer_steps), (11, 11));
        let mut resumed = trainer();
        ckpt.restore_into(&mut resumed, "cfg", Path::new("c"))
            .unwrap();
        for _ in 0..12 {
            resumed.step(&data);
        }
        assert_eq!(
            bits(resumed.model().params()),
            bits(straight.model().params())
        );
        assert_eq!(
            bits(&resumed.optimizer().second),
            bits(&straight.optimizer().second)
        );
    }

    #[test]
    fn refuses_other_settings_and_models() {
        let t = trainer();
        let ckpt = Checkpoint::capture(&t, "lr=0.1");
        let err = ckpt
            .restore_into(&mut trainer(), "lr=0.2", Path::new("c.st"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.st: cannot resume: it was written with other settings"),
            "{err}"
        );
        let model = Model::zeros(Architecture::softmax_regression());
        let opt = Optimizer::sgd(0.1);
        let mut other = Trainer::new(model, opt, 64, 10, BatchOrder::Sequential, Some(1));
        let err = ckpt
            .restore_into(&mut other, "lr=0.1", Path::new("c.st"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "c.st: cannot resume: it holds a 784-8-10 model, this run trains 784-10"
        );
    }

    #[test]
    fn rejects_garbage_and_model_files() {
        for bytes in [&b""[..], b"\x08\0\0\0\0\0\0\0{}", b"garbage garbage"] {
            assert!(matches!(
                Checkpoint::from_bytes(bytes, Path::new("x")),
                Err(CheckpointError::Invalid { .. })
            ));
        }
        let model = crate::io::model_to_bytes(&Model::softmax_regression(), &[]);
        let err = Checkpoint::from_bytes(&model, Path::new("m")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "m: not a valid checkpoint: no \"softnet_checkpoint\" metadata"
        );
    }

    /// The update counts of the checkpoints in `dir`, oldest first.
    fn checkpoint_steps(dir: &Path) -> Vec<u64> {
        list_checkpoints(dir)
            .unwrap()
            .into_iter()
            .map(|(steps, _)| steps)
            .collect()
    }

    #[test]
    fn writes_every_n_keeps_the_newest_and_lists_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let data = data();
        let mut t = trainer();
        // What a run killed in the middle of a write leaves behind.
        std::fs::write(
            dir.path().join(".ckpt-000000000001.safetensors.tmp.99"),
            b"x",
        )
        .unwrap();
        let mut c = Checkpointer::new(dir.path(), 5, "cfg").unwrap();
        for _ in 0..17 {
            let stats = t.step(&data);
            c.on_step(&t, &stats).unwrap();
        }
        assert_eq!(c.written(), 3);
        assert_eq!(checkpoint_steps(dir.path()), [10, 15]);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "temporary removed"
        );
        let (latest, path) = load_latest(dir.path()).unwrap();
        assert_eq!(latest.steps, 15);
        assert_eq!(path, checkpoint_path(dir.path(), 15));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_latest(empty.path()),
            Err(CheckpointError::NoCheckpoint { .. })
        ));
    }

    #[test]
    fn surplus_left_by_killed_runs_is_pruned_before_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let data = data();
        let mut t = trainer();
        // What runs killed between a write and its pruning leave: more than `keep`.
        let mut hoarder = Checkpointer::new(dir.path(), 1, "cfg").unwrap().keep(10);
        for _ in 0..4 {
            let stats = t.step(&data);
            hoarder.on_step(&t, &stats).unwrap();
        }
        assert_eq!(list_checkpoints(dir.path()).unwrap().len(), 4);
        // The next write fails (a folder squats on its temporary file's name); the surplus is
        // gone anyway, so a kill at any point of a write leaves at most `keep + 1`.
        t.step(&data);
        let squatter = format!(
            ".ckpt-{:012}.safetensors.tmp.{}",
            t.steps_done(),
            std::process::id()
        );
        std::fs::create_dir(dir.path().join(squatter)).unwrap();
        let mut resumed = Checkpointer::new(dir.path(), 1, "cfg").unwrap();
        assert!(resumed.write(&t).is_err());
        assert_eq!(checkpoint_steps(dir.path()), [3, 4]);
    }
}
