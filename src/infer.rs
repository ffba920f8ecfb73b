//! Inference only: [`ClassifierRef`], which runs a model file's bytes in place with no `std`
//! and no allocation (microcontrollers, WebAssembly), and, with the `std` feature,
//! [`Classifier`], the fast engine other programs link.
//!
//! # `Classifier`
//!
//! It builds with `default-features = false` (no rayon, no flate2, no CLI crates), loads a
//! validated model file of either kind (f32, or int8 from `softnet quantize`) from a path or
//! from bytes (`include_bytes!`), and predicts without touching the heap.
//!
//! **Where the scratch lives.** A prediction keeps its activations in fixed-size arrays on
//! the stack, so `predict` takes `&self`, one `Classifier` can serve many threads at once
//! (`Send + Sync`), and nothing is allocated per prediction. The price is a width limit:
//! every layer is at most [`MAX_WIDTH`] wide (models wider than that are refused at load
//! time), and a prediction uses up to 2 × 16 KiB of stack (2 × 4 KiB for models no wider
//! than 1024, which includes softmax regression and the usual MLPs).
//!
//! **Layout.** Weights are stored transposed, `[fan_out][stride]` with `stride` the fan-in
//! rounded up to 32 and zero-padded, so each output is one contiguous SIMD dot product.
//!
//! **Convolutional models** (f32) run through the training code's forward pass
//! ([`Model::inference`], its blocked convolution kernels), without allocating per
//! prediction either: each thread keeps the inference workspace of the last few networks
//! it ran (up to four, by classifier and batch size), made at the thread's first
//! prediction with that classifier. For one image that workspace holds every layer's
//! output and the convolutions' patch scratch, 483,176 bytes for the tutorial's CNN
//! (`conv5x5x32,pool2,conv5x5x64,pool2,fc1024,fc10`; the gemm's packing buffers come on
//! top); `predict_batch` keeps one of 64 rows (12.8 MB for that CNN). [`ClassifierRef`]
//! runs the same f32 files (not the int8 convolutional ones) with no workspace at all,
//! in caller scratch of [`ClassifierRef::scratch_len`] values (200,704 bytes for the
//! tutorial's CNN), more slowly (plain loops).
//!
//! **Int8.** Weights are int8 per output channel (see [`crate::io::quantized`]); the layer
//! input is an integer vector with one f32 scale: the pixels themselves (`0..=255`, scale
//! 1/255, exactly the f32 model's `p / 255`), or, for f32 inputs and hidden activations, a
//! dynamic per-example quantization to `-255..=255` with scale `max|x| / 255`. The products
//! are summed in i32 (`vpmaddwd`: at most `255 · 127 · 4096 < 2³¹`, no overflow), then
//! `y_j = acc_j · (scale_x · scale_j) + b_j` in f32.
//!
//! **Int8 convolutional models** run layer by layer in a scratch each thread makes at its
//! first prediction with the classifier and keeps, as the f32 ones do. A convolution
//! quantizes its input per image to u8 (`0..=255` with scale `max / 255` after a ReLU; a
//! zero point where values are negative; the pixels as they are for the first layer) and
//! sums u8 × i8 products in i32 with [`crate::kernels::conv_int8`] (AVX-512 VNNI where
//! the CPU has it), then rescales to f32 with the bias and the ReLU that follows; linear
//! layers are 1x1 convolutions of one pixel, on u8 inputs too; max-pooling runs on f32.
//! The layers up to the trailing linear ones run image by image; those run on a batch of
//! images at once, so that `predict_batch` and `evaluate` read their weights once per 32
//! images. The scratch holds two f32 activation buffers of the largest layer, its i32
//! sums, the u8 input, the padded image and patch rows of the largest convolution, and the
//! linear layers' inputs, sums and outputs for each image of a batch: 485,861 bytes for the
//! tutorial's CNN for one image (the f32 engine's workspace is the 483,176 bytes above
//! plus the gemm's packing buffers), 837,184 for a batch. `evaluate` spreads a dataset's
//! batches over a pool's threads ([`Classifier::evaluate_on`]), each with a scratch of
//! its own; `predict_batch` runs on the calling thread.

#![forbid(unsafe_code)]

mod arch_ref;
mod forward;
mod json;
mod model_ref;

#[cfg(feature = "std")]
use model_ref::argmax;

pub use arch_ref::{TensorName, MAX_LAYERS};
pub use model_ref::{ClassifierRef, Dims, Dtype, ParseError};

#[cfg(feature = "std")]
use std::path::{Path, PathBuf};

#[cfg(feature = "std")]
use crate::data::{Dataset, PIXELS};
#[cfg(feature = "std")]
use crate::error::ModelError;
#[cfg(feature = "std")]
use crate::io::quantized::{load_any_model_bytes, read_model_file, AnyModel, QuantizedModel};
#[cfg(feature = "std")]
use crate::kernels::conv::ConvGeometry;
#[cfg(feature = "std")]
use crate::kernels::conv_int8::{self, PackedFilter, MAX_PATCH};
#[cfg(feature = "std")]
use crate::kernels::pool::{max_pool_forward, PoolGeometry};
#[cfg(feature = "std")]
use crate::kernels::simd::{dispatch, Simd, SimdKernel};
#[cfg(feature = "std")]
use crate::nn::{Architecture, Input, LayerSpec, Model, Workspace};
#[cfg(feature = "std")]
use crate::pixels::PIXEL_TO_UNIT;
#[cfg(feature = "std")]
use crate::train::{EvalResult, Pool};

#[cfg(feature = "std")]
/// Widest layer the engine runs (the size of its stack buffers).
pub const MAX_WIDTH: usize = 4096;
#[cfg(feature = "std")]
/// Most classes a model may have (classes are written as `u8` by [`Classifier::predict_batch`]).
pub const MAX_CLASSES: usize = 256;
#[cfg(feature = "std")]
/// Models no wider than this run with the small stack buffers.
const SMALL_WIDTH: usize = 1024;
#[cfg(feature = "std")]
/// Rows are padded to a multiple of this many values: two vectors of sixteen f32 per step.
const ALIGN: usize = 32;

#[cfg(feature = "std")]
/// Why a model cannot become a [`Classifier`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClassifierError {
    /// The file or bytes are not a valid model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A valid model that this engine does not run.
    #[error("{}: unsupported by the inference engine: {reason}", source_name.display())]
    Unsupported {
        /// The file (or `<bytes>`, `<model>`) concerned.
        source_name: PathBuf,
        /// What is out of range.
        reason: String,
    },
}

#[cfg(feature = "std")]
/// Whether the weights are f32 or int8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// F32 weights, f32 arithmetic (FMA).
    F32,
    /// Int8 weights per output channel, i32 accumulation.
    Int8,
}

#[cfg(feature = "std")]
/// The kernels an int8 convolutional network's layers (its linear layers too) multiply with
/// on this thread: `"vnni"` (AVX-512 VNNI's `vpdpbusd`) where the kernels run at the
/// AVX-512 level and the CPU has VNNI, else `"portable"` (loops at the kernels' level, several
/// times slower). `SOFTNET_SIMD=avx2` or `portable` turns VNNI off with the rest of AVX-512.
pub fn int8_kernels() -> &'static str {
    use crate::kernels::simd::Level;
    if Level::current() == Level::Avx512 && crate::kernels::vnni::detected() {
        "vnni"
    } else {
        "portable"
    }
}

#[cfg(feature = "std")]
#[derive(Debug, Clone)]
struct F32Layer {
    fan_out: usize,
    stride: usize,
    weight: Vec<f32>, // [fan_out, stride], transposed, zero-padded
    bias: Vec<f32>,   // [fan_out]
}

#[cfg(feature = "std")]
#[derive(Debug, Clone)]
struct Int8Layer {
    fan_out: usize,
    stride: usize,
    weight: Vec<i8>, // [fan_out, stride], transposed, zero-padded
    scale: Vec<f32>, // [fan_out]
    bias: Vec<f32>,  // [fan_out]
}

#[cfg(feature = "std")]
#[derive(Debug, Clone)]
enum Engine {
    F32(Vec<F32Layer>),
    Int8(Vec<Int8Layer>),
    /// A network the dense engine does not run (convolutions, pooling), through
    /// [`Model::inference`], with a workspace cached per thread under this engine's id.
    Network(Box<Model>, u64),
    /// Such a network with int8 weights, with its scratch cached per thread likewise.
    Int8Network(Box<Int8Network>, u64),
}

#[cfg(feature = "std")]
/// One layer of an [`Int8Network`] as it runs (flatten and dropout are the identity here).
#[derive(Debug, Clone)]
enum Int8Step {
    /// A convolution, or a linear layer (a 1x1 convolution of one pixel,
    /// [`PackedFilter::matrix`]), on its input quantized to u8; rescaled to f32, then
    /// `max(·, 0)` where `relu`.
    Weighted {
        filter: PackedFilter,
        scale: Vec<f32>, // [cout]
        bias: Vec<f32>,  // [cout]
        relu: bool,
    },
    /// Max-pooling, on f32.
    Pool(PoolGeometry),
    /// A ReLU that follows no layer with weights, on f32 (`len` values).
    Relu(usize),
}

#[cfg(feature = "std")]
/// A convolutional network with int8 weights: its steps, where its trailing linear layers
/// start, and the sizes of the scratch it needs.
#[derive(Debug, Clone)]
struct Int8Network {
    steps: Vec<Int8Step>,
    /// The first of the trailing linear layers, which run on a batch of images at once
    /// (the weights read once per batch); the steps before run image by image.
    tail: usize,
    /// f32s of each of the two activation buffers: the largest activation, input included.
    widest: usize,
    /// Bytes of the largest input of a layer with weights, quantized.
    widest_in: usize,
    /// i32 sums of the largest output of a layer with weights.
    widest_out: usize,
    /// Bytes of the largest patch scratch.
    patches: usize,
    /// Widest input and output of the trailing linear layers.
    tail_in: usize,
    tail_out: usize,
}

#[cfg(feature = "std")]
/// What one thread needs to run an [`Int8Network`] on `rows` images at a time.
#[derive(Debug)]
struct Int8Scratch {
    // One image through the steps before the tail.
    a: Vec<f32>,
    b: Vec<f32>,
    x_u8: Vec<u8>,
    acc: Vec<i32>,
    patches: Vec<u8>,
    // The rows through the tail: inputs [rows, tail_in], sums and outputs [rows, tail_out],
    // each row's scale and zero point.
    rows_u8: Vec<u8>,
    rows_acc: Vec<i32>,
    rows_f32: Vec<f32>,
    rows_patches: Vec<u8>,
    scales: Vec<f32>,
    zeros: Vec<u8>,
}

#[cfg(feature = "std")]
/// The network's input for one example.
#[derive(Debug, Clone, Copy)]
enum Source<'a> {
    Pixels(&'a [u8]),
    Unit(&'a [f32]),
}

#[cfg(feature = "std")]
/// An inference-only MNIST classifier: f32 or int8 weights, no allocation per prediction.
///
/// Dense models predict in stack buffers; convolutional ones in a workspace each thread
/// makes at its first prediction with the classifier and keeps (see the module docs for
/// its size). Either way `predict` takes `&self`: share one classifier between threads.
///
/// ```
/// use softnet::{io::model_to_bytes, nn::Model, Classifier};
/// let bytes = model_to_bytes(&Model::softmax_regression(), &[]);
/// let classifier = Classifier::from_bytes(&bytes).unwrap();
/// let (class, confidence) = classifier.predict(&[0u8; 784]);
/// // All-zero weights: every class is equally likely.
/// assert_eq!((class, confidence), (0, 0.1));
/// ```
#[derive(Debug, Clone)]
pub struct Classifier {
    arch: Architecture,
    engine: Engine,
    widest: usize,
}

#[cfg(feature = "std")]
fn padded(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

#[cfg(feature = "std")]
/// `w` (`[fan_in, fan_out]`) as `[fan_out, stride]`, zero-padded.
fn transpose_padded<T: Copy + Default>(w: &[T], fan_in: usize, fan_out: usize) -> Vec<T> {
    let stride = padded(fan_in);
    let mut t = vec![T::default(); fan_out * stride];
    for (i, row) in w.chunks_exact(fan_out).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            t[j * stride + i] = v;
        }
    }
    t
}

#[cfg(feature = "std")]
impl Classifier {
    /// Loads and validates a model file (f32, or int8 from `softnet quantize`).
    pub fn from_file(path: &Path) -> Result<Self, ClassifierError> {
        let bytes = read_model_file(path)?;
        Self::from_any(load_any_model_bytes(&bytes, path)?, path)
    }

    /// Parses and validates a model file's bytes, e.g. baked in with `include_bytes!`. The
    /// weights are copied once into the engine's layout (a transient decoded copy is freed
    /// before this returns); `bytes` is not kept.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ClassifierError> {
        let name = Path::new("<bytes>");
        Self::from_any(load_any_model_bytes(bytes, name)?, name)
    }

    /// An f32 classifier with `model`'s weights.
    pub fn from_model(model: &Model) -> Result<Self, ClassifierError> {
        let arch = model.architecture().clone();
        if arch.dense_widths().is_none() {
            check_network(&arch, Path::new("<model>"))?;
            return Ok(Classifier {
                arch,
                engine: Engine::Network(Box::new(model.clone()), network_id()),
                widest: 0,
            });
        }
        let widest = check(&arch, Path::new("<model>"))?;
        let layers = model
            .layers()
            .iter()
            .enumerate()
            .map(|(l, p)| F32Layer {
                fan_out: p.fan_out,
                stride: padded(p.fan_in),
                weight: transpose_padded(model.weight(l), p.fan_in, p.fan_out),
                bias: model.bias(l).to_vec(),
            })
            .collect();
        Ok(Classifier {
            arch,
            engine: Engine::F32(layers),
            widest,
        })
    }

    /// An int8 classifier with `model`'s weights.
    pub fn from_quantized(model: &QuantizedModel) -> Result<Self, ClassifierError> {
        let arch = model.architecture().clone();
        if arch.dense_widths().is_none() {
            check_network(&arch, Path::new("<model>"))?;
            let network = Int8Network::new(model, Path::new("<model>"))?;
            return Ok(Classifier {
                arch,
                engine: Engine::Int8Network(Box::new(network), network_id()),
                widest: 0,
            });
        }
        let widest = check(&arch, Path::new("<model>"))?;
        let layers = model
            .layers()
            .iter()
            .map(|l| Int8Layer {
                fan_out: l.fan_out,
                stride: padded(l.fan_in),
                weight: transpose_padded(&l.weight, l.fan_in, l.fan_out),
                scale: l.scale.clone(),
                bias: l.bias.clone(),
            })
            .collect();
        Ok(Classifier {
            arch,
            engine: Engine::Int8(layers),
            widest,
        })
    }

    fn from_any(model: AnyModel, name: &Path) -> Result<Self, ClassifierError> {
        let rename = |e: ClassifierError| match e {
            ClassifierError::Unsupported { reason, .. } => ClassifierError::Unsupported {
                source_name: name.to_path_buf(),
                reason,
            },
            other => other,
        };
        match model {
            AnyModel::F32(m) => Self::from_model(&m).map_err(rename),
            AnyModel::Int8(q) => Self::from_quantized(&q).map_err(rename),
        }
    }

    /// The architecture.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.arch.classes()
    }

    /// Whether the weights are f32 or int8.
    pub fn precision(&self) -> Precision {
        match self.engine {
            Engine::F32(_) | Engine::Network(..) => Precision::F32,
            Engine::Int8(_) | Engine::Int8Network(..) => Precision::Int8,
        }
    }

    /// The most likely class of a 28x28 image (row-major, 0 = background, 255 = ink, as in
    /// MNIST) and its softmax probability.
    pub fn predict(&self, pixels: &[u8; PIXELS]) -> (usize, f32) {
        let mut logits = [0.0f32; MAX_CLASSES];
        let z = &mut logits[..self.arch.classes()];
        self.logits(Source::Pixels(pixels), z);
        best_and_confidence(z)
    }

    /// [`Classifier::predict`] for f32 features (`[784]`, MNIST's scale is `pixel / 255`).
    ///
    /// # Panics
    /// If `x` does not hold 784 values.
    pub fn predict_f32(&self, x: &[f32]) -> (usize, f32) {
        assert_eq!(x.len(), PIXELS, "an image has {PIXELS} values");
        let mut logits = [0.0f32; MAX_CLASSES];
        let z = &mut logits[..self.arch.classes()];
        self.logits(Source::Unit(x), z);
        best_and_confidence(z)
    }

    /// The three most likely classes with their probabilities, most likely first (for a
    /// model with fewer classes, the missing entries are `(usize::MAX, 0.0)`).
    pub fn predict_top3(&self, pixels: &[u8; PIXELS]) -> [(usize, f32); 3] {
        let mut probs = [0.0f32; MAX_CLASSES];
        let p = &mut probs[..self.arch.classes()];
        self.probabilities_into(pixels, p);
        let mut top = [(usize::MAX, f32::NEG_INFINITY); 3];
        for (c, &v) in p.iter().enumerate() {
            // Strictly greater: among equals the lower class ranks first.
            if let Some(at) = top.iter().position(|&(_, t)| v > t) {
                top.copy_within(at..2, at + 1);
                top[at] = (c, v);
            }
        }
        top.map(|(c, v)| if c == usize::MAX { (c, 0.0) } else { (c, v) })
    }

    /// Writes the softmax probabilities of one image into `out` (`[classes]`) and returns
    /// the most likely class.
    ///
    /// # Panics
    /// If `pixels` does not hold 784 values or `out` does not hold `classes`.
    pub fn probabilities_into(&self, pixels: &[u8], out: &mut [f32]) -> usize {
        assert_eq!(pixels.len(), PIXELS, "an image has {PIXELS} pixels");
        assert_eq!(out.len(), self.arch.classes(), "one probability per class");
        self.logits(Source::Pixels(pixels), out);
        let best = argmax(out);
        let max = out[best];
        for v in out.iter_mut() {
            *v -= max;
        }
        crate::kernels::elementwise::exp_in_place(out);
        let inv = 1.0 / out.iter().sum::<f32>();
        for v in out.iter_mut() {
            *v *= inv;
        }
        best
    }

    /// Writes the logits of one image into `out` (`[classes]`).
    ///
    /// # Panics
    /// If `pixels` does not hold 784 values or `out` does not hold `classes`.
    pub fn logits_into(&self, pixels: &[u8], out: &mut [f32]) {
        assert_eq!(pixels.len(), PIXELS, "an image has {PIXELS} pixels");
        assert_eq!(out.len(), self.arch.classes(), "one logit per class");
        self.logits(Source::Pixels(pixels), out);
    }

    /// Classifies `n` images (`pixels`: `[n, 784]`) into `classes_out` (`[n]`) with their
    /// probabilities in `confidence_out` (`[n]`).
    ///
    /// # Panics
    /// If the slices' lengths disagree.
    pub fn predict_batch(&self, pixels: &[u8], classes_out: &mut [u8], confidence_out: &mut [f32]) {
        let n = classes_out.len();
        assert_eq!(pixels.len(), n * PIXELS, "pixels are not [n, {PIXELS}]");
        assert_eq!(confidence_out.len(), n, "one confidence per image");
        if let Engine::Network(model, id) = &self.engine {
            return network_predict_batch(model, *id, pixels, classes_out, confidence_out);
        }
        if let Engine::Int8Network(network, id) = &self.engine {
            let classes = self.arch.classes();
            int8_logits_in_batches(network, *id, classes, pixels, |first, logits| {
                for (r, z) in logits.chunks_exact_mut(classes).enumerate() {
                    let (class, confidence) = best_and_confidence(z);
                    // MAX_CLASSES is 256: every class fits.
                    classes_out[first + r] = class as u8;
                    confidence_out[first + r] = confidence;
                }
            });
            return;
        }
        for ((image, c), p) in pixels
            .chunks_exact(PIXELS)
            .zip(classes_out.iter_mut())
            .zip(confidence_out.iter_mut())
        {
            let image: &[u8; PIXELS] = image.try_into().expect("chunks of PIXELS");
            let (class, confidence) = self.predict(image);
            // MAX_CLASSES is 256: every class fits.
            *c = class as u8;
            *p = confidence;
        }
    }

    /// Loss, accuracy and confusion matrix on `data`, as [`crate::train::evaluate`] reports
    /// them for an f32 [`Model`]. A convolutional network runs on a pool of all cores
    /// ([`Classifier::evaluate_on`]).
    pub fn evaluate(&self, data: &Dataset) -> EvalResult {
        match &self.engine {
            Engine::Network(..) | Engine::Int8Network(..) => {
                self.evaluate_on(data, &Pool::new(None))
            }
            Engine::F32(_) | Engine::Int8(_) => self.evaluate_on(data, &Pool::new(Some(1))),
        }
    }

    /// [`Classifier::evaluate`] with a convolutional network's images spread over `pool`'s
    /// threads, in pieces fixed by the data alone and summed in image order: the result is
    /// the same, bit for bit, on any number of threads. Dense models run on this thread
    /// (they take about a millisecond for the test set).
    pub fn evaluate_on(&self, data: &Dataset, pool: &Pool) -> EvalResult {
        if let Engine::Network(model, _) = &self.engine {
            return crate::train::Evaluator::with_pool(model, data.len(), pool.clone())
                .evaluate(model, data);
        }
        let classes = self.arch.classes();
        if let Engine::Int8Network(network, id) = &self.engine {
            let (n, pixels, labels) = (data.len(), data.pixels(), data.labels());
            let mut losses = vec![0.0f64; n];
            let mut best = vec![0usize; n];
            let mut pieces: Vec<(usize, &mut [f64], &mut [usize])> = losses
                .chunks_mut(INT8_PIECE)
                .zip(best.chunks_mut(INT8_PIECE))
                .enumerate()
                .map(|(i, (l, b))| (i * INT8_PIECE, l, b))
                .collect();
            pool.for_each(&mut pieces, |(first, losses, best)| {
                let (first, rows) = (*first, losses.len());
                let images = &pixels[first * PIXELS..(first + rows) * PIXELS];
                int8_logits_in_batches(network, *id, classes, images, |at, logits| {
                    for (r, z) in logits.chunks_exact(classes).enumerate() {
                        let (loss, class) = loss_and_best(z, labels[first + at + r]);
                        losses[at + r] = loss;
                        best[at + r] = class;
                    }
                });
            });
            let mut confusion = vec![vec![0usize; classes]; classes];
            for (&class, &label) in best.iter().zip(labels) {
                confusion[usize::from(label)][class] += 1;
            }
            return EvalResult::from_confusion(losses.iter().sum(), confusion, n);
        }
        let mut confusion = vec![vec![0usize; classes]; classes];
        let mut loss = 0.0f64;
        let mut logits = [0.0f32; MAX_CLASSES];
        for (image, &label) in data.pixels().chunks_exact(PIXELS).zip(data.labels()) {
            let z = &mut logits[..classes];
            self.logits(Source::Pixels(image), z);
            let (l, best) = loss_and_best(z, label);
            loss += l;
            confusion[usize::from(label)][best] += 1;
        }
        EvalResult::from_confusion(loss, confusion, data.len())
    }

    /// The logits of one example into `out` (`[classes]`), with stack buffers sized for
    /// the widest layer.
    fn logits(&self, src: Source<'_>, out: &mut [f32]) {
        if self.widest <= SMALL_WIDTH {
            self.logits_with::<SMALL_WIDTH>(src, out);
        } else {
            self.logits_with::<MAX_WIDTH>(src, out);
        }
    }

    fn logits_with<const N: usize>(&self, src: Source<'_>, out: &mut [f32]) {
        if let Engine::Network(model, id) = &self.engine {
            let input = match src {
                Source::Pixels(p) => Input::Pixels(p),
                Source::Unit(x) => Input::Unit(x),
            };
            with_workspace(*id, 1, model, |ws| {
                out.copy_from_slice(model.inference(input, 1, ws));
            });
            return;
        }
        if let Engine::Int8Network(network, id) = &self.engine {
            with_cached(
                &INT8_SCRATCH,
                (*id, 1),
                || network.scratch(1),
                |scratch| {
                    dispatch(Int8Forward {
                        network,
                        sources: Sources::One(src),
                        logits: out,
                        scratch,
                    })
                },
            );
            return;
        }
        dispatch(Forward::<N> {
            engine: &self.engine,
            src,
            out,
        })
    }
}

#[cfg(feature = "std")]
/// Images of one piece of [`Classifier::evaluate_on`]'s work on an int8 network: whole
/// batches of [`INT8_BATCH`], few enough that the test set makes dozens of pieces to share.
const INT8_PIECE: usize = 8 * INT8_BATCH;

#[cfg(feature = "std")]
/// The softmax cross-entropy of logits `z` for `label`, and the predicted class.
fn loss_and_best(z: &[f32], label: u8) -> (f64, usize) {
    let best = argmax(z);
    let max = z[best];
    let sum: f64 = z.iter().map(|&v| f64::from(v - max).exp()).sum();
    (sum.ln() - f64::from(z[usize::from(label)] - max), best)
}

#[cfg(feature = "std")]
/// One example through the network, for [`dispatch`]: the whole forward pass runs at one
/// level, so each dot product is inlined into it.
struct Forward<'a, const N: usize> {
    engine: &'a Engine,
    src: Source<'a>,
    out: &'a mut [f32],
}

#[cfg(feature = "std")]
impl<const N: usize> SimdKernel for Forward<'_, N> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        match self.engine {
            Engine::F32(layers) => forward_f32::<S, N>(s, layers, self.src, self.out),
            Engine::Int8(layers) => forward_int8::<S, N>(s, layers, self.src, self.out),
            Engine::Network(..) | Engine::Int8Network(..) => {
                unreachable!("networks run through their own passes")
            }
        }
    }
}

#[cfg(feature = "std")]
/// `pixels` (`[n, 784]`) through an [`Int8Network`] in batches of [`INT8_BATCH`], in this
/// thread's scratch: `each(first, logits)` gets each batch's logits (`[rows, classes]`)
/// with the index of its first image.
fn int8_logits_in_batches(
    network: &Int8Network,
    id: u64,
    classes: usize,
    pixels: &[u8],
    mut each: impl FnMut(usize, &mut [f32]),
) {
    let mut logits = [0.0f32; INT8_BATCH * MAX_CLASSES];
    with_cached(
        &INT8_SCRATCH,
        (id, INT8_BATCH),
        || network.scratch(INT8_BATCH),
        |scratch| {
            for (b, images) in pixels.chunks(INT8_BATCH * PIXELS).enumerate() {
                let z = &mut logits[..images.len() / PIXELS * classes];
                dispatch(Int8Forward {
                    network,
                    sources: Sources::Pixels(images),
                    logits: z,
                    scratch,
                });
                each(b * INT8_BATCH, z);
            }
        },
    );
}

#[cfg(feature = "std")]
/// Images a network's batch prediction runs at a time (one workspace for all).
const NETWORK_CHUNK: usize = 64;

#[cfg(feature = "std")]
/// [`Classifier::predict_batch`] for [`Engine::Network`]: chunks of images through one
/// workspace.
fn network_predict_batch(
    model: &Model,
    id: u64,
    pixels: &[u8],
    classes_out: &mut [u8],
    confidence_out: &mut [f32],
) {
    let classes = model.architecture().classes();
    let mut logits = [0.0f32; MAX_CLASSES];
    let z = &mut logits[..classes];
    with_workspace(id, NETWORK_CHUNK, model, |ws| {
        for ((images, cs), ps) in pixels
            .chunks(NETWORK_CHUNK * PIXELS)
            .zip(classes_out.chunks_mut(NETWORK_CHUNK))
            .zip(confidence_out.chunks_mut(NETWORK_CHUNK))
        {
            let rows = model.inference(Input::Pixels(images), cs.len(), ws);
            for ((row, c), p) in rows.chunks_exact(classes).zip(cs).zip(ps) {
                z.copy_from_slice(row);
                let (class, confidence) = best_and_confidence(z);
                // MAX_CLASSES is 256: every class fits.
                *c = class as u8;
                *p = confidence;
            }
        }
    });
}

/// Workspaces a thread keeps for [`Engine::Network`]s (one per network and row count).
#[cfg(feature = "std")]
const CACHED_WORKSPACES: usize = 4;

#[cfg(feature = "std")]
thread_local! {
    /// This thread's inference workspaces, keyed by network id and rows, most recently used
    /// last: a convolutional network's prediction reuses one instead of allocating, and
    /// `predict` stays `&self`, so one classifier serves any number of threads.
    static WORKSPACES: std::cell::RefCell<Vec<((u64, usize), Workspace)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A fresh id for an [`Engine::Network`] (clones share it: same model, same workspace).
#[cfg(feature = "std")]
fn network_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Runs `f` with this thread's workspace for network `id` over `rows` examples, made on the
/// thread's first use of it.
#[cfg(feature = "std")]
fn with_workspace<R>(
    id: u64,
    rows: usize,
    model: &Model,
    f: impl FnOnce(&mut Workspace) -> R,
) -> R {
    with_cached(
        &WORKSPACES,
        (id, rows),
        || Workspace::inference(model, rows),
        f,
    )
}

#[cfg(feature = "std")]
thread_local! {
    /// This thread's scratch for [`Engine::Int8Network`]s, as [`WORKSPACES`].
    static INT8_SCRATCH: Cache<Int8Scratch> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A thread's cache: values keyed by network id and rows, most recently used last.
#[cfg(feature = "std")]
type Cache<T> = std::cell::RefCell<Vec<((u64, usize), T)>>;

/// Runs `f` with the value under `key` in this thread's `cache`, made by `make` on the
/// thread's first use of the key (the only allocation; the least recently used of
/// [`CACHED_WORKSPACES`] is dropped to make room).
#[cfg(feature = "std")]
fn with_cached<T: 'static, R>(
    cache: &'static std::thread::LocalKey<Cache<T>>,
    key: (u64, usize),
    make: impl FnOnce() -> T,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    cache.with(|cell| {
        let Ok(mut cache) = cell.try_borrow_mut() else {
            // Only a prediction made from inside another one could get here.
            return f(&mut make());
        };
        match cache.iter().position(|(k, _)| *k == key) {
            Some(at) => cache[at..].rotate_left(1),
            None => {
                if cache.capacity() == 0 {
                    cache.reserve_exact(CACHED_WORKSPACES);
                }
                if cache.len() == CACHED_WORKSPACES {
                    cache.remove(0);
                }
                cache.push((key, make()));
            }
        }
        let last = cache.len() - 1;
        f(&mut cache[last].1)
    })
}

#[cfg(feature = "std")]
/// The limits a network run through [`Model::inference`] must meet: MNIST's input and
/// 2 to [`MAX_CLASSES`] classes.
fn check_network(arch: &Architecture, name: &Path) -> Result<(), ClassifierError> {
    // As in `check`: reading `SOFTNET_SIMD` allocates, so it happens here.
    crate::kernels::simd::Level::process();
    let unsupported = |reason: String| ClassifierError::Unsupported {
        source_name: name.to_path_buf(),
        reason,
    };
    if arch.input_len() != PIXELS {
        return Err(unsupported(format!(
            "model {} takes {} inputs, the engine takes {PIXELS}",
            arch.describe(),
            arch.input_len()
        )));
    }
    if !(2..=MAX_CLASSES).contains(&arch.classes()) {
        return Err(unsupported(format!(
            "model {} has {} classes, the engine handles 2 to {MAX_CLASSES}",
            arch.describe(),
            arch.classes()
        )));
    }
    Ok(())
}

#[cfg(feature = "std")]
/// Checks the engine's limits; returns the widest padded layer.
fn check(arch: &Architecture, name: &Path) -> Result<usize, ClassifierError> {
    // The SIMD level is chosen here, not at the first prediction: reading `SOFTNET_SIMD`
    // allocates.
    crate::kernels::simd::Level::process();
    let unsupported = |reason: String| ClassifierError::Unsupported {
        source_name: name.to_path_buf(),
        reason,
    };
    let Some(widths) = arch.dense_widths() else {
        return Err(unsupported(format!(
            "model {} is not a dense network: the int8 engine runs linear and ReLU layers only",
            arch.describe()
        )));
    };
    if widths[0] != PIXELS {
        return Err(unsupported(format!(
            "model {} takes {} inputs, the engine takes {PIXELS}",
            arch.describe(),
            widths[0]
        )));
    }
    if !(2..=MAX_CLASSES).contains(&arch.classes()) {
        return Err(unsupported(format!(
            "model {} has {} classes, the engine handles 2 to {MAX_CLASSES}",
            arch.describe(),
            arch.classes()
        )));
    }
    let widest = widths[..widths.len() - 1]
        .iter()
        .copied()
        .map(padded)
        .max()
        .unwrap_or(0);
    if widest > MAX_WIDTH {
        return Err(unsupported(format!(
            "model {} has a layer wider than {MAX_WIDTH}",
            arch.describe()
        )));
    }
    Ok(widest)
}

#[cfg(feature = "std")]
/// The most likely class and its probability: `1 / Σ exp(z_i - z_best)`.
fn best_and_confidence(z: &mut [f32]) -> (usize, f32) {
    let best = argmax(z);
    let max = z[best];
    for v in z.iter_mut() {
        *v -= max;
    }
    crate::kernels::elementwise::exp_in_place(z);
    (best, 1.0 / z.iter().sum::<f32>())
}

#[cfg(feature = "std")]
/// `Σ x_i w_i` over rows padded to [`ALIGN`], with four independent FMA chains of eight
/// lanes (two vectors of sixteen), summed as `((c0 + c1) + (c2 + c3))` and then lane
/// halves, pairs and the last two: the order `wide`'s f32x8 gave, kept so that results
/// did not move.
#[inline(always)]
fn dot_f32<S: Simd>(s: S, x: &[f32], w: &[f32]) -> f32 {
    debug_assert!(x.len() == w.len() && x.len() % ALIGN == 0);
    let mut acc = [s.zero(); 2];
    for (xc, wc) in x.chunks_exact(ALIGN).zip(w.chunks_exact(ALIGN)) {
        for (k, a) in acc.iter_mut().enumerate() {
            let r = k * 16..k * 16 + 16;
            *a = s.mul_add(s.load(&xc[r.clone()]), s.load(&wc[r]), *a);
        }
    }
    let (a, b) = (s.to_array(acc[0]), s.to_array(acc[1]));
    let t: [f32; 8] = std::array::from_fn(|i| (a[i] + a[8 + i]) + (b[i] + b[8 + i]));
    let q: [f32; 4] = std::array::from_fn(|i| t[i] + t[4 + i]);
    (q[0] + q[2]) + (q[1] + q[3])
}

#[cfg(feature = "std")]
/// `Σ x_i q_i` in i32: i8 weights widened to i16, multiplied and pair-summed (`vpmaddwd`).
#[inline(always)]
fn dot_int8<S: Simd>(s: S, x: &[i16], q: &[i8]) -> i32 {
    debug_assert!(x.len() == q.len() && x.len() % ALIGN == 0);
    s.dot_i16_i8(x, q)
}

#[cfg(feature = "std")]
/// Quantizes `x` to `-255..=255` into `out` (same length); returns the scale
/// (`x ≈ out · scale`). All zeros (or non-finite values) give zeros with scale 1.
fn quantize_activations(x: &[f32], out: &mut [i16]) -> f32 {
    let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if !(max.is_finite() && max > 0.0) {
        out.fill(0);
        return 1.0;
    }
    let inv = 255.0 / max;
    for (o, v) in out.iter_mut().zip(x) {
        // `as` saturates; the clamp only guards the rounding of `max * inv`.
        *o = (v * inv).round().clamp(-255.0, 255.0) as i16;
    }
    max / 255.0
}

#[cfg(feature = "std")]
#[inline(always)]
fn forward_f32<S: Simd, const N: usize>(
    simd: S,
    layers: &[F32Layer],
    src: Source<'_>,
    out: &mut [f32],
) {
    let mut a = [0.0f32; N];
    let mut b = [0.0f32; N];
    match src {
        Source::Pixels(p) => {
            for (x, &v) in a.iter_mut().zip(p) {
                *x = PIXEL_TO_UNIT[usize::from(v)];
            }
        }
        Source::Unit(x) => a[..x.len()].copy_from_slice(x),
    }
    let (mut x, mut y) = (&mut a, &mut b);
    let last = layers.len() - 1;
    for (l, layer) in layers.iter().enumerate() {
        let input = &x[..layer.stride];
        let rows = layer.weight.chunks_exact(layer.stride).zip(&layer.bias);
        if l == last {
            for (o, (w, b)) in out.iter_mut().zip(rows) {
                *o = dot_f32(simd, input, w) + b;
            }
        } else {
            for (o, (w, b)) in y.iter_mut().zip(rows) {
                *o = (dot_f32(simd, input, w) + b).max(0.0);
            }
            // The next layer reads up to its padded width: the padding must be zero.
            let next = layers[l + 1].stride;
            y[layer.fan_out..next].fill(0.0);
            std::mem::swap(&mut x, &mut y);
        }
    }
}

#[cfg(feature = "std")]
#[inline(always)]
fn forward_int8<S: Simd, const N: usize>(
    simd: S,
    layers: &[Int8Layer],
    src: Source<'_>,
    out: &mut [f32],
) {
    let mut xq = [0i16; N];
    let mut y = [0.0f32; N];
    let mut x_scale = match src {
        Source::Pixels(p) => {
            for (q, &v) in xq.iter_mut().zip(p) {
                *q = i16::from(v);
            }
            // The f32 model reads p / 255: the same scale, exactly representable inputs.
            1.0 / 255.0
        }
        Source::Unit(x) => quantize_activations(x, &mut xq[..x.len()]),
    };
    let last = layers.len() - 1;
    for (l, layer) in layers.iter().enumerate() {
        let input = &xq[..layer.stride];
        let rows = layer
            .weight
            .chunks_exact(layer.stride)
            .zip(layer.scale.iter().zip(&layer.bias));
        let target: &mut [f32] = if l == last {
            &mut *out
        } else {
            &mut y[..layer.fan_out]
        };
        for (o, (q, (s, b))) in target.iter_mut().zip(rows) {
            *o = dot_int8(simd, input, q) as f32 * (x_scale * s) + b;
        }
        if l != last {
            for v in target.iter_mut() {
                *v = v.max(0.0);
            }
            x_scale = quantize_activations(target, &mut xq[..layer.fan_out]);
            let next = layers[l + 1].stride;
            xq[layer.fan_out..next].fill(0);
        }
    }
}

#[cfg(feature = "std")]
/// Images an int8 network's batch prediction runs through its linear layers at a time.
const INT8_BATCH: usize = 32;

#[cfg(feature = "std")]
impl Int8Network {
    /// The steps of `model` (a network that is not dense), its filters packed; `name`
    /// names the source in errors.
    fn new(model: &QuantizedModel, name: &Path) -> Result<Self, ClassifierError> {
        let arch = model.architecture();
        let unsupported = |reason: String| ClassifierError::Unsupported {
            source_name: name.to_path_buf(),
            reason,
        };
        let mut params = model.layers().iter();
        let mut steps: Vec<Int8Step> = Vec::new();
        let mut widest = arch.input_len();
        for (i, spec) in arch.layers().iter().enumerate() {
            let (input, output) = (arch.input_shape(i), arch.shapes()[i]);
            widest = widest.max(output.len());
            let filter = match *spec {
                LayerSpec::Conv2d { kernel, .. } => spec
                    .conv_geometry(input)
                    .map(|g| (kernel * kernel * input.channels, g)),
                LayerSpec::Linear { out } => Some((
                    input.len(),
                    ConvGeometry {
                        height: 1,
                        width: 1,
                        in_channels: input.len(),
                        out_channels: out,
                        kernel_h: 1,
                        kernel_w: 1,
                        stride: 1,
                        padding: crate::nn::Padding::Valid,
                    },
                )),
                _ => None,
            };
            if let Some((patch, g)) = filter {
                if patch > MAX_PATCH {
                    return Err(unsupported(format!(
                        "model {} has a layer summing {patch} values, the int8 engine sums at \
                         most {MAX_PATCH}",
                        arch.describe()
                    )));
                }
                let l = params.next().expect("a layer with weights has its tensors");
                steps.push(Int8Step::Weighted {
                    filter: PackedFilter::new(&g, &l.weight),
                    scale: l.scale.clone(),
                    bias: l.bias.clone(),
                    relu: false,
                });
                continue;
            }
            match *spec {
                LayerSpec::MaxPool2d { size, stride } => steps.push(Int8Step::Pool(PoolGeometry {
                    height: input.height,
                    width: input.width,
                    channels: input.channels,
                    size,
                    stride,
                })),
                LayerSpec::Relu => match steps.last_mut() {
                    Some(Int8Step::Weighted { relu, .. }) if !*relu => *relu = true,
                    _ => steps.push(Int8Step::Relu(input.len())),
                },
                _ => {}
            }
        }
        let is_matrix =
            |s: &Int8Step| matches!(s, Int8Step::Weighted { filter, .. } if filter.is_matrix());
        let tail = steps.len() - steps.iter().rev().take_while(|s| is_matrix(s)).count();
        let (mut widest_in, mut widest_out, mut patches) = (0, 0, 0);
        let (mut tail_in, mut tail_out) = (0, 0);
        for (i, step) in steps.iter().enumerate() {
            if let Int8Step::Weighted { filter, .. } = step {
                let g = filter.geometry();
                if i < tail {
                    widest_in = widest_in.max(g.input_len());
                    widest_out = widest_out.max(g.output_len());
                    patches = patches.max(filter.scratch_len());
                } else {
                    tail_in = tail_in.max(g.in_channels);
                    tail_out = tail_out.max(g.out_channels);
                }
            }
        }
        Ok(Int8Network {
            steps,
            tail,
            widest,
            widest_in,
            widest_out,
            patches,
            tail_in,
            tail_out,
        })
    }

    /// A thread's scratch for `rows` images at a time (see the module docs for its size).
    fn scratch(&self, rows: usize) -> Int8Scratch {
        let rows_patches = self.steps[self.tail..]
            .iter()
            .map(|s| match s {
                Int8Step::Weighted { filter, .. } => filter.matmul_scratch_len(rows),
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        Int8Scratch {
            a: vec![0.0; self.widest],
            b: vec![0.0; self.widest],
            x_u8: vec![0; self.widest_in],
            acc: vec![0; self.widest_out],
            patches: vec![0; self.patches],
            rows_u8: vec![0; rows * self.tail_in],
            rows_acc: vec![0; rows * self.tail_out],
            rows_f32: vec![0.0; rows * self.tail_out],
            rows_patches: vec![0; rows_patches],
            scales: vec![0.0; rows],
            zeros: vec![0; rows],
        }
    }

    /// Bytes of [`Int8Network::scratch`].
    #[cfg(test)]
    fn scratch_bytes(&self, rows: usize) -> usize {
        let s = self.scratch(rows);
        4 * (s.a.len() + s.b.len() + s.acc.len() + s.rows_acc.len() + s.rows_f32.len())
            + s.x_u8.len()
            + s.patches.len()
            + s.rows_u8.len()
            + s.rows_patches.len()
            + 5 * rows
    }
}

#[cfg(feature = "std")]
/// The images of one [`Int8Forward`].
#[derive(Clone, Copy)]
enum Sources<'a> {
    /// One image.
    One(Source<'a>),
    /// `[rows, 784]` pixels.
    Pixels(&'a [u8]),
}

#[cfg(feature = "std")]
/// Images through an [`Int8Network`], for [`dispatch`]: the logits (`[rows, classes]`).
struct Int8Forward<'a> {
    network: &'a Int8Network,
    sources: Sources<'a>,
    logits: &'a mut [f32],
    scratch: &'a mut Int8Scratch,
}

#[cfg(feature = "std")]
impl SimdKernel for Int8Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, _: S) {
        let (network, sc) = (self.network, self.scratch);
        let rows = match self.sources {
            Sources::One(src) => {
                head_int8(network, src, 0, sc);
                1
            }
            Sources::Pixels(pixels) => {
                for (r, image) in pixels.chunks_exact(PIXELS).enumerate() {
                    head_int8(network, Source::Pixels(image), r, sc);
                }
                pixels.len() / PIXELS
            }
        };
        tail_int8(network, rows, self.logits, sc);
    }
}

#[cfg(feature = "std")]
/// The current activation of [`head_int8`]: the image's pixels as they came, or `len` f32s
/// in the scratch's buffer `a`.
#[derive(Clone, Copy)]
enum Current<'a> {
    Pixels(&'a [u8]),
    Values(usize),
}

#[cfg(feature = "std")]
/// One image through the steps before the network's tail, its output quantized into row
/// `row` of the tail's input. A layer with weights quantizes its input per image to u8
/// (the pixels are used as they are, scale 1/255), sums in i32 and rescales to f32;
/// pooling and ReLU run on f32.
#[inline(always)]
fn head_int8(network: &Int8Network, src: Source<'_>, row: usize, sc: &mut Int8Scratch) {
    let mut current = match src {
        Source::Pixels(p) => Current::Pixels(p),
        Source::Unit(x) => {
            sc.a[..x.len()].copy_from_slice(x);
            Current::Values(x.len())
        }
    };
    for step in &network.steps[..network.tail] {
        current = match step {
            Int8Step::Weighted {
                filter,
                scale,
                bias,
                relu,
            } => {
                let g = filter.geometry();
                let (x, x_scale, zero) = match current {
                    Current::Pixels(p) => (p, 1.0 / 255.0, 0),
                    Current::Values(n) => {
                        let (x_scale, zero) = quantize_u8(&sc.a[..n], &mut sc.x_u8[..n]);
                        (&sc.x_u8[..n], x_scale, zero)
                    }
                };
                let n_out = g.output_len();
                let acc = &mut sc.acc[..n_out];
                conv_int8::conv2d_u8_i8(filter, x, zero, acc, &mut sc.patches);
                let y = &mut sc.b[..n_out];
                conv_int8::rescale(acc, zero, filter.sums(), x_scale, scale, bias, *relu, y);
                std::mem::swap(&mut sc.a, &mut sc.b);
                Current::Values(n_out)
            }
            Int8Step::Pool(g) => {
                let n = unit_values(current, &mut sc.a);
                debug_assert_eq!(n, g.input_len());
                let n_out = g.output_len();
                max_pool_forward(g, 1, &sc.a[..n], &mut sc.b[..n_out], None);
                std::mem::swap(&mut sc.a, &mut sc.b);
                Current::Values(n_out)
            }
            Int8Step::Relu(len) => {
                let n = unit_values(current, &mut sc.a);
                debug_assert_eq!(n, *len);
                crate::kernels::relu_in_place(&mut sc.a[..n]);
                Current::Values(n)
            }
        };
    }
    let k = match &network.steps[network.tail] {
        Int8Step::Weighted { filter, .. } => filter.geometry().in_channels,
        _ => unreachable!("the tail is linear layers"),
    };
    let x = &mut sc.rows_u8[row * k..][..k];
    (sc.scales[row], sc.zeros[row]) = match current {
        Current::Pixels(p) => {
            x.copy_from_slice(p);
            (1.0 / 255.0, 0)
        }
        Current::Values(n) => quantize_u8(&sc.a[..n], x),
    };
}

#[cfg(feature = "std")]
/// The network's trailing linear layers on `rows` images whose inputs [`head_int8`] left in
/// the scratch: each a product of the rows' u8 inputs with the packed weights, rescaled
/// row by row (each has its own scale and zero point) and re-quantized for the next.
#[inline(always)]
fn tail_int8(network: &Int8Network, rows: usize, logits: &mut [f32], sc: &mut Int8Scratch) {
    let last = network.steps.len() - 1;
    for (l, step) in network.steps.iter().enumerate().skip(network.tail) {
        let Int8Step::Weighted {
            filter,
            scale,
            bias,
            relu,
        } = step
        else {
            unreachable!("the tail is linear layers");
        };
        let (k, n) = (
            filter.geometry().in_channels,
            filter.geometry().out_channels,
        );
        let acc = &mut sc.rows_acc[..rows * n];
        conv_int8::matmul_u8_i8(filter, &sc.rows_u8[..rows * k], acc, &mut sc.rows_patches);
        let out: &mut [f32] = if l == last {
            &mut *logits
        } else {
            &mut sc.rows_f32[..rows * n]
        };
        for (r, (y, acc)) in out.chunks_exact_mut(n).zip(acc.chunks_exact(n)).enumerate() {
            let (x_scale, zero) = (sc.scales[r], sc.zeros[r]);
            conv_int8::rescale(acc, zero, filter.sums(), x_scale, scale, bias, *relu, y);
        }
        if l != last {
            let ys = sc.rows_f32[..rows * n].chunks_exact(n);
            for (r, (y, x)) in ys.zip(sc.rows_u8.chunks_exact_mut(n)).enumerate() {
                (sc.scales[r], sc.zeros[r]) = quantize_u8(y, x);
            }
        }
    }
}

#[cfg(feature = "std")]
/// The current activation as f32s in `a` (pixels become `p / 255`); returns their count.
#[inline(always)]
fn unit_values(current: Current<'_>, a: &mut [f32]) -> usize {
    match current {
        Current::Values(n) => n,
        Current::Pixels(p) => {
            for (x, &v) in a.iter_mut().zip(p) {
                *x = PIXEL_TO_UNIT[usize::from(v)];
            }
            p.len()
        }
    }
}

#[cfg(feature = "std")]
/// Quantizes `x` to `0..=255` into `out` (same length) with a zero point; returns `(scale,
/// zero)` with `x ≈ (out - zero) · scale`. The range always holds 0 (so a convolution's
/// padding, the byte `zero`, is exactly 0); values that are all `>= 0`, as after a ReLU,
/// get zero 0 and scale `max / 255`. All zeros (or non-finite values) give zeros, scale 1.
/// Inlined into the dispatched passes, where its rounding is one instruction.
#[inline(always)]
fn quantize_u8(x: &[f32], out: &mut [u8]) -> (f32, u8) {
    let (lo, hi) = x
        .iter()
        .fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let range = hi - lo;
    if !(range.is_finite() && range > 0.0) {
        out.fill(0);
        return (1.0, 0);
    }
    let scale = range / 255.0;
    let inv = 255.0 / range;
    // -lo / scale is in 0..=255; rounding keeps it there.
    let zero = (-lo * inv).round().clamp(0.0, 255.0);
    for (o, v) in out.iter_mut().zip(x) {
        // `as` saturates; the clamp only guards the rounding at the ends.
        *o = (v * inv + zero).round().clamp(0.0, 255.0) as u8;
    }
    (scale, zero as u8)
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::io::quantized::QuantizedModel;
    use crate::nn::{Input, Workspace};

    fn image(seed: usize) -> [u8; PIXELS] {
        std::array::from_fn(|i| ((i * 37 + seed * 101) % 256) as u8)
    }

    /// The training code's forward pass: the reference for the engine's logits.
    fn reference_logits(model: &Model, pixels: &[u8]) -> Vec<f32> {
        let mut ws = Workspace::inference(model, 1);
        model.inference(Input::Pixels(pixels), 1, &mut ws).to_vec()
    }

    #[test]
    fn f32_logits_match_the_training_forward_pass() {
        for arch in [
            Architecture::softmax_regression(),
            Architecture::mlp(&[33]),
            Architecture::mlp(&[1100, 7]), // the large stack buffers, odd widths
        ] {
            let model = Model::he_normal(arch, 2);
            let c = Classifier::from_model(&model).unwrap();
            for s in 0..3 {
                let img = image(s);
                let want = reference_logits(&model, &img);
                let mut got = vec![0.0; 10];
                c.logits_into(&img, &mut got);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{got:?} vs {want:?}"
                    );
                }
                // predict_f32 on pixel / 255 is the same computation.
                let x: Vec<f32> = img.iter().map(|&p| PIXEL_TO_UNIT[p as usize]).collect();
                assert_eq!(c.predict_f32(&x), c.predict(&img));
            }
        }
    }

    #[test]
    fn int8_logits_are_the_dequantized_model_up_to_activation_rounding() {
        let model = Model::he_normal(Architecture::softmax_regression(), 4);
        let q = QuantizedModel::quantize(&model);
        let c = Classifier::from_quantized(&q).unwrap();
        assert_eq!(c.precision(), Precision::Int8);
        // Softmax regression on pixels: integer inputs, so only float rounding differs.
        let img = image(1);
        let want = reference_logits(&q.dequantize(), &img);
        let mut got = vec![0.0; 10];
        c.logits_into(&img, &mut got);
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{got:?} vs {want:?}"
            );
        }
        // An MLP quantizes its hidden activations to 255 levels: close, not equal.
        let model = Model::he_normal(Architecture::mlp(&[40]), 4);
        let q = QuantizedModel::quantize(&model);
        let c = Classifier::from_quantized(&q).unwrap();
        let want = reference_logits(&q.dequantize(), &img);
        c.logits_into(&img, &mut got);
        let spread = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 0.01 * spread, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn probabilities_top3_and_batch_agree() {
        let model = Model::he_normal(Architecture::mlp(&[16]), 9);
        let c = Classifier::from_model(&model).unwrap();
        let img = image(5);
        let mut p = [0.0f32; 10];
        let best = c.probabilities_into(&img, &mut p);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        let top = c.predict_top3(&img);
        assert_eq!(top[0].0, best);
        assert!(top[0].1 >= top[1].1 && top[1].1 >= top[2].1);
        let mut sorted: Vec<(usize, f32)> = p.iter().copied().enumerate().collect();
        sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
        assert_eq!(top.to_vec(), sorted[..3].to_vec());
        let (class, conf) = c.predict(&img);
        assert_eq!(class, best);
        assert!((conf - p[best]).abs() < 1e-6);

        let images: Vec<u8> = (0..4).flat_map(image).collect();
        let mut classes = [0u8; 4];
        let mut conf = [0.0f32; 4];
        c.predict_batch(&images, &mut classes, &mut conf);
        for s in 0..4 {
            let (k, p) = c.predict(&image(s));
            assert_eq!((classes[s] as usize, conf[s]), (k, p));
        }
    }

    #[test]
    fn refuses_models_the_engine_cannot_run() {
        let wide = Model::zeros(Architecture::mlp(&[5000]));
        let err = Classifier::from_model(&wide).unwrap_err().to_string();
        assert_eq!(
            err,
            "<model>: unsupported by the inference engine: model 784-5000-10 has a layer wider than 4096"
        );
        let odd = Model::zeros(Architecture::parse("100-10").unwrap());
        let bytes = crate::io::model_to_bytes(&odd, &[]);
        let err = Classifier::from_bytes(&bytes).unwrap_err().to_string();
        assert!(err.starts_with("<bytes>: unsupported"), "{err}");
        assert!(err.contains("takes 100 inputs"), "{err}");
        let err = Classifier::from_bytes(b"junk").unwrap_err().to_string();
        assert!(err.starts_with("<bytes>: not a safetensors file"), "{err}");
    }

    #[test]
    fn convolutional_models_predict_as_their_forward_pass() {
        let arch = Architecture::from_spec("conv3x3x4,pool2,conv3x3x6s2,fc10").unwrap();
        let model = Model::he_normal(arch, 7);
        let classifier = Classifier::from_model(&model).unwrap();
        assert_eq!(classifier.precision(), Precision::F32);
        let images: Vec<u8> = (0..5).flat_map(image).collect();
        let (mut classes, mut confidence) = ([0u8; 5], [0f32; 5]);
        classifier.predict_batch(&images, &mut classes, &mut confidence);
        for i in 0..5 {
            let pixels: &[u8; PIXELS] = images[i * PIXELS..][..PIXELS].try_into().unwrap();
            let want = reference_logits(&model, pixels);
            let mut z = [0f32; 10];
            classifier.logits_into(pixels, &mut z);
            assert_eq!(&z[..], &want[..], "image {i}");
            let (class, p) = classifier.predict(pixels);
            assert_eq!(class, argmax(&want));
            let sum: f32 = want.iter().map(|&v| (v - want[class]).exp()).sum();
            assert!((p - 1.0 / sum).abs() < 1e-6, "{p} vs {}", 1.0 / sum);
            // The batch runs the images together: the same class, the same confidence up
            // to the last bits of the products' order.
            assert_eq!(usize::from(classes[i]), class, "image {i}");
            assert!((confidence[i] - p).abs() < 1e-5, "{} vs {p}", confidence[i]);
        }
    }

    /// Logits of the int8 `classifier` against the f32 forward pass of the dequantized
    /// model, as a share of the largest logit; and every SIMD level gives the same bits.
    fn int8_error(model: &Model, images: usize) -> f32 {
        let q = QuantizedModel::quantize(model);
        let classifier = Classifier::from_quantized(&q).unwrap();
        assert_eq!(classifier.precision(), Precision::Int8);
        let reference = q.dequantize();
        let mut worst = 0.0f32;
        for i in 0..images {
            let img = image(i);
            let want = reference_logits(&reference, &img);
            let mut got = [0.0f32; 10];
            classifier.logits_into(&img, &mut got);
            let spread = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (g, w) in got.iter().zip(&want) {
                worst = worst.max((g - w).abs() / spread);
            }
            for level in crate::kernels::simd::Level::supported() {
                let mut z = [0.0f32; 10];
                crate::kernels::simd::with_level(level, || classifier.logits_into(&img, &mut z));
                assert_eq!(z.map(f32::to_bits), got.map(f32::to_bits), "{level}");
            }
            let x: Vec<f32> = img.iter().map(|&p| PIXEL_TO_UNIT[p as usize]).collect();
            let (class, p) = classifier.predict_f32(&x);
            assert_eq!(class, classifier.predict(&img).0, "image {i}");
            assert!((0.0..=1.0).contains(&p));
        }
        worst
    }

    #[test]
    fn int8_cnn_logits_are_the_dequantized_model_up_to_activation_rounding() {
        // ReLU after every layer: u8 inputs with zero point 0.
        let arch = Architecture::from_spec("conv5x5x8,pool2,conv3x3x20s2,fc33,dropout0.5,fc10");
        let worst = int8_error(&Model::he_normal(arch.unwrap(), 3), 6);
        assert!(worst < 0.02, "{worst}");
        // No ReLU between the convolutions (negative inputs: a zero point), VALID, a pool
        // straight on the pixels, a ReLU of its own.
        let arch = Architecture::parse_described(
            "28x28x1:pool2,conv3x3x5valid,conv4x4x17s2,relu,flatten,fc10",
        );
        let worst = int8_error(&Model::he_normal(arch.unwrap(), 4), 6);
        assert!(worst < 0.02, "{worst}");
    }

    #[test]
    fn int8_cnn_batch_top3_and_scratch_size() {
        let model = Model::he_normal(Architecture::cnn(), 1);
        let classifier = Classifier::from_quantized(&QuantizedModel::quantize(&model)).unwrap();
        let Engine::Int8Network(network, _) = &classifier.engine else {
            panic!("the tutorial's CNN runs as an int8 network");
        };
        // The module docs' figure.
        assert_eq!(
            (network.scratch_bytes(1), network.scratch_bytes(INT8_BATCH)),
            (485_861, 837_184)
        );
        let images: Vec<u8> = (0..3).flat_map(image).collect();
        let (mut classes, mut confidence) = ([0u8; 3], [0f32; 3]);
        classifier.predict_batch(&images, &mut classes, &mut confidence);
        for i in 0..3 {
            let (class, p) = classifier.predict(&image(i));
            assert_eq!((usize::from(classes[i]), confidence[i]), (class, p));
            assert_eq!(classifier.predict_top3(&image(i))[0].0, class);
        }
    }

    #[test]
    fn u8_quantization_keeps_zero_exact() {
        let mut q = [0u8; 4];
        assert_eq!(
            quantize_u8(&[0.0, 0.5, 1.0, 0.25], &mut q),
            (1.0 / 255.0, 0)
        );
        assert_eq!(q, [0, 128, 255, 64]);
        // -1..=1.55: scale 0.01, zero 100.
        let (scale, zero) = quantize_u8(&[-1.0, 0.0, 1.55, 0.3], &mut q);
        assert!((scale - 0.01).abs() < 1e-7, "{scale}");
        assert_eq!(zero, 100);
        assert_eq!(q, [0, 100, 255, 130]);
        assert_eq!(quantize_u8(&[0.0; 4], &mut q), (1.0, 0));
        assert_eq!(
            quantize_u8(&[f32::NAN, 1.0, f32::INFINITY, 0.0], &mut q),
            (1.0, 0)
        );
        assert_eq!(q, [0; 4]);
    }

    #[test]
    fn quantized_activations_use_255_levels() {
        let mut q = [0i16; 4];
        let s = quantize_activations(&[0.0, 0.5, -1.0, 0.25], &mut q);
        assert_eq!(q, [0, 128, -255, 64]);
        assert_eq!(s, 1.0 / 255.0);
        assert_eq!(quantize_activations(&[0.0; 4], &mut q), 1.0);
        assert_eq!(q, [0; 4]);
    }
}
