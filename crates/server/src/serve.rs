//! `kham serve`: binds the media sockets and the HTTP listener and runs until SIGTERM/Ctrl-C,
//! then drains: no new joins, `/readyz` 503, calls go on until they end or `rooms.drain_timeout`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use kham_proto::Role;
use kham_signal::{
    AppState, Counters, FileRevocations, MemoryRevocations, RoomSettings, RoomTimeouts, Rooms,
    SharedRevocations, TokenKeys,
};
use serde_json::json;
use tokio::sync::watch;

use crate::admin::{self, AdminState};
use crate::config::{Config, HttpConfig};
use crate::http_limits::{self, ConnLimit, LimitAcceptor};
use crate::media_stats::MediaBoards;
use crate::metrics::{Metrics, Sources};
use crate::monitor::{History, Monitor, OpsView};
use crate::observer::ServerObserver;
use crate::shard::{self, ShardSetup};
use crate::tokens;
use crate::udp;
use crate::webhooks::{WebhookStats, Webhooks};

pub fn run(config: Option<&Path>, dev: bool) -> anyhow::Result<()> {
    let cfg = Config::load(config, dev)?;
    crate::logging::init(&cfg.log.level);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(cfg, dev))
}

async fn serve(cfg: Config, dev: bool) -> anyhow::Result<()> {
    // Media: one UDP socket per shard.
    let mut sockets = Vec::new();
    let mut announce = Vec::new();
    let mut tcp = Vec::new();
    let mut inodes = Vec::new();
    let mut buffers: Option<udp::Buffers> = None;
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
        let b = udp::set_buffers(
            &socket,
            cfg.media.udp_recv_buffer,
            cfg.media.udp_send_buffer,
        )
        .with_context(|| format!("setting the buffer sizes of media UDP {addr}"))?;
        warn_if_short(i, &b);
        // What /healthz reports: the smallest grant of any shard.
        buffers = Some(match buffers {
            Some(o) => udp::Buffers {
                recv_granted: o.recv_granted.min(b.recv_granted),
                send_granted: o.send_granted.min(b.send_granted),
                ..o
            },
            None => b,
        });
        inodes.extend(udp::socket_inode(&socket));
        let ips = if cfg.media.announce.is_empty() {
            vec![cfg.media.bind]
        } else {
            cfg.media.announce.clone()
        };
        if cfg.media.ice_tcp {
            // The TCP port mirrors the UDP one (a free one when UDP's is picked by the system).
            let addr = SocketAddr::new(cfg.media.bind, if port == 0 { 0 } else { bound.port() });
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("binding ICE-TCP {addr} (media.ice_tcp)"))?;
            listener.set_nonblocking(true)?;
            let tcp_port = listener.local_addr()?.port();
            tracing::info!(port = tcp_port, shard = i, "ICE-TCP listener bound");
            let tcp_announce = ips
                .iter()
                .map(|ip| SocketAddr::new(*ip, tcp_port))
                .collect();
            tcp.push(Some((listener, tcp_announce)));
        } else {
            tcp.push(None);
        }
        announce.push(
            ips.into_iter()
                .map(|ip| SocketAddr::new(ip, bound.port()))
                .collect(),
        );
        tracing::info!(
            port = bound.port(),
            shard = i,
            recv_buffer = b.recv_granted,
            send_buffer = b.send_granted,
            "media UDP socket bound"
        );
        sockets.push(socket);
    }
    let (media, boards) = shard::start(ShardSetup {
        sockets,
        announce,
        tcp,
        max_participants: cfg.rooms.max_participants,
        reconnect_grace: cfg.rooms.reconnect_grace,
        relay_ips: relay_ips(&cfg.turn).await,
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
    let conn_limit = ConnLimit::new(http_limits::fit_fd_limit(cfg.http.max_connections));
    let queue_slot = Arc::new(std::sync::OnceLock::new());
    let metrics = Metrics::new(Sources {
        view: view_rx.clone(),
        signal: signal_counters.clone(),
        webhooks: webhook_stats.clone(),
        draining: draining.clone(),
        http: conn_limit.clone(),
        queue: queue_slot.clone(),
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
        max_rooms: cfg.rooms.max_rooms,
        timeouts: RoomTimeouts {
            empty_timeout: cfg.rooms.empty_timeout,
            departure_timeout: cfg.rooms.departure_timeout,
            reconnect_grace: cfg.rooms.reconnect_grace,
        },
        turn: kham_signal::TurnSettings {
            urls: cfg.turn.urls.clone(),
            secret: cfg.turn.secret.clone(),
            ttl: cfg.turn.ttl,
        },
    };
    let rooms = Rooms::with_store(
        Arc::new(media),
        settings,
        observer.clone(),
        revocations(&cfg.auth.revocations_file, dev)?,
    );
    let limits = kham_signal::RateLimits {
        rate: cfg.signaling.rate,
        burst: cfg.signaling.burst,
        flood_after: cfg.signaling.flood_after,
    };
    let queue = kham_signal::QueueService::start(
        Arc::new(kham_signal::MemoryQueue::new(cfg.queue.settings())),
        kham_signal::QueueServiceConfig {
            keys: keys.clone(),
            rooms: rooms.clone(),
            observer,
            draining: draining.clone(),
            limits,
            call_token_ttl: Duration::from_secs(4 * 3600),
        },
    );
    let _ = queue_slot.set(queue.clone());
    let history = Arc::new(Mutex::new(History::default()));
    tokio::spawn(
        Monitor {
            rooms: rooms.clone(),
            boards: boards.clone(),
            metrics: metrics.clone(),
            history: history.clone(),
            draining: draining.clone(),
            view: view_tx,
            // Kernel drops only when every shard's socket can be found in /proc.
            sockets: if inodes.len() == cfg.media.shards {
                inodes
            } else {
                Vec::new()
            },
        }
        .run(),
    );
    let state = AppState {
        keys: keys.clone(),
        rooms: rooms.clone(),
        counters: signal_counters,
        health: health(boards.clone(), view_rx.clone(), buffers.unwrap_or_default()),
        draining: draining.clone(),
        limits,
    };
    let admin = admin::router(AdminState {
        keys: keys.clone(),
        rooms: rooms.clone(),
        boards,
        view: view_rx.clone(),
        history,
        metrics,
        metrics_public: cfg.admin.metrics_public,
        queue: queue.clone(),
    });
    let app = kham_signal::router(state)
        .merge(kham_signal::queue::api::router(queue))
        .merge(admin)
        .fallback(crate::web::static_handler)
        .layer(axum::middleware::from_fn_with_state(
            cfg.http.request_timeout,
            http_limits::request_deadline,
        ));

    let base = cfg.public_url();
    if dev {
        print_dev_links(&keys, &base, &cfg.queue.specialties);
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
    let app = app.into_make_service();
    if cfg.tls_enabled() {
        // rustls needs a process-wide crypto provider; aws-lc-rs is already linked for str0m.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let tls = tls_config(&cfg.http).await?;
        let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
            .handshake_timeout(cfg.http.header_read_timeout)
            .acceptor(LimitAcceptor(conn_limit));
        let server = axum_server::bind(listen).acceptor(acceptor);
        with_http_limits(server, &cfg.http, handle)
            .serve(app)
            .await?;
    } else {
        let server = axum_server::bind(listen).acceptor(LimitAcceptor(conn_limit));
        with_http_limits(server, &cfg.http, handle)
            .serve(app)
            .await?;
    }
    Ok(())
}

/// The revoked-token store: the configured file, or memory only (with a warning outside --dev:
/// a restart would let denied and removed tokens back in).
fn revocations(file: &Path, dev: bool) -> anyhow::Result<SharedRevocations> {
    if file.as_os_str().is_empty() {
        if !dev {
            tracing::warn!(
                "auth.revocations_file is not set: denied and removed tokens are kept in memory \
                 only, and a restart lets them join again until they expire"
            );
        }
        return Ok(Arc::new(MemoryRevocations::default()));
    }
    let (store, report) = FileRevocations::open(file, kham_signal::unix_now())
        .with_context(|| format!("auth.revocations_file {}", file.display()))?;
    tracing::info!(
        file = %file.display(),
        kept = report.kept,
        expired = report.expired,
        skipped = report.skipped,
        "revoked tokens loaded"
    );
    if report.skipped > 0 {
        tracing::warn!(
            skipped = report.skipped,
            "auth.revocations_file had lines that are not revocations; they were dropped"
        );
    }
    Ok(Arc::new(store))
}

/// The certificate and key, offering HTTP/1.1 only in ALPN (see [`with_http_limits`]).
async fn tls_config(http: &HttpConfig) -> anyhow::Result<axum_server::tls_rustls::RustlsConfig> {
    use axum_server::tls_rustls::RustlsConfig;
    let loaded = RustlsConfig::from_pem_file(&http.tls_cert, &http.tls_key)
        .await
        .context("loading http.tls_cert / http.tls_key")?;
    let mut config = (*loaded.get_inner()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}

/// The listener's timeouts. kham speaks HTTP/1.1 only: a connection must send its first request
/// head within `header_read_timeout` (axum-server's first-request timeout, which also covers
/// hyper's protocol detection), and every later one within `idle_timeout` of the previous
/// response (hyper's header-read timer, which starts as soon as a kept-alive connection is
/// idle). Once a connection is upgraded to a WebSocket, hyper's timers are gone with its HTTP
/// state: the socket task's own ping and silence limit take over.
///
/// HTTP/2 has no idle or header timeout in hyper, so a connection that made one request could
/// stay open forever. Browsers only use it when TLS offers it in ALPN, which [`tls_config`] does
/// not; a client that sends the HTTP/2 preface anyway is allowed no streams, so it never makes a
/// first request and is closed after `header_read_timeout`. (axum-server's HTTP/1-only mode
/// would also turn off WebSocket upgrades.)
fn with_http_limits<A>(
    mut server: axum_server::Server<SocketAddr, A>,
    http: &HttpConfig,
    handle: axum_server::Handle<SocketAddr>,
) -> axum_server::Server<SocketAddr, A> {
    let builder = server.http_builder();
    builder.http1().header_read_timeout(http.idle_timeout);
    builder.http2().max_concurrent_streams(0);
    let accept_failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    server
        .first_request_timeout(http.header_read_timeout)
        .handle(handle)
        .accept_error_handler(move |peer, e| {
            if peer.is_some() {
                // One connection's TLS handshake failed or timed out, or the cap refused it
                // (counted in /metrics): routine, and the peer's address is not for the log.
                tracing::debug!(error = %e, "HTTP connection closed before its first request");
            } else if http_limits::due(&accept_failures) {
                // The listener itself failed, e.g. out of file descriptors.
                tracing::warn!(error = %e, "accepting HTTP connections fails");
            }
        })
}

/// Media counters for `/healthz`: the shards' own, the kernel's drops at the media sockets
/// (absent where unknown), and the socket buffer sizes granted.
fn health(
    boards: MediaBoards,
    view: watch::Receiver<Arc<OpsView>>,
    buffers: udp::Buffers,
) -> kham_signal::HealthFn {
    Arc::new(move || {
        let c = boards.counters();
        let mut body = json!({
            "udp_in": c.udp_in,
            "udp_out": c.udp_out,
            "udp_dropped": c.udp_dropped + c.udp_oversized,
            "udp_send_dropped": c.send_dropped,
            "udp_recv_buffer": buffers.recv_granted,
            "udp_send_buffer": buffers.send_granted,
        });
        if let (Some(d), Some(o)) = (view.borrow().kernel_drops, body.as_object_mut()) {
            o.insert("udp_kernel_drops".into(), json!(d));
        }
        body
    })
}

/// The TURN relays' addresses, for the count of relayed sessions: `turn.relay_ips` and the hosts
/// of `turn.urls`, resolved once now (a name that does not resolve is left out, with a warning).
async fn relay_ips(turn: &crate::config::TurnConfig) -> Vec<std::net::IpAddr> {
    let mut ips = turn.relay_ips.clone();
    for url in &turn.urls {
        let Some((host, port)) = kham_signal::turn::url_host(url) else {
            continue;
        };
        match tokio::net::lookup_host((host, port)).await {
            Ok(addrs) => ips.extend(addrs.map(|a| a.ip())),
            Err(e) => {
                tracing::warn!(%host, error = %e, "a TURN server's name did not resolve: its relayed sessions are counted as direct")
            }
        }
    }
    ips.sort();
    ips.dedup();
    ips
}

/// Warns when the kernel granted a media socket less buffer than configured.
fn warn_if_short(shard: usize, b: &udp::Buffers) {
    if b.recv_granted < b.recv_requested {
        tracing::warn!(
            shard,
            requested = b.recv_requested,
            granted = b.recv_granted,
            "media UDP receive buffer smaller than media.udp_recv_buffer: raise net.core.rmem_max (README, \"UDP buffers\")"
        );
    }
    if b.send_granted < b.send_requested {
        tracing::warn!(
            shard,
            requested = b.send_requested,
            granted = b.send_granted,
            "media UDP send buffer smaller than media.udp_send_buffer: raise net.core.wmem_max (README, \"UDP buffers\")"
        );
    }
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

fn print_dev_links(keys: &TokenKeys, base: &str, specialty_names: &[String]) {
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
    if let Ok(t) = keys.sign(&tokens::queue_claims(
        keys,
        "dev-station",
        "Trạm y tế xã",
        ttl,
    )) {
        println!(
            "  station queue (request a consult): {}",
            tokens::queue_link(base, &t)
        );
    }
    let duty = tokens::duty_claims(keys, "dev-specialist", "Bác sĩ chuyên khoa Hà", ttl);
    let specialties = tokens::Specialties {
        specialties: specialty_names.to_vec(),
    };
    if let Ok(t) = keys.sign_with(&duty, &specialties) {
        println!(
            "  doctor duty page (all specialties): {}",
            tokens::duty_link(base, &t)
        );
    }
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
