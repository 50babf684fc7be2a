//! One PNG per scenario: received kbit/s (and the link capacity, and kham's estimate) above,
//! received frame height below, every configuration on the same axes.

use std::path::Path;

use plotters::prelude::*;

use super::metrics;
use super::report::ScenarioResult;
use crate::report::{plot_file_name, plot_font};

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 900;

fn colour(config: &str) -> RGBColor {
    match config {
        "kham" => RGBColor(0, 90, 200),
        "kham_no_adaptation" => RGBColor(220, 50, 40),
        "p2p" => RGBColor(20, 150, 60),
        "janus" => RGBColor(150, 60, 170),
        _ => RGBColor(90, 90, 90),
    }
}

/// Writes `dir/plots/<scenario>.png`; returns its path.
pub fn write(dir: &Path, r: &ScenarioResult) -> Result<std::path::PathBuf, String> {
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| format!("{}: {e}", plots.display()))?;
    let path = plots.join(format!("{}.png", plot_file_name(&r.scenario.name)));
    draw(&path, r).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn draw(path: &Path, r: &ScenarioResult) -> Result<(), Box<dyn std::error::Error>> {
    let font = plot_font();
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(560);
    let series: Vec<(String, Vec<metrics::Point>)> = r
        .configs
        .iter()
        .map(|c| (c.config.clone(), metrics::per_second(&c.samples)))
        .collect();
    let t_max = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.t))
        .fold(10.0_f64, f64::max);
    let capacity: Vec<(f64, f64)> = (0..=(t_max.ceil() as u32) * 4)
        .filter_map(|i| {
            let t = f64::from(i) / 4.0;
            r.scenario.capacity_kbps(t).map(|k| (t, k))
        })
        .collect();
    let kbps_max = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.kbps))
        .chain(capacity.iter().map(|p| p.1).filter(|k| *k < 10_000.0))
        .fold(500.0_f64, f64::max)
        * 1.1;

    let title = format!("{}: {}", r.scenario.name, r.scenario.description);
    let mut chart = ChartBuilder::on(&top);
    chart.margin(12);
    if let Some(f) = font {
        chart
            .caption(title, (f, 18))
            .x_label_area_size(35)
            .y_label_area_size(60);
    }
    let mut chart = chart.build_cartesian_2d(0.0..t_max, 0.0..kbps_max)?;
    let mut mesh = chart.configure_mesh();
    if let Some(f) = font {
        mesh.y_desc("received kbit/s")
            .x_desc("time (s)")
            .label_style((f, 13))
            .axis_desc_style((f, 15));
    }
    mesh.draw()?;
    let grey = RGBColor(120, 120, 120);
    let cap = chart.draw_series(LineSeries::new(
        capacity.iter().copied(),
        grey.stroke_width(2),
    ))?;
    if font.is_some() {
        cap.label("link capacity").legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(2))
        });
    }
    for (config, s) in &series {
        let col = colour(config);
        let width = if config == "kham" { 3 } else { 2 };
        let drawn = chart.draw_series(LineSeries::new(
            s.iter().map(|p| (p.t, p.kbps)),
            col.stroke_width(width),
        ))?;
        if font.is_some() {
            drawn.label(config.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(width))
            });
        }
    }
    if let Some(k) = r.configs.iter().find(|c| c.config == "kham") {
        let est: Vec<(f64, f64)> = k
            .samples
            .iter()
            .filter_map(|s| s.estimate_kbps.map(|e| (s.t, e.min(kbps_max))))
            .collect();
        let col = colour("kham").mix(0.5);
        let drawn = chart.draw_series(est.iter().map(|p| Circle::new(*p, 2, col.filled())))?;
        if font.is_some() {
            drawn
                .label("kham estimate")
                .legend(move |(x, y)| Circle::new((x + 10, y), 3, col.filled()));
        }
    }
    if let Some(f) = font {
        chart
            .configure_series_labels()
            .label_font((f, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }

    let mut chart = ChartBuilder::on(&bottom);
    chart.margin(12);
    if font.is_some() {
        chart.x_label_area_size(35).y_label_area_size(60);
    }
    let mut chart = chart.build_cartesian_2d(0.0..t_max, 0.0..780.0)?;
    let mut mesh = chart.configure_mesh();
    if let Some(f) = font {
        mesh.y_desc("received height (0: no frame)")
            .x_desc("time (s)")
            .label_style((f, 13))
            .axis_desc_style((f, 15));
    }
    mesh.draw()?;
    for (config, s) in &series {
        let col = colour(config);
        let width = if config == "kham" { 3 } else { 2 };
        chart.draw_series(LineSeries::new(
            s.iter().map(|p| (p.t, p.height)),
            col.stroke_width(width),
        ))?;
    }
    root.present()?;
    Ok(())
}
