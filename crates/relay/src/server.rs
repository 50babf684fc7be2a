//! The IO shell: sockets, the clock and the wait loop around `kham_netem::Relay`.
//!
//! One thread, one `mio` poll. Tokens `0..ports` are the listening sockets (one per port of the
//! listen range); each client has one upstream-facing UDP socket (token `ports + id`), bound to
//! an ephemeral port, so the upstream sees one source address per client. A datagram to listen
//! port `first + i` goes to upstream port `upstream + i` and the replies from there go back
//! from listen port `first + i`; the client's links are shared by all ports (a browser sends
//! every media stream from one socket). Replies from outside the upstream range are dropped.
//!
//! Waiting: epoll's timeout has millisecond resolution (mio rounds up), which alone would make
//! deliveries up to a millisecond late. So the loop sleeps in epoll until about a millisecond
//! before the next due delivery, then in short `nanosleep`s (checking the sockets between them
//! without blocking) until it is due. Lateness (send time minus due time) is measured on every
//! datagram and reported. On Linux the thread also asks for a 1 µs timer slack (default
//! 50 µs), so those sleeps end on time.

use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kham_netem::{ClientId, FromClient, Relay, RelayConfig, RelayOutput};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use crate::stats::{
    ClientSummary, IoCounters, Lateness, RelayCounters, Report, WaitCounters, thread_cpu_time,
};

/// A datagram and the offset of its port in the listen and upstream ranges.
type Datagram = (u16, Vec<u8>);
/// Below this much time before the next delivery, wait in short sleeps rather than in epoll.
const FINE_WAIT: Duration = Duration::from_millis(1);
/// Longest single sleep of the fine wait: incoming datagrams wait at most about this long
/// before they are read (and timestamped).
const FINE_STEP: Duration = Duration::from_micros(200);
/// Longest epoll wait with nothing scheduled (bounds the reaction to a stop request that raced
/// the wait).
const IDLE_WAIT: Duration = Duration::from_millis(250);
/// Datagrams read from one socket before the loop looks at deliveries again (a few tens of
/// microseconds of reading).
const READ_BATCH: usize = 16;
/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// Reports of gone clients kept for the final report.
const MAX_GONE_REPORTS: usize = 10_000;

/// Where the relay listens and forwards, and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address clients send to (the address kham announces); the first of `ports`.
    pub listen: SocketAddr,
    /// kham's media socket; the first of `ports`.
    pub upstream: SocketAddr,
    /// Consecutive ports from `listen` and from `upstream` mapped one to one (1: one address;
    /// more for a server with a port per peer connection, e.g. Janus's `rtp_port_range`).
    pub ports: u16,
    /// IP the per-client upstream-facing sockets bind to (default: the unspecified address of
    /// the upstream's family; the kernel then picks the source address of the route).
    pub upstream_bind: Option<IpAddr>,
    /// Clients and their links.
    pub relay: RelayConfig,
    /// Stop after this long (None: until stopped).
    pub duration: Option<Duration>,
    /// Print per-client figures to stderr this often (None: only at the end).
    pub stats_interval: Option<Duration>,
    /// Print to stderr at all (tests and benchmarks turn it off).
    pub verbose: bool,
}

/// A bound relay, ready to run.
pub struct RelayServer {
    opts: Options,
    poll: Poll,
    listen: Vec<UdpSocket>,
    local: SocketAddr,
    relay: Relay<SocketAddr, Datagram>,
    upstream_sockets: HashMap<u64, UdpSocket>,
    gone: Vec<ClientSummary>,
    gone_omitted: u64,
    lateness: Lateness,
    io: IoCounters,
    waits: WaitCounters,
    start: Instant,
}

impl RelayServer {
    /// Binds the listening socket.
    pub fn bind(opts: Options) -> io::Result<RelayServer> {
        if opts.listen == opts.upstream {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                "listen and upstream are the same address",
            ));
        }
        let invalid = |msg| Err(io::Error::new(ErrorKind::InvalidInput, msg));
        if opts.ports == 0 {
            return invalid("no ports");
        }
        if opts.ports > 1 && (opts.listen.port() == 0 || opts.upstream.port() == 0) {
            return invalid("a port range cannot start at port 0");
        }
        let last = opts.ports - 1;
        if opts.listen.port().checked_add(last).is_none()
            || opts.upstream.port().checked_add(last).is_none()
        {
            return invalid("port range past 65535");
        }
        let poll = Poll::new()?;
        let mut listen = Vec::with_capacity(usize::from(opts.ports));
        for i in 0..opts.ports {
            let mut addr = opts.listen;
            addr.set_port(opts.listen.port() + i);
            let mut socket = UdpSocket::bind(addr)?;
            poll.registry()
                .register(&mut socket, Token(usize::from(i)), Interest::READABLE)?;
            listen.push(socket);
        }
        let local = listen[0].local_addr()?;
        let relay = Relay::new(opts.relay.clone());
        Ok(RelayServer {
            opts,
            poll,
            listen,
            local,
            relay,
            upstream_sockets: HashMap::new(),
            gone: Vec::new(),
            gone_omitted: 0,
            lateness: Lateness::default(),
            io: IoCounters::default(),
            waits: WaitCounters::default(),
            start: Instant::now(),
        })
    }

    /// The address clients send to (the first of the range).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Runs until `stop` is set or the configured duration has passed; returns the report.
    pub fn run(mut self, stop: &AtomicBool) -> io::Result<Report> {
        let timer_slack_ns = tighten_timer_slack();
        let cpu0 = thread_cpu_time();
        self.start = Instant::now();
        let end = self.opts.duration.and_then(|d| self.start.checked_add(d));
        let mut next_stats = self
            .opts
            .stats_interval
            .filter(|i| !i.is_zero())
            .and_then(|i| self.start.checked_add(i));
        let mut events = Events::with_capacity(256);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        // Sockets that may still hold datagrams (mio is edge-triggered: a socket is read until
        // it would block, a batch at a time).
        let mut pending: Vec<Token> = Vec::new();
        let mut still: Vec<Token> = Vec::new();
        loop {
            self.deliver();
            let now = Instant::now();
            if stop.load(Ordering::Relaxed) || end.is_some_and(|e| now >= e) {
                break;
            }
            if let Some(at) = next_stats
                && now >= at
            {
                self.print_stats(now);
                next_stats = self
                    .opts
                    .stats_interval
                    .and_then(|i| at.checked_add(i))
                    .map(|n| n.max(now));
            }
            let deadline = [self.relay.poll_timeout(), end, next_stats]
                .into_iter()
                .flatten()
                .min();
            let remaining = deadline.map(|d| d.saturating_duration_since(now));
            let timeout = if !pending.is_empty() {
                Duration::ZERO
            } else {
                match remaining {
                    None => IDLE_WAIT,
                    // mio rounds up to whole milliseconds: this wakes at most FINE_WAIT early.
                    Some(r) if r > FINE_WAIT => (r - FINE_WAIT).min(IDLE_WAIT),
                    Some(_) => Duration::ZERO,
                }
            };
            self.waits.polls += 1;
            let before = Instant::now();
            let polled = self.poll.poll(&mut events, Some(timeout));
            // mio rounds the timeout up to whole milliseconds.
            let asked = Duration::from_millis(timeout.as_nanos().div_ceil(1_000_000) as u64);
            self.waits
                .note_overrun(before.elapsed().saturating_sub(asked));
            match polled {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                if !pending.contains(&ev.token()) {
                    pending.push(ev.token());
                }
            }
            if pending.is_empty() {
                if let Some(r) = remaining
                    && timeout.is_zero()
                    && !r.is_zero()
                {
                    // Fine wait: the next delivery is under FINE_WAIT away.
                    self.waits.sleeps += 1;
                    let before = Instant::now();
                    std::thread::sleep(r.min(FINE_STEP));
                    self.waits
                        .note_overrun(before.elapsed().saturating_sub(r.min(FINE_STEP)));
                }
                continue;
            }
            still.clear();
            for &token in &pending {
                if self.read_batch(token, &mut buf) {
                    still.push(token);
                }
                // After a stall many sockets hold datagrams: what fell due meanwhile goes first.
                self.deliver();
            }
            std::mem::swap(&mut pending, &mut still);
        }
        let elapsed = self.start.elapsed();
        let cpu = match (cpu0, thread_cpu_time()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let mut report = self.report(elapsed, cpu);
        report.timer_slack_ns = timer_slack_ns;
        Ok(report)
    }

    /// Sends everything due now.
    fn deliver(&mut self) {
        loop {
            let now = Instant::now();
            let Some(out) = self.relay.poll_output(now) else {
                return;
            };
            match out {
                RelayOutput::ToUpstream {
                    id,
                    packet: (port, data),
                    due,
                } => {
                    self.lateness.record(now.saturating_duration_since(due));
                    let to = self.upstream_addr(port);
                    let sent = match self.upstream_sockets.get(&id.0) {
                        Some(s) => s.send_to(&data, to).is_ok(),
                        None => false,
                    };
                    if !sent {
                        self.io.send_errors += 1;
                    }
                }
                RelayOutput::ToClient {
                    addr,
                    packet: (port, data),
                    due,
                    ..
                } => {
                    self.lateness.record(now.saturating_duration_since(due));
                    let socket = &self.listen[usize::from(port)];
                    if socket.send_to(&data, addr).is_err() {
                        self.io.send_errors += 1;
                    }
                }
                RelayOutput::Expired(report) => {
                    self.close_upstream(report.id);
                    if self.opts.verbose {
                        eprintln!(
                            "kham-relay: client {} {} idle, forgotten",
                            report.id.0, report.addr
                        );
                    }
                    self.keep_gone(ClientSummary::new(&report, self.start, false));
                }
            }
        }
    }

    /// Reads up to a batch from one socket; true if it may hold more.
    fn read_batch(&mut self, token: Token, buf: &mut [u8]) -> bool {
        let ports = self.listen.len();
        for _ in 0..READ_BATCH {
            if token.0 < ports {
                // Token i is listen port i (ports is at most 65535).
                let port = token.0 as u16;
                match self.listen[token.0].recv_from(buf) {
                    Ok((n, from)) => self.on_client_datagram(from, port, &buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => self.io.recv_errors += 1,
                }
            } else {
                let id = ClientId((token.0 - ports) as u64);
                let Some(socket) = self.upstream_sockets.get(&id.0) else {
                    return false;
                };
                match socket.recv_from(buf) {
                    Ok((n, from)) => {
                        let Some(port) = self.upstream_offset(from) else {
                            // Not from the upstream range: unconnected sockets see anything.
                            self.io.foreign_datagrams += 1;
                            continue;
                        };
                        let now = Instant::now();
                        let size = n + header_bytes(&self.opts.upstream);
                        self.relay
                            .from_upstream(now, id, size, (port, buf[..n].to_vec()));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    // ICMP port unreachable from the upstream and the like: go on.
                    Err(_) => self.io.recv_errors += 1,
                }
            }
        }
        true
    }

    /// The upstream address at offset `port` of the range.
    fn upstream_addr(&self, port: u16) -> SocketAddr {
        let mut addr = self.opts.upstream;
        addr.set_port(self.opts.upstream.port() + port);
        addr
    }

    /// The offset of `from` in the upstream range, if it is in it.
    fn upstream_offset(&self, from: SocketAddr) -> Option<u16> {
        let up = self.opts.upstream;
        let offset = from.port().checked_sub(up.port())?;
        (from.ip() == up.ip() && offset < self.opts.ports).then_some(offset)
    }

    fn on_client_datagram(&mut self, from: SocketAddr, port: u16, data: &[u8]) {
        let now = Instant::now();
        let size = data.len() + header_bytes(&from);
        if let FromClient::Accepted { id, new: true, .. } =
            self.relay
                .from_client(now, from, size, (port, data.to_vec()))
        {
            match self.open_upstream(id) {
                Ok(()) => {
                    if self.opts.verbose {
                        let spec = self
                            .relay
                            .client(id)
                            .and_then(|c| c.spec)
                            .map_or("default".to_string(), |i| format!("clients[{i}]"));
                        eprintln!("kham-relay: client {} {from} (spec {spec})", id.0);
                    }
                }
                Err(e) => {
                    self.io.socket_errors += 1;
                    if self.opts.verbose {
                        eprintln!(
                            "kham-relay: client {} {from}: no upstream socket: {e}",
                            id.0
                        );
                    }
                    if let Some(r) = self.relay.remove(id) {
                        self.keep_gone(ClientSummary::new(&r, self.start, false));
                    }
                }
            }
        }
    }

    fn open_upstream(&mut self, id: ClientId) -> io::Result<()> {
        let ip = self.opts.upstream_bind.unwrap_or(match self.opts.upstream {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        });
        // Not connected: one socket talks to every port of the upstream range.
        let mut socket = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let token = usize::try_from(id.0)
            .ok()
            .and_then(|i| i.checked_add(self.listen.len()))
            .ok_or_else(|| io::Error::other("client id out of range"))?;
        self.poll
            .registry()
            .register(&mut socket, Token(token), Interest::READABLE)?;
        self.upstream_sockets.insert(id.0, socket);
        Ok(())
    }

    fn close_upstream(&mut self, id: ClientId) {
        if let Some(mut s) = self.upstream_sockets.remove(&id.0) {
            let _ = self.poll.registry().deregister(&mut s);
        }
    }

    fn keep_gone(&mut self, summary: ClientSummary) {
        if self.gone.len() < MAX_GONE_REPORTS {
            self.gone.push(summary);
        } else {
            self.gone_omitted += 1;
        }
    }

    fn print_stats(&self, now: Instant) {
        if !self.opts.verbose {
            return;
        }
        let l = self.lateness.summary();
        eprintln!(
            "kham-relay: {:.0} s, {} clients, lateness p50 {:.0} us p99 {:.0} us max {:.0} us",
            now.duration_since(self.start).as_secs_f64(),
            self.relay.client_count(),
            l.p50_us,
            l.p99_us,
            l.max_us
        );
        for c in self.relay.clients() {
            eprintln!("  {}", ClientSummary::new(&c, self.start, true).line());
        }
    }

    fn report(self, elapsed: Duration, cpu: Option<Duration>) -> Report {
        let mut clients = self.gone;
        clients.extend(
            self.relay
                .clients()
                .map(|c| ClientSummary::new(&c, self.start, true)),
        );
        clients.sort_by_key(|c| c.id);
        let elapsed_s = elapsed.as_secs_f64();
        let cpu_s = cpu.map(|c| c.as_secs_f64());
        Report {
            listen: self.local,
            upstream: self.opts.upstream,
            ports: self.opts.ports,
            seed: self.opts.relay.seed,
            elapsed_s,
            cpu_s,
            cpu_percent: cpu_s
                .filter(|_| elapsed_s > 0.0)
                .map(|c| 100.0 * c / elapsed_s),
            lateness: self.lateness.summary(),
            timer_slack_ns: None,
            relay: RelayCounters::from(self.relay.stats()),
            io: self.io,
            waits: self.waits,
            clients_omitted: self.gone_omitted,
            clients,
        }
    }
}

/// Asks Linux for a 1 µs timer slack on the calling thread (the default 50 µs makes every
/// short sleep end up to 50 µs late). Best effort (`/proc/<tid>/timerslack_ns`; may need
/// CAP_SYS_NICE): returns the slack in force, None where it cannot be read.
fn tighten_timer_slack() -> Option<u64> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    let tid = link.file_name()?.to_str()?.to_owned();
    let path = format!("/proc/{tid}/timerslack_ns");
    let _ = std::fs::write(&path, "1000");
    std::fs::read_to_string(&path).ok()?.trim().parse().ok()
}

/// IP and UDP header bytes a datagram to or from `addr` carries on the wire.
fn header_bytes(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 28,
        SocketAddr::V6(_) => 48,
    }
}
