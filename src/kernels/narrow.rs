//! Products with a narrow side of 9 to 16 columns (the 10 classes), without packing.
//!
//! For `x[rows, k]·W[k, 10]` the blocked [`gemm`](super::gemm) spends more time packing `x`
//! than multiplying: each input value meets only 10 weights. These kernels read the input
//! where it lies (u8 pixels through the exact `v / 255` table, or f32) and hold a row of 10
//! as two overlapping f32x8 vectors, columns `[0, 8)` and `[n - 8, n)`: no packing, no
//! transposes, and each output is a plain left-to-right sum over `k`.

use wide::f32x8;

use crate::data::batch::PIXEL_TO_UNIT;

/// Narrowest width these kernels take.
pub const MIN_WIDTH: usize = 9;
/// Widest width these kernels take.
pub const MAX_WIDTH: usize = 16;

/// An input element: f32 as it is, or a u8 pixel read as `value / 255`.
pub trait Element: Copy + Send + Sync {
    /// The value as f32.
    fn unit(self) -> f32;
}

impl Element for f32 {
    #[inline(always)]
    fn unit(self) -> f32 {
        self
    }
}

impl Element for u8 {
    #[inline(always)]
    fn unit(self) -> f32 {
        PIXEL_TO_UNIT[usize::from(self)]
    }
}

#[inline(always)]
fn load(s: &[f32]) -> f32x8 {
    f32x8::new(s[..8].try_into().expect("8 lanes"))
}

/// Stores a row of `n` from its two overlapping vectors.
#[inline(always)]
fn store(out: &mut [f32], n: usize, lo: f32x8, hi: f32x8) {
    out[..8].copy_from_slice(lo.as_array());
    out[8..n].copy_from_slice(&hi.as_array()[16 - n..]);
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
    const R: usize = 4;
    let hi_at = n - 8;
    let mut r = 0;
    while r + R <= rows {
        let xs: [&[E]; R] = std::array::from_fn(|i| &x[(r + i) * k..(r + i + 1) * k]);
        let mut acc = [[f32x8::ZERO; 2]; R];
        for (p, wrow) in w.chunks_exact(n).take(k).enumerate() {
            let (w0, w1) = (load(wrow), load(&wrow[hi_at..]));
            for i in 0..R {
                let xb = f32x8::splat(xs[i][p].unit());
                acc[i][0] = xb.mul_add(w0, acc[i][0]);
                acc[i][1] = xb.mul_add(w1, acc[i][1]);
            }
        }
        for (i, a) in acc.iter().enumerate() {
            store(&mut out[(r + i) * n..(r + i + 1) * n], n, a[0], a[1]);
        }
        r += R;
    }
    for r in r..rows {
        let xr = &x[r * k..(r + 1) * k];
        let (mut a0, mut a1) = (f32x8::ZERO, f32x8::ZERO);
        for (xv, wrow) in xr.iter().zip(w.chunks_exact(n)) {
            let xb = f32x8::splat(xv.unit());
            a0 = xb.mul_add(load(wrow), a0);
            a1 = xb.mul_add(load(&wrow[hi_at..]), a1);
        }
        store(&mut out[r * n..(r + 1) * n], n, a0, a1);
    }
}

/// `dw[k, n] = x[rows, k]ᵀ · d[rows, n]` for `9 <= n <= 16` (row-major, `dw` overwritten):
/// the weight gradient of a narrow layer, summed over rows in order.
pub fn matmul_tn<E: Element>(rows: usize, k: usize, n: usize, x: &[E], d: &[f32], dw: &mut [f32]) {
    assert!(
        (MIN_WIDTH..=MAX_WIDTH).contains(&n),
        "narrow kernels take 9 to 16 columns, not {n}"
    );
    assert!(x.len() >= rows * k, "x is smaller than {rows}x{k}");
    assert!(d.len() >= rows * n, "d is smaller than {rows}x{n}");
    assert!(dw.len() >= k * n, "dw is smaller than {k}x{n}");
    const P: usize = 6;
    let hi_at = n - 8;
    let mut p = 0;
    while p + P <= k {
        let mut acc = [[f32x8::ZERO; 2]; P];
        for (xr, drow) in x.chunks_exact(k).zip(d.chunks_exact(n)).take(rows) {
            let (d0, d1) = (load(drow), load(&drow[hi_at..]));
            let xs = &xr[p..p + P];
            for i in 0..P {
                let xb = f32x8::splat(xs[i].unit());
                acc[i][0] = xb.mul_add(d0, acc[i][0]);
                acc[i][1] = xb.mul_add(d1, acc[i][1]);
            }
        }
        for (i, a) in acc.iter().enumerate() {
            store(&mut dw[(p + i) * n..(p + i + 1) * n], n, a[0], a[1]);
        }
        p += P;
    }
    for p in p..k {
        let (mut a0, mut a1) = (f32x8::ZERO, f32x8::ZERO);
        for (xr, drow) in x.chunks_exact(k).zip(d.chunks_exact(n)).take(rows) {
            let xb = f32x8::splat(xr[p].unit());
            a0 = xb.mul_add(load(drow), a0);
            a1 = xb.mul_add(load(&drow[hi_at..]), a1);
        }
        store(&mut dw[p * n..(p + 1) * n], n, a0, a1);
    }
}
