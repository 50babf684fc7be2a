//! Where room notices go in the server: the join-time histogram and the webhooks.

use std::sync::Arc;

use kham_signal::{Notice, Observer};

use crate::metrics::Metrics;
use crate::webhooks::Webhooks;

pub struct ServerObserver {
    pub metrics: Arc<Metrics>,
    pub webhooks: Option<Arc<Webhooks>>,
}

impl Observer for ServerObserver {
    fn notice(&self, n: Notice) {
        if let Notice::MediaConnected { join_time, .. } = &n {
            self.metrics.observe_join(join_time.as_secs_f64());
        }
        match &n {
            Notice::QueueTaken { waited_ms, .. } => self.metrics.observe_queue(
                kham_proto::LeftReason::Taken,
                Some(*waited_ms as f64 / 1000.0),
            ),
            Notice::QueueLeft { reason, .. } => self.metrics.observe_queue(*reason, None),
            _ => {}
        }
        if let Some(w) = &self.webhooks {
            w.send(&n);
        }
    }
}
