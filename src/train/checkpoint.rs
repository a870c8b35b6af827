//! Training checkpoints: one directory per step, written atomically, and a `latest`
//! pointer that only ever names a complete checkpoint.

use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::module::Module;
use burn::optim::OptimizerRecord;

use super::config::TrainConfig;
use crate::error::{self, DiffusionError};

/// File of the trained weights in a checkpoint directory.
pub(crate) const MODEL_FILE: &str = "model.bpk";
/// File of the EMA weights.
pub(crate) const EMA_FILE: &str = "ema.bpk";
/// File of the optimizer state (AdamW moments and step counts).
pub(crate) const OPTIMIZER_FILE: &str = "optimizer.bpk";
/// File of the [`CheckpointState`] (JSON).
pub(crate) const STATE_FILE: &str = "state.json";
/// File in the checkpoint root naming the newest complete checkpoint directory.
pub(crate) const LATEST_FILE: &str = "latest";

/// What a checkpoint holds besides tensors. Every random choice of a run is a function of
/// `config.seed` and the step, so `step` is the whole random state.
#[derive(Config, Debug, PartialEq)]
pub struct CheckpointState {
    /// Optimizer steps completed.
    pub step: usize,
    /// EMA updates so far.
    pub ema_updates: usize,
    /// The run's configuration.
    pub config: TrainConfig,
}

/// A complete checkpoint on disk: `root/step-NNNNNNNN/` with `model.bpk` (the trained
/// weights), `ema.bpk` (the EMA weights), `optimizer.bpk` (the AdamW moments and step
/// counts) and `state.json` (the [`CheckpointState`]); `root/latest` names the newest
/// complete one.
///
/// Writing goes to a hidden temporary directory first, every file is synced, and one
/// `rename` publishes it; then `root/latest` is replaced the same way. A crash at any
/// moment leaves `latest` naming the previous complete checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    dir: PathBuf,
    state: CheckpointState,
}

impl Checkpoint {
    /// The newest complete checkpoint under `root`, if any.
    ///
    /// # Errors
    /// [`DiffusionError::Checkpoint`] if `latest` exists but names a missing or unreadable
    /// checkpoint.
    pub fn latest(root: impl AsRef<Path>) -> error::Result<Option<Self>> {
        let pointer = root.as_ref().join(LATEST_FILE);
        let name = match std::fs::read_to_string(&pointer) {
            Ok(name) => name,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(fail(&pointer, e)),
        };
        Self::open(root.as_ref().join(name.trim())).map(Some)
    }

    /// The checkpoint in `dir`.
    ///
    /// # Errors
    /// [`DiffusionError::Checkpoint`] if its state file is missing or unreadable.
    pub fn open(dir: impl AsRef<Path>) -> error::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let path = dir.join(STATE_FILE);
        let state = CheckpointState::load(&path).map_err(|e| fail(&path, e))?;
        Ok(Self { dir, state })
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its step, EMA count and configuration.
    pub fn state(&self) -> &CheckpointState {
        &self.state
    }

    /// `model` with the trained weights loaded.
    ///
    /// # Errors
    /// [`DiffusionError::Checkpoint`] if the file is unreadable or does not fit `model`.
    pub fn load_model<M: Module>(&self, model: M) -> error::Result<M> {
        load_module(model, &self.dir.join(MODEL_FILE))
    }

    /// `model` with the EMA weights loaded (the ones to sample with).
    ///
    /// # Errors
    /// As [`Checkpoint::load_model`].
    pub fn load_ema<M: Module>(&self, model: M) -> error::Result<M> {
        load_module(model, &self.dir.join(EMA_FILE))
    }

    pub(crate) fn load_optimizer(&self) -> error::Result<OptimizerRecord> {
        let path = self.dir.join(OPTIMIZER_FILE);
        OptimizerRecord::load(&path).map_err(|e| fail(&path, format!("{e:?}")))
    }
}

/// Writes the checkpoint of `state.step` under `root` atomically (see [`Checkpoint`]) and
/// keeps only the newest `state.config.keep_checkpoints` ones.
pub(crate) fn write<M: Module>(
    root: &Path,
    state: CheckpointState,
    model: &M,
    ema: &M,
    optimizer: OptimizerRecord,
) -> error::Result<Checkpoint> {
    let name = format!("step-{:08}", state.step);
    let staging = root.join(format!(".partial-{name}"));
    let dir = root.join(&name);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| fail(&staging, e))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| fail(&staging, e))?;
    let module_file = |m: &M, file: &str| {
        let path = staging.join(file);
        m.clone()
            .save_file(&path)
            .map_err(|e| fail(&path, format!("{e:?}")))
    };
    module_file(model, MODEL_FILE)?;
    module_file(ema, EMA_FILE)?;
    let path = staging.join(OPTIMIZER_FILE);
    optimizer
        .save(&path)
        .map_err(|e| fail(&path, format!("{e:?}")))?;
    let path = staging.join(STATE_FILE);
    state.save(&path).map_err(|e| fail(&path, e))?;
    for file in [MODEL_FILE, EMA_FILE, OPTIMIZER_FILE, STATE_FILE] {
        sync(&staging.join(file))?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| fail(&dir, e))?;
    }
    std::fs::rename(&staging, &dir).map_err(|e| fail(&dir, e))?;
    replace_file(&root.join(LATEST_FILE), name.as_bytes())?;
    prune(root, state.config.keep_checkpoints)?;
    Ok(Checkpoint { dir, state })
}

/// Replaces `path` by `contents` atomically (write a sibling, sync, rename).
pub(crate) fn replace_file(path: &Path, contents: &[u8]) -> error::Result<()> {
    let staging = path.with_extension("partial");
    std::fs::write(&staging, contents).map_err(|e| fail(&staging, e))?;
    sync(&staging)?;
    std::fs::rename(&staging, path).map_err(|e| fail(path, e))
}

/// Deletes all but the newest `keep` `step-*` directories.
fn prune(root: &Path, keep: usize) -> error::Result<()> {
    let mut steps: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| fail(root, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("step-"))
        })
        .collect();
    steps.sort();
    let excess = steps.len().saturating_sub(keep);
    for old in &steps[..excess] {
        std::fs::remove_dir_all(old).map_err(|e| fail(old, e))?;
    }
    Ok(())
}

fn load_module<M: Module>(model: M, path: &Path) -> error::Result<M> {
    model
        .try_load_file(path)
        .map_err(|e| fail(path, format!("{e:?}")))
}

fn sync(path: &Path) -> error::Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| fail(path, e))
}

fn fail(path: &Path, reason: impl ToString) -> DiffusionError {
    DiffusionError::Checkpoint {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}
