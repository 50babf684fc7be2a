use kham_proto::ParticipantId;

use crate::sdp_check::SdpLimit;

/// Errors of the room engine. Each maps to a typed signaling error; none is fatal to the room.
///
/// `Display` carries the detail (str0m's own text, which can quote the client's SDP): for
/// debug-level logs. What a client is told is [`SfuError::public_message`].
#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    /// The SDP text could not be parsed.
    #[error("SDP could not be parsed: {0}")]
    SdpParse(String),
    /// The SDP parsed but str0m refused it (unsupported codecs, bad direction, ...).
    #[error("SDP was not accepted: {0}")]
    SdpRejected(String),
    /// The SDP is larger or has more m-lines than the protocol uses (checked before parsing).
    #[error("{0}")]
    SdpLimit(#[from] SdpLimit),
    /// No such participant in this room.
    #[error("unknown participant {0}")]
    UnknownPeer(ParticipantId),
    /// A client's new offer crossed the server's own (glare): the client answers the server's
    /// offer, then offers again.
    #[error("offer from {0} crossed a server offer")]
    Glare(ParticipantId),
    /// An answer arrived with no server offer outstanding.
    #[error("no offer is waiting for an answer")]
    NoPendingOffer,
    /// The room holds its maximum of media sessions.
    #[error("the room is full")]
    RoomFull,
    /// No peer of this room accepts the datagram.
    #[error("datagram belongs to no peer of this room")]
    NotOurs,
    /// The offer's `screen` list names too many mids or one that is not a video m-line.
    #[error("{0}")]
    Screen(#[from] crate::screen::ScreenMidError),
    /// str0m rejected input (a malformed datagram, a DTLS failure).
    #[error("media input rejected: {0}")]
    Input(String),
}

impl SfuError {
    /// The text a client may be sent: fixed, in our words, never a library's message (str0m's
    /// parse errors carry heap addresses and fragments of the SDP).
    pub fn public_message(&self) -> String {
        match self {
            SfuError::SdpParse(_) => "the SDP could not be parsed".into(),
            SfuError::SdpRejected(_) => {
                "the SDP was not accepted (unsupported codecs, directions or transport)".into()
            }
            SfuError::SdpLimit(l) => l.to_string(),
            SfuError::Screen(e) => e.to_string(),
            SfuError::UnknownPeer(_) => "no media session; send an offer first".into(),
            SfuError::Glare(_) => {
                "a server offer is waiting for its answer: answer it, then offer again".into()
            }
            SfuError::NoPendingOffer => "no offer is waiting for an answer".into(),
            SfuError::RoomFull => "the room is full".into(),
            SfuError::NotOurs | SfuError::Input(_) => "the media engine refused the request".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_messages_carry_no_library_text() {
        let secret = "Parse error at PointerOffset(0x7f3fd000f070) a=fingerprint:sha-256 AB";
        let all = [
            SfuError::SdpParse(secret.into()),
            SfuError::SdpRejected(secret.into()),
            SfuError::SdpLimit(SdpLimit::TooManyMLines),
            SfuError::UnknownPeer("p-1".into()),
            SfuError::Glare("p-1".into()),
            SfuError::NoPendingOffer,
            SfuError::RoomFull,
            SfuError::NotOurs,
            SfuError::Input(secret.into()),
        ];
        for e in &all {
            let m = e.public_message();
            assert!(!m.is_empty());
            assert!(!m.contains("0x") && !m.contains("Pointer"), "{m}");
            assert!(!m.contains("fingerprint"), "{m}");
        }
        assert_eq!(all[0].public_message(), "the SDP could not be parsed");
        // The detail stays available for debug logs.
        assert!(all[0].to_string().contains("PointerOffset"));
        assert_eq!(
            all[2].public_message(),
            "the offer has more than 4 m-lines (at most 1 audio, 2 video and 1 application)"
        );
    }
}
