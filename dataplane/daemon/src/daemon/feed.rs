//! campd's synthetic workload (a planned digital-human turn per session) and ingested units,
//! handed to the server when they are due.

use super::*;

/// Synthetic workload state of one session.
#[derive(Debug)]
pub(super) struct Feed {
    pub(super) opened: Instant,
    /// `opened` on the session clock, µs.
    pub(super) opened_us: u64,
    pub(super) joined: usize,
    pub(super) plan: Vec<PlannedUnit>,
    pub(super) next: usize,
    pub(super) turns_done: u32,
    /// Token of the session's live entry in the due queue (0: none).
    pub(super) due: Token,
    /// Ingest: session-clock time media time 0 maps to (per turn).
    pub(super) ingest_base_us: Option<u64>,
    /// Ingest: modalities that sent units in the current turn and have not ended it yet.
    /// The turn (and its base) ends when the last of them sends END_OF_TURN, not the first:
    /// otherwise the audio after the video's last frame would start a new media clock.
    pub(super) ingest_open: [bool; Modality::COUNT],
}

/// Releases the session's synthetic units that are due; returns when (session clock, µs)
/// to look at it again: its next unit, the end of its join grace, at once when a turn ended
/// and another follows, `None` while it waits for a first path (the join reschedules it)
/// or when its turns are done.
#[allow(clippy::too_many_arguments)]
pub(super) fn feed_synthetic(
    node: &mut Server,
    now: Instant,
    now_us: u64,
    sid: SessionId,
    f: &mut Feed,
    settings: &Settings,
    ids: EngineIds,
    want_paths: usize,
    payload: &[u8],
    report: &mut DaemonReport,
) -> Option<u64> {
    let more = |f: &Feed| settings.turns == 0 || f.turns_done < settings.turns;
    if f.next >= f.plan.len() {
        if !more(f) || f.joined == 0 {
            return None;
        }
        let ready = f.joined >= want_paths || now.duration_since(f.opened) >= JOIN_GRACE;
        if !ready {
            let grace = u64::try_from(JOIN_GRACE.as_micros()).unwrap_or(u64::MAX);
            return Some(f.opened_us.saturating_add(grace).max(now_us + 1));
        }
        let start_us = if f.plan.is_empty() {
            now_us + 20_000
        } else {
            f.plan.last().map_or(now_us, |u| u.release_us.max(now_us)) + TURN_GAP_US
        };
        let turn = TurnConfig {
            duration_ms: settings.turn_ms,
            realtime: settings.realtime,
            ..TurnConfig::default()
        };
        f.plan = plan_turn(
            &turn,
            start_us,
            settings
                .seed
                .wrapping_add(ids.global(sid).wrapping_mul(1000) + u64::from(f.turns_done)),
        );
        f.next = 0;
        f.turns_done += 1;
    }
    while let Some(u) = f.plan.get(f.next).filter(|u| u.release_us <= now_us) {
        let r = node.send_unit(
            now,
            sid,
            &UnitSubmit {
                modality: u.modality,
                reliability: u.modality.default_reliability(),
                flags: u.flags,
                sync_index: u.sync_index,
                gen_time_us: u.gen_us,
                deadline_us: u.deadline_us,
                capture_id: CaptureId(0),
                payload: &payload[..u.size.min(payload.len())],
            },
        );
        match r {
            Ok(_) => report.units_submitted[u.modality.index()] += 1,
            Err(e) => {
                report.units_refused += 1;
                tracing::warn!("campd: session {}: unit refused: {e}", ids.global(sid));
            }
        }
        f.next += 1;
    }
    match f.plan.get(f.next) {
        Some(u) => Some(u.release_us),
        // The turn is out: plan the next one on the next iteration, if there is one.
        None => more(f).then_some(now_us),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn feed_ingest(
    node: &mut Server,
    now: Instant,
    now_us: u64,
    feeds: &mut BTreeMap<SessionId, Feed>,
    u: &IngestUnit,
    ids: EngineIds,
    report: &mut DaemonReport,
    limiter: &mut crate::access::IngestLimiter,
) {
    let sid = match u.session {
        Some(s) => ids.local(s),
        None => match feeds.keys().next() {
            Some(s) => *s,
            None => {
                report.ingest_unrouted += 1;
                return;
            }
        },
    };
    let Some(f) = feeds.get_mut(&sid) else {
        report.ingest_unrouted += 1;
        return;
    };
    if !limiter.admit(now, sid.to_bits(), u.payload.len()) {
        report.ingest_rate_limited += 1;
        return;
    }
    let base = *f.ingest_base_us.get_or_insert(now_us);
    let r = node.send_unit(
        now,
        sid,
        &UnitSubmit {
            modality: u.modality,
            reliability: u.modality.default_reliability(),
            flags: u.flags,
            sync_index: u.sync_index,
            gen_time_us: base + u.media_us,
            deadline_us: u.deadline_us,
            capture_id: CaptureId(u.capture_id),
            payload: &u.payload,
        },
    );
    match r {
        Ok(_) => report.units_submitted[u.modality.index()] += 1,
        Err(e) => {
            report.units_refused += 1;
            tracing::warn!(
                "campd: session {}: ingested unit refused: {e}",
                ids.global(sid)
            );
        }
    }
    f.ingest_open[u.modality.index()] = !u.flags.contains(camp_wire::UnitFlags::END_OF_TURN);
    if f.ingest_open.iter().all(|open| !open) {
        // Every modality of the turn has ended: the next turn's media time starts at 0.
        f.ingest_base_us = None;
    }
}
