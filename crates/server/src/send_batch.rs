//! Batched UDP sends: a shard collects the datagrams its rooms produce while it handles one
//! wake-up (a batch of received datagrams, a pass over due timers) and hands them to the kernel
//! in one `sendmmsg(2)` call per [`MAX_BATCH`] instead of one `sendto(2)` each (issue 15,
//! "batched flush"). Off Linux, one `send_to` each. A datagram the socket refuses (its send
//! buffer full) is dropped and counted, as a failed `send_to` always was; the rest still go.
//!
//! Nothing is copied and nothing is allocated per datagram: the batch keeps str0m's
//! `Transmit`s (their buffers) in a vector whose capacity is kept, and the system call's
//! headers live on the stack of [`SendBatch::flush`].

use std::net::SocketAddr;

use kham_sfu::str0m::net::Transmit;
use tokio::net::UdpSocket;

/// Datagrams per system call (and the most a batch holds before it is flushed).
pub const MAX_BATCH: usize = 32;

/// What one flush did, for the shard's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    pub sent: u64,
    pub bytes: u64,
    /// Refused by the socket (its send buffer full, or an error): dropped, as `try_send_to`'s
    /// failures always were.
    pub dropped: u64,
}

impl Flushed {
    /// Adds this flush to the shard's counters.
    pub fn count(self, c: &mut crate::media_stats::ShardCounters) {
        c.udp_out += self.sent;
        c.udp_bytes_out += self.bytes;
        c.send_dropped += self.dropped;
    }
}

#[derive(Default)]
pub struct SendBatch {
    pending: Vec<Transmit>,
}

impl SendBatch {
    pub fn new() -> Self {
        SendBatch {
            pending: Vec::with_capacity(MAX_BATCH),
        }
    }

    /// Queues a datagram; true when the batch is full and must be flushed now.
    pub fn push(&mut self, t: Transmit) -> bool {
        self.pending.push(t);
        self.pending.len() >= MAX_BATCH
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Sends everything queued.
    pub fn flush(&mut self, socket: &UdpSocket) -> Flushed {
        let mut done = Flushed::default();
        for chunk in self.pending.chunks(MAX_BATCH) {
            send_chunk(socket, chunk, &mut done);
        }
        self.pending.clear();
        done
    }
}

#[cfg(target_os = "linux")]
fn send_chunk(socket: &UdpSocket, chunk: &[Transmit], done: &mut Flushed) {
    use rustix::net::addr::SocketAddrArg;
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, sendmmsg};
    use std::io::IoSlice;

    // Fixed-size arrays on the stack, filled up to `n`: no allocation per flush either.
    let n = chunk.len().min(MAX_BATCH);
    let addrs: [_; MAX_BATCH] =
        std::array::from_fn(|i| chunk.get(i).map_or(UNSPECIFIED, |t| t.destination).as_any());
    let iovs: [[IoSlice<'_>; 1]; MAX_BATCH] =
        std::array::from_fn(|i| [IoSlice::new(chunk.get(i).map_or(&[][..], |t| &t.contents))]);
    let mut control: [SendAncillaryBuffer<'_, '_, '_>; MAX_BATCH] =
        std::array::from_fn(|_| SendAncillaryBuffer::default());
    let mut headers = control
        .iter_mut()
        .zip(addrs.iter().zip(iovs.iter()))
        .map(|(c, (a, io))| MMsgHdr::new_with_addr(a, io, c));
    let mut msgs: [MMsgHdr<'_>; MAX_BATCH] =
        std::array::from_fn(|_| headers.next().expect("MAX_BATCH headers"));
    let mut off = 0;
    while off < n {
        match sendmmsg(socket, &mut msgs[off..n], SendFlags::empty()) {
            Ok(0) => break,
            Ok(k) => {
                for m in &msgs[off..off + k] {
                    done.sent += 1;
                    done.bytes += m.bytes_sent() as u64;
                }
                off += k;
            }
            Err(rustix::io::Errno::INTR) => continue,
            // The first datagram was refused (a full send buffer: EAGAIN); drop it, as a
            // failed `send_to` was, and go on with the rest.
            Err(_) => {
                done.dropped += 1;
                off += 1;
            }
        }
    }
}

#[cfg(target_os = "linux")]
const UNSPECIFIED: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
));

#[cfg(not(target_os = "linux"))]
fn send_chunk(socket: &UdpSocket, chunk: &[Transmit], done: &mut Flushed) {
    for t in chunk {
        match socket.try_send_to(&t.contents, t.destination) {
            Ok(n) => {
                done.sent += 1;
                done.bytes += n as u64;
            }
            Err(_) => done.dropped += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kham_sfu::str0m::net::Protocol;

    fn transmit(from: SocketAddr, to: SocketAddr, i: usize) -> Transmit {
        Transmit {
            proto: Protocol::Udp,
            source: from,
            destination: to,
            contents: vec![i as u8; 100 + i].into(),
        }
    }

    /// More datagrams than one system call takes, to two receivers: each arrives once, whole,
    /// in order, and the batch is empty afterwards.
    #[tokio::test]
    async fn a_batch_reaches_every_destination_whole_and_in_order() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let from = sender.local_addr().unwrap();
        let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut batch = SendBatch::new();
        let count = MAX_BATCH + 7;
        let mut full = 0;
        for i in 0..count {
            if batch.push(transmit(from, if i % 2 == 0 { to_a } else { to_b }, i)) {
                full += 1;
            }
        }
        // Full from the MAX_BATCH-th on (not flushed here: one flush sends it in two calls).
        assert_eq!(full, count - MAX_BATCH + 1);
        let done = batch.flush(&sender);
        assert!(batch.is_empty());
        assert_eq!(done.sent, count as u64);
        assert_eq!(done.dropped, 0);
        let expected_bytes: usize = (0..count).map(|i| 100 + i).sum();
        assert_eq!(done.bytes, expected_bytes as u64);
        let mut buf = [0u8; 2048];
        for i in 0..count {
            let sock = if i % 2 == 0 { &a } else { &b };
            let (n, src) =
                tokio::time::timeout(std::time::Duration::from_secs(2), sock.recv_from(&mut buf))
                    .await
                    .expect("datagram arrives")
                    .unwrap();
            assert_eq!(src, from);
            assert_eq!(n, 100 + i);
            assert!(buf[..n].iter().all(|&x| x == i as u8));
        }
        assert_eq!(
            batch.flush(&sender),
            Flushed::default(),
            "nothing left to send"
        );
    }
}
