use std::fmt;

use serde::{Deserialize, Serialize};

/// Server-assigned id of one participant session (one WebSocket), e.g. `p-3f2a9c01d4e5b6a7`.
///
/// Not the token identity: identities can carry booking-system ids that must not travel to other
/// participants, and one identity can reconnect as a new session.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParticipantId(pub String);

impl ParticipantId {
    /// Builds the id from 64 random bits supplied by the caller (the core owns no randomness).
    pub fn from_random(bits: u64) -> Self {
        ParticipantId(format!("p-{bits:016x}"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ParticipantId {
    fn from(s: &str) -> Self {
        ParticipantId(s.to_owned())
    }
}
