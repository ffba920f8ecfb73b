//! Products with a narrow side of at most 16 columns (the 10 classes), without packing.
//!
//! For `x[rows, k]·W[k, 10]` the blocked [`gemm`](mod@super::gemm) spends more time packing `x`
//! than multiplying: each input value meets only 10 weights. These kernels read the input
//! where it lies (u8 pixels as exact `v / 255`, or f32), with no packing and no transposes,
//! and each output is a plain left-to-right sum.
//!
//! - [`matmul`] holds a row of 10 outputs in the first lanes of an f32x16 (one AVX-512
//!   register, two AVX2 ones), reads each weight row as the sixteen values from its start,
//!   and broadcasts one input value at a time.
//! - [`matmul_tn`] (the weight gradient) runs its lanes along `k` instead, so all sixteen
//!   are busy, and transposes each 16-row block of the result in registers on the way out:
//!   less than half the time of the two-vector layout on `[100, 784]ᵀ·[100, 10]`
//!   (`benches/kernels.rs`). On pixels it skips the rows whose sixteen inputs are all
//!   zero, so a training step needs no f32 copy of its batch.

use wide::{f32x16, f32x8, i16x16, i32x16, u32x8, u8x16};

use crate::data::batch::PIXEL_TO_UNIT;

/// Narrowest width [`matmul`] takes ([`matmul_tn`] takes any width up to [`MAX_WIDTH`]).
pub const MIN_WIDTH: usize = 9;
/// Widest width these kernels take.
pub const MAX_WIDTH: usize = 16;

/// An input element: f32 as it is, or a u8 pixel read as `value / 255`.
pub trait Element: Copy + Send + Sync {
    /// The value as f32.
    fn unit(self) -> f32;
    /// The first sixteen values of `s` as f32 lanes.
    fn load16(s: &[Self]) -> f32x16;
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
    fn live_groups8<const R: usize>(_rows: &[&[Self]; R], _at: usize) -> u32 {
        0xff
    }
}

impl Element for f32 {
    #[inline(always)]
    fn unit(self) -> f32 {
        self
    }

    #[inline(always)]
    fn load16(s: &[f32]) -> f32x16 {
        f32x16::new(s[..16].try_into().expect("16 lanes"))
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
    fn load16(s: &[u8]) -> f32x16 {
        pixels_to_unit16(s)
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
    fn live_groups8<const R: usize>(rows: &[&[u8]; R], at: usize) -> u32 {
        let lanes = |row: &[u8]| {
            let bytes = &row[at..at + 32];
            u32x8::new(std::array::from_fn(|i| {
                u32::from_ne_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 pixels"))
            }))
        };
        let any = rows.iter().fold(u32x8::ZERO, |acc, row| acc | lanes(row));
        !any.simd_eq(u32x8::ZERO).to_bitmask() & 0xff
    }
}

/// Rows [`matmul`] multiplies at a time, a vector of accumulators each: eight with
/// AVX-512's 32 registers, four with AVX2's 16 (where a vector of sixteen is two).
/// Eight rows load each weight row once for eight images, which measured about a tenth
/// faster than four on MNIST pixels where the registers allow it.
const ROWS_PER_BLOCK: usize = if cfg!(target_feature = "avx512f") {
    8
} else {
    4
};
/// Columns [`matmul_tn`] sums in one pass over the rows when at least this many are left:
/// ten (the classes at once, each pixel converted once) with AVX-512's 32 registers, five
/// with AVX2's 16 (where a vector of sixteen is two).
const GRAD_COLUMNS: usize = if cfg!(target_feature = "avx512f") {
    10
} else {
    5
};
/// Rows [`matmul_tn`] lists at a time when it skips zero inputs (more rows take several
/// lists, the sums carried on in registers).
const ROWS_PER_LIST: usize = 256;
/// Inputs per zero test in [`matmul`]'s row blocks.
const GROUP: usize = 4;
/// Groups [`matmul`] lists at a time (longer rows take several passes).
const GROUPS_PER_PASS: usize = 512;

#[inline(always)]
fn load(s: &[f32]) -> f32x8 {
    f32x8::new(s[..8].try_into().expect("8 lanes"))
}

/// `out[rows, n] = x[rows, k] · w[k, n]` for `9 <= n <= 16` (row-major, `out` overwritten).
pub fn matmul<E: Element>(rows: usize, k: usize, n: usize, x: &[E], w: &[f32], out: &mut [f32]) {
    assert!(
        (MIN_WIDTH..=MAX_WIDTH).contains(&n),
        "narrow kernels take 9 to 16 columns, not {n}"
    );
    assert!(x.len() >= rows * k, "x is smaller than {rows}x{k}");
    assert!(w.len() >= k * n, "w is smaller than {k}x{n}");
    assert!(out.len() >= rows * n, "out is smaller than {rows}x{n}");
    const R: usize = ROWS_PER_BLOCK;
    let mut r = 0;
    while r + R <= rows {
        let xs: [&[E]; R] = std::array::from_fn(|i| &x[(r + i) * k..(r + i + 1) * k]);
        row_block(xs, k, n, w, &mut out[r * n..(r + R) * n]);
        r += R;
    }
    // Single rows (one image at a time) skip their zero groups too: with one accumulator
    // the sum is a chain of dependent multiply-adds, so every skipped one counts.
    for r in r..rows {
        row_block(
            [&x[r * k..(r + 1) * k]],
            k,
            n,
            w,
            &mut out[r * n..(r + 1) * n],
        );
    }
}

/// [`matmul`] for `R` rows, held in registers as `R` vectors.
#[inline(always)]
fn row_block<E: Element, const R: usize>(
    xs: [&[E]; R],
    k: usize,
    n: usize,
    w: &[f32],
    out: &mut [f32],
) {
    let whole_groups = k / GROUP;
    let mut acc = [f32x16::ZERO; R];
    // A closure here was at times left a call of its own, the accumulators in memory.
    let products = |p0, acc: &mut _, per| products(&xs, w, n, p0, per, acc);
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
                let mask = E::live_groups8(&xs, g * GROUP);
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
        products(0, &mut acc, k);
    }
    for (a, row) in acc.iter().zip(out.chunks_exact_mut(n)) {
        super::copy_short::<10>(row, a.as_array());
    }
}

/// The products of inputs `p0..p0 + per` of the rows `xs` with their weight rows, added
/// to the rows' accumulators in order.
#[inline(always)]
fn products<E: Element, const R: usize>(
    xs: &[&[E]; R],
    w: &[f32],
    n: usize,
    p0: usize,
    per: usize,
    acc: &mut [f32x16; R],
) {
    let xg: [&[E]; R] = std::array::from_fn(|i| &xs[i][p0..p0 + per]);
    for (t, p) in (p0..p0 + per).enumerate() {
        let wrow = weight_row(w, p, n);
        for i in 0..R {
            acc[i] = f32x16::splat(xg[i][t].unit()).mul_add(wrow, acc[i]);
        }
    }
}

/// Row `p` of `w[k, n]` in the first `n` lanes of a vector (the lanes past `n` hold the
/// next row's values, or zeros at the end of `w`).
#[inline(always)]
fn weight_row(w: &[f32], p: usize, n: usize) -> f32x16 {
    match w.get(p * n..p * n + 16) {
        Some(lanes) => f32x16::new(lanes.try_into().expect("16 lanes")),
        None => {
            let mut padded = [0.0; 16];
            super::copy_short::<10>(&mut padded[..n], &w[p * n..(p + 1) * n]);
            f32x16::new(padded)
        }
    }
}

/// Sixteen pixels as `value / 255` in f32 lanes, rounded exactly as the division rounds.
///
/// `q = v·(1/255)` can be one ulp off; one Newton step on the remainder, computed exactly
/// by a fused multiply-add, moves it to the correctly rounded quotient (checked for all
/// 256 values in the tests). Three vector operations instead of a division or a table.
#[inline(always)]
fn pixels_to_unit16(bytes: &[u8]) -> f32x16 {
    let bytes = u8x16::new(bytes[..16].try_into().expect("16 pixels"));
    let v = f32x16::from_i32x16(i32x16::from_i16x16(i16x16::from(bytes)));
    let inv = f32x16::splat(1.0 / 255.0);
    let q = v * inv;
    let remainder = q.mul_neg_add(f32x16::splat(255.0), v);
    remainder.mul_add(inv, q)
}

/// Converts u8 pixels to `value / 255` in f32 (the same values as
/// [`PIXEL_TO_UNIT`]), sixteen at a time.
pub fn pixels_to_unit(pixels: &[u8], out: &mut [f32]) {
    assert_eq!(pixels.len(), out.len(), "pixel and output lengths differ");
    let mut oc = out.chunks_exact_mut(16);
    let mut pc = pixels.chunks_exact(16);
    for (o, p) in (&mut oc).zip(&mut pc) {
        o.copy_from_slice(pixels_to_unit16(p).as_array());
    }
    for (o, &p) in oc.into_remainder().iter_mut().zip(pc.remainder()) {
        *o = p.unit();
    }
}

/// `dw[k, n] = x[rows, k]ᵀ · d[rows, n]` for `n <= 16` (row-major, `dw` overwritten): the
/// weight gradient of a narrow layer. The lanes run along `k`, sixteen values of `k` by up
/// to ten columns at a time (five with AVX2), so every lane is busy; each block is
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
    let (x, d) = (&x[..rows * k], &d[..rows * n]);
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
                grad_columns(live_rows, n, p, &mut block);
            }
        } else {
            grad_columns(x.chunks_exact(k).zip(d.chunks_exact(n)), n, p, &mut block);
        }
        store_transposed(&block, n, &mut dw[p * n..(p + 16) * n]);
        p += 16;
    }
    for p in p..k {
        for j in 0..n {
            let mut s = 0.0f32;
            for (xr, dr) in x.chunks_exact(k).zip(d.chunks_exact(n)) {
                s = dr[j].mul_add(xr[p].unit(), s);
            }
            dw[p * n + j] = s;
        }
    }
}

/// Adds the products of `rows` (pairs of an input row and its output gradient row) to all
/// `n` columns of a 16-row block of [`matmul_tn`], as many columns at a time as the
/// registers hold.
#[inline(always)]
fn grad_columns<'a, E: Element + 'a>(
    rows: impl Iterator<Item = (&'a [E], &'a [f32])> + Clone,
    n: usize,
    p: usize,
    block: &mut [[f32; 16]; MAX_WIDTH],
) {
    let mut j = 0;
    while j < n {
        let width = if n - j >= 10 {
            GRAD_COLUMNS
        } else {
            (n - j).min(5)
        };
        let rows = rows.clone();
        match width {
            10 => grad_block::<E, 10>(rows, p, j, block),
            5 => grad_block::<E, 5>(rows, p, j, block),
            4 => grad_block::<E, 4>(rows, p, j, block),
            3 => grad_block::<E, 3>(rows, p, j, block),
            2 => grad_block::<E, 2>(rows, p, j, block),
            _ => grad_block::<E, 1>(rows, p, j, block),
        }
        j += width;
    }
}

/// Columns `j0..j0 + J` of a 16-row block of [`matmul_tn`]:
/// `block[j][i] += Σ_r d[r, j]·x[r, p + i]`, continuing each column's chain.
#[inline(always)]
fn grad_block<'a, E: Element + 'a, const J: usize>(
    rows: impl Iterator<Item = (&'a [E], &'a [f32])>,
    p: usize,
    j0: usize,
    block: &mut [[f32; 16]; MAX_WIDTH],
) {
    let mut acc: [f32x16; J] = std::array::from_fn(|t| f32x16::new(block[j0 + t]));
    for (xr, dr) in rows {
        let xs = E::load16(&xr[p..p + 16]);
        let dr = &dr[j0..j0 + J];
        for t in 0..J {
            acc[t] = f32x16::splat(dr[t]).mul_add(xs, acc[t]);
        }
    }
    for (t, a) in acc.iter().enumerate() {
        block[j0 + t] = *a.as_array();
    }
}

/// Writes `block[j][i]` to `out[i * n + j]` for 16 rows `i`: 8x8 register transposes for
/// the first eight columns, single values for the rest.
#[inline(always)]
fn store_transposed(block: &[[f32; 16]; MAX_WIDTH], n: usize, out: &mut [f32]) {
    let wide = if n >= 8 { 8 } else { 0 };
    for half in [0, 8] {
        if wide == 8 {
            let columns: [f32x8; 8] = std::array::from_fn(|j| load(&block[j][half..]));
            for (i, row) in f32x8::transpose(columns).iter().enumerate() {
                out[(half + i) * n..][..8].copy_from_slice(row.as_array());
            }
        }
        for i in half..half + 8 {
            for j in wide..n {
                out[i * n + j] = block[j][i];
            }
        }
    }
}
