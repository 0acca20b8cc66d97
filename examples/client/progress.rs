//! The transfer progress display on stderr.
//!
//! On a terminal: one line, redrawn in place (`\r`, then "erase to end of line") at most
//! [`REDRAW_INTERVAL`] apart, with bytes, rate and, when the size is known, percentage and ETA. When
//! stderr is not a terminal (a log, a pipe, a test), nothing is drawn during the transfer, and one
//! summary line is printed at the end.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// At most ten redraws a second: smooth enough, and cheap even at a chunk per 50 µs.
pub const REDRAW_INTERVAL: Duration = Duration::from_millis(100);

/// One transfer's progress.
#[derive(Debug)]
pub struct Progress {
    label: String,
    /// The whole file's size, if known (from `SIZE`, or the local file for uploads).
    total: Option<u64>,
    /// Bytes already there before this transfer (a resumed one starts there).
    offset: u64,
    started: Instant,
    last_draw: Option<Instant>,
    terminal: bool,
    drawn: bool,
}

impl Progress {
    /// Starts the display of a transfer labelled `label` (e.g. `RETR /pub/file`).
    pub fn new(label: impl Into<String>, total: Option<u64>, offset: u64) -> Progress {
        Progress {
            label: label.into(),
            total,
            offset,
            started: Instant::now(),
            last_draw: None,
            terminal: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// `bytes` moved so far by this transfer. Redraws if on a terminal and the last draw is old enough.
    pub fn update(&mut self, bytes: u64) {
        if !self.terminal {
            return;
        }
        let now = Instant::now();
        if self
            .last_draw
            .is_some_and(|last| now.duration_since(last) < REDRAW_INTERVAL)
        {
            return;
        }
        self.last_draw = Some(now);
        let line = self.line(bytes, now.duration_since(self.started));
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r{line}\x1b[K");
        let _ = stderr.flush();
        self.drawn = true;
    }

    /// The transfer ended: replaces the live line by (or prints) the summary.
    pub fn finish(&mut self, bytes: u64, outcome: &str) {
        let elapsed = self.started.elapsed();
        let secs = elapsed.as_secs_f64().max(1e-6);
        let mut line = format!(
            "{}: {outcome}, {} in {:.2} s ({}/s)",
            self.label,
            human(bytes),
            secs,
            human((bytes as f64 / secs) as u64)
        );
        if self.offset > 0 {
            let _ = write!(line, ", resumed at byte {}", self.offset);
        }
        let mut stderr = std::io::stderr().lock();
        if self.drawn {
            let _ = write!(stderr, "\r\x1b[K");
        }
        let _ = writeln!(stderr, "{line}");
    }

    /// The live line: `RETR /f: 12.0 MiB / 100.0 MiB (12%) 5.2 MiB/s ETA 0:17`.
    fn line(&self, bytes: u64, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(1e-6);
        let rate = bytes as f64 / secs;
        let done = self.offset.saturating_add(bytes);
        let mut line = format!("{}: {}", self.label, human(done));
        if let Some(total) = self.total.filter(|&t| t > 0) {
            let percent = (done as f64 * 100.0 / total as f64).min(100.0);
            let _ = write!(line, " / {} ({percent:.0}%)", human(total));
        }
        let _ = write!(line, " {}/s", human(rate as u64));
        if let Some(total) = self.total {
            if rate > 0.0 && total > done {
                let eta = ((total - done) as f64 / rate).round() as u64;
                let _ = write!(line, " ETA {}:{:02}", eta / 60, eta % 60);
            }
        }
        line
    }
}

/// `1536` → `1.5 KiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", UNITS.get(unit).unwrap_or(&"?")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn line_shows_percentage_rate_and_eta() {
        let progress = Progress::new("RETR /f", Some(4 * 1024 * 1024), 1024 * 1024);
        let line = progress.line(1024 * 1024, Duration::from_secs(1));
        assert_eq!(line, "RETR /f: 2.0 MiB / 4.0 MiB (50%) 1.0 MiB/s ETA 0:02");
        let unknown = Progress::new("RETR /g", None, 0);
        assert_eq!(
            unknown.line(2048, Duration::from_secs(2)),
            "RETR /g: 2.0 KiB 1.0 KiB/s"
        );
    }
}
