//! Path profiles: TOML files describing the emulated paths of a benchmark scenario
//! (`bench/profiles/p1.toml` … `p6.toml`).
//!
//! A fixed profile lists its paths; a sweep profile (P6) draws random two-path scenarios
//! from ranges and runs each draw in both path orders.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Deserialize;

use crate::link::{Capacity, LinkConfig, LinkStep, Loss, Trace, TraceError};
use crate::net::PathConfig;

/// One concrete scenario: the paths to emulate.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Profile name (e.g. "P2").
    pub profile: String,
    /// Variant within the profile ("" for fixed profiles, e.g. "low3-ab" for sweeps).
    pub variant: String,
    /// The paths, path 0 first.
    pub paths: Vec<PathConfig>,
    /// Turn length to use, ms (None: the benchmark's default).
    pub turn_ms: Option<u64>,
    /// Blackouts `(path, from, until)` in ms after the turn starts. An outage from 0 starts
    /// with the simulation, so the path is also down while the session starts.
    pub outages: Vec<(usize, u64, u64)>,
    /// Delay and rate changes `(path, step)`, both directions; `step.at` is measured from
    /// the turn start.
    pub steps: Vec<(usize, LinkStep)>,
}

/// Errors loading a profile.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown fields.
    #[error("parsing {path}: {source}")]
    Toml {
        /// File.
        path: PathBuf,
        /// Cause.
        source: toml::de::Error,
    },
    /// A path description is inconsistent.
    #[error("{path}: {reason}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A trace failed to load.
    #[error(transparent)]
    Trace(#[from] TraceError),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    #[allow(dead_code)]
    description: Option<String>,
    turn_ms: Option<u64>,
    #[serde(default)]
    path: Vec<PathSpec>,
    sweep: Option<Sweep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PathSpec {
    rate_mbit: Option<f64>,
    trace: Option<String>,
    delay_ms: u64,
    #[serde(default)]
    jitter_ms: u64,
    #[serde(default)]
    loss: f64,
    gilbert: Option<Gilbert>,
    queue_ms: Option<u64>,
    #[serde(default)]
    outages_ms: Vec<[u64; 2]>,
    #[serde(default)]
    steps: Vec<StepSpec>,
}

/// `{ at_ms = 20000, delay_ms = 120 }`, `{ at_ms = 20000, rate_mbit = 2.0 }` or both.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct StepSpec {
    at_ms: u64,
    delay_ms: Option<u64>,
    rate_mbit: Option<f64>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct Gilbert {
    p_good_to_bad: f64,
    p_bad_to_good: f64,
    loss_good: f64,
    loss_bad: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sweep {
    seed: u64,
    low_bdp_draws: u32,
    high_bdp_draws: u32,
    low: Ranges,
    high: Ranges,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct Ranges {
    rate_mbit: [f64; 2],
    rtt_ms: [u64; 2],
    queue_bdp: [f64; 2],
    loss: [f64; 2],
}

/// Smallest bottleneck queue, bytes (two full-size packets).
const MIN_QUEUE_BYTES: usize = 3_000;

fn queue_bytes(rate_bps: f64, ms: f64) -> usize {
    ((rate_bps / 8.0 * ms / 1000.0) as usize).max(MIN_QUEUE_BYTES)
}

/// Directory of the profiles shipped with the benchmark.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/profiles")
}

/// Loads a profile by name ("P2", "p2") from `dir`, or from an explicit `.toml` path.
pub fn load(name_or_path: &str, dir: &Path) -> Result<Vec<Scenario>, ProfileError> {
    let path = if name_or_path.ends_with(".toml") {
        PathBuf::from(name_or_path)
    } else {
        dir.join(format!("{}.toml", name_or_path.to_ascii_lowercase()))
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ProfileError::Io {
        path: path.clone(),
        source,
    })?;
    let file: File = toml::from_str(&text).map_err(|source| ProfileError::Toml {
        path: path.clone(),
        source,
    })?;
    let base = path.parent().unwrap_or(dir).to_path_buf();
    build(file, &path, &base)
}

fn build(file: File, path: &Path, base: &Path) -> Result<Vec<Scenario>, ProfileError> {
    if let Some(sweep) = &file.sweep {
        return Ok(sweep_scenarios(&file.name, sweep));
    }
    if file.path.is_empty() {
        return Err(ProfileError::Invalid {
            path: path.into(),
            reason: "a profile needs [[path]] entries or a [sweep]".into(),
        });
    }
    let mut paths = Vec::new();
    let mut outages = Vec::new();
    let mut steps = Vec::new();
    let invalid = |reason: String| ProfileError::Invalid {
        path: path.into(),
        reason,
    };
    for (i, p) in file.path.iter().enumerate() {
        let (up, down) = links(p, path, base)?;
        paths.push(PathConfig { up, down });
        for o in &p.outages_ms {
            if o[0] >= o[1] {
                return Err(invalid(format!("path {i}: outage {o:?} is empty")));
            }
            outages.push((i, o[0], o[1]));
        }
        for st in &p.steps {
            if st.delay_ms.is_none() && st.rate_mbit.is_none() {
                return Err(invalid(format!(
                    "path {i}: a step needs delay_ms or rate_mbit"
                )));
            }
            let rate_bps = match st.rate_mbit {
                Some(_) if p.trace.is_some() => {
                    return Err(invalid(format!(
                        "path {i}: a trace path's rate cannot be stepped"
                    )));
                }
                Some(r) if r.is_nan() || r <= 0.0 => {
                    return Err(invalid(format!(
                        "path {i}: step rate_mbit must be positive"
                    )));
                }
                Some(r) => Some((r * 1e6) as u64),
                None => None,
            };
            steps.push((
                i,
                LinkStep {
                    at: Duration::from_millis(st.at_ms),
                    delay: st.delay_ms.map(Duration::from_millis),
                    rate_bps,
                },
            ));
        }
    }
    Ok(vec![Scenario {
        profile: file.name,
        variant: String::new(),
        paths,
        turn_ms: file.turn_ms,
        outages,
        steps,
    }])
}

fn links(p: &PathSpec, file: &Path, base: &Path) -> Result<(LinkConfig, LinkConfig), ProfileError> {
    let invalid = |reason: &str| ProfileError::Invalid {
        path: file.into(),
        reason: reason.into(),
    };
    let loss = match (p.gilbert, p.loss) {
        (Some(g), _) => Loss::GilbertElliott {
            p_good_to_bad: g.p_good_to_bad,
            p_bad_to_good: g.p_bad_to_good,
            loss_good: g.loss_good,
            loss_bad: g.loss_bad,
        },
        (None, l) if l > 0.0 => Loss::Bernoulli(l),
        (None, _) => Loss::None,
    };
    let make = |capacity: Capacity, rate_bps: f64| {
        let queue_ms = p
            .queue_ms
            .map_or(2.0 * p.delay_ms as f64, |q| q as f64)
            .max(1.0);
        LinkConfig {
            delay: Duration::from_millis(p.delay_ms),
            jitter: Duration::from_millis(p.jitter_ms),
            capacity,
            queue_bytes: queue_bytes(rate_bps, queue_ms),
            loss,
            outages: Vec::new(),
            steps: Vec::new(),
        }
    };
    match (&p.rate_mbit, &p.trace) {
        (Some(r), None) => {
            if r.is_nan() || *r <= 0.0 {
                return Err(invalid("rate_mbit must be positive"));
            }
            let bps = r * 1e6;
            let l = make(Capacity::Constant(bps as u64), bps);
            Ok((l.clone(), l))
        }
        (None, Some(name)) => {
            let dir = base.join("traces");
            let down = Arc::new(Trace::load(&dir.join(format!("{name}.down")))?);
            let up = Arc::new(Trace::load(&dir.join(format!("{name}.up")))?);
            let (dr, ur) = (down.mean_bps(), up.mean_bps());
            Ok((
                make(Capacity::Trace(up), ur),
                make(Capacity::Trace(down), dr),
            ))
        }
        _ => Err(invalid("a path has exactly one of rate_mbit and trace")),
    }
}

fn draw(rng: &mut StdRng, r: &Ranges) -> PathConfig {
    // Rates drawn log-uniformly: the range spans three decades.
    let (lo, hi) = (r.rate_mbit[0].ln(), r.rate_mbit[1].ln());
    let rate = rng.random_range(lo..=hi).exp();
    let rtt = rng.random_range(r.rtt_ms[0]..=r.rtt_ms[1]);
    let queue_bdp = rng.random_range(r.queue_bdp[0]..=r.queue_bdp[1]);
    let loss = rng.random_range(r.loss[0]..=r.loss[1]);
    let bps = rate * 1e6;
    let bdp = bps / 8.0 * rtt as f64 / 1000.0;
    let link = LinkConfig {
        delay: Duration::from_micros(rtt * 500),
        jitter: Duration::ZERO,
        capacity: Capacity::Constant(bps as u64),
        queue_bytes: ((bdp * queue_bdp) as usize).max(MIN_QUEUE_BYTES),
        loss: if loss > 0.0 {
            Loss::Bernoulli(loss)
        } else {
            Loss::None
        },
        outages: Vec::new(),
        steps: Vec::new(),
    };
    PathConfig::symmetric(link)
}

fn sweep_scenarios(name: &str, s: &Sweep) -> Vec<Scenario> {
    let mut rng = StdRng::seed_from_u64(s.seed);
    let mut out = Vec::new();
    let classes = [
        ("low", s.low_bdp_draws, s.low),
        ("high", s.high_bdp_draws, s.high),
    ];
    for (class, n, ranges) in classes {
        for i in 0..n {
            let a = draw(&mut rng, &ranges);
            let b = draw(&mut rng, &ranges);
            for (order, paths) in [("ab", vec![a.clone(), b.clone()]), ("ba", vec![b, a])] {
                out.push(Scenario {
                    profile: name.to_string(),
                    variant: format!("{class}{i}-{order}"),
                    paths,
                    turn_ms: None,
                    outages: Vec::new(),
                    steps: Vec::new(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_profiles_load() {
        let dir = default_dir();
        for p in ["P1", "P2", "P3", "P4", "P5"] {
            let s = load(p, &dir).unwrap_or_else(|e| panic!("{p}: {e}"));
            assert_eq!(s.len(), 1);
            assert_eq!(s[0].paths.len(), 2, "{p}");
        }
        let p5 = &load("P5", &dir).unwrap()[0];
        assert_eq!(p5.outages, vec![(0, 10_000, 12_000)]);
        let p6 = load("P6", &dir).unwrap();
        assert_eq!(p6.len(), 40);
        assert_eq!(p6[0].paths[0], p6[1].paths[1], "both orders of one draw");
    }

    #[test]
    fn bad_profiles_are_clear_errors() {
        let base = Path::new("/nonexistent");
        let parse = |t: &str| {
            let f: Result<File, _> = toml::from_str(t);
            f.map_err(|e| e.to_string()).and_then(|f| {
                build(f, Path::new("x.toml"), base)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        };
        assert!(
            parse("name = 'x'\n[[path]]\ndelay_ms = 1\n")
                .unwrap_err()
                .contains("exactly one")
        );
        assert!(parse("name = 'x'\n[[path]]\nrate_mbit = 1.0\ndelay_ms = 1\nbogus = 2\n").is_err());
        assert!(parse("name = 'x'\n").unwrap_err().contains("[[path]]"));
        assert!(parse("name = 'x'\n[[path]]\nrate_mbit = -1.0\ndelay_ms = 1\n").is_err());
        assert!(load("P99", &default_dir()).is_err());
        let step = |st: &str| {
            parse(&format!(
                "name = 'x'\n[[path]]\nrate_mbit = 1.0\ndelay_ms = 1\nsteps = [{st}]\n"
            ))
        };
        assert!(
            step("{ at_ms = 5 }")
                .unwrap_err()
                .contains("delay_ms or rate_mbit")
        );
        assert!(
            step("{ at_ms = 5, rate_mbit = 0.0 }")
                .unwrap_err()
                .contains("positive")
        );
        assert!(step("{ at_ms = 5, delay_ms = 9, bogus = 1 }").is_err());
        assert!(step("{ at_ms = 5, delay_ms = 9 }").is_ok());
        assert!(
            parse("name = 'x'\n[[path]]\nrate_mbit = 1.0\ndelay_ms = 1\noutages_ms = [[5, 5]]\n")
                .unwrap_err()
                .contains("empty")
        );
    }

    #[test]
    fn steps_are_read_per_path_in_both_directions() {
        let f: File = toml::from_str(
            "name = 'x'\n[[path]]\nrate_mbit = 4.0\ndelay_ms = 10\n\
             steps = [{ at_ms = 20000, delay_ms = 120 }, { at_ms = 30000, rate_mbit = 0.5 }]\n\
             [[path]]\nrate_mbit = 1.0\ndelay_ms = 30\n",
        )
        .unwrap();
        let s = build(f, Path::new("x.toml"), Path::new("/nonexistent")).unwrap();
        assert_eq!(
            s[0].steps,
            vec![
                (
                    0,
                    LinkStep {
                        at: Duration::from_secs(20),
                        delay: Some(Duration::from_millis(120)),
                        rate_bps: None,
                    }
                ),
                (
                    0,
                    LinkStep {
                        at: Duration::from_secs(30),
                        delay: None,
                        rate_bps: Some(500_000),
                    }
                ),
            ]
        );
    }
}
