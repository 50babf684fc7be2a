//! placeholder
mod loss;
mod rng;
mod trace;
mod trace_parse;
pub use loss::LossModel;
pub use trace::{SegmentParams, Trace};
pub use trace_parse::{Direction, TraceError};
