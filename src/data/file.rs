//! Reading a data file whole, gunzipping it when it is gzip-compressed.

use std::io::Read;
use std::path::Path;

use crate::error::{self, DiffusionError};

/// The two magic bytes of a gzip member (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The bytes of the file at `path`, decompressed if they start with the gzip magic.
///
/// # Errors
/// [`DiffusionError::Data`] if the file cannot be read or is a corrupt gzip stream.
pub(crate) fn read_maybe_gzip(path: &Path) -> error::Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| DiffusionError::data(path, e.to_string()))?;
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| DiffusionError::data(path, format!("corrupt gzip stream: {e}")))?;
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    /// A fresh path in the system's temporary folder, unique per test and process.
    pub(crate) fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("burn-diffusion-{}-{name}", std::process::id()))
    }

    /// `bytes` gzip-compressed.
    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn plain_and_gzip_files_read_the_same() {
        let (plain, packed) = (temp_path("plain.bin"), temp_path("packed.bin.gz"));
        std::fs::write(&plain, b"1,2,3\n").unwrap();
        std::fs::write(&packed, gzip(b"1,2,3\n")).unwrap();
        assert_eq!(read_maybe_gzip(&plain).unwrap(), b"1,2,3\n");
        assert_eq!(read_maybe_gzip(&packed).unwrap(), b"1,2,3\n");
        let mut broken = gzip(b"some longer content to compress, some longer content");
        broken.truncate(broken.len() / 2);
        std::fs::write(&packed, &broken).unwrap();
        let err = read_maybe_gzip(&packed).unwrap_err().to_string();
        assert!(err.contains("corrupt gzip"), "{err}");
        let missing = read_maybe_gzip(&temp_path("missing")).unwrap_err();
        assert!(matches!(missing, DiffusionError::Data { .. }));
        std::fs::remove_file(plain).unwrap();
        std::fs::remove_file(packed).unwrap();
    }
}
