//! Virtual-time simulator of kham's adaptation.
//!
//! Runs the real room engine (`kham_sfu::Room`, str0m inside) with str0m client peers whose
//! datagrams cross emulated links (`kham_netem`), on a virtual clock: a ten-minute call takes
//! seconds and one seed gives one result. A synthetic publisher sends three VP8-like simulcast
//! layers with temporal layers and Opus-like audio; each subscriber reassembles frames and records
//! what a viewer would see.

pub mod clock;
mod result;

pub use result::{ConfigName, Metrics, RunResult, Sample};
mod metrics;
mod playout;
mod run;
mod scenario;
mod source;
mod viewer;
mod world;

#[cfg(test)]
mod live_tests;

pub use kham_netem as netem;
pub use run::{BIN, run};
pub use scenario::{CapacityEvent, LinkSpec, Scenario, ViewerSpec};
pub use viewer::Rendered;
