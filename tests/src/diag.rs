//! Captures `log` records of the WebRTC stack (webrtc-rs / rtc) so a failing test can say what
//! the *client* stack complained about (dropped packets, unknown SSRCs, SRTP errors...).
//!
//! Installed once per process by [`install`] (called from `Peer::new`). Keeps warnings and
//! errors (and everything with `KHAM_TEST_LOG=trace`) with the time they were logged. All tests
//! of one test binary share it, so records are not attributed to a particular peer.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

const KEEP: usize = 2000;

struct Capture {
    records: Mutex<VecDeque<(Instant, log::Level, String)>>,
    level: log::LevelFilter,
    echo: bool,
}

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        // Noise: printed for every DTLS handshake of a peer without a server name.
        if r.target() == "rtc_dtls::config" {
            return;
        }
        let line = format!("{} {}: {}", r.level(), r.target(), r.args());
        if self.echo {
            eprintln!("[webrtc] {line}");
        }
        let mut q = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= KEEP {
            q.pop_front();
        }
        q.push_back((Instant::now(), r.level(), line));
    }

    fn flush(&self) {}
}

static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();

/// Installs the capturing logger (no-op if this or another logger is already installed).
pub fn install() {
    CAPTURE.get_or_init(|| {
        let env = std::env::var("KHAM_TEST_LOG").unwrap_or_default();
        let level = match env.as_str() {
            "trace" => log::LevelFilter::Trace,
            "debug" => log::LevelFilter::Debug,
            _ => log::LevelFilter::Warn,
        };
        let cap: &'static Capture = Box::leak(Box::new(Capture {
            records: Mutex::new(VecDeque::new()),
            level,
            echo: !env.is_empty() && env != "0",
        }));
        if log::set_logger(cap).is_ok() {
            log::set_max_level(level);
        }
        cap
    });
}

/// Captured records logged at or after `since`, oldest first, as "+ms LEVEL target: message".
pub fn records_since(since: Instant) -> Vec<String> {
    let Some(cap) = CAPTURE.get() else {
        return Vec::new();
    };
    let q = cap.records.lock().unwrap_or_else(|e| e.into_inner());
    q.iter()
        .filter(|(t, _, _)| *t >= since)
        .map(|(t, _, l)| format!("+{}ms {l}", t.duration_since(since).as_millis()))
        .collect()
}
