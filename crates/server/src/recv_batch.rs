//! Batched UDP receives: when a shard's socket is readable, the datagrams queued on it are read
//! with one `recvmmsg(2)` call per [`MAX_BATCH`] instead of one `recvfrom(2)` each (issue 15,
//! "batched receive"; the counterpart of `send_batch.rs`). Off Linux, one `recv_from` each.
//!
//! Nothing is allocated per datagram or per call: the buffers and the kernel's message headers
//! are allocated once per shard, the I/O vectors live on the stack of [`RecvBatch::recv`].
//! rustix (used for `sendmmsg`) has no `recvmmsg`; nix's safe wrapper is used instead.

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Datagrams per system call.
pub const MAX_BATCH: usize = 32;
/// Largest datagram kept whole; a longer one (no WebRTC peer sends one: str0m's MTU is 1150
/// bytes, a browser's about 1200) is dropped as truncated.
pub const DATAGRAM_MAX: usize = 2048;

/// One received datagram: its length in the batch's buffer and its source, or why it was
/// dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Datagram {
        len: usize,
        source: SocketAddr,
    },
    /// Longer than [`DATAGRAM_MAX`], or from an address that is neither IPv4 nor IPv6.
    Dropped,
}

pub struct RecvBatch {
    bufs: Vec<[u8; DATAGRAM_MAX]>,
    #[cfg(target_os = "linux")]
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
    slots: [Slot; MAX_BATCH],
    len: usize,
}

impl RecvBatch {
    pub fn new() -> Self {
        RecvBatch {
            bufs: vec![[0u8; DATAGRAM_MAX]; MAX_BATCH],
            #[cfg(target_os = "linux")]
            headers: nix::sys::socket::MultiHeaders::preallocate(MAX_BATCH, None),
            slots: [Slot::Dropped; MAX_BATCH],
            len: 0,
        }
    }

    /// Reads what the socket has queued, up to [`MAX_BATCH`] datagrams, without waiting: the
    /// number read, or `WouldBlock` when there was nothing (which also clears tokio's readiness,
    /// so the next `readable().await` waits for the kernel).
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.len = 0;
        let n = socket.try_io(tokio::io::Interest::READABLE, || self.read(socket))?;
        self.len = n;
        Ok(n)
    }

    /// The datagrams of the last [`RecvBatch::recv`], in arrival order: `Some((bytes, source))`,
    /// or `None` for one that was dropped (count it).
    pub fn iter(&self) -> impl Iterator<Item = Option<(&[u8], SocketAddr)>> {
        self.slots[..self.len]
            .iter()
            .zip(&self.bufs)
            .map(|(s, buf)| match *s {
                Slot::Datagram { len, source } => Some((&buf[..len], source)),
                Slot::Dropped => None,
            })
    }

    #[cfg(target_os = "linux")]
    fn read(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        use nix::sys::socket::{MsgFlags, recvmmsg};
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;

        let mut bufs = self.bufs.iter_mut();
        let mut iovs: [[IoSliceMut<'_>; 1]; MAX_BATCH] = std::array::from_fn(|_| {
            [IoSliceMut::new(
                bufs.next().map_or(&mut [][..], |b| &mut b[..]),
            )]
        });
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)?;
        let mut n = 0;
        for (slot, m) in self.slots.iter_mut().zip(results) {
            let source = m.address.as_ref().and_then(socket_addr);
            *slot = match source {
                Some(source) if !m.flags.contains(MsgFlags::MSG_TRUNC) => Slot::Datagram {
                    len: m.bytes,
                    source,
                },
                _ => Slot::Dropped,
            };
            n += 1;
        }
        Ok(n)
    }

    #[cfg(not(target_os = "linux"))]
    fn read(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let mut n = 0;
        while n < MAX_BATCH {
            match socket.try_recv_from(&mut self.bufs[n]) {
                Ok((len, source)) => self.slots[n] = Slot::Datagram { len, source },
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            }
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(target_os = "linux")]
fn socket_addr(a: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        (a, b)
    }

    #[tokio::test]
    async fn reads_every_queued_datagram_with_its_source_in_batches() {
        let (rx, tx) = pair().await;
        let to = rx.local_addr().unwrap();
        let from = tx.local_addr().unwrap();
        let total = MAX_BATCH + 5;
        for i in 0..total {
            tx.send_to(&[i as u8; 100][..(i % 100) + 1], to)
                .await
                .unwrap();
        }
        let mut batch = RecvBatch::new();
        let mut got = Vec::new();
        while got.len() < total {
            rx.readable().await.unwrap();
            match batch.recv(&rx) {
                Ok(n) => {
                    assert!(n <= MAX_BATCH);
                    got.extend(batch.iter().map(|d| {
                        let (bytes, source) = d.expect("a whole datagram");
                        assert_eq!(source, from);
                        bytes.to_vec()
                    }));
                }
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            }
        }
        for (i, d) in got.iter().enumerate() {
            assert_eq!(d.len(), (i % 100) + 1, "datagram {i} whole");
            assert!(d.iter().all(|&b| b == i as u8), "datagram {i} in order");
        }
        // Nothing left: the next read says so instead of waiting.
        let e = batch.recv(&rx).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(batch.iter().count(), 0);
    }

    #[tokio::test]
    async fn an_oversized_datagram_is_dropped_and_the_next_is_kept() {
        let (rx, tx) = pair().await;
        let to = rx.local_addr().unwrap();
        tx.send_to(&[7u8; DATAGRAM_MAX + 1], to).await.unwrap();
        tx.send_to(&[9u8; 10], to).await.unwrap();
        let mut batch = RecvBatch::new();
        let mut got = Vec::new();
        while got.len() < 2 {
            rx.readable().await.unwrap();
            if batch.recv(&rx).is_ok() {
                got.extend(batch.iter().map(|d| d.map(|(b, _)| b.to_vec())));
            }
        }
        assert_eq!(got, vec![None, Some(vec![9u8; 10])]);
    }
}
