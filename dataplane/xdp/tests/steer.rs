//! Engine steering on the kernel-UDP fallback (root, in a namespace of its own): two UDP
//! sockets in one SO_REUSEPORT group, one per engine, and `bpf/camp_reuseport.bpf.c`
//! sending each datagram to the socket of the engine its QUIC destination CID names,
//! whatever its 4-tuple; datagrams without a server-chosen CID fall to the kernel's hash.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use camp_testkit::netns::{Netns, root_or_skip};
use camp_xdp::steer::{ReuseportSteering, SteerLayout, reuseport_group};

const CONFIG: u8 = 1;
/// 1 octet of rotation bits, a 2-octet server id (host 0x31, engine), 5 octets of nonce.
const CID_LEN: usize = 8;

fn cid(engine: u8, nonce: u8) -> [u8; CID_LEN] {
    [CONFIG << 5 | 0x07, 0x31, engine, nonce, 9, 8, 7, 6]
}

fn short_header(dcid: &[u8]) -> Vec<u8> {
    let mut p = vec![0x41];
    p.extend_from_slice(dcid);
    p.extend_from_slice(&[0u8; 40]);
    p
}

fn long_header(dcid: &[u8]) -> Vec<u8> {
    let mut p = vec![0xc3, 0, 0, 0, 1, dcid.len() as u8];
    p.extend_from_slice(dcid);
    p.extend_from_slice(&[0u8; 60]);
    p
}

/// Which socket of the group received `payload` (each datagram is told apart by its bytes).
fn receiver_of(group: &[UdpSocket], payload: &[u8]) -> Option<usize> {
    let mut buf = [0u8; 2048];
    for _ in 0..50 {
        for (k, s) in group.iter().enumerate() {
            if let Ok(n) = s.recv(&mut buf) {
                assert_eq!(&buf[..n], payload, "datagrams arrive one at a time");
                return Some(k);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

#[test]
fn datagrams_reach_the_engine_their_connection_id_names() {
    if !root_or_skip("datagrams_reach_the_engine_their_connection_id_names") {
        return;
    }
    let ns = Netns::new("steer");
    ns.run(&["ip", "addr", "add", "198.18.60.1/32", "dev", "lo"]);
    ns.enter(|| {
        let server: SocketAddr = "198.18.60.1:4433".parse().unwrap();
        let group = reuseport_group(server, 2).expect("group");
        for s in &group {
            s.set_nonblocking(true).unwrap();
        }
        let steering = ReuseportSteering::attach(
            &group,
            SteerLayout {
                cid_len: CID_LEN as u8,
                config_id: CONFIG,
                engine_offset: 2,
            },
        )
        .expect("steering attaches");
        // 16 client sockets, so the 4-tuple hash alone would spread each engine's CIDs
        // over both sockets.
        let clients: Vec<UdpSocket> = (0..16)
            .map(|_| UdpSocket::bind("198.18.60.1:0").unwrap())
            .collect();
        let mut by_hash = [0usize; 2];
        for (i, c) in clients.iter().enumerate() {
            for engine in 0..2u8 {
                for p in [
                    short_header(&cid(engine, i as u8)),
                    // A routed join's Initial: a long header with a server-layout DCID.
                    long_header(&cid(engine, 100 + i as u8)),
                ] {
                    c.send_to(&p, server).unwrap();
                    assert_eq!(
                        receiver_of(&group, &p),
                        Some(usize::from(engine)),
                        "client {i}, engine {engine}, {:02x?}",
                        &p[..12]
                    );
                }
            }
            // A client's first Initial (random DCID, not the site's layout) and a CID
            // naming an engine with no socket: the hash picks, and always the same socket
            // for the same 4-tuple.
            for p in [
                long_header(&[0xee, 1, 2, 3, 4, 5, 6, 7, i as u8]),
                short_header(&cid(7, i as u8)),
            ] {
                c.send_to(&p, server).unwrap();
                let first = receiver_of(&group, &p).expect("delivered");
                c.send_to(&p, server).unwrap();
                assert_eq!(receiver_of(&group, &p), Some(first), "the hash is stable");
                by_hash[first] += 1;
            }
        }
        let counts = steering.counts().expect("counts");
        assert_eq!(counts.by_cid, 16 * 4, "{counts:?}");
        assert_eq!(counts.by_hash, 16 * 2 * 2, "{counts:?}");
        assert_eq!(counts.refused, 0);
        // Not a property of ours, only of the kernel's hash: it used both sockets.
        eprintln!("hash-chosen datagrams per socket: {by_hash:?}");
    });
}
