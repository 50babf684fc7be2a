//! The link check: did each configuration's media really cross its emulated links?
//!
//! A browser reaches a relay from one address per local interface (eth0, and Janus's veth when
//! Janus runs), and each address is a relay client with its own link. A client the spec file
//! does not cover gets the relay's built-in default, which with `"default": null` is no link at
//! all: the p2p relay once shaped only its first client, and the direct call's subscriber took
//! most of its media over its second, unshaped, address. So after each scenario the benchmark
//! reads, per configuration, the relays' reports (which client got which spec) and the pages'
//! ICE candidate pairs (which local and remote address carried data), and marks the
//! configuration invalid when
//! - a relay client on no link carried any datagram (its link is not the scenario's), or
//! - data reached or left a page on a candidate pair that did not cross one of the
//!   configuration's relays (the media went past the emulated link), or on one that shows no
//!   relay address at either end.
//!
//! Candidate-pair byte counters count DTLS, RTP and RTCP, not STUN, so a check on them is strict
//! without being upset by connectivity checks.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{Value, json};

/// One relay of a configuration, as the driver reports it (`relay.mjs` `info`).
#[derive(Debug, Clone, PartialEq)]
pub struct RelayInfo {
    pub name: String,
    /// The relay's JSON report (written when it stops).
    pub stats: String,
    /// Its client spec file.
    pub spec: String,
    /// The IP it listens on.
    pub ip: String,
}

/// One client of a relay, from its report and spec file.
#[derive(Debug, Clone, PartialEq)]
struct Client {
    addr: String,
    /// Its spec: an entry of the file, or the file's default when not null.
    shaped: bool,
    /// Bytes into its uplink and downlink (what it carried, before the link's drops).
    bytes: u64,
}

/// Bytes of one page's data, by the path they took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathBytes {
    /// Through one of the configuration's relays.
    pub relayed: u64,
    /// On a pair whose remote address is none of the configuration's relays.
    pub past_relay: u64,
    /// Neither end tells (a hidden remote and a local address that is no relay's).
    pub unattributed: u64,
}

impl PathBytes {
    fn json(self) -> Value {
        json!({"relayed": self.relayed, "past_relay": self.past_relay, "unattributed": self.unattributed})
    }
}

/// The verdict for one configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkCheck {
    pub valid: bool,
    /// Why not (empty when valid).
    pub problems: Vec<String>,
    /// What the subscriber page received, by path.
    pub subscriber: PathBytes,
    /// What the publisher page sent, by path.
    pub publisher: PathBytes,
    /// Relay clients on no link, and the bytes they carried.
    pub unshaped_clients: u64,
    pub unshaped_client_bytes: u64,
    /// Per relay: clients, which were shaped, bytes.
    pub relays: Vec<Value>,
}

impl LinkCheck {
    pub fn json(&self) -> Value {
        json!({
            "valid": self.valid,
            "problems": self.problems,
            "subscriber_received_bytes": self.subscriber.json(),
            "publisher_sent_bytes": self.publisher.json(),
            "unshaped_clients": self.unshaped_clients,
            "unshaped_client_bytes": self.unshaped_client_bytes,
            "relays": self.relays,
        })
    }
}

/// The relays listed in the driver's `links` line.
pub fn relay_infos(links: &Value) -> Vec<RelayInfo> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    links
        .get("relays")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|r| RelayInfo {
                    name: s(r, "name"),
                    stats: s(r, "stats"),
                    spec: s(r, "spec"),
                    ip: s(r, "ip"),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn read_json(path: &str) -> Result<Value, String> {
    let text = std::fs::read_to_string(Path::new(path)).map_err(|e| format!("{path}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
}

/// The clients of one relay with their shaping, from its report and its spec file.
fn clients(report: &Value, spec: &Value) -> Vec<Client> {
    let entries = spec
        .get("clients")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let default_shaped = spec.get("default").is_some_and(|d| !d.is_null());
    let u = |c: &Value, p: &str| c.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    report
        .get("clients")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|c| {
                    let shaped = match c.get("spec").and_then(Value::as_u64) {
                        Some(i) => usize::try_from(i).is_ok_and(|i| i < entries),
                        None => default_shaped,
                    };
                    Client {
                        addr: c
                            .get("addr")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        shaped,
                        bytes: u(c, "/up/in_bytes") + u(c, "/down/in_bytes"),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The IP of `ip:port` (IPv6 in brackets or bare, as Chromium writes it).
fn ip_of(addr: &str) -> Option<String> {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return Some(sa.ip().to_string());
    }
    let (ip, port) = addr.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    Some(ip.trim_matches(['[', ']']).to_owned())
}

/// Sorts one page's pairs by path. A pair crossed a relay when its remote address is one of the
/// relays' IPs; when Chromium hides the remote (a peer-reflexive one: the p2p publisher learns
/// its peer that way), its local address tells instead: through a relay, the local candidate of
/// the working pair is the peer-reflexive address the other side saw, which is the relay's.
fn classify(pairs: &[Value], relay_ips: &[String], bytes: &str) -> PathBytes {
    let mut out = PathBytes::default();
    let ip = |p: &Value, k: &str| p.get(k).and_then(Value::as_str).and_then(ip_of);
    for p in pairs {
        let n = p.get(bytes).and_then(Value::as_u64).unwrap_or(0);
        match (ip(p, "remote"), ip(p, "local")) {
            (Some(r), _) if relay_ips.contains(&r) => out.relayed += n,
            (Some(_), _) => out.past_relay += n,
            (None, Some(l)) if relay_ips.contains(&l) => out.relayed += n,
            (None, _) => out.unattributed += n,
        }
    }
    out
}

/// Checks one configuration from its `links` line (relays, and the pages' candidate pairs).
pub fn check(links: &Value) -> LinkCheck {
    let mut c = LinkCheck {
        valid: true,
        ..LinkCheck::default()
    };
    let infos = relay_infos(links);
    if infos.is_empty() {
        c.problems.push("no relay reported".into());
    }
    for r in &infos {
        let (report, spec) = match (read_json(&r.stats), read_json(&r.spec)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                c.problems.push(format!("relay {}: {e}", r.name));
                continue;
            }
        };
        let list = clients(&report, &spec);
        for cl in list.iter().filter(|cl| !cl.shaped && cl.bytes > 0) {
            c.unshaped_clients += 1;
            c.unshaped_client_bytes += cl.bytes;
            c.problems.push(format!(
                "relay {}: client {} is on no link and carried {} kB",
                r.name,
                cl.addr,
                cl.bytes / 1000
            ));
        }
        c.relays.push(json!({
            "name": r.name,
            "ip": r.ip,
            "clients": list.iter().map(|cl| json!({"addr": cl.addr, "shaped": cl.shaped, "bytes": cl.bytes})).collect::<Vec<_>>(),
        }));
    }
    let pairs = |side: &str| {
        links
            .pointer(&format!("/pages/{side}"))
            .and_then(Value::as_array)
            .cloned()
    };
    let ips: Vec<String> = infos.iter().map(|r| r.ip.clone()).collect();
    match pairs("subscriber") {
        Some(p) => c.subscriber = classify(&p, &ips, "bytes_received"),
        None => c
            .problems
            .push("the subscriber page's candidate pairs were not read".into()),
    }
    match pairs("publisher") {
        Some(p) => c.publisher = classify(&p, &ips, "bytes_sent"),
        None => c
            .problems
            .push("the publisher page's candidate pairs were not read".into()),
    }
    for (side, b) in [("subscriber", c.subscriber), ("publisher", c.publisher)] {
        if b.past_relay > 0 {
            c.problems.push(format!(
                "{side} page: {} kB of media on a path past the relays",
                b.past_relay / 1000
            ));
        }
        if b.unattributed > 0 {
            c.problems.push(format!(
                "{side} page: {} kB of media on a path that shows no relay address",
                b.unattributed / 1000
            ));
        }
    }
    if c.subscriber.relayed == 0 {
        c.problems
            .push("the subscriber page received nothing through a relay".into());
    }
    c.valid = c.problems.is_empty();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, v: &Value) -> String {
        let p = dir.join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p.to_string_lossy().into_owned()
    }

    fn relay_report(clients: &[(&str, Option<u64>, u64)]) -> Value {
        json!({"clients": clients.iter().map(|(addr, spec, bytes)| json!({
            "addr": addr, "spec": spec, "up": {"in_bytes": bytes / 100}, "down": {"in_bytes": bytes}
        })).collect::<Vec<_>>()})
    }

    /// A p2p configuration as a run reports it: one relay at 127.0.0.11, the subscriber
    /// reaching it from eth0 (client 0, media) and from Janus's veth (client 1, a few checks);
    /// the pages' working pairs as Chromium shows them (peer-reflexive local addresses, the
    /// publisher's remote hidden).
    fn links(dir: &Path, default: Value, second_bytes: u64, sub_pairs: Value) -> Value {
        let stats = write(
            dir,
            "r.json",
            &relay_report(&[
                ("192.0.2.2:60775", Some(0), 500_000),
                ("10.77.0.1:47307", None, second_bytes),
            ]),
        );
        let spec = write(
            dir,
            "r.spec.json",
            &json!({"clients": [{"rate": "1mbit"}], "default": default}),
        );
        json!({
            "relays": [{"name": "p2p", "stats": stats, "spec": spec, "ip": "127.0.0.11"}],
            "pages": {
                "subscriber": sub_pairs,
                "publisher": [{"local": "127.0.0.11:54883", "remote": null, "bytes_sent": 538_857, "bytes_received": 32_094}],
            },
        })
    }

    fn relayed_pair() -> Value {
        json!([{"local": "127.0.0.11:51740", "remote": "127.0.0.11:54883", "bytes_sent": 32_132, "bytes_received": 466_083}])
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("kham-links-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn every_client_shaped_is_valid() {
        let d = tmp("ok");
        let c = check(&links(&d, json!({"rate": "1mbit"}), 1_000, relayed_pair()));
        assert!(c.valid, "{c:?}");
        assert_eq!(c.subscriber.relayed, 466_083);
        assert_eq!(c.publisher.relayed, 538_857);
        assert_eq!(c.unshaped_clients, 0);
        assert_eq!(c.relays[0]["clients"][1]["shaped"], json!(true));
    }

    #[test]
    fn the_old_bypass_is_invalid() {
        // `"default": null`: the veth client is on no link; it carried media.
        let d = tmp("bypass");
        let c = check(&links(&d, Value::Null, 4_800_000, relayed_pair()));
        assert!(!c.valid);
        assert_eq!(c.unshaped_clients, 1);
        assert_eq!(c.unshaped_client_bytes, 4_800_000 + 48_000);
        assert!(
            c.problems.iter().any(|p| p.contains("10.77.0.1:47307")),
            "{:?}",
            c.problems
        );
    }

    #[test]
    fn an_idle_unshaped_client_is_fine_but_media_past_the_relay_is_not() {
        let d = tmp("past");
        let pairs = json!([
            {"local": "127.0.0.11:51740", "remote": "127.0.0.11:54883", "bytes_sent": 10, "bytes_received": 400_000},
            {"local": "10.77.0.1:5001", "remote": "10.77.0.2:20001", "bytes_sent": 0, "bytes_received": 5_000},
            {"local": "192.0.2.2:5002", "remote": null, "bytes_sent": 0, "bytes_received": 7_000},
        ]);
        let c = check(&links(&d, Value::Null, 0, pairs));
        assert_eq!(c.unshaped_clients, 0);
        assert_eq!(c.subscriber.past_relay, 5_000);
        assert_eq!(c.subscriber.unattributed, 7_000);
        assert_eq!(c.problems.len(), 2, "{:?}", c.problems);
        assert!(!c.valid);
    }

    #[test]
    fn missing_pages_or_reports_are_invalid() {
        let c = check(
            &json!({"relays": [{"name": "x", "stats": "/nonexistent/r.json", "spec": "/nonexistent/s.json", "ip": "127.0.0.1"}]}),
        );
        assert!(!c.valid);
        assert!(c.problems.len() >= 3, "{:?}", c.problems);
    }

    #[test]
    fn addresses() {
        assert_eq!(ip_of("127.0.0.13:7000").as_deref(), Some("127.0.0.13"));
        assert_eq!(ip_of("[fd00::2]:7000").as_deref(), Some("fd00::2"));
        assert_eq!(ip_of("fd00::2:7000").as_deref(), Some("fd00::2"));
        assert_eq!(ip_of("nonsense"), None);
    }
}
