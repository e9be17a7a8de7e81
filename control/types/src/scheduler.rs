//! Scheduler names (a plain copy of `camp_proto::config::SchedulerKind`).

use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which path scheduler a session runs. Serialised as its [`name`](SchedulerKind::name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    /// The consistency-aware scheduler.
    Camp,
    /// Lowest smoothed RTT.
    MinRtt,
    /// One path only.
    Single,
    /// Lowest linger time.
    Linger,
    /// Earliest completion first.
    Ecf,
    /// Blocking estimation.
    Blest,
    /// Out-of-order transmission for in-order arrival.
    Otias,
    /// Every unit on every path.
    Redundant,
    /// XLINK-style priority-aware reinjection.
    Xlink,
    /// Each modality pinned to a path.
    Pinning,
}

impl SchedulerKind {
    /// Every scheduler, CAMP first, then the baselines (the protocol's order).
    pub const ALL: [SchedulerKind; 10] = [
        SchedulerKind::Camp,
        SchedulerKind::MinRtt,
        SchedulerKind::Single,
        SchedulerKind::Linger,
        SchedulerKind::Ecf,
        SchedulerKind::Blest,
        SchedulerKind::Otias,
        SchedulerKind::Redundant,
        SchedulerKind::Xlink,
        SchedulerKind::Pinning,
    ];

    /// The scheduler's name, as `campctl set scheduler` takes it.
    pub const fn name(self) -> &'static str {
        match self {
            SchedulerKind::Camp => "camp",
            SchedulerKind::MinRtt => "minrtt",
            SchedulerKind::Single => "single",
            SchedulerKind::Linger => "linger",
            SchedulerKind::Ecf => "ecf",
            SchedulerKind::Blest => "blest",
            SchedulerKind::Otias => "otias",
            SchedulerKind::Redundant => "redundant",
            SchedulerKind::Xlink => "xlink",
            SchedulerKind::Pinning => "pinning",
        }
    }
}

impl FromStr for SchedulerKind {
    type Err = String;

    /// Parses a scheduler name (ASCII case-insensitive, surrounding blanks ignored).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        SchedulerKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = SchedulerKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown scheduler {s:?} (one of: {})", names.join(", "))
            })
    }
}

impl Serialize for SchedulerKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for SchedulerKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_serialise_as_names() {
        for k in SchedulerKind::ALL {
            assert_eq!(k.name().parse::<SchedulerKind>(), Ok(k));
            assert_eq!(k.name().to_uppercase().parse::<SchedulerKind>(), Ok(k));
            let j = serde_json::to_string(&k).unwrap();
            assert_eq!(j, format!("\"{}\"", k.name()));
            assert_eq!(serde_json::from_str::<SchedulerKind>(&j).unwrap(), k);
        }
        let e = "fastest".parse::<SchedulerKind>().unwrap_err();
        assert!(
            e.contains("\"fastest\"") && e.contains("camp, minrtt"),
            "{e}"
        );
        assert!(serde_json::from_str::<SchedulerKind>("\"fastest\"").is_err());
    }
}
