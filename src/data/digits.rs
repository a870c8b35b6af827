//! scikit-learn's 8×8 handwritten digits: an ASCII CSV of 65 integers per line, the 64
//! pixels (0..=16, row-major) and the label (0..=9).

use std::path::Path;

use super::file::read_maybe_gzip;
use super::image_dataset::ImageDataset;
use crate::error::{self, DiffusionError};

const PIXELS: usize = 64;
const LEVELS: u32 = 17;

/// Reads the digits CSV at `path` (plain or gzipped) into an [`ImageDataset`] of
/// `[1, 8, 8]` images with 17 pixel levels.
pub(crate) fn load(path: &Path) -> error::Result<ImageDataset> {
    let bytes = read_maybe_gzip(path)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| DiffusionError::data(path, format!("not UTF-8 text: {e}")))?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let fail = |reason: String| DiffusionError::data(path, format!("line {}: {reason}", i + 1));
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != PIXELS + 1 {
            return Err(fail(format!("expected 65 fields, found {}", fields.len())));
        }
        for (j, field) in fields.iter().enumerate() {
            let max = if j == PIXELS { 9 } else { LEVELS - 1 };
            let value: u32 = field
                .parse()
                .map_err(|_| fail(format!("field {}: {field:?} is not an integer", j + 1)))?;
            if value > max {
                return Err(fail(format!(
                    "field {}: {value} is out of 0..={max}",
                    j + 1
                )));
            }
            if j == PIXELS {
                labels.push(value as u8);
            } else {
                pixels.push(value as u8);
            }
        }
    }
    if labels.is_empty() {
        return Err(DiffusionError::data(path, "no digits in the file"));
    }
    ImageDataset::from_levels(&pixels, labels, [1, 8, 8], LEVELS)
}

#[cfg(test)]
mod tests {
    use super::super::file::tests::{gzip, temp_path};
    use super::*;

    fn line(pixel: u32, label: u32) -> String {
        let mut fields = vec![pixel.to_string(); PIXELS];
        fields.push(label.to_string());
        fields.join(",") + "\n"
    }

    fn load_text(name: &str, text: &str) -> error::Result<ImageDataset> {
        let path = temp_path(name);
        std::fs::write(&path, gzip(text.as_bytes())).unwrap();
        let out = ImageDataset::load_digits(&path);
        std::fs::remove_file(path).unwrap();
        out
    }

    #[test]
    fn a_small_file_round_trips() {
        let d = load_text(
            "digits-ok.csv.gz",
            &(line(0, 3) + &line(16, 9) + &line(8, 0)),
        )
        .unwrap();
        assert_eq!((d.len(), d.image_shape(), d.levels()), (3, [1, 8, 8], 17));
        assert_eq!(d.labels(), &[3, 9, 0]);
        assert_eq!(d.pixels()[0], -1.0);
        assert_eq!(d.pixels()[64], 1.0);
        assert_eq!(d.pixels()[128], 0.0);
    }

    #[test]
    fn bad_files_name_the_line() {
        let cases = [
            (
                "short",
                line(1, 1) + "1,2,3\n",
                "line 2: expected 65 fields, found 3",
            ),
            ("pixel", line(17, 1), "line 1: field 1: 17 is out of 0..=16"),
            ("label", line(1, 10), "line 1: field 65: 10 is out of 0..=9"),
            ("text", line(1, 1).replace("1,", "x,"), "is not an integer"),
            ("empty", String::new(), "no digits"),
        ];
        for (name, text, want) in cases {
            let err = load_text(name, &text).unwrap_err().to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn the_shipped_file_has_the_documented_counts() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits/digits.csv.gz");
        let d = ImageDataset::load_digits(path).unwrap();
        let mut counts = [0usize; 10];
        d.labels().iter().for_each(|&l| counts[l as usize] += 1);
        assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    }
}
