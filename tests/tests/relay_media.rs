//! Media through `kham-relay`: kham announces the relay's address (`media.announce`), the
//! clients reach kham only through the relay's emulated links, and media flows both ways.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kham_netem::RelayConfig;
use kham_relay::spec::{LinkArgs, TraceCache};
use kham_relay::{Options, RelayServer};
use kham_tests::server::ServerOptions;
use kham_tests::{KhamServer, MediaKind, Participant, PeerOptions, role, unique};

const MEDIA_WAIT: Duration = Duration::from_secs(15);
/// The relay's address: another loopback address, kham's media port.
const RELAY_IP: &str = "127.0.0.2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_flows_through_the_relay() -> Result<()> {
    let server = KhamServer::start_with(ServerOptions {
        // Without the allocator: this is about the path through the relay, and webrtc-rs
        // clients on a loaded loopback give str0m estimates that pause their unlayered video.
        env: vec![
            ("KHAM_MEDIA__ANNOUNCE".into(), format!("[\"{RELAY_IP}\"]")),
            ("KHAM_MEDIA__ADAPTATION".into(), "false".into()),
        ],
    })
    .await?;
    let listen: SocketAddr = format!("{RELAY_IP}:{}", server.udp_port).parse()?;
    let upstream: SocketAddr = format!("127.0.0.1:{}", server.udp_port).parse()?;
    let link = LinkArgs {
        rate: Some("4mbit".into()),
        uplink_rate: Some("4mbit".into()),
        delay: Some("20ms".into()),
        ..LinkArgs::default()
    };
    let relay = RelayServer::bind(Options {
        listen,
        upstream,
        ports: 1,
        upstream_bind: None,
        relay: RelayConfig::new(link.build(&mut TraceCache::default())?),
        duration: Some(Duration::from_secs(60)),
        stats_interval: None,
        verbose: false,
    })
    .with_context(|| format!("binding the relay on {listen}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let relay_stop = Arc::clone(&stop);
    let relay_thread = std::thread::spawn(move || relay.run(&relay_stop));

    let room = unique("relay");
    // Whatever happens, the relay is stopped and its report read before the verdict.
    let media = async {
        let doctor =
            Participant::join(&server, &room, "dr-relay", "Dr Relay", role::DOCTOR).await?;
        doctor.start_media(PeerOptions::publish()).await?;
        let station =
            Participant::join(&server, &room, "station-relay", "Station", role::STATION).await?;
        station.start_media(PeerOptions::publish()).await?;
        station
            .wait_media_from(&doctor.id(), MediaKind::Video, 60, MEDIA_WAIT)
            .await?;
        doctor
            .wait_media_from(&station.id(), MediaKind::Video, 60, MEDIA_WAIT)
            .await
    }
    .await;

    stop.store(true, Ordering::Relaxed);
    let report = relay_thread
        .join()
        .map_err(|_| anyhow::anyhow!("relay thread panicked"))??;
    media.with_context(|| format!("media through the relay; relay saw {:#?}", report.clients))?;
    // Everything went through the relay: both peers are its clients, in both directions.
    ensure!(report.clients.len() >= 2, "clients: {:#?}", report.clients);
    for c in &report.clients {
        ensure!(
            c.up.out_packets > 0 && c.down.out_packets > 0,
            "client {} one-way only: {c:#?}",
            c.addr
        );
    }
    Ok(())
}
