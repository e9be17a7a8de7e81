//! Requests and replies of campd's Unix control socket: JSON lines, one request and one
//! reply per line (`{"cmd":"paths"}`, `{"cmd":"sessions"}`, `{"cmd":"stats"}`,
//! `{"cmd":"set","name":…,"value":…}`, `{"cmd":"path","id":…,"status":…}`). The server side
//! is `camp_control::socket`.

use serde::{Deserialize, Serialize};

use crate::knobs::{Knob, KnobError};
use crate::snapshot::{EngineSettings, NicSnapshot, PathSnapshot, ServerTotals, SessionSnapshot};
use crate::summary::IntervalSummary;

/// Longest accepted request line in bytes (without the newline).
pub const MAX_LINE: usize = 4096;

/// A request from campctl.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Every path of every session.
    Paths,
    /// Sessions, server counters and settings in force.
    Sessions,
    /// Latency and skew quantiles of the last finished interval.
    Stats,
    /// Changes a knob: `scheduler`, `coupled_cc`, `log_level` or a scheduler parameter.
    Set {
        /// Knob name.
        name: String,
        /// New value (string, number or boolean).
        value: serde_json::Value,
    },
    /// Changes a path's status.
    Path {
        /// Session id; may be left out when the path id is unique across sessions.
        #[serde(default)]
        session: Option<u64>,
        /// Path id.
        id: u32,
        /// `available`, `standby` or `drain`.
        status: String,
        /// New precedence; unchanged when left out.
        #[serde(default)]
        precedence: Option<u8>,
    },
    /// Adds or removes a NIC at run time.
    Nic {
        /// `add` or `remove`.
        op: String,
        /// Interface name.
        ifname: String,
        /// `add`: one address of the interface (all of them when left out).
        #[serde(default)]
        address: Option<std::net::IpAddr>,
    },
}

/// One row of the `paths` reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PathRow {
    /// The path.
    #[serde(flatten)]
    pub path: PathSnapshot,
    /// Share of its session's unit bytes that went over this path, 0..=1.
    pub share: f64,
}

/// Reply to `paths`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PathsReply {
    /// Snapshot sequence number.
    pub seq: u64,
    /// Snapshot time, µs since the Unix epoch.
    pub unix_time_us: u64,
    /// Paths ascending by (session, path).
    pub paths: Vec<PathRow>,
    /// XDP classifier counters per NIC (empty on kernel UDP).
    #[serde(default)]
    pub nics: Vec<NicSnapshot>,
}

/// Reply to `sessions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionsReply {
    /// Snapshot sequence number.
    pub seq: u64,
    /// Snapshot time, µs since the Unix epoch.
    pub unix_time_us: u64,
    /// Settings in force.
    pub settings: EngineSettings,
    /// Server-wide counters.
    pub server: ServerTotals,
    /// Open sessions.
    pub sessions: Vec<SessionSnapshot>,
}

/// Reply to `stats`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsReply {
    /// Number of the interval (1 for the first finished one).
    pub interval: u64,
    /// Length of an interval, ms.
    pub interval_ms: u64,
    /// Quantiles of the interval.
    pub summary: IntervalSummary,
}

/// Kind of an error reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line exceeded [`MAX_LINE`].
    TooLong,
    /// Not UTF-8 JSON or not a known request.
    Malformed,
    /// The knob or its value was refused.
    InvalidKnob,
    /// The engine has not published anything yet.
    NoSnapshot,
    /// No interval has finished yet.
    NoStats,
    /// Too many connections.
    Busy,
    /// The connection sent requests faster than its limit; the request was not served.
    RateLimited,
}

/// A reply line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// To `paths`.
    Paths(PathsReply),
    /// To `sessions`.
    Sessions(SessionsReply),
    /// To `stats`.
    Stats(StatsReply),
    /// To `set` and `path`: the knob was queued for the engine.
    Queued {
        /// What was queued.
        knob: Knob,
    },
    /// The request failed.
    Error {
        /// Machine-readable kind.
        kind: ErrorCode,
        /// What went wrong, for people.
        message: String,
    },
}

impl Reply {
    /// An error reply.
    pub fn error(kind: ErrorCode, message: impl Into<String>) -> Reply {
        Reply::Error {
            kind,
            message: message.into(),
        }
    }
}

impl From<KnobError> for Reply {
    fn from(e: KnobError) -> Self {
        Reply::error(ErrorCode::InvalidKnob, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knobs::SchedulerParam;
    use crate::modality::Modality;

    #[test]
    fn requests_use_the_documented_json() {
        let r: Request = serde_json::from_str(r#"{"cmd":"path","id":3,"status":"drain"}"#).unwrap();
        assert_eq!(
            r,
            Request::Path {
                session: None,
                id: 3,
                status: "drain".into(),
                precedence: None
            }
        );
        assert_eq!(
            serde_json::to_string(&Request::Stats).unwrap(),
            r#"{"cmd":"stats"}"#
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"reboot"}"#).is_err());
    }

    #[test]
    fn replies_round_trip() {
        for r in [
            Reply::Queued {
                knob: Knob::SetSchedulerParam {
                    param: SchedulerParam::DeadlineUs(Modality::Video),
                    value: 1.0,
                },
            },
            Reply::error(ErrorCode::NoStats, "later"),
            KnobError::AmbiguousPath(4).into(),
            Reply::Stats(StatsReply {
                interval: 2,
                interval_ms: 1000,
                summary: IntervalSummary::default(),
            }),
        ] {
            let j = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<Reply>(&j).unwrap(), r, "{j}");
        }
        let Reply::Error { kind, message } = KnobError::QueueFull.into() else {
            panic!("not an error reply");
        };
        assert_eq!(kind, ErrorCode::InvalidKnob);
        assert!(message.contains("queue is full"), "{message}");
    }
}
