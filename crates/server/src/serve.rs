//! `kham serve`: binds the media sockets and the HTTP listener and runs until Ctrl-C/SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use kham_proto::Role;
use kham_signal::{AppState, Counters, RoomSettings, RoomTimeouts, Rooms, TokenKeys};
use serde_json::json;

use crate::config::Config;
use crate::shard::{self, MediaCounters, ShardSetup};
use crate::tokens;

pub fn run(config: Option<&Path>, dev: bool) -> anyhow::Result<()> {
    let cfg = Config::load(config, dev)?;
    init_logging(&cfg.log.level);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(cfg, dev))
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

async fn serve(cfg: Config, dev: bool) -> anyhow::Result<()> {
    // Media: one UDP socket per shard.
    let mut sockets = Vec::new();
    let mut announce = Vec::new();
    for i in 0..cfg.media.shards {
        let port = if cfg.media.udp_port == 0 {
            0
        } else {
            cfg.media.udp_port + i as u16
        };
        let addr = SocketAddr::new(cfg.media.bind, port);
        let socket =
            std::net::UdpSocket::bind(addr).with_context(|| format!("binding media UDP {addr}"))?;
        let bound = socket.local_addr()?;
        let ips = if cfg.media.announce.is_empty() {
            vec![cfg.media.bind]
        } else {
            cfg.media.announce.clone()
        };
        announce.push(
            ips.into_iter()
                .map(|ip| SocketAddr::new(ip, bound.port()))
                .collect(),
        );
        tracing::info!(port = bound.port(), shard = i, "media UDP socket bound");
        sockets.push(socket);
    }
    let media_counters = Arc::new(MediaCounters::default());
    let media = shard::start(
        ShardSetup {
            sockets,
            announce,
            max_participants: cfg.rooms.max_participants,
        },
        media_counters.clone(),
    )?;

    let keys = TokenKeys::new(&cfg.auth.api_key, &cfg.auth.api_secret);
    let settings = RoomSettings {
        max_participants: cfg.rooms.max_participants,
        timeouts: RoomTimeouts {
            empty_timeout: cfg.rooms.empty_timeout,
            departure_timeout: cfg.rooms.departure_timeout,
        },
    };
    let rooms = Rooms::new(Arc::new(media), settings);
    let draining = Arc::new(AtomicBool::new(false));
    let mc = media_counters.clone();
    let state = AppState {
        keys: keys.clone(),
        rooms,
        counters: Arc::new(Counters::default()),
        health: Arc::new(move || {
            let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            json!({
                "udp_in": get(&mc.udp_in),
                "udp_out": get(&mc.udp_out),
                "udp_dropped": get(&mc.udp_dropped),
                "udp_send_dropped": get(&mc.send_dropped),
            })
        }),
        draining: draining.clone(),
    };
    let app = kham_signal::router(state).fallback(crate::web::static_handler);

    let base = cfg.public_url();
    if dev {
        print_dev_links(&keys, &base);
    }
    let listen = cfg.http.listen;
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        draining.store(true, Ordering::Relaxed);
        h.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    tracing::info!(%listen, tls = cfg.tls_enabled(), "HTTP listening; open {base}/join?room=..&token=..");
    if cfg.tls_enabled() {
        // rustls needs a process-wide crypto provider; aws-lc-rs is already linked for str0m.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(
            &cfg.http.tls_cert,
            &cfg.http.tls_key,
        )
        .await
        .context("loading http.tls_cert / http.tls_key")?;
        axum_server::bind_rustls(listen, tls)
            .handle(handle)
            .serve(app.into_make_service())
            .await?;
    } else {
        axum_server::bind(listen)
            .handle(handle)
            .serve(app.into_make_service())
            .await?;
    }
    Ok(())
}

fn print_dev_links(keys: &TokenKeys, base: &str) {
    let ttl = Duration::from_secs(12 * 3600);
    let mk = |id: &str, name: &str, role: Role| {
        let c = tokens::claims(keys, "demo", id, name, role, ttl, false);
        keys.sign(&c)
            .map(|t| tokens::join_link(base, "demo", &t))
            .unwrap_or_default()
    };
    // Printed on stdout (not the log) so scripts and people can pick them up.
    println!("kham development mode: demo room \"demo\" (links valid 12 h)");
    println!(
        "  doctor:  {}",
        mk("dev-doctor", "Bác sĩ Minh", Role::Doctor)
    );
    println!(
        "  patient: {}",
        mk("dev-patient", "Bệnh nhân Lan", Role::Patient)
    );
    println!(
        "  station: {}",
        mk("dev-station", "Trạm y tế xã", Role::Station)
    );
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
