//! The server under test: starting `kham serve` pinned to CPU 0 with one media shard, minting
//! tokens with kham's own signer, and reading its `/metrics` counters.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kham_proto::{Grants, Role};
use kham_signal::{Claims, TokenKeys};

/// The development key pair `kham serve --dev` uses (public by design, as in kham's config).
pub const DEV_API_KEY: &str = "kham-dev";
pub const DEV_API_SECRET: &str = "kham-development-secret-not-for-production";

/// Problems with the server under test.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("no kham binary: give --kham-bin or KHAM_BIN, or put `kham` next to this binary")]
    NoBinary,
    #[error("starting {0}: {1}")]
    Spawn(String, std::io::Error),
    #[error("kham exited during startup ({0}); its output ends with:\n{1}")]
    Exited(std::process::ExitStatus, String),
    #[error("kham did not answer /healthz within 20 s")]
    NotReady,
    #[error("no free port: {0}")]
    Port(std::io::Error),
    #[error("HTTP {0}: {1}")]
    Http(String, std::io::Error),
    #[error("bad HTTP response from {0}")]
    BadResponse(String),
    #[error("signing a token: {0}")]
    Token(kham_signal::TokenError),
    #[error("bad --url (want http://HOST:PORT): {0}")]
    BadUrl(String),
}

/// Where kham is and how to talk to it.
pub struct Target {
    pub http: SocketAddr,
    pub keys: TokenKeys,
    pub child: Option<Child>,
    /// A server this run did not start, whose CPU and memory are still read (`--server-pid`).
    pub external_pid: Option<u32>,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Target {
    /// The pid of the server (started by this run, or given with `--server-pid`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id).or(self.external_pid)
    }

    /// An existing server at `http://HOST:PORT`.
    pub fn external(
        url: &str,
        key: &str,
        secret: &str,
        pid: Option<u32>,
    ) -> Result<Target, ServerError> {
        let host = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let http = std::net::ToSocketAddrs::to_socket_addrs(&host)
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| ServerError::BadUrl(url.to_owned()))?;
        Ok(Target {
            http,
            keys: TokenKeys::new(key, secret),
            child: None,
            external_pid: pid,
        })
    }

    /// WebSocket URL of a participant.
    pub fn ws_url(&self, room: &str, token: &str) -> String {
        format!("ws://{}/ws?room={room}&token={token}", self.http)
    }

    /// A token for `room` with `role`'s default grants, valid two hours.
    pub fn token(&self, room: &str, identity: &str, role: Role) -> Result<String, ServerError> {
        let now = unix_now();
        self.keys
            .sign(&Claims {
                iss: self.keys.api_key().to_owned(),
                sub: identity.to_owned(),
                name: identity.to_owned(),
                room: room.to_owned(),
                role,
                exp: now + 7200,
                nbf: now.saturating_sub(60),
                jti: format!("load-{identity}-{now}"),
                grants: role.default_grants(),
            })
            .map_err(ServerError::Token)
    }

    /// An admin token (for `/metrics`).
    pub fn admin_token(&self) -> Result<String, ServerError> {
        let now = unix_now();
        self.keys
            .sign(&Claims {
                iss: self.keys.api_key().to_owned(),
                sub: "load-admin".into(),
                name: "load-admin".into(),
                room: String::new(),
                role: Role::Observer,
                exp: now + 7200,
                nbf: now.saturating_sub(60),
                jti: format!("load-admin-{now}"),
                grants: Grants {
                    admin: true,
                    ..Grants::default()
                },
            })
            .map_err(ServerError::Token)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `--kham-bin`, else `KHAM_BIN`, else `kham` next to the running binary.
pub fn find_binary(given: Option<&Path>) -> Result<PathBuf, ServerError> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("KHAM_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|_| ServerError::NoBinary)?;
    let dir = exe.parent().ok_or(ServerError::NoBinary)?;
    // Test executables live in <profile>/deps/, binaries in <profile>/.
    for d in [Some(dir), dir.parent()].into_iter().flatten() {
        let p = d.join("kham");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(ServerError::NoBinary)
}

/// How to start the server.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub bin: PathBuf,
    /// Pin to this CPU with `taskset -c` (None: no pinning).
    pub cpu: Option<usize>,
    pub adaptation: bool,
    pub max_participants: usize,
    pub max_rooms: usize,
    /// Print the server's log (else it goes to `log`).
    pub verbose: bool,
    pub log: PathBuf,
    /// Run the server in this network namespace on this address (the Janus comparison's path:
    /// `janus.sh net`), instead of on loopback.
    pub netns: Option<(&'static str, std::net::IpAddr)>,
}

/// Starts `kham serve --dev` on free ports with one media shard and public `/metrics`.
pub fn start(o: &StartOptions) -> Result<Target, ServerError> {
    let mut tcp = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(ServerError::Port)?;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map_err(ServerError::Port)?;
    let mut media_bind = "127.0.0.1".to_owned();
    // `ip netns exec` and `taskset` exec the next program: the child's pid is kham's.
    let mut argv: Vec<std::ffi::OsString> = Vec::new();
    if let Some((ns, ip)) = o.netns {
        argv.extend(["ip", "netns", "exec", ns].map(Into::into));
        tcp.set_ip(ip);
        media_bind = ip.to_string();
    }
    if let Some(cpu) = o.cpu {
        argv.extend(["taskset".into(), "-c".into(), cpu.to_string().into()]);
    }
    argv.push(o.bin.clone().into_os_string());
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let (out, err) = if o.verbose {
        (Stdio::inherit(), Stdio::inherit())
    } else {
        let f = std::fs::File::create(&o.log)
            .map_err(|e| ServerError::Spawn(o.log.display().to_string(), e))?;
        let g = f
            .try_clone()
            .map_err(|e| ServerError::Spawn(o.log.display().to_string(), e))?;
        (Stdio::from(f), Stdio::from(g))
    };
    cmd.args(["serve", "--dev"])
        .env("KHAM_HTTP__LISTEN", tcp.to_string())
        .env("KHAM_MEDIA__BIND", media_bind)
        .env("KHAM_MEDIA__UDP_PORT", udp.port().to_string())
        .env("KHAM_MEDIA__SHARDS", "1")
        .env("KHAM_MEDIA__ICE_TCP", "false")
        .env("KHAM_MEDIA__ADAPTATION", o.adaptation.to_string())
        .env(
            "KHAM_ROOMS__MAX_PARTICIPANTS",
            o.max_participants.to_string(),
        )
        .env("KHAM_ROOMS__MAX_ROOMS", o.max_rooms.to_string())
        .env("KHAM_HTTP__MAX_CONNECTIONS", "20000")
        .env("KHAM_ADMIN__METRICS_PUBLIC", "true")
        .env("KHAM_LOG__LEVEL", if o.verbose { "info" } else { "warn" })
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let child = cmd
        .spawn()
        .map_err(|e| ServerError::Spawn(o.bin.display().to_string(), e))?;
    let mut t = Target {
        http: tcp,
        keys: TokenKeys::new(DEV_API_KEY, DEV_API_SECRET),
        child: Some(child),
        external_pid: None,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(c) = &mut t.child
            && let Ok(Some(status)) = c.try_wait()
        {
            let log = std::fs::read_to_string(&o.log).unwrap_or_default();
            let mut tail: Vec<&str> = log.lines().rev().take(10).collect();
            tail.reverse();
            return Err(ServerError::Exited(status, tail.join("\n")));
        }
        if http_get(tcp, "/healthz", None).is_ok_and(|(s, _)| s == 200) {
            return Ok(t);
        }
        if Instant::now() > deadline {
            return Err(ServerError::NotReady);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain HTTP/1.0 GET: (status, body).
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    bearer: Option<&str>,
) -> Result<(u16, String), ServerError> {
    let err = |e| ServerError::Http(path.to_owned(), e);
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(err)?;
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n").map_err(err)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(err)?;
    let text = String::from_utf8_lossy(&buf);
    let bad = || ServerError::BadResponse(path.to_owned());
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, body.to_owned()))
}

/// The `/metrics` counters a load run needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerCounters {
    pub rtp_in: u64,
    pub rtp_out: u64,
    pub udp_in: u64,
    pub udp_out: u64,
    pub unroutable: u64,
    pub send_buffer_full: u64,
    pub kernel_drops: u64,
    /// Gauges: the server's open rooms, participants, tracks and media sessions (the soak
    /// watches them for growth).
    pub rooms: u64,
    pub participants: u64,
    pub tracks: u64,
    pub media_sessions: u64,
}

/// The value of `name{label}` in an OpenMetrics text (`label` empty: no labels).
fn value(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, v) = l.rsplit_once(' ')?;
            let ok = if label.is_empty() {
                key == name
            } else {
                key.starts_with(name) && key[name.len()..].starts_with('{') && key.contains(label)
            };
            if ok { v.parse::<f64>().ok() } else { None }
        })
        .map_or(0, |v| v as u64)
}

/// The sum of a metric over all its labels.
fn sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, v) = l.rsplit_once(' ')?;
            let rest = key.strip_prefix(name)?;
            (rest.is_empty() || rest.starts_with('{'))
                .then(|| v.parse::<f64>().ok())
                .flatten()
        })
        .sum::<f64>() as u64
}

/// Parses the counters out of a `/metrics` body.
pub fn parse_counters(text: &str) -> ServerCounters {
    ServerCounters {
        rtp_in: value(text, "kham_rtp_packets_total", "direction=\"in\""),
        rtp_out: value(text, "kham_rtp_packets_total", "direction=\"out\""),
        udp_in: value(text, "kham_udp_datagrams_total", "direction=\"in\""),
        udp_out: value(text, "kham_udp_datagrams_total", "direction=\"out\""),
        unroutable: value(text, "kham_udp_dropped_total", "reason=\"unroutable\""),
        send_buffer_full: value(
            text,
            "kham_udp_dropped_total",
            "reason=\"send_buffer_full\"",
        ),
        kernel_drops: value(text, "kham_udp_kernel_drops_total", ""),
        rooms: value(text, "kham_rooms", ""),
        participants: sum(text, "kham_participants"),
        tracks: value(text, "kham_tracks", ""),
        media_sessions: sum(text, "kham_media_sessions"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse() {
        let t = "# TYPE kham_rtp_packets counter\nkham_rtp_packets_total{direction=\"in\"} 10\n\
                 kham_rtp_packets_total{direction=\"out\"} 25\nkham_udp_kernel_drops_total 3\n\
                 kham_udp_dropped_total{reason=\"send_buffer_full\"} 2\n";
        let c = parse_counters(t);
        assert_eq!(
            (c.rtp_in, c.rtp_out, c.kernel_drops, c.send_buffer_full),
            (10, 25, 3, 2)
        );
        let g = "kham_rooms 3\nkham_participants{role=\"doctor\"} 2\nkham_participants{role=\"station\"} 1\n\
                 kham_participants_max 9\nkham_media_sessions{path=\"udp\"} 3\n";
        let c = parse_counters(g);
        assert_eq!((c.rooms, c.participants, c.media_sessions), (3, 3, 3));
    }
}
