//! Fuzz target: the QUIC-LB connection-id decoders a balancer and a client run on
//! untrusted bytes: `dcid_of_packet` (the CID a balancer routes on), `scid_of_long_header`
//! (the server CID a client learns for routed joins) and `CidLayout::server_id_of` /
//! `route`, plus the round trip through the CID generator.
//!
//! Input: four bytes choose a layout (config rotation 0..=6, server id 1..=15 octets, nonce
//! 4..=18 octets, length self-encoding on or off; a combination over 20 octets is refused
//! by `CidLayout::new` and only the decoders without a layout run), then the datagram.
//!
//! Checks besides "no panic": every CID handed back lies inside the datagram where its
//! header says (a long header's DCID at offset 6 with the announced length, at most 20
//! octets; a short header's at offset 1 with the site's length); a routed CID has the
//! layout's length and rotation codepoint and its server id is the octets after the first;
//! a CID the generator issues for a server id taken from the input routes to that id, and
//! a CID whose first octet carries another codepoint, or the unroutable one, routes nowhere.
#![no_main]

use camp_proto::cid::{
    CidLayout, LbConfig, MAX_CID_LEN, ServerId, UNROUTABLE_CONFIG, dcid_of_packet,
    scid_of_long_header,
};
use libfuzzer_sys::fuzz_target;
use quinn_proto::ConnectionIdGenerator;

fn inside(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}

fuzz_target!(|data: &[u8]| {
    let Some((head, datagram)) = data.split_first_chunk::<4>() else {
        return;
    };
    let config_id = head[0] % UNROUTABLE_CONFIG;
    let sid_len = 1 + usize::from(head[1] % 15);
    let nonce_len = 4 + usize::from(head[2] % 15);
    let encode_len = head[3] & 1 == 1;
    let layout = CidLayout::new(config_id, sid_len, nonce_len, encode_len).ok();
    let short_len = layout.map_or(usize::from(head[2] % 21), |l| l.cid_len());

    if let Some(dcid) = dcid_of_packet(datagram, short_len) {
        assert!(inside(datagram, dcid));
        if datagram[0] & 0x80 != 0 {
            assert_eq!(dcid.len(), usize::from(datagram[5]));
            assert!(dcid.len() <= MAX_CID_LEN);
            assert_eq!(dcid.as_ptr(), datagram[6..].as_ptr());
        } else {
            assert_eq!(dcid.len(), short_len);
            assert_eq!(dcid.as_ptr(), datagram[1..].as_ptr());
        }
        if let Some(layout) = layout {
            check_route(&layout, dcid);
        }
    }
    if let Some(scid) = scid_of_long_header(datagram) {
        assert!(datagram[0] & 0x80 != 0, "a short header has no source CID");
        assert!(inside(datagram, scid));
        assert!(scid.len() <= MAX_CID_LEN);
        let at = 6 + usize::from(datagram[5]);
        assert_eq!(scid.len(), usize::from(datagram[at]));
        assert_eq!(scid.as_ptr(), datagram[at + 1..].as_ptr());
    }
    let Some(layout) = layout else { return };
    // The whole datagram as a CID (what a balancer does with a short header's bytes).
    check_route(&layout, datagram);

    // Round trip: a server id from the input, CIDs from the generator.
    let id_bytes: Vec<u8> = datagram.iter().copied().cycle().take(sid_len).collect();
    let id_bytes = if id_bytes.len() == sid_len {
        id_bytes
    } else {
        vec![0x5a; sid_len]
    };
    let Ok(server_id) = ServerId::new(&id_bytes) else {
        return;
    };
    let Ok(config) = LbConfig::new(config_id, server_id, nonce_len) else {
        return;
    };
    let config = config.with_length_encoding(encode_len);
    let mut seed = [0u8; 32];
    for (s, b) in seed.iter_mut().zip(datagram) {
        *s = *b;
    }
    let mut generator = config.generator(seed);
    for _ in 0..4 {
        let cid = generator.generate_cid();
        assert_eq!(cid.len(), layout.cid_len());
        assert_eq!(layout.route(&cid), Some(server_id), "issued CID must route home");
        // Another rotation codepoint, and the unroutable one, route nowhere.
        let mut other = cid.to_vec();
        other[0] = (other[0] & 0x1f) | (((config_id + 1) % UNROUTABLE_CONFIG) << 5);
        assert_eq!(layout.route(&other), None);
        other[0] = (other[0] & 0x1f) | (UNROUTABLE_CONFIG << 5);
        assert_eq!(layout.route(&other), None);
    }
});

fn check_route(layout: &CidLayout, cid: &[u8]) {
    let Some(sid) = layout.server_id_of(cid) else {
        return;
    };
    assert_eq!(cid.len(), layout.cid_len());
    assert_eq!(cid[0] >> 5, layout.config_id());
    assert_ne!(cid[0] >> 5, UNROUTABLE_CONFIG);
    if layout.self_encode_length() {
        assert_eq!(usize::from(cid[0] & 0x1f), cid.len() - 1);
    }
    assert_eq!(sid, &cid[1..1 + layout.server_id_len()]);
    if let Some(id) = layout.route(cid) {
        assert_eq!(id.as_bytes(), sid);
    }
}
