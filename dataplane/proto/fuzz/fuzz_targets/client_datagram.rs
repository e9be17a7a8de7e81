//! Fuzz target: a `camp_proto::client::Client` with two paths that has sent its first
//! flight, fed a sequence of arbitrary datagrams as if from the server and elsewhere, with
//! the virtual clock stepped between them and every transmit, event and timer drained after
//! each.
//!
//! Input: records (`camp_proto_fuzz::records`); a record's selector picks the route (bits
//! 0-1: server address 0 to path 0, server address 1 to path 1, a stranger to path 0,
//! server address 0 to path 1) and the clock step before it (bits 2-7, see `clock_step`).
//! After the last record the clock runs on through the client's timers.
//!
//! Checks besides "no panic": the session never starts and no path joins (that needs the
//! server's handshake keys); no unit reaches the receiver; every datagram goes from a
//! configured path to that path's server address, is non-empty and fits its buffer.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use camp_proto::client::{Client, ClientEvent};
use camp_proto_fuzz::{CLIENT_ADDRS, SERVER_ADDRS, STRANGER, clock_step, records};
use libfuzzer_sys::fuzz_target;

/// (source, client-side local address) by selector bits 0-1.
const ROUTES: [(SocketAddr, SocketAddr); 4] = [
    (SERVER_ADDRS[0], CLIENT_ADDRS[0]),
    (SERVER_ADDRS[1], CLIENT_ADDRS[1]),
    (STRANGER, CLIENT_ADDRS[0]),
    (SERVER_ADDRS[0], CLIENT_ADDRS[1]),
];

fuzz_target!(|data: &[u8]| {
    let epoch = Instant::now();
    let mut now = epoch;
    let mut client = camp_proto_fuzz::client(now, epoch, 2);
    let mut buf = Vec::with_capacity(64 * 1024);
    // The first flight (a ClientHello per path) goes out before anything arrives.
    drain(&mut client, now, &mut buf);
    for record in records(data) {
        now += clock_step(record.selector);
        if client.poll_timeout().is_some_and(|t| t <= now) {
            client.handle_timeout(now);
        }
        let (remote, local) = ROUTES[usize::from(record.selector & 3)];
        client.handle_datagram(now, local, remote, None, record.payload);
        drain(&mut client, now, &mut buf);
    }
    for _ in 0..64 {
        let Some(t) = client.poll_timeout() else {
            break;
        };
        now = now.max(t) + Duration::from_micros(1);
        client.handle_timeout(now);
        drain(&mut client, now, &mut buf);
    }
    assert!(client.session_token().is_none());
    assert_eq!(client.receiver().buffered_units(), 0);
    assert_eq!(client.receiver().counters().units_received, 0);
});

fn drain(client: &mut Client, now: Instant, buf: &mut Vec<u8>) {
    while let Some(t) = client.poll_transmit(now, 1, buf) {
        assert!(
            t.size > 0 && t.size <= buf.len(),
            "transmit of {} bytes",
            t.size
        );
        let Some(path) = CLIENT_ADDRS.iter().position(|a| *a == t.source) else {
            panic!("sent from {}", t.source);
        };
        assert_eq!(
            t.destination, SERVER_ADDRS[path],
            "path {path} sent elsewhere"
        );
    }
    while let Some(ev) = client.poll_event() {
        assert!(
            !matches!(
                ev,
                ClientEvent::SessionEstablished | ClientEvent::PathJoined { .. }
            ),
            "{ev:?} without the server's keys"
        );
    }
}
