//! What Linux says about the processes and the machine: CPU time (`/proc/PID/stat`,
//! `/proc/stat`), memory (`/proc/PID/smaps_rollup`), UDP buffer drops (`/proc/net/snmp`) and
//! CPU affinity (`Cpus_allowed_list`, `sched_setaffinity`).

use std::fs;

/// User and system CPU time of one process, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcCpu {
    pub utime: u64,
    pub stime: u64,
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 when unknown).
pub fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .filter(|v| *v > 0)
        .unwrap_or(100)
}

/// `utime` and `stime` of `pid` (all its threads).
pub fn proc_cpu(pid: u32) -> Option<ProcCpu> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15 (1-based over the whole line).
    Some(ProcCpu {
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
    })
}

/// Busy and total ticks of the whole machine (the `cpu` line of `/proc/stat`) and of each CPU
/// (`cpuN`).
#[derive(Debug, Clone, Default)]
pub struct MachineCpu {
    pub busy: u64,
    pub total: u64,
    pub per_cpu: Vec<(u64, u64)>,
}

/// (busy, total) of one `cpu` line's values.
fn busy_total(values: &str) -> Option<(u64, u64)> {
    let v: Vec<u64> = values
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

pub fn machine_cpu() -> Option<MachineCpu> {
    let s = fs::read_to_string("/proc/stat").ok()?;
    let mut m = MachineCpu::default();
    for l in s.lines() {
        if let Some(rest) = l.strip_prefix("cpu ") {
            (m.busy, m.total) = busy_total(rest)?;
        } else if let Some(rest) = l.strip_prefix("cpu") {
            let (n, values) = rest.split_once(' ')?;
            let n: usize = n.parse().ok()?;
            if m.per_cpu.len() <= n {
                m.per_cpu.resize(n + 1, (0, 0));
            }
            m.per_cpu[n] = busy_total(values)?;
        }
    }
    Some(m)
}

/// Proportional set size of `pid` in MiB.
pub fn pss_mb(pid: u32) -> Option<f64> {
    let s = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("Pss:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// `Udp: RcvbufErrors` and `SndbufErrors` of this network namespace.
pub fn udp_buf_errors() -> Option<(u64, u64)> {
    snmp_udp_errors("/proc/net/snmp")
}

/// The same counters in the network namespace of process `pid`.
pub fn udp_buf_errors_of(pid: u32) -> Option<(u64, u64)> {
    snmp_udp_errors(&format!("/proc/{pid}/net/snmp"))
}

/// Whether process `pid` lives in another network namespace than this one (None: unknown).
pub fn other_netns(pid: u32) -> Option<bool> {
    let mine = fs::read_link("/proc/self/ns/net").ok()?;
    let theirs = fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    Some(mine != theirs)
}

fn snmp_udp_errors(path: &str) -> Option<(u64, u64)> {
    let s = fs::read_to_string(path).ok()?;
    let mut udp = s.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = udp.next()?.split_whitespace().collect();
    let values: Vec<&str> = udp.next()?.split_whitespace().collect();
    let get = |n: &str| -> Option<u64> {
        let i = names.iter().position(|x| *x == n)?;
        values.get(i)?.parse().ok()
    };
    Some((get("RcvbufErrors")?, get("SndbufErrors")?))
}

/// `Cpus_allowed_list` of every thread of `pid`; None when unreadable.
pub fn allowed_cpus(pid: u32) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for e in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = e.ok()?.path().join("status");
        let s = fs::read_to_string(path).ok()?;
        let l = s.lines().find(|l| l.starts_with("Cpus_allowed_list:"))?;
        out.push(l.split_once(':')?.1.trim().to_owned());
    }
    Some(out)
}

/// Whether every thread of `pid` may run on `cpu` only.
pub fn pinned_to(pid: u32, cpu: usize) -> bool {
    allowed_cpus(pid).is_some_and(|v| !v.is_empty() && v.iter().all(|c| *c == cpu.to_string()))
}

/// Raises the soft open-file limit to the hard one (each client holds a UDP socket and a
/// WebSocket); returns the new soft limit.
pub fn raise_nofile() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).ok()?;
    Some(hard)
}

/// Pins the calling thread (and threads it starts later) to `cpu`.
pub fn pin_self(cpu: usize) -> Result<(), nix::Error> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
}

/// Resident set size of `pid` in MB (`VmRSS`: cheap to read every second, unlike PSS).
pub fn rss_mb(pid: u32) -> Option<f64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(proc_cpu(me).is_some());
        assert!(pss_mb(me).unwrap() > 0.0);
        assert!(rss_mb(me).unwrap() > 0.0);
        let m = machine_cpu().unwrap();
        assert!(m.total >= m.busy && !m.per_cpu.is_empty());
        assert!(udp_buf_errors().is_some());
        assert!(udp_buf_errors_of(me).is_some());
        assert_eq!(other_netns(me), Some(false));
        assert!(!allowed_cpus(me).unwrap().is_empty());
        assert!(clock_ticks() > 0);
    }
}
