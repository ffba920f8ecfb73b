//! AVX-512 VNNI: whether the CPU has it (detected once), and the one kernel that uses it,
//! the register tile of [`conv_int8`](super::conv_int8).
//!
//! VNNI is not a [`Level`](super::simd::Level) of its own: it adds integer dot products to
//! the AVX-512 level, and only the int8 kernels use them. So the int8 kernels run it where
//! the thread's level is AVX-512 and the CPU has VNNI (`SOFTNET_SIMD=portable` or `avx2`
//! turns it off with the rest of AVX-512), and this file keeps its `unsafe`, as
//! [`simd`](super::simd) keeps the levels'.

/// Whether the CPU has AVX-512 VNNI (`vpdpbusd`), detected on the first call only.
pub fn detected() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| {
            super::simd::Level::Avx512.is_supported()
                && std::arch::is_x86_feature_detected!("avx512vnni")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Output channels of one block of a packed filter: one vector of sixteen i32 sums.
pub(crate) const BLOCK: usize = 16;
/// Products each lane of `vpdpbusd` sums: four u8·i8 pairs.
pub(crate) const DEPTH: usize = 4;
/// Output positions of the register tile (rows of patches summed at once); the last
/// few positions go one at a time.
pub(crate) const TILE_ROWS: usize = 6;
/// Most output-channel blocks of the register tile: 6 x 4 accumulators, four filter vectors
/// and a broadcast fill 29 of the 32 registers.
const TILE_BLOCKS: usize = 4;

/// `out[p][c] = Σ_k patches[p][k] · w[k][c]` in i32 for `positions` patch rows of `kpad`
/// bytes (`kpad = 4 · k4`), with `packed` the filter as `[k4][blocks][16][4]` i8 (see
/// [`conv_int8`](super::conv_int8)) and `out` `[positions, cout]`.
///
/// `patches` holds at least `positions` rows.
///
/// # Panics
/// If the slices are shorter than that, or `detected()` is false.
pub(crate) fn matmul_u8_i8(
    patches: &[u8],
    positions: usize,
    kpad: usize,
    packed: &[i8],
    cout: usize,
    out: &mut [i32],
) {
    let blocks = cout.div_ceil(BLOCK);
    assert!(detected(), "this CPU has no AVX-512 VNNI");
    assert_eq!(kpad % DEPTH, 0, "patch rows hold whole groups of four");
    assert!(patches.len() >= positions * kpad);
    assert!(packed.len() >= kpad / DEPTH * blocks * BLOCK * DEPTH);
    assert!(out.len() >= positions * cout);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `detected()` is true, so the CPU has AVX-512 F, BW and VNNI; the lengths
    // `tiles` reads and writes were checked above.
    unsafe {
        x86::tiles(patches, positions, kpad, packed, cout, out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (patches, packed, out);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{BLOCK, DEPTH, TILE_BLOCKS, TILE_ROWS};

    /// # Safety
    /// The CPU has AVX-512 F, BW and VNNI, and the slices hold what
    /// [`matmul_u8_i8`](super::matmul_u8_i8) checks.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tiles(
        patches: &[u8],
        positions: usize,
        kpad: usize,
        packed: &[i8],
        cout: usize,
        out: &mut [i32],
    ) {
        let blocks = cout.div_ceil(BLOCK);
        let mut p0 = 0;
        while p0 < positions {
            // Whole tiles of rows; what is left (a batch of one image, say) one row at a
            // time, rather than computing rows only to drop them.
            let r = if positions - p0 >= TILE_ROWS {
                TILE_ROWS
            } else {
                1
            };
            let rows = &patches[p0 * kpad..][..r * kpad];
            let mut b0 = 0;
            while b0 < blocks {
                let nb = (blocks - b0).min(TILE_BLOCKS);
                let args = (rows, p0, kpad, packed, blocks, b0, cout);
                // SAFETY: as this function's contract; `rows` holds the r rows read.
                unsafe {
                    match (r, nb) {
                        (TILE_ROWS, 4) => tile::<4, TILE_ROWS>(args, out),
                        (TILE_ROWS, 3) => tile::<3, TILE_ROWS>(args, out),
                        (TILE_ROWS, 2) => tile::<2, TILE_ROWS>(args, out),
                        (TILE_ROWS, _) => tile::<1, TILE_ROWS>(args, out),
                        (_, 4) => tile::<4, 1>(args, out),
                        (_, 3) => tile::<3, 1>(args, out),
                        (_, 2) => tile::<2, 1>(args, out),
                        _ => tile::<1, 1>(args, out),
                    }
                }
                b0 += nb;
            }
            p0 += r;
        }
    }

    type TileArgs<'a> = (&'a [u8], usize, usize, &'a [i8], usize, usize, usize);

    /// One tile: `R` positions from `p0` (all inside `out`) by `NB` blocks from `b0`.
    ///
    /// # Safety
    /// As [`tiles`], and `rows` holds `R · kpad` bytes.
    #[inline(always)]
    unsafe fn tile<const NB: usize, const R: usize>(
        (rows, p0, kpad, packed, blocks, b0, cout): TileArgs<'_>,
        out: &mut [i32],
    ) {
        let k4 = kpad / DEPTH;
        // Filter bytes of one depth group.
        let group = blocks * BLOCK * DEPTH;
        // SAFETY (all intrinsics below): the caller guarantees AVX-512 F, BW and VNNI. The
        // loads read, per depth group `k < k4`, four bytes of each of the R rows (inside
        // `rows`, R · kpad bytes) and 64 bytes at `(k·blocks + b)·64` for
        // `b < b0 + NB <= blocks` (inside `packed`, k4 · blocks · 64 bytes, as checked); the
        // stores write rows `p0..p0 + R`, inside `out` (`positions · cout`, as checked).
        unsafe {
            let mut acc = [[_mm512_setzero_si512(); NB]; R];
            let w_base = packed.as_ptr().add(b0 * BLOCK * DEPTH);
            let x_base = rows.as_ptr();
            for k in 0..k4 {
                let w_at = w_base.add(k * group);
                let mut w = [_mm512_setzero_si512(); NB];
                for (j, v) in w.iter_mut().enumerate() {
                    *v = _mm512_loadu_si512(w_at.add(j * BLOCK * DEPTH).cast());
                }
                for (r, a) in acc.iter_mut().enumerate() {
                    let x4 = x_base
                        .add(r * kpad + k * DEPTH)
                        .cast::<i32>()
                        .read_unaligned();
                    let x = _mm512_set1_epi32(x4);
                    for (aj, wj) in a.iter_mut().zip(&w) {
                        *aj = _mm512_dpbusd_epi32(*aj, x, *wj);
                    }
                }
            }
            for (r, a) in acc.iter().enumerate() {
                let row = &mut out[(p0 + r) * cout..][..cout];
                for (j, aj) in a.iter().enumerate() {
                    let c0 = (b0 + j) * BLOCK;
                    let n = (cout - c0).min(BLOCK);
                    let mask = ((1u32 << n) - 1) as __mmask16;
                    // Writes the n lanes inside `row[c0..c0 + n]`.
                    _mm512_mask_storeu_epi32(row[c0..].as_mut_ptr(), mask, *aj);
                }
            }
        }
    }
}
