//! Trace file formats: Mahimahi, OpenNetLab JSON, Norway HSDPA and Belgium 4G logs.

use std::time::Duration;

use serde_json::Value;

use crate::trace::{MAX_BPS, MAX_PERIOD_NS, NS_PER_SEC, RawStep, SegmentParams, Trace};

/// Why a trace text was refused. Line numbers count from 1.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TraceError {
    /// Nothing but whitespace and comments.
    #[error("the trace is empty")]
    Empty,
    /// The first data line matches no known format.
    #[error(
        "line {line}: unknown trace format (expected Mahimahi, OpenNetLab JSON, Norway HSDPA or Belgium 4G)"
    )]
    UnknownFormat {
        /// The line.
        line: usize,
    },
    /// A line or the JSON document cannot be read.
    #[error("line {line}: {message}")]
    Syntax {
        /// The line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A number is negative, not finite, or out of range.
    #[error("{location}: invalid {field} {value}")]
    InvalidValue {
        /// `line N` or `trace_pattern[N]`.
        location: String,
        /// Which quantity.
        field: &'static str,
        /// The value as read.
        value: String,
    },
    /// A time goes backwards.
    #[error("line {line}: time goes backwards")]
    NotMonotonic {
        /// The line.
        line: usize,
    },
    /// No usable `trace_pattern` in the OpenNetLab document (for the requested direction).
    #[error("no non-empty trace_pattern for {direction}")]
    MissingPattern {
        /// `uplink`, `downlink` or `uplink or downlink`.
        direction: &'static str,
    },
    /// The trace lasts no time (for example a Mahimahi file whose last value is 0).
    #[error("the trace lasts no time")]
    ZeroDuration,
}

/// Which direction of an OpenNetLab document to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The `uplink` pattern.
    Uplink,
    /// The `downlink` pattern.
    Downlink,
}

impl Trace {
    /// Reads a trace, detecting the format from the content:
    ///
    /// - **OpenNetLab** JSON (text starts with `{`):
    ///   `{"uplink":{"trace_pattern":[{"duration":ms,"capacity":kbps,"loss":0..1,"rtt":ms,"jitter":ms}]}}`,
    ///   loss, rtt and jitter optional. The `uplink` pattern is used when non-empty, else the
    ///   `downlink` one (the files carry an empty `"downlink": {}`); see [`Trace::parse_direction`].
    /// - **Mahimahi**: one integer per line, the millisecond of a 1500-byte delivery opportunity
    ///   (repeated values: several); non-decreasing; the period is the last value.
    /// - **Norway HSDPA**: `seconds_since_start throughput_Mbit` per line. Each line's rate holds
    ///   over the interval since the previous line (the logs count bytes since the previous
    ///   sample; this is also how Pensieve replays these files), so gaps in the log stretch the
    ///   next sample. The first line lasts the median line interval (1 s in these files).
    /// - **Belgium 4G**: six columns `epoch_ms ms_since_start lat lon bytes ms_since_previous`;
    ///   each line's rate `bytes * 8 / ms_since_previous` holds over the `ms_since_previous`
    ///   before it.
    ///
    /// Blank lines and lines starting with `#` are skipped in the line formats.
    pub fn parse(text: &str) -> Result<Trace, TraceError> {
        parse(text, None)
    }

    /// Like [`Trace::parse`], but reads the given direction of an OpenNetLab document (an error
    /// if that direction has no pattern). The line formats hold one direction per file and are
    /// read as by `parse`.
    pub fn parse_direction(text: &str, direction: Direction) -> Result<Trace, TraceError> {
        parse(text, Some(direction))
    }
}

fn parse(text: &str, direction: Option<Direction>) -> Result<Trace, TraceError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('{') {
        return parse_opennetlab(text, direction);
    }
    let mut lines = data_lines(text).peekable();
    let Some(&(line, first)) = lines.peek() else {
        return Err(TraceError::Empty);
    };
    match first.split_whitespace().count() {
        1 => parse_mahimahi(lines),
        2 => parse_norway(lines),
        6 => parse_belgium(lines),
        _ => Err(TraceError::UnknownFormat { line }),
    }
}

/// Non-blank, non-comment lines with their 1-based numbers.
fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

fn columns(line: usize, text: &str, n: usize) -> Result<Vec<&str>, TraceError> {
    let cols: Vec<&str> = text.split_whitespace().collect();
    if cols.len() != n {
        return Err(TraceError::Syntax {
            line,
            message: format!("expected {n} columns, found {}", cols.len()),
        });
    }
    Ok(cols)
}

/// A finite, non-negative number.
fn number(line: usize, field: &'static str, s: &str) -> Result<f64, TraceError> {
    let v: f64 = s.parse().map_err(|_| TraceError::Syntax {
        line,
        message: format!("{field} is not a number: {s:?}"),
    })?;
    if !v.is_finite() || v < 0.0 {
        return Err(invalid(format!("line {line}"), field, s));
    }
    Ok(v)
}

fn invalid(location: String, field: &'static str, value: impl ToString) -> TraceError {
    TraceError::InvalidValue {
        location,
        field,
        value: value.to_string(),
    }
}

/// Seconds (finite, non-negative) to nanoseconds, if within the longest trace.
fn secs_to_ns(s: f64) -> Option<u64> {
    let ns = (s * NS_PER_SEC as f64).round();
    (ns <= MAX_PERIOD_NS as f64).then_some(ns as u64)
}

/// bit/s (finite, non-negative) to an integer rate, if within the highest rate.
fn to_bps(bps: f64) -> Option<u64> {
    let r = bps.round();
    (r <= MAX_BPS as f64).then_some(r as u64)
}

fn parse_mahimahi<'a>(lines: impl Iterator<Item = (usize, &'a str)>) -> Result<Trace, TraceError> {
    let max_ms = MAX_PERIOD_NS / 1_000_000;
    let mut times = Vec::new();
    for (line, text) in lines {
        let cols = columns(line, text, 1)?;
        let ms: u64 = cols[0].parse().map_err(|_| {
            if cols[0].starts_with('-') || cols[0].parse::<f64>().is_ok() {
                invalid(format!("line {line}"), "millisecond", cols[0])
            } else {
                TraceError::Syntax {
                    line,
                    message: format!("not an integer millisecond: {:?}", cols[0]),
                }
            }
        })?;
        if ms > max_ms {
            return Err(invalid(format!("line {line}"), "millisecond", ms));
        }
        if times.last().is_some_and(|&prev| ms < prev) {
            return Err(TraceError::NotMonotonic { line });
        }
        times.push(ms);
    }
    Trace::from_opportunities(times).ok_or(TraceError::ZeroDuration)
}

/// Samples `(line, time_ns, bps)` where each rate holds over the interval ending at its time,
/// turned into steps; the first sample lasts the median interval (1 s with a single sample).
/// A sample at the same time as the one before it holds over no time and is dropped (the
/// Norway files round times to the second, so a few seconds have two lines).
fn backward_hold_steps(samples: &[(usize, u64, u64)]) -> Result<Trace, TraceError> {
    for w in samples.windows(2) {
        if w[1].1 < w[0].1 {
            return Err(TraceError::NotMonotonic { line: w[1].0 });
        }
    }
    let mut gaps: Vec<u64> = samples
        .windows(2)
        .map(|w| w[1].1 - w[0].1)
        .filter(|&g| g > 0)
        .collect();
    gaps.sort_unstable();
    let first = gaps.get(gaps.len() / 2).copied().unwrap_or(NS_PER_SEC);
    let mut prev = None;
    let steps = samples.iter().map(|&(_, t, bps)| {
        let duration_ns = prev.map_or(first, |p| t - p);
        prev = Some(t);
        RawStep {
            duration_ns,
            bps,
            seg: None,
        }
    });
    Trace::from_raw_steps(steps.collect::<Vec<_>>()).ok_or(TraceError::ZeroDuration)
}

fn parse_norway<'a>(lines: impl Iterator<Item = (usize, &'a str)>) -> Result<Trace, TraceError> {
    let mut samples = Vec::new();
    for (line, text) in lines {
        let cols = columns(line, text, 2)?;
        let secs = number(line, "seconds", cols[0])?;
        let mbit = number(line, "throughput", cols[1])?;
        let t =
            secs_to_ns(secs).ok_or_else(|| invalid(format!("line {line}"), "seconds", cols[0]))?;
        let bps = to_bps(mbit * 1e6)
            .ok_or_else(|| invalid(format!("line {line}"), "throughput", cols[1]))?;
        samples.push((line, t, bps));
    }
    backward_hold_steps(&samples)
}

fn parse_belgium<'a>(lines: impl Iterator<Item = (usize, &'a str)>) -> Result<Trace, TraceError> {
    let mut steps = Vec::new();
    for (line, text) in lines {
        let cols = columns(line, text, 6)?;
        // Columns 0, 2 and 3 (epoch, latitude, longitude) are checked as numbers, then unused.
        let _: f64 = cols[0].parse().map_err(|_| TraceError::Syntax {
            line,
            message: format!("epoch is not a number: {:?}", cols[0]),
        })?;
        for c in [cols[2], cols[3]] {
            let v: f64 = c.parse().map_err(|_| TraceError::Syntax {
                line,
                message: format!("coordinate is not a number: {c:?}"),
            })?;
            if !v.is_finite() {
                return Err(invalid(format!("line {line}"), "coordinate", c));
            }
        }
        number(line, "ms since start", cols[1])?;
        let bytes = number(line, "bytes", cols[4])?;
        let ms = number(line, "interval", cols[5])?;
        let duration_ns = secs_to_ns(ms / 1000.0)
            .ok_or_else(|| invalid(format!("line {line}"), "interval", cols[5]))?;
        let bps = if ms > 0.0 {
            to_bps(bytes * 8.0 * 1000.0 / ms)
                .ok_or_else(|| invalid(format!("line {line}"), "bytes", cols[4]))?
        } else {
            0
        };
        steps.push(RawStep {
            duration_ns,
            bps,
            seg: None,
        });
    }
    Trace::from_raw_steps(steps).ok_or(TraceError::ZeroDuration)
}

fn parse_opennetlab(text: &str, direction: Option<Direction>) -> Result<Trace, TraceError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| TraceError::Syntax {
        line: e.line(),
        message: e.to_string(),
    })?;
    let pattern = |key: &str| {
        doc.get(key)
            .and_then(|d| d.get("trace_pattern"))
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
    };
    let (entries, name) = match direction {
        Some(Direction::Uplink) => (pattern("uplink"), "uplink"),
        Some(Direction::Downlink) => (pattern("downlink"), "downlink"),
        None => (
            pattern("uplink").or_else(|| pattern("downlink")),
            "uplink or downlink",
        ),
    };
    let entries = entries.ok_or(TraceError::MissingPattern { direction: name })?;
    let mut steps = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let at = || format!("trace_pattern[{i}]");
        let field = |name: &'static str, required: bool| -> Result<Option<f64>, TraceError> {
            match entry.get(name) {
                None | Some(Value::Null) if !required => Ok(None),
                Some(Value::Number(n)) => match n.as_f64() {
                    Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
                    _ => Err(invalid(at(), name, n)),
                },
                None | Some(Value::Null) => Err(invalid(at(), name, "missing")),
                Some(other) => Err(invalid(at(), name, other)),
            }
        };
        let ms_to_dur = |name: &'static str, v: f64| {
            secs_to_ns(v / 1000.0)
                .map(Duration::from_nanos)
                .ok_or_else(|| invalid(at(), name, v))
        };
        let duration = ms_to_dur("duration", field("duration", true)?.unwrap_or(0.0))?;
        let kbps = field("capacity", true)?.unwrap_or(0.0);
        let bps = to_bps(kbps * 1000.0).ok_or_else(|| invalid(at(), "capacity", kbps))?;
        let loss = match field("loss", false)? {
            Some(p) if p > 1.0 => return Err(invalid(at(), "loss", p)),
            other => other,
        };
        let rtt = field("rtt", false)?
            .map(|v| ms_to_dur("rtt", v))
            .transpose()?;
        let jitter = field("jitter", false)?
            .map(|v| ms_to_dur("jitter", v))
            .transpose()?;
        steps.push(RawStep {
            duration_ns: u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX),
            bps,
            seg: Some(SegmentParams { loss, rtt, jitter }),
        });
    }
    Trace::from_raw_steps(steps).ok_or(TraceError::ZeroDuration)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn detects_mahimahi() {
        let t = Trace::parse("# comment\n0\n0\n\n5\n10\n").expect("parses");
        assert!(t.is_opportunity_based());
        assert_eq!(t.duration(), Duration::from_millis(10));
        assert_eq!(t.mean_bps(), 4 * 12_000 * 100);
    }

    #[test]
    fn detects_norway_backward_hold() {
        // Samples at 0, 1, 3 s: 1 Mbit/s over [-1, 0] (first: median interval = 1 s... here the
        // intervals are 1 and 2 s, median index 1 -> 2 s), 2 Mbit/s over (0, 1], 4 over (1, 3].
        let t = Trace::parse("0.0 1.0\n1.000000 2.0\n3 4\n").expect("parses");
        assert_eq!(t.duration(), 5 * S);
        assert_eq!(t.capacity_bps_at(S), 1_000_000);
        assert_eq!(t.capacity_bps_at(Duration::from_millis(2500)), 2_000_000);
        assert_eq!(t.capacity_bps_at(Duration::from_millis(3500)), 4_000_000);
        assert_eq!(t.mean_bps(), (2_000_000 + 2_000_000 + 8_000_000) / 5);
        let dup = Trace::parse("0 1\n1 2\n1 3\n2 4").expect("parses");
        assert_eq!(dup.duration(), 3 * S);
        assert_eq!(dup.capacity_bps_at(Duration::from_millis(2500)), 4_000_000);
        let one = Trace::parse("0 0.5").expect("parses");
        assert_eq!((one.duration(), one.mean_bps()), (S, 500_000));
    }

    #[test]
    fn detects_belgium() {
        let text = "1453121790686 0 51.03 3.73 125000 1000\n1453121791686 1000 51.03 3.73 0 500\n";
        let t = Trace::parse(text).expect("parses");
        assert_eq!(t.duration(), Duration::from_millis(1500));
        assert_eq!(t.capacity_bps_at(Duration::from_millis(500)), 1_000_000);
        assert_eq!(t.capacity_bps_at(Duration::from_millis(1200)), 0);
    }

    #[test]
    fn opennetlab_fields_and_direction() {
        let text = r#"{"type":"video","downlink":{"trace_pattern":[{"duration":1000,"capacity":100}]},
            "uplink":{"trace_pattern":[{"duration":500,"capacity":1000,"loss":0.1,"rtt":200,"jitter":5},
                                       {"duration":1500.0,"capacity":2.4}]}}"#;
        let up = Trace::parse(text).expect("parses");
        assert_eq!(up.duration(), 2 * S);
        assert_eq!(up.capacity_bps_at(Duration::ZERO), 1_000_000);
        assert_eq!(up.capacity_bps_at(S), 2400);
        let seg = up.segment_at(Duration::from_millis(100)).expect("segment");
        assert_eq!(seg.loss, Some(0.1));
        assert_eq!(seg.rtt, Some(Duration::from_millis(200)));
        assert_eq!(seg.jitter, Some(Duration::from_millis(5)));
        assert_eq!(
            up.segment_at(S),
            Some(SegmentParams {
                loss: None,
                rtt: None,
                jitter: None
            })
        );
        let down = Trace::parse_direction(text, Direction::Downlink).expect("parses");
        assert_eq!(down.mean_bps(), 100_000);
        let only_down =
            r#"{"uplink":{},"downlink":{"trace_pattern":[{"duration":10,"capacity":1}]}}"#;
        assert_eq!(Trace::parse(only_down).expect("parses").mean_bps(), 1000);
        assert_eq!(
            Trace::parse_direction(only_down, Direction::Uplink),
            Err(TraceError::MissingPattern {
                direction: "uplink"
            })
        );
    }

    type Check = fn(&TraceError) -> bool;

    #[test]
    fn typed_errors() {
        let cases: &[(&str, Check)] = &[
            ("", |e| *e == TraceError::Empty),
            ("  \n# x\n", |e| *e == TraceError::Empty),
            ("1 2 3", |e| {
                matches!(e, TraceError::UnknownFormat { line: 1 })
            }),
            ("0\nabc", |e| {
                matches!(e, TraceError::Syntax { line: 2, .. })
            }),
            ("0\n-5", |e| matches!(e, TraceError::InvalidValue { .. })),
            ("0\n1.5", |e| matches!(e, TraceError::InvalidValue { .. })),
            ("5\n3", |e| {
                matches!(e, TraceError::NotMonotonic { line: 2 })
            }),
            ("0\n0", |e| *e == TraceError::ZeroDuration),
            ("0\n99999999999999999999", |e| {
                matches!(e, TraceError::InvalidValue { .. })
            }),
            ("0\n9999999999999999", |e| {
                matches!(e, TraceError::InvalidValue { .. })
            }),
            ("0 1\n1 NaN", |e| {
                matches!(e, TraceError::InvalidValue { .. })
            }),
            ("0 1\n1 -1", |e| {
                matches!(e, TraceError::InvalidValue { .. })
            }),
            ("0 1\n1 inf", |e| {
                matches!(e, TraceError::InvalidValue { .. })
            }),
            ("0 1\n1 1e300", |e| {
                matches!(e, TraceError::InvalidValue { .. })
            }),
            ("1 1\n0 1", |e| {
                matches!(e, TraceError::NotMonotonic { line: 2 })
            }),
            ("0 1\n1", |e| {
                matches!(e, TraceError::Syntax { line: 2, .. })
            }),
            ("{", |e| matches!(e, TraceError::Syntax { .. })),
            ("{}", |e| matches!(e, TraceError::MissingPattern { .. })),
            (r#"{"uplink":{"trace_pattern":[]}}"#, |e| {
                matches!(e, TraceError::MissingPattern { .. })
            }),
            (
                r#"{"uplink":{"trace_pattern":[{"duration":-1,"capacity":1}]}}"#,
                |e| {
                    matches!(
                        e,
                        TraceError::InvalidValue {
                            field: "duration",
                            ..
                        }
                    )
                },
            ),
            (r#"{"uplink":{"trace_pattern":[{"duration":1}]}}"#, |e| {
                matches!(
                    e,
                    TraceError::InvalidValue {
                        field: "capacity",
                        ..
                    }
                )
            }),
            (
                r#"{"uplink":{"trace_pattern":[{"duration":1,"capacity":"x"}]}}"#,
                |e| {
                    matches!(
                        e,
                        TraceError::InvalidValue {
                            field: "capacity",
                            ..
                        }
                    )
                },
            ),
            (
                r#"{"uplink":{"trace_pattern":[{"duration":1,"capacity":1,"loss":2}]}}"#,
                |e| matches!(e, TraceError::InvalidValue { field: "loss", .. }),
            ),
            (
                r#"{"uplink":{"trace_pattern":[{"duration":0,"capacity":1}]}}"#,
                |e| *e == TraceError::ZeroDuration,
            ),
            (
                r#"{"uplink":{"trace_pattern":[{"duration":1e300,"capacity":1}]}}"#,
                |e| {
                    matches!(
                        e,
                        TraceError::InvalidValue {
                            field: "duration",
                            ..
                        }
                    )
                },
            ),
            ("1 0 x 0 0 0", |e| matches!(e, TraceError::Syntax { .. })),
        ];
        for (text, ok) in cases {
            let err = Trace::parse(text).expect_err(text);
            assert!(ok(&err), "{text:?} gave {err:?}");
            assert!(!err.to_string().is_empty());
        }
    }
}
