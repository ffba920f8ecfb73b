//! Crash-safe checkpoints: a training process killed with SIGKILL at random instants and
//! resumed with `--resume` ends with exactly the weights of an uninterrupted run, and no
//! checkpoint file is ever seen half-written.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use softnet::train::checkpoint::{list_checkpoints, Checkpoint, CheckpointError};

use crate::cli::{softnet, write_data_dir};

/// Flags shared by every run: Adam (so optimiser moments must be restored), shuffled batches
/// (so the data position must be), an MLP, 400 updates.
/// `steps` and `seed` vary in the test of a refused resume.
fn train(data: &Path, steps: &str, seed: &str) -> Command {
    train_with(data, &[("--steps", steps), ("--seed", seed)])
}

/// [`train`]'s command with some flags' values replaced (or added).
fn train_with(data: &Path, changes: &[(&str, &str)]) -> Command {
    let mut flags = vec![
        ("--steps", "400"),
        ("--batch", "50"),
        ("--hidden", "64"),
        ("--optimizer", "adam"),
        ("--lr", "0.001"),
        ("--seed", "7"),
        ("--eval-every", "0"),
        ("--checkpoint-every", "20"),
    ];
    for &(flag, value) in changes {
        match flags.iter_mut().find(|(f, _)| *f == flag) {
            Some(entry) => entry.1 = value,
            None => flags.push((flag, value)),
        }
    }
    let mut cmd = softnet();
    cmd.arg("train");
    for (flag, value) in flags {
        cmd.args([flag, value]);
    }
    cmd.arg("-q").arg("--data").arg(data);
    cmd
}

fn param_bits(path: &Path) -> Vec<u32> {
    let model = softnet::io::load_model(path).unwrap_or_else(|e| panic!("{e}"));
    model.params().iter().map(|v| v.to_bits()).collect()
}

/// Loads every checkpoint in `dir`; a file removed between listing and reading (the
/// checkpointer keeps the newest two) is fine, a file that does not parse is not.
fn check_all_load(dir: &Path) -> usize {
    let Ok(list) = list_checkpoints(dir) else {
        return 0;
    };
    let mut loaded = 0;
    for (steps, path) in list {
        match Checkpoint::load(&path) {
            Ok(c) => {
                assert_eq!(c.steps, steps, "{}", path.display());
                loaded += 1;
            }
            Err(CheckpointError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("a half-written checkpoint: {e}"),
        }
    }
    loaded
}

/// Updates done by the newest checkpoint in `dir` (0 if none).
fn newest_step(dir: &Path) -> u64 {
    list_checkpoints(dir)
        .ok()
        .and_then(|l| l.last().map(|(s, _)| *s))
        .unwrap_or(0)
}

/// A small xorshift generator: the kill times, from a seed printed for replay.
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn killed_and_resumed_training_ends_bit_identical() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    write_data_dir(&data, 2000, 200);
    let straight = root.path().join("straight.safetensors");
    // The faster of two runs: a duration measured while other tests load the machine would
    // put the kill deadlines after the end of later, faster runs, and too few would be killed.
    let full = (0..2)
        .map(|_| {
            let started = Instant::now();
            crate::cli::run_ok(train(&data, "400", "7").arg("--save").arg(&straight));
            started.elapsed()
        })
        .min()
        .expect("two runs");

    let seed = std::env::var("SOFTNET_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("uninterrupted run: {full:?}; kill seed {seed} (SOFTNET_KILL_SEED replays it)");
    let mut rng = Rng(seed);
    let ckpt = root.path().join("ckpt");
    let resumed = root.path().join("resumed.safetensors");
    let (mut kills, mut launches, mut checks) = (0, 0, 0usize);
    let mut progress = Vec::new();
    loop {
        let resuming = list_checkpoints(&ckpt).is_ok_and(|l| !l.is_empty());
        // The original command, with `--resume DIR` added once there is something to resume.
        let mut cmd = train(&data, "400", "7");
        cmd.arg("--checkpoint-dir").arg(&ckpt);
        if resuming {
            cmd.arg("--resume").arg(&ckpt);
        }
        cmd.arg("--save")
            .arg(&resumed)
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        launches += 1;
        // Kill the first 5 runs at a random instant of what is left of the run; let the 6th
        // finish.
        let left = 1.0 - newest_step(&ckpt) as f64 / 400.0;
        let deadline =
            (kills < 5).then(|| Instant::now() + full.mul_f64(0.05 + 0.8 * left * rng.unit()));
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                child.kill().unwrap(); // SIGKILL on Unix
                child.wait().unwrap();
                kills += 1;
                break None;
            }
            // Meanwhile, every checkpoint on disk must load.
            check_all_load(&ckpt);
            checks += 1;
            std::thread::sleep(Duration::from_millis(3));
        };
        progress.push(newest_step(&ckpt));
        // The newest two are kept; a kill between a write and the pruning leaves a third.
        assert!(check_all_load(&ckpt) <= 3, "old checkpoints are pruned");
        if let Some(status) = status {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            assert!(status.success(), "{err}");
            break;
        }
        assert!(launches < 20, "no progress: {progress:?}");
    }
    eprintln!(
        "{kills} kills, {launches} launches, newest checkpoint after each: {progress:?}, \
         {checks} checks of every checkpoint file while training ran"
    );
    assert!(kills >= 3, "too few runs were killed: {progress:?}");
    assert_eq!(
        param_bits(&resumed),
        param_bits(&straight),
        "the resumed run's weights differ from the uninterrupted run's"
    );
    // No temporaries are left once the last run finished.
    for entry in std::fs::read_dir(&ckpt).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            name.to_string_lossy().starts_with("ckpt-"),
            "stray file {name:?}"
        );
    }
}

#[test]
fn resume_with_other_flags_is_refused_naming_them() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    write_data_dir(&data, 500, 50);
    let ckpt = root.path().join("ckpt");
    crate::cli::run_ok(train(&data, "40", "7").arg("--checkpoint-dir").arg(&ckpt));
    let refused = |cmd: &mut Command| {
        let out = cmd.arg("--resume").arg(&ckpt).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{err}");
        err
    };
    let err = refused(&mut train_with(
        &data,
        &[("--steps", "40"), ("--seed", "8"), ("--lr", "0.002")],
    ));
    assert_eq!(
        err,
        format!(
            "error: {}: cannot resume: this command differs from the run that wrote the \
             checkpoint in what shapes the result:\n  \
             --lr: 0.001 in the checkpoint's run, 0.002 here\n  \
             --seed: 7 in the checkpoint's run, 8 here\n\
             Give those flags the checkpoint's values, or start a new run in another \
             --checkpoint-dir.\n",
            ckpt.join("ckpt-000000000040.safetensors").display()
        )
    );
    let err = refused(&mut train_with(
        &data,
        &[
            ("--steps", "40"),
            ("--hidden", "32"),
            ("--optimizer", "sgd"),
        ],
    ));
    assert!(
        err.contains(
            "\n  the model: 784-64-10 in the checkpoint's run, 784-32-10 here (--hidden, --arch or --model)\n"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "\n  --optimizer: adam in the checkpoint's run, sgd here\n  \
             --beta1: 0.9 in the checkpoint's run, not used here\n  \
             --beta2: 0.999 in the checkpoint's run, not used here\n  \
             --adam-eps: 1e-8 in the checkpoint's run, not used here\n"
        ),
        "{err}"
    );
    // Flags that do not change the result may: more updates at a constant rate, another
    // evaluation interval.
    let out = crate::cli::run_ok(
        train_with(&data, &[("--steps", "60"), ("--eval-every", "20")])
            .arg("--checkpoint-dir")
            .arg(&ckpt)
            .arg("--resume")
            .arg(&ckpt),
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Accuracy: "));
    assert_eq!(newest_step(&ckpt), 60);
    // Another folder for each is a usage mistake, said as such.
    let err = refused(
        train(&data, "60", "7")
            .arg("--checkpoint-dir")
            .arg(root.path()),
    );
    assert!(err.contains("name different folders"), "{err}");
}

#[test]
fn resuming_from_a_folder_without_checkpoints_says_how_to_start() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    write_data_dir(&data, 200, 50);
    for dir in [root.path().to_path_buf(), root.path().join("absent")] {
        let out = train(&data, "40", "7")
            .arg("--resume")
            .arg(&dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(
            err,
            format!(
                "error: {0}: no checkpoint (ckpt-*.safetensors) to resume from yet. To start \
                 this run, give the same command with --checkpoint-dir {0} instead of --resume \
                 (it writes a checkpoint every 20 updates, --checkpoint-every)\n",
                dir.display()
            )
        );
    }
}

/// Ctrl-C stops a run after a checkpoint of the update it was in and prints the command that
/// goes on; that command ends where the uninterrupted run does.
#[cfg(unix)]
#[test]
fn ctrl_c_checkpoints_and_prints_the_command_that_resumes() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    write_data_dir(&data, 2000, 200);
    let straight = root.path().join("straight.safetensors");
    let long = "100000";
    crate::cli::run_ok(train(&data, "6000", "7").arg("--save").arg(&straight));
    let ckpt = root.path().join("ckpt");
    let child = train(&data, long, "7")
        .arg("--checkpoint-dir")
        .arg(&ckpt)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the run is under way (its first checkpoint is written).
    let started = Instant::now();
    while newest_step(&ckpt) == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "no checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: sends a signal to the child this test started and has not yet waited for.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let stopped = newest_step(&ckpt);
    assert!(stopped > 0 && stopped < 100_000, "{stopped}");
    let (message, command) = err.split_once(":\n  ").expect("a command on its own line");
    assert_eq!(
        message,
        format!(
            "error: interrupted after {stopped} updates, checkpointed in {}. To go on from there",
            ckpt.display()
        )
    );
    let words: Vec<&str> = command.trim_end().split(' ').collect();
    assert_eq!(words[0], env!("CARGO_BIN_EXE_softnet"));
    assert_eq!(
        words[words.len() - 2..],
        ["--resume", &*ckpt.to_string_lossy()]
    );
    // The printed command, with a shorter run so that it ends where `straight` does.
    assert!(stopped < 6000, "the interrupt came after update {stopped}");
    let mut args: Vec<&str> = words[1..].to_vec();
    let steps = args.iter().position(|w| *w == long).unwrap();
    args[steps] = "6000";
    let resumed = root.path().join("resumed.safetensors");
    crate::cli::run_ok(softnet().args(&args).arg("--save").arg(&resumed));
    assert_eq!(param_bits(&resumed), param_bits(&straight));
}
