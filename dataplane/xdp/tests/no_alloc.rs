//! The AF_XDP hot path (wait -> recv_batch -> parse -> send -> flush)
//! allocates nothing per packet once warmed up. Root only.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use camp_testkit::alloc::{CountingAlloc, counted};
use camp_xdp::io::TxDatagram;
use camp_xdp::{AttachMode, Ecn, PacketIo, XdpConfig, XdpIo};
use common::{Netns, root_or_skip, veth};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const SLOTS: usize = 64;

/// Echoes up to `count` datagrams using only stack buffers.
fn echo(io: &mut XdpIo, count: usize, deadline: Duration) -> usize {
    let end = Instant::now() + deadline;
    let mut echoed = 0;
    let unspec = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut addrs = [(unspec, unspec, Ecn::NotEct); SLOTS];
    let mut bufs = [[0u8; 256]; SLOTS];
    let mut lens = [0usize; SLOTS];
    while echoed < count && Instant::now() < end {
        io.wait(Duration::from_millis(20)).expect("wait");
        let mut n = 0;
        io.recv_batch(&mut |d| {
            if n < SLOTS && d.payload.len() <= 256 {
                addrs[n] = (d.local, d.remote, d.ecn);
                bufs[n][..d.payload.len()].copy_from_slice(d.payload);
                lens[n] = d.payload.len();
                n += 1;
            }
        })
        .expect("recv");
        for i in 0..n {
            let (l, r, e) = addrs[i];
            while let Err(err) = io.send(&TxDatagram::new(l, r, e, &bufs[i][..lens[i]])) {
                assert!(matches!(err, camp_xdp::IoError::WouldBlock), "send: {err}");
                io.flush().expect("flush");
            }
        }
        io.flush().expect("flush");
        echoed += n;
    }
    echoed
}

fn ping_pong(sock: &UdpSocket, to: SocketAddr, count: u32) -> u32 {
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 512];
    let mut received = 0;
    let (mut sent, window) = (0u32, 16u32);
    while received < count {
        while sent < count && sent - received < window {
            sock.send_to(&sent.to_be_bytes(), to).unwrap();
            sent += 1;
        }
        if sock.recv_from(&mut buf).is_err() {
            break;
        }
        received += 1;
    }
    received
}

#[test]
fn hot_path_allocates_nothing_per_packet() {
    if !root_or_skip("hot_path_allocates_nothing_per_packet") {
        return;
    }
    let xdp = Netns::new("na");
    let peer = Netns::new("np");
    veth(&xdp, "xa0", "198.18.0.1", &peer, "xb0", "198.18.0.2");
    const WARM: u32 = 100;
    const N: u32 = 2000;
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let server = xdp.spawn(move || {
        let cfg = XdpConfig {
            interfaces: vec!["xa0".into()],
            ports: vec![4433],
            attach: AttachMode::Native,
            ..XdpConfig::default()
        };
        let mut io = XdpIo::open(&cfg).expect("open");
        ready_tx.send(()).unwrap();
        // Warm-up: learns the peer's MAC, touches every code path once.
        let warm = echo(&mut io, WARM as usize, Duration::from_secs(10));
        let (echoed, allocs) =
            counted(|| echo(&mut io, (WARM + N) as usize - warm, Duration::from_secs(30)));
        (warm, echoed, allocs)
    });
    ready.recv_timeout(Duration::from_secs(20)).unwrap();
    let received = peer.enter(|| {
        let sock = UdpSocket::bind("198.18.0.2:5000").unwrap();
        ping_pong(&sock, "198.18.0.1:4433".parse().unwrap(), WARM + N)
    });
    let (warm, echoed, allocs) = server.join().unwrap();
    assert_eq!(warm + echoed, (WARM + N) as usize);
    assert_eq!(received, WARM + N);
    assert_eq!(
        allocs, 0,
        "allocations on the hot path for {echoed} datagrams"
    );
}
