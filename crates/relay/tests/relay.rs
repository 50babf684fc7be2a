//! The relay on loopback against a UDP echo "upstream": capacity, delay, loss, independent
//! clients, and the binary's report on exit. Bounds are generous (machines are shared) but
//! each would catch a wrong model: a shared bottleneck, a missing delay, loss on the wrong
//! link.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use kham_netem::{ClientSpec, RelayConfig};
use kham_relay::spec::{LinkArgs, TraceCache};
use kham_relay::stats::Report;
use kham_relay::{Options, RelayServer};

const MS: Duration = Duration::from_millis(1);

/// A UDP echo server on loopback until `stop`.
fn echo(stop: Arc<AtomicBool>) -> (SocketAddr, JoinHandle<()>) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind echo");
    s.set_read_timeout(Some(50 * MS)).expect("timeout");
    let addr = s.local_addr().expect("addr");
    let h = thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(&buf[..n], from);
            }
        }
    });
    (addr, h)
}

fn spec(args: LinkArgs) -> ClientSpec {
    args.build(&mut TraceCache::default()).expect("spec")
}

/// Starts an in-process relay; returns its address and the thread that yields the report.
fn relay(
    upstream: SocketAddr,
    config: RelayConfig,
    stop: Arc<AtomicBool>,
) -> (SocketAddr, JoinHandle<Report>) {
    let server = RelayServer::bind(Options {
        listen: "127.0.0.1:0".parse().expect("addr"),
        upstream,
        ports: 1,
        upstream_bind: None,
        relay: config,
        duration: Some(Duration::from_secs(30)),
        stats_interval: None,
        verbose: false,
    })
    .expect("bind relay");
    let addr = server.local_addr();
    let h = thread::spawn(move || server.run(&stop).expect("relay run"));
    (addr, h)
}

/// Sends one datagram and waits for its echo (fixes the client's order of appearance).
fn hello(s: &UdpSocket) {
    s.set_read_timeout(Some(2000 * MS)).expect("timeout");
    s.send(b"hello").expect("send");
    let mut buf = [0u8; 64];
    s.recv(&mut buf).expect("hello echoed through the relay");
}

/// Offers `bps` (payload + 28 bytes per datagram) for `dur`; returns receive instants and
/// sizes of what came back, relative to the start.
fn saturate(s: UdpSocket, bps: f64, payload: usize, dur: Duration) -> Vec<(Duration, usize)> {
    let rx = s.try_clone().expect("clone");
    rx.set_read_timeout(Some(100 * MS)).expect("timeout");
    let start = Instant::now();
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 2048];
        let end = start + dur + Duration::from_millis(500);
        while Instant::now() < end {
            if let Ok(n) = rx.recv(&mut buf) {
                got.push((start.elapsed(), n));
            }
        }
        got
    });
    let interval = Duration::from_secs_f64((payload + 28) as f64 * 8.0 / bps);
    let data = vec![0x5a; payload];
    let mut next = start;
    while next < start + dur {
        let now = Instant::now();
        if now < next {
            thread::sleep(next - now);
        }
        let _ = s.send(&data);
        next += interval;
    }
    reader.join().expect("reader")
}

/// Wire bit/s received in `[from, to)`.
fn rate(got: &[(Duration, usize)], from: Duration, to: Duration) -> f64 {
    let bytes: usize = got
        .iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .map(|(_, n)| n + 28)
        .sum();
    bytes as f64 * 8.0 / (to - from).as_secs_f64()
}

#[test]
fn capacity_delay_loss_and_independent_clients() {
    let stop = Arc::new(AtomicBool::new(false));
    let (upstream, echo_thread) = echo(Arc::clone(&stop));
    // Client 0: 1 Mbit/s down; client 1: 500 kbit/s down; both 25 ms each way. Client 2:
    // unconstrained, 40 ms each way, 10 % loss on the downlink only. Uplinks unconstrained.
    let constrained = |rate: &str| LinkArgs {
        rate: Some(rate.into()),
        delay: Some("25ms".into()),
        queue: Some("100ms".into()),
        ..LinkArgs::default()
    };
    let lossy = LinkArgs {
        delay: Some("40ms".into()),
        loss: Some(0.1),
        uplink_loss: Some(0.0),
        ..LinkArgs::default()
    };
    let mut config = RelayConfig::new(spec(LinkArgs::default()));
    config.specs = vec![
        spec(constrained("1mbit")),
        spec(constrained("500kbit")),
        spec(lossy),
    ];
    config.seed = 7;
    let (addr, relay_thread) = relay(upstream, config, Arc::clone(&stop));

    let sockets: Vec<UdpSocket> = (0..3)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind client");
            s.connect(addr).expect("connect");
            hello(&s);
            s
        })
        .collect();
    let mut sockets = sockets.into_iter();
    let (s0, s1, s2) = (
        sockets.next().expect("s0"),
        sockets.next().expect("s1"),
        sockets.next().expect("s2"),
    );
    let load = Duration::from_millis(2500);
    let t0 = thread::spawn(move || saturate(s0, 3e6, 1000, load));
    let t1 = thread::spawn(move || saturate(s1, 3e6, 1000, load));
    // Client 2: 1000 numbered probes, one every 2 ms; round-trip time of each that returns.
    let t2 = thread::spawn(move || {
        s2.set_read_timeout(Some(MS)).expect("timeout");
        let start = Instant::now();
        let mut sent_at = Vec::new();
        let mut rtts = Vec::new();
        let mut buf = [0u8; 64];
        let n = 1000u32;
        let mut i = 0;
        let mut last = Instant::now();
        // Until 300 ms after the last probe (the echo takes 80 ms).
        while i < n || last.elapsed() < 300 * MS {
            if i < n && start.elapsed() >= Duration::from_millis(2 * u64::from(i)) {
                last = Instant::now();
                sent_at.push(last);
                let mut p = [0u8; 100];
                p[..4].copy_from_slice(&i.to_be_bytes());
                let _ = s2.send(&p);
                i += 1;
            }
            if let Ok(len) = s2.recv(&mut buf)
                && len >= 4
            {
                let k = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                if let Some(t) = sent_at.get(k) {
                    rtts.push(t.elapsed());
                }
            }
        }
        rtts
    });
    let got0 = t0.join().expect("client 0");
    let got1 = t1.join().expect("client 1");
    let mut rtts = t2.join().expect("client 2");
    stop.store(true, Ordering::Relaxed);
    let report = relay_thread.join().expect("relay");
    echo_thread.join().expect("echo");

    // Capacity: once the queue is full, each client gets its own link's rate, not a share of
    // one (3 Mbit/s offered each).
    let window = (Duration::from_millis(700), Duration::from_millis(2500));
    let r0 = rate(&got0, window.0, window.1);
    let r1 = rate(&got1, window.0, window.1);
    assert!((r0 - 1e6).abs() < 0.15e6, "client 0 received {r0:.0} bit/s");
    assert!(
        (r1 - 0.5e6).abs() < 0.075e6,
        "client 1 received {r1:.0} bit/s"
    );

    // Delay: 40 ms each way on an unconstrained link, so the round trip is 80 ms plus the
    // test's own scheduling; never less.
    rtts.sort();
    let median = rtts[rtts.len() / 2];
    assert!(rtts[0] >= 80 * MS, "min rtt {:?}", rtts[0]);
    // The median only bounds scheduling slack: under `cargo test --workspace` on 2 cores it
    // failed once at 84 ms. The relay's precision is measured by its benchmark (`--example
    // bench`, lateness percentiles), not here.
    assert!(median < 100 * MS, "median rtt {median:?}");

    // Loss: 10 % on client 2's downlink (seeded), none on its uplink.
    let received = rtts.len() as f64 / 1000.0;
    assert!((0.86..=0.94).contains(&received), "received {received}");
    eprintln!(
        "received {r0:.0} and {r1:.0} bit/s; rtt min {:?} median {median:?}; {received} of \
         probes back; lateness {:?}",
        rtts[0], report.lateness
    );
    let c2 = &report.clients[2];
    assert_eq!(c2.up.dropped_loss_packets, 0);
    let lost = c2.down.dropped_loss_packets as f64 / c2.down.in_packets as f64;
    assert!((0.07..=0.13).contains(&lost), "down loss {lost}");

    // The relay's own view: three clients in order, queue drops only on the constrained ones.
    assert_eq!(report.clients.len(), 3);
    for (i, c) in report.clients.iter().enumerate() {
        assert_eq!((c.id, c.spec), (i as u64, Some(i)));
    }
    assert!(report.clients[0].down.dropped_queue_packets > 100);
    assert!(report.clients[1].down.dropped_queue_packets > 100);
    assert_eq!(report.clients[2].down.dropped_queue_packets, 0);
    assert_eq!(report.io.send_errors, 0);
    // Precision: the median datagram leaves within a millisecond of its due time.
    assert!(
        report.lateness.p50_us < 1000.0,
        "lateness {:?}",
        report.lateness
    );
}

#[test]
fn binary_refuses_extra_clients_survives_garbage_and_reports_on_sigterm() {
    let stop = Arc::new(AtomicBool::new(false));
    let (upstream, echo_thread) = echo(Arc::clone(&stop));
    // A free port for the relay: bind, note, release.
    let listen = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port");
    let dir = std::env::temp_dir().join(format!("kham-relay-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let json = dir.join("stats.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kham-relay"))
        .args(["--listen", &listen.to_string()])
        .args(["--upstream", &upstream.to_string()])
        .args(["--rate", "2mbit", "--delay", "5ms", "--max-clients", "2"])
        // Only a safety net: SIGTERM below ends it long before.
        .args(["--duration", "60s"])
        .args(["--stats-json", json.to_str().expect("utf-8 path")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kham-relay");
    let clients: Vec<UdpSocket> = (0..3)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .collect();
    // Wait until the relay answers (it echoes through the upstream).
    let deadline = Instant::now() + Duration::from_secs(10);
    clients[0]
        .set_read_timeout(Some(100 * MS))
        .expect("timeout");
    let mut buf = vec![0u8; 65_536];
    loop {
        let _ = clients[0].send_to(b"ping", listen);
        if clients[0].recv(&mut buf).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "relay never answered");
    }
    // Garbage of every size, including empty and the largest datagram.
    let big = vec![0xffu8; 65_507];
    for payload in [&b""[..], &b"\x00\x01\x02"[..], &big[..], &[0x16; 1500][..]] {
        for c in &clients[..2] {
            let _ = c.send_to(payload, listen);
        }
    }
    // The third address is over --max-clients: refused, never answered.
    clients[2]
        .set_read_timeout(Some(300 * MS))
        .expect("timeout");
    clients[2].send_to(b"ping", listen).expect("send");
    assert!(clients[2].recv(&mut buf).is_err(), "third client answered");
    thread::sleep(200 * MS);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    stop.store(true, Ordering::Relaxed);
    echo_thread.join().expect("echo");
    assert!(exit.success(), "{exit:?}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("stats json")).expect("json");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(report["clients"].as_array().map(Vec::len), Some(2));
    assert!(report["relay"]["refused_packets"].as_u64() >= Some(1));
    let c1 = &report["clients"][1];
    assert_eq!(c1["up"]["in_packets"].as_u64(), Some(4));
    // Each datagram came back through the echo: 4 up, 4 down (the 64 kB one fits the
    // 300 ms queue at 2 Mbit/s).
    assert_eq!(c1["down"]["out_packets"].as_u64(), Some(4));
}

/// `n` consecutive free UDP ports on 127.0.0.1 (bound; retried, since another process may take
/// one between probes).
fn consecutive_ports(n: u16) -> Vec<UdpSocket> {
    for _ in 0..100 {
        let first = UdpSocket::bind("127.0.0.1:0").expect("probe");
        let base = first.local_addr().expect("addr").port();
        let mut all = vec![first];
        for i in 1..n {
            match base
                .checked_add(i)
                .and_then(|p| UdpSocket::bind(("127.0.0.1", p)).ok())
            {
                Some(s) => all.push(s),
                None => break,
            }
        }
        if all.len() == usize::from(n) {
            return all;
        }
    }
    panic!("no {n} consecutive free ports");
}

#[test]
fn port_range_maps_port_to_port_with_one_link_per_client() {
    // Upstream: three echo servers on consecutive ports, each prefixing its port offset.
    let stop = Arc::new(AtomicBool::new(false));
    let echoes = consecutive_ports(3);
    let upstream = echoes[0].local_addr().expect("addr");
    let echo_threads: Vec<_> = echoes
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let stop = Arc::clone(&stop);
            s.set_read_timeout(Some(50 * MS)).expect("timeout");
            thread::spawn(move || {
                let mut buf = vec![0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = s.recv_from(&mut buf[1..]) {
                        buf[0] = i as u8;
                        let _ = s.send_to(&buf[..n + 1], from);
                    }
                }
            })
        })
        .collect();
    // Listen range: free ports found the same way, released just before the relay binds them.
    let listen = {
        let probe = consecutive_ports(3);
        probe[0].local_addr().expect("addr")
    };
    let link = LinkArgs {
        delay: Some("10ms".into()),
        ..LinkArgs::default()
    };
    let server = RelayServer::bind(Options {
        listen,
        upstream,
        ports: 3,
        upstream_bind: None,
        relay: RelayConfig::new(spec(link)),
        duration: Some(Duration::from_secs(30)),
        stats_interval: None,
        verbose: false,
    })
    .expect("bind relay range");
    let relay_stop = Arc::clone(&stop);
    let relay_thread = thread::spawn(move || server.run(&relay_stop).expect("relay run"));

    // One client socket talks to all three ports; a second socket is a second client.
    let a = UdpSocket::bind("127.0.0.1:0").expect("client a");
    let b = UdpSocket::bind("127.0.0.1:0").expect("client b");
    for s in [&a, &b] {
        s.set_read_timeout(Some(2000 * MS)).expect("timeout");
    }
    let mut buf = [0u8; 64];
    for round in 0..2u8 {
        for i in 0..3u16 {
            let to = SocketAddr::new(listen.ip(), listen.port() + i);
            a.send_to(&[round, i as u8], to).expect("send");
            let (n, from) = a.recv_from(&mut buf).expect("echo through the range");
            // Echoed by upstream port i, and back from listen port i.
            assert_eq!((&buf[..n], from), (&[i as u8, round, i as u8][..], to));
        }
    }
    let to = SocketAddr::new(listen.ip(), listen.port() + 2);
    b.send_to(b"b", to).expect("send");
    let (n, from) = b.recv_from(&mut buf).expect("echo for b");
    assert_eq!((&buf[..n], from), (&b"\x02b"[..], to));

    stop.store(true, Ordering::Relaxed);
    let report = relay_thread.join().expect("relay thread");
    for t in echo_threads {
        t.join().expect("echo thread");
    }
    // Client a: one link for its six datagrams to three ports; client b its own.
    assert_eq!(report.ports, 3);
    assert_eq!(report.clients.len(), 2);
    assert_eq!(report.clients[0].up.in_packets, 6);
    assert_eq!(report.clients[0].down.out_packets, 6);
    assert_eq!(report.clients[1].up.in_packets, 1);
    assert_eq!(report.io.foreign_datagrams, 0);
}
