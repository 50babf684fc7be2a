//! ICE over TCP (RFC 6544) for clients whose UDP is blocked: one listener per media shard, on
//! the shard's thread, announced as a passive TCP candidate. Each connection carries RFC 4571
//! framed packets (`kham_sfu::rfc4571`) of one peer; the shard feeds them to the room engine
//! as `Protocol::Tcp` input and routes the engine's TCP transmits back here.
//!
//! Bounded everywhere: at most [`MAX_CONNS`] connections per shard; a connection whose first
//! frame is not a STUN binding request, that sends a bad frame, or that is silent for
//! [`IDLE_LIMIT`] is closed; what a connection cannot take at once waits in a bounded buffer and a
//! packet that does not fit is dropped (queueing seconds of media behind a slow TCP window would
//! delay audio). Readiness is polled with `poll_read_ready` / `poll_write_ready` on the streams
//! the shard owns: no task, channel or allocation per packet.

use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use kham_sfu::rfc4571::{FrameReader, FrameWriter};
use tokio::net::{TcpListener, TcpStream};

/// Connections per shard at most; more are closed at once.
pub const MAX_CONNS: usize = 1024;
/// A connection with nothing valid from it for this long is closed (consent checks come every
/// few seconds on a live one).
pub const IDLE_LIMIT: Duration = Duration::from_secs(30);
/// Bytes waiting for a slow connection at most: about 0.5 s of a 1.5 Mbit/s stream.
const WRITE_BUFFER: usize = 96 * 1024;

/// One peer's TCP connection.
pub struct Conn {
    stream: TcpStream,
    pub peer: SocketAddr,
    pub reader: FrameReader,
    writer: FrameWriter,
    /// The room its packets went to (learned from its first accepted packet); shared with the
    /// shard's room table, so reading it per packet is a reference count, not an allocation.
    pub room: Option<std::sync::Arc<str>>,
    /// A valid STUN binding request came first; until then nothing else is taken.
    pub greeted: bool,
    pub last_rx: Instant,
}

/// What needs the shard's attention.
pub enum TcpEvent {
    /// Connection `i` has bytes (or closed).
    Readable(usize),
    /// Connection `i` can take more of what waits for it.
    Writable(usize),
    /// A new connection was accepted (already in the list).
    Accepted,
}

/// Counters for operators.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpCounters {
    pub accepted: u64,
    pub refused: u64,
    /// Closed for a bad first packet, a bad frame or silence.
    pub closed_bad: u64,
    /// Packets dropped because a connection's buffer was full.
    pub send_dropped: u64,
}

/// The shard's listener and connections.
pub struct IceTcp {
    listener: TcpListener,
    /// The announced passive candidate: what str0m knows as the local address of TCP input.
    pub local: SocketAddr,
    pub conns: Vec<Conn>,
    /// Where the next readiness scan starts (fairness between connections).
    next: usize,
    pub counters: TcpCounters,
}

impl IceTcp {
    pub fn new(listener: TcpListener, local: SocketAddr) -> Self {
        IceTcp {
            listener,
            local,
            conns: Vec::new(),
            next: 0,
            counters: TcpCounters::default(),
        }
    }

    /// The next thing to do: a new connection, a readable one, one that can take its backlog.
    pub fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<TcpEvent> {
        while let Poll::Ready(r) = self.listener.poll_accept(cx) {
            let Ok((stream, peer)) = r else { continue };
            if self.conns.len() >= MAX_CONNS {
                self.counters.refused += 1;
                continue;
            }
            let _ = stream.set_nodelay(true);
            self.counters.accepted += 1;
            self.conns.push(Conn {
                stream,
                peer,
                reader: FrameReader::default(),
                writer: FrameWriter::new(WRITE_BUFFER),
                room: None,
                greeted: false,
                last_rx: Instant::now(),
            });
            return Poll::Ready(TcpEvent::Accepted);
        }
        let n = self.conns.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            let c = &self.conns[i];
            if !c.writer.pending().is_empty() && c.stream.poll_write_ready(cx).is_ready() {
                self.next = i + 1;
                return Poll::Ready(TcpEvent::Writable(i));
            }
            if c.stream.poll_read_ready(cx).is_ready() {
                self.next = i + 1;
                return Poll::Ready(TcpEvent::Readable(i));
            }
        }
        Poll::Pending
    }

    /// Reads what connection `i` has into its frame reader. False when it closed or failed.
    pub fn read(&mut self, i: usize) -> bool {
        let c = &mut self.conns[i];
        loop {
            let spare = c.reader.spare();
            if spare.is_empty() {
                return true; // frames to take out first
            }
            match c.stream.try_read(spare) {
                Ok(0) => return false,
                Ok(n) => c.reader.filled(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    }

    /// Frames `packet` for the connection of peer `to` and writes what it can now.
    pub fn send(&mut self, to: SocketAddr, packet: &[u8]) -> bool {
        let Some(c) = self.conns.iter_mut().find(|c| c.peer == to) else {
            return false;
        };
        if !c.writer.push(packet) {
            self.counters.send_dropped += 1;
            return false;
        }
        flush(c);
        true
    }

    /// Writes what waits for connection `i`.
    pub fn flush(&mut self, i: usize) {
        if let Some(c) = self.conns.get_mut(i) {
            flush(c);
        }
    }

    /// Closes connection `i` (its peer's ICE moves elsewhere or fails).
    pub fn close(&mut self, i: usize, bad: bool) {
        if i < self.conns.len() {
            self.conns.swap_remove(i);
            if bad {
                self.counters.closed_bad += 1;
            }
        }
    }

    /// Closes connections silent past [`IDLE_LIMIT`].
    pub fn expire(&mut self, now: Instant) {
        let before = self.conns.len();
        self.conns
            .retain(|c| now.saturating_duration_since(c.last_rx) < IDLE_LIMIT);
        self.counters.closed_bad += (before - self.conns.len()) as u64;
    }

    /// Forgets the room of connections whose room closed.
    pub fn forget_room(&mut self, room: &str) {
        for c in &mut self.conns {
            if c.room.as_deref() == Some(room) {
                c.room = None;
            }
        }
    }
}

fn flush(c: &mut Conn) {
    while !c.writer.pending().is_empty() {
        match c.stream.try_write(c.writer.pending()) {
            Ok(n) if n > 0 => c.writer.written(n),
            _ => return, // would block (the shard waits for write readiness) or failed
        }
    }
}

/// Whether a packet is a STUN binding request (what must open an ICE-TCP connection).
pub fn is_stun_binding_request(p: &[u8]) -> bool {
    // Type 0x0001, the magic cookie at bytes 4-7, a 20-byte header.
    p.len() >= 20 && p[0] == 0x00 && p[1] == 0x01 && p[4..8] == [0x21, 0x12, 0xa4, 0x42]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_binding_request_opens_a_connection() {
        let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        req.extend([7u8; 12]);
        assert!(is_stun_binding_request(&req));
        let mut response = req.clone();
        response[1] = 0x01;
        response[0] = 0x01;
        assert!(!is_stun_binding_request(&response));
        assert!(!is_stun_binding_request(&req[..19]));
        assert!(!is_stun_binding_request(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        ));
        let mut no_cookie = req.clone();
        no_cookie[5] = 0;
        assert!(!is_stun_binding_request(&no_cookie));
    }
}
