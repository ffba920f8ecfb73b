//! Products of u8 rows with a narrow weight matrix (at most 16 columns) over each row's
//! non-zero inputs, listed once and multiplied many times.
//!
//! Four in five MNIST pixels are zero. [`narrow::matmul`](super::narrow::matmul) skips the
//! groups of four inputs that are zero in four rows at once, which leaves about 370 of an
//! image's 784 inputs to multiply; a list of each row's non-zero inputs leaves about 150,
//! but making it costs about what it saves. It pays when the same rows are multiplied
//! again with new weights: the test set, evaluated every 100 steps of a run.
//!
//! [`NonZeroRows::list`] makes the lists, and [`matmul`] multiplies them with weights laid
//! out by [`PackedWeights::pack`]. Rows are multiplied four at a time, each block padded to
//! its longest row, so the lists take the rows in order of their counts: blocks of rows of
//! about the same length. On the test set, in the evaluator's chunks of 500 rows, padding is
//! 0.5% of the entries instead of 20%. Each output is the same left-to-right chain of
//! multiply-adds over the row's non-zero inputs that `narrow::matmul` computes: the results
//! are bit for bit the same for finite weights.
//!
//! The lists and the packed weights own their memory: making them allocates when they
//! grow; the product never does.

use super::simd::{dispatch, Simd, SimdKernel};
use crate::pixels::PIXEL_TO_UNIT;

/// Rows multiplied together, their lists interleaved: four independent chains of
/// multiply-adds hide each one's latency.
const BLOCK: usize = 4;
// `matmul` reads a step's four 16-bit positions as one word, and its four pixels as another.
const _: () = assert!(BLOCK == 4);

/// The non-zero inputs of u8 rows (pixels read as `value / 255`), listed for [`matmul`].
#[derive(Debug, Clone, Default)]
pub struct NonZeroRows {
    rows: usize,
    k: usize,
    /// The rows by their number of non-zero inputs (then by index): block `b` holds rows
    /// `order[4b..4b + 4]`.
    order: Vec<u32>,
    /// Each row's number of non-zero inputs, while the rows are ordered.
    counts: Vec<u32>,
    /// Block `b` has entries `starts[b]..starts[b + 1]`, four per step.
    starts: Vec<usize>,
    /// Input positions, one per row of the block at each step; `k` (a zero weight row)
    /// pads the rows with fewer non-zero inputs than the block's longest.
    positions: Vec<u16>,
    /// The inputs' pixels, in the same order (0 where padded), read as
    /// `PIXEL_TO_UNIT[pixel]`: a byte, not the four of its value, halves the lists' memory
    /// (4.6 MB instead of 9.1 for the test set) and took the product from 0.70-0.72 to
    /// 0.65 ns an entry (medians of 16 interleaved rounds).
    listed_pixels: Vec<u8>,
    /// One row's list, and a block's interleaved entries, while a block is made.
    row_list: Vec<u16>,
    block_positions: Vec<u16>,
    block_pixels: Vec<u8>,
}

impl NonZeroRows {
    /// No rows yet: [`NonZeroRows::list`] fills it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lists the non-zero inputs of `rows` rows of `k` pixels (`pixels`, row-major),
    /// replacing what was listed before and reusing its memory.
    ///
    /// # Panics
    /// If `pixels` is smaller than `rows x k`, `rows` does not fit a `u32`, or `k` does not
    /// fit a `u16` below its maximum (positions are stored in 16 bits, and `k` itself pads).
    pub fn list(&mut self, pixels: &[u8], rows: usize, k: usize) {
        assert!(
            k < usize::from(u16::MAX),
            "rows of {k} inputs are too long to list"
        );
        assert!(
            u32::try_from(rows).is_ok(),
            "{rows} rows are too many to list"
        );
        assert!(
            pixels.len() >= rows * k,
            "pixels are smaller than {rows}x{k}"
        );
        self.rows = rows;
        self.k = k;
        let row = |r: u32| &pixels[r as usize * k..(r as usize + 1) * k];
        // Counted first, so the rows can be ordered and the lists take exactly the memory
        // they need.
        self.counts.clear();
        self.counts
            .extend((0..rows as u32).map(|r| count_nonzero(row(r)) as u32));
        self.order.clear();
        self.order.extend(0..rows as u32);
        let counts = &self.counts;
        self.order
            .sort_unstable_by_key(|&r| (counts[r as usize], r));
        self.starts.clear();
        self.starts.push(0);
        for block in self.order.chunks(BLOCK) {
            let longest = counts[*block.last().expect("blocks are not empty") as usize];
            let end = self.starts[self.starts.len() - 1] + longest as usize * BLOCK;
            self.starts.push(end);
        }
        let entries = self.starts[self.starts.len() - 1];
        self.positions.clear();
        self.positions.reserve_exact(entries);
        self.listed_pixels.clear();
        self.listed_pixels.reserve_exact(entries);
        // Each row's list has eight slots of slack: listing writes eight at a time.
        let stride = k + 8;
        self.row_list.resize(stride, 0);
        // A block's entries are interleaved here, in cache, then appended whole.
        self.block_positions.resize(BLOCK * k, 0);
        self.block_pixels.resize(BLOCK * k, 0);
        for (span, block) in self.starts.windows(2).zip(self.order.chunks(BLOCK)) {
            let len = span[1] - span[0];
            let (positions, block_pixels) = (
                &mut self.block_positions[..len],
                &mut self.block_pixels[..len],
            );
            positions.fill(k as u16);
            block_pixels.fill(0);
            for (i, &r) in block.iter().enumerate() {
                let pixels = row(r);
                let listed = list_nonzero(pixels, &mut self.row_list);
                for (step, &p) in self.row_list[..listed].iter().enumerate() {
                    positions[step * BLOCK + i] = p;
                    block_pixels[step * BLOCK + i] = pixels[usize::from(p)];
                }
            }
            self.positions.extend_from_slice(positions);
            self.listed_pixels.extend_from_slice(block_pixels);
        }
    }

    /// Number of rows listed.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Inputs per row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Entries stored, padding included (four per step of each block of four rows).
    pub fn entries(&self) -> usize {
        self.positions.len()
    }
}

/// Bit `i` is set when byte `i` of the 32-byte `window` is not zero.
#[inline(always)]
fn nonzero_mask<S: Simd>(s: S, window: &[u8]) -> u32 {
    s.nonzero_bytes32(window.try_into().expect("32 bytes"))
}

/// Number of non-zero bytes in `row`.
fn count_nonzero(row: &[u8]) -> usize {
    struct Count<'a>(&'a [u8]);
    impl SimdKernel for Count<'_> {
        type Output = usize;
        #[inline(always)]
        fn run<S: Simd>(self, s: S) -> usize {
            let mut windows = self.0.chunks_exact(32);
            let count: usize = (&mut windows)
                .map(|window| nonzero_mask(s, window).count_ones() as usize)
                .sum();
            count + windows.remainder().iter().filter(|&&b| b != 0).count()
        }
    }
    dispatch(Count(row))
}

/// Writes the positions of `row`'s non-zero bytes to `list`, in order, and returns how
/// many there are. `list` needs eight slots more than `row` has bytes: they are written
/// eight at a time, without branches.
fn list_nonzero(row: &[u8], list: &mut [u16]) -> usize {
    struct List<'a>(&'a [u8], &'a mut [u16]);
    impl SimdKernel for List<'_> {
        type Output = usize;
        #[inline(always)]
        fn run<S: Simd>(self, s: S) -> usize {
            list_nonzero_with(s, self.0, self.1)
        }
    }
    dispatch(List(row, list))
}

#[inline(always)]
fn list_nonzero_with<S: Simd>(s: S, row: &[u8], list: &mut [u16]) -> usize {
    let mut windows = row.chunks_exact(32);
    let (mut count, mut at) = (0, 0u16);
    for window in &mut windows {
        let nonzero = nonzero_mask(s, window);
        for byte in 0..4 {
            count = super::list_set_bits(nonzero >> (8 * byte), at + 8 * byte as u16, list, count);
        }
        at += 32;
    }
    for &byte in windows.remainder() {
        list[count] = at;
        count += usize::from(byte != 0);
        at += 1;
    }
    count
}

/// One packed weight row, aligned as a vector of sixteen is.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Row([f32; 16]);

/// A weight matrix `w[k, n]` laid out for [`matmul`]: each row as one aligned vector of
/// sixteen (columns past `n` zero; one AVX-512 register, or two AVX2 ones), and one more
/// row of zeros, which padded entries meet.
#[derive(Debug, Clone, Default)]
pub struct PackedWeights {
    rows: Vec<Row>,
    k: usize,
    n: usize,
}

impl PackedWeights {
    /// Nothing packed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lays out `w[k, n]` (row-major), reusing the memory of the last layout.
    ///
    /// # Panics
    /// If `n` is 0 or above 16, or `w` is smaller than `k x n`.
    pub fn pack(&mut self, w: &[f32], k: usize, n: usize) {
        assert!(
            (1..=16).contains(&n),
            "packed weights take 1 to 16 columns, not {n}"
        );
        assert!(w.len() >= k * n, "w is smaller than {k}x{n}");
        self.k = k;
        self.n = n;
        self.rows.clear();
        dispatch(Pack {
            w: &w[..k * n],
            k,
            n,
            rows: &mut self.rows,
        });
        self.rows.push(Row::default());
    }
}

/// [`PackedWeights::pack`]'s work, for [`dispatch`].
struct Pack<'a> {
    w: &'a [f32],
    k: usize,
    n: usize,
    rows: &'a mut Vec<Row>,
}

impl SimdKernel for Pack<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let Pack { w, k, n, rows } = self;
        // Lanes past `n` are zeroed by ANDing with a mask. Building the lanes one by one
        // (stores into an array read back as one vector would wait for the stores) cost
        // about 10 ns a row.
        let keep = s.load_array(&std::array::from_fn(|j| {
            f32::from_bits(if j < n { u32::MAX } else { 0 })
        }));
        rows.extend((0..k).map(|r| {
            // Sixteen values from the row's start on, reaching into the next rows; the last
            // rows, which the sixteen would run past the end from, are loaded partially.
            let lanes = match w.get(r * n..r * n + 16) {
                Some(lanes) => s.load(lanes),
                None => s.load_partial(&w[r * n..(r + 1) * n]),
            };
            Row(s.to_array(s.and(lanes, keep)))
        }));
    }
}

/// `out[rows, n] = x[rows, k] · w[k, n]` over the listed non-zero inputs of `x`
/// (row-major, `out` overwritten).
///
/// # Panics
/// If `w` was packed for another `k` than `x` was listed with, or `out` is smaller than
/// `rows x n`.
pub fn matmul(x: &NonZeroRows, w: &PackedWeights, out: &mut [f32]) {
    let n = w.n;
    assert_eq!(
        w.k, x.k,
        "weights packed for {} inputs, rows listed with {}",
        w.k, x.k
    );
    assert!(
        out.len() >= x.rows * n,
        "out is smaller than {}x{n}",
        x.rows
    );
    dispatch(Matmul { x, w, out });
}

/// [`matmul`]'s checked arguments, for [`dispatch`].
struct Matmul<'a> {
    x: &'a NonZeroRows,
    w: &'a PackedWeights,
    out: &'a mut [f32],
}

impl SimdKernel for Matmul<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let Matmul { x, w, out } = self;
        let n = w.n;
        for (span, block) in x.starts.windows(2).zip(x.order.chunks(BLOCK)) {
            let (positions, pixels) = (
                &x.positions[span[0]..span[1]],
                &x.listed_pixels[span[0]..span[1]],
            );
            let mut acc = [s.zero(); BLOCK];
            for (ps, px) in positions
                .chunks_exact(BLOCK)
                .zip(pixels.chunks_exact(BLOCK))
            {
                // The step's four positions, and its four pixels, read as one word each, not
                // four loads: loads, not multiply-adds, bound this loop.
                let step = u64::from(ps[0])
                    | u64::from(ps[1]) << 16
                    | u64::from(ps[2]) << 32
                    | u64::from(ps[3]) << 48;
                let step_pixels = u32::from(px[0])
                    | u32::from(px[1]) << 8
                    | u32::from(px[2]) << 16
                    | u32::from(px[3]) << 24;
                for (i, acc) in acc.iter_mut().enumerate() {
                    let wrow = s.load_array(&w.rows[usize::from((step >> (16 * i)) as u16)].0);
                    let value = PIXEL_TO_UNIT[usize::from((step_pixels >> (8 * i)) as u8)];
                    *acc = s.mul_add(s.splat(value), wrow, *acc);
                }
            }
            for (&a, &r) in acc.iter().zip(block) {
                let r = r as usize;
                let row = &mut out[r * n..(r + 1) * n];
                super::copy_short::<10>(row, &s.to_array(a));
            }
        }
    }
}
