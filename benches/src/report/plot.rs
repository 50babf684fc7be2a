//! One PNG per scenario (and subscriber): rates over time above, chosen layer below, the three
//! configurations on the same axes.
//!
//! Text (title, axis labels, legend) needs a TTF font, loaded at runtime from the system
//! (`KHAM_PLOT_FONT`, then DejaVu, Liberation or Noto Sans, then any `.ttf` under
//! `/usr/share/fonts`). Without one the plots are drawn without text.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kham_sim::{ConfigName, RunResult, Sample};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{DEFAULT_SUBSCRIBER, group_by};

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 900;
/// Height of the rate panel; the layer panel gets the rest.
const RATE_PANEL_HEIGHT: u32 = 580;
/// Width of the legend column right of both panels.
const LEGEND_WIDTH: u32 = 230;
/// Highest layer value (spatial 2 + temporal 2/3).
const TOP_LAYER: f64 = 2.67;
/// Family under which the runtime font is registered. Not plotters' default `sans-serif`, so
/// any text drawn without naming it fails loudly in tests instead of silently needing a font.
const FONT_FAMILY: &str = "kham-sans";
/// Well-known Debian locations, tried before searching `FONT_DIR`.
const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
];
const FONT_DIR: &str = "/usr/share/fonts";

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Writes one PNG per scenario and subscriber into `dir/plots/` (created), named
/// `<scenario>[_<subscriber>].png` (subscriber left out when `viewer`, names reduced to
/// `[a-z0-9_-]`), and returns how many it wrote.
///
/// Upper panel: capacity, the kham estimate, and sent (translucent) and received kbit/s of each
/// configuration over time; lower panel: the chosen layer (0 = lowest, 2.67 = top) per
/// configuration, with a gap while video is paused. kham is drawn bold, the baselines thin and
/// dashed. Missing or non-finite points leave gaps.
pub fn write_plots(dir: &Path, results: &[RunResult]) -> io::Result<usize> {
    let plots = dir.join("plots");
    fs::create_dir_all(&plots)?;
    let font = font();
    let groups = group_by(results, |r| (r.scenario.clone(), r.subscriber.clone()));
    for ((scenario, subscriber), runs) in &groups {
        let mut name = sanitize(scenario);
        let mut title = format!("{scenario} ({})", runs[0].family);
        if subscriber != DEFAULT_SUBSCRIBER {
            name = format!("{name}_{}", sanitize(subscriber));
            title = format!("{scenario}, {subscriber} subscriber ({})", runs[0].family);
        }
        let path = plots.join(format!("{name}.png"));
        let root = BitMapBackend::new(&path, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, &title, runs, font)
            .and_then(|()| root.present())
            .map_err(|e| io::Error::other(format!("plot {}: {e}", path.display())))?;
    }
    Ok(groups.len())
}

/// Draws both panels of one scenario, each with its legend to the right; text only when
/// `font` is set.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    runs: &[&RunResult],
    font: Option<&'static str>,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let root = match font {
        Some(f) => root.titled(title, (f, 24))?,
        None => root.clone(),
    };
    let (upper, lower) = root.split_vertically(RATE_PANEL_HEIGHT);
    let t_max = finite_max(runs.iter().flat_map(|r| r.series.iter().map(|s| s.t)))
        .unwrap_or(0.0)
        .max(runs.iter().map(|r| r.duration_s).fold(0.0, f64::max))
        .max(1.0);

    // Rate panel.
    let rates = runs.iter().flat_map(|r| {
        r.series.iter().flat_map(|s| {
            [s.capacity_kbps, s.sent_kbps, s.received_kbps]
                .into_iter()
                .chain(s.estimate_kbps)
        })
    });
    let y_max = finite_max(rates).unwrap_or(0.0).max(100.0) * 1.08;
    let (area, legend_area) = upper.split_horizontally(legend_x(&upper));
    let mut chart = axes(&area, font, (0.0..t_max, 0.0..y_max), "kbit/s")?;
    let mut legend = Vec::new();
    if let Some(run) = runs.iter().find(|r| !r.series.is_empty()) {
        let pen = Pen::solid(BLACK, 2);
        let drawn = line(&mut chart, &run.series, |s| Some(s.capacity_kbps), pen)?;
        legend.extend(drawn.then(|| ("capacity".to_owned(), pen)));
    }
    for run in runs.iter().filter(|r| r.config == ConfigName::Kham) {
        let pen = Pen::solid(RGBColor(255, 127, 14), 2);
        let drawn = line(&mut chart, &run.series, |s| s.estimate_kbps, pen)?;
        legend.extend(drawn.then(|| ("kham estimate".to_owned(), pen)));
    }
    for run in ordered(runs) {
        let name = run.config.as_str();
        let received = pen(run.config);
        let sent = Pen {
            color: received.color.mix(0.4),
            ..received
        };
        let drawn = line(&mut chart, &run.series, |s| Some(s.sent_kbps), sent)?;
        legend.extend(drawn.then(|| (format!("{name} sent"), sent)));
        let drawn = line(&mut chart, &run.series, |s| Some(s.received_kbps), received)?;
        legend.extend(drawn.then(|| (format!("{name} received"), received)));
    }
    draw_legend(&legend_area, &legend, font)?;

    // Layer panel.
    let (area, legend_area) = lower.split_horizontally(legend_x(&lower));
    let y_desc = "layer (spatial + temporal/3)";
    let mut chart = axes(&area, font, (0.0..t_max, -0.15..TOP_LAYER + 0.2), y_desc)?;
    let mut legend = Vec::new();
    for run in ordered(runs) {
        let pen = pen(run.config);
        let drawn = line(&mut chart, &run.series, |s| s.layer, pen)?;
        legend.extend(drawn.then(|| (format!("{} layer", run.config.as_str()), pen)));
    }
    draw_legend(&legend_area, &legend, font)
}

/// A chart with a grid over `ranges`; axis labels and descriptions when there is a font.
fn axes<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    font: Option<&'static str>,
    (x, y): (std::ops::Range<f64>, std::ops::Range<f64>),
    y_desc: &str,
) -> Result<Chart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut builder = ChartBuilder::on(area);
    builder.margin(12);
    if font.is_some() {
        builder.x_label_area_size(40).y_label_area_size(70);
    }
    let mut chart = builder.build_cartesian_2d(x, y)?;
    let mut mesh = chart.configure_mesh();
    if let Some(f) = font {
        mesh.x_desc("time (s)")
            .y_desc(y_desc)
            .label_style((f, 14))
            .axis_desc_style((f, 16))
            .x_label_formatter(&tick)
            .y_label_formatter(&tick);
    }
    mesh.draw()?;
    Ok(chart)
}

/// Where the legend column of `panel` starts.
fn legend_x<DB: DrawingBackend>(panel: &DrawingArea<DB, Shift>) -> u32 {
    panel.dim_in_pixel().0.saturating_sub(LEGEND_WIDTH)
}

/// An axis label: at most 2 decimals, trailing zeros dropped.
fn tick(v: &f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A legend column: a line sample (dashed where the series is) and a label per entry.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, Pen)],
    font: Option<&'static str>,
) -> DrawResult<DB> {
    let Some(f) = font else { return Ok(()) };
    for (i, (label, pen)) in (0i32..).zip(entries) {
        let y = 24 + 24 * i;
        let style = pen.color.stroke_width(pen.width);
        let dashes: &[(i32, i32)] = if pen.dashed {
            &[(8, 16), (22, 30), (36, 40)]
        } else {
            &[(8, 40)]
        };
        for &(x0, x1) in dashes {
            area.draw(&PathElement::new(vec![(x0, y), (x1, y)], style))?;
        }
        area.draw(&Text::new(label.clone(), (48, y - 6), (f, 15)))?;
    }
    Ok(())
}

/// How one line looks.
#[derive(Clone, Copy)]
struct Pen {
    color: RGBAColor,
    width: u32,
    dashed: bool,
}

impl Pen {
    fn solid(color: impl Color, width: u32) -> Self {
        Pen {
            color: color.to_rgba(),
            width,
            dashed: false,
        }
    }
}

/// A configuration's lines: kham bold and solid, the baselines thin and dashed.
fn pen(config: ConfigName) -> Pen {
    let (color, kham) = match config {
        ConfigName::Kham => (RGBColor(31, 119, 180), true),
        ConfigName::NoAdaptation => (RGBColor(214, 39, 40), false),
        ConfigName::LowestLayer => (RGBColor(44, 160, 44), false),
    };
    Pen {
        color: color.to_rgba(),
        width: if kham { 3 } else { 1 },
        dashed: !kham,
    }
}

/// kham first, so the thin baselines stay visible on top of its bold line.
fn ordered<'a>(runs: &'a [&'a RunResult]) -> impl Iterator<Item = &'a RunResult> {
    ConfigName::ALL
        .into_iter()
        .flat_map(move |c| runs.iter().copied().filter(move |r| r.config == c))
}

/// Draws `value` of `series` as lines broken wherever it is `None` or not finite; whether
/// anything was drawn.
fn line<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    series: &[Sample],
    value: impl Fn(&Sample) -> Option<f64>,
    pen: Pen,
) -> Result<bool, DrawingAreaErrorKind<DB::ErrorType>> {
    let style = pen.color.stroke_width(pen.width);
    let pieces = pieces(series.iter().map(|s| (s.t, value(s))));
    for piece in &pieces {
        let points = piece.iter().copied();
        if pen.dashed {
            chart.draw_series(DashedLineSeries::new(points, 8, 5, style))?;
        } else {
            chart.draw_series(LineSeries::new(points, style))?;
        }
    }
    Ok(!pieces.is_empty())
}

/// Runs of consecutive points with a finite time and value.
fn pieces(points: impl Iterator<Item = (f64, Option<f64>)>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (t, v) in points {
        match v.filter(|v| v.is_finite() && t.is_finite()) {
            Some(v) => out.last_mut().into_iter().for_each(|p| p.push((t, v))),
            None if out.last().is_some_and(|p| !p.is_empty()) => out.push(Vec::new()),
            None => {}
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

/// The largest finite value, if any.
fn finite_max(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.filter(|v| v.is_finite()).reduce(f64::max)
}

/// Lower case, anything outside `[a-z0-9_-]` replaced by `_`.
pub(crate) fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "unnamed".into() } else { s }
}

/// The registered font family, loading a system TTF on first use; `None` (and a note on
/// stderr, once) when no usable font exists.
pub(crate) fn font() -> Option<&'static str> {
    static FONT: OnceLock<Option<&'static str>> = OnceLock::new();
    *FONT.get_or_init(|| {
        for path in font_candidates() {
            let Ok(bytes) = fs::read(&path) else { continue };
            // plotters keeps fonts for the whole process; one file is leaked, once.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, bytes).is_ok() {
                return Some(FONT_FAMILY);
            }
        }
        eprintln!("note: no TTF font found (set KHAM_PLOT_FONT); plots are drawn without text");
        None
    })
}

/// `KHAM_PLOT_FONT`, the well-known paths, then every `.ttf` under `FONT_DIR` (regular
/// faces first).
fn font_candidates() -> Vec<PathBuf> {
    let mut found = Vec::new();
    ttf_files(Path::new(FONT_DIR), 6, &mut found);
    found.sort_by_key(|p| (!p.to_string_lossy().contains("Regular"), p.clone()));
    std::env::var_os("KHAM_PLOT_FONT")
        .map(PathBuf::from)
        .into_iter()
        .chain(FONT_PATHS.iter().map(PathBuf::from))
        .chain(found)
        .collect()
}

/// Collects `.ttf` files below `dir`, at most `depth` levels down.
fn ttf_files(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        if path.is_dir() && depth > 0 {
            ttf_files(&path, depth - 1, out);
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("ttf"))
        {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

    #[test]
    fn writes_one_png_per_scenario_and_subscriber() {
        let dir = fixture::temp_dir("plots");
        let n = write_plots(&dir, &fixture::results()).unwrap();
        assert_eq!(n, 2);
        for name in ["steps_drop.png", "strong_weak_weak.png"] {
            let bytes = fs::read(dir.join("plots").join(name)).unwrap();
            assert!(bytes.starts_with(&PNG_SIGNATURE), "{name}");
        }
        assert_eq!(fs::read_dir(dir.join("plots")).unwrap().count(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn draws_without_a_font_and_with_empty_series() {
        // Without a font nothing may touch text: only `FONT_FAMILY` is ever registered, and
        // plotters' default family would fail here.
        let mut results = fixture::results();
        results[1].series.clear();
        results[2]
            .series
            .iter_mut()
            .for_each(|s| s.sent_kbps = f64::NAN);
        let refs: Vec<&RunResult> = results.iter().take(3).collect();
        let mut buf = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
        let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, "t", &refs, None).unwrap();
        let empty: Vec<&RunResult> = Vec::new();
        draw(&root, "t", &empty, None).unwrap();
        draw(&root, "t", &empty, font()).unwrap();
    }

    #[test]
    fn pieces_break_at_gaps_and_nan() {
        let pts = [
            (0.0, Some(1.0)),
            (1.0, None),
            (2.0, Some(2.0)),
            (3.0, Some(f64::NAN)),
            (4.0, Some(3.0)),
            (5.0, Some(3.0)),
        ];
        assert_eq!(
            pieces(pts.into_iter()),
            vec![
                vec![(0.0, 1.0)],
                vec![(2.0, 2.0)],
                vec![(4.0, 3.0), (5.0, 3.0)]
            ]
        );
        assert!(pieces(std::iter::empty()).is_empty());
    }

    #[test]
    fn sanitizes_names() {
        assert_eq!(sanitize("Norway/Bus 3.log"), "norway_bus_3_log");
        assert_eq!(sanitize("a-b_c9"), "a-b_c9");
        assert_eq!(sanitize(""), "unnamed");
    }
}
