//! Load measurement of the relay (not a test): N clients each offering a paced stream through
//! the relay to a UDP echo upstream and back, for a while; prints the relay thread's CPU use
//! and how late datagrams left compared with their scheduled delivery time.
//!
//! ```sh
//! cargo run --release -p kham-relay --example bench -- [--clients 20] [--rate 2mbit]
//!     [--seconds 10] [--payload 1200] [--link-rate 2.5mbit]
//! ```
//!
//! Every client's link: `--link-rate` each way (default 2.5 Mbit/s), 50 ms delay and 5 ms
//! jitter each way, 1 % loss each way, 200 ms queue. The relay runs on its own thread, the
//! echo upstream on another, all the clients' sockets on a third (one mio poll).

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kham_netem::RelayConfig;
use kham_relay::spec::{LinkArgs, TraceCache, parse_rate};
use kham_relay::stats::thread_cpu_time;
use kham_relay::{Options, RelayServer};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

struct Args {
    clients: usize,
    rate: u64,
    seconds: f64,
    payload: usize,
    link_rate: String,
}

fn args() -> Result<Args> {
    let mut a = Args {
        clients: 20,
        rate: 2_000_000,
        seconds: 10.0,
        payload: 1200,
        link_rate: "2.5mbit".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--clients" => a.clients = v.parse()?,
            "--rate" => a.rate = parse_rate(&v)?,
            "--seconds" => a.seconds = v.parse()?,
            "--payload" => a.payload = v.parse()?,
            "--link-rate" => a.link_rate = v,
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(a)
}

fn main() -> Result<()> {
    let a = args()?;
    let stop = Arc::new(AtomicBool::new(false));

    // Echo upstream.
    let echo = StdUdpSocket::bind("127.0.0.1:0")?;
    echo.set_read_timeout(Some(Duration::from_millis(50)))?;
    let upstream = echo.local_addr()?;
    let echo_stop = Arc::clone(&stop);
    let echo_thread = thread::Builder::new().name("echo".into()).spawn(move || {
        let cpu0 = thread_cpu_time();
        let t0 = Instant::now();
        let mut buf = vec![0u8; 65_536];
        while !echo_stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = echo.recv_from(&mut buf) {
                let _ = echo.send_to(&buf[..n], from);
            }
        }
        let cpu = thread_cpu_time()
            .zip(cpu0)
            .map(|(b, a)| b.saturating_sub(a));
        cpu.map(|c| 100.0 * c.as_secs_f64() / t0.elapsed().as_secs_f64())
    })?;

    // Relay.
    let link = LinkArgs {
        rate: Some(a.link_rate.clone()),
        uplink_rate: Some(a.link_rate.clone()),
        delay: Some("50ms".into()),
        jitter: Some("5ms".into()),
        loss: Some(0.01),
        queue: Some("200ms".into()),
        ..LinkArgs::default()
    };
    let mut config = RelayConfig::new(link.build(&mut TraceCache::default())?);
    config.seed = 1;
    let server = RelayServer::bind(Options {
        listen: "127.0.0.1:0".parse()?,
        upstream,
        ports: 1,
        upstream_bind: None,
        relay: config,
        duration: None,
        stats_interval: None,
        verbose: false,
    })?;
    let relay_addr = server.local_addr();
    let relay_stop = Arc::clone(&stop);
    let relay_thread = thread::Builder::new()
        .name("relay".into())
        .spawn(move || server.run(&relay_stop))?;

    // Clients.
    let received = load(&a, relay_addr)?;
    stop.store(true, Ordering::Relaxed);
    let report = relay_thread
        .join()
        .map_err(|_| anyhow::anyhow!("relay thread panicked"))??;
    let echo_cpu = echo_thread.join().ok().flatten();

    let l = &report.lateness;
    println!(
        "{} clients x {:.2} Mbit/s offered ({} B payloads) for {:.0} s; link {} each way, 50 ms \
         + 5 ms jitter, 1 % loss",
        a.clients,
        a.rate as f64 / 1e6,
        a.payload,
        a.seconds,
        a.link_rate
    );
    println!(
        "relay thread CPU: {} of one core ({} s CPU over {:.1} s)",
        report
            .cpu_percent
            .map_or("n/a".into(), |p| format!("{p:.1} %")),
        report.cpu_s.map_or("n/a".into(), |c| format!("{c:.2}")),
        report.elapsed_s
    );
    println!(
        "for scale, the echo upstream's thread (one recv and one send per datagram, as the relay \
         does per direction): {} of one core",
        echo_cpu.map_or("n/a".into(), |p| format!("{p:.1} %"))
    );
    println!(
        "lateness over {} datagrams (send time - scheduled delivery): mean {:.0} us, p50 {:.0} \
         us, p90 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.0} us",
        l.count, l.mean_us, l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us
    );
    let (mut up_in, mut up_out, mut down_in, mut down_out, mut qdrop, mut loss) =
        (0, 0, 0, 0, 0, 0);
    for c in &report.clients {
        up_in += c.up.in_packets;
        up_out += c.up.out_packets;
        down_in += c.down.in_packets;
        down_out += c.down.out_packets;
        qdrop += c.up.dropped_queue_packets + c.down.dropped_queue_packets;
        loss += c.up.dropped_loss_packets + c.down.dropped_loss_packets;
    }
    println!(
        "datagrams: up {up_out}/{up_in}, down {down_out}/{down_in} delivered; queue drops {qdrop}, \
         loss {loss}; io errors {:?}; {:?}",
        report.io, report.waits
    );
    let mean_rx = received.iter().sum::<u64>() as f64 * 8.0 / a.seconds / a.clients as f64;
    println!(
        "clients received on average {:.2} Mbit/s of payload each",
        mean_rx / 1e6
    );
    Ok(())
}

/// Drives all clients from one thread; returns payload bytes each received.
fn load(a: &Args, relay: SocketAddr) -> Result<Vec<u64>> {
    let mut poll = Poll::new()?;
    let mut sockets = Vec::new();
    for i in 0..a.clients {
        let mut s = UdpSocket::bind("127.0.0.1:0".parse()?)?;
        s.connect(relay)?;
        poll.registry()
            .register(&mut s, Token(i), Interest::READABLE)?;
        sockets.push(s);
    }
    let interval = Duration::from_secs_f64((a.payload + 28) as f64 * 8.0 / a.rate as f64);
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + Duration::from_secs_f64(a.seconds);
    // Staggered starts so the clients do not send in lockstep.
    let mut next: Vec<Instant> = (0..a.clients)
        .map(|i| start + interval.mul_f64(i as f64 / a.clients as f64))
        .collect();
    let mut received = vec![0u64; a.clients];
    let mut events = Events::with_capacity(64);
    let mut buf = vec![0u8; 65_536];
    let payload = vec![0xabu8; a.payload];
    let drain_until = end + Duration::from_millis(500);
    loop {
        let now = Instant::now();
        if now >= drain_until {
            break;
        }
        for (i, s) in sockets.iter().enumerate() {
            while next[i] <= now && next[i] < end {
                let _ = s.send(&payload);
                next[i] += interval;
            }
        }
        let wake = next
            .iter()
            .copied()
            .filter(|&t| t < end)
            .min()
            .unwrap_or(drain_until);
        poll.poll(&mut events, Some(wake.saturating_duration_since(now)))?;
        for ev in events.iter() {
            let i = ev.token().0;
            while let Ok(n) = sockets[i].recv(&mut buf) {
                if Instant::now() < end {
                    received[i] += n as u64;
                }
            }
        }
    }
    Ok(received)
}
