//! The data the CAMP control plane speaks, without the protocol stack behind it.
//!
//! campd's control thread (`camp-control`) publishes these types and answers the control
//! socket with them; `campctl` only reads them. Keeping them here lets the operator CLI be
//! built without quinn-proto, rustls, ring or rcgen. Where a type mirrors a protocol type
//! ([`modality::Modality`], [`scheduler::SchedulerKind`], [`snapshot::PathState`]),
//! `camp-control` converts between the two and tests that they stay in step.
#![forbid(unsafe_code)]

pub mod knobs;
pub mod modality;
pub mod scheduler;
pub mod snapshot;
pub mod socket;
pub mod summary;

/// Default control socket path.
pub const DEFAULT_SOCKET: &str = "/run/camp/campd.sock";
/// Default metrics address (loopback only).
pub const DEFAULT_HTTP: &str = "127.0.0.1:9464";
