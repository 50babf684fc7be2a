//! Running one scenario: the fake camera file, the Node driver, its output.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;

use super::links::RelayInfo;
use super::samples::{self, DriverOutput};
use super::scenarios::BrowserScenario;

/// Frames per second of the fake camera: 720p at 15 fps keeps four encoders (three simulcast
/// layers per SFU configuration and one for p2p) within two cores better than 30 fps.
const CAMERA_FPS: u32 = 15;
/// Seconds of the camera file (Chromium loops it).
const CAMERA_SECS: u32 = 10;

/// Everything a run needs from the machine.
#[derive(Debug, Clone)]
pub struct Tools {
    pub repo: PathBuf,
    pub relay_bin: PathBuf,
    pub kham_bin: PathBuf,
    pub y4m: PathBuf,
}

fn run_ok(cmd: &mut Command, what: &str) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("{what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what}: {status}"))
    }
}

/// The 720p fake camera file under `target/`, made with ffmpeg (installed with apt if missing).
pub fn camera_file(target: &Path) -> Result<PathBuf, String> {
    let path = target.join(format!("browser-quality-camera-720p{CAMERA_FPS}.y4m"));
    if path.exists() {
        return Ok(path);
    }
    apt_tool("ffmpeg", "ffmpeg")?;
    std::fs::create_dir_all(target).map_err(|e| format!("{}: {e}", target.display()))?;
    let tmp = path.with_extension("tmp.y4m");
    run_ok(
        Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size=1280x720:rate={CAMERA_FPS}"))
            .args(["-t", &CAMERA_SECS.to_string(), "-pix_fmt", "yuv420p"])
            .arg(&tmp),
        "ffmpeg (making the fake camera file)",
    )?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Installs the Debian package `package` with apt when `command` is not on the PATH.
fn apt_tool(command: &str, package: &str) -> Result<(), String> {
    let present = Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    eprintln!("installing {package} (apt)");
    run_ok(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &format!("apt-get install {package}"),
    )
}

/// Chromium (Debian's) and the browser tests' Node packages: `npm ci` in tests/browser when
/// playwright-core is missing there (the driver uses it).
pub fn node_modules(repo: &Path) -> Result<(), String> {
    apt_tool("chromium", "chromium")?;
    apt_tool("npm", "npm")?;
    let dir = repo.join("tests/browser");
    if dir.join("node_modules/playwright-core").exists() {
        return Ok(());
    }
    eprintln!("installing the browser tests' Node packages (npm ci)");
    run_ok(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir),
        "npm ci in tests/browser",
    )
}

/// Runs the driver for `scenario` with `configs`, each behind a relay on its own 127.0.0.x.
pub fn scenario(
    tools: &Tools,
    scenario: &BrowserScenario,
    configs: &[String],
    duration_s: u64,
    seed: u64,
    work: &Path,
) -> Result<DriverOutput, String> {
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let relay_ips: serde_json::Map<String, serde_json::Value> = configs
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), json!(format!("127.0.0.{}", 11 + i))))
        .collect();
    let spec = json!({
        "scenario": scenario.name,
        "configs": configs,
        "durationS": duration_s,
        "seed": seed,
        "y4m": tools.y4m,
        "relayBin": tools.relay_bin,
        "workDir": work,
        "linkArgs": {"publisher": scenario.publisher, "subscriber": scenario.subscriber},
        "relayIps": relay_ips,
    });
    let spec_path = work.join("driver-spec.json");
    std::fs::write(&spec_path, spec.to_string())
        .map_err(|e| format!("{}: {e}", spec_path.display()))?;
    let out = Command::new("node")
        .arg(tools.repo.join("benches/browser/driver.mjs"))
        .arg(&spec_path)
        .env("KHAM_BIN", &tools.kham_bin)
        .current_dir(&tools.repo)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("node driver: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::write(work.join("driver.jsonl"), text.as_bytes());
    if !out.status.success() {
        return Err(format!("node driver for {}: {}", scenario.name, out.status));
    }
    Ok(samples::parse(&text))
}

/// What the relays of a configuration reported (their JSON reports, listed in the driver's
/// `links` line): each relay's clients, lateness (how late datagrams left: CPU contention shows
/// here) and CPU time. Which client was on which link is the link check's (`links.rs`).
pub fn relay_summary(relays: &[RelayInfo]) -> Option<serde_json::Value> {
    let out: Vec<serde_json::Value> = relays
        .iter()
        .filter_map(|r| {
            let text = std::fs::read_to_string(&r.stats).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            Some(json!({
                "name": r.name,
                "clients": v.get("clients").and_then(serde_json::Value::as_array).map_or(0, Vec::len),
                "lateness_p99_ms": v.pointer("/lateness/p99_us").and_then(serde_json::Value::as_f64).map(|u| u / 1000.0),
                "lateness_max_ms": v.pointer("/lateness/max_us").and_then(serde_json::Value::as_f64).map(|u| u / 1000.0),
                "cpu_percent": v.get("cpu_percent"),
            }))
        })
        .collect();
    (!out.is_empty()).then(|| json!({"relays": out}))
}
