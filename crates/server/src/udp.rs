//! The media sockets' kernel side: receive and send buffer sizes (`media.udp_recv_buffer`,
//! `media.udp_send_buffer`) and the datagrams the kernel dropped because a socket's receive
//! buffer was full, which the shards never see (the `drops` column of `/proc/net/udp{,6}`).
//!
//! Under a flood the default receive buffer (about 200 KiB on Linux) overflows in milliseconds
//! and real media is dropped with the junk; a few MiB let a shard catch up after a burst.

use std::net::UdpSocket;

use socket2::SockRef;

/// Buffer sizes asked for and granted, in bytes. 0 asked: the system default was kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Buffers {
    pub recv_requested: usize,
    pub recv_granted: usize,
    pub send_requested: usize,
    pub send_granted: usize,
}

/// Linux doubles a requested buffer size for its bookkeeping and reports the doubled value:
/// halved here so the figure compares with what was asked.
fn reported_to_granted(reported: usize) -> usize {
    if cfg!(target_os = "linux") {
        reported / 2
    } else {
        reported
    }
}

/// Sets the buffer sizes (0 leaves one alone) and reads back what the kernel granted. Linux caps
/// them at `net.core.rmem_max` and `net.core.wmem_max` (README: "UDP buffers"); a smaller grant is
/// logged as a warning, not an error: the server works, with less room for bursts.
pub fn set_buffers(socket: &UdpSocket, recv: usize, send: usize) -> std::io::Result<Buffers> {
    let s = SockRef::from(socket);
    if recv > 0 {
        s.set_recv_buffer_size(recv)?;
    }
    if send > 0 {
        s.set_send_buffer_size(send)?;
    }
    Ok(Buffers {
        recv_requested: recv,
        recv_granted: reported_to_granted(s.recv_buffer_size()?),
        send_requested: send,
        send_granted: reported_to_granted(s.send_buffer_size()?),
    })
}

/// The inode of a socket, which names it in `/proc/net/udp`. `None` off Linux.
pub fn socket_inode(socket: &UdpSocket) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
        let link = link.to_str()?;
        link.strip_prefix("socket:[")?
            .strip_suffix(']')?
            .parse()
            .ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        None
    }
}

/// The sum of the `drops` column of the sockets in `inodes`, from the text of `/proc/net/udp`
/// and `/proc/net/udp6`. `None` if one of the sockets is not listed (the figure would be short).
pub fn drops_in(tables: &[&str], inodes: &[u64]) -> Option<u64> {
    let mut found = vec![None; inodes.len()];
    for line in tables.iter().flat_map(|t| t.lines().skip(1)) {
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(inode), Some(drops)) = (cols.get(9), cols.get(12)) else {
            continue;
        };
        let Ok(inode) = inode.parse::<u64>() else {
            continue;
        };
        if let Some(i) = inodes.iter().position(|n| *n == inode) {
            found[i] = drops.parse::<u64>().ok();
        }
    }
    found.into_iter().sum()
}

/// Reads the kernel's drop count of the media sockets. `None` when unknown (not Linux, no
/// `/proc`, a socket not found): absent from `/metrics`, never a made-up zero.
pub async fn kernel_drops(inodes: &[u64]) -> Option<u64> {
    if inodes.is_empty() {
        return None;
    }
    // A file read, off the async workers (the table grows with the host's UDP sockets).
    let (v4, v6) = tokio::task::spawn_blocking(|| {
        (
            std::fs::read_to_string("/proc/net/udp"),
            std::fs::read_to_string("/proc/net/udp6"),
        )
    })
    .await
    .ok()?;
    drops_in(&[&v4.ok()?, &v6.unwrap_or_default()], inodes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  591: 0100007F:1EC2 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17
  592: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 999 2 0000000000000000 5
";
    const UDP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  12: 00000000000000000000000000000000:1EC3 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4343 2 0000000000000000 3
";

    #[test]
    fn drops_are_summed_for_our_sockets_only() {
        assert_eq!(drops_in(&[UDP, UDP6], &[4242, 4343]), Some(20));
        assert_eq!(drops_in(&[UDP, UDP6], &[4242]), Some(17));
        assert_eq!(
            drops_in(&[UDP, UDP6], &[4242, 7]),
            None,
            "a socket not listed: unknown, not a partial sum"
        );
        assert_eq!(drops_in(&["garbage\nnot a table at all"], &[1]), None);
    }

    #[test]
    fn buffers_are_applied_and_read_back() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Small enough for any kernel limit.
        let b = set_buffers(&s, 96 * 1024, 48 * 1024).unwrap();
        assert_eq!(b.recv_requested, 96 * 1024);
        assert_eq!(b.recv_granted, 96 * 1024, "{b:?}");
        assert_eq!(b.send_granted, 48 * 1024, "{b:?}");
        let untouched = set_buffers(&s, 0, 0).unwrap();
        assert_eq!(untouched.recv_granted, b.recv_granted);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn our_socket_is_found_in_proc() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let inode = socket_inode(&s).unwrap();
        assert_eq!(kernel_drops(&[inode]).await, Some(0));
        assert_eq!(kernel_drops(&[]).await, None);
    }
}
