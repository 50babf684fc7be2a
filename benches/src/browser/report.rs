//! The browser-quality report: a markdown table per scenario with the targets, and
//! `browser-quality.json` (one entry per scenario and configuration).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::links::LinkCheck;
use super::metrics::{self, Figures, Stages};
use super::samples::Sample;
use super::scenarios::BrowserScenario;

/// One configuration of one scenario, measured.
#[derive(Debug, Clone)]
pub struct ConfigResult {
    pub config: String,
    /// The relay's own report, summarised (`run::relay_summary`).
    pub relay: Option<Value>,
    /// Whether its media stayed on the scenario's links (`links::check`).
    pub links: LinkCheck,
    pub figures: Figures,
    pub samples: Vec<Sample>,
}

/// One scenario, measured.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    pub scenario: BrowserScenario,
    pub configs: Vec<ConfigResult>,
    pub errors: Vec<(String, String)>,
    pub loadavg_mean: f64,
    pub cpu_busy_pct_mean: f64,
    pub wall_s: f64,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Mean of a series (0 when empty), for the load figures.
pub fn mean_of(v: &[f64]) -> f64 {
    mean(v)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

/// The figures of `config` in `r`, if it ran and its media stayed on the scenario's links (an
/// invalid configuration is compared with nothing).
fn find<'a>(r: &'a ScenarioResult, config: &str) -> Option<&'a Figures> {
    r.configs
        .iter()
        .find(|c| c.config == config && c.links.valid)
        .map(|c| &c.figures)
}

/// The stages as `offer/ice/dtls/rtp/key/frame` seconds, `-` for a stage never reached.
fn stages_cell(s: &Stages) -> String {
    s.list()
        .iter()
        .map(|(_, v)| opt(*v, 2))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The targets on one scenario, as short verdicts.
fn targets(r: &ScenarioResult) -> Vec<String> {
    let mut out = Vec::new();
    let Some(k) = find(r, "kham") else { return out };
    if let Some(p) = find(r, "p2p") {
        let ok = k.frozen_time_pct <= p.frozen_time_pct + 1.0;
        out.push(format!(
            "frozen <= p2p + 1 point: {}",
            if ok { "met" } else { "NOT met" }
        ));
    }
    for base in ["janus", "kham_no_adaptation"] {
        if let Some(b) = find(r, base) {
            let ok = k.frozen_time_pct <= b.frozen_time_pct / 2.0;
            out.push(format!(
                "frozen <= half of {base}: {}",
                if ok { "met" } else { "NOT met" }
            ));
        }
    }
    let capacity: Vec<f64> = (0..120)
        .filter_map(|t| r.scenario.capacity_kbps(f64::from(t)))
        .collect();
    if r.scenario.name.contains("rtt-300ms") {
        let ok = k.first_frame_s.is_some_and(|s| s < 1.5);
        out.push(format!(
            "first frame < 1.5 s at RTT 300 ms: {}",
            if ok { "met" } else { "NOT met" }
        ));
    }
    if r.scenario.name.starts_with("thin-") {
        let direct = find(r, "p2p").map(|p| p.audio_concealed_pct);
        let ok =
            k.audio_concealed_pct < 3.0 && direct.is_some_and(|d| k.audio_concealed_pct <= d + 1.0);
        out.push(format!(
            "audio concealment <= p2p + 1 point and < 3 % (issue 14): {} ({:.1} % against {})",
            if ok { "met" } else { "NOT met" },
            k.audio_concealed_pct,
            direct.map_or_else(|| "no p2p run".to_owned(), |d| format!("{d:.1} %"))
        ));
    }
    if capacity.is_empty() || mean(&capacity) >= 100.0 {
        let ok = k.audio_concealed_pct < 2.0;
        out.push(format!(
            "audio concealment < 2 %: {}",
            if ok { "met" } else { "NOT met" }
        ));
    }
    out
}

/// Markdown: one table per scenario (configurations as rows), then errors and target verdicts.
pub fn markdown(results: &[ScenarioResult]) -> String {
    let mut md = String::new();
    for r in results {
        let _ = writeln!(
            md,
            "### {}\n\n{}. Machine: load average {:.2}, CPU busy {:.0} % (2 cores shared by everything); wall {:.0} s.\n",
            r.scenario.name, r.scenario.description, r.loadavg_mean, r.cpu_busy_pct_mean, r.wall_s
        );
        md.push_str("| config | frozen time % | freezes/min | mean height | mean kbit/s | audio concealed % | first frame s | setup s: offer / ICE / DTLS / RTP / keyframe / frame | fps | jitter buffer ms | audio-only % |\n|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|\n");
        for c in &r.configs {
            let f = &c.figures;
            let name = if c.links.valid {
                c.config.clone()
            } else {
                format!("**INVALID** {}", c.config)
            };
            let _ = writeln!(
                md,
                "| {} | {:.1} | {:.1} | {:.0} | {:.0} | {:.2} | {} | {} | {:.1} | {:.0} | {:.1} |",
                name,
                f.frozen_time_pct,
                f.freezes_per_min,
                f.mean_height,
                f.mean_kbps,
                f.audio_concealed_pct,
                opt(f.first_frame_s, 2),
                stages_cell(&f.stages),
                f.mean_fps,
                f.jitter_buffer_ms,
                f.audio_only_pct
            );
        }
        for c in r.configs.iter().filter(|c| !c.links.valid) {
            let _ = writeln!(
                md,
                "\n- **{} INVALID: its media did not stay on the scenario's links; its figures are not comparable and no target is judged against it**: {}",
                c.config,
                c.links.problems.join("; ")
            );
        }
        for (config, msg) in &r.errors {
            let first = msg.lines().next().unwrap_or("");
            let _ = writeln!(md, "\n- {config}: {first}");
        }
        let t = targets(r);
        if !t.is_empty() {
            let _ = writeln!(md, "\nkham targets: {}.", t.join("; "));
        }
        md.push('\n');
    }
    md
}

/// The JSON report: `{"entries": [...]}` with one entry per scenario and configuration.
pub fn json(results: &[ScenarioResult], quick: bool) -> Value {
    let mut entries = Vec::new();
    for r in results {
        for c in &r.configs {
            let f = &c.figures;
            let series: Vec<Value> = metrics::per_second(&c.samples)
                .iter()
                .zip(c.samples.iter().skip(1))
                .map(|(p, s)| json!({"t": p.t, "kbps": p.kbps, "height": p.height, "fps": s.fps, "estimate_kbps": s.estimate_kbps, "layer": s.layer, "sent_layers": s.sent_layers}))
                .collect();
            entries.push(json!({
                "scenario": r.scenario.name,
                "description": r.scenario.description,
                "config": c.config,
                "frozen_time_pct": f.frozen_time_pct,
                "freezes_per_min": f.freezes_per_min,
                "mean_height": f.mean_height,
                "mean_kbps": f.mean_kbps,
                "audio_concealed_pct": f.audio_concealed_pct,
                "first_frame_s": f.first_frame_s,
                "stages_s": f.stages.list().iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "valid": c.links.valid,
                "link_check": c.links.json(),
                "mean_fps": f.mean_fps,
                "jitter_buffer_ms": f.jitter_buffer_ms,
                "video_packets_lost": f.video_packets_lost,
                "video_fec_packets": f.video_fec_packets,
                "video_rtx_packets": f.video_rtx_packets,
                "video_nacks": f.video_nacks,
                "video_plis": f.video_plis,
                "video_keyframes": f.video_keyframes,
                "video_frames_dropped": f.video_frames_dropped,
                "audio_packets_lost": f.audio_packets_lost,
                "audio_only_pct": f.audio_only_pct,
                "duration_s": f.duration_s,
                "load": {"loadavg1_mean": r.loadavg_mean, "cpu_busy_pct_mean": r.cpu_busy_pct_mean},
                "relay": c.relay,
                "per_second": series,
            }));
        }
    }
    let errors: Vec<Value> = results
        .iter()
        .flat_map(|r| {
            r.errors
                .iter()
                .map(|(c, m)| json!({"scenario": r.scenario.name, "config": c, "message": m}))
        })
        .collect();
    let invalid: Vec<Value> = results
        .iter()
        .flat_map(|r| {
            r.configs.iter().filter(|c| !c.links.valid).map(|c| {
                json!({"scenario": r.scenario.name, "config": c.config, "problems": c.links.problems})
            })
        })
        .collect();
    json!({"quick": quick, "entries": entries, "errors": errors, "invalid": invalid})
}
