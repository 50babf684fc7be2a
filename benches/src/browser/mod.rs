//! The browser-quality benchmark: real Chromium publisher and subscriber behind kham-relay
//! links, under four configurations at once (kham, kham without adaptation, a direct call,
//! Janus). The Node driver (`benches/browser/driver.mjs`) runs the browsers; this module builds
//! the scenarios, runs the driver per scenario and turns its samples into figures.

pub mod clean;
pub mod joins;
pub mod links;
pub mod metrics;
pub mod plot;
pub mod report;
pub mod run;
pub mod samples;
pub mod scenarios;
