//! The operator API against the live binary with real WebRTC participants (webrtc-rs):
//! authentication, every endpoint's content, the actions, the event stream, and the drain.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kham_tests::http::HttpResponse;
use kham_tests::{KhamServer, MediaKind, Participant, PeerOptions, role, unique};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MEDIA_WAIT: Duration = Duration::from_secs(10);

fn json_error(r: &HttpResponse) -> String {
    r.json()
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Polls `GET path` until `pred` holds on its JSON (figures refresh once per second).
async fn poll_json(
    server: &KhamServer,
    path: &str,
    token: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = server.http("GET", path, Some(token), None).await?;
        ensure!(r.status == 200, "GET {path}: {} {}", r.status, r.text());
        let v = r.json()?;
        if pred(&v) {
            return Ok(v);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "GET {path}: {what} not seen within 10 s; last: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The first server-sent event of `/api/admin/events` (read by hand: the stream never ends).
async fn first_event(server: &KhamServer, query: &str) -> Result<String> {
    let mut s = tokio::net::TcpStream::connect(server.http_addr).await?;
    let req = format!(
        "GET /api/admin/events?{query} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    let read = async {
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if text.contains("\n\n") && text.contains("data:") {
                break;
            }
        }
        Ok::<_, anyhow::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .context("no server-sent event within 5 s")??;
    Ok(String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_against_live_server() -> Result<()> {
    let server = KhamServer::start().await?;
    let admin = server.admin_token()?;
    let room = unique("admin");

    // --- authentication: every admin route refuses a missing, wrong-key or non-admin token ---
    let doctor_token = server.token(&room, "dr-an", "BS. Nguyễn Văn An", role::DOCTOR)?;
    let wrong_secret =
        server.admin_token_signed_with("kham-dev", "another-secret-another-secret-another")?;
    let wrong_key = server
        .admin_token_signed_with("someone-else", "kham-development-secret-not-for-production")?;
    let routes = [
        ("GET", "/api/admin/node".to_owned()),
        ("GET", "/api/admin/rooms".to_owned()),
        ("GET", format!("/api/admin/rooms/{room}")),
        ("POST", format!("/api/admin/rooms/{room}/close")),
        (
            "POST",
            format!("/api/admin/rooms/{room}/participants/p-0/remove"),
        ),
        ("GET", "/api/admin/events".to_owned()),
        ("GET", "/metrics".to_owned()),
    ];
    for (method, path) in &routes {
        let r = server.http(method, path, None, None).await?;
        ensure!(
            r.status == 401 && json_error(&r) == "missing_token",
            "{method} {path} without a token: {} {}",
            r.status,
            r.text()
        );
        for (what, t) in [("wrong secret", &wrong_secret), ("wrong key", &wrong_key)] {
            let r = server.http(method, path, Some(t), None).await?;
            ensure!(
                r.status == 401 && json_error(&r) == "invalid_token",
                "{method} {path} with a {what}: {} {}",
                r.status,
                r.text()
            );
        }
        let r = server.http(method, path, Some(&doctor_token), None).await?;
        ensure!(
            r.status == 403 && json_error(&r) == "forbidden",
            "{method} {path} with a doctor token: {} {}",
            r.status,
            r.text()
        );
    }
    // The query token is for the event stream only.
    let r = server
        .http("GET", &format!("/api/admin/node?token={admin}"), None, None)
        .await?;
    ensure!(r.status == 401, "query token on /node: {}", r.status);
    // The API description is public and names every route.
    let r = server.http("GET", "/api/openapi.json", None, None).await?;
    ensure!(r.status == 200, "openapi: {}", r.status);
    let doc = r.json()?;
    for (_, path) in &routes {
        let templ = path
            .replace(&room, "{room}")
            .replace("p-0", "{participant}");
        ensure!(
            doc["paths"].get(&templ).is_some(),
            "{templ} missing from openapi.json"
        );
    }

    // --- a consult: doctor and station with media, a patient waiting in the lobby ---
    let doctor = Participant::connect(&server, &room, &doctor_token, "doctor").await?;
    doctor.start_media(PeerOptions::publish()).await?;
    let station = Participant::join(
        &server,
        &room,
        "station-7",
        "Trạm Y tế xã Hòa",
        role::STATION,
    )
    .await?;
    station
        .start_media(PeerOptions::publish_simulcast())
        .await?;
    let mut patient =
        Participant::join(&server, &room, "pat-42", "Trần Thị Bình", role::PATIENT).await?;
    ensure!(patient.status() == "waiting");
    station
        .wait_media_from(&doctor.id(), MediaKind::Video, 60, MEDIA_WAIT)
        .await?;
    doctor
        .wait_media_from(&station.id(), MediaKind::Video, 60, MEDIA_WAIT)
        .await?;

    // Rooms table: participants by role, lobby, load.
    let rooms = poll_json(
        &server,
        "/api/admin/rooms",
        &admin,
        "the room with its load",
        |v| {
            v["rooms"].as_array().is_some_and(|rs| {
                rs.iter().any(|r| {
                    r["room"] == room.as_str()
                        && r["kbps_in"].as_f64().unwrap_or(0.0) > 50.0
                        && r["kbps_out"].as_f64().unwrap_or(0.0) > 50.0
                })
            })
        },
    )
    .await?;
    let row = rooms["rooms"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["room"] == room.as_str()))
        .context("room row")?;
    ensure!(
        row["participants"]["doctor"] == 1
            && row["participants"]["station"] == 1
            && row["participants"]["patient"] == 0
            && row["participants"]["observer"] == 0
            && row["lobby"] == 1,
        "room row: {row}"
    );
    ensure!(row["age_s"].is_u64(), "age: {row}");
    ensure!(
        row.get("quality").is_some() && !row.to_string().contains("Nguy"),
        "the rooms table has a quality field and no names: {row}"
    );

    // One room in detail: each participant's figures, names for admins, history.
    let path = format!("/api/admin/rooms/{room}");
    let detail = poll_json(&server, &path, &admin, "media figures", |v| {
        v["participants"].as_array().is_some_and(|ps| {
            ps.iter().filter(|p| p["status"] == "admitted").all(|p| {
                p["connected"] == true
                    && p["pps_in"].as_f64().unwrap_or(0.0) > 10.0
                    && p["packets_out"].as_u64().unwrap_or(0) > 50
                    && p["layers"].as_array().is_some_and(|l| !l.is_empty())
                    && p["quality"].is_string()
            })
        }) && v["history"].as_object().is_some_and(|h| h.len() == 2)
    })
    .await?;
    eprintln!("room detail: {detail:#}");
    let ps = detail["participants"].as_array().context("participants")?;
    ensure!(ps.len() == 3, "three people: {detail}");
    let by_id = |id: &str| {
        ps.iter()
            .find(|p| p["id"] == id)
            .cloned()
            .unwrap_or_default()
    };
    let (d, s, p) = (
        by_id(&doctor.id()),
        by_id(&station.id()),
        by_id(&patient.id()),
    );
    ensure!(d["name"] == "BS. Nguyễn Văn An" && d["role"] == "doctor" && d["status"] == "admitted");
    ensure!(s["name"] == "Trạm Y tế xã Hòa" && s["role"] == "station");
    ensure!(p["name"] == "Trần Thị Bình" && p["status"] == "waiting" && p["connected"] == false);
    for x in [&d, &s] {
        ensure!(
            x["client"] == "native",
            "webrtc-rs sends no User-Agent: {x}"
        );
        ensure!(x["audio_only"] == false, "{x}");
        // Subscribers get str0m's egress estimate (bandwidth adaptation is on by default).
        ensure!(
            x["estimate_kbps"].as_f64().is_some_and(|e| e > 0.0),
            "the egress estimate is reported: {x}"
        );
        ensure!(x["audio_tracks"] == 1 && x["video_tracks"] == 1, "{x}");
        ensure!(
            x["kbps_in"].as_f64().unwrap_or(0.0) > 20.0 && x["bytes_in"].as_u64().unwrap_or(0) > 0,
            "{x}"
        );
        ensure!(
            ["excellent", "good", "poor", "lost"].contains(&x["quality"].as_str().unwrap_or("")),
            "{x}"
        );
        for k in ["rtt_ms", "loss_in_percent", "loss_out_percent"] {
            ensure!(x[k].is_null() || x[k].is_number(), "{k}: {x}");
        }
    }
    // Each receives the other's video on some simulcast layer.
    ensure!(
        s["layers"][0]["publisher"] == doctor.id().as_str() && s["layers"][0]["layer"].is_u64(),
        "station's layers: {s}"
    );
    ensure!(
        d["layers"][0]["publisher"] == station.id().as_str(),
        "doctor's layers: {d}"
    );
    let hist = detail["history"][doctor.id()]
        .as_array()
        .context("history")?;
    ensure!(
        !hist.is_empty() && hist[0].as_array().is_some_and(|s| s.len() == 4),
        "history samples [t, in, out, loss]: {hist:?}"
    );

    // Node load.
    let node = poll_json(&server, "/api/admin/node", &admin, "node load", |v| {
        v["participants"] == 2 && v["pps_in"].as_f64().unwrap_or(0.0) > 10.0
    })
    .await?;
    ensure!(
        node["rooms"] == 1 && node["lobby"] == 1 && node["tracks"] == 4,
        "node: {node}"
    );
    ensure!(
        node["cpu_percent"].is_number() && node["cores"].as_u64().unwrap_or(0) >= 1,
        "{node}"
    );
    for k in ["pps_out", "kbps_in", "kbps_out"] {
        ensure!(node[k].as_f64().unwrap_or(0.0) > 0.0, "{k}: {node}");
    }
    ensure!(
        node["udp_dropped"].is_u64() && node["draining"] == false,
        "{node}"
    );

    // The event stream (token in the query, as EventSource sends it).
    let ev = first_event(&server, &format!("token={admin}&room={room}")).await?;
    ensure!(ev.starts_with("HTTP/1.1 200"), "events: {ev}");
    ensure!(
        ev.contains("event: update") && ev.contains(&room) && ev.contains("Trần Thị Bình"),
        "first event has the rooms and the requested room's people: {ev}"
    );
    let ev = first_event(&server, "token=nope").await?;
    ensure!(ev.starts_with("HTTP/1.1 401"), "bad token on events: {ev}");

    // --- bad input gets typed errors ---
    let r = server
        .http("GET", "/api/admin/rooms/no-such-room", Some(&admin), None)
        .await?;
    ensure!(
        r.status == 404 && json_error(&r) == "not_found",
        "{}",
        r.text()
    );
    let close = format!("/api/admin/rooms/{room}/close");
    let r = server
        .http("POST", &close, Some(&admin), Some(b"{not json"))
        .await?;
    ensure!(
        r.status == 400 && json_error(&r) == "bad_json",
        "{}",
        r.text()
    );
    let r = server
        .http("POST", &close, Some(&admin), Some(br#"{"reason":""}"#))
        .await?;
    ensure!(
        r.status == 400 && json_error(&r) == "bad_request",
        "{}",
        r.text()
    );
    let r = server
        .http(
            "POST",
            &format!("/api/admin/rooms/{room}/participants/p-nobody/remove"),
            Some(&admin),
            None,
        )
        .await?;
    ensure!(
        r.status == 404 && json_error(&r) == "not_found",
        "{}",
        r.text()
    );
    ensure!(
        server.healthz().await?.status == 200,
        "no panic behind bad input"
    );

    // --- actions: remove the waiting patient, then close the room ---
    let r = server
        .http(
            "POST",
            &format!(
                "/api/admin/rooms/{room}/participants/{}/remove",
                patient.id()
            ),
            Some(&admin),
            Some(br#"{"reason":"wrong_appointment"}"#),
        )
        .await?;
    ensure!(
        r.status == 200 && r.json()?["removed"] == true,
        "{}",
        r.text()
    );
    let removed = patient.signal.expect("removed").await?;
    ensure!(removed["reason"] == "wrong_appointment", "{removed}");
    let c = patient.signal.expect_closed(Duration::from_secs(5)).await?;
    ensure!(
        c.is_some_and(|c| c.code == 4002),
        "patient closed with 4002"
    );
    poll_json(&server, "/api/admin/rooms", &admin, "empty lobby", |v| {
        v["rooms"][0]["lobby"] == 0
    })
    .await?;

    let r = server.http("POST", &close, Some(&admin), None).await?;
    ensure!(
        r.status == 200 && r.json()?["closed"] == true,
        "{}",
        r.text()
    );
    let mut doctor = doctor;
    let ended = doctor.signal.expect("ended").await?;
    ensure!(ended["reason"] == "closed_by_operator", "{ended}");
    poll_json(&server, "/api/admin/rooms", &admin, "the room gone", |v| {
        v["rooms"].as_array().is_some_and(|r| r.is_empty())
    })
    .await?;
    let r = server.http("POST", &close, Some(&admin), None).await?;
    ensure!(r.status == 404, "closing a closed room: {}", r.status);

    // Patient privacy: display names reach no log line above debug.
    let logs = server.logs_tail(5000);
    for line in logs
        .lines()
        .filter(|l| !l.contains("DEBUG") && !l.contains("TRACE"))
    {
        for name in ["Nguyễn Văn An", "Trạm Y tế", "Trần Thị Bình"] {
            ensure!(!line.contains(name), "a name in a log line: {line}");
        }
    }
    drop(station);
    Ok(())
}

/// SIGTERM drains: `/readyz` turns 503, new joins are refused, calls in progress go on, and the
/// server exits once they end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_exits_when_calls_end() -> Result<()> {
    let mut server = KhamServer::start().await?;
    let room = unique("drain");
    let r = server.http("GET", "/readyz", None, None).await?;
    ensure!(r.status == 200, "ready before: {}", r.status);
    let mut doctor = Participant::join(&server, &room, "dr-d", "Dr D", role::DOCTOR).await?;

    server.terminate()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = server.http("GET", "/readyz", None, None).await?;
        if r.status == 503 {
            ensure!(r.json()?["ready"] == false, "{}", r.text());
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "readyz stayed {}",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = server.token(&room, "st-d", "Station D", role::STATION)?;
    let r = server
        .ws_upgrade_attempt(&KhamServer::ws_path(&room, &token))
        .await?;
    ensure!(
        r.status == 503 && json_error(&r) == "draining",
        "join while draining: {} {}",
        r.status,
        r.text()
    );
    ensure!(server.healthz().await?.status == 200, "still alive");
    // The call in progress still works.
    doctor
        .send(serde_json::json!({"type": "ping", "id": 7}))
        .await?;
    doctor.signal.expect("pong").await?;
    ensure!(server.is_alive(), "the server waits for the call");

    doctor.leave().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.is_alive() {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "server still running 10 s after the last call ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(server.logs_contain("draining"), "drain logged");
    Ok(())
}
