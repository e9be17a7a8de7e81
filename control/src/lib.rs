//! Telemetry and control for the CAMP engine (campd).
//!
//! The engine's loop owns the writer ends: a [`publish::Publisher`] of
//! [`snapshot::EngineSnapshot`]s, a [`histo::HistoRecorder`] of per-modality latency and skew,
//! and a [`knobs::KnobReceiver`] it drains every iteration. None of them blocks or takes a
//! lock. The [`ControlThread`] holds the other ends and serves Prometheus text over HTTP and
//! JSON lines over a Unix socket (what `campctl` speaks).
#![forbid(unsafe_code)]

pub mod histo;
pub mod knobs;
pub mod publish;
pub mod snapshot;
