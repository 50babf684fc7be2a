//! Signaling error handling, token checks at the upgrade, and lobby/consult endings.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use kham_tests::server::{ServerOptions, TokenArgs};
use kham_tests::signal::CloseInfo;
use kham_tests::{
    KhamServer, Participant, Peer, PeerOptions, SignalClient, msg_type, role, unique,
};
use serde_json::{Value, json};

/// Connects a raw signaling client and consumes `welcome`.
async fn raw_join(
    server: &KhamServer,
    room: &str,
    identity: &str,
    r: &str,
) -> Result<(SignalClient, Value)> {
    let token = server.token(room, identity, identity, r)?;
    let mut c = SignalClient::connect(&server.ws_url(room, &token)).await?;
    let welcome = c.expect("welcome").await?;
    Ok((c, welcome))
}

fn my_id(welcome: &Value) -> String {
    welcome["me"]["id"].as_str().unwrap_or_default().to_owned()
}

/// A real publish offer from a webrtc-rs peer (so SDP problems are not what is tested).
async fn real_offer(label: &str) -> Result<String> {
    let peer = Peer::new(label, PeerOptions::publish()).await?;
    let sdp = peer.create_offer().await?;
    peer.close().await;
    Ok(sdp)
}

async fn expect_http_error(server: &KhamServer, path: &str, status: u16, code: &str) -> Result<()> {
    let resp = server.ws_upgrade_attempt(path).await?;
    ensure!(
        resp.status == status,
        "upgrade {path}: expected HTTP {status} ({code}), got {} {}",
        resp.status,
        resp.text()
    );
    let body = resp
        .json()
        .with_context(|| format!("upgrade {path}: {status} body"))?;
    ensure!(
        body["error"].as_str() == Some(code),
        "upgrade {path}: expected error {code:?}, body {body}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_unknown_type_and_bad_fields() -> Result<()> {
    let server = KhamServer::start().await?;
    let room = unique("errors");
    let (mut c, _) = raw_join(&server, &room, "station-1", role::STATION).await?;

    c.send_text("{this is not json").await?;
    c.expect_error("bad_json").await.context("not JSON")?;
    c.ping_pong(1)
        .await
        .context("socket usable after bad_json")?;

    c.send_text(r#"{"id": 3}"#).await?;
    c.expect_error("bad_json")
        .await
        .context("JSON without type")?;
    c.send_text("[1,2,3]").await?;
    c.expect_error("bad_json").await.context("JSON array")?;
    c.ping_pong(2).await?;

    c.send(json!({"type": "teleport", "to": "mars"})).await?;
    c.expect_error("unknown_type").await?;
    c.ping_pong(3)
        .await
        .context("socket usable after unknown_type")?;

    c.send(json!({"type": "admit"})).await?;
    c.expect_error("bad_message")
        .await
        .context("admit without id")?;
    c.send(json!({"type": "mute", "kind": "smell", "muted": true}))
        .await?;
    c.expect_error("bad_message")
        .await
        .context("mute with a bad kind")?;
    c.send(json!({"type": "mute", "kind": "audio", "muted": "yes"}))
        .await?;
    c.expect_error("bad_message")
        .await
        .context("mute with a non-bool muted")?;
    c.send(json!({"type": "offer"})).await?;
    c.expect_error("bad_message")
        .await
        .context("offer without sdp")?;
    c.ping_pong(4)
        .await
        .context("socket usable after bad_message")?;

    // Unknown fields are ignored.
    c.send(json!({"type": "ping", "id": 5, "extra": {"x": 1}}))
        .await?;
    let pong = c.expect("pong").await?;
    ensure!(pong["id"].as_u64() == Some(5), "pong {pong}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_state_and_forbidden() -> Result<()> {
    let server = KhamServer::start().await?;
    let room = unique("state");
    let offer = real_offer("offerer").await?;

    let (mut doctor, _) = raw_join(&server, &room, "dr-1", role::DOCTOR).await?;
    let (mut patient, pw) = raw_join(&server, &room, "pat-1", role::PATIENT).await?;
    ensure!(pw["status"] == "waiting", "patient welcome {pw}");
    let patient_id = my_id(&pw);
    doctor.expect("lobby").await?;

    // A waiting patient may not offer.
    patient.send(json!({"type": "offer", "sdp": offer})).await?;
    patient
        .expect_error("bad_state")
        .await
        .context("offer while waiting")?;
    patient.ping_pong(1).await?;
    // ...nor admit anybody.
    patient
        .send(json!({"type": "admit", "id": patient_id}))
        .await?;
    patient
        .expect_error("forbidden")
        .await
        .context("patient admitting")?;

    // A station may not admit, deny, remove or end the consult.
    let (mut station, sw) = raw_join(&server, &room, "station-1", role::STATION).await?;
    ensure!(sw["status"] == "admitted", "station welcome {sw}");
    for (what, msg) in [
        ("admit", json!({"type": "admit", "id": patient_id})),
        ("deny", json!({"type": "deny", "id": patient_id})),
        ("remove", json!({"type": "remove", "id": my_id(&pw)})),
        ("end_consult", json!({"type": "end_consult"})),
    ] {
        station.send(msg).await?;
        station
            .expect_error("forbidden")
            .await
            .with_context(|| format!("station sending {what}"))?;
    }
    station.ping_pong(2).await?;

    // An answer with no server offer outstanding.
    station
        .send(json!({"type": "answer", "sdp": offer}))
        .await?;
    station
        .expect_error("bad_state")
        .await
        .context("answer without a server offer")?;

    // Admitting an unknown id.
    doctor
        .send(json!({"type": "admit", "id": "p-does-not-exist"}))
        .await?;
    doctor
        .expect_error("not_found")
        .await
        .context("admit of an unknown id")?;

    // The patient is still waiting after all that.
    let n = patient
        .collect_for(Duration::from_millis(300), "admitted")
        .await;
    ensure!(
        n.is_empty(),
        "patient was admitted by someone without the grant: {n:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sdp_keeps_socket_usable() -> Result<()> {
    let server = KhamServer::start().await?;
    let room = unique("sdp");
    let doctor = Participant::join(&server, &room, "dr-1", "Dr One", role::DOCTOR).await?;
    let mut station =
        Participant::join(&server, &room, "station-1", "Station", role::STATION).await?;

    station
        .send(json!({"type": "offer", "sdp": "this is not SDP"}))
        .await?;
    station
        .signal
        .expect_error("bad_sdp")
        .await
        .context("garbage SDP")?;
    station
        .signal
        .ping_pong(1)
        .await
        .context("socket usable after bad_sdp")?;

    // Still able to do the real thing afterwards.
    doctor.start_media(PeerOptions::publish()).await?;
    station
        .start_media(PeerOptions::publish())
        .await
        .context("publishing after a bad_sdp")?;
    station
        .wait_media_from(
            &doctor.id(),
            kham_tests::MediaKind::Audio,
            10,
            Duration::from_secs(10),
        )
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_with_1009() -> Result<()> {
    let server = KhamServer::start().await?;
    let room = unique("big");
    let (mut c, _) = raw_join(&server, &room, "station-1", role::STATION).await?;

    // Just under the limit is fine (unknown fields are ignored).
    let pad = "x".repeat(60 * 1024);
    c.send(json!({"type": "ping", "id": 1, "pad": pad})).await?;
    let pong = c
        .expect("pong")
        .await
        .context("60 KiB frame must be accepted")?;
    ensure!(pong["id"].as_u64() == Some(1));

    let pad = "x".repeat(70 * 1024);
    c.send(json!({"type": "ping", "id": 2, "pad": pad})).await?;
    let close = c.expect_closed(Duration::from_secs(5)).await?;
    match close {
        Some(CloseInfo { code: 1009, .. }) => Ok(()),
        other => bail!("expected close code 1009 after a 70 KiB frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_rejects_bad_tokens_with_401() -> Result<()> {
    let server = KhamServer::start().await?;
    let room = unique("tokens");

    // no token
    expect_http_error(&server, &format!("/ws?room={room}"), 401, "missing_token").await?;
    expect_http_error(
        &server,
        &format!("/ws?room={room}&token="),
        401,
        "missing_token",
    )
    .await?;
    // garbage
    expect_http_error(
        &server,
        &KhamServer::ws_path(&room, "garbage"),
        401,
        "invalid_token",
    )
    .await?;
    expect_http_error(
        &server,
        &KhamServer::ws_path(&room, "a.b.c"),
        401,
        "invalid_token",
    )
    .await?;
    // valid structure, bad signature
    let good = server.token(&room, "station-1", "Station", role::STATION)?;
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    ensure!(parts.len() == 3, "token is a JWT: {good}");
    let sig = parts[2].clone();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    parts[2] = format!("{flipped}{}", &sig[1..]);
    expect_http_error(
        &server,
        &KhamServer::ws_path(&room, &parts.join(".")),
        401,
        "invalid_token",
    )
    .await?;
    // wrong room
    let other = server.token("some-other-room", "station-1", "Station", role::STATION)?;
    expect_http_error(
        &server,
        &KhamServer::ws_path(&room, &other),
        401,
        "wrong_room",
    )
    .await?;
    // expired
    let short = server.token_with(&TokenArgs {
        room: &room,
        identity: "station-2",
        name: "Station 2",
        role: role::STATION,
        ttl: Some("1s"),
        url: false,
    })?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    expect_http_error(
        &server,
        &KhamServer::ws_path(&room, &short),
        401,
        "expired_token",
    )
    .await?;

    // and the good one works
    let mut c = SignalClient::connect(&server.ws_url(&room, &good)).await?;
    c.expect("welcome").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_link_from_token_create_url() -> Result<()> {
    let server = KhamServer::start().await?;
    let room = unique("link");
    let link = server.token_with(&TokenArgs {
        room: &room,
        identity: "pat-9",
        name: "Pat Nine",
        role: role::PATIENT,
        ttl: None,
        url: true,
    })?;
    ensure!(link.contains("/join?"), "join link shape: {link}");
    let query = link.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let mut token = None;
    let mut link_room = None;
    for kv in query.split('&') {
        match kv.split_once('=') {
            Some(("token", t)) => token = Some(t.to_owned()),
            Some(("room", r)) => link_room = Some(r.to_owned()),
            _ => {}
        }
    }
    ensure!(
        link_room.as_deref() == Some(room.as_str()),
        "link room: {link}"
    );
    let token = token.with_context(|| format!("no token in {link}"))?;
    let mut c = SignalClient::connect(&server.ws_url(&room, &token)).await?;
    let w = c.expect("welcome").await?;
    ensure!(w["status"] == "waiting", "patient via link waits: {w}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_patient_is_closed_4001_and_token_revoked() -> Result<()> {
    let server = KhamServer::start().await?;
    let room = unique("deny");
    let (mut doctor, _) = raw_join(&server, &room, "dr-1", role::DOCTOR).await?;
    let token = server.token(&room, "pat-1", "Pat", role::PATIENT)?;
    let mut patient = SignalClient::connect(&server.ws_url(&room, &token)).await?;
    let pw = patient.expect("welcome").await?;
    let pid = my_id(&pw);
    let pid2 = pid.clone();
    doctor
        .expect_where("lobby with the patient", Duration::from_secs(5), move |v| {
            msg_type(v) == "lobby"
                && v["entries"]
                    .as_array()
                    .is_some_and(|e| e.iter().any(|x| x["id"].as_str() == Some(pid2.as_str())))
        })
        .await?;

    doctor
        .send(json!({"type": "deny", "id": pid, "reason": "wrong clinic"}))
        .await?;
    let denied = patient.expect("denied").await?;
    ensure!(
        denied.get("reason").is_some(),
        "denied has a reason: {denied}"
    );
    let close = patient.expect_closed(Duration::from_secs(5)).await?;
    ensure!(
        matches!(close, Some(CloseInfo { code: 4001, .. })),
        "close after denied: {close:?} (other events: {:?})",
        patient.drain()
    );

    // The lobby is empty again for the doctor.
    doctor
        .expect_where("empty lobby", Duration::from_secs(5), |v| {
            msg_type(v) == "lobby" && v["entries"].as_array().is_some_and(Vec::is_empty)
        })
        .await?;

    expect_http_error(
        &server,
        &KhamServer::ws_path(&room, &token),
        401,
        "revoked_token",
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_consult_ends_for_everybody() -> Result<()> {
    let server = KhamServer::start().await?;
    let room = unique("end");
    let (mut doctor, _) = raw_join(&server, &room, "dr-1", role::DOCTOR).await?;
    let (mut station, _) = raw_join(&server, &room, "station-1", role::STATION).await?;
    let (mut observer, _) = raw_join(&server, &room, "obs-1", role::OBSERVER).await?;
    let (mut patient, pw) = raw_join(&server, &room, "pat-1", role::PATIENT).await?;
    ensure!(pw["status"] == "waiting");
    doctor.expect("lobby").await?;

    doctor.send(json!({"type": "end_consult"})).await?;
    for (who, c) in [
        ("doctor", &mut doctor),
        ("station", &mut station),
        ("observer", &mut observer),
        ("waiting patient", &mut patient),
    ] {
        c.expect("ended")
            .await
            .with_context(|| format!("{who} gets ended"))?;
        let close = c.expect_closed(Duration::from_secs(5)).await?;
        ensure!(
            matches!(close, Some(CloseInfo { code: 4003, .. })),
            "{who}: close after ended: {close:?}"
        );
    }

    // The room is over: a fresh token gets 403 room_ended.
    let t = server.token(&room, "station-2", "Late station", role::STATION)?;
    expect_http_error(&server, &KhamServer::ws_path(&room, &t), 403, "room_ended").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_remove_and_leave() -> Result<()> {
    let server = KhamServer::start().await?;
    let room = unique("remove");
    let (mut doctor, _) = raw_join(&server, &room, "dr-1", role::DOCTOR).await?;
    let station_token = server.token(&room, "station-1", "Station", role::STATION)?;
    let mut station = SignalClient::connect(&server.ws_url(&room, &station_token)).await?;
    let sid = my_id(&station.expect("welcome").await?);
    let (mut station2, sw2) = raw_join(&server, &room, "station-2", role::STATION).await?;
    let sid2 = my_id(&sw2);

    // mute is announced to the others
    station
        .send(json!({"type": "mute", "kind": "audio", "muted": true}))
        .await?;
    let s = sid.clone();
    let upd = doctor
        .expect_where(
            "participant_updated for the station",
            Duration::from_secs(5),
            move |v| {
                msg_type(v) == "participant_updated"
                    && v["participant"]["id"].as_str() == Some(s.as_str())
            },
        )
        .await?;
    ensure!(
        upd["participant"]["audio_muted"] == true,
        "audio_muted in {upd}"
    );
    ensure!(
        upd["participant"]["video_muted"] == false,
        "video_muted in {upd}"
    );

    // remove
    doctor
        .send(json!({"type": "remove", "id": sid, "reason": "test"}))
        .await?;
    station
        .expect("removed")
        .await
        .context("removed participant gets `removed`")?;
    let close = station.expect_closed(Duration::from_secs(5)).await?;
    ensure!(
        matches!(close, Some(CloseInfo { code: 4002, .. })),
        "close after removed: {close:?}"
    );
    let s = sid.clone();
    let left = doctor
        .expect_where(
            "participant_left for the removed station",
            Duration::from_secs(5),
            move |v| msg_type(v) == "participant_left" && v["id"].as_str() == Some(s.as_str()),
        )
        .await?;
    ensure!(left["reason"] == "removed", "reason in {left}");
    expect_http_error(
        &server,
        &KhamServer::ws_path(&room, &station_token),
        401,
        "revoked_token",
    )
    .await?;

    // leave closes with 1000 and others see reason "left"
    station2.send(json!({"type": "leave"})).await?;
    let close = station2.expect_closed(Duration::from_secs(5)).await?;
    ensure!(
        matches!(close, Some(CloseInfo { code: 1000, .. })),
        "close after leave: {close:?}"
    );
    let s2 = sid2.clone();
    let left = doctor
        .expect_where(
            "participant_left for the leaving station",
            Duration::from_secs(5),
            move |v| msg_type(v) == "participant_left" && v["id"].as_str() == Some(s2.as_str()),
        )
        .await?;
    ensure!(left["reason"] == "left", "reason in {left}");
    doctor.ping_pong(9).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_room_is_403_room_full() -> Result<()> {
    let server = KhamServer::start_with(ServerOptions {
        env: vec![("KHAM_ROOMS__MAX_PARTICIPANTS".into(), "2".into())],
    })
    .await?;
    let room = unique("full");
    let (_doctor, _) = raw_join(&server, &room, "dr-1", role::DOCTOR).await?;
    let (_station, _) = raw_join(&server, &room, "station-1", role::STATION).await?;
    let t = server.token(&room, "station-2", "Station 2", role::STATION)?;
    expect_http_error(&server, &KhamServer::ws_path(&room, &t), 403, "room_full").await?;
    Ok(())
}

/// The direction attribute of each m-line of `sdp`.
fn directions(sdp: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in sdp.lines() {
        if line.starts_with("m=") {
            out.push(String::new());
        }
        if let Some(last) = out.last_mut()
            && ["a=sendonly", "a=recvonly", "a=sendrecv", "a=inactive"].contains(&line)
        {
            line[2..].clone_into(last);
        }
    }
    out
}

/// `sdp` with small bundled VP8 m-sections added until it has `n` m-lines: an offer str0m would
/// parse and answer in full.
fn inflate_offer(sdp: &str, n: usize) -> String {
    let have = sdp.lines().filter(|l| l.starts_with("m=")).count();
    let mut out = sdp.to_owned();
    let mut mids = Vec::new();
    for i in have..n {
        out.push_str(&format!(
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:x{i}\r\na=sendonly\r\n\
             a=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n"
        ));
        mids.push(format!("x{i}"));
    }
    out.replacen(
        "a=group:BUNDLE ",
        &format!("a=group:BUNDLE {} ", mids.join(" ")),
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdp_errors_are_fixed_texts() -> Result<()> {
    let server = KhamServer::start().await?;
    let room = unique("sdptext");
    let (mut c, _) = raw_join(&server, &room, "station-1", role::STATION).await?;
    // str0m's parser reports `Parse error at PointerOffset(0x7f...)`: a heap address.
    c.send(json!({"type": "offer", "sdp": "this is not SDP"}))
        .await?;
    let e = c.expect_error("bad_sdp").await?;
    ensure!(
        e["message"] == "the SDP could not be parsed",
        "fixed text for garbage SDP: {e}"
    );
    for garbage in [
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n",
    ] {
        c.send(json!({"type": "offer", "sdp": garbage})).await?;
        let e = c.expect_error("bad_sdp").await?;
        let m = e["message"].as_str().unwrap_or_default();
        ensure!(
            m == "the SDP could not be parsed"
                || m == "the SDP was not accepted (unsupported codecs, directions or transport)",
            "fixed text for {garbage:?}: {e}"
        );
        ensure!(!m.contains("0x") && !m.contains("a=mid"), "{m}");
    }
    c.send(json!({"type": "answer", "sdp": "v=0 junk"})).await?;
    let e = c.expect_error("bad_state").await?;
    ensure!(
        e["message"] == "no media session; send an offer first",
        "{e}"
    );
    // Bad JSON fields get our words, not serde's (which would quote the value).
    c.send(json!({"type": "mute", "kind": "x".repeat(300), "muted": true}))
        .await?;
    let e = c.expect_error("bad_message").await?;
    ensure!(
        e["message"]
            == r#"bad mute message: a field has the wrong type or value; mute takes kind: "audio" or "video", muted: boolean"#,
        "{e}"
    );
    c.ping_pong(1).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_with_50_m_lines_is_refused_quickly() -> Result<()> {
    let server = KhamServer::start().await?;
    let room = unique("mlines");
    let (mut c, _) = raw_join(&server, &room, "station-1", role::STATION).await?;
    let offer = real_offer("many-m-lines").await?;
    let big = inflate_offer(&offer, 50);
    ensure!(
        big.lines().filter(|l| l.starts_with("m=")).count() == 50,
        "inflated offer"
    );
    let started = std::time::Instant::now();
    c.send(json!({"type": "offer", "sdp": big})).await?;
    let e = c.expect_error("bad_sdp").await?;
    let took = started.elapsed();
    ensure!(
        e["message"] == "the offer has more than 2 video m-lines",
        "names the limit: {e}"
    );
    // Loose: a loaded 2-core machine; str0m answering 50 m-lines is what this guards against.
    ensure!(took < Duration::from_secs(5), "refused after {took:?}");
    // The socket and the session stay usable: the real offer is answered.
    c.send(json!({"type": "offer", "sdp": offer})).await?;
    c.expect("answer").await.context("the real offer after")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observer_send_offer_is_answered_inactive() -> Result<()> {
    let server = KhamServer::start().await?;
    let room = unique("observer");
    let (_doctor, _) = raw_join(&server, &room, "dr-1", role::DOCTOR).await?;
    let (mut obs, w) = raw_join(&server, &room, "obs-1", role::OBSERVER).await?;
    ensure!(w["status"] == "admitted", "observer welcome {w}");
    // A client that offers to send anyway (the web client does not, for an observer).
    let peer = Peer::new("observer", PeerOptions::publish_simulcast()).await?;
    let offer = peer.create_offer().await?;
    ensure!(
        directions(&offer).iter().all(|d| d == "sendonly"),
        "offer: {:?}",
        directions(&offer)
    );
    obs.send(json!({"type": "offer", "sdp": offer})).await?;
    let answer = obs.expect("answer").await?;
    let sdp = answer["sdp"].as_str().unwrap_or_default();
    let dirs = directions(sdp);
    ensure!(
        !dirs.is_empty() && dirs.iter().all(|d| d == "inactive"),
        "the observer's send m-lines must be answered inactive: {dirs:?}\n{sdp}"
    );
    ensure!(!sdp.contains("a=simulcast"), "no simulcast invited:\n{sdp}");
    peer.apply_answer(sdp)
        .await
        .context("the client's stack takes the inactive answer")?;
    peer.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_are_fixed_texts() -> Result<()> {
    let server = KhamServer::start().await?;
    let admin = server.admin_token()?;
    let room = unique("http");
    let (_doctor, _) = raw_join(&server, &room, "dr-1", role::DOCTOR).await?;
    // serde would quote the field and the value.
    let r = server
        .http(
            "POST",
            &format!("/api/admin/rooms/{room}/close"),
            Some(&admin),
            Some(br#"{"reason": 5, "<script>": 1}"#),
        )
        .await?;
    let body = r.json()?;
    ensure!(r.status == 400 && body["error"] == "bad_json", "{body}");
    ensure!(
        body["message"] == r#"expected {"reason": string} or no body"#,
        "{body}"
    );
    // axum's query parser would say "duplicate field `room`".
    let r = server
        .ws_upgrade_attempt(&format!("/ws?room={room}&room=x&token=t"))
        .await?;
    let body = r
        .json()
        .with_context(|| format!("JSON refusal: {}", r.text()))?;
    ensure!(r.status == 400 && body["error"] == "bad_request", "{body}");
    ensure!(
        body["message"] == "expected the query room=ROOM&token=TOKEN, each once",
        "{body}"
    );
    // A valid token without upgrade headers: axum's text would name its header check.
    let token = server.token(&room, "station-9", "Station", role::STATION)?;
    let r = kham_tests::http::get(server.http_addr, &KhamServer::ws_path(&room, &token)).await?;
    let body = r
        .json()
        .with_context(|| format!("JSON refusal: {}", r.text()))?;
    ensure!(r.status == 400 && body["error"] == "bad_request", "{body}");
    ensure!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("expected a WebSocket upgrade")),
        "{body}"
    );
    Ok(())
}
