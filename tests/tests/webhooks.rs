//! Webhooks from the live binary to a local receiver that verifies every signature (with `ring`,
//! not the server's aws-lc-rs), sees retries after a failure, and finds no names in the events.
//! A second, dead endpoint shows that failed deliveries hold up nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use kham_tests::server::ServerOptions;
use kham_tests::{KhamServer, Participant, role, unique};
use serde_json::Value;

const SECRET: &str = "kham-development-secret-not-for-production";

#[derive(Default)]
struct Received {
    /// Every request: (timestamp header, signature header, event id header, body).
    all: Vec<(String, String, String, String)>,
}

async fn hook(
    State(rx): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut r = rx.lock().unwrap_or_else(|p| p.into_inner());
    r.all.push((
        h("x-kham-timestamp"),
        h("x-kham-signature"),
        h("x-kham-event-id"),
        String::from_utf8_lossy(&body).into_owned(),
    ));
    // The very first delivery fails: the server must retry it.
    if r.all.len() == 1 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    }
}

fn verify(ts: &str, sig: &str, body: &str) -> Result<()> {
    let hex = sig
        .strip_prefix("sha256=")
        .context("signature starts with sha256=")?;
    let tag: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .context("hex signature")?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    ring::hmac::verify(&key, format!("{ts}.{body}").as_bytes(), &tag)
        .map_err(|_| anyhow::anyhow!("bad signature {sig} for {ts}.{body}"))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let ts: u64 = ts.parse().context("timestamp")?;
    ensure!(now.abs_diff(ts) < 60, "timestamp {ts} is fresh (now {now})");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_retried_and_nameless() -> Result<()> {
    let received = Arc::new(Mutex::new(Received::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    // A port nobody listens on.
    let dead = kham_tests::server::free_tcp_port()?;
    let server = KhamServer::start_with(ServerOptions {
        env: vec![
            (
                "KHAM_WEBHOOKS__URLS".into(),
                format!(r#"["http://{addr}/hook","http://127.0.0.1:{dead}/gone"]"#),
            ),
            ("KHAM_WEBHOOKS__FIRST_RETRY".into(), "100ms".into()),
            ("KHAM_WEBHOOKS__MAX_ATTEMPTS".into(), "3".into()),
            ("KHAM_WEBHOOKS__TIMEOUT".into(), "2s".into()),
        ],
    })
    .await?;

    let room = unique("hooks");
    let mut doctor = Participant::join(
        &server,
        &room,
        "doctor-17",
        "BS. Phạm Quốc Huy",
        role::DOCTOR,
    )
    .await?;
    let mut patient =
        Participant::join(&server, &room, "patient-42", "Đỗ Thị Hoa", role::PATIENT).await?;
    let pid = patient.id();
    doctor.admit(&pid).await?;
    patient.signal.expect("admitted").await?;
    patient.leave().await?;
    patient.signal.expect_closed(Duration::from_secs(5)).await?;
    doctor.end_consult().await?;
    doctor.signal.expect("ended").await?;

    let want = [
        "room_started",
        "participant_joined",
        "participant_joined",
        "participant_admitted",
        "participant_left",
        "participant_left",
        "room_finished",
    ];
    // Delivered (2xx) events, deduplicated by id, in arrival order.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let (events, all) = loop {
        let all = received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .all
            .clone();
        let mut events: Vec<(String, Value)> = Vec::new();
        for (i, (_, _, id, body)) in all.iter().enumerate() {
            // The first request was refused; its id must come again.
            if i == 0 || events.iter().any(|(e, _)| e == id) {
                continue;
            }
            events.push((id.clone(), serde_json::from_str(body)?));
        }
        if events.len() >= want.len() {
            break (events, all);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "only {} of {} events within 15 s: {all:#?}",
                events.len(),
                want.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    for (ts, sig, id, body) in &all {
        verify(ts, sig, body).with_context(|| format!("event {id}"))?;
        let v: Value = serde_json::from_str(body)?;
        ensure!(v["id"] == id.as_str(), "body id = header id: {body}");
    }
    ensure!(
        all.iter().filter(|(_, _, id, _)| *id == all[0].2).count() >= 2,
        "the refused first event was retried: {all:#?}"
    );
    let kinds: Vec<&str> = events
        .iter()
        .map(|(_, v)| v["event"].as_str().unwrap_or(""))
        .collect();
    ensure!(kinds == want, "events in order: {kinds:?}");
    for (_, v) in &events {
        ensure!(v["room"] == room.as_str(), "{v}");
        ensure!(v["at_ms"].as_u64().unwrap_or(0) > 1_600_000_000_000, "{v}");
        let body = v.to_string();
        ensure!(
            !body.contains("Huy")
                && !body.contains("Hoa")
                && v["participant"].get("name").is_none(),
            "no names by default: {body}"
        );
    }
    let ev = |i: usize| &events[i].1;
    ensure!(ev(1)["participant"]["identity"] == "doctor-17" && ev(1)["waiting"] == false);
    ensure!(ev(1)["participant"]["role"] == "doctor");
    ensure!(ev(2)["participant"]["identity"] == "patient-42" && ev(2)["waiting"] == true);
    ensure!(ev(3)["participant"]["id"] == pid.as_str());
    ensure!(ev(4)["reason"] == "left" && ev(4)["participant"]["identity"] == "patient-42");
    ensure!(ev(5)["reason"] == "ended" && ev(5)["participant"]["identity"] == "doctor-17");
    ensure!(ev(6)["ended"] == true, "{}", ev(6));

    // The dead endpoint failed every time, and nothing waited for it.
    let admin = server.admin_token()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = server.http("GET", "/metrics", Some(&admin), None).await?;
        let text = r.text();
        if text.contains(r#"kham_webhook_deliveries_total{result="failed"} 7"#) {
            ensure!(
                text.contains(r#"kham_webhook_deliveries_total{result="delivered"} 7"#),
                "delivered count:\n{text}"
            );
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "dead endpoint's failures not counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
