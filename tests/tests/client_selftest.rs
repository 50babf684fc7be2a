//! Self-test of the client kit without a server: two `Peer`s connected directly.
//! If this fails, the kit is broken, not kham.

use std::time::Duration;

use kham_tests::check::check_forwarded;
use kham_tests::peer::{MediaKind, Peer, PeerOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_exchange_media_directly() -> anyhow::Result<()> {
    let a = Peer::new("a", PeerOptions::publish()).await?;
    let b = Peer::new("b", PeerOptions::receive_only()).await?;
    let offer = a.create_offer().await?;
    let answer = b.answer_offer(&offer).await?;
    a.apply_answer(&answer).await?;
    a.wait_connected(Duration::from_secs(10)).await?;
    b.wait_connected(Duration::from_secs(10)).await?;
    a.start_sending().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.stop_sending();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let got = b.received();
    assert_eq!(got.len(), 2, "two remote tracks: {got:?}");
    for kind in [MediaKind::Audio, MediaKind::Video] {
        let t = got.iter().find(|t| t.kind == kind).expect("track of kind");
        assert!(t.mid.is_some(), "mid resolved for {kind:?}");
        let local = match kind {
            MediaKind::Audio => a.audio.as_ref(),
            MediaKind::Video => a.video.as_ref(),
        }
        .expect("local track");
        assert_eq!(
            local.write_errors().0,
            0,
            "write errors {:?}",
            local.write_errors()
        );
        let rep = check_forwarded(kind, &local.sent(), t)?;
        assert_eq!(rep.ssrc, local.ssrc());
        assert_eq!(rep.first_sent_index, 0);
        eprintln!("{rep:?}");
        match kind {
            MediaKind::Audio => assert!(rep.received >= 80, "{rep:?}"),
            MediaKind::Video => assert!(rep.received >= 100, "{rep:?}"),
        }
    }
    a.close().await;
    b.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_layers_are_sent_with_rids() -> anyhow::Result<()> {
    let a = Peer::new("a", PeerOptions::publish_simulcast()).await?;
    let b = Peer::new("b", PeerOptions::receive_only()).await?;
    let offer = a.create_offer().await?;
    anyhow::ensure!(
        offer.contains("a=simulcast:send q;h;f"),
        "simulcast offer:\n{offer}"
    );
    let answer = b.answer_offer(&offer).await?;
    a.apply_answer(&answer).await?;
    a.wait_connected(Duration::from_secs(10)).await?;
    b.wait_connected(Duration::from_secs(10)).await?;
    a.start_sending().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.stop_sending();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let v = a.video.as_ref().expect("video");
    assert_eq!(v.layers.len(), 3);
    assert_eq!(v.write_errors().0, 0, "{:?}", v.write_errors());
    let got = b.received();
    let video: Vec<_> = got.iter().filter(|t| t.kind == MediaKind::Video).collect();
    anyhow::ensure!(!video.is_empty(), "no video received: {got:?}");
    for layer in &v.layers {
        // webrtc-rs receives simulcast as one track with one SSRC per RID.
        let mut t = video
            .iter()
            .find(|t| t.ssrcs.contains(&layer.ssrc))
            .map(|t| (*t).clone())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "layer {:?} (ssrc {}) not received: {video:?}",
                    layer.rid,
                    layer.ssrc
                )
            })?;
        t.packets.retain(|p| p.ssrc == layer.ssrc);
        let rep = check_forwarded(MediaKind::Video, &layer.sent(), &t)?;
        eprintln!("{:?}: {rep:?}", layer.rid);
        anyhow::ensure!(rep.received >= 50, "{rep:?}");
    }
    a.close().await;
    b.close().await;
    Ok(())
}
