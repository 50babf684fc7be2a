//! Room membership under reconnects and churn (issue 11, findings 7, 8 and 11): clean leaves
//! reported as `left` even when they race room messages, `welcome` first for a same-identity
//! rejoin, an admitted patient reconnecting straight into the call, and the node's room cap.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kham_tests::server::ServerOptions;
use kham_tests::signal::CloseInfo;
use kham_tests::{KhamServer, SignalClient, SignalEvent, msg_type, role, unique};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn my_id(welcome: &Value) -> String {
    welcome["me"]["id"].as_str().unwrap_or_default().to_owned()
}

async fn connect(server: &KhamServer, room: &str, token: &str) -> Result<(SignalClient, Value)> {
    SignalClient::connect_welcomed(&server.ws_url(room, token)).await
}

/// A close frame with code 1000, as a browser's `ws.close(1000)` sends.
fn close_1000() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// The very first message on a fresh connection (nothing skipped).
async fn first_message(c: &mut SignalClient) -> Result<Value> {
    c.recv(Duration::from_secs(10))
        .await
        .context("the first message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_identity_rejoin_gets_welcome_first() -> Result<()> {
    let server = KhamServer::start().await?;
    let room = unique("rejoin");
    let (mut doctor, _) = connect(
        &server,
        &room,
        &server.token(&room, "dr-1", "Doctor", role::DOCTOR)?,
    )
    .await?;
    let token = server.token(&room, "st-1", "Station", role::STATION)?;
    let (mut old, ow) = connect(&server, &room, &token).await?;
    let old_id = my_id(&ow);

    // The same identity again (a second tab, a reconnect before the old socket timed out).
    let mut new = SignalClient::connect(&server.ws_url(&room, &token)).await?;
    let first = first_message(&mut new).await?;
    ensure!(
        msg_type(&first) == "welcome",
        "first message of the rejoin: {first}"
    );
    ensure!(first["status"] == "admitted", "{first}");
    let listed: Vec<&str> = first["participants"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["id"].as_str()).collect())
        .unwrap_or_default();
    ensure!(
        !listed.contains(&old_id.as_str()),
        "the old session is not listed: {first}"
    );
    // The old session is closed as replaced; the doctor sees it leave as such.
    let close = old.expect_closed(Duration::from_secs(10)).await?;
    ensure!(
        matches!(close, Some(CloseInfo { code: 4004, .. })),
        "{close:?}"
    );
    let o = old_id.clone();
    let left = doctor
        .expect_where(
            "the old session leaving",
            Duration::from_secs(10),
            move |v| msg_type(v) == "participant_left" && v["id"] == o.as_str(),
        )
        .await?;
    ensure!(left["reason"] == "replaced", "{left}");
    // And the new session never hears of its old one.
    new.ping_pong(1).await?;
    for ev in new.drain() {
        if let SignalEvent::Msg(v) = &ev {
            ensure!(
                !(msg_type(v) == "participant_left" && v["id"] == old_id.as_str()),
                "the rejoin got news of its own old session: {v}"
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admitted_patient_reconnects_straight_into_the_call() -> Result<()> {
    let server = KhamServer::start().await?;
    let room = unique("readmit");
    let (mut doctor, _) = connect(
        &server,
        &room,
        &server.token(&room, "dr-1", "Doctor", role::DOCTOR)?,
    )
    .await?;
    let token = server.token(&room, "pat-1", "Patient", role::PATIENT)?;
    let (mut p1, w) = connect(&server, &room, &token).await?;
    ensure!(w["status"] == "waiting", "{w}");
    let pid = my_id(&w);
    let p = pid.clone();
    doctor
        .expect_where(
            "the patient in the lobby",
            Duration::from_secs(10),
            move |v| {
                msg_type(v) == "lobby"
                    && v["entries"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|x| x["id"] == p.as_str()))
            },
        )
        .await?;
    doctor.send(json!({"type": "admit", "id": pid})).await?;
    p1.expect("admitted").await?;

    // A second tab while the first is still connected: in the call at once.
    let mut p2 = SignalClient::connect(&server.ws_url(&room, &token)).await?;
    let w2 = first_message(&mut p2).await?;
    ensure!(
        msg_type(&w2) == "welcome" && w2["status"] == "admitted",
        "second tab: {w2}"
    );
    p1.expect_closed(Duration::from_secs(10)).await?;

    // The link drops (the socket closes) and the patient comes back while the room lives.
    let id2 = my_id(&w2);
    p2.sender().send_message(close_1000()).await?;
    p2.expect_closed(Duration::from_secs(10)).await?;
    let i = id2.clone();
    doctor
        .expect_where("the patient leaving", Duration::from_secs(10), move |v| {
            msg_type(v) == "participant_left" && v["id"] == i.as_str()
        })
        .await?;
    let (_p3, w3) = connect(&server, &room, &token).await?;
    ensure!(w3["status"] == "admitted", "after a reconnect: {w3}");
    let id3 = my_id(&w3);
    let joined = doctor
        .expect_where(
            "the patient back in the call",
            Duration::from_secs(10),
            move |v| msg_type(v) == "participant_joined" && v["participant"]["id"] == id3.as_str(),
        )
        .await?;
    ensure!(joined["participant"]["role"] == "patient", "{joined}");
    Ok(())
}

/// Many clean closes while the room keeps sending (others joining, leaving, muting): each is
/// reported `left`, never `connection_lost`, and nothing claims a full queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_closes_racing_room_messages_are_reported_left() -> Result<()> {
    // With the doctor and two others, the call is full (8).
    const CHURNERS: usize = 5;
    const CYCLES: usize = 14;
    let server = KhamServer::start().await?;
    let room = unique("churn");
    let (mut doctor, _) = connect(
        &server,
        &room,
        &server.token(&room, "dr-1", "Doctor", role::DOCTOR)?,
    )
    .await?;
    // Two participants toggling their microphone keep updates flowing to everyone, at a pace
    // a person could click (so no flood limit is involved).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut noise = Vec::new();
    for n in 0..2 {
        let (c, _) = connect(
            &server,
            &room,
            &server.token(&room, &format!("noise-{n}"), "Noise", role::STATION)?,
        )
        .await?;
        let stop = stop.clone();
        noise.push(tokio::spawn(async move {
            let mut muted = false;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                muted = !muted;
                if c.send(json!({"type": "mute", "kind": "audio", "muted": muted}))
                    .await
                    .is_err()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            c
        }));
    }
    // Tokens first: minting runs the CLI, which would pace the churn.
    let mut tokens = Vec::new();
    for t in 0..CHURNERS {
        let mut mine = Vec::new();
        for c in 0..CYCLES {
            mine.push(server.token(&room, &format!("churn-{t}-{c}"), "Churn", role::STATION)?);
        }
        tokens.push(mine);
    }
    let url = |t: &str| server.ws_url(&room, t);
    let mut tasks = Vec::new();
    for mine in tokens {
        let urls: Vec<String> = mine.iter().map(|t| url(t)).collect();
        tasks.push(tokio::spawn(async move {
            let (mut ids, mut unclean) = (Vec::new(), Vec::new());
            for (i, u) in urls.iter().enumerate() {
                let mut c = SignalClient::connect(u).await?;
                let w = c.expect("welcome").await?;
                ids.push(my_id(&w));
                tokio::time::sleep(Duration::from_millis((i as u64 * 7) % 30)).await;
                // As the SDK's leave(): close code 1000.
                c.sender().send_message(close_1000()).await?;
                let close = c.expect_closed(Duration::from_secs(10)).await?;
                if !matches!(close, Some(CloseInfo { code: 1000, .. })) {
                    unclean.push(close);
                }
            }
            Ok::<_, anyhow::Error>((ids, unclean))
        }));
    }
    let (mut ids, mut unclean) = (Vec::new(), Vec::new());
    for t in tasks {
        let (i, u) = t.await??;
        ids.extend(i);
        unclean.extend(u);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for n in noise {
        n.await?;
    }

    // Every churner's departure as the doctor heard it.
    let mut reasons: HashMap<String, String> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while ids.iter().any(|id| !reasons.contains_key(id)) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let v = doctor
            .expect_where("participant_left", left, |v| {
                msg_type(v) == "participant_left"
            })
            .await
            .with_context(|| format!("{} of {} departures heard", reasons.len(), ids.len()))?;
        reasons.insert(
            v["id"].as_str().unwrap_or_default().to_owned(),
            v["reason"].as_str().unwrap_or_default().to_owned(),
        );
    }
    let wrong: Vec<_> = ids
        .iter()
        .filter(|id| reasons.get(*id).map(String::as_str) != Some("left"))
        .map(|id| (id, reasons.get(id)))
        .collect();
    ensure!(
        wrong.is_empty(),
        "{} of {} clean closes reported otherwise: {wrong:?}",
        wrong.len(),
        ids.len()
    );
    ensure!(
        !server.logs_contain("signaling queue full"),
        "a false slow-reader warning"
    );
    // The server completes the closing handshake: each client sees its own 1000 echoed.
    ensure!(
        unclean.is_empty(),
        "{} of {} closes answered otherwise: {unclean:?}",
        unclean.len(),
        ids.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_past_the_cap_are_refused_with_503() -> Result<()> {
    let server = KhamServer::start_with(ServerOptions {
        env: vec![("KHAM_ROOMS__MAX_ROOMS".into(), "2".into())],
    })
    .await?;
    let api = server.room_create_token()?;
    let (a, b, c, d) = (
        unique("cap-a"),
        unique("cap-b"),
        unique("cap-c"),
        unique("cap-d"),
    );
    let create = |room: String| {
        let body = json!({ "room": room }).to_string();
        let api = api.clone();
        let server = &server;
        async move {
            server
                .http("POST", "/api/rooms", Some(&api), Some(body.as_bytes()))
                .await
        }
    };
    for room in [&a, &b] {
        let r = create(room.clone()).await?;
        ensure!(r.status == 201, "create {room}: {} {}", r.status, r.text());
    }
    let r = create(c.clone()).await?;
    ensure!(r.status == 503, "third room: {} {}", r.status, r.text());
    ensure!(r.json()?["error"] == "too_many_rooms", "{}", r.text());
    // A first join would create a room too: refused the same way, before the upgrade.
    let t = server.token(&d, "st-1", "Station", role::STATION)?;
    let r = server
        .ws_upgrade_attempt(&KhamServer::ws_path(&d, &t))
        .await?;
    ensure!(
        r.status == 503,
        "join of a new room: {} {}",
        r.status,
        r.text()
    );
    ensure!(r.json()?["error"] == "too_many_rooms", "{}", r.text());
    // Open rooms work as before.
    let r = create(a.clone()).await?;
    ensure!(r.status == 200, "existing room: {} {}", r.status, r.text());
    let (_c, w) = connect(
        &server,
        &a,
        &server.token(&a, "st-1", "Station", role::STATION)?,
    )
    .await?;
    ensure!(w["status"] == "admitted", "{w}");
    let health = server.healthz_json().await?;
    ensure!(
        health["signal_errors"]["too_many_rooms"] == 2,
        "refusals counted: {health}"
    );
    Ok(())
}
