//! Writing a batch of images as one PNG grid.

use std::path::Path;

use burn::tensor::Tensor;

use crate::error::{self, DiffusionError};

/// Gray level of the 1-pixel gaps between cells (mid-gray, visible on white and black).
const GAP: u8 = 128;

/// Writes the images `[N, C, H, W]` (C = 1 for grayscale or 3 for RGB, values in [−1, 1])
/// as one PNG: a grid of `columns` cells per row, ⌈N / columns⌉ rows, separated by
/// 1-pixel mid-gray gaps. A value v becomes the 8-bit level round((v + 1)·127.5), values
/// outside [−1, 1] are clamped (so −1 is black and +1 white; NaN is drawn black). Parent
/// directories are created.
///
/// # Shapes
/// `images`: `[N, C, H, W]` with N ≥ 1 and C ∈ {1, 3}.
///
/// # Errors
/// [`DiffusionError::ShapeMismatch`] for another channel count or an empty batch,
/// [`DiffusionError::InvalidInput`] for images of zero height or width,
/// [`DiffusionError::InvalidConfig`] for `columns == 0`, [`DiffusionError::TensorRead`] if
/// the tensor cannot be read, [`DiffusionError::Data`] if the file cannot be written.
///
/// # Example
/// ```no_run
/// use burn::tensor::{Device, Tensor};
/// use burn_diffusion::image::write_png_grid;
///
/// let images = Tensor::<4>::zeros([16, 1, 8, 8], &Device::flex()); // 16 gray squares
/// write_png_grid("out/grid.png", images, 4)?; // 4 × 4 cells, 35 × 35 pixels
/// # Ok::<(), burn_diffusion::DiffusionError>(())
/// ```
pub fn write_png_grid(
    path: impl AsRef<Path>,
    images: Tensor<4>,
    columns: usize,
) -> error::Result<()> {
    write_png_grid_scaled(path, images, columns, 1)
}

/// [`write_png_grid`] with every image pixel drawn as a `scale` × `scale` block (nearest
/// neighbour), for small images such as 8×8 digits; gaps stay 1 pixel wide.
///
/// # Errors
/// As [`write_png_grid`], and [`DiffusionError::InvalidConfig`] for `scale == 0` or a grid
/// too large for PNG or for memory (checked before anything is allocated).
pub fn write_png_grid_scaled(
    path: impl AsRef<Path>,
    images: Tensor<4>,
    columns: usize,
    scale: usize,
) -> error::Result<()> {
    let path = path.as_ref();
    let [n, c, h, w] = images.dims();
    if n == 0 || (c != 1 && c != 3) {
        return Err(DiffusionError::ShapeMismatch {
            what: "images [N ≥ 1, C ∈ {1, 3}, H, W]",
            expected: vec![n.max(1), if c == 3 { 3 } else { 1 }, h, w],
            got: vec![n, c, h, w],
        });
    }
    if columns == 0 {
        return Err(DiffusionError::config("columns", 0, "must be positive"));
    }
    if scale == 0 {
        return Err(DiffusionError::config("scale", 0, "must be positive"));
    }
    if h == 0 || w == 0 {
        return Err(DiffusionError::input(
            "images",
            &[n, c, h, w],
            "images need a positive height and width",
        ));
    }
    let (cols, rows) = (columns.min(n), n.div_ceil(columns));
    // The grid's size is known before anything is read or allocated: PNG limits each
    // side to 2^31 − 1 pixels, and the buffer must fit in memory.
    let side = |count: usize, cell: usize| {
        cell.checked_mul(scale)
            .and_then(|cell| cell.checked_add(1)?.checked_mul(count)?.checked_sub(1))
            .filter(|&side| side <= i32::MAX as usize)
    };
    let (Some(width), Some(height)) = (side(cols, w), side(rows, h)) else {
        return Err(DiffusionError::config(
            "scale",
            scale,
            format!(
                "a grid of {rows}×{cols} images of {h}×{w} pixels is beyond PNG's 2^31 − 1 pixels a side"
            ),
        ));
    };
    crate::size::check_elements("PNG grid [height, width, channels]", &[height, width, c], 1)?;
    let (cell_h, cell_w) = (h * scale, w * scale);
    let values: Vec<f32> = crate::host::read_vec(images, "images")?;
    let mut pixels = vec![GAP; width * height * c];
    for (i, image) in values.chunks_exact(c * h * w).enumerate() {
        let (top, left) = ((i / cols) * (cell_h + 1), (i % cols) * (cell_w + 1));
        for y in 0..cell_h {
            for x in 0..cell_w {
                for ch in 0..c {
                    let v = image[(ch * h + y / scale) * w + x / scale];
                    let level = ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
                    pixels[((top + y) * width + left + x) * c + ch] = level;
                }
            }
        }
    }
    encode_png(path, &pixels, width, height, c)
}

/// Writes 8-bit pixels (row-major, `channels` interleaved) as a PNG file.
fn encode_png(
    path: &Path,
    pixels: &[u8],
    width: usize,
    height: usize,
    channels: usize,
) -> error::Result<()> {
    let fail = |reason: String| DiffusionError::data(path, reason);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| fail(format!("creating {}: {e}", dir.display())))?;
    }
    let file = std::fs::File::create(path).map_err(|e| fail(e.to_string()))?;
    let (w, h) = (
        u32::try_from(width).map_err(|_| fail(format!("width {width} too large")))?,
        u32::try_from(height).map_err(|_| fail(format!("height {height} too large")))?,
    );
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    encoder.set_color(if channels == 3 {
        png::ColorType::Rgb
    } else {
        png::ColorType::Grayscale
    });
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| fail(e.to_string()))?;
    writer
        .write_image_data(pixels)
        .map_err(|e| fail(e.to_string()))?;
    writer.finish().map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn decode(path: &Path) -> (png::OutputInfo, Vec<u8>) {
        let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        let mut reader = png::Decoder::new(file).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    #[test]
    fn grid_layout_levels_and_gaps() {
        let device = Device::flex();
        // Three 1×2 grayscale images in 2 columns: 2 rows, width 2·2 + 1, height 2·1 + 1.
        let data = TensorData::new(vec![-1.0f32, 1.0, 0.0, 2.0, -3.0, 0.5], [3, 1, 1, 2]);
        let path = std::env::temp_dir().join(format!("bd-grid-{}.png", std::process::id()));
        write_png_grid(&path, Tensor::from_data(data, &device), 2).unwrap();
        let (info, px) = decode(&path);
        assert_eq!((info.width, info.height), (5, 3));
        #[rustfmt::skip]
        let want = [
            0, 255, GAP, 128, 255,
            GAP, GAP, GAP, GAP, GAP,
            0, 191, GAP, GAP, GAP,
        ];
        assert_eq!(px, want);
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn rgb_scaled_and_errors() {
        let device = Device::flex();
        let path = std::env::temp_dir().join(format!("bd-rgb-{}.png", std::process::id()));
        let images = Tensor::<4>::ones([2, 3, 2, 2], &device);
        write_png_grid_scaled(&path, images.clone(), 2, 3).unwrap();
        let (info, px) = decode(&path);
        assert_eq!((info.width, info.height), (13, 6));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(&px[..6], &[255; 6]);
        std::fs::remove_file(&path).ok();
        let two = Tensor::<4>::zeros([1, 2, 2, 2], &device);
        assert!(matches!(
            write_png_grid(&path, two, 1),
            Err(DiffusionError::ShapeMismatch { .. })
        ));
        assert!(write_png_grid(&path, images.clone(), 0).is_err());
        let bad = Path::new("/dev/null/not-a-dir/x.png");
        assert!(matches!(
            write_png_grid(bad, images, 1),
            Err(DiffusionError::Data { .. })
        ));
    }
}
