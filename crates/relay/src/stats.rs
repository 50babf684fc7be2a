//! What the relay reports: per-client counters, delivery lateness and its own CPU time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kham_netem::{ClientReport, LinkStats, RelayStats};
use serde::Serialize;

/// Lateness histogram bins: 1 µs each up to this many µs; later ones count in the last bin
/// (the exact maximum is kept apart).
const BINS: usize = 1 << 16;

/// How late datagrams left the relay compared with the instant their link delivered them.
#[derive(Debug, Clone)]
pub struct Lateness {
    bins: Vec<u64>,
    count: u64,
    sum_ns: u128,
    max: Duration,
}

impl Default for Lateness {
    fn default() -> Self {
        Lateness {
            bins: vec![0; BINS],
            count: 0,
            sum_ns: 0,
            max: Duration::ZERO,
        }
    }
}

impl Lateness {
    /// Records one datagram `late` after its due time.
    pub fn record(&mut self, late: Duration) {
        let us = usize::try_from(late.as_micros()).unwrap_or(usize::MAX);
        self.bins[us.min(BINS - 1)] += 1;
        self.count += 1;
        self.sum_ns += late.as_nanos();
        self.max = self.max.max(late);
    }

    /// Percentiles (1 µs resolution: each is the lower edge of its bin).
    pub fn summary(&self) -> LatenessSummary {
        let pct = |q: f64| -> f64 {
            if self.count == 0 {
                return 0.0;
            }
            let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
            let mut seen = 0;
            for (us, &n) in self.bins.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return if us == BINS - 1 {
                        self.max.as_secs_f64() * 1e6
                    } else {
                        us as f64
                    };
                }
            }
            self.max.as_secs_f64() * 1e6
        };
        LatenessSummary {
            count: self.count,
            mean_us: if self.count == 0 {
                0.0
            } else {
                self.sum_ns as f64 / self.count as f64 / 1e3
            },
            p50_us: pct(0.5),
            p90_us: pct(0.9),
            p99_us: pct(0.99),
            p999_us: pct(0.999),
            max_us: self.max.as_secs_f64() * 1e6,
        }
    }
}

/// Lateness percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatenessSummary {
    /// Datagrams sent.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Maximum.
    pub max_us: f64,
}

/// Counters of the IO shell (what the sans-IO core cannot see).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IoCounters {
    /// Sends that failed (socket buffer full, no route, upstream port closed...): dropped.
    pub send_errors: u64,
    /// Receive errors other than "nothing more to read" (e.g. ICMP port unreachable from the
    /// upstream): the relay goes on.
    pub recv_errors: u64,
    /// Clients whose upstream-facing socket could not be opened: forgotten at once.
    pub socket_errors: u64,
    /// Datagrams on a client's upstream-facing socket from outside the upstream range:
    /// dropped.
    pub foreign_datagrams: u64,
}

/// How the loop waited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WaitCounters {
    /// epoll waits (with or without a timeout).
    pub polls: u64,
    /// Short sleeps of the fine wait before a delivery.
    pub sleeps: u64,
    /// Longest a wait (epoll or sleep) lasted beyond what was asked, in microseconds: the
    /// thread was ready but not running (CPU contention), not the relay's doing.
    pub max_overrun_us: u64,
    /// Waits that overran by more than a millisecond.
    pub overruns_over_1ms: u64,
}

impl WaitCounters {
    /// Records how long a wait lasted beyond what was asked.
    pub fn note_overrun(&mut self, over: Duration) {
        let us = u64::try_from(over.as_micros()).unwrap_or(u64::MAX);
        self.max_overrun_us = self.max_overrun_us.max(us);
        if over > Duration::from_millis(1) {
            self.overruns_over_1ms += 1;
        }
    }
}

/// One direction of one client, in the report. Bytes are what the link is charged: UDP payload
/// plus 28 bytes of IPv4 and UDP headers (48 for IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DirectionReport {
    /// Datagrams that entered the link.
    pub in_packets: u64,
    /// Their bytes.
    pub in_bytes: u64,
    /// Datagrams the link delivered (sent on by the relay).
    pub out_packets: u64,
    /// Their bytes.
    pub out_bytes: u64,
    /// Dropped by the full queue.
    pub dropped_queue_packets: u64,
    /// Their bytes.
    pub dropped_queue_bytes: u64,
    /// Lost on the emulated wire.
    pub dropped_loss_packets: u64,
    /// Their bytes.
    pub dropped_loss_bytes: u64,
    /// Still queued or in flight (discarded if the client expired).
    pub pending_packets: usize,
}

impl DirectionReport {
    fn new(s: LinkStats, pending: usize) -> Self {
        DirectionReport {
            in_packets: s.sent_packets,
            in_bytes: s.sent_bytes,
            out_packets: s.delivered_packets,
            out_bytes: s.delivered_bytes,
            dropped_queue_packets: s.dropped_queue_packets,
            dropped_queue_bytes: s.dropped_queue_bytes,
            dropped_loss_packets: s.dropped_loss_packets,
            dropped_loss_bytes: s.dropped_loss_bytes,
            pending_packets: pending,
        }
    }
}

/// One client in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientSummary {
    /// Order of first appearance, from 0.
    pub id: u64,
    /// Source address.
    pub addr: SocketAddr,
    /// Index of its entry in the client spec file, or null for the default spec.
    pub spec: Option<usize>,
    /// Still in the table at the end (false: expired or removed).
    pub active: bool,
    /// First datagram, seconds after the relay started.
    pub first_seen_s: f64,
    /// Latest datagram from the client, seconds after the relay started.
    pub last_seen_s: f64,
    /// Client to upstream.
    pub up: DirectionReport,
    /// Upstream to client.
    pub down: DirectionReport,
}

impl ClientSummary {
    /// From the core's report; times relative to `start`.
    pub fn new(r: &ClientReport<SocketAddr>, start: Instant, active: bool) -> Self {
        let secs = |t: Instant| t.saturating_duration_since(start).as_secs_f64();
        ClientSummary {
            id: r.id.0,
            addr: r.addr,
            spec: r.spec,
            active,
            first_seen_s: secs(r.created_at),
            last_seen_s: secs(r.last_seen),
            up: DirectionReport::new(r.up, r.up_pending),
            down: DirectionReport::new(r.down, r.down_pending),
        }
    }

    /// One line for the console.
    pub fn line(&self) -> String {
        let d = |r: &DirectionReport| {
            format!(
                "{}/{} pkts {:.0}/{:.0} kB, queue drop {}, loss {}",
                r.out_packets,
                r.in_packets,
                r.out_bytes as f64 / 1e3,
                r.in_bytes as f64 / 1e3,
                r.dropped_queue_packets,
                r.dropped_loss_packets
            )
        };
        format!(
            "client {} {} (spec {}){}: up {} | down {}",
            self.id,
            self.addr,
            self.spec.map_or("default".to_string(), |i| i.to_string()),
            if self.active { "" } else { " gone" },
            d(&self.up),
            d(&self.down)
        )
    }
}

/// Relay-wide counters in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RelayCounters {
    /// Clients created.
    pub clients_created: u64,
    /// Clients forgotten after the idle timeout.
    pub clients_expired: u64,
    /// Clients removed (their socket could not be opened).
    pub clients_removed: u64,
    /// Datagrams from new addresses refused because the client table was full.
    pub refused_packets: u64,
    /// Datagrams from the upstream for a client already gone.
    pub unknown_upstream_packets: u64,
}

impl From<RelayStats> for RelayCounters {
    fn from(s: RelayStats) -> Self {
        RelayCounters {
            clients_created: s.clients_created,
            clients_expired: s.clients_expired,
            clients_removed: s.clients_removed,
            refused_packets: s.refused_packets,
            unknown_upstream_packets: s.unknown_upstream_packets,
        }
    }
}

/// Everything the relay reports at the end (and writes with `--stats-json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Listening address (the first of the range).
    pub listen: SocketAddr,
    /// Upstream address (the first of the range).
    pub upstream: SocketAddr,
    /// Ports in the listen and upstream ranges.
    pub ports: u16,
    /// Main seed.
    pub seed: u64,
    /// Wall time the relay ran.
    pub elapsed_s: f64,
    /// CPU time of the relay's thread (Linux; null elsewhere).
    pub cpu_s: Option<f64>,
    /// `cpu_s / elapsed_s` in percent of one core.
    pub cpu_percent: Option<f64>,
    /// Send time minus the time the link delivered the datagram, over every datagram sent.
    pub lateness: LatenessSummary,
    /// Timer slack of the relay's thread in nanoseconds (Linux; the relay asks for 1000).
    pub timer_slack_ns: Option<u64>,
    /// Relay-wide counters.
    pub relay: RelayCounters,
    /// IO errors.
    pub io: IoCounters,
    /// How the loop waited.
    pub waits: WaitCounters,
    /// Gone clients left out of `clients` (only the first 10 000 gone ones are kept).
    pub clients_omitted: u64,
    /// Every client seen, in order of appearance (gone ones too).
    pub clients: Vec<ClientSummary>,
}

/// CPU time the calling thread has used. Linux only (`/proc/thread-self`): nanoseconds from
/// `schedstat`, else clock ticks from `stat`; None elsewhere.
pub fn thread_cpu_time() -> Option<Duration> {
    if let Ok(s) = std::fs::read_to_string("/proc/thread-self/schedstat")
        && let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok())
    {
        return Some(Duration::from_nanos(ns));
    }
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_percentiles() {
        let mut l = Lateness::default();
        assert_eq!(l.summary().p50_us, 0.0);
        for us in 1..=1000u64 {
            l.record(Duration::from_micros(us));
        }
        l.record(Duration::from_secs(1));
        let s = l.summary();
        assert_eq!(s.count, 1001);
        assert_eq!(s.p50_us, 501.0);
        assert_eq!(s.p99_us, 991.0);
        assert_eq!(s.max_us, 1e6);
        assert!(s.mean_us > 1000.0);
    }

    #[test]
    fn cpu_time_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let a = thread_cpu_time().expect("cpu time");
            let mut x = 0u64;
            for i in 0..5_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            assert!(thread_cpu_time().expect("cpu time") >= a);
        }
    }
}
