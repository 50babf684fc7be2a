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
    /// The server closed their socket for sending more messages than the rate limit allows
    /// (close code 4005). Their token stays valid.
    Flooding,
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
    /// Their connection is being restored (signaling or media dropped, within the reconnect
    /// grace): keep their tile, expect them back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reconnecting: bool,
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
    /// The publisher named this video its screen share (`offer.screen`): show it large.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub screen: bool,
}

/// A TURN server with time-limited credentials, as `RTCIceServer` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
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
    /// The message was dropped: the client sent more than the server's rate limit allows.
    RateLimited,
    /// The client's new `offer` crossed a server `offer` still waiting for its answer: the
    /// client answers the server's offer, then offers again if it still needs to.
    Glare,
    /// The message carries more than its limit (a chat text past [`crate::MAX_CHAT_BYTES`]).
    TooLarge,
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
        /// The secret that resumes this session after a dropped socket (`resume` and
        /// `resume_token` in the WebSocket query), within `reconnect_grace_ms`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_token: Option<String>,
        /// How long the server keeps a dropped participant for a resume.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reconnect_grace_ms: Option<u64>,
        /// TURN servers with credentials for this participant (when the server has some).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    /// The answer to a resume: the same participant, and the room as it is now (the client
    /// reconciles the joins and leaves it missed). Messages it may have missed that still
    /// matter (an unanswered `offer`, the latest `publish_layers`, `audio_rate`, `video_state`)
    /// follow.
    Resumed {
        protocol: u32,
        room: String,
        me: ParticipantInfo,
        participants: Vec<ParticipantInfo>,
        status: Status,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    Admitted {
        participants: Vec<ParticipantInfo>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
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
        /// Identifies this offer; the client's `answer` echoes it, and an answer to an offer
        /// that is no longer the outstanding one is refused (`bad_state`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offer_id: Option<u64>,
        /// Fresh TURN credentials (an ICE restart makes new allocations): apply them with
        /// `setConfiguration` before answering.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
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
    /// Cap the Opus bitrate of the client's own audio `mid` (bit/s of payload; absent: the
    /// client's default) and put `ptime` ms of speech in each packet (absent: the client's
    /// default, 20), because some listener's link is thin.
    AudioRate {
        mid: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_bitrate: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ptime: Option<u16>,
    },
    /// Everyone's connection quality.
    Quality {
        participants: Vec<QualityEntry>,
    },
    /// A chat message (`chat.rs` in kham-signal): relayed, never stored or logged.
    Chat(ChatMessage),
}

/// One chat message as delivered: to everyone in the call holding the `health_data` grant (the
/// sender included, so every member sees the same order), or from a doctor to one lobby entry
/// (`to`), echoed to the doctor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// The room's message counter: increasing in the order the server relayed them.
    pub seq: u64,
    pub from: ParticipantId,
    /// The sender's display name and role (a lobby entry does not know the call's members).
    pub name: String,
    pub role: Role,
    /// When the server relayed it, Unix milliseconds.
    pub ts_ms: u64,
    pub text: String,
    /// The lobby entry it was written to; absent for the whole call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<ParticipantId>,
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
        /// The mids of the offer's video m-lines that carry a screen share (allocated with
        /// content priority, shown large to subscribers). Absent: unchanged since the last
        /// offer (old clients never send it); `[]`: no share.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        screen: Option<Vec<String>>,
    },
    Answer {
        sdp: String,
        /// The `offer_id` of the server offer this answers (optional for older clients).
        #[serde(default)]
        offer_id: Option<u64>,
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
    /// The client's ICE is failing while signaling works (or its network changed): the server
    /// answers with an `offer` that restarts ICE.
    IceRestart,
    /// A chat message to everyone in the call, or (a doctor) `to` one lobby entry.
    Chat {
        text: String,
        #[serde(default)]
        to: Option<ParticipantId>,
    },
}

/// Every client message type and what it takes, for error texts (our words, never a
/// library's).
const FIELDS: &[(&str, &[&str], &str)] = &[
    (
        "offer",
        &["sdp", "screen"],
        "sdp: string, screen: optional array of mid strings",
    ),
    (
        "answer",
        &["sdp", "offer_id"],
        "sdp: string, offer_id: optional unsigned integer",
    ),
    ("admit", &["id"], "id: string"),
    (
        "deny",
        &["id", "reason"],
        "id: string, reason: optional string",
    ),
    (
        "remove",
        &["id", "reason"],
        "id: string, reason: optional string",
    ),
    ("end_consult", &[], "no fields"),
    (
        "mute",
        &["kind", "muted"],
        "kind: \"audio\" or \"video\", muted: boolean",
    ),
    ("leave", &[], "no fields"),
    ("ping", &["id"], "id: unsigned integer"),
    ("audio_only", &["enabled"], "enabled: boolean"),
    ("ice_restart", &[], "no fields"),
    (
        "chat",
        &["text", "to"],
        "text: string (at most 2000 bytes), to: optional lobby entry id",
    ),
    (
        "video_view",
        &["views", "mid", "width", "height", "visible", "max_spatial"],
        "views: at most 64 of {mid: string, width, height: unsigned integers, visible: boolean, \
         max_spatial: optional layer number}",
    ),
];

/// Why a client frame could not be understood.
///
/// The `Display` text is what the client is told: fixed texts in our own words. `detail` holds
/// the JSON library's description, for debug-level logs only ([`ParseError::detail`]): it can
/// quote the client's input at length.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON, not an object, or no string `type`.
    #[error("{problem}")]
    BadJson {
        problem: &'static str,
        detail: String,
    },
    /// A `type` this server does not know (the type echoed back, at most 40 characters).
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A known `type` with missing or mistyped fields.
    #[error("bad {kind} message: {}; {kind} takes {}", missing_text(*missing), takes(kind))]
    BadMessage {
        kind: &'static str,
        /// A field the message lacks, when serde says so and it is one of ours.
        missing: Option<&'static str>,
        detail: String,
    },
}

fn missing_text(missing: Option<&'static str>) -> String {
    match missing {
        Some(f) => format!("missing field {f}"),
        None => "a field has the wrong type or value".into(),
    }
}

fn takes(kind: &str) -> &'static str {
    FIELDS
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map_or("other fields", |(_, _, t)| t)
}

impl ParseError {
    /// The wire error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            ParseError::BadJson { .. } => ErrorCode::BadJson,
            ParseError::UnknownType(_) => ErrorCode::UnknownType,
            ParseError::BadMessage { .. } => ErrorCode::BadMessage,
        }
    }

    /// The library's own description, for debug-level logs only (it may quote client input).
    pub fn detail(&self) -> &str {
        match self {
            ParseError::BadJson { detail, .. } | ParseError::BadMessage { detail, .. } => detail,
            ParseError::UnknownType(_) => "",
        }
    }
}

/// The field serde reports missing, if it is one `kind` has: taken from the error's category
/// and matched against our own list, so no client text comes back through it.
fn missing_field(kind: &str, e: &serde_json::Error) -> Option<&'static str> {
    if e.classify() != serde_json::error::Category::Data {
        return None;
    }
    let text = e.to_string();
    let rest = text.strip_prefix("missing field `")?;
    let name = &rest[..rest.find('`')?];
    FIELDS
        .iter()
        .find(|(k, _, _)| *k == kind)?
        .1
        .iter()
        .find(|f| **f == name)
        .copied()
}

/// Parses one client frame, telling apart bad JSON, an unknown type and bad fields.
pub fn parse_client_msg(text: &str) -> Result<ClientMsg, ParseError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| ParseError::BadJson {
        problem: "not valid JSON",
        detail: e.to_string(),
    })?;
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or_else(|| ParseError::BadJson {
            problem: "not a JSON object with a string \"type\"",
            detail: String::new(),
        })?;
    let Some(&(kind, _, _)) = FIELDS.iter().find(|(k, _, _)| *k == kind) else {
        // Bound what is echoed back.
        return Err(ParseError::UnknownType(kind.chars().take(40).collect()));
    };
    serde_json::from_value(value).map_err(|e| ParseError::BadMessage {
        kind,
        missing: missing_field(kind, &e),
        // A chat text is health data: not even a debug log may quote it.
        detail: if kind == "chat" {
            String::new()
        } else {
            e.to_string()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_client_type() {
        let cases = [
            r#"{"type":"offer","sdp":"v=0"}"#,
            r#"{"type":"offer","sdp":"v=0","screen":["1"]}"#,
            r#"{"type":"offer","sdp":"v=0","screen":[]}"#,
            r#"{"type":"answer","sdp":"v=0"}"#,
            r#"{"type":"admit","id":"p-1"}"#,
            r#"{"type":"deny","id":"p-1"}"#,
            r#"{"type":"remove","id":"p-1","reason":"x"}"#,
            r#"{"type":"end_consult"}"#,
            r#"{"type":"mute","kind":"video","muted":false}"#,
            r#"{"type":"leave"}"#,
            r#"{"type":"ping","id":7}"#,
            r#"{"type":"audio_only","enabled":true}"#,
            r#"{"type":"ice_restart"}"#,
            r#"{"type":"chat","text":"Xin chào"}"#,
            r#"{"type":"chat","text":"5 phút nữa","to":"p-1"}"#,
            r#"{"type":"answer","sdp":"v=0","offer_id":3}"#,
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

    /// Error texts are ours: no library wording, no client input beyond the bounded type
    /// name, and they say what is wrong where we know it.
    #[test]
    fn error_texts_are_fixed_and_useful() {
        let e = parse_client_msg(r#"{"type":"offer"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad offer message: missing field sdp; offer takes sdp: string, screen: optional \
             array of mid strings"
        );
        assert!(e.detail().contains("missing field"), "{}", e.detail());
        // A `screen` that is not a list of strings is a bad offer, not a panic.
        let e = parse_client_msg(r#"{"type":"offer","sdp":"v=0","screen":"1"}"#).unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadMessage);
        let e = parse_client_msg(r#"{"type":"offer","sdp":"v=0","screen":[1]}"#).unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadMessage);
        let e = parse_client_msg(r#"{"type":"mute","kind":"audio"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"bad mute message: missing field muted; mute takes kind: "audio" or "video", muted: boolean"#
        );
        // A wrong value is not echoed: the client's 1,000-character string stays out.
        let junk = "Z".repeat(1000);
        let e = parse_client_msg(&format!(
            r#"{{"type":"mute","kind":"{junk}","muted":true}}"#
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"bad mute message: a field has the wrong type or value; mute takes kind: "audio" or "video", muted: boolean"#
        );
        assert!(
            e.detail().contains("ZZZ"),
            "the detail keeps it for debug logs"
        );
        // A nested missing field is named too.
        let e = parse_client_msg(r#"{"type":"video_view","views":[{"mid":"1","width":1}]}"#)
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("bad video_view message: missing field height;"),
            "{e}"
        );
        // serde's wording for a field name we do not have never comes back.
        let e = parse_client_msg(r#"{"type":"ping"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad ping message: missing field id; ping takes id: unsigned integer"
        );
        for (text, want) in [
            ("{nope", "not valid JSON"),
            ("", "not valid JSON"),
            ("[1,2]", r#"not a JSON object with a string "type""#),
            (r#"{"type":5}"#, r#"not a JSON object with a string "type""#),
        ] {
            let e = parse_client_msg(text).unwrap_err();
            assert_eq!(e.to_string(), want, "{text:?}");
            assert!(!e.to_string().contains("line"), "no serde position: {e}");
        }
        let e = parse_client_msg(&format!(r#"{{"type":"{}"}}"#, "x".repeat(500))).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("unknown message type {:?}", "x".repeat(40))
        );
    }

    /// The field table agrees with the types: a bare `{"type": T}` either parses (no required
    /// fields) or names a missing field from T's own list.
    #[test]
    fn field_table_matches_the_types() {
        for (kind, fields, _) in FIELDS {
            match parse_client_msg(&format!(r#"{{"type":"{kind}"}}"#)) {
                Ok(_) => assert!(
                    fields.is_empty(),
                    "{kind} parsed without its fields {fields:?}"
                ),
                Err(ParseError::BadMessage { missing, .. }) => assert!(
                    missing.is_some_and(|m| fields.contains(&m)),
                    "{kind}: missing {missing:?} not in {fields:?}"
                ),
                Err(other) => panic!("{kind}: {other:?}"),
            }
        }
    }

    #[test]
    fn chat_json_shape_and_no_detail() {
        let m = ServerMsg::Chat(ChatMessage {
            seq: 3,
            from: "p-1".into(),
            name: "BS An".into(),
            role: Role::Doctor,
            ts_ms: 1_700_000_000_000,
            text: "Chào".into(),
            to: None,
        });
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"chat","seq":3,"from":"p-1","name":"BS An","role":"doctor","ts_ms":1700000000000,"text":"Chào"}"#
        );
        // A bad chat message keeps no library detail: it could quote the text.
        let e =
            parse_client_msg(r#"{"type":"chat","text":"secret","to":{"x":"secret"}}"#).unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadMessage);
        assert_eq!(e.detail(), "");
        assert!(!e.to_string().contains("secret"), "{e}");
        let e = ServerMsg::error(ErrorCode::TooLarge, "x");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"error","code":"too_large","message":"x"}"#
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
        let capped = ServerMsg::AudioRate {
            mid: "0".into(),
            max_bitrate: Some(16_000),
            ptime: Some(60),
        };
        assert_eq!(
            serde_json::to_string(&capped).unwrap(),
            r#"{"type":"audio_rate","mid":"0","max_bitrate":16000,"ptime":60}"#
        );
        let lifted = ServerMsg::AudioRate {
            mid: "0".into(),
            max_bitrate: None,
            ptime: None,
        };
        assert_eq!(
            serde_json::to_string(&lifted).unwrap(),
            r#"{"type":"audio_rate","mid":"0"}"#
        );
        let r = ServerMsg::error(ErrorCode::RateLimited, "x");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"type":"error","code":"rate_limited","message":"x"}"#
        );
        let f = ServerMsg::ParticipantLeft {
            id: "p-1".into(),
            reason: LeaveReason::Flooding,
        };
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"type":"participant_left","id":"p-1","reason":"flooding"}"#
        );
        let e = ServerMsg::error(ErrorCode::BadSdp, "x");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"error","code":"bad_sdp","message":"x"}"#
        );
    }
}
