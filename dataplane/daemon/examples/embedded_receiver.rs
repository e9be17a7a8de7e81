//! An application that embeds the CAMP receiver instead of running camp-client.
//!
//! It starts campd in this process on 127.0.0.1 (a synthetic one-second LLM turn, a
//! self-signed certificate in a temporary directory), then opens a session with the sans-IO
//! `camp_proto::client::Client` driven by `camp_engine::Engine` over kernel UDP, and hands
//! every unit `camp_recv::Receiver::poll_playout` releases to a "renderer" (here: a line on
//! stderr and a tally) as a `camp_present::PresentRecord`, at its presentation time.
//!
//! ```sh
//! cargo run -p campd --example embedded_receiver
//! ```
//!
//! `tests/example.rs` runs it and checks what it returns.

use std::error::Error;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use camp_engine::{Engine, EngineConfig, Tick};
use camp_present::{PresentFlags, PresentRecord};
use camp_proto::client::{Client, ClientConfig, PathSpec};
use camp_proto::config::CampConfig;
use camp_recv::ReceiverConfig;
use camp_wire::Modality;
use camp_xdp::UdpIo;
use clap::Parser;

/// What the renderer saw.
#[derive(Debug, Default)]
pub struct Rendered {
    /// Units shown per modality (skipped video not counted).
    pub shown: [u64; Modality::COUNT],
    /// Payload bytes per modality.
    pub bytes: [u64; Modality::COUNT],
    /// Modalities whose END_OF_TURN unit was presented.
    pub ended: [bool; Modality::COUNT],
    /// Largest |(present − first present) − (gen − first gen)| over audio, µs: how far
    /// audio playback drifted from its media clock.
    pub audio_drift_us: u64,
    /// Units the server reported submitting, per modality.
    pub submitted: [u64; Modality::COUNT],
}

impl Rendered {
    /// The renderer: tallies one presented unit (and prints it when `verbose`).
    /// `first_audio` is the (present, gen) time of the first audio unit.
    fn render(
        &mut self,
        r: &PresentRecord<'_>,
        first_audio: &mut Option<(u64, u64)>,
        verbose: bool,
    ) {
        let m = r.modality.index();
        if !r.flags.contains(PresentFlags::SKIPPED) {
            self.shown[m] += 1;
        }
        self.bytes[m] += r.payload.len() as u64;
        if r.flags.contains(PresentFlags::END_OF_TURN) {
            self.ended[m] = true;
        }
        if r.modality == Modality::Audio {
            let (p0, g0) = *first_audio.get_or_insert((r.present_us, r.gen_us));
            // Signed: with a falling playout delay a unit may play earlier than its media time says.
            let played = r.present_us as i64 - p0 as i64;
            let media = r.gen_us as i64 - g0 as i64;
            let drift = played.abs_diff(media);
            self.audio_drift_us = self.audio_drift_us.max(drift);
        }
        if verbose {
            eprintln!(
                "{:>8} µs  {:<5} k={:<4} seq={:<4} {:>5} B{}{}",
                r.present_us,
                r.modality.to_string(),
                r.sync_index,
                r.seq,
                r.payload.len(),
                if r.flags.contains(PresentFlags::KEYFRAME) {
                    " key"
                } else {
                    ""
                },
                if r.flags.contains(PresentFlags::END_OF_TURN) {
                    " end-of-turn"
                } else {
                    ""
                },
            );
        }
    }
}

fn free_port() -> Result<u16, std::io::Error> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs campd and the embedded receiver for one turn; returns what was rendered.
pub fn run(verbose: bool) -> Result<Rendered, Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let cert = dir.path().join("cert.der");
    let port = free_port()?;
    let cli = campd::config::Cli::try_parse_from([
        "campd",
        "--address",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--io",
        "udp",
        "--self-signed",
        "--cert-out",
        cert.to_str().ok_or("temporary path is not UTF-8")?,
        "--control-socket",
        "none",
        "--prometheus",
        "off",
        "--turn-ms",
        "1000",
    ])?;
    let settings = campd::config::load(&cli)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let t0 = Instant::now();
    let daemon = std::thread::spawn(move || {
        campd::daemon::run(&settings, || {
            flag.load(Ordering::Acquire) || t0.elapsed() > Duration::from_secs(30)
        })
    });
    let mut waited = 0;
    while !cert.exists() && waited < 500 {
        std::thread::sleep(Duration::from_millis(10));
        waited += 1;
    }

    // The receiver proper: one path, trusting campd's certificate.
    let local: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let remote: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let start = Instant::now();
    let client = Client::new(
        ClientConfig {
            camp: CampConfig::default(),
            paths: vec![PathSpec { local, remote }],
            crypto: campd::tls::client_crypto(&cert, false)?,
            server_name: "camp.test".into(),
            receiver: ReceiverConfig::default(),
            rng_seed: [7; 32],
            shared_clock: false,
        },
        start,
        start,
    )?;
    let mut engine = Engine::new(client, UdpIo::open(&[local])?, EngineConfig::default());
    let mut out = Rendered::default();
    let mut first_audio = None;
    engine.run_for(Duration::from_secs(20), |node, now| {
        while let Some(p) = node.poll_playout(now) {
            out.render(&PresentRecord::from_played(&p), &mut first_audio, verbose);
        }
        // The synthetic turn ends every modality with END_OF_TURN; video may lose its last
        // frame, so text and audio decide.
        if out.ended[Modality::Text.index()] && out.ended[Modality::Audio.index()] {
            Tick::Stop
        } else {
            Tick::Continue
        }
    })?;
    engine.node_mut().close(Instant::now());
    let _ = engine.run_for(Duration::from_millis(200), |_, _| Tick::Continue);
    stop.store(true, Ordering::Release);
    let report = daemon.join().map_err(|_| "campd thread panicked")??;
    out.submitted = report.units_submitted;
    Ok(out)
}

fn main() -> Result<(), Box<dyn Error>> {
    let r = run(true)?;
    println!(
        "shown text {} audio {} video {} (campd submitted {:?}); audio drift from media time {} µs",
        r.shown[0], r.shown[1], r.shown[2], r.submitted, r.audio_drift_us
    );
    Ok(())
}
