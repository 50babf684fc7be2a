#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! Load test of the specialist queue alone (no media): stations and doctors as WebSocket
//! clients over loopback against the real routes (`/queue/ws`, the room registry with a media
//! engine that does nothing). Every station asks once; doctors on duty take the next request,
//! "consult" for a while, and come back available. Every request must be served exactly once:
//! one pairing per station, no request id twice, the queue empty at the end. Wait times (request
//! sent to `paired` received) are printed.
//!
//! The fast version (200 stations, 20 doctors, a few seconds) runs with `cargo test`; the
//! benchmark is ignored by default:
//!
//! ```text
//! KHAM_QUEUE_LOAD=2000,100,200 cargo test --release -p kham-signal --test queue_load -- --ignored --nocapture
//! ```
//! (stations, doctors, consult milliseconds).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kham_proto::{QueueServerMsg, Role};

mod queue_common;
use queue_common::*;

/// What one station saw: its request id, the wait, whether urgent, and how many pairings.
struct StationResult {
    urgent: bool,
    wait: Duration,
    pairings: usize,
}

struct Report {
    stations: usize,
    doctors: usize,
    elapsed: Duration,
    served: usize,
    routine: Vec<Duration>,
    urgent: Vec<Duration>,
    lost_races: usize,
}

fn pct(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn mean(v: &[Duration]) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.iter().sum::<Duration>() / v.len() as u32
}

impl Report {
    fn print(&self) {
        println!(
            "queue load: {} stations, {} doctors: {} served in {:.2} s ({:.0} requests/s); {} takes lost a race",
            self.stations,
            self.doctors,
            self.served,
            self.elapsed.as_secs_f64(),
            self.served as f64 / self.elapsed.as_secs_f64(),
            self.lost_races
        );
        for (name, v) in [("urgent", &self.urgent), ("routine", &self.routine)] {
            println!(
                "  wait {name:7} n={:4}  mean {:7.0} ms  p50 {:7.0} ms  p95 {:7.0} ms  max {:7.0} ms",
                v.len(),
                mean(v).as_secs_f64() * 1e3,
                pct(v, 0.5).as_secs_f64() * 1e3,
                pct(v, 0.95).as_secs_f64() * 1e3,
                v.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            );
        }
    }
}

async fn run(stations: usize, doctors: usize, consult: Duration) -> Report {
    let (addr, keys, queue) = start().await;
    // Every station connects and asks (every fifth urgent); doctors start once all are queued,
    // so the order they are served in is the queue's, not the connection order's.
    // Counted, not a barrier: a station keeps reading its socket (and answering pings) while
    // the others connect.
    let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done = Arc::new(Mutex::new(HashSet::<usize>::new()));
    let mut station_tasks = Vec::new();
    for i in 0..stations {
        let token = keys
            .sign(&claims(&keys, &format!("st-{i}"), Role::Station))
            .unwrap();
        let queued = queued.clone();
        station_tasks.push(tokio::spawn(async move {
            let mut ws = connect(addr, &token).await;
            assert!(matches!(
                next(&mut ws).await,
                Some(QueueServerMsg::Hello { .. })
            ));
            let urgent = i % 5 == 0;
            let sent = Instant::now();
            send(
                &mut ws,
                serde_json::json!({"type": "request", "specialty": SPECIALTIES[i % 5],
                    "urgency": if urgent { "urgent" } else { "routine" }, "note": "load"}),
            )
            .await;
            let mut waited = None;
            let mut pairings = 0;
            let mut in_queue = false;
            loop {
                let msg = tokio::time::timeout(Duration::from_secs(120), next(&mut ws))
                    .await
                    .expect("a station heard nothing for 120 s")
                    .expect("the station's socket closed");
                match msg {
                    QueueServerMsg::Queued { .. } if !in_queue => {
                        in_queue = true;
                        queued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    QueueServerMsg::Paired { .. } => {
                        pairings += 1;
                        waited.get_or_insert(sent.elapsed());
                        break;
                    }
                    QueueServerMsg::Error { code, message } => {
                        panic!("station {i}: {code:?} {message}")
                    }
                    _ => {}
                }
            }
            // A pairing sent twice would arrive now.
            while let Ok(Some(m)) =
                tokio::time::timeout(Duration::from_millis(300), next(&mut ws)).await
            {
                if matches!(m, QueueServerMsg::Paired { .. }) {
                    pairings += 1;
                }
            }
            StationResult {
                urgent,
                wait: waited.unwrap_or_default(),
                pairings,
            }
        }));
    }
    while queued.load(std::sync::atomic::Ordering::SeqCst) < stations {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let served_ids = Arc::new(Mutex::new(Vec::<u64>::new()));
    let races = Arc::new(Mutex::new(0usize));
    let mut doctor_tasks = Vec::new();
    for d in 0..doctors {
        let specialties = [SPECIALTIES[d % 5], SPECIALTIES[(d + 1) % 5]];
        let c = claims(&keys, &format!("dr-{d}"), Role::Doctor);
        let token = keys
            .sign_with(&c, &serde_json::json!({"specialties": specialties}))
            .unwrap();
        let (served_ids, races, done) = (served_ids.clone(), races.clone(), done.clone());
        let total = stations;
        doctor_tasks.push(tokio::spawn(async move {
            let mut ws = connect(addr, &token).await;
            send(
                &mut ws,
                serde_json::json!({"type": "available", "available": true}),
            )
            .await;
            let mut pending = false;
            loop {
                let msg =
                    match tokio::time::timeout(Duration::from_millis(500), next(&mut ws)).await {
                        Ok(Some(m)) => m,
                        Ok(None) => panic!("doctor {d}: socket closed"),
                        // Quiet: finished when every station was served.
                        Err(_) if done.lock().unwrap().len() >= total => return,
                        Err(_) => continue,
                    };
                match msg {
                    QueueServerMsg::Board {
                        available, entries, ..
                    } => {
                        let waiting = entries
                            .iter()
                            .any(|e| e.stage == kham_proto::RequestStage::Waiting);
                        if available && waiting && !pending {
                            pending = true;
                            send(&mut ws, serde_json::json!({"type": "take"})).await;
                        }
                    }
                    QueueServerMsg::Paired { request_id, .. } => {
                        send(
                            &mut ws,
                            serde_json::json!({"type": "in_call", "request_id": request_id}),
                        )
                        .await;
                        served_ids.lock().unwrap().push(request_id);
                        done.lock().unwrap().insert(request_id as usize);
                        tokio::time::sleep(consult).await;
                        send(
                            &mut ws,
                            serde_json::json!({"type": "available", "available": true}),
                        )
                        .await;
                        pending = false;
                    }
                    QueueServerMsg::Error { code, .. } => {
                        use kham_proto::QueueErrorCode::*;
                        assert!(
                            matches!(code, Empty | AlreadyTaken | NotAvailable),
                            "doctor {d}: unexpected {code:?}"
                        );
                        *races.lock().unwrap() += 1;
                        pending = false;
                    }
                    _ => {}
                }
            }
        }));
    }
    let mut results = Vec::new();
    for t in station_tasks {
        results.push(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    for t in doctor_tasks {
        t.await.unwrap();
    }
    // Exactly once: one pairing per station, no request id served twice, nothing left.
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.pairings, 1, "station {i} was paired {} times", r.pairings);
    }
    let ids = served_ids.lock().unwrap().clone();
    let distinct: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), stations, "every request taken once");
    assert_eq!(distinct.len(), stations, "no request taken twice");
    let stats = queue.stats();
    let left: u32 = stats.specialties.values().map(|s| s.waiting).sum();
    assert_eq!(left, 0, "the queue is empty");
    assert_eq!(stats.served_waits_ms.len(), stations);
    let mut by: HashMap<bool, Vec<Duration>> = HashMap::new();
    for r in &results {
        by.entry(r.urgent).or_default().push(r.wait);
    }
    let mut urgent = by.remove(&true).unwrap_or_default();
    let mut routine = by.remove(&false).unwrap_or_default();
    urgent.sort();
    routine.sort();
    let lost_races = *races.lock().unwrap();
    Report {
        stations,
        doctors,
        elapsed,
        served: ids.len(),
        routine,
        urgent,
        lost_races,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_stations_twenty_doctors_every_request_served_once() {
    let r = run(200, 20, Duration::from_millis(200)).await;
    r.print();
    assert!(
        mean(&r.urgent) < mean(&r.routine),
        "urgent requests wait less on average"
    );
}

/// The benchmark: `KHAM_QUEUE_LOAD=stations,doctors,consult_ms` (default 2000,100,200).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark; run with --ignored --nocapture"]
async fn queue_load_benchmark() {
    let spec = std::env::var("KHAM_QUEUE_LOAD").unwrap_or_else(|_| "2000,100,200".into());
    let v: Vec<u64> = spec.split(',').map(|x| x.trim().parse().unwrap()).collect();
    let r = run(v[0] as usize, v[1] as usize, Duration::from_millis(v[2])).await;
    r.print();
}
