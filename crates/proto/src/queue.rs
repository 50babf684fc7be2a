//! The specialist queue's messages, on its own WebSocket (`/queue/ws?token=T`): a commune
//! station asks for a consult in a specialty, doctors on duty see the queue and take requests.
//! See `PROTOCOL.md`, "Specialist queue".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Role;

/// How pressing a request is. Urgent requests are served before routine ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Routine,
    Urgent,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Routine => "routine",
            Urgency::Urgent => "urgent",
        }
    }
}

/// How a request reaches a doctor (`queue.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueuePolicy {
    /// Doctors on duty see the queue and take the next request themselves.
    Take,
    /// The server offers each request to the longest-idle available doctor, who accepts or
    /// declines within `queue.offer_timeout`.
    Offer,
}

/// Where a station's request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStage {
    /// In the queue.
    Waiting,
    /// Offered to a doctor, who has not answered yet.
    Offered,
    /// A doctor took it: the call is being set up.
    Connecting,
}

/// Why a request left the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftReason {
    /// A doctor took it and reached the call.
    Taken,
    /// The station (or the booking system) cancelled it.
    Cancelled,
    /// Nobody took it within `queue.expire_after`.
    Expired,
    /// The station's connection stayed away longer than `queue.station_grace`.
    Abandoned,
}

impl LeftReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LeftReason::Taken => "taken",
            LeftReason::Cancelled => "cancelled",
            LeftReason::Expired => "expired",
            LeftReason::Abandoned => "abandoned",
        }
    }
}

/// One request as doctors of its specialty see it. No patient name unless the station chose to
/// share one; the note is for the doctor only (never logged, counted or sent in webhooks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub request_id: u64,
    pub specialty: String,
    pub urgency: Urgency,
    pub stage: RequestStage,
    /// Milliseconds since it entered the queue.
    pub waited_ms: u64,
    /// The station's display name (a place, not a patient).
    pub station: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_name: Option<String>,
}

/// Stable codes of queue errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueErrorCode {
    BadJson,
    UnknownType,
    BadMessage,
    /// A message this token may not send (a station taking, a doctor requesting).
    Forbidden,
    UnknownSpecialty,
    /// The note or patient name is too long.
    TooLong,
    /// This station already has a request in the queue.
    AlreadyQueued,
    /// The queue holds `queue.max_requests` requests.
    QueueFull,
    /// No such request (it never existed, or it was cancelled, expired or taken).
    NotFound,
    /// Another doctor took it first.
    AlreadyTaken,
    /// The request is outside this doctor's specialties.
    NotYourSpecialty,
    /// The doctor is not marked available, or is already taking a request.
    NotAvailable,
    /// Nothing waits in this doctor's specialties.
    Empty,
    RateLimited,
    /// Creating the room failed (capacity): the request stays in the queue.
    Unavailable,
}

/// Messages from a queue client (station or doctor) to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum QueueClientMsg {
    /// Station: ask for a consult.
    Request {
        specialty: String,
        urgency: Urgency,
        #[serde(default)]
        note: String,
        /// Shared with the doctors of the specialty only when given.
        #[serde(default)]
        patient_name: Option<String>,
    },
    /// Station: withdraw the request.
    Cancel,
    /// Doctor: on duty (available) or not (busy).
    Available {
        available: bool,
    },
    /// Doctor: take this request, or the next one (urgent first, then oldest) when absent.
    Take {
        #[serde(default)]
        request_id: Option<u64>,
    },
    /// Doctor (offer policy): accept or decline the offered request.
    Accept {
        request_id: u64,
    },
    Decline {
        request_id: u64,
    },
    /// Doctor: the call of this request has started (the doctor is in the room).
    InCall {
        request_id: u64,
    },
    Ping {
        id: u64,
    },
}

/// Messages from the server to a queue client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum QueueServerMsg {
    /// First message: who this is and what it may ask for.
    Hello {
        role: Role,
        specialties: Vec<String>,
        policy: QueuePolicy,
    },
    /// Station: its request and its place (1 is next); `eta_ms` is a rough estimate.
    Queued {
        request_id: u64,
        specialty: String,
        urgency: Urgency,
        stage: RequestStage,
        position: u32,
        eta_ms: u64,
    },
    /// Station: the request is out of the queue without a call (cancelled, expired, abandoned).
    Left {
        reason: LeftReason,
        message: String,
    },
    /// Doctor: its availability and the live queue of its specialties.
    Board {
        available: bool,
        entries: Vec<QueueEntry>,
        /// Available doctors per specialty (this doctor's specialties).
        doctors_available: BTreeMap<String, u32>,
    },
    /// Doctor (offer policy): a request for you; `accept` or `decline` within `expires_in_ms`.
    Offer {
        entry: QueueEntry,
        expires_in_ms: u64,
    },
    /// Both sides: the consult's room and a token for it; join it as any call.
    Paired {
        request_id: u64,
        room: String,
        token: String,
    },
    Error {
        code: QueueErrorCode,
        message: String,
    },
    Pong {
        id: u64,
    },
}

/// Why a queue client's frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueueParseError {
    pub code: QueueErrorCode,
    pub message: String,
}

/// Every queue message type and its fields, for error texts in our words.
const QUEUE_FIELDS: &[(&str, &str)] = &[
    (
        "request",
        "specialty: string, urgency: \"routine\" or \"urgent\", note: optional string, patient_name: optional string",
    ),
    ("cancel", "no fields"),
    ("available", "available: boolean"),
    ("take", "request_id: optional unsigned integer"),
    ("accept", "request_id: unsigned integer"),
    ("decline", "request_id: unsigned integer"),
    ("in_call", "request_id: unsigned integer"),
    ("ping", "id: unsigned integer"),
];

/// Parses one queue client frame.
pub fn parse_queue_msg(text: &str) -> Result<QueueClientMsg, QueueParseError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| QueueParseError {
        code: QueueErrorCode::BadJson,
        message: "not valid JSON".into(),
    })?;
    let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
        return Err(QueueParseError {
            code: QueueErrorCode::BadJson,
            message: "not a JSON object with a string \"type\"".into(),
        });
    };
    let Some(&(kind, takes)) = QUEUE_FIELDS.iter().find(|(k, _)| *k == kind) else {
        let shown: String = kind.chars().take(40).collect();
        return Err(QueueParseError {
            code: QueueErrorCode::UnknownType,
            message: format!("unknown message type {shown:?}"),
        });
    };
    serde_json::from_value(value).map_err(|_| QueueParseError {
        code: QueueErrorCode::BadMessage,
        message: format!("bad {kind} message: {kind} takes {takes}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests_and_refuses_bad_input_with_codes() {
        let m = parse_queue_msg(
            r#"{"type":"request","specialty":"cardiology","urgency":"urgent","note":"đau ngực"}"#,
        )
        .expect("request");
        assert_eq!(
            m,
            QueueClientMsg::Request {
                specialty: "cardiology".into(),
                urgency: Urgency::Urgent,
                note: "đau ngực".into(),
                patient_name: None
            }
        );
        assert_eq!(
            parse_queue_msg(r#"{"type":"take"}"#),
            Ok(QueueClientMsg::Take { request_id: None })
        );
        let code = |t: &str| parse_queue_msg(t).map_err(|e| e.code).err();
        assert_eq!(code("{"), Some(QueueErrorCode::BadJson));
        assert_eq!(code("[1]"), Some(QueueErrorCode::BadJson));
        assert_eq!(code(r#"{"type":"x"}"#), Some(QueueErrorCode::UnknownType));
        assert_eq!(
            code(r#"{"type":"request","specialty":"c","urgency":"soon"}"#),
            Some(QueueErrorCode::BadMessage)
        );
        assert_eq!(
            code(r#"{"type":"take","request_id":-1}"#),
            Some(QueueErrorCode::BadMessage)
        );
    }

    #[test]
    fn server_messages_have_the_documented_json() {
        let m = QueueServerMsg::Queued {
            request_id: 7,
            specialty: "cardiology".into(),
            urgency: Urgency::Routine,
            stage: RequestStage::Waiting,
            position: 2,
            eta_ms: 60_000,
        };
        let v = serde_json::to_value(&m).expect("json");
        assert_eq!(v["type"], "queued");
        assert_eq!(v["position"], 2);
        assert_eq!(v["stage"], "waiting");
    }
}
