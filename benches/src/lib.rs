//! Shared code of the kham benchmarks: reporting of simulated adaptation runs.

pub mod report;
pub mod scenarios;
