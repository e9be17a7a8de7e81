//! AF_XDP end-to-end tests between two network namespaces joined by veth.
//! Root only; each test creates and deletes its own namespaces.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use camp_xdp::io::TxDatagram;
use camp_xdp::nic::NicError;
use camp_xdp::{AttachMode, AttachedMode, PacketIo, XdpConfig, XdpError, XdpIo};
use common::{Netns, root_or_skip, run, run_in, veth, xdp_attached};

const PORT: u16 = 4433;

fn config(ifs: &[&str], attach: AttachMode) -> XdpConfig {
    XdpConfig {
        interfaces: ifs.iter().map(|s| (*s).to_owned()).collect(),
        ports: vec![PORT],
        attach,
        ..XdpConfig::default()
    }
}

fn camp_frame() -> Vec<u8> {
    let h = camp_xdp::frame::FrameHeader {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        vlan: None,
        src: "198.18.0.2:5000".parse().unwrap(),
        dst: "198.18.0.1:4433".parse().unwrap(),
        ecn: camp_xdp::Ecn::NotEct,
        ttl: 64,
    };
    let mut buf = vec![0u8; 128];
    let n = camp_xdp::frame::write_udp(&mut buf, &h, b"x").unwrap();
    buf.truncate(n);
    buf
}

/// Echoes every datagram back until `count` were echoed or `deadline`.
fn echo(io: &mut XdpIo, count: usize, deadline: Duration) -> usize {
    let end = Instant::now() + deadline;
    let mut echoed = 0;
    let mut batch: Vec<(SocketAddr, SocketAddr, camp_xdp::Ecn, Vec<u8>)> = Vec::new();
    while echoed < count && Instant::now() < end {
        io.wait(Duration::from_millis(20)).expect("wait");
        io.recv_batch(&mut |d| batch.push((d.local, d.remote, d.ecn, d.payload.to_vec())))
            .expect("recv");
        for (local, remote, ecn, payload) in batch.drain(..) {
            loop {
                match io.send(&TxDatagram::new(local, remote, ecn, &payload)) {
                    Ok(()) => break,
                    Err(camp_xdp::IoError::WouldBlock) => io.flush().expect("flush"),
                    Err(e) => panic!("send: {e}"),
                }
            }
            echoed += 1;
        }
        io.flush().expect("flush");
    }
    echoed
}

/// Sends `count` numbered datagrams from `sock` to `to` with at most
/// `window` unanswered, and checks every echo comes back intact from `to`.
fn ping_pong(sock: &UdpSocket, to: SocketAddr, count: u32, window: u32) -> u32 {
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut sent = 0u32;
    let mut received = 0u32;
    let mut buf = [0u8; 2048];
    while received < count {
        while sent < count && sent - received < window {
            let mut msg = [0u8; 200];
            msg[..4].copy_from_slice(&sent.to_be_bytes());
            msg[4..].fill((sent % 251) as u8);
            sock.send_to(&msg, to).unwrap();
            sent += 1;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                assert_eq!(from, to, "echo came from the wrong address");
                assert_eq!(n, 200);
                let seq = u32::from_be_bytes(buf[..4].try_into().unwrap());
                assert!(
                    buf[4..n].iter().all(|b| *b == (seq % 251) as u8),
                    "payload corrupted"
                );
                received += 1;
            }
            Err(_) => break, // lost: reported by the caller's assertion
        }
    }
    received
}

fn echo_test(attach: AttachMode, expect: AttachedMode) {
    let xdp = Netns::new("xe");
    let peer = Netns::new("pe");
    veth(&xdp, "xa0", "198.18.0.1", &peer, "xb0", "198.18.0.2");
    const N: u32 = 2000;

    let (ready_tx, ready) = std::sync::mpsc::channel();
    let server = {
        let xdp_name = xdp.name.clone();
        xdp.spawn(move || {
            let mut io = XdpIo::open(&config(&["xa0"], attach)).expect("open XdpIo");
            ready_tx.send(()).unwrap();
            let report = io.report();
            assert_eq!(report[0].attach, expect);
            // veth has no zero-copy AF_XDP: auto bind must pick copy mode.
            assert_eq!(report[0].queues, vec![camp_xdp::xsk::BindMode::Copy]);
            eprintln!("{xdp_name}: {report:?}");
            // A kernel socket on another port keeps working.
            let other = UdpSocket::bind("198.18.0.1:7000").unwrap();
            other
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let echoed = echo(&mut io, N as usize, Duration::from_secs(30));
            let mut buf = [0u8; 64];
            let (n, _) = other
                .recv_from(&mut buf)
                .expect("kernel socket on another port got nothing");
            assert_eq!(&buf[..n], b"not camp");
            let counters = io.classifier("xa0").unwrap().global_counters().unwrap();
            let remote = io
                .classifier("xa0")
                .unwrap()
                .remote_endpoint("198.18.0.2:5000".parse().unwrap())
                .unwrap();
            // The same counters through handles read on another thread.
            let handles = io.stats_handles().unwrap();
            let (g2, r2) = std::thread::spawn(move || {
                let (name, mode, h) = &handles[0];
                assert_eq!((name.as_str(), *mode), ("xa0", expect));
                (h.global_counters().unwrap(), h.remote_stats().unwrap())
            })
            .join()
            .unwrap();
            assert_eq!(g2.redirected, counters.redirected, "no traffic in between");
            let r2 = r2
                .iter()
                .find(|(ep, _)| *ep == "198.18.0.2:5000".parse::<std::net::SocketAddr>().unwrap())
                .map(|(_, s)| *s);
            assert_eq!(r2, remote);
            let leaks = io.drain_kernel_leaks();
            // With a socket registered on queue 0, the program redirects.
            let frame = camp_frame();
            assert_eq!(
                io.classifier("xa0").unwrap().test_run(&frame).unwrap(),
                4,
                "XDP_REDIRECT"
            );
            (echoed, counters, remote, leaks, io.counters())
        })
    };

    ready
        .recv_timeout(Duration::from_secs(20))
        .expect("XDP side did not come up");
    let received = peer.enter(|| {
        let sock = UdpSocket::bind("198.18.0.2:5000").unwrap();
        let received = ping_pong(&sock, "198.18.0.1:4433".parse().unwrap(), N, 32);
        sock.send_to(b"not camp", "198.18.0.1:7000").unwrap();
        received
    });
    // ICMP still reaches the kernel while the classifier is attached.
    run_in(&peer, &["ping", "-c", "2", "-W", "2", "198.18.0.1"]);
    let (echoed, counters, remote, leaks, io_counters) = server.join().expect("server thread");
    eprintln!("classifier {counters:?}\nremote {remote:?}\nio {io_counters:?}\nleaks {leaks}");
    assert_eq!(received, N, "lost datagrams (echoed {echoed})");
    assert_eq!(echoed, N as usize);
    assert_eq!(leaks, 0, "CAMP datagrams reached the kernel socket");
    assert_eq!(counters.redirected.packets, u64::from(N));
    assert!(
        counters.pass_other.packets >= 1,
        "ARP / other port / ICMP must be passed: {counters:?}"
    );
    let remote = remote.expect("remote endpoint telemetry");
    assert_eq!(remote.redirected, u64::from(N));
    assert_eq!(io_counters.rx_packets, u64::from(N));
    assert_eq!(io_counters.tx_packets, u64::from(N));
    assert_eq!(io_counters.rx_malformed, 0);
    // Dropping the I/O detached the classifier.
    assert!(
        !xdp_attached(&xdp, "xa0"),
        "XDP program still attached after drop"
    );
}

#[test]
fn echo_native_xdp() {
    if root_or_skip("echo_native_xdp") {
        echo_test(AttachMode::Native, AttachedMode::Native);
    }
}

#[test]
fn echo_generic_xdp() {
    if root_or_skip("echo_generic_xdp") {
        echo_test(AttachMode::Generic, AttachedMode::Generic);
    }
}

#[test]
fn two_nics_from_one_thread() {
    if !root_or_skip("two_nics_from_one_thread") {
        return;
    }
    let xdp = Netns::new("x2");
    let peer = Netns::new("p2");
    veth(&xdp, "xa0", "198.18.0.1", &peer, "xb0", "198.18.0.2");
    veth(&xdp, "xa1", "198.18.1.1", &peer, "xb1", "198.18.1.2");
    const N: u32 = 500;
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let server = xdp.spawn(move || {
        let mut io = XdpIo::open(&config(&["xa0", "xa1"], AttachMode::Auto)).expect("open XdpIo");
        ready_tx.send(()).unwrap();
        assert_eq!(io.report().len(), 2);
        let echoed = echo(&mut io, 2 * N as usize, Duration::from_secs(30));
        let a = io
            .classifier("xa0")
            .unwrap()
            .global_counters()
            .unwrap()
            .redirected
            .packets;
        let b = io
            .classifier("xa1")
            .unwrap()
            .global_counters()
            .unwrap()
            .redirected
            .packets;
        (echoed, a, b)
    });
    ready
        .recv_timeout(Duration::from_secs(20))
        .expect("XDP side did not come up");
    let (r0, r1) = peer.enter(|| {
        std::thread::scope(|s| {
            let h0 = s.spawn(|| {
                let sock = UdpSocket::bind("198.18.0.2:5000").unwrap();
                ping_pong(&sock, "198.18.0.1:4433".parse().unwrap(), N, 16)
            });
            // Threads inherit the namespace of the thread that spawns them.
            let sock = UdpSocket::bind("198.18.1.2:5001").unwrap();
            let r1 = ping_pong(&sock, "198.18.1.1:4433".parse().unwrap(), N, 16);
            (h0.join().unwrap(), r1)
        })
    });
    let (echoed, a, b) = server.join().unwrap();
    assert_eq!((r0, r1), (N, N), "lost datagrams (echoed {echoed})");
    assert_eq!(
        (a, b),
        (u64::from(N), u64::from(N)),
        "each NIC must carry its own path"
    );
}

#[test]
fn missing_interface_is_an_error() {
    if !root_or_skip("missing_interface_is_an_error") {
        return;
    }
    let ns = Netns::new("mi");
    let err = ns.enter(|| XdpIo::open(&config(&["camp-nope0"], AttachMode::Auto)).unwrap_err());
    assert!(
        matches!(err, XdpError::Nic(NicError::NoSuchInterface(ref n)) if n == "camp-nope0"),
        "{err}"
    );
}

#[test]
fn native_xdp_unsupported_is_an_error() {
    if !root_or_skip("native_xdp_unsupported_is_an_error") {
        return;
    }
    // Loopback has no driver XDP: native mode must fail cleanly.
    let ns = Netns::new("nx");
    run_in(&ns, &["ip", "addr", "add", "198.18.9.1/32", "dev", "lo"]);
    let err = ns.enter(|| XdpIo::open(&config(&["lo"], AttachMode::Native)).unwrap_err());
    match &err {
        XdpError::Classifier(camp_xdp::classifier::ClassifierError::Attach { .. }) => {
            assert!(err.is_unsupported(), "{err}");
        }
        other => panic!("unexpected error: {other}"),
    }
}

#[test]
fn gro_in_generic_mode_is_refused() {
    if !root_or_skip("gro_in_generic_mode_is_refused") {
        return;
    }
    let xdp = Netns::new("gr");
    let peer = Netns::new("gp");
    veth(&xdp, "xa0", "198.18.0.1", &peer, "xb0", "198.18.0.2");
    run_in(&xdp, &["ethtool", "-K", "xa0", "gro", "on"]);
    let err = xdp.enter(|| XdpIo::open(&config(&["xa0"], AttachMode::Generic)).unwrap_err());
    assert!(
        matches!(err, XdpError::Offload(ref m) if m.contains("GRO")),
        "{err}"
    );
    assert!(
        !xdp_attached(&xdp, "xa0"),
        "refused setup must not leave XDP attached"
    );
}

#[test]
fn forced_zero_copy_on_veth_fails_and_auto_falls_back_to_udp() {
    if !root_or_skip("forced_zero_copy_on_veth_fails_and_auto_falls_back_to_udp") {
        return;
    }
    let xdp = Netns::new("zc");
    let peer = Netns::new("zp");
    veth(&xdp, "xa0", "198.18.0.1", &peer, "xb0", "198.18.0.2");
    let mut cfg = config(&["xa0"], AttachMode::Auto);
    cfg.xsk.bind = camp_xdp::xsk::BindPreference::ZeroCopy;
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let server = xdp.spawn(move || {
        let err = XdpIo::open(&cfg).unwrap_err();
        assert!(
            matches!(
                err,
                XdpError::Socket {
                    source: camp_xdp::xsk::XskError::NoZeroCopy { .. },
                    ..
                }
            ),
            "{err}"
        );
        let mut io = camp_xdp::open_io(camp_xdp::IoMode::Auto, &cfg).expect("auto mode");
        assert_eq!(io.kind(), camp_xdp::IoKind::Udp);
        assert_eq!(
            io.local_addrs(),
            vec!["198.18.0.1:4433".parse::<SocketAddr>().unwrap()]
        );
        ready_tx.send(()).unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        let mut echoed = 0;
        let mut batch = Vec::new();
        while echoed < 100 && Instant::now() < end {
            io.wait(Duration::from_millis(20)).unwrap();
            io.recv_batch(&mut |d| batch.push((d.local, d.remote, d.payload.to_vec())))
                .unwrap();
            for (l, r, p) in batch.drain(..) {
                io.send(&TxDatagram::new(l, r, camp_xdp::Ecn::NotEct, &p))
                    .unwrap();
                echoed += 1;
            }
        }
        echoed
    });
    ready
        .recv_timeout(Duration::from_secs(20))
        .expect("server did not come up");
    let received = peer.enter(|| {
        let sock = UdpSocket::bind("198.18.0.2:5000").unwrap();
        ping_pong(&sock, "198.18.0.1:4433".parse().unwrap(), 100, 8)
    });
    assert_eq!(server.join().unwrap(), 100);
    assert_eq!(received, 100);
    assert!(!xdp_attached(&xdp, "xa0"));
}

#[test]
fn next_hop_resolved_through_kernel_tables_and_refreshed() {
    if !root_or_skip("next_hop_resolved_through_kernel_tables_and_refreshed") {
        return;
    }
    let xdp = Netns::new("nh");
    let peer = Netns::new("np");
    veth(&xdp, "xa0", "198.18.0.1", &peer, "xb0", "198.18.0.2");
    // An off-link destination behind the peer, reached through a gateway.
    run_in(&peer, &["ip", "addr", "add", "198.19.5.1/32", "dev", "lo"]);
    run_in(
        &xdp,
        &["ip", "route", "add", "198.19.5.0/24", "via", "198.18.0.2"],
    );
    let peer_mac = run_in(&peer, &["cat", "/sys/class/net/xb0/address"])
        .trim()
        .to_owned();
    let peer_mac: Vec<u8> = peer_mac
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    let (rx_ready_tx, rx_ready) = std::sync::mpsc::channel();
    let receiver = peer.spawn(move || {
        let a = UdpSocket::bind("198.18.0.2:5000").unwrap();
        let b = UdpSocket::bind("198.19.5.1:5000").unwrap();
        rx_ready_tx.send(()).unwrap();
        let mut buf = [0u8; 64];
        a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (n, from_a) = a.recv_from(&mut buf).expect("on-link datagram");
        assert_eq!(&buf[..n], b"direct");
        let (n, from_b) = b.recv_from(&mut buf).expect("datagram through the gateway");
        assert_eq!(&buf[..n], b"via gateway");
        (from_a, from_b)
    });
    rx_ready.recv_timeout(Duration::from_secs(10)).unwrap();
    let mac = xdp.enter(move || {
        let mut io = XdpIo::open(&config(&["xa0"], AttachMode::Auto)).expect("open");
        let local: SocketAddr = "198.18.0.1:4433".parse().unwrap();
        // Nothing was received, so nothing was learned: the first attempts
        // ask the kernel, which resolves the neighbour with ARP.
        for (dst, msg) in [
            ("198.18.0.2:5000", &b"direct"[..]),
            ("198.19.5.1:5000", b"via gateway"),
        ] {
            let dst: SocketAddr = dst.parse().unwrap();
            let end = Instant::now() + Duration::from_secs(5);
            loop {
                match io.send(&TxDatagram::new(local, dst, camp_xdp::Ecn::NotEct, msg)) {
                    Ok(()) => break,
                    Err(camp_xdp::IoError::NoNextHop(_)) if Instant::now() < end => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => panic!("send to {dst}: {e}"),
                }
            }
            io.flush().unwrap();
        }
        let gw_mac = io
            .next_hop(local.ip(), "198.19.5.1".parse().unwrap())
            .unwrap();
        // A neighbour change is picked up from the kernel's notifications.
        run(&[
            "ip",
            "neigh",
            "replace",
            "198.18.0.2",
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "xa0",
            "nud",
            "permanent",
        ]);
        std::thread::sleep(Duration::from_millis(100));
        io.maintain();
        let changed = io
            .next_hop(local.ip(), "198.18.0.2".parse().unwrap())
            .unwrap();
        (gw_mac, changed)
    });
    let (from_a, from_b) = receiver.join().unwrap();
    assert_eq!(from_a, "198.18.0.1:4433".parse().unwrap());
    assert_eq!(from_b, "198.18.0.1:4433".parse().unwrap());
    assert_eq!(
        mac.0.to_vec(),
        peer_mac,
        "gateway next hop must be the peer's MAC"
    );
    assert_eq!(mac.1, [2, 0, 0, 0, 0, 0x99], "neighbour change not applied");
}

#[test]
fn multi_queue_veth_gets_one_socket_per_queue() {
    if !root_or_skip("multi_queue_veth_gets_one_socket_per_queue") {
        return;
    }
    let xdp = Netns::new("mq");
    let peer = Netns::new("mp");
    common::veth_queues(&xdp, "xa0", "198.18.0.1", &peer, "xb0", "198.18.0.2", 4);
    const FLOWS: u16 = 16;
    const PER_FLOW: u32 = 50;
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let server = xdp.spawn(move || {
        let mut io = XdpIo::open(&config(&["xa0"], AttachMode::Native)).expect("open XdpIo");
        assert_eq!(
            io.report()[0].queues.len(),
            4,
            "one AF_XDP socket per RX queue"
        );
        ready_tx.send(()).unwrap();
        let echoed = echo(
            &mut io,
            usize::from(FLOWS) * PER_FLOW as usize,
            Duration::from_secs(30),
        );
        let c = io.classifier("xa0").unwrap().global_counters().unwrap();
        (echoed, c.redirected.packets, c.pass_no_socket.packets)
    });
    ready.recv_timeout(Duration::from_secs(20)).unwrap();
    let received = peer.enter(|| {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..FLOWS)
                .map(|i| {
                    s.spawn(move || {
                        let sock = UdpSocket::bind(("198.18.0.2", 6000 + i)).unwrap();
                        ping_pong(&sock, "198.18.0.1:4433".parse().unwrap(), PER_FLOW, 4)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
        })
    });
    let (echoed, redirected, no_socket) = server.join().unwrap();
    let total = u32::from(FLOWS) * PER_FLOW;
    assert_eq!(received, total, "lost datagrams (echoed {echoed})");
    assert_eq!((redirected, no_socket), (u64::from(total), 0));
}

#[test]
fn reserved_kernel_socket_detects_unredirected_datagrams() {
    if !root_or_skip("reserved_kernel_socket_detects_unredirected_datagrams") {
        return;
    }
    let xdp = Netns::new("lk");
    let peer = Netns::new("lp");
    veth(&xdp, "xa0", "198.18.0.1", &peer, "xb0", "198.18.0.2");
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let (sent_tx, sent) = std::sync::mpsc::channel::<()>();
    let server = xdp.spawn(move || {
        let mut io = XdpIo::open(&config(&["xa0"], AttachMode::Native)).expect("open XdpIo");
        // Simulate a misconfiguration: the queue loses its socket.
        io.classifier("xa0").unwrap().unregister_socket(0).unwrap();
        ready_tx.send(()).unwrap();
        sent.recv_timeout(Duration::from_secs(20)).unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        let mut leaks = 0;
        while leaks < 3 && Instant::now() < end {
            leaks += io.drain_kernel_leaks();
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut got = 0;
        io.recv_batch(&mut |_| got += 1).unwrap();
        let c = io.classifier("xa0").unwrap().global_counters().unwrap();
        (leaks, got, c.pass_no_socket.packets, c.redirected.packets)
    });
    ready.recv_timeout(Duration::from_secs(20)).unwrap();
    peer.enter(|| {
        let sock = UdpSocket::bind("198.18.0.2:5000").unwrap();
        for _ in 0..3 {
            sock.send_to(b"lost?", "198.18.0.1:4433").unwrap();
        }
    });
    sent_tx.send(()).unwrap();
    let (leaks, got, no_socket, redirected) = server.join().unwrap();
    assert_eq!(
        (leaks, got),
        (3, 0),
        "datagrams must surface on the reserved kernel socket"
    );
    assert_eq!((no_socket, redirected), (3, 0));
}

#[test]
fn gso_batches_are_split_into_frames_all_or_nothing() {
    if !root_or_skip("gso_batches_are_split_into_frames_all_or_nothing") {
        return;
    }
    let xdp = Netns::new("gs");
    let peer = Netns::new("gq");
    veth(&xdp, "xa0", "198.18.0.1", &peer, "xb0", "198.18.0.2");
    let mac = run_in(&peer, &["cat", "/sys/class/net/xb0/address"]);
    let mac: Vec<u8> = mac
        .trim()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    let mac: [u8; 6] = mac.try_into().unwrap();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let receiver = peer.spawn(move || {
        let sock = UdpSocket::bind("198.18.0.2:5000").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        ready_tx.send(()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while got.len() < 20 {
            let Ok((n, _)) = sock.recv_from(&mut buf) else {
                break;
            };
            got.push(buf[..n].to_vec());
        }
        got
    });
    ready.recv_timeout(Duration::from_secs(10)).unwrap();
    let (refused, before, after) = xdp.enter(move || {
        let mut cfg = config(&["xa0"], AttachMode::Native);
        // 64 frames: 32 for RX, 32 for TX.
        cfg.xsk.frame_count = 64;
        cfg.xsk.ring_size = 64;
        let mut io = XdpIo::open(&cfg).expect("open");
        let local: SocketAddr = "198.18.0.1:4433".parse().unwrap();
        let remote: SocketAddr = "198.18.0.2:5000".parse().unwrap();
        io.set_neighbour(local.ip(), remote.ip(), mac).unwrap();
        let ecn = camp_xdp::Ecn::Ect0;
        let big = vec![7u8; 40 * 10];
        let too_many = TxDatagram {
            local,
            remote,
            ecn,
            payload: &big,
            segment_size: Some(10),
        };
        let refused = matches!(io.send(&too_many), Err(camp_xdp::IoError::WouldBlock));
        let before = io.counters();
        // 19 segments of 10 bytes and a last one of 5.
        let batch: Vec<u8> = (0..19u8).flat_map(|i| [i; 10]).chain([19u8; 5]).collect();
        let tx = TxDatagram {
            local,
            remote,
            ecn,
            payload: &batch,
            segment_size: Some(10),
        };
        io.send(&tx).expect("20 segments fit");
        io.flush().unwrap();
        (refused, before, io.counters())
    });
    let got = receiver.join().unwrap();
    assert!(
        refused,
        "a batch larger than the TX capacity must be refused whole"
    );
    assert_eq!(
        (before.tx_packets, before.tx_full),
        (0, 1),
        "nothing of the refused batch may be queued"
    );
    assert_eq!(after.tx_packets, 20);
    assert_eq!(got.len(), 20);
    for (i, d) in got.iter().enumerate() {
        let want = if i < 19 {
            vec![i as u8; 10]
        } else {
            vec![19u8; 5]
        };
        assert_eq!(d, &want, "segment {i}");
    }
}

#[test]
fn ecn_codepoints_cross_between_kernel_udp_and_af_xdp() {
    if !root_or_skip("ecn_codepoints_cross_between_kernel_udp_and_af_xdp") {
        return;
    }
    let xdp = Netns::new("ec");
    let peer = Netns::new("ep");
    veth(&xdp, "xa0", "198.18.0.1", &peer, "xb0", "198.18.0.2");
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let server = xdp.spawn(move || {
        let mut io = XdpIo::open(&config(&["xa0"], AttachMode::Native)).expect("open XdpIo");
        ready_tx.send(()).unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while seen.len() < 3 && Instant::now() < end {
            io.wait(Duration::from_millis(20)).unwrap();
            io.recv_batch(&mut |d| seen.push((d.local, d.remote, d.ecn)))
                .unwrap();
        }
        // Answer each with a different codepoint, CE included (a router
        // would set it; here our own frame builder does).
        for ((local, remote, _), ecn) in seen.iter().zip([
            camp_xdp::Ecn::Ce,
            camp_xdp::Ecn::Ect1,
            camp_xdp::Ecn::NotEct,
        ]) {
            io.send(&TxDatagram::new(*local, *remote, ecn, b"reply"))
                .unwrap();
        }
        io.flush().unwrap();
        seen.into_iter().map(|s| s.2).collect::<Vec<_>>()
    });
    ready.recv_timeout(Duration::from_secs(20)).unwrap();
    let replies = peer.enter(|| {
        let mut udp = camp_xdp::UdpIo::open(&["198.18.0.2:5000".parse().unwrap()]).unwrap();
        let local: SocketAddr = "198.18.0.2:5000".parse().unwrap();
        let remote: SocketAddr = "198.18.0.1:4433".parse().unwrap();
        for ecn in [
            camp_xdp::Ecn::Ect0,
            camp_xdp::Ecn::Ect1,
            camp_xdp::Ecn::NotEct,
        ] {
            udp.send(&TxDatagram::new(local, remote, ecn, b"ecn?"))
                .unwrap();
            // One at a time, so the order is kept.
            std::thread::sleep(Duration::from_millis(20));
        }
        let end = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < 3 && Instant::now() < end {
            udp.wait(Duration::from_millis(20)).unwrap();
            udp.recv_batch(&mut |d| got.push(d.ecn)).unwrap();
        }
        got
    });
    let seen = server.join().unwrap();
    use camp_xdp::Ecn::{Ce, Ect0, Ect1, NotEct};
    assert_eq!(seen, vec![Ect0, Ect1, NotEct], "kernel -> AF_XDP");
    assert_eq!(replies, vec![Ce, Ect1, NotEct], "AF_XDP -> kernel");
}

#[test]
fn reopening_right_after_close_succeeds() {
    if !root_or_skip("reopening_right_after_close_succeeds") {
        return;
    }
    let xdp = Netns::new("ro");
    let peer = Netns::new("rp");
    veth(&xdp, "xa0", "198.18.0.1", &peer, "xb0", "198.18.0.2");
    xdp.enter(|| {
        // A queue released a moment ago can refuse a new bind with EBUSY
        // for a short while; `XskSocket::open` retries.
        for mode in [
            AttachMode::Native,
            AttachMode::Generic,
            AttachMode::Native,
            AttachMode::Generic,
        ] {
            let io = XdpIo::open(&config(&["xa0"], mode)).expect("reopen");
            drop(io);
        }
    });
    assert!(!xdp_attached(&xdp, "xa0"));
}

/// AF_XDP -> kernel UDP with the UDP checksum offloaded through TX metadata
/// and with the software fallback: every datagram arrives intact at a kernel
/// socket (which verifies the checksum: the veth ends have TX checksumming
/// off, so the kernel completes an offloaded one in software before the
/// wire), the counters say which ran, and one flush of 98 frames costs at
/// most one kick per 32 (copy mode's budget per kick), not a spin.
#[test]
fn tx_checksum_offload_and_fallback_reach_a_kernel_socket() {
    if !root_or_skip("tx_checksum_offload_and_fallback_reach_a_kernel_socket") {
        return;
    }
    for offload in [true, false] {
        let xdp = Netns::new(if offload { "co" } else { "cs" });
        let peer = Netns::new(if offload { "cp" } else { "cq" });
        veth(&xdp, "xa0", "198.18.0.1", &peer, "xb0", "198.18.0.2");
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let server = xdp.spawn(move || {
            let mut cfg = config(&["xa0"], AttachMode::Native);
            cfg.xsk.tx_checksum_offload = offload;
            let mut io = XdpIo::open(&cfg).expect("open XdpIo");
            ready_tx.send(()).unwrap();
            let end = Instant::now() + Duration::from_secs(10);
            let mut hello = None;
            while hello.is_none() && Instant::now() < end {
                io.wait(Duration::from_millis(20)).unwrap();
                io.recv_batch(&mut |d| hello = Some((d.local, d.remote)))
                    .unwrap();
            }
            let (local, remote) = hello.expect("hello from the peer");
            let ecn = camp_xdp::Ecn::NotEct;
            let batch: Vec<u8> = (0..96u32 * 1200).map(|i| (i % 251) as u8).collect();
            let before = io.counters();
            io.send(&TxDatagram::new(local, remote, ecn, b"x")).unwrap();
            io.send(&TxDatagram::new(local, remote, ecn, &[7u8; 777]))
                .unwrap();
            io.send(&TxDatagram {
                segment_size: Some(1200),
                ..TxDatagram::new(local, remote, ecn, &batch)
            })
            .unwrap();
            let mut flushes = 0;
            loop {
                io.flush().unwrap();
                flushes += 1;
                if io.tx_backlog() == 0 || flushes == 100 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let c = io.counters();
            (
                c.tx_csum_offload - before.tx_csum_offload,
                c.tx_csum_software - before.tx_csum_software,
                c.tx_syscalls - before.tx_syscalls,
                flushes,
            )
        });
        ready.recv_timeout(Duration::from_secs(20)).unwrap();
        let got = peer.enter(|| {
            let sock = UdpSocket::bind("198.18.0.2:5000").unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            // The 98 frames come as one burst of about 225 KB of socket memory (copy-mode
            // skbs), more than the default 208 KiB receive buffer: without room the tail
            // is dropped at the socket, whatever the checksums.
            nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBuf, &(4 << 20))
                .unwrap();
            sock.send_to(b"hello", "198.18.0.1:4433").unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            let end = Instant::now() + Duration::from_secs(10);
            while got.len() < 98 && Instant::now() < end {
                if let Ok(n) = sock.recv(&mut buf) {
                    got.push(buf[..n].to_vec());
                }
            }
            got
        });
        let (csum_offload, csum_software, kicks, flushes) = server.join().unwrap();
        assert_eq!(got.len(), 98, "offload {offload}: every datagram arrived");
        assert_eq!(got[0], b"x");
        assert_eq!(got[1], vec![7u8; 777]);
        for (i, d) in got[2..].iter().enumerate() {
            let want: Vec<u8> = (i as u32 * 1200..(i as u32 + 1) * 1200)
                .map(|b| (b % 251) as u8)
                .collect();
            assert_eq!(d, &want, "segment {i}");
        }
        if offload {
            // This kernel (>= 6.10, copy mode on veth) takes the request.
            assert_eq!((csum_offload, csum_software), (98, 0));
        } else {
            assert_eq!((csum_offload, csum_software), (0, 98));
        }
        assert!(
            (1..=4 + flushes).contains(&kicks),
            "{kicks} kicks for 98 frames in {flushes} flushes"
        );
    }
}
