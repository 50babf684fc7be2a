//! The adaptation benchmark: every scenario family in virtual time, under kham's allocator and
//! the two baselines (top layer always, lowest layer only). Prints one table per family and
//! writes `DIR/adaptation.json` and a plot per scenario to `DIR/plots/`.
//!
//! cargo run --release -p kham-benches --bin adaptation -- [--quick] [--trace FILE ...] --out DIR

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::Parser;
use kham_benches::{report, scenarios};
use kham_sim::{ConfigName, RunResult, Scenario, run};

#[derive(Parser)]
#[command(about = "kham adaptation benchmark (virtual time)")]
struct Args {
    /// A representative subset in under a minute.
    #[arg(long)]
    quick: bool,
    /// Run the trace family on these files instead of ../shared/traces (repeatable; Mahimahi,
    /// OpenNetLab JSON, Norway HSDPA or Belgium 4G, detected from the content).
    #[arg(long = "trace")]
    traces: Vec<PathBuf>,
    /// Where adaptation.json and plots/ go.
    #[arg(long, default_value = "target/adaptation")]
    out: PathBuf,
    /// Folder of the shared traces.
    #[arg(long, default_value = "../shared/traces")]
    traces_dir: PathBuf,
    /// Only scenarios whose name contains this (case-insensitive).
    #[arg(long)]
    scenario: Option<String>,
    /// Only these configurations (comma-separated: kham, no_adaptation, lowest_layer).
    #[arg(long, value_delimiter = ',')]
    configs: Vec<String>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    jobs: Option<usize>,
}

/// Log lines stamped with the simulation's virtual time (seconds since the call started).
struct VirtualTime;

impl tracing_subscriber::fmt::time::FormatTime for VirtualTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{:9.3}", kham_sim::clock::now().as_secs_f64())
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // A debugging aid: `KHAM_SIM_LOG=str0m::bwe=debug,kham_sfu=debug` (with `--jobs 1` and one
    // scenario) logs to stderr with virtual time stamps.
    if let Ok(filter) = std::env::var("KHAM_SIM_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_timer(VirtualTime)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .try_init();
    }
    let started = Instant::now();
    let mut list: Vec<Scenario> = scenarios::synthetic(args.quick);
    let files = if !args.traces.is_empty() {
        args.traces.clone()
    } else {
        let all = scenarios::shared_traces(&args.traces_dir);
        if all.is_empty() {
            eprintln!(
                "note: no traces under {}; trace family skipped",
                args.traces_dir.display()
            );
        }
        if args.quick {
            let pick = ["metro-1.txt", "4G_500kbps.json", "ATT-LTE-driving.down"];
            all.into_iter()
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| pick.contains(&n))
                })
                .collect()
        } else {
            all
        }
    };
    let secs = if args.quick { 60 } else { 120 };
    for f in &files {
        match scenarios::trace_scenarios(f, secs) {
            Ok(mut v) => {
                if args.quick {
                    v.truncate(1);
                }
                list.extend(v);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    if let Some(want) = &args.scenario {
        let want = want.to_lowercase();
        list.retain(|s| s.name.to_lowercase().contains(&want));
    }
    let configs: Vec<ConfigName> = ConfigName::ALL
        .into_iter()
        .filter(|c| args.configs.is_empty() || args.configs.iter().any(|n| n == c.as_str()))
        .collect();
    let jobs: Vec<(usize, ConfigName)> = (0..list.len())
        .flat_map(|i| configs.iter().map(move |&c| (i, c)))
        .collect();
    let workers = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    eprintln!(
        "{} scenarios x {} configurations on {workers} threads",
        list.len(),
        ConfigName::ALL.len()
    );
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Vec<RunResult>)>> = Mutex::new(Vec::new());
    let failed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(i, config)) = jobs.get(k) else {
                        break;
                    };
                    match run(&list[i], config) {
                        Ok(r) => results
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((k, r)),
                        Err(e) => {
                            eprintln!("{} / {}: {e}", list[i].name, config.as_str());
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(k, _)| *k);
    let results: Vec<RunResult> = results.into_iter().flat_map(|(_, r)| r).collect();
    report::tables(&results);
    if let Err(e) = report::write_json(&args.out, &results) {
        eprintln!("error: writing json: {e}");
        return std::process::ExitCode::FAILURE;
    }
    match report::write_plots(&args.out, &results) {
        Ok(n) => eprintln!("{n} plots in {}", args.out.join("plots").display()),
        Err(e) => eprintln!("error: plots: {e}"),
    }
    eprintln!(
        "{} runs in {:.1} s wall; results in {}",
        results.len(),
        started.elapsed().as_secs_f64(),
        args.out.join("adaptation.json").display()
    );
    if failed.load(Ordering::Relaxed) > 0 {
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
