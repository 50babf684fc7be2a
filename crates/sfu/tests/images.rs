//! Still images through the room's `kham-image` channel, in virtual time with str0m clients
//! (issue 16): two stations send at once to a doctor whose link stalls, each with the web
//! client's full end-to-end window (64 KiB beyond what the doctor acknowledged) in flight, so
//! the room's send buffer towards the doctor holds both windows; nothing may be refused or
//! lost. A transfer that never ends leaves nothing behind once its sender stops.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod world;

use std::time::Duration;

use kham_sfu::vitals::{FORWARDED, IMAGE_LABEL, IMAGE_WINDOW, NUM_LABEL};
use world::{BOTH, Client, World};

const CHUNK: usize = 16 * 1024;

fn start(id: u32, size: u32) -> Vec<u8> {
    let mut f = vec![1, 3];
    f.extend_from_slice(&id.to_le_bytes());
    f.extend_from_slice(&size.to_le_bytes());
    f.push(9);
    f.extend_from_slice(b"image/bmp");
    f
}

fn chunk(id: u32, offset: u32, fill: u8) -> Vec<u8> {
    let mut f = vec![1, 4];
    f.extend_from_slice(&id.to_le_bytes());
    f.extend_from_slice(&offset.to_le_bytes());
    f.resize(10 + CHUNK, fill);
    f
}

/// The image frames `who` received from `source`, with the forwarded header taken off.
fn from(w: &World, who: usize, source: &str) -> Vec<Vec<u8>> {
    w.clients[who]
        .channel_data
        .iter()
        .filter(|(l, d)| {
            l == IMAGE_LABEL
                && d.len() >= 3
                && d[1] & FORWARDED != 0
                && d.get(3..3 + usize::from(d[2])) == Some(source.as_bytes())
        })
        .map(|(_, d)| {
            let mut f = vec![d[0], d[1] & !FORWARDED];
            f.extend_from_slice(&d[3 + usize::from(d[2])..]);
            f
        })
        .collect()
}

#[test]
fn two_full_windows_to_a_stalled_doctor_are_all_delivered() {
    let mut w = World::new();
    let t0 = w.now;
    w.join_with_images(Client::new("station-a", "127.0.0.2:5000", t0), BOTH);
    w.join_with_images(Client::new("station-b", "127.0.0.3:5000", t0), BOTH);
    w.join_with_images(Client::new("doctor", "127.0.0.4:5000", t0), BOTH);
    w.run_until(t0 + Duration::from_secs(3));
    for c in &w.clients {
        assert!(c.connected, "{} connected", c.id);
        assert_eq!(c.channels.len(), 3, "{}: three channels open", c.id);
    }

    // The doctor's link stalls for 5 s: what the room sends it waits in the room's SCTP buffer
    // (with str0m's default of 128 KiB, station B's last chunk was refused and lost).
    w.clients[2].online = false;
    let windows = IMAGE_WINDOW as usize / CHUNK;
    let mut sent: Vec<Vec<Vec<u8>>> = vec![Vec::new(), Vec::new()];
    for (s, id) in [(0usize, 11u32), (1, 22)] {
        let size = (4 * IMAGE_WINDOW) as u32;
        let f = start(id, size);
        assert!(w.clients[s].send(IMAGE_LABEL, true, &f));
        sent[s].push(f);
        for k in 0..windows {
            let f = chunk(id, (k * CHUNK) as u32, id as u8 + k as u8);
            assert!(
                w.clients[s].send(IMAGE_LABEL, true, &f),
                "station {s} chunk {k}"
            );
            sent[s].push(f);
        }
    }
    // Numerics go on beside the images.
    let numerics = [1u8, 1, 0xAA, 0xBB];
    assert!(w.clients[0].send(NUM_LABEL, true, &numerics));
    w.run_until(t0 + Duration::from_millis(8000));
    assert!(
        w.clients[2].channel_data.is_empty(),
        "nothing reached the doctor while its link was down"
    );
    w.clients[2].online = true;
    w.run_until(t0 + Duration::from_secs(30));

    for (s, name) in [(0, "station-a"), (1, "station-b")] {
        let got = from(&w, 2, name);
        assert_eq!(
            got.len(),
            sent[s].len(),
            "{name}: every frame of its window reached the doctor"
        );
        assert!(got == sent[s], "{name}: frames intact and in order");
    }
    assert!(
        w.clients[2]
            .channel_data
            .iter()
            .any(|(l, _)| l == NUM_LABEL),
        "the numerics beside them too"
    );
}
