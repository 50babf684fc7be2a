//! The targets. Each takes any bytes; an assertion that fails, or a panic inside a parser, is a
//! finding.

use kham_netem::Trace;
use kham_sfu::red::{parse_red, write_red};
use kham_sfu::rfc4571::{FrameReader, MAX_FRAME};
use kham_sfu::{h264_is_keyframe, parse_vp8, sdp_check, vp8_keyframe_size};
use kham_signal::token::{Claims, TokenKeys};

/// VP8 descriptors: picture ids within their width, a 2-bit temporal id, a keyframe size only
/// for a keyframe start; H.264 keyframe detection terminates.
pub fn vp8(data: &[u8]) {
    if let Some(v) = parse_vp8(data) {
        if let Some(p) = v.picture_id {
            let bits = if v.picture_id_15bit { 15 } else { 7 };
            assert!(p < 1 << bits, "picture id {p} wider than {bits} bits");
        }
        assert!(v.tid.is_none_or(|t| t < 4), "temporal id {:?}", v.tid);
    }
    if let Some((w, h)) = vp8_keyframe_size(data) {
        assert!(
            parse_vp8(data).is_some_and(|v| v.keyframe),
            "a size without a keyframe"
        );
        assert!(w > 0 && h > 0 && w < 1 << 14 && h < 1 << 14, "size {w}x{h}");
    }
    let _ = h264_is_keyframe(data);
}

/// RED: parsing never reads past the payload (blocks are slices of it); what `write_red` writes
/// parses back to the same primary and redundant block.
pub fn red(data: &[u8]) {
    if let Some(r) = parse_red(data) {
        let total: usize =
            r.redundant().map(|b| b.data.len()).sum::<usize>() + r.primary.data.len();
        assert!(total <= data.len());
        assert!(r.primary.pt < 0x80);
    }
    // The input as a block to write: pt, a timestamp offset, then `previous` and `primary`.
    let [pt, o1, o2, split, rest @ ..] = data else {
        return;
    };
    let offset = u32::from(u16::from_be_bytes([*o1, *o2]));
    let at = usize::from(*split).min(rest.len());
    let (previous, primary) = rest.split_at(at);
    let mut out = Vec::new();
    write_red(&mut out, *pt, primary, Some((offset, previous)));
    let r = parse_red(&out).expect("write_red's output parses");
    assert_eq!(r.primary.pt, pt & 0x7f);
    assert_eq!(r.primary.data, primary);
    let kept = offset < 1 << 14 && !previous.is_empty() && previous.len() < 1024;
    let redundant: Vec<_> = r.redundant().collect();
    if kept {
        assert_eq!(redundant.len(), 1);
        assert_eq!(redundant[0].data, previous);
        assert_eq!(u32::from(redundant[0].ts_offset), offset);
    } else {
        assert!(redundant.is_empty());
    }
}

/// Client signaling: whatever parses serializes back to the same message.
pub fn signal_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = kham_proto::parse_client_msg(text) {
        let again = serde_json::to_string(&m).expect("a parsed message serializes");
        let back = kham_proto::parse_client_msg(&again).expect("a serialized message parses");
        assert_eq!(back, m);
    }
}

/// The one token [`token`] accepts: signed by its key (the seed corpus has it).
pub fn signed_token() -> String {
    token_keys()
        .sign(&Claims {
            iss: "fuzz".into(),
            sub: "someone".into(),
            name: "Someone".into(),
            room: "room".into(),
            role: kham_proto::Role::Doctor,
            exp: 4_000_000_000,
            nbf: 0,
            jti: "jti".into(),
            grants: Default::default(),
        })
        .expect("signing")
}

fn token_keys() -> TokenKeys {
    TokenKeys::new("fuzz", "a secret of the fuzz target, long enough for HS256")
}

/// Tokens: anything but what the key signed is refused (no `alg: none`, no other algorithm, no
/// forged signature), and never with a panic.
pub fn token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let keys = token_keys();
    let ok = keys.verify(text, 1_800_000_000).is_ok();
    if ok {
        assert_eq!(
            text,
            signed_token(),
            "accepted a token the key did not sign"
        );
    }
    let _ = keys.verify_for_room(text, "room", 1_800_000_000);
}

/// The SDP checks before str0m: never a panic; a receive-only rewrite leaves no line that sends.
pub fn sdp(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sdp_check::check_offer(text);
    let n = sdp_check::count_m_lines(text);
    let _ = sdp_check::check_answer(text, n / 2);
    if let Ok(own) = sdp_check::check_reoffer(text, n / 2, 2) {
        assert!(own <= sdp_check::MAX_M_LINES);
    }
    let ro = sdp_check::receive_only(text);
    let mut media = true;
    for line in ro.split('\n') {
        let line = line.trim_end_matches(['\r', '\n']);
        if let Some(rest) = line.strip_prefix("m=") {
            media = rest.starts_with("audio ") || rest.starts_with("video ");
        }
        if media {
            assert!(
                line != "a=sendonly" && line != "a=sendrecv",
                "receive_only left {line:?}"
            );
            assert!(!line.starts_with("a=rid:") && !line.starts_with("a=simulcast:"));
        }
    }
}

/// ICE-TCP framing: a stream cut into arbitrary pieces yields the same frames as whole, each
/// within MAX_FRAME, and a bad length is an error rather than a wait or a panic.
pub fn rfc4571(data: &[u8]) {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let frames = |piece: usize| -> (Vec<Vec<u8>>, bool) {
        let mut r = FrameReader::default();
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            loop {
                match r.next_frame() {
                    Ok(Some(range)) => {
                        assert!(!range.is_empty() && range.len() <= MAX_FRAME);
                        out.push(r.bytes()[range].to_vec());
                    }
                    Ok(None) => break,
                    Err(_) => return (out, true),
                }
            }
            if at >= stream.len() {
                return (out, false);
            }
            let spare = r.spare();
            assert!(!spare.is_empty(), "no room after draining");
            let n = piece.min(spare.len()).min(stream.len() - at);
            spare[..n].copy_from_slice(&stream[at..at + n]);
            r.filled(n);
            at += n;
        }
    };
    let whole = frames(usize::MAX);
    let pieces = frames(usize::from(cut).max(1));
    assert_eq!(whole, pieces, "framing depends on how the stream was cut");
}

/// Link traces: a parsed trace has a finite mean and answers every instant.
pub fn trace(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = Trace::parse(text) {
        let d = t.duration();
        let _ = t.mean_bps();
        for k in 0..8u32 {
            let _ = t.capacity_bps_at(d * k / 4);
        }
    }
}

/// kham-relay spec files: parsed and, when they name no trace file (which would be read from
/// disk), built into link specs, never with a panic.
pub fn relay_spec(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = kham_relay::spec::SpecFile::parse(text)
        && !text.contains("trace")
    {
        let _ = spec.build(
            &kham_relay::spec::LinkArgs::default(),
            &mut kham_relay::spec::TraceCache::default(),
        );
    }
}
