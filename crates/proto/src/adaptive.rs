//! Messages of adaptive forwarding: what each subscriber receives and why (`video_state`), the
//! publisher's needed layers (`publish_layers`), connection quality (`quality`), and the
//! subscriber's own reports (`video_view`, `audio_only`). See PROTOCOL.md.

use serde::{Deserialize, Serialize};

use crate::ParticipantId;

/// Largest rendered size a `video_view` may report; larger values are clamped.
pub const MAX_VIEW_WIDTH: u32 = 7680;
/// See [`MAX_VIEW_WIDTH`].
pub const MAX_VIEW_HEIGHT: u32 = 4320;
/// Most entries one `video_view` may carry.
pub const MAX_VIEWS: usize = 64;

/// Why a received video is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// The subscriber's link cannot carry even the lowest layer; resumes by itself.
    Bandwidth,
    /// The subscriber chose audio only.
    AudioOnly,
    /// The subscriber reported the tile hidden.
    Hidden,
    /// The publisher sends no video now (camera off, layers gone, no keyframe yet).
    NoVideo,
}

/// A simulcast layer as sent on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayerRef {
    pub spatial: u8,
    pub temporal: u8,
}

/// One received video as its subscriber gets it now.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VideoState {
    /// The subscriber's receive mid.
    pub mid: String,
    pub participant: ParticipantId,
    pub paused: bool,
    pub reason: Option<PauseReason>,
    pub layer: Option<LayerRef>,
}

/// One simulcast encoding of a publisher's video: whether some subscriber needs it and, for an
/// encoding shaped to fit a weak subscriber (the video floor), the limits to apply with
/// `RTCRtpSender.setParameters`. A limit left out (`None`) means the client's own default for
/// that encoding (what it published with); the server always sends the full set it wants, so a
/// client applies each message as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerActive {
    pub rid: String,
    pub active: bool,
    /// `maxBitrate` in bits per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bitrate: Option<u32>,
    /// `maxFramerate` in frames per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_framerate: Option<f32>,
    /// `scaleResolutionDownBy` relative to the captured size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_resolution_down_by: Option<f32>,
}

impl LayerActive {
    /// An encoding switched on or off with the client's default limits.
    pub fn plain(rid: impl Into<String>, active: bool) -> Self {
        LayerActive {
            rid: rid.into(),
            active,
            max_bitrate: None,
            max_framerate: None,
            scale_resolution_down_by: None,
        }
    }
}

/// Connection quality, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityLevel {
    Excellent,
    Good,
    Poor,
    Lost,
}

/// One participant's connection quality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualityEntry {
    pub id: ParticipantId,
    pub quality: QualityLevel,
}

/// How a subscriber shows one received video (adaptive stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoViewSize {
    pub width: u32,
    pub height: u32,
    pub visible: bool,
    /// Highest simulcast layer wanted (0 = lowest), if the client caps it.
    pub max_spatial: Option<u8>,
}

/// A `video_view` entry: the receive mid and how it is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoView {
    pub mid: String,
    /// Rendered width in device pixels.
    pub width: u32,
    /// Rendered height in device pixels.
    pub height: u32,
    pub visible: bool,
    #[serde(default)]
    pub max_spatial: Option<u8>,
}

impl VideoView {
    /// The view with its size clamped to the protocol's bounds, and whether it had to be.
    pub fn clamped(&self) -> (VideoViewSize, bool) {
        let width = self.width.min(MAX_VIEW_WIDTH);
        let height = self.height.min(MAX_VIEW_HEIGHT);
        let absurd = width != self.width || height != self.height;
        (
            VideoViewSize {
                width,
                height,
                visible: self.visible,
                max_spatial: self.max_spatial,
            },
            absurd,
        )
    }
}
