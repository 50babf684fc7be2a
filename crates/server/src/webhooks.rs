//! Webhooks for the booking system: room and participant events POSTed as signed JSON.
//!
//! Rooms hand events over with [`Webhooks::send`], which only serializes and `try_send`s into a
//! bounded queue per URL: a full queue drops the event (counted), so a slow or dead endpoint
//! never holds up a call. One task per URL delivers in order, retrying with exponential backoff.
//!
//! Signature: `X-Kham-Signature: sha256=<hex HMAC-SHA256(api_secret, "<timestamp>.<body>")>`
//! with `X-Kham-Timestamp: <Unix seconds>`. The timestamp is inside the signed text so a captured
//! request cannot be replayed later with a fresh timestamp: receivers reject old timestamps.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kham_signal::{Notice, Who};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::config::WebhooksConfig;

/// Delivery outcomes, for `/metrics`.
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub delivered: AtomicU64,
    /// Gave up after the last attempt.
    pub failed: AtomicU64,
    /// Queue full: never attempted.
    pub dropped: AtomicU64,
    /// Attempts that failed and were retried.
    pub retried: AtomicU64,
    /// Events queued or being delivered right now.
    pub pending: AtomicU64,
}

struct Event {
    id: String,
    body: Arc<str>,
}

/// Handle to the delivery tasks.
pub struct Webhooks {
    queues: Vec<mpsc::Sender<Arc<Event>>>,
    include_names: bool,
    stats: Arc<WebhookStats>,
}

impl Webhooks {
    /// Starts one delivery task per URL; `None` when no URL is configured.
    pub fn start(
        cfg: &WebhooksConfig,
        secret: &str,
        stats: Arc<WebhookStats>,
    ) -> anyhow::Result<Option<Webhooks>> {
        if cfg.urls.is_empty() {
            return Ok(None);
        }
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .user_agent(concat!("kham/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let key = Arc::new(aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            secret.as_bytes(),
        ));
        let mut queues = Vec::new();
        for url in &cfg.urls {
            let (tx, rx) = mpsc::channel(cfg.queue);
            queues.push(tx);
            tokio::spawn(deliver(
                url.clone(),
                rx,
                client.clone(),
                key.clone(),
                Retry {
                    attempts: cfg.max_attempts,
                    first: cfg.first_retry,
                },
                stats.clone(),
            ));
        }
        Ok(Some(Webhooks {
            queues,
            include_names: cfg.include_names,
            stats,
        }))
    }

    /// Queues the webhook for a notice, if it has one. Never waits.
    pub fn send(&self, notice: &Notice) {
        let Some(body) = event_body(notice, self.include_names, unix_ms()) else {
            return;
        };
        let event = Arc::new(Event {
            id: body["id"].as_str().unwrap_or_default().to_owned(),
            body: body.to_string().into(),
        });
        for q in &self.queues {
            self.stats.pending.fetch_add(1, Ordering::Relaxed);
            if q.try_send(event.clone()).is_err() {
                self.stats.pending.fetch_sub(1, Ordering::Relaxed);
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("webhook queue full; event dropped");
            }
        }
    }

    /// Waits (at most `limit`) until every queued event was delivered or given up.
    pub async fn flush(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.stats.pending.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[derive(Clone, Copy)]
struct Retry {
    attempts: u32,
    first: Duration,
}

async fn deliver(
    url: String,
    mut rx: mpsc::Receiver<Arc<Event>>,
    client: reqwest::Client,
    key: Arc<aws_lc_rs::hmac::Key>,
    retry: Retry,
    stats: Arc<WebhookStats>,
) {
    while let Some(ev) = rx.recv().await {
        let mut wait = retry.first;
        let mut ok = false;
        for attempt in 1..=retry.attempts {
            let ts = unix_ms() / 1000;
            let sig = sign(&key, ts, &ev.body);
            let res = client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-kham-event-id", ev.id.as_str())
                .header("x-kham-timestamp", ts.to_string())
                .header("x-kham-signature", sig)
                .body(ev.body.to_string())
                .send()
                .await;
            match res {
                Ok(r) if r.status().is_success() => {
                    ok = true;
                    break;
                }
                // The URL comes from the configuration, not from users: fine to log.
                Ok(r) => tracing::debug!(%url, status = %r.status(), attempt, "webhook refused"),
                Err(e) => tracing::debug!(%url, error = %e, attempt, "webhook failed"),
            }
            if attempt < retry.attempts {
                stats.retried.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
        }
        if ok {
            stats.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%url, attempts = retry.attempts, "webhook not delivered; giving up");
        }
        stats.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `sha256=<hex>` of HMAC-SHA256 over `"<timestamp>.<body>"`.
fn sign(key: &aws_lc_rs::hmac::Key, timestamp: u64, body: &str) -> String {
    let mut ctx = aws_lc_rs::hmac::Context::with_key(key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body.as_bytes());
    let tag = ctx.sign();
    let mut out = String::from("sha256=");
    for b in tag.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn participant(who: &Who, names: bool) -> Value {
    let mut p = json!({"id": who.id, "identity": who.identity, "role": who.role});
    if names {
        p["name"] = json!(who.name);
    }
    p
}

/// The JSON body for a notice; `None` for notices that are not webhook events.
fn event_body(n: &Notice, names: bool, at_ms: u64) -> Option<Value> {
    let (event, room, extra) = match n {
        Notice::RoomStarted { room } => ("room_started", Some(room), json!({})),
        Notice::RoomFinished { room, ended } => {
            ("room_finished", Some(room), json!({"ended": ended}))
        }
        Notice::ParticipantJoined { room, who, waiting } => (
            "participant_joined",
            Some(room),
            json!({"participant": participant(who, names), "waiting": waiting}),
        ),
        Notice::ParticipantAdmitted { room, who } => (
            "participant_admitted",
            Some(room),
            json!({"participant": participant(who, names)}),
        ),
        Notice::ParticipantLeft { room, who, reason } => (
            "participant_left",
            Some(room),
            json!({"participant": participant(who, names), "reason": reason}),
        ),
        Notice::MediaConnected { .. } => return None,
        // The queue's events carry no names, no note and no station identity, whatever
        // `include_names` says: a request is its id, specialty and urgency.
        Notice::QueueEntered {
            request_id,
            specialty,
            urgency,
        } => (
            "queue_entered",
            None,
            json!({"request_id": request_id, "specialty": specialty, "urgency": urgency}),
        ),
        Notice::QueueTaken {
            request_id,
            specialty,
            urgency,
            waited_ms,
        } => (
            "queue_taken",
            None,
            json!({"request_id": request_id, "specialty": specialty, "urgency": urgency,
                   "waited_ms": waited_ms}),
        ),
        Notice::QueueLeft {
            request_id,
            specialty,
            urgency,
            reason,
            waited_ms,
        } => (
            "queue_left",
            None,
            json!({"request_id": request_id, "specialty": specialty, "urgency": urgency,
                   "reason": reason, "waited_ms": waited_ms}),
        ),
    };
    let mut body = json!({
        "id": format!("evt-{:016x}", rand::random::<u64>()),
        "event": event,
        "at_ms": at_ms,
    });
    if let (Some(room), Some(b)) = (room, body.as_object_mut()) {
        b.insert("room".into(), json!(room));
    }
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    Some(body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kham_proto::Role;

    fn who() -> Who {
        Who {
            id: "p-1".into(),
            identity: "patient-42".into(),
            role: Role::Patient,
            name: "Trần Thị Bình".into(),
        }
    }

    #[test]
    fn bodies_carry_no_name_unless_allowed() {
        let n = Notice::ParticipantLeft {
            room: "appt-1".into(),
            who: who(),
            reason: "removed",
        };
        let b = event_body(&n, false, 1000).unwrap();
        assert_eq!(b["event"], "participant_left");
        assert_eq!(b["room"], "appt-1");
        assert_eq!(b["participant"]["identity"], "patient-42");
        assert_eq!(b["participant"]["role"], "patient");
        assert_eq!(b["reason"], "removed");
        assert!(!b.to_string().contains("Bình"), "{b}");
        let b = event_body(&n, true, 1000).unwrap();
        assert_eq!(b["participant"]["name"], "Trần Thị Bình");
        assert!(
            event_body(
                &Notice::MediaConnected {
                    room: "r".into(),
                    participant: "p".into(),
                    role: Role::Doctor,
                    join_time: Duration::from_secs(1)
                },
                false,
                0
            )
            .is_none()
        );
    }

    #[test]
    fn queue_events_carry_no_room_name_or_note() {
        let b = event_body(
            &Notice::QueueLeft {
                request_id: 9,
                specialty: "cardiology".into(),
                urgency: kham_proto::Urgency::Urgent,
                reason: kham_proto::LeftReason::Expired,
                waited_ms: 1_800_000,
            },
            true,
            5,
        )
        .unwrap();
        assert_eq!(b["event"], "queue_left");
        assert_eq!(b["reason"], "expired");
        assert_eq!(b["urgency"], "urgent");
        assert_eq!(b["request_id"], 9);
        assert!(
            b.get("room").is_none() && b.get("participant").is_none(),
            "{b}"
        );
        let b = event_body(
            &Notice::QueueEntered {
                request_id: 1,
                specialty: "general".into(),
                urgency: kham_proto::Urgency::Routine,
            },
            true,
            5,
        )
        .unwrap();
        assert_eq!(b["event"], "queue_entered");
        let keys: Vec<&String> = b.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["at_ms", "event", "id", "request_id", "specialty", "urgency"]
        );
    }

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2 shape: key "Jefe", message "what do ya want for nothing?".
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"Jefe");
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
        ctx.update(b"what do ya want for nothing?");
        let expect: String = ctx
            .sign()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            expect,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // "12.x" signed in one go equals the streamed "12" + "." + "x".
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
        ctx.update(b"12.x");
        let whole: String = ctx
            .sign()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sign(&key, 12, "x"), format!("sha256={whole}"));
    }
}
