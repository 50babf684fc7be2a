//! Revoked tokens stay revoked after their room closes and across a restart (issue 11,
//! finding 1): a denied patient, a station removed by the doctor, a station removed by an
//! operator. The room's real lifetime is shortened by configuration
//! (`rooms.departure_timeout = 1s`) and its closing is checked through the admin API.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use kham_tests::server::ServerOptions;
use kham_tests::signal::CloseInfo;
use kham_tests::{KhamServer, SignalClient, msg_type, role, unique};
use serde_json::{Value, json};

fn short_rooms(extra: &[(&str, String)]) -> ServerOptions {
    let mut env = vec![("KHAM_ROOMS__DEPARTURE_TIMEOUT".to_owned(), "1s".to_owned())];
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    ServerOptions { env }
}

fn my_id(welcome: &Value) -> String {
    welcome["me"]["id"].as_str().unwrap_or_default().to_owned()
}

async fn connect(server: &KhamServer, room: &str, token: &str) -> Result<(SignalClient, String)> {
    let (c, w) = SignalClient::connect_welcomed(&server.ws_url(room, token)).await?;
    Ok((c, my_id(&w)))
}

/// The upgrade with `token` is refused with this status and error code.
async fn expect_refused(
    server: &KhamServer,
    room: &str,
    token: &str,
    status: u16,
    code: &str,
) -> Result<()> {
    let resp = server
        .ws_upgrade_attempt(&KhamServer::ws_path(room, token))
        .await?;
    ensure!(
        resp.status == status,
        "expected HTTP {status} {code}, got {} {}",
        resp.status,
        resp.text()
    );
    let body = resp.json()?;
    ensure!(body["error"] == code, "expected {code}, body {body}");
    Ok(())
}

/// Waits until the admin API no longer knows the room (closed after the departure timeout).
async fn until_room_gone(server: &KhamServer, admin: &str, room: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = server
            .http(
                "GET",
                &format!("/api/admin/rooms/{room}"),
                Some(admin),
                None,
            )
            .await?;
        match r.status {
            404 => return Ok(()),
            200 if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => bail!(
                "room {room} still there after 30 s: {} {}",
                r.status,
                r.text()
            ),
        }
    }
}

/// A doctor denies a waiting patient and removes a station, then leaves; the room closes.
/// Returns the denied and the removed tokens.
async fn deny_and_remove(server: &KhamServer, room: &str) -> Result<(String, String)> {
    let (mut doctor, _) = connect(
        server,
        room,
        &server.token(room, "dr-1", "Doctor", role::DOCTOR)?,
    )
    .await?;
    let patient_token = server.token(room, "pat-1", "Patient", role::PATIENT)?;
    let (mut patient, pid) = connect(server, room, &patient_token).await?;
    let station_token = server.token(room, "st-1", "Station", role::STATION)?;
    let (mut station, sid) = connect(server, room, &station_token).await?;

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
    doctor.send(json!({"type": "deny", "id": pid})).await?;
    patient.expect("denied").await?;
    let close = patient.expect_closed(Duration::from_secs(10)).await?;
    ensure!(
        matches!(close, Some(CloseInfo { code: 4001, .. })),
        "{close:?}"
    );
    doctor.send(json!({"type": "remove", "id": sid})).await?;
    station.expect("removed").await?;
    let close = station.expect_closed(Duration::from_secs(10)).await?;
    ensure!(
        matches!(close, Some(CloseInfo { code: 4002, .. })),
        "{close:?}"
    );
    // Revoked while the room lives (as before).
    expect_refused(server, room, &patient_token, 401, "revoked_token").await?;
    expect_refused(server, room, &station_token, 401, "revoked_token").await?;
    doctor.send(json!({"type": "leave"})).await?;
    doctor.expect_closed(Duration::from_secs(10)).await?;
    Ok((patient_token, station_token))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_and_removed_tokens_stay_revoked_after_the_room_closes() -> Result<()> {
    let server = KhamServer::start_with(short_rooms(&[])).await?;
    let admin = server.admin_token()?;
    let room = unique("revoke-close");
    let (denied, removed) = deny_and_remove(&server, &room).await?;
    until_room_gone(&server, &admin, &room).await?;

    expect_refused(&server, &room, &denied, 401, "revoked_token")
        .await
        .context("the denied patient's token after the room closed")?;
    expect_refused(&server, &room, &removed, 401, "revoked_token")
        .await
        .context("the removed station's token after the room closed")?;
    // The refusal is about those tokens, not the room: a fresh token of the same room, even
    // of the same person, gets in (and the patient's waits in the lobby again).
    let fresh = server.token(&room, "st-1", "Station", role::STATION)?;
    let (_c, w) = SignalClient::connect_welcomed(&server.ws_url(&room, &fresh)).await?;
    ensure!(w["status"] == "admitted", "{w}");
    let fresh = server.token(&room, "pat-1", "Patient", role::PATIENT)?;
    let (_c, w) = SignalClient::connect_welcomed(&server.ws_url(&room, &fresh)).await?;
    ensure!(w["status"] == "waiting", "{w}");
    // Refused joins are counted with the other token refusals.
    let health = server.healthz_json().await?;
    ensure!(
        health["signal_errors"]["revoked_token"].as_u64() >= Some(4),
        "{health}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_removal_outlives_the_room() -> Result<()> {
    let server = KhamServer::start_with(short_rooms(&[])).await?;
    let admin = server.admin_token()?;
    let room = unique("revoke-op");
    let (mut doctor, _) = connect(
        &server,
        &room,
        &server.token(&room, "dr-1", "Doctor", role::DOCTOR)?,
    )
    .await?;
    let station_token = server.token(&room, "st-1", "Station", role::STATION)?;
    let (mut station, sid) = connect(&server, &room, &station_token).await?;
    let r = server
        .http(
            "POST",
            &format!("/api/admin/rooms/{room}/participants/{sid}/remove"),
            Some(&admin),
            None,
        )
        .await?;
    ensure!(r.status == 200, "remove: {} {}", r.status, r.text());
    station.expect("removed").await?;
    station.expect_closed(Duration::from_secs(10)).await?;
    doctor.send(json!({"type": "leave"})).await?;
    doctor.expect_closed(Duration::from_secs(10)).await?;
    until_room_gone(&server, &admin, &room).await?;

    expect_refused(&server, &room, &station_token, 401, "revoked_token").await?;
    Ok(())
}

/// Removes the file on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_survive_a_restart_with_the_file() -> Result<()> {
    let file = TempFile(std::env::temp_dir().join(format!("{}.jsonl", unique("kham-revoked"))));
    let opts = short_rooms(&[("KHAM_AUTH__REVOCATIONS_FILE", file.0.display().to_string())]);
    let room = unique("revoke-restart");
    let (denied, removed) = {
        let server = KhamServer::start_with(opts.clone()).await?;
        let (denied, removed) = deny_and_remove(&server, &room).await?;
        // The process is killed here (SIGKILL): nothing is written at exit.
        (denied, removed)
    };
    let text = std::fs::read_to_string(&file.0).context("the revocations file")?;
    ensure!(text.lines().count() == 2, "one line per revocation: {text}");

    let server = KhamServer::start_with(opts).await?;
    ensure!(
        server.logs_contain("revoked tokens loaded"),
        "{}",
        server.logs_tail(40)
    );
    expect_refused(&server, &room, &denied, 401, "revoked_token")
        .await
        .context("the denied token after a restart")?;
    expect_refused(&server, &room, &removed, 401, "revoked_token")
        .await
        .context("the removed token after a restart")?;
    let fresh = server.token(&room, "st-2", "Station 2", role::STATION)?;
    let mut c = SignalClient::connect(&server.ws_url(&room, &fresh)).await?;
    c.expect("welcome").await?;
    Ok(())
}
