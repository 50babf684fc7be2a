//! The clean-link ramp measurement (`browser-quality --clean`): on loopback with no emulated
//! link, how long each receiving side of a kham call takes from its first frame to 540p and
//! 720p, against a direct browser call measured in the same run, and whether any page shows a
//! "poor" or "lost" quality badge (which a clean link never deserves). The browsers are run by
//! `benches/browser/clean.mjs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::run::Tools;

/// The phases, in the order they run.
pub const PHASES: [&str; 3] = ["kham", "direct", "kham_observer"];
/// Heights whose time is reported (the recorder in `ramp.mjs` notes the same).
pub const HEIGHTS: [u32; 3] = [360, 540, 720];
/// Targets: kham's time to 540p at most the direct call's plus this (seconds), without and
/// with the observer.
pub const TARGET_540_SLACK_S: f64 = 2.0;
pub const TARGET_540_SLACK_OBSERVER_S: f64 = 5.0;
/// Badges a clean link must never show.
const BAD_BADGES: [&str; 2] = ["poor", "lost"];

/// One received video of one page in one phase.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Receiver {
    pub phase: String,
    pub page: String,
    pub from: String,
    /// From the phase's t0 (the joining side's click, or the direct call's first offer).
    pub first_frame_s: Option<f64>,
    /// From the first frame to the start of the first second whose decoded frames were all at
    /// least this tall (`ramp.mjs`); `None`: never.
    pub to_height_s: BTreeMap<u32, Option<f64>>,
    /// Frames decoded per second from the first frame to the end.
    pub fps: f64,
    /// Mean height over the samples with new frames.
    pub mean_height: f64,
}

/// The badges one page showed in one phase.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Badges {
    pub phase: String,
    pub page: String,
    pub samples: usize,
    /// Samples in which some tile showed "poor" or "lost".
    pub bad_samples: usize,
    /// Per tile ("self" or the participant) and quality, how many samples.
    pub seen: BTreeMap<String, BTreeMap<String, usize>>,
    pub first_bad_s: Option<f64>,
    pub last_bad_s: Option<f64>,
}

/// What the kham server reported about one participant over one phase (admin API, each second).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerView {
    pub phase: String,
    pub name: String,
    pub samples: usize,
    /// str0m's send-side estimate towards it.
    pub estimate_kbps_mean: f64,
    pub estimate_kbps_max: f64,
    /// Samples with its video paused (`audio_only`).
    pub paused: usize,
    /// What the server sent it.
    pub kbps_out_mean: f64,
    /// The server's quality verdicts, how many samples each.
    pub quality: BTreeMap<String, usize>,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct CleanResult {
    pub receivers: Vec<Receiver>,
    pub badges: Vec<Badges>,
    pub server: Vec<ServerView>,
    pub errors: Vec<(String, String)>,
    pub loadavg_mean: f64,
    pub cpu_busy_pct_mean: f64,
    /// The raw 500 ms samples, for the JSON.
    pub samples: Vec<Value>,
}

/// Runs the driver for `phases`, `duration_s` each after its t0.
pub fn run(
    tools: &Tools,
    phases: &[String],
    duration_s: u64,
    work: &Path,
) -> Result<CleanResult, String> {
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let spec =
        json!({"phases": phases, "durationS": duration_s, "y4m": tools.y4m, "workDir": work});
    let spec_path = work.join("clean-spec.json");
    std::fs::write(&spec_path, spec.to_string())
        .map_err(|e| format!("{}: {e}", spec_path.display()))?;
    let out = Command::new("node")
        .arg(tools.repo.join("benches/browser/clean.mjs"))
        .arg(&spec_path)
        .env("KHAM_BIN", &tools.kham_bin)
        .current_dir(&tools.repo)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("node clean driver: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::write(work.join("clean.jsonl"), text.as_bytes());
    if !out.status.success() {
        return Err(format!("node clean driver: {}", out.status));
    }
    Ok(parse(&text))
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_owned()
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// One received video in one 500 ms sample: seconds after t0, frames decoded so far, height.
type Point = (f64, f64, f64);

/// Reads the driver's JSON lines into figures (samples keyed by phase, page and sender).
pub fn parse(text: &str) -> CleanResult {
    let mut out = CleanResult::default();
    let (mut load, mut busy) = (Vec::new(), Vec::new());
    let mut series: BTreeMap<(String, String, String), Vec<Point>> = BTreeMap::new();
    let mut ramps = Vec::new();
    for v in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        match v.get("type").and_then(Value::as_str) {
            Some("sample") => {
                let (phase, page) = (s(&v, "phase"), s(&v, "page"));
                let t = v.get("t").and_then(Value::as_f64).unwrap_or(0.0);
                for vid in v
                    .get("videos")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let n = |k: &str| vid.get(k).and_then(Value::as_f64).unwrap_or(0.0);
                    series
                        .entry((phase.clone(), page.clone(), s(vid, "from")))
                        .or_default()
                        .push((t, n("frames"), n("height")));
                }
                note_badges(&mut out.badges, &phase, &page, t, &v);
                out.samples.push(v);
            }
            Some("ramp") => ramps.push(v),
            Some("server") => {
                note_server(&mut out.server, &s(&v, "phase"), &v);
                out.samples.push(v);
            }
            Some("error") => out.errors.push((s(&v, "phase"), s(&v, "message"))),
            Some("load") => {
                load.extend(v.get("loadavg1").and_then(Value::as_f64));
                busy.extend(v.get("cpu_busy_pct").and_then(Value::as_f64));
            }
            _ => {}
        }
    }
    for x in &mut out.server {
        let n = x.samples.max(1) as f64;
        x.estimate_kbps_mean /= n;
        x.kbps_out_mean /= n;
    }
    out.loadavg_mean = mean(&load);
    out.cpu_busy_pct_mean = mean(&busy);
    for r in &ramps {
        let (phase, page) = (s(r, "phase"), s(r, "page"));
        for vid in r
            .get("videos")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let from = s(vid, "from");
            let first = vid.get("first_frame_s").and_then(Value::as_f64);
            let to_height_s = HEIGHTS
                .iter()
                .map(|h| {
                    let at = vid.pointer(&format!("/at_s/{h}")).and_then(Value::as_f64);
                    (*h, at.zip(first).map(|(a, f)| (a - f).max(0.0)))
                })
                .collect();
            let pts = series
                .get(&(phase.clone(), page.clone(), from.clone()))
                .cloned()
                .unwrap_or_default();
            let (fps, mean_height) = rate_and_height(&pts, first);
            out.receivers.push(Receiver {
                phase: phase.clone(),
                page: page.clone(),
                from,
                first_frame_s: first,
                to_height_s,
                fps,
                mean_height,
            });
        }
    }
    out
}

/// Frames per second after the first frame, and the mean height of the samples with new frames.
fn rate_and_height(pts: &[Point], first: Option<f64>) -> (f64, f64) {
    let (Some(first), Some(last)) = (first, pts.last()) else {
        return (0.0, 0.0);
    };
    let fps = if last.0 > first {
        last.1 / (last.0 - first)
    } else {
        0.0
    };
    let heights: Vec<f64> = pts
        .windows(2)
        .filter(|w| w[1].1 > w[0].1)
        .map(|w| w[1].2)
        .collect();
    (fps, mean(&heights))
}

/// Adds one `server` line (sums; `parse` turns them into means).
fn note_server(list: &mut Vec<ServerView>, phase: &str, line: &Value) {
    for p in line
        .get("participants")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = s(p, "name");
        let i = match list.iter().position(|x| x.phase == phase && x.name == name) {
            Some(i) => i,
            None => {
                list.push(ServerView {
                    phase: phase.to_owned(),
                    name,
                    ..ServerView::default()
                });
                list.len() - 1
            }
        };
        let x = &mut list[i];
        let n = |k: &str| p.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        x.samples += 1;
        x.estimate_kbps_mean += n("estimate_kbps");
        x.estimate_kbps_max = x.estimate_kbps_max.max(n("estimate_kbps"));
        x.kbps_out_mean += n("kbps_out");
        x.paused += usize::from(p.get("audio_only").and_then(Value::as_bool) == Some(true));
        let q = p.get("quality").and_then(Value::as_str).unwrap_or("none");
        *x.quality.entry(q.to_owned()).or_default() += 1;
    }
}

fn note_badges(list: &mut Vec<Badges>, phase: &str, page: &str, t: f64, sample: &Value) {
    let tiles = sample.get("badges").and_then(Value::as_array);
    let Some(tiles) = tiles else { return };
    let i = match list.iter().position(|b| b.phase == phase && b.page == page) {
        Some(i) => i,
        None => {
            list.push(Badges {
                phase: phase.to_owned(),
                page: page.to_owned(),
                ..Badges::default()
            });
            list.len() - 1
        }
    };
    let b = &mut list[i];
    b.samples += 1;
    let mut bad = false;
    for tile in tiles {
        let of = if tile.get("self").and_then(Value::as_bool) == Some(true) {
            "self".to_owned()
        } else {
            s(tile, "of")
        };
        let q = tile
            .get("quality")
            .and_then(Value::as_str)
            .unwrap_or("none")
            .to_owned();
        bad |= BAD_BADGES.contains(&q.as_str());
        *b.seen.entry(of).or_default().entry(q).or_default() += 1;
    }
    if bad {
        b.bad_samples += 1;
        b.first_bad_s.get_or_insert(t);
        b.last_bad_s = Some(t);
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "never".into(), |x| format!("{x:.1}"))
}

/// The direct call's time to `height` (mean of its receiving sides), if every side got there.
pub fn direct_to(r: &CleanResult, height: u32) -> Option<f64> {
    let v: Vec<Option<f64>> = r
        .receivers
        .iter()
        .filter(|x| x.phase == "direct")
        .map(|x| x.to_height_s.get(&height).copied().flatten())
        .collect();
    if v.is_empty() || v.iter().any(Option::is_none) {
        return None;
    }
    Some(mean(&v.into_iter().flatten().collect::<Vec<_>>()))
}

/// The targets, one verdict per line.
pub fn targets(r: &CleanResult) -> Vec<String> {
    let mut out = Vec::new();
    let direct = direct_to(r, 540);
    let why_not = if r.receivers.iter().any(|x| x.phase == "direct") {
        "not judged (the direct call did not reach 540p on both sides)"
    } else {
        "not judged (no direct call in this run)"
    };
    for (phase, slack) in [
        ("kham", TARGET_540_SLACK_S),
        ("kham_observer", TARGET_540_SLACK_OBSERVER_S),
    ] {
        for x in r.receivers.iter().filter(|x| x.phase == phase) {
            let got = x.to_height_s.get(&540).copied().flatten();
            let verdict = match (got, direct) {
                (_, None) => why_not.to_owned(),
                (None, Some(d)) => format!("NOT met (never; bound {:.1} s)", d + slack),
                (Some(g), Some(d)) if g <= d + slack => {
                    format!("met ({g:.1} s <= {:.1} s)", d + slack)
                }
                (Some(g), Some(d)) => format!("NOT met ({g:.1} s > {:.1} s)", d + slack),
            };
            out.push(format!(
                "{phase}: {} <- {}: 540p within the direct call's + {slack:.0} s: {verdict}",
                x.page, x.from
            ));
        }
    }
    for b in r.badges.iter().filter(|b| b.phase.starts_with("kham")) {
        let verdict = if b.bad_samples == 0 {
            "met".to_owned()
        } else {
            format!(
                "NOT met (poor/lost in {} of {} samples, {}-{} s)",
                b.bad_samples,
                b.samples,
                opt(b.first_bad_s),
                opt(b.last_bad_s)
            )
        };
        out.push(format!(
            "{}: {} page: no poor or lost badge: {verdict}",
            b.phase, b.page
        ));
    }
    out
}

/// The markdown report: the ramp table, the badges, the targets.
pub fn markdown(r: &CleanResult) -> String {
    let mut md = format!(
        "### clean link (loopback, no emulated link)\n\nMachine: load average {:.2}, CPU busy {:.0} % (2 cores shared by everything).\n\n",
        r.loadavg_mean, r.cpu_busy_pct_mean
    );
    md.push_str("| phase | receiver <- sender | first frame s | to 360p s | to 540p s | to 720p s | fps | mean height |\n|---|---|---:|---:|---:|---:|---:|---:|\n");
    for x in &r.receivers {
        let to = |h: u32| opt(x.to_height_s.get(&h).copied().flatten());
        let _ = writeln!(
            md,
            "| {} | {} <- {} | {} | {} | {} | {} | {:.1} | {:.0} |",
            x.phase,
            x.page,
            x.from,
            opt(x.first_frame_s),
            to(360),
            to(540),
            to(720),
            x.fps,
            x.mean_height
        );
    }
    md.push_str("\nBadges (samples every 500 ms; tile: quality x samples):\n\n");
    for b in &r.badges {
        let seen: Vec<String> = b
            .seen
            .iter()
            .map(|(of, qs)| {
                let q: Vec<String> = qs.iter().map(|(q, n)| format!("{q} x{n}")).collect();
                format!("{of}: {}", q.join(", "))
            })
            .collect();
        let _ = writeln!(
            md,
            "- {} / {}: {}{}",
            b.phase,
            b.page,
            seen.join("; "),
            if b.bad_samples > 0 {
                format!(
                    " -- **poor/lost in {} of {} samples ({}-{} s)**",
                    b.bad_samples,
                    b.samples,
                    opt(b.first_bad_s),
                    opt(b.last_bad_s)
                )
            } else {
                String::new()
            }
        );
    }
    for (phase, msg) in &r.errors {
        let _ = writeln!(md, "- {phase}: {}", msg.lines().next().unwrap_or(""));
    }
    if !r.server.is_empty() {
        md.push_str("\nThe kham server's view (admin API, each second): estimate towards the participant, what it was sent, video paused, quality verdicts:\n\n| phase | participant | estimate kbit/s mean / max | sent kbit/s mean | video paused s | quality |\n|---|---|---:|---:|---:|---|\n");
        for x in &r.server {
            let q: Vec<String> = x.quality.iter().map(|(q, n)| format!("{q} x{n}")).collect();
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} / {:.0} | {:.0} | {} | {} |",
                x.phase,
                x.name,
                x.estimate_kbps_mean,
                x.estimate_kbps_max,
                x.kbps_out_mean,
                x.paused,
                q.join(", ")
            );
        }
    }
    md.push_str("\nTargets:\n\n");
    for t in targets(r) {
        let _ = writeln!(md, "- {t}");
    }
    md
}

/// The JSON report.
pub fn json(r: &CleanResult) -> Value {
    let receivers: Vec<Value> = r
        .receivers
        .iter()
        .map(|x| {
            json!({
                "phase": x.phase, "page": x.page, "from": x.from,
                "first_frame_s": x.first_frame_s,
                "to_height_s": x.to_height_s.iter().map(|(h, v)| (h.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "fps": x.fps, "mean_height": x.mean_height,
            })
        })
        .collect();
    let badges: Vec<Value> = r
        .badges
        .iter()
        .map(|b| {
            json!({
                "phase": b.phase, "page": b.page, "samples": b.samples, "bad_samples": b.bad_samples,
                "first_bad_s": b.first_bad_s, "last_bad_s": b.last_bad_s, "seen": b.seen,
            })
        })
        .collect();
    let server: Vec<Value> = r
        .server
        .iter()
        .map(|x| {
            json!({
                "phase": x.phase, "name": x.name, "samples": x.samples,
                "estimate_kbps_mean": x.estimate_kbps_mean, "estimate_kbps_max": x.estimate_kbps_max,
                "kbps_out_mean": x.kbps_out_mean, "paused_samples": x.paused, "quality": x.quality,
            })
        })
        .collect();
    json!({
        "receivers": receivers,
        "badges": badges,
        "server": server,
        "direct_to_540_s": direct_to(r, 540),
        "targets": targets(r),
        "errors": r.errors.iter().map(|(p, m)| json!({"phase": p, "message": m})).collect::<Vec<_>>(),
        "load": {"loadavg1_mean": r.loadavg_mean, "cpu_busy_pct_mean": r.cpu_busy_pct_mean},
        "samples": r.samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &str = r#"{"type":"phase","phase":"kham","pages":["doctor","station"]}
{"type":"sample","phase":"kham","page":"doctor","t":0.5,"videos":[],"badges":[{"of":"BS","self":true,"quality":null}]}
{"type":"sample","phase":"kham","page":"doctor","t":1.0,"videos":[{"from":"Tram","frames":10,"height":180}],"badges":[{"of":"Tram","self":false,"quality":"poor"}]}
{"type":"sample","phase":"kham","page":"doctor","t":11.0,"videos":[{"from":"Tram","frames":160,"height":720}],"badges":[{"of":"Tram","self":false,"quality":"good"}]}
{"type":"ramp","phase":"kham","page":"doctor","videos":[{"mid":"2","from":"Tram","first_frame_s":1.0,"at_s":{"360":4.0,"540":9.0}}]}
{"type":"ramp","phase":"direct","page":"a","videos":[{"mid":"1","from":"peer","first_frame_s":0.5,"at_s":{"360":2.5,"540":5.5,"720":9.5}}]}
{"type":"ramp","phase":"direct","page":"b","videos":[{"mid":"1","from":"peer","first_frame_s":0.5,"at_s":{"360":2.5,"540":7.5,"720":9.5}}]}
{"type":"server","phase":"kham","t":1.0,"participants":[{"name":"Tram","estimate_kbps":300,"kbps_out":100,"audio_only":true,"quality":"poor"}]}
{"type":"server","phase":"kham","t":2.0,"participants":[{"name":"Tram","estimate_kbps":500,"kbps_out":300,"audio_only":false,"quality":"good"}]}
{"type":"load","loadavg1":3.0,"cpu_busy_pct":50}"#;

    #[test]
    fn ramp_times_count_from_the_first_frame() {
        let r = parse(LINES);
        let d = &r.receivers[0];
        assert_eq!((d.page.as_str(), d.from.as_str()), ("doctor", "Tram"));
        assert_eq!(d.to_height_s[&360], Some(3.0));
        assert_eq!(d.to_height_s[&540], Some(8.0));
        assert_eq!(d.to_height_s[&720], None);
        assert!((d.fps - 16.0).abs() < 1e-9, "{}", d.fps);
        assert_eq!(direct_to(&r, 540), Some(6.0));
        assert_eq!(r.loadavg_mean, 3.0);
        let v = &r.server[0];
        assert_eq!((v.samples, v.paused), (2, 1));
        assert_eq!((v.estimate_kbps_mean, v.estimate_kbps_max), (400.0, 500.0));
        assert_eq!(v.kbps_out_mean, 200.0);
        assert_eq!(v.quality["poor"], 1);
    }

    #[test]
    fn targets_judge_the_ramp_and_the_badges() {
        let r = parse(LINES);
        let t = targets(&r);
        // 8.0 s against the direct call's 6.0 + 2 s: met; one poor badge: not met.
        assert!(t[0].contains("met (8.0 s <= 8.0 s)"), "{t:?}");
        let b = &r.badges[0];
        assert_eq!((b.samples, b.bad_samples), (3, 1));
        assert_eq!(b.first_bad_s, Some(1.0));
        assert!(
            t.iter().any(|x| x.contains("NOT met (poor/lost in 1 of 3")),
            "{t:?}"
        );
        assert!(markdown(&r).contains("| kham | doctor <- Tram | 1.0 | 3.0 | 8.0 | never |"));
    }
}
