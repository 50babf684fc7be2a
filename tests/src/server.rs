//! Spawning the real `kham` binary for a test.
//!
//! # Which binary
//!
//! Cargo only sets `CARGO_BIN_EXE_<name>` for binaries of the *same* package, and a binary
//! crate cannot be a dev-dependency, so the binary is found and (re)built at run time:
//!
//! 1. `KHAM_BIN=/path/to/kham` — used as is, nothing is built (CI can build once, point here).
//! 2. Otherwise, once per test process, `cargo build -p kham-server --bin kham` is run from the
//!    workspace root (with `--release` when the tests themselves run from a `release` dir), using
//!    the `cargo` that runs the tests (`$CARGO`). This keeps the binary in step with the source,
//!    so a test never runs against a stale server. `cargo test` has released the build-directory
//!    lock by the time tests run, so this does not deadlock (it may wait on *other* cargo runs).
//!    Set `KHAM_TESTS_NO_BUILD=1` to skip the build and use whatever binary is there.
//! 3. The binary is `<target>/<profile>/kham`, where `<target>/<profile>` is the directory above
//!    the test executable's `deps/` (so a custom `CARGO_TARGET_DIR` just works).
//!
//! # One server per test
//!
//! [`KhamServer::start`] picks a free TCP port (HTTP + WebSocket) and a free UDP port (media),
//! starts `kham serve --dev` with `KHAM_HTTP__LISTEN`, `KHAM_MEDIA__UDP_PORT` and
//! `KHAM_LOG__LEVEL=debug`, and waits for `GET /healthz` to return 200. The process is killed
//! when the value is dropped. Server output is collected; it is printed (last lines) when a test
//! panics, or live with `KHAM_TEST_LOG=1`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::http::{self, HttpResponse};

/// How many server log lines are kept in memory.
const LOG_KEEP: usize = 5000;

/// The workspace root (parent of this package's manifest dir).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// `<target>/<profile>` for the running test executable, e.g. `/work/main/target/debug`.
fn profile_dir() -> PathBuf {
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        // Test executables live in <target>/<profile>/deps/.
        if dir.file_name().is_some_and(|n| n == "deps")
            && let Some(p) = dir.parent()
        {
            return p.to_path_buf();
        }
        return dir.to_path_buf();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug")
}

static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();

/// Path of a `kham` binary that matches the current source (see the module docs).
pub fn kham_bin() -> Result<PathBuf> {
    BIN.get_or_init(|| locate_and_build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!("{e}"))
}

fn locate_and_build() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("KHAM_BIN") {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            bail!("KHAM_BIN={} does not exist", bin.display());
        }
        return Ok(bin);
    }
    let dir = profile_dir();
    let bin = dir.join(format!("kham{}", std::env::consts::EXE_SUFFIX));
    let skip_build = std::env::var("KHAM_TESTS_NO_BUILD").is_ok_and(|v| v != "0" && !v.is_empty());
    if !skip_build {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root())
            .args(["build", "-p", "kham-server", "--bin", "kham"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        // Build into the same target dir the tests run from.
        if let Some(target) = dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        let started = Instant::now();
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .context("running `cargo build -p kham-server` (set KHAM_BIN to skip)")?;
        if !out.status.success() {
            bail!(
                "`cargo build -p kham-server --bin kham` failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        eprintln!(
            "[kham-tests] built kham in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    if !bin.is_file() {
        bail!(
            "kham binary not found at {} (build it with `cargo build -p kham-server`, or set KHAM_BIN)",
            bin.display()
        );
    }
    Ok(bin)
}

/// A free TCP port on 127.0.0.1 (bound then released; a small race is accepted and retried by
/// [`KhamServer::start`]).
pub fn free_tcp_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A free UDP port on 127.0.0.1.
pub fn free_udp_port() -> Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Options for [`KhamServer::start_with`].
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Extra `KHAM_*` environment overrides (applied to `serve` and to `token create`).
    pub env: Vec<(String, String)>,
}

/// A running `kham serve --dev` process; killed on drop.
pub struct KhamServer {
    child: Child,
    bin: PathBuf,
    env: Vec<(String, String)>,
    /// HTTP + WebSocket listen address.
    pub http_addr: SocketAddr,
    /// The media UDP port (ICE-lite host candidate 127.0.0.1:udp_port).
    pub udp_port: u16,
    logs: Arc<Mutex<VecDeque<String>>>,
}

/// Role names accepted by `kham token create --role`.
pub mod role {
    /// Doctor: publish, subscribe, admit.
    pub const DOCTOR: &str = "doctor";
    /// Station: publish, subscribe, joins directly.
    pub const STATION: &str = "station";
    /// Patient: publish, subscribe, waits in the lobby.
    pub const PATIENT: &str = "patient";
    /// Observer: subscribe only.
    pub const OBSERVER: &str = "observer";
}

/// Arguments of `kham token create`.
#[derive(Debug, Clone)]
pub struct TokenArgs<'a> {
    /// `--room`
    pub room: &'a str,
    /// `--identity`
    pub identity: &'a str,
    /// `--name`
    pub name: &'a str,
    /// `--role`
    pub role: &'a str,
    /// `--ttl` (humantime, e.g. "1s", "10m")
    pub ttl: Option<&'a str>,
    /// `--url`: print a join link instead of the bare JWT
    pub url: bool,
}

impl KhamServer {
    /// Starts a server with default options (see the module docs).
    pub async fn start() -> Result<Self> {
        Self::start_with(ServerOptions::default()).await
    }

    /// Starts a server with extra environment overrides. Retries on a different pair of ports
    /// if the process dies during startup (e.g. a port was taken in between).
    pub async fn start_with(opts: ServerOptions) -> Result<Self> {
        let bin = tokio::task::spawn_blocking(kham_bin).await??;
        let mut last_err = None;
        for _attempt in 0..3 {
            match Self::try_start(&bin, &opts).await {
                Ok(s) => return Ok(s),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("server did not start")))
    }

    async fn try_start(bin: &Path, opts: &ServerOptions) -> Result<Self> {
        let tcp = free_tcp_port()?;
        let udp = free_udp_port()?;
        let http_addr: SocketAddr = format!("127.0.0.1:{tcp}").parse()?;
        let mut env = vec![
            ("KHAM_HTTP__LISTEN".to_owned(), http_addr.to_string()),
            ("KHAM_MEDIA__UDP_PORT".to_owned(), udp.to_string()),
            ("KHAM_MEDIA__BIND".to_owned(), "127.0.0.1".to_owned()),
            ("KHAM_LOG__LEVEL".to_owned(), "debug".to_owned()),
        ];
        for (k, v) in &opts.env {
            env.retain(|(ek, _)| ek != k);
            env.push((k.clone(), v.clone()));
        }
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--dev"])
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {} serve --dev", bin.display()))?;

        let logs = Arc::new(Mutex::new(VecDeque::new()));
        let echo = std::env::var("KHAM_TEST_LOG").is_ok_and(|v| v != "0" && !v.is_empty());
        if let Some(out) = child.stdout.take() {
            spawn_log_reader(out, Arc::clone(&logs), echo, "out");
        }
        if let Some(err) = child.stderr.take() {
            spawn_log_reader(err, Arc::clone(&logs), echo, "err");
        }

        let mut server = KhamServer {
            child,
            bin: bin.to_path_buf(),
            env,
            http_addr,
            udp_port: udp,
            logs,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "kham exited during startup ({status}); last output:\n{}",
                    server.logs_tail(60)
                );
            }
            if let Ok(resp) = http::get(http_addr, "/healthz").await
                && resp.status == 200
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!(
                    "kham did not answer GET /healthz with 200 within 20 s; last output:\n{}",
                    server.logs_tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// `ws://127.0.0.1:PORT/ws?room=R&token=T`
    pub fn ws_url(&self, room: &str, token: &str) -> String {
        format!("ws://{}{}", self.http_addr, Self::ws_path(room, token))
    }

    /// `/ws?room=R&token=T`
    pub fn ws_path(room: &str, token: &str) -> String {
        format!(
            "/ws?room={}&token={}",
            http::url_encode(room),
            http::url_encode(token)
        )
    }

    /// The media UDP address the server announces.
    pub fn udp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.udp_port))
    }

    /// Mints a JWT: `kham token create --dev --room R --identity I --name N --role ROLE`.
    pub fn token(&self, room: &str, identity: &str, name: &str, role: &str) -> Result<String> {
        self.token_with(&TokenArgs {
            room,
            identity,
            name,
            role,
            ttl: None,
            url: false,
        })
    }

    /// Mints a token (or a join link with `url: true`) with all options.
    pub fn token_with(&self, args: &TokenArgs<'_>) -> Result<String> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["token", "create", "--dev"])
            .args(["--room", args.room])
            .args(["--identity", args.identity])
            .args(["--name", args.name])
            .args(["--role", args.role])
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .env_remove("RUST_LOG");
        if let Some(ttl) = args.ttl {
            cmd.args(["--ttl", ttl]);
        }
        if args.url {
            cmd.arg("--url");
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().context("running kham token create")?;
        if !out.status.success() {
            bail!(
                "kham token create failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stdout = String::from_utf8(out.stdout).context("token output is not UTF-8")?;
        let token = stdout
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .ok_or_else(|| anyhow!("kham token create printed nothing"))?
            .to_owned();
        Ok(token)
    }

    /// An operator token: `kham token create --dev --admin`.
    pub fn admin_token(&self) -> Result<String> {
        self.cli_token(&["--dev", "--admin"], &[])
    }

    /// A booking system's token for the room API (`POST /api/rooms`): `--room-create`.
    pub fn room_create_token(&self) -> Result<String> {
        self.cli_token(
            &[
                "--dev",
                "--room",
                "booking",
                "--identity",
                "booking-system",
                "--name",
                "Booking",
                "--role",
                "doctor",
                "--room-create",
            ],
            &[],
        )
    }

    /// An admin token signed with other credentials (`KHAM_AUTH__API_KEY/SECRET`, no `--dev`):
    /// for checking that the server refuses it.
    pub fn admin_token_signed_with(&self, api_key: &str, api_secret: &str) -> Result<String> {
        self.cli_token(
            &["--admin"],
            &[
                ("KHAM_AUTH__API_KEY", api_key),
                ("KHAM_AUTH__API_SECRET", api_secret),
            ],
        )
    }

    fn cli_token(&self, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["token", "create"])
            .args(args)
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .env_remove("RUST_LOG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().context("running kham token create")?;
        if !out.status.success() {
            bail!(
                "kham token create {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stdout = String::from_utf8(out.stdout).context("token output is not UTF-8")?;
        Ok(stdout.trim().to_owned())
    }

    /// An HTTP request to the server, with an optional bearer token and body.
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<HttpResponse> {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        http::request_with_body(self.http_addr, method, path, &headers, body).await
    }

    /// Sends SIGTERM to the server (it then drains).
    pub fn terminate(&self) -> Result<()> {
        let st = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("running kill -TERM")?;
        if !st.success() {
            bail!("kill -TERM failed: {st}");
        }
        Ok(())
    }

    /// `GET /healthz`.
    pub async fn healthz(&self) -> Result<HttpResponse> {
        http::get(self.http_addr, "/healthz").await
    }

    /// `GET /healthz`, asserting 200, parsed as JSON.
    pub async fn healthz_json(&self) -> Result<serde_json::Value> {
        let resp = self.healthz().await?;
        if resp.status != 200 {
            bail!("GET /healthz returned {}: {}", resp.status, resp.text());
        }
        resp.json()
    }

    /// Attempts a WebSocket upgrade by hand on `path` (e.g. from [`Self::ws_path`]) and
    /// returns the HTTP response (for checking rejections).
    pub async fn ws_upgrade_attempt(&self, path: &str) -> Result<HttpResponse> {
        http::ws_upgrade_attempt(self.http_addr, path).await
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `n` lines of server output.
    pub fn logs_tail(&self, n: usize) -> String {
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let skip = logs.len().saturating_sub(n);
        logs.iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether any captured log line contains `needle`.
    pub fn logs_contain(&self, needle: &str) -> bool {
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.iter().any(|l| l.contains(needle))
    }
}

fn spawn_log_reader<R: std::io::Read + Send + 'static>(
    r: R,
    logs: Arc<Mutex<VecDeque<String>>>,
    echo: bool,
    tag: &'static str,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if echo {
                eprintln!("[kham {tag}] {line}");
            }
            let mut l = logs.lock().unwrap_or_else(|e| e.into_inner());
            if l.len() >= LOG_KEEP {
                l.pop_front();
            }
            l.push_back(line);
        }
    });
}

impl Drop for KhamServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- kham server {} (http {}, udp {}) last output -----\n{}\n-----",
                self.child.id(),
                self.http_addr,
                self.udp_port,
                self.logs_tail(150)
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
