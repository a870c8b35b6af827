//! Training checkpoints: one directory per step, written atomically, and a `latest`
//! pointer that only ever names a complete checkpoint.

use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::module::Module;
use burn::optim::OptimizerRecord;

use super::config::TrainConfig;
use crate::error;
use crate::files::{self, Manifest, fail, pause_point, sync};

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
/// `config.seed`, the step and (with importance-sampled timesteps) the loss history, so
/// `step` and `timestep_losses` are the whole random state.
#[derive(Config, Debug, PartialEq)]
pub struct CheckpointState {
    /// Optimizer steps completed.
    pub step: usize,
    /// EMA updates so far.
    pub ema_updates: usize,
    /// The run's configuration.
    pub config: TrainConfig,
    /// The training objective, as [`crate::Loss::describe`] gave it: the loss, what the
    /// model predicts, and its schedule. A resume with another objective is refused.
    pub objective: String,
    /// The importance sampler's loss history, one list per timestep, oldest first
    /// ([`crate::train::TimestepSampling::LossSecondMoment`]; `None` for uniform
    /// timesteps).
    #[config(default = "None")]
    pub timestep_losses: Option<Vec<Vec<f64>>>,
}

/// A complete checkpoint on disk: `root/step-NNNNNNNN/` with `model.bpk` (the trained
/// weights), `ema.bpk` (the EMA weights), `optimizer.bpk` (the AdamW moments and step
/// counts), `state.json` (the [`CheckpointState`]) and `checksums` (CRC-32 and length of
/// each, verified on every read); `root/latest` names the newest complete one.
///
/// Writing goes to a hidden temporary directory first, every file is synced, and one
/// `rename` publishes it; then `root/latest` is replaced the same way. A crash at any
/// moment leaves `latest` naming the previous complete checkpoint. Pruning (keeping the
/// newest `keep_checkpoints`) never removes the checkpoint `latest` names, and removes
/// the step directories newer than it: those a crash published but never made `latest`,
/// which a resumed run replaces. A step written again (`Trainer::save_checkpoint` at a
/// step already saved) moves the old directory aside until `latest` names the new one;
/// after a crash in between, [`Checkpoint::latest`] restores it. `tests/suite/crash.rs`
/// SIGKILLs training at each of these moments and checks that every resume succeeds and
/// ends with an uninterrupted run's weights.
///
/// Loading reads each file whole and checks it against `checksums`: a flipped bit, a
/// truncated or replaced file, or an edited `state.json` is an error naming the file, and
/// the loaded weights own their data (rewriting or deleting the checkpoint afterwards does
/// not change them).
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    dir: PathBuf,
    state: CheckpointState,
}

impl Checkpoint {
    /// The newest complete checkpoint under `root`, if any.
    ///
    /// # Errors
    /// [`DiffusionError::Checkpoint`](crate::DiffusionError::Checkpoint) if `latest` exists
    /// but does not name a step directory of `root` (`step-NNNNNNNN`: no other path is
    /// followed), or names a missing or unreadable checkpoint.
    pub fn latest(root: impl AsRef<Path>) -> error::Result<Option<Self>> {
        let pointer = root.as_ref().join(LATEST_FILE);
        let name = match std::fs::read_to_string(&pointer) {
            Ok(name) => name,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(fail(&pointer, e)),
        };
        let name = name.trim();
        let step = name
            .strip_prefix("step-")
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<usize>().ok());
        if step.is_none() {
            return Err(fail(
                &pointer,
                format!("names {name:?}, not a step directory (step-NNNNNNNN) of this root"),
            ));
        }
        let dir = root.as_ref().join(name);
        let replaced = root.as_ref().join(format!("{REPLACED_PREFIX}{name}"));
        if !dir.exists() && replaced.is_dir() {
            // A crash while this step was being written again: the old one is complete.
            std::fs::rename(&replaced, &dir).map_err(|e| fail(&replaced, e))?;
        }
        Self::open(dir).map(Some)
    }

    /// The checkpoint in `dir`, its manifest and state verified.
    ///
    /// # Errors
    /// [`DiffusionError::Checkpoint`](crate::DiffusionError::Checkpoint) if the manifest or the state file is missing,
    /// unreadable or fails its checksum, or the state's step is not the directory's.
    pub fn open(dir: impl AsRef<Path>) -> error::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = Manifest::read(&dir)?;
        let path = dir.join(STATE_FILE);
        let bytes = manifest.read_file(STATE_FILE)?;
        let state = CheckpointState::load_binary(&bytes).map_err(|e| fail(&path, e))?;
        let named = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        if named.as_deref().is_some_and(|n| n.starts_with("step-"))
            && named != Some(step_dir_name(state.step))
        {
            return Err(fail(
                &path,
                format!("says step {}, but the directory is {named:?}", state.step),
            ));
        }
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
    /// [`DiffusionError::Checkpoint`](crate::DiffusionError::Checkpoint) if the file is unreadable or does not fit `model`.
    pub fn load_model<M: Module>(&self, model: M) -> error::Result<M> {
        self.load_module(model, MODEL_FILE)
    }

    /// `model` with the EMA weights loaded (the ones to sample with).
    ///
    /// # Errors
    /// As [`Checkpoint::load_model`].
    pub fn load_ema<M: Module>(&self, model: M) -> error::Result<M> {
        self.load_module(model, EMA_FILE)
    }

    pub(crate) fn load_optimizer(&self) -> error::Result<OptimizerRecord> {
        let bytes = Manifest::read(&self.dir)?.read_file(OPTIMIZER_FILE)?;
        files::load_optimizer(bytes, &self.dir.join(OPTIMIZER_FILE))
    }

    fn load_module<M: Module>(&self, model: M, file: &str) -> error::Result<M> {
        let bytes = Manifest::read(&self.dir)?.read_file(file)?;
        files::load_module(model, bytes, &self.dir.join(file))
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
    let name = step_dir_name(state.step);
    let staging = root.join(format!(".partial-{name}"));
    let dir = root.join(&name);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| fail(&staging, e))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| fail(&staging, e))?;
    files::save_module(model, &staging.join(MODEL_FILE))?;
    pause_point("writing", state.step);
    files::save_module(ema, &staging.join(EMA_FILE))?;
    let path = staging.join(OPTIMIZER_FILE);
    optimizer
        .save(&path)
        .map_err(|e| fail(&path, format!("{e:?}")))?;
    let path = staging.join(STATE_FILE);
    state.save(&path).map_err(|e| fail(&path, e))?;
    let written = [MODEL_FILE, EMA_FILE, OPTIMIZER_FILE, STATE_FILE];
    for file in written {
        sync(&staging.join(file))?;
    }
    pause_point("manifest", state.step);
    Manifest::write(&staging, &written)?;
    // A checkpoint of this step already there (saved again, or an orphan of a crash) is
    // moved aside, not deleted, until `latest` names the new one: a crash in between
    // leaves it for `Checkpoint::latest` to restore.
    let replaced = root.join(format!("{REPLACED_PREFIX}{name}"));
    if dir.exists() {
        if replaced.exists() {
            std::fs::remove_dir_all(&replaced).map_err(|e| fail(&replaced, e))?;
        }
        std::fs::rename(&dir, &replaced).map_err(|e| fail(&dir, e))?;
    }
    pause_point("replacing", state.step);
    std::fs::rename(&staging, &dir).map_err(|e| fail(&dir, e))?;
    pause_point("published", state.step);
    replace_file(&root.join(LATEST_FILE), name.as_bytes())?;
    pause_point("latest", state.step);
    prune(root, &name, state.config.keep_checkpoints)?;
    Ok(Checkpoint { dir, state })
}

/// Prefix of a checkpoint directory moved aside while its step is written again.
const REPLACED_PREFIX: &str = ".replaced-";

/// The directory name of the checkpoint of `step`.
fn step_dir_name(step: usize) -> String {
    format!("step-{step:08}")
}

/// Replaces `path` by `contents` atomically (write a sibling, sync, rename).
pub(crate) fn replace_file(path: &Path, contents: &[u8]) -> error::Result<()> {
    let staging = path.with_extension("partial");
    std::fs::write(&staging, contents).map_err(|e| fail(&staging, e))?;
    sync(&staging)?;
    std::fs::rename(&staging, path).map_err(|e| fail(path, e))
}

/// Keeps `latest` (the checkpoint just published) and the newest `keep − 1` step
/// directories before it; deletes the rest, including directories after `latest` (left
/// by a crash between publishing one and updating `latest`).
fn prune(root: &Path, latest: &str, keep: usize) -> error::Result<()> {
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
    let latest = root.join(latest);
    let before: Vec<&PathBuf> = steps.iter().filter(|p| **p < latest).collect();
    let kept_before = keep.saturating_sub(1).min(before.len());
    let doomed = before[..before.len() - kept_before]
        .iter()
        .copied()
        .chain(steps.iter().filter(|p| **p > latest));
    for old in doomed {
        std::fs::remove_dir_all(old).map_err(|e| fail(old, e))?;
    }
    // Directories moved aside by a write that `latest` now supersedes.
    for entry in std::fs::read_dir(root)
        .map_err(|e| fail(root, e))?
        .flatten()
    {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(REPLACED_PREFIX)
        {
            let path = entry.path();
            std::fs::remove_dir_all(&path).map_err(|e| fail(&path, e))?;
        }
    }
    Ok(())
}
