//! TURN servers for clients that cannot reach the media port directly (a network that allows
//! only TCP 443: TURN over TLS). kham does not relay: it hands out time-limited credentials of
//! the TURN REST API scheme that coturn checks with `use-auth-secret` / `static-auth-secret`:
//! the user name is `<expiry, Unix seconds>:<participant id>` (never a name or identity) and the
//! password `base64(HMAC-SHA1(secret, user name))`. A relayed browser's checks reach kham from
//! the TURN server's address like any peer-reflexive candidate: nothing changes in the media path.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use kham_proto::{IceServer, ParticipantId};
use sha1::Sha1;

/// The TURN servers and the secret shared with them.
#[derive(Clone, Default)]
pub struct TurnSettings {
    /// `turn:` / `turns:` URLs, e.g. `turns:turn.example.org:443?transport=tcp`.
    pub urls: Vec<String>,
    pub secret: String,
    /// How long issued credentials are valid. coturn checks the expiry when an allocation is
    /// made (and refreshed), so it must cover the call or the next ICE restart gets new ones.
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnSettings")
            .field("urls", &self.urls)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TurnSettings {
    /// Whether there is anything to hand out.
    pub fn enabled(&self) -> bool {
        !self.urls.is_empty() && !self.secret.is_empty()
    }

    /// Credentials for one participant, valid until `now + ttl` (Unix seconds).
    pub fn ice_servers(&self, participant: &ParticipantId, now: u64) -> Vec<IceServer> {
        if !self.enabled() {
            return Vec::new();
        }
        let username = format!("{}:{}", now + self.ttl.as_secs(), participant.as_str());
        vec![IceServer {
            urls: self.urls.clone(),
            credential: credential(&self.secret, &username),
            username,
        }]
    }
}

/// The host and port a `turn:` / `turns:` URL (RFC 7065) names: `turn:host[:port][?transport=..]`,
/// an IPv6 host in brackets, the port 3478 (`turn:`) or 5349 (`turns:`) when absent. `None` for
/// anything else. The operator's count of relayed sessions resolves these hosts once at start.
pub fn url_host(url: &str) -> Option<(&str, u16)> {
    let (rest, default_port) = if let Some(r) = url.strip_prefix("turns:") {
        (r, 5349)
    } else {
        (url.strip_prefix("turn:")?, 3478)
    };
    let authority = rest.split('?').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    (!host.is_empty()).then_some((host, port))
}

/// `base64(HMAC-SHA1(secret, username))`.
pub fn credential(secret: &str, username: &str) -> String {
    // HMAC takes a key of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts_of_turn_urls() {
        assert_eq!(
            url_host("turns:turn.example.org:443?transport=tcp"),
            Some(("turn.example.org", 443))
        );
        assert_eq!(url_host("turn:198.51.100.2"), Some(("198.51.100.2", 3478)));
        assert_eq!(url_host("turns:[2001:db8::1]"), Some(("2001:db8::1", 5349)));
        assert_eq!(
            url_host("turn:[2001:db8::1]:3479?transport=udp"),
            Some(("2001:db8::1", 3479))
        );
        for bad in [
            "stun:x:3478",
            "turn:",
            "turn:host:notaport",
            "turn:[::1",
            "turn::3478",
        ] {
            assert_eq!(url_host(bad), None, "{bad}");
        }
    }

    #[test]
    fn credentials_match_the_rest_api_scheme() {
        // RFC 2202 test case 2 (HMAC-SHA1, key "Jefe"): effcdf6ae5eb2fa2d27416d5f184df9c259a7c79.
        assert_eq!(
            credential("Jefe", "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
        let t = TurnSettings {
            urls: vec!["turn:127.0.0.1:3478".into()],
            secret: "s3cret".into(),
            ttl: Duration::from_secs(3600),
        };
        let servers = t.ice_servers(&"p-abc".into(), 1_000);
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].username, "4600:p-abc");
        assert_eq!(servers[0].credential, credential("s3cret", "4600:p-abc"));
        assert!(
            TurnSettings::default()
                .ice_servers(&"p".into(), 0)
                .is_empty()
        );
        assert!(
            !format!("{t:?}").contains("s3cret"),
            "the secret stays out of logs"
        );
    }
}
