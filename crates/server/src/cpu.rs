//! CPU time of this process, from `/proc/self/stat` (Linux). Elsewhere the figures are absent.

use std::time::Instant;

/// `/proc` reports CPU time in clock ticks of USER_HZ, which Linux fixes at 100 for user space
/// on every architecture it supports.
const USER_HZ: f64 = 100.0;

/// User + system CPU seconds this process has used, if the platform tells.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_ticks(&stat).map(|t| t as f64 / USER_HZ)
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line. The command name (field 2) is
/// in parentheses and may hold spaces, so fields are counted after the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ")": field 3 (state) is index 0, so utime (14) is index 11.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU use between two samples, in percent of one core.
#[derive(Debug, Default)]
pub struct CpuSampler {
    last: Option<(Instant, f64)>,
}

impl CpuSampler {
    /// Percent of one core used since the previous call (`None` on the first call or where
    /// `/proc` is missing).
    pub fn sample(&mut self, now: Instant) -> Option<f64> {
        let cpu = process_cpu_seconds()?;
        let prev = self.last.replace((now, cpu));
        let (t0, c0) = prev?;
        let wall = now.saturating_duration_since(t0).as_secs_f64();
        (wall > 0.0).then(|| (cpu - c0).max(0.0) / wall * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let line = "4242 (kham shard 0) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 \
                    123456 1000000 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_cpu_ticks(line), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn reads_own_process() {
        assert!(process_cpu_seconds().is_some());
        let mut s = CpuSampler::default();
        let t = Instant::now();
        assert_eq!(s.sample(t), None);
        let busy = (0..2_000_000u64).fold(0u64, |a, b| a.wrapping_add(b * b));
        assert!(busy > 0);
        let p = s.sample(t + std::time::Duration::from_millis(100));
        assert!(p.is_some_and(|p| p >= 0.0), "{p:?}");
    }
}
