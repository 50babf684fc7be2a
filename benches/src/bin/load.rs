//! `load`: drives kham with str0m clients and measures its forwarding capacity (issue 15).
//! See benches/README.md ("Load generator") and CAPACITY.md §1.5.
//!
//! cargo run --release -p kham-benches --bin load -- --scenario consults --size 10 --seconds 20 --out DIR

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use kham_benches::load::client::MediaShape;
use kham_benches::load::plan::Scenario;
use kham_benches::load::{Options, TargetKind, run};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScenarioArg {
    Consults,
    Groups,
    Fanout,
    Joins,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TargetArg {
    Kham,
    Janus,
}

#[derive(Debug, Parser)]
#[command(about = "Load generator and capacity measurement for kham (issue 15)")]
struct Args {
    #[arg(long, value_enum, default_value = "consults")]
    scenario: ScenarioArg,
    /// Rooms (consults, groups), subscribers (fanout) or participants (joins).
    #[arg(long, default_value_t = 10)]
    size: usize,
    /// Length of the measurement window.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, value_enum, default_value = "kham")]
    target: TargetArg,
    /// 5 consult rooms for 15 s (a smoke test; also right for a debug build).
    #[arg(long)]
    quick: bool,
    /// Directory for load.json.
    #[arg(long)]
    out: PathBuf,
    /// Measure a running kham at http://HOST:PORT instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// With --url: the server's pid, so its CPU and memory are read (and its pinning checked).
    /// Pass --adaptation too when that server adapts (media.adaptation = true, its default).
    #[arg(long, requires = "url")]
    server_pid: Option<u32>,
    /// API key and secret of the server (tokens, /metrics); default: kham's --dev pair.
    #[arg(long, env = "KHAM_AUTH__API_KEY", default_value = kham_benches::load::server::DEV_API_KEY)]
    api_key: String,
    #[arg(long, env = "KHAM_AUTH__API_SECRET", default_value = kham_benches::load::server::DEV_API_SECRET, hide_env_values = true)]
    api_secret: String,
    /// The kham binary (default: KHAM_BIN, else `kham` next to this binary).
    #[arg(long)]
    kham_bin: Option<PathBuf>,
    /// Run the server with media.adaptation = true (default false: top layer to everyone).
    #[arg(long)]
    adaptation: bool,
    /// Joins started per second (0: all at once; the joins scenario always joins at once).
    #[arg(long, default_value_t = 20.0)]
    join_rate: f64,
    /// Seconds of media between the last join and the measurement window (at 100 rooms the
    /// generator needs a few seconds to catch up after the joins' handshakes).
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// CPU for the server (taskset -c) ...
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// ... and for this generator (sched_setaffinity).
    #[arg(long, default_value_t = 1)]
    generator_cpu: usize,
    /// Pin nothing (the run is then marked invalid).
    #[arg(long)]
    no_pin: bool,
    /// Address the clients' sockets bind to (default 127.0.0.1; with --target janus, --netns or
    /// --compare the host side of the namespace's veth, 10.78.0.1).
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Run kham in the Janus comparison's network namespace (`kham-load`, 10.78.0.2 over a
    /// veth), the path Janus is measured on, instead of on loopback.
    #[arg(long)]
    netns: bool,
    /// Run kham and then Janus at each of --sizes (the scenario, --seconds and pinning as
    /// given, both in the namespace) and write compare.md, compare.json and compare.png into
    /// --out, each run's load.json in its own folder.
    #[arg(long, conflicts_with_all = ["url", "quick", "churn"])]
    compare: bool,
    /// With --compare: run nothing, rebuild compare.md, compare.json and compare.png in --out
    /// from the load.json of its <target>-<scenario>-<size>/ folders.
    #[arg(long, requires = "compare")]
    rebuild: bool,
    /// Sizes of the --compare runs.
    #[arg(long, value_delimiter = ',', default_values_t = [5usize, 10, 20, 40])]
    sizes: Vec<usize>,
    /// Janus's start script (default: benches/browser/janus/janus.sh of this source tree).
    #[arg(long)]
    janus_script: Option<PathBuf>,
    /// Bit rates of the q, h and f layers in kbit/s.
    #[arg(long, value_delimiter = ',', default_values_t = [150u64, 500, 1500])]
    layers_kbps: Vec<u64>,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Show the server's log.
    #[arg(long)]
    verbose: bool,
    /// Runs of the measurement, each with its own server (into DIR/run-I/); DIR/load.json is
    /// the median run, valid only if every run is and they agree within 10 % on CPU per
    /// forwarded packet and forwarded rate (CAPACITY.md §1.5). Default 2, or 1 with --quick,
    /// --url or --churn (one run is then not checked for agreement).
    #[arg(long, conflicts_with = "compare")]
    runs: Option<usize>,
    /// The soak (with --scenario consults): every this many seconds the oldest consult leaves
    /// and a new one joins; load.json gains `soak` (RSS, state gauges and forwarded rate, first
    /// and last window after the warm-up). An hour: --size 20 --seconds 3600 --churn 5
    #[arg(long)]
    churn: Option<u64>,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let (scenario, size, seconds) = if a.quick {
        (Scenario::Consults, 5, 15)
    } else {
        let s = match a.scenario {
            ScenarioArg::Consults => Scenario::Consults,
            ScenarioArg::Groups => Scenario::Groups,
            ScenarioArg::Fanout => Scenario::Fanout,
            ScenarioArg::Joins => Scenario::Joins,
        };
        (s, a.size, a.seconds)
    };
    let mut shape = MediaShape {
        fps: a.fps,
        ..MediaShape::default()
    };
    for (i, k) in a.layers_kbps.iter().take(3).enumerate() {
        shape.layer_bps[i] = k * 1000;
    }
    let opts = Options {
        scenario,
        size: size.max(1),
        seconds: seconds.max(1),
        target: match a.target {
            TargetArg::Kham => TargetKind::Kham,
            TargetArg::Janus => TargetKind::Janus,
        },
        out: a.out,
        url: a.url,
        server_pid: a.server_pid,
        api_key: a.api_key,
        api_secret: a.api_secret,
        kham_bin: a.kham_bin,
        adaptation: a.adaptation,
        join_rate: if scenario == Scenario::Joins {
            0.0
        } else {
            a.join_rate
        },
        warmup: Duration::from_secs(a.warmup),
        pin: (!a.no_pin).then_some((a.server_cpu, a.generator_cpu)),
        bind: a.bind.unwrap_or(
            if a.netns || a.compare || matches!(a.target, TargetArg::Janus) {
                kham_benches::load::janus::HOST_IP
            } else {
                IpAddr::from([127, 0, 0, 1])
            },
        ),
        netns: a.netns,
        janus_script: a.janus_script,
        shape,
        verbose: a.verbose,
        churn: a.churn,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("load: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if a.rebuild || a.compare {
        let rows = if a.rebuild {
            kham_benches::load::compare::rebuild(&opts.out)
        } else {
            rt.block_on(kham_benches::load::compare::compare(opts, &a.sizes))
        };
        return match rows {
            Ok(rows) => {
                let t = kham_benches::load::compare::table(scenario.name(), &rows, &[]);
                println!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("load: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runs = a
        .runs
        .unwrap_or(if a.quick || opts.url.is_some() || a.churn.is_some() {
            1
        } else {
            2
        })
        .max(1);
    if runs == 1 {
        println!("load: one run: agreement between runs not checked (--runs 2 or more)");
    }
    let outcome = if runs == 1 {
        rt.block_on(run(opts))
    } else {
        rt.block_on(kham_benches::load::repeat::repeated(opts, runs))
    };
    match outcome {
        Ok(o) => {
            let j = &o.json;
            println!(
                "load: {} valid={} cpu_us_per_packet={} forwarded_pps={} loss_pct={:.3} \
                 delay_p50_ms={} delay_p99_ms={} join_p50_ms={} pss_mb={}",
                o.path.display(),
                o.valid,
                j["cpu_us_per_packet"],
                j["forwarded_pps"],
                j["loss_pct"].as_f64().unwrap_or(f64::NAN),
                j["delay_p50_ms"],
                j["delay_p99_ms"],
                j["join_p50_ms"],
                j["pss_mb"],
            );
            for r in &o.reasons {
                println!("load: invalid: {r}");
            }
            if !o.valid {
                println!(
                    "load: unvalidated figures (not a capacity figure): {}",
                    j["unvalidated"]
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::FAILURE
        }
    }
}
