//! The progress bar of `cp`: bytes, rate and ETA on one line of a terminal's stderr, redrawn
//! at most ten times a second; nothing at all when stderr is not a terminal.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::storage::copy::Progress;

/// One progress line on stderr.
pub struct Bar {
    start: Instant,
    last: Mutex<Option<Instant>>,
}

impl Bar {
    /// A bar on stderr when it is a terminal; None when piped or redirected.
    pub fn stderr() -> Option<Bar> {
        // SAFETY: isatty only inspects the descriptor.
        (unsafe { libc::isatty(2) } == 1).then(|| Bar {
            start: Instant::now(),
            last: Mutex::new(None),
        })
    }

    /// Redraw with the copy's progress (throttled).
    pub fn show(&self, p: &Progress) {
        let now = Instant::now();
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|l| now - l < Duration::from_millis(100))
                && p.files_done < p.files_total
            {
                return;
            }
            *last = Some(now);
        }
        let line = render(p, now - self.start);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
    }

    /// Replace the bar with a closing line.
    pub fn finish(&self, summary: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "\r{summary}\x1b[K");
    }
}

/// `  12.0 MiB / 100.0 MiB  12%  3.1 MiB/s  ETA 0:28  3/10 files`
pub fn render(p: &Progress, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = p.bytes_done as f64 / secs;
    let left = p.bytes_total.saturating_sub(p.bytes_done) as f64;
    let eta = if rate > 0.0 {
        let s = (left / rate).round() as u64;
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        "-:--".into()
    };
    let pct = (p.bytes_done * 100)
        .checked_div(p.bytes_total)
        .unwrap_or(100);
    format!(
        "{} / {}  {pct:>3}%  {}/s  ETA {eta}  {}/{} files",
        size(p.bytes_done),
        size(p.bytes_total),
        size(rate as u64),
        p.files_done,
        p.files_total
    )
}

/// Bytes in B, KiB, MiB, GiB or TiB with one decimal.
pub fn size(n: u64) -> String {
    let mut v = n as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 {
            return if unit == "B" {
                format!("{n} B")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1024.0;
    }
    format!("{v:.1} TiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bytes_rate_and_eta() {
        let p = Progress {
            files_done: 3,
            files_total: 10,
            bytes_done: 50 << 20,
            bytes_total: 100 << 20,
        };
        assert_eq!(
            render(&p, Duration::from_secs(10)),
            "50.0 MiB / 100.0 MiB   50%  5.0 MiB/s  ETA 0:10  3/10 files"
        );
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
    }
}
