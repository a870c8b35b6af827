//! The files the crate writes and reads back: whole-file reads, so that nothing loaded
//! depends on its file afterwards, and a checksum manifest verified on every read.
//!
//! Burn 0.22's `Module::try_load_file` keeps the file's path and reads each tensor from it on
//! first use: a model loaded that way changes when its file is rewritten and fails when it is
//! deleted. Every load of this crate reads the whole file into memory first (the loaded weights
//! own their bytes) and checks it against the directory's manifest.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::OptimizerRecord;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;

use crate::error::{self, DiffusionError};

/// The manifest's file name in a saved directory.
pub(crate) const MANIFEST_FILE: &str = "checksums";

/// CRC-32 (IEEE) and length of each file of a saved directory.
///
/// On disk, one line per file, `<crc32 hex> <length> <name>`, then a last line
/// `<crc32 hex> checksums` with the CRC of the text before it, so that an edit of the
/// manifest itself is caught too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    dir: PathBuf,
    entries: Vec<(String, u32, u64)>,
}

impl Manifest {
    /// Checksums the files `names` of `dir` and writes (and syncs) `dir/checksums`.
    pub(crate) fn write(dir: &Path, names: &[&str]) -> error::Result<()> {
        let mut text = String::new();
        for name in names {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(|e| fail(&path, e))?;
            text += &format!("{:08x} {} {name}\n", crc32(&bytes), bytes.len());
        }
        text += &format!("{:08x} {MANIFEST_FILE}\n", crc32(text.as_bytes()));
        let path = dir.join(MANIFEST_FILE);
        std::fs::write(&path, text).map_err(|e| fail(&path, e))?;
        sync(&path)
    }

    /// The manifest of `dir`, its own checksum verified.
    ///
    /// # Errors
    /// [`DiffusionError::Checkpoint`] naming the manifest when it is missing, unreadable,
    /// malformed or edited.
    pub(crate) fn read(dir: &Path) -> error::Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| fail(&path, e))?;
        let malformed = |why: &str| fail(&path, format!("malformed manifest: {why}"));
        if !text.ends_with('\n') {
            return Err(malformed("truncated (it ends with a newline)"));
        }
        let body_len = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
        let (body, last) = text.split_at(body_len);
        let mut last = last.split_whitespace();
        let (Some(crc), Some(MANIFEST_FILE), None) = (last.next(), last.next(), last.next()) else {
            return Err(malformed("its last line must be `<crc32> checksums`"));
        };
        if u32::from_str_radix(crc, 16).ok() != Some(crc32(body.as_bytes())) {
            return Err(fail(&path, "the manifest's own checksum does not match"));
        }
        let entries = body
            .lines()
            .map(|line| {
                let mut parts = line.splitn(3, ' ');
                let crc = parts.next().and_then(|c| u32::from_str_radix(c, 16).ok());
                let len = parts.next().and_then(|l| l.parse().ok());
                match (crc, len, parts.next()) {
                    (Some(crc), Some(len), Some(name)) => Ok((name.to_string(), crc, len)),
                    _ => Err(malformed(&format!("line {line:?}"))),
                }
            })
            .collect::<error::Result<_>>()?;
        Ok(Self {
            dir: dir.to_path_buf(),
            entries,
        })
    }

    /// The bytes of `name`, verified against the manifest.
    ///
    /// # Errors
    /// [`DiffusionError::Checkpoint`] naming the file when the manifest does not list it,
    /// or it is unreadable, or its length or checksum differs from the manifest's.
    pub(crate) fn read_file(&self, name: &str) -> error::Result<Vec<u8>> {
        let path = self.dir.join(name);
        let &(_, crc, len) = self
            .entries
            .iter()
            .find(|(n, _, _)| n == name)
            .ok_or_else(|| fail(&path, "not listed in the directory's checksums"))?;
        let bytes = std::fs::read(&path).map_err(|e| fail(&path, e))?;
        if bytes.len() as u64 != len {
            return Err(fail(
                &path,
                format!(
                    "{} bytes where the checksums list {len}: truncated or replaced",
                    bytes.len()
                ),
            ));
        }
        if crc32(&bytes) != crc {
            return Err(fail(
                &path,
                format!(
                    "checksum {:08x} where the checksums list {crc:08x}: the file is corrupt or was replaced",
                    crc32(&bytes)
                ),
            ));
        }
        Ok(bytes)
    }
}

/// `model` with the burnpack weights `bytes` (read from `path`) loaded; the result owns
/// its data.
pub(crate) fn load_module<M: Module>(model: M, bytes: Vec<u8>, path: &Path) -> error::Result<M> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| fail(path, format!("{e:?}")))?;
    model
        .try_load_record(record)
        .map_err(|e| fail(path, format!("{e:?}")))
}

/// The optimizer record in the burnpack `bytes` (read from `path`).
pub(crate) fn load_optimizer(bytes: Vec<u8>, path: &Path) -> error::Result<OptimizerRecord> {
    OptimizerRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| fail(path, format!("{e:?}")))
}

/// Writes `module` to `path` (burnpack).
pub(crate) fn save_module<M: Module>(module: &M, path: &Path) -> error::Result<()> {
    module
        .clone()
        .save_file(path)
        .map_err(|e| fail(path, format!("{e:?}")))
}

/// The crash tests' hook (`tests/suite/crash.rs`): when the environment variable
/// `BURN_DIFFUSION_PAUSE_AT` is `{point}:{step}`, reports `paused at {point}:{step}` on
/// stderr and blocks forever, so that the test can SIGKILL the process at exactly this
/// moment of a checkpoint write. Otherwise (always, outside those tests) it does nothing
/// but read the variable.
pub(crate) fn pause_point(point: &str, step: usize) {
    let Some(wanted) = std::env::var_os("BURN_DIFFUSION_PAUSE_AT") else {
        return;
    };
    let here = format!("{point}:{step}");
    if wanted.to_string_lossy() == here {
        eprintln!("paused at {here}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// Flushes `path` to the disk.
pub(crate) fn sync(path: &Path) -> error::Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| fail(path, e))
}

/// A [`DiffusionError::Checkpoint`] naming `path`.
pub(crate) fn fail(path: &Path, reason: impl ToString) -> DiffusionError {
    DiffusionError::Checkpoint {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "burn-diffusion-files-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_written_manifest_verifies_its_files() {
        let d = dir("ok");
        std::fs::write(d.join("a"), b"hello").unwrap();
        std::fs::write(d.join("b c"), b"").unwrap();
        Manifest::write(&d, &["a", "b c"]).unwrap();
        let m = Manifest::read(&d).unwrap();
        assert_eq!(m.read_file("a").unwrap(), b"hello");
        assert_eq!(m.read_file("b c").unwrap(), b"");
        assert!(m.read_file("missing").is_err());
    }

    #[test]
    fn flipped_truncated_or_replaced_files_and_edited_manifests_are_refused() {
        let d = dir("bad");
        std::fs::write(d.join("a"), b"hello world").unwrap();
        Manifest::write(&d, &["a"]).unwrap();
        std::fs::write(d.join("a"), b"hello World").unwrap(); // one flipped bit
        let err = Manifest::read(&d).unwrap().read_file("a").unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        std::fs::write(d.join("a"), b"hello").unwrap();
        let err = Manifest::read(&d).unwrap().read_file("a").unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        // An edited manifest (the size changed to match) fails its own checksum.
        let text = std::fs::read_to_string(d.join(MANIFEST_FILE)).unwrap();
        std::fs::write(d.join(MANIFEST_FILE), text.replace(" 11 ", " 5 ")).unwrap();
        let err = Manifest::read(&d).unwrap_err();
        assert!(err.to_string().contains("own checksum"), "{err}");
        std::fs::write(d.join(MANIFEST_FILE), "").unwrap();
        assert!(Manifest::read(&d).is_err());
        std::fs::remove_file(d.join(MANIFEST_FILE)).unwrap();
        assert!(Manifest::read(&d).is_err());
    }
}
