//! Every kernel on every SIMD level this CPU runs, in one process (`with_level`), against
//! its naive twin, `matrixmultiply`, and the other levels.
//!
//! The levels that fuse multiply-adds (AVX2, AVX-512, and the portable one where the
//! target has FMA) sum in the same order with the same roundings, so their results are
//! asserted bit for bit equal; the portable level without FMA rounds twice and is held to
//! the naive tolerance only. Kernels without multiply-adds are equal on every level.

use proptest::prelude::*;

use super::simd::{with_level, Level};
use super::{elementwise, gemm, listed, naive, narrow, GemmWorkspace, MatRef, PixelRef};

/// Runs `f` on every supported level; returns each level's result.
fn on_every_level<T>(f: impl Fn() -> T) -> Vec<(Level, T)> {
    Level::supported().map(|l| (l, with_level(l, &f))).collect()
}

/// Asserts the fused levels' results bit for bit equal (all of them, when `all`).
fn assert_levels_agree(results: &[(Level, Vec<f32>)], all: bool, what: &str) {
    let same = |l: &Level| all || l.fuses_mul_add();
    let mut kept = results.iter().filter(|(l, _)| same(l));
    if let Some((first_level, first)) = kept.next() {
        for (level, got) in kept {
            let (g, w): (Vec<u32>, Vec<u32>) = (
                got.iter().map(|v| v.to_bits()).collect(),
                first.iter().map(|v| v.to_bits()).collect(),
            );
            assert_eq!(g, w, "{what}: {level} differs from {first_level}");
        }
    }
}

fn values(len: usize, seed: u64) -> Vec<f32> {
    super::test_words(seed)
        .take(len)
        .map(|w| (w >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect()
}

/// Sizes around the tile edges (MR = 4 or 8, NR = 16, KC = 256) and small ones.
fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..=9,
        15usize..=17,
        30usize..=34,
        Just(63),
        Just(255),
        Just(257)
    ]
}

/// Within `1e-5 * (1 + Σ|a·b|)` of the f64 product, per output.
fn assert_close_to_product(got: &[f32], want: &[f32], scale: &[f32], what: &str) {
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * (1.0 + s),
            "{what}: element {i} is {g}, not {w}"
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn check_gemm(m: usize, n: usize, k: usize, ta: bool, tb: bool, accumulate: bool, seed: u64) {
    let (a, b) = (values(m * k, seed), values(k * n, seed + 1));
    let ldc = n + 3;
    let init = values(m.max(1) * ldc, seed + 2);
    // A (and B) transposed are stored `[k, m]` and read through swapped strides.
    let a_ref = if ta {
        MatRef::row_major(&a, m).t()
    } else {
        MatRef::row_major(&a, k)
    };
    let b_ref = if tb {
        MatRef::row_major(&b, k).t()
    } else {
        MatRef::row_major(&b, n)
    };
    let mut want = init.clone();
    naive::gemm(m, n, k, a_ref, b_ref, &mut want, ldc, accumulate);
    let mut oracle = init.clone();
    if m > 0 && n > 0 {
        let beta = if accumulate { 1.0 } else { 0.0 };
        // SAFETY: the strides describe `a` ([m, k] or its transpose), `b` and `oracle`
        // ([m, ldc]), all large enough for the m x k, k x n and m x n views.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                a_ref.row_stride as isize,
                a_ref.col_stride as isize,
                b.as_ptr(),
                b_ref.row_stride as isize,
                b_ref.col_stride as isize,
                beta,
                oracle.as_mut_ptr(),
                ldc as isize,
                1,
            );
        }
    }
    let mut magnitude = vec![0.0f32; init.len()];
    for i in 0..m {
        for j in 0..n {
            magnitude[i * ldc + j] = (0..k)
                .map(|p| {
                    let av = a[if ta { p * m + i } else { i * k + p }];
                    let bv = b[if tb { j * k + p } else { p * n + j }];
                    (av * bv).abs()
                })
                .sum::<f32>()
                + init[i * ldc + j].abs();
        }
    }
    let results = on_every_level(|| {
        let mut c = init.clone();
        let mut ws = GemmWorkspace::new();
        super::gemm(m, n, k, a_ref, b_ref, &mut c, ldc, accumulate, &mut ws);
        c
    });
    for (level, got) in &results {
        let what = format!("gemm {m}x{k}x{n} ta={ta} tb={tb} acc={accumulate} on {level}");
        assert_close_to_product(got, &want, &magnitude, &what);
        assert_close_to_product(got, &oracle, &magnitude, &format!("{what}, matrixmultiply"));
        for i in 0..m.max(1) {
            for j in n..ldc {
                if i * ldc + j < got.len() {
                    assert_eq!(
                        got[i * ldc + j],
                        init[i * ldc + j],
                        "{what} wrote outside C"
                    );
                }
            }
        }
    }
    assert_levels_agree(&results, false, "gemm");
}

/// `C[i, j] = Σ_p A[i, p]·B[p, j]` as one multiply-add after another in order of `p`,
/// rounded as `level` rounds them: what one depth block of every kernel computes.
fn in_order_sum(level: Level, m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
    let fma = |x: f32, y: f32, s: f32| {
        if level.fuses_mul_add() {
            x.mul_add(y, s)
        } else {
            x * y + s
        }
    };
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).fold(0.0f32, |s, p| fma(a[i * k + p], b[p * n + j], s));
        }
    }
    c
}

fn sparse_pixels(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![6 => Just(0u8), 1 => Just(255u8), 3 => any::<u8>()],
        len,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn gemm_matches_naive_and_matrixmultiply_on_every_level(m in dim(), n in dim(), k in dim(), ta: bool, tb: bool, accumulate: bool, seed in 0u64..1000) {
        check_gemm(m, n, k, ta, tb, accumulate, seed);
    }

    /// Sparse pixels through every path of gemm (tiles, one row, listed depths) and the
    /// narrow and listed kernels: each output is the in-order sum of the level.
    #[test]
    fn pixel_products_are_the_in_order_sum_on_every_level(rows in 0usize..20, k in prop_oneof![0usize..=70, Just(784)], n in prop_oneof![1usize..=16, 60usize..=70], pixels in sparse_pixels(20 * 784), seed in 0u64..1000) {
        let px = &pixels[..rows * k];
        let unit: Vec<f32> = px.iter().map(|&p| f32::from(p) / 255.0).collect();
        let w = values(k * n, seed);
        let results = on_every_level(|| {
            let level = Level::current();
            let want = in_order_sum(level, rows, n, k, &unit, &w);
            let mut c = vec![f32::NAN; rows * n];
            let mut ws = GemmWorkspace::new();
            gemm(rows, n, k, PixelRef::row_major(px, k), MatRef::row_major(&w, n), &mut c, n, false, &mut ws);
            // Deeper products add their blocks of KC depths to one another.
            if k <= super::gemm::KC {
                assert_eq!(c, want, "gemm on pixels, {level}");
            }
            if n <= narrow::MAX_WIDTH {
                let mut listed_out = vec![f32::NAN; rows * n];
                let mut x = listed::NonZeroRows::new();
                x.list(px, rows, k);
                let mut packed = listed::PackedWeights::new();
                packed.pack(&w, k, n);
                listed::matmul(&x, &packed, &mut listed_out);
                assert_eq!(listed_out, want, "listed, {level}");
            }
            if (narrow::MIN_WIDTH..=narrow::MAX_WIDTH).contains(&n) {
                let mut out = vec![f32::NAN; rows * n];
                narrow::matmul(rows, k, n, px, &w, &mut out);
                assert_eq!(out, want, "narrow on pixels, {level}");
                narrow::matmul(rows, k, n, &unit[..], &w, &mut out);
                assert_eq!(out, want, "narrow on f32, {level}");
            }
            c
        });
        assert_levels_agree(&results, false, "pixel products");
    }

    /// A hidden layer's activations into the classes: the narrow kernel summed in blocks of
    /// KC gives the gemm's bits (both add blocks of KC depths, each summed from zero), and
    /// up to KC depths it is the plain in-order sum.
    #[test]
    fn blocked_narrow_products_are_the_gemms_on_every_level(rows in 0usize..12, k in prop_oneof![0usize..=20, 250usize..=260, 510usize..=514, Just(1024)], n in 9usize..=16, seed in 0u64..1000) {
        let x = values(rows * k, seed);
        let w = values(k * n, seed + 1);
        let results = on_every_level(|| {
            let level = Level::current();
            let mut c = vec![f32::NAN; rows * n];
            let mut ws = GemmWorkspace::new();
            gemm(rows, n, k, MatRef::row_major(&x, k), MatRef::row_major(&w, n), &mut c, n, false, &mut ws);
            let mut out = vec![f32::NAN; rows * n];
            narrow::matmul_blocked(rows, k, n, &x, &w, &mut out);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out), bits(&c), "blocked narrow against gemm, {level}, k = {k}");
            if k <= super::gemm::KC {
                assert_eq!(out, in_order_sum(level, rows, n, k, &x, &w), "one block, {level}");
            }
            out
        });
        assert_levels_agree(&results, false, "blocked narrow products");
    }

    #[test]
    fn narrow_weight_gradient_matches_naive_on_every_level(rows in 0usize..40, k in prop_oneof![0usize..40, Just(784)], n in 1usize..=16, pixels in sparse_pixels(40 * 784), seed in 0u64..1000) {
        let px = &pixels[..rows * k];
        let unit: Vec<f32> = px.iter().map(|&p| f32::from(p) / 255.0).collect();
        let d = values(rows * n, seed);
        let mut want = vec![0.0f32; k * n];
        naive::gemm(k, n, rows, MatRef::row_major(&unit, k).t(), MatRef::row_major(&d, n), &mut want, n, false);
        let results = on_every_level(|| {
            let mut dw = vec![f32::NAN; k * n];
            narrow::matmul_tn(rows, k, n, &unit[..], &d, &mut dw);
            let mut dw_px = vec![f32::NAN; k * n];
            narrow::matmul_tn(rows, k, n, px, &d, &mut dw_px);
            assert_eq!(dw_px, dw, "pixels and their f32 values, {}", Level::current());
            dw
        });
        for (level, got) in &results {
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                prop_assert!((g - w).abs() <= 1e-5 * (1.0 + rows as f32), "{level}: {i}: {g} vs {w}");
            }
        }
        assert_levels_agree(&results, false, "matmul_tn");
    }

    #[test]
    fn softmax_and_cross_entropy_match_naive_on_every_level(rows in 0usize..40, classes in 1usize..19, seed in 0u64..1000, scale in 0.01f32..1.0) {
        let logits: Vec<f32> = values(rows * classes, seed).iter().map(|v| v * 30.0).collect();
        let labels: Vec<u8> = (0..rows).map(|r| (r * 7 % classes) as u8).collect();
        let (want_loss, want_grad) = naive::softmax_cross_entropy(&logits, &labels, classes, scale);
        let want_argmax = naive::argmax_rows(&logits, classes);
        let results = on_every_level(|| {
            let mut grad = vec![0.0; logits.len()];
            let loss = elementwise::softmax_cross_entropy(&logits, &labels, classes, scale, &mut grad);
            let mut predictions = vec![0; rows];
            let eval_loss = elementwise::cross_entropy_and_argmax(&logits, &labels, classes, &mut predictions);
            assert_eq!(eval_loss.to_bits(), loss.to_bits(), "{}", Level::current());
            assert_eq!(predictions, want_argmax);
            grad.push(loss as f32);
            grad
        });
        for (level, got) in &results {
            let (grad, loss) = got.split_at(got.len() - 1);
            prop_assert!((f64::from(loss[0]) - want_loss).abs() <= 1e-4 * (1.0 + want_loss.abs()), "{level}: loss {} vs {want_loss}", loss[0]);
            for (&g, &w) in grad.iter().zip(&want_grad) {
                prop_assert!((g - w).abs() <= 1e-5, "{level}: {g} vs {w}");
            }
        }
        assert_levels_agree(&results, false, "softmax cross-entropy");
    }

    #[test]
    fn element_wise_kernels_are_equal_on_every_level(len in 0usize..100, seed in 0u64..1000, alpha in -3.0f32..3.0) {
        let (x, y) = (values(len, seed), values(len, seed + 7));
        let results = on_every_level(|| {
            let mut out = y.clone();
            elementwise::scaled_add(&mut out, alpha, &x);
            let mut sum = vec![0.0; len];
            elementwise::sum_into(&mut sum, &x, &y);
            let mut relu = x.clone();
            relu.extend([f32::NAN, f32::NEG_INFINITY, 5.0]);
            elementwise::relu_in_place(&mut relu);
            out.extend(sum);
            out.extend(relu);
            out
        });
        let mut want: Vec<f32> = y.iter().zip(&x).map(|(y, x)| y + alpha * x).collect();
        want.extend(x.iter().zip(&y).map(|(x, y)| x + y));
        let mut relu_in = x.clone();
        relu_in.extend([f32::NAN, f32::NEG_INFINITY, 5.0]);
        // NaN becomes 0, as in the naive twin.
        want.extend(naive::relu(&relu_in));
        for (level, got) in &results {
            let (g, w): (Vec<u32>, Vec<u32>) = (got.iter().map(|v| v.to_bits()).collect(), want.iter().map(|v| v.to_bits()).collect());
            prop_assert_eq!(g, w, "{}", level);
        }
    }

    #[test]
    fn exp_matches_std_on_every_level(len in 0usize..70, seed in 0u64..1000) {
        let x: Vec<f32> = values(len, seed).iter().map(|v| v * 80.0).collect();
        let results = on_every_level(|| {
            let mut e = x.clone();
            elementwise::exp_in_place(&mut e);
            e
        });
        for (level, got) in &results {
            for (&v, &g) in x.iter().zip(got) {
                let want = v.exp();
                prop_assert!((g - want).abs() <= 2.0 * f32::EPSILON * want, "{level}: exp({v}) = {g}, not {want}");
            }
        }
        assert_levels_agree(&results, false, "exp");
    }
}

/// Regression: a pixel's conversion is exactly `v / 255` on every level, the portable one
/// without FMA included (it reads the table there).
#[test]
fn pixel_conversion_is_the_division_on_every_level() {
    let pixels: Vec<u8> = (0..=255).chain(0..7).collect();
    for (level, got) in on_every_level(|| {
        let mut out = vec![0.0; pixels.len()];
        narrow::pixels_to_unit(&pixels, &mut out);
        out
    }) {
        for (&p, &g) in pixels.iter().zip(&got) {
            assert_eq!(
                g.to_bits(),
                (f32::from(p) / 255.0).to_bits(),
                "{level}: {p}"
            );
        }
    }
}
