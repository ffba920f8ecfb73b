//! Property tests: every kernel against its naive twin on random shapes, including 0, 1
//! and sizes that are not multiples of the SIMD width or the tile.
//!
//! Tolerances: products are compared to the f64 reference within `1e-5 * (1 + Σ|a·b|)`
//! (f32 rounding grows with the dot product's magnitude); element-wise kernels within 1e-6
//! relative; softmax and cross-entropy within 1e-5.

use proptest::prelude::*;
use softnet::kernels::{self, naive, GemmWorkspace, MatRef, PixelRef};

fn matrix(len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-2.0f32..2.0, len)
}

/// Sizes around the tile edges (MR = 4 or 8, NR = 16, KC = 256) and small ones.
fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..=3,
        4usize..=40,
        Just(5),
        Just(7),
        Just(15),
        Just(17),
        Just(255),
        Just(257)
    ]
}

fn check_gemm(m: usize, n: usize, k: usize, ta: bool, tb: bool, accumulate: bool, seed: u64) {
    let gen = |len: usize, salt: u64| -> Vec<f32> {
        (0..len)
            .map(|i| (((i as u64 * 2654435761 + seed * 97 + salt) % 1000) as f32 / 250.0) - 2.0)
            .collect()
    };
    let a_data = gen(m * k, 1);
    let b_data = gen(k * n, 2);
    let a = if ta {
        MatRef::row_major(&a_data, m).t()
    } else {
        MatRef::row_major(&a_data, k)
    };
    let b = if tb {
        MatRef::row_major(&b_data, k).t()
    } else {
        MatRef::row_major(&b_data, n)
    };
    let ldc = n + 3;
    let init = gen(m.max(1) * ldc, 3);
    let mut got = init.clone();
    let mut want = init.clone();
    let mut ws = GemmWorkspace::new();
    kernels::gemm(m, n, k, a, b, &mut got, ldc, accumulate, &mut ws);
    naive::gemm(m, n, k, a, b, &mut want, ldc, accumulate);
    for i in 0..m {
        for j in 0..ldc {
            let (g, w) = (got[i * ldc + j], want[i * ldc + j]);
            if j >= n {
                assert_eq!(g, init[i * ldc + j], "gemm wrote outside C at ({i}, {j})");
                continue;
            }
            let scale: f32 = (0..k)
                .map(|p| {
                    let av = a_data[if ta { p * m + i } else { i * k + p }];
                    let bv = b_data[if tb { j * k + p } else { p * n + j }];
                    (av * bv).abs()
                })
                .sum::<f32>()
                + if accumulate {
                    init[i * ldc + j].abs()
                } else {
                    0.0
                };
            assert!(
                (g - w).abs() <= 1e-5 * (1.0 + scale),
                "({i},{j}) of {m}x{n}x{k}: {g} vs {w}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn gemm_matches_naive(m in dim(), n in dim(), k in dim(), ta: bool, tb: bool, acc: bool, seed in 0u64..1000) {
        check_gemm(m, n, k, ta, tb, acc, seed);
    }

    #[test]
    fn gemm_on_pixels_matches_naive_on_scaled_values(m in 0usize..20, n in 0usize..20, k in 0usize..40, pixels in prop::collection::vec(any::<u8>(), 800), t: bool) {
        let b: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 * 0.1 - 0.6).collect();
        let px = &pixels[..m * k];
        let unit: Vec<f32> = px.iter().map(|&p| f32::from(p) / 255.0).collect();
        let (pa, ua) = if t {
            (PixelRef::row_major(px, m).t(), MatRef::row_major(&unit, m).t())
        } else {
            (PixelRef::row_major(px, k), MatRef::row_major(&unit, k))
        };
        let mut got = vec![0.0; m * n];
        let mut want = vec![0.0; m * n];
        let mut ws = GemmWorkspace::new();
        kernels::gemm(m, n, k, pa, MatRef::row_major(&b, n), &mut got, n, false, &mut ws);
        kernels::gemm(m, n, k, ua, MatRef::row_major(&b, n), &mut want, n, false, &mut ws);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn scaled_add_matches_naive(x in matrix(37), alpha in -3.0f32..3.0, len in 0usize..37) {
        let mut got: Vec<f32> = x[..len].iter().map(|v| v * 0.5).collect();
        let mut want = got.clone();
        kernels::scaled_add(&mut got, alpha, &x[..len]);
        naive::scaled_add(&mut want, alpha, &x[..len]);
        for (g, w) in got.iter().zip(&want) {
            prop_assert!((g - w).abs() <= 1e-6 * (1.0 + w.abs()));
        }
    }

    #[test]
    fn sum_into_is_one_add_per_element(x in matrix(37), y in matrix(37), len in 0usize..37) {
        let (a, b) = (&x[..len], &y[..len]);
        let mut out = vec![f32::NAN; len];
        kernels::sum_into(&mut out, a, b);
        let want: Vec<f32> = a.iter().zip(b).map(|(p, q)| p + q).collect();
        prop_assert_eq!(&out, &want);
        // Bit for bit what copying `a` and then `scaled_add(.., 1.0, b)` gives.
        let mut copied = a.to_vec();
        kernels::scaled_add(&mut copied, 1.0, b);
        prop_assert_eq!(out, copied);
    }

    #[test]
    fn bias_and_column_sums_match_naive(rows in 0usize..20, cols in 1usize..19, v in matrix(400), bias in matrix(19)) {
        let m = &v[..rows * cols];
        let mut got = m.to_vec();
        let mut want = m.to_vec();
        kernels::add_bias_rows(&mut got, &bias[..cols]);
        naive::add_bias_rows(&mut want, &bias[..cols]);
        prop_assert_eq!(&got, &want);
        let mut sums = vec![1.0; cols];
        kernels::column_sums_into(m, &mut sums, false);
        for (g, w) in sums.iter().zip(naive::column_sums(m, cols)) {
            prop_assert!((g - w).abs() <= 1e-5 * (1.0 + rows as f32));
        }
    }

    #[test]
    fn softmax_cross_entropy_matches_naive(rows in 0usize..12, classes in 1usize..19, v in prop::collection::vec(-30.0f32..30.0, 216), labels in prop::collection::vec(0u8..18, 12), scale in 0.01f32..1.0) {
        let z = &v[..rows * classes];
        let labels: Vec<u8> = labels[..rows].iter().map(|&l| l % classes as u8).collect();
        let mut grad = vec![0.0; z.len()];
        let loss = kernels::softmax_cross_entropy(z, &labels, classes, scale, &mut grad);
        let (want_loss, want_grad) = naive::softmax_cross_entropy(z, &labels, classes, scale);
        prop_assert!((loss - want_loss).abs() <= 1e-5 * (1.0 + want_loss.abs()), "{} vs {}", loss, want_loss);
        for (g, w) in grad.iter().zip(&want_grad) {
            prop_assert!((g - w).abs() <= 1e-5, "{} vs {}", g, w);
        }
        let mut probs = vec![0.0; z.len()];
        kernels::elementwise::softmax_rows(z, classes, &mut probs);
        for (g, w) in probs.iter().zip(naive::softmax_rows(z, classes)) {
            prop_assert!((g - w).abs() <= 1e-5);
        }
    }

    #[test]
    fn argmax_and_relu_match_naive(rows in 0usize..10, cols in 1usize..13, v in matrix(130)) {
        let m = &v[..rows * cols];
        let mut got = vec![0; rows];
        kernels::argmax_rows(m, cols, &mut got);
        prop_assert_eq!(got, naive::argmax_rows(m, cols));
        let mut r = m.to_vec();
        kernels::relu_in_place(&mut r);
        prop_assert_eq!(r, naive::relu(m));
    }
}

/// Logits with the values that test comparisons: ties, infinities, NaN, signed zeros.
fn logit() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -30.0f32..30.0,
        1 => prop::sample::select(vec![0.0f32, -0.0, 1.0, 1.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 88.0, -104.0]),
    ]
}

proptest! {
    #[test]
    fn cross_entropy_and_argmax_are_the_training_loss_and_the_naive_argmax(
        rows in 0usize..40,
        classes in prop_oneof![1usize..=17, Just(10), Just(33)],
        v in prop::collection::vec(logit(), 40 * 33),
        labels in prop::collection::vec(any::<u8>(), 40),
    ) {
        let z = &v[..rows * classes];
        let labels: Vec<u8> = labels[..rows].iter().map(|&l| (usize::from(l) % classes) as u8).collect();
        let mut predictions = vec![usize::MAX; rows];
        let loss = kernels::elementwise::cross_entropy_and_argmax(z, &labels, classes, &mut predictions);
        let mut grad = vec![0.0; z.len()];
        let want = kernels::softmax_cross_entropy(z, &labels, classes, 1.0, &mut grad);
        prop_assert_eq!(loss.to_bits(), want.to_bits(), "{} vs {}", loss, want);
        let mut row_by_row = vec![0; rows];
        kernels::argmax_rows(z, classes, &mut row_by_row);
        let want_predictions = naive::argmax_rows(z, classes);
        prop_assert_eq!(&row_by_row, &want_predictions);
        prop_assert_eq!(predictions, want_predictions);
    }
}

#[test]
fn softmax_cross_entropy_is_finite_for_huge_logits() {
    let z = [1e4f32, -1e4, 0.0, 1e4, 1e4, -1e4];
    let mut grad = [0.0; 6];
    let loss = kernels::softmax_cross_entropy(&z, &[1, 2], 3, 0.5, &mut grad);
    assert!(loss.is_finite());
    // Row 1: lse 1e4, label logit -1e4; row 2: lse 1e4 + ln 2, label logit -1e4.
    assert!(
        (loss - (4e4 + std::f64::consts::LN_2)).abs() < 1e-2,
        "{loss}"
    );
    assert!(grad.iter().all(|g| g.is_finite()));
    assert_eq!(grad[1], -0.5);
    assert!((grad[0] - 0.5).abs() < 1e-6);
}

/// Pixels as MNIST has them: mostly 0, in runs, with some rows blank.
fn sparse_pixels(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![6 => Just(0u8), 1 => Just(255u8), 3 => any::<u8>()],
        len,
    )
    .prop_map(|mut px| {
        for run in px.chunks_mut(11).step_by(3) {
            run.fill(0);
        }
        px
    })
}

/// `C[i, j] = Σ_p A[i, p]·B[p, j]` as one fused multiply-add after another, in order of `p`
/// within each block of `KC` depths, the blocks' sums then added in order: what the gemm
/// computes, bit for bit. (Unfused, where `SOFTNET_SIMD=portable` runs
/// on a target without FMA: the kernels round twice there.)
fn in_order_fma_sum(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
    in_blocks_fma_sum(m, n, k, softnet::kernels::gemm::KC, a, b)
}

/// [`in_order_fma_sum`] in blocks of `block` depths (`usize::MAX`: one chain, as the narrow
/// and listed kernels sum).
fn in_blocks_fma_sum(m: usize, n: usize, k: usize, block: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
    let fused = softnet::kernels::simd::Level::current().fuses_mul_add();
    let fma = |x: f32, y: f32, s: f32| if fused { x.mul_add(y, s) } else { x * y + s };
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let sum_block = |p0: usize| {
                let depths = p0..k.min(p0.saturating_add(block));
                depths.fold(0.0f32, |s, p| fma(a[i * k + p], b[p * n + j], s))
            };
            let mut blocks = (0..k).step_by(block).map(sum_block);
            let first = blocks.next().unwrap_or(0.0);
            c[i * n + j] = blocks.fold(first, |sum, block| sum + block);
        }
    }
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The gemm skips depths where a tile's rows of A are all zero; for finite B that changes
    /// no bit of the result.
    #[test]
    fn gemm_on_sparse_inputs_is_the_in_order_sum(m in 0usize..30, n in prop_oneof![1usize..40, 64usize..=80], k in 0usize..=256, pixels in sparse_pixels(30 * 256), seed in any::<u64>()) {
        let a: Vec<f32> = pixels[..m * k].iter().map(|&p| f32::from(p) / 255.0).collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i as u64).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        let mut got = vec![f32::NAN; m * n];
        let mut ws = GemmWorkspace::new();
        kernels::gemm(m, n, k, MatRef::row_major(&a, k), MatRef::row_major(&b, n), &mut got, n, false, &mut ws);
        prop_assert_eq!(&got, &in_order_fma_sum(m, n, k, &a, &b));
        // The transposed operand (how the weight gradient reads the inputs) packs its own lists.
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        kernels::gemm(m, n, k, MatRef::row_major(&at, m).t(), MatRef::row_major(&b, n), &mut got, n, false, &mut ws);
        prop_assert_eq!(&got, &in_order_fma_sum(m, n, k, &a, &b));
    }

    /// One row alone (the single-example path, which streams B instead of tiling it) sums
    /// in the same depth blocks as the tiles: it gives the bits of the same row in a batch,
    /// accumulating or not, across several blocks and in the columns past the last 64.
    #[test]
    fn one_row_alone_is_its_row_in_a_batch(m in 2usize..12, n in prop_oneof![1usize..20, 60usize..=140], k in prop_oneof![0usize..=40, 250usize..=800], pixels in sparse_pixels(12 * 800), seed in any::<u64>(), accumulate: bool) {
        let a: Vec<f32> = pixels[..m * k].iter().map(|&p| f32::from(p) / 255.0).collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i as u64).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        let start: Vec<f32> = (0..m * n).map(|i| (i % 13) as f32 * 0.37 - 2.0).collect();
        let mut ws = GemmWorkspace::new();
        let mut batch = start.clone();
        kernels::gemm(m, n, k, MatRef::row_major(&a, k), MatRef::row_major(&b, n), &mut batch, n, accumulate, &mut ws);
        for i in 0..m {
            let mut alone = start[i * n..][..n].to_vec();
            let row = MatRef::row_major(&a[i * k..][..k], k);
            kernels::gemm(1, n, k, row, MatRef::row_major(&b, n), &mut alone, n, accumulate, &mut ws);
            prop_assert_eq!(&alone[..], &batch[i * n..][..n], "row {}", i);
        }
    }
}

#[test]
fn narrow_pixel_rows_longer_than_one_listing_pass_match_their_f32_values() {
    // 2103 inputs: two passes of 512 groups of four, a third partial one and a 3-input tail.
    let (rows, k, n) = (6, 2103, 10);
    let px: Vec<u8> = (0..rows * k)
        .map(|i| if (i / 7) % 3 == 0 { (i % 251) as u8 } else { 0 })
        .collect();
    let w: Vec<f32> = (0..k * n).map(|i| (i % 17) as f32 * 0.01 - 0.08).collect();
    let from_px = narrow_pixels_equal_their_f32_values(rows, k, n, &px, &w);
    assert!(from_px.iter().any(|&v| v != 0.0));
}

/// `narrow::matmul` on pixels and on their f32 values (`p / 255`), asserted bit-identical
/// to each other and to one in-order chain over the values.
fn narrow_pixels_equal_their_f32_values(
    rows: usize,
    k: usize,
    n: usize,
    px: &[u8],
    w: &[f32],
) -> Vec<f32> {
    use softnet::kernels::narrow;
    let unit: Vec<f32> = px.iter().map(|&p| f32::from(p) / 255.0).collect();
    let (mut from_px, mut from_unit) = (vec![0.0; rows * n], vec![0.0; rows * n]);
    narrow::matmul(rows, k, n, px, w, &mut from_px);
    narrow::matmul(rows, k, n, &unit[..], w, &mut from_unit);
    assert_eq!(from_px, from_unit);
    assert_eq!(from_px, in_blocks_fma_sum(rows, n, k, usize::MAX, &unit, w));
    from_px
}

#[test]
fn narrow_pixel_rows_of_more_than_65536_groups_match_their_f32_values() {
    // Group numbers past u16::MAX: lists must not wrap and read the wrong weights.
    let (rows, k, n) = (5, 4 * 65_536 + 4 * 700 + 2, 10);
    let px: Vec<u8> = (0..rows * k)
        .map(|i| if i % 977 < 5 { (i % 253) as u8 + 1 } else { 0 })
        .collect();
    let w: Vec<f32> = (0..k * n).map(|i| (i % 19) as f32 * 0.01 - 0.09).collect();
    narrow_pixels_equal_their_f32_values(rows, k, n, &px, &w);
}

#[test]
fn one_pixel_row_through_a_wide_layer_is_its_f32_values_in_order() {
    // Row lengths around the eight-pixel words, an image's, and the longest row the
    // workspace lists (6136; a longer one runs every depth); bytes include 0x80 and 0x01,
    // the edge cases of the word-at-a-time zero test.
    for k in (0..=40).chain([783, 784, 785, 6136, 6137]) {
        for pattern in 0..4u64 {
            let px: Vec<u8> = (0..k as u64)
                .map(|i| match (i * 2654435761 + pattern * 97) % 7 {
                    0 => 0x80,
                    1 => 0x01,
                    2 => ((i * 31 + pattern) % 256) as u8,
                    _ => 0,
                })
                .collect();
            let unit: Vec<f32> = px.iter().map(|&p| f32::from(p) / 255.0).collect();
            let n = 70;
            let b: Vec<f32> = (0..k * n).map(|i| (i % 23) as f32 * 0.01 - 0.1).collect();
            let (mut got, mut want) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            let mut ws = GemmWorkspace::new();
            let bm = MatRef::row_major(&b, n);
            kernels::gemm(
                1,
                n,
                k,
                PixelRef::row_major(&px, k),
                bm,
                &mut got,
                n,
                false,
                &mut ws,
            );
            kernels::gemm(
                1,
                n,
                k,
                MatRef::row_major(&unit, k),
                bm,
                &mut want,
                n,
                false,
                &mut ws,
            );
            assert_eq!(got, want, "k = {k}, pattern {pattern}");
            assert_eq!(want, in_order_fma_sum(1, n, k, &unit, &b), "k = {k}");
        }
    }
}

#[test]
fn gemm_regression_k_crossing_the_block_depth() {
    // A k just past KC exercises the accumulate-into-C path of the second depth block.
    check_gemm(7, 17, 257, true, false, false, 5);
    check_gemm(100, 10, 784, false, false, false, 1);
    check_gemm(784, 10, 100, true, false, false, 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn narrow_kernels_match_naive(rows in 0usize..14, k in 0usize..40, n in 9usize..=16, x in matrix(560), pixels in sparse_pixels(560), d in matrix(224), w in matrix(640)) {
        use softnet::kernels::narrow;
        let (x, px, d, w) = (&x[..rows * k], &pixels[..rows * k], &d[..rows * n], &w[..k * n]);
        let mut got = vec![0.0; rows * n];
        let mut want = vec![0.0; rows * n];
        narrow::matmul(rows, k, n, x, w, &mut got);
        naive::gemm(rows, n, k, MatRef::row_major(x, k), MatRef::row_major(w, n), &mut want, n, false);
        for (g, v) in got.iter().zip(&want) {
            prop_assert!((g - v).abs() <= 1e-5 * (1.0 + 4.0 * k as f32), "{} vs {}", g, v);
        }
        // Pixels give exactly what their f32 values give (the pixel path skips groups of
        // zeros, the f32 path multiplies every value).
        let unit: Vec<f32> = px.iter().map(|&p| f32::from(p) / 255.0).collect();
        let mut from_px = vec![0.0; rows * n];
        narrow::matmul(rows, k, n, px, w, &mut from_px);
        narrow::matmul(rows, k, n, &unit[..], w, &mut got);
        prop_assert_eq!(&from_px, &got);
        let mut dw = vec![0.0; k * n];
        let mut want_dw = vec![0.0; k * n];
        narrow::matmul_tn(rows, k, n, x, d, &mut dw);
        naive::gemm(k, n, rows, MatRef::row_major(x, k).t(), MatRef::row_major(d, n), &mut want_dw, n, false);
        for (g, v) in dw.iter().zip(&want_dw) {
            prop_assert!((g - v).abs() <= 1e-5 * (1.0 + 4.0 * rows as f32), "{} vs {}", g, v);
        }
    }
}

/// Past the rows the weight gradient lists at a time, the skipped rows' sums carry on from
/// one list to the next: pixels give the floats' bits, and the floats the reference's sums.
#[test]
fn weight_gradient_over_many_rows_skips_zero_blocks_in_order() {
    use softnet::kernels::narrow;
    let (rows, k, n) = (600, 48, 10);
    // Row r has zeros in block r % 3 only, and in all three blocks when r % 7 == 0.
    let pixels: Vec<u8> = (0..rows * k)
        .map(|i| {
            let (r, block) = (i / k, i % k / 16);
            if r % 7 == 0 || block == r % 3 {
                0
            } else {
                (i * 37 % 255 + 1) as u8
            }
        })
        .collect();
    let unit: Vec<f32> = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    let d: Vec<f32> = (0..rows * n)
        .map(|i| (i * 13 % 29) as f32 / 7.0 - 2.0)
        .collect();
    let (mut from_pixels, mut from_unit) = (vec![f32::NAN; k * n], vec![f32::NAN; k * n]);
    narrow::matmul_tn(rows, k, n, &pixels[..], &d, &mut from_pixels);
    narrow::matmul_tn(rows, k, n, &unit[..], &d, &mut from_unit);
    assert_eq!(from_pixels, from_unit);
    let mut want = vec![0.0; k * n];
    naive::gemm(
        k,
        n,
        rows,
        MatRef::row_major(&unit, k).t(),
        MatRef::row_major(&d, n),
        &mut want,
        n,
        false,
    );
    for (g, v) in from_pixels.iter().zip(&want) {
        assert!((g - v).abs() <= 1e-3, "{g} vs {v}");
    }
}

#[test]
fn simd_pixel_conversion_is_the_division_for_every_value() {
    use softnet::kernels::narrow;
    let values: Vec<u8> = (0..=255).collect();
    let mut out = vec![0.0f32; 256];
    narrow::pixels_to_unit(&values, &mut out);
    for (v, got) in values.iter().zip(&out) {
        assert_eq!(
            got.to_bits(),
            (f32::from(*v) / 255.0).to_bits(),
            "pixel {v}"
        );
    }
    // The scalar tail (lengths that are not multiples of 8) gives the same values.
    let mut tail = vec![0.0f32; 13];
    narrow::pixels_to_unit(&values[243..], &mut tail);
    assert_eq!(&tail[..], &out[243..]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn weight_gradient_kernel_matches_naive_for_any_narrow_width(rows in 0usize..12, k in prop_oneof![0usize..40, Just(784)], n in 1usize..=16, seed in any::<u64>()) {
        use softnet::kernels::narrow;
        let gen = |len: usize, salt: u64| -> Vec<f32> {
            (0..len as u64)
                .map(|i| (((i * 2654435761 + seed % 1000 * 97 + salt) % 1000) as f32 / 250.0) - 2.0)
                .collect()
        };
        let (x, d) = (gen(rows * k, 1), gen(rows * n, 2));
        // Some blocks of sixteen inputs all zero, in some rows: those rows are skipped there.
        let pixels: Vec<u8> = (0..(rows * k) as u64)
            .map(|i| if (i / 16 * 7 + i / k.max(1) as u64 + seed) % 3 == 0 { 0 } else { ((i * 31 + seed) % 256) as u8 })
            .collect();
        let unit: Vec<f32> = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
        let bound = |len: usize| 1e-5 * (1.0 + 4.0 * len as f32);
        let mut dw = vec![f32::NAN; k * n];
        let mut want_dw = vec![0.0; k * n];
        narrow::matmul_tn(rows, k, n, &x[..], &d, &mut dw);
        naive::gemm(k, n, rows, MatRef::row_major(&x, k).t(), MatRef::row_major(&d, n), &mut want_dw, n, false);
        for (g, v) in dw.iter().zip(&want_dw) {
            prop_assert!((g - v).abs() <= bound(rows), "{} vs {}", g, v);
        }
        let mut dw_px = vec![f32::NAN; k * n];
        narrow::matmul_tn(rows, k, n, &pixels[..], &d, &mut dw_px);
        narrow::matmul_tn(rows, k, n, &unit[..], &d, &mut dw);
        prop_assert_eq!(&dw_px, &dw);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Listed rows give the in-order sum over all inputs, one chain (zeros add nothing to it
    /// for finite weights), bit for bit and in their own places although they are multiplied in order
    /// of their counts, for any width up to 16, blocks of four rows cut short, rows not a
    /// multiple of the 32-byte windows, and lists relisted into used memory; for the
    /// classes' widths, exactly what `narrow::matmul` gives on the pixels.
    #[test]
    fn listed_rows_give_the_in_order_sum(rows in 0usize..14, k in prop_oneof![0usize..=70, Just(784)], n in 1usize..=16, pixels in sparse_pixels(14 * 784), seed in any::<u64>()) {
        use softnet::kernels::listed::{self, NonZeroRows, PackedWeights};
        use softnet::kernels::narrow;
        let px = &pixels[..rows * k];
        let unit: Vec<f32> = px.iter().map(|&p| f32::from(p) / 255.0).collect();
        let w: Vec<f32> = (0..k * n)
            .map(|i| ((i as u64).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        let mut x = NonZeroRows::new();
        // Listed over other rows first: relisting must replace every trace of them.
        x.list(&pixels, 14 * 784 / 33, 33);
        x.list(px, rows, k);
        prop_assert_eq!((x.rows(), x.k()), (rows, k));
        prop_assert_eq!(x.entries() % 4, 0);
        // Rows are blocked in order of their counts, each block padded to its longest row.
        let mut counts: Vec<usize> = px.chunks(k.max(1)).map(|r| r.iter().filter(|&&p| p != 0).count()).collect();
        counts.sort_unstable();
        let longest_per_block: usize = counts.chunks(4).map(|block| block[block.len() - 1]).sum();
        prop_assert_eq!(x.entries(), 4 * longest_per_block * usize::from(k > 0));
        let mut packed = PackedWeights::new();
        packed.pack(&[1.0; 16 * 80], 80, 16);
        packed.pack(&w, k, n);
        let mut got = vec![f32::NAN; rows * n];
        listed::matmul(&x, &packed, &mut got);
        prop_assert_eq!(&got, &in_blocks_fma_sum(rows, n, k, usize::MAX, &unit, &w));
        if (narrow::MIN_WIDTH..=narrow::MAX_WIDTH).contains(&n) {
            let mut from_narrow = vec![f32::NAN; rows * n];
            narrow::matmul(rows, k, n, px, &w, &mut from_narrow);
            prop_assert_eq!(&got, &from_narrow);
        }
    }
}

#[test]
fn listed_rows_skip_every_zero_input_even_against_infinite_weights() {
    use softnet::kernels::listed::{self, NonZeroRows, PackedWeights};
    // Row 0 is zero where the weights are infinite, row 1 is not: only row 1 meets them.
    let (k, n) = (40, 3);
    let mut px = vec![0u8; 5 * k];
    px[3] = 255;
    px[k + 7] = 51;
    px[4 * k + 39] = 1;
    let mut w = vec![0.5f32; k * n];
    w[7 * n..8 * n].fill(f32::INFINITY);
    let mut x = NonZeroRows::new();
    x.list(&px, 5, k);
    let mut packed = PackedWeights::new();
    packed.pack(&w, k, n);
    let mut out = vec![f32::NAN; 5 * n];
    listed::matmul(&x, &packed, &mut out);
    assert_eq!(&out[..n], &[0.5; 3]);
    assert_eq!(&out[n..2 * n], &[f32::INFINITY; 3]);
    assert_eq!(&out[2 * n..4 * n], &[0.0; 6]);
    assert_eq!(&out[4 * n..], &[0.5 / 255.0; 3]);
}

#[test]
#[should_panic(expected = "weights packed for 10 inputs, rows listed with 12")]
fn listed_rows_refuse_weights_packed_for_another_length() {
    use softnet::kernels::listed::{self, NonZeroRows, PackedWeights};
    let mut x = NonZeroRows::new();
    x.list(&[1; 24], 2, 12);
    let mut packed = PackedWeights::new();
    packed.pack(&[0.0; 100], 10, 10);
    listed::matmul(&x, &packed, &mut [0.0; 20]);
}
