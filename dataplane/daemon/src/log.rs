//! campd's log output: `tracing` events to stderr, filtered by a level the `log_level`
//! knob changes at run time. The filter reads one relaxed atomic, so a disabled event
//! costs no lock on the engine thread.

use std::sync::atomic::{AtomicU8, Ordering};

use camp_control::knobs::LogLevel;
use tracing::Level;
use tracing_subscriber::Layer as _;

static LEVEL: AtomicU8 = AtomicU8::new(2);

fn rank(l: LogLevel) -> u8 {
    match l {
        LogLevel::Error => 0,
        LogLevel::Warn => 1,
        LogLevel::Info => 2,
        LogLevel::Debug => 3,
        LogLevel::Trace => 4,
    }
}

fn rank_of(l: &Level) -> u8 {
    match *l {
        Level::ERROR => 0,
        Level::WARN => 1,
        Level::INFO => 2,
        Level::DEBUG => 3,
        _ => 4,
    }
}

/// True when an event at `level` passes the current filter.
pub fn enabled(level: &Level) -> bool {
    rank_of(level) <= LEVEL.load(Ordering::Relaxed)
}

/// Current level.
pub fn level() -> LogLevel {
    LogLevel::ALL[usize::from(LEVEL.load(Ordering::Relaxed)).min(4)]
}

/// Changes the level; takes effect for every later event.
pub fn set_level(l: LogLevel) {
    LEVEL.store(rank(l), Ordering::Relaxed);
    // Call sites cache whether they are interesting; make them ask again.
    tracing::callsite::rebuild_interest_cache();
}

/// Installs the stderr subscriber (once per process; later calls only set the level).
pub fn init(l: LogLevel) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    LEVEL.store(rank(l), Ordering::Relaxed);
    let filter = tracing_subscriber::filter::filter_fn(|m| enabled(m.level()));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_filter(filter);
    // Fails only when a subscriber is already set (tests that run campd twice).
    let _ = tracing_subscriber::registry().with(fmt).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_orders_events() {
        set_level(LogLevel::Warn);
        assert!(enabled(&Level::ERROR) && enabled(&Level::WARN));
        assert!(!enabled(&Level::INFO) && !enabled(&Level::TRACE));
        assert_eq!(level(), LogLevel::Warn);
        set_level(LogLevel::Trace);
        assert!(enabled(&Level::TRACE));
        set_level(LogLevel::Info);
        assert!(enabled(&Level::INFO) && !enabled(&Level::DEBUG));
    }
}
