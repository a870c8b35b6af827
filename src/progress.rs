//! A dependency-free progress line for training loops.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Minimum time between two redraws on a terminal.
const REDRAW: Duration = Duration::from_millis(100);

/// Width of the bar in characters.
const BAR: usize = 24;

/// A progress line on stderr: step / total, the latest loss, steps per second and the
/// estimated time left.
///
/// On a terminal (`std::io::IsTerminal`) the line is redrawn in place with `\r` (at most
/// ten times a second); otherwise (a log file, CI) one plain line is printed each time
/// another tenth of the steps is done, so logs stay short.
///
/// # Example
/// ```
/// use burn_diffusion::Progress;
///
/// let mut progress = Progress::new(1000, "train");
/// for step in 1..=1000 {
///     let loss = 1.0 / step as f64; // one training step
///     progress.update(step, loss);
/// }
/// progress.finish(); // e.g. "train: 1000 steps in 0.0 s (…/s), last loss 0.0010"
/// ```
#[derive(Debug)]
pub struct Progress {
    total: usize,
    label: String,
    start: Instant,
    terminal: bool,
    last_draw: Option<Instant>,
    last_tenth: usize,
    step: usize,
    first: usize,
    loss: f64,
}

impl Progress {
    /// A progress line for `total` steps, prefixed by `label`. The clock starts now.
    pub fn new(total: usize, label: impl Into<String>) -> Self {
        Self {
            total,
            label: label.into(),
            start: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            last_draw: None,
            last_tenth: 0,
            step: 0,
            first: 0,
            loss: f64::NAN,
        }
    }

    /// The same line for a run that continues after `step` steps were already done (a
    /// resumed or chunked training run): rates and times count from here.
    pub fn continuing_after(mut self, step: usize) -> Self {
        self.first = step;
        self.step = step;
        self.last_tenth = (step * 10).checked_div(self.total).unwrap_or(10);
        self
    }

    /// Records that `step` steps (1-based: `total` is the last) are done with the given
    /// loss, and redraws or prints the line when due.
    pub fn update(&mut self, step: usize, loss: f64) {
        self.step = step;
        self.loss = loss;
        let now = Instant::now();
        let due = if self.terminal {
            step >= self.total || self.last_draw.is_none_or(|t| now - t >= REDRAW)
        } else {
            let tenth = (step * 10).checked_div(self.total).unwrap_or(10);
            let due = tenth > self.last_tenth;
            self.last_tenth = self.last_tenth.max(tenth);
            due
        };
        if due {
            self.last_draw = Some(now);
            let line = self.render(self.start.elapsed());
            let mut err = std::io::stderr().lock();
            // A progress line is best effort: a closed stderr must not stop training.
            let _ = if self.terminal {
                write!(err, "\r{line}\x1b[K")
            } else {
                writeln!(err, "{line}")
            };
            let _ = err.flush();
        }
    }

    /// Ends the line: on a terminal, a newline after the bar; then a summary line with
    /// the steps done, the elapsed time, the rate and the last loss.
    pub fn finish(self) {
        let elapsed = self.elapsed();
        let mut err = std::io::stderr().lock();
        if self.terminal && self.last_draw.is_some() {
            let _ = writeln!(err);
        }
        let _ = writeln!(
            err,
            "{}: {} steps in {:.1} s ({:.1}/s), last loss {:.4}",
            self.label,
            self.step - self.first,
            elapsed.as_secs_f64(),
            rate(self.step - self.first, elapsed),
            self.loss
        );
    }

    /// Time since [`Progress::new`].
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The line for the current step after `elapsed`.
    fn render(&self, elapsed: Duration) -> String {
        let fraction = if self.total == 0 {
            1.0
        } else {
            (self.step as f64 / self.total as f64).min(1.0)
        };
        let filled = (fraction * BAR as f64).round() as usize;
        let steps_per_s = rate(self.step - self.first, elapsed);
        let eta = if steps_per_s > 0.0 {
            format_duration(self.total.saturating_sub(self.step) as f64 / steps_per_s)
        } else {
            "?".into()
        };
        format!(
            "{} [{}{}] {}/{} loss {:.4} {:.1} steps/s ETA {}",
            self.label,
            "#".repeat(filled),
            ".".repeat(BAR - filled),
            self.step,
            self.total,
            self.loss,
            steps_per_s,
            eta
        )
    }
}

/// Steps per second (0 before any time has passed).
fn rate(steps: usize, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 { steps as f64 / s } else { 0.0 }
}

/// `m:ss`, or `h:mm:ss` from an hour on.
fn format_duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_step_loss_rate_and_eta() {
        let mut p = Progress::new(200, "vae");
        p.step = 50;
        p.loss = 1.234_56;
        let line = p.render(Duration::from_secs(10));
        assert_eq!(
            line,
            "vae [######..................] 50/200 loss 1.2346 5.0 steps/s ETA 0:30"
        );
        assert_eq!(format_duration(3725.0), "1:02:05");
        p.step = 0;
        assert!(p.render(Duration::ZERO).ends_with("ETA ?"));
    }

    #[test]
    fn plain_output_prints_each_tenth_once() {
        let mut p = Progress::new(100, "t");
        p.terminal = false;
        let mut printed = 0;
        for step in 1..=100 {
            let before = p.last_tenth;
            p.update(step, 0.0);
            printed += usize::from(p.last_tenth > before);
        }
        assert_eq!(printed, 10);
        p.finish();
    }
}
