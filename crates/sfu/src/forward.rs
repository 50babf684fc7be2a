//! Per-subscriber rewriting of one forwarded track: one continuous RTP stream out of whichever
//! simulcast layer is selected.
//!
//! A subscriber must see a single SSRC with gap-free sequence numbers, timestamps that keep
//! advancing with wall time and (for VP8) picture ids and TL0PICIDX that continue across layer
//! switches; otherwise its jitter buffer sees loss or a time jump and freezes. The forwarder keeps
//! per-layer offsets and switches spatial layer only at a keyframe of the target layer, so the
//! decoder can start from it. Pure logic: time comes in with the packet, nothing allocates.

use std::time::{Duration, Instant};

use crate::codec::Vp8Info;

/// The parts of an incoming packet the forwarder decides on.
#[derive(Debug, Clone, Copy)]
pub struct InPacket {
    /// Simulcast layer index (0 = lowest).
    pub layer: u8,
    /// Extended sequence number on the publisher's stream of this layer.
    pub seq: u64,
    /// RTP timestamp as sent by the publisher.
    pub ts: u32,
    /// Arrival time.
    pub at: Instant,
    /// Whether a decoder can start at this packet (always true for audio).
    pub keyframe: bool,
    /// VP8 descriptor fields, when the codec is VP8.
    pub vp8: Option<Vp8Info>,
}

/// Rewritten header fields for the subscriber's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutPacket {
    pub seq: u64,
    pub ts: u32,
    pub picture_id: Option<u16>,
    pub tl0_pic_idx: Option<u8>,
}

/// What the forwarder wants from the publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Nothing: forwarding (or deliberately paused).
    Nothing,
    /// A keyframe on this layer, to start or switch.
    Keyframe(u8),
}

/// Rewrites one track for one subscriber.
#[derive(Debug)]
pub struct Forwarder {
    clock_rate: u32,
    /// Layer currently forwarded.
    current: Option<u8>,
    /// Layer asked for; differs from `current` while waiting for its keyframe.
    target: Option<u8>,
    /// Packets of `current` older than this belong to before the switch and are dropped.
    switch_seq: u64,
    started: bool,
    seq_offset: u64,
    ts_offset: u32,
    pid_offset: u16,
    tl0_offset: u8,
    last: Option<Last>,
    switches: u64,
    /// Highest temporal layer forwarded; frames above it are dropped and the stream renumbered.
    max_temporal: u8,
    /// Picture id of the last frame dropped for its temporal layer (its other packets follow)...
    dropped_pid: Option<u16>,
    /// ...and of the last frame forwarded.
    sent_pid: Option<u16>,
    /// Recent temporal drops, to number a late (reordered or retransmitted) packet as if the
    /// drops after it had not happened yet.
    drops: DropRing,
    /// Highest publisher sequence number seen on the current layer.
    highest_in: Option<u64>,
}

/// The last [`DropRing::LEN`] dropped packets: (sequence number, first packet of its frame).
#[derive(Debug, Clone)]
struct DropRing {
    seqs: [(u64, bool); DropRing::LEN],
    len: usize,
    head: usize,
}

impl DropRing {
    const LEN: usize = 128;

    fn new() -> Self {
        DropRing {
            seqs: [(0, false); Self::LEN],
            len: 0,
            head: 0,
        }
    }

    fn push(&mut self, seq: u64, new_frame: bool) {
        self.seqs[self.head] = (seq, new_frame);
        self.head = (self.head + 1) % Self::LEN;
        self.len = (self.len + 1).min(Self::LEN);
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    /// (packets, frames) dropped after `seq`; `None` when `seq` is older than the ring covers.
    fn after(&self, seq: u64) -> Option<(u64, u16)> {
        let (mut packets, mut frames, mut oldest) = (0u64, 0u16, u64::MAX);
        for i in 0..self.len {
            let (s, f) = self.seqs[(self.head + Self::LEN - 1 - i) % Self::LEN];
            oldest = oldest.min(s);
            if s > seq {
                packets += 1;
                frames += u16::from(f);
            }
        }
        (self.len < Self::LEN || oldest < seq).then_some((packets, frames))
    }
}

#[derive(Debug, Clone, Copy)]
struct Last {
    seq: u64,
    ts: u32,
    at: Instant,
    picture_id: Option<u16>,
    pid_15bit: bool,
    tl0: Option<u8>,
}

impl Forwarder {
    /// A forwarder for a stream whose RTP clock runs at `clock_rate` Hz, whose output sequence
    /// numbers start at `first_seq` (keep it below 65536: SRTP rollover counters start at 0).
    pub fn new(clock_rate: u32, first_seq: u16) -> Self {
        Forwarder {
            clock_rate: clock_rate.max(1),
            current: None,
            target: None,
            switch_seq: 0,
            started: false,
            seq_offset: u64::from(first_seq),
            ts_offset: 0,
            pid_offset: 0,
            tl0_offset: 0,
            last: None,
            switches: 0,
            max_temporal: u8::MAX,
            dropped_pid: None,
            sent_pid: None,
            drops: DropRing::new(),
            highest_in: None,
        }
    }

    /// Selects the layer to forward; `None` pauses. The switch happens at the next keyframe of
    /// that layer, until then the current layer keeps flowing.
    pub fn set_target(&mut self, layer: Option<u8>) {
        self.target = layer;
        if layer.is_none() {
            self.current = None;
        }
    }

    /// Forgets the layer being forwarded but keeps the target: forwarding resumes at the
    /// target's next keyframe (`want` asks for one), numbered right after the last packet
    /// forwarded. For when what was forwarded since will never reach the subscriber (a dropped
    /// backlog): the frames after it would reference it.
    pub fn resync(&mut self) {
        if self.target.is_some() {
            self.current = None;
        }
    }

    /// Forwards temporal layers `0..=max` only (effective at once: a lower temporal layer never
    /// references a higher one).
    pub fn set_max_temporal(&mut self, max: u8) {
        self.max_temporal = max;
    }

    /// The RTP clock rate of the stream.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// The highest temporal layer forwarded.
    pub fn max_temporal(&self) -> u8 {
        self.max_temporal
    }

    /// The layer asked for.
    pub fn target(&self) -> Option<u8> {
        self.target
    }

    /// The layer being forwarded now.
    pub fn current(&self) -> Option<u8> {
        self.current
    }

    /// How many times the forwarded layer changed.
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// Whether a keyframe is needed on some layer.
    pub fn want(&self) -> Want {
        match self.target {
            Some(t) if self.current != Some(t) => Want::Keyframe(t),
            _ => Want::Nothing,
        }
    }

    /// Decides on one packet: `Some` with the rewritten fields to forward it, `None` to drop it.
    pub fn process(&mut self, p: &InPacket) -> Option<OutPacket> {
        if self.target == Some(p.layer) && self.current != Some(p.layer) && p.keyframe {
            self.switch_to(p);
        }
        if self.current != Some(p.layer) || p.seq < self.switch_seq {
            return None;
        }
        let late = self.highest_in.is_some_and(|h| p.seq < h);
        if let Some(v) = p.vp8
            && self.drops_frame_of(v)
        {
            if !late {
                self.drop_temporal(p, v);
            }
            return None;
        }
        if !late {
            self.highest_in = Some(p.seq);
            self.sent_pid = p.vp8.and_then(|v| v.picture_id);
        }
        // A late packet is numbered as before the drops that came after it.
        let (seq_fix, pid_fix) = if late {
            self.drops.after(p.seq)?
        } else {
            (0, 0)
        };
        let out = OutPacket {
            seq: p.seq.wrapping_add(self.seq_offset).wrapping_add(seq_fix),
            ts: p.ts.wrapping_add(self.ts_offset),
            picture_id: p.vp8.and_then(|v| {
                let mask = if v.picture_id_15bit { 0x7fff } else { 0x7f };
                v.picture_id
                    .map(|id| id.wrapping_add(self.pid_offset).wrapping_add(pid_fix) & mask)
            }),
            tl0_pic_idx: p
                .vp8
                .and_then(|v| v.tl0_pic_idx)
                .map(|t| t.wrapping_add(self.tl0_offset)),
        };
        let newer = self.last.is_none_or(|l| out.seq > l.seq);
        if newer {
            self.last = Some(Last {
                seq: out.seq,
                ts: out.ts,
                at: p.at,
                picture_id: out.picture_id.or(self.last.and_then(|l| l.picture_id)),
                pid_15bit: p.vp8.is_some_and(|v| v.picture_id_15bit),
                tl0: out.tl0_pic_idx.or(self.last.and_then(|l| l.tl0)),
            });
        }
        Some(out)
    }

    /// Whether the packet's frame is dropped for its temporal layer. Decided per frame: a
    /// frame whose first packets went out goes out whole, and one whose first packets were
    /// dropped is dropped whole, whatever the limit does in between (lowered and raised again
    /// within a frame, the rest of a dropped frame went out without its start, numbered as
    /// the frame before: the fuzz target `forwarder` found picture ids going backwards).
    fn drops_frame_of(&self, v: Vp8Info) -> bool {
        match v.picture_id {
            Some(pid) if self.dropped_pid == Some(pid) => true,
            Some(pid) if self.sent_pid == Some(pid) => false,
            _ => v.tid.is_some_and(|t| t > self.max_temporal),
        }
    }

    /// Drops a packet of a temporal layer above the limit: later packets are renumbered so the
    /// subscriber sees no sequence gap, and later frames so it sees no picture-id gap.
    fn drop_temporal(&mut self, p: &InPacket, v: Vp8Info) {
        self.highest_in = Some(p.seq);
        self.seq_offset = self.seq_offset.wrapping_sub(1);
        let new_frame = v
            .picture_id
            .is_some_and(|pid| self.dropped_pid != Some(pid));
        if new_frame {
            self.dropped_pid = v.picture_id;
            self.pid_offset = self.pid_offset.wrapping_sub(1);
        }
        self.drops.push(p.seq, new_frame);
    }

    fn switch_to(&mut self, p: &InPacket) {
        if let Some(last) = self.last {
            // Continue right after the last packet sent, whatever the new layer's numbering.
            self.seq_offset = last.seq.wrapping_add(1).wrapping_sub(p.seq);
            let elapsed =
                p.at.saturating_duration_since(last.at)
                    .max(Duration::from_millis(1));
            let gap = (elapsed.as_micros() as u64 * u64::from(self.clock_rate) / 1_000_000).max(1);
            self.ts_offset = last.ts.wrapping_add(gap as u32).wrapping_sub(p.ts);
            if let (Some(in_pid), Some(last_pid)) =
                (p.vp8.and_then(|v| v.picture_id), last.picture_id)
            {
                let mask = if last.pid_15bit { 0x7fff } else { 0x7f };
                self.pid_offset = last_pid.wrapping_add(1).wrapping_sub(in_pid) & mask;
            }
            if let (Some(in_tl0), Some(last_tl0)) = (p.vp8.and_then(|v| v.tl0_pic_idx), last.tl0) {
                self.tl0_offset = last_tl0.wrapping_add(1).wrapping_sub(in_tl0);
            }
        } else {
            self.seq_offset = self.seq_offset.wrapping_sub(p.seq);
        }
        if self.started {
            self.switches += 1;
        }
        self.started = true;
        self.current = Some(p.layer);
        self.switch_seq = p.seq;
        self.highest_in = None;
        self.drops.clear();
        self.dropped_pid = None;
        self.sent_pid = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(layer: u8, seq: u64, ts: u32, ms: u64, key: bool, t0: Instant) -> InPacket {
        InPacket {
            layer,
            seq,
            ts,
            at: t0 + Duration::from_millis(ms),
            keyframe: key,
            vp8: None,
        }
    }

    #[test]
    fn waits_for_keyframe_then_forwards_contiguously() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(90_000, 100);
        f.set_target(Some(1));
        assert_eq!(f.want(), Want::Keyframe(1));
        assert!(f.process(&pkt(1, 5000, 1000, 0, false, t0)).is_none());
        assert!(
            f.process(&pkt(0, 7000, 1000, 0, true, t0)).is_none(),
            "other layer"
        );
        let a = f.process(&pkt(1, 5001, 4000, 33, true, t0)).unwrap();
        let b = f.process(&pkt(1, 5002, 4000, 33, false, t0)).unwrap();
        assert_eq!((a.seq, b.seq), (100, 101));
        assert_eq!(a.ts, 4000);
        assert_eq!(f.want(), Want::Nothing);
    }

    #[test]
    fn layer_switch_is_seamless() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(90_000, 10);
        f.set_target(Some(1));
        let mut last = None;
        for i in 0..10u64 {
            last = f.process(&pkt(
                1,
                300 + i,
                90_000 + 3000 * i as u32,
                33 * i,
                i == 0,
                t0,
            ));
        }
        let last = last.unwrap();
        f.set_target(Some(2));
        // Layer 1 keeps flowing until layer 2's keyframe.
        assert!(f.process(&pkt(1, 310, 120_000, 330, false, t0)).is_some());
        assert!(
            f.process(&pkt(2, 9000, 5_000_000, 330, false, t0))
                .is_none()
        );
        let s = f.process(&pkt(2, 9001, 5_003_000, 363, true, t0)).unwrap();
        assert_eq!(
            s.seq,
            last.seq + 2,
            "one packet of layer 1 went out in between"
        );
        // 33 ms after the last layer-1 packet: about 2970 ticks at 90 kHz.
        let dt = s.ts.wrapping_sub(120_000);
        assert!((2900..3100).contains(&dt), "ts jump {dt}");
        // Late packets of the old layer are dropped now.
        assert!(f.process(&pkt(1, 311, 123_000, 364, false, t0)).is_none());
        assert_eq!(f.switches(), 1);
        assert_eq!(f.current(), Some(2));
    }

    #[test]
    fn resync_stops_the_old_layer_at_once_and_resumes_at_the_keyframe() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(90_000, 10);
        f.set_target(Some(2));
        let mut last = None;
        for i in 0..5u64 {
            last = f.process(&pkt(2, 700 + i, 3000 * i as u32, 33 * i, i == 0, t0));
        }
        let last = last.unwrap();
        // The backlog is dropped while stepping down: the old layer stops now, not at the
        // lower layer's keyframe.
        f.set_target(Some(0));
        f.resync();
        assert_eq!(f.want(), Want::Keyframe(0));
        assert!(f.process(&pkt(2, 705, 15_000, 165, false, t0)).is_none());
        assert!(f.process(&pkt(0, 40, 15_000, 165, false, t0)).is_none());
        let k = f.process(&pkt(0, 41, 18_000, 198, true, t0)).unwrap();
        assert_eq!(
            k.seq,
            last.seq + 1,
            "numbered right after the last forwarded"
        );
        assert_eq!(f.current(), Some(0));
        assert_eq!(f.want(), Want::Nothing);
        // Paused: nothing to resync to.
        f.set_target(None);
        f.resync();
        assert_eq!(f.want(), Want::Nothing);
    }

    #[test]
    fn vp8_picture_id_continues_across_switch() {
        let t0 = Instant::now();
        let vp8 = |pid: u16, tl0: u8| {
            Some(Vp8Info {
                picture_id: Some(pid),
                picture_id_15bit: true,
                tl0_pic_idx: Some(tl0),
                tid: Some(0),
                keyframe: false,
            })
        };
        let mut f = Forwarder::new(90_000, 1);
        f.set_target(Some(0));
        let mut p = pkt(0, 1, 0, 0, true, t0);
        p.vp8 = vp8(0x7ffe, 250);
        f.process(&p).unwrap();
        f.set_target(Some(1));
        let mut q = pkt(1, 50, 0, 33, true, t0);
        q.vp8 = vp8(17, 3);
        let o = f.process(&q).unwrap();
        assert_eq!(o.picture_id, Some(0x7fff));
        assert_eq!(o.tl0_pic_idx, Some(251));
        let mut r = pkt(1, 51, 3000, 66, false, t0);
        r.vp8 = vp8(18, 4);
        let o = f.process(&r).unwrap();
        assert_eq!(o.picture_id, Some(0), "wraps at 15 bits");
        assert_eq!(o.tl0_pic_idx, Some(252));
    }

    #[test]
    fn reordered_packets_keep_their_place() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(48_000, 0);
        f.set_target(Some(0));
        let a = f.process(&pkt(0, 1000, 0, 0, true, t0)).unwrap();
        let c = f.process(&pkt(0, 1002, 1920, 40, true, t0)).unwrap();
        let b = f.process(&pkt(0, 1001, 960, 41, true, t0)).unwrap();
        assert_eq!((a.seq, b.seq, c.seq), (0, 1, 2));
    }

    #[test]
    fn pause_drops_everything() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(90_000, 0);
        f.set_target(Some(0));
        assert!(f.process(&pkt(0, 1, 0, 0, true, t0)).is_some());
        f.set_target(None);
        assert!(f.process(&pkt(0, 2, 0, 0, true, t0)).is_none());
        assert_eq!(f.want(), Want::Nothing);
    }

    fn vp8_pkt(seq: u64, pid: u16, tid: u8, key: bool, t0: Instant) -> InPacket {
        InPacket {
            layer: 0,
            seq,
            ts: 3000 * u32::from(pid),
            at: t0 + Duration::from_millis(33 * u64::from(pid)),
            keyframe: key,
            vp8: Some(Vp8Info {
                picture_id: Some(pid),
                picture_id_15bit: true,
                tl0_pic_idx: Some((pid / 4) as u8),
                tid: Some(tid),
                keyframe: key,
            }),
        }
    }

    #[test]
    fn dropping_temporal_layers_keeps_sequence_and_picture_ids_contiguous() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(90_000, 1000);
        f.set_target(Some(0));
        f.set_max_temporal(0);
        // Temporal pattern 0,2,1,2 with two packets per frame; only TL0 passes.
        let tids = [0u8, 2, 1, 2];
        let mut out = Vec::new();
        let mut late = None;
        for pid in 0..16u16 {
            for k in 0..2u64 {
                let seq = 500 + 2 * u64::from(pid) + k;
                let p = vp8_pkt(seq, pid, tids[usize::from(pid % 4)], pid == 0, t0);
                if pid == 4 && k == 1 {
                    late = Some(p);
                    continue;
                }
                if let Some(o) = f.process(&p) {
                    out.push(o);
                }
            }
        }
        let seqs: Vec<u64> = out.iter().map(|o| o.seq).collect();
        let pids: Vec<u16> = out.iter().filter_map(|o| o.picture_id).collect();
        assert_eq!(seqs, vec![1000, 1001, 1002, 1004, 1005, 1006, 1007]);
        assert_eq!(pids, vec![0, 0, 1, 2, 2, 3, 3]);
        // The late packet of frame 4 gets the number it would have had.
        let o = f.process(&late.unwrap()).unwrap();
        assert_eq!((o.seq, o.picture_id), (1003, Some(1)));
        // Raising the limit passes everything from now on.
        f.set_max_temporal(2);
        let o = f.process(&vp8_pkt(532, 16, 2, false, t0)).unwrap();
        assert_eq!(o.seq, 1008);
    }

    #[test]
    fn the_temporal_limit_applies_to_whole_frames() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(90_000, 1000);
        f.set_target(Some(0));
        let mut seq = 700;
        let mut send = |f: &mut Forwarder, pid: u16, tid: u8| {
            seq += 1;
            f.process(&vp8_pkt(seq, pid, tid, pid == 0, t0))
                .map(|o| (o.seq, o.picture_id))
        };
        assert_eq!(send(&mut f, 0, 0), Some((1000, Some(0))));
        // Frame 1 (TL2) has begun to go out when the limit falls to TL0: it goes out whole.
        assert_eq!(send(&mut f, 1, 2), Some((1001, Some(1))));
        f.set_max_temporal(0);
        assert_eq!(send(&mut f, 1, 2), Some((1002, Some(1))));
        // Frame 2 (TL1) is dropped from its start, and whole even when the limit rises again
        // within it (its rest would have no start, and be numbered as frame 1).
        assert_eq!(send(&mut f, 2, 1), None);
        f.set_max_temporal(2);
        assert_eq!(send(&mut f, 2, 1), None);
        assert_eq!(send(&mut f, 3, 2), Some((1003, Some(2))));
    }
}
