//! The media side as signaling sees it. The server implements [`Media`] on its shard threads;
//! tests implement it with a fake, so signaling is tested without str0m or sockets.

use kham_proto::{LayerActive, ParticipantId, QualityEntry, TrackInfo, VideoState, VideoView};
use tokio::sync::{mpsc, oneshot};

/// What a participant may send and receive (from its token's grants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaPerms {
    pub publish: bool,
    pub subscribe: bool,
    /// Sends and receives vital signs over data channels (the `health_data` grant).
    pub health_data: bool,
}

/// Events from a room's media engine.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// Server renegotiation for this participant.
    Offer {
        peer: ParticipantId,
        sdp: String,
        tracks: Vec<TrackInfo>,
    },
    /// ICE and DTLS are up.
    Connected { peer: ParticipantId },
    /// The participant's media stopped; it is kept for the reconnect grace.
    Reconnecting { peer: ParticipantId },
    /// Its media flows again.
    Reconnected { peer: ParticipantId },
    /// The participant's media connection died (not back within the reconnect grace).
    Lost { peer: ParticipantId },
    /// What this subscriber's received videos are doing now (send `video_state`).
    VideoState {
        peer: ParticipantId,
        tracks: Vec<VideoState>,
    },
    /// Dynacast for this publisher (send `publish_layers`).
    PublishLayers {
        peer: ParticipantId,
        mid: String,
        layers: Vec<LayerActive>,
    },
    /// Cap this publisher's Opus bitrate, set its packet time (send `audio_rate`).
    AudioRate {
        peer: ParticipantId,
        mid: String,
        max_bitrate: Option<u32>,
        ptime: Option<u16>,
    },
    /// Everyone's connection quality (send `quality` to the call).
    Quality { scores: Vec<QualityEntry> },
}

/// Why a media request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("SDP could not be parsed or accepted: {0}")]
    BadSdp(String),
    #[error("not allowed now: {0}")]
    BadState(String),
    /// A field of the request is invalid (an offer's `screen` list).
    #[error("bad request: {0}")]
    BadMessage(String),
    /// The client's new offer crossed a server offer: answer that one, then offer again.
    #[error("offer crossed a server offer: {0}")]
    Glare(String),
    #[error("media engine unavailable")]
    Unavailable,
}

/// Handle to the media engine. Calls never block: requests are queued to the room's owner and
/// answered through the returned receiver.
pub trait Media: Send + Sync + 'static {
    /// Prepares media for a room; its events go to `events`.
    fn open_room(&self, room: &str, events: mpsc::Sender<MediaEvent>);
    /// Starts a participant's media session from its offer; resolves to the answer SDP.
    fn offer(
        &self,
        room: &str,
        peer: ParticipantId,
        perms: MediaPerms,
        sdp: String,
        screen: Option<Vec<String>>,
    ) -> oneshot::Receiver<Result<String, MediaError>>;
    /// Applies the participant's answer to the last server offer.
    fn answer(
        &self,
        room: &str,
        peer: ParticipantId,
        sdp: String,
    ) -> oneshot::Receiver<Result<(), MediaError>>;
    /// Ends a participant's media session.
    fn remove(&self, room: &str, peer: ParticipantId);
    /// Restarts a participant's ICE: a server `offer` with new credentials follows.
    fn ice_restart(&self, room: &str, peer: ParticipantId);
    /// The participant chose to receive audio only (or video again).
    fn audio_only(&self, room: &str, peer: ParticipantId, enabled: bool);
    /// How the participant shows its received videos (adaptive stream).
    fn video_view(&self, room: &str, peer: ParticipantId, views: Vec<VideoView>);
    /// Drops the room's media.
    fn close_room(&self, room: &str);
}
