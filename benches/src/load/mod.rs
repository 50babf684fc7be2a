//! `load`: kham's load generator and capacity measurement (issue 15, CAPACITY.md §1.5).
//!
//! str0m clients (full ICE, DTLS, SRTP, TWCC feedback), one UDP socket each, all on one media
//! thread ([`engine`]); signaling over kham's WebSocket on a tokio runtime ([`signal`]); the
//! server's CPU, counters and memory from `/proc` and `/metrics` ([`proc`], [`server`]); the
//! figures and validity rules in [`report`].

pub mod client;
pub mod compare;
pub mod engine;
pub mod janus;
pub mod media;
pub mod plan;
pub mod proc;
pub mod repeat;
pub mod report;
pub mod server;
pub mod signal;
pub mod soak;
pub mod srtp;
pub mod stats;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{oneshot, watch};

use crate::load::client::MediaShape;
use crate::load::engine::{Cmd, EngineConfig, Snapshot};
use crate::load::plan::Scenario;
use crate::load::report::{RunFacts, Sample};
use crate::load::server::{ServerError, Target};

/// Which server is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Kham,
    Janus,
}

/// A load run.
#[derive(Debug, Clone)]
pub struct Options {
    pub scenario: Scenario,
    pub size: usize,
    pub seconds: u64,
    pub target: TargetKind,
    pub out: PathBuf,
    /// An already running kham (http://HOST:PORT); None: start one.
    pub url: Option<String>,
    /// The pid of the server behind `url`, to read its CPU and memory.
    pub server_pid: Option<u32>,
    pub api_key: String,
    pub api_secret: String,
    pub kham_bin: Option<PathBuf>,
    pub adaptation: bool,
    /// Joins started per second (0: all at once).
    pub join_rate: f64,
    pub warmup: Duration,
    /// CPUs of the server and the generator; None: no pinning.
    pub pin: Option<(usize, usize)>,
    pub bind: IpAddr,
    pub shape: MediaShape,
    pub verbose: bool,
    /// Run kham in the Janus comparison's network namespace (`janus.sh net`), the generator's
    /// clients on the host side of its veth: the path Janus is measured on.
    pub netns: bool,
    /// `janus.sh` (default: this source tree's `benches/browser/janus/janus.sh`).
    pub janus_script: Option<PathBuf>,
    /// The soak (consults only): every this many seconds the oldest consult leaves and a new
    /// one joins (`soak.rs`).
    pub churn: Option<u64>,
}

/// Why a run could not be made at all (an invalid measurement is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    #[error("janus: {0}")]
    Janus(#[from] janus::JanusError),
    #[error("server: {0}")]
    Server(#[from] ServerError),
    #[error("media thread: {0}")]
    Engine(#[from] engine::EngineError),
    #[error("writing {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("the media thread did not hand back its results")]
    NoResults,
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The outcome: `load.json`'s content and where it went.
#[derive(Debug)]
pub struct Outcome {
    pub json: Value,
    pub valid: bool,
    pub reasons: Vec<String>,
    pub path: PathBuf,
}

/// The server under test.
enum Server {
    Kham {
        target: Target,
        metrics_token: String,
        /// Deleted after kham is stopped (fields drop in order).
        _netns: Option<janus::Netns>,
    },
    Janus {
        /// Started by this run (None: `--url`).
        _janus: Option<janus::JanusServer>,
        ws_url: String,
        pid: Option<u32>,
    },
}

impl Server {
    fn pid(&self) -> Option<u32> {
        match self {
            Server::Kham { target, .. } => target.pid(),
            Server::Janus { pid, .. } => *pid,
        }
    }
}

/// RTP packets the generator's subscribers have received so far (None: no answer).
async fn received(engine: &engine::EngineHandle) -> Option<u64> {
    let (tx, rx) = oneshot::channel();
    engine.send(Cmd::Received(tx)).ok()?;
    tokio::time::timeout(Duration::from_secs(2), rx)
        .await
        .ok()?
        .ok()
}

async fn sample(
    server: &Server,
    engine: &engine::EngineHandle,
    netns: bool,
    snap: Option<Snapshot>,
) -> Sample {
    let counters = match server {
        Server::Kham {
            target,
            metrics_token,
            ..
        } => server::http_get(target.http, "/metrics", Some(metrics_token))
            .ok()
            .filter(|(s, _)| *s == 200)
            .map(|(_, body)| server::parse_counters(&body)),
        Server::Janus { .. } => None,
    };
    let delivered = received(engine).await;
    let pid = server.pid();
    Sample {
        at: Instant::now(),
        server: pid.and_then(proc::proc_cpu),
        generator: proc::proc_cpu(std::process::id()),
        machine: proc::machine_cpu(),
        counters,
        udp_errors: proc::udp_buf_errors(),
        server_udp_errors: pid.filter(|_| netns).and_then(proc::udp_buf_errors_of),
        delivered,
        engine: snap,
    }
}

/// A sample taken right after kham's `/metrics` counters moved past `prev_out`. The shard
/// publishes its counters once a second and the monitor's view follows on its own 1 s tick,
/// so a scrape at an arbitrary instant reads a value up to two seconds old; sampling the
/// process CPU right after the counters change keeps both ends of an interval in the same
/// phase of those ticks (within the 20 ms poll). Gives up after 2.5 s (counters that do not
/// move: nothing is forwarded). A server without counters (Janus) is sampled at once: its
/// packets are counted by the generator at the same instant as its CPU.
async fn sample_fresh(
    server: &Server,
    engine: &engine::EngineHandle,
    netns: bool,
    prev_out: Option<u64>,
    snaps: &mut tokio::sync::mpsc::UnboundedReceiver<Snapshot>,
    last: &mut Option<Snapshot>,
) -> Sample {
    let deadline = Instant::now() + Duration::from_millis(2500);
    loop {
        while let Ok(s) = snaps.try_recv() {
            *last = Some(s);
        }
        let s = sample(server, engine, netns, last.clone()).await;
        let out = s.counters.map(|c| c.rtp_out);
        if matches!(server, Server::Janus { .. })
            || out.is_some() && out != prev_out
            || Instant::now() >= deadline
        {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs one load measurement and writes `out/load.json`.
pub async fn run(o: Options) -> Result<Outcome, LoadError> {
    let janus_target = o.target == TargetKind::Janus;
    if janus_target && o.churn.is_some() {
        return Err(LoadError::Unsupported("--churn with --target janus"));
    }
    let hz = proc::clock_ticks();
    let _ = proc::raise_nofile();
    let generator_pinned = match o.pin {
        None => Err("pinning off (--no-pin)".to_owned()),
        Some((_, cpu)) => proc::pin_self(cpu)
            .map_err(|e| format!("sched_setaffinity to CPU {cpu}: {e}"))
            .and_then(|()| {
                if proc::pinned_to(std::process::id(), cpu) {
                    Ok(())
                } else {
                    Err(format!("not every generator thread is on CPU {cpu}"))
                }
            }),
    };
    // Room names of two runs against one server (--url) must not meet.
    let tag = format!(
        "load{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() % 1_000_000)
    );
    let tag_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let seats = plan::seats(o.scenario, o.size, &tag);
    std::fs::create_dir_all(&o.out).map_err(|e| LoadError::Write(o.out.clone(), e))?;
    let script = o.janus_script.clone().unwrap_or_else(janus::default_script);
    let server = if janus_target {
        match &o.url {
            Some(url) => Server::Janus {
                _janus: None,
                ws_url: url.clone(),
                pid: o.server_pid,
            },
            None => {
                let dir = o.out.join("janus");
                let cpu = o.pin.map(|(s, _)| s);
                let j = tokio::task::spawn_blocking(move || {
                    janus::JanusServer::start(&script, &dir, cpu)
                })
                .await
                .map_err(|_| LoadError::NoResults)??;
                Server::Janus {
                    ws_url: j.ws_url.clone(),
                    pid: Some(j.pid),
                    _janus: Some(j),
                }
            }
        }
    } else {
        let (target, netns) = match &o.url {
            Some(url) => (
                Target::external(url, &o.api_key, &o.api_secret, o.server_pid)?,
                None,
            ),
            None => {
                let netns = if o.netns {
                    let dir = o.out.join("netns");
                    Some(
                        tokio::task::spawn_blocking(move || janus::Netns::create(&script, &dir))
                            .await
                            .map_err(|_| LoadError::NoResults)??,
                    )
                } else {
                    None
                };
                let bin = server::find_binary(o.kham_bin.as_deref())?;
                let opts = server::StartOptions {
                    bin,
                    cpu: o.pin.map(|(s, _)| s),
                    adaptation: o.adaptation,
                    max_participants: plan::room_size(o.scenario, o.size),
                    log: o.out.join("kham.log"),
                    max_rooms: seats.len().max(1000),
                    verbose: o.verbose,
                    netns: o.netns.then_some((janus::NETNS, janus::SERVER_IP)),
                };
                let t = tokio::task::spawn_blocking(move || server::start(&opts))
                    .await
                    .map_err(|_| LoadError::NoResults)??;
                (t, netns)
            }
        };
        let metrics_token = target.admin_token()?;
        Server::Kham {
            target,
            metrics_token,
            _netns: netns,
        }
    };
    let server_netns = server.pid().and_then(proc::other_netns).unwrap_or(false);
    let (snap_tx, mut snap_rx) = tokio::sync::mpsc::unbounded_channel();
    let (engine, media_thread) = engine::start(
        EngineConfig {
            bind: o.bind,
            shape: o.shape.clone(),
        },
        snap_tx,
    )?;
    let (leave_tx, leave_rx) = watch::channel(false);
    // The soak gives each consult its own goodbye (`soak.rs`); otherwise all leave at the end.
    let churn_every = o.churn.filter(|_| o.scenario == Scenario::Consults);
    let mut room_leaves = Vec::new();
    let started = Instant::now();
    let mut joins = Vec::new();
    let gap = if o.join_rate > 0.0 {
        Duration::from_secs_f64(1.0 / o.join_rate)
    } else {
        Duration::ZERO
    };
    let mut tasks = Vec::new();
    // Janus: numeric room ids, and per seat the feeds of the others in its room.
    let mut rooms: Vec<&str> = Vec::new();
    for s in &seats {
        if !rooms.contains(&s.room.as_str()) {
            rooms.push(&s.room);
        }
    }
    let room_base = janus::room_base(tag_secs);
    let room_id =
        |name: &str| room_base + rooms.iter().position(|r| *r == name).unwrap_or(0) as u64;
    if let Server::Janus { ws_url, .. } = &server {
        let ids: Vec<u64> = (0..rooms.len() as u64).map(|i| room_base + i).collect();
        janus::create_rooms(ws_url, &ids, plan::room_size(o.scenario, o.size)).await?;
    }
    for (idx, s) in seats.iter().enumerate() {
        let (tx, rx) = oneshot::channel();
        joins.push(rx);
        let leave = if churn_every.is_some() {
            if idx % 2 == 0 {
                room_leaves.push(watch::channel(false));
            }
            room_leaves
                .last()
                .map_or_else(|| leave_rx.clone(), |(_, rx)| rx.clone())
        } else {
            leave_rx.clone()
        };
        match &server {
            Server::Kham { target, .. } => {
                let token = target.token(&s.room, &s.identity, s.role)?;
                let j = signal::Joiner {
                    idx,
                    url: target.ws_url(&s.room, &token),
                    publish: s.publish,
                };
                tasks.push(tokio::spawn(signal::participant(
                    j,
                    engine.clone(),
                    leave,
                    tx,
                )));
            }
            Server::Janus { ws_url, .. } => {
                let feeds = if s.receives {
                    seats
                        .iter()
                        .enumerate()
                        .filter(|(k, p)| *k != idx && p.publish && p.room == s.room)
                        .map(|(k, _)| janus::feed_id(k))
                        .collect()
                } else {
                    Vec::new()
                };
                let j = janus::JanusSeat {
                    idx,
                    sub_idx: seats.len() + idx,
                    url: ws_url.clone(),
                    room: room_id(&s.room),
                    publish: s.publish,
                    feeds,
                };
                tasks.push(tokio::spawn(janus::participant(
                    j,
                    engine.clone(),
                    leave,
                    tx,
                )));
            }
        }
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
    }
    let mut join_errors = Vec::new();
    let mut joins_signaled = 0;
    for (i, rx) in joins.into_iter().enumerate() {
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(Ok(()))) => joins_signaled += 1,
            Ok(Ok(Err(e))) => join_errors.push(format!("{i}: {e}")),
            Ok(Err(_)) => join_errors.push(format!("{i}: signaling task ended")),
            Err(_) => join_errors.push(format!("{i}: no answer within 30 s")),
        }
    }
    let receivers = seats.iter().filter(|s| s.receives).count();
    // Wait until every receiver gets media (or 30 s), draining snapshots.
    let mut last: Option<Snapshot> = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(s)) = tokio::time::timeout(Duration::from_millis(1100), snap_rx.recv()).await
        {
            let done = s.receiving >= receivers;
            last = Some(s);
            if done {
                break;
            }
        }
    }
    eprintln!(
        "load: {} participants, {} signaled, {} receiving after {:.1} s",
        seats.len(),
        joins_signaled,
        last.as_ref().map_or(0, |s| s.receiving),
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(o.warmup).await;
    while let Ok(s) = snap_rx.try_recv() {
        last = Some(s);
    }
    let now_out = sample(&server, &engine, server_netns, None)
        .await
        .counters
        .map(|c| c.rtp_out);
    let first = sample_fresh(
        &server,
        &engine,
        server_netns,
        now_out,
        &mut snap_rx,
        &mut last,
    )
    .await;
    engine.send(Cmd::Measure(true))?;
    let mut prev = first.clone();
    let mut seconds = Vec::new();
    let mut churn = churn_every.map(|_| {
        soak::Churn::new(
            &tag,
            seats.len() / 2,
            room_leaves.into_iter().map(|(tx, _)| tx).collect(),
        )
    });
    let mut soak_samples = Vec::new();
    let t0 = Instant::now();
    for k in 0..o.seconds {
        if let (Some(c), Some(every), Server::Kham { target, .. }) =
            (churn.as_mut(), churn_every, &server)
            && (k + 1) % every.max(1) == 0
        {
            c.rotate(target, &engine, &mut tasks)?;
        }
        // Wait most of the second, then for the counters' next publication.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let prev_out = prev.counters.map(|c| c.rtp_out);
        let s = sample_fresh(
            &server,
            &engine,
            server_netns,
            prev_out,
            &mut snap_rx,
            &mut last,
        )
        .await;
        let i = report::interval(&prev, &s, hz);
        let t = t0.elapsed().as_secs_f64();
        println!("{}", report::line(t, &i, last.as_ref()));
        seconds.push(report::second_json(t, &i, last.as_ref()));
        if churn.is_some() {
            soak_samples.push(soak::SoakSample::new(
                t,
                server.pid().and_then(proc::rss_mb),
                i.forwarded_pps,
                s.counters,
            ));
        }
        prev = s;
    }
    let window = report::interval(&first, &prev, hz);
    let pss_mb = server.pid().and_then(proc::pss_mb);
    // Checked at the end of the window: every thread the server started by then (Janus makes
    // one per handle as participants join) must be on its CPU.
    let server_pinned = match (o.pin, server.pid()) {
        (None, _) => Err("pinning off (--no-pin)".to_owned()),
        (Some(_), None) => {
            Err("server not started by this run (--url), no --server-pid".to_owned())
        }
        (Some((cpu, _)), Some(pid)) => {
            if proc::pinned_to(pid, cpu) {
                Ok(())
            } else {
                Err(format!(
                    "server threads allowed on {:?}, not CPU {cpu} alone",
                    proc::allowed_cpus(pid)
                ))
            }
        }
    };
    engine.send(Cmd::Measure(false))?;
    engine.send(Cmd::StopMedia)?;
    // What is in flight arrives (or is lost) before the accounting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (fin_tx, fin_rx) = oneshot::channel();
    engine.send(Cmd::Finish(fin_tx))?;
    let fin = fin_rx.await.map_err(|_| LoadError::NoResults)?;
    let _ = leave_tx.send(true);
    if let Some(c) = churn.as_mut() {
        c.leave_all();
    }
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    let _ = media_thread.join();
    let facts = RunFacts {
        scenario: o.scenario.name(),
        size: o.size,
        seconds: o.seconds,
        target: if janus_target { "janus" } else { "kham" },
        server_netns,
        video_received: if janus_target {
            "Janus VideoRoom substream 2 (f) temporal 2 of each publisher, and its audio"
        } else if o.adaptation {
            "the layer kham chooses (media.adaptation = true), and audio"
        } else {
            "the top layer (f, media.adaptation = false) of each publisher, and its audio"
        },
        adaptation: o.adaptation && !janus_target,
        participants: seats.len(),
        receivers,
        joins_signaled,
        join_errors,
        server_pinned,
        generator_pinned,
        pss_mb,
        started_server: o.url.is_none(),
        generator_cpu: o.pin.map(|(_, g)| g),
    };
    let (mut json, valid, reasons) = report::build(&facts, &window, &fin, &seconds);
    if let Some(c) = &churn {
        // The warm-up of the soak: the first tenth of the run (at most 5 minutes), and at least
        // the 20 s a room lingers after its last participant (rooms.departure_timeout) plus a
        // few replacements, so that the lingering rooms have reached their steady number.
        let warmup_s = (o.seconds as f64 / 10.0).clamp(40.0, 300.0);
        json["soak"] = serde_json::json!({
            "churn_every_s": churn_every,
            "consults_replaced": c.replaced,
            "joins_ok": c.joins_ok,
            "join_failures": c.join_failures.len(),
            "join_failure_examples": c.join_failures.iter().take(5).collect::<Vec<_>>(),
            "warmup_s": warmup_s,
            "summary": soak::summary(&soak_samples, warmup_s),
            "per_10s": soak_samples.iter().step_by(10).map(|s| serde_json::json!({
                "t": s.t, "rss_mb": s.rss_mb, "forwarded_pps": s.forwarded_pps,
                "rooms": s.rooms, "participants": s.participants, "tracks": s.tracks,
                "media_sessions": s.media_sessions,
            })).collect::<Vec<_>>(),
        });
    }
    drop(server);
    write_outcome(&o.out, json, valid, reasons)
}

/// Writes `out/load.json` and returns the outcome it holds.
pub(crate) fn write_outcome(
    out: &std::path::Path,
    json: Value,
    valid: bool,
    reasons: Vec<String>,
) -> Result<Outcome, LoadError> {
    std::fs::create_dir_all(out).map_err(|e| LoadError::Write(out.to_path_buf(), e))?;
    let path = out.join("load.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)
        .map_err(|e| LoadError::Write(path.clone(), e))?;
    Ok(Outcome {
        json,
        valid,
        reasons,
        path,
    })
}
