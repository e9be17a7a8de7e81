//! Conversions between the protocol's types and their plain copies in `camp-control-types`.
//!
//! Both sides are foreign to this crate, so Rust's orphan rule rules out `From` impls here;
//! [`ToProto`] and [`ToPlain`] are the conversions instead (`status.to_proto()`,
//! `kind.to_plain()`). The tests below fail if either side gains, loses or renames a
//! variant without the other.

use camp_control_types::modality::Modality as PlainModality;
use camp_control_types::scheduler::SchedulerKind as PlainSchedulerKind;
use camp_control_types::snapshot::{DATAGRAM_DROP_COUNT, MODALITY_COUNT, PathState};
use camp_proto::config::SchedulerKind;
use camp_proto::edge::DatagramDrop;
use camp_proto::{Modality, PathStatus};

// Arrays in the snapshots are sized by the plain constants; they must match the protocol's.
const _: () = assert!(MODALITY_COUNT == Modality::COUNT);
const _: () = assert!(DATAGRAM_DROP_COUNT == DatagramDrop::ALL.len());
const _: () = assert!(PlainSchedulerKind::ALL.len() == SchedulerKind::ALL.len());

/// A plain control-plane value to its protocol counterpart.
pub trait ToProto {
    /// The protocol type.
    type Proto;
    /// Converts.
    fn to_proto(self) -> Self::Proto;
}

/// A protocol value to its plain control-plane copy.
pub trait ToPlain {
    /// The plain type.
    type Plain;
    /// Converts.
    fn to_plain(self) -> Self::Plain;
}

impl ToPlain for PathStatus {
    type Plain = PathState;
    fn to_plain(self) -> PathState {
        match self {
            PathStatus::Standby => PathState::Standby,
            PathStatus::Available => PathState::Available,
            PathStatus::Drain => PathState::Drain,
        }
    }
}

impl ToProto for PathState {
    type Proto = PathStatus;
    fn to_proto(self) -> PathStatus {
        match self {
            PathState::Standby => PathStatus::Standby,
            PathState::Available => PathStatus::Available,
            PathState::Drain => PathStatus::Drain,
        }
    }
}

impl ToPlain for Modality {
    type Plain = PlainModality;
    fn to_plain(self) -> PlainModality {
        match self {
            Modality::Text => PlainModality::Text,
            Modality::Audio => PlainModality::Audio,
            Modality::Video => PlainModality::Video,
        }
    }
}

impl ToProto for PlainModality {
    type Proto = Modality;
    fn to_proto(self) -> Modality {
        match self {
            PlainModality::Text => Modality::Text,
            PlainModality::Audio => Modality::Audio,
            PlainModality::Video => Modality::Video,
        }
    }
}

impl ToPlain for SchedulerKind {
    type Plain = PlainSchedulerKind;
    fn to_plain(self) -> PlainSchedulerKind {
        match self {
            SchedulerKind::Camp => PlainSchedulerKind::Camp,
            SchedulerKind::MinRtt => PlainSchedulerKind::MinRtt,
            SchedulerKind::Single => PlainSchedulerKind::Single,
            SchedulerKind::Linger => PlainSchedulerKind::Linger,
            SchedulerKind::Ecf => PlainSchedulerKind::Ecf,
            SchedulerKind::Blest => PlainSchedulerKind::Blest,
            SchedulerKind::Otias => PlainSchedulerKind::Otias,
            SchedulerKind::Redundant => PlainSchedulerKind::Redundant,
            SchedulerKind::Xlink => PlainSchedulerKind::Xlink,
            SchedulerKind::Pinning => PlainSchedulerKind::Pinning,
        }
    }
}

impl ToProto for PlainSchedulerKind {
    type Proto = SchedulerKind;
    fn to_proto(self) -> SchedulerKind {
        match self {
            PlainSchedulerKind::Camp => SchedulerKind::Camp,
            PlainSchedulerKind::MinRtt => SchedulerKind::MinRtt,
            PlainSchedulerKind::Single => SchedulerKind::Single,
            PlainSchedulerKind::Linger => SchedulerKind::Linger,
            PlainSchedulerKind::Ecf => SchedulerKind::Ecf,
            PlainSchedulerKind::Blest => SchedulerKind::Blest,
            PlainSchedulerKind::Otias => SchedulerKind::Otias,
            PlainSchedulerKind::Redundant => SchedulerKind::Redundant,
            PlainSchedulerKind::Xlink => SchedulerKind::Xlink,
            PlainSchedulerKind::Pinning => SchedulerKind::Pinning,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use camp_control_types::snapshot::MODALITY_NAMES;

    #[test]
    fn path_states_match_the_wire_statuses() {
        for code in 0..=u8::MAX {
            let Some(s) = PathStatus::from_code(code) else {
                continue;
            };
            assert_eq!(s.to_plain().to_proto(), s);
        }
        for p in [PathState::Standby, PathState::Available, PathState::Drain] {
            assert_eq!(p.to_proto().to_plain(), p);
        }
    }

    #[test]
    fn modalities_match_in_order_and_name() {
        for (i, m) in Modality::ALL.into_iter().enumerate() {
            let p = m.to_plain();
            assert_eq!(p, PlainModality::ALL[i]);
            assert_eq!((p.index(), p.name()), (m.index(), MODALITY_NAMES[i]));
            assert_eq!(p.to_string(), m.to_string());
            assert_eq!(p.to_proto(), m);
        }
    }

    #[test]
    fn schedulers_match_in_order_name_and_parsing() {
        for (i, k) in SchedulerKind::ALL.into_iter().enumerate() {
            let p = k.to_plain();
            assert_eq!(p, PlainSchedulerKind::ALL[i]);
            assert_eq!(p.name(), k.name());
            assert_eq!(p.to_proto(), k);
        }
        for s in ["MinRTT", " xlink ", "fastest", ""] {
            let plain = s.parse::<PlainSchedulerKind>().map(ToProto::to_proto);
            assert_eq!(plain, s.parse::<SchedulerKind>(), "{s:?}");
        }
    }
}
