//! The linear (fully connected) layer: `out[rows, n] = x[rows, k]·W[k, n] + b[n]`.
//!
//! Where the dense fast paths live: the narrow kernels for 9 to 16 outputs (the classes),
//! u8 pixels read as `value / 255` without an f32 copy, and [`Input::Listed`]'s non-zero
//! inputs with their packed weights, which the model packs once per parameter change
//! (`ListedWeights`) and every pass shares.

use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

use crate::kernels::listed::{self, NonZeroRows, PackedWeights};
use crate::kernels::{self, gemm, narrow, GemmWorkspace, MatRef, PixelRef};

/// A batch of inputs, `[rows, input]` row-major: f32 features, or u8 pixels that the first
/// layer reads as `value / 255` without an f32 copy.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Features as f32.
    Unit(&'a [f32]),
    /// An earlier layer's activations, as f32. The products are those of [`Input::Unit`],
    /// but a narrow layer over more than [`KC`](crate::kernels::gemm::KC) inputs sums
    /// them in blocks, as the gemm does ([`narrow::matmul_blocked`]): a model's own hidden
    /// layers take this, its input takes the others, whose one chain keeps pixels, their
    /// unit values and their listed products equal bit for bit.
    Hidden(&'a [f32]),
    /// MNIST pixels, scaled by 1/255 on the fly.
    Pixels(&'a [u8]),
    /// Pixels with their non-zero inputs listed ([`NonZeroRows::list`] on the same
    /// pixels), for rows multiplied again and again, such as a test set evaluated during
    /// training: a narrow first layer multiplies only the listed inputs, other layers read
    /// the pixels. Results are bit for bit those of the pixels alone (for finite weights).
    Listed {
        /// The pixels.
        pixels: &'a [u8],
        /// Their non-zero inputs.
        listed: &'a NonZeroRows,
    },
}

impl Input<'_> {
    /// Number of stored values.
    pub fn len(&self) -> usize {
        match self {
            Input::Unit(x) | Input::Hidden(x) => x.len(),
            Input::Pixels(x) => x.len(),
            Input::Listed { pixels, .. } => pixels.len(),
        }
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the values as f32 into `out` (pixels as `value / 255`, bit for bit what the
    /// products read), for layers that take f32 only.
    pub fn to_unit(&self, out: &mut [f32]) {
        match *self {
            Input::Unit(x) | Input::Hidden(x) => out.copy_from_slice(x),
            Input::Pixels(x) | Input::Listed { pixels: x, .. } => {
                for (o, &p) in out.iter_mut().zip(x) {
                    *o = crate::pixels::PIXEL_TO_UNIT[usize::from(p)];
                }
            }
        }
    }
}

/// Whether a layer of `n` outputs takes the narrow kernels (the classes), not the blocked
/// gemm.
pub(crate) fn is_narrow(n: usize) -> bool {
    (narrow::MIN_WIDTH..=narrow::MAX_WIDTH).contains(&n)
}

/// The shape of one linear layer: `k` inputs (the input's `h·w·c`), `n` outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linear {
    /// Inputs per example.
    pub k: usize,
    /// Outputs per example.
    pub n: usize,
}

impl Linear {
    /// Forward: `out[rows, n] = x[rows, k]·w[k, n] + b[n]`. `packed` is `w` packed for a
    /// listed input (required with [`Input::Listed`] when the layer is narrow).
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: Input<'_>,
        rows: usize,
        w: &[f32],       // [k, n]
        b: &[f32],       // [n]
        out: &mut [f32], // [rows, n]
        ws: &mut GemmWorkspace,
        packed: Option<&PackedWeights>,
    ) {
        input_times_weight(x, rows, self.k, self.n, w, out, ws, packed);
        kernels::add_bias_rows(out, b);
    }

    /// Backward: `dw[k, n] = xᵀ·d_out`, `db[n] = Σ_rows d_out` (both overwritten) and, with
    /// `d_in`, `d_in[rows, k] = d_out·wᵀ` (overwritten).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        x: Input<'_>,
        rows: usize,
        w: &[f32],                // [k, n]
        d_out: &[f32],            // [rows, n]
        dw: &mut [f32],           // [k, n]
        db: &mut [f32],           // [n]
        d_in: Option<&mut [f32]>, // [rows, k]
        ws: &mut GemmWorkspace,
    ) {
        let (k, n) = (self.k, self.n);
        input_t_times_grad(x, rows, k, n, d_out, dw, ws);
        kernels::column_sums_into(d_out, db, false);
        if let Some(d_in) = d_in {
            gemm(
                rows,
                k,
                n,
                MatRef::row_major(d_out, n),
                MatRef::row_major(w, n).t(),
                d_in,
                k,
                false,
                ws,
            );
        }
    }
}

/// `out[rows, n] = X·W` for an input `X[rows, k]`: the narrow kernels for 9 to 16 outputs
/// (the classes), the blocked gemm otherwise.
#[allow(clippy::too_many_arguments)]
fn input_times_weight(
    input: Input<'_>,
    rows: usize,
    k: usize,
    n: usize,
    w: &[f32],
    out: &mut [f32],
    ws: &mut GemmWorkspace,
    listed_weights: Option<&PackedWeights>,
) {
    let narrow = is_narrow(n);
    let wm = MatRef::row_major(w, n);
    match input {
        Input::Listed { listed: x, .. } if narrow => {
            assert_eq!(
                (x.rows(), x.k()),
                (rows, k),
                "listed rows are not {rows}x{k}"
            );
            let packed = listed_weights.expect("a listed input comes with its packed weights");
            listed::matmul(x, packed, out)
        }
        Input::Unit(x) if narrow => narrow::matmul(rows, k, n, x, w, out),
        Input::Hidden(x) if narrow => narrow::matmul_blocked(rows, k, n, x, w, out),
        Input::Pixels(x) | Input::Listed { pixels: x, .. } if narrow => {
            narrow::matmul(rows, k, n, x, w, out)
        }
        Input::Unit(x) | Input::Hidden(x) => {
            gemm(rows, n, k, MatRef::row_major(x, k), wm, out, n, false, ws)
        }
        Input::Pixels(x) | Input::Listed { pixels: x, .. } => {
            gemm(rows, n, k, PixelRef::row_major(x, k), wm, out, n, false, ws)
        }
    }
}

/// `dw[k, n] = Xᵀ·d` for an input `X[rows, k]` and output gradient `d[rows, n]`.
fn input_t_times_grad(
    input: Input<'_>,
    rows: usize,
    k: usize,
    n: usize,
    d: &[f32],
    dw: &mut [f32],
    ws: &mut GemmWorkspace,
) {
    let narrow = n <= narrow::MAX_WIDTH;
    let dm = MatRef::row_major(d, n);
    match input {
        Input::Unit(x) | Input::Hidden(x) if narrow => narrow::matmul_tn(rows, k, n, x, d, dw),
        Input::Pixels(x) | Input::Listed { pixels: x, .. } if narrow => {
            narrow::matmul_tn(rows, k, n, x, d, dw)
        }
        Input::Unit(x) | Input::Hidden(x) => gemm(
            k,
            n,
            rows,
            MatRef::row_major(x, k).t(),
            dm,
            dw,
            n,
            false,
            ws,
        ),
        Input::Pixels(x) | Input::Listed { pixels: x, .. } => gemm(
            k,
            n,
            rows,
            PixelRef::row_major(x, k).t(),
            dm,
            dw,
            n,
            false,
            ws,
        ),
    }
}

/// A first linear layer's weights laid out for [`Input::Listed`], shared by every pass over
/// the model: packed by the first such pass after the parameters last changed. One copy, not
/// one per workspace: with an evaluation's twenty chunks each packing their own (twenty
/// packs, a megabyte of copies in the caches) it took 4 to 9% longer.
#[derive(Debug, Default)]
pub(crate) struct ListedWeights(RwLock<PackedLayer>);

#[derive(Debug, Default)]
pub(crate) struct PackedLayer {
    pub(crate) weights: PackedWeights,
    /// Whether `weights` are the parameters as they are now.
    current: bool,
}

impl ListedWeights {
    /// The parameters are about to change.
    pub(crate) fn invalidate(&mut self) {
        self.0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .current = false;
    }

    /// The weights `w[k, n]` packed, packing them if the parameters changed since they
    /// last were.
    pub(crate) fn get(&self, w: &[f32], k: usize, n: usize) -> RwLockReadGuard<'_, PackedLayer> {
        let read = || self.0.read().unwrap_or_else(PoisonError::into_inner);
        {
            let packed = read();
            if packed.current {
                return packed;
            }
        }
        {
            let mut packed = self.0.write().unwrap_or_else(PoisonError::into_inner);
            // Another pass may have packed them while this one waited.
            if !packed.current {
                packed.weights.pack(w, k, n);
                packed.current = true;
            }
        }
        read()
    }
}

impl Clone for ListedWeights {
    /// A clone packs its own on first use.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for ListedWeights {
    /// Derived from the parameters, which models compare.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Runs independent pieces of work, perhaps at once on several threads (the trainer's
/// pool). Which thread runs a piece never changes what it computes.
pub trait Fork: Sync {
    /// Runs `work(i, chunk)` on every `chunk_len`-long chunk of `out` (the last may be
    /// shorter), `i` counting the chunks from 0.
    fn for_each_chunk(
        &self,
        out: &mut [f32],
        chunk_len: usize,
        work: &(dyn Fn(usize, &mut [f32]) + Sync),
    );
}

/// No threads: every piece runs here, in order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Serial;

impl Fork for Serial {
    fn for_each_chunk(
        &self,
        out: &mut [f32],
        chunk_len: usize,
        work: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) {
        for (i, chunk) in out.chunks_mut(chunk_len.max(1)).enumerate() {
            work(i, chunk);
        }
    }
}

/// Outputs (columns, or rows of a weight gradient) of one piece of a split product: whole
/// tiles of the gemm, and fixed by the shapes alone. Every output is summed by one piece in
/// the order the whole product would sum it, so the split changes no bit.
const PIECE: usize = 256;
const _: () = assert!(PIECE % gemm::NR == 0 && PIECE % gemm::MAX_MR == 0);

/// What the products of a whole batch split into pieces need: packing space for each
/// thread, and the pieces' outputs, which are column blocks of a row-major result and so
/// not contiguous in it (a piece computes its block here, then it is copied into place).
#[derive(Debug)]
pub(crate) struct Split {
    /// One per thread; a piece takes one that is free (its result does not depend on which).
    gemm: Vec<Mutex<GemmWorkspace>>,
    /// `[pieces][rows · PIECE]`.
    blocks: Vec<f32>,
}

impl Split {
    /// Room for `threads` pieces at once, of products whose results are at most `rows x
    /// cols`.
    pub(crate) fn new(threads: usize, rows: usize, cols: usize) -> Self {
        Split {
            gemm: (0..threads.max(1))
                .map(|_| Mutex::new(GemmWorkspace::new()))
                .collect(),
            blocks: vec![0.0; rows * cols.next_multiple_of(PIECE)],
        }
    }

    /// `out[rows, cols]` from the blocks of [`PIECE`] columns that `piece(i, first, width,
    /// block)` computes into `block` (`[rows, width]`), pieces on `fork`.
    fn columns(
        &mut self,
        rows: usize,
        cols: usize,
        out: &mut [f32],
        fork: &impl Fork,
        piece: impl Fn(usize, usize, &mut [f32], &mut GemmWorkspace) + Sync,
    ) {
        let pieces = cols.div_ceil(PIECE);
        let gemm = &self.gemm;
        let blocks = &mut self.blocks[..pieces * rows * PIECE];
        fork.for_each_chunk(blocks, rows * PIECE, &|i, block| {
            let first = i * PIECE;
            let width = PIECE.min(cols - first);
            piece(
                first,
                width,
                &mut block[..rows * width],
                &mut super::lock_free_one(gemm),
            );
        });
        for (i, block) in blocks.chunks_exact(rows * PIECE).enumerate() {
            let first = i * PIECE;
            let width = PIECE.min(cols - first);
            for (dst, src) in out
                .chunks_exact_mut(cols)
                .zip(block.chunks_exact(width))
                .take(rows)
            {
                dst[first..first + width].copy_from_slice(src);
            }
        }
    }
}

impl Clone for Split {
    fn clone(&self) -> Self {
        Split {
            gemm: (0..self.gemm.len())
                .map(|_| Mutex::new(GemmWorkspace::new()))
                .collect(),
            blocks: self.blocks.clone(),
        }
    }
}

impl Linear {
    /// [`Linear::forward`] of a wide layer on f32 inputs, the product split into pieces of
    /// columns that run on `fork`: each piece streams its columns of `w` once for all the
    /// rows.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_split(
        &self,
        x: &[f32], // [rows, k]
        rows: usize,
        w: &[f32],       // [k, n]
        b: &[f32],       // [n]
        out: &mut [f32], // [rows, n]
        split: &mut Split,
        fork: &impl Fork,
    ) {
        let (k, n) = (self.k, self.n);
        split.columns(rows, n, out, fork, |first, width, block, ws| {
            let w = MatRef::row_major(&w[first..], n);
            gemm(
                rows,
                width,
                k,
                MatRef::row_major(x, k),
                w,
                block,
                width,
                false,
                ws,
            );
        });
        kernels::add_bias_rows(out, b);
    }

    /// [`Linear::backward`] of a wide layer on f32 inputs, split into pieces on `fork`: the
    /// weight gradient by blocks of its rows (each one product over all the batch's rows,
    /// summed once), the input gradient by blocks of its columns. Without `dw` the weight
    /// gradient is left to the caller (a trainer that updates the weights piece by piece).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn backward_split(
        &self,
        x: &[f32], // [rows, k]
        rows: usize,
        w: &[f32],                // [k, n]
        d_out: &[f32],            // [rows, n]
        dw: Option<&mut [f32]>,   // [k, n]
        db: &mut [f32],           // [n]
        d_in: Option<&mut [f32]>, // [rows, k]
        split: &mut Split,
        fork: &impl Fork,
    ) {
        let (k, n) = (self.k, self.n);
        let d = MatRef::row_major(d_out, n);
        if let Some(dw) = dw {
            let gemm_ws = &split.gemm;
            fork.for_each_chunk(dw, PIECE * n, &|i, block| {
                let first = i * PIECE;
                let height = block.len() / n;
                let xt = MatRef::row_major(&x[first..], k).t();
                let ws = &mut super::lock_free_one(gemm_ws);
                gemm(height, n, rows, xt, d, block, n, false, ws);
            });
        }
        kernels::column_sums_into(d_out, db, false);
        if let Some(d_in) = d_in {
            split.columns(rows, k, d_in, fork, |first, width, block, ws| {
                let wt = MatRef::row_major(&w[first * n..], n).t();
                gemm(rows, width, n, d, wt, block, width, false, ws);
            });
        }
    }
}
