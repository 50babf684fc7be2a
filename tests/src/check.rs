//! Comparing what a publisher sent with what a subscriber received through the SFU.
//!
//! The SFU may rewrite SSRC, sequence-number and timestamp *offsets* and the VP8 PictureID, but
//! on a loss-free loopback it must forward one continuous stream: every received packet is one
//! sent packet, in order, none skipped after the first, with relative sequence numbers and
//! timestamps preserved and the payload unchanged (VP8: everything after the payload descriptor).

use std::collections::HashMap;
use std::fmt::Write as _;

use anyhow::{Result, bail};

use crate::media;
use crate::peer::{MediaKind, RecvTrack, SentPacket};

/// Summary of a successful comparison.
#[derive(Debug, Clone)]
pub struct ForwardReport {
    /// Audio or video.
    pub kind: MediaKind,
    /// The single SSRC the subscriber saw.
    pub ssrc: u32,
    /// Packets received.
    pub received: usize,
    /// Packets sent in total.
    pub sent: usize,
    /// Index (in the sent sequence) of the first forwarded packet.
    pub first_sent_index: usize,
    /// Runs of consecutive packets from one layer (1 = no layer switch).
    pub layer_runs: usize,
    /// The layer of each run, in order (0 = first layer passed in).
    pub run_layers: Vec<usize>,
}

fn key(kind: MediaKind, payload: &[u8]) -> Option<&[u8]> {
    match kind {
        MediaKind::Audio => Some(payload),
        MediaKind::Video => media::vp8_data(payload),
    }
}

/// Checks `recv` against `sent` (see the module docs). The error lists every violation found
/// (capped), so a failure report says *how* the stream was damaged.
pub fn check_forwarded(
    kind: MediaKind,
    sent: &[SentPacket],
    recv: &RecvTrack,
) -> Result<ForwardReport> {
    check_forwarded_layers(kind, &[sent], recv)
}

/// Like [`check_forwarded`], for a publisher that sent several simulcast layers of which the SFU
/// forwards one at a time: the received stream must be one SSRC with +1 sequence numbers and
/// never-decreasing timestamps; each run of packets from one layer must be a contiguous piece of
/// that layer (relative sequence numbers, timestamps, markers and payloads preserved), and every
/// run of video must start at a keyframe. `ForwardReport::first_sent_index` is the index in the
/// layer of the first packet.
pub fn check_forwarded_layers(
    kind: MediaKind,
    layers: &[&[SentPacket]],
    recv: &RecvTrack,
) -> Result<ForwardReport> {
    let pk = &recv.packets;
    if pk.is_empty() {
        bail!("{}: nothing received", kind.as_str());
    }
    let sent_total: usize = layers.iter().map(|l| l.len()).sum();
    let mut problems: Vec<String> = Vec::new();
    let mut note = |s: String| {
        if problems.len() < 25 {
            problems.push(s);
        }
    };

    // One SSRC.
    let ssrc = pk[0].ssrc;
    let mut ssrcs: Vec<u32> = pk.iter().map(|p| p.ssrc).collect();
    ssrcs.sort_unstable();
    ssrcs.dedup();
    if ssrcs.len() != 1 {
        note(format!("{} SSRCs on one track: {ssrcs:?}", ssrcs.len()));
    }

    // Every received packet is one sent packet: (layer, index).
    let mut index: HashMap<&[u8], (usize, usize)> = HashMap::new();
    for (l, sent) in layers.iter().enumerate() {
        for (i, s) in sent.iter().enumerate() {
            if let Some(k) = key(kind, &s.payload) {
                index.insert(k, (l, i));
            }
        }
    }
    let mut mapped: Vec<Option<(usize, usize)>> = Vec::with_capacity(pk.len());
    let mut unmatched = 0usize;
    for (j, p) in pk.iter().enumerate() {
        let m = key(kind, &p.payload).and_then(|k| index.get(k).copied());
        if m.is_none() {
            unmatched += 1;
            if unmatched <= 3 {
                let head: String = p
                    .payload
                    .iter()
                    .take(16)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                note(format!(
                    "received #{j} (seq {}) matches no sent payload (len {}, starts {head})",
                    p.seq,
                    p.payload.len()
                ));
            }
        }
        mapped.push(m);
    }
    if unmatched > 3 {
        note(format!(
            "{unmatched} received packets in total match no sent payload"
        ));
    }

    // Sequence numbers +1 each; timestamps never backwards.
    for w in pk.windows(2) {
        let d = w[1].seq.wrapping_sub(w[0].seq);
        if d != 1 {
            note(format!(
                "sequence number jump {} -> {} (delta {})",
                w[0].seq, w[1].seq, d as i16
            ));
        }
        let d = w[1].ts.wrapping_sub(w[0].ts) as i32;
        if d < 0 {
            note(format!(
                "timestamp went backwards {} -> {}",
                w[0].ts, w[1].ts
            ));
        }
    }

    // Runs of one layer.
    let first_sent_index = mapped.iter().flatten().next().map(|m| m.1).unwrap_or(0);
    let mut run_base: Option<(usize, usize, usize)> = None; // (received j, layer, sent i) of the run start
    let mut prev: Option<(usize, usize, usize)> = None; // previous matched (j, layer, i)
    let mut runs = 0usize;
    let mut run_layers: Vec<usize> = Vec::new();
    for (j, m) in mapped.iter().enumerate() {
        let Some((l, i)) = *m else { continue };
        let new_run = prev.is_none_or(|(_, pl, _)| pl != l);
        if new_run {
            runs += 1;
            run_layers.push(l);
            run_base = Some((j, l, i));
            if kind == MediaKind::Video && !media::is_vp8_keyframe_start(&pk[j].payload) {
                let d = media::parse_vp8_descriptor(&pk[j].payload);
                let sent_frame_start = layers[l][..=i].iter().rposition(|s| {
                    media::parse_vp8_descriptor(&s.payload).is_some_and(|d| d.start)
                });
                let sent_key = layers[l][..=i]
                    .iter()
                    .rposition(|s| media::is_vp8_keyframe_start(&s.payload));
                note(format!(
                    "received #{j} (seq {}) starts forwarding layer {l} but is not the start of a VP8 keyframe: \
                     it is sent #{i} (descriptor {d:?}, {} ms after the publisher's previous keyframe at sent #{}, \
                     its frame started at sent #{})",
                    pk[j].seq,
                    sent_key
                        .map(|k| layers[l][i].at.duration_since(layers[l][k].at).as_millis())
                        .unwrap_or(0),
                    sent_key
                        .map(|k| k.to_string())
                        .unwrap_or_else(|| "-".into()),
                    sent_frame_start
                        .map(|k| k.to_string())
                        .unwrap_or_else(|| "-".into()),
                ));
            }
        } else if let Some((pj, _, pi)) = prev
            && i != pi + (j - pj)
        {
            note(format!(
                "received #{pj}->#{j} are layer {l} sent #{pi}->#{i}: {}",
                if i <= pi {
                    "out of order / duplicated".to_owned()
                } else {
                    format!("{} sent packets skipped", i - pi - (j - pj))
                }
            ));
        }
        prev = Some((j, l, i));
        let Some((j0, _, i0)) = run_base else {
            continue;
        };
        let (r0, s0) = (&pk[j0], &layers[l][i0]);
        let (r, s) = (&pk[j], &layers[l][i]);
        let rts = r.ts.wrapping_sub(r0.ts);
        let sts = s.ts.wrapping_sub(s0.ts);
        if rts != sts {
            note(format!(
                "timestamp of received #{j} is run base+{rts}, sent had base+{sts}"
            ));
        }
        let rseq = r.seq.wrapping_sub(r0.seq);
        let sseq = s.seq.wrapping_sub(s0.seq);
        if rseq != sseq {
            note(format!(
                "sequence number of received #{j} is run base+{rseq}, sent had base+{sseq}"
            ));
        }
        if kind == MediaKind::Video && r.marker != s.marker {
            note(format!(
                "marker bit of received #{j} (seq {}) is {}, sent {}",
                r.seq, r.marker, s.marker
            ));
        }
    }

    if kind == MediaKind::Video {
        check_picture_ids(recv, &mut note);
    }

    if problems.is_empty() {
        Ok(ForwardReport {
            kind,
            ssrc,
            received: pk.len(),
            sent: sent_total,
            first_sent_index,
            layer_runs: runs,
            run_layers,
        })
    } else {
        let mut msg = format!(
            "{} stream damaged in forwarding ({} received, {} sent, first forwarded = sent #{}):",
            kind.as_str(),
            pk.len(),
            sent_total,
            first_sent_index
        );
        for p in problems {
            let _ = write!(msg, "\n  - {p}");
        }
        bail!(msg)
    }
}

/// PictureIDs may be rewritten, but must stay one per frame and advance by one per frame.
fn check_picture_ids(recv: &RecvTrack, note: &mut impl FnMut(String)) {
    let mut prev: Option<(u32, u16, bool)> = None; // (ts, pid, 15-bit)
    for p in &recv.packets {
        let Some(d) = media::parse_vp8_descriptor(&p.payload) else {
            note(format!("seq {}: unparsable VP8 payload descriptor", p.seq));
            continue;
        };
        let Some(pid) = d.picture_id else {
            note(format!("seq {}: PictureID missing (it was sent)", p.seq));
            continue;
        };
        let long = p.payload.get(2).is_some_and(|b| b & 0x80 != 0);
        if let Some((pts, ppid, plong)) = prev {
            let modulo: u32 = if plong && long { 0x8000 } else { 0x80 };
            let delta = (u32::from(pid) % modulo + modulo - u32::from(ppid) % modulo) % modulo;
            if p.ts == pts {
                if pid != ppid {
                    note(format!(
                        "seq {}: PictureID changed inside a frame ({ppid} -> {pid})",
                        p.seq
                    ));
                }
            } else if delta != 1 {
                note(format!(
                    "seq {}: PictureID jumped {ppid} -> {pid} between consecutive frames",
                    p.seq
                ));
            }
        }
        prev = Some((p.ts, pid, long));
    }
}
