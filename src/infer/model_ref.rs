//! [`ClassifierRef`]: a model file's bytes parsed in place (no copy, no allocation, no
//! `std`), and [`ParseError`], what is wrong with bytes that are not a model it runs.
//!
//! **Layout read.** A safetensors file: an 8-byte little-endian header length, a JSON
//! header (`{"name": {"dtype", "shape", "data_offsets"}, …, "__metadata__": {…}}`), then the
//! tensors' bytes. The metadata's `architecture` (see `io::model_file`) gives the layers;
//! every tensor must be the one the architecture names, with its dtype and shape, inside the
//! data, and every f32 value finite. Int8 files (`quantization` =
//! `int8-symmetric-per-output-channel`, see `io::quantized`) add a positive `<weight>_scale`
//! per layer and keep their weights in `-127..=127`.
//!
//! **Alignment.** f32 values are read with `f32::from_le_bytes`, one at a time, so the bytes
//! may sit at any address: an `include_bytes!` blob has alignment 1, and safetensors places
//! tensors at offsets that are multiples of nothing in particular. Cortex-M4 and x86 load
//! unaligned words in one instruction, so nothing is gained by asking for alignment.

use core::fmt;

use super::arch_ref::{ArchRef, Layer, TensorName, MAX_LAYERS};
use super::forward::{self, Net, ParamRef};
use super::json::{JsonError, RawStr, Scanner};

/// Pixels of an input image (28x28).
const PIXELS: usize = 784;
/// Most classes a model may have (as the std `Classifier`).
const MAX_CLASSES: usize = 256;
/// Longest architecture string read (decoded into a buffer of this many bytes).
const MAX_ARCH_TEXT: usize = 512;
/// The metadata value of int8 files (`io::quantized::QUANTIZATION_INT8`).
const QUANTIZATION_INT8: &str = "int8-symmetric-per-output-channel";

/// A tensor's element type, as far as a model file's are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dtype {
    /// `F32`: weights, biases and scales.
    F32,
    /// `I8`: quantized weights.
    I8,
    /// Any other dtype safetensors knows (`F16`, `BF16`, `I32`, …).
    Other,
}

impl Dtype {
    fn parse(s: RawStr<'_>) -> Self {
        if s.eq_str("F32") {
            Dtype::F32
        } else if s.eq_str("I8") {
            Dtype::I8
        } else {
            Dtype::Other
        }
    }

    fn size(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            _ => 1,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "F32",
            Dtype::I8 => "I8",
            Dtype::Other => "another dtype",
        })
    }
}

/// A tensor shape of up to four dimensions.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Dims {
    dims: [u64; 4],
    rank: u8,
}

impl Dims {
    fn of(dims: &[u64]) -> Self {
        let mut d = Dims::default();
        d.dims[..dims.len()].copy_from_slice(dims);
        d.rank = dims.len() as u8;
        d
    }

    /// The sizes, outermost first.
    pub fn as_slice(&self) -> &[u64] {
        &self.dims[..usize::from(self.rank)]
    }

    /// Elements, or None past u64.
    fn count(&self) -> Option<u64> {
        self.as_slice()
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
    }
}

impl fmt::Debug for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

impl fmt::Display for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

/// Why bytes are not a model [`ClassifierRef`] runs. Every variant says what is wrong
/// (`Display`, lowercase) and carries what a program needs to tell the cases apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Fewer bytes than the header length or the header itself needs.
    Truncated {
        /// Bytes the file must have.
        needed: u64,
        /// Bytes it has.
        found: u64,
    },
    /// The JSON header is not valid, or not what a safetensors header holds.
    BadHeader {
        /// Byte offset inside the JSON header.
        at: usize,
        /// What was expected there.
        reason: &'static str,
    },
    /// The metadata has no `architecture`.
    NoArchitecture,
    /// The metadata's `architecture` cannot be parsed or breaks a shape rule.
    BadArchitecture {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A valid model outside what the engine runs (input size, class count, layers).
    Unsupported {
        /// What is out of range.
        reason: &'static str,
    },
    /// The metadata's `quantization` is not the int8 scheme softnet writes.
    UnknownQuantization,
    /// A tensor the architecture needs is not in the file.
    MissingTensor {
        /// Its name.
        name: TensorName,
    },
    /// A tensor the architecture does not have (or one named twice).
    UnexpectedTensor {
        /// Its name.
        name: TensorName,
    },
    /// A tensor of the wrong element type.
    WrongDtype {
        /// Its name.
        name: TensorName,
        /// The file's dtype.
        found: Dtype,
        /// The dtype the architecture calls for.
        expected: Dtype,
    },
    /// A tensor of the wrong shape.
    WrongShape {
        /// Its name.
        name: TensorName,
        /// The file's shape.
        found: Dims,
        /// The shape the architecture calls for.
        expected: Dims,
    },
    /// A tensor's `data_offsets` fall outside the data, or do not span its shape's bytes.
    BadOffsets {
        /// Its name.
        name: TensorName,
        /// Offsets (from the data's start) the header gives.
        start: u64,
        /// End offset the header gives.
        end: u64,
        /// Bytes of data after the header.
        data_len: u64,
    },
    /// An f32 tensor holds NaN or an infinity.
    NonFinite {
        /// Its name.
        name: TensorName,
        /// Index of the first such value.
        index: usize,
    },
    /// An int8 scale that is not positive, or a weight of -128 (outside the symmetric
    /// range `-127..=127`).
    BadQuantization {
        /// The tensor's name.
        name: TensorName,
        /// Index of the first bad value.
        index: usize,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Truncated { needed, found } => {
                write!(f, "truncated: {found} bytes, the header needs {needed}")
            }
            ParseError::BadHeader { at, reason } => {
                write!(
                    f,
                    "not a safetensors header: {reason} at byte {at} of the JSON"
                )
            }
            ParseError::NoArchitecture => f.write_str("no architecture in the metadata"),
            ParseError::BadArchitecture { reason } => {
                write!(f, "the metadata's architecture is not valid: {reason}")
            }
            ParseError::Unsupported { reason } => {
                write!(f, "unsupported by the inference engine: {reason}")
            }
            ParseError::UnknownQuantization => {
                write!(f, "unknown quantization, expected {QUANTIZATION_INT8:?}")
            }
            ParseError::MissingTensor { name } => write!(f, "missing tensor {name:?}"),
            ParseError::UnexpectedTensor { name } => {
                write!(f, "unexpected or repeated tensor {name:?}")
            }
            ParseError::WrongDtype {
                name,
                found,
                expected,
            } => write!(f, "tensor {name:?} is {found}, expected {expected}"),
            ParseError::WrongShape {
                name,
                found,
                expected,
            } => write!(f, "tensor {name:?} has shape {found}, expected {expected}"),
            ParseError::BadOffsets {
                name,
                start,
                end,
                data_len,
            } => write!(
                f,
                "tensor {name:?} has data offsets [{start}, {end}] that do not fit its shape \
                 inside the {data_len} bytes of data"
            ),
            ParseError::NonFinite { name, index } => {
                write!(
                    f,
                    "tensor {name:?} holds NaN or infinite values (at {index})"
                )
            }
            ParseError::BadQuantization { name, index } => write!(
                f,
                "tensor {name:?} holds a value outside the int8 scheme (at {index}: a scale \
                 that is not positive, or a weight of -128)"
            ),
        }
    }
}

impl core::error::Error for ParseError {}

impl From<JsonError> for ParseError {
    fn from(e: JsonError) -> Self {
        ParseError::BadHeader {
            at: e.at,
            reason: e.reason,
        }
    }
}

fn name_of(raw: RawStr<'_>) -> TensorName {
    let mut name = TensorName::new();
    for c in raw.chars() {
        let mut buf = [0u8; 4];
        if fmt::Write::write_str(&mut name, c.encode_utf8(&mut buf)).is_err() {
            break;
        }
    }
    name
}

/// One tensor of the header.
#[derive(Debug, Clone, Copy)]
struct Entry<'a> {
    name: RawStr<'a>,
    dtype: Dtype,
    shape: Dims,
    start: u64,
    end: u64,
}

/// What one walk over the header gathers besides the tensors: the two metadata values the
/// engine reads, and how many tensors there are.
struct Header<'a> {
    count: usize,
    architecture: Option<RawStr<'a>>,
    quantization: Option<RawStr<'a>>,
}

fn parse_tensor<'a>(s: &mut Scanner<'a>, name: RawStr<'a>) -> Result<Entry<'a>, ParseError> {
    s.expect(b'{', "expected a tensor's object")?;
    let (mut dtype, mut shape, mut offsets) = (None, None, None);
    if !s.empty(b'}') {
        loop {
            let key = s.string()?;
            s.expect(b':', "expected ':'")?;
            if key.eq_str("dtype") {
                dtype = Some(Dtype::parse(s.string()?));
            } else if key.eq_str("shape") {
                let mut dims = [0u64; 4];
                let n = s.u64_array(&mut dims)?;
                shape = Some(Dims::of(&dims[..n]));
            } else if key.eq_str("data_offsets") {
                let mut o = [0u64; 2];
                if s.u64_array(&mut o)? != 2 {
                    return Err(JsonError {
                        at: 0,
                        reason: "data_offsets must be two integers",
                    }
                    .into());
                }
                offsets = Some((o[0], o[1]));
            } else {
                s.skip_value()?;
            }
            if !s.next_element(b'}')? {
                break;
            }
        }
    }
    match (dtype, shape, offsets) {
        (Some(dtype), Some(shape), Some((start, end))) => Ok(Entry {
            name,
            dtype,
            shape,
            start,
            end,
        }),
        _ => Err(ParseError::BadHeader {
            at: 0,
            reason: "a tensor lacks its dtype, shape or data_offsets",
        }),
    }
}

/// Walks the JSON header, handing each tensor to `visit`. The parser keeps no table of
/// tensors (a microcontroller's stack is small): it walks the header again for each tensor
/// it looks up, a few hundred bytes each time.
fn parse_header<'a>(
    json: &'a [u8],
    mut visit: impl FnMut(Entry<'a>),
) -> Result<Header<'a>, ParseError> {
    let mut h = Header {
        count: 0,
        architecture: None,
        quantization: None,
    };
    let mut s = Scanner::new(json);
    s.expect(b'{', "expected '{'")?;
    if !s.empty(b'}') {
        loop {
            let key = s.string()?;
            s.expect(b':', "expected ':'")?;
            if key.eq_str("__metadata__") {
                s.expect(b'{', "expected the metadata's object")?;
                if !s.empty(b'}') {
                    loop {
                        let k = s.string()?;
                        s.expect(b':', "expected ':'")?;
                        if s.peek() == Some(b'"') {
                            let v = s.string()?;
                            if k.eq_str("architecture") {
                                h.architecture = Some(v);
                            } else if k.eq_str("quantization") {
                                h.quantization = Some(v);
                            }
                        } else {
                            s.skip_value()?;
                        }
                        if !s.next_element(b'}')? {
                            break;
                        }
                    }
                }
            } else {
                visit(parse_tensor(&mut s, key)?);
                h.count += 1;
            }
            if !s.next_element(b'}')? {
                break;
            }
        }
    }
    s.end()?;
    Ok(h)
}

/// A classifier over a model file's bytes, borrowed: no copy, no allocation, no `std`.
///
/// Made by [`ClassifierRef::parse`], which validates everything once (header, architecture,
/// every tensor's name, dtype, shape and offsets, finite weights), so predictions cannot
/// fail. It runs what the std [`Classifier`](crate::Classifier) runs: f32 or int8 dense
/// networks and f32 convolutional ones, on 28x28 images. It is `Copy` (a few hundred bytes:
/// the layer list and the tensors' offsets), and `Send + Sync`, so threads can share one.
///
/// **Scratch.** A prediction keeps its activations in a caller's `&mut [f32]` of at least
/// [`ClassifierRef::scratch_len`] values: two buffers, each as large as the largest layer
/// output (the logits excepted). Softmax regression needs none; a 784-256-10 MLP 512
/// values (2 KiB); the tutorial's CNN (`conv5x5x32,pool2,conv5x5x64,pool2,fc1024,fc10`)
/// 2 × 28·28·32 = 50,176 values (200,704 bytes), for its first convolution's output.
///
/// **Numbers.** The forward passes are plain scalar loops (no SIMD detection, which needs
/// `std`). A dense f32 layer sums each output in the order of the std engine's dot product
/// (32 running sums, reduced as a tree) with separate multiply and add, so its logits equal
/// the std `Classifier`'s at the portable SIMD level bit for bit on targets without FMA
/// (x86-64 by default); int8 logits (i32 sums, the same f32 rescaling) are equal at every
/// level; the softmax uses the std kernels' exponential, lane by lane. With AVX2 or
/// AVX-512 (fused multiply-add) the f32 logits differ in the last bits. Convolutions sum
/// taps in `(ky, kx, channel)` order; on MNIST's test set a small CNN's logits came out
/// equal to the std engine's portable ones too, but only a tolerance (1e-5 of the largest
/// logit) is promised.
///
/// **Alignment.** Values are read with `f32::from_le_bytes`, so the bytes may sit at any
/// address: an `include_bytes!` blob has alignment 1 and safetensors' offsets are multiples
/// of nothing in particular. Cortex-M4 and x86 load unaligned words in one instruction, so
/// asking for alignment (an aligning macro) would gain nothing.
///
/// ```
/// use softnet::ClassifierRef;
/// static MODEL: &[u8] = include_bytes!("../../tests/fixtures/softmax.safetensors");
/// let classifier = ClassifierRef::parse(MODEL)?;
/// let mut scratch = [0.0f32; 0]; // classifier.scratch_len() values: none for this model
/// let (class, p) = classifier.predict(&[0u8; 784], &mut scratch);
/// assert!(class < 10 && p > 0.1);
/// # Ok::<(), softnet::infer::ParseError>(())
/// ```
#[derive(Clone, Copy)]
pub struct ClassifierRef<'a> {
    data: &'a [u8],
    arch: ArchRef,
    params: [ParamRef; MAX_LAYERS],
    int8: bool,
    half: usize,
}

impl fmt::Debug for ClassifierRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassifierRef")
            .field("layers", &self.arch.layers())
            .field("int8", &self.int8)
            .field("data_bytes", &self.data.len())
            .field("scratch_len", &self.scratch_len())
            .finish()
    }
}

impl<'a> ClassifierRef<'a> {
    /// Parses and validates a softnet model file (the safetensors bytes `softnet train
    /// --save` and `softnet quantize` write: f32 or int8, dense or convolutional) without
    /// copying. Never panics, whatever the bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        let found = bytes.len() as u64;
        let Some(len) = bytes.first_chunk::<8>().map(|b| u64::from_le_bytes(*b)) else {
            return Err(ParseError::Truncated { needed: 8, found });
        };
        if len > found - 8 {
            return Err(ParseError::Truncated {
                needed: len.saturating_add(8),
                found,
            });
        }
        let (json, data) = bytes[8..].split_at(len as usize);
        if let Err(e) = core::str::from_utf8(json) {
            return Err(ParseError::BadHeader {
                at: e.valid_up_to(),
                reason: "not UTF-8",
            });
        }
        let header = parse_header(json, |_| ())?;

        let raw = header.architecture.ok_or(ParseError::NoArchitecture)?;
        let mut text = [0u8; MAX_ARCH_TEXT];
        let text = raw
            .decode_into(&mut text)
            .ok_or(ParseError::BadArchitecture {
                reason: "longer than 512 bytes",
            })?;
        let arch = ArchRef::parse(text).map_err(|reason| ParseError::BadArchitecture { reason })?;
        let int8 = match header.quantization {
            None => false,
            Some(q) if q.eq_str(QUANTIZATION_INT8) => true,
            Some(_) => return Err(ParseError::UnknownQuantization),
        };
        if arch.input.len() != PIXELS {
            return Err(ParseError::Unsupported {
                reason: "the model does not take 784 inputs (28x28 images)",
            });
        }
        if !(2..=MAX_CLASSES).contains(&arch.classes()) {
            return Err(ParseError::Unsupported {
                reason: "the model does not have 2 to 256 classes",
            });
        }
        if int8 && !arch.is_dense() {
            return Err(ParseError::Unsupported {
                reason: "int8 files hold linear and ReLU layers only",
            });
        }

        let mut expected = 0;
        let mut params = [ParamRef::default(); MAX_LAYERS];
        for (i, layer) in arch.layers().iter().enumerate() {
            let input = arch.input_shape(i);
            let (weight_shape, out) = match *layer {
                Layer::Linear { out } => (Dims::of(&[input.len64(), u64::from(out)]), out),
                Layer::Conv { out, kernel, .. } => {
                    let k = u64::from(kernel);
                    (Dims::of(&[k, k, u64::from(input.c), u64::from(out)]), out)
                }
                _ => continue,
            };
            let bias_shape = Dims::of(&[u64::from(out)]);
            let mut names = [TensorName::new(); 3];
            // The names are at most `conv24/weight_scale`: they fit.
            let _ = arch.param_path(i, false, &mut names[0]);
            let _ = arch.param_path(i, true, &mut names[1]);
            let _ = arch.param_path(i, false, &mut names[2]);
            let _ = fmt::Write::write_str(&mut names[2], "_scale");
            let weight_dtype = if int8 { Dtype::I8 } else { Dtype::F32 };
            let find = |name: &TensorName, dtype: Dtype, shape: Dims| {
                tensor(json, data, name, dtype, shape)
            };
            expected += if int8 { 3 } else { 2 };
            params[i].weight = find(&names[0], weight_dtype, weight_shape)?;
            params[i].bias = find(&names[1], Dtype::F32, bias_shape)?;
            if int8 {
                params[i].scale = find(&names[2], Dtype::F32, bias_shape)?;
            }
            check_values(data, &names, params[i], int8)?;
        }
        if header.count != expected {
            // Every expected tensor is there once: some other one is too.
            let mut stranger = None;
            parse_header(json, |e| {
                if stranger.is_none() && !is_expected(&arch, int8, e.name) {
                    stranger = Some(name_of(e.name));
                }
            })?;
            return Err(ParseError::UnexpectedTensor {
                name: stranger.unwrap_or_else(TensorName::new),
            });
        }
        let half = forward::half_len(&arch);
        Ok(ClassifierRef {
            data,
            arch,
            params,
            int8,
            half,
        })
    }

    /// Number of classes (logits).
    pub fn classes(&self) -> usize {
        self.arch.classes()
    }

    /// Whether the weights are int8 (else f32).
    pub fn is_int8(&self) -> bool {
        self.int8
    }

    /// f32 values of scratch a prediction needs (0 for softmax regression; see the type's
    /// docs for others).
    pub fn scratch_len(&self) -> usize {
        2 * self.half
    }

    /// Writes the logits of a 28x28 image (row-major, 0 = background, as in MNIST) into
    /// `out` (`[classes]`).
    ///
    /// # Panics
    /// If `scratch` holds fewer than [`ClassifierRef::scratch_len`] values or `out` does not
    /// hold [`ClassifierRef::classes`]: a caller's bug, not the input's.
    pub fn logits_into(&self, pixels: &[u8; PIXELS], scratch: &mut [f32], out: &mut [f32]) {
        assert!(
            scratch.len() >= self.scratch_len(),
            "scratch holds {} values, the model needs {}",
            scratch.len(),
            self.scratch_len()
        );
        assert_eq!(out.len(), self.classes(), "one logit per class");
        let net = Net {
            arch: &self.arch,
            params: &self.params,
            data: self.data,
            int8: self.int8,
            half: self.half,
        };
        forward::logits(net, pixels, scratch, out);
    }

    /// Writes the softmax probabilities of an image into `out` (`[classes]`).
    ///
    /// # Panics
    /// As [`ClassifierRef::logits_into`].
    pub fn probabilities_into(&self, pixels: &[u8; PIXELS], scratch: &mut [f32], out: &mut [f32]) {
        self.logits_into(pixels, scratch, out);
        let max = out[argmax(out)];
        for v in out.iter_mut() {
            *v = forward::exp(*v - max);
        }
        let inv = 1.0 / out.iter().sum::<f32>();
        for v in out.iter_mut() {
            *v *= inv;
        }
    }

    /// The most likely class of an image and its softmax probability.
    ///
    /// # Panics
    /// If `scratch` holds fewer than [`ClassifierRef::scratch_len`] values.
    pub fn predict(&self, pixels: &[u8; PIXELS], scratch: &mut [f32]) -> (usize, f32) {
        let mut logits = [0.0f32; MAX_CLASSES];
        let z = &mut logits[..self.classes()];
        self.logits_into(pixels, scratch, z);
        let best = argmax(z);
        let max = z[best];
        for v in z.iter_mut() {
            *v = forward::exp(*v - max);
        }
        (best, 1.0 / z.iter().sum::<f32>())
    }
}

/// Index of the first largest value (0 when all are NaN); both engines pick classes with it.
pub(super) fn argmax(z: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in z.iter().enumerate() {
        if v > z[best] {
            best = i;
        }
    }
    best
}

/// Whether `name` is one of the tensors `arch` has.
fn is_expected(arch: &ArchRef, int8: bool, name: RawStr<'_>) -> bool {
    (0..arch.n).any(|i| {
        let mut names = [TensorName::new(); 3];
        let ok = arch.param_path(i, false, &mut names[0]).is_ok()
            && arch.param_path(i, true, &mut names[1]).is_ok()
            && arch.param_path(i, false, &mut names[2]).is_ok()
            && fmt::Write::write_str(&mut names[2], "_scale").is_ok();
        let kinds = if int8 { 3 } else { 2 };
        ok && names[..kinds].iter().any(|n| name.eq_str(n.as_str()))
    })
}

/// Finds tensor `name` in the header (exactly once), checks its dtype, shape and offsets;
/// returns its byte range in the data.
fn tensor(
    json: &[u8],
    data: &[u8],
    name: &TensorName,
    dtype: Dtype,
    shape: Dims,
) -> Result<(u32, u32), ParseError> {
    let (mut found, mut twice) = (None, false);
    parse_header(json, |e| {
        if e.name.eq_str(name.as_str()) {
            twice |= found.is_some();
            found = Some(e);
        }
    })?;
    if twice {
        return Err(ParseError::UnexpectedTensor { name: *name });
    }
    let Some(e) = found else {
        return Err(ParseError::MissingTensor { name: *name });
    };
    if e.dtype != dtype {
        return Err(ParseError::WrongDtype {
            name: *name,
            found: e.dtype,
            expected: dtype,
        });
    }
    if e.shape != shape {
        return Err(ParseError::WrongShape {
            name: *name,
            found: e.shape,
            expected: shape,
        });
    }
    let data_len = data.len() as u64;
    let bytes = shape.count().and_then(|n| n.checked_mul(dtype.size()));
    let fits = e.start <= e.end && e.end <= data_len && Some(e.end - e.start) == bytes;
    // Offsets inside the data fit in u32 for any file under 4 GiB (a microcontroller's
    // flash or a wasm32 memory); a larger one is refused rather than cut.
    if !fits || e.end > u64::from(u32::MAX) {
        return Err(ParseError::BadOffsets {
            name: *name,
            start: e.start,
            end: e.end,
            data_len,
        });
    }
    Ok((e.start as u32, e.end as u32))
}

/// Checks the values of one layer's tensors: finite f32, positive scales, no -128.
fn check_values(
    data: &[u8],
    names: &[TensorName; 3],
    p: ParamRef,
    int8: bool,
) -> Result<(), ParseError> {
    let range = |r: (u32, u32)| &data[r.0 as usize..r.1 as usize];
    let finite = |name: &TensorName, bytes: &[u8], positive: bool| {
        for (index, b) in bytes.chunks_exact(4).enumerate() {
            let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if !v.is_finite() {
                return Err(ParseError::NonFinite { name: *name, index });
            }
            if positive && v <= 0.0 {
                return Err(ParseError::BadQuantization { name: *name, index });
            }
        }
        Ok(())
    };
    if int8 {
        if let Some(index) = range(p.weight).iter().position(|&b| b == 0x80) {
            return Err(ParseError::BadQuantization {
                name: names[0],
                index,
            });
        }
        finite(&names[2], range(p.scale), true)?;
    } else {
        finite(&names[0], range(p.weight), false)?;
    }
    finite(&names[1], range(p.bias), false)
}

/// Tests of the no_std core (run by `cargo test --no-default-features` too): files written
/// by hand.
#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;
    use std::{format, vec};

    pub(super) fn image(seed: usize) -> [u8; PIXELS] {
        // Zeros too, as in real digits (the engines skip them).
        core::array::from_fn(|i| {
            let v = (i * 37 + seed * 101) % 256;
            if v < 100 {
                0
            } else {
                v as u8
            }
        })
    }

    /// A safetensors file with this JSON header (padded as the writer pads) and data.
    pub(super) fn raw(json: &str, data: &[u8]) -> Vec<u8> {
        let mut header = json.as_bytes().to_vec();
        while header.len() % 8 != 0 {
            header.push(b' ');
        }
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header);
        bytes.extend(data);
        bytes
    }

    pub(super) fn softmax_file(weight: &[f32], bias: &[f32]) -> Vec<u8> {
        let mut data: Vec<u8> = bias.iter().flat_map(|v| v.to_le_bytes()).collect();
        data.extend(weight.iter().flat_map(|v| v.to_le_bytes()));
        let (b, w) = (4 * bias.len(), 4 * bias.len() + 4 * weight.len());
        raw(
            &format!(
                r#"{{"__metadata__":{{"architecture":"784-10","format":"np"}},"variables/Bias":{{"dtype":"F32","shape":[10],"data_offsets":[0,{b}]}},"variables\/Weight":{{"dtype":"F32","shape":[784,10],"data_offsets":[{b},{w}]}}}}"#
            ),
            &data,
        )
    }

    pub(super) fn err(bytes: &[u8]) -> ParseError {
        ClassifierRef::parse(bytes).unwrap_err()
    }

    pub(super) fn name(s: &str) -> TensorName {
        let mut n = TensorName::new();
        fmt::Write::write_str(&mut n, s).unwrap();
        n
    }

    #[test]
    fn a_hand_written_header_with_escapes_parses() {
        let weight: Vec<f32> = (0..7840).map(|i| (i % 13) as f32 * 0.01).collect();
        let bytes = softmax_file(&weight, &[0.5; 10]);
        let c = ClassifierRef::parse(&bytes).unwrap();
        assert_eq!((c.classes(), c.scratch_len(), c.is_int8()), (10, 0, false));
        // The logits by hand, in f64: Σ_i x_i w_ij + 0.5.
        let img = image(3);
        let mut z = [0.0f32; 10];
        c.logits_into(&img, &mut [], &mut z);
        for (j, &v) in z.iter().enumerate() {
            let want: f64 = (0..784)
                .map(|i| f64::from(img[i]) / 255.0 * f64::from(weight[i * 10 + j]))
                .sum::<f64>()
                + 0.5;
            assert!((f64::from(v) - want).abs() < 1e-4, "{j}: {v} vs {want}");
        }
        let (class, p) = c.predict(&img, &mut []);
        let mut probs = [0.0f32; 10];
        c.probabilities_into(&img, &mut [], &mut probs);
        assert_eq!(class, argmax(&z));
        assert_eq!(p, probs[class]);
        let sum: f64 = z.iter().map(|&v| f64::from(v - z[class]).exp()).sum();
        assert!(
            (f64::from(p) - 1.0 / sum).abs() < 1e-6,
            "{p} vs {}",
            1.0 / sum
        );
    }

    #[test]
    fn each_defect_is_its_own_error() {
        let good = softmax_file(&[0.1; 7840], &[0.0; 10]);
        assert_eq!(
            err(b""),
            ParseError::Truncated {
                needed: 8,
                found: 0
            }
        );
        assert_eq!(
            err(&good[..100]),
            ParseError::Truncated {
                needed: 8 + u64::from_le_bytes(good[..8].try_into().unwrap()),
                found: 100
            }
        );
        // Cut inside the data: the last tensor no longer fits.
        let cut = &good[..good.len() - 4];
        assert!(
            matches!(err(cut), ParseError::BadOffsets { name: n, .. } if n == name("variables/Weight")),
            "{}",
            err(cut)
        );
        let mut junk = good.clone();
        junk[8 + 15] = b'!'; // the colon after "__metadata__"
        assert!(
            matches!(err(&junk), ParseError::BadHeader { .. }),
            "{}",
            err(&junk)
        );
        assert!(matches!(
            err(&raw("[]", &[])),
            ParseError::BadHeader { at: 0, .. }
        ));
        assert!(matches!(
            err(&raw("{} x", &[])),
            ParseError::BadHeader { .. }
        ));
        assert_eq!(err(&raw("{}", &[])), ParseError::NoArchitecture);

        let mut nan = vec![0.0f32; 7840];
        nan[123] = f32::NAN;
        assert_eq!(
            err(&softmax_file(&nan, &[0.0; 10])),
            ParseError::NonFinite {
                name: name("variables/Weight"),
                index: 123
            }
        );
        let e = err(&softmax_file(&[0.0; 7840], &[f32::INFINITY; 10]));
        assert_eq!(
            e.to_string(),
            "tensor \"variables/Bias\" holds NaN or infinite values (at 0)"
        );

        // The architecture says 784-11: every tensor's shape is wrong.
        let mut shape = good.clone();
        let at = shape.windows(6).position(|w| w == b"784-10").unwrap();
        shape[at + 5] = b'1';
        let e = err(&shape);
        assert_eq!(
            e.to_string(),
            "tensor \"variables/Weight\" has shape [784, 10], expected [784, 11]"
        );
        let mut dtype = good.clone();
        let at = dtype.windows(5).position(|w| w == b"\"F32\"").unwrap();
        dtype[at + 1..at + 4].copy_from_slice(b"I32");
        assert_eq!(
            err(&dtype),
            ParseError::WrongDtype {
                name: name("variables/Bias"),
                found: Dtype::Other,
                expected: Dtype::F32
            }
        );
        let far = raw(
            r#"{"__metadata__":{"architecture":"784-10"},"variables/Bias":{"dtype":"F32","shape":[10],"data_offsets":[18446744073709551600,18446744073709551615]},"variables/Weight":{"dtype":"F32","shape":[784,10],"data_offsets":[40,31400]}}"#,
            &[0; 31400],
        );
        assert!(
            matches!(
                err(&far),
                ParseError::BadOffsets {
                    data_len: 31400,
                    ..
                }
            ),
            "{}",
            err(&far)
        );
        let missing = raw(
            r#"{"__metadata__":{"architecture":"784-10"},"variables/Bias":{"dtype":"F32","shape":[10],"data_offsets":[0,40]}}"#,
            &[0; 40],
        );
        assert_eq!(
            err(&missing),
            ParseError::MissingTensor {
                name: name("variables/Weight")
            }
        );
        let extra = raw(
            r#"{"__metadata__":{"architecture":"784-10"},"variables/Bias":{"dtype":"F32","shape":[10],"data_offsets":[0,40]},"variables/Weight":{"dtype":"F32","shape":[784,10],"data_offsets":[40,31400]},"spare":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            &[0; 31400],
        );
        assert_eq!(
            err(&extra),
            ParseError::UnexpectedTensor {
                name: name("spare")
            }
        );
        let unsupported = raw(r#"{"__metadata__":{"architecture":"100-10"}}"#, &[]);
        assert!(matches!(err(&unsupported), ParseError::Unsupported { .. }));
        let int8_cnn = format!(
            r#"{{"__metadata__":{{"architecture":"28x28x1:conv3x3x2,fc10","quantization":"{QUANTIZATION_INT8}"}}}}"#
        );
        assert!(matches!(
            err(&raw(&int8_cnn, &[])),
            ParseError::Unsupported { .. }
        ));
        let bad_arch = raw(r#"{"__metadata__":{"architecture":"784-ten"}}"#, &[]);
        assert!(matches!(err(&bad_arch), ParseError::BadArchitecture { .. }));
        let quant = raw(
            r#"{"__metadata__":{"architecture":"784-10","quantization":"int4"}}"#,
            &[],
        );
        assert_eq!(err(&quant), ParseError::UnknownQuantization);
    }

    pub(super) fn int8_file(weight: &[i8], scale: &[f32]) -> Vec<u8> {
        let mut data: Vec<u8> = weight.iter().map(|&q| q as u8).collect();
        data.extend(scale.iter().flat_map(|v| v.to_le_bytes()));
        data.extend([0u8; 40]);
        raw(
            &format!(
                r#"{{"__metadata__":{{"architecture":"784-10","quantization":"{QUANTIZATION_INT8}"}},"variables/Weight":{{"dtype":"I8","shape":[784,10],"data_offsets":[0,7840]}},"variables/Weight_scale":{{"dtype":"F32","shape":[10],"data_offsets":[7840,7880]}},"variables/Bias":{{"dtype":"F32","shape":[10],"data_offsets":[7880,7920]}}}}"#
            ),
            &data,
        )
    }

    #[test]
    fn int8_files_are_checked_as_the_std_loader_checks_them() {
        let mut scale = [0.01f32; 10];
        let mut weight = [1i8; 7840];
        assert!(ClassifierRef::parse(&int8_file(&weight, &scale)).is_ok());
        scale[3] = 0.0;
        assert_eq!(
            err(&int8_file(&weight, &scale)),
            ParseError::BadQuantization {
                name: name("variables/Weight_scale"),
                index: 3
            }
        );
        scale[3] = 1.0;
        weight[7] = i8::MIN;
        assert_eq!(
            err(&int8_file(&weight, &scale)),
            ParseError::BadQuantization {
                name: name("variables/Weight"),
                index: 7
            }
        );
        // An f32 file that claims to be int8: its weights are F32.
        let f32_bytes = softmax_file(&[0.0; 7840], &[0.0; 10]);
        let n = u64::from_le_bytes(f32_bytes[..8].try_into().unwrap()) as usize;
        let json = core::str::from_utf8(&f32_bytes[8..8 + n]).unwrap();
        let json = json.replace(
            r#""format":"np""#,
            &format!(r#""quantization":"{QUANTIZATION_INT8}""#),
        );
        let claims = raw(&json, &vec![0; 31400]);
        let e = err(&claims);
        assert!(
            matches!(
                e,
                ParseError::WrongDtype {
                    expected: Dtype::I8,
                    ..
                }
            ),
            "{e}"
        );
    }
}

/// The no_std engine against the std `Classifier`.
#[cfg(all(test, feature = "std"))]
mod std_tests {
    use super::tests::{image, int8_file};
    use super::*;
    use crate::io::{model_to_bytes, quantized_to_bytes, QuantizedModel};
    use crate::kernels::simd::{with_level, Level};
    use crate::nn::{Architecture, Model};
    use crate::Classifier;

    #[test]
    fn hand_written_files_load_in_the_std_loader_too() {
        let weight: Vec<i8> = (0..7840).map(|i| (i % 200 - 100) as i8).collect();
        let bytes = int8_file(&weight, &[0.01; 10]);
        let std = Classifier::from_bytes(&bytes).unwrap();
        let ours = ClassifierRef::parse(&bytes).unwrap();
        let img = image(2);
        let (mut a, mut b) = ([0.0f32; 10], [0.0f32; 10]);
        ours.logits_into(&img, &mut [], &mut a);
        std.logits_into(&img, &mut b);
        assert_eq!(a, b);
        let ok = quantized_to_bytes(
            &QuantizedModel::quantize(&Model::he_normal(Architecture::mlp(&[5]), 3)),
            &[],
        );
        assert!(ClassifierRef::parse(&ok).unwrap().is_int8());
    }

    /// Dense f32: the std engine's logits at its portable level, bit for bit (on targets
    /// where that level does not fuse multiply-adds), and its predictions.
    #[test]
    fn dense_f32_equals_the_std_classifier() {
        for arch in [
            Architecture::softmax_regression(),
            Architecture::mlp(&[33]),
            Architecture::mlp(&[1100, 7]),
        ] {
            let model = Model::he_normal(arch, 2);
            let bytes = model_to_bytes(&model, &[]);
            let ours = ClassifierRef::parse(&bytes).unwrap();
            let std = Classifier::from_bytes(&bytes).unwrap();
            let mut scratch = vec![0.0; ours.scratch_len()];
            for s in 0..4 {
                let img = image(s);
                let (mut a, mut b) = ([0.0f32; 10], [0.0f32; 10]);
                ours.logits_into(&img, &mut scratch, &mut a);
                let (want, conf) = with_level(Level::Portable, || {
                    std.logits_into(&img, &mut b);
                    std.predict(&img)
                });
                if !Level::Portable.fuses_mul_add() {
                    assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits), "{a:?} vs {b:?}");
                    assert_eq!(ours.predict(&img, &mut scratch), (want, conf));
                }
                // Any level: the same class, logits within float rounding.
                std.logits_into(&img, &mut b);
                for (x, y) in a.iter().zip(&b) {
                    assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{a:?} vs {b:?}");
                }
                assert_eq!(ours.predict(&img, &mut scratch).0, std.predict(&img).0);
            }
        }
    }

    /// Int8: integer sums and the same rescaling: equal to the std engine at every level.
    #[test]
    fn int8_equals_the_std_classifier_bit_for_bit() {
        for arch in [
            Architecture::softmax_regression(),
            Architecture::mlp(&[40, 12]),
        ] {
            let q = QuantizedModel::quantize(&Model::he_normal(arch, 4));
            let bytes = quantized_to_bytes(&q, &[]);
            let ours = ClassifierRef::parse(&bytes).unwrap();
            let std = Classifier::from_bytes(&bytes).unwrap();
            let mut scratch = vec![0.0; ours.scratch_len()];
            for s in 0..4 {
                let img = image(s);
                let (mut a, mut b) = ([0.0f32; 10], [0.0f32; 10]);
                ours.logits_into(&img, &mut scratch, &mut a);
                std.logits_into(&img, &mut b);
                assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits), "{a:?} vs {b:?}");
                let mut p = [0.0f32; 10];
                ours.probabilities_into(&img, &mut scratch, &mut p);
                assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                let (class, conf) = ours.predict(&img, &mut scratch);
                assert_eq!(class, std.predict(&img).0);
                assert_eq!(conf, p[class]);
            }
        }
    }

    /// CNN: the same class as the std engine, logits within 1e-5 of the largest (the sums
    /// run in another order).
    #[test]
    fn cnn_agrees_with_the_std_classifier() {
        for spec in [
            "conv3x3x4,pool2,conv3x3x6s2,fc10",
            "conv5x5x8valid,pool3s2,conv3x3x16s2valid,fc20,dropout0.5,fc10",
        ] {
            let model = Model::he_normal(Architecture::from_spec(spec).unwrap(), 7);
            let bytes = model_to_bytes(&model, &[]);
            let ours = ClassifierRef::parse(&bytes).unwrap();
            let std = Classifier::from_bytes(&bytes).unwrap();
            let mut scratch = vec![0.0; ours.scratch_len()];
            for s in 0..4 {
                let img = image(s);
                let (mut a, mut b) = ([0.0f32; 10], [0.0f32; 10]);
                ours.logits_into(&img, &mut scratch, &mut a);
                std.logits_into(&img, &mut b);
                let spread = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                for (x, y) in a.iter().zip(&b) {
                    assert!((x - y).abs() <= 1e-5 * spread, "{spec}: {a:?} vs {b:?}");
                }
                assert_eq!(
                    ours.predict(&img, &mut scratch).0,
                    std.predict(&img).0,
                    "{spec}"
                );
            }
        }
        let tutorial = model_to_bytes(&Model::zeros(Architecture::cnn()), &[]);
        let tutorial = ClassifierRef::parse(&tutorial).unwrap();
        assert_eq!(tutorial.scratch_len(), 2 * 28 * 28 * 32);
    }

    #[test]
    fn classifier_ref_is_small_and_shareable() {
        fn shareable<T: Send + Sync + Copy>() {}
        shareable::<ClassifierRef<'static>>();
        let size = core::mem::size_of::<ClassifierRef<'static>>();
        eprintln!("size_of::<ClassifierRef>() = {size}");
        assert!(size <= 2048, "{size}");
    }

    #[test]
    #[should_panic(expected = "scratch holds 3 values, the model needs 66")]
    fn short_scratch_is_a_callers_bug() {
        let bytes = model_to_bytes(&Model::zeros(Architecture::mlp(&[33])), &[]);
        let c = ClassifierRef::parse(&bytes).unwrap();
        c.predict(&[0; PIXELS], &mut [0.0; 3]);
    }
}
