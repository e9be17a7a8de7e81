//! Typed control commands ("knobs") as the control socket carries them.
//!
//! The control thread validates a [`Knob`] before queueing it for the engine (the queue
//! itself is `camp_control::knobs`), so the engine applies whatever it drains without
//! further checks.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::modality::Modality;
use crate::scheduler::SchedulerKind;
use crate::snapshot::PathState;

/// Knobs that may wait in the queue before the engine drains them.
pub const KNOB_QUEUE_CAPACITY: usize = 64;

/// A scheduler parameter `campctl set` can change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerParam {
    /// Inter-modal skew the CAMP scheduler treats as good enough, µs.
    TargetSkewUs,
    /// Deadline of a modality's units relative to their generation time, µs (0 = none).
    DeadlineUs(Modality),
    /// Multiple of a path's RTT variance added to arrival predictions.
    MarginFactor,
    /// Safety margin before the aim point of an early unit, µs.
    EarlyGuardUs,
    /// Largest queueing delay a droppable unit may add to a path, µs.
    MaxDroppableQueueUs,
    /// Reliable units up to this size in bytes are sent on two paths.
    DuplicateReliableBelow,
    /// Longest a unit may be sent ahead of its media time, µs.
    MaxLeadUs,
}

impl SchedulerParam {
    /// Every parameter, in documentation order.
    pub const ALL: [SchedulerParam; 9] = [
        SchedulerParam::TargetSkewUs,
        SchedulerParam::DeadlineUs(Modality::Text),
        SchedulerParam::DeadlineUs(Modality::Audio),
        SchedulerParam::DeadlineUs(Modality::Video),
        SchedulerParam::MarginFactor,
        SchedulerParam::EarlyGuardUs,
        SchedulerParam::MaxDroppableQueueUs,
        SchedulerParam::DuplicateReliableBelow,
        SchedulerParam::MaxLeadUs,
    ];

    /// The name `campctl set` uses.
    pub const fn name(self) -> &'static str {
        match self {
            SchedulerParam::TargetSkewUs => "target_skew_us",
            SchedulerParam::DeadlineUs(Modality::Text) => "deadline_text_us",
            SchedulerParam::DeadlineUs(Modality::Audio) => "deadline_audio_us",
            SchedulerParam::DeadlineUs(Modality::Video) => "deadline_video_us",
            SchedulerParam::MarginFactor => "margin_factor",
            SchedulerParam::EarlyGuardUs => "early_guard_us",
            SchedulerParam::MaxDroppableQueueUs => "max_droppable_queue_us",
            SchedulerParam::DuplicateReliableBelow => "duplicate_reliable_below",
            SchedulerParam::MaxLeadUs => "max_lead_us",
        }
    }

    /// Inclusive range of accepted values.
    pub const fn range(self) -> (f64, f64) {
        match self {
            SchedulerParam::TargetSkewUs => (0.0, 1_000_000.0),
            SchedulerParam::DeadlineUs(_) => (0.0, 10_000_000.0),
            SchedulerParam::MarginFactor => (0.0, 10.0),
            SchedulerParam::EarlyGuardUs => (0.0, 1_000_000.0),
            SchedulerParam::MaxDroppableQueueUs => (1_000.0, 10_000_000.0),
            SchedulerParam::DuplicateReliableBelow => (0.0, 65_535.0),
            SchedulerParam::MaxLeadUs => (0.0, 60_000_000.0),
        }
    }

    /// True when the value must be a whole number.
    pub const fn integral(self) -> bool {
        !matches!(self, SchedulerParam::MarginFactor)
    }
}

impl FromStr for SchedulerParam {
    type Err = KnobError;

    fn from_str(s: &str) -> Result<Self, KnobError> {
        SchedulerParam::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| KnobError::UnknownParam(s.to_owned()))
    }
}

/// Engine log level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Normal operation.
    Info,
    /// Per-event detail.
    Debug,
    /// Per-packet detail.
    Trace,
}

impl LogLevel {
    /// Every level, quietest first.
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];

    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl FromStr for LogLevel {
    type Err = KnobError;

    fn from_str(s: &str) -> Result<Self, KnobError> {
        LogLevel::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| KnobError::UnknownLogLevel(s.to_owned()))
    }
}

/// A validated command for the engine.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "knob", rename_all = "snake_case")]
pub enum Knob {
    /// Scheduler of sessions opened from now on.
    SetScheduler {
        /// Which scheduler.
        kind: SchedulerKind,
    },
    /// A scheduler parameter, applied to every session's scheduler that has it.
    SetSchedulerParam {
        /// Which parameter.
        param: SchedulerParam,
        /// New value (checked against [`SchedulerParam::range`]).
        value: f64,
    },
    /// A path's administrative status and precedence (sent to the client as PATH_STATUS).
    SetPathStatus {
        /// Session id (`camp_proto::server::SessionId::to_bits`).
        session: u64,
        /// Path id inside the session.
        path: u32,
        /// New status.
        status: PathState,
        /// New precedence (higher preferred).
        precedence: u8,
    },
    /// Coupled congestion control across a session's paths on or off.
    SetCoupledCc {
        /// True to couple.
        on: bool,
    },
    /// Engine log level.
    SetLogLevel {
        /// New level.
        level: LogLevel,
    },
    /// Serve a NIC added at run time: bind the campd port on `address`, or on every
    /// address the interface holds, and advertise them to the sessions (ADD_ADDRESS).
    NicAdd {
        /// Interface name.
        ifname: IfName,
        /// One address of the interface; all of them when left out.
        address: Option<std::net::IpAddr>,
    },
    /// Stop serving a NIC: the paths on its addresses move to the others (ABANDON), the
    /// addresses are withdrawn (REMOVE_ADDRESS) and their sockets closed.
    NicRemove {
        /// Interface name.
        ifname: IfName,
    },
}

/// A network interface name as a knob carries it: 1 to 15 bytes (Linux's IFNAMSIZ less the
/// NUL), no `/`, no whitespace, not `.` or `..`. Fixed-size, so a [`Knob`] stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IfName {
    bytes: [u8; 15],
    len: u8,
}

impl IfName {
    /// Checks and stores `name`.
    pub fn new(name: &str) -> Result<Self, KnobError> {
        let bad = || KnobError::BadInterfaceName(name.to_owned());
        if name.is_empty()
            || name.len() > 15
            || name == "."
            || name == ".."
            || name
                .chars()
                .any(|c| c == '/' || c.is_whitespace() || c.is_control())
        {
            return Err(bad());
        }
        let mut bytes = [0; 15];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Ok(IfName {
            bytes,
            len: name.len() as u8,
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Built from a &str in `new`, so the bytes are UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for IfName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl std::fmt::Display for IfName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for IfName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for IfName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        IfName::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Why a knob was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum KnobError {
    /// The scheduler name is not one of `SchedulerKind::ALL`.
    #[error("{0}")]
    UnknownScheduler(String),
    /// The parameter name is not one of [`SchedulerParam::ALL`].
    #[error("unknown parameter {0:?} (one of: {names})", names = param_names())]
    UnknownParam(String),
    /// The value is outside the parameter's range or not a number.
    #[error("{param} = {value} is out of range ({min}..={max}{whole})", whole = if *integral { ", whole numbers" } else { "" })]
    OutOfRange {
        /// Parameter name.
        param: &'static str,
        /// Rejected value.
        value: f64,
        /// Smallest accepted value.
        min: f64,
        /// Largest accepted value.
        max: f64,
        /// Only whole numbers are accepted.
        integral: bool,
    },
    /// The log level is not one of [`LogLevel::ALL`].
    #[error("unknown log level {0:?} (one of: error, warn, info, debug, trace)")]
    UnknownLogLevel(String),
    /// The path status is not standby, available or drain.
    #[error("unknown path status {0:?} (one of: available, standby, drain)")]
    UnknownPathStatus(String),
    /// No such path in the latest snapshot.
    #[error("no path {path} in session {session}")]
    UnknownPath {
        /// Session id (`camp_proto::server::SessionId::to_bits`).
        session: u64,
        /// Path id.
        path: u32,
    },
    /// A path id without a session matches paths of several sessions.
    #[error("path {0} exists in several sessions; give it as SESSION.PATH")]
    AmbiguousPath(u32),
    /// Not a valid interface name.
    #[error("bad interface name {0:?} (1 to 15 bytes, no '/', no whitespace)")]
    BadInterfaceName(String),
    /// The engine has not drained earlier knobs yet.
    #[error("the engine's knob queue is full ({KNOB_QUEUE_CAPACITY} pending); try again")]
    QueueFull,
}

fn param_names() -> String {
    SchedulerParam::ALL
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Knob {
    /// Parses a scheduler name.
    pub fn scheduler(name: &str) -> Result<Knob, KnobError> {
        SchedulerKind::from_str(name)
            .map(|kind| Knob::SetScheduler { kind })
            .map_err(KnobError::UnknownScheduler)
    }

    /// Builds a scheduler-parameter knob, checking the value's range.
    pub fn scheduler_param(name: &str, value: f64) -> Result<Knob, KnobError> {
        let param = SchedulerParam::from_str(name)?;
        let (min, max) = param.range();
        let whole = !param.integral() || value.fract() == 0.0;
        if !(value >= min && value <= max && whole) {
            return Err(KnobError::OutOfRange {
                param: param.name(),
                value,
                min,
                max,
                integral: param.integral(),
            });
        }
        Ok(Knob::SetSchedulerParam { param, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_names_parse_case_insensitively() {
        assert_eq!(
            Knob::scheduler("MinRTT"),
            Ok(Knob::SetScheduler {
                kind: SchedulerKind::MinRtt
            })
        );
        let e = Knob::scheduler("fastest").unwrap_err();
        assert!(matches!(e, KnobError::UnknownScheduler(_)));
        assert!(e.to_string().contains("camp, minrtt"), "{e}");
    }

    #[test]
    fn params_are_range_checked() {
        assert_eq!(
            Knob::scheduler_param("deadline_video_us", 120_000.0),
            Ok(Knob::SetSchedulerParam {
                param: SchedulerParam::DeadlineUs(Modality::Video),
                value: 120_000.0
            })
        );
        assert!(Knob::scheduler_param("margin_factor", 1.5).is_ok());
        for (name, v) in [
            ("target_skew_us", -1.0),
            ("target_skew_us", 1_000_001.0),
            ("target_skew_us", 1.5),
            ("margin_factor", f64::NAN),
            ("max_droppable_queue_us", 0.0),
        ] {
            let e = Knob::scheduler_param(name, v).unwrap_err();
            assert!(
                matches!(e, KnobError::OutOfRange { .. }),
                "{name}={v}: {e:?}"
            );
        }
        assert_eq!(
            Knob::scheduler_param("skew", 1.0),
            Err(KnobError::UnknownParam("skew".into()))
        );
    }

    #[test]
    fn every_param_name_parses_back() {
        for p in SchedulerParam::ALL {
            assert_eq!(p.name().parse::<SchedulerParam>(), Ok(p));
            let (lo, hi) = p.range();
            assert!(lo <= hi);
            assert!(Knob::scheduler_param(p.name(), lo).is_ok());
        }
    }

    #[test]
    fn interface_names_are_checked() {
        for ok in ["eth0", "a", "enp129s0f1np1", "veth-x_1.2"] {
            assert_eq!(IfName::new(ok).unwrap().as_str(), ok);
        }
        for bad in ["", ".", "..", "a/b", "a b", "sixteen_chars_xx", "tab\t"] {
            assert!(IfName::new(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<IfName>("\"a/b\"").is_err());
        assert_eq!(
            serde_json::to_string(&IfName::new("eth1").unwrap()).unwrap(),
            "\"eth1\""
        );
    }

    #[test]
    fn knobs_serialise_with_names() {
        let k = Knob::SetSchedulerParam {
            param: SchedulerParam::DeadlineUs(Modality::Audio),
            value: 5.0,
        };
        let j = serde_json::to_string(&k).unwrap();
        assert_eq!(
            j,
            r#"{"knob":"set_scheduler_param","param":{"deadline_us":"audio"},"value":5.0}"#
        );
        assert_eq!(serde_json::from_str::<Knob>(&j).unwrap(), k);
        let s = serde_json::to_string(&Knob::SetScheduler {
            kind: SchedulerKind::Xlink,
        })
        .unwrap();
        assert_eq!(s, r#"{"knob":"set_scheduler","kind":"xlink"}"#);
        assert_eq!("WARN".parse::<LogLevel>(), Ok(LogLevel::Warn));
        // Every variant must survive a JSON round trip: the socket's replies carry knobs.
        for k in [
            Knob::SetCoupledCc { on: true },
            Knob::SetLogLevel {
                level: LogLevel::Debug,
            },
            Knob::SetPathStatus {
                session: 1,
                path: 2,
                status: PathState::Standby,
                precedence: 9,
            },
            Knob::NicAdd {
                ifname: IfName::new("eth1").unwrap(),
                address: Some("198.18.1.1".parse().unwrap()),
            },
            Knob::NicAdd {
                ifname: IfName::new("enp1s0f1").unwrap(),
                address: None,
            },
            Knob::NicRemove {
                ifname: IfName::new("eth1").unwrap(),
            },
        ] {
            let j = serde_json::to_string(&k).unwrap();
            assert_eq!(serde_json::from_str::<Knob>(&j).unwrap(), k, "{j}");
        }
    }
}
