//! Virtual-time simulator of kham's adaptation.
//!
//! Runs the real room engine (`kham_sfu::Room`, str0m inside) with str0m client peers whose
//! datagrams cross emulated links (`kham_netem`), on a virtual clock: a ten-minute call takes
//! seconds. A seed fixes the links and the publisher's media; str0m's own random SSRCs, keys and
//! map orders still vary a run's figures a little (benches/README.md states by how much). A
//! synthetic publisher sends three VP8-like simulcast encodings with temporal layers, shaped by
//! `publish_layers` limits and capped by REMB as a browser's encoder is (`encoder`), and
//! Opus-like audio; each subscriber reassembles frames and records what a viewer would see.

pub mod clock;
mod result;

pub use result::{ConfigName, Metrics, RunResult, Sample};
mod dtls;
mod encoder;
mod metrics;
mod playout;
mod run;
mod scenario;
mod source;
mod viewer;
mod world;

#[cfg(test)]
mod live_tests;
#[cfg(test)]
mod source_tests;
#[cfg(test)]
mod steer_tests;

pub use kham_netem as netem;
pub use run::{BIN, run};
pub use scenario::{CapacityEvent, LinkSpec, Scenario, ViewerSpec};
pub use viewer::Rendered;
