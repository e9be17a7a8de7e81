//! Latency and skew quantiles of one telemetry interval.

use serde::{Deserialize, Serialize};

use crate::modality::MODALITY_COUNT;

/// Count and quantiles of one histogram, µs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest value.
    pub max_us: u64,
}

/// Quantile summaries of one interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalSummary {
    /// Latency per modality (text, audio, video).
    pub latency: [Quantiles; MODALITY_COUNT],
    /// Inter-modal skew.
    pub skew: Quantiles,
}
