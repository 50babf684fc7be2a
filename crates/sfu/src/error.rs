use kham_proto::ParticipantId;

/// Errors of the room engine. Each maps to a typed signaling error; none is fatal to the room.
#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    /// The SDP text could not be parsed.
    #[error("SDP could not be parsed: {0}")]
    SdpParse(String),
    /// The SDP parsed but str0m refused it (unsupported codecs, bad direction, ...).
    #[error("SDP was not accepted: {0}")]
    SdpRejected(String),
    /// No such participant in this room.
    #[error("unknown participant {0}")]
    UnknownPeer(ParticipantId),
    /// The participant already has a media session.
    #[error("participant {0} already has a media session")]
    AlreadyPublishing(ParticipantId),
    /// An answer arrived with no server offer outstanding.
    #[error("no offer is waiting for an answer")]
    NoPendingOffer,
    /// The room holds its maximum of media sessions.
    #[error("the room is full")]
    RoomFull,
    /// No peer of this room accepts the datagram.
    #[error("datagram belongs to no peer of this room")]
    NotOurs,
    /// str0m rejected input (a malformed datagram, a DTLS failure).
    #[error("media input rejected: {0}")]
    Input(String),
}
