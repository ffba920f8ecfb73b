//! Cache-blocked, packed matrix multiply: `C = A·B` or `C += A·B`, f32, any strides.
//!
//! The BLIS loop nest: B is packed into `KC x NR` panels and A into `MR x KC` panels (packing
//! also absorbs transposes, so `Xᵀ·dZ` and `dZ·Wᵀ` need no copies of their own), then a
//! `MR x NR` register-tiled microkernel runs over the packed panels. Packing buffers live in
//! a [`GemmWorkspace`] the caller creates once, so a multiply never allocates.

use std::ops::Range;

use super::prefetch;
use super::simd::{dispatch, Simd, SimdKernel};

/// Most rows of a microkernel tile, [`Simd::MR`] of some level: eight with AVX-512's 32
/// registers, four with AVX2's 16.
///
/// A tile row is one vector of sixteen accumulators (one AVX-512 register or two AVX2
/// ones), so AVX2 holds 4x2 and AVX-512 8x1, and each depth's row of B is used by eight
/// broadcasts instead of four; taller tiles (twelve, sixteen rows) measured slower.
/// AVX-512 runs two such tiles side by side (8x32, sixteen accumulators) where a block
/// has two panels of B left.
pub const MAX_MR: usize = 8;
/// Fewest rows of a microkernel tile: the workspace keeps a list per panel of this height.
const MIN_MR: usize = 4;
/// Columns of the microkernel tile (one vector of sixteen).
pub const NR: usize = 16;
/// Depth of a packed block (its A panel stays in L1, its B block in L2).
pub const KC: usize = 256;
/// Rows of A packed at a time.
pub const MC: usize = 96;
const _: () = assert!(
    MC % MAX_MR == 0 && MC % MIN_MR == 0,
    "row blocks hold whole panels"
);
/// Columns of B packed at a time.
pub const NC: usize = 512;
// Depths within a block are listed as u16.
const _: () = assert!(KC <= 1 << 16);

/// A read-only strided matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
///
/// A row-major `[rows, cols]` buffer is `MatRef::row_major(data, cols)`; its transpose is the
/// same buffer with the strides swapped ([`MatRef::t`]).
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Distance between consecutive rows.
    pub row_stride: usize,
    /// Distance between consecutive columns.
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn row_major(data: &'a [f32], cols: usize) -> Self {
        MatRef {
            data,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose: the same elements with rows and columns swapped.
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

/// A strided matrix of u8 pixels read as `value / 255` (the tutorial's scaling), so the
/// first layer multiplies dataset bytes directly: packing converts them, and no f32 copy
/// of the input is ever made.
#[derive(Debug, Clone, Copy)]
pub struct PixelRef<'a> {
    /// The pixels.
    pub data: &'a [u8],
    /// Distance between consecutive rows.
    pub row_stride: usize,
    /// Distance between consecutive columns.
    pub col_stride: usize,
}

impl<'a> PixelRef<'a> {
    /// A row-major matrix of pixels with `cols` columns.
    pub fn row_major(data: &'a [u8], cols: usize) -> Self {
        PixelRef {
            data,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose.
    pub fn t(self) -> Self {
        PixelRef {
            data: self.data,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

/// A matrix the left operand of [`gemm`] can be packed from.
pub trait Operand: Copy {
    /// Element `(i, j)` as f32.
    fn at(&self, i: usize, j: usize) -> f32;
    /// Number of stored elements.
    fn len(&self) -> usize;
    /// `(row_stride, col_stride)`.
    fn strides(&self) -> (usize, usize);
    /// Whether no element is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Packs rows `i0..i0+live` (live <= MR) and columns `p0..p0+kc` into `dst`
    /// (`[kc][MR]`, rows past `live` zero).
    #[inline(always)]
    fn pack_panel<S: Simd, const MR: usize>(
        &self,
        _s: S,
        i0: usize,
        live: usize,
        p0: usize,
        kc: usize,
        dst: &mut [f32],
    ) {
        pack_strided::<Self, MR>(self, i0, live, p0, kc, dst);
    }
    /// Writes the depths `p < k` where row 0 is not zero (bits, so `-0.0` counts as not
    /// zero) to `listed`, in order, and returns how many; `listed` holds `k + 8` entries.
    ///
    /// Inlined into the kernel like every helper it calls: out of line it would be built
    /// for the crate's baseline, where `count_ones` is a dozen instructions instead of one.
    #[inline(always)]
    fn list_live_in_row0(&self, k: usize, listed: &mut [u16]) -> usize {
        list_where(0..k, listed, 0, |p| self.at(0, p).to_bits() != 0)
    }
    /// The largest index a `rows x cols` view touches, plus one (0 for an empty view).
    fn extent(&self, rows: usize, cols: usize) -> usize {
        let (rs, cs) = self.strides();
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs + (cols - 1) * cs + 1
        }
    }
}

/// Packing element by element, for any strides: rows `i0..i0+live` and depths `p0..p0+kc`
/// into `dst` (`[kc][MR]`, rows past `live` zero).
#[inline(always)]
fn pack_strided<O: Operand, const MR: usize>(
    op: &O,
    i0: usize,
    live: usize,
    p0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    for (p, slot) in dst.chunks_exact_mut(MR).take(kc).enumerate() {
        for (r, v) in slot.iter_mut().enumerate() {
            *v = if r < live { op.at(i0 + r, p0 + p) } else { 0.0 };
        }
    }
}

/// Packing for a strided source whose rows or columns are contiguous: a row-major panel is
/// copied row by row, a transposed one (`Xᵀ`) MR values at a time.
#[inline(always)]
fn pack_contiguous<S: Simd, const MR: usize, T: Copy>(
    s: S,
    data: &[T],
    (rs, cs): (usize, usize),
    (i0, live, p0, kc): (usize, usize, usize, usize),
    dst: &mut [f32],
    conv: impl Fn(T) -> f32,
) -> bool {
    if cs == 1 {
        let mut done = 0;
        if MR == 8 && live == MR {
            // Eight depths of the eight rows at a time, transposed in registers: one store
            // of eight values per depth instead of eight single ones.
            let rows: [&[T]; 8] = std::array::from_fn(|r| &data[(i0 + r) * rs + p0..][..kc]);
            while done + 8 <= kc {
                let columns =
                    std::array::from_fn(|r| std::array::from_fn(|j| conv(rows[r][done + j])));
                for (j, depth) in s.transpose8(&columns).iter().enumerate() {
                    dst[(done + j) * MR..][..8].copy_from_slice(depth);
                }
                done += 8;
            }
        }
        if done == kc {
            return true;
        }
        let (p0, kc, dst) = (p0 + done, kc - done, &mut dst[done * MR..]);
        for r in 0..MR {
            if r < live {
                let src = &data[(i0 + r) * rs + p0..][..kc];
                for (slot, &v) in dst.chunks_exact_mut(MR).zip(src) {
                    slot[r] = conv(v);
                }
            } else {
                for slot in dst.chunks_exact_mut(MR).take(kc) {
                    slot[r] = 0.0;
                }
            }
        }
        true
    } else if rs == 1 {
        let slots = dst.chunks_exact_mut(MR).take(kc).enumerate();
        if live == MR {
            // A whole panel copies MR values a depth at a fixed size: with the run-time
            // `live` as its length, the copy was a call to `memmove` per depth (4% of an
            // MLP step, whose weight gradient `Xᵀ·d` packs this way).
            for (p, slot) in slots {
                let src: &[T; MR] = data[(p0 + p) * cs + i0..][..MR]
                    .try_into()
                    .expect("MR values");
                for (d, &v) in slot.iter_mut().zip(src) {
                    *d = conv(v);
                }
            }
        } else {
            for (p, slot) in slots {
                let src = &data[(p0 + p) * cs + i0..][..live];
                for (d, &v) in slot.iter_mut().zip(src) {
                    *d = conv(v);
                }
                slot[live..].fill(0.0);
            }
        }
        true
    } else {
        false
    }
}

impl Operand for MatRef<'_> {
    #[inline(always)]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }
    #[inline(always)]
    fn pack_panel<S: Simd, const MR: usize>(
        &self,
        s: S,
        i0: usize,
        live: usize,
        p0: usize,
        kc: usize,
        dst: &mut [f32],
    ) {
        let shape = (i0, live, p0, kc);
        if !pack_contiguous::<S, MR, f32>(s, self.data, self.strides(), shape, dst, |v| v) {
            pack_strided::<Self, MR>(self, i0, live, p0, kc, dst);
        }
    }
    fn len(&self) -> usize {
        self.data.len()
    }
    fn strides(&self) -> (usize, usize) {
        (self.row_stride, self.col_stride)
    }
}

impl Operand for PixelRef<'_> {
    #[inline(always)]
    fn pack_panel<S: Simd, const MR: usize>(
        &self,
        s: S,
        i0: usize,
        live: usize,
        p0: usize,
        kc: usize,
        dst: &mut [f32],
    ) {
        let shape = (i0, live, p0, kc);
        let unit = |v: u8| crate::pixels::PIXEL_TO_UNIT[usize::from(v)];
        if !pack_contiguous::<S, MR, u8>(s, self.data, self.strides(), shape, dst, unit) {
            pack_strided::<Self, MR>(self, i0, live, p0, kc, dst);
        }
    }
    /// Eight pixels per test when the row is contiguous (a single image): its zero bytes
    /// are found with integer arithmetic and the rest listed through a table.
    #[inline(always)]
    fn list_live_in_row0(&self, k: usize, listed: &mut [u16]) -> usize {
        if self.col_stride != 1 {
            return list_where(0..k, listed, 0, |p| self.data[p * self.col_stride] != 0);
        }
        let row = &self.data[..k];
        let mut count = 0;
        let mut words = row.chunks_exact(8);
        for (at, word) in (0..).step_by(8).zip(&mut words) {
            let word = u64::from_le_bytes(word.try_into().expect("8 pixels"));
            count = super::list_set_bits(super::nonzero_bytes(word), at, listed, count);
        }
        let tail_at = k - words.remainder().len();
        list_where(tail_at..k, listed, count, |p| row[p] != 0)
    }
    #[inline(always)]
    fn at(&self, i: usize, j: usize) -> f32 {
        crate::pixels::PIXEL_TO_UNIT
            [usize::from(self.data[i * self.row_stride + j * self.col_stride])]
    }
    fn len(&self) -> usize {
        self.data.len()
    }
    fn strides(&self) -> (usize, usize) {
        (self.row_stride, self.col_stride)
    }
}

/// Appends the depths of `depths` where `live` holds to `listed` from `count`, in order and
/// without branches; returns the new count.
#[inline(always)]
fn list_where(
    depths: std::ops::Range<usize>,
    listed: &mut [u16],
    mut count: usize,
    live: impl Fn(usize) -> bool,
) -> usize {
    for p in depths {
        listed[count] = p as u16;
        count += usize::from(live(p));
    }
    count
}

/// Packing buffers for [`gemm`], allocated once and reused by every call.
#[derive(Debug, Clone)]
pub struct GemmWorkspace {
    packed_a: Vec<f32>, // [MC / MR][KC][MR], for the level's MR
    packed_b: Vec<f32>, // [NC / NR][KC][NR]
    /// Per A panel, the depths `p` where some of its MR values is not zero (a single
    /// row's, all of them, when A has one row).
    live_depths: Vec<u16>, // [MC / MR][KC], room for the smallest MR
    /// Per A panel, how many of `live_depths` are listed.
    live_counts: Vec<usize>, // [MC / MR], room for the smallest MR
}

impl Default for GemmWorkspace {
    fn default() -> Self {
        Self::new()
    }
}

impl GemmWorkspace {
    /// Allocates the packing buffers (about 600 KB), and chooses the process's SIMD level
    /// if no kernel has yet: reading `SOFTNET_SIMD` allocates, which the kernels promise
    /// not to do.
    pub fn new() -> Self {
        super::simd::Level::process();
        GemmWorkspace {
            packed_a: vec![0.0; MC * KC],
            packed_b: vec![0.0; NC * KC],
            live_depths: vec![0; MC / MIN_MR * KC],
            live_counts: vec![0; MC / MIN_MR],
        }
    }
}

/// `C[m, n] = A[m, k] · B[k, n]`, or `C += A·B` when `accumulate`; C is row-major with row
/// stride `ldc`.
///
/// Each output is summed in order of depth within a block of [`KC`]. Depths where all the
/// rows of an A panel are zero are skipped: for a finite B that changes no bit of the
/// result (it only saves the work), but a zero meeting an infinite or NaN B adds nothing
/// instead of NaN, as in a sparse product.
///
/// ```
/// use softnet::kernels::{gemm, GemmWorkspace, MatRef};
/// let a = [1.0, 2.0, 3.0, 4.0]; // [2, 2]
/// let b = [5.0, 6.0, 7.0, 8.0]; // [2, 2]
/// let mut c = [0.0; 4];
/// let mut ws = GemmWorkspace::new();
/// gemm(2, 2, 2, MatRef::row_major(&a, 2), MatRef::row_major(&b, 2), &mut c, 2, false, &mut ws);
/// assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn gemm<A: Operand>(
    m: usize,
    n: usize,
    k: usize,
    a: A,
    b: MatRef<'_>,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    ws: &mut GemmWorkspace,
) {
    assert!(a.extent(m, k) <= a.len(), "A is smaller than {m}x{k}");
    assert!(b.extent(k, n) <= b.len(), "B is smaller than {k}x{n}");
    assert!(n <= ldc || m == 0, "ldc {ldc} is below n {n}");
    assert!(
        m == 0 || (m - 1) * ldc + n <= c.len(),
        "C is smaller than {m}x{n}"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in c.chunks_mut(ldc).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    dispatch(Gemm {
        m,
        n,
        k,
        a,
        b,
        c,
        ldc,
        accumulate,
        ws,
    });
}

/// [`gemm`]'s arguments, checked, for [`dispatch`].
struct Gemm<'a, 'b, A> {
    m: usize,
    n: usize,
    k: usize,
    a: A,
    b: MatRef<'b>,
    c: &'a mut [f32],
    ldc: usize,
    accumulate: bool,
    ws: &'a mut GemmWorkspace,
}

impl<A: Operand> SimdKernel for Gemm<'_, '_, A> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        // The tile height is a constant of the level: the branch not taken is never built.
        if S::MR == 8 {
            blocked::<S, A, 8>(s, self)
        } else {
            blocked::<S, A, 4>(s, self)
        }
    }
}

/// The loop nest of [`gemm`] with `MR`-row tiles.
#[inline(always)]
fn blocked<S: Simd, A: Operand, const MR: usize>(s: S, g: Gemm<'_, '_, A>) {
    let Gemm {
        m,
        n,
        k,
        a,
        b,
        c,
        ldc,
        accumulate,
        ws,
    } = g;
    if m == 1 && b.col_stride == 1 {
        row_times_matrix(s, k, n, a, b, &mut c[..n], accumulate, &mut ws.live_depths);
        return;
    }
    // LOOP 5: split n into NC-wide column blocks.
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        // LOOP 4: split k into KC-deep slices; the first overwrites C unless accumulating.
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let add = accumulate || pc > 0;
            pack_b(s, b, pc, kc, jc, nc, &mut ws.packed_b);
            // LOOP 3: split m into MC-tall row blocks.
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                pack_a::<S, A, MR>(s, a, ic, mc, pc, kc, ws);
                // LOOP 2 and 1: NR-wide (two panels at a time with eight-row tiles) and
                // MR-tall microtiles.
                let mut jr = 0;
                while jr < nc {
                    let nr = NR.min(nc - jr);
                    let (panel_b, ldb) = b_panel(&b, &ws.packed_b, pc, kc, jc, jr, nr);
                    // AVX-512's 32 registers hold an 8x32 tile: sixteen accumulators hide
                    // the multiply-adds' latency that eight only just cover, and each
                    // broadcast of A serves two vectors of B. Both halves sum each output
                    // in the same order as two 8x16 tiles would, so no bit changes.
                    let wide = MR == 8 && nc - jr > NR;
                    let second = wide.then(|| {
                        let nr2 = NR.min(nc - jr - NR);
                        (nr2, b_panel(&b, &ws.packed_b, pc, kc, jc, jr + NR, nr2))
                    });
                    for ir in (0..mc).step_by(MR) {
                        let mr = MR.min(mc - ir);
                        let panel = ir / MR;
                        let panel_a = &ws.packed_a[panel * kc * MR..][..kc * MR];
                        let live = &ws.live_depths[panel * KC..][..ws.live_counts[panel]];
                        let c_at = (ic + ir) * ldc + jc + jr;
                        if let Some((nr2, (panel_b2, ldb2))) = second {
                            let bs = [(panel_b, ldb), (panel_b2, ldb2)];
                            let [left, right] = if live.len() == kc {
                                microkernel_wide::<S, MR>(s, kc, panel_a, bs)
                            } else {
                                microkernel_wide_listed::<S, MR>(s, live, panel_a, bs)
                            };
                            store_tile(s, &left, mr, nr, &mut c[c_at..], ldc, add);
                            store_tile(s, &right, mr, nr2, &mut c[c_at + NR..], ldc, add);
                            continue;
                        }
                        let tile = if live.len() == kc {
                            microkernel::<S, MR>(s, kc, panel_a, panel_b, ldb)
                        } else {
                            microkernel_listed::<S, MR>(s, live, panel_a, panel_b, ldb)
                        };
                        store_tile(s, &tile, mr, nr, &mut c[c_at..], ldc, add);
                    }
                    jr += if wide { 2 * NR } else { NR };
                }
            }
        }
    }
}

/// The NR-wide panel of B at column `jc + jr` of the block at depth `pc` (`nr` columns
/// live), with the distance between its rows: in place, or in `packed_b`.
#[inline(always)]
fn b_panel<'p>(
    b: &MatRef<'p>,
    packed_b: &'p [f32],
    pc: usize,
    kc: usize,
    jc: usize,
    jr: usize,
    nr: usize,
) -> (&'p [f32], usize) {
    if in_place(b, nr) {
        let at = pc * b.row_stride + jc + jr;
        (&b.data[at..at + (kc - 1) * b.row_stride + NR], b.row_stride)
    } else {
        (&packed_b[(jr / NR) * kc * NR..][..kc * NR], NR)
    }
}

/// Packs `A[ic..ic+mc, pc..pc+kc]` into MR-row panels, `[panel][p][MR]`, zero-padding the
/// last panel, and lists each panel's depths that are not all zero.
///
/// Inputs are sparse (four in five MNIST pixels are 0, and so are many ReLU outputs): a depth
/// whose MR values are all zero adds nothing to the tile, so the microkernel skips it. The
/// list costs one pass over the panel, which every NR-wide tile of the row block reuses.
#[inline(always)]
fn pack_a<S: Simd, A: Operand, const MR: usize>(
    s: S,
    a: A,
    ic: usize,
    mc: usize,
    pc: usize,
    kc: usize,
    ws: &mut GemmWorkspace,
) {
    for (panel, rows) in (0..mc).step_by(MR).enumerate() {
        let dst = &mut ws.packed_a[panel * kc * MR..][..kc * MR];
        a.pack_panel::<S, MR>(s, ic + rows, MR.min(mc - rows), pc, kc, dst);
        let live = &mut ws.live_depths[panel * KC..][..kc];
        let mut listed = 0;
        for (p, values) in dst.chunks_exact(MR).enumerate() {
            live[listed] = p as u16;
            // Bits, not `!= 0.0`: a -0.0 is kept, so the skipped products are exactly +0.
            let any_bits = values.iter().fold(0, |bits, v| bits | v.to_bits());
            listed += usize::from(any_bits != 0);
        }
        ws.live_counts[panel] = listed;
    }
}

/// Whether the NR-wide panel of B at column `col` can be read in place (contiguous rows
/// and all NR columns live, rows not too far apart): then it needs no packing.
#[inline(always)]
fn in_place(b: &MatRef<'_>, live: usize) -> bool {
    b.col_stride == 1 && live == NR && b.row_stride <= MAX_IN_PLACE_STRIDE
}

/// Farthest apart (in floats) the rows of a B panel read in place may be. A panel's rows
/// four kilobytes or more apart (a dense layer of 1024 outputs) fall into a few sets of the
/// caches, which cannot hold the panel while the row block's tiles reuse it: the CNN's
/// forward product through fc1 took more than twice the time of its input gradient, whose
/// transposed B is packed, until its B was packed too.
const MAX_IN_PLACE_STRIDE: usize = 512;

/// Packs the panels of `B[pc..pc+kc, jc..jc+nc]` that cannot be read in place into
/// NR-column panels, `[panel][p][NR]`, zero-padding the last one.
#[inline(always)]
fn pack_b<S: Simd>(
    s: S,
    b: MatRef<'_>,
    pc: usize,
    kc: usize,
    jc: usize,
    nc: usize,
    out: &mut [f32],
) {
    for (panel, cols) in (0..nc).step_by(NR).enumerate() {
        let live = NR.min(nc - cols);
        if in_place(&b, live) {
            continue;
        }
        let dst = &mut out[panel * kc * NR..][..kc * NR];
        let mut done = 0;
        if b.row_stride == 1 && live == NR {
            // A transposed B (`d·Wᵀ`): each column is a contiguous row of W. Eight depths of
            // eight columns at a time, transposed in registers, instead of one strided load
            // and one store per value.
            let cs = b.col_stride;
            while done + 8 <= kc {
                for half in 0..NR / 8 {
                    let mut columns = [[0.0f32; 8]; 8];
                    for (r, column) in columns.iter_mut().enumerate() {
                        let at = (jc + cols + half * 8 + r) * cs + pc + done;
                        column.copy_from_slice(&b.data[at..at + 8]);
                    }
                    for (d, depth) in s.transpose8(&columns).iter().enumerate() {
                        dst[(done + d) * NR + half * 8..][..8].copy_from_slice(depth);
                    }
                }
                done += 8;
            }
        }
        if b.col_stride == 1 && live == NR {
            // Rows read in place elsewhere, packed here for being far apart: a row copy.
            for (p, row) in dst.chunks_exact_mut(NR).enumerate() {
                let at = (pc + p) * b.row_stride + jc + cols;
                row.copy_from_slice(&b.data[at..at + NR]);
            }
            continue;
        }
        for (p, row) in dst.chunks_exact_mut(NR).enumerate().skip(done) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = if j < live {
                    b.at(pc + p, jc + cols + j)
                } else {
                    0.0
                };
            }
        }
    }
}

/// The MR x NR register tile of `panel_a · B` over depth `kc`, B's rows `ldb` apart.
#[inline(always)]
fn microkernel<S: Simd, const MR: usize>(
    s: S,
    kc: usize,
    panel_a: &[f32],
    b: &[f32],
    ldb: usize,
) -> [S::F32; MR] {
    let mut acc = [s.zero(); MR];
    for (p, a) in panel_a.chunks_exact(MR).take(kc).enumerate() {
        add_depth(s, &mut acc, a, &b[p * ldb..p * ldb + NR]);
    }
    acc
}

/// [`microkernel`] over the depths `live` alone (the others' A values are all zero).
#[inline(always)]
fn microkernel_listed<S: Simd, const MR: usize>(
    s: S,
    live: &[u16],
    panel_a: &[f32],
    b: &[f32],
    ldb: usize,
) -> [S::F32; MR] {
    let mut acc = [s.zero(); MR];
    for &p in live {
        let p = usize::from(p);
        add_depth(
            s,
            &mut acc,
            &panel_a[p * MR..p * MR + MR],
            &b[p * ldb..p * ldb + NR],
        );
    }
    acc
}

/// Two side-by-side MR x NR tiles of `panel_a · B` over depth `kc`; `bs` holds each
/// tile's panel of B with the distance between its rows. Each output is summed in the order
/// [`microkernel`] sums it.
#[inline(always)]
fn microkernel_wide<S: Simd, const MR: usize>(
    s: S,
    kc: usize,
    panel_a: &[f32],
    bs: [(&[f32], usize); 2],
) -> [[S::F32; MR]; 2] {
    let [(b0, ldb0), (b1, ldb1)] = bs;
    let mut tiles = [[s.zero(); MR]; 2];
    let a = panel_a.chunks_exact(MR).take(kc);
    if ldb0 == NR && ldb1 == NR {
        // Packed panels, rows of exactly NR: the loads need no bounds checks, which were
        // a third of the loop's instructions.
        let rows = b0.chunks_exact(NR).zip(b1.chunks_exact(NR));
        for (a, (row0, row1)) in a.zip(rows) {
            add_depth_wide(s, &mut tiles, a, [row0, row1]);
        }
    } else {
        // Rows read in place may lie closer together than NR (and overlap).
        for (p, a) in a.enumerate() {
            let rows = [&b0[p * ldb0..p * ldb0 + NR], &b1[p * ldb1..p * ldb1 + NR]];
            add_depth_wide(s, &mut tiles, a, rows);
        }
    }
    tiles
}

/// [`microkernel_wide`] over the depths `live` alone (the others' A values are all zero).
#[inline(always)]
fn microkernel_wide_listed<S: Simd, const MR: usize>(
    s: S,
    live: &[u16],
    panel_a: &[f32],
    bs: [(&[f32], usize); 2],
) -> [[S::F32; MR]; 2] {
    let [(b0, ldb0), (b1, ldb1)] = bs;
    let mut tiles = [[s.zero(); MR]; 2];
    for &p in live {
        let p = usize::from(p);
        let rows = [&b0[p * ldb0..p * ldb0 + NR], &b1[p * ldb1..p * ldb1 + NR]];
        add_depth_wide(s, &mut tiles, &panel_a[p * MR..p * MR + MR], rows);
    }
    tiles
}

/// One depth of two tiles: `tiles[t][r] += a[r] · rows[t]`, each broadcast of A serving
/// both rows of B.
#[inline(always)]
fn add_depth_wide<S: Simd, const MR: usize>(
    s: S,
    tiles: &mut [[S::F32; MR]; 2],
    a: &[f32],
    rows: [&[f32]; 2],
) {
    let x0 = s.load(rows[0]);
    let x1 = s.load(rows[1]);
    let a = &a[..MR];
    let [left, right] = tiles;
    for r in 0..MR {
        let ar = s.splat(a[r]);
        left[r] = s.mul_add(ar, x0, left[r]);
        right[r] = s.mul_add(ar, x1, right[r]);
    }
}

/// One depth of the tile: `acc[r] += a[r] · row` for the MR values of A and a row of NR of B.
#[inline(always)]
fn add_depth<S: Simd, const MR: usize>(s: S, acc: &mut [S::F32; MR], a: &[f32], row: &[f32]) {
    let b = s.load(row);
    let a = &a[..MR];
    for r in 0..MR {
        acc[r] = s.mul_add(s.splat(a[r]), b, acc[r]);
    }
}

/// Writes the live `mr x nr` corner of a tile into C (adding to it when `add`).
#[inline(always)]
fn store_tile<S: Simd, const MR: usize>(
    s: S,
    tile: &[S::F32; MR],
    mr: usize,
    nr: usize,
    c: &mut [f32],
    ldc: usize,
    add: bool,
) {
    for (r, &vector) in tile.iter().enumerate().take(mr) {
        let row = &mut c[r * ldc..r * ldc + nr];
        if nr == NR {
            // A whole row at a fixed size: with the run-time `nr` as its length, storing
            // it was a call to `memcpy` per row of every tile (9% of an MLP step).
            let sum = if add {
                s.add(s.load(row), vector)
            } else {
                vector
            };
            s.store(sum, row);
            continue;
        }
        let sum = if add {
            s.add(s.load_partial(row), vector)
        } else {
            vector
        };
        s.store_partial(sum, row);
    }
}

/// `c[0, n] (+)= a[0, k] · B[k, n]` for one row and a row-major B: streams B once, 64
/// columns at a time, each row of B scaled by one broadcast element of `a` (single-example
/// inference through a wide layer, where a tile of MR rows would be mostly empty).
///
/// Rows of B that meet a zero of `a` are skipped, as in [`gemm`]: an MNIST image has about
/// 150 non-zero pixels of 784, so a 784x256 layer reads 150 KB of weights instead of 800 KB.
/// The depths are listed into `listed` (when it holds `k + 8`; otherwise every depth runs).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row_times_matrix<S: Simd, A: Operand>(
    s: S,
    k: usize,
    n: usize,
    a: A,
    b: MatRef<'_>,
    c: &mut [f32],
    accumulate: bool,
    listed: &mut [u16],
) {
    // Vectors per block: 64 columns.
    const W: usize = 4;
    // The depths where `a` is not zero (eight slots of slack: listing writes eight at a
    // time), or None (every depth) when they might not fit.
    let live: Option<&[u16]> = (k + 8 <= listed.len()).then(|| {
        let count = a.list_live_in_row0(k, listed);
        &listed[..count]
    });
    // The listed rows of B lie scattered over a matrix larger than L2, where the hardware
    // sees no stream to fetch ahead: a few depths ahead, the block's columns are asked for.
    // Measured on a 784-256-10 model, 2000 test images one at a time: 5.80 to 5.53 us an
    // image (medians of 10 interleaved runs; faster in 8). Whole rows at once were slower.
    const DEPTHS_AHEAD: usize = 8;
    // A macro, not a closure: a closure is a function of its own, compiled without the
    // level's target features unless it is inlined (a `dyn FnMut` here never was).
    macro_rules! for_each_depth {
        ($depths:expr, $cols:expr, |$p:ident| $body:block) => {
            let depths: Range<usize> = $depths;
            match live {
                Some(listed) => {
                    let cols: Range<usize> = $cols;
                    let first = listed.partition_point(|&p| usize::from(p) < depths.start);
                    let last = listed.partition_point(|&p| usize::from(p) < depths.end);
                    for i in first..last {
                        if let Some(&ahead) = listed.get(i + DEPTHS_AHEAD) {
                            let start = usize::from(ahead) * b.row_stride;
                            prefetch(&b.data[start + cols.start..start + cols.end]);
                        }
                        let $p = usize::from(listed[i]);
                        $body
                    }
                }
                None => {
                    for $p in depths $body
                }
            }
        };
    }
    // The depths are summed in blocks of KC, each from zero and then added to the sum so
    // far (to C first when accumulating), exactly as the tiles of the blocked path add up:
    // one example gives the bits of the same row in a batch, and 3,136 depths are not one
    // long running sum, which loses more bits (a CNN's logits then strayed 4x further
    // from their exact values than onnxruntime's).
    let mut j = 0;
    while j + 16 * W <= n {
        let out = &mut c[j..j + 16 * W];
        let mut acc = [s.zero(); W];
        if accumulate {
            for (v, chunk) in acc.iter_mut().zip(out.chunks_exact(16)) {
                *v = s.load(chunk);
            }
        }
        for pc in (0..k).step_by(KC) {
            let mut block = [s.zero(); W];
            for_each_depth!(pc..k.min(pc + KC), j..j + 16 * W, |p| {
                let x = s.splat(a.at(0, p));
                let row = &b.data[p * b.row_stride + j..][..16 * W];
                for (v, chunk) in block.iter_mut().zip(row.chunks_exact(16)) {
                    *v = s.mul_add(x, s.load(chunk), *v);
                }
            });
            if pc == 0 && !accumulate {
                acc = block;
            } else {
                for (v, block) in acc.iter_mut().zip(block) {
                    *v = s.add(*v, block);
                }
            }
        }
        for (&v, out) in acc.iter().zip(out.chunks_exact_mut(16)) {
            s.store(v, out);
        }
        j += 16 * W;
    }
    for (col, out) in c.iter_mut().enumerate().take(n).skip(j) {
        for pc in (0..k).step_by(KC) {
            let mut sum = 0.0f32;
            for_each_depth!(pc..k.min(pc + KC), 0..0, |p| {
                sum = s.mul_add_scalar(a.at(0, p), b.data[p * b.row_stride + col], sum);
            });
            *out = if pc == 0 && !accumulate {
                sum
            } else {
                *out + sum
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::naive;
    use crate::kernels::simd::{with_level, Level};

    /// Found by the convolution's property tests: the 8x32 tile read B panels in place by
    /// chunks of their row stride, but im2col's rows may lie closer than NR floats apart
    /// (here 3, so consecutive rows overlap). Small integers keep every sum exact, so each
    /// level must give the naive product's values.
    #[test]
    fn b_read_in_place_with_rows_closer_than_a_tile_on_every_level() {
        let (m, n, k, stride) = (11, 40, 20, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i * 7 % 5) as f32 - 2.0).collect();
        let b: Vec<f32> = (0..(k - 1) * stride + n)
            .map(|i| (i * 5 % 7) as f32 - 3.0)
            .collect();
        let b_ref = MatRef {
            data: &b,
            row_stride: stride,
            col_stride: 1,
        };
        let a_ref = MatRef::row_major(&a, k);
        let mut want = vec![0.0; m * n];
        naive::gemm(m, n, k, a_ref, b_ref, &mut want, n, false);
        for level in Level::supported() {
            let mut c = vec![f32::NAN; m * n];
            let mut ws = GemmWorkspace::new();
            with_level(level, || {
                gemm(m, n, k, a_ref, b_ref, &mut c, n, false, &mut ws)
            });
            assert_eq!(c, want, "{level}");
        }
    }
}
