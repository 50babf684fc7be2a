use serde::{Deserialize, Serialize};

/// What a participant is in a consult. Carried in the access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Admits, removes, ends the consult; never waits in the lobby.
    Doctor,
    /// A commune health station's health worker: joins directly.
    Station,
    /// Waits in the lobby until a doctor admits them.
    Patient,
    /// Subscribe only (a supervisor, a trainee).
    Observer,
}

impl Role {
    /// Whether a participant with this role waits in the lobby on join.
    pub fn waits_in_lobby(self) -> bool {
        matches!(self, Role::Patient)
    }

    /// The grants a token for this role carries by default.
    pub fn default_grants(self) -> Grants {
        match self {
            Role::Doctor => Grants {
                publish: true,
                subscribe: true,
                admit: true,
                room_create: false,
                admin: false,
                queue: false,
                health_data: None,
            },
            Role::Station | Role::Patient => Grants {
                publish: true,
                subscribe: true,
                admit: false,
                room_create: false,
                admin: false,
                queue: false,
                health_data: None,
            },
            Role::Observer => Grants {
                publish: false,
                subscribe: true,
                admit: false,
                room_create: false,
                admin: false,
                queue: false,
                health_data: None,
            },
        }
    }

    /// Lower-case name as used on the wire and in the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Doctor => "doctor",
            Role::Station => "station",
            Role::Patient => "patient",
            Role::Observer => "observer",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "doctor" => Ok(Role::Doctor),
            "station" => Ok(Role::Station),
            "patient" => Ok(Role::Patient),
            "observer" => Ok(Role::Observer),
            other => Err(format!(
                "unknown role {other:?} (doctor, station, patient, observer)"
            )),
        }
    }
}

/// Fine-grained permissions carried in the token, enforced by the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Grants {
    /// May send audio and video.
    pub publish: bool,
    /// May receive others' media.
    pub subscribe: bool,
    /// May admit, deny and remove participants and end the consult.
    pub admit: bool,
    /// May create rooms through the HTTP API (booking system tokens).
    pub room_create: bool,
    /// May use the operator API (`/api/admin/*`, `/metrics`, the dashboard): see every room's
    /// load, the participants' display names and call quality, close rooms and remove people.
    pub admin: bool,
    /// May ask for an on-demand consult in the specialist queue (`/queue/ws`): a commune
    /// station's token, with no room.
    pub queue: bool,
    /// May send and receive the consult's health data: chat, vital signs, images. Absent: the
    /// role decides ([`Grants::health_data`]): everyone but an observer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_data: Option<bool>,
}

impl Grants {
    /// Whether a participant of `role` with these grants takes part in chat, vitals and images.
    pub fn health_data(&self, role: Role) -> bool {
        self.health_data.unwrap_or(role != Role::Observer)
    }
}
