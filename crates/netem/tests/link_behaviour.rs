//! Throughput, delay, queue, loss and outage behaviour of `Link` on synthetic traces.

mod common;

use std::time::{Duration, Instant};

use common::{MS, bytes_between, drain, saturate};
use kham_netem::{Link, LinkConfig, LossModel, QueueLimit, SendOutcome, Trace};

const S: Duration = Duration::from_secs(1);

fn within(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= expected * tolerance
}

#[test]
fn fixed_link_delivers_its_rate() {
    let t0 = Instant::now();
    let mut cfg = LinkConfig::fixed(1_000_000, Duration::ZERO);
    cfg.queue = QueueLimit::Bytes(100_000);
    let mut link = Link::new(cfg, t0);
    let ds = saturate(&mut link, t0, 10 * S, 1200, 20_000);
    let bps = bytes_between(&ds, t0, Duration::ZERO, 10 * S) as f64 * 8.0 / 10.0;
    assert!(within(bps, 1e6, 0.01), "{bps} bit/s");
    // Back to back: each 1200-byte packet takes exactly 9.6 ms.
    for w in ds.windows(2) {
        assert_eq!(
            w[1].delivered_at - w[0].delivered_at,
            Duration::from_micros(9600)
        );
    }
}

#[test]
fn step_trace_follows_the_steps() {
    let t0 = Instant::now();
    let trace = Trace::from_steps(&[(2 * S, 500_000), (2 * S, 2_000_000), (2 * S, 1_000_000)]);
    let mut cfg = LinkConfig::with_trace(trace, Duration::ZERO);
    cfg.queue = QueueLimit::Bytes(200_000);
    let mut link = Link::new(cfg, t0);
    let ds = saturate(&mut link, t0, 6 * S, 1000, 50_000);
    for (i, rate) in [500_000.0, 2_000_000.0, 1_000_000.0]
        .into_iter()
        .enumerate()
    {
        let from = 2 * S * i as u32;
        let bps = bytes_between(&ds, t0, from, from + 2 * S) as f64 * 8.0 / 2.0;
        assert!(
            within(bps, rate, 0.01),
            "step {i}: {bps} bit/s, expected {rate}"
        );
    }
}

#[test]
fn idle_link_delay_is_propagation_plus_serialization() {
    let t0 = Instant::now();
    let mut link = Link::new(LinkConfig::fixed(1_000_000, 50 * MS), t0);
    let sent = t0 + S;
    assert_eq!(link.send(sent, 1250, 1u64), SendOutcome::Queued);
    assert_eq!(link.poll_timeout(), Some(sent + 10 * MS));
    assert!(link.poll_deliver(sent + 59 * MS).is_none());
    assert_eq!(link.poll_timeout(), Some(sent + 60 * MS));
    let d = link.poll_deliver(sent + 60 * MS).expect("due");
    assert_eq!((d.packet, d.size, d.sent_at), (1, 1250, sent));
    assert_eq!(d.delivered_at, sent + 60 * MS);
    assert_eq!(d.queue_delay, Duration::ZERO);
    assert_eq!(link.poll_timeout(), None);
    // A second packet behind a first waits for it.
    link.send(t0 + 2 * S, 1250, 2);
    link.send(t0 + 2 * S, 1250, 3);
    let mut ds = Vec::new();
    drain(&mut link, t0 + 3 * S, &mut ds);
    assert_eq!(ds[1].queue_delay, 10 * MS);
    assert_eq!(ds[1].delivered_at, t0 + 2 * S + 70 * MS);
}

#[test]
fn mahimahi_idle_packet_waits_for_the_next_opportunity() {
    let t0 = Instant::now();
    let trace = Trace::parse("0\n5\n10\n").expect("parses");
    let mut link = Link::new(LinkConfig::with_trace(trace, 20 * MS), t0);
    link.send(t0 + 6 * MS, 1200, 1u64);
    let d = link.poll_deliver(t0 + 30 * MS).expect("due");
    assert_eq!(d.delivered_at, t0 + 30 * MS);
    assert_eq!(d.queue_delay, 4 * MS);
    // Sent exactly at an opportunity: that one is taken as already gone.
    link.send(t0 + 35 * MS, 100, 2);
    assert!(link.poll_deliver(t0 + 59 * MS).is_none());
    let d = link.poll_deliver(t0 + 60 * MS).expect("due");
    assert_eq!(d.delivered_at, t0 + 40 * MS + 20 * MS);
}

#[test]
fn jitter_never_reorders() {
    let t0 = Instant::now();
    let mut cfg = LinkConfig::fixed(2_000_000, 40 * MS);
    cfg.jitter = 30 * MS;
    cfg.seed = 7;
    let mut link = Link::new(cfg, t0);
    let mut ds = Vec::new();
    for i in 0..5000u64 {
        let now = t0 + MS * i as u32;
        link.send(now, 200, i);
        drain(&mut link, now, &mut ds);
    }
    drain(&mut link, t0 + 10 * S, &mut ds);
    assert_eq!(ds.len(), 5000);
    let serialization = Duration::from_micros(800);
    let (mut lo, mut hi) = (Duration::MAX, Duration::ZERO);
    for (i, d) in ds.iter().enumerate() {
        assert_eq!(d.packet, i as u64, "in order");
        let one_way = d.delivered_at - d.sent_at;
        assert!(one_way >= 40 * MS + serialization, "{one_way:?}");
        assert!(
            one_way <= 40 * MS + 30 * MS + 2 * serialization,
            "{one_way:?}"
        );
        lo = lo.min(one_way);
        hi = hi.max(one_way);
    }
    for w in ds.windows(2) {
        assert!(w[1].delivered_at >= w[0].delivered_at);
    }
    // Dense packets: a delivery waits for the one before it, so delays bunch towards the top
    // of the range, but they still vary.
    assert!(hi - lo > 10 * MS, "jitter applied: spread {:?}", hi - lo);

    // Sparse packets see the whole uniform range.
    let mut extra = Vec::new();
    for i in 0..2000u64 {
        let now = t0 + 20 * S + 100 * MS * i as u32;
        link.send(now, 200, i);
        let d = link.poll_deliver(now + 99 * MS).expect("due");
        assert_eq!(d.sent_at, now);
        extra.push((d.delivered_at - d.sent_at - 40 * MS - serialization).as_secs_f64() * 1e3);
    }
    let mean = extra.iter().sum::<f64>() / extra.len() as f64;
    let (lo, hi) = extra
        .iter()
        .fold((f64::MAX, 0f64), |(l, h), &x| (l.min(x), h.max(x)));
    assert!((14.0..16.0).contains(&mean), "{mean}");
    assert!(
        (0.0..0.5).contains(&lo) && hi <= 30.0 && hi > 29.5,
        "{lo} {hi}"
    );
}

#[test]
fn time_limit_bounds_queue_delay() {
    let t0 = Instant::now();
    let mut cfg = LinkConfig::fixed(1_000_000, 10 * MS);
    cfg.queue = QueueLimit::Time(100 * MS);
    let mut link = Link::new(cfg, t0);
    let mut ds = Vec::new();
    let mut dropped = 0;
    for i in 0..2000u64 {
        let now = t0 + 5 * MS * i as u32; // 1.92 Mbit/s offered
        if link.send(now, 1200, i) == SendOutcome::DroppedQueueFull {
            dropped += 1;
        }
        drain(&mut link, now, &mut ds);
    }
    let max = ds.iter().map(|d| d.queue_delay).max().expect("deliveries");
    assert!(max <= 100 * MS, "{max:?}");
    assert!(max >= 85 * MS, "the queue filled: {max:?}");
    assert!(dropped > 500, "{dropped}");
}

#[test]
fn byte_limit_is_respected() {
    let t0 = Instant::now();
    let mut cfg = LinkConfig::fixed(500_000, 10 * MS);
    cfg.queue = QueueLimit::Bytes(10_000);
    let mut link = Link::new(cfg, t0);
    let mut peak = 0;
    for i in 0..3000u64 {
        let now = t0 + 2 * MS * i as u32;
        link.send(now, 700, i);
        peak = peak.max(link.queued_bytes());
        while link.poll_deliver(now).is_some() {}
    }
    assert!(peak <= 10_000 && peak > 9_000, "{peak}");
    assert!(link.stats().dropped_queue_packets > 0);
}

fn offer_spaced(link: &mut Link<u64>, t0: Instant, n: u64, gap: Duration) -> Vec<SendOutcome> {
    (0..n)
        .map(|i| {
            let now = t0 + gap * i as u32;
            let o = link.send(now, 1000, i);
            while link.poll_deliver(now).is_some() {}
            o
        })
        .collect()
}

#[test]
fn random_loss_rate() {
    let t0 = Instant::now();
    let mut cfg = LinkConfig::fixed(100_000_000, 10 * MS);
    cfg.loss = LossModel::Random { p: 0.03 };
    cfg.seed = 1;
    let mut link = Link::new(cfg, t0);
    let outcomes = offer_spaced(&mut link, t0, 100_000, MS);
    let lost = outcomes
        .iter()
        .filter(|&&o| o == SendOutcome::DroppedLoss)
        .count();
    // 3000 expected, standard deviation 54.
    assert!((2780..=3220).contains(&lost), "{lost}");
    while link.poll_deliver(t0 + 200 * S).is_some() {}
    let s = link.stats();
    assert_eq!(s.dropped_queue_packets, 0);
    assert_eq!(s.dropped_loss_packets, lost as u64);
    assert_eq!(s.delivered_packets + s.dropped_loss_packets, 100_000);
}

/// Mean length of runs of consecutive losses, and the loss rate.
fn bursts(outcomes: &[SendOutcome]) -> (f64, f64) {
    let (mut runs, mut lost, mut prev) = (0, 0, false);
    for &o in outcomes {
        let l = o == SendOutcome::DroppedLoss;
        lost += usize::from(l);
        runs += usize::from(l && !prev);
        prev = l;
    }
    (
        lost as f64 / runs as f64,
        lost as f64 / outcomes.len() as f64,
    )
}

#[test]
fn gilbert_elliott_bursts() {
    let t0 = Instant::now();
    let mut cfg = LinkConfig::fixed(100_000_000, 10 * MS);
    cfg.loss = LossModel::bursty(0.05, 3.0);
    cfg.seed = 2;
    let mut link = Link::new(cfg, t0);
    let outcomes = offer_spaced(&mut link, t0, 200_000, MS);
    let (burst, rate) = bursts(&outcomes);
    assert!(within(rate, 0.05, 0.1), "loss {rate}");
    assert!(within(burst, 3.0, 0.1), "burst {burst}");
    // Random loss at the same rate has bursts of about 1 / (1 - p).
    let mut cfg = LinkConfig::fixed(100_000_000, 10 * MS);
    cfg.loss = LossModel::Random { p: 0.05 };
    let (random_burst, _) = bursts(&offer_spaced(&mut Link::new(cfg, t0), t0, 200_000, MS));
    assert!(random_burst < 1.1, "{random_burst}");
}

fn run(seed: u64) -> (Vec<SendOutcome>, Vec<(u64, Duration)>) {
    let t0 = Instant::now();
    let mut cfg = LinkConfig::fixed(1_000_000, 30 * MS);
    cfg.loss = LossModel::bursty(0.1, 2.0);
    cfg.jitter = 20 * MS;
    cfg.seed = seed;
    let mut link = Link::new(cfg, t0);
    let mut outcomes = Vec::new();
    let mut ds = Vec::new();
    for i in 0..2000u64 {
        let now = t0 + 3 * MS * i as u32;
        outcomes.push(link.send(now, 300 + (i as usize * 37) % 900, i));
        drain(&mut link, now, &mut ds);
    }
    drain(&mut link, t0 + 100 * S, &mut ds);
    let times = ds.iter().map(|d| (d.packet, d.delivered_at - t0)).collect();
    (outcomes, times)
}

#[test]
fn same_seed_same_outcome_different_seed_differs() {
    let a = run(42);
    assert_eq!(a, run(42));
    let b = run(43);
    assert_ne!(a.0, b.0);
    assert_ne!(a.1, b.1);
}

#[test]
fn outage_stops_delivery_then_resumes() {
    let t0 = Instant::now();
    let trace = Trace::from_steps(&[(2 * S, 1_000_000), (2 * S, 0), (4 * S, 1_000_000)]);
    let delay = 20 * MS;
    let mut link = Link::new(LinkConfig::with_trace(trace, delay), t0);
    let mut ds = Vec::new();
    let mut queued_late_in_outage = 0;
    for i in 0..1600u64 {
        let now = t0 + 5 * MS * i as u32; // 1.92 Mbit/s offered, for 8 s
        link.send(now, 1200, i);
        drain(&mut link, now, &mut ds);
        if now == t0 + 3900 * MS {
            queued_late_in_outage = link.queued_bytes();
        }
    }
    drain(&mut link, t0 + 8 * S, &mut ds);
    let during = ds
        .iter()
        .filter(|d| d.delivered_at > t0 + 2 * S + delay && d.delivered_at <= t0 + 4 * S + delay)
        .count();
    assert_eq!(during, 0);
    assert!(link.capacity_bps_at(t0 + 3 * S) == 0);
    // The queue filled to about 300 ms at the pre-outage rate (37 500 bytes) and held.
    assert!(
        (30_000..=37_500).contains(&queued_late_in_outage),
        "{queued_late_in_outage}"
    );
    let after = bytes_between(&ds, t0, 4500 * MS, 8 * S) as f64 * 8.0 / 3.5;
    assert!(within(after, 1e6, 0.02), "{after}");
    // The backlog from the outage leaves first, right after capacity returns.
    let first_after = ds
        .iter()
        .find(|d| d.delivered_at > t0 + 4 * S + delay)
        .expect("resumed");
    assert!(first_after.delivered_at < t0 + 4 * S + delay + 10 * MS);
    assert!(first_after.sent_at < t0 + 4 * S);
}

#[test]
fn zero_capacity_forever_never_panics_or_delivers() {
    let t0 = Instant::now();
    let mut cfg = LinkConfig::with_trace(Trace::fixed(0), 10 * MS);
    cfg.queue = QueueLimit::Bytes(5000);
    let mut link = Link::new(cfg, t0);
    let outcomes: Vec<_> = (0..10u32)
        .map(|i| link.send(t0 + MS * i, 1000, i))
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|&&o| o == SendOutcome::Queued)
            .count(),
        5
    );
    assert!(link.poll_deliver(t0 + 1000 * S).is_none());
    assert_eq!(link.poll_timeout(), None);
    // Time limit with no rate at all: everything is refused.
    let mut link = Link::new(LinkConfig::with_trace(Trace::fixed(0), MS), t0);
    assert_eq!(link.send(t0, 1, 0), SendOutcome::DroppedQueueFull);
}

#[test]
fn time_going_backwards_is_clamped() {
    let t0 = Instant::now();
    let mut link = Link::new(LinkConfig::fixed(1_000_000, 10 * MS), t0 + S);
    // Before the start: taken as the start.
    link.send(t0, 1250, 1u64);
    let d = link.poll_deliver(t0 + 2 * S).expect("due");
    assert_eq!(d.delivered_at, t0 + S + 20 * MS);
    // Earlier than already seen: taken as the latest time.
    link.send(t0 + S, 1250, 2);
    let d = link.poll_deliver(t0 + 3 * S).expect("due");
    assert_eq!(d.sent_at, t0 + 2 * S);
}

#[test]
fn opennetlab_segments_set_delay_and_loss() {
    let t0 = Instant::now();
    let rtt = r#"{"uplink":{"trace_pattern":[{"duration":1000,"capacity":1000,"rtt":200,"loss":0,"jitter":0}]}}"#;
    let mut link = Link::new(
        LinkConfig::with_trace(Trace::parse(rtt).expect("parses"), 10 * MS),
        t0,
    );
    link.send(t0, 125, 1u64);
    let d = link.poll_deliver(t0 + S).expect("due");
    assert_eq!(d.delivered_at, t0 + MS + 100 * MS);

    let loss = r#"{"uplink":{"trace_pattern":[{"duration":500,"capacity":1000,"rtt":0,"loss":0},
        {"duration":500,"capacity":1000,"rtt":0,"loss":0.5}]}}"#;
    let mut link = Link::new(
        LinkConfig::with_trace(Trace::parse(loss).expect("parses"), 10 * MS),
        t0,
    );
    let outcomes = offer_spaced(&mut link, t0, 20_000, 10 * MS);
    // Even 10 ms slots (50 per 500 ms) fall in the lossless half.
    let lossy: Vec<_> = outcomes
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 100 >= 50)
        .collect();
    assert!(
        outcomes
            .iter()
            .enumerate()
            .all(|(i, o)| i % 100 >= 50 || *o == SendOutcome::Queued)
    );
    let lost = lossy
        .iter()
        .filter(|(_, o)| **o == SendOutcome::DroppedLoss)
        .count();
    assert!(within(lost as f64, 5000.0, 0.05), "{lost}");
    // rtt 0 in these files means unset: the configured delay applies.
    assert_eq!(link.send(t0 + 300 * S, 1000, 0), SendOutcome::Queued);
    let d = link.poll_deliver(t0 + 301 * S).expect("due");
    assert_eq!(d.delivered_at, d.sent_at + 8 * MS + 10 * MS);
}

#[test]
fn mahimahi_scaled_halves_throughput() {
    let t0 = Instant::now();
    // 4 opportunities every 10 ms: 4.8 Mbit/s.
    let trace = Trace::parse("1\n3\n3\n10\n").expect("parses");
    for factor in [1.0, 0.5, 0.1] {
        let t = trace.scaled(factor);
        let mut cfg = LinkConfig::with_trace(t.clone(), Duration::ZERO);
        cfg.queue = QueueLimit::Bytes(1_000_000);
        let mut link = Link::new(cfg, t0);
        let ds = saturate(&mut link, t0, 10 * S, 1200, 100_000);
        let bps = bytes_between(&ds, t0, Duration::ZERO, 10 * S + MS) as f64 * 8.0 / 10.0;
        assert!(within(bps, 4.8e6 * factor, 0.01), "x{factor}: {bps}");
        assert!(within(t.mean_bps() as f64, 4.8e6 * factor, 0.001));
    }
}

#[test]
fn link_pair_runs_both_directions() {
    let t0 = Instant::now();
    let mut pair = kham_netem::LinkPair::new(
        LinkConfig::fixed(1_000_000, 30 * MS),
        LinkConfig::fixed(2_000_000, 10 * MS),
        t0,
    );
    pair.up.send(t0, 1250, 1u8);
    pair.down.send(t0, 1250, 2u8);
    assert_eq!(pair.poll_timeout(), Some(t0 + 5 * MS));
    assert_eq!(
        pair.down.poll_deliver(t0 + 15 * MS).map(|d| d.packet),
        Some(2)
    );
    assert_eq!(
        pair.up.poll_deliver(t0 + 40 * MS).map(|d| d.packet),
        Some(1)
    );
}

#[test]
fn extreme_inputs_do_not_panic() {
    let t0 = Instant::now();
    for trace in [
        Trace::fixed(u64::MAX),
        Trace::fixed(1),
        Trace::parse("1\n").expect("parses").scaled(1e30),
        Trace::parse("1\n").expect("parses").scaled(1e-9),
        Trace::from_steps(&[(Duration::MAX, 5), (Duration::MAX, 0)]),
    ] {
        let mut cfg = LinkConfig::with_trace(trace, Duration::MAX);
        cfg.jitter = Duration::MAX;
        cfg.queue = QueueLimit::Bytes(usize::MAX);
        cfg.loss = LossModel::GilbertElliott {
            p_good_to_bad: f64::NAN,
            p_bad_to_good: -1.0,
            loss_good: f64::INFINITY,
            loss_bad: 2.0,
        };
        let mut link = Link::new(cfg, t0);
        for (i, size) in [usize::MAX, 0, 1, usize::MAX / 2, 1500]
            .into_iter()
            .enumerate()
        {
            link.send(t0 + S * i as u32, size, i);
            let _ = link.poll_deliver(t0 + 1000 * S);
            let _ = link.poll_timeout();
        }
        let _ = link.stats();
        let _ = link.capacity_bps_at(t0 + 10_000 * S);
        let mut link = Link::new(
            LinkConfig {
                queue: QueueLimit::Time(Duration::MAX),
                ..link.config().clone()
            },
            t0,
        );
        link.send(t0, usize::MAX, 0);
        let _ = link.poll_deliver(t0 + S);
    }
}
