//! Address advertisement (after MP-DCCP MP_ADDADDR / MP_REMOVEADDR): `0x25 ADD_ADDRESS`
//! tells the peer one more address it can reach the sender at, `0x26 REMOVE_ADDRESS`
//! withdraws one. Both carry a sequence number per address id so that a receiver ignores
//! an update older than the newest it applied. Integrity comes from the session's TLS:
//! these frames only travel on the encrypted control stream.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::WireError;
use crate::cursor::{Reader, Writer};

/// Family octet of an IPv4 address.
pub const FAMILY_IPV4: u8 = 4;
/// Family octet of an IPv6 address.
pub const FAMILY_IPV6: u8 = 6;

/// `0x25 ADD_ADDRESS`: the sender is reachable at `addr` (new or changed address id).
///
/// Only the IP and port travel: an IPv6 flow label or scope id is not encoded and decodes
/// as 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddAddress {
    /// Sender-chosen identifier of the address; REMOVE_ADDRESS names it.
    pub address_id: u8,
    /// Increases with every update of this address id; receivers ignore a frame whose seq
    /// is not above the newest they applied for the id.
    pub seq: u32,
    /// The advertised address.
    pub addr: SocketAddr,
}

impl AddAddress {
    /// Body length with an IPv4 address: id, seq, family, 4 address bytes, port.
    pub const BODY_LEN_V4: usize = 1 + 4 + 1 + 4 + 2;
    /// Body length with an IPv6 address: id, seq, family, 16 address bytes, port.
    pub const BODY_LEN_V6: usize = 1 + 4 + 1 + 16 + 2;

    /// Body length of this frame (depends on the address family).
    pub const fn body_len(&self) -> usize {
        match self.addr {
            SocketAddr::V4(_) => Self::BODY_LEN_V4,
            SocketAddr::V6(_) => Self::BODY_LEN_V6,
        }
    }

    /// Header-time check: the body must be one of the two possible sizes.
    pub(crate) fn check_body_len(body_len: usize) -> Result<(), WireError> {
        match body_len {
            Self::BODY_LEN_V4 | Self::BODY_LEN_V6 => Ok(()),
            got => Err(WireError::LengthMismatch {
                expected: if got < Self::BODY_LEN_V4 {
                    Self::BODY_LEN_V4
                } else {
                    Self::BODY_LEN_V6
                },
                got,
            }),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, body_len: usize) -> Result<Self, WireError> {
        let address_id = r.u8()?;
        let seq = r.u32()?;
        let family = r.u8()?;
        let expected = match family {
            FAMILY_IPV4 => Self::BODY_LEN_V4,
            FAMILY_IPV6 => Self::BODY_LEN_V6,
            other => return Err(WireError::BadAddressFamily(other)),
        };
        if body_len != expected {
            return Err(WireError::LengthMismatch {
                expected,
                got: body_len,
            });
        }
        let ip = if family == FAMILY_IPV4 {
            IpAddr::V4(Ipv4Addr::from(r.array::<4>()?))
        } else {
            IpAddr::V6(Ipv6Addr::from(r.array::<16>()?))
        };
        let port = r.u16()?;
        Ok(AddAddress {
            address_id,
            seq,
            addr: SocketAddr::new(ip, port),
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.u8(self.address_id)?;
        w.u32(self.seq)?;
        match self.addr.ip() {
            IpAddr::V4(ip) => {
                w.u8(FAMILY_IPV4)?;
                w.bytes(&ip.octets())?;
            }
            IpAddr::V6(ip) => {
                w.u8(FAMILY_IPV6)?;
                w.bytes(&ip.octets())?;
            }
        }
        w.u16(self.addr.port())
    }
}

/// `0x26 REMOVE_ADDRESS`: the address advertised under `address_id` is withdrawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoveAddress {
    /// The withdrawn address id.
    pub address_id: u8,
    /// Same sequence space as the id's ADD_ADDRESS frames.
    pub seq: u32,
}

impl RemoveAddress {
    /// Body length in bytes.
    pub const BODY_LEN: usize = 5;

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(RemoveAddress {
            address_id: r.u8()?,
            seq: r.u32()?,
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), WireError> {
        w.u8(self.address_id)?;
        w.u32(self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FRAME_HEADER_LEN, Frame, FrameHeader};

    const ADD_V4: [u8; 18] = [
        0x01, 0x25, 0x00, 0x00, 0x00, 0x0C, // v1, ADD_ADDRESS, body 12
        0x03, // address id 3
        0x00, 0x00, 0x01, 0x02, // seq 258
        0x04, // IPv4
        198, 18, 0, 7, // 198.18.0.7
        0x11, 0x5C, // port 4444
    ];
    const ADD_V6: [u8; 30] = [
        0x01, 0x25, 0x00, 0x00, 0x00, 0x18, // v1, ADD_ADDRESS, body 24
        0x00, // address id 0
        0x00, 0x00, 0x00, 0x01, // seq 1
        0x06, // IPv6
        0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x2A, // 2001:db8::2a
        0x01, 0xBB, // port 443
    ];
    const REMOVE: [u8; 11] = [
        0x01, 0x26, 0x00, 0x00, 0x00, 0x05, // v1, REMOVE_ADDRESS, body 5
        0x03, // address id 3
        0x00, 0x00, 0x01, 0x03, // seq 259
    ];

    fn add_v4() -> Frame<'static> {
        Frame::AddAddress(AddAddress {
            address_id: 3,
            seq: 258,
            addr: SocketAddr::from(([198, 18, 0, 7], 4444)),
        })
    }

    fn add_v6() -> Frame<'static> {
        Frame::AddAddress(AddAddress {
            address_id: 0,
            seq: 1,
            addr: SocketAddr::new(
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x2a)),
                443,
            ),
        })
    }

    fn remove() -> Frame<'static> {
        Frame::RemoveAddress(RemoveAddress {
            address_id: 3,
            seq: 259,
        })
    }

    #[test]
    fn literal_bytes_round_trip() {
        for (frame, bytes) in [
            (add_v4(), &ADD_V4[..]),
            (add_v6(), &ADD_V6[..]),
            (remove(), &REMOVE[..]),
        ] {
            assert_eq!(frame.buffer_len(), bytes.len());
            let mut buf = [0xEE; 64];
            assert_eq!(frame.emit(&mut buf), Ok(bytes.len()));
            assert_eq!(&buf[..bytes.len()], bytes);
            assert_eq!(Frame::parse(bytes), Ok((frame, bytes.len())));
        }
    }

    #[test]
    fn unknown_family_is_rejected() {
        for family in [0u8, 5, 0x46, 0xFF] {
            let mut bytes = ADD_V4;
            bytes[11] = family;
            assert_eq!(
                Frame::parse(&bytes),
                Err(WireError::BadAddressFamily(family))
            );
        }
    }

    #[test]
    fn family_must_match_the_body_length() {
        // IPv6 family in a 12-byte body, IPv4 family in a 24-byte body.
        let mut v6_in_v4 = ADD_V4;
        v6_in_v4[11] = FAMILY_IPV6;
        assert_eq!(
            Frame::parse(&v6_in_v4),
            Err(WireError::LengthMismatch {
                expected: 24,
                got: 12
            })
        );
        let mut v4_in_v6 = ADD_V6;
        v4_in_v6[11] = FAMILY_IPV4;
        assert_eq!(
            Frame::parse(&v4_in_v6),
            Err(WireError::LengthMismatch {
                expected: 12,
                got: 24
            })
        );
    }

    #[test]
    fn impossible_lengths_are_rejected_from_the_header() {
        for (got, expected) in [(0, 12), (11, 12), (13, 24), (23, 24), (25, 24), (4000, 24)] {
            let mut head = [0x01, 0x25, 0, 0, 0, 0];
            head[2..6].copy_from_slice(&(got as u32).to_be_bytes());
            assert_eq!(
                FrameHeader::peek(&head),
                Err(WireError::LengthMismatch { expected, got }),
                "body {got}"
            );
        }
        for got in [0usize, 4, 6, 12] {
            let mut head = [0x01, 0x26, 0, 0, 0, 0];
            head[2..6].copy_from_slice(&(got as u32).to_be_bytes());
            assert_eq!(
                FrameHeader::peek(&head),
                Err(WireError::LengthMismatch { expected: 5, got })
            );
        }
    }

    #[test]
    fn truncated_bodies_ask_for_the_whole_frame() {
        for bytes in [&ADD_V4[..], &ADD_V6[..], &REMOVE[..]] {
            for cut in FRAME_HEADER_LEN..bytes.len() {
                assert_eq!(
                    Frame::parse(&bytes[..cut]),
                    Err(WireError::Truncated {
                        needed: bytes.len(),
                        available: cut
                    })
                );
            }
        }
    }

    #[test]
    fn ipv6_flow_info_and_scope_are_not_encoded() {
        let addr = SocketAddr::V6(core::net::SocketAddrV6::new(
            Ipv6Addr::LOCALHOST,
            9,
            0x1234,
            7,
        ));
        let frame = Frame::AddAddress(AddAddress {
            address_id: 1,
            seq: 1,
            addr,
        });
        let mut buf = [0; 64];
        let n = frame.emit(&mut buf).unwrap();
        let (Frame::AddAddress(back), _) = Frame::parse(&buf[..n]).unwrap() else {
            panic!("not an ADD_ADDRESS")
        };
        assert_eq!(back.addr, SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 9));
    }
}
