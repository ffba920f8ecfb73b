//! Products with a narrow side of at most 16 columns (the 10 classes), without packing.
//!
//! For `x[rows, k]·W[k, 10]` the blocked [`gemm`](mod@super::gemm) spends more time packing `x`
//! than multiplying: each input value meets only 10 weights. These kernels read the input
//! where it lies (u8 pixels as exact `v / 255`, or f32), with no packing and no transposes,
//! and each output is a plain left-to-right sum.
//!
//! - [`matmul`] holds a row of 10 outputs in the first lanes of a vector of sixteen (one AVX-512
//!   register, two AVX2 ones), reads each weight row as the sixteen values from its start,
//!   and broadcasts one input value at a time.
//! - [`matmul_tn`] (the weight gradient) runs its lanes along `k` instead, so all sixteen
//!   are busy, and transposes each 16-row block of the result in registers on the way out.
//!   That layout is more than twice as fast as two vectors of outputs per row
//!   (`benches/kernels.rs`). On pixels it skips the rows whose sixteen inputs are all
//!   zero, so a training step needs no f32 copy of its batch.

use super::gemm::KC;
use super::simd::{dispatch, Simd, SimdKernel};
use crate::pixels::PIXEL_TO_UNIT;

/// Narrowest width [`matmul`] takes ([`matmul_tn`] takes any width up to [`MAX_WIDTH`]).
pub const MIN_WIDTH: usize = 9;
/// Widest width these kernels take.
pub const MAX_WIDTH: usize = 16;

/// An input element: f32 as it is, or a u8 pixel read as `value / 255`.
pub trait Element: Copy + Send + Sync {
    /// The value as f32.
    fn unit(self) -> f32;
    /// The first sixteen values of `v` as f32 lanes.
    fn load16<S: Simd>(s: S, v: &[Self]) -> S::F32;
    /// Whether [`matmul`] skips groups of zero inputs (whose products add nothing).
    const SKIPS_ZEROS: bool;
    /// Whether [`matmul`] must multiply this group of four inputs: false only when all of
    /// them are zero. Asked only when [`Element::SKIPS_ZEROS`].
    fn any_nonzero4(_group: &[Self]) -> bool {
        true
    }
    /// Whether [`matmul_tn`] must multiply these sixteen inputs: false only when all of
    /// them are zero. Asked only when [`Element::SKIPS_ZEROS`].
    fn any_nonzero16(_group: &[Self]) -> bool {
        true
    }
    /// Bit `i` is set when group `i` of the eight groups of four inputs at `at` is not all
    /// zero in some row of `rows`. Asked only when [`Element::SKIPS_ZEROS`].
    #[inline(always)]
    fn live_groups8<S: Simd, const R: usize>(_s: S, _rows: &[&[Self]; R], _at: usize) -> u32 {
        0xff
    }
}

impl Element for f32 {
    #[inline(always)]
    fn unit(self) -> f32 {
        self
    }

    #[inline(always)]
    fn load16<S: Simd>(s: S, v: &[f32]) -> S::F32 {
        s.load(v)
    }

    /// No: a zero f32 input still meets its weight (`0·∞` is NaN, as in the dense product).
    /// Skipping zero groups of the training batch measured no faster: listing them costs
    /// about what the multiply-adds it saves cost.
    const SKIPS_ZEROS: bool = false;
}

impl Element for u8 {
    const SKIPS_ZEROS: bool = true;

    #[inline(always)]
    fn unit(self) -> f32 {
        PIXEL_TO_UNIT[usize::from(self)]
    }

    #[inline(always)]
    fn load16<S: Simd>(s: S, v: &[u8]) -> S::F32 {
        pixels_to_unit16(s, v)
    }

    #[inline(always)]
    fn any_nonzero4(group: &[u8]) -> bool {
        u32::from_ne_bytes(group[..4].try_into().expect("4 pixels")) != 0
    }

    #[inline(always)]
    fn any_nonzero16(group: &[u8]) -> bool {
        u128::from_ne_bytes(group[..16].try_into().expect("16 pixels")) != 0
    }

    /// The rows' 32 bytes ORed together, then one compare of eight u32 lanes with zero.
    #[inline(always)]
    fn live_groups8<S: Simd, const R: usize>(s: S, rows: &[&[u8]; R], at: usize) -> u32 {
        s.nonzero_words8(rows, at)
    }
}

// Rows [`matmul`] multiplies at a time ([`Simd::NARROW_ROWS`]), a vector of accumulators
// each: eight with AVX-512's 32 registers, four with AVX2's 16 (where a vector of sixteen
// is two). Measured on `[50, 784]·[784, 10]` over MNIST pixels (AMD Zen 4, seven
// interleaved runs, against the unchanged weight gradient's time, since the machine's
// speed drifts): 1.17 to 1.21 times the gradient's time with eight rows, 1.32 to 1.42 with
// four.
//
// Columns [`matmul_tn`] sums in one pass over the rows when at least this many are left
// ([`Simd::GRAD_COLUMNS`]): ten (the classes at once, each pixel converted once) with
// AVX-512's 32 registers, five with AVX2's 16.
/// Rows [`matmul_tn`] lists at a time when it skips zero inputs (more rows take several
/// lists, the sums carried on in registers).
const ROWS_PER_LIST: usize = 256;
/// Inputs per zero test in [`matmul`]'s row blocks.
const GROUP: usize = 4;
/// Groups [`matmul`] lists at a time (longer rows take several passes).
const GROUPS_PER_PASS: usize = 512;

/// `out[rows, n] = x[rows, k] · w[k, n]` for `9 <= n <= 16` (row-major, `out` overwritten).
pub fn matmul<E: Element>(rows: usize, k: usize, n: usize, x: &[E], w: &[f32], out: &mut [f32]) {
    checked_matmul(rows, k, n, x, w, out, k.max(1));
}

/// [`matmul`] on f32 activations, with each output summed as the blocked
/// [`gemm`](super::gemm::gemm) sums it: the products of each run of [`KC`] inputs from zero,
/// the runs added in order. Over a wide input (a hidden layer of a thousand units) one
/// chain of sums gathers the most rounding error; [`matmul`] keeps the chain, because a
/// model's first layer must give the bits of its pixels' unit values and of their listed
/// products ([`listed`](super::listed)).
pub fn matmul_blocked(rows: usize, k: usize, n: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
    checked_matmul(rows, k, n, x, w, out, KC);
}

/// [`matmul`] summing runs of `block` inputs from zero, after checking the shapes.
fn checked_matmul<E: Element>(
    rows: usize,
    k: usize,
    n: usize,
    x: &[E],
    w: &[f32],
    out: &mut [f32],
    block: usize,
) {
    assert!(
        (MIN_WIDTH..=MAX_WIDTH).contains(&n),
        "narrow kernels take 9 to 16 columns, not {n}"
    );
    assert!(x.len() >= rows * k, "x is smaller than {rows}x{k}");
    assert!(w.len() >= k * n, "w is smaller than {k}x{n}");
    assert!(out.len() >= rows * n, "out is smaller than {rows}x{n}");
    dispatch(Matmul {
        rows,
        k,
        n,
        x,
        w,
        out,
        block,
    });
}

/// [`matmul`]'s checked arguments, for [`dispatch`].
struct Matmul<'a, E> {
    rows: usize,
    k: usize,
    n: usize,
    x: &'a [E],
    w: &'a [f32],
    out: &'a mut [f32],
    /// Inputs summed from zero before being added to the outputs (all of them: one chain).
    block: usize,
}

impl<E: Element> SimdKernel for Matmul<'_, E> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        // A constant of the level: the branch not taken is never built.
        if S::NARROW_ROWS == 8 {
            self.blocks::<S, 8>(s)
        } else {
            self.blocks::<S, 4>(s)
        }
    }
}

impl<E: Element> Matmul<'_, E> {
    /// [`matmul`] in blocks of `R` rows.
    #[inline(always)]
    fn blocks<S: Simd, const R: usize>(self, s: S) {
        let Matmul {
            rows,
            k,
            n,
            x,
            w,
            out,
            block,
        } = self;
        let mut r = 0;
        while r + R <= rows {
            let xs: [&[E]; R] = std::array::from_fn(|i| &x[(r + i) * k..(r + i + 1) * k]);
            row_block(s, xs, k, n, block, w, &mut out[r * n..(r + R) * n]);
            r += R;
        }
        // Single rows (one image at a time) skip their zero groups too: with one
        // accumulator the sum is a chain of dependent multiply-adds, so every skipped one
        // counts.
        for r in r..rows {
            row_block(
                s,
                [&x[r * k..(r + 1) * k]],
                k,
                n,
                block,
                w,
                &mut out[r * n..(r + 1) * n],
            );
        }
    }
}

/// [`matmul`] for `R` rows, held in registers as `R` vectors.
#[inline(always)]
fn row_block<S: Simd, E: Element, const R: usize>(
    s: S,
    xs: [&[E]; R],
    k: usize,
    n: usize,
    block: usize,
    w: &[f32],
    out: &mut [f32],
) {
    let whole_groups = k / GROUP;
    let mut acc = [s.zero(); R];
    // A closure here was at times left a call of its own, the accumulators in memory.
    let products = |p0, acc: &mut _, per| products(s, &xs, w, n, p0, per, acc);
    if E::SKIPS_ZEROS {
        // Groups of GROUP inputs that are zero in all R rows add exactly nothing: list the
        // others (eight groups per test, without branches), then multiply the listed ones.
        // Eight slots of slack: each batch of eight groups writes all eight positions.
        let mut live = [0u16; GROUPS_PER_PASS + 8];
        for first in (0..whole_groups).step_by(GROUPS_PER_PASS) {
            let last = whole_groups.min(first + GROUPS_PER_PASS);
            let mut listed = 0;
            let mut g = first;
            while g + 8 <= last {
                let mask = E::live_groups8(s, &xs, g * GROUP);
                listed = super::list_set_bits(mask, (g - first) as u16, &mut live, listed);
                g += 8;
            }
            for g in g..last {
                live[listed] = (g - first) as u16;
                let group = |row: &&[E]| E::any_nonzero4(&row[g * GROUP..(g + 1) * GROUP]);
                listed += usize::from(xs.iter().any(group));
            }
            // Listed relative to the pass, so rows of any length fit in u16 entries.
            for &g in &live[..listed] {
                products((first + usize::from(g)) * GROUP, &mut acc, GROUP);
            }
        }
        products(whole_groups * GROUP, &mut acc, k - whole_groups * GROUP);
    } else {
        products(0, &mut acc, k.min(block));
        for p0 in (block..k).step_by(block) {
            let mut run = [s.zero(); R];
            products(p0, &mut run, block.min(k - p0));
            for (a, r) in acc.iter_mut().zip(run) {
                *a = s.add(*a, r);
            }
        }
    }
    for (&a, row) in acc.iter().zip(out.chunks_exact_mut(n)) {
        super::copy_short::<10>(row, &s.to_array(a));
    }
}

/// The products of inputs `p0..p0 + per` of the rows `xs` with their weight rows, added
/// to the rows' accumulators in order.
#[inline(always)]
fn products<S: Simd, E: Element, const R: usize>(
    s: S,
    xs: &[&[E]; R],
    w: &[f32],
    n: usize,
    p0: usize,
    per: usize,
    acc: &mut [S::F32; R],
) {
    let xg: [&[E]; R] = std::array::from_fn(|i| &xs[i][p0..p0 + per]);
    for (t, p) in (p0..p0 + per).enumerate() {
        let wrow = weight_row(s, w, p, n);
        for i in 0..R {
            acc[i] = s.mul_add(s.splat(xg[i][t].unit()), wrow, acc[i]);
        }
    }
}

/// Row `p` of `w[k, n]` in the first `n` lanes of a vector (the lanes past `n` hold the
/// next row's values, or zeros at the end of `w`).
#[inline(always)]
fn weight_row<S: Simd>(s: S, w: &[f32], p: usize, n: usize) -> S::F32 {
    match w.get(p * n..p * n + 16) {
        Some(lanes) => s.load(lanes),
        None => s.load_partial(&w[p * n..(p + 1) * n]),
    }
}

/// Sixteen pixels as `value / 255` in f32 lanes, rounded exactly as the division rounds.
///
/// `q = v·(1/255)` can be one ulp off; one Newton step on the remainder, computed exactly
/// by a fused multiply-add, moves it to the correctly rounded quotient (checked for all
/// 256 values in the tests). Three vector operations instead of a division or a table.
///
/// The Newton step needs the fused multiply-add: where the portable level does not fuse,
/// the sixteen come from the table instead.
#[inline(always)]
pub(crate) fn pixels_to_unit16<S: Simd>(s: S, bytes: &[u8]) -> S::F32 {
    let bytes: &[u8; 16] = bytes[..16].try_into().expect("16 pixels");
    if !S::LEVEL.fuses_mul_add() {
        return s.load_array(&bytes.map(|b| PIXEL_TO_UNIT[usize::from(b)]));
    }
    let v = s.u8_to_f32(bytes);
    let inv = s.splat(1.0 / 255.0);
    let q = s.mul(v, inv);
    let remainder = s.mul_neg_add(q, s.splat(255.0), v);
    s.mul_add(remainder, inv, q)
}

/// Converts u8 pixels to `value / 255` in f32 (the same values as
/// [`PIXEL_TO_UNIT`]), sixteen at a time.
pub fn pixels_to_unit(pixels: &[u8], out: &mut [f32]) {
    assert_eq!(pixels.len(), out.len(), "pixel and output lengths differ");
    struct ToUnit<'a>(&'a [u8], &'a mut [f32]);
    impl SimdKernel for ToUnit<'_> {
        type Output = ();
        #[inline(always)]
        fn run<S: Simd>(self, s: S) {
            let mut oc = self.1.chunks_exact_mut(16);
            let mut pc = self.0.chunks_exact(16);
            for (o, p) in (&mut oc).zip(&mut pc) {
                s.store(pixels_to_unit16(s, p), o);
            }
            for (o, &p) in oc.into_remainder().iter_mut().zip(pc.remainder()) {
                *o = p.unit();
            }
        }
    }
    dispatch(ToUnit(pixels, out));
}

/// `dw[k, n] = x[rows, k]ᵀ · d[rows, n]` for `n <= 16` (row-major, `dw` overwritten): the
/// weight gradient of a narrow layer. The lanes run along `k`, sixteen values of `k` by up
/// to ten columns at a time (five with AVX2 and portable), so every lane is busy; each block is
/// transposed into `dw`'s layout in registers on the way out. Each output is summed over
/// the rows in order.
///
/// On u8 pixels, rows whose sixteen inputs of a block are all zero are left out of that
/// block's sums, to which they add exactly nothing (for finite `d`): the results are bit
/// for bit those of the same pixels as f32.
pub fn matmul_tn<E: Element>(rows: usize, k: usize, n: usize, x: &[E], d: &[f32], dw: &mut [f32]) {
    assert!(
        n <= MAX_WIDTH,
        "narrow kernels take at most 16 columns, not {n}"
    );
    assert!(x.len() >= rows * k, "x is smaller than {rows}x{k}");
    assert!(d.len() >= rows * n, "d is smaller than {rows}x{n}");
    assert!(dw.len() >= k * n, "dw is smaller than {k}x{n}");
    dispatch(MatmulTn {
        rows,
        k,
        n,
        x: &x[..rows * k],
        d: &d[..rows * n],
        dw,
    });
}

/// [`matmul_tn`]'s checked arguments, for [`dispatch`].
struct MatmulTn<'a, E> {
    rows: usize,
    k: usize,
    n: usize,
    x: &'a [E],
    d: &'a [f32],
    dw: &'a mut [f32],
}

impl<E: Element> SimdKernel for MatmulTn<'_, E> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let MatmulTn {
            rows,
            k,
            n,
            x,
            d,
            dw,
        } = self;
        // Rows listed at a time, when zero inputs are skipped.
        let mut live = [0u16; ROWS_PER_LIST];
        let mut p = 0;
        while p + 16 <= k {
            // block[j][i] = dw[p + i, j], summed over the rows in order.
            let mut block = [[0.0f32; 16]; MAX_WIDTH];
            if E::SKIPS_ZEROS {
                // Rows whose sixteen inputs here are all zero add exactly nothing: list the
                // others, then multiply those (for MNIST pixels, about 58% of them).
                for first in (0..rows).step_by(ROWS_PER_LIST) {
                    let last = rows.min(first + ROWS_PER_LIST);
                    let mut listed = 0;
                    for r in first..last {
                        live[listed] = (r - first) as u16;
                        listed += usize::from(E::any_nonzero16(&x[r * k + p..r * k + p + 16]));
                    }
                    let live_rows = live[..listed].iter().map(|&r| {
                        let r = first + usize::from(r);
                        (&x[r * k..(r + 1) * k], &d[r * n..(r + 1) * n])
                    });
                    grad_columns(s, live_rows, n, p, &mut block);
                }
            } else {
                grad_columns(
                    s,
                    x.chunks_exact(k).zip(d.chunks_exact(n)),
                    n,
                    p,
                    &mut block,
                );
            }
            store_transposed(s, &block, n, &mut dw[p * n..(p + 16) * n]);
            p += 16;
        }
        for p in p..k {
            for j in 0..n {
                let mut sum = 0.0f32;
                for (xr, dr) in x.chunks_exact(k).zip(d.chunks_exact(n)) {
                    sum = s.mul_add_scalar(dr[j], xr[p].unit(), sum);
                }
                dw[p * n + j] = sum;
            }
        }
    }
}

/// Adds the products of `rows` (pairs of an input row and its output gradient row) to all
/// `n` columns of a 16-row block of [`matmul_tn`], as many columns at a time as the
/// registers hold.
#[inline(always)]
fn grad_columns<'a, S: Simd, E: Element + 'a>(
    s: S,
    rows: impl Iterator<Item = (&'a [E], &'a [f32])> + Clone,
    n: usize,
    p: usize,
    block: &mut [[f32; 16]; MAX_WIDTH],
) {
    let mut j = 0;
    while j < n {
        let width = if n - j >= 10 {
            S::GRAD_COLUMNS
        } else {
            (n - j).min(5)
        };
        let rows = rows.clone();
        match width {
            10 => grad_block::<S, E, 10>(s, rows, p, j, block),
            5 => grad_block::<S, E, 5>(s, rows, p, j, block),
            4 => grad_block::<S, E, 4>(s, rows, p, j, block),
            3 => grad_block::<S, E, 3>(s, rows, p, j, block),
            2 => grad_block::<S, E, 2>(s, rows, p, j, block),
            _ => grad_block::<S, E, 1>(s, rows, p, j, block),
        }
        j += width;
    }
}

/// Columns `j0..j0 + J` of a 16-row block of [`matmul_tn`]:
/// `block[j][i] += Σ_r d[r, j]·x[r, p + i]`, continuing each column's chain.
#[inline(always)]
fn grad_block<'a, S: Simd, E: Element + 'a, const J: usize>(
    s: S,
    rows: impl Iterator<Item = (&'a [E], &'a [f32])>,
    p: usize,
    j0: usize,
    block: &mut [[f32; 16]; MAX_WIDTH],
) {
    let mut acc: [S::F32; J] = std::array::from_fn(|t| s.load_array(&block[j0 + t]));
    for (xr, dr) in rows {
        let xs = E::load16(s, &xr[p..p + 16]);
        let dr = &dr[j0..j0 + J];
        for t in 0..J {
            acc[t] = s.mul_add(s.splat(dr[t]), xs, acc[t]);
        }
    }
    for (t, &a) in acc.iter().enumerate() {
        block[j0 + t] = s.to_array(a);
    }
}

/// Writes `block[j][i]` to `out[i * n + j]` for 16 rows `i`: 8x8 register transposes for
/// the first eight columns, single values for the rest.
#[inline(always)]
fn store_transposed<S: Simd>(s: S, block: &[[f32; 16]; MAX_WIDTH], n: usize, out: &mut [f32]) {
    let wide = if n >= 8 { 8 } else { 0 };
    for half in [0, 8] {
        if wide == 8 {
            let columns: [[f32; 8]; 8] =
                std::array::from_fn(|j| block[j][half..half + 8].try_into().expect("8 values"));
            for (i, row) in s.transpose8(&columns).iter().enumerate() {
                out[(half + i) * n..][..8].copy_from_slice(row);
            }
        }
        for i in half..half + 8 {
            for j in wide..n {
                out[i * n + j] = block[j][i];
            }
        }
    }
}
