//! Configuration: the embedded default (`config/kham.toml`), an optional file, then `KHAM_*`
//! environment variables, merged by figment.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

/// The commented default configuration, embedded at build time.
pub const DEFAULT_TOML: &str = include_str!("../../../config/kham.toml");

/// Development credentials used by `--dev`. Public by design: never use them in production.
pub const DEV_API_KEY: &str = "kham-dev";
pub const DEV_API_SECRET: &str = "kham-development-secret-not-for-production";

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub http: HttpConfig,
    pub media: MediaConfig,
    pub auth: AuthConfig,
    pub rooms: RoomsConfig,
    pub admin: AdminConfig,
    pub webhooks: WebhooksConfig,
    pub signaling: SignalingConfig,
    pub log: LogConfig,
    pub turn: TurnConfig,
    pub queue: QueueConfig,
}

/// The on-demand specialist queue (`kham_signal::queue`).
#[derive(Debug, Clone, Deserialize)]
pub struct QueueConfig {
    pub specialties: Vec<String>,
    pub policy: kham_proto::QueuePolicy,
    #[serde(with = "humantime_serde_compat")]
    pub station_grace: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub expire_after: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub accept_timeout: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub offer_timeout: Duration,
    pub max_requests: usize,
    pub max_note_chars: usize,
    #[serde(with = "humantime_serde_compat")]
    pub eta_per_place: Duration,
}

impl QueueConfig {
    /// The state machine's settings.
    pub fn settings(&self) -> kham_signal::QueueSettings {
        let ms = |d: Duration| d.as_millis() as u64;
        kham_signal::QueueSettings {
            specialties: self.specialties.clone(),
            policy: self.policy,
            station_grace_ms: ms(self.station_grace),
            expire_after_ms: ms(self.expire_after),
            accept_timeout_ms: ms(self.accept_timeout),
            offer_timeout_ms: ms(self.offer_timeout),
            max_requests: self.max_requests,
            max_note_chars: self.max_note_chars,
            default_eta_per_place_ms: ms(self.eta_per_place),
        }
    }
}

/// TURN servers for clients that cannot reach the media port (`kham_signal::turn`).
#[derive(Clone, Deserialize)]
pub struct TurnConfig {
    pub urls: Vec<String>,
    /// coturn's `static-auth-secret`.
    pub secret: String,
    #[serde(with = "humantime_serde_compat")]
    pub ttl: Duration,
    /// Relay addresses of the TURN servers beyond the hosts of `urls` (coturn's `relay-ip` or
    /// `external-ip` when it differs): media to them counts as relayed.
    #[serde(default)]
    pub relay_ips: Vec<std::net::IpAddr>,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("urls", &self.urls)
            .field("ttl", &self.ttl)
            .field("relay_ips", &self.relay_ips)
            .finish_non_exhaustive()
    }
}

/// The per-socket rate limit of signaling messages (`kham_signal::RateLimits`).
#[derive(Debug, Clone, Deserialize)]
pub struct SignalingConfig {
    pub rate: f64,
    pub burst: u32,
    pub flood_after: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AdminConfig {
    pub metrics_public: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhooksConfig {
    pub urls: Vec<String>,
    pub include_names: bool,
    pub queue: usize,
    pub max_attempts: u32,
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub first_retry: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub public_url: String,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// TLS handshake, then the first request head, each within this.
    #[serde(with = "humantime_serde_compat")]
    pub header_read_timeout: Duration,
    /// A kept-alive connection's next request head within this after the previous response.
    #[serde(with = "humantime_serde_compat")]
    pub idle_timeout: Duration,
    /// A request's body must arrive, and its handler answer, within this.
    #[serde(with = "humantime_serde_compat")]
    pub request_timeout: Duration,
    /// Open HTTP connections (WebSockets included) at most.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MediaConfig {
    pub bind: IpAddr,
    pub udp_port: u16,
    pub announce: Vec<IpAddr>,
    pub shards: usize,
    pub adaptation: bool,
    /// Bytes asked for each media socket's receive and send buffers; 0 keeps the system's.
    pub udp_recv_buffer: usize,
    pub udp_send_buffer: usize,
    /// ICE over TCP: a TCP listener per shard on the port number of its UDP socket, announced
    /// as a passive candidate for clients whose UDP is blocked.
    pub ice_tcp: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthConfig {
    pub api_key: String,
    pub api_secret: String,
    /// Where denied and removed tokens are kept across restarts; empty: memory only.
    pub revocations_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RoomsConfig {
    pub max_participants: usize,
    pub max_rooms: usize,
    #[serde(with = "humantime_serde_compat")]
    pub empty_timeout: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub departure_timeout: Duration,
    /// A participant whose signaling socket or media dropped is kept this long for a resume.
    #[serde(with = "humantime_serde_compat")]
    pub reconnect_grace: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub drain_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogConfig {
    pub level: String,
}

impl Config {
    /// Loads the layered configuration; `dev` substitutes the development credentials.
    pub fn load(file: Option<&Path>, dev: bool) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(f) = file {
            if !f.exists() {
                bail!("configuration file {} does not exist", f.display());
            }
            fig = fig.merge(Toml::file(f));
        }
        fig = fig.merge(Env::prefixed("KHAM_").split("__"));
        let mut cfg: Config = fig.extract().context("invalid configuration")?;
        if dev {
            cfg.auth.api_key = DEV_API_KEY.into();
            cfg.auth.api_secret = DEV_API_SECRET.into();
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.auth.api_key.is_empty() || self.auth.api_secret.is_empty() {
            bail!(
                "auth.api_key and auth.api_secret must be set (or run with --dev for local testing)"
            );
        }
        if self.auth.api_secret.len() < 32 {
            bail!("auth.api_secret must be at least 32 characters");
        }
        if self.media.shards == 0 || self.media.shards > 64 {
            bail!("media.shards must be between 1 and 64");
        }
        // The kernel takes an int and doubles it; anything near that is a typo anyway.
        const MAX_BUFFER: usize = 1 << 29;
        if self.media.udp_recv_buffer > MAX_BUFFER || self.media.udp_send_buffer > MAX_BUFFER {
            bail!(
                "media.udp_recv_buffer and media.udp_send_buffer must be at most {MAX_BUFFER} bytes"
            );
        }
        if !(1..=8).contains(&self.rooms.max_participants) {
            bail!("rooms.max_participants must be between 1 and 8");
        }
        if self.rooms.max_rooms == 0 {
            bail!("rooms.max_rooms must be at least 1");
        }
        for u in &self.turn.urls {
            if !(u.starts_with("turn:") || u.starts_with("turns:")) {
                bail!("turn.urls: {u:?} is not a turn: or turns: URL");
            }
        }
        if !self.turn.urls.is_empty() && self.turn.secret.len() < 16 {
            bail!(
                "turn.secret (coturn's static-auth-secret) must be at least 16 characters when turn.urls is set"
            );
        }
        if self.rooms.reconnect_grace > Duration::from_secs(600) {
            bail!("rooms.reconnect_grace must be at most 10 minutes (0 turns resumes off)");
        }
        for u in &self.webhooks.urls {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                bail!("webhooks.urls: {u:?} is not an http:// or https:// URL");
            }
        }
        let sig = &self.signaling;
        if !(sig.rate.is_finite() && sig.rate > 0.0) || sig.burst == 0 || sig.flood_after == 0 {
            bail!(
                "signaling.rate must be a positive number, signaling.burst and \
                 signaling.flood_after at least 1"
            );
        }
        if self.webhooks.queue == 0 || !(1..=20).contains(&self.webhooks.max_attempts) {
            bail!("webhooks.queue must be positive and webhooks.max_attempts between 1 and 20");
        }
        let second = Duration::from_secs(1);
        let h = &self.http;
        if [h.header_read_timeout, h.idle_timeout, h.request_timeout]
            .iter()
            .any(|t| *t < second)
        {
            bail!(
                "http.header_read_timeout, http.idle_timeout and http.request_timeout must be at least 1s"
            );
        }
        let q = &self.queue;
        if q.specialties.is_empty()
            || q.specialties.iter().any(|s| {
                s.is_empty()
                    || s.len() > 40
                    || !s
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            })
        {
            bail!("queue.specialties: at least one, each 1-40 characters of a-z 0-9 _");
        }
        if q.max_requests == 0 || q.max_note_chars > 2000 {
            bail!("queue.max_requests must be at least 1 and queue.max_note_chars at most 2000");
        }
        if [q.accept_timeout, q.offer_timeout, q.expire_after]
            .iter()
            .any(|t| *t < second)
        {
            bail!(
                "queue.accept_timeout, queue.offer_timeout and queue.expire_after must be at least 1s"
            );
        }
        if !(1..=1_000_000).contains(&self.http.max_connections) {
            bail!("http.max_connections must be between 1 and 1000000");
        }
        let (c, k) = (
            self.tls_enabled(),
            !self.http.tls_key.as_os_str().is_empty(),
        );
        if c != k {
            bail!("set both http.tls_cert and http.tls_key, or neither");
        }
        Ok(())
    }

    /// Whether HTTPS is configured.
    pub fn tls_enabled(&self) -> bool {
        !self.http.tls_cert.as_os_str().is_empty()
    }

    /// Base URL for links.
    pub fn public_url(&self) -> String {
        if !self.http.public_url.is_empty() {
            return self.http.public_url.trim_end_matches('/').to_owned();
        }
        let scheme = if self.tls_enabled() { "https" } else { "http" };
        format!("{scheme}://{}", self.http.listen)
    }
}

/// Durations written as "20s", "5m", "1h 30m".
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's own error type
    fn embedded_default_parses_and_needs_credentials() {
        // In a Jail too: it serializes with the test that sets KHAM_* variables.
        figment::Jail::expect_with(|_| {
            embedded_default_checks();
            Ok(())
        });
    }

    fn embedded_default_checks() {
        let err = Config::load(None, false).unwrap_err();
        assert!(format!("{err:#}").contains("api_secret"), "{err:#}");
        let cfg = Config::load(None, true).unwrap();
        assert_eq!(cfg.http.listen.to_string(), "127.0.0.1:7880");
        assert_eq!(cfg.rooms.max_participants, 8);
        assert_eq!(cfg.rooms.departure_timeout, Duration::from_secs(20));
        assert_eq!(cfg.rooms.reconnect_grace, Duration::from_secs(30));
        assert_eq!(cfg.rooms.max_rooms, 1000);
        assert!(
            cfg.auth.revocations_file.as_os_str().is_empty(),
            "no file by default: the default runs anywhere"
        );
        assert_eq!(cfg.public_url(), "http://127.0.0.1:7880");
        assert_eq!(cfg.http.header_read_timeout, Duration::from_secs(10));
        assert_eq!(cfg.http.idle_timeout, Duration::from_secs(30));
        assert_eq!(cfg.http.request_timeout, Duration::from_secs(30));
        assert_eq!(cfg.http.max_connections, 10_000);
        assert!(cfg.webhooks.urls.is_empty(), "webhooks are off by default");
        assert!(
            !cfg.webhooks.include_names,
            "no names in webhooks by default"
        );
        assert!(!cfg.admin.metrics_public, "metrics need a token by default");
        assert!(
            cfg.media.adaptation,
            "bandwidth adaptation is on by default"
        );
        assert_eq!(cfg.media.udp_recv_buffer, 4 * 1024 * 1024);
        assert_eq!(cfg.queue.policy, kham_proto::QueuePolicy::Take);
        assert!(cfg.queue.specialties.contains(&"cardiology".to_owned()));
        assert_eq!(cfg.media.udp_send_buffer, 1024 * 1024);
        let d = kham_signal::RateLimits::default();
        assert_eq!(
            (
                cfg.signaling.rate,
                cfg.signaling.burst,
                cfg.signaling.flood_after
            ),
            (d.rate, d.burst, d.flood_after),
            "the embedded signaling limits are the library's defaults"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's own error type
    fn environment_overrides_keys() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("KHAM_HTTP__LISTEN", "127.0.0.1:9999");
            jail.set_env("KHAM_MEDIA__UDP_PORT", "40000");
            jail.set_env("KHAM_MEDIA__UDP_RECV_BUFFER", "65536");
            jail.set_env("KHAM_HTTP__HEADER_READ_TIMEOUT", "2s");
            jail.set_env("KHAM_HTTP__MAX_CONNECTIONS", "5");
            jail.set_env("KHAM_SIGNALING__RATE", "5");
            jail.set_env("KHAM_SIGNALING__BURST", "7");
            let cfg = Config::load(None, true).map_err(|e| e.to_string())?;
            assert_eq!(cfg.http.listen.port(), 9999);
            assert_eq!(cfg.media.udp_port, 40000);
            assert_eq!(cfg.media.udp_recv_buffer, 65536);
            assert_eq!(cfg.http.header_read_timeout, Duration::from_secs(2));
            assert_eq!(cfg.http.max_connections, 5);
            assert_eq!((cfg.signaling.rate, cfg.signaling.burst), (5.0, 7));
            jail.set_env("KHAM_MEDIA__UDP_SEND_BUFFER", "4294967296");
            let err = Config::load(None, true).unwrap_err();
            assert!(format!("{err:#}").contains("udp_send_buffer"), "{err:#}");
            jail.set_env("KHAM_MEDIA__UDP_SEND_BUFFER", "1048576");
            jail.set_env("KHAM_SIGNALING__RATE", "0");
            let err = Config::load(None, true).unwrap_err();
            assert!(format!("{err:#}").contains("signaling.rate"), "{err:#}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's own error type
    fn queue_settings_are_checked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("KHAM_QUEUE__POLICY", "offer");
            jail.set_env("KHAM_QUEUE__STATION_GRACE", "30s");
            let cfg = Config::load(None, true).map_err(|e| e.to_string())?;
            assert_eq!(cfg.queue.policy, kham_proto::QueuePolicy::Offer);
            assert_eq!(cfg.queue.settings().station_grace_ms, 30_000);
            jail.set_env("KHAM_QUEUE__POLICY", "lottery");
            assert!(Config::load(None, true).is_err());
            jail.set_env("KHAM_QUEUE__POLICY", "take");
            jail.set_env("KHAM_QUEUE__OFFER_TIMEOUT", "0s");
            let err = Config::load(None, true).unwrap_err();
            assert!(format!("{err:#}").contains("queue."), "{err:#}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.create_file("q.toml", "[queue]\nspecialties = [\"Tim mạch\"]\n")?;
            let err = Config::load(Some(Path::new("q.toml")), true).unwrap_err();
            assert!(format!("{err:#}").contains("queue.specialties"), "{err:#}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's own error type
    fn refuses_http_limits_that_cannot_work() {
        for (key, value) in [
            ("KHAM_HTTP__HEADER_READ_TIMEOUT", "0s"),
            ("KHAM_HTTP__IDLE_TIMEOUT", "500ms"),
            ("KHAM_HTTP__REQUEST_TIMEOUT", "0s"),
            ("KHAM_HTTP__MAX_CONNECTIONS", "0"),
        ] {
            figment::Jail::expect_with(|jail| {
                jail.set_env(key, value);
                let err = Config::load(None, true).expect_err(key);
                assert!(format!("{err:#}").contains("http."), "{key}: {err:#}");
                Ok(())
            });
        }
    }
}
