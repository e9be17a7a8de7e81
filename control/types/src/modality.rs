//! Modalities as the control plane names them (a plain copy of `camp_wire::Modality`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Number of modalities; arrays indexed by modality have this length.
pub const MODALITY_COUNT: usize = 3;

/// Modality names in wire-code order (index = `Modality as usize`).
pub const MODALITY_NAMES: [&str; MODALITY_COUNT] = ["text", "audio", "video"];

/// A unit's modality, in wire-code order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// LLM text tokens.
    Text = 0,
    /// Speech frames.
    Audio = 1,
    /// Video frames.
    Video = 2,
}

impl Modality {
    /// Every modality in wire-code order.
    pub const ALL: [Modality; MODALITY_COUNT] = [Modality::Text, Modality::Audio, Modality::Video];

    /// Dense index for per-modality arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Lower-case name (`text`, `audio`, `video`).
    pub const fn name(self) -> &'static str {
        MODALITY_NAMES[self as usize]
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Modality {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Modality::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown modality {s:?} (one of: text, audio, video)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_indices_and_json_agree() {
        for (i, m) in Modality::ALL.into_iter().enumerate() {
            assert_eq!(m.index(), i);
            assert_eq!(m.name(), MODALITY_NAMES[i]);
            assert_eq!(m.to_string().parse::<Modality>(), Ok(m));
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.name())
            );
        }
        assert!("Video".parse::<Modality>().is_err());
    }
}
