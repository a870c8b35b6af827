//! The IDX format of MNIST and Fashion-MNIST: a big-endian header (magic number, then one
//! u32 per dimension) followed by unsigned bytes.

use std::path::Path;

use super::file::read_maybe_gzip;
use super::image_dataset::ImageDataset;
use crate::error::{self, DiffusionError};

/// Magic of an unsigned-byte file with 3 dimensions (images: N, rows, columns).
const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic of an unsigned-byte file with 1 dimension (labels: N).
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Reads IDX images (and labels) into an [`ImageDataset`] of `[1, rows, cols]` images with
/// 256 pixel levels.
pub(crate) fn load(images: &Path, labels: Option<&Path>) -> error::Result<ImageDataset> {
    let (dims, pixels) = read_idx(images, IMAGES_MAGIC)?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    let labels = match labels {
        None => vec![0; n],
        Some(path) => {
            let (label_dims, labels) = read_idx(path, LABELS_MAGIC)?;
            if label_dims[0] != n {
                return Err(DiffusionError::data(
                    path,
                    format!(
                        "{} labels for {n} images in {}",
                        label_dims[0],
                        images.display()
                    ),
                ));
            }
            labels
        }
    };
    if n == 0 || rows == 0 || cols == 0 {
        return Err(DiffusionError::data(
            images,
            format!("empty image set {dims:?}"),
        ));
    }
    ImageDataset::from_levels(&pixels, labels, [1, rows, cols], 256)
}

/// The dimensions and the body of the IDX file at `path`, checked against `magic` and
/// against the body length the header promises.
fn read_idx(path: &Path, magic: u32) -> error::Result<(Vec<usize>, Vec<u8>)> {
    let bytes = read_maybe_gzip(path)?;
    let rank = (magic & 0xff) as usize;
    let header = 4 * (1 + rank);
    let word = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    if bytes.len() < header {
        return Err(DiffusionError::data(
            path,
            format!("truncated header: {} bytes, expected {header}", bytes.len()),
        ));
    }
    if word(0) != magic {
        return Err(DiffusionError::data(
            path,
            format!(
                "wrong magic number {:#010x}, expected {magic:#010x}",
                word(0)
            ),
        ));
    }
    let dims: Vec<usize> = (0..rank).map(|d| word(4 + 4 * d) as usize).collect();
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let body = bytes.len() - header;
    match expected {
        Some(e) if e == body => Ok((dims, bytes[header..].to_vec())),
        Some(e) if e > body => Err(DiffusionError::data(
            path,
            format!("truncated: header {dims:?} needs {e} bytes, found {body}"),
        )),
        Some(e) => Err(DiffusionError::data(
            path,
            format!(
                "{} trailing bytes after the {e} that header {dims:?} describes",
                body - e
            ),
        )),
        None => Err(DiffusionError::data(
            path,
            format!("header {dims:?} overflows"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::file::tests::{gzip, temp_path};
    use super::*;

    fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        dims.iter().for_each(|d| out.extend(d.to_be_bytes()));
        out.extend_from_slice(body);
        out
    }

    /// Writes images (gzipped) and labels (plain), loads them, removes the files.
    fn load_pair(name: &str, images: Vec<u8>, labels: Vec<u8>) -> error::Result<ImageDataset> {
        let (ip, lp) = (
            temp_path(&format!("{name}-images.gz")),
            temp_path(&format!("{name}-labels")),
        );
        std::fs::write(&ip, gzip(&images)).unwrap();
        std::fs::write(&lp, labels).unwrap();
        let out = ImageDataset::load_idx(&ip, Some(lp.as_path()));
        std::fs::remove_file(ip).unwrap();
        std::fs::remove_file(lp).unwrap();
        out
    }

    #[test]
    fn two_images_round_trip() {
        let pixels = [0, 255, 51, 204, 255, 0, 0, 255, 255, 0, 0, 255];
        let d = load_pair(
            "ok",
            idx(IMAGES_MAGIC, &[2, 2, 3], &pixels),
            idx(LABELS_MAGIC, &[2], &[4, 2]),
        )
        .unwrap();
        assert_eq!((d.len(), d.image_shape(), d.levels()), (2, [1, 2, 3], 256));
        assert_eq!(d.labels(), &[4, 2]);
        // p·(2/255) − 1 in f32: within 2 ulps of 1 of the exact value.
        for (got, p) in d.pixels()[..4].iter().zip([0.0, 255.0, 51.0, 204.0]) {
            let want = p / 127.5 - 1.0;
            assert!((f64::from(*got) - want).abs() < 2.4e-7, "{got} vs {want}");
        }
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let good_images = idx(IMAGES_MAGIC, &[2, 1, 2], &[1, 2, 3, 4]);
        let good_labels = idx(LABELS_MAGIC, &[2], &[0, 1]);
        let cases = [
            (
                "magic",
                idx(LABELS_MAGIC, &[2, 1, 2], &[1, 2, 3, 4]),
                good_labels.clone(),
                "wrong magic number 0x00000801, expected 0x00000803",
            ),
            (
                "header",
                vec![0, 0, 8, 3, 0],
                good_labels.clone(),
                "truncated header",
            ),
            (
                "truncated",
                idx(IMAGES_MAGIC, &[2, 1, 2], &[1, 2, 3]),
                good_labels.clone(),
                "needs 4 bytes, found 3",
            ),
            (
                "trailing",
                idx(IMAGES_MAGIC, &[2, 1, 2], &[1, 2, 3, 4, 5]),
                good_labels.clone(),
                "1 trailing bytes",
            ),
            (
                "counts",
                good_images.clone(),
                idx(LABELS_MAGIC, &[3], &[0, 1, 2]),
                "3 labels for 2 images",
            ),
            (
                "labels-truncated",
                good_images.clone(),
                idx(LABELS_MAGIC, &[2], &[0]),
                "needs 2 bytes, found 1",
            ),
            (
                "empty",
                idx(IMAGES_MAGIC, &[0, 28, 28], &[]),
                idx(LABELS_MAGIC, &[0], &[]),
                "empty",
            ),
        ];
        for (name, images, labels, want) in cases {
            let err = load_pair(name, images, labels).unwrap_err();
            assert!(matches!(err, DiffusionError::Data { .. }), "{name}: {err}");
            assert!(err.to_string().contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn shipped_mnist_and_fashion_mnist_test_sets_load() {
        for set in ["mnist", "fashion-mnist"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(set);
            let labels = dir.join("t10k-labels-idx1-ubyte.gz");
            let d = ImageDataset::load_idx(dir.join("t10k-images-idx3-ubyte.gz"), Some(&labels))
                .unwrap();
            assert_eq!((d.len(), d.image_shape()), (10_000, [1, 28, 28]), "{set}");
            let mut counts = [0usize; 10];
            d.labels().iter().for_each(|&l| counts[l as usize] += 1);
            let want = match set {
                "mnist" => [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
                _ => [1000; 10],
            };
            assert_eq!(counts, want, "{set}");
            let (lo, hi) = d
                .pixels()
                .iter()
                .fold((1.0f32, -1.0f32), |(lo, hi), &p| (lo.min(p), hi.max(p)));
            assert_eq!((lo, hi), (-1.0, 1.0), "{set} uses the full 0..255 range");
        }
    }
}
