//! Faults injected at run time, in this order: a 429 storm, then (per request,
//! by chance) a dropped connection, a timeout, a 5xx; and added latency.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    /// Share of requests answered 500/502/503/504.
    pub error_rate: f64,
    /// Added to every response.
    pub latency_ms: u64,
    /// Share of requests that hang for `timeout_ms` before any answer.
    pub timeout_rate: f64,
    pub timeout_ms: u64,
    /// Share of requests whose connection is dropped mid-response.
    pub drop_rate: f64,
    /// Every request is answered 429 while this many ms remain (set, then
    /// counts down from when it was set).
    pub storm_ms: u64,
    /// When the storm was set (set by the simulator).
    #[serde(skip)]
    pub storm_until: Option<tokio::time::Instant>,
}

impl Faults {
    pub fn storm(duration: Duration) -> Self {
        Self {
            storm_ms: duration.as_millis() as u64,
            storm_until: Some(tokio::time::Instant::now() + duration),
            ..Self::default()
        }
    }

    pub fn errors(rate: f64) -> Self {
        Self {
            error_rate: rate,
            ..Self::default()
        }
    }

    pub fn in_storm(&self) -> bool {
        self.storm_until
            .is_some_and(|until| tokio::time::Instant::now() < until)
    }
}
