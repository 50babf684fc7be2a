//! Signaling messages. See `PROTOCOL.md` for the flow.

use serde::{Deserialize, Serialize};

use crate::adaptive::{LayerActive, QualityEntry, VideoState, VideoView};
use crate::{ParticipantId, Role};

/// Media kind of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// Opus audio.
    Audio,
    /// VP8 (simulcast) or H.264 video.
    Video,
}

/// Whether a participant is in the lobby or in the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In the lobby, no media flows to or from them.
    Waiting,
    /// In the call.
    Admitted,
}

/// Why a participant left the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// They left (or closed the signaling socket).
    Left,
    /// A doctor removed them.
    Removed,
    /// Their media connection timed out (ICE consent lost) or the socket dropped.
    ConnectionLost,
    /// Denied from the lobby.
    Denied,
    /// The same identity joined again and replaced this session.
    Replaced,
}

/// A participant as others see them. Carries the display name, so it is only sent to members
/// of the same room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub id: ParticipantId,
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub audio_muted: bool,
    #[serde(default)]
    pub video_muted: bool,
}

/// One waiting person, shown to those who can admit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LobbyEntry {
    pub id: ParticipantId,
    pub name: String,
    pub role: Role,
    /// Milliseconds since the entry started waiting.
    pub waiting_since_ms: u64,
}

/// Maps a receive transceiver (mid) of a subscriber to the participant whose track it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    pub mid: String,
    pub participant: ParticipantId,
    pub kind: MediaKind,
    /// False once the m-line has been stopped (its publisher left).
    pub active: bool,
}

/// Typed error codes carried in `error` replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadJson,
    UnknownType,
    BadMessage,
    Forbidden,
    BadState,
    BadSdp,
    NotFound,
    Internal,
}

/// Messages from the server to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Welcome {
        protocol: u32,
        room: String,
        me: ParticipantInfo,
        participants: Vec<ParticipantInfo>,
        status: Status,
    },
    Admitted {
        participants: Vec<ParticipantInfo>,
    },
    Lobby {
        entries: Vec<LobbyEntry>,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    ParticipantUpdated {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        id: ParticipantId,
        reason: LeaveReason,
    },
    Answer {
        sdp: String,
    },
    Offer {
        sdp: String,
        tracks: Vec<TrackInfo>,
    },
    Tracks {
        tracks: Vec<TrackInfo>,
    },
    Denied {
        reason: String,
    },
    Removed {
        reason: String,
    },
    Ended {
        reason: String,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    Pong {
        id: u64,
    },
    /// The full list of this subscriber's received videos, on any change.
    VideoState {
        tracks: Vec<VideoState>,
    },
    /// Dynacast: which encodings of the client's own video some subscriber needs.
    PublishLayers {
        mid: String,
        layers: Vec<LayerActive>,
    },
    /// Everyone's connection quality.
    Quality {
        participants: Vec<QualityEntry>,
    },
}

impl ServerMsg {
    /// Shorthand for an `error` reply.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            code,
            message: message.into(),
        }
    }
}

/// Messages from a client to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    Offer {
        sdp: String,
    },
    Answer {
        sdp: String,
    },
    Admit {
        id: ParticipantId,
    },
    Deny {
        id: ParticipantId,
        #[serde(default)]
        reason: Option<String>,
    },
    Remove {
        id: ParticipantId,
        #[serde(default)]
        reason: Option<String>,
    },
    EndConsult,
    Mute {
        kind: MediaKind,
        muted: bool,
    },
    Leave,
    Ping {
        id: u64,
    },
    /// Receive no video (to save data), or video again.
    AudioOnly {
        enabled: bool,
    },
    /// Adaptive stream: how each received video is shown.
    VideoView {
        views: Vec<VideoView>,
    },
}

const CLIENT_TYPES: &[&str] = &[
    "offer",
    "answer",
    "admit",
    "deny",
    "remove",
    "end_consult",
    "mute",
    "leave",
    "ping",
    "audio_only",
    "video_view",
];

/// Why a client frame could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON, not an object, or no string `type`.
    #[error("not a JSON object with a string \"type\": {0}")]
    BadJson(String),
    /// A `type` this server does not know.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A known `type` with missing or mistyped fields.
    #[error("bad {kind} message: {detail}")]
    BadMessage { kind: String, detail: String },
}

impl ParseError {
    /// The wire error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            ParseError::BadJson(_) => ErrorCode::BadJson,
            ParseError::UnknownType(_) => ErrorCode::UnknownType,
            ParseError::BadMessage { .. } => ErrorCode::BadMessage,
        }
    }
}

/// Parses one client frame, telling apart bad JSON, an unknown type and bad fields.
pub fn parse_client_msg(text: &str) -> Result<ClientMsg, ParseError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ParseError::BadJson(e.to_string()))?;
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or_else(|| ParseError::BadJson("missing \"type\"".into()))?
        .to_owned();
    if !CLIENT_TYPES.contains(&kind.as_str()) {
        // Bound what is echoed back.
        return Err(ParseError::UnknownType(kind.chars().take(40).collect()));
    }
    serde_json::from_value(value).map_err(|e| ParseError::BadMessage {
        kind,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_client_type() {
        let cases = [
            r#"{"type":"offer","sdp":"v=0"}"#,
            r#"{"type":"answer","sdp":"v=0"}"#,
            r#"{"type":"admit","id":"p-1"}"#,
            r#"{"type":"deny","id":"p-1"}"#,
            r#"{"type":"remove","id":"p-1","reason":"x"}"#,
            r#"{"type":"end_consult"}"#,
            r#"{"type":"mute","kind":"video","muted":false}"#,
            r#"{"type":"leave"}"#,
            r#"{"type":"ping","id":7}"#,
            r#"{"type":"audio_only","enabled":true}"#,
            r#"{"type":"video_view","views":[{"mid":"3","width":320,"height":180,"visible":true}]}"#,
            r#"{"type":"video_view","views":[{"mid":"3","width":0,"height":0,"visible":false,"max_spatial":1}]}"#,
        ];
        for c in cases {
            parse_client_msg(c).unwrap_or_else(|e| panic!("{c}: {e}"));
        }
    }

    #[test]
    fn tells_errors_apart() {
        assert_eq!(
            parse_client_msg("{nope").unwrap_err().code(),
            ErrorCode::BadJson
        );
        assert_eq!(
            parse_client_msg("[1,2]").unwrap_err().code(),
            ErrorCode::BadJson
        );
        assert_eq!(
            parse_client_msg(r#"{"type":5}"#).unwrap_err().code(),
            ErrorCode::BadJson
        );
        assert_eq!(
            parse_client_msg(r#"{"type":"dance"}"#).unwrap_err().code(),
            ErrorCode::UnknownType
        );
        assert_eq!(
            parse_client_msg(r#"{"type":"mute","kind":"smell","muted":true}"#)
                .unwrap_err()
                .code(),
            ErrorCode::BadMessage
        );
        assert_eq!(
            parse_client_msg(r#"{"type":"admit"}"#).unwrap_err().code(),
            ErrorCode::BadMessage
        );
        // Negative or fractional sizes are bad fields, not a panic or a wrap-around.
        assert_eq!(
            parse_client_msg(r#"{"type":"video_view","views":[{"mid":"3","width":-5,"height":1,"visible":true}]}"#)
                .unwrap_err()
                .code(),
            ErrorCode::BadMessage
        );
    }

    #[test]
    fn server_json_shape_matches_protocol_md() {
        let m = ServerMsg::ParticipantLeft {
            id: "p-1".into(),
            reason: LeaveReason::ConnectionLost,
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"participant_left","id":"p-1","reason":"connection_lost"}"#
        );
        let v = ServerMsg::VideoState {
            tracks: vec![VideoState {
                mid: "4".into(),
                participant: "p-1".into(),
                paused: true,
                reason: Some(crate::PauseReason::Bandwidth),
                layer: None,
            }],
        };
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"type":"video_state","tracks":[{"mid":"4","participant":"p-1","paused":true,"reason":"bandwidth","layer":null}]}"#
        );
        let q = ServerMsg::Quality {
            participants: vec![QualityEntry {
                id: "p-1".into(),
                quality: crate::QualityLevel::Poor,
            }],
        };
        assert_eq!(
            serde_json::to_string(&q).unwrap(),
            r#"{"type":"quality","participants":[{"id":"p-1","quality":"poor"}]}"#
        );
        let l = ServerMsg::PublishLayers {
            mid: "1".into(),
            layers: vec![LayerActive::plain("f", false)],
        };
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"type":"publish_layers","mid":"1","layers":[{"rid":"f","active":false}]}"#
        );
        let shaped = ServerMsg::PublishLayers {
            mid: "1".into(),
            layers: vec![LayerActive {
                max_bitrate: Some(60_000),
                max_framerate: Some(7.5),
                ..LayerActive::plain("q", true)
            }],
        };
        assert_eq!(
            serde_json::to_string(&shaped).unwrap(),
            r#"{"type":"publish_layers","mid":"1","layers":[{"rid":"q","active":true,"max_bitrate":60000,"max_framerate":7.5}]}"#
        );
        let e = ServerMsg::error(ErrorCode::BadSdp, "x");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"error","code":"bad_sdp","message":"x"}"#
        );
    }
}
