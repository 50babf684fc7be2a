//! Link options: the command line's and the client spec file's, into `kham-netem` specs.
//!
//! One set of options ([`LinkArgs`]) describes both directions of a client's link. The
//! downlink (relay to client) takes `trace`/`rate`, `delay`, `jitter`, `loss`/`bursty-loss` and
//! `queue`. The uplink (client to relay) is **unconstrained in capacity** unless
//! `uplink-trace`/`uplink-rate` is given, and takes the downlink's delay, jitter, loss and queue
//! unless the matching `uplink-*` option is given (propagation and radio loss hit both ways; a
//! weak access link's uplink rate is a separate choice). No capacity option at all: the
//! downlink is unconstrained too, so the relay only adds delay, jitter and loss.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kham_netem::{ClientSpec, LinkConfig, LossModel, QueueLimit, Trace};
use serde::{Deserialize, Deserializer};

/// Capacity of an "unconstrained" direction: 2^40 bit/s (about 1.1 Tbit/s), so a 1500-byte
/// packet serializes in about 11 ns.
pub const UNCONSTRAINED_BPS: u64 = 1 << 40;

/// Link options, as flags or as one entry of a client spec file (same names without `--`).
/// Each is optional: what is unset takes the value from the level below (file entry <
/// command line < built-in default).
#[derive(Debug, Clone, Default, PartialEq, clap::Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LinkArgs {
    /// Downlink capacity from a trace file (Mahimahi, OpenNetLab JSON, Norway HSDPA, Belgium 4G;
    /// see shared/traces). It loops; offset 0 is the client's first datagram.
    #[arg(long, value_name = "FILE", conflicts_with = "rate")]
    pub trace: Option<PathBuf>,
    /// Downlink fixed capacity, e.g. 2mbit, 500kbit, 64000 (bit/s).
    #[arg(long, value_name = "RATE")]
    #[serde(default, deserialize_with = "string_or_number")]
    pub rate: Option<String>,
    /// Uplink capacity from a trace file (default: unconstrained).
    #[arg(long, value_name = "FILE", conflicts_with = "uplink_rate")]
    pub uplink_trace: Option<PathBuf>,
    /// Uplink fixed capacity (default: unconstrained).
    #[arg(long, value_name = "RATE")]
    #[serde(default, deserialize_with = "string_or_number")]
    pub uplink_rate: Option<String>,
    /// Multiply both traces' capacities by this (bring a recording into another range).
    #[arg(long, value_name = "FACTOR")]
    pub trace_scale: Option<f64>,
    /// One-way propagation delay, each direction, e.g. 75ms (default 0).
    #[arg(long, value_name = "DURATION")]
    #[serde(default, deserialize_with = "string_or_number")]
    pub delay: Option<String>,
    /// Extra delay per packet, uniform in [0, jitter]; never reorders (default 0).
    #[arg(long, value_name = "DURATION")]
    #[serde(default, deserialize_with = "string_or_number")]
    pub jitter: Option<String>,
    /// Random (Bernoulli) loss probability per packet, e.g. 0.03 (default 0).
    #[arg(long, value_name = "P", conflicts_with = "bursty_loss")]
    pub loss: Option<f64>,
    /// Bursty (Gilbert-Elliott) loss, MEAN:BURST (long-run loss, mean burst length in packets,
    /// e.g. 0.03:4) or P_GB:P_BG:LOSS_GOOD:LOSS_BAD.
    #[arg(long, value_name = "MEAN:BURST")]
    #[serde(default, deserialize_with = "string_or_number")]
    pub bursty_loss: Option<String>,
    /// Droptail queue limit in front of the bottleneck: a drain time (100ms) or a size (64kB,
    /// 64KiB, 65536B). Default 300ms.
    #[arg(long, value_name = "LIMIT")]
    #[serde(default, deserialize_with = "string_or_number")]
    pub queue: Option<String>,
    /// Uplink delay (default: --delay).
    #[arg(long, value_name = "DURATION")]
    #[serde(default, deserialize_with = "string_or_number")]
    pub uplink_delay: Option<String>,
    /// Uplink jitter (default: --jitter).
    #[arg(long, value_name = "DURATION")]
    #[serde(default, deserialize_with = "string_or_number")]
    pub uplink_jitter: Option<String>,
    /// Uplink random loss (default: --loss / --bursty-loss).
    #[arg(long, value_name = "P", conflicts_with = "uplink_bursty_loss")]
    pub uplink_loss: Option<f64>,
    /// Uplink bursty loss (default: --loss / --bursty-loss).
    #[arg(long, value_name = "MEAN:BURST")]
    #[serde(default, deserialize_with = "string_or_number")]
    pub uplink_bursty_loss: Option<String>,
    /// Uplink queue limit (default: --queue).
    #[arg(long, value_name = "LIMIT")]
    #[serde(default, deserialize_with = "string_or_number")]
    pub uplink_queue: Option<String>,
}

/// Accepts `"2mbit"` as well as `2000000` in the spec file.
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum V {
        S(String),
        N(serde_json::Number),
    }
    Ok(Option::<V>::deserialize(d)?.map(|v| match v {
        V::S(s) => s,
        V::N(n) => n.to_string(),
    }))
}

impl LinkArgs {
    /// These options with what they leave unset taken from `base`. A capacity given here
    /// (`trace` or `rate`) replaces both of `base`'s; the same for loss and for each uplink pair.
    pub fn over(&self, base: &LinkArgs) -> LinkArgs {
        let pick = |a: &Option<String>, b: &Option<String>| a.clone().or_else(|| b.clone());
        let (trace, rate) = if self.trace.is_some() || self.rate.is_some() {
            (self.trace.clone(), self.rate.clone())
        } else {
            (base.trace.clone(), base.rate.clone())
        };
        let (uplink_trace, uplink_rate) =
            if self.uplink_trace.is_some() || self.uplink_rate.is_some() {
                (self.uplink_trace.clone(), self.uplink_rate.clone())
            } else {
                (base.uplink_trace.clone(), base.uplink_rate.clone())
            };
        let (loss, bursty_loss) = if self.loss.is_some() || self.bursty_loss.is_some() {
            (self.loss, self.bursty_loss.clone())
        } else {
            (base.loss, base.bursty_loss.clone())
        };
        let (uplink_loss, uplink_bursty_loss) =
            if self.uplink_loss.is_some() || self.uplink_bursty_loss.is_some() {
                (self.uplink_loss, self.uplink_bursty_loss.clone())
            } else {
                (base.uplink_loss, base.uplink_bursty_loss.clone())
            };
        LinkArgs {
            trace,
            rate,
            uplink_trace,
            uplink_rate,
            trace_scale: self.trace_scale.or(base.trace_scale),
            delay: pick(&self.delay, &base.delay),
            jitter: pick(&self.jitter, &base.jitter),
            loss,
            bursty_loss,
            queue: pick(&self.queue, &base.queue),
            uplink_delay: pick(&self.uplink_delay, &base.uplink_delay),
            uplink_jitter: pick(&self.uplink_jitter, &base.uplink_jitter),
            uplink_loss,
            uplink_bursty_loss,
            uplink_queue: pick(&self.uplink_queue, &base.uplink_queue),
        }
    }

    /// Builds the spec. Trace files are read through `traces` (read once, shared).
    pub fn build(&self, traces: &mut TraceCache) -> Result<ClientSpec> {
        let scale = match self.trace_scale {
            None => 1.0,
            Some(f) if f.is_finite() && f > 0.0 => f,
            Some(f) => bail!("trace-scale must be a positive number, not {f}"),
        };
        let capacity = |trace: &Option<PathBuf>, rate: &Option<String>, traces: &mut TraceCache| {
            Ok::<_, anyhow::Error>(match (trace, rate) {
                (Some(_), Some(_)) => bail!("give a trace or a rate, not both"),
                (Some(path), None) => {
                    let t = traces.load(path)?;
                    if scale == 1.0 { t } else { t.scaled(scale) }
                }
                (None, Some(r)) => Trace::fixed(parse_rate(r)?),
                (None, None) => Trace::fixed(UNCONSTRAINED_BPS),
            })
        };
        let down_trace = capacity(&self.trace, &self.rate, traces).context("downlink capacity")?;
        let up_trace =
            capacity(&self.uplink_trace, &self.uplink_rate, traces).context("uplink capacity")?;
        let duration = |v: &Option<String>, what: &str| {
            v.as_deref()
                .map_or(Ok(Duration::ZERO), parse_duration)
                .with_context(|| what.to_string())
        };
        let delay = duration(&self.delay, "delay")?;
        let jitter = duration(&self.jitter, "jitter")?;
        let loss = parse_loss(self.loss, self.bursty_loss.as_deref()).context("loss")?;
        let queue = match &self.queue {
            Some(q) => parse_queue(q).context("queue")?,
            None => LinkConfig::DEFAULT_QUEUE,
        };
        let up_delay = match &self.uplink_delay {
            Some(d) => parse_duration(d).context("uplink-delay")?,
            None => delay,
        };
        let up_jitter = match &self.uplink_jitter {
            Some(d) => parse_duration(d).context("uplink-jitter")?,
            None => jitter,
        };
        let up_loss = if self.uplink_loss.is_some() || self.uplink_bursty_loss.is_some() {
            parse_loss(self.uplink_loss, self.uplink_bursty_loss.as_deref())
                .context("uplink loss")?
        } else {
            loss
        };
        let up_queue = match &self.uplink_queue {
            Some(q) => parse_queue(q).context("uplink-queue")?,
            None => queue,
        };
        let link = |trace, delay, jitter, loss, queue| LinkConfig {
            trace,
            delay,
            jitter,
            queue,
            loss,
            seed: 0,
        };
        Ok(ClientSpec {
            up: link(up_trace, up_delay, up_jitter, up_loss, up_queue),
            down: link(down_trace, delay, jitter, loss, queue),
        })
    }
}

/// Trace files read so far (each read and parsed once; traces share their data).
#[derive(Debug, Default)]
pub struct TraceCache {
    traces: HashMap<PathBuf, Trace>,
}

impl TraceCache {
    /// The trace in `path`.
    pub fn load(&mut self, path: &Path) -> Result<Trace> {
        if let Some(t) = self.traces.get(path) {
            return Ok(t.clone());
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading trace {}", path.display()))?;
        let trace =
            Trace::parse(&text).with_context(|| format!("parsing trace {}", path.display()))?;
        self.traces.insert(path.to_path_buf(), trace.clone());
        Ok(trace)
    }
}

/// A client spec file: specs for the first clients in order of appearance, and optionally
/// one for the rest. Entries take unset options from the command line.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    /// Client 0, 1, ... in order of their first datagram.
    #[serde(default)]
    pub clients: Vec<LinkArgs>,
    /// Every later client (default: the command line's options).
    #[serde(default)]
    pub default: Option<LinkArgs>,
}

impl SpecFile {
    /// Reads a spec file (JSON). Relative trace paths in it are relative to its folder.
    pub fn read(path: &Path) -> Result<SpecFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading client spec file {}", path.display()))?;
        let mut file = SpecFile::parse(&text)
            .with_context(|| format!("client spec file {}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new(""));
        for entry in file.clients.iter_mut().chain(file.default.as_mut()) {
            for trace in [&mut entry.trace, &mut entry.uplink_trace]
                .into_iter()
                .flatten()
            {
                if trace.is_relative() {
                    *trace = dir.join(&*trace);
                }
            }
        }
        Ok(file)
    }

    /// Parses a spec file's text.
    pub fn parse(text: &str) -> Result<SpecFile> {
        Ok(serde_json::from_str(text)?)
    }

    /// The per-order specs and the default spec, with the command line `cli` under each entry.
    pub fn build(
        &self,
        cli: &LinkArgs,
        traces: &mut TraceCache,
    ) -> Result<(Vec<ClientSpec>, ClientSpec)> {
        let specs = self
            .clients
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.over(cli)
                    .build(traces)
                    .with_context(|| format!("clients[{i}]"))
            })
            .collect::<Result<Vec<_>>>()?;
        let default = match &self.default {
            Some(d) => d.over(cli).build(traces).context("default")?,
            None => cli.build(traces)?,
        };
        Ok((specs, default))
    }
}

/// Splits `12.5mbit` into (12.5, "mbit").
fn split_number(s: &str) -> Result<(f64, String)> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let num = num.replace('_', "");
    let value: f64 = num
        .parse()
        .with_context(|| format!("{s:?}: expected a number"))?;
    if !value.is_finite() {
        bail!("{s:?}: not a finite number");
    }
    Ok((value, unit.trim().to_string()))
}

/// A rate in bit/s: `2mbit`, `500kbit`, `1.5Mbit/s`, `1gbit`, `64000` or `64000bit`.
/// Byte-based units (`kbps`, which tc reads as kilobytes) are refused to avoid a factor of 8.
pub fn parse_rate(s: &str) -> Result<u64> {
    let (value, unit) = split_number(s)?;
    let unit = unit.to_ascii_lowercase();
    let unit = unit.strip_suffix("/s").unwrap_or(&unit);
    let mult = match unit {
        "" | "bit" | "b" => 1.0,
        "k" | "kbit" => 1e3,
        "m" | "mbit" => 1e6,
        "g" | "gbit" => 1e9,
        "bps" | "kbps" | "mbps" | "gbps" => {
            bail!("{s:?}: ambiguous unit (tc reads kbps as kilobytes/s); write kbit or mbit")
        }
        _ => bail!("{s:?}: unknown rate unit (use bit, kbit, mbit or gbit)"),
    };
    let bps = value * mult;
    if bps < 1.0 {
        bail!("{s:?}: a rate must be at least 1 bit/s");
    }
    Ok(bps.min(UNCONSTRAINED_BPS as f64).round() as u64)
}

/// A duration: `75ms`, `2s`, `1500us`, `1m` (humantime), or a bare number of milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    if let Ok(ms) = t.parse::<f64>() {
        if !(0.0..1e12).contains(&ms) {
            bail!("{s:?}: not a valid duration");
        }
        return Ok(Duration::from_secs_f64(ms / 1000.0));
    }
    humantime::parse_duration(t).with_context(|| format!("{s:?}: not a duration (e.g. 75ms)"))
}

/// An address or a range of consecutive ports on one IP: `127.0.0.9:7882`,
/// `127.0.0.9:20000-20019`, `[::1]:20000-20019`. Returns the first address and the number of
/// ports.
pub fn parse_addr_range(s: &str) -> Result<(SocketAddr, u16)> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok((addr, 1));
    }
    let Some((base, last)) = s.rsplit_once('-') else {
        bail!("{s:?}: not an address (IP:PORT or IP:FIRST-LAST)");
    };
    let addr: SocketAddr = base
        .parse()
        .with_context(|| format!("{s:?}: not an address range (IP:FIRST-LAST)"))?;
    let last: u16 = last
        .parse()
        .with_context(|| format!("{s:?}: not a port after '-'"))?;
    if addr.port() == 0 || last < addr.port() {
        bail!("{s:?}: empty port range");
    }
    Ok((addr, last - addr.port() + 1))
}

/// A queue limit: a drain time (`100ms`) or a size (`64kB`, `64KiB`, `1MB`, `65536B`).
pub fn parse_queue(s: &str) -> Result<QueueLimit> {
    let (value, unit) = split_number(s)?;
    let mult = match unit.as_str() {
        "B" | "b" => 1.0,
        "kB" | "KB" | "k" | "K" => 1e3,
        "KiB" | "kiB" => 1024.0,
        "MB" | "M" => 1e6,
        "MiB" => 1024.0 * 1024.0,
        _ => {
            return Ok(QueueLimit::Time(parse_duration(s).with_context(|| {
                format!("{s:?}: expected a drain time (100ms) or a size (64kB)")
            })?));
        }
    };
    let bytes = value * mult;
    if !(1.0..1e15).contains(&bytes) {
        bail!("{s:?}: queue size out of range");
    }
    Ok(QueueLimit::Bytes(bytes.round() as usize))
}

/// Random loss `p`, or bursty loss `MEAN:BURST` / `P_GB:P_BG:LOSS_GOOD:LOSS_BAD`.
pub fn parse_loss(random: Option<f64>, bursty: Option<&str>) -> Result<LossModel> {
    let prob = |p: f64| {
        if (0.0..=1.0).contains(&p) {
            Ok(p)
        } else {
            bail!("probability {p} not in [0, 1]")
        }
    };
    match (random, bursty) {
        (Some(_), Some(_)) => bail!("give loss or bursty-loss, not both"),
        (None, None) => Ok(LossModel::None),
        (Some(p), None) => Ok(if prob(p)? > 0.0 {
            LossModel::Random { p }
        } else {
            LossModel::None
        }),
        (None, Some(b)) => {
            let v = b
                .split(':')
                .map(|x| x.trim().parse::<f64>())
                .collect::<Result<Vec<f64>, _>>()
                .with_context(|| format!("{b:?}: expected MEAN:BURST or four probabilities"))?;
            match v[..] {
                [mean, burst] => {
                    prob(mean)?;
                    if !(burst.is_finite() && burst >= 1.0) {
                        bail!("{b:?}: mean burst length must be at least 1 packet");
                    }
                    Ok(LossModel::bursty(mean, burst))
                }
                [p_gb, p_bg, lg, lb] => Ok(LossModel::GilbertElliott {
                    p_good_to_bad: prob(p_gb)?,
                    p_bad_to_good: prob(p_bg)?,
                    loss_good: prob(lg)?,
                    loss_bad: prob(lb)?,
                }),
                _ => bail!("{b:?}: expected MEAN:BURST or P_GB:P_BG:LOSS_GOOD:LOSS_BAD"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("2mbit").unwrap(), 2_000_000);
        assert_eq!(parse_rate("1.5Mbit/s").unwrap(), 1_500_000);
        assert_eq!(parse_rate("500kbit").unwrap(), 500_000);
        assert_eq!(parse_rate("64000").unwrap(), 64_000);
        assert_eq!(parse_rate("1_000_000").unwrap(), 1_000_000);
        for bad in [
            "",
            "mbit",
            "2kbps",
            "0",
            "-1mbit",
            "2 furlongs",
            "1e400",
            "NaN",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn address_ranges() {
        let one = parse_addr_range("127.0.0.2:7882").unwrap();
        assert_eq!(one, ("127.0.0.2:7882".parse().unwrap(), 1));
        let range = parse_addr_range("10.77.0.2:20000-20019").unwrap();
        assert_eq!(range, ("10.77.0.2:20000".parse().unwrap(), 20));
        let v6 = parse_addr_range("[::1]:5-5").unwrap();
        assert_eq!(v6, ("[::1]:5".parse().unwrap(), 1));
        for bad in [
            "10.0.0.1:20-10",
            "10.0.0.1:0-3",
            "10.0.0.1",
            "x:1-2",
            "10.0.0.1:1-x",
        ] {
            assert!(parse_addr_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_and_queues() {
        assert_eq!(parse_duration("75ms").unwrap(), Duration::from_millis(75));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("40").unwrap(), Duration::from_millis(40));
        assert!(parse_duration("-5").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            parse_queue("100ms").unwrap(),
            QueueLimit::Time(Duration::from_millis(100))
        );
        assert_eq!(parse_queue("64kB").unwrap(), QueueLimit::Bytes(64_000));
        assert_eq!(parse_queue("64KiB").unwrap(), QueueLimit::Bytes(65_536));
        assert_eq!(parse_queue("1500B").unwrap(), QueueLimit::Bytes(1500));
        assert!(parse_queue("0B").is_err());
        assert!(parse_queue("lots").is_err());
    }

    #[test]
    fn losses() {
        assert_eq!(parse_loss(None, None).unwrap(), LossModel::None);
        assert_eq!(
            parse_loss(Some(0.03), None).unwrap(),
            LossModel::Random { p: 0.03 }
        );
        let b = parse_loss(None, Some("0.05:4")).unwrap();
        assert!((b.mean_loss() - 0.05).abs() < 1e-9);
        assert!(matches!(
            parse_loss(None, Some("0.01:0.3:0:0.8")).unwrap(),
            LossModel::GilbertElliott { .. }
        ));
        for bad in ["0.05", "2:3", "0.1:0.5", "a:b", "0.1:2:3", ""] {
            assert!(parse_loss(None, Some(bad)).is_err(), "{bad}");
        }
        assert!(parse_loss(Some(1.5), None).is_err());
        assert!(parse_loss(Some(f64::NAN), None).is_err());
    }

    #[test]
    fn uplink_defaults_follow_the_downlink_except_capacity() {
        let args = LinkArgs {
            rate: Some("1mbit".into()),
            delay: Some("75ms".into()),
            jitter: Some("5ms".into()),
            loss: Some(0.03),
            queue: Some("64kB".into()),
            ..LinkArgs::default()
        };
        let s = args.build(&mut TraceCache::default()).unwrap();
        assert_eq!(s.down.trace.mean_bps(), 1_000_000);
        assert_eq!(s.up.trace.mean_bps(), UNCONSTRAINED_BPS);
        for l in [&s.up, &s.down] {
            assert_eq!(l.delay, Duration::from_millis(75));
            assert_eq!(l.jitter, Duration::from_millis(5));
            assert_eq!(l.loss, LossModel::Random { p: 0.03 });
            assert_eq!(l.queue, QueueLimit::Bytes(64_000));
        }
        let up = LinkArgs {
            uplink_rate: Some("300kbit".into()),
            uplink_loss: Some(0.0),
            uplink_delay: Some("10ms".into()),
            ..args
        };
        let s = up.build(&mut TraceCache::default()).unwrap();
        assert_eq!(s.up.trace.mean_bps(), 300_000);
        assert_eq!(s.up.loss, LossModel::None);
        assert_eq!(s.up.delay, Duration::from_millis(10));
        assert_eq!(s.down.loss, LossModel::Random { p: 0.03 });
    }

    #[test]
    fn spec_file_entries_overlay_the_command_line() {
        let cli = LinkArgs {
            rate: Some("2mbit".into()),
            delay: Some("50ms".into()),
            loss: Some(0.01),
            ..LinkArgs::default()
        };
        let file = SpecFile::parse(
            r#"{"clients": [{"rate": 500000, "bursty-loss": "0.05:3"}, {}],
                "default": {"delay": "10ms"}}"#,
        )
        .unwrap();
        let (specs, default) = file.build(&cli, &mut TraceCache::default()).unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].down.trace.mean_bps(), 500_000);
        assert_eq!(specs[0].down.delay, Duration::from_millis(50));
        assert!((specs[0].down.loss.mean_loss() - 0.05).abs() < 1e-9);
        assert_eq!(specs[1].down.trace.mean_bps(), 2_000_000);
        assert_eq!(specs[1].down.loss, LossModel::Random { p: 0.01 });
        assert_eq!(default.down.delay, Duration::from_millis(10));
        assert_eq!(default.down.trace.mean_bps(), 2_000_000);
        assert!(SpecFile::parse(r#"{"clients": [{"rat": "1mbit"}]}"#).is_err());
        assert!(SpecFile::parse("[").is_err());
        let bad = SpecFile::parse(r#"{"clients": [{"rate": "fast"}]}"#).unwrap();
        let err = bad.build(&cli, &mut TraceCache::default()).unwrap_err();
        assert!(format!("{err:#}").contains("clients[0]"), "{err:#}");
    }

    #[test]
    fn traces_load_and_scale() {
        let dir = std::env::temp_dir().join(format!("kham-relay-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.txt");
        // Mahimahi: 4 opportunities in 4 ms = 12 Mbit/s.
        std::fs::write(&path, "1\n2\n3\n4\n").unwrap();
        let args = LinkArgs {
            trace: Some(path.clone()),
            trace_scale: Some(0.5),
            ..LinkArgs::default()
        };
        let s = args.build(&mut TraceCache::default()).unwrap();
        assert_eq!(s.down.trace.mean_bps(), 6_000_000);
        let missing = LinkArgs {
            trace: Some(dir.join("missing")),
            ..LinkArgs::default()
        };
        assert!(missing.build(&mut TraceCache::default()).is_err());
        // A spec file's relative trace paths start from its folder.
        let spec = dir.join("spec.json");
        std::fs::write(&spec, r#"{"clients": [{"trace": "t.txt"}]}"#).unwrap();
        let file = SpecFile::read(&spec).unwrap();
        assert_eq!(file.clients[0].trace.as_deref(), Some(path.as_path()));
        let (specs, _) = file
            .build(&LinkArgs::default(), &mut TraceCache::default())
            .unwrap();
        assert_eq!(specs[0].down.trace.mean_bps(), 12_000_000);
        std::fs::write(&path, "garbage here now\n").unwrap();
        assert!(args.build(&mut TraceCache::default()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
