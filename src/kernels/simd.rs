//! Run-time choice of the SIMD instruction level, and the vector operations of each level.
//!
//! A [`Level`] is picked once per process from the CPU's features
//! (`is_x86_feature_detected!`), or forced with `SOFTNET_SIMD=portable|avx2|avx512`. A
//! kernel is a [`SimdKernel`]: its body is generic over a [`Simd`] token and
//! `#[inline(always)]`, and [`dispatch`] runs it inside a `#[target_feature]` function of
//! the chosen level, so the one body is compiled once per level with that level's
//! instructions, whatever `target-cpu` the crate was built for.
//!
//! The tokens ([`Portable`], [`Avx2`], [`Avx512`]) are zero-sized and can only be made where
//! the CPU has the level's features: their safe methods may call the level's intrinsics.
//!
//! All levels compute the same thing lane by lane, with one exception: the portable
//! level fuses [`Simd::mul_add`] only where the crate is compiled for a target with FMA
//! (aarch64, or x86-64 with `target-feature=+fma`); elsewhere it multiplies and adds with
//! two roundings, so its results may differ from the other levels' in the last bits.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// An instruction level the kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Plain Rust on arrays of sixteen lanes (what the compiler makes of it for the target).
    Portable,
    /// AVX2 and FMA: a vector of sixteen is two 256-bit registers, sixteen registers.
    Avx2,
    /// AVX-512 F, BW, VL and DQ (with AVX2 and FMA): one 512-bit register, thirty-two of them.
    Avx512,
}

/// The environment variable that forces a level.
pub const ENV: &str = "SOFTNET_SIMD";

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 3] = [Level::Portable, Level::Avx2, Level::Avx512];

    /// The name `SOFTNET_SIMD` takes.
    pub fn name(self) -> &'static str {
        match self {
            Level::Portable => "portable",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    fn from_name(name: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The best level this CPU runs (detected once).
    pub fn detected() -> Level {
        static DETECTED: OnceLock<Level> = OnceLock::new();
        *DETECTED.get_or_init(detect)
    }

    /// Whether this CPU runs the level.
    pub fn is_supported(self) -> bool {
        self <= Level::detected()
    }

    /// The levels this CPU runs, lowest first.
    pub fn supported() -> impl Iterator<Item = Level> + Clone {
        Level::ALL.into_iter().filter(|l| l.is_supported())
    }

    /// The level kernels run at on this thread: the one [`with_level`] set, or else the
    /// process's (`SOFTNET_SIMD`, or the detected one).
    #[inline]
    pub fn current() -> Level {
        match OVERRIDE.with(Cell::get) {
            0 => Level::process(),
            code => Level::from_code(code),
        }
    }

    /// The process's level: `SOFTNET_SIMD` if set (clamped to what the CPU runs), or the
    /// detected one. The first call reads the environment, which allocates:
    /// [`GemmWorkspace::new`](super::GemmWorkspace::new) and the `Classifier` constructors
    /// make it, so that kernels never allocate.
    #[inline]
    pub fn process() -> Level {
        match CHOSEN.load(Ordering::Relaxed) {
            0 => choice().level,
            code => Level::from_code(code),
        }
    }

    /// Whether [`Simd::mul_add`] rounds once at this level (see the module docs).
    pub const fn fuses_mul_add(self) -> bool {
        !matches!(self, Level::Portable) || PORTABLE_FUSES
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(code: u8) -> Level {
        Level::ALL[usize::from(code - 1)]
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the portable level's `mul_add` is fused: only where the target has FMA at
/// compile time, since a fused multiply-add in software costs far more than the two
/// roundings it saves.
const PORTABLE_FUSES: bool = cfg!(any(target_feature = "fma", target_arch = "aarch64"));

/// The process's level plus one (0: not chosen yet).
static CHOSEN: AtomicU8 = AtomicU8::new(0);

thread_local! {
    /// This thread's forced level plus one (0: none), set by [`with_level`].
    static OVERRIDE: Cell<u8> = const { Cell::new(0) };
}

/// How the process's level was chosen.
#[derive(Debug, Clone)]
struct Choice {
    level: Level,
    /// `SOFTNET_SIMD`'s value, if set.
    requested: Option<String>,
}

fn choice() -> &'static Choice {
    static CHOICE: OnceLock<Choice> = OnceLock::new();
    let choice = CHOICE.get_or_init(|| {
        let detected = Level::detected();
        let requested = std::env::var(ENV).ok().filter(|v| !v.trim().is_empty());
        let level = match requested.as_deref() {
            None => detected,
            Some(value) => match Level::from_name(value) {
                Some(level) if level <= detected => level,
                Some(level) => {
                    eprintln!(
                        "softnet: {ENV}={value}: this CPU does not run {level}; using {detected}"
                    );
                    detected
                }
                None => {
                    eprintln!(
                        "softnet: {ENV}={value} is not one of portable, avx2, avx512; using {detected}"
                    );
                    detected
                }
            },
        };
        Choice { level, requested }
    });
    CHOSEN.store(choice.level.code(), Ordering::Relaxed);
    choice
}

/// A line saying which level runs and why, e.g. `avx512 (detected; SOFTNET_SIMD unset)`.
pub fn describe() -> String {
    let choice = choice();
    let detected = Level::detected();
    match &choice.requested {
        None => format!("{} (detected; {ENV} unset)", choice.level),
        Some(value) => format!("{} ({ENV}={value}; detected {detected})", choice.level),
    }
}

/// Runs `f` with the kernels of this thread at `level`: how the tests and benches run
/// every path in one process. Kernels that other threads run (rayon's) are not affected.
///
/// # Panics
/// If this CPU does not run `level`.
pub fn with_level<R>(level: Level, f: impl FnOnce() -> R) -> R {
    assert!(level.is_supported(), "this CPU does not run {level}");
    struct Restore(u8);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OVERRIDE.with(|o| o.replace(level.code())));
    f()
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Level {
    let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
    let avx512 = avx2
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512dq");
    if avx512 {
        Level::Avx512
    } else if avx2 {
        Level::Avx2
    } else {
        Level::Portable
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Level {
    Level::Portable
}

/// A kernel compiled once per level: [`dispatch`] calls `run` with the token of the
/// current level, inside a function compiled for that level's features.
pub trait SimdKernel {
    /// What the kernel returns.
    type Output;
    /// The kernel body; `#[inline(always)]`, so it is compiled into each level's caller.
    fn run<S: Simd>(self, s: S) -> Self::Output;
}

/// Runs `kernel` at [`Level::current`].
#[inline]
pub fn dispatch<K: SimdKernel>(kernel: K) -> K::Output {
    dispatch_at(Level::current(), kernel)
}

/// Runs `kernel` at `level`, or at the best supported level below it.
#[inline]
pub fn dispatch_at<K: SimdKernel>(level: Level, kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    {
        if level == Level::Avx512 {
            if let Some(token) = Avx512::new() {
                // SAFETY: the token exists, so the CPU has every feature `run_avx512` enables.
                return unsafe { run_avx512(kernel, token) };
            }
        }
        if level >= Level::Avx2 {
            if let Some(token) = Avx2::new() {
                // SAFETY: the token exists, so the CPU has every feature `run_avx2` enables.
                return unsafe { run_avx2(kernel, token) };
            }
        }
    }
    let _ = level;
    kernel.run(Portable::new())
}

/// # Safety
/// The CPU must have AVX2 and FMA (an [`Avx2`] token proves it).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<K: SimdKernel>(kernel: K, token: Avx2) -> K::Output {
    kernel.run(token)
}

/// # Safety
/// The CPU must have the AVX-512 level's features (an [`Avx512`] token proves it).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn run_avx512<K: SimdKernel>(kernel: K, token: Avx512) -> K::Output {
    kernel.run(token)
}

/// The vector operations of one level, on vectors of sixteen f32 lanes.
///
/// Implemented by zero-sized tokens that exist only where the CPU runs their level; every
/// method is `#[inline(always)]`, for use inside a [`SimdKernel`] body.
pub trait Simd: Copy + Send + Sync + fmt::Debug + 'static {
    /// The level.
    const LEVEL: Level;
    /// Rows of the gemm microkernel tile (one vector of accumulators each): eight with
    /// thirty-two registers, four with sixteen.
    const MR: usize;
    /// Rows [`narrow::matmul`](super::narrow::matmul) multiplies at a time.
    const NARROW_ROWS: usize;
    /// Columns [`narrow::matmul_tn`](super::narrow::matmul_tn) sums in one pass.
    const GRAD_COLUMNS: usize;
    /// Sixteen f32 lanes.
    type F32: Copy;
    /// A lane mask, from comparisons.
    type Mask: Copy;

    /// Every lane `v`.
    fn splat(self, v: f32) -> Self::F32;
    /// Every lane 0.0.
    fn zero(self) -> Self::F32 {
        self.splat(0.0)
    }
    /// The lanes of `a`.
    fn load_array(self, a: &[f32; 16]) -> Self::F32;
    /// The lanes as an array.
    fn to_array(self, v: Self::F32) -> [f32; 16];
    /// The first sixteen values of `s`.
    ///
    /// # Panics
    /// If `s` holds fewer than sixteen.
    #[inline(always)]
    fn load(self, s: &[f32]) -> Self::F32 {
        self.load_array(s[..16].try_into().expect("16 lanes"))
    }
    /// The values of `s` (at most sixteen) in the first lanes, zeros in the rest.
    fn load_partial(self, s: &[f32]) -> Self::F32 {
        let mut lanes = [0.0; 16];
        lanes[..s.len()].copy_from_slice(s);
        self.load_array(&lanes)
    }
    /// Writes the lanes to `out[..16]`.
    ///
    /// # Panics
    /// If `out` holds fewer than sixteen.
    #[inline(always)]
    fn store(self, v: Self::F32, out: &mut [f32]) {
        let out: &mut [f32; 16] = (&mut out[..16]).try_into().expect("16 lanes");
        *out = self.to_array(v);
    }
    /// Writes the first `out.len()` (at most sixteen) lanes to `out`.
    fn store_partial(self, v: Self::F32, out: &mut [f32]) {
        let n = out.len();
        out.copy_from_slice(&self.to_array(v)[..n]);
    }
    /// `a + b`.
    fn add(self, a: Self::F32, b: Self::F32) -> Self::F32;
    /// `a - b`.
    fn sub(self, a: Self::F32, b: Self::F32) -> Self::F32;
    /// `a · b`.
    fn mul(self, a: Self::F32, b: Self::F32) -> Self::F32;
    /// `a · b + c`, rounded once (but see the module docs for the portable level).
    fn mul_add(self, a: Self::F32, b: Self::F32, c: Self::F32) -> Self::F32;
    /// `a · b + c` on single values, rounded once where [`Simd::mul_add`] is: the tails
    /// of vector loops round as their lanes do.
    #[inline(always)]
    fn mul_add_scalar(self, a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
    /// `c - a · b`, rounded once where [`Simd::mul_add`] is.
    fn mul_neg_add(self, a: Self::F32, b: Self::F32, c: Self::F32) -> Self::F32;
    /// `wide`'s (and `vmaxps`'s) maximum: `a` where `b` is NaN, else `a > b ? a : b` (so a
    /// NaN `a` gives `b`, and of two zeros `b` wins).
    fn max(self, a: Self::F32, b: Self::F32) -> Self::F32;
    /// The bits of `a` AND those of `b`.
    fn and(self, a: Self::F32, b: Self::F32) -> Self::F32;
    /// Each lane rounded to the nearest integer, ties to even.
    fn round_ties_even(self, v: Self::F32) -> Self::F32;
    /// Each lane's bits, as an i32, shifted left by 23, read back as f32 (building 2ⁿ).
    fn shl23(self, v: Self::F32) -> Self::F32;
    /// `a > b`.
    fn gt(self, a: Self::F32, b: Self::F32) -> Self::Mask;
    /// `a < b`.
    fn lt(self, a: Self::F32, b: Self::F32) -> Self::Mask;
    /// Lanes that are NaN.
    fn is_nan(self, v: Self::F32) -> Self::Mask;
    /// Lanes that are neither infinite nor NaN.
    fn is_finite(self, v: Self::F32) -> Self::Mask;
    /// Lanes whose sign bit is set.
    fn is_sign_negative(self, v: Self::F32) -> Self::Mask;
    /// Both masks.
    fn mask_and(self, a: Self::Mask, b: Self::Mask) -> Self::Mask;
    /// Not the mask.
    fn mask_not(self, a: Self::Mask) -> Self::Mask;
    /// Bit `i` set where lane `i` is set.
    fn mask_bits(self, m: Self::Mask) -> u32;
    /// `m ? a : b`, lane by lane.
    fn select(self, m: Self::Mask, a: Self::F32, b: Self::F32) -> Self::F32;

    /// Sixteen bytes as f32 lanes (0 to 255).
    fn u8_to_f32(self, bytes: &[u8; 16]) -> Self::F32;
    /// Bit `i` set where byte `i` of `bytes` is not zero.
    fn nonzero_bytes32(self, bytes: &[u8; 32]) -> u32;
    /// Bit `i` set where the four bytes `4i..4i + 4` of the OR of the rows' 32 bytes at
    /// `at` are not all zero.
    fn nonzero_words8<const R: usize>(self, rows: &[&[u8]; R], at: usize) -> u32;
    /// `Σ x_i q_i` in i32 over slices of equal length, a multiple of 32.
    fn dot_i16_i8(self, x: &[i16], q: &[i8]) -> i32;
    /// The transpose of an 8x8 block: `out[j][i] = m[i][j]`.
    fn transpose8(self, m: &[[f32; 8]; 8]) -> [[f32; 8]; 8];
}

/// `e^x` lane by lane: `wide`'s algorithm (a degree-5 polynomial after a Cody-Waite range
/// reduction), so each level's results are those `wide` gave on the same instructions.
#[inline(always)]
pub fn exp<S: Simd>(s: S, x: S::F32) -> S::F32 {
    let c = |v: f32| s.splat(v);
    let finite = s.is_finite(x);
    let neg_underflow = s.mask_and(s.lt(x, c(-103.63)), finite);
    let max_r = c(127.0);
    let r = s.round_ties_even(s.mul(x, c(std::f32::consts::LOG2_E)));
    let big = s.gt(r, max_r);
    let r_safe = s.select(big, max_r, r);
    let excess = s.select(big, s.sub(r, max_r), s.zero());
    let scale = pow2n(s, excess);
    let y = s.mul_neg_add(r, c(0.693_359_4), x);
    let y = s.mul_neg_add(r, c(-2.121_944_4e-4), y);
    let y2 = s.mul(y, y);
    let y4 = s.mul(y2, y2);
    let (p0, p1, p2) = (c(1.0 / 2.0), c(1.0 / 6.0), c(1.0 / 24.0));
    let (p3, p4, p5) = (c(1.0 / 120.0), c(1.0 / 720.0), c(1.0 / 5040.0));
    let z = s.mul_add(
        s.mul_add(p3, y, p2),
        y2,
        s.mul_add(s.mul_add(p5, y, p4), y4, s.mul_add(p1, y, p0)),
    );
    let z = s.mul_add(z, y2, y);
    let n2 = pow2n(s, r_safe);
    let z = s.mul(s.mul(s.add(z, c(1.0)), scale), n2);
    let nan = s.is_nan(x);
    let mut result = s.select(nan, c(f32::from_bits(0x7FC0_0101)), z);
    result = s.select(
        s.mask_and(s.gt(x, c(88.723)), finite),
        c(f32::INFINITY),
        result,
    );
    result = s.select(neg_underflow, s.zero(), result);
    let infinite = s.mask_and(s.mask_not(finite), s.mask_not(nan));
    let negative = s.is_sign_negative(x);
    result = s.select(
        s.mask_and(infinite, s.mask_not(negative)),
        c(f32::INFINITY),
        result,
    );
    s.select(s.mask_and(infinite, negative), s.zero(), result)
}

/// `2^n` for integral `n` (subnormal below -126, 0 below -149).
#[inline(always)]
fn pow2n<S: Simd>(s: S, n: S::F32) -> S::F32 {
    let normal = s.shl23(s.add(n, s.splat(127.0 + 8_388_608.0)));
    let sub = s.mask_bits(s.lt(n, s.splat(-126.0)));
    if sub == 0 {
        return normal;
    }
    // Rare (inputs below -87): lane by lane, as `wide` does it.
    let (ns, mut out) = (s.to_array(n), s.to_array(normal));
    for (o, &v) in out.iter_mut().zip(&ns) {
        if v < -126.0 {
            *o = if v >= -149.0 {
                f32::from_bits(1 << ((v + 149.0) as i32))
            } else {
                0.0
            };
        }
    }
    s.load_array(&out)
}

/// The portable level: plain loops over sixteen lanes, for any CPU.
#[derive(Debug, Clone, Copy)]
pub struct Portable(());

impl Portable {
    /// The portable token (every CPU runs it).
    pub fn new() -> Self {
        Portable(())
    }
}

impl Default for Portable {
    fn default() -> Self {
        Self::new()
    }
}

#[inline(always)]
fn lanes<T: Copy, U>(a: [T; 16], f: impl Fn(T) -> U) -> [U; 16] {
    a.map(f)
}

#[inline(always)]
fn lanes2<T: Copy, U>(a: [T; 16], b: [T; 16], f: impl Fn(T, T) -> U) -> [U; 16] {
    std::array::from_fn(|i| f(a[i], b[i]))
}

impl Simd for Portable {
    const LEVEL: Level = Level::Portable;
    const MR: usize = 4;
    const NARROW_ROWS: usize = 4;
    const GRAD_COLUMNS: usize = 5;
    type F32 = [f32; 16];
    type Mask = [bool; 16];

    #[inline(always)]
    fn splat(self, v: f32) -> [f32; 16] {
        [v; 16]
    }
    #[inline(always)]
    fn load_array(self, a: &[f32; 16]) -> [f32; 16] {
        *a
    }
    #[inline(always)]
    fn to_array(self, v: [f32; 16]) -> [f32; 16] {
        v
    }
    #[inline(always)]
    fn add(self, a: [f32; 16], b: [f32; 16]) -> [f32; 16] {
        lanes2(a, b, |a, b| a + b)
    }
    #[inline(always)]
    fn sub(self, a: [f32; 16], b: [f32; 16]) -> [f32; 16] {
        lanes2(a, b, |a, b| a - b)
    }
    #[inline(always)]
    fn mul(self, a: [f32; 16], b: [f32; 16]) -> [f32; 16] {
        lanes2(a, b, |a, b| a * b)
    }
    #[inline(always)]
    fn mul_add(self, a: [f32; 16], b: [f32; 16], c: [f32; 16]) -> [f32; 16] {
        std::array::from_fn(|i| {
            if PORTABLE_FUSES {
                a[i].mul_add(b[i], c[i])
            } else {
                a[i] * b[i] + c[i]
            }
        })
    }
    #[inline(always)]
    fn mul_add_scalar(self, a: f32, b: f32, c: f32) -> f32 {
        if PORTABLE_FUSES {
            a.mul_add(b, c)
        } else {
            a * b + c
        }
    }
    #[inline(always)]
    fn mul_neg_add(self, a: [f32; 16], b: [f32; 16], c: [f32; 16]) -> [f32; 16] {
        std::array::from_fn(|i| {
            if PORTABLE_FUSES {
                (-a[i]).mul_add(b[i], c[i])
            } else {
                c[i] - a[i] * b[i]
            }
        })
    }
    #[inline(always)]
    fn max(self, a: [f32; 16], b: [f32; 16]) -> [f32; 16] {
        lanes2(a, b, |a, b| if b.is_nan() || a > b { a } else { b })
    }
    #[inline(always)]
    fn and(self, a: [f32; 16], b: [f32; 16]) -> [f32; 16] {
        lanes2(a, b, |a, b| f32::from_bits(a.to_bits() & b.to_bits()))
    }
    #[inline(always)]
    fn round_ties_even(self, v: [f32; 16]) -> [f32; 16] {
        lanes(v, f32::round_ties_even)
    }
    #[inline(always)]
    fn shl23(self, v: [f32; 16]) -> [f32; 16] {
        lanes(v, |v| f32::from_bits(v.to_bits() << 23))
    }
    #[inline(always)]
    fn gt(self, a: [f32; 16], b: [f32; 16]) -> [bool; 16] {
        lanes2(a, b, |a, b| a > b)
    }
    #[inline(always)]
    fn lt(self, a: [f32; 16], b: [f32; 16]) -> [bool; 16] {
        lanes2(a, b, |a, b| a < b)
    }
    #[inline(always)]
    fn is_nan(self, v: [f32; 16]) -> [bool; 16] {
        lanes(v, f32::is_nan)
    }
    #[inline(always)]
    fn is_finite(self, v: [f32; 16]) -> [bool; 16] {
        lanes(v, f32::is_finite)
    }
    #[inline(always)]
    fn is_sign_negative(self, v: [f32; 16]) -> [bool; 16] {
        lanes(v, f32::is_sign_negative)
    }
    #[inline(always)]
    fn mask_and(self, a: [bool; 16], b: [bool; 16]) -> [bool; 16] {
        lanes2(a, b, |a, b| a & b)
    }
    #[inline(always)]
    fn mask_not(self, a: [bool; 16]) -> [bool; 16] {
        lanes(a, |a| !a)
    }
    #[inline(always)]
    fn mask_bits(self, m: [bool; 16]) -> u32 {
        m.iter()
            .enumerate()
            .fold(0, |bits, (i, &b)| bits | u32::from(b) << i)
    }
    #[inline(always)]
    fn select(self, m: [bool; 16], a: [f32; 16], b: [f32; 16]) -> [f32; 16] {
        std::array::from_fn(|i| if m[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    fn u8_to_f32(self, bytes: &[u8; 16]) -> [f32; 16] {
        bytes.map(f32::from)
    }
    #[inline(always)]
    fn nonzero_bytes32(self, bytes: &[u8; 32]) -> u32 {
        bytes
            .chunks_exact(8)
            .enumerate()
            .fold(0, |bits, (i, word)| {
                let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
                bits | super::nonzero_bytes(word) << (8 * i)
            })
    }
    #[inline(always)]
    fn nonzero_words8<const R: usize>(self, rows: &[&[u8]; R], at: usize) -> u32 {
        let mut any = [0u32; 8];
        for row in rows {
            let bytes = &row[at..at + 32];
            for (a, word) in any.iter_mut().zip(bytes.chunks_exact(4)) {
                *a |= u32::from_ne_bytes(word.try_into().expect("4 bytes"));
            }
        }
        any.iter()
            .enumerate()
            .fold(0, |bits, (i, &w)| bits | u32::from(w != 0) << i)
    }
    #[inline(always)]
    fn dot_i16_i8(self, x: &[i16], q: &[i8]) -> i32 {
        assert_eq!(x.len(), q.len(), "dot product of unequal lengths");
        let mut acc = [0i32; 16];
        for (xc, qc) in x.chunks_exact(16).zip(q.chunks_exact(16)) {
            for ((a, &x), &q) in acc.iter_mut().zip(xc).zip(qc) {
                *a += i32::from(x) * i32::from(q);
            }
        }
        acc.iter().sum()
    }
    #[inline(always)]
    fn transpose8(self, m: &[[f32; 8]; 8]) -> [[f32; 8]; 8] {
        std::array::from_fn(|j| std::array::from_fn(|i| m[i][j]))
    }
}

/// The AVX2 + FMA level.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub struct Avx2(());

#[cfg(target_arch = "x86_64")]
impl Avx2 {
    /// The token, if this CPU runs AVX2 and FMA.
    pub fn new() -> Option<Self> {
        Level::Avx2.is_supported().then_some(Avx2(()))
    }
}

/// The AVX-512 level (F, BW, VL, DQ, with AVX2 and FMA).
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub struct Avx512(());

#[cfg(target_arch = "x86_64")]
impl Avx512 {
    /// The token, if this CPU runs the AVX-512 level.
    pub fn new() -> Option<Self> {
        Level::Avx512.is_supported().then_some(Avx512(()))
    }
}

/// Applies a 256-bit intrinsic to both halves of an AVX2 vector of sixteen.
#[cfg(target_arch = "x86_64")]
macro_rules! halves {
    ($f:ident($($v:expr),*)) => {
        // SAFETY: an `Avx2` token exists (it is `self` of the calling method), so the CPU
        // has AVX2 and FMA, all these intrinsics need.
        unsafe { [$f($($v[0]),*), $f($($v[1]),*)] }
    };
}

/// Writes a 256-bit 8x8 transpose of the rows `r` (AVX), shared by both x86 levels.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn transpose8_avx(m: &[[f32; 8]; 8]) -> [[f32; 8]; 8] {
    let mut out = [[0.0f32; 8]; 8];
    // SAFETY: called only from methods of the `Avx2` and `Avx512` tokens, which exist only
    // where the CPU has AVX; loads and stores are of whole `[f32; 8]` rows.
    unsafe {
        let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(m[i].as_ptr()));
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let rows = [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ];
        for (o, row) in out.iter_mut().zip(rows) {
            _mm256_storeu_ps(o.as_mut_ptr(), row);
        }
    }
    out
}

/// [`Simd::nonzero_words8`] with AVX2 integer compares.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn nonzero_words8_avx2<const R: usize>(rows: &[&[u8]; R], at: usize) -> u32 {
    // SAFETY: called only from methods of tokens that exist where the CPU has AVX2; each
    // load reads the 32 bytes `row[at..at + 32]`, bounds-checked by the slice.
    unsafe {
        let mut any = _mm256_setzero_si256();
        for row in rows {
            let bytes = &row[at..at + 32];
            any = _mm256_or_si256(any, _mm256_loadu_si256(bytes.as_ptr().cast()));
        }
        let zero = _mm256_cmpeq_epi32(any, _mm256_setzero_si256());
        !(_mm256_movemask_ps(_mm256_castsi256_ps(zero)) as u32) & 0xff
    }
}

/// [`Simd::nonzero_bytes32`] with AVX2 integer compares.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn nonzero_bytes32_avx2(bytes: &[u8; 32]) -> u32 {
    // SAFETY: called only from methods of tokens that exist where the CPU has AVX2; the
    // load reads the 32 bytes of the array.
    unsafe {
        let v = _mm256_loadu_si256(bytes.as_ptr().cast());
        !(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_setzero_si256())) as u32)
    }
}

#[cfg(target_arch = "x86_64")]
impl Simd for Avx2 {
    const LEVEL: Level = Level::Avx2;
    const MR: usize = 4;
    const NARROW_ROWS: usize = 4;
    const GRAD_COLUMNS: usize = 5;
    type F32 = [__m256; 2];
    type Mask = [__m256; 2];

    #[inline(always)]
    fn splat(self, v: f32) -> Self::F32 {
        // SAFETY: the token exists, so the CPU has AVX.
        let v = unsafe { _mm256_set1_ps(v) };
        [v, v]
    }
    #[inline(always)]
    fn load_array(self, a: &[f32; 16]) -> Self::F32 {
        // SAFETY: the token exists, so the CPU has AVX; both loads lie inside `a`.
        unsafe {
            [
                _mm256_loadu_ps(a.as_ptr()),
                _mm256_loadu_ps(a.as_ptr().add(8)),
            ]
        }
    }
    #[inline(always)]
    fn to_array(self, v: Self::F32) -> [f32; 16] {
        let mut out = [0.0; 16];
        // SAFETY: the token exists, so the CPU has AVX; both stores lie inside `out`.
        unsafe {
            _mm256_storeu_ps(out.as_mut_ptr(), v[0]);
            _mm256_storeu_ps(out.as_mut_ptr().add(8), v[1]);
        }
        out
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> Self::F32 {
        let s = &s[..16];
        // SAFETY: the token exists, so the CPU has AVX; `s` holds the sixteen values read.
        unsafe {
            [
                _mm256_loadu_ps(s.as_ptr()),
                _mm256_loadu_ps(s.as_ptr().add(8)),
            ]
        }
    }
    #[inline(always)]
    fn store(self, v: Self::F32, out: &mut [f32]) {
        let out = &mut out[..16];
        // SAFETY: the token exists, so the CPU has AVX; `out` holds the sixteen written.
        unsafe {
            _mm256_storeu_ps(out.as_mut_ptr(), v[0]);
            _mm256_storeu_ps(out.as_mut_ptr().add(8), v[1]);
        }
    }
    #[inline(always)]
    fn add(self, a: Self::F32, b: Self::F32) -> Self::F32 {
        halves!(_mm256_add_ps(a, b))
    }
    #[inline(always)]
    fn sub(self, a: Self::F32, b: Self::F32) -> Self::F32 {
        halves!(_mm256_sub_ps(a, b))
    }
    #[inline(always)]
    fn mul(self, a: Self::F32, b: Self::F32) -> Self::F32 {
        halves!(_mm256_mul_ps(a, b))
    }
    #[inline(always)]
    fn mul_add(self, a: Self::F32, b: Self::F32, c: Self::F32) -> Self::F32 {
        halves!(_mm256_fmadd_ps(a, b, c))
    }
    #[inline(always)]
    fn mul_neg_add(self, a: Self::F32, b: Self::F32, c: Self::F32) -> Self::F32 {
        halves!(_mm256_fnmadd_ps(a, b, c))
    }
    #[inline(always)]
    fn max(self, a: Self::F32, b: Self::F32) -> Self::F32 {
        // `vmaxps` gives its second operand when either is NaN; a NaN `b` gives `a`.
        let m = halves!(_mm256_max_ps(a, b));
        self.select(self.is_nan(b), a, m)
    }
    #[inline(always)]
    fn and(self, a: Self::F32, b: Self::F32) -> Self::F32 {
        halves!(_mm256_and_ps(a, b))
    }
    #[inline(always)]
    fn round_ties_even(self, v: Self::F32) -> Self::F32 {
        const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
        // SAFETY: the token exists, so the CPU has AVX.
        unsafe {
            [
                _mm256_round_ps::<NEAREST>(v[0]),
                _mm256_round_ps::<NEAREST>(v[1]),
            ]
        }
    }
    #[inline(always)]
    fn shl23(self, v: Self::F32) -> Self::F32 {
        // SAFETY: the token exists, so the CPU has AVX2.
        let shl =
            |v| unsafe { _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_castps_si256(v))) };
        [shl(v[0]), shl(v[1])]
    }
    #[inline(always)]
    fn gt(self, a: Self::F32, b: Self::F32) -> Self::Mask {
        // SAFETY: the token exists, so the CPU has AVX.
        unsafe {
            [
                _mm256_cmp_ps::<_CMP_GT_OQ>(a[0], b[0]),
                _mm256_cmp_ps::<_CMP_GT_OQ>(a[1], b[1]),
            ]
        }
    }
    #[inline(always)]
    fn lt(self, a: Self::F32, b: Self::F32) -> Self::Mask {
        // SAFETY: the token exists, so the CPU has AVX.
        unsafe {
            [
                _mm256_cmp_ps::<_CMP_LT_OQ>(a[0], b[0]),
                _mm256_cmp_ps::<_CMP_LT_OQ>(a[1], b[1]),
            ]
        }
    }
    #[inline(always)]
    fn is_nan(self, v: Self::F32) -> Self::Mask {
        // SAFETY: the token exists, so the CPU has AVX.
        unsafe {
            [
                _mm256_cmp_ps::<_CMP_UNORD_Q>(v[0], v[0]),
                _mm256_cmp_ps::<_CMP_UNORD_Q>(v[1], v[1]),
            ]
        }
    }
    #[inline(always)]
    fn is_finite(self, v: Self::F32) -> Self::Mask {
        // |v| < inf is false for infinities and NaN alike.
        let abs = self.and(v, self.splat(f32::from_bits(0x7fff_ffff)));
        self.lt(abs, self.splat(f32::INFINITY))
    }
    #[inline(always)]
    fn is_sign_negative(self, v: Self::F32) -> Self::Mask {
        // SAFETY: the token exists, so the CPU has AVX2.
        let f = |v| unsafe { _mm256_castsi256_ps(_mm256_srai_epi32::<31>(_mm256_castps_si256(v))) };
        [f(v[0]), f(v[1])]
    }
    #[inline(always)]
    fn mask_and(self, a: Self::Mask, b: Self::Mask) -> Self::Mask {
        halves!(_mm256_and_ps(a, b))
    }
    #[inline(always)]
    fn mask_not(self, a: Self::Mask) -> Self::Mask {
        // SAFETY: the token exists, so the CPU has AVX.
        let ones = unsafe { _mm256_castsi256_ps(_mm256_set1_epi32(-1)) };
        let ones = [ones, ones];
        halves!(_mm256_xor_ps(a, ones))
    }
    #[inline(always)]
    fn mask_bits(self, m: Self::Mask) -> u32 {
        // SAFETY: the token exists, so the CPU has AVX.
        unsafe { _mm256_movemask_ps(m[0]) as u32 | (_mm256_movemask_ps(m[1]) as u32) << 8 }
    }
    #[inline(always)]
    fn select(self, m: Self::Mask, a: Self::F32, b: Self::F32) -> Self::F32 {
        halves!(_mm256_blendv_ps(b, a, m))
    }
    #[inline(always)]
    fn u8_to_f32(self, bytes: &[u8; 16]) -> Self::F32 {
        // SAFETY: the token exists, so the CPU has AVX2; the load reads the array's 16 bytes.
        unsafe {
            let v = _mm_loadu_si128(bytes.as_ptr().cast());
            [
                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)),
                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(v))),
            ]
        }
    }
    #[inline(always)]
    fn nonzero_bytes32(self, bytes: &[u8; 32]) -> u32 {
        nonzero_bytes32_avx2(bytes)
    }
    #[inline(always)]
    fn nonzero_words8<const R: usize>(self, rows: &[&[u8]; R], at: usize) -> u32 {
        nonzero_words8_avx2(rows, at)
    }
    #[inline(always)]
    fn dot_i16_i8(self, x: &[i16], q: &[i8]) -> i32 {
        assert_eq!(x.len(), q.len(), "dot product of unequal lengths");
        // SAFETY: the token exists, so the CPU has AVX2; each load reads a 16-element
        // chunk (32 bytes of x, 16 of q) that `chunks_exact` bounds.
        unsafe {
            let mut acc = [_mm256_setzero_si256(); 2];
            for (xc, qc) in x.chunks_exact(32).zip(q.chunks_exact(32)) {
                for (h, a) in acc.iter_mut().enumerate() {
                    let xv = _mm256_loadu_si256(xc[16 * h..].as_ptr().cast());
                    let qv = _mm256_cvtepi8_epi16(_mm_loadu_si128(qc[16 * h..].as_ptr().cast()));
                    *a = _mm256_add_epi32(*a, _mm256_madd_epi16(xv, qv));
                }
            }
            let mut lanes = [0i32; 8];
            _mm256_storeu_si256(lanes.as_mut_ptr().cast(), _mm256_add_epi32(acc[0], acc[1]));
            lanes.iter().sum()
        }
    }
    #[inline(always)]
    fn transpose8(self, m: &[[f32; 8]; 8]) -> [[f32; 8]; 8] {
        transpose8_avx(m)
    }
}

#[cfg(target_arch = "x86_64")]
impl Simd for Avx512 {
    const LEVEL: Level = Level::Avx512;
    const MR: usize = 8;
    const NARROW_ROWS: usize = 8;
    const GRAD_COLUMNS: usize = 10;
    type F32 = __m512;
    type Mask = __mmask16;

    #[inline(always)]
    fn splat(self, v: f32) -> __m512 {
        // SAFETY: the token exists, so the CPU has AVX-512F.
        unsafe { _mm512_set1_ps(v) }
    }
    #[inline(always)]
    fn load_array(self, a: &[f32; 16]) -> __m512 {
        // SAFETY: the token exists, so the CPU has AVX-512F; the load reads the array.
        unsafe { _mm512_loadu_ps(a.as_ptr()) }
    }
    #[inline(always)]
    fn to_array(self, v: __m512) -> [f32; 16] {
        let mut out = [0.0; 16];
        // SAFETY: the token exists, so the CPU has AVX-512F; the store writes the array.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), v) };
        out
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> __m512 {
        let s = &s[..16];
        // SAFETY: the token exists, so the CPU has AVX-512F; `s` holds the sixteen read.
        unsafe { _mm512_loadu_ps(s.as_ptr()) }
    }
    #[inline(always)]
    fn load_partial(self, s: &[f32]) -> __m512 {
        assert!(s.len() <= 16, "a vector holds 16 lanes, not {}", s.len());
        let mask = ((1u32 << s.len()) - 1) as __mmask16;
        // SAFETY: the token exists, so the CPU has AVX-512F; the masked load touches only
        // the `s.len()` lanes inside `s` (masked-off lanes never fault).
        unsafe { _mm512_maskz_loadu_ps(mask, s.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, v: __m512, out: &mut [f32]) {
        let out = &mut out[..16];
        // SAFETY: the token exists, so the CPU has AVX-512F; `out` holds the sixteen written.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn store_partial(self, v: __m512, out: &mut [f32]) {
        assert!(
            out.len() <= 16,
            "a vector holds 16 lanes, not {}",
            out.len()
        );
        let mask = ((1u32 << out.len()) - 1) as __mmask16;
        // SAFETY: the token exists, so the CPU has AVX-512F; the masked store writes only
        // the `out.len()` lanes inside `out`.
        unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr(), mask, v) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token exists, so the CPU has AVX-512F.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token exists, so the CPU has AVX-512F.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token exists, so the CPU has AVX-512F.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: the token exists, so the CPU has AVX-512F.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn mul_neg_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: the token exists, so the CPU has AVX-512F.
        unsafe { _mm512_fnmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token exists, so the CPU has AVX-512F. `vmaxps` gives its second
        // operand when either is NaN; a NaN `b` gives `a`.
        let m = unsafe { _mm512_max_ps(a, b) };
        self.select(self.is_nan(b), a, m)
    }
    #[inline(always)]
    fn and(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token exists, so the CPU has AVX-512DQ.
        unsafe { _mm512_and_ps(a, b) }
    }
    #[inline(always)]
    fn round_ties_even(self, v: __m512) -> __m512 {
        // SAFETY: the token exists, so the CPU has AVX-512F.
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v) }
    }
    #[inline(always)]
    fn shl23(self, v: __m512) -> __m512 {
        // SAFETY: the token exists, so the CPU has AVX-512F.
        unsafe { _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_castps_si512(v))) }
    }
    #[inline(always)]
    fn gt(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: the token exists, so the CPU has AVX-512F.
        unsafe { _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b) }
    }
    #[inline(always)]
    fn lt(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: the token exists, so the CPU has AVX-512F.
        unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b) }
    }
    #[inline(always)]
    fn is_nan(self, v: __m512) -> __mmask16 {
        // SAFETY: the token exists, so the CPU has AVX-512F.
        unsafe { _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v) }
    }
    #[inline(always)]
    fn is_finite(self, v: __m512) -> __mmask16 {
        // |v| < inf is false for infinities and NaN alike.
        let abs = self.and(v, self.splat(f32::from_bits(0x7fff_ffff)));
        self.lt(abs, self.splat(f32::INFINITY))
    }
    #[inline(always)]
    fn is_sign_negative(self, v: __m512) -> __mmask16 {
        // SAFETY: the token exists, so the CPU has AVX-512F.
        unsafe { _mm512_movepi32_mask(_mm512_castps_si512(v)) }
    }
    #[inline(always)]
    fn mask_and(self, a: __mmask16, b: __mmask16) -> __mmask16 {
        a & b
    }
    #[inline(always)]
    fn mask_not(self, a: __mmask16) -> __mmask16 {
        !a
    }
    #[inline(always)]
    fn mask_bits(self, m: __mmask16) -> u32 {
        u32::from(m)
    }
    #[inline(always)]
    fn select(self, m: __mmask16, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token exists, so the CPU has AVX-512F.
        unsafe { _mm512_mask_blend_ps(m, b, a) }
    }
    #[inline(always)]
    fn u8_to_f32(self, bytes: &[u8; 16]) -> __m512 {
        // SAFETY: the token exists, so the CPU has AVX-512F; the load reads the array.
        unsafe { _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(bytes.as_ptr().cast()))) }
    }
    #[inline(always)]
    fn nonzero_bytes32(self, bytes: &[u8; 32]) -> u32 {
        nonzero_bytes32_avx2(bytes)
    }
    #[inline(always)]
    fn nonzero_words8<const R: usize>(self, rows: &[&[u8]; R], at: usize) -> u32 {
        nonzero_words8_avx2(rows, at)
    }
    #[inline(always)]
    fn dot_i16_i8(self, x: &[i16], q: &[i8]) -> i32 {
        assert_eq!(x.len(), q.len(), "dot product of unequal lengths");
        // SAFETY: the token exists, so the CPU has AVX-512F and BW; each load reads a
        // 32-element chunk (64 bytes of x, 32 of q) that `chunks_exact` bounds.
        unsafe {
            let mut acc = _mm512_setzero_si512();
            for (xc, qc) in x.chunks_exact(32).zip(q.chunks_exact(32)) {
                let xv = _mm512_loadu_si512(xc.as_ptr().cast());
                let qv = _mm512_cvtepi8_epi16(_mm256_loadu_si256(qc.as_ptr().cast()));
                acc = _mm512_add_epi32(acc, _mm512_madd_epi16(xv, qv));
            }
            _mm512_reduce_add_epi32(acc)
        }
    }
    #[inline(always)]
    fn transpose8(self, m: &[[f32; 8]; 8]) -> [[f32; 8]; 8] {
        transpose8_avx(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few values of every kind the kernels meet, NaN and infinities included.
    fn awkward() -> [f32; 16] {
        [
            0.0,
            -0.0,
            1.5,
            -2.25,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-40,
            -90.0,
            -100.0,
            -120.0,
            88.0,
            89.0,
            0.5,
            -7.75,
            3.0e4,
        ]
    }

    struct Ops([f32; 16], [f32; 16]);

    impl SimdKernel for Ops {
        type Output = Vec<[f32; 16]>;
        #[inline(always)]
        fn run<S: Simd>(self, s: S) -> Self::Output {
            let (a, b) = (s.load_array(&self.0), s.load_array(&self.1));
            let gt = s.gt(a, b);
            vec![
                s.to_array(s.add(a, b)),
                s.to_array(s.mul(a, b)),
                s.to_array(s.max(a, b)),
                s.to_array(s.select(gt, a, b)),
                s.to_array(exp(s, a)),
                s.to_array(s.round_ties_even(a)),
                s.to_array(s.load_partial(&self.0[..5])),
            ]
        }
    }

    #[test]
    fn every_level_computes_the_same_lanes() {
        let a = awkward();
        let mut b = a;
        b.rotate_left(3);
        let want = Ops(a, b).run(Portable::new());
        for level in Level::supported() {
            let got = with_level(level, || dispatch(Ops(a, b)));
            for (g, w) in got.iter().zip(&want) {
                let (g, w) = (g.map(f32::to_bits), w.map(f32::to_bits));
                assert_eq!(g, w, "{level}");
            }
        }
        // Scalar meaning of the lanes.
        assert_eq!(want[2][4], b[4], "a NaN `a` gives `b`");
        assert_eq!(want[2][1], b[1].max(a[1]));
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&want[6][..5]), bits(&a[..5]));
        assert_eq!(want[6][5..], [0.0; 11]);
    }

    #[test]
    fn exp_is_close_to_std_and_exact_at_the_edges() {
        let xs: Vec<f32> = (-960..=976).map(|i| i as f32 * 0.09).collect();
        for chunk in xs.chunks_exact(16) {
            let x: [f32; 16] = chunk.try_into().unwrap();
            for level in Level::supported() {
                let e = with_level(level, || dispatch(ExpOf(x)));
                for (&v, &got) in x.iter().zip(&e) {
                    let want = v.exp();
                    let tolerance = 2.0 * f32::EPSILON * want + f32::from_bits(1);
                    assert!(
                        (got - want).abs() <= tolerance,
                        "{level}: exp({v}) = {got}, not {want}"
                    );
                }
            }
        }
        let edges = with_level(Level::Portable, || dispatch(ExpOf(awkward())));
        assert!(edges[4].is_nan());
        assert_eq!(edges[5], f32::INFINITY);
        assert_eq!(edges[6], 0.0);
        assert_eq!(edges[12], f32::INFINITY);
    }

    struct ExpOf([f32; 16]);

    impl SimdKernel for ExpOf {
        type Output = [f32; 16];
        #[inline(always)]
        fn run<S: Simd>(self, s: S) -> [f32; 16] {
            s.to_array(exp(s, s.load_array(&self.0)))
        }
    }

    struct Bytes([u8; 32], [i16; 64], [i8; 64]);

    impl SimdKernel for Bytes {
        type Output = (u32, [f32; 16], i32, u32, [[f32; 8]; 8]);
        #[inline(always)]
        fn run<S: Simd>(self, s: S) -> Self::Output {
            let m: [[f32; 8]; 8] =
                std::array::from_fn(|i| std::array::from_fn(|j| (8 * i + j) as f32));
            let rows = [&self.0[..], &self.0[..]];
            (
                s.nonzero_bytes32(&self.0),
                s.to_array(s.u8_to_f32(self.0[..16].try_into().unwrap())),
                s.dot_i16_i8(&self.1, &self.2),
                s.nonzero_words8(&rows, 0),
                s.transpose8(&m),
            )
        }
    }

    #[test]
    fn integer_operations_agree_on_every_level() {
        let mut bytes = [0u8; 32];
        for i in [0, 3, 9, 16, 17, 31] {
            bytes[i] = (i * 37 % 251) as u8 + 1;
        }
        let x: [i16; 64] = std::array::from_fn(|i| (i as i16 * 97 % 511) - 255);
        let q: [i8; 64] = std::array::from_fn(|i| (i as i32 * 53 % 255 - 127) as i8);
        let dot: i32 = x
            .iter()
            .zip(&q)
            .map(|(&a, &b)| i32::from(a) * i32::from(b))
            .sum();
        for level in Level::supported() {
            let (nz, f, d, words, t) = with_level(level, || dispatch(Bytes(bytes, x, q)));
            assert_eq!(
                nz,
                1 | 1 << 3 | 1 << 9 | 1 << 16 | 1 << 17 | 1 << 31,
                "{level}"
            );
            assert_eq!(f, std::array::from_fn(|i| f32::from(bytes[i])), "{level}");
            assert_eq!(d, dot, "{level}");
            assert_eq!(words, 0b1001_0101, "{level}");
            assert_eq!(t[2][5], 42.0, "{level}");
            assert_eq!(t[7][0], 7.0, "{level}");
        }
    }

    #[test]
    fn with_level_restores_the_previous_level() {
        let before = Level::current();
        with_level(Level::Portable, || {
            assert_eq!(Level::current(), Level::Portable);
            let best = Level::detected();
            with_level(best, || assert_eq!(Level::current(), best));
            assert_eq!(Level::current(), Level::Portable);
        });
        assert_eq!(Level::current(), before);
        assert!(describe().starts_with(Level::process().name()));
        assert_eq!(Level::supported().next(), Some(Level::Portable));
    }
}
