//! The media thread: every simulated client's `Rtc` and socket, one `mio` poll over all the
//! sockets, no locks or channels per packet. Setup (offers, answers) arrives as commands from
//! the signaling tasks; a snapshot goes out once a second.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kham_sfu::str0m::net::{DatagramRecv, Protocol, Receive};
use kham_sfu::str0m::{Input, Output};
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::oneshot;

use crate::load::client::{Client, ClientError, MediaShape};
use crate::load::srtp;
use crate::load::stats::Histogram;

const WAKER: Token = Token(usize::MAX);

/// Requests from the signaling side.
pub enum Cmd {
    /// Make client `idx` and its offer.
    Create {
        idx: usize,
        publish: bool,
        ws_open: Instant,
        reply: oneshot::Sender<Result<String, ClientError>>,
    },
    /// Make receive-only client `idx` from the server's offer (Janus's subscriber flow) and
    /// reply with its answer.
    CreateAnswering {
        idx: usize,
        sdp: String,
        ws_open: Instant,
        reply: oneshot::Sender<Result<String, ClientError>>,
    },
    /// The server's answer to client `idx`'s offer.
    Answer { idx: usize, sdp: String },
    /// RTP packets received by all clients so far (removed ones included), now: the
    /// server-independent count of forwarded packets, read at the instant the server's CPU is.
    Received(oneshot::Sender<u64>),
    /// A server offer to client `idx`: reply with the answer.
    Offer {
        idx: usize,
        sdp: String,
        reply: oneshot::Sender<Result<String, ClientError>>,
    },
    /// Client `idx` has left (its signaling said goodbye): close its socket. Its packets stay
    /// counted in the totals.
    Remove { idx: usize },
    /// Start (true) or stop (false) the measurement window of delays.
    Measure(bool),
    /// Publishers stop writing media.
    StopMedia,
    /// End the thread and hand back the results.
    Finish(oneshot::Sender<Final>),
}

/// Once a second, cumulative unless said otherwise.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: Instant,
    pub clients: usize,
    pub connected: usize,
    pub receiving: usize,
    pub dead: usize,
    pub rx_packets: u64,
    pub rx_gaps: u64,
    pub tx_packets: u64,
    /// Longest stretch the media thread spent working between two waits in this second (ms):
    /// a datagram arriving then waited up to this long in its socket, and its delay includes it.
    pub busy_max_ms: f64,
    /// Delays of this second only.
    pub delay_p50_ms: Option<f64>,
    pub delay_p99_ms: Option<f64>,
}

/// One generator stream as one subscriber received it.
#[derive(Debug, Clone)]
pub struct StreamResult {
    pub subscriber: usize,
    pub stream: u32,
    pub audio: bool,
    /// Packets the publisher sent from the first one this subscriber received.
    pub sent: u64,
    pub received: u64,
    /// Counters missing at the end (skipped, not filled later, or never arrived).
    pub lost: i64,
    /// A stamp claimed a counter the publisher never sent.
    pub beyond_sent: bool,
    /// The video layer of its publisher this subscriber received last (the server switched
    /// it away from the others: their "lost" tails are not loss). Always true for audio.
    pub current: bool,
}

/// What the thread hands back at the end.
#[derive(Debug, Clone)]
pub struct Final {
    pub window_delay: Histogram,
    /// Audio packets only (never paced behind video frames).
    pub window_delay_audio: Histogram,
    /// WS open to first RTP, per client that received any (ms).
    pub join_ms: Vec<f64>,
    pub clients: usize,
    pub dead: Vec<(usize, String)>,
    pub streams: Vec<StreamResult>,
    pub rx_packets: u64,
    pub rx_gaps: u64,
    pub unstamped: u64,
    pub tx_packets: u64,
    /// Media sessions per negotiated DTLS-SRTP profile (IANA name; "unknown" when no
    /// ServerHello was seen).
    pub srtp_profiles: std::collections::BTreeMap<String, usize>,
}

/// The handle the signaling side holds.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Cmd>,
    waker: std::sync::Arc<Waker>,
}

/// The thread could not be started or has stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("media poll: {0}")]
    Poll(std::io::Error),
    #[error("the media thread has stopped")]
    Stopped,
}

impl EngineHandle {
    /// Sends a command and wakes the thread.
    pub fn send(&self, c: Cmd) -> Result<(), EngineError> {
        self.tx.send(c).map_err(|_| EngineError::Stopped)?;
        self.waker.wake().map_err(|_| EngineError::Stopped)
    }
}

/// Settings of the thread.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub bind: IpAddr,
    pub shape: MediaShape,
}

/// Starts the media thread; snapshots go to `snapshots` once a second.
pub fn start(
    cfg: EngineConfig,
    snapshots: tokio::sync::mpsc::UnboundedSender<Snapshot>,
) -> Result<(EngineHandle, std::thread::JoinHandle<()>), EngineError> {
    let poll = Poll::new().map_err(EngineError::Poll)?;
    let waker = std::sync::Arc::new(Waker::new(poll.registry(), WAKER).map_err(EngineError::Poll)?);
    let (tx, rx) = mpsc::channel();
    let join = std::thread::Builder::new()
        .name("load-media".into())
        .spawn(move || Engine::new(cfg, poll, rx, snapshots).run())
        .map_err(EngineError::Poll)?;
    Ok((EngineHandle { tx, waker }, join))
}

struct Engine {
    cfg: EngineConfig,
    poll: Poll,
    rx: mpsc::Receiver<Cmd>,
    snapshots: tokio::sync::mpsc::UnboundedSender<Snapshot>,
    clients: Vec<Option<Client>>,
    base: Instant,
    sent: HashMap<u32, u32>,
    media_on: bool,
    measuring: bool,
    window: Histogram,
    window_audio: Histogram,
    second: Histogram,
    buf: Vec<u8>,
    busy_max: Duration,
    /// Packets of the clients removed so far (`Cmd::Remove`), so that totals stay cumulative.
    retired: Retired,
}

#[derive(Debug, Default, Clone, Copy)]
struct Retired {
    rx_packets: u64,
    rx_gaps: u64,
    tx_packets: u64,
    unstamped: u64,
}

impl Engine {
    fn new(
        cfg: EngineConfig,
        poll: Poll,
        rx: mpsc::Receiver<Cmd>,
        snapshots: tokio::sync::mpsc::UnboundedSender<Snapshot>,
    ) -> Engine {
        Engine {
            cfg,
            poll,
            rx,
            snapshots,
            clients: Vec::new(),
            base: Instant::now(),
            sent: HashMap::new(),
            media_on: true,
            measuring: false,
            window: Histogram::default(),
            window_audio: Histogram::default(),
            second: Histogram::default(),
            buf: vec![0; 2048],
            busy_max: Duration::ZERO,
            retired: Retired::default(),
        }
    }

    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_nanos() as u64
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut next_snapshot = Instant::now() + Duration::from_secs(1);
        let mut woke = Instant::now();
        loop {
            loop {
                match self.rx.try_recv() {
                    Ok(Cmd::Finish(reply)) => {
                        let _ = reply.send(self.finish());
                        return;
                    }
                    Ok(c) => self.command(c),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => return,
                }
            }
            let now = Instant::now();
            if now >= next_snapshot {
                next_snapshot += Duration::from_secs(1);
                self.snapshot(now);
            }
            let mut wake = next_snapshot;
            let now_ns = self.ns(now);
            for i in 0..self.clients.len() {
                let Some(c) = self.clients[i].as_mut() else {
                    continue;
                };
                if c.dead.is_some() {
                    continue;
                }
                let media_due = self.media_on && c.next_media().is_some_and(|t| t <= now);
                if media_due {
                    c.produce(now, now_ns, &self.cfg.shape, &mut self.sent);
                }
                let timer_due = c.next <= now;
                if timer_due {
                    let _ = c.rtc.handle_input(Input::Timeout(now));
                }
                // Only a client with something due is polled: the others only wait.
                if media_due || timer_due {
                    self.drain(i, now);
                }
                if let Some(c) = self.clients[i].as_ref() {
                    wake = wake.min(c.next);
                    if self.media_on
                        && let Some(m) = c.next_media()
                    {
                        wake = wake.min(m);
                    }
                }
            }
            let before_wait = Instant::now();
            self.busy_max = self
                .busy_max
                .max(before_wait.saturating_duration_since(woke));
            let timeout = wake.saturating_duration_since(before_wait);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != ErrorKind::Interrupted
            {
                eprintln!("load: media poll failed: {e}");
                return;
            }
            woke = Instant::now();
            for ev in events.iter() {
                if ev.token() != WAKER {
                    self.read(ev.token().0);
                }
            }
        }
    }

    fn command(&mut self, c: Cmd) {
        let now = Instant::now();
        match c {
            Cmd::Create {
                idx,
                publish,
                ws_open,
                reply,
            } => {
                let r = Client::new(idx, self.cfg.bind, publish, ws_open, now)
                    .and_then(|(client, offer)| self.install(idx, client).map(|()| offer));
                let _ = reply.send(r);
            }
            Cmd::CreateAnswering {
                idx,
                sdp,
                ws_open,
                reply,
            } => {
                let r = Client::answering(idx, self.cfg.bind, &sdp, ws_open, now)
                    .and_then(|(client, answer)| self.install(idx, client).map(|()| answer));
                let _ = reply.send(r);
                self.drain(idx, now);
            }
            Cmd::Received(reply) => {
                let live: u64 = self
                    .clients
                    .iter()
                    .flatten()
                    .map(|c| c.recv.received())
                    .sum();
                let _ = reply.send(self.retired.rx_packets + live);
            }
            Cmd::Answer { idx, sdp } => {
                if let Some(Some(c)) = self.clients.get_mut(idx)
                    && let Err(e) = c.accept_answer(&sdp)
                {
                    c.dead = Some(e.to_string());
                }
                self.drain(idx, now);
            }
            Cmd::Offer { idx, sdp, reply } => {
                let r = match self.clients.get_mut(idx) {
                    Some(Some(c)) => c.accept_offer(&sdp),
                    _ => Err(ClientError::NoPendingOffer),
                };
                let _ = reply.send(r);
                self.drain(idx, now);
            }
            Cmd::Measure(on) => {
                self.measuring = on;
                if on {
                    self.window.clear();
                    self.window_audio.clear();
                }
            }
            Cmd::Remove { idx } => {
                if let Some(mut c) = self.clients.get_mut(idx).and_then(Option::take) {
                    let _ = self.poll.registry().deregister(&mut c.socket);
                    self.retired.rx_packets += c.recv.received();
                    self.retired.rx_gaps += c.recv.gaps();
                    self.retired.tx_packets += c.sent_packets;
                    self.retired.unstamped += c.recv.unstamped;
                }
            }
            Cmd::StopMedia => self.media_on = false,
            Cmd::Finish(_) => {}
        }
    }

    /// Reads every datagram waiting on client `i`'s socket.
    fn read(&mut self, i: usize) {
        loop {
            let Some(Some(c)) = self.clients.get_mut(i) else {
                return;
            };
            let (n, source) = match c.socket.recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // An ICMP error queued on the socket: read on (edge-triggered poll).
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
                    ) =>
                {
                    continue;
                }
                Err(_) => return,
            };
            let now = Instant::now();
            if c.dead.is_some() {
                continue;
            }
            if c.srtp_profile.is_none() {
                c.srtp_profile = srtp::server_hello_profile(&self.buf[..n]);
            }
            let Ok(contents) = DatagramRecv::try_from(&self.buf[..n]) else {
                continue;
            };
            let input = Input::Receive(
                now,
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: c.local,
                    contents,
                },
            );
            if let Err(e) = c.rtc.handle_input(input) {
                c.dead = Some(e.to_string());
            }
            self.drain(i, now);
        }
    }

    /// Registers a new client's socket with the poll and keeps it at slot `idx`.
    fn install(&mut self, idx: usize, mut client: Client) -> Result<(), ClientError> {
        self.poll
            .registry()
            .register(&mut client.socket, Token(idx), Interest::READABLE)
            .map_err(ClientError::Bind)?;
        if self.clients.len() <= idx {
            self.clients.resize_with(idx + 1, || None);
        }
        self.clients[idx] = Some(client);
        Ok(())
    }

    /// Polls client `i`'s `Rtc` until it only waits: sends its datagrams, handles its events.
    fn drain(&mut self, i: usize, now: Instant) {
        let now_ns = self.ns(now);
        let Some(Some(c)) = self.clients.get_mut(i) else {
            return;
        };
        loop {
            match c.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    c.next = t;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    if c.srtp_profile.is_none() {
                        c.srtp_profile = srtp::server_hello_profile(&t.contents);
                    }
                    // A full send buffer drops the datagram, as the server does.
                    let _ = c.socket.send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => {
                    if let Some((us, audio)) = c.event(e, now, now_ns) {
                        self.second.record(us);
                        if self.measuring {
                            self.window.record(us);
                            if audio {
                                self.window_audio.record(us);
                            }
                        }
                    }
                }
                Err(e) => {
                    c.dead = Some(e.to_string());
                    c.next = now + Duration::from_secs(3600);
                    return;
                }
            }
        }
    }

    fn snapshot(&mut self, at: Instant) {
        let live = self.clients.iter().flatten();
        let mut s = Snapshot {
            at,
            clients: 0,
            connected: 0,
            receiving: 0,
            dead: 0,
            rx_packets: self.retired.rx_packets,
            rx_gaps: self.retired.rx_gaps,
            tx_packets: self.retired.tx_packets,
            busy_max_ms: self.busy_max.as_secs_f64() * 1000.0,
            delay_p50_ms: self.second.quantile_ms(0.5),
            delay_p99_ms: self.second.quantile_ms(0.99),
        };
        for c in live {
            s.clients += 1;
            s.connected += usize::from(c.connected);
            s.receiving += usize::from(c.first_rtp.is_some());
            s.dead += usize::from(c.dead.is_some());
            s.rx_packets += c.recv.received();
            s.rx_gaps += c.recv.gaps();
            s.tx_packets += c.sent_packets;
        }
        self.second.clear();
        self.busy_max = Duration::ZERO;
        let _ = self.snapshots.send(s);
    }

    fn finish(&mut self) -> Final {
        let mut f = Final {
            window_delay: self.window.clone(),
            window_delay_audio: self.window_audio.clone(),
            join_ms: Vec::new(),
            clients: 0,
            dead: Vec::new(),
            streams: Vec::new(),
            rx_packets: self.retired.rx_packets,
            rx_gaps: self.retired.rx_gaps,
            unstamped: self.retired.unstamped,
            tx_packets: self.retired.tx_packets,
            srtp_profiles: std::collections::BTreeMap::new(),
        };
        for c in self.clients.iter().flatten() {
            f.clients += 1;
            let profile = c
                .srtp_profile
                .map_or_else(|| "unknown".to_owned(), srtp::profile_name);
            *f.srtp_profiles.entry(profile).or_default() += 1;
            if let Some(t) = c.first_rtp {
                f.join_ms
                    .push(t.saturating_duration_since(c.ws_open).as_secs_f64() * 1000.0);
            }
            if let Some(d) = &c.dead {
                f.dead.push((c.idx, d.clone()));
            }
            f.rx_packets += c.recv.received();
            f.rx_gaps += c.recv.gaps();
            f.unstamped += c.recv.unstamped;
            f.tx_packets += c.sent_packets;
            // Per publisher, the video layer that arrived last.
            let mut latest: HashMap<u32, (u64, u32)> = HashMap::new();
            for (stream, t) in &c.recv.streams {
                if stream & 3 != 3 {
                    let e = latest.entry(stream >> 2).or_insert((t.last_ns, *stream));
                    if t.last_ns > e.0 {
                        *e = (t.last_ns, *stream);
                    }
                }
            }
            for (stream, t) in &c.recv.streams {
                let sent_total = u64::from(self.sent.get(stream).copied().unwrap_or(0));
                let sent = sent_total.saturating_sub(u64::from(t.first));
                let tail = sent_total as i64 - 1 - i64::from(t.max);
                f.streams.push(StreamResult {
                    subscriber: c.idx,
                    stream: *stream,
                    audio: stream & 3 == 3,
                    sent,
                    received: t.received,
                    lost: t.skipped as i64 - t.late as i64 + tail,
                    beyond_sent: u64::from(t.max) >= sent_total,
                    current: stream & 3 == 3
                        || latest.get(&(stream >> 2)).is_some_and(|l| l.1 == *stream),
                });
            }
        }
        f
    }
}
