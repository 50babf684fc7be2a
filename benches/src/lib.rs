#![recursion_limit = "256"]
//! Shared code of the kham benchmarks: scenarios, held-out links and reporting of simulated
//! adaptation runs, and the real-browser benchmark.

pub mod browser;
pub mod holdout;
pub mod load;
pub mod report;
pub mod scenarios;
