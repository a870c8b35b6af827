//! Slice kernels of the 2-D convolution: im2col and a matrix multiply (the `gemm` crate,
//! which the Flex backend uses too), forward and backward, on `f32` NCHW buffers. No Burn
//! types, so they can go upstream as they are.
//!
//! For one image x of `[c_in, h, w]`, im2col lays out every receptive field as a column:
//! `cols[(c, i, j), (oh, ow)] = x[c, oh·s_h + i·d_h − p_h, ow·s_w + j·d_w − p_w]` (zero in
//! the padding), a `[c_in·k_h·k_w, oh·ow]` matrix. With the weight W as
//! `[c_out, c_in·k_h·k_w]`, the convolution and its vector-Jacobian products are three
//! products (dy being the output's gradient):
//!
//! - forward: `y = W · cols + b`, written straight into the NCHW output;
//! - weight: `dW = Σ_images dy · colsᵀ`, and `db = Σ_images Σ_pixels dy`;
//! - input: `dcols = Wᵀ · dy`, scattered back by col2im (im2col's adjoint) into dx.
//!
//! A 1×1 convolution with stride 1 and no padding has `cols = x`: no copy is made. An
//! image whose im2col matrix would exceed 2²² elements (16 MiB) is processed in bands of
//! output rows, so the buffers stay bounded (a 256×256 image at 128 channels would
//! otherwise need 0.3 GB per thread).
//!
//! Images run in parallel on rayon. The weight gradient sums per-part partial gradients
//! over a fixed split of the batch into at most [`PARTS`] parts, then adds them in order,
//! so its rounding does not depend on the number of threads.

use rayon::prelude::*;

/// The most parts the batch is split into for the weight gradient's partial sums.
pub const PARTS: usize = 8;

/// The geometry of a 2-D convolution with one group over NCHW tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dShape {
    /// Images.
    pub batch: usize,
    /// Input channels.
    pub channels_in: usize,
    /// Output channels.
    pub channels_out: usize,
    /// Input `[height, width]`.
    pub input: [usize; 2],
    /// Kernel `[height, width]`.
    pub kernel: [usize; 2],
    /// Stride `[height, width]`, non-zero.
    pub stride: [usize; 2],
    /// Padding before the first row and column, `[top, left]`.
    pub padding: [usize; 2],
    /// Dilation `[height, width]`, non-zero.
    pub dilation: [usize; 2],
    /// Output `[height, width]`.
    pub output: [usize; 2],
}

impl Conv2dShape {
    /// The geometry for the given sizes, with `padding` as `[(top, bottom), (left, right)]`;
    /// the output size is `⌊(in + p_begin + p_end − d·(k − 1) − 1) / s⌋ + 1` per axis.
    /// `None` when a channel count, input side, stride, dilation or kernel size is zero,
    /// or the padded input is smaller than the dilated kernel.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        batch: usize,
        channels_in: usize,
        channels_out: usize,
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
        dilation: [usize; 2],
    ) -> Option<Self> {
        if channels_in == 0 || channels_out == 0 || input.contains(&0) {
            return None;
        }
        let mut output = [0; 2];
        for a in 0..2 {
            if stride[a] == 0 || dilation[a] == 0 || kernel[a] == 0 {
                return None;
            }
            let padded = input[a]
                .checked_add(padding[a].0)?
                .checked_add(padding[a].1)?;
            let reach = dilation[a].checked_mul(kernel[a] - 1)? + 1;
            output[a] = padded.checked_sub(reach)? / stride[a] + 1;
        }
        Some(Self {
            batch,
            channels_in,
            channels_out,
            input,
            kernel,
            stride,
            padding: [padding[0].0, padding[1].0],
            dilation,
            output,
        })
    }

    /// Rows of the im2col matrix: `c_in · k_h · k_w`.
    pub fn col_rows(&self) -> usize {
        self.channels_in * self.kernel[0] * self.kernel[1]
    }

    /// Output pixels per image (the im2col matrix's columns): `oh · ow`.
    pub fn out_pixels(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// Elements of one input image: `c_in · h · w`.
    pub fn image_len(&self) -> usize {
        self.channels_in * self.input[0] * self.input[1]
    }

    /// Elements of the input, the weight and the output.
    pub fn lens(&self) -> [usize; 3] {
        [
            self.batch * self.image_len(),
            self.channels_out * self.col_rows(),
            self.batch * self.channels_out * self.out_pixels(),
        ]
    }

    /// Whether im2col is the identity (1×1 kernel, stride 1, no padding).
    fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }
}

/// `out = W · im2col(x) + bias`, per image.
///
/// # Shapes
///
/// - `x`: `[batch, c_in, h, w]`; `weight`: `[c_out, c_in, k_h, k_w]`; `bias`: `[c_out]`;
///   `out`: `[batch, c_out, oh, ow]`, all contiguous.
///
/// # Panics
///
/// If a slice's length is not its shape's.
pub fn conv2d(x: &[f32], weight: &[f32], bias: Option<&[f32]>, s: &Conv2dShape, out: &mut [f32]) {
    let [x_len, w_len, out_len] = s.lens();
    assert_eq!(
        (x.len(), weight.len(), out.len()),
        (x_len, w_len, out_len),
        "conv2d: buffer lengths"
    );
    if let Some(bias) = bias {
        assert_eq!(bias.len(), s.channels_out, "conv2d: bias length");
    }
    conv2d_in_bands(x, weight, bias, s, out, BAND);
}

/// [`conv2d`], with im2col buffers of at most about `band` elements.
fn conv2d_in_bands(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    s: &Conv2dShape,
    out: &mut [f32],
    band: usize,
) {
    let (k, n, c_out) = (s.col_rows(), s.out_pixels(), s.channels_out);
    if out.is_empty() {
        return;
    }
    let threads = inner_threads(s.batch);
    out.par_chunks_mut(c_out * n)
        .zip(x.par_chunks(s.image_len()))
        .for_each_init(Vec::new, |cols, (out, x)| {
            if let Some(bias) = bias {
                for (row, &b) in out.chunks_exact_mut(n).zip(bias) {
                    row.fill(b);
                }
            }
            for rows in bands(s, band) {
                let cols = im2col(x, s, rows.clone(), cols);
                let out = &mut out[rows.start * s.output[1]..];
                let w = Mat::row_major(weight, k);
                gemm(
                    out,
                    n,
                    [c_out, cols.cols],
                    bias.is_some(),
                    w,
                    cols.mat,
                    k,
                    threads,
                );
            }
        });
}

/// The convolution's vector-Jacobian products, given the output's gradient `grad`:
/// `dx`, `dweight` and `dbias`, each computed (overwritten) when given.
///
/// # Shapes
///
/// As [`conv2d`]: `x`, `dx`: `[batch, c_in, h, w]`; `weight`, `dweight`:
/// `[c_out, c_in, k_h, k_w]`; `grad`: `[batch, c_out, oh, ow]`; `dbias`: `[c_out]`.
///
/// # Panics
///
/// If a slice's length is not its shape's.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward(
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    s: &Conv2dShape,
    dx: Option<&mut [f32]>,
    dweight: Option<&mut [f32]>,
    dbias: Option<&mut [f32]>,
) {
    conv2d_backward_in_bands(x, weight, grad, s, [dx, dweight, dbias], BAND);
}

/// [`conv2d_backward`], with im2col buffers of at most about `band` elements.
fn conv2d_backward_in_bands(
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    s: &Conv2dShape,
    [dx, dweight, dbias]: [Option<&mut [f32]>; 3],
    band: usize,
) {
    let [x_len, w_len, out_len] = s.lens();
    assert_eq!(
        (x.len(), weight.len(), grad.len()),
        (x_len, w_len, out_len),
        "conv2d_backward: buffer lengths"
    );
    let weight_grad = dweight.is_some();
    let (k, n, c_out) = (s.col_rows(), s.out_pixels(), s.channels_out);
    let per_part = s.batch.div_ceil(PARTS).max(1);
    let parts = s.batch.div_ceil(per_part);
    let dx_parts: Vec<Option<&mut [f32]>> = match dx {
        Some(dx) => {
            assert_eq!(dx.len(), x_len, "conv2d_backward: dx length");
            dx.chunks_mut(per_part * s.image_len()).map(Some).collect()
        }
        None => (0..parts).map(|_| None).collect(),
    };
    let threads = inner_threads(parts);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx_parts
        .into_par_iter()
        .enumerate()
        .map(|(part, mut dx)| {
            let mut dw = vec![0.0f32; if weight_grad { w_len } else { 0 }];
            let mut db = vec![0.0f32; c_out];
            let (mut cols, mut dcols) = (Vec::new(), Vec::new());
            let images = part * per_part..((part + 1) * per_part).min(s.batch);
            let ow = s.output[1];
            for (i, b) in images.enumerate() {
                let x = &x[b * s.image_len()..][..s.image_len()];
                let grad = &grad[b * c_out * n..][..c_out * n];
                for (db, row) in db.iter_mut().zip(grad.chunks_exact(n)) {
                    *db += super::kernels::lane_sum(row, f64::from) as f32;
                }
                let mut dx = dx.as_deref_mut().map(|dx| {
                    let dx = &mut dx[i * s.image_len()..][..s.image_len()];
                    dx.fill(0.0);
                    dx
                });
                for (j, rows) in bands(s, band).enumerate() {
                    let pixels = rows.len() * ow;
                    // This band's columns of dy: [c_out, pixels], rows n apart.
                    let dy = Mat::row_major(&grad[rows.start * ow..], n);
                    if weight_grad {
                        // dW (+)= dy · colsᵀ
                        let cols = im2col(x, s, rows.clone(), &mut cols);
                        let first = i == 0 && j == 0;
                        gemm(
                            &mut dw,
                            k,
                            [c_out, k],
                            !first,
                            dy,
                            cols.mat.t(),
                            pixels,
                            threads,
                        );
                    }
                    // dx += col2im(Wᵀ · dy)
                    if let Some(dx) = dx.as_deref_mut() {
                        let w_t = Mat::row_major(weight, k).t();
                        if s.is_pointwise() {
                            let dx = &mut dx[rows.start * ow..];
                            gemm(dx, n, [k, pixels], false, w_t, dy, c_out, threads);
                        } else {
                            dcols.resize(k * pixels, 0.0);
                            gemm(
                                &mut dcols,
                                pixels,
                                [k, pixels],
                                false,
                                w_t,
                                dy,
                                c_out,
                                threads,
                            );
                            col2im(&dcols, s, rows.clone(), dx);
                        }
                    }
                }
            }
            (dw, db)
        })
        .collect();
    let mut db_total = vec![0.0f32; c_out];
    for (_, db) in &partials {
        add_assign(&mut db_total, db);
    }
    if let Some(dweight) = dweight {
        assert_eq!(dweight.len(), w_len, "conv2d_backward: dweight length");
        dweight.fill(0.0);
        for (dw, _) in &partials {
            add_assign(dweight, dw);
        }
    }
    if let Some(dbias) = dbias {
        assert_eq!(dbias.len(), c_out, "conv2d_backward: dbias length");
        dbias.copy_from_slice(&db_total);
    }
}

fn add_assign(acc: &mut [f32], v: &[f32]) {
    for (a, v) in acc.iter_mut().zip(v) {
        *a += v;
    }
}

/// Threads for one matrix product: all of them when there are fewer parallel tasks than
/// threads (a batch of one), else one (the tasks fill the threads).
fn inner_threads(tasks: usize) -> usize {
    let threads = rayon::current_num_threads();
    if tasks < threads { threads } else { 1 }
}

/// Elements of an im2col buffer above which an image is processed in bands of output
/// rows (16 MiB): a 256×256 image at 128 channels would need 0.3 GB per thread at once.
const BAND: usize = 1 << 22;

/// The bands of output rows that one image is processed in: as many rows per band as
/// keep the band's im2col matrix within `band` elements (at least one row).
fn bands(s: &Conv2dShape, band: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let [oh, ow] = s.output;
    let per_band = (band / (s.col_rows() * ow).max(1)).max(1);
    (0..oh)
        .step_by(per_band)
        .map(move |r| r..(r + per_band).min(oh))
}

/// One band's im2col matrix and its column count.
struct Cols<'a> {
    mat: Mat<'a>,
    cols: usize,
}

/// The im2col matrix of output rows `rows` of one image, `[c_in·k_h·k_w, rows·ow]`: a view
/// of `x` itself for a pointwise convolution, otherwise written into `buffer`.
fn im2col<'a>(
    x: &'a [f32],
    s: &Conv2dShape,
    rows: std::ops::Range<usize>,
    buffer: &'a mut Vec<f32>,
) -> Cols<'a> {
    let ow = s.output[1];
    let n = rows.len() * ow;
    if s.is_pointwise() {
        let mat = Mat::row_major(&x[rows.start * ow..], s.out_pixels());
        return Cols { mat, cols: n };
    }
    buffer.resize(s.col_rows() * n, 0.0);
    for_each_row(s, rows.clone(), |r| {
        let row = &mut buffer[r.at..r.at + n];
        if r.cols.is_empty() {
            row.fill(0.0);
            return;
        }
        let (first, last) = (r.rows.start - rows.start, r.rows.end - rows.start);
        row[..first * ow].fill(0.0);
        row[last * ow..].fill(0.0);
        for t in 0..r.rows.len() {
            let dst = &mut row[(first + t) * ow..(first + t + 1) * ow];
            dst[..r.cols.start].fill(0.0);
            dst[r.cols.end..].fill(0.0);
            let src = &x[r.src + t * r.row_step..];
            let dst = &mut dst[r.cols.clone()];
            if r.col_step == 1 {
                dst.copy_from_slice(&src[..dst.len()]);
            } else {
                for (d, &v) in dst.iter_mut().zip(src.iter().step_by(r.col_step)) {
                    *d = v;
                }
            }
        }
    });
    Cols {
        mat: Mat::row_major(buffer, n),
        cols: n,
    }
}

/// im2col's adjoint for output rows `rows` of one image: adds every entry of `dcols`
/// (`[c_in·k_h·k_w, rows·ow]`) onto the input pixel it was copied from.
fn col2im(dcols: &[f32], s: &Conv2dShape, rows: std::ops::Range<usize>, dx: &mut [f32]) {
    let ow = s.output[1];
    for_each_row(s, rows.clone(), |r| {
        for t in 0..r.rows.len() {
            let at = r.at + (r.rows.start - rows.start + t) * ow;
            let src = &dcols[at + r.cols.start..at + r.cols.end];
            let dst = &mut dx[r.src + t * r.row_step..];
            if r.col_step == 1 {
                add_assign(&mut dst[..src.len()], src);
            } else {
                for (d, v) in dst.iter_mut().step_by(r.col_step).zip(src) {
                    *d += v;
                }
            }
        }
    });
}

/// Where one im2col row `(c, i, j)` reads the input: output rows `rows` and, within each,
/// output columns `cols` lie inside it (everything else is padding); output pixel
/// `(rows.start + t, cols.start + u)` reads input element `src + t·row_step + u·col_step`.
#[derive(Debug, Clone)]
struct RowReads {
    /// The row's offset in the `[c_in·k_h·k_w, oh·ow]` matrix.
    at: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    src: usize,
    row_step: usize,
    col_step: usize,
}

/// Calls `f` with the reads of every im2col row of the band of output rows `band`, in the
/// order of its `[c_in·k_h·k_w, band·ow]` matrix; `rows` are within the band. A row that
/// reads nothing has empty `rows` and `cols`.
fn for_each_row(s: &Conv2dShape, band: std::ops::Range<usize>, mut f: impl FnMut(RowReads)) {
    let [h, w] = s.input;
    let [kh, kw] = s.kernel;
    let [oh, ow] = s.output;
    let axis = |a: usize, k: usize, len: usize, out: usize| {
        valid_range(k, s.stride[a], s.dilation[a], s.padding[a], len, out).unwrap_or((0..0, 0))
    };
    let columns: Vec<_> = (0..kw).map(|j| axis(1, j, w, ow)).collect();
    let mut at = 0;
    for c in 0..s.channels_in {
        for i in 0..kh {
            let (rows, ih0) = axis(0, i, h, oh);
            // The valid rows within the band, and the input row of the first of them.
            let first = rows.start.max(band.start);
            let (rows, ih0) = (
                first..rows.end.min(band.end),
                ih0 + (first - rows.start) * s.stride[0],
            );
            for (cols, iw0) in &columns {
                let (rows, cols) = if cols.is_empty() || rows.is_empty() {
                    (band.start..band.start, 0..0)
                } else {
                    (rows.clone(), cols.clone())
                };
                f(RowReads {
                    at,
                    rows,
                    cols,
                    src: (c * h + ih0) * w + iw0,
                    row_step: s.stride[0] * w,
                    col_step: s.stride[1],
                });
                at += band.len() * ow;
            }
        }
    }
}

/// For kernel offset `j` along an axis: the output positions o whose input position
/// `o·stride + j·dilation − padding` lies in `0..len`, and the input position of the
/// first; `None` when there are none.
fn valid_range(
    j: usize,
    stride: usize,
    dilation: usize,
    padding: usize,
    len: usize,
    out_len: usize,
) -> Option<(std::ops::Range<usize>, usize)> {
    let offset = j * dilation;
    // First o with o·stride + offset ≥ padding; last with o·stride + offset ≤ padding + len − 1.
    let lo = padding.saturating_sub(offset).div_ceil(stride);
    let hi = ((padding + len).checked_sub(offset + 1)? / stride + 1).min(out_len);
    (lo < hi).then(|| (lo..hi, lo * stride + offset - padding))
}

/// A read-only matrix: a pointer with row and column strides, in elements.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    row_stride: isize,
    col_stride: isize,
}

impl<'a> Mat<'a> {
    /// `data` as a row-major matrix with `cols` columns.
    fn row_major(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// The transpose.
    fn t(self) -> Self {
        Self {
            data: self.data,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

/// `dst (+)= lhs · rhs` for a row-major `dst` of `[m, n]` whose rows are `dst_row_stride`
/// apart, with inner dimension `k`: added to `dst` when `accumulate`, written over it
/// otherwise.
#[allow(clippy::too_many_arguments)]
fn gemm(
    dst: &mut [f32],
    dst_row_stride: usize,
    [m, n]: [usize; 2],
    accumulate: bool,
    lhs: Mat,
    rhs: Mat,
    k: usize,
    threads: usize,
) {
    assert!(
        m * n == 0 || (m - 1) * dst_row_stride + n <= dst.len(),
        "gemm: destination too short"
    );
    let extent = |mat: Mat, rows: usize, cols: usize| {
        (rows.saturating_sub(1) as isize * mat.row_stride
            + cols.saturating_sub(1) as isize * mat.col_stride) as usize
    };
    assert!(
        m * k == 0 || (extent(lhs, m, k) < lhs.data.len() && extent(rhs, k, n) < rhs.data.len()),
        "gemm: operand too short"
    );
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every element the strides address inside the three
    // slices, and `dst` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_row_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride,
            lhs.row_stride,
            rhs.data.as_ptr(),
            rhs.col_stride,
            rhs.row_stride,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The convolution, its three gradients (for the upstream gradient `g`), and for each
    /// output element the sum of the absolute values of the products that make it (the
    /// condition of the sum, for the f32 error bound), in f64 on the host by the
    /// definition: direct loops over every in-bounds tap, sharing no code with im2col.
    struct Reference {
        y: Vec<f64>,
        y_abs: Vec<f64>,
        dx: Vec<f64>,
        dx_abs: Vec<f64>,
        dw: Vec<f64>,
        dw_abs: Vec<f64>,
        db: Vec<f64>,
        db_abs: Vec<f64>,
    }

    #[allow(clippy::needless_range_loop)] // the definition's indices, written out
    fn reference(x: &[f32], w: &[f32], b: &[f32], g: &[f32], s: &Conv2dShape) -> Reference {
        let [h, wi] = s.input;
        let [kh, kw] = s.kernel;
        let [oh, ow] = s.output;
        let (ci, co) = (s.channels_in, s.channels_out);
        let [x_len, w_len, y_len] = s.lens();
        let mut r = Reference {
            y: vec![0.0; y_len],
            y_abs: vec![0.0; y_len],
            dx: vec![0.0; x_len],
            dx_abs: vec![0.0; x_len],
            dw: vec![0.0; w_len],
            dw_abs: vec![0.0; w_len],
            db: vec![0.0; co],
            db_abs: vec![0.0; co],
        };
        for n in 0..s.batch {
            for o in 0..co {
                for p in 0..oh {
                    for q in 0..ow {
                        let yi = ((n * co + o) * oh + p) * ow + q;
                        let gv = f64::from(g[yi]);
                        r.y[yi] = f64::from(b[o]);
                        r.y_abs[yi] = f64::from(b[o]).abs();
                        r.db[o] += gv;
                        r.db_abs[o] += gv.abs();
                        for c in 0..ci {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let ih = (p * s.stride[0] + i * s.dilation[0]) as isize
                                        - s.padding[0] as isize;
                                    let iw = (q * s.stride[1] + j * s.dilation[1]) as isize
                                        - s.padding[1] as isize;
                                    if ih < 0 || iw < 0 || ih >= h as isize || iw >= wi as isize {
                                        continue;
                                    }
                                    let xi = ((n * ci + c) * h + ih as usize) * wi + iw as usize;
                                    let wj = ((o * ci + c) * kh + i) * kw + j;
                                    let (xv, wv) = (f64::from(x[xi]), f64::from(w[wj]));
                                    r.y[yi] += xv * wv;
                                    r.y_abs[yi] += (xv * wv).abs();
                                    r.dx[xi] += gv * wv;
                                    r.dx_abs[xi] += (gv * wv).abs();
                                    r.dw[wj] += gv * xv;
                                    r.dw_abs[wj] += (gv * xv).abs();
                                }
                            }
                        }
                    }
                }
            }
        }
        r
    }

    /// The worst-case error of an f32 sum of `terms` products, in any order, relative to
    /// the sum of their absolute values: γ_m = m·u / (1 − m·u) with u = 2⁻²⁴ (Higham,
    /// Accuracy and Stability of Numerical Algorithms, Sec. 3.1), plus f64's own error.
    fn gamma(terms: usize) -> f64 {
        let mu = (terms + 2) as f64 * f64::from(f32::EPSILON) / 2.0;
        mu / (1.0 - mu) + 1e-12
    }

    fn assert_within(what: &str, got: &[f32], exact: &[f64], abs: &[f64], terms: usize) {
        assert_eq!(got.len(), exact.len(), "{what}: length");
        for (i, ((&got, &exact), &abs)) in got.iter().zip(exact).zip(abs).enumerate() {
            let error = (f64::from(got) - exact).abs();
            assert!(
                error <= gamma(terms) * abs,
                "{what}[{i}]: {got} against {exact} (error {error:e}, bound {:e})",
                gamma(terms) * abs
            );
        }
    }

    /// Deterministic values in [−1, 1).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn check(s: &Conv2dShape, seed: u64) {
        let [x_len, w_len, y_len] = s.lens();
        let x = values(x_len, seed);
        let w = values(w_len, seed + 1);
        let b = values(s.channels_out, seed + 2);
        let g = values(y_len, seed + 3);
        let r = reference(&x, &w, &b, &g, s);

        // One output row per band, bands of two rows and a bit (the last band shorter),
        // and whole images (last: the gradients kept for the checks below).
        let row = s.col_rows() * s.output[1];
        let (mut dx, mut dw) = (vec![], vec![]);
        for band in [1, 2 * row + 1, BAND] {
            let mut y = vec![f32::NAN; y_len];
            conv2d_in_bands(&x, &w, Some(&b), s, &mut y, band);
            assert_within("y", &y, &r.y, &r.y_abs, s.col_rows() + 1);

            dx = vec![f32::NAN; x_len];
            dw = vec![f32::NAN; w_len];
            let mut db = vec![f32::NAN; s.channels_out];
            let grads = [Some(&mut dx[..]), Some(&mut dw[..]), Some(&mut db[..])];
            conv2d_backward_in_bands(&x, &w, &g, s, grads, band);
            let pixels = s.batch * s.out_pixels();
            let taps = s.channels_out * s.kernel[0] * s.kernel[1];
            assert_within("dx", &dx, &r.dx, &r.dx_abs, taps);
            assert_within("dw", &dw, &r.dw, &r.dw_abs, pixels + PARTS);
            assert_within("db", &db, &r.db, &r.db_abs, pixels + PARTS);
        }

        // Each gradient alone is the same as all three together.
        let mut dw_alone = vec![f32::NAN; w_len];
        conv2d_backward(&x, &w, &g, s, None, Some(&mut dw_alone), None);
        assert_eq!(dw_alone, dw, "the weight gradient alone");
        let mut dx_alone = vec![f32::NAN; x_len];
        conv2d_backward(&x, &w, &g, s, Some(&mut dx_alone), None, None);
        assert_eq!(dx_alone, dx, "the input gradient alone");
    }

    fn shape(
        [batch, c_in, c_out]: [usize; 3],
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
        dilation: [usize; 2],
    ) -> Conv2dShape {
        Conv2dShape::new(batch, c_in, c_out, input, kernel, stride, padding, dilation)
            .expect("a valid geometry")
    }

    #[test]
    fn matches_the_definition_at_the_unets_geometries() {
        let same = [(1, 1), (1, 1)];
        // 3×3 "same"; the stride-2 down-sampling with TensorFlow's padding (bottom and
        // right only); 1×1 (im2col is the input itself); a batch of one (the threaded
        // matrix product); a batch larger than PARTS that does not divide evenly.
        check(&shape([2, 4, 5], [7, 6], [3, 3], [1, 1], same, [1, 1]), 1);
        check(
            &shape([3, 3, 4], [8, 9], [3, 3], [2, 2], [(0, 1), (0, 1)], [1, 1]),
            2,
        );
        check(
            &shape([2, 6, 3], [5, 4], [1, 1], [1, 1], [(0, 0), (0, 0)], [1, 1]),
            3,
        );
        check(&shape([1, 3, 2], [6, 6], [3, 3], [1, 1], same, [1, 1]), 4);
        check(&shape([11, 2, 3], [4, 5], [3, 3], [1, 1], same, [1, 1]), 5);
    }

    #[test]
    fn matches_the_definition_for_strides_dilations_and_padding() {
        check(
            &shape([2, 2, 3], [9, 7], [3, 2], [2, 3], [(2, 0), (1, 3)], [2, 1]),
            6,
        );
        check(
            &shape([2, 3, 2], [5, 5], [1, 1], [2, 2], [(1, 1), (0, 2)], [1, 1]),
            7,
        );
        // Padding wider than the kernel's reach: whole output rows are padding.
        check(
            &shape([1, 2, 2], [3, 3], [2, 2], [1, 1], [(3, 3), (2, 2)], [1, 1]),
            8,
        );
        // A 1×1 input and a kernel larger than the input.
        check(
            &shape([2, 3, 2], [1, 1], [3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1]),
            9,
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn matches_the_definition_on_random_geometries(
            batch in 0usize..10,
            channels in (1usize..5, 1usize..5),
            input in (1usize..9, 1usize..9),
            kernel in (1usize..4, 1usize..4),
            stride in (1usize..4, 1usize..4),
            padding in ((0usize..3, 0usize..3), (0usize..3, 0usize..3)),
            dilation in (1usize..3, 1usize..3),
            seed in 0u64..1000,
        ) {
            let s = Conv2dShape::new(
                batch, channels.0, channels.1, [input.0, input.1], [kernel.0, kernel.1],
                [stride.0, stride.1], [padding.0, padding.1], [dilation.0, dilation.1],
            );
            // Geometries whose dilated kernel does not fit are `None` (Burn's own
            // convolution is called for them).
            if let Some(s) = s {
                check(&s, seed);
            }
        }
    }

    #[test]
    fn a_geometry_that_does_not_fit_is_none() {
        assert_eq!(
            Conv2dShape::new(1, 1, 1, [2, 2], [3, 3], [1, 1], [(0, 0); 2], [1, 1]),
            None
        );
        assert_eq!(
            Conv2dShape::new(1, 1, 1, [5, 5], [3, 3], [0, 1], [(0, 0); 2], [1, 1]),
            None
        );
        assert_eq!(
            Conv2dShape::new(1, 0, 1, [5, 5], [3, 3], [1, 1], [(0, 0); 2], [1, 1]),
            None
        );
        let s = Conv2dShape::new(1, 1, 1, [5, 4], [3, 3], [2, 1], [(1, 0), (0, 0)], [1, 1]);
        assert_eq!(s.map(|s| s.output), Some([2, 2]));
    }

    #[test]
    fn non_finite_inputs_reach_exactly_the_outputs_that_read_them() {
        let s = shape([2, 2, 3], [6, 5], [3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1]);
        let [x_len, w_len, y_len] = s.lens();
        let mut x = values(x_len, 11);
        x[7] = f32::NAN;
        x[s.image_len() + 12] = f32::INFINITY;
        x[s.image_len() + 30] = f32::NEG_INFINITY;
        let w = values(w_len, 12);
        let b = values(s.channels_out, 13);
        let g = values(y_len, 14);
        let r = reference(&x, &w, &b, &g, &s);
        let mut y = vec![0.0; y_len];
        conv2d(&x, &w, Some(&b), &s, &mut y);
        let mut dw = vec![0.0; w_len];
        conv2d_backward(&x, &w, &g, &s, None, Some(&mut dw), None);
        let class = |v: f64| (v.is_nan(), v.is_infinite().then_some(v > 0.0));
        for (what, got, exact) in [("y", &y, &r.y), ("dw", &dw, &r.dw)] {
            let non_finite = exact.iter().filter(|v| !v.is_finite()).count();
            assert!(non_finite > 0, "{what}: the test reaches non-finite values");
            for (i, (&got, &exact)) in got.iter().zip(exact.iter()).enumerate() {
                assert_eq!(
                    class(f64::from(got)),
                    class(exact),
                    "{what}[{i}]: {got} against {exact}"
                );
            }
        }
    }
}
