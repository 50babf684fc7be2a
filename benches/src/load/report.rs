//! Turning samples into the figures of `load.json`, and the validity rules of CAPACITY.md §1.5:
//! pinning verified, other load below 5 %, generator core below 85 %, per stream received +
//! lost = sent, every join completed.

use serde_json::{Value, json};

use crate::load::engine::{Final, Snapshot};
use crate::load::proc::{MachineCpu, ProcCpu};
use crate::load::server::ServerCounters;

/// Everything read at one instant.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: std::time::Instant,
    pub server: Option<ProcCpu>,
    pub generator: Option<ProcCpu>,
    pub machine: Option<MachineCpu>,
    pub counters: Option<ServerCounters>,
    pub udp_errors: Option<(u64, u64)>,
    /// The same in the server's network namespace, when it runs in another one.
    pub server_udp_errors: Option<(u64, u64)>,
    /// RTP packets the generator's subscribers had received at this instant (the engine's
    /// count, asked for right before the CPU times were read).
    pub delivered: Option<u64>,
    pub engine: Option<Snapshot>,
}

/// CPU and packet figures between two samples.
#[derive(Debug, Clone, Default)]
pub struct Interval {
    pub secs: f64,
    pub server_user_pct: f64,
    pub server_sys_pct: f64,
    pub generator_pct: f64,
    /// Busy CPU of the machine not used by the two processes, % of the whole machine.
    pub other_pct: f64,
    /// How busy each CPU was (everything on it), %.
    pub per_cpu_busy_pct: Vec<f64>,
    /// Packets the server says it sent (kham's `kham_rtp_packets_total{direction="out"}`);
    /// for a server without such counters (Janus), the packets the subscribers received.
    pub forwarded: u64,
    pub forwarded_pps: f64,
    /// Whether `forwarded` came from the server's own counters.
    pub forwarded_from_counters: bool,
    pub us_per_packet_user: Option<f64>,
    pub us_per_packet_sys: Option<f64>,
    /// RTP packets the generator's subscribers received: the same measure for every server.
    pub delivered: u64,
    pub delivered_pps: f64,
    pub us_per_delivered_user: Option<f64>,
    pub us_per_delivered_sys: Option<f64>,
    pub rx_pps: f64,
    pub rx_gaps: u64,
    pub kham_drops: u64,
    pub kernel_drops: u64,
    pub rcvbuf_errors: u64,
    pub sndbuf_errors: u64,
    /// UDP buffer drops in the server's namespace (when it runs in another one).
    pub server_rcvbuf_errors: u64,
    pub server_sndbuf_errors: u64,
}

fn d(a: u64, b: u64) -> u64 {
    b.saturating_sub(a)
}

/// Figures between `a` and `b`; `hz` = clock ticks per second.
pub fn interval(a: &Sample, b: &Sample, hz: u64) -> Interval {
    let secs = b.at.saturating_duration_since(a.at).as_secs_f64().max(1e-3);
    let tick = 1.0 / hz as f64;
    let mut i = Interval {
        secs,
        ..Interval::default()
    };
    let (mut su, mut ss, mut g) = (0u64, 0u64, 0u64);
    if let (Some(x), Some(y)) = (a.server, b.server) {
        su = d(x.utime, y.utime);
        ss = d(x.stime, y.stime);
        i.server_user_pct = su as f64 * tick / secs * 100.0;
        i.server_sys_pct = ss as f64 * tick / secs * 100.0;
    }
    if let (Some(x), Some(y)) = (a.generator, b.generator) {
        g = d(x.utime + x.stime, y.utime + y.stime);
        i.generator_pct = g as f64 * tick / secs * 100.0;
    }
    if let (Some(x), Some(y)) = (&a.machine, &b.machine) {
        let total = d(x.total, y.total).max(1);
        let other = d(x.busy, y.busy).saturating_sub(su + ss + g);
        i.other_pct = other as f64 / total as f64 * 100.0;
        i.per_cpu_busy_pct = x
            .per_cpu
            .iter()
            .zip(&y.per_cpu)
            .map(|(p, q)| d(p.0, q.0) as f64 / d(p.1, q.1).max(1) as f64 * 100.0)
            .collect();
    }
    let server_cpu = a.server.is_some() && b.server.is_some();
    // (user, system) µs of server CPU per packet of `n`.
    let per_packet = |n: u64| {
        (n > 0 && server_cpu).then(|| {
            let per = 1e6 * tick / n as f64;
            (su as f64 * per, ss as f64 * per)
        })
    };
    if let (Some(x), Some(y)) = (a.delivered, b.delivered) {
        i.delivered = d(x, y);
        i.delivered_pps = i.delivered as f64 / secs;
        let p = per_packet(i.delivered);
        i.us_per_delivered_user = p.map(|p| p.0);
        i.us_per_delivered_sys = p.map(|p| p.1);
    }
    if let (Some(x), Some(y)) = (a.counters, b.counters) {
        i.forwarded = d(x.rtp_out, y.rtp_out);
        i.forwarded_from_counters = true;
        i.kham_drops = d(x.send_buffer_full, y.send_buffer_full) + d(x.unroutable, y.unroutable);
        i.kernel_drops = d(x.kernel_drops, y.kernel_drops);
    } else {
        i.forwarded = i.delivered;
    }
    i.forwarded_pps = i.forwarded as f64 / secs;
    let p = per_packet(i.forwarded);
    i.us_per_packet_user = p.map(|p| p.0);
    i.us_per_packet_sys = p.map(|p| p.1);
    if let (Some(x), Some(y)) = (a.server_udp_errors, b.server_udp_errors) {
        i.server_rcvbuf_errors = d(x.0, y.0);
        i.server_sndbuf_errors = d(x.1, y.1);
    }
    if let (Some(x), Some(y)) = (a.udp_errors, b.udp_errors) {
        i.rcvbuf_errors = d(x.0, y.0);
        i.sndbuf_errors = d(x.1, y.1);
    }
    if let (Some(x), Some(y)) = (&a.engine, &b.engine) {
        i.rx_pps = d(x.rx_packets, y.rx_packets) as f64 / secs;
        i.rx_gaps = d(x.rx_gaps, y.rx_gaps);
    }
    i
}

/// One report line.
pub fn line(t: f64, i: &Interval, s: Option<&Snapshot>) -> String {
    let us = match (i.us_per_packet_user, i.us_per_packet_sys) {
        (Some(u), Some(s)) => format!("{:.2} ({u:.2}u+{s:.2}s)", u + s),
        _ => "-".into(),
    };
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
    format!(
        "t={t:5.1}s fwd={:8.0}pps dlv={:8.0}pps srv_cpu={:5.1}%u+{:4.1}%s us/pkt={us} gen={:5.1}% other={:5.1}% cpus={:?} \
         rx={:8.0}pps gaps={} drops(kham={} kernel={} rcvbuf={} sndbuf={}) delay p50={} p99={} ms \
         gen_busy_max={:.1}ms recv={}/{}",
        i.forwarded_pps,
        i.delivered_pps,
        i.server_user_pct,
        i.server_sys_pct,
        i.generator_pct,
        i.other_pct,
        i.per_cpu_busy_pct
            .iter()
            .map(|p| p.round() as i64)
            .collect::<Vec<_>>(),
        i.rx_pps,
        i.rx_gaps,
        i.kham_drops,
        i.kernel_drops,
        i.rcvbuf_errors,
        i.sndbuf_errors,
        ms(s.and_then(|s| s.delay_p50_ms)),
        ms(s.and_then(|s| s.delay_p99_ms)),
        s.map_or(0.0, |s| s.busy_max_ms),
        s.map_or(0, |s| s.receiving),
        s.map_or(0, |s| s.clients),
    )
}

fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    Some(v[i])
}

/// What the run knows beyond the samples.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub scenario: &'static str,
    pub size: usize,
    pub seconds: u64,
    pub target: &'static str,
    /// The server runs in another network namespace than the generator (its UDP drops are
    /// read there; every drop in the generator's namespace is then outside the server).
    pub server_netns: bool,
    /// What each subscriber receives of a publisher's video (for the comparison's record).
    pub video_received: &'static str,
    pub adaptation: bool,
    pub participants: usize,
    /// Participants that should receive media.
    pub receivers: usize,
    pub joins_signaled: usize,
    pub join_errors: Vec<String>,
    pub server_pinned: Result<(), String>,
    pub generator_pinned: Result<(), String>,
    pub pss_mb: Option<f64>,
    pub started_server: bool,
    /// CPU of the generator (its core's busy time is checked).
    pub generator_cpu: Option<usize>,
}

/// The whole `load.json`.
pub fn build(
    facts: &RunFacts,
    window: &Interval,
    fin: &Final,
    seconds: &[Value],
) -> (Value, bool, Vec<String>) {
    let mut reasons = Vec::new();
    if let Err(e) = &facts.server_pinned {
        reasons.push(format!("server pinning not verified: {e}"));
    }
    if let Err(e) = &facts.generator_pinned {
        reasons.push(format!("generator pinning not verified: {e}"));
    }
    if window.generator_pct > 85.0 {
        reasons.push(format!(
            "generator core at {:.1} % (> 85 %): generator-bound",
            window.generator_pct
        ));
    }
    // The generator's core, whoever keeps it busy: a neighbour on it starves the generator
    // as surely as its own work.
    if let Some(busy) = facts
        .generator_cpu
        .and_then(|c| window.per_cpu_busy_pct.get(c))
        && *busy > 85.0
    {
        reasons.push(format!(
            "the generator's CPU was {busy:.1} % busy (> 85 %) with everything on it"
        ));
    }
    if window.other_pct > 5.0 {
        reasons.push(format!(
            "other load on the machine {:.1} % (> 5 %)",
            window.other_pct
        ));
    }
    // /proc/net/snmp counts every socket of the namespace: drops beyond the server's own were
    // the generator's sockets (or another process's), not the server's doing.
    let outside = if facts.server_netns {
        window.rcvbuf_errors
    } else {
        window.rcvbuf_errors.saturating_sub(window.kernel_drops)
    };
    if outside > 0 {
        reasons.push(format!(
            "{outside} UDP receive-buffer drops outside the server's sockets (the generator's, \
             or another process's)"
        ));
    }
    // Video layers are accounted against the publisher's counters only without adaptation:
    // with it, a subscriber switches layers and leaves streams on purpose.
    let checked: Vec<_> = fin
        .streams
        .iter()
        .filter(|s| s.audio || (!facts.adaptation && s.current))
        .collect();
    // Layers the server switched a subscriber away from (at start: a lower layer until the
    // top layer's keyframe).
    let left_streams = fin.streams.iter().filter(|s| !s.current).count();
    let mismatched = checked
        .iter()
        .filter(|s| s.beyond_sent || s.lost < 0 || s.received as i64 + s.lost != s.sent as i64)
        .count();
    if mismatched > 0 {
        reasons.push(format!(
            "{mismatched} of {} streams: received + lost != sent",
            checked.len()
        ));
    }
    let joined = fin.join_ms.len();
    if joined < facts.receivers {
        reasons.push(format!(
            "{} of {} receiving participants never got media",
            facts.receivers - joined,
            facts.receivers
        ));
    }
    if !fin.dead.is_empty() {
        reasons.push(format!("{} media sessions failed", fin.dead.len()));
    }
    let sent: u64 = checked.iter().map(|s| s.sent).sum();
    let lost: i64 = checked.iter().map(|s| s.lost.max(0)).sum();
    let loss_pct = if sent > 0 {
        lost as f64 / sent as f64 * 100.0
    } else {
        0.0
    };
    let worst_stream_loss_pct = checked
        .iter()
        .filter(|s| s.sent > 0)
        .map(|s| s.lost.max(0) as f64 / s.sent as f64 * 100.0)
        .fold(0.0, f64::max);
    let min_received_pct = checked
        .iter()
        .filter(|s| s.sent > 0)
        .map(|s| s.received as f64 / s.sent as f64 * 100.0)
        .fold(100.0, f64::min);
    let mut worst: Vec<_> = checked.iter().filter(|s| s.lost != 0).collect();
    worst.sort_by_key(|s| std::cmp::Reverse(s.lost));
    let worst_streams: Vec<Value> = worst
        .iter()
        .take(10)
        .map(|s| {
            json!({"subscriber": s.subscriber, "publisher": s.stream >> 2, "kind": s.stream & 3,
                   "sent": s.sent, "received": s.received, "lost": s.lost})
        })
        .collect();
    let seq_loss_pct = if fin.rx_packets + fin.rx_gaps > 0 {
        fin.rx_gaps as f64 / (fin.rx_packets + fin.rx_gaps) as f64 * 100.0
    } else {
        0.0
    };
    let mut joins = fin.join_ms.clone();
    let valid = reasons.is_empty();
    let us_total = match (window.us_per_packet_user, window.us_per_packet_sys) {
        (Some(u), Some(s)) => Some(u + s),
        _ => None,
    };
    let delivered_total = match (window.us_per_delivered_user, window.us_per_delivered_sys) {
        (Some(u), Some(s)) => Some(u + s),
        _ => None,
    };
    let capacity = json!({
        "cpu_us_per_packet": us_total,
        "cpu_us_per_packet_user": window.us_per_packet_user,
        "cpu_us_per_packet_sys": window.us_per_packet_sys,
        "forwarded_pps": window.forwarded_pps,
        "cpu_us_per_delivered_packet": delivered_total,
        "cpu_us_per_delivered_packet_user": window.us_per_delivered_user,
        "cpu_us_per_delivered_packet_sys": window.us_per_delivered_sys,
        "delivered_pps": window.delivered_pps,
        "server_cpu_pct": window.server_user_pct + window.server_sys_pct,
    });
    let reasons_out = reasons.clone();
    let figure = |k: &str| {
        if valid {
            capacity[k].clone()
        } else {
            Value::Null
        }
    };
    let v = json!({
        "scenario": facts.scenario,
        "size": facts.size,
        "seconds": facts.seconds,
        "target": facts.target,
        "adaptation": facts.adaptation,
        "participants": facts.participants,
        "started_server": facts.started_server,
        "valid": valid,
        "invalid_reasons": reasons,
        "cpu_us_per_packet": figure("cpu_us_per_packet"),
        "cpu_us_per_packet_user": figure("cpu_us_per_packet_user"),
        "cpu_us_per_packet_sys": figure("cpu_us_per_packet_sys"),
        "forwarded_pps": figure("forwarded_pps"),
        "cpu_us_per_delivered_packet": figure("cpu_us_per_delivered_packet"),
        "cpu_us_per_delivered_packet_user": figure("cpu_us_per_delivered_packet_user"),
        "cpu_us_per_delivered_packet_sys": figure("cpu_us_per_delivered_packet_sys"),
        "delivered_pps": figure("delivered_pps"),
        "forwarded_source": if window.forwarded_from_counters { "server counters" } else { "packets the subscribers received" },
        "delivered_over_forwarded": (window.forwarded > 0).then(|| window.delivered as f64 / window.forwarded as f64),
        "server_netns": facts.server_netns,
        "video_received": facts.video_received,
        "srtp_profiles": fin.srtp_profiles,
        "server_udp_rcvbuf_errors": window.server_rcvbuf_errors,
        "server_udp_sndbuf_errors": window.server_sndbuf_errors,
        "unvalidated": if valid { Value::Null } else { capacity },
        "subscriber_rx_pps": window.rx_pps,
        "server_cpu_user_pct": window.server_user_pct,
        "server_cpu_sys_pct": window.server_sys_pct,
        "generator_cpu_pct": window.generator_pct,
        "other_load_pct": window.other_pct,
        "per_cpu_busy_pct": window.per_cpu_busy_pct,
        "loss_pct": loss_pct,
        "worst_stream_loss_pct": worst_stream_loss_pct,
        "min_stream_received_pct": min_received_pct,
        "seq_gap_loss_pct": seq_loss_pct,
        "streams_checked": checked.len(),
        "streams_left_by_layer_switch": left_streams,
        "worst_streams": worst_streams,
        "packets_sent_checked": sent,
        "packets_lost_checked": lost,
        "unstamped_packets": fin.unstamped,
        "kham_dropped": window.kham_drops,
        "kham_kernel_drops": window.kernel_drops,
        "udp_rcvbuf_errors": window.rcvbuf_errors,
        "udp_sndbuf_errors": window.sndbuf_errors,
        "delay_p50_ms": fin.window_delay.quantile_ms(0.5),
        "delay_p99_ms": fin.window_delay.quantile_ms(0.99),
        "delay_p1_ms": fin.window_delay.quantile_ms(0.01),
        "delay_samples": fin.window_delay.count(),
        "delay_audio_p50_ms": fin.window_delay_audio.quantile_ms(0.5),
        "delay_audio_p99_ms": fin.window_delay_audio.quantile_ms(0.99),
        "join_p50_ms": quantile(&mut joins, 0.5),
        "join_p99_ms": quantile(&mut joins, 0.99),
        "join_max_ms": quantile(&mut joins, 1.0),
        "joins_completed": joined,
        "joins_expected": facts.receivers,
        "join_errors": facts.join_errors,
        "media_failures": fin.dead.iter().map(|(i, e)| format!("{i}: {e}")).collect::<Vec<_>>(),
        "pss_mb": facts.pss_mb,
        "generator_sent_packets": fin.tx_packets,
        "subscriber_received_packets": fin.rx_packets,
        "per_second": seconds,
    });
    (v, valid, reasons_out)
}

/// One per-second entry of `load.json`.
pub fn second_json(t: f64, i: &Interval, s: Option<&Snapshot>) -> Value {
    json!({
        "t": t,
        "forwarded_pps": i.forwarded_pps,
        "server_cpu_user_pct": i.server_user_pct,
        "server_cpu_sys_pct": i.server_sys_pct,
        "us_per_packet_user": i.us_per_packet_user,
        "us_per_packet_sys": i.us_per_packet_sys,
        "delivered_pps": i.delivered_pps,
        "us_per_delivered_user": i.us_per_delivered_user,
        "us_per_delivered_sys": i.us_per_delivered_sys,
        "generator_cpu_pct": i.generator_pct,
        "other_load_pct": i.other_pct,
        "per_cpu_busy_pct": i.per_cpu_busy_pct,
        "rx_pps": i.rx_pps,
        "seq_gaps": i.rx_gaps,
        "kham_dropped": i.kham_drops,
        "kernel_drops": i.kernel_drops,
        "delay_p50_ms": s.and_then(|s| s.delay_p50_ms),
        "delay_p99_ms": s.and_then(|s| s.delay_p99_ms),
        "generator_busy_max_ms": s.map(|s| s.busy_max_ms),
    })
}
