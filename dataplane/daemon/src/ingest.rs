//! The ingest socket: units as JSON lines on a Unix stream socket.
//!
//! One line, one unit:
//!
//! ```json
//! {"session": 0, "modality": "audio", "sync_index": 12, "media_ms": 480.0,
//!  "size": 72, "keyframe": false, "end_of_turn": false}
//! ```
//!
//! `session` is optional (the lowest open session; units sent before any session opens wait
//! for the first one, up to [`QUEUE`]), `payload_b64` may replace `size`,
//! `deadline_ms` is optional (default: none for text and audio, 150 ms for video),
//! `end_of_utterance` (false) and `capture_id` (0, `65535` = composed) too.
//! Every line gets one JSON reply line: `{"ok":true,"queued":N}` or
//! `{"ok":false,"error":"kind","detail":"..."}`. Lines longer than [`MAX_LINE`] are
//! refused and skipped; the connection stays usable.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use camp_wire::{Modality, UnitFlags};
use serde::Deserialize;

/// Longest accepted line, bytes (a 128 KiB payload in base64 fits).
pub const MAX_LINE: usize = 256 * 1024;
/// Largest unit payload, bytes.
pub const MAX_PAYLOAD: usize = 128 * 1024;
/// Units queued between the ingest thread and the engine.
pub const QUEUE: usize = 4096;
/// Concurrent ingest connections.
pub const MAX_CONNECTIONS: usize = 16;
/// Default deadline of video units, µs.
pub const VIDEO_DEADLINE_US: u32 = 150_000;

/// One unit for the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestUnit {
    /// Target session (None: the lowest open one).
    pub session: Option<u64>,
    /// Stream.
    pub modality: Modality,
    /// Sync index.
    pub sync_index: u32,
    /// Media time from the start of the turn, µs.
    pub media_us: u64,
    /// Payload.
    pub payload: Vec<u8>,
    /// Flags (keyframe, end of utterance, end of turn).
    pub flags: UnitFlags,
    /// Capture the unit carries (RFC 8849 semantics; 0 unless the line says otherwise).
    pub capture_id: u16,
    /// Deadline relative to generation, µs (0 = none).
    pub deadline_us: u32,
}

/// Why a line was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IngestError {
    /// Longer than [`MAX_LINE`].
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
    /// Not UTF-8.
    #[error("line is not UTF-8")]
    NotUtf8,
    /// Not a JSON object of the schema.
    #[error("bad JSON: {0}")]
    Json(String),
    /// Unknown modality name.
    #[error("unknown modality {0:?} (text, audio, video)")]
    Modality(String),
    /// `media_ms` negative, not finite or too large.
    #[error("media_ms must be finite and in 0..=86400000, got {0}")]
    MediaTime(f64),
    /// `deadline_ms` negative, not finite or too large.
    #[error("deadline_ms must be finite and in 0..=60000, got {0}")]
    Deadline(f64),
    /// Both or neither of `size` and `payload_b64`.
    #[error("give exactly one of size and payload_b64")]
    PayloadChoice,
    /// `payload_b64` is not base64.
    #[error("payload_b64 is not valid base64")]
    Base64,
    /// Empty or larger than [`MAX_PAYLOAD`].
    #[error("payload of {0} bytes (1..={MAX_PAYLOAD})")]
    PayloadSize(u64),
    /// The engine queue is full.
    #[error("engine queue full, retry later")]
    QueueFull,
    /// campd is shutting down.
    #[error("shutting down: no more units accepted")]
    ShuttingDown,
}

impl IngestError {
    /// Short machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            IngestError::TooLong => "too_long",
            IngestError::NotUtf8 => "not_utf8",
            IngestError::Json(_) => "bad_json",
            IngestError::Modality(_) => "bad_modality",
            IngestError::MediaTime(_) => "bad_media_ms",
            IngestError::Deadline(_) => "bad_deadline",
            IngestError::PayloadChoice => "payload_choice",
            IngestError::Base64 => "bad_base64",
            IngestError::PayloadSize(_) => "bad_size",
            IngestError::QueueFull => "queue_full",
            IngestError::ShuttingDown => "shutting_down",
        }
    }

    /// The JSON reply line for this error (without newline).
    pub fn reply(&self) -> String {
        serde_json::json!({"ok": false, "error": self.kind(), "detail": self.to_string()})
            .to_string()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    session: Option<u64>,
    modality: String,
    sync_index: u32,
    media_ms: f64,
    #[serde(default)]
    payload_b64: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    keyframe: bool,
    #[serde(default)]
    end_of_turn: bool,
    #[serde(default)]
    end_of_utterance: bool,
    #[serde(default)]
    capture_id: u16,
    #[serde(default)]
    deadline_ms: Option<f64>,
}

/// Parses one line (without its newline). Never panics.
pub fn parse_line(line: &[u8]) -> Result<IngestUnit, IngestError> {
    if line.len() > MAX_LINE {
        return Err(IngestError::TooLong);
    }
    let text = std::str::from_utf8(line).map_err(|_| IngestError::NotUtf8)?;
    let l: Line = serde_json::from_str(text).map_err(|e| IngestError::Json(e.to_string()))?;
    let modality = match l.modality.as_str() {
        "text" => Modality::Text,
        "audio" => Modality::Audio,
        "video" => Modality::Video,
        _ => return Err(IngestError::Modality(l.modality)),
    };
    if !l.media_ms.is_finite() || !(0.0..=86_400_000.0).contains(&l.media_ms) {
        return Err(IngestError::MediaTime(l.media_ms));
    }
    let deadline_us = match l.deadline_ms {
        None if modality == Modality::Video => VIDEO_DEADLINE_US,
        None => 0,
        Some(d) if d.is_finite() && (0.0..=60_000.0).contains(&d) => (d * 1000.0) as u32,
        Some(d) => return Err(IngestError::Deadline(d)),
    };
    let payload = match (l.size, l.payload_b64) {
        (Some(n), None) => {
            if n == 0 || n > MAX_PAYLOAD as u64 {
                return Err(IngestError::PayloadSize(n));
            }
            vec![0x5A; n as usize]
        }
        (None, Some(b)) => {
            // Checked before decoding: the line bound already caps this.
            let p = base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .map_err(|_| IngestError::Base64)?;
            if p.is_empty() || p.len() > MAX_PAYLOAD {
                return Err(IngestError::PayloadSize(p.len() as u64));
            }
            p
        }
        _ => return Err(IngestError::PayloadChoice),
    };
    let mut flags = UnitFlags::empty();
    if l.keyframe {
        flags = flags.with(UnitFlags::KEYFRAME);
    }
    if l.end_of_turn {
        flags = flags.with(UnitFlags::END_OF_TURN);
    }
    if l.end_of_utterance {
        flags = flags.with(UnitFlags::END_OF_UTTERANCE);
    }
    Ok(IngestUnit {
        session: l.session,
        modality,
        sync_index: l.sync_index,
        media_us: (l.media_ms * 1000.0) as u64,
        payload,
        flags,
        capture_id: l.capture_id,
        deadline_us,
    })
}

/// Why the ingest socket could not start.
#[derive(Debug, thiserror::Error)]
pub enum IngestSetupError {
    /// Binding the socket failed.
    #[error("ingest socket {path}: {source}")]
    Bind {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Spawning the thread failed.
    #[error("spawning the ingest thread: {0}")]
    Spawn(std::io::Error),
}

/// The ingest socket's accept thread; units arrive on [`IngestServer::units`].
#[derive(Debug)]
pub struct IngestServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
    units: Receiver<IngestUnit>,
    accepted: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl IngestServer {
    /// Binds `path` (replacing a stale socket file) and starts accepting.
    pub fn spawn(path: &Path) -> Result<Self, IngestSetupError> {
        let bind_err = |source| IngestSetupError::Bind {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(bind_err)?;
        }
        let listener = match UnixListener::bind(path) {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::AddrInUse => {
                if UnixStream::connect(path).is_ok() {
                    return Err(bind_err(e));
                }
                std::fs::remove_file(path).map_err(bind_err)?;
                UnixListener::bind(path).map_err(bind_err)?
            }
            Err(e) => return Err(bind_err(e)),
        };
        listener.set_nonblocking(true).map_err(bind_err)?;
        let (tx, rx) = sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let (s, c, a) = (
            Arc::clone(&stop),
            Arc::clone(&closed),
            Arc::clone(&accepted),
        );
        let thread = std::thread::Builder::new()
            .name("campd-ingest".into())
            .spawn(move || accept_loop(&listener, &tx, &s, &c, &a))
            .map_err(IngestSetupError::Spawn)?;
        Ok(IngestServer {
            path: path.to_owned(),
            stop,
            closed,
            units: rx,
            accepted,
            thread: Some(thread),
        })
    }

    /// Units queued for the engine.
    pub fn units(&self) -> &Receiver<IngestUnit> {
        &self.units
    }

    /// Units accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Refuses further units (replies `shutting_down`).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Stops the threads and removes the socket file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for IngestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(
    listener: &UnixListener,
    tx: &SyncSender<IngestUnit>,
    stop: &Arc<AtomicBool>,
    closed: &Arc<AtomicBool>,
    accepted: &Arc<AtomicU64>,
) {
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Acquire) {
        conns.retain(|h| !h.is_finished());
        match listener.accept() {
            Ok((stream, _)) if conns.len() < MAX_CONNECTIONS => {
                let (tx, stop, closed, accepted) = (
                    tx.clone(),
                    Arc::clone(stop),
                    Arc::clone(closed),
                    Arc::clone(accepted),
                );
                if let Ok(h) = std::thread::Builder::new()
                    .name("campd-ingest-conn".into())
                    .spawn(move || serve(stream, &tx, &stop, &closed, &accepted))
                {
                    conns.push(h);
                }
            }
            Ok((mut stream, _)) => {
                let _ = writeln!(
                    stream,
                    "{}",
                    serde_json::json!({"ok": false, "error": "too_many_connections"})
                );
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    for h in conns {
        let _ = h.join();
    }
}

/// One line read by [`LineReader::read`].
#[derive(Debug, PartialEq, Eq)]
enum ReadLine<'a> {
    /// A complete line without its newline (or the unterminated tail of the stream).
    Line(&'a [u8]),
    /// A line longer than [`MAX_LINE`], skipped up to and including its newline.
    TooLong,
    /// End of stream with no pending bytes.
    End,
}

/// Assembles newline-terminated lines of at most [`MAX_LINE`] bytes from a stream whose reads
/// may time out. The bytes of the current line and whether it already ran past the limit
/// live here rather than in one call, because the socket has a read timeout (so the thread
/// can notice shutdown): a writer slower than the timeout must still get its line parsed
/// whole, and a long line must stay refused however slowly its tail arrives.
#[derive(Debug, Default)]
struct LineReader {
    line: Vec<u8>,
    too_long: bool,
    /// The previous call returned a line: the next one starts a new line.
    returned: bool,
}

impl LineReader {
    /// Reads up to the end of the current line. An error (a read timeout) leaves the bytes
    /// read so far in place; the next call continues the same line.
    fn read(&mut self, r: &mut impl BufRead) -> std::io::Result<ReadLine<'_>> {
        if std::mem::take(&mut self.returned) {
            self.line.clear();
            self.too_long = false;
        }
        loop {
            let chunk = match r.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if self.line.is_empty() && !self.too_long {
                    return Ok(ReadLine::End);
                }
                break;
            }
            let (take, end) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            if !self.too_long {
                if self.line.len() + take > MAX_LINE {
                    self.too_long = true;
                    self.line.clear();
                } else {
                    self.line.extend_from_slice(&chunk[..take]);
                }
            }
            r.consume(take + usize::from(end));
            if end {
                break;
            }
        }
        self.returned = true;
        Ok(if self.too_long {
            ReadLine::TooLong
        } else {
            ReadLine::Line(&self.line)
        })
    }
}

fn serve(
    stream: UnixStream,
    tx: &SyncSender<IngestUnit>,
    stop: &AtomicBool,
    closed: &AtomicBool,
    accepted: &AtomicU64,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut lines = LineReader::default();
    while !stop.load(Ordering::Acquire) {
        let reply = match lines.read(&mut reader) {
            Ok(ReadLine::End) => return,
            Ok(ReadLine::TooLong) => IngestError::TooLong.reply(),
            Ok(ReadLine::Line(line)) if line.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(ReadLine::Line(line)) => match parse_line(line) {
                Err(e) => e.reply(),
                Ok(_) if closed.load(Ordering::Acquire) => IngestError::ShuttingDown.reply(),
                Ok(unit) => match tx.try_send(unit) {
                    Ok(()) => {
                        let n = accepted.fetch_add(1, Ordering::Relaxed) + 1;
                        serde_json::json!({"ok": true, "queued": n}).to_string()
                    }
                    Err(TrySendError::Full(_)) => IngestError::QueueFull.reply(),
                    Err(TrySendError::Disconnected(_)) => IngestError::ShuttingDown.reply(),
                },
            },
            // The read timeout: look at `stop`, then go on with the same line.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        };
        if writeln!(out, "{reply}").is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn good_lines_parse() {
        let u = parse_line(
            br#"{"session": 3, "modality": "audio", "sync_index": 12, "media_ms": 480.0, "size": 72}"#,
        )
        .unwrap();
        assert_eq!(u.session, Some(3));
        assert_eq!(u.modality, Modality::Audio);
        assert_eq!(u.sync_index, 12);
        assert_eq!(u.media_us, 480_000);
        assert_eq!(u.payload.len(), 72);
        assert_eq!(u.deadline_us, 0);
        assert_eq!(u.flags, UnitFlags::empty());

        let v = parse_line(
            br#"{"modality": "video", "sync_index": 1, "media_ms": 40, "payload_b64": "AAEC", "keyframe": true, "end_of_turn": true}"#,
        )
        .unwrap();
        assert_eq!(v.session, None);
        assert_eq!(v.payload, vec![0, 1, 2]);
        assert_eq!(v.deadline_us, VIDEO_DEADLINE_US);
        assert!(v.flags.contains(UnitFlags::KEYFRAME));
        assert!(v.flags.contains(UnitFlags::END_OF_TURN));
        assert!(!v.flags.contains(UnitFlags::END_OF_UTTERANCE));
        assert_eq!(v.capture_id, 0);

        let t = parse_line(
            br#"{"modality": "text", "sync_index": 2, "media_ms": 80, "size": 3, "end_of_utterance": true, "capture_id": 65535}"#,
        )
        .unwrap();
        assert_eq!(t.flags, UnitFlags::END_OF_UTTERANCE);
        assert_eq!(t.capture_id, 0xFFFF);
        let e = parse_line(
            br#"{"modality": "text", "sync_index": 2, "media_ms": 80, "size": 3, "capture_id": 65536}"#,
        );
        assert_eq!(e.unwrap_err().kind(), "bad_json");
    }

    #[test]
    fn bad_lines_get_typed_errors() {
        let cases: [(&[u8], &str); 10] = [
            (b"not json", "bad_json"),
            (b"{\"modality\":\"smell\",\"sync_index\":1,\"media_ms\":0,\"size\":1}", "bad_modality"),
            (b"{\"modality\":\"text\",\"sync_index\":1,\"media_ms\":-1,\"size\":1}", "bad_media_ms"),
            (b"{\"modality\":\"text\",\"sync_index\":1,\"media_ms\":0}", "payload_choice"),
            (
                b"{\"modality\":\"text\",\"sync_index\":1,\"media_ms\":0,\"size\":1,\"payload_b64\":\"AA==\"}",
                "payload_choice",
            ),
            (b"{\"modality\":\"text\",\"sync_index\":1,\"media_ms\":0,\"size\":0}", "bad_size"),
            (
                b"{\"modality\":\"text\",\"sync_index\":1,\"media_ms\":0,\"size\":999999999}",
                "bad_size",
            ),
            (
                b"{\"modality\":\"text\",\"sync_index\":1,\"media_ms\":0,\"payload_b64\":\"%%%\"}",
                "bad_base64",
            ),
            (
                b"{\"modality\":\"text\",\"sync_index\":1,\"media_ms\":0,\"size\":1,\"extra\":1}",
                "bad_json",
            ),
            (b"\xff\xfe", "not_utf8"),
        ];
        for (line, kind) in cases {
            let e = parse_line(line).expect_err(kind);
            assert_eq!(e.kind(), kind, "{}", String::from_utf8_lossy(line));
            let reply: serde_json::Value = serde_json::from_str(&e.reply()).unwrap();
            assert_eq!(reply["ok"], false);
            assert_eq!(reply["error"], kind);
        }
        assert_eq!(
            parse_line(&vec![b' '; MAX_LINE + 1]),
            Err(IngestError::TooLong)
        );
    }

    #[test]
    fn bounded_reader_skips_long_lines_and_keeps_going() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.extend_from_slice(b"\nshort\nlast");
        let mut r = BufReader::with_capacity(1024, &input[..]);
        let mut lines = LineReader::default();
        assert_eq!(lines.read(&mut r).unwrap(), ReadLine::TooLong);
        assert_eq!(lines.read(&mut r).unwrap(), ReadLine::Line(b"short"));
        assert_eq!(lines.read(&mut r).unwrap(), ReadLine::Line(b"last"));
        assert_eq!(lines.read(&mut r).unwrap(), ReadLine::End);
    }

    /// A stream that hands out its pieces one read at a time and times out between them, as
    /// the ingest socket does when the writer is slower than its read timeout.
    struct SlowStream {
        pieces: std::collections::VecDeque<Vec<u8>>,
        timed_out: bool,
    }

    impl std::io::Read for SlowStream {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if !std::mem::replace(&mut self.timed_out, true) {
                return Err(ErrorKind::WouldBlock.into());
            }
            self.timed_out = false;
            let Some(mut piece) = self.pieces.pop_front() else {
                return Ok(0);
            };
            let n = piece.len().min(out.len());
            out[..n].copy_from_slice(&piece[..n]);
            if n < piece.len() {
                self.pieces.push_front(piece.split_off(n));
            }
            Ok(n)
        }
    }

    /// Reads lines from `r` as `serve` does: timeouts are retried.
    fn lines_of(r: impl std::io::Read) -> Vec<Result<Vec<u8>, ()>> {
        let mut r = BufReader::new(r);
        let mut lines = LineReader::default();
        let mut got = Vec::new();
        loop {
            match lines.read(&mut r) {
                Ok(ReadLine::End) => return got,
                Ok(ReadLine::Line(l)) => got.push(Ok(l.to_vec())),
                Ok(ReadLine::TooLong) => got.push(Err(())),
                Err(e) => assert_eq!(e.kind(), ErrorKind::WouldBlock),
            }
        }
    }

    #[test]
    fn reader_keeps_a_partial_line_across_timeouts() {
        let input = b"{\"x\":true}\nnext\n";
        let bytewise = SlowStream {
            pieces: input.iter().map(|b| vec![*b]).collect(),
            timed_out: false,
        };
        assert_eq!(
            lines_of(bytewise),
            [Ok(b"{\"x\":true}".to_vec()), Ok(b"next".to_vec())]
        );
    }

    #[test]
    fn reader_keeps_a_long_line_refused_across_timeouts() {
        // Past the limit in the first piece; the rest of that line, and a tail that alone
        // would be a valid short line, arrive after timeouts.
        let pieces = [
            vec![b'x'; MAX_LINE + 1],
            b"more".to_vec(),
            b"x\nok\n".to_vec(),
        ];
        let slow = SlowStream {
            pieces: pieces.into_iter().collect(),
            timed_out: false,
        };
        assert_eq!(lines_of(slow), [Err(()), Ok(b"ok".to_vec())]);
    }

    #[test]
    fn socket_replies_per_line_and_queues_units() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ingest.sock");
        let server = IngestServer::spawn(&path).unwrap();
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"{\"modality\":\"text\",\"sync_index\":0,\"media_ms\":0,\"size\":4}\nbogus\n")
            .unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), r#"{"ok":true,"queued":1}"#);
        line.clear();
        r.read_line(&mut line).unwrap();
        assert!(line.contains("\"bad_json\""), "{line}");
        let u = server.units().recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(u.payload.len(), 4);
        server.close();
        s.write_all(b"{\"modality\":\"text\",\"sync_index\":0,\"media_ms\":0,\"size\":4}\n")
            .unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        assert!(line.contains("shutting_down"), "{line}");
        drop(s);
        server.stop();
        assert!(!path.exists(), "socket file removed");
    }

    /// A writer slower than the socket's 200 ms read timeout: one byte every 300 ms. The line
    /// must reach the parser whole (its reply names the unknown field), and the next line
    /// must still be its own.
    #[test]
    fn socket_reads_a_line_written_one_byte_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ingest.sock");
        let server = IngestServer::spawn(&path).unwrap();
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for b in b"{\"x\":true}\n" {
            s.write_all(&[*b]).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        }
        s.write_all(b"{\"modality\":\"text\",\"sync_index\":0,\"media_ms\":0,\"size\":4}\n")
            .unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let reply: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(reply["error"], "bad_json", "{line}");
        assert!(
            reply["detail"]
                .as_str()
                .unwrap()
                .contains("unknown field `x`"),
            "{line}"
        );
        line.clear();
        r.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), r#"{"ok":true,"queued":1}"#);
        drop(s);
        server.stop();
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(line in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_line(&line);
        }

        #[test]
        fn arbitrary_json_like_lines_never_panic(
            modality in "(text|audio|video|[a-z]{0,6})",
            sync in any::<i64>(),
            media in any::<f64>(),
            size in any::<i64>(),
            b64 in "[A-Za-z0-9+/=%]{0,12}",
            which in 0u8..4,
        ) {
            let payload = match which {
                0 => format!("\"size\":{size}"),
                1 => format!("\"payload_b64\":\"{b64}\""),
                2 => format!("\"size\":{size},\"payload_b64\":\"{b64}\""),
                _ => String::new(),
            };
            let media = if media.is_finite() { media.to_string() } else { "1e400".into() };
            let line = format!(
                "{{\"modality\":\"{modality}\",\"sync_index\":{sync},\"media_ms\":{media}{}{payload}}}",
                if payload.is_empty() { "" } else { "," }
            );
            if let Ok(u) = parse_line(line.as_bytes()) {
                prop_assert!(!u.payload.is_empty() && u.payload.len() <= MAX_PAYLOAD);
            }
        }
    }
}
