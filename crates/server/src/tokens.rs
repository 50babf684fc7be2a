//! `kham token create`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use kham_proto::Role;
use kham_signal::{Claims, TokenKeys};

use crate::config::Config;

#[derive(clap::Args)]
pub struct CreateArgs {
    /// Room the token opens.
    #[arg(long, required_unless_present_any = ["admin", "queue", "specialty"])]
    room: Option<String>,
    /// Identity in the booking system (not shown to others).
    #[arg(long, required_unless_present = "admin")]
    identity: Option<String>,
    /// Display name shown in the call.
    #[arg(long, required_unless_present = "admin")]
    name: Option<String>,
    /// doctor, station, patient or observer.
    #[arg(long, required_unless_present_any = ["admin", "queue", "specialty"])]
    role: Option<Role>,
    /// A commune station's token for the specialist queue (/queue: request a consult); opens
    /// no room. With --url, prints the station's queue link.
    #[arg(long, conflicts_with_all = ["room", "role", "admin", "specialty"])]
    queue: bool,
    /// A doctor's duty token for the specialist queue (/duty), allowed to take requests of this
    /// specialty (repeat for several; names from queue.specialties). Opens no room.
    #[arg(long = "specialty", value_name = "NAME", conflicts_with_all = ["room", "role", "admin"])]
    specialty: Vec<String>,
    /// An operator token for the admin API, /metrics and the dashboard (opens no room). With
    /// --url, prints the dashboard link.
    #[arg(long, conflicts_with_all = ["room", "role", "room_create", "health_data"])]
    admin: bool,
    /// Lifetime, e.g. 30m, 2h.
    #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// Also grant creating rooms through the HTTP API (for the booking system).
    #[arg(long)]
    room_create: bool,
    /// Grant (true) or withhold (false) the consult's health data: chat, vital signs, images.
    /// Default: the role's (everyone but an observer).
    #[arg(long)]
    health_data: Option<bool>,
    /// Print the full join link instead of the bare token.
    #[arg(long)]
    url: bool,
    /// Configuration file (same layering as `serve`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Use the development key, as `serve --dev` does.
    #[arg(long)]
    dev: bool,
}

/// Builds the claims of a fresh token.
pub fn claims(
    keys: &TokenKeys,
    room: &str,
    identity: &str,
    name: &str,
    role: Role,
    ttl: Duration,
    room_create: bool,
) -> Claims {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut grants = role.default_grants();
    grants.room_create = room_create;
    Claims {
        iss: keys.api_key().to_owned(),
        sub: identity.to_owned(),
        name: name.to_owned(),
        room: room.to_owned(),
        role,
        exp: now + ttl.as_secs().max(1),
        nbf: now.saturating_sub(5),
        jti: format!("{:032x}", rand::random::<u128>()),
        grants,
    }
}

/// Claims of an operator token: the `admin` grant only, no room, no media.
pub fn admin_claims(keys: &TokenKeys, identity: &str, ttl: Duration) -> Claims {
    let mut c = claims(keys, "", identity, "", Role::Observer, ttl, false);
    c.grants = kham_proto::Grants {
        admin: true,
        ..Default::default()
    };
    c
}

/// Claims of a station's queue token: role station, the `queue` grant, no room.
pub fn queue_claims(keys: &TokenKeys, identity: &str, name: &str, ttl: Duration) -> Claims {
    let mut c = claims(keys, "", identity, name, Role::Station, ttl, false);
    c.grants.queue = true;
    c
}

/// Claims of a doctor's duty token (signed with [`Specialties`] beside them): role doctor, no
/// room.
pub fn duty_claims(keys: &TokenKeys, identity: &str, name: &str, ttl: Duration) -> Claims {
    claims(keys, "", identity, name, Role::Doctor, ttl, false)
}

/// The specialties claim of a duty token.
#[derive(serde::Serialize)]
pub struct Specialties {
    pub specialties: Vec<String>,
}

/// A station's queue page.
pub fn queue_link(base: &str, token: &str) -> String {
    format!("{base}/queue?token={token}")
}

/// A doctor's duty page.
pub fn duty_link(base: &str, token: &str) -> String {
    format!("{base}/duty?token={token}")
}

/// The dashboard link with an admin token.
pub fn dashboard_link(base: &str, token: &str) -> String {
    format!("{base}/dashboard?token={token}")
}

/// The link a participant opens.
pub fn join_link(base: &str, room: &str, token: &str) -> String {
    format!("{base}/join?room={room}&token={token}")
}

pub fn create(a: CreateArgs) -> anyhow::Result<()> {
    let cfg = Config::load(a.config.as_deref(), a.dev)?;
    let keys = TokenKeys::new(&cfg.auth.api_key, &cfg.auth.api_secret);
    if a.admin {
        let identity = a.identity.as_deref().unwrap_or("operator");
        let c = admin_claims(&keys, identity, a.ttl);
        let token = keys.sign(&c).ok().context("signing the token failed")?;
        if a.url {
            println!("{}", dashboard_link(&cfg.public_url(), &token));
        } else {
            println!("{token}");
        }
        return Ok(());
    }
    if a.queue || !a.specialty.is_empty() {
        let (Some(identity), Some(name)) = (a.identity, a.name) else {
            anyhow::bail!("--identity and --name are required");
        };
        let (token, link) = if a.queue {
            let c = queue_claims(&keys, &identity, &name, a.ttl);
            let t = keys.sign(&c).ok().context("signing the token failed")?;
            (t.clone(), queue_link(&cfg.public_url(), &t))
        } else {
            for s in &a.specialty {
                if !cfg.queue.specialties.contains(s) {
                    anyhow::bail!(
                        "--specialty {s:?} is not in queue.specialties ({})",
                        cfg.queue.specialties.join(", ")
                    );
                }
            }
            let c = duty_claims(&keys, &identity, &name, a.ttl);
            let extra = Specialties {
                specialties: a.specialty.clone(),
            };
            let t = keys
                .sign_with(&c, &extra)
                .ok()
                .context("signing the token failed")?;
            (t.clone(), duty_link(&cfg.public_url(), &t))
        };
        println!("{}", if a.url { link } else { token });
        return Ok(());
    }
    // clap enforces these without --admin.
    let (Some(room), Some(identity), Some(name), Some(role)) = (a.room, a.identity, a.name, a.role)
    else {
        anyhow::bail!("--room, --identity, --name and --role are required (or --admin)");
    };
    if !kham_signal::valid_room_id(&room) {
        anyhow::bail!("room ids are 1-64 characters of A-Z a-z 0-9 - _");
    }
    let mut c = claims(&keys, &room, &identity, &name, role, a.ttl, a.room_create);
    c.grants.health_data = a.health_data;
    let token = keys.sign(&c).ok().context("signing the token failed")?;
    if a.url {
        println!("{}", join_link(&cfg.public_url(), &room, &token));
    } else {
        println!("{token}");
    }
    Ok(())
}
