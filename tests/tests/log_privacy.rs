//! At the default log level the server must not log participants' names, tokens or SDP
//! (config/kham.toml: "Names, IPs and SDP are only logged at debug level").

use std::time::Duration;

use anyhow::{Result, ensure};
use kham_tests::server::ServerOptions;
use kham_tests::{KhamServer, MediaKind, Participant, PeerOptions, msg_type, role, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_logs_carry_no_names_tokens_or_sdp() -> Result<()> {
    let server = KhamServer::start_with(ServerOptions {
        env: vec![("KHAM_LOG__LEVEL".into(), "info".into())],
    })
    .await?;
    let room = unique("privacy");
    let doctor_name = "Dr Zebediah Quuxworth";
    let patient_name = "Xanthippe Ploofington";

    let mut doctor = Participant::join(&server, &room, "dr-zq", doctor_name, role::DOCTOR).await?;
    doctor.start_media(PeerOptions::publish()).await?;
    let patient_token = server.token(&room, "pat-xp", patient_name, role::PATIENT)?;
    let mut patient = Participant::connect(&server, &room, &patient_token, patient_name).await?;
    let pid = patient.id();
    doctor
        .signal
        .expect_where("lobby", Duration::from_secs(5), |v| msg_type(v) == "lobby")
        .await?;
    doctor.admit(&pid).await?;
    patient.signal.expect("admitted").await?;
    patient.start_media(PeerOptions::publish()).await?;
    patient
        .wait_media_from(&doctor.id(), MediaKind::Audio, 20, Duration::from_secs(10))
        .await?;
    // Some errors and a bad SDP on the way, which tempt an implementation to log the input.
    patient
        .send(serde_json::json!({"type": "offer", "sdp": format!("v=0 {patient_name}")}))
        .await?;
    patient.signal.expect("error").await?;
    doctor.end_consult().await?;
    doctor.signal.expect("ended").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let logs = server.logs_tail(5000);
    ensure!(
        !logs.trim().is_empty(),
        "no server output captured at level info"
    );
    let mut leaks = Vec::new();
    for (what, needle) in [
        ("doctor name", doctor_name),
        ("patient name", patient_name),
        ("patient identity", "pat-xp"),
        ("access token", patient_token.as_str()),
        (
            "token signature",
            patient_token.rsplit('.').next().unwrap_or("-"),
        ),
        ("SDP", "a=ice-ufrag"),
        ("SDP", "a=fingerprint"),
        ("SDP", "a=candidate"),
    ] {
        if let Some(line) = logs.lines().find(|l| l.contains(needle)) {
            leaks.push(format!("{what} ({needle:?}) in: {line}"));
        }
    }
    ensure!(
        leaks.is_empty(),
        "server logs at level info leak:\n{}",
        leaks.join("\n")
    );
    Ok(())
}
