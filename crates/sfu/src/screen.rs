//! Screen shares: which of a publisher's video m-lines carry its screen (issue 16).
//!
//! The client names them in its `offer` (`screen: [mid]`, PROTOCOL.md). A share is allocated
//! with content priority (`kham_bwe::Kind::Screen`: bought before camera video, resolution kept
//! and frame rate given up first) and subscribers are told in their track list
//! (`TrackInfo::screen`), so their page can show it large.

use kham_proto::ParticipantId;
use str0m::media::Mid;

use crate::peer::Peer;

/// At most this many screen shares per participant (an offer has at most 2 video m-lines:
/// a camera and a share).
pub const MAX_SCREEN_MIDS: usize = 2;

/// Why an offer's `screen` list was refused. The text is what the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScreenMidError {
    #[error("screen: at most {MAX_SCREEN_MIDS} mids")]
    TooMany,
    /// A named mid is not a video m-line of the offer (the mid is not echoed: client text).
    #[error("screen: each mid must be a video m-line of this offer")]
    NotVideo,
}

/// The mids of `offer`'s video m-lines.
fn video_mids(offer: &str) -> impl Iterator<Item = &str> {
    let mut in_video = false;
    offer.split('\n').filter_map(move |line| {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("m=") {
            in_video = rest.starts_with("video ");
            return None;
        }
        if !in_video {
            return None;
        }
        line.strip_prefix("a=mid:")
    })
}

/// Checks the client's `screen` list against its offer: each entry a video m-line of it.
pub fn check(offer: &str, screen: &[String]) -> Result<Vec<Mid>, ScreenMidError> {
    if screen.len() > MAX_SCREEN_MIDS {
        return Err(ScreenMidError::TooMany);
    }
    screen
        .iter()
        .map(|m| {
            video_mids(offer)
                .find(|v| v == m)
                .map(Mid::from)
                .ok_or(ScreenMidError::NotVideo)
        })
        .collect()
}

/// Marks publisher `id`'s screen shares: its tracks already published and, through
/// `Peer::screen_mids`, those its offer adds (`Room::media_added`). Every subscriber's copy
/// follows, and is renegotiated only if its flag changed (to carry the new track list).
pub(crate) fn apply(peers: &mut [Peer], id: &ParticipantId, mids: Vec<Mid>) {
    let Some(publisher) = peers.iter_mut().find(|p| p.id == *id) else {
        return;
    };
    for t in &mut publisher.tracks_in {
        t.screen = mids.contains(&t.mid);
    }
    publisher.screen_mids = mids;
    let marks: Vec<(Mid, bool)> = publisher
        .tracks_in
        .iter()
        .map(|t| (t.mid, t.screen))
        .collect();
    for sub in peers.iter_mut() {
        for out in sub.tracks_out.iter_mut().filter(|o| o.publisher == *id) {
            if let Some(&(_, screen)) = marks.iter().find(|(m, _)| *m == out.source_mid) {
                out.screen = screen;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\n";

    #[test]
    fn screen_mids_must_be_video_m_lines_of_the_offer() {
        assert_eq!(check(OFFER, &[]), Ok(vec![]));
        assert_eq!(check(OFFER, &["2".into()]), Ok(vec![Mid::from("2")]));
        assert_eq!(check(OFFER, &["0".into()]), Err(ScreenMidError::NotVideo));
        assert_eq!(check(OFFER, &["7".into()]), Err(ScreenMidError::NotVideo));
        assert_eq!(
            check(OFFER, &["1".into(), "2".into(), "1".into()]),
            Err(ScreenMidError::TooMany)
        );
    }
}
