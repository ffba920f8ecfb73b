//! `softnet bench`: the performance targets, measured on this machine (medians).

use std::time::Instant;

use softnet::data::{BatchOrder, Dataset, Mnist};
use softnet::kernels::simd::{dispatch, Simd, SimdKernel};
use softnet::nn::{Architecture, Input, Model, Workspace};
use softnet::optim::Optimizer;
use softnet::train::{run as run_training, Evaluator, RunConfig, Silent, Trainer};

use crate::DataArgs;

/// Flags of `softnet bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeats: u32,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Skip the MLP epoch (the slowest measurement).
    #[arg(long)]
    no_mlp: bool,
    /// Measure how training scales with the thread count instead: the MLP 784-256-10 with
    /// batches of 1000 and softmax regression with batches of 100, on each of
    /// `--scaling-threads`, with speedups against the first of them.
    #[arg(long)]
    scaling: bool,
    /// Thread counts for `--scaling` (default: 1, 2, 4, 8, 16 up to this machine's cores).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..=1024))]
    scaling_threads: Vec<u16>,
    /// MLP steps (of 1000 examples) per `--scaling` measurement; softmax regression takes ten
    /// times as many steps of 100.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    scaling_steps: u64,
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn time<R>(f: impl FnOnce() -> R) -> (f64, R) {
    let started = Instant::now();
    let r = f();
    (started.elapsed().as_secs_f64(), r)
}

/// Seconds of `steps` updates of `arch` (batch 100, sequential), evaluating every
/// `eval_every` updates; the data is already in memory.
fn training_run(
    mnist: &Mnist,
    arch: &Architecture,
    steps: u64,
    eval_every: u64,
    threads: Option<usize>,
) -> f64 {
    trained(mnist, arch, 100, steps, eval_every, threads).0
}

/// Seconds of `steps` updates of `arch` with batches of `batch` (sequential), evaluating
/// every `eval_every` updates, and the trainer that made them.
fn trained(
    mnist: &Mnist,
    arch: &Architecture,
    batch: usize,
    steps: u64,
    eval_every: u64,
    threads: Option<usize>,
) -> (f64, Trainer) {
    let model = if arch.is_softmax_regression() {
        Model::zeros(arch.clone())
    } else {
        Model::he_normal(arch.clone(), 1)
    };
    let mut trainer = Trainer::new(
        model,
        Optimizer::sgd(0.1),
        mnist.train.len(),
        batch,
        BatchOrder::Sequential,
        threads,
    );
    let mut evaluator =
        Evaluator::with_pool(trainer.model(), mnist.test.len(), trainer.pool().clone());
    let config = RunConfig {
        steps,
        eval_every,
        on_nan: Default::default(),
    };
    let seconds = time(|| {
        run_training(&mut trainer, mnist, &config, &mut evaluator, &mut Silent)
            .expect("the reference run does not diverge")
    })
    .0;
    (seconds, trainer)
}

/// Median latency of one image through `Model::inference`, in microseconds.
fn single_image_us(mnist: &Mnist, model: &Model, repeats: u32) -> f64 {
    let mut ws = Workspace::inference(model, 1);
    let per_batch = 2000;
    let samples = (0..repeats.max(5))
        .map(|r| {
            let started = Instant::now();
            let mut sink = 0.0;
            for i in 0..per_batch {
                let image = mnist.test.image((i + r as usize) % mnist.test.len());
                sink += model.inference(Input::Pixels(image), 1, &mut ws)[0];
            }
            std::hint::black_box(sink);
            started.elapsed().as_secs_f64() * 1e6 / per_batch as f64
        })
        .collect();
    median(samples)
}

/// Iterations of each chain in [`fma_peak_gflops`].
const PEAK_ITERATIONS: u64 = 2_000_000;

/// [`fma_peak_gflops`]'s loop, at the level kernels run at: its sum (so the loop is not
/// optimised away) and the f32 lanes it multiply-added per iteration.
struct FmaSpin;

impl SimdKernel for FmaSpin {
    type Output = (f32, u64);

    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> (f32, u64) {
        // Independent chains of sixteen lanes: enough to cover the FMA latency on both FMA
        // pipes (4 cycles x 2 pipes) with room to spare, in twelve registers (of 32 with
        // AVX-512, of 16 with AVX2, where a vector is two).
        if S::MR == 8 {
            spin::<S, 12>(s)
        } else {
            spin::<S, 6>(s)
        }
    }
}

#[inline(always)]
fn spin<S: Simd, const CHAINS: usize>(s: S) -> (f32, u64) {
    let mut acc = [s.splat(1.0); CHAINS];
    let (scale, shift) = (s.splat(0.999_999), s.splat(1e-7));
    for _ in 0..PEAK_ITERATIONS {
        for a in &mut acc {
            *a = s.mul_add(*a, scale, shift);
        }
    }
    let sum = acc
        .iter()
        .fold(0.0, |sum, &a| sum + s.to_array(a).iter().sum::<f32>());
    (sum, 16 * CHAINS as u64)
}

/// The f32 multiply-add rate `threads` threads reach together, in GFLOP/s: each runs
/// independent chains of sixteen-lane FMAs from registers, with no memory traffic, at the
/// SIMD level the kernels run at. It is the ceiling of every dense-equivalent rate below,
/// measured in the same run, because the rate a virtual machine's cores deliver changes
/// with what else the host runs.
fn fma_peak_gflops(threads: usize) -> f64 {
    const ITERATIONS: u64 = PEAK_ITERATIONS;
    let lanes = dispatch(FmaSpin).1;
    let spin = || dispatch(FmaSpin).0;
    let samples = (0..3)
        .map(|_| {
            let (seconds, _) = time(|| {
                std::thread::scope(|s| {
                    let workers: Vec<_> = (0..threads).map(|_| s.spawn(spin)).collect();
                    workers
                        .into_iter()
                        .map(|w| w.join().expect("the FMA loop does not panic"))
                        .sum::<f32>()
                })
            });
            let flops = (threads as u64 * ITERATIONS * lanes * 2) as f64;
            flops / seconds / 1e9
        })
        .collect();
    median(samples)
}

/// Peak resident memory of this process so far, in MB (Linux; 0 elsewhere).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Median wall time of the whole `softnet train -q` process with the reference flags.
fn whole_process_s(args: &BenchArgs, repeats: u32) -> anyhow::Result<f64> {
    let exe = std::env::current_exe()?;
    let dir = softnet::data::locate_data_dir(args.data.data.as_deref())?;
    let mut samples = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        let status = std::process::Command::new(&exe)
            .args(["train", "-q", "--order", "sequential", "--data"])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "softnet train failed while benchmarking");
        samples.push(started.elapsed().as_secs_f64());
    }
    Ok(median(samples))
}

/// `softnet bench --scaling`: training throughput on 1, 2, 4, … threads, against the first
/// count, and whether every count trained the same weights.
fn scaling(args: &BenchArgs, mnist: &Mnist) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let counts: Vec<usize> = if args.scaling_threads.is_empty() {
        [1, 2, 4, 8, 16]
            .into_iter()
            .filter(|&t| t == 1 || t <= cores)
            .collect()
    } else {
        args.scaling_threads
            .iter()
            .map(|&t| usize::from(t))
            .collect()
    };
    let repeats = args.repeats.min(3);
    let mlp = Architecture::mlp(&[256]);
    let softmax = Architecture::softmax_regression();
    let (mlp_steps, softmax_steps) = (args.scaling_steps, args.scaling_steps * 10);
    // Samples a second (median of the repeats) and the trained parameters.
    let measure = |arch: &Architecture, batch: usize, steps: u64, threads: usize| {
        let runs: Vec<(f64, Trainer)> = (0..repeats)
            .map(|_| trained(mnist, arch, batch, steps, 0, Some(threads)))
            .collect();
        let seconds = median(runs.iter().map(|(s, _)| *s).collect());
        let trainer = runs.into_iter().next().expect("one run at least").1;
        ((steps * batch as u64) as f64 / seconds, trainer)
    };
    // Warm-up: page faults and thread start-up are not measured.
    trained(mnist, &mlp, 1000, 2, 0, Some(counts[0]));
    let mut rows = Vec::new();
    let mut identical = true;
    let mut first: Option<(Trainer, Trainer)> = None;
    for &threads in &counts {
        let (mlp_rate, mlp_run) = measure(&mlp, 1000, mlp_steps, threads);
        let (softmax_rate, softmax_run) = measure(&softmax, 100, softmax_steps, threads);
        match &first {
            None => first = Some((mlp_run, softmax_run)),
            Some((m, s)) => {
                identical &= m.model() == mlp_run.model() && s.model() == softmax_run.model();
            }
        }
        rows.push((threads, mlp_rate, softmax_rate));
    }
    let (base_mlp, base_softmax) = (rows[0].1, rows[0].2);
    if args.json {
        let points: Vec<String> = rows
            .iter()
            .map(|&(t, m, s)| {
                format!(
                    "{{\"threads\":{t},\"mlp_samples_per_s\":{m:.1},\"mlp_speedup\":{:.3},\
                     \"softmax_samples_per_s\":{s:.1},\"softmax_speedup\":{:.3}}}",
                    m / base_mlp,
                    s / base_softmax
                )
            })
            .collect();
        println!(
            "{{\"scaling\":[{}],\"identical_results\":{identical},\"cores\":{cores},\"repeats\":{repeats}}}",
            points.join(",")
        );
        return;
    }
    println!(
        "softnet bench --scaling: training throughput, medians of {repeats} runs, {cores} cores\n\
         (MLP 784-256-10: {mlp_steps} steps of 1000; softmax regression: {softmax_steps} steps of 100)\n"
    );
    println!(
        "{:>7} {:>22} {:>9} {:>22} {:>9}",
        "threads", "MLP samples/s", "speedup", "softmax samples/s", "speedup"
    );
    for &(t, m, s) in &rows {
        println!(
            "{t:>7} {m:>22.0} {:>8.2}x {s:>22.0} {:>8.2}x",
            m / base_mlp,
            s / base_softmax
        );
    }
    println!(
        "\ntargets: the MLP >= 10x at 16 threads; softmax regression's tiny batches no slower \
         with more threads\ntrained weights identical on every thread count: {}",
        if identical { "yes" } else { "NO" }
    );
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let repeats = args.repeats;
    // Loading timed like every other number (a median); one copy at a time, so the peak
    // memory reported below is that of one loaded MNIST.
    let mut mnist = None;
    let mut load_samples = Vec::new();
    for _ in 0..repeats.max(1) {
        drop(mnist.take());
        let (seconds, loaded) = time(|| args.data.load());
        mnist = Some(loaded?);
        load_samples.push(seconds);
    }
    let mnist = mnist.expect("loaded at least once");
    if args.scaling {
        scaling(&args, &mnist);
        return Ok(());
    }
    let load_s = median(load_samples);
    let softmax = Architecture::softmax_regression();
    let threads = args.threads;
    let threads_used = Trainer::new(
        Model::softmax_regression(),
        Optimizer::sgd(0.1),
        1,
        1,
        BatchOrder::Sequential,
        threads,
    )
    .threads();
    // Before and after the measurements: the ceiling moves while they run.
    let fma_before = fma_peak_gflops(threads_used);
    let fma_1t = fma_peak_gflops(1);
    // One warm-up run each, so page faults and thread start-up are not measured.
    training_run(&mnist, &softmax, 200, 100, threads);
    let reference_run_s = median(
        (0..repeats)
            .map(|_| training_run(&mnist, &softmax, 2000, 100, threads))
            .collect(),
    );
    let train_only_s = median(
        (0..repeats)
            .map(|_| training_run(&mnist, &softmax, 2000, 0, threads))
            .collect(),
    );
    let peak = peak_rss_mb();
    let model = Model::he_normal(softmax.clone(), 3);
    let infer_1_us = single_image_us(&mnist, &model, repeats);
    let mut evaluator = Evaluator::new(&model, mnist.test.len(), threads);
    // Repeated evaluations of one dataset multiply its lists of non-zero pixels, as a run's
    // evaluations of the test set do; the first evaluation of new images reads the pixels.
    // The first two, untimed, are the ones a run makes before its lists exist (the second
    // makes them); then as many as a run makes, twenty.
    evaluator.evaluate(&model, &mnist.test);
    evaluator.evaluate(&model, &mnist.test);
    let infer_10k_ms = 1e3
        * median(
            (0..repeats.max(20))
                .map(|_| time(|| evaluator.evaluate(&model, &mnist.test)).0)
                .collect(),
        );
    let infer_10k_first_ms = 1e3
        * median(
            (0..repeats.max(5))
                .map(|_| {
                    let new =
                        Dataset::new(mnist.test.pixels().to_vec(), mnist.test.labels().to_vec());
                    time(|| evaluator.evaluate(&model, &new)).0
                })
                .collect(),
        );
    let mlp = Architecture::mlp(&[256]);
    let mlp_epoch_s = if args.no_mlp {
        None
    } else {
        Some(median(
            (0..repeats.min(3))
                .map(|_| training_run(&mnist, &mlp, 600, 0, threads))
                .collect(),
        ))
    };
    let mlp_1_us = single_image_us(&mnist, &Model::he_normal(mlp.clone(), 1), repeats);
    let process_s = whole_process_s(&args, repeats.min(5))?;
    let fma_after = fma_peak_gflops(threads_used);
    let fma_peak = (fma_before + fma_after) / 2.0;
    let train_flops = 2000.0 * 100.0 * 4.0 * softmax.forward_macs() as f64;
    let eval_flops = 20.0 * mnist.test.len() as f64 * 2.0 * softmax.forward_macs() as f64;
    let simd = softnet::kernels::simd::Level::process();
    let simd_detail = softnet::kernels::simd::describe();
    if args.json {
        let mlp = mlp_epoch_s.map_or("null".to_string(), |s| format!("{s:.6}"));
        println!(
            "{{\"reference_run_s\":{reference_run_s:.6},\"train_only_s\":{train_only_s:.6},\"process_s\":{process_s:.6},\
             \"load_s\":{load_s:.6},\"infer_1_us\":{infer_1_us:.4},\"infer_10k_ms\":{infer_10k_ms:.4},\"infer_10k_first_ms\":{infer_10k_first_ms:.4},\
             \"peak_rss_mb\":{peak:.1},\"mlp_epoch_s\":{mlp},\"mlp_infer_1_us\":{mlp_1_us:.4},\
             \"fma_peak_gflops\":{fma_peak:.1},\"fma_peak_1t_gflops\":{fma_1t:.1},\
             \"threads\":{threads_used},\"repeats\":{repeats},\"simd\":\"{simd}\",\"simd_detail\":\"{simd_detail}\"}}"
        );
        return Ok(());
    }
    println!("softnet bench: medians of {repeats} runs on {threads_used} thread(s)");
    println!("simd: {simd_detail}");
    println!(
        "this machine's f32 FMA peak: {fma_1t:.0} GFLOP/s on 1 thread, {fma_before:.0} then \
         {fma_after:.0} GFLOP/s on {threads_used} (before and after the runs)\n"
    );
    let rate = |flops: f64, seconds: f64| {
        let gflops = flops / seconds / 1e9;
        format!(
            "{gflops:.1} GFLOP/s, {:.0}% of peak",
            100.0 * gflops / fma_peak
        )
    };
    println!("{:<52} {:>28} {:>10}", "measurement", "measured", "target");
    let row = |name: &str, measured: String, target: &str| {
        println!("{name:<52} {measured:>28} {target:>10}")
    };
    row(
        "reference run: 2000 steps + 20 evaluations",
        format!("{:.1} ms", reference_run_s * 1e3),
        "<= 40 ms",
    );
    row(
        "  dense-equivalent rate",
        rate(train_flops + eval_flops, reference_run_s),
        "",
    );
    row(
        "whole process `softnet train` (gz files to accuracy)",
        format!("{:.3} s", process_s),
        "<= 0.25 s",
    );
    row(
        "  of which loading the four gz files",
        format!("{:.3} s", load_s),
        "",
    );
    row(
        "2000 training steps alone",
        format!("{:.1} ms", train_only_s * 1e3),
        "<= 25 ms",
    );
    row(
        "  throughput",
        format!("{:.2} M samples/s", 2000.0 * 100.0 / train_only_s / 1e6),
        "",
    );
    row(
        "  dense-equivalent rate",
        rate(train_flops, train_only_s),
        "",
    );
    row(
        "inference, one image, 784-10",
        format!("{infer_1_us:.3} us"),
        "<= 1 us",
    );
    row(
        "inference, 10,000 test images, 784-10",
        format!("{infer_10k_ms:.3} ms"),
        "<= 0.7 ms",
    );
    row(
        "  images seen for the first time",
        format!("{infer_10k_first_ms:.3} ms"),
        "",
    );
    row(
        "peak memory (RSS) after the reference runs",
        format!("{peak:.1} MB"),
        "<= 120 MB",
    );
    if let Some(s) = mlp_epoch_s {
        row(
            "784-256-10: one epoch (600 steps of 100)",
            format!("{:.3} s", s),
            "<= 0.12 s",
        );
        // Forward and weight gradient of every layer, input gradient of all but the first
        // (nothing needs the gradient with respect to the pixels): 49 GFLOP an epoch.
        let first_layer = mlp.input_len() * 256;
        let macs_per_example = 3 * mlp.forward_macs() - first_layer;
        let flops = 600.0 * 100.0 * 2.0 * macs_per_example as f64;
        row("  dense-equivalent rate", rate(flops, s), "");
    }
    row(
        "inference, one image, 784-256-10",
        format!("{mlp_1_us:.3} us"),
        "<= 5 us",
    );
    Ok(())
}
