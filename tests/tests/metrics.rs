//! `/metrics` of a live server carrying a real call, parsed with `prometheus-parse` (a parser we
//! did not write): the figures are there, move with the call, and carry no ids or names.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kham_tests::{KhamServer, MediaKind, Participant, PeerOptions, role, unique};
use prometheus_parse::{Scrape, Value};

async fn scrape(server: &KhamServer, token: &str) -> Result<(String, Scrape)> {
    let r = server.http("GET", "/metrics", Some(token), None).await?;
    ensure!(r.status == 200, "GET /metrics: {} {}", r.status, r.text());
    ensure!(
        r.headers
            .get("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "content type: {:?}",
        r.headers.get("content-type")
    );
    let text = r.text();
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).context("parsing")?;
    Ok((text, scrape))
}

fn value(s: &Scrape, metric: &str, label: Option<(&str, &str)>) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == metric && label.is_none_or(|(k, v)| x.labels.get(k) == Some(v)))
        .and_then(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(*v),
            Value::Histogram(h) => h.last().map(|b| b.count),
            Value::Summary(_) => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scrape_parses_and_follows_a_call() -> Result<()> {
    let server = KhamServer::start().await?;
    let admin = server.admin_token()?;
    let r = server.http("GET", "/metrics", None, None).await?;
    ensure!(
        r.status == 401,
        "metrics need a token by default: {}",
        r.status
    );

    let room = unique("metrics");
    let mut doctor =
        Participant::join(&server, &room, "dr-m", "BS. Lê Thị Mai", role::DOCTOR).await?;
    doctor.start_media(PeerOptions::publish()).await?;
    let station =
        Participant::join(&server, &room, "st-m", "Trạm Y tế Tân Phú", role::STATION).await?;
    station.start_media(PeerOptions::publish()).await?;
    station
        .wait_media_from(&doctor.id(), MediaKind::Video, 60, Duration::from_secs(10))
        .await?;
    doctor
        .wait_media_from(&station.id(), MediaKind::Video, 60, Duration::from_secs(10))
        .await?;
    // A signaling error, counted by type.
    doctor.send(serde_json::json!({"type": "dance"})).await?;
    doctor.signal.expect_error("unknown_type").await?;

    // Figures are published once per second: wait for the call to show.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (text, s) = loop {
        let (text, s) = scrape(&server, &admin).await?;
        let ready = value(&s, "kham_participants", Some(("role", "station"))) == Some(1.0)
            && value(&s, "kham_rtp_packets_total", Some(("direction", "out"))).unwrap_or(0.0)
                > 100.0
            && value(&s, "kham_tracks", None) == Some(4.0)
            && value(&s, "kham_egress_estimate_bits_per_second", None).unwrap_or(0.0) > 0.0;
        if ready {
            break (text, s);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the call did not show in /metrics within 10 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    ensure!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
    ensure!(value(&s, "kham_rooms", None) == Some(1.0));
    ensure!(value(&s, "kham_participants", Some(("role", "doctor"))) == Some(1.0));
    ensure!(value(&s, "kham_participants", Some(("role", "patient"))) == Some(0.0));
    ensure!(value(&s, "kham_lobby_participants", None) == Some(0.0));
    for dir in ["in", "out"] {
        for m in [
            "kham_udp_datagrams_total",
            "kham_udp_bytes_total",
            "kham_rtp_bytes_total",
        ] {
            ensure!(
                value(&s, m, Some(("direction", dir))).unwrap_or(0.0) > 0.0,
                "{m}{{direction={dir}}} > 0"
            );
        }
    }
    for (m, key, l) in [
        ("kham_nacks_total", "direction", "received"),
        ("kham_nacks_total", "direction", "sent"),
        ("kham_plis_total", "direction", "received"),
        ("kham_plis_total", "direction", "sent"),
        ("kham_udp_dropped_total", "reason", "unroutable"),
        ("kham_udp_dropped_total", "reason", "oversized"),
        ("kham_udp_dropped_total", "reason", "send_buffer_full"),
        (
            "kham_allocation_switches_total",
            "reason",
            "layer_availability",
        ),
    ] {
        ensure!(
            value(&s, m, Some((key, l))).is_some(),
            "{m}{{{key}={l}}} present"
        );
    }
    ensure!(value(&s, "kham_rtx_packets_total", None).is_some());
    // The kernel's drops at the media socket: read from /proc on Linux, absent elsewhere.
    let kernel_drops = value(&s, "kham_udp_kernel_drops_total", None);
    ensure!(
        kernel_drops.is_some() == cfg!(target_os = "linux")
            && kernel_drops.is_none_or(|v| v >= 0.0 && v.fract() == 0.0),
        "kham_udp_kernel_drops_total {kernel_drops:?}"
    );
    // Nobody chose audio-only, but the allocator may pause a participant's video: webrtc-rs
    // clients on a loaded loopback can get str0m estimates too low for their unlayered video
    // (relay_media.rs runs without adaptation for that reason). The gauge counts participants:
    // 0, 1 or 2 here.
    let audio_only = value(&s, "kham_audio_only_subscriptions", None);
    ensure!(
        audio_only.is_some_and(|v| v.fract() == 0.0 && (0.0..=2.0).contains(&v)),
        "kham_audio_only_subscriptions {audio_only:?}"
    );
    ensure!(
        value(
            &s,
            "kham_signal_errors_total",
            Some(("type", "unknown_type"))
        ) == Some(1.0),
        "signal errors by type:\n{text}"
    );
    // Histograms: two media connections measured; no estimate until estimation is on.
    let join = s
        .samples
        .iter()
        .find(|x| x.metric == "kham_join_seconds")
        .context("kham_join_seconds")?;
    match &join.value {
        Value::Histogram(h) => {
            let total = h.last().map_or(0.0, |b| b.count);
            ensure!(total == 2.0, "two joins measured: {h:?}");
            ensure!(h.len() >= 8, "buckets: {h:?}");
        }
        v => anyhow::bail!("kham_join_seconds is not a histogram: {v:?}"),
    }
    ensure!(
        text.contains("kham_join_seconds_count 2"),
        "join count in the text:\n{text}"
    );
    ensure!(
        text.lines()
            .find_map(|l| l.strip_prefix("kham_egress_estimate_bits_per_second_count "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .is_some_and(|n| n > 0.0),
        "the egress estimates of the subscribers are observed:\n{text}"
    );
    ensure!(
        value(
            &s,
            "kham_allocation_switches_total",
            Some(("reason", "start"))
        )
        .is_some_and(|v| v >= 1.0),
        "the allocator's first decisions are counted by reason"
    );
    for reason in [
        "bandwidth_drop",
        "probe_confirmed",
        "tile_size",
        "hidden",
        "audio_only_chosen",
        "layer_gone",
        "outage",
    ] {
        ensure!(
            value(
                &s,
                "kham_allocation_switches_total",
                Some(("reason", reason))
            )
            .is_some(),
            "every allocator reason has its series ({reason}):\n{text}"
        );
    }
    ensure!(value(&s, "process_cpu_seconds_total", None).unwrap_or(0.0) > 0.0);
    ensure!(
        value(&s, "kham_media_sessions", Some(("path", "udp"))).is_some_and(|v| v >= 1.0),
        "the call's participants are counted by media path (direct UDP on loopback):\n{text}"
    );
    // Types as declared.
    for (name, ty) in [
        ("kham_rooms", "gauge"),
        ("kham_udp_datagrams", "counter"),
        ("kham_join_seconds", "histogram"),
    ] {
        ensure!(
            text.contains(&format!("# TYPE {name} {ty}\n")),
            "{name} typed {ty}"
        );
    }

    // Bounded labels: only known label names, and never a room, participant id or name.
    let allowed: BTreeSet<&str> = [
        "role",
        "direction",
        "reason",
        "type",
        "result",
        "path",
        "le",
        // The specialist queue's: specialties come from the configuration's list, outcomes are
        // taken, cancelled and expired.
        "specialty",
        "outcome",
    ]
    .into();
    for x in &s.samples {
        for (k, v) in x.labels.iter() {
            ensure!(
                allowed.contains(k.as_str()),
                "unexpected label {k} on {}",
                x.metric
            );
            ensure!(
                !v.contains(&room) && !v.starts_with("p-"),
                "an id in a label: {}{{{k}={v}}}",
                x.metric
            );
        }
    }
    for needle in [room.as_str(), &doctor.id(), &station.id(), "Mai", "Tân Phú"] {
        ensure!(!text.contains(needle), "{needle:?} appears in /metrics");
    }

    // Counters keep growing after the call is gone.
    let before = value(&s, "kham_rtp_packets_total", Some(("direction", "in"))).unwrap_or(0.0);
    doctor.end_consult().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, s) = scrape(&server, &admin).await?;
        if value(&s, "kham_rooms", None) == Some(0.0) {
            let after =
                value(&s, "kham_rtp_packets_total", Some(("direction", "in"))).unwrap_or(0.0);
            ensure!(
                after >= before,
                "counters never go down: {before} -> {after}"
            );
            ensure!(value(&s, "kham_participants", Some(("role", "doctor"))) == Some(0.0));
            break;
        }
        ensure!(tokio::time::Instant::now() < deadline, "room still counted");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}
