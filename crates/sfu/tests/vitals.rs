//! Vital signs through the room's data channels, in virtual time with str0m clients: a station's
//! numerics and waveforms reach a doctor, tagged with the station's id and otherwise unchanged;
//! an observer without the `health_data` grant gets nothing and cannot publish; bad framing is
//! dropped without disturbing what follows.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod world;

use std::time::Duration;

use kham_sfu::Permissions;
use kham_sfu::vitals::{FORWARDED, NUM_LABEL, WAVE_LABEL};
use world::{BOTH, Client, World};

const NO_HEALTH: Permissions = Permissions {
    publish: true,
    subscribe: true,
    health_data: false,
};

/// What `who` received on `label`.
fn got(w: &World, who: usize, label: &str) -> Vec<Vec<u8>> {
    w.clients[who]
        .channel_data
        .iter()
        .filter(|(l, _)| l == label)
        .map(|(_, d)| d.clone())
        .collect()
}

fn tagged(source: &str, frame: &[u8]) -> Vec<u8> {
    let mut v = vec![frame[0], frame[1] | FORWARDED, source.len() as u8];
    v.extend_from_slice(source.as_bytes());
    v.extend_from_slice(&frame[2..]);
    v
}

#[test]
fn vitals_reach_those_with_the_grant_and_bad_frames_are_dropped() {
    let mut w = World::new();
    let t0 = w.now;
    w.join_with_vitals(Client::new("station", "127.0.0.2:5000", t0), BOTH);
    w.join_with_vitals(Client::new("doctor", "127.0.0.3:5000", t0), BOTH);
    w.join_with_vitals(Client::new("observer", "127.0.0.4:5000", t0), NO_HEALTH);
    w.run_until(t0 + Duration::from_secs(3));
    for c in &w.clients {
        assert!(c.connected, "{} connected", c.id);
        assert_eq!(c.channels.len(), 2, "{}: both channels open", c.id);
    }

    let numerics = [1u8, 1, 0xAA, 0xBB, 0xCC];
    let wave = [1u8, 2, 1, 2, 3, 4, 5, 6];
    assert!(w.clients[0].send(NUM_LABEL, true, &numerics));
    assert!(w.clients[0].send(WAVE_LABEL, true, &wave));
    // Garbage: unknown version, a waveform on the numerics channel, text, a lone byte.
    assert!(w.clients[0].send(NUM_LABEL, true, &[9, 1, 0]));
    assert!(w.clients[0].send(NUM_LABEL, true, &[1, 2, 0]));
    assert!(w.clients[0].send(WAVE_LABEL, false, b"hello"));
    assert!(w.clients[0].send(WAVE_LABEL, true, &[1]));
    // The observer (no grant) tries to publish.
    assert!(w.clients[2].send(NUM_LABEL, true, &[1, 1, 0x66]));
    w.run_until(t0 + Duration::from_secs(4));
    // And after the garbage, a valid frame still goes through.
    let later = [1u8, 1, 0x77];
    assert!(w.clients[0].send(NUM_LABEL, true, &later));
    w.run_until(t0 + Duration::from_secs(5));

    assert_eq!(
        got(&w, 1, NUM_LABEL),
        vec![tagged("station", &numerics), tagged("station", &later)],
        "the doctor gets the numerics in order, tagged with their source"
    );
    assert_eq!(got(&w, 1, WAVE_LABEL), vec![tagged("station", &wave)]);
    assert!(
        w.clients[2].channel_data.is_empty(),
        "nothing for the observer without the grant"
    );
    assert!(
        w.clients[0].channel_data.is_empty(),
        "the station gets neither its own frames nor the observer's"
    );
}
