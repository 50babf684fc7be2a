//! The pure core of the UDP relay (`kham-relay`): which client a datagram belongs to, which
//! emulated links it crosses, when it leaves, and when a client is forgotten.
//!
//! A client is a source address seen on the relay's listening socket. The first datagram from
//! a new address creates it, with its own [`LinkPair`]: `up` carries what the client sends
//! towards the upstream (kham's media socket), `down` what the upstream sends back. The link
//! parameters come from a [`ClientSpec`] chosen by order of first appearance (client 0, 1, ...
//! get [`RelayConfig::specs`] in turn, later ones [`RelayConfig::default_spec`]); the loss and
//! jitter seeds come from the relay's seed and that order ([`client_seeds`]), so one seed and
//! one order of appearance give one outcome.
//!
//! No clock and no IO, like the rest of the crate: the caller passes `Instant`s, hands in the
//! datagrams it reads ([`Relay::from_client`], [`Relay::from_upstream`]), sends what
//! [`Relay::poll_output`] returns, and sleeps until [`Relay::poll_timeout`]. The trace offset 0
//! of a client's links is the instant of its first datagram.
//!
//! A client that has sent nothing for [`RelayConfig::idle_timeout`] is forgotten (packets still
//! on its links are discarded) and reported by [`RelayOutput::Expired`], so the caller can close
//! the socket it keeps for it. At most [`RelayConfig::max_clients`] clients exist at once:
//! datagrams from further new addresses are refused and counted, never queued.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::link::{LinkConfig, LinkPair, LinkStats, SendOutcome};
use crate::rng::splitmix64;

/// Both directions of one client's emulated access link.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSpec {
    /// Client to upstream. Its `seed` is replaced by the client's own (see [`client_seeds`]).
    pub up: LinkConfig,
    /// Upstream to client. Its `seed` is replaced by the client's own.
    pub down: LinkConfig,
}

/// How the relay treats clients.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayConfig {
    /// Specs of the first clients, in order of first appearance: client `n` gets `specs[n]`.
    pub specs: Vec<ClientSpec>,
    /// Spec of every client after those in `specs`.
    pub default_spec: ClientSpec,
    /// Most clients at once; a datagram from a new address beyond it is refused.
    pub max_clients: usize,
    /// A client that has sent nothing for this long is forgotten (traffic from the upstream
    /// does not keep it alive: a browser sends RTCP and ICE consent checks while it lives).
    pub idle_timeout: Duration,
    /// Main seed; each client's link seeds derive from it and the client's order.
    pub seed: u64,
}

impl RelayConfig {
    /// Default [`RelayConfig::max_clients`].
    pub const DEFAULT_MAX_CLIENTS: usize = 64;
    /// Default [`RelayConfig::idle_timeout`]: longer than WebRTC's 30 s consent timeout, so a
    /// browser is never forgotten while its session can still be alive.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

    /// Every client gets `spec`; defaults for the rest, seed 0.
    pub fn new(spec: ClientSpec) -> RelayConfig {
        RelayConfig {
            specs: Vec::new(),
            default_spec: spec,
            max_clients: RelayConfig::DEFAULT_MAX_CLIENTS,
            idle_timeout: RelayConfig::DEFAULT_IDLE_TIMEOUT,
            seed: 0,
        }
    }

    /// The spec of the client of order `id`: its index in `specs`, or None for the default.
    pub fn spec_for(&self, id: ClientId) -> (Option<usize>, &ClientSpec) {
        match usize::try_from(id.0)
            .ok()
            .and_then(|i| Some((i, self.specs.get(i)?)))
        {
            Some((i, spec)) => (Some(i), spec),
            None => (None, &self.default_spec),
        }
    }
}

/// A client's identity: its order of first appearance, from 0. Never reused, also after the
/// client expired (the same address coming back is a new client with a new id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

/// The (uplink, downlink) loss and jitter seeds of client `id` under main seed `seed`.
pub fn client_seeds(seed: u64, id: ClientId) -> (u64, u64) {
    let mut s = seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let base = splitmix64(&mut s);
    let mut up = base ^ 0x5550;
    let mut down = base ^ 0x444F_574E;
    (splitmix64(&mut up), splitmix64(&mut down))
}

/// What became of a datagram from a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromClient {
    /// It entered the client's uplink; `new` when this datagram created the client (the caller
    /// opens the client's upstream-facing socket then).
    Accepted {
        /// The client.
        id: ClientId,
        /// True on the client's first datagram.
        new: bool,
        /// The uplink's verdict.
        outcome: SendOutcome,
    },
    /// A new address while [`RelayConfig::max_clients`] clients exist: dropped.
    Refused,
}

/// Something for the caller to do.
#[derive(Debug, Clone, PartialEq)]
pub enum RelayOutput<A, P> {
    /// Send `packet` to the upstream from client `id`'s own upstream-facing socket.
    ToUpstream {
        /// The client.
        id: ClientId,
        /// The datagram.
        packet: P,
        /// When the link delivered it (the caller is this late if its clock is past it).
        due: Instant,
    },
    /// Send `packet` from the listening socket to the client at `addr`.
    ToClient {
        /// The client.
        id: ClientId,
        /// Its address.
        addr: A,
        /// The datagram.
        packet: P,
        /// When the link delivered it.
        due: Instant,
    },
    /// The client was idle for [`RelayConfig::idle_timeout`] and is forgotten: close its
    /// socket. Its final figures are attached.
    Expired(ClientReport<A>),
}

/// A client's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientReport<A> {
    /// Its id (order of appearance).
    pub id: ClientId,
    /// Its source address.
    pub addr: A,
    /// Index in [`RelayConfig::specs`], or None for the default spec.
    pub spec: Option<usize>,
    /// Its first datagram.
    pub created_at: Instant,
    /// Its latest datagram.
    pub last_seen: Instant,
    /// Uplink counters: `sent_*` is what the client sent, `delivered_*` what reached the
    /// upstream (as handed to the caller).
    pub up: LinkStats,
    /// Downlink counters: `sent_*` is what the upstream sent, `delivered_*` what reached the
    /// client.
    pub down: LinkStats,
    /// Packets queued or in flight on the uplink (discarded if the client expires now).
    pub up_pending: usize,
    /// Packets queued or in flight on the downlink.
    pub down_pending: usize,
}

/// Relay-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Clients created.
    pub clients_created: u64,
    /// Clients forgotten after the idle timeout.
    pub clients_expired: u64,
    /// Clients removed by the caller.
    pub clients_removed: u64,
    /// Datagrams from new addresses refused because the table was full.
    pub refused_packets: u64,
    /// Bytes (as given) of those.
    pub refused_bytes: u64,
    /// Datagrams handed to [`Relay::from_upstream`] for a client that does not exist.
    pub unknown_upstream_packets: u64,
}

struct Client<A, P> {
    addr: A,
    spec: Option<usize>,
    links: LinkPair<P>,
    created_at: Instant,
    last_seen: Instant,
    /// Its key in `Relay::deadlines`.
    deadline: Option<Instant>,
}

impl<A: Clone, P> Client<A, P> {
    fn report(&self, id: ClientId) -> ClientReport<A> {
        let pending = |l: &crate::link::Link<P>| l.queued_packets() + l.in_flight_packets();
        ClientReport {
            id,
            addr: self.addr.clone(),
            spec: self.spec,
            created_at: self.created_at,
            last_seen: self.last_seen,
            up: self.links.up.stats(),
            down: self.links.down.stats(),
            up_pending: pending(&self.links.up),
            down_pending: pending(&self.links.down),
        }
    }
}

/// The relay's state: the client table and every client's links. `A` is the client address
/// type (a `SocketAddr` in the real relay), `P` the payload, moved through and never cloned.
pub struct Relay<A, P> {
    config: RelayConfig,
    /// Latest time seen; earlier times given later are taken as this.
    now: Option<Instant>,
    by_addr: HashMap<A, ClientId>,
    clients: BTreeMap<ClientId, Client<A, P>>,
    /// Each client's next event (delivery, serialization or expiry), earliest first.
    deadlines: BTreeSet<(Instant, ClientId)>,
    next_id: u64,
    stats: RelayStats,
}

impl<A, P> std::fmt::Debug for Relay<A, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("clients", &self.clients.len())
            .field("next_id", &self.next_id)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<A: Clone + Eq + Hash, P> Relay<A, P> {
    /// An empty relay.
    pub fn new(config: RelayConfig) -> Self {
        Relay {
            config,
            now: None,
            by_addr: HashMap::new(),
            clients: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            next_id: 0,
            stats: RelayStats::default(),
        }
    }

    /// A datagram of `size` bytes (what crosses the bottleneck: payload plus IP and UDP
    /// headers) from the client at `addr`, received at `now`.
    pub fn from_client(&mut self, now: Instant, addr: A, size: usize, packet: P) -> FromClient {
        let now = self.clock(now);
        let (id, new) = match self.by_addr.get(&addr) {
            Some(&id) => (id, false),
            None => {
                if self.clients.len() >= self.config.max_clients {
                    self.stats.refused_packets = self.stats.refused_packets.saturating_add(1);
                    self.stats.refused_bytes = self.stats.refused_bytes.saturating_add(size as u64);
                    return FromClient::Refused;
                }
                (self.create(now, addr), true)
            }
        };
        let Some(client) = self.clients.get_mut(&id) else {
            return FromClient::Refused;
        };
        client.last_seen = now;
        let outcome = client.links.up.send(now, size, packet);
        self.reschedule(id, now);
        FromClient::Accepted { id, new, outcome }
    }

    /// A datagram of `size` bytes from the upstream to client `id` (the caller knows it from
    /// the socket it arrived on), received at `now`. None when the client does not exist (it
    /// expired or was removed): the datagram is dropped.
    pub fn from_upstream(
        &mut self,
        now: Instant,
        id: ClientId,
        size: usize,
        packet: P,
    ) -> Option<SendOutcome> {
        let now = self.clock(now);
        let Some(client) = self.clients.get_mut(&id) else {
            self.stats.unknown_upstream_packets =
                self.stats.unknown_upstream_packets.saturating_add(1);
            return None;
        };
        let outcome = client.links.down.send(now, size, packet);
        self.reschedule(id, now);
        Some(outcome)
    }

    /// The next thing to do at `now`: a delivery due at or before `now` (earliest client
    /// deadline first), or a client's expiry. None when nothing is due.
    pub fn poll_output(&mut self, now: Instant) -> Option<RelayOutput<A, P>> {
        let now = self.clock(now);
        loop {
            let &(at, id) = self.deadlines.first()?;
            if at > now {
                return None;
            }
            let Some(client) = self.clients.get_mut(&id) else {
                self.deadlines.remove(&(at, id));
                continue;
            };
            if let Some(d) = client.links.up.poll_deliver(now) {
                self.reschedule(id, now);
                return Some(RelayOutput::ToUpstream {
                    id,
                    packet: d.packet,
                    due: d.delivered_at,
                });
            }
            if let Some(d) = client.links.down.poll_deliver(now) {
                let addr = client.addr.clone();
                self.reschedule(id, now);
                return Some(RelayOutput::ToClient {
                    id,
                    addr,
                    packet: d.packet,
                    due: d.delivered_at,
                });
            }
            let expires = client.last_seen.checked_add(self.config.idle_timeout);
            if expires.is_some_and(|e| e <= now) {
                let report = self.forget(id)?;
                self.stats.clients_expired = self.stats.clients_expired.saturating_add(1);
                return Some(RelayOutput::Expired(report));
            }
            // Nothing due yet (a packet lost on the wire, or jitter): wait for the next event.
            let next = self.reschedule(id, now);
            if next.is_some_and(|n| n <= now) {
                // A link reports an event in the past it will not act on (not expected):
                // look again only once time has moved, rather than spin.
                self.rekey(id, now.checked_add(Duration::from_nanos(1)));
            }
        }
    }

    /// The earliest instant at which [`Relay::poll_output`] may have something: a delivery
    /// (see [`crate::Link::poll_delivery_timeout`]: a packet lost on the wire makes it a
    /// wake-up with nothing to do) or an expiry. None with no client.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    /// Forgets client `id` now (the caller could not open its socket, say). Its queued packets
    /// are discarded; its final figures are returned.
    pub fn remove(&mut self, id: ClientId) -> Option<ClientReport<A>> {
        let report = self.forget(id)?;
        self.stats.clients_removed = self.stats.clients_removed.saturating_add(1);
        Some(report)
    }

    /// The client at `addr`, if any.
    pub fn client_at(&self, addr: &A) -> Option<ClientId> {
        self.by_addr.get(addr).copied()
    }

    /// Figures of client `id`, if it exists.
    pub fn client(&self, id: ClientId) -> Option<ClientReport<A>> {
        self.clients.get(&id).map(|c| c.report(id))
    }

    /// Figures of every current client, in order of appearance.
    pub fn clients(&self) -> impl Iterator<Item = ClientReport<A>> + '_ {
        self.clients.iter().map(|(&id, c)| c.report(id))
    }

    /// Number of current clients.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Relay-wide counters.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    fn clock(&mut self, now: Instant) -> Instant {
        let t = self.now.map_or(now, |n| n.max(now));
        self.now = Some(t);
        t
    }

    fn create(&mut self, now: Instant, addr: A) -> ClientId {
        let id = ClientId(self.next_id);
        self.next_id = self.next_id.saturating_add(1);
        let (spec_index, spec) = self.config.spec_for(id);
        let (up_seed, down_seed) = client_seeds(self.config.seed, id);
        let mut up = spec.up.clone();
        up.seed = up_seed;
        let mut down = spec.down.clone();
        down.seed = down_seed;
        self.clients.insert(
            id,
            Client {
                addr: addr.clone(),
                spec: spec_index,
                links: LinkPair::new(up, down, now),
                created_at: now,
                last_seen: now,
                deadline: None,
            },
        );
        self.by_addr.insert(addr, id);
        self.stats.clients_created = self.stats.clients_created.saturating_add(1);
        id
    }

    fn forget(&mut self, id: ClientId) -> Option<ClientReport<A>> {
        let client = self.clients.remove(&id)?;
        if let Some(at) = client.deadline {
            self.deadlines.remove(&(at, id));
        }
        if self.by_addr.get(&client.addr) == Some(&id) {
            self.by_addr.remove(&client.addr);
        }
        Some(client.report(id))
    }

    /// Recomputes client `id`'s next event and files it; returns it.
    fn reschedule(&mut self, id: ClientId, now: Instant) -> Option<Instant> {
        let client = self.clients.get(&id)?;
        let expires = client
            .last_seen
            .checked_add(self.config.idle_timeout)
            .map(|e| e.max(now));
        // Deliveries only: serialization completions need no wake-up of their own (the links
        // catch up on them when polled), which halves the caller's wake-ups on a rate limit.
        let next = match (client.links.poll_delivery_timeout(), expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.rekey(id, next);
        next
    }

    fn rekey(&mut self, id: ClientId, next: Option<Instant>) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if client.deadline == next {
            return;
        }
        if let Some(old) = client.deadline {
            self.deadlines.remove(&(old, id));
        }
        if let Some(at) = next {
            self.deadlines.insert((at, id));
        }
        client.deadline = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LossModel, QueueLimit, Trace};

    const MS: Duration = Duration::from_millis(1);

    fn spec(bps: u64, delay: Duration) -> ClientSpec {
        ClientSpec {
            up: LinkConfig::with_trace(Trace::fixed(1 << 40), delay),
            down: LinkConfig::fixed(bps, delay),
        }
    }

    /// Runs the relay until `end` in virtual time, collecting outputs with the time they came.
    fn run_until(
        relay: &mut Relay<u32, u32>,
        now: &mut Instant,
        end: Instant,
    ) -> Vec<(Instant, RelayOutput<u32, u32>)> {
        let mut out = Vec::new();
        loop {
            while let Some(o) = relay.poll_output(*now) {
                out.push((*now, o));
            }
            match relay.poll_timeout() {
                Some(t) if t <= end => *now = t.max(*now),
                _ => break,
            }
        }
        *now = end.max(*now);
        out
    }

    #[test]
    fn first_datagram_creates_a_client_with_its_spec_in_order() {
        let t0 = Instant::now();
        let mut cfg = RelayConfig::new(spec(1_000_000, 10 * MS));
        cfg.specs = vec![spec(200_000, 50 * MS), spec(300_000, 60 * MS)];
        let mut relay: Relay<u32, u32> = Relay::new(cfg);
        let mut ids = Vec::new();
        for addr in [7, 3, 9, 3, 5] {
            match relay.from_client(t0, addr, 100, addr) {
                FromClient::Accepted { id, new, .. } => ids.push((id.0, new)),
                FromClient::Refused => panic!("refused"),
            }
        }
        assert_eq!(
            ids,
            [(0, true), (1, true), (2, true), (1, false), (3, true)]
        );
        let specs: Vec<_> = relay.clients().map(|c| (c.addr, c.spec)).collect();
        assert_eq!(specs, [(7, Some(0)), (3, Some(1)), (9, None), (5, None)]);
        assert_eq!(relay.client_at(&3), Some(ClientId(1)));
        let c1 = relay.client(ClientId(1)).expect("client 1");
        assert_eq!(c1.up.sent_packets, 2);
        assert_eq!(relay.stats().clients_created, 4);
    }

    #[test]
    fn forwards_up_then_down_with_each_direction_delay() {
        let t0 = Instant::now();
        let mut relay: Relay<u32, &str> = Relay::new(RelayConfig::new(spec(1_000_000, 40 * MS)));
        let FromClient::Accepted { id, .. } = relay.from_client(t0, 1, 1250, "ping") else {
            panic!("refused");
        };
        assert!(relay.poll_output(t0 + 39 * MS).is_none());
        let due = relay.poll_timeout().expect("scheduled");
        // Unconstrained uplink: 40 ms plus well under a microsecond of serialization.
        assert!(due - t0 >= 40 * MS && due - t0 < 40 * MS + Duration::from_micros(1));
        match relay.poll_output(due) {
            Some(RelayOutput::ToUpstream {
                id: got, packet, ..
            }) => {
                assert_eq!((got, packet), (id, "ping"));
            }
            other => panic!("{other:?}"),
        }
        let t1 = t0 + 50 * MS;
        assert_eq!(
            relay.from_upstream(t1, id, 1250, "pong"),
            Some(SendOutcome::Queued)
        );
        // 1250 bytes at 1 Mbit/s: 10 ms, then 40 ms.
        let mut now = t1;
        loop {
            if let Some(o) = relay.poll_output(now) {
                match o {
                    RelayOutput::ToClient {
                        addr, packet, due, ..
                    } => {
                        assert_eq!((addr, packet), (1, "pong"));
                        assert_eq!(due - t1, 50 * MS);
                        assert_eq!(now, due);
                    }
                    other => panic!("{other:?}"),
                }
                break;
            }
            now = relay.poll_timeout().expect("pending");
        }
        assert_eq!(relay.from_upstream(t1, ClientId(9), 10, "x"), None);
        assert_eq!(relay.stats().unknown_upstream_packets, 1);
    }

    #[test]
    fn clients_have_independent_links_and_seeds() {
        let t0 = Instant::now();
        let mut s = spec(1_000_000, 20 * MS);
        s.down.loss = LossModel::Random { p: 0.3 };
        s.down.queue = QueueLimit::Bytes(1 << 30);
        let mut cfg = RelayConfig::new(s);
        cfg.seed = 42;
        let mut relay: Relay<u32, u32> = Relay::new(cfg);
        relay.from_client(t0, 1, 100, 0);
        relay.from_client(t0, 2, 100, 0);
        // Client 1's downlink is saturated; client 2's gets a trickle: it must not queue
        // behind client 1.
        for i in 0..200 {
            relay.from_upstream(t0, ClientId(0), 1250, i);
        }
        let mut now = t0;
        let mut out = Vec::new();
        for i in 0..200 {
            let at = t0 + 100 * MS * i;
            out.extend(run_until(&mut relay, &mut now, at));
            relay.from_upstream(at, ClientId(1), 1250, i);
        }
        out.extend(run_until(
            &mut relay,
            &mut now,
            t0 + Duration::from_secs(30),
        ));
        let arrivals = |id| {
            out.iter()
                .filter_map(|(at, o)| match o {
                    RelayOutput::ToClient {
                        id: got, packet, ..
                    } if *got == id => Some((*at, *packet)),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let (a, b) = (arrivals(ClientId(0)), arrivals(ClientId(1)));
        // Client 2's packets each take 10 ms + 20 ms, whatever client 1 does.
        for &(at, i) in &b {
            assert_eq!(at - (t0 + 100 * MS * i), 30 * MS, "packet {i}");
        }
        // 30 % loss each, but not the same packets (different seeds).
        let lost = |v: &[(Instant, u32)]| {
            let got: Vec<u32> = v.iter().map(|x| x.1).collect();
            (0..200).filter(|i| !got.contains(i)).collect::<Vec<u32>>()
        };
        let (la, lb) = (lost(&a), lost(&b));
        assert!((40..=80).contains(&la.len()), "{}", la.len());
        assert!((40..=80).contains(&lb.len()), "{}", lb.len());
        assert_ne!(la, lb);
        assert_ne!(client_seeds(42, ClientId(0)), client_seeds(42, ClientId(1)));
        let (u, d) = client_seeds(42, ClientId(0));
        assert_ne!(u, d);
    }

    #[test]
    fn same_seed_same_outcome() {
        let run = |seed: u64| {
            let t0 = Instant::now();
            let mut s = spec(500_000, 30 * MS);
            s.down.loss = LossModel::bursty(0.1, 3.0);
            s.down.jitter = 5 * MS;
            let mut cfg = RelayConfig::new(s);
            cfg.seed = seed;
            let mut relay: Relay<u32, u32> = Relay::new(cfg);
            let mut now = t0;
            let mut out = Vec::new();
            for i in 0..300u32 {
                let at = t0 + 5 * MS * i;
                out.extend(
                    run_until(&mut relay, &mut now, at)
                        .into_iter()
                        .map(|(t, o)| {
                            let tag = match o {
                                RelayOutput::ToClient { packet, .. } => packet,
                                RelayOutput::ToUpstream { packet, .. } => 10_000 + packet,
                                RelayOutput::Expired(_) => u32::MAX,
                            };
                            (t - t0, tag)
                        }),
                );
                relay.from_client(at, i % 3, 200, i);
                relay.from_upstream(at, ClientId(u64::from(i % 3)), 800, i);
            }
            out
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn idle_clients_expire_and_come_back_as_new() {
        let t0 = Instant::now();
        let mut cfg = RelayConfig::new(spec(1_000_000, 10 * MS));
        cfg.idle_timeout = Duration::from_secs(5);
        let mut relay: Relay<u32, u32> = Relay::new(cfg);
        relay.from_client(t0, 1, 100, 0);
        relay.from_client(t0 + Duration::from_secs(3), 2, 100, 0);
        // Upstream traffic does not keep client 1 alive.
        relay.from_upstream(t0 + Duration::from_secs(4), ClientId(0), 100, 1);
        let mut now = t0;
        let out = run_until(&mut relay, &mut now, t0 + Duration::from_secs(6));
        let expired: Vec<_> = out
            .iter()
            .filter_map(|(at, o)| match o {
                RelayOutput::Expired(r) => Some((*at - t0, r.id, r.up.delivered_packets)),
                _ => None,
            })
            .collect();
        assert_eq!(expired, [(Duration::from_secs(5), ClientId(0), 1)]);
        assert_eq!(relay.client_count(), 1);
        assert_eq!(relay.poll_timeout(), Some(t0 + Duration::from_secs(8)));
        // Address 1 again: a new client, id 2.
        let r = relay.from_client(now, 1, 100, 0);
        assert!(matches!(
            r,
            FromClient::Accepted {
                id: ClientId(2),
                new: true,
                ..
            }
        ));
        assert_eq!(relay.stats().clients_expired, 1);
        assert!(relay.remove(ClientId(1)).is_some());
        assert!(relay.remove(ClientId(1)).is_none());
        assert_eq!(relay.stats().clients_removed, 1);
        assert_eq!(relay.client_at(&2), None);
    }

    #[test]
    fn client_table_is_bounded() {
        let t0 = Instant::now();
        let mut cfg = RelayConfig::new(spec(1_000_000, 10 * MS));
        cfg.max_clients = 2;
        let mut relay: Relay<u32, u32> = Relay::new(cfg);
        assert!(matches!(
            relay.from_client(t0, 1, 10, 0),
            FromClient::Accepted { .. }
        ));
        assert!(matches!(
            relay.from_client(t0, 2, 10, 0),
            FromClient::Accepted { .. }
        ));
        assert_eq!(relay.from_client(t0, 3, 10, 0), FromClient::Refused);
        assert!(matches!(
            relay.from_client(t0, 1, 10, 0),
            FromClient::Accepted { new: false, .. }
        ));
        assert_eq!(relay.stats().refused_packets, 1);
        assert_eq!(relay.stats().refused_bytes, 10);
        relay.remove(ClientId(0));
        assert!(matches!(
            relay.from_client(t0, 3, 10, 0),
            FromClient::Accepted {
                id: ClientId(2),
                new: true,
                ..
            }
        ));
    }

    #[test]
    fn queue_drops_are_reported_per_client() {
        let t0 = Instant::now();
        let mut s = spec(1_000_000, 10 * MS);
        s.down.queue = QueueLimit::Bytes(5000);
        let mut relay: Relay<u32, u32> = Relay::new(RelayConfig::new(s));
        relay.from_client(t0, 1, 10, 0);
        let outcomes: Vec<_> = (0..6)
            .map(|i| relay.from_upstream(t0, ClientId(0), 1000, i))
            .collect();
        assert_eq!(outcomes[4], Some(SendOutcome::Queued));
        assert_eq!(outcomes[5], Some(SendOutcome::DroppedQueueFull));
        let r = relay.client(ClientId(0)).expect("client");
        assert_eq!(r.down.dropped_queue_packets, 1);
        assert_eq!(r.down_pending, 5);
    }

    #[test]
    fn time_going_backwards_is_harmless() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut relay: Relay<u32, u32> = Relay::new(RelayConfig::new(spec(1_000_000, 10 * MS)));
        relay.from_client(t0, 1, 10, 0);
        relay.from_client(t0 - Duration::from_secs(5), 1, 10, 1);
        assert!(relay.poll_output(t0 - Duration::from_secs(9)).is_none());
        let mut now = t0;
        let out = run_until(&mut relay, &mut now, t0 + Duration::from_secs(1));
        assert_eq!(out.len(), 2);
    }
}
