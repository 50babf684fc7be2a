//! What is checked and changed in a client's SDP before str0m parses it: a cheap line scan that
//! caps the size and the m-lines of an offer at what the protocol uses (a parse of 1,000 m-lines
//! stalls the whole shard), and the rewrite that keeps a participant without the publish grant
//! from being invited to upload media the room would drop.
//!
//! Lines end in CRLF or LF, as str0m's parser accepts; an m-line is a line starting `m=`.

/// Largest offer accepted. A browser offer with audio, simulcast video, screen share and a data
/// channel is 8-15 KB; the signaling frame limit (64 KiB) bounds everything else anyway.
pub const MAX_OFFER_BYTES: usize = 32 * 1024;
/// m-lines a client's offer may have: audio, camera, screen share, a data channel.
pub const MAX_M_LINES: usize = 4;
pub const MAX_AUDIO: usize = 1;
pub const MAX_VIDEO: usize = 2;
pub const MAX_APPLICATION: usize = 1;

/// Why an SDP was refused before parsing. The texts are sent to the client as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SdpLimit {
    #[error("the offer is larger than {MAX_OFFER_BYTES} bytes")]
    TooLarge,
    #[error(
        "the offer has more than {MAX_M_LINES} m-lines (at most {MAX_AUDIO} audio, {MAX_VIDEO} \
         video and {MAX_APPLICATION} application)"
    )]
    TooManyMLines,
    #[error("the offer has more than {MAX_AUDIO} audio m-line")]
    TooManyAudio,
    #[error("the offer has more than {MAX_VIDEO} video m-lines")]
    TooManyVideo,
    #[error("the offer has more than {MAX_APPLICATION} application m-line")]
    TooManyApplication,
    #[error("the offer has an m-line that is not audio, video or application")]
    OtherMedia,
    #[error("the answer has more m-lines than the offer it answers")]
    AnswerMLines,
}

/// The media type of each m-line of `sdp`, in order.
fn m_lines(sdp: &str) -> impl Iterator<Item = &str> {
    sdp.split('\n').filter_map(|line| {
        let rest = line.strip_prefix("m=")?;
        let end = rest.find([' ', '\r']).unwrap_or(rest.len());
        Some(&rest[..end])
    })
}

/// Number of m-lines in `sdp`.
pub fn count_m_lines(sdp: &str) -> usize {
    m_lines(sdp).count()
}

/// Refuses an offer larger or with more m-lines than the protocol needs.
pub fn check_offer(sdp: &str) -> Result<(), SdpLimit> {
    if sdp.len() > MAX_OFFER_BYTES {
        return Err(SdpLimit::TooLarge);
    }
    let (mut total, mut audio, mut video, mut app) = (0, 0, 0, 0);
    for kind in m_lines(sdp) {
        total += 1;
        let (n, max, err) = match kind {
            "audio" => (&mut audio, MAX_AUDIO, SdpLimit::TooManyAudio),
            "video" => (&mut video, MAX_VIDEO, SdpLimit::TooManyVideo),
            "application" => (&mut app, MAX_APPLICATION, SdpLimit::TooManyApplication),
            _ => return Err(SdpLimit::OtherMedia),
        };
        *n += 1;
        if total > MAX_M_LINES {
            return Err(SdpLimit::TooManyMLines);
        }
        if *n > max {
            return Err(err);
        }
    }
    Ok(())
}

/// Bytes a client's new offer may carry per m-line the session already has (Chromium's video
/// m-lines, with every codec and its RTX, are 3-4 KB).
pub const REOFFER_BYTES_PER_M_LINE: usize = 8 * 1024;

/// Refuses a client's new offer on a session of `session` m-lines (its own and those the
/// server added), `own` of them brought by the client: the m-lines it adds count against the
/// client's [`MAX_M_LINES`], and its size may grow with the session. Returns the client's own
/// m-lines after it.
pub fn check_reoffer(sdp: &str, session: usize, own: usize) -> Result<usize, SdpLimit> {
    if sdp.len() > MAX_OFFER_BYTES + session * REOFFER_BYTES_PER_M_LINE {
        return Err(SdpLimit::TooLarge);
    }
    let mut total: usize = 0;
    for kind in m_lines(sdp) {
        if !matches!(kind, "audio" | "video" | "application") {
            return Err(SdpLimit::OtherMedia);
        }
        total += 1;
    }
    let own = own + total.saturating_sub(session);
    if own > MAX_M_LINES {
        return Err(SdpLimit::TooManyMLines);
    }
    Ok(own)
}

/// Refuses an answer with more m-lines than the offer it answers (str0m would add them).
pub fn check_answer(sdp: &str, offered: usize) -> Result<(), SdpLimit> {
    if count_m_lines(sdp) > offered {
        return Err(SdpLimit::AnswerMLines);
    }
    Ok(())
}

/// The offer of a participant that may not publish, changed so that str0m's answer invites no
/// upload: on audio and video m-lines `sendonly` becomes `inactive` and `sendrecv` `recvonly`
/// (str0m answers the inverse: `inactive`, `sendonly`), and the sending simulcast lines
/// (`a=rid`, `a=simulcast`) go. Everything else is kept byte for byte.
pub fn receive_only(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    // Session-level lines (before the first m-line) are rewritten too: they may not carry a
    // direction str0m reads, but nothing of the offer should say "send".
    let mut media = true;
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        if let Some(rest) = body.strip_prefix("m=") {
            media = rest.starts_with("audio ") || rest.starts_with("video ");
        }
        if media {
            match body {
                "a=sendonly" => {
                    out.push_str("a=inactive");
                    out.push_str(ending);
                    continue;
                }
                "a=sendrecv" => {
                    out.push_str("a=recvonly");
                    out.push_str(ending);
                    continue;
                }
                _ if body.starts_with("a=rid:") || body.starts_with("a=simulcast:") => continue,
                _ => {}
            }
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(m: &[&str], eol: &str) -> String {
        let mut s = format!("v=0{eol}o=- 1 2 IN IP4 127.0.0.1{eol}s=-{eol}t=0 0{eol}");
        for (i, kind) in m.iter().enumerate() {
            s.push_str(&format!(
                "m={kind} 9 UDP/TLS/RTP/SAVPF 96{eol}a=mid:{i}{eol}a=sendonly{eol}"
            ));
        }
        s
    }

    #[test]
    fn what_the_protocol_uses_passes_with_crlf_and_lf() {
        for eol in ["\r\n", "\n"] {
            for m in [
                &["audio"][..],
                &["audio", "video"],
                &["audio", "video", "video", "application"],
                &["video", "audio"],
            ] {
                assert_eq!(check_offer(&sdp(m, eol)), Ok(()), "{m:?} {eol:?}");
            }
            // No m-line at all is str0m's to refuse.
            assert_eq!(check_offer(&sdp(&[], eol)), Ok(()));
            assert_eq!(count_m_lines(&sdp(&["audio", "video"], eol)), 2);
        }
    }

    #[test]
    fn more_than_the_protocol_uses_is_refused() {
        for eol in ["\r\n", "\n"] {
            let cases: [(&[&str], SdpLimit); 6] = [
                (&["audio", "audio"], SdpLimit::TooManyAudio),
                (&["video", "video", "video"], SdpLimit::TooManyVideo),
                (
                    &["application", "audio", "application"],
                    SdpLimit::TooManyApplication,
                ),
                (&["audio", "text"], SdpLimit::OtherMedia),
                (&["audiox"], SdpLimit::OtherMedia),
                (
                    &["audio", "video", "video", "application", "video"],
                    SdpLimit::TooManyMLines,
                ),
            ];
            for (m, want) in cases {
                assert_eq!(check_offer(&sdp(m, eol)), Err(want), "{m:?} {eol:?}");
            }
        }
        let fifty = vec!["video"; 50];
        assert_eq!(
            check_offer(&sdp(&fifty, "\r\n")),
            Err(SdpLimit::TooManyVideo)
        );
        let mixed: Vec<&str> = ["audio", "video", "application"]
            .into_iter()
            .cycle()
            .take(1000)
            .collect();
        assert!(check_offer(&sdp(&mixed, "\n")).is_err());
    }

    #[test]
    fn huge_inputs_are_refused_by_size_first() {
        let big = format!("{}{}", sdp(&["audio"], "\r\n"), "a=x\r\n".repeat(10_000));
        assert_eq!(check_offer(&big), Err(SdpLimit::TooLarge));
        // Megabytes without a single newline: refused by size, not scanned as one line.
        assert_eq!(check_offer(&"m".repeat(4 << 20)), Err(SdpLimit::TooLarge));
        // Just under the limit with nothing but padding: fine for the scan (str0m decides).
        let pad = "x".repeat(MAX_OFFER_BYTES);
        assert_eq!(check_offer(&pad), Ok(()));
        assert_eq!(check_offer(&format!("{pad}x")), Err(SdpLimit::TooLarge));
    }

    #[test]
    fn only_lines_starting_m_equals_count() {
        let s = "v=0\r\na=m=audio\r\n m=audio 9 X\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
        assert_eq!(count_m_lines(s), 1);
        assert_eq!(check_offer(s), Ok(()));
    }

    #[test]
    fn answers_may_not_add_m_lines() {
        let a = sdp(&["audio", "video", "video"], "\r\n");
        assert_eq!(check_answer(&a, 3), Ok(()));
        assert_eq!(check_answer(&a, 2), Err(SdpLimit::AnswerMLines));
    }

    #[test]
    fn receive_only_rewrites_directions_and_drops_send_simulcast() {
        for eol in ["\r\n", "\n"] {
            let offer = [
                "v=0",
                "a=sendrecv",
                "m=audio 9 UDP/TLS/RTP/SAVPF 111",
                "a=mid:0",
                "a=sendrecv",
                "m=video 9 UDP/TLS/RTP/SAVPF 96",
                "a=mid:1",
                "a=sendonly",
                "a=rid:q send",
                "a=simulcast:send q;h;f",
                "a=ssrc:1 cname:x",
                "m=video 9 UDP/TLS/RTP/SAVPF 96",
                "a=mid:2",
                "a=recvonly",
                "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
                "a=mid:3",
                "a=sendrecv",
                "",
            ]
            .join(eol);
            let want = [
                "v=0",
                "a=recvonly",
                "m=audio 9 UDP/TLS/RTP/SAVPF 111",
                "a=mid:0",
                "a=recvonly",
                "m=video 9 UDP/TLS/RTP/SAVPF 96",
                "a=mid:1",
                "a=inactive",
                "a=ssrc:1 cname:x",
                "m=video 9 UDP/TLS/RTP/SAVPF 96",
                "a=mid:2",
                "a=recvonly",
                "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
                "a=mid:3",
                "a=sendrecv",
                "",
            ]
            .join(eol);
            assert_eq!(receive_only(&offer), want, "{eol:?}");
        }
        // No trailing newline: the last line is still rewritten.
        assert_eq!(
            receive_only("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly"),
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=inactive"
        );
    }

    #[test]
    fn a_new_offer_may_add_up_to_the_clients_own_limit() {
        // A session of 8 m-lines (2 of the client's, 6 the server added): the same again is
        // fine, two more of the client's too, a third more is not.
        let eight = sdp(
            &[
                "audio", "video", "audio", "video", "audio", "video", "audio", "video",
            ],
            "\r\n",
        );
        assert_eq!(check_reoffer(&eight, 8, 2), Ok(2));
        let ten = sdp(
            &[
                "audio",
                "video",
                "audio",
                "video",
                "audio",
                "video",
                "audio",
                "video",
                "video",
                "application",
            ],
            "\r\n",
        );
        assert_eq!(check_reoffer(&ten, 8, 2), Ok(4));
        let mut eleven = ten.clone();
        eleven.push_str("m=video 9 UDP/TLS/RTP/SAVPF 96\r\n");
        assert_eq!(check_reoffer(&eleven, 8, 2), Err(SdpLimit::TooManyMLines));
        assert_eq!(
            check_reoffer(&sdp(&["audio", "image"], "\r\n"), 2, 2),
            Err(SdpLimit::OtherMedia)
        );
        // The size limit grows with the session, not without bound.
        let big = "a".repeat(MAX_OFFER_BYTES + 3 * REOFFER_BYTES_PER_M_LINE);
        assert_eq!(check_reoffer(&big, 2, 2), Err(SdpLimit::TooLarge));
    }
}
