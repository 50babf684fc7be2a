//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kham_netem::{Delivered, Link, SendOutcome};

pub const MS: Duration = Duration::from_millis(1);

/// Everything due at `now`, appended to `out`.
pub fn drain<P>(link: &mut Link<P>, now: Instant, out: &mut Vec<Delivered<P>>) {
    while let Some(d) = link.poll_deliver(now) {
        out.push(d);
    }
}

/// Keeps at least `backlog` bytes queued (packets of `size` bytes, numbered from 0), stepping
/// 1 ms from `t0` to `t0 + until`, collecting deliveries. Returns deliveries due by then.
pub fn saturate(
    link: &mut Link<u64>,
    t0: Instant,
    until: Duration,
    size: usize,
    backlog: usize,
) -> Vec<Delivered<u64>> {
    let mut out = Vec::new();
    let mut id = 0;
    let mut t = Duration::ZERO;
    while t <= until {
        let now = t0 + t;
        drain(link, now, &mut out);
        while link.queued_bytes() < backlog {
            id += 1;
            if link.send(now, size, id) == SendOutcome::DroppedQueueFull {
                break;
            }
        }
        t += MS;
    }
    drain(link, t0 + until, &mut out);
    out
}

/// Bytes delivered within `[from, to)` after `t0`.
pub fn bytes_between<P>(ds: &[Delivered<P>], t0: Instant, from: Duration, to: Duration) -> u64 {
    ds.iter()
        .filter(|d| d.delivered_at >= t0 + from && d.delivered_at < t0 + to)
        .map(|d| d.size as u64)
        .sum()
}

/// The shared trace folder beside the repository (`KHAM_TRACES_DIR` overrides), or None with a
/// note when it is absent.
pub fn traces_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("KHAM_TRACES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces")
        });
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "note: trace folder {} is absent; real-trace checks skipped",
            dir.display()
        );
        None
    }
}
