//! `load --compare`: kham and Janus back to back at a few sizes of one scenario, on the same
//! path (both servers in the `kham-load` network namespace, the generator's clients on the
//! host side of its veth), and a table (`compare.md`, `compare.json`) and a plot
//! (`compare.png`) of server CPU per forwarded packet against load.
//!
//! "Forwarded" is counted the same way for both servers: RTP packets the generator's
//! subscribers received (Janus has no counters; kham's own `rtp_packets_total{out}` is kept
//! beside it as a cross-check).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plotters::prelude::*;
use serde_json::{Value, json};

use crate::load::{LoadError, Options, TargetKind, run};

/// One run's figures as the comparison uses them (valid or not: the flag goes with them).
#[derive(Debug, Clone)]
pub struct Row {
    pub target: &'static str,
    pub size: usize,
    pub valid: bool,
    pub reasons: Vec<String>,
    pub delivered_pps: Option<f64>,
    pub us_per_delivered: Option<f64>,
    pub us_user: Option<f64>,
    pub us_sys: Option<f64>,
    /// kham only: µs per packet of its own counter, and delivered / counted.
    pub us_per_counted: Option<f64>,
    pub delivered_over_counted: Option<f64>,
    pub server_cpu_pct: Option<f64>,
    pub generator_cpu_pct: Option<f64>,
    pub other_load_pct: Option<f64>,
    pub loss_pct: Option<f64>,
    pub delay_p50_ms: Option<f64>,
    pub delay_p99_ms: Option<f64>,
    pub join_p50_ms: Option<f64>,
    pub pss_mb: Option<f64>,
    pub srtp: String,
    pub dir: PathBuf,
}

/// A capacity figure of `load.json`: top level when the run is valid, else `unvalidated`.
fn figure(j: &Value, k: &str) -> Option<f64> {
    j[k].as_f64().or_else(|| j["unvalidated"][k].as_f64())
}

impl Row {
    fn from_json(target: &'static str, size: usize, j: &Value, dir: PathBuf) -> Row {
        let srtp = j["srtp_profiles"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k} x{}", v.as_u64().unwrap_or(0)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let kham = target == "kham";
        Row {
            target,
            size,
            valid: j["valid"].as_bool().unwrap_or(false),
            reasons: j["invalid_reasons"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            delivered_pps: figure(j, "delivered_pps"),
            us_per_delivered: figure(j, "cpu_us_per_delivered_packet"),
            us_user: figure(j, "cpu_us_per_delivered_packet_user"),
            us_sys: figure(j, "cpu_us_per_delivered_packet_sys"),
            us_per_counted: figure(j, "cpu_us_per_packet").filter(|_| kham),
            delivered_over_counted: j["delivered_over_forwarded"].as_f64().filter(|_| kham),
            server_cpu_pct: match (
                j["server_cpu_user_pct"].as_f64(),
                j["server_cpu_sys_pct"].as_f64(),
            ) {
                (Some(u), Some(s)) => Some(u + s),
                _ => None,
            },
            generator_cpu_pct: j["generator_cpu_pct"].as_f64(),
            other_load_pct: j["other_load_pct"].as_f64(),
            loss_pct: j["loss_pct"].as_f64(),
            delay_p50_ms: j["delay_p50_ms"].as_f64(),
            delay_p99_ms: j["delay_p99_ms"].as_f64(),
            join_p50_ms: j["join_p50_ms"].as_f64(),
            pss_mb: j["pss_mb"].as_f64(),
            srtp,
            dir,
        }
    }

    fn json(&self) -> Value {
        json!({
            "target": self.target, "size": self.size, "valid": self.valid,
            "invalid_reasons": self.reasons, "delivered_pps": self.delivered_pps,
            "cpu_us_per_delivered_packet": self.us_per_delivered,
            "cpu_us_per_delivered_packet_user": self.us_user,
            "cpu_us_per_delivered_packet_sys": self.us_sys,
            "cpu_us_per_counted_packet": self.us_per_counted,
            "delivered_over_counted": self.delivered_over_counted,
            "server_cpu_pct": self.server_cpu_pct, "generator_cpu_pct": self.generator_cpu_pct,
            "other_load_pct": self.other_load_pct, "loss_pct": self.loss_pct,
            "delay_p50_ms": self.delay_p50_ms, "delay_p99_ms": self.delay_p99_ms,
            "join_p50_ms": self.join_p50_ms, "pss_mb": self.pss_mb, "srtp": self.srtp,
            "dir": self.dir,
        })
    }
}

/// Runs kham then Janus at each size (the template's scenario, length and pinning), writes
/// `compare.json`, `compare.md` and `compare.png` into the template's `out`, and returns the
/// rows. A run that fails outright is reported and left out.
pub async fn compare(template: Options, sizes: &[usize]) -> Result<Vec<Row>, LoadError> {
    let out = template.out.clone();
    std::fs::create_dir_all(&out).map_err(|e| LoadError::Write(out.clone(), e))?;
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for &size in sizes {
        for target in [TargetKind::Kham, TargetKind::Janus] {
            let name = if target == TargetKind::Kham {
                "kham"
            } else {
                "janus"
            };
            let dir = out.join(format!("{name}-{}-{size}", template.scenario.name()));
            let mut o = template.clone();
            o.size = size;
            o.target = target;
            o.netns = true;
            o.out = dir.clone();
            eprintln!("load: compare: {name}, {} {size}", template.scenario.name());
            match run(o).await {
                Ok(outcome) => rows.push(Row::from_json(name, size, &outcome.json, dir)),
                Err(e) => {
                    eprintln!("load: compare: {name} at {size} failed: {e}");
                    failures.push(format!("{name} {size}: {e}"));
                }
            }
            // Let the previous server's sockets and threads go before the next one starts.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    let j = json!({
        "scenario": template.scenario.name(),
        "seconds": template.seconds,
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
        "failures": failures,
    });
    let write = |p: PathBuf, text: String| {
        std::fs::write(&p, text).map_err(|e| LoadError::Write(p.clone(), e))
    };
    write(out.join("compare.json"), serde_json::to_string_pretty(&j)?)?;
    write(
        out.join("compare.md"),
        table(template.scenario.name(), &rows, &failures),
    )?;
    let png = out.join("compare.png");
    if let Err(e) = plot(&png, template.scenario.name(), &rows) {
        eprintln!("load: compare: plot {}: {e}", png.display());
    }
    Ok(rows)
}

/// Rebuilds `compare.json`, `compare.md` and `compare.png` in `dir` from the `load.json` of
/// its `<target>-<scenario>-<size>/` folders (a table or plot made by an older version, or
/// runs made one at a time).
pub fn rebuild(dir: &Path) -> Result<Vec<Row>, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|e| LoadError::Write(dir.to_path_buf(), e))?;
    let mut rows = Vec::new();
    let mut scenario = String::new();
    let mut seconds = None;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let mut parts = name.splitn(3, '-');
        let (Some(t), Some(sc), Some(size)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let target = match t {
            "kham" => "kham",
            "janus" => "janus",
            _ => continue,
        };
        let (Ok(size), Ok(text)) = (
            size.parse::<usize>(),
            std::fs::read_to_string(e.path().join("load.json")),
        ) else {
            continue;
        };
        let j: Value = serde_json::from_str(&text)?;
        scenario = sc.to_owned();
        seconds = j["seconds"].as_u64();
        let rel = dir.join(&name);
        rows.push(Row::from_json(target, size, &j, rel));
    }
    rows.sort_by_key(|r| (r.size, r.target != "kham"));
    let j = json!({"scenario": scenario, "seconds": seconds,
                   "rows": rows.iter().map(Row::json).collect::<Vec<_>>(), "failures": []});
    let write = |p: PathBuf, text: String| {
        std::fs::write(&p, text).map_err(|e| LoadError::Write(p.clone(), e))
    };
    write(dir.join("compare.json"), serde_json::to_string_pretty(&j)?)?;
    write(dir.join("compare.md"), table(&scenario, &rows, &[]))?;
    let png = dir.join("compare.png");
    if let Err(e) = plot(&png, &scenario, &rows) {
        eprintln!("load: compare: plot {}: {e}", png.display());
    }
    Ok(rows)
}

fn f(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

/// The markdown table: one line per run, then kham / Janus per size and the targets.
pub fn table(scenario: &str, rows: &[Row], failures: &[String]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| server | {scenario} | valid | delivered pps | µs/delivered pkt (user+sys) | kham counter µs/pkt (delivered/counted) | server CPU | gen CPU | other load | loss % | delay p50/p99 ms | join p50 ms | PSS MB | SRTP |"
    );
    let _ = writeln!(
        t,
        "|---|---:|---|---:|---|---|---:|---:|---:|---:|---|---:|---:|---|"
    );
    for r in rows {
        let valid = if r.valid {
            "yes".to_owned()
        } else {
            format!("no: {}", r.reasons.join("; "))
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} ({}+{}) | {} | {} % | {} % | {} % | {} | {} / {} | {} | {} | {} |",
            r.target,
            r.size,
            valid,
            f(r.delivered_pps, 0),
            f(r.us_per_delivered, 2),
            f(r.us_user, 2),
            f(r.us_sys, 2),
            match (r.us_per_counted, r.delivered_over_counted) {
                (Some(u), Some(d)) => format!("{u:.2} ({d:.3})"),
                _ => "-".into(),
            },
            f(r.server_cpu_pct, 1),
            f(r.generator_cpu_pct, 1),
            f(r.other_load_pct, 1),
            f(r.loss_pct, 3),
            f(r.delay_p50_ms, 2),
            f(r.delay_p99_ms, 2),
            f(r.join_p50_ms, 0),
            f(r.pss_mb, 1),
            r.srtp,
        );
    }
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "| {scenario} | kham µs/pkt | Janus µs/pkt | kham / Janus | both valid | kham <= 0.5 x Janus | kham <= 6 µs |"
    );
    let _ = writeln!(t, "|---:|---:|---:|---:|---|---|---|");
    let mut sizes: Vec<usize> = rows.iter().map(|r| r.size).collect();
    sizes.dedup();
    for size in sizes {
        let get = |target: &str| rows.iter().find(|r| r.size == size && r.target == target);
        let (Some(k), Some(j)) = (get("kham"), get("janus")) else {
            continue;
        };
        let ratio = match (k.us_per_delivered, j.us_per_delivered) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let yes = |b: Option<bool>| match b {
            Some(true) => "met",
            Some(false) => "not met",
            None => "-",
        };
        let _ = writeln!(
            t,
            "| {size} | {} | {} | {} | {} | {} | {} |",
            f(k.us_per_delivered, 2),
            f(j.us_per_delivered, 2),
            f(ratio, 2),
            if k.valid && j.valid { "yes" } else { "no" },
            yes(ratio.map(|r| r <= 0.5)),
            yes(k.us_per_delivered.map(|u| u <= 6.0)),
        );
    }
    for e in failures {
        let _ = writeln!(t, "\nFailed: {e}");
    }
    t
}

/// CPU per delivered packet against delivered packets per second, one line per server;
/// filled markers for valid runs, hollow for invalid ones.
pub fn plot(path: &Path, scenario: &str, rows: &[Row]) -> Result<(), String> {
    let font = crate::report::plot_font();
    let root = BitMapBackend::new(path, (1000, 650)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let pts = |target: &str| -> Vec<(f64, f64, bool)> {
        let mut v: Vec<_> = rows
            .iter()
            .filter(|r| r.target == target)
            .filter_map(|r| Some((r.delivered_pps?, r.us_per_delivered?, r.valid)))
            .filter(|(x, y, _)| x.is_finite() && y.is_finite())
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let series = [
        ("kham", RGBColor(31, 119, 180), pts("kham")),
        ("Janus", RGBColor(214, 39, 40), pts("janus")),
    ];
    let all = series.iter().flat_map(|s| s.2.iter());
    let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max) * 1.1;
    let y_max = all.map(|p| p.1).fold(6.0, f64::max) * 1.15;
    let mut b = ChartBuilder::on(&root);
    b.margin(20);
    if let Some(fnt) = font {
        b.caption(
            format!("{scenario}: server CPU per forwarded packet (hollow = run flagged invalid)"),
            (fnt, 20),
        )
        .x_label_area_size(45)
        .y_label_area_size(60);
    }
    let mut chart = b
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| e.to_string())?;
    let mut mesh = chart.configure_mesh();
    if let Some(fnt) = font {
        mesh.x_desc("forwarded packets per second (received by the generator's subscribers)")
            .y_desc("server CPU µs per forwarded packet (user + sys)")
            .label_style((fnt, 13))
            .axis_desc_style((fnt, 15))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"));
    }
    mesh.draw().map_err(|e| e.to_string())?;
    // The 6 µs target.
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, 6.0), (x_max, 6.0)],
            6,
            6,
            BLACK.mix(0.5).stroke_width(1),
        ))
        .map_err(|e| e.to_string())?;
    for (name, color, p) in &series {
        let line = chart
            .draw_series(LineSeries::new(
                p.iter().map(|(x, y, _)| (*x, *y)),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        if font.is_some() {
            line.label(*name).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
        chart
            .draw_series(p.iter().map(|(x, y, valid)| {
                let style = if *valid {
                    color.filled()
                } else {
                    color.stroke_width(2)
                };
                Circle::new((*x, *y), 5, style)
            }))
            .map_err(|e| e.to_string())?;
    }
    if let Some(fnt) = font {
        chart
            .configure_series_labels()
            .label_font((fnt, 15))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(target: &'static str, size: usize, us: f64, valid: bool) -> Row {
        let j = json!({"valid": valid, "invalid_reasons": if valid { json!([]) } else { json!(["other load"]) },
            "unvalidated": {"delivered_pps": size as f64 * 470.0, "cpu_us_per_delivered_packet": us,
                            "cpu_us_per_packet": us * 1.01},
            "delivered_over_forwarded": 0.99, "srtp_profiles": {"SRTP_AEAD_AES_256_GCM": 4}});
        Row::from_json(target, size, &j, PathBuf::from("x"))
    }

    #[test]
    fn table_and_plot() {
        let rows = vec![
            row("kham", 5, 12.0, false),
            row("janus", 5, 30.0, false),
            row("kham", 10, 10.0, true),
            row("janus", 10, 18.0, true),
        ];
        let t = table("consults", &rows, &[]);
        assert!(
            t.contains("| 5 | 12.00 | 30.00 | 0.40 | no | met | not met |"),
            "{t}"
        );
        assert!(
            t.contains("| 10 | 10.00 | 18.00 | 0.56 | yes | not met | not met |"),
            "{t}"
        );
        assert!(t.contains("no: other load"));
        let dir = std::env::temp_dir().join(format!("kham-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let png = dir.join("c.png");
        plot(&png, "consults", &rows).unwrap();
        assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
