//! `kham serve`: binds the media sockets and the HTTP listener and runs until SIGTERM/Ctrl-C,
//! then drains: no new joins, `/readyz` 503, calls go on until they end or `rooms.drain_timeout`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use kham_proto::Role;
use kham_signal::{AppState, Counters, RoomSettings, RoomTimeouts, Rooms, TokenKeys};
use serde_json::json;
use tokio::sync::watch;

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::media_stats::MediaBoards;
use crate::metrics::{Metrics, Sources};
use crate::monitor::{History, Monitor, OpsView};
use crate::observer::ServerObserver;
use crate::shard::{self, ShardSetup};
use crate::tokens;
use crate::webhooks::{WebhookStats, Webhooks};

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
    let (media, boards) = shard::start(ShardSetup {
        sockets,
        announce,
        max_participants: cfg.rooms.max_participants,
        adaptation: if cfg.media.adaptation {
            kham_sfu::Adaptation::default()
        } else {
            // The benchmark baseline: always the top layer (closest one flowing).
            kham_sfu::Adaptation::Fixed(kham_sfu::kham_bwe::Layer::new(2, 2))
        },
    })?;

    let keys = TokenKeys::new(&cfg.auth.api_key, &cfg.auth.api_secret);
    let draining = Arc::new(AtomicBool::new(false));
    let signal_counters = Arc::new(Counters::default());
    let (view_tx, view_rx) = watch::channel(Arc::new(OpsView::default()));
    let webhook_stats = Arc::new(WebhookStats::default());
    let metrics = Metrics::new(Sources {
        view: view_rx.clone(),
        signal: signal_counters.clone(),
        webhooks: webhook_stats.clone(),
        draining: draining.clone(),
    });
    let webhooks =
        Webhooks::start(&cfg.webhooks, &cfg.auth.api_secret, webhook_stats)?.map(Arc::new);
    if webhooks.is_some() {
        tracing::info!(endpoints = cfg.webhooks.urls.len(), "webhooks on");
    }
    let observer = Arc::new(ServerObserver {
        metrics: metrics.clone(),
        webhooks: webhooks.clone(),
    });
    let settings = RoomSettings {
        max_participants: cfg.rooms.max_participants,
        timeouts: RoomTimeouts {
            empty_timeout: cfg.rooms.empty_timeout,
            departure_timeout: cfg.rooms.departure_timeout,
        },
    };
    let rooms = Rooms::with_observer(Arc::new(media), settings, observer);
    let history = Arc::new(Mutex::new(History::default()));
    tokio::spawn(
        Monitor {
            rooms: rooms.clone(),
            boards: boards.clone(),
            metrics: metrics.clone(),
            history: history.clone(),
            draining: draining.clone(),
            view: view_tx,
        }
        .run(),
    );
    let state = AppState {
        keys: keys.clone(),
        rooms: rooms.clone(),
        counters: signal_counters,
        health: health(boards.clone()),
        draining: draining.clone(),
        limits: kham_signal::RateLimits {
            rate: cfg.signaling.rate,
            burst: cfg.signaling.burst,
            flood_after: cfg.signaling.flood_after,
        },
    };
    let admin = admin::router(AdminState {
        keys: keys.clone(),
        rooms: rooms.clone(),
        boards,
        view: view_rx.clone(),
        history,
        metrics,
        metrics_public: cfg.admin.metrics_public,
    });
    let app = kham_signal::router(state)
        .merge(admin)
        .fallback(crate::web::static_handler);

    let base = cfg.public_url();
    if dev {
        print_dev_links(&keys, &base);
    }
    let listen = cfg.http.listen;
    let handle = axum_server::Handle::new();
    tokio::spawn(drain(
        rooms,
        view_rx,
        draining,
        webhooks,
        cfg.rooms.drain_timeout,
        handle.clone(),
    ));
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

/// Media counters for `/healthz`.
fn health(boards: MediaBoards) -> kham_signal::HealthFn {
    Arc::new(move || {
        let c = boards.counters();
        json!({
            "udp_in": c.udp_in,
            "udp_out": c.udp_out,
            "udp_dropped": c.udp_dropped,
            "udp_send_dropped": c.send_dropped,
        })
    })
}

/// Waits for SIGTERM/Ctrl-C, then drains: refuses joins (`draining`), waits until nobody is in
/// a call or a lobby (or `limit`, or a second signal), ends the rooms left so their
/// `room_finished` webhooks go out, gives webhooks a few seconds, and stops the HTTP server.
async fn drain(
    rooms: Rooms,
    mut view: watch::Receiver<Arc<OpsView>>,
    draining: Arc<AtomicBool>,
    webhooks: Option<Arc<Webhooks>>,
    limit: Duration,
    handle: axum_server::Handle<SocketAddr>,
) {
    shutdown_signal().await;
    draining.store(true, Ordering::Relaxed);
    let people = |v: &OpsView| v.node.participants + v.node.lobby;
    tracing::info!(
        people = people(&view.borrow()),
        limit = %humantime::format_duration(limit),
        "draining: refusing new joins, waiting for calls to end"
    );
    let calls_over = async {
        loop {
            // A fresh count, not the last view: it may predate the signal.
            let n: usize = rooms.details().await.iter().map(|d| d.members.len()).sum();
            if n == 0 {
                break;
            }
            if view.changed().await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        _ = calls_over => tracing::info!("drained: no calls left"),
        _ = tokio::time::sleep(limit) => tracing::warn!("drain timeout: ending the remaining calls"),
        _ = shutdown_signal() => tracing::warn!("second signal: ending the remaining calls now"),
    }
    for d in rooms.details().await {
        rooms.end(&d.room, "server_shutdown").await;
    }
    if let Some(w) = &webhooks {
        // Let the rooms' last events reach the queues, then deliver what can be in a few s.
        tokio::time::sleep(Duration::from_millis(200)).await;
        w.flush(Duration::from_secs(5)).await;
    }
    tracing::info!("shutting down");
    handle.graceful_shutdown(Some(Duration::from_secs(2)));
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
    let admin = tokens::admin_claims(keys, "dev-operator", ttl);
    if let Ok(t) = keys.sign(&admin) {
        println!(
            "  dashboard (operators): {}",
            tokens::dashboard_link(base, &t)
        );
    }
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
