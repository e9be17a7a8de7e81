//! Where presented units go: a record stream (stdout or a Unix socket the renderer
//! listens on) or a directory of per-modality files, written off the receiver's thread.
//!
//! The receiver's loop must not wait on a renderer, so [`PresentSink::present`] encodes the
//! record and hands it to a writer thread through a bounded queue of [`QUEUE_RECORDS`]
//! records. Only when that queue is full (a renderer that stopped reading for that long)
//! does `present` block: losing a reliable unit on the way to the renderer would be worse.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use camp_wire::Modality;

use crate::record::{PresentFlags, PresentRecord, preamble};

/// Records queued between the receiver and the writer thread.
pub const QUEUE_RECORDS: usize = 4096;

/// Where `camp-client --present` sends units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkTarget {
    /// The record stream on standard output (`-` or `stdout`).
    Stdout,
    /// The record stream to a Unix stream socket that a renderer listens on (`unix:PATH`).
    Unix(PathBuf),
    /// One payload file and one index per modality in a directory (`dir:PATH`).
    Directory(PathBuf),
}

impl std::str::FromStr for SinkTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "-" || s == "stdout" {
            Ok(SinkTarget::Stdout)
        } else if let Some(p) = s.strip_prefix("unix:").filter(|p| !p.is_empty()) {
            Ok(SinkTarget::Unix(p.into()))
        } else if let Some(p) = s.strip_prefix("dir:").filter(|p| !p.is_empty()) {
            Ok(SinkTarget::Directory(p.into()))
        } else {
            Err(format!("{s:?}: expected stdout, -, unix:PATH or dir:PATH"))
        }
    }
}

/// Why a sink failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Opening the socket, directory or files failed.
    #[error("opening {target}: {source}")]
    Open {
        /// What was being opened.
        target: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing failed (the renderer went away, the disk is full); later units are not sent.
    #[error("writing presented units: {0}")]
    Write(#[source] std::io::Error),
    /// A payload too long for the record format (cannot come from a CAMP receiver).
    #[error(transparent)]
    Record(#[from] crate::record::DecodeError),
    /// The writer thread could not be started or panicked.
    #[error("presentation writer thread: {0}")]
    Thread(String),
}

enum Job {
    Stream(Vec<u8>),
    File {
        modality: Modality,
        row: String,
        payload: Vec<u8>,
    },
}

/// An open sink with its writer thread.
#[derive(Debug)]
pub struct PresentSink {
    tx: Option<SyncSender<Job>>,
    directory: bool,
    thread: Option<JoinHandle<Result<u64, std::io::Error>>>,
    presented: u64,
}

impl PresentSink {
    /// Opens `target`: connects the socket, creates the directory and its files, writes
    /// the stream preamble.
    ///
    /// # Errors
    /// [`SinkError::Open`] or [`SinkError::Thread`].
    pub fn open(target: &SinkTarget) -> Result<Self, SinkError> {
        let open_err = |t: &dyn std::fmt::Debug| {
            let target = format!("{t:?}");
            move |source| SinkError::Open { target, source }
        };
        let (tx, rx) = sync_channel::<Job>(QUEUE_RECORDS);
        let spawn = |name: &str, f: Box<dyn FnOnce() -> std::io::Result<u64> + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| SinkError::Thread(e.to_string()))
        };
        let (directory, thread) = match target {
            SinkTarget::Stdout => (
                false,
                spawn(
                    "camp-present",
                    Box::new(move || stream_writer(std::io::stdout().lock(), &rx)),
                )?,
            ),
            SinkTarget::Unix(p) => {
                let s = UnixStream::connect(p).map_err(open_err(p))?;
                (
                    false,
                    spawn("camp-present", Box::new(move || stream_writer(s, &rx)))?,
                )
            }
            SinkTarget::Directory(d) => {
                let files = DirectoryFiles::create(d).map_err(open_err(d))?;
                (
                    true,
                    spawn("camp-present", Box::new(move || files.write_all(&rx)))?,
                )
            }
        };
        Ok(PresentSink {
            tx: Some(tx),
            directory,
            thread: Some(thread),
            presented: 0,
        })
    }

    /// Hands one presented unit to the renderer (queued for the writer thread).
    ///
    /// # Errors
    /// [`SinkError::Write`] once the writer has stopped (its error comes from
    /// [`PresentSink::close`]); [`SinkError::Record`] for an impossible payload.
    pub fn present(&mut self, r: &PresentRecord<'_>) -> Result<(), SinkError> {
        let job = if self.directory {
            Job::File {
                modality: r.modality,
                row: index_row(r),
                payload: r.payload.to_vec(),
            }
        } else {
            let mut buf = Vec::with_capacity(r.encoded_len());
            r.emit(&mut buf)?;
            Job::Stream(buf)
        };
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(job).is_ok());
        if !sent {
            return Err(SinkError::Write(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the presentation writer stopped",
            )));
        }
        self.presented += 1;
        Ok(())
    }

    /// Units handed over so far.
    pub fn presented(&self) -> u64 {
        self.presented
    }

    /// Flushes everything queued and closes the sink; returns the units written.
    ///
    /// # Errors
    /// The writer's I/O error, if it hit one.
    pub fn close(mut self) -> Result<u64, SinkError> {
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r.map_err(SinkError::Write),
            Some(Err(_)) => Err(SinkError::Thread("panicked".into())),
            None => Ok(0),
        }
    }
}

impl Drop for PresentSink {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn stream_writer(out: impl Write, rx: &Receiver<Job>) -> std::io::Result<u64> {
    let mut out = BufWriter::new(out);
    out.write_all(&preamble())?;
    out.flush()?;
    let mut n = 0;
    while let Ok(first) = rx.recv() {
        // Write what is queued, then flush: a renderer wants each unit at its presentation
        // time, not when a buffer happens to fill.
        let mut job = Some(first);
        while let Some(j) = job {
            if let Job::Stream(b) = j {
                out.write_all(&b)?;
                n += 1;
            }
            job = rx.try_recv().ok();
        }
        out.flush()?;
    }
    out.flush()?;
    Ok(n)
}

/// Header line of every `<modality>.csv` index.
pub const INDEX_HEADER: &str = "seq,sync_index,gen_us,present_us,arrival_us,capture_id,path,keyframe,end_of_utterance,end_of_turn,skipped,late,offset,len";

/// The directory sink: `<modality>.bin` holds the payloads of that modality back to back in
/// presentation order (so an elementary stream such as ADTS AAC or Annex B H.264 is a
/// playable file), `<modality>.csv` one index row per unit, with the byte range of its payload.
struct DirectoryFiles {
    streams: [(BufWriter<File>, BufWriter<File>, u64); Modality::COUNT],
}

impl DirectoryFiles {
    fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let open = |m: Modality| -> std::io::Result<(BufWriter<File>, BufWriter<File>, u64)> {
            let bin = BufWriter::new(File::create(dir.join(format!("{m}.bin")))?);
            let mut csv = BufWriter::new(File::create(dir.join(format!("{m}.csv")))?);
            writeln!(csv, "{INDEX_HEADER}")?;
            Ok((bin, csv, 0))
        };
        Ok(DirectoryFiles {
            streams: [
                open(Modality::Text)?,
                open(Modality::Audio)?,
                open(Modality::Video)?,
            ],
        })
    }

    fn write_all(mut self, rx: &Receiver<Job>) -> std::io::Result<u64> {
        let mut n = 0;
        while let Ok(job) = rx.recv() {
            if let Job::File {
                modality,
                row,
                payload,
            } = job
            {
                let (bin, csv, offset) = &mut self.streams[modality.index()];
                bin.write_all(&payload)?;
                writeln!(csv, "{row},{offset},{}", payload.len())?;
                *offset += payload.len() as u64;
                bin.flush()?;
                csv.flush()?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// The index row of a unit, without its byte range.
fn index_row(r: &PresentRecord<'_>) -> String {
    let bit = |f: PresentFlags| u8::from(r.flags.contains(f));
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{}",
        r.seq,
        r.sync_index,
        r.gen_us,
        r.present_us,
        r.arrival_us,
        r.capture_id.0,
        r.path.0,
        bit(PresentFlags::KEYFRAME),
        bit(PresentFlags::END_OF_UTTERANCE),
        bit(PresentFlags::END_OF_TURN),
        bit(PresentFlags::SKIPPED),
        bit(PresentFlags::LATE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Decoder, OwnedRecord};
    use camp_wire::{CaptureId, PathId};
    use std::io::Read;
    use std::os::unix::net::UnixListener;

    fn unit(modality: Modality, seq: u64, payload: &[u8]) -> OwnedRecord {
        OwnedRecord {
            modality,
            flags: if seq == 0 {
                PresentFlags::KEYFRAME
            } else {
                PresentFlags::empty()
            },
            capture_id: CaptureId(0),
            sync_index: seq as u32,
            seq,
            gen_us: 1000 + seq * 20_000,
            present_us: 50_000 + seq * 20_000,
            arrival_us: 40_000 + seq * 20_000,
            path: PathId(0),
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn targets_parse() {
        assert_eq!("-".parse(), Ok(SinkTarget::Stdout));
        assert_eq!("stdout".parse(), Ok(SinkTarget::Stdout));
        assert_eq!(
            "unix:/tmp/r.sock".parse(),
            Ok(SinkTarget::Unix("/tmp/r.sock".into()))
        );
        assert_eq!("dir:out".parse(), Ok(SinkTarget::Directory("out".into())));
        assert!("unix:".parse::<SinkTarget>().is_err());
        assert!("file.bin".parse::<SinkTarget>().is_err());
    }

    #[test]
    fn a_unix_socket_renderer_gets_the_records_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("render.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let renderer = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut d = Decoder::new();
            let mut got = Vec::new();
            let mut buf = [0u8; 7];
            loop {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                d.push(&buf[..n]);
                while let Some(r) = d.next_record().unwrap() {
                    got.push(r.to_owned_record());
                }
            }
            d.finish().unwrap();
            got
        });
        let sent: Vec<OwnedRecord> = (0..5)
            .map(|i| unit(Modality::Audio, i, &[i as u8; 33]))
            .collect();
        let mut sink = PresentSink::open(&SinkTarget::Unix(path)).unwrap();
        for r in &sent {
            sink.present(&r.as_record()).unwrap();
        }
        assert_eq!(sink.close().unwrap(), 5);
        assert_eq!(renderer.join().unwrap(), sent);
    }

    #[test]
    fn the_directory_sink_writes_streams_and_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut sink = PresentSink::open(&SinkTarget::Directory(out.clone())).unwrap();
        sink.present(&unit(Modality::Video, 0, b"key").as_record())
            .unwrap();
        sink.present(&unit(Modality::Audio, 0, b"a0").as_record())
            .unwrap();
        sink.present(&unit(Modality::Video, 1, b"delta").as_record())
            .unwrap();
        assert_eq!(sink.close().unwrap(), 3);
        assert_eq!(std::fs::read(out.join("video.bin")).unwrap(), b"keydelta");
        assert_eq!(std::fs::read(out.join("audio.bin")).unwrap(), b"a0");
        assert_eq!(std::fs::read(out.join("text.bin")).unwrap(), b"");
        let csv = std::fs::read_to_string(out.join("video.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], INDEX_HEADER);
        assert_eq!(lines[1], "0,0,1000,50000,40000,0,0,1,0,0,0,0,0,3");
        assert_eq!(lines[2], "1,1,21000,70000,60000,0,0,0,0,0,0,0,3,5");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn a_missing_socket_is_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = PresentSink::open(&SinkTarget::Unix(dir.path().join("none.sock")));
        assert!(matches!(e, Err(SinkError::Open { .. })));
    }
}
