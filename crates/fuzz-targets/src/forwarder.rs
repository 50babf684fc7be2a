//! The forwarder's rewriting (`kham_sfu::Forwarder`), driven by a script the bytes describe:
//! packets of three simulcast layers (each layer's own numbering contiguous and in order, as a
//! publisher sends it, with VP8 picture ids, temporal ids and TL0PICIDX), layer targets,
//! temporal limits and resyncs in any order.
//!
//! What a subscriber's decoder needs, whatever the script: the sequence numbers it receives
//! are contiguous (a switch continues right after the last packet sent, a dropped temporal
//! frame is renumbered away), picture ids advance by 0 (same frame) or 1 between consecutive
//! packets, and TL0PICIDX never goes backwards by more than it can wrap.

use std::time::{Duration, Instant};

use kham_sfu::{Forwarder, InPacket, Vp8Info};

/// Per layer: what its publisher sends next.
#[derive(Clone, Copy)]
struct Layer {
    seq: u64,
    ts: u32,
    pid: u16,
    tl0: u8,
    /// Packets left in the current frame, and its temporal id.
    left: u8,
    tid: u8,
}

/// Runs the script; panics when the output breaks continuity.
pub fn forwarder(data: &[u8]) {
    let t0 = Instant::now();
    let mut f = Forwarder::new(90_000, 1000);
    let mut layers = [0u64, 1, 2].map(|l| Layer {
        seq: 10_000 * (l + 1),
        ts: 7_000 * (l as u32 + 1),
        pid: 300 * (l as u16 + 1),
        tl0: 50 * (l as u8 + 1),
        left: 0,
        tid: 0,
    });
    let mut at = Duration::ZERO;
    let mut last: Option<(u64, u16)> = None;
    let mut bytes = data.chunks_exact(2);
    for op in bytes.by_ref() {
        let (a, b) = (op[0], op[1]);
        match a {
            0..=199 => {
                let l = usize::from(a % 3);
                let layer = &mut layers[l];
                let first = layer.left == 0;
                if first {
                    // A new frame: 1-4 packets, temporal id 0-2 (L1T3 order not required).
                    layer.left = 1 + (b & 3);
                    layer.tid = (b >> 2) % 3;
                    layer.pid = (layer.pid + 1) & 0x7fff;
                    layer.ts = layer.ts.wrapping_add(3000);
                    if layer.tid == 0 {
                        layer.tl0 = layer.tl0.wrapping_add(1);
                    }
                }
                let keyframe = first && layer.tid == 0 && b & 0x40 != 0;
                layer.left -= 1;
                layer.seq += 1;
                at += Duration::from_millis(u64::from(b >> 6) * 5);
                let p = InPacket {
                    layer: l as u8,
                    seq: layer.seq,
                    ts: layer.ts,
                    at: t0 + at,
                    keyframe,
                    vp8: Some(Vp8Info {
                        picture_id: Some(layer.pid),
                        picture_id_15bit: true,
                        tl0_pic_idx: Some(layer.tl0),
                        tid: Some(layer.tid),
                        keyframe,
                    }),
                };
                if let Some(out) = f.process(&p) {
                    let pid = out.picture_id.expect("a VP8 packet keeps its picture id");
                    if let Some((seq, last_pid)) = last {
                        assert_eq!(out.seq, seq + 1, "sequence gap or repeat");
                        let step = pid.wrapping_sub(last_pid) & 0x7fff;
                        assert!(step <= 1, "picture id {last_pid} -> {pid}");
                    }
                    last = Some((out.seq, pid));
                }
            }
            200..=229 => f.set_target((b % 4 < 3).then_some(b % 4)),
            230..=249 => f.set_max_temporal(b % 3),
            _ => f.resync(),
        }
    }
    let _ = bytes.remainder();
}
