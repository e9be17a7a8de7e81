//! CAMP-level qlog: the receiver's session and presentation events as a qlog JSON-SEQ
//! file (draft-ietf-quic-qlog-main-schema, RFC 7464 record separators), for
//! `camp-client --qlog FILE`; and the server's unit log (units sent, acknowledged and
//! dropped, paths joined and closed) for campd's `--qlog-dir`.
//!
//! quinn-proto 0.11.19 can write per-connection QUIC qlog behind its `qlog` feature, but that
//! pulls in the `qlog` crate and covers packets, not CAMP units; these events are CAMP's own
//! (namespace `camp:`): session established / closed, path joined / closed, playout delay
//! changed, unit presented. Times are ms relative to the client's start, as qlog's
//! `relative` time format has it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use camp_proto::config::{QlogSinks, QlogTarget};

use serde_json::{Value, json};

/// quinn's own QUIC qlog of every path connection (`--qlog-dir`), one file per connection
/// in `dir`: `<role>-<n>-<peer address>.sqlog`, n counting the endpoint's connections. The
/// directory is created if missing; a file that cannot be created is reported on stderr and
/// that connection goes without qlog (the path itself is not refused for it).
///
/// # Errors
/// Creating the directory.
pub fn path_sinks(dir: &Path) -> std::io::Result<QlogSinks> {
    std::fs::create_dir_all(dir)?;
    let dir: PathBuf = dir.to_path_buf();
    Ok(QlogSinks(Arc::new(move |t: &QlogTarget| {
        let peer = t.remote.to_string().replace([':', '[', ']'], "_");
        let path = dir.join(format!("{}-{}-{peer}.sqlog", t.role, t.seq));
        match File::create(&path) {
            Ok(f) => Some(Box::new(BufWriter::new(f)) as Box<dyn Write + Send + Sync>),
            Err(e) => {
                eprintln!("qlog: {}: {e}", path.display());
                None
            }
        }
    })))
}

/// RFC 7464 record separator that starts every JSON-SEQ record.
const RS: u8 = 0x1E;

/// An open qlog file.
#[derive(Debug)]
pub struct QlogWriter {
    out: BufWriter<File>,
    events: u64,
}

impl QlogWriter {
    /// Creates `path` and writes the qlog header (one trace, vantage point `client`).
    ///
    /// # Errors
    /// Creating or writing the file.
    pub fn create(path: &Path, title: &str) -> std::io::Result<Self> {
        Self::create_for(path, title, "client", "camp-client")
    }

    /// [`create`](Self::create) with the vantage point's type (`client` or `server`) and
    /// name.
    ///
    /// # Errors
    /// Creating or writing the file.
    pub fn create_for(
        path: &Path,
        title: &str,
        vantage: &str,
        name: &str,
    ) -> std::io::Result<Self> {
        let mut w = QlogWriter {
            out: BufWriter::new(File::create(path)?),
            events: 0,
        };
        w.record(&json!({
            "qlog_version": "0.3",
            "qlog_format": "JSON-SEQ",
            "title": title,
            "trace": {
                "vantage_point": {"type": vantage, "name": name},
                "common_fields": {"time_format": "relative", "protocol_type": ["CAMP"]},
            },
        }))?;
        Ok(w)
    }

    /// Appends one event at `time_us` (µs since the client's start).
    ///
    /// # Errors
    /// Writing the file.
    pub fn event(&mut self, time_us: u64, name: &str, data: Value) -> std::io::Result<()> {
        self.events += 1;
        self.record(&json!({
            "time": time_us as f64 / 1000.0,
            "name": name,
            "data": data,
        }))
    }

    /// Events written so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Flushes the file.
    ///
    /// # Errors
    /// Writing the file.
    pub fn finish(mut self) -> std::io::Result<u64> {
        self.out.flush()?;
        Ok(self.events)
    }

    fn record(&mut self, v: &Value) -> std::io::Result<()> {
        self.out.write_all(&[RS])?;
        serde_json::to_writer(&mut self.out, v)?;
        self.out.write_all(b"\n")
    }
}

/// The server's CAMP-level event log ([`camp_proto::unit_log`]) as one qlog event: its name
/// (`camp:unit_sent`, `camp:unit_acked`, `camp:unit_dropped`, `camp:path_joined`,
/// `camp:path_closed`) and data, each with the session id campd reports.
pub fn unit_event(e: &camp_proto::unit_log::UnitEvent, session: u64) -> (String, Value) {
    use camp_proto::unit_log::UnitEventKind as K;
    let data = match e.kind {
        K::Sent {
            modality,
            seq,
            path,
            reinjection,
            datagram,
            bytes,
        } => json!({
            "session": session, "modality": modality.to_string(), "seq": seq,
            "path_id": path.0, "reinjection": reinjection,
            "carrier": if datagram { "datagram" } else { "stream" }, "length": bytes,
        }),
        K::Acked {
            modality,
            seq,
            lateness_us,
            delivery_us,
        } => json!({
            "session": session, "modality": modality.to_string(), "seq": seq,
            "lateness_us": lateness_us, "delivery_us": delivery_us,
        }),
        K::Dropped {
            modality,
            seq,
            reason,
        } => json!({
            "session": session, "modality": modality.to_string(), "seq": seq,
            "reason": reason.name(),
        }),
        K::PathJoined { path } | K::PathClosed { path } => {
            json!({"session": session, "path_id": path.0})
        }
    };
    (format!("camp:{}", e.kind.name()), data)
}

/// The `camp:unit_presented` event data of a record.
pub fn unit_presented(r: &camp_present::PresentRecord<'_>) -> Value {
    use camp_present::PresentFlags as F;
    json!({
        "modality": r.modality.to_string(),
        "seq": r.seq,
        "sync_index": r.sync_index,
        "capture_id": r.capture_id.0,
        "path_id": r.path.0,
        "gen_us": r.gen_us,
        "arrival_us": r.arrival_us,
        "present_us": r.present_us,
        "length": r.payload.len(),
        "keyframe": r.flags.contains(F::KEYFRAME),
        "end_of_turn": r.flags.contains(F::END_OF_TURN),
        "late": r.flags.contains(F::LATE),
        "skipped": r.flags.contains(F::SKIPPED),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_json_seq_with_a_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlog");
        let mut w = QlogWriter::create(&path, "t").unwrap();
        w.event(1500, "camp:path_joined", json!({"path_id": 1}))
            .unwrap();
        assert_eq!(w.finish().unwrap(), 1);
        let bytes = std::fs::read(&path).unwrap();
        let records: Vec<Value> = bytes
            .split(|b| *b == RS)
            .filter(|r| !r.is_empty())
            .map(|r| serde_json::from_slice(r).unwrap())
            .collect();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0]["qlog_format"], "JSON-SEQ");
        assert_eq!(records[1]["time"], 1.5);
        assert_eq!(records[1]["name"], "camp:path_joined");
        assert_eq!(records[1]["data"]["path_id"], 1);
        assert_eq!(bytes[0], RS);
    }

    #[test]
    fn server_unit_events_name_their_kind_and_session() {
        use camp_proto::server::SessionId;
        use camp_proto::unit_log::{DropReason, UnitEvent, UnitEventKind};
        use camp_wire::{Modality, PathId};
        let session = SessionId::new(3, 1);
        let sent = UnitEvent {
            session,
            time_us: 10,
            kind: UnitEventKind::Sent {
                modality: Modality::Audio,
                seq: 7,
                path: PathId(2),
                reinjection: true,
                datagram: false,
                bytes: 90,
            },
        };
        let (name, data) = unit_event(&sent, session.to_bits());
        assert_eq!(name, "camp:unit_sent");
        assert_eq!(data["session"], session.to_bits());
        assert_eq!(data["modality"], "audio");
        assert_eq!(
            (&data["seq"], &data["path_id"], &data["carrier"]),
            (&json!(7), &json!(2), &json!("stream"))
        );
        assert_eq!(data["reinjection"], true);
        let dropped = UnitEvent {
            kind: UnitEventKind::Dropped {
                modality: Modality::Video,
                seq: 1,
                reason: DropReason::ExpiredAtSender,
            },
            ..sent
        };
        let (name, data) = unit_event(&dropped, 1);
        assert_eq!(name, "camp:unit_dropped");
        assert_eq!(data["reason"], "expired_at_sender");
    }
}
