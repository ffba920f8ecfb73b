//! `softnet bench`: the performance targets, measured on this machine (medians), and
//! `--compare` against an earlier run's `--json`.

mod cnn;
mod compare;
mod flops;
mod memory;
mod report;

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{json, Map, Value};

use softnet::data::{BatchOrder, Dataset, Mnist};
use softnet::io::quantized::QuantizedModel;
use softnet::kernels::simd::{dispatch, Simd, SimdKernel};
use softnet::nn::{Architecture, Input, Model, Workspace};
use softnet::optim::Optimizer;
use softnet::train::{run as run_training, Evaluator, RunConfig, Silent, Trainer};
use softnet::Classifier;

use crate::DataArgs;
use report::{Ceiling, Metric, Report, Spread, Unit};

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
    /// Skip the tutorial's CNN (training steps, one image, 10,000 images).
    #[arg(long)]
    no_cnn: bool,
    /// Compare this run with an earlier `softnet bench --json` saved in FILE: each
    /// measurement's change as a share of the FMA ceiling each run measured, flagged when
    /// it is larger than the spread of the repeats.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["json", "scaling"])]
    compare: Option<PathBuf>,
    /// Measure how training scales with the thread count instead: the MLP 784-256-10 with
    /// batches of 1000, softmax regression with batches of 100 and the tutorial's CNN with
    /// batches of 50 (Adam), on each of `--scaling-threads`, with speedups against the
    /// first of them.
    #[arg(long)]
    scaling: bool,
    /// Thread counts for `--scaling` (default: 1, 2, 4, 8, 16 up to this machine's cores).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..=1024))]
    scaling_threads: Vec<u16>,
    /// MLP steps (of 1000 examples) per `--scaling` measurement; softmax regression takes ten
    /// times as many steps of 100, the CNN a quarter as many of 50.
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

/// Latency of one image through `Model::inference`, in microseconds: each sample the mean
/// over 2000 test images.
fn single_image_us(mnist: &Mnist, model: &Model, repeats: u32) -> Spread {
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
    Spread::of(samples)
}

/// Iterations of each chain in [`fma_peak_samples`].
const PEAK_ITERATIONS: u64 = 2_000_000;

/// [`fma_peak_samples`]'s loop, at the level kernels run at: its sum (so the loop is not
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

/// The f32 multiply-add rate `threads` threads reach together, in GFLOP/s, three times:
/// each thread runs independent chains of sixteen-lane FMAs from registers, with no memory
/// traffic, at the SIMD level the kernels run at. It is the ceiling of every
/// dense-equivalent rate below, measured in the same run, because the rate a virtual
/// machine's cores deliver changes with what else the host runs.
fn fma_peak_samples(threads: usize) -> Vec<f64> {
    const ITERATIONS: u64 = PEAK_ITERATIONS;
    let lanes = dispatch(FmaSpin).1;
    let spin = || dispatch(FmaSpin).0;
    (0..3)
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
        .collect()
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

/// Wall time of the whole `softnet train -q` process with the reference flags.
fn whole_process_s(args: &BenchArgs, repeats: u32) -> anyhow::Result<Spread> {
    let exe = std::env::current_exe()?;
    let dir = softnet::data::locate_data_dir(args.data.data.as_deref())?;
    let mut samples = Vec::new();
    for _ in 0..repeats.max(1) {
        let started = Instant::now();
        let status = std::process::Command::new(&exe)
            .args(["train", "-q", "--order", "sequential", "--data"])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "softnet train failed while benchmarking");
        samples.push(started.elapsed().as_secs_f64());
    }
    Ok(Spread::of(samples))
}

/// One thread count of `softnet bench --scaling`: samples (or images) a second.
struct ScalingPoint {
    threads: usize,
    mlp: f64,
    softmax: f64,
    cnn: Option<f64>,
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
    let cnn_steps = (args.scaling_steps / 4).max(1);
    // Samples a second (median of the repeats) and the trained parameters.
    let measure = |arch: &Architecture, batch: usize, steps: u64, threads: usize| {
        let runs: Vec<(f64, Trainer)> = (0..repeats)
            .map(|_| trained(mnist, arch, batch, steps, 0, Some(threads)))
            .collect();
        let seconds = median(runs.iter().map(|(s, _)| *s).collect());
        let trainer = runs.into_iter().next().expect("one run at least").1;
        ((steps * batch as u64) as f64 / seconds, trainer)
    };
    // The CNN's Adam steps of 50, after one untimed step; images a second and the model.
    let measure_cnn = |threads: usize| {
        let runs: Vec<(f64, Trainer)> = (0..repeats)
            .map(|_| {
                let mut trainer = cnn::trainer(mnist.train.len(), Some(threads));
                let seconds = trainer.in_pool(|t| {
                    t.step(&mnist.train);
                    time(|| {
                        for _ in 0..cnn_steps {
                            t.step(&mnist.train);
                        }
                    })
                    .0
                });
                (seconds, trainer)
            })
            .collect();
        let seconds = median(runs.iter().map(|(s, _)| *s).collect());
        let trainer = runs.into_iter().next().expect("one run at least").1;
        ((cnn_steps as usize * cnn::BATCH) as f64 / seconds, trainer)
    };
    // Warm-up: page faults and thread start-up are not measured.
    trained(mnist, &mlp, 1000, 2, 0, Some(counts[0]));
    let mut rows = Vec::new();
    let mut identical = true;
    let mut first: Option<Vec<Trainer>> = None;
    for &threads in &counts {
        let (mlp_rate, mlp_run) = measure(&mlp, 1000, mlp_steps, threads);
        let (softmax_rate, softmax_run) = measure(&softmax, 100, softmax_steps, threads);
        let mut runs = vec![mlp_run, softmax_run];
        let cnn_rate = (!args.no_cnn).then(|| {
            let (rate, run) = measure_cnn(threads);
            runs.push(run);
            rate
        });
        match &first {
            None => first = Some(runs),
            Some(base) => {
                identical &= base.iter().zip(&runs).all(|(a, b)| a.model() == b.model());
            }
        }
        rows.push(ScalingPoint {
            threads,
            mlp: mlp_rate,
            softmax: softmax_rate,
            cnn: cnn_rate,
        });
    }
    let base = (rows[0].mlp, rows[0].softmax, rows[0].cnn);
    if args.json {
        let points: Vec<Value> = rows
            .iter()
            .map(|p| {
                let mut point = json!({
                    "threads": p.threads,
                    "mlp_samples_per_s": p.mlp,
                    "mlp_speedup": p.mlp / base.0,
                    "softmax_samples_per_s": p.softmax,
                    "softmax_speedup": p.softmax / base.1,
                });
                if let (Some(rate), Some(first)) = (p.cnn, base.2) {
                    point["cnn_train_images_per_s"] = json!(rate);
                    point["cnn_speedup"] = json!(rate / first);
                }
                point
            })
            .collect();
        let out = json!({
            "scaling": points,
            "identical_results": identical,
            "cores": cores,
            "repeats": repeats,
        });
        println!("{out}");
        return;
    }
    println!(
        "softnet bench --scaling: training throughput, medians of {repeats} runs, {cores} cores\n\
         (MLP 784-256-10: {mlp_steps} steps of 1000; softmax regression: {softmax_steps} steps of 100{})\n",
        if args.no_cnn {
            String::new()
        } else {
            format!("; the tutorial's CNN: {cnn_steps} Adam steps of 50")
        }
    );
    print!(
        "{:>7} {:>22} {:>9} {:>22} {:>9}",
        "threads", "MLP samples/s", "speedup", "softmax samples/s", "speedup"
    );
    if args.no_cnn {
        println!();
    } else {
        println!(" {:>16} {:>9}", "CNN images/s", "speedup");
    }
    for p in &rows {
        print!(
            "{:>7} {:>22.0} {:>8.2}x {:>22.0} {:>8.2}x",
            p.threads,
            p.mlp,
            p.mlp / base.0,
            p.softmax,
            p.softmax / base.1
        );
        match (p.cnn, base.2) {
            (Some(rate), Some(first)) => println!(" {rate:>16.0} {:>8.2}x", rate / first),
            _ => println!(),
        }
    }
    println!(
        "\ntargets: the MLP and the CNN >= 10x at 16 threads; softmax regression's tiny batches \
         no slower with more threads\ntrained weights identical on every thread count: {}",
        if identical { "yes" } else { "NO" }
    );
}

/// The CNN's measurements: f32 training and inference, then int8 inference.
struct CnnTimes {
    train_images_per_s: Spread,
    /// One image on one thread, and on the run's threads.
    infer_1_us: Spread,
    infer_1_pool_us: Spread,
    infer_10k_ms: Spread,
    int8_infer_1_us: Spread,
    int8_infer_10k_ms: Spread,
}

/// The tutorial's CNN: Adam steps of 50 (timed one by one), one image on one thread and on
/// `threads`, and 10,000 images on `threads`; then the same two inferences of its int8 copy
/// ([`QuantizedModel::quantize`], run by a [`Classifier`]).
fn cnn_times(mnist: &Mnist, threads: Option<usize>, repeats: u32) -> CnnTimes {
    let repeats = repeats as usize;
    let train_images_per_s = cnn::train_images_per_s(mnist, threads, 3, 3 * repeats.max(5));
    let model = Model::he_normal(Architecture::cnn(), 2);
    let infer_1_us = cnn::infer_1_us(mnist, &model, repeats.max(5), 100);
    let infer_1_pool_us = cnn::infer_1_pool_us(mnist, &model, threads, repeats.max(5), 100);
    let images = cnn::ten_thousand(&mnist.test);
    // A 10,000-image pass takes seconds: five are enough for quartiles.
    let infer_10k_ms = cnn::infer_10k_ms(&model, &images, threads, repeats.min(5));
    let int8 = Classifier::from_quantized(&QuantizedModel::quantize(&model))
        .expect("the int8 engine runs the tutorial's CNN");
    let int8_infer_1_us = cnn::int8_infer_1_us(mnist, &int8, repeats.max(5), 100);
    let int8_infer_10k_ms = cnn::int8_infer_10k_ms(&int8, &images, threads, repeats.min(5));
    CnnTimes {
        train_images_per_s,
        infer_1_us,
        infer_1_pool_us,
        infer_10k_ms,
        int8_infer_1_us,
        int8_infer_10k_ms,
    }
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    // Read before a minute of measuring: a bad file fails at once.
    let baseline = args
        .compare
        .as_deref()
        .map(compare::load_baseline)
        .transpose()?;
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
    let load = Spread::of(load_samples);
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
    let fma_before_samples = fma_peak_samples(threads_used);
    let fma_1t_samples = fma_peak_samples(1);
    let fma_before = median(fma_before_samples.clone());
    let fma_1t = median(fma_1t_samples.clone());
    // The read rate over as many bytes as the CNN's weights, which one image reads once.
    let cnn_bytes = Model::zeros(Architecture::cnn()).params().len() * 4;
    let read_1t = median(memory::read_samples(cnn_bytes, 1));
    let read_all = median(memory::read_samples(cnn_bytes, threads_used));
    // One warm-up run each, so page faults and thread start-up are not measured.
    training_run(&mnist, &softmax, 200, 100, threads);
    let reference_run = Spread::of(
        (0..repeats)
            .map(|_| training_run(&mnist, &softmax, 2000, 100, threads))
            .collect(),
    );
    let train_only = Spread::of(
        (0..repeats)
            .map(|_| training_run(&mnist, &softmax, 2000, 0, threads))
            .collect(),
    );
    let peak = peak_rss_mb();
    let model = Model::he_normal(softmax.clone(), 3);
    let infer_1 = single_image_us(&mnist, &model, repeats);
    let mut evaluator = Evaluator::new(&model, mnist.test.len(), threads);
    // Repeated evaluations of one dataset multiply its lists of non-zero pixels, as a run's
    // evaluations of the test set do; the first evaluation of new images reads the pixels.
    // The first two, untimed, are the ones a run makes before its lists exist (the second
    // makes them); then as many as a run makes, twenty.
    evaluator.evaluate(&model, &mnist.test);
    evaluator.evaluate(&model, &mnist.test);
    let infer_10k = Spread::of(
        (0..repeats.max(20))
            .map(|_| time(|| evaluator.evaluate(&model, &mnist.test)).0)
            .collect(),
    )
    .map(|s| s * 1e3);
    let infer_10k_first = Spread::of(
        (0..repeats.max(5))
            .map(|_| {
                let new = Dataset::new(mnist.test.pixels().to_vec(), mnist.test.labels().to_vec());
                time(|| evaluator.evaluate(&model, &new)).0
            })
            .collect(),
    )
    .map(|s| s * 1e3);
    let mlp = Architecture::mlp(&[256]);
    let mlp_epoch = (!args.no_mlp).then(|| {
        Spread::of(
            (0..repeats.min(3))
                .map(|_| training_run(&mnist, &mlp, 600, 0, threads))
                .collect(),
        )
    });
    let mlp_1 = single_image_us(&mnist, &Model::he_normal(mlp.clone(), 1), repeats);
    let cnn = (!args.no_cnn).then(|| cnn_times(&mnist, threads, repeats));
    let process = whole_process_s(&args, repeats.min(5))?;
    let fma_after_samples = fma_peak_samples(threads_used);
    let fma_after = median(fma_after_samples.clone());
    let fma_peak = (fma_before + fma_after) / 2.0;
    let ceiling = Ceiling::new(fma_peak, &[fma_before_samples, fma_after_samples].concat());
    let ceiling_1t = Ceiling::new(fma_1t, &fma_1t_samples);

    // Dense-equivalent work of each measurement, in GFLOP (see `flops`).
    let test_len = mnist.test.len() as f64;
    let softmax_step = flops::training_flops(&softmax) / 1e9;
    let softmax_image = flops::forward_flops(&softmax) / 1e9;
    let train_gflop = 2000.0 * 100.0 * softmax_step;
    let eval_gflop = 20.0 * test_len * softmax_image;
    let mut report = Report {
        threads: threads_used as u64,
        simd: softnet::kernels::simd::Level::process().to_string(),
        ceiling_gflops: fma_peak,
        ceiling_1t_gflops: fma_1t,
        ..Report::default()
    };
    use Unit::{Megabytes, Micros, Millis, PerSecond, Seconds};
    report.insert(
        "reference_run_s",
        Metric::computed(reference_run, Seconds, train_gflop + eval_gflop, ceiling),
    );
    report.insert(
        "train_only_s",
        Metric::computed(train_only, Seconds, train_gflop, ceiling),
    );
    report.insert("process_s", Metric::plain(process, Seconds));
    report.insert("load_s", Metric::plain(load, Seconds));
    report.insert(
        "infer_1_us",
        Metric::computed(infer_1, Micros, softmax_image, ceiling_1t),
    );
    report.insert(
        "infer_10k_ms",
        Metric::computed(infer_10k, Millis, test_len * softmax_image, ceiling),
    );
    report.insert(
        "infer_10k_first_ms",
        Metric::computed(infer_10k_first, Millis, test_len * softmax_image, ceiling),
    );
    report.insert("peak_rss_mb", Metric::plain(Spread::once(peak), Megabytes));
    if let Some(epoch) = mlp_epoch {
        let gflop = 600.0 * 100.0 * flops::training_flops(&mlp) / 1e9;
        report.insert(
            "mlp_epoch_s",
            Metric::computed(epoch, Seconds, gflop, ceiling),
        );
    }
    report.insert(
        "mlp_infer_1_us",
        Metric::computed(mlp_1, Micros, flops::forward_flops(&mlp) / 1e9, ceiling_1t),
    );
    if let Some(c) = &cnn {
        let arch = Architecture::cnn();
        let (image, step_image) = (
            flops::forward_flops(&arch) / 1e9,
            flops::training_flops(&arch) / 1e9,
        );
        report.insert(
            "cnn_train_images_per_s",
            Metric::computed(c.train_images_per_s, PerSecond, step_image, ceiling),
        );
        report.insert(
            "cnn_infer_1_us",
            Metric::computed(c.infer_1_us, Micros, image, ceiling_1t),
        );
        report.insert(
            "cnn_infer_1_pool_us",
            Metric::computed(c.infer_1_pool_us, Micros, image, ceiling),
        );
        report.insert(
            "cnn_infer_10k_ms",
            Metric::computed(c.infer_10k_ms, Millis, cnn::IMAGES as f64 * image, ceiling),
        );
        // The int8 copy does the same multiply-adds, in i32: its rates are read against the
        // f32 FMA ceiling, which VNNI can pass.
        report.insert(
            "cnn8_infer_1_us",
            Metric::computed(c.int8_infer_1_us, Micros, image, ceiling_1t),
        );
        report.insert(
            "cnn8_infer_10k_ms",
            Metric::computed(
                c.int8_infer_10k_ms,
                Millis,
                cnn::IMAGES as f64 * image,
                ceiling,
            ),
        );
    }
    let memory = Memory {
        bytes: cnn_bytes,
        read_1t_gbps: read_1t,
        read_gbps: read_all,
        int8_kernels: softnet::infer::int8_kernels(),
    };

    if let (Some(base), Some(path)) = (&baseline, &args.compare) {
        let comparison = compare::compare(base, &report);
        print!("{}", compare::render(base, &report, &comparison, path));
        return Ok(());
    }
    let simd_detail = softnet::kernels::simd::describe();
    if args.json {
        println!("{}", json_output(&report, repeats, &simd_detail, &memory));
        return Ok(());
    }
    println!("softnet bench: medians of {repeats} runs on {threads_used} thread(s)");
    println!("simd: {simd_detail}");
    println!("int8: {}", memory.int8_kernels);
    println!(
        "this machine's f32 FMA peak: {fma_1t:.0} GFLOP/s on 1 thread, {fma_before:.0} then \
         {fma_after:.0} GFLOP/s on {threads_used} (before and after the runs)"
    );
    println!(
        "reading {:.1} MB (the CNN's weights) again and again: {read_1t:.1} GB/s on 1 thread, \
         {read_all:.1} GB/s on {threads_used}\n",
        cnn_bytes as f64 / 1e6
    );
    let metric = |key: &str| report.metrics[key];
    let rate = |key: &str| {
        let m = metric(key);
        let gflops = m.gflops().unwrap_or(f64::NAN);
        let share = 100.0 * m.ceiling_share().unwrap_or(f64::NAN);
        // The one-image latencies run on one thread, against its ceiling.
        if key.ends_with("infer_1_us") {
            format!("{gflops:.1} GFLOP/s, {share:.0}% of 1-thread peak")
        } else {
            format!("{gflops:.1} GFLOP/s, {share:.0}% of peak")
        }
    };
    println!("{:<52} {:>34} {:>10}", "measurement", "measured", "target");
    let row = |name: &str, measured: String, target: &str| {
        println!("{name:<52} {measured:>34} {target:>10}")
    };
    row(
        "reference run: 2000 steps + 20 evaluations",
        format!("{:.1} ms", reference_run.median * 1e3),
        "<= 40 ms",
    );
    row("  dense-equivalent rate", rate("reference_run_s"), "");
    row(
        "whole process `softnet train` (gz files to accuracy)",
        format!("{:.3} s", process.median),
        "<= 0.25 s",
    );
    row(
        "  of which loading the four gz files",
        format!("{:.3} s", load.median),
        "",
    );
    row(
        "2000 training steps alone",
        format!("{:.1} ms", train_only.median * 1e3),
        "<= 25 ms",
    );
    row(
        "  throughput",
        format!(
            "{:.2} M samples/s",
            2000.0 * 100.0 / train_only.median / 1e6
        ),
        "",
    );
    row("  dense-equivalent rate", rate("train_only_s"), "");
    row(
        "inference, one image, 784-10",
        format!("{:.3} us", infer_1.median),
        "<= 1 us",
    );
    row(
        "inference, 10,000 test images, 784-10",
        format!("{:.3} ms", infer_10k.median),
        "<= 0.7 ms",
    );
    row(
        "  images seen for the first time",
        format!("{:.3} ms", infer_10k_first.median),
        "",
    );
    row(
        "peak memory (RSS) after the reference runs",
        format!("{peak:.1} MB"),
        "<= 120 MB",
    );
    if let Some(epoch) = mlp_epoch {
        row(
            "784-256-10: one epoch (600 steps of 100)",
            format!("{:.3} s", epoch.median),
            "<= 0.12 s",
        );
        row("  dense-equivalent rate", rate("mlp_epoch_s"), "");
    }
    row(
        "inference, one image, 784-256-10",
        format!("{:.3} us", mlp_1.median),
        "<= 5 us",
    );
    if let Some(c) = &cnn {
        row(
            "CNN training: Adam steps of 50, dropout 0.5",
            format!("{:.0} images/s", c.train_images_per_s.median),
            "",
        );
        row(
            "  dense-equivalent rate",
            rate("cnn_train_images_per_s"),
            ">= 75%",
        );
        // The target: within 1.3x of the image's arithmetic at the one-thread ceiling.
        let floor_us = flops::forward_flops(&Architecture::cnn()) / (fma_1t * 1e9) * 1e6;
        row(
            "CNN inference, one image",
            format!("{:.1} us", c.infer_1_us.median),
            &format!("<= {:.0} us", 1.3 * floor_us),
        );
        row("  dense-equivalent rate", rate("cnn_infer_1_us"), "");
        row(
            "  floors: FLOPs at peak; weights at read rate",
            format!(
                "{floor_us:.0} us; {:.0} us",
                memory.floor_us(memory.read_1t_gbps)
            ),
            "",
        );
        row(
            &format!("  fc1 split over {threads_used} thread(s)"),
            format!("{:.1} us", c.infer_1_pool_us.median),
            "",
        );
        row(
            &format!("    weights at the read rate on {threads_used}"),
            format!("{:.0} us", memory.floor_us(memory.read_gbps)),
            "",
        );
        row(
            "CNN inference, 10,000 images",
            format!("{:.0} ms", c.infer_10k_ms.median),
            "",
        );
        row("  dense-equivalent rate", rate("cnn_infer_10k_ms"), "");
        row(
            &format!("int8 CNN inference, one image ({})", memory.int8_kernels),
            format!("{:.1} us", c.int8_infer_1_us.median),
            "",
        );
        row(
            "int8 CNN inference, 10,000 images",
            format!("{:.0} ms", c.int8_infer_10k_ms.median),
            "",
        );
    }
    Ok(())
}

/// The memory-read ceiling measured in the run, and the int8 kernels' path.
struct Memory {
    /// Bytes of the buffer read: the tutorial CNN's f32 weights.
    bytes: usize,
    /// GB/s on one thread and on all of the run's threads.
    read_1t_gbps: f64,
    read_gbps: f64,
    int8_kernels: &'static str,
}

impl Memory {
    /// Microseconds to read the CNN's weights once at `gbps`.
    fn floor_us(&self, gbps: f64) -> f64 {
        self.bytes as f64 / (gbps * 1e3)
    }
}

/// `softnet bench --json`: every measurement's median under its own key (as earlier
/// versions printed them), the CNN's rates and shares of the ceiling, the machine, and the
/// `"metrics"` object `--compare` reads (quartiles, units, work, ceilings).
fn json_output(report: &Report, repeats: u32, simd_detail: &str, memory: &Memory) -> Value {
    let mut out = Map::new();
    for (key, metric) in &report.metrics {
        out.insert(key.clone(), json!(metric.value.median));
    }
    for key in [
        "mlp_epoch_s",
        "cnn_train_images_per_s",
        "cnn_infer_1_us",
        "cnn_infer_1_pool_us",
        "cnn_infer_10k_ms",
        "cnn8_infer_1_us",
        "cnn8_infer_10k_ms",
    ] {
        out.entry(key).or_insert(Value::Null);
    }
    for (key, name) in [
        ("cnn_train_images_per_s", "cnn_train"),
        ("cnn_infer_1_us", "cnn_infer_1"),
        ("cnn_infer_1_pool_us", "cnn_infer_1_pool"),
        ("cnn_infer_10k_ms", "cnn_infer_10k"),
        ("cnn8_infer_1_us", "cnn8_infer_1"),
        ("cnn8_infer_10k_ms", "cnn8_infer_10k"),
    ] {
        let metric = report.metrics.get(key);
        out.insert(
            format!("{name}_gflops"),
            json!(metric.and_then(Metric::gflops)),
        );
        out.insert(
            format!("{name}_ceiling_share"),
            json!(metric.and_then(Metric::ceiling_share)),
        );
    }
    // One image of the CNN reads all its weights: its time against that read as well.
    let median = |key: &str| report.metrics.get(key).map(|m| m.value.median);
    out.insert("memory_read_bytes".into(), json!(memory.bytes));
    out.insert("memory_read_1t_gbps".into(), json!(memory.read_1t_gbps));
    out.insert("memory_read_gbps".into(), json!(memory.read_gbps));
    for (key, name, gbps) in [
        ("cnn_infer_1_us", "cnn_infer_1", memory.read_1t_gbps),
        ("cnn_infer_1_pool_us", "cnn_infer_1_pool", memory.read_gbps),
    ] {
        let floor = memory.floor_us(gbps);
        out.insert(format!("{name}_memory_floor_us"), json!(floor));
        // The floor over the time: 1 where the image takes just the weights' read.
        out.insert(
            format!("{name}_memory_share"),
            json!(median(key).map(|t| floor / t)),
        );
    }
    out.insert("int8_kernels".into(), json!(memory.int8_kernels));
    out.insert("fma_peak_gflops".into(), json!(report.ceiling_gflops));
    out.insert("fma_peak_1t_gflops".into(), json!(report.ceiling_1t_gflops));
    out.insert("threads".into(), json!(report.threads));
    out.insert("repeats".into(), json!(repeats));
    out.insert("simd".into(), json!(report.simd));
    out.insert("simd_detail".into(), json!(simd_detail));
    out.insert(report::METRICS.into(), report.metrics_json());
    Value::Object(out)
}
