//! Property tests: parsing never panics; link invariants hold for arbitrary traces and traffic.

mod common;

use std::time::{Duration, Instant};

use common::drain;
use kham_netem::{Delivered, Link, LinkConfig, LossModel, QueueLimit, SendOutcome, Trace};
use proptest::prelude::*;

/// Exercises every query of a parsed trace.
fn use_trace(t: &Trace) {
    assert!(t.duration() > Duration::ZERO);
    let _ = t.mean_bps();
    for off in [0u64, 1, 999, 1_000_000, u64::MAX] {
        let d = Duration::from_millis(off);
        let _ = t.capacity_bps_at(d);
        let _ = t.segment_at(d);
    }
    let _ = t.scaled(0.5).mean_bps();
    let _ = t.scaled(f64::NAN).mean_bps();
    let _ = t.scaled(f64::INFINITY).mean_bps();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_arbitrary_text_never_panics(text in any::<String>()) {
        if let Ok(t) = Trace::parse(&text) {
            use_trace(&t);
        }
    }

    #[test]
    fn parse_numeric_lines_never_panics(
        text in "([-+]?[0-9]{0,22}(\\.[0-9]{0,4})?(e[-+]?[0-9]{1,3})?|NaN|inf|-inf)([ \t]+[-+]?[0-9]{0,8}(\\.[0-9]{0,6})?|[ \t]+NaN){0,6}(\n([-+]?[0-9]{0,12}(\\.[0-9]{0,3})?)([ \t]+[-+]?[0-9]{0,8}(\\.[0-9]{0,6})?){0,6}){0,30}\n?"
    ) {
        match Trace::parse(&text) {
            Ok(t) => use_trace(&t),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn parse_opennetlab_like_never_panics(
        entries in prop::collection::vec(
            (any::<f64>(), any::<f64>(), prop::option::of(any::<f64>()),
             prop::option::of(any::<f64>()), prop::option::of(-1e3f64..1e6)),
            0..8),
        key in prop::sample::select(vec!["uplink", "downlink", "other"]),
    ) {
        let num = |v: f64| if v.is_finite() { format!("{v}") } else { "null".to_string() };
        let items: Vec<String> = entries.iter().map(|(d, c, l, r, j)| {
            let mut s = format!("{{\"duration\":{},\"capacity\":{}", num(*d), num(*c));
            if let Some(l) = l { s += &format!(",\"loss\":{}", num(*l)); }
            if let Some(r) = r { s += &format!(",\"rtt\":{}", num(*r)); }
            if let Some(j) = j { s += &format!(",\"jitter\":{}", num(*j)); }
            s + "}"
        }).collect();
        let text = format!("{{\"{key}\":{{\"trace_pattern\":[{}]}}}}", items.join(","));
        if let Ok(t) = Trace::parse(&text) {
            use_trace(&t);
        }
    }
}

proptest! {
    #[test]
    fn valid_mahimahi_parses_with_its_mean(mut ms in prop::collection::vec(0u64..100_000, 1..200)) {
        ms.sort_unstable();
        prop_assume!(*ms.last().unwrap_or(&0) > 0);
        let text: String = ms.iter().map(|m| format!("{m}\n")).collect();
        let t = Trace::parse(&text).expect("valid");
        let last = *ms.last().unwrap_or(&1);
        prop_assert_eq!(t.duration(), Duration::from_millis(last));
        prop_assert_eq!(t.mean_bps(), ms.len() as u64 * 12_000 * 1000 / last);
    }

    #[test]
    fn valid_norway_parses_with_its_mean(rates in prop::collection::vec(0.0f64..10.0, 1..100)) {
        let text: String = rates.iter().enumerate().map(|(i, r)| format!("{i}.000000 {r:.6}\n")).collect();
        let t = Trace::parse(&text).expect("valid");
        prop_assert_eq!(t.duration(), Duration::from_secs(rates.len() as u64));
        // Integer bit/s per sample as written (6 decimals of Mbit/s), mean rounded down.
        let bps: Vec<f64> = rates.iter().map(|r| (format!("{r:.6}").parse::<f64>().unwrap_or(0.0) * 1e6).round()).collect();
        let mean = bps.iter().sum::<f64>() / bps.len() as f64;
        prop_assert!((t.mean_bps() as f64 - mean).abs() <= 1.0);
    }
}

#[derive(Debug, Clone)]
struct Scenario {
    trace: Trace,
    queue: QueueLimit,
    loss: LossModel,
    delay: Duration,
    jitter: Duration,
    seed: u64,
    /// (gap before this send in µs, size)
    sends: Vec<(u64, usize)>,
}

fn trace_strategy() -> impl Strategy<Value = Trace> {
    let steps = prop::collection::vec((1u64..3000, 0u64..4_000_000), 1..6).prop_map(|v| {
        let steps: Vec<(Duration, u64)> = v
            .into_iter()
            .map(|(ms, bps)| (Duration::from_millis(ms), bps))
            .collect();
        Trace::from_steps(&steps)
    });
    let mahimahi =
        (prop::collection::vec(0u64..200, 1..40), 0.05f64..3.0).prop_map(|(mut v, f)| {
            v.sort_unstable();
            let last = v.last().copied().unwrap_or(1).max(1);
            v.push(last);
            let text: String = v.iter().map(|m| format!("{m}\n")).collect();
            Trace::parse(&text).expect("valid Mahimahi").scaled(f)
        });
    prop_oneof![steps, mahimahi]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        trace_strategy(),
        prop_oneof![
            (1usize..20_000).prop_map(QueueLimit::Bytes),
            (1u64..500).prop_map(|ms| QueueLimit::Time(Duration::from_millis(ms))),
        ],
        prop_oneof![
            Just(LossModel::None),
            (0.0f64..0.5).prop_map(|p| LossModel::Random { p }),
            (0.0f64..0.3, 1.0f64..5.0).prop_map(|(m, b)| LossModel::bursty(m, b)),
        ],
        0u64..200,
        0u64..50,
        any::<u64>(),
        prop::collection::vec((0u64..20_000, 0usize..1600), 1..150),
    )
        .prop_map(
            |(trace, queue, loss, delay, jitter, seed, sends)| Scenario {
                trace,
                queue,
                loss,
                delay: Duration::from_millis(delay),
                jitter: Duration::from_millis(jitter),
                seed,
                sends,
            },
        )
}

type Record = (
    Vec<SendOutcome>,
    Vec<(usize, usize, Duration, Duration, Duration)>,
);

/// How `run` polls the link.
#[derive(Clone, Copy, PartialEq)]
enum Polling {
    /// At every `poll_timeout` and after every send.
    Often,
    /// Only at `poll_delivery_timeout`, as the relay does; each delivery must come out exactly
    /// at the wake-up (the bound is never past a delivery).
    Deliveries,
    /// Only at the end.
    AtEnd,
}

/// Runs the scenario, polling as `polling` says.
fn run(s: &Scenario, polling: Polling) -> (Record, Link<usize>) {
    let t0 = Instant::now();
    let cfg = LinkConfig {
        trace: s.trace.clone(),
        delay: s.delay,
        jitter: s.jitter,
        queue: s.queue,
        loss: s.loss,
        seed: s.seed,
    };
    let mut link = Link::new(cfg, t0);
    let mut now = t0;
    let mut outcomes = Vec::new();
    let mut ds: Vec<Delivered<usize>> = Vec::new();
    for (i, &(gap_us, size)) in s.sends.iter().enumerate() {
        now += Duration::from_micros(gap_us);
        if polling == Polling::Often {
            // As an event-driven simulator does: wake at every timeout before the next send.
            while let Some(t) = link.poll_timeout().filter(|&t| t < now) {
                drain(&mut link, t, &mut ds);
            }
        }
        if polling == Polling::Deliveries {
            while let Some(t) = link.poll_delivery_timeout().filter(|&t| t < now) {
                let from = ds.len();
                drain(&mut link, t, &mut ds);
                for d in &ds[from..] {
                    assert_eq!(d.delivered_at, t, "delivery bound past a delivery");
                }
                let next = link.poll_delivery_timeout();
                assert!(next.is_none_or(|n| n > t), "bound does not move on");
            }
        }
        outcomes.push(link.send(now, size, i));
        if let QueueLimit::Bytes(max) = s.queue {
            assert!(link.queued_bytes() <= max);
        }
        if polling == Polling::Often {
            drain(&mut link, now, &mut ds);
            if let Some(next) = link.poll_timeout() {
                assert!(next >= now || link.poll_deliver(now).is_none());
            }
        }
    }
    // Long enough for any queue on these traces to drain (slowest: a few bit/s).
    let end = now + Duration::from_secs(10_000_000);
    drain(&mut link, end, &mut ds);
    let rec = ds
        .iter()
        .map(|d| {
            (
                d.packet,
                d.size,
                d.sent_at - t0,
                d.queue_delay,
                d.delivered_at - t0,
            )
        })
        .collect();
    ((outcomes, rec), link)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn link_invariants(s in scenario()) {
        let ((outcomes, ds), link) = run(&s, Polling::Often);
        // Delivered in send order, times monotonic, never faster than propagation.
        for w in ds.windows(2) {
            prop_assert!(w[0].0 < w[1].0);
            prop_assert!(w[0].4 <= w[1].4);
        }
        for &(id, size, sent, queue_delay, delivered) in &ds {
            prop_assert_eq!(outcomes[id], SendOutcome::Queued);
            prop_assert_eq!(size, s.sends[id].1);
            prop_assert!(delivered >= sent + queue_delay + s.delay);
        }
        // Every packet accounted for once the queue has drained.
        let st = link.stats();
        prop_assert_eq!(st.sent_packets, s.sends.len() as u64);
        let queued = outcomes.iter().filter(|&&o| o == SendOutcome::Queued).count() as u64;
        prop_assert_eq!(st.dropped_queue_packets,
            outcomes.iter().filter(|&&o| o == SendOutcome::DroppedQueueFull).count() as u64);
        prop_assert_eq!(st.dropped_loss_packets,
            outcomes.iter().filter(|&&o| o == SendOutcome::DroppedLoss).count() as u64);
        if s.trace.mean_bps() > 0 {
            prop_assert_eq!(st.delivered_packets, queued);
            prop_assert_eq!(link.queued_bytes(), 0);
            prop_assert_eq!(link.poll_timeout(), None);
        }
        prop_assert_eq!(st.delivered_bytes, ds.iter().map(|d| d.1 as u64).sum::<u64>());
    }

    #[test]
    fn outcome_does_not_depend_on_polling_or_run(s in scenario()) {
        let (a, _) = run(&s, Polling::Often);
        let (b, _) = run(&s, Polling::AtEnd);
        prop_assert_eq!(&a, &b);
        let (c, _) = run(&s, Polling::Often);
        prop_assert_eq!(&a, &c);
        let (d, _) = run(&s, Polling::Deliveries);
        prop_assert_eq!(&a, &d);
    }
}
