//! Junk on the media port: the server drops it, counts it, and keeps serving calls.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kham_tests::server::ServerOptions;
use kham_tests::{KhamServer, MediaKind, Participant, PeerOptions, role, unique};
use rand::{Rng, RngCore};
use tokio::net::UdpSocket;

fn udp_dropped(health: &serde_json::Value) -> Result<u64> {
    health
        .get("udp_dropped")
        .and_then(serde_json::Value::as_u64)
        .with_context(|| format!("GET /healthz has no numeric top-level udp_dropped: {health}"))
}

/// Datagrams that look like the start of STUN / DTLS / RTP / RTCP but are broken.
fn lookalikes(rng: &mut impl RngCore) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..200 {
        // STUN binding request header (type 0x0001, magic cookie), truncated or lying about length.
        let mut stun = vec![0x00, 0x01, 0x00, 0x50, 0x21, 0x12, 0xA4, 0x42];
        let mut tid = [0u8; 12];
        rng.fill_bytes(&mut tid);
        stun.extend_from_slice(&tid);
        let cut = rng.random_range(1..stun.len() + 30);
        stun.resize(cut, 0xAB);
        out.push(stun);

        // STUN with a USERNAME attribute claiming more bytes than present.
        let mut stun2 = vec![0x00, 0x01, 0x00, 0x10, 0x21, 0x12, 0xA4, 0x42];
        stun2.extend_from_slice(&tid);
        stun2.extend_from_slice(&[0x00, 0x06, 0x03, 0xE8, b'a', b'b']);
        out.push(stun2);

        // DTLS record header: handshake, DTLS 1.2, epoch 0, length larger than the datagram.
        let mut dtls = vec![0x16, 0xFE, 0xFD, 0x00, 0x00];
        let mut rest = vec![0u8; rng.random_range(0..40)];
        rng.fill_bytes(&mut rest);
        dtls.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0x01, 0x00]);
        dtls.extend_from_slice(&rest);
        out.push(dtls);

        // DTLS application data / alert with a random epoch.
        let mut dtls2 = vec![if rng.random_bool(0.5) { 0x17 } else { 0x15 }, 0xFE, 0xFD];
        let mut rest = vec![0u8; rng.random_range(0..60)];
        rng.fill_bytes(&mut rest);
        dtls2.extend_from_slice(&rest);
        out.push(dtls2);

        // RTP (V=2, PT 96/111) with a random SSRC and a random "encrypted" payload.
        let mut rtp = vec![0x80, if rng.random_bool(0.5) { 96 } else { 111 }];
        let mut rest = vec![0u8; rng.random_range(0..200)];
        rng.fill_bytes(&mut rest);
        rtp.extend_from_slice(&rest);
        out.push(rtp);

        // RTCP (PT 200..=206) truncated.
        let mut rtcp = vec![0x81, rng.random_range(200..=206)];
        let mut rest = vec![0u8; rng.random_range(0..10)];
        rng.fill_bytes(&mut rest);
        rtcp.extend_from_slice(&rest);
        out.push(rtcp);
    }
    // Degenerate sizes.
    out.push(vec![]);
    out.push(vec![0x00]);
    out.push(vec![0xFF; 1]);
    out.push(vec![0x80; 12]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_garbage_is_dropped_and_counted() -> Result<()> {
    let server = KhamServer::start().await?;
    let before = udp_dropped(&server.healthz_json().await?)?;

    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    let target = server.udp_addr();
    let mut rng = rand::rng();
    let mut sent = 0u64;
    for i in 0..3000 {
        let len = rng.random_range(1..=1400);
        let mut buf = vec![0u8; len];
        rng.fill_bytes(&mut buf);
        if sock.send_to(&buf, target).await.is_ok() {
            sent += 1;
        }
        // Do not overrun the server's socket buffer completely; it should *see* most of them.
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let looks = lookalikes(&mut rng);
    for (i, d) in looks.iter().enumerate() {
        if sock.send_to(d, target).await.is_ok() {
            sent += 1;
        }
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // A second source address too.
    let sock2 = UdpSocket::bind("127.0.0.1:0").await?;
    for d in looks.iter().take(300) {
        let _ = sock2.send_to(d, target).await;
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut server = server;
    ensure!(
        server.is_alive(),
        "kham died from UDP garbage:\n{}",
        server.logs_tail(40)
    );
    // The shard publishes its counters once a second: poll for up to 5 s.
    let mut after = before;
    for _ in 0..25 {
        after = udp_dropped(
            &server
                .healthz_json()
                .await
                .context("healthz after garbage")?,
        )?;
        if after > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("sent {sent} junk datagrams; udp_dropped {before} -> {after}");
    ensure!(
        after > before,
        "udp_dropped did not increase ({before} -> {after}) after {sent} junk datagrams"
    );
    if after - before < sent / 2 {
        // Not a failure by itself (the kernel may drop some, the server may count differently),
        // but worth seeing in the output.
        eprintln!(
            "note: only {} of {sent} junk datagrams were counted as dropped",
            after - before
        );
    }

    // A normal call still works.
    let room = unique("after-garbage");
    let doctor = Participant::join(&server, &room, "dr-1", "Dr One", role::DOCTOR).await?;
    doctor.start_media(PeerOptions::publish()).await?;
    let station = Participant::join(&server, &room, "station-1", "Station", role::STATION).await?;
    station.start_media(PeerOptions::publish()).await?;
    station
        .wait_media_from(&doctor.id(), MediaKind::Audio, 50, Duration::from_secs(10))
        .await?;
    // Video within 20 s, not 10: in about one run in ten on two busy cores the estimator's
    // start probes read low (60-340 kbit/s on loopback), the start rule pauses this client's
    // single 340 kbit/s layer and video resumes about 5 s later (the test took 8.2-8.8 s then,
    // against 3.2; past 10 s in a CI run, session 36). That start pause is the allocator's, and
    // measured in the clean-link benchmark; what this test asserts is that garbage broke nothing.
    station
        .wait_media_from(&doctor.id(), MediaKind::Video, 60, Duration::from_secs(20))
        .await?;
    doctor
        .wait_media_from(&station.id(), MediaKind::Video, 60, Duration::from_secs(20))
        .await?;
    ensure!(server.is_alive());
    Ok(())
}

/// `kham_udp_kernel_drops_total` from `/metrics`: `None` when absent.
async fn kernel_drops_metric(server: &KhamServer, token: &str) -> Result<Option<f64>> {
    let r = server.http("GET", "/metrics", Some(token), None).await?;
    ensure!(r.status == 200, "GET /metrics: {} {}", r.status, r.text());
    let text = r.text();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .context("parsing /metrics")?;
    Ok(scrape
        .samples
        .iter()
        .find(|x| x.metric == "kham_udp_kernel_drops_total")
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        }))
}

/// The media socket's receive buffer is what `media.udp_recv_buffer` asks for (reported in
/// /healthz), and datagrams the kernel drops because it is full are counted in /metrics and
/// /healthz. A 16 KiB buffer holds about a dozen datagrams: bursts of junk overflow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_buffer_is_configurable_and_kernel_drops_are_counted() -> Result<()> {
    const BUFFER: u64 = 16 * 1024;
    let server = KhamServer::start_with(ServerOptions {
        env: vec![("KHAM_MEDIA__UDP_RECV_BUFFER".into(), BUFFER.to_string())],
    })
    .await?;
    let admin = server.admin_token()?;
    let health = server.healthz_json().await?;
    ensure!(
        health["udp_recv_buffer"].as_u64() == Some(BUFFER),
        "/healthz udp_recv_buffer should be the configured {BUFFER}: {health}"
    );
    ensure!(
        health["udp_send_buffer"].as_u64().is_some_and(|b| b > 0),
        "/healthz udp_send_buffer: {health}"
    );
    ensure!(
        server.logs_contain(&format!("recv_buffer={BUFFER}")),
        "the startup log reports the granted buffer:\n{}",
        server.logs_tail(20)
    );
    if !cfg!(target_os = "linux") {
        // The kernel does not tell: the figure is absent, not a made-up zero.
        ensure!(kernel_drops_metric(&server, &admin).await?.is_none());
        ensure!(health.get("udp_kernel_drops").is_none());
        return Ok(());
    }

    // The monitor reads the kernel's counter once a second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let before = loop {
        if let Some(v) = kernel_drops_metric(&server, &admin).await? {
            break v;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "kham_udp_kernel_drops_total missing from /metrics on Linux"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ensure!(
        before.is_finite() && before >= 0.0 && before.fract() == 0.0,
        "kham_udp_kernel_drops_total is a counter: {before}"
    );

    // Bursts as fast as the test can send, until the kernel drops some (the first burst does
    // on any machine seen so far; more are sent if the shard kept up).
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    let junk = vec![0xEEu8; 1200];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut sent = 0u64;
    let after = loop {
        for _ in 0..3000 {
            if sock.send_to(&junk, server.udp_addr()).await.is_ok() {
                sent += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let v = kernel_drops_metric(&server, &admin)
            .await?
            .context("kham_udp_kernel_drops_total disappeared")?;
        if v > before {
            break v;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no kernel drops counted after {sent} datagrams into a {BUFFER}-byte buffer"
        );
    };
    eprintln!("kernel drops {before} -> {after} after {sent} datagrams");
    let health = server.healthz_json().await?;
    ensure!(
        health["udp_kernel_drops"]
            .as_u64()
            .is_some_and(|d| d as f64 >= after),
        "/healthz udp_kernel_drops follows the counter ({after}): {health}"
    );
    let mut server = server;
    ensure!(server.is_alive());
    Ok(())
}
