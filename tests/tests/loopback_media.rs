//! Media through the real SFU on loopback: what a publisher sends is what a subscriber gets.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kham_tests::check::check_forwarded;
use kham_tests::peer::{LocalTrack, Peer};
use kham_tests::{KhamServer, MediaKind, Participant, PeerOptions, msg_type, role, unique};

const MEDIA_WAIT: Duration = Duration::from_secs(10);

fn local(peer: &Peer, kind: MediaKind) -> &LocalTrack {
    match kind {
        MediaKind::Audio => peer.audio.as_ref(),
        MediaKind::Video => peer.video.as_ref(),
    }
    .expect("publisher has this track")
}

/// Stops `publisher`, lets in-flight packets land, then compares what `subscriber` got from it.
async fn assert_forwarded_exactly(subscriber: &Participant, publisher: &Participant) -> Result<()> {
    let pub_peer = publisher.peer().context("publisher has no peer")?;
    pub_peer.stop_sending();
    tokio::time::sleep(Duration::from_millis(600)).await;
    for kind in [MediaKind::Audio, MediaKind::Video] {
        let lt = local(&pub_peer, kind);
        let (errs, last) = lt.write_errors();
        ensure!(errs == 0, "{}: {errs} local write_rtp errors, last {last:?}", publisher.name);
        let recv = subscriber
            .received_from(&publisher.id(), kind)
            .with_context(|| format!("{} got no {} track from {}", subscriber.name, kind.as_str(), publisher.name))?;
        let report = check_forwarded(kind, &lt.sent(), &recv).with_context(|| {
            format!("{} -> SFU -> {} ({})", publisher.name, subscriber.name, kind.as_str())
        })?;
        eprintln!("{} -> {}: {report:?}", publisher.name, subscriber.name);
        ensure!(report.ssrc != 0);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_media_reaches_station_unchanged() -> Result<()> {
    let server = KhamServer::start().await?;
    let room = unique("loopback");

    let doctor = Participant::join(&server, &room, "dr-house", "Dr House", role::DOCTOR).await?;
    ensure!(doctor.status() == "admitted", "doctor welcome: {}", doctor.welcome);
    doctor.start_media(PeerOptions::publish()).await?;

    let station = Participant::join(&server, &room, "station-1", "Exam room 1", role::STATION).await?;
    ensure!(station.status() == "admitted", "station joins directly: {}", station.welcome);
    ensure!(
        station.welcome["participants"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p["id"].as_str() == Some(doctor.id().as_str()))),
        "station's welcome lists the doctor: {}",
        station.welcome
    );
    station.start_media(PeerOptions::publish()).await?;

    // Both directions flow: ~1.5 s of audio (50/s) and video (~60 packets/s).
    station.wait_media_from(&doctor.id(), MediaKind::Audio, 75, MEDIA_WAIT).await?;
    station.wait_media_from(&doctor.id(), MediaKind::Video, 90, MEDIA_WAIT).await?;
    doctor.wait_media_from(&station.id(), MediaKind::Audio, 75, MEDIA_WAIT).await?;
    doctor.wait_media_from(&station.id(), MediaKind::Video, 90, MEDIA_WAIT).await?;

    ensure!(station.errors().is_empty(), "station negotiation errors: {:?}", station.errors());
    ensure!(doctor.errors().is_empty(), "doctor negotiation errors: {:?}", doctor.errors());

    assert_forwarded_exactly(&station, &doctor).await?;
    assert_forwarded_exactly(&doctor, &station).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lobby_patient_gets_no_media_until_admitted() -> Result<()> {
    let server = KhamServer::start().await?;
    let room = unique("lobby");

    let mut doctor = Participant::join(&server, &room, "dr-grey", "Dr Grey", role::DOCTOR).await?;
    doctor.start_media(PeerOptions::publish()).await?;

    let mut patient = Participant::join(&server, &room, "pat-1", "Pat Ient", role::PATIENT).await?;
    ensure!(patient.status() == "waiting", "patient waits in the lobby: {}", patient.welcome);
    let pid = patient.id();

    // The doctor sees the patient in the lobby (not in the call).
    let pid2 = pid.clone();
    doctor
        .signal
        .expect_where("lobby listing the patient", Duration::from_secs(5), move |v| {
            msg_type(v) == "lobby"
                && v["entries"].as_array().is_some_and(|e| e.iter().any(|x| x["id"].as_str() == Some(pid2.as_str())))
        })
        .await?;

    // While waiting (doctor publishing all along): no offer, no track mapping, no admission.
    let offers = patient.signal.collect_for(Duration::from_secs(2), "offer").await;
    ensure!(offers.is_empty(), "waiting patient was sent a media offer: {offers:?}");
    let stray: Vec<_> = patient
        .signal
        .drain()
        .into_iter()
        .filter(|ev| matches!(ev, kham_tests::SignalEvent::Msg(v) if matches!(msg_type(v), "tracks" | "admitted" | "answer")))
        .collect();
    ensure!(stray.is_empty(), "waiting patient got media-related messages: {stray:?}");
    ensure!(patient.peer().is_none());

    // Admit.
    doctor.admit(&pid).await?;
    let admitted = patient.signal.expect("admitted").await?;
    ensure!(
        admitted["participants"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p["id"].as_str() == Some(doctor.id().as_str()))),
        "admitted lists the doctor: {admitted}"
    );
    let pid3 = pid.clone();
    doctor
        .signal
        .expect_where("participant_joined for the patient", Duration::from_secs(5), move |v| {
            msg_type(v) == "participant_joined" && v["participant"]["id"].as_str() == Some(pid3.as_str())
        })
        .await?;

    patient.start_media(PeerOptions::publish()).await?;
    patient.wait_media_from(&doctor.id(), MediaKind::Audio, 50, MEDIA_WAIT).await?;
    patient.wait_media_from(&doctor.id(), MediaKind::Video, 60, MEDIA_WAIT).await?;
    doctor.wait_media_from(&pid, MediaKind::Audio, 50, MEDIA_WAIT).await?;
    doctor.wait_media_from(&pid, MediaKind::Video, 60, MEDIA_WAIT).await?;
    ensure!(patient.errors().is_empty(), "patient negotiation errors: {:?}", patient.errors());

    assert_forwarded_exactly(&patient, &doctor).await?;
    Ok(())
}
