//! Progress lines on stderr while a stage runs, and how long each stage took.
//!
//! One line when a stage starts, one each time another tenth of its items is done, and
//! one when it ends: plain lines rather than a redrawn bar, so the output reads the same
//! in a terminal, a CI log and a file.

use std::io::Write as _;
use std::time::{Duration, Instant};

/// Where progress lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressOutput {
    /// Standard error.
    Stderr,
    /// Nowhere.
    Silent,
}

/// How long one stage took and how much it did.
#[derive(Debug, Clone, PartialEq)]
pub struct StageTiming {
    /// 1 to 7.
    pub number: usize,
    /// The stage's name.
    pub name: String,
    /// Items the stage handled (its main unit: products, orders, bulk orders …).
    pub items: u64,
    /// What the items are.
    pub unit: String,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl StageTiming {
    /// Items per second.
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.items as f64 / seconds
        } else {
            0.0
        }
    }
}

/// Progress of the stage under way.
pub struct Stage {
    output: ProgressOutput,
    number: usize,
    total_stages: usize,
    name: String,
    started: Instant,
    step_total: u64,
    step_done: u64,
    next_report: u64,
}

impl Stage {
    /// Starts stage `number` of `total_stages` and prints its name.
    pub fn start(output: ProgressOutput, number: usize, total_stages: usize, name: &str) -> Self {
        let stage = Self {
            output,
            number,
            total_stages,
            name: name.to_string(),
            started: Instant::now(),
            step_total: 0,
            step_done: 0,
            next_report: 0,
        };
        stage.line(format_args!("started"));
        stage
    }

    /// Starts counting a step of `total` items, e.g. the orders of a file.
    pub fn step(&mut self, what: &str, total: u64) {
        self.step_total = total;
        self.step_done = 0;
        self.next_report = total.div_ceil(10).max(1);
        self.line(format_args!("{what}: {total} to do"));
    }

    /// Counts one more item of the current step.
    pub fn tick(&mut self) {
        self.step_done += 1;
        if self.step_done >= self.next_report || self.step_done == self.step_total {
            let percent = (self.step_done * 100)
                .checked_div(self.step_total)
                .unwrap_or(100);
            self.line(format_args!(
                "{}/{} ({percent}%)",
                self.step_done, self.step_total
            ));
            self.next_report = self.step_done + self.step_total.div_ceil(10).max(1);
        }
    }

    /// Prints a note about the stage.
    pub fn note(&self, text: &str) {
        self.line(format_args!("{text}"));
    }

    /// Ends the stage: prints its time and returns it.
    pub fn finish(self, items: u64, unit: &str) -> StageTiming {
        let timing = StageTiming {
            number: self.number,
            name: self.name.clone(),
            items,
            unit: unit.to_string(),
            elapsed: self.started.elapsed(),
        };
        self.line(format_args!(
            "done: {items} {unit} in {:.1} s ({:.1}/s)",
            timing.elapsed.as_secs_f64(),
            timing.rate()
        ));
        timing
    }

    fn line(&self, text: std::fmt::Arguments<'_>) {
        if self.output == ProgressOutput::Silent {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "replay [{}/{}] {}: {text}",
            self.number, self.total_stages, self.name
        );
    }
}

/// The peak resident memory of this process so far (`VmHWM`), in KiB, where the system
/// reports it.
pub fn peak_memory_kib() -> Option<u64> {
    peak_memory_kib_of("self")
}

/// The peak resident memory of process `pid` (`self` for this one), in KiB.
pub fn peak_memory_kib_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_is_items_per_second() {
        let timing = StageTiming {
            number: 1,
            name: "x".into(),
            items: 50,
            unit: "orders".into(),
            elapsed: Duration::from_millis(2_500),
        };

        assert!((timing.rate() - 20.0).abs() < 1e-9);
    }

    #[test]
    fn this_process_reports_its_peak_memory_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_memory_kib().unwrap() > 0);
        }
    }
}
