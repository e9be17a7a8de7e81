//! Address advertisement end to end (issue 13): the client learns the server's addresses
//! (ADD_ADDRESS) once its session opens, and hears later changes made with
//! `Server::set_local_addrs` (ADD_ADDRESS with a higher seq, REMOVE_ADDRESS).

mod pair;

use std::net::SocketAddr;
use std::time::Duration;

use camp_proto::client::ClientEvent;
use camp_proto::config::CampConfig;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// Address events client `i` reported so far (and drops them from the queue).
fn address_events(net: &mut pair::Net, i: usize) -> Vec<ClientEvent> {
    let mut out = Vec::new();
    net.client_events.retain(|&(c, ev)| {
        let is_addr = matches!(
            ev,
            ClientEvent::AddressAdded { .. } | ClientEvent::AddressRemoved { .. }
        );
        if c == i && is_addr {
            out.push(ev);
        }
        !(c == i && is_addr)
    });
    out
}

#[test]
fn client_learns_the_server_addresses_and_their_changes() {
    let mut net = pair::Net::new(CampConfig::default());
    let primary = addr("10.0.0.1:4433");
    let (i, _) = net.open_session(CampConfig::default());
    net.run_for(Duration::from_millis(50));
    let client = net.clients[i].as_ref().expect("client");
    // (The matching AddressAdded event arrives with SESSION, and `open_session` drains the
    // client's events while it waits, so only the later events are checked below.)
    assert_eq!(client.advertised_addresses(), vec![(0, primary)]);
    let _ = address_events(&mut net, i);

    // Two more addresses (one IPv6), then one of them withdrawn and the other changed.
    let second = addr("10.0.1.1:4433");
    let third = addr("[2001:db8::1]:4433");
    assert_eq!(net.server.set_local_addrs(vec![primary, second, third]), 1);
    net.run_for(Duration::from_millis(50));
    assert_eq!(
        net.clients[i]
            .as_ref()
            .expect("client")
            .advertised_addresses(),
        vec![(0, primary), (1, second), (2, third)]
    );
    assert_eq!(
        address_events(&mut net, i),
        vec![
            ClientEvent::AddressAdded {
                id: 1,
                addr: second
            },
            ClientEvent::AddressAdded { id: 2, addr: third },
        ]
    );
    let moved = addr("10.0.2.1:4433");
    assert_eq!(net.server.set_local_addrs(vec![primary, moved]), 1);
    // Setting the same list again tells nobody anything.
    assert_eq!(net.server.set_local_addrs(vec![primary, moved]), 0);
    net.run_for(Duration::from_millis(50));
    let client = net.clients[i].as_ref().expect("client");
    assert_eq!(
        client.advertised_addresses(),
        vec![(0, primary), (1, moved)]
    );
    assert_eq!(client.counters().stale_address_updates, 0);
    assert_eq!(client.counters().malformed_control, 0);
    assert_eq!(
        address_events(&mut net, i),
        vec![
            ClientEvent::AddressAdded { id: 1, addr: moved },
            ClientEvent::AddressRemoved { id: 2 },
        ]
    );

    // A session opened after the changes hears the current list, at the current seqs
    // (nothing stale: its address book starts empty).
    let (j, _) = net.open_session(CampConfig::default());
    net.run_for(Duration::from_millis(50));
    let late = net.clients[j].as_ref().expect("client");
    assert_eq!(late.advertised_addresses(), vec![(0, primary), (1, moved)]);
    assert_eq!(late.counters().stale_address_updates, 0);
    // The first session still has its path (the frames closed nothing).
    assert!(
        !net.client_events
            .iter()
            .any(|&(_, ev)| matches!(ev, ClientEvent::PathClosed { .. }))
    );
}
