//! Shared code of the kham benchmarks: reporting of simulated adaptation runs.

pub mod browser;
pub mod report;
pub mod scenarios;
