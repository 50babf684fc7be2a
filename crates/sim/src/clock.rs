//! The virtual time of the simulation running on this thread, for log lines: a tracing timer in
//! the benchmark prints it instead of the wall clock (`KHAM_SIM_LOG`), so an estimator's log
//! can be read against the plots.

use std::cell::Cell;
use std::time::Duration;

thread_local! {
    static NOW: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// Sets the virtual time since the start of the call simulated on this thread.
pub fn set(t: Duration) {
    NOW.with(|n| n.set(t));
}

/// The virtual time since the start of the call simulated on this thread.
pub fn now() -> Duration {
    NOW.with(Cell::get)
}
