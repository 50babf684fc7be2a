//! `kham-relay`: puts real WebRTC clients behind emulated weak links in front of kham's media
//! port. Usage and design: `crates/netem/README.md`, "Relay mode".

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use clap::Parser;
use kham_netem::RelayConfig;
use kham_relay::spec::{LinkArgs, SpecFile, TraceCache, parse_addr_range, parse_duration};
use kham_relay::{Options, RelayServer};

#[derive(Parser)]
#[command(
    name = "kham-relay",
    version,
    about = "UDP relay that puts WebRTC clients behind emulated weak links in front of kham",
    after_help = "kham announces its own media port with the media.announce IPs: listen on \
                  kham's media port of another IP (e.g. --listen 127.0.0.2:7882 --upstream \
                  127.0.0.1:7882) and run kham with KHAM_MEDIA__ANNOUNCE='[\"127.0.0.2\"]'."
)]
struct Cli {
    /// Address clients send to: the address kham announces (media.announce) with kham's port.
    /// A port range (IP:FIRST-LAST) maps port to port onto an --upstream range of the same
    /// length (a server with a port per peer connection); a client keeps one link across ports.
    #[arg(long, value_name = "ADDR", value_parser = parse_addr_range)]
    listen: (SocketAddr, u16),
    /// kham's media socket (media.bind and media.udp_port), or the first port of the range.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7882", value_parser = parse_addr_range)]
    upstream: (SocketAddr, u16),
    /// IP the per-client upstream-facing sockets bind to (default: any; the route's source).
    #[arg(long, value_name = "IP")]
    upstream_bind: Option<IpAddr>,
    #[command(flatten)]
    link: LinkArgs,
    /// JSON file of per-client specs: {"clients": [{...}, ...], "default": {...}}. Entry n is
    /// client n in order of first datagram; keys are the link options' names without "--";
    /// unset keys come from the command line.
    #[arg(long, value_name = "FILE")]
    client_spec: Option<PathBuf>,
    /// Main seed: each client's loss and jitter seeds derive from it and the client's order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Most clients at once; datagrams from further new addresses are dropped.
    #[arg(long, default_value_t = RelayConfig::DEFAULT_MAX_CLIENTS)]
    max_clients: usize,
    /// Forget a client that has sent nothing for this long.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    idle_timeout: String,
    /// Stop after this long (default: until SIGINT or SIGTERM).
    #[arg(long, value_name = "DURATION")]
    duration: Option<String>,
    /// Print per-client figures to stderr this often (0: only at the end).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    stats_interval: String,
    /// Write the final figures as JSON to this file on exit.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kham-relay: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let mut traces = TraceCache::default();
    let (specs, default_spec) = match &cli.client_spec {
        Some(path) => SpecFile::read(path)?.build(&cli.link, &mut traces)?,
        None => (Vec::new(), cli.link.build(&mut traces)?),
    };
    let relay = RelayConfig {
        specs,
        default_spec,
        max_clients: cli.max_clients,
        idle_timeout: parse_duration(&cli.idle_timeout).context("--idle-timeout")?,
        seed: cli.seed,
    };
    let duration = cli
        .duration
        .as_deref()
        .map(parse_duration)
        .transpose()
        .context("--duration")?;
    let stats_interval = Some(parse_duration(&cli.stats_interval).context("--stats-interval")?)
        .filter(|d| !d.is_zero());
    let ((listen, ports), (upstream, upstream_ports)) = (cli.listen, cli.upstream);
    if upstream_ports != 1 && upstream_ports != ports {
        anyhow::bail!("--upstream: {upstream_ports} ports, --listen has {ports}");
    }
    if ports == 1 && listen.port() != upstream.port() {
        eprintln!(
            "kham-relay: warning: kham announces its own media port ({}) with the media.announce \
             IPs; browsers will reach this relay only if it listens on that port",
            upstream.port()
        );
    }
    let server = RelayServer::bind(Options {
        listen,
        upstream,
        ports,
        upstream_bind: cli.upstream_bind,
        relay,
        duration,
        stats_interval,
        verbose: true,
    })
    .with_context(|| format!("binding {listen} ({ports} ports)"))?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("signal handler")?;
    }
    eprintln!(
        "kham-relay: listening on {}, upstream {}; run kham with KHAM_MEDIA__ANNOUNCE='[\"{}\"]'",
        server.local_addr(),
        upstream,
        server.local_addr().ip()
    );
    let report = server.run(&stop)?;
    eprintln!(
        "kham-relay: {:.1} s, cpu {}, lateness p50 {:.0} us p99 {:.0} us max {:.0} us over {} datagrams",
        report.elapsed_s,
        report
            .cpu_percent
            .map_or("n/a".to_string(), |p| format!("{p:.1} %")),
        report.lateness.p50_us,
        report.lateness.p99_us,
        report.lateness.max_us,
        report.lateness.count
    );
    for c in &report.clients {
        eprintln!("  {}", c.line());
    }
    if let Some(path) = &cli.stats_json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
