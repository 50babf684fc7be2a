//! One participant flooding the signaling socket must not push the others out of the call:
//! its messages past the rate limit are dropped with `rate_limited`, it is then closed with
//! 4005 `flooding`, and a participant reading slowly (a weak link) stays in the call. Repeated
//! mutes are not re-broadcast at all.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use kham_tests::signal::{CloseInfo, SignalEvent};
use kham_tests::{KhamServer, SignalClient, msg_type, role, unique};
use prometheus_parse::{Scrape, Value as PromValue};
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

/// What the slow reader has read so far, one frame per `SLOW_READ_EVERY`.
#[derive(Default)]
struct SlowLog {
    msgs: Vec<Value>,
    closed: Option<Option<CloseInfo>>,
}

const SLOW_READ_EVERY: Duration = Duration::from_millis(50);

/// A participant on a weak link: a tiny socket receive buffer and one frame read every 50 ms,
/// so whatever the server sends it beyond that piles up in the server's queue for it.
async fn slow_reader(
    server: &KhamServer,
    room: &str,
    identity: &str,
) -> Result<(
    futures_util::stream::SplitSink<
        tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
        Message,
    >,
    Arc<Mutex<SlowLog>>,
)> {
    let token = server.token(room, identity, identity, role::STATION)?;
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let tcp = socket.connect(server.http_addr).await?;
    let (ws, _) = tokio_tungstenite::client_async(server.ws_url(room, &token), tcp)
        .await
        .context("slow reader upgrade")?;
    let (sink, mut stream) = ws.split();
    let log = Arc::new(Mutex::new(SlowLog::default()));
    let l = log.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SLOW_READ_EVERY).await;
            let frame = stream.next().await;
            let mut log = l.lock().unwrap_or_else(|p| p.into_inner());
            match frame {
                Some(Ok(Message::Text(t))) => {
                    if let Ok(v) = serde_json::from_str(t.as_str()) {
                        log.msgs.push(v);
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    log.closed = Some(f.map(|f| CloseInfo {
                        code: u16::from(f.code),
                        reason: f.reason.to_string(),
                    }));
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    log.closed.get_or_insert(None);
                    return;
                }
            }
        }
    });
    Ok((sink, log))
}

/// Waits until the slow reader has read a message matching `pred` (or its socket closed).
async fn slow_expect(
    log: &Arc<Mutex<SlowLog>>,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        {
            let log = log.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(v) = log.msgs.iter().find(|v| pred(v)) {
                return Ok(v.clone());
            }
            if let Some(c) = &log.closed {
                bail!(
                    "the slow reader's socket closed ({c:?}) before {what}; it read {} messages",
                    log.msgs.len()
                );
            }
        }
        if Instant::now() > deadline {
            bail!("the slow reader did not read {what} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn join(
    server: &KhamServer,
    room: &str,
    identity: &str,
    name: &str,
) -> Result<(SignalClient, String)> {
    let token = server.token(room, identity, name, role::STATION)?;
    let mut c = SignalClient::connect(&server.ws_url(room, &token)).await?;
    let w = c.expect("welcome").await?;
    let id = w["me"]["id"].as_str().unwrap_or_default().to_owned();
    Ok((c, id))
}

fn is_left(v: &Value, id: &str) -> bool {
    msg_type(v) == "participant_left" && v["id"].as_str() == Some(id)
}

fn is_updated(v: &Value, id: &str) -> bool {
    msg_type(v) == "participant_updated" && v["participant"]["id"].as_str() == Some(id)
}

async fn signal_errors(server: &KhamServer, admin: &str, kind: &str) -> Result<f64> {
    let r = server.http("GET", "/metrics", Some(admin), None).await?;
    ensure!(r.status == 200, "GET /metrics: {}", r.status);
    let text = r.text();
    let s = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).context("parsing /metrics")?;
    Ok(s.samples
        .iter()
        .find(|x| x.metric == "kham_signal_errors_total" && x.labels.get("type") == Some(kind))
        .and_then(|x| match x.value {
            PromValue::Counter(v) | PromValue::Untyped(v) => Some(v),
            _ => None,
        })
        .unwrap_or(0.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooder_is_closed_and_a_slow_reader_stays() -> Result<()> {
    let server = KhamServer::start().await?;
    let admin = server.admin_token()?;
    let room = unique("flood");
    let (mut doctor, _) = join(&server, &room, "dr-1", "Bác sĩ").await?;
    let (mut slow_sink, slow) = slow_reader(&server, &room, "station-slow").await?;
    let slow_welcome = slow_expect(&slow, "welcome", Duration::from_secs(10), |v| {
        msg_type(v) == "welcome"
    })
    .await?;
    let slow_id = slow_welcome["me"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // A long display name makes each re-broadcast mute big, as a real name in Vietnamese can
    // be: the 40,000 of them would be megabytes for the slow reader's queue.
    let long_name = "Trạm Y tế xã Nghĩa Đồng ".repeat(12);
    let (mut flooder, flooder_id) = join(&server, &room, "station-flood", &long_name).await?;
    doctor
        .expect_where("the flooder joined", Duration::from_secs(10), |v| {
            msg_type(v) == "participant_joined"
                && v["participant"]["id"].as_str() == Some(flooder_id.as_str())
        })
        .await?;

    // 40,000 mutes as fast as the socket takes them, alternating so that each one is a real
    // change (collapsing repeats is tested below).
    let tx = flooder.sender();
    let started = Instant::now();
    let mut sent = 0u32;
    for i in 0..40_000u32 {
        let msg = json!({"type": "mute", "kind": "audio", "muted": i % 2 == 0});
        if tx.send_json(&msg).await.is_err() {
            break; // the server closed it
        }
        sent += 1;
    }
    println!("flooder sent {sent} mutes in {:?}", started.elapsed());

    // The flooder is told, then closed with its own code.
    let err = flooder.expect_error("rate_limited").await?;
    ensure!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("too many messages")),
        "rate_limited message: {err}"
    );
    let close = flooder.expect_closed(Duration::from_secs(30)).await?;
    ensure!(
        matches!(close, Some(CloseInfo { code: 4005, .. })),
        "flooder close: {close:?}"
    );
    let limited = flooder
        .drain()
        .into_iter()
        .filter(|e| matches!(e, SignalEvent::Msg(v) if v["code"] == "rate_limited"))
        .count()
        + 1;
    ensure!(
        limited <= 3,
        "rate_limited is sent at most once a second, got {limited}"
    );

    // The doctor sees it leave for flooding, having seen only a bounded share of its mutes.
    let left = doctor
        .expect_where("the flooder left", Duration::from_secs(30), |v| {
            is_left(v, &flooder_id)
        })
        .await?;
    ensure!(left["reason"] == "flooding", "reason: {left}");

    // The slow reader reads its way through and sees the same; its socket stays open.
    let left = slow_expect(
        &slow,
        "the flooder's participant_left",
        Duration::from_secs(60),
        |v| is_left(v, &flooder_id),
    )
    .await?;
    ensure!(left["reason"] == "flooding", "reason: {left}");
    let updates = slow
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .msgs
        .iter()
        .filter(|v| is_updated(v, &flooder_id))
        .count();
    ensure!(
        updates < 1000,
        "the slow reader got {updates} of the flooder's updates"
    );

    // ...and is still a member of the call: its mute reaches the doctor.
    slow_sink
        .send(Message::text(
            json!({"type": "mute", "kind": "video", "muted": true}).to_string(),
        ))
        .await?;
    let upd = doctor
        .expect_where("the slow reader's mute", Duration::from_secs(10), |v| {
            is_updated(v, &slow_id)
        })
        .await
        .context("the slow reader must still be in the call")?;
    ensure!(upd["participant"]["video_muted"] == true, "{upd}");
    doctor.ping_pong(1).await?;
    let lost: Vec<_> = doctor
        .drain()
        .into_iter()
        .filter(|e| matches!(e, SignalEvent::Msg(v) if is_left(v, &slow_id)))
        .collect();
    ensure!(lost.is_empty(), "the slow reader was dropped: {lost:?}");
    ensure!(
        slow.lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed
            .is_none(),
        "the slow reader's socket was closed"
    );

    // Counted in /metrics (refreshed once a second).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let flooding = signal_errors(&server, &admin, "flooding").await?;
        let limited = signal_errors(&server, &admin, "rate_limited").await?;
        if flooding == 1.0 && limited >= 1.0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "kham_signal_errors_total: flooding {flooding}, rate_limited {limited}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_mutes_are_not_rebroadcast() -> Result<()> {
    let server = KhamServer::start().await?;
    let room = unique("mutes");
    let (mut doctor, _) = join(&server, &room, "dr-1", "Doctor").await?;
    let (mut station, sid) = join(&server, &room, "station-1", "Station").await?;
    doctor.expect("participant_joined").await?;
    for _ in 0..10 {
        station
            .send(json!({"type": "mute", "kind": "audio", "muted": true}))
            .await?;
    }
    // Unmuting a camera that is on changes nothing either.
    station
        .send(json!({"type": "mute", "kind": "video", "muted": false}))
        .await?;
    station.ping_pong(1).await?;
    doctor.ping_pong(2).await?;
    let updates: Vec<Value> = doctor
        .collect_for(Duration::from_millis(500), "participant_updated")
        .await
        .into_iter()
        .filter(|v| is_updated(v, &sid))
        .collect();
    ensure!(
        updates.len() == 1 && updates[0]["participant"]["audio_muted"] == true,
        "one update for ten identical mutes, got {updates:?}"
    );
    Ok(())
}
