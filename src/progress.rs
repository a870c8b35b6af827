//! Progress reporting.
//!
//! The library reports progress through callbacks and draws nothing itself:
//! [`sample`](crate::sampler::sample) calls `progress(done, total)` after every step, and
//! [`Trainer::fit_with`](crate::train::Trainer::fit_with) calls `on_step(&stats)` after
//! every optimizer step. Pass a closure to log, plot or ignore them.
//!
//! With the `progress` feature (on by default), [`ConsoleProgress`] draws those callbacks
//! as a console bar on stderr with [indicatif](https://docs.rs/indicatif).

/// A console progress bar on stderr (feature `progress`): step / total, the latest loss,
/// steps per second and the estimated time left, drawn with indicatif.
///
/// On a terminal the bar is redrawn in place (at most 20 times a second); when stderr is
/// not a terminal (a log file, CI) the bar is hidden and only the summary line of
/// [`ConsoleProgress::finish`] is printed, so logs stay short.
///
/// # Example
/// ```
/// use burn_diffusion::progress::ConsoleProgress;
///
/// let progress = ConsoleProgress::new(1000, "train");
/// for step in 1..=1000 {
///     let loss = 1.0 / step as f64; // one training step
///     progress.update(step, Some(loss));
/// }
/// progress.finish(); // e.g. "train: 1000 steps in 0.0 s (…/s), last loss 0.0010"
/// ```
#[cfg(feature = "progress")]
#[cfg_attr(docsrs, doc(cfg(feature = "progress")))]
#[derive(Debug)]
pub struct ConsoleProgress {
    bar: indicatif::ProgressBar,
    label: String,
    first: usize,
    loss: std::cell::Cell<Option<f64>>,
}

#[cfg(feature = "progress")]
impl ConsoleProgress {
    /// A bar for `total` steps, prefixed by `label`. The clock starts now.
    pub fn new(total: usize, label: impl Into<String>) -> Self {
        let label = label.into();
        let style = indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:24}] {pos}/{len} {msg} {per_sec} ETA {eta}",
        )
        .expect("the template is valid")
        .progress_chars("#>.");
        let bar = indicatif::ProgressBar::new(total as u64)
            .with_style(style)
            .with_prefix(label.clone());
        Self {
            bar,
            label,
            first: 0,
            loss: std::cell::Cell::new(None),
        }
    }

    /// The same bar for a run that continues after `step` steps were already done (a
    /// resumed or chunked training run): rates and times count from here.
    pub fn continuing_after(mut self, step: usize) -> Self {
        self.first = step;
        self.bar.set_position(step as u64);
        self.bar.reset_eta();
        self
    }

    /// Records that `step` steps (1-based: `total` is the last) are done, with the
    /// step's loss if there is one, and redraws the bar when due.
    pub fn update(&self, step: usize, loss: Option<f64>) {
        if let Some(loss) = loss {
            self.loss.set(Some(loss));
            self.bar.set_message(format!("loss {loss:.4}"));
        }
        self.bar.set_position(step as u64);
    }

    /// Clears the bar and prints a summary line: the steps done, the elapsed time, the
    /// rate and the last loss.
    pub fn finish(self) {
        eprintln!("{}", self.finish_line());
    }

    /// Clears the bar and returns its summary line, counted before the clearing (which
    /// moves the bar to its end: a bar stopped early would otherwise report every step
    /// up to `total`).
    fn finish_line(self) -> String {
        let line = self.summary();
        self.bar.finish_and_clear();
        line
    }

    /// `"label: N steps in S s (R/s)"`, with `", last loss L"` when a loss was given.
    fn summary(&self) -> String {
        let steps = (self.bar.position() as usize).saturating_sub(self.first);
        let seconds = self.bar.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            steps as f64 / seconds
        } else {
            0.0
        };
        let loss = self
            .loss
            .get()
            .map(|l| format!(", last loss {l:.4}"))
            .unwrap_or_default();
        format!(
            "{}: {steps} steps in {seconds:.1} s ({rate:.1}/s){loss}",
            self.label
        )
    }
}

#[cfg(all(test, feature = "progress"))]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_steps_after_a_resume_and_shows_the_last_loss() {
        let p = ConsoleProgress::new(200, "vae").continuing_after(50);
        p.update(60, Some(2.0));
        p.update(80, Some(1.234_56));
        p.update(90, None);
        let line = p.summary();
        assert!(line.starts_with("vae: 40 steps in "), "{line}");
        assert!(line.ends_with(", last loss 1.2346"), "{line}");
        // A bar stopped before its total (a run in chunks) counts only what was done.
        let chunk = ConsoleProgress::new(2000, "train").continuing_after(500);
        chunk.update(1000, Some(0.5));
        let line = chunk.finish_line();
        assert!(line.starts_with("train: 500 steps in "), "{line}");
        let q = ConsoleProgress::new(3, "sample");
        q.update(3, None);
        assert!(!q.summary().contains("loss"));
        q.finish();
    }
}
