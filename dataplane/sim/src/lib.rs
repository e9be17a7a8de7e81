//! Deterministic multipath simulator for CAMP.
//!
//! A virtual clock, a seeded RNG and per-path links (delay, jitter, bottleneck queue,
//! loss, outages) connect the real CAMP [`Server`] and [`Client`], which run real
//! quinn-proto with real TLS 1.3. What is measured is the code that ships.
#![forbid(unsafe_code)]

pub mod experiment;
pub mod link;
pub mod matrix;
pub mod net;
pub mod pcap;
pub mod profile;
pub mod run;

use std::time::Instant;

use camp_proto::client::{Client, ClientConfig, PathSpec};
use camp_proto::config::{CampConfig, SchedulerFactory};
use camp_proto::server::{Server, ServerConfig};
use camp_recv::ReceiverConfig;

/// The turn workload, now its own crate (`camp-workload`); re-exported so
/// `camp_sim::workload::...` paths keep working.
pub use camp_workload as workload;

pub use camp_proto::Driven;
pub use link::{Capacity, Link, LinkConfig, Loss};
pub use net::{ClientNode, PathConfig, Sim, client_addr, server_addr};

/// Everything needed to build a simulated CAMP server and client.
#[derive(Clone)]
pub struct Setup {
    /// The emulated paths.
    pub paths: Vec<PathConfig>,
    /// The server's scheduler.
    pub scheduler: SchedulerFactory,
    /// The client's receiver settings (playout policy and so on).
    pub receiver: ReceiverConfig,
    /// Shared CAMP settings for both ends.
    pub camp: CampConfig,
    /// Seed of the network, the endpoints' randomness and the workload.
    pub seed: u64,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("paths", &self.paths)
            .field("seed", &self.seed)
            .finish()
    }
}

fn seed32(seed: u64, salt: u8) -> [u8; 32] {
    let mut s = [salt; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s
}

/// Builds a server and a client over `setup.paths`, both with their session clock at the
/// simulator's epoch, the client configured to open every path.
pub fn build(setup: &Setup, epoch: Instant) -> Sim<Server, ClientNode> {
    build_with_roots(setup, epoch).0
}

/// Like [`build`], also returning the server's certificate chain so that extra nodes (for
/// example an attacker with a valid TLS client) can connect too.
pub fn build_with_roots(
    setup: &Setup,
    epoch: Instant,
) -> (
    Sim<Server, ClientNode>,
    Vec<rustls::pki_types::CertificateDer<'static>>,
) {
    build_inner(setup, epoch, None)
}

/// Like [`build`], capturing every datagram ([`Sim::start_capture`]) and logging the
/// client's TLS secrets into the returned key log, so the capture can be decrypted.
pub fn build_captured(
    setup: &Setup,
    epoch: Instant,
) -> (Sim<Server, ClientNode>, std::sync::Arc<pcap::KeyLogBuf>) {
    let keys = pcap::KeyLogBuf::new();
    let (mut sim, _) = build_inner(setup, epoch, Some(keys.clone()));
    sim.start_capture();
    (sim, keys)
}

fn build_inner(
    setup: &Setup,
    epoch: Instant,
    key_log: Option<std::sync::Arc<dyn rustls::KeyLog>>,
) -> (
    Sim<Server, ClientNode>,
    Vec<rustls::pki_types::CertificateDer<'static>>,
) {
    let identity = camp_proto::tls::self_signed(&["camp.test"]).expect("certificate generation");
    let roots = identity.chain.clone();
    let roots_out = roots.clone();
    let server_crypto = camp_proto::tls::server_crypto(identity).expect("server tls");
    let client_crypto = camp_proto::tls::client_crypto_logged(&roots, key_log).expect("client tls");
    let n = setup.paths.len();
    let server = Server::new(
        ServerConfig {
            camp: setup.camp.clone(),
            local_addrs: (0..n).map(server_addr).collect(),
            crypto: server_crypto,
            scheduler: setup.scheduler.clone(),
            rng_seed: seed32(setup.seed, 1),
            lb: None,
        },
        epoch,
    );
    let client = Client::new(
        ClientConfig {
            camp: setup.camp.clone(),
            paths: (0..n)
                .map(|i| PathSpec {
                    local: client_addr(i),
                    remote: server_addr(i),
                })
                .collect(),
            crypto: client_crypto,
            server_name: "camp.test".into(),
            receiver: setup.receiver,
            rng_seed: seed32(setup.seed, 2),
            shared_clock: true,
        },
        epoch,
        epoch,
    )
    .expect("client start");
    let sim = Sim::new(
        server,
        ClientNode::new(client),
        &setup.paths,
        epoch,
        setup.seed,
    );
    (sim, roots_out)
}
