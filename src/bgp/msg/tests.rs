//! Codec tests: round trips, real peers' bytes, and every RFC 7606 verdict.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::prefix::IpPrefix;

fn p(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn roundtrip(m: Message, four: bool) {
    let bytes = encode(&m, four).unwrap();
    assert_eq!(parse_header(&bytes).unwrap().length, bytes.len());
    assert_eq!(decode(&bytes, four).unwrap(), m);
}

fn full_update() -> Update {
    Update {
        withdrawn: vec![p("10.9.0.0/16"), p("0.0.0.0/0"), p("192.0.2.7/32")],
        attrs: PathAttrs {
            origin: Some(Origin::Egp),
            as_path: Some(AsPath {
                segments: vec![
                    AsSegment::Sequence(vec![65515, 4_200_000_000]),
                    AsSegment::Set(vec![1, 2]),
                ],
            }),
            next_hop: Some(Ipv4Addr::new(10, 10, 30, 254)),
            med: Some(77),
            local_pref: Some(200),
            mp_reach: None,
            mp_unreach: None,
            other: vec![RawAttr {
                flags: FLAG_OPTIONAL | FLAG_TRANSITIVE,
                type_code: 8,
                value: vec![0xfd, 0xeb, 0, 1],
            }],
        },
        nlri: vec![p("10.2.0.0/24"), p("10.2.30.0/25"), p("172.16.0.0/12")],
    }
}

#[test]
fn roundtrip_every_message_type() {
    let open = Open {
        version: 4,
        my_as: AS_TRANS,
        hold_time: 30,
        bgp_id: Ipv4Addr::new(10, 2, 30, 125),
        capabilities: vec![
            Capability::Multiprotocol {
                afi: AFI_IPV4,
                safi: SAFI_UNICAST,
            },
            Capability::RouteRefresh,
            Capability::FourOctetAs(4_200_000_000),
            Capability::Other {
                code: 64,
                value: vec![0, 120],
            },
        ],
    };
    roundtrip(Message::Open(open), true);
    roundtrip(Message::Keepalive, true);
    roundtrip(
        Message::Notification(Notification::new(6, 2, vec![3, b'b', b'y', b'e'])),
        true,
    );
    roundtrip(
        Message::RouteRefresh(RouteRefresh {
            afi: 1,
            subtype: 0,
            safi: 1,
        }),
        true,
    );
    roundtrip(Message::Update(full_update()), true);
    roundtrip(Message::Update(Update::default()), false);
    assert_eq!(
        encode(&Message::Keepalive, true).unwrap(),
        [[0xff; 16].as_slice(), &[0, 19, 4]].concat()
    );
}

#[test]
fn roundtrip_mp_reach_and_unreach() {
    let u = Update {
        withdrawn: vec![],
        attrs: PathAttrs {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![65515])),
            mp_reach: Some(MpReach {
                afi: AFI_IPV4,
                safi: SAFI_UNICAST,
                next_hop: Some("10.10.30.254".parse().unwrap()),
                nlri: vec![p("10.2.0.0/24")],
            }),
            mp_unreach: Some(MpUnreach {
                afi: AFI_IPV6,
                safi: SAFI_UNICAST,
                withdrawn: vec![p("2001:db8::/32")],
            }),
            ..PathAttrs::default()
        },
        nlri: vec![],
    };
    roundtrip(Message::Update(u), true);
}

#[test]
fn two_octet_peer_gets_as_trans_and_as4_path_and_merges_back() {
    let mut u = full_update();
    u.attrs.other.clear();
    let bytes = encode(&Message::Update(u.clone()), false).unwrap();
    let body = &bytes[HEADER_LEN..];
    // The 2-octet AS_PATH carries AS_TRANS where the 4-octet AS does not fit.
    let d = decode_update(body, false).unwrap();
    assert_eq!(d.treat_as_withdraw, None);
    assert_eq!(d.update, u, "AS4_PATH merged back into AS_PATH");
    // A 2-octet speaker that did not pass AS4_PATH on: only AS_TRANS is visible.
    let mut short = u.clone();
    short.attrs.as_path = Some(AsPath::sequence(vec![65515, 4_200_000_000]));
    let b = encode(&Message::Update(short), false).unwrap();
    let needle = [2u8, 2, 0xff, 0xeb, 0x5b, 0xa0];
    assert!(
        b.windows(needle.len()).any(|w| w == needle),
        "AS_PATH 65515 23456 in 2-octet form"
    );
}

#[test]
fn parses_bird_open_with_4_octet_as_mp_rr_and_unknown_caps() {
    // BIRD 2 as AS65515, router id 10.10.30.254, hold 30: MP IPv4/unicast, route refresh,
    // graceful restart (aware), 4-octet AS, enhanced route refresh, long-lived GR.
    let bytes = hex("ffffffffffffffffffffffffffffffff 0035 01
         04 ffeb 001e 0a0a1efe 18
         02 16 010400010001 0200 40020078 41040000ffeb 4600 4700");
    let Message::Open(o) = decode(&bytes, false).unwrap() else {
        panic!("not an OPEN")
    };
    assert_eq!((o.version, o.my_as, o.hold_time), (4, 65515, 30));
    assert_eq!(o.bgp_id, Ipv4Addr::new(10, 10, 30, 254));
    assert_eq!(o.asn(), 65515);
    assert!(o.has(&Capability::Multiprotocol { afi: 1, safi: 1 }));
    assert!(o.has(&Capability::RouteRefresh));
    assert_eq!(o.four_octet_as(), Some(65515));
    assert!(o.has(&Capability::Other {
        code: 70,
        value: vec![]
    }));
    assert_eq!(o.capabilities.len(), 6);

    // Same capabilities, one optional parameter each (Cisco style), 4-byte AS 4200000000.
    let bytes = hex("ffffffffffffffffffffffffffffffff 0035 01
         04 5ba0 00b4 c0000201 18
         02 06 010400010001 02 02 0200 02 06 4104fa56ea00 02 02 4600");
    let Message::Open(o) = decode(&bytes, true).unwrap() else {
        panic!("not an OPEN")
    };
    assert_eq!(o.my_as, AS_TRANS);
    assert_eq!(o.asn(), 4_200_000_000);
    assert_eq!(o.hold_time, 180);
    assert_eq!(o.capabilities.len(), 4);
}

#[test]
fn parses_extended_optional_parameters() {
    // RFC 9072: non-ext length 255, type 255, 2-byte length, params with 2-byte lengths.
    let bytes = hex("ffffffffffffffffffffffffffffffff 0027 01
         04 ffeb 001e 0a0a1efe ff ff 0007
         02 0004 0200 4600");
    let bytes = {
        let mut b = bytes;
        let l = b.len() as u16;
        b[16..18].copy_from_slice(&l.to_be_bytes());
        b
    };
    let o = decode_open(&bytes[HEADER_LEN..]).unwrap();
    assert!(o.has(&Capability::RouteRefresh));
    assert_eq!(o.capabilities.len(), 2);
}

#[test]
fn header_errors_have_the_right_codes() {
    let mut ka = encode(&Message::Keepalive, true).unwrap();
    ka[3] = 0;
    assert_eq!(
        parse_header(&ka).unwrap_err(),
        Notification::new(1, 1, vec![])
    );
    let mut ka = encode(&Message::Keepalive, true).unwrap();
    ka[16..18].copy_from_slice(&5000u16.to_be_bytes());
    assert_eq!(
        parse_header(&ka).unwrap_err(),
        Notification::new(1, 2, vec![0x13, 0x88])
    );
    let mut ka = encode(&Message::Keepalive, true).unwrap();
    ka[16..18].copy_from_slice(&18u16.to_be_bytes());
    assert_eq!(
        parse_header(&ka).unwrap_err().subcode,
        err::HEADER_BAD_LENGTH
    );
    let mut ka = encode(&Message::Keepalive, true).unwrap();
    ka[18] = 9;
    assert_eq!(
        parse_header(&ka).unwrap_err(),
        Notification::new(1, 3, vec![9])
    );
    // KEEPALIVE with a body, OPEN too short.
    let mut ka = encode(&Message::Keepalive, true).unwrap();
    ka[17] = 20;
    assert_eq!(
        parse_header(&ka).unwrap_err().subcode,
        err::HEADER_BAD_LENGTH
    );
    let mut open = encode(&Message::Keepalive, true).unwrap();
    open[18] = TYPE_OPEN;
    assert_eq!(
        parse_header(&open).unwrap_err().subcode,
        err::HEADER_BAD_LENGTH
    );
    assert!(parse_header(&[0xff; 10]).is_err());
}

#[test]
fn open_errors() {
    let good = hex("04 ffeb 001e 0a0a1efe 00");
    assert!(decode_open(&good).is_ok());
    let mut v3 = good.clone();
    v3[0] = 3;
    assert_eq!(
        decode_open(&v3).unwrap_err(),
        Notification::new(2, 1, vec![0, 4])
    );
    let auth_param = hex("04 ffeb 001e 0a0a1efe 04 01 02 aabb");
    assert_eq!(
        decode_open(&auth_param).unwrap_err().subcode,
        err::OPEN_UNSUPPORTED_PARAM
    );
    let overrun = hex("04 ffeb 001e 0a0a1efe 08 02 02 0200");
    assert_eq!(decode_open(&overrun).unwrap_err().code, err::OPEN);
    let cap_overrun = hex("04 ffeb 001e 0a0a1efe 04 02 02 4104");
    assert_eq!(decode_open(&cap_overrun).unwrap_err().code, err::OPEN);
    assert!(decode_open(&[4, 1]).is_err());
}

/// UPDATE body: withdrawn (none), the given attribute bytes, one NLRI 10.2.0.0/24.
fn update_with_attrs(attrs: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0];
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(&[24, 10, 2, 0]);
    b
}

const GOOD_ATTRS: &str = "40 01 01 00   40 02 06 02 01 0000ffeb   40 03 04 0a0a1efe";

#[test]
fn good_update_parses_clean() {
    let d = decode_update(&update_with_attrs(&hex(GOOD_ATTRS)), true).unwrap();
    assert_eq!(d.treat_as_withdraw, None);
    assert_eq!(d.update.nlri, vec![p("10.2.0.0/24")]);
    assert_eq!(d.update.attrs.as_path, Some(AsPath::sequence(vec![65515])));
}

#[test]
fn bad_origin_value_is_treat_as_withdraw() {
    let attrs = hex("40 01 01 07   40 02 06 02 01 0000ffeb   40 03 04 0a0a1efe");
    let d = decode_update(&update_with_attrs(&attrs), true).unwrap();
    assert!(d.treat_as_withdraw.unwrap().contains("ORIGIN"));
    assert_eq!(
        d.update.nlri,
        vec![p("10.2.0.0/24")],
        "NLRI still located, to be withdrawn"
    );
}

#[test]
fn attribute_length_overrun_is_treat_as_withdraw_with_nlri_found() {
    // NEXT_HOP claims 9 bytes but only 4 remain in the path attributes.
    let attrs = hex("40 01 01 00   40 02 06 02 01 0000ffeb   40 03 09 0a0a1efe");
    let d = decode_update(&update_with_attrs(&attrs), true).unwrap();
    assert!(d.treat_as_withdraw.unwrap().contains("overrun"));
    assert_eq!(d.update.nlri, vec![p("10.2.0.0/24")]);
    // Fewer than 3 bytes left for an attribute header.
    let mut attrs = hex(GOOD_ATTRS);
    attrs.extend_from_slice(&[0x40, 0x05]);
    let d = decode_update(&update_with_attrs(&attrs), true).unwrap();
    assert!(d.treat_as_withdraw.unwrap().contains("truncated"));
}

#[test]
fn other_malformed_attributes_are_treat_as_withdraw() {
    let cases = [
        // wrong flags on ORIGIN (optional bit set)
        "c0 01 01 00   40 02 06 02 01 0000ffeb   40 03 04 0a0a1efe",
        // AS_PATH segment overrun
        "40 01 01 00   40 02 06 02 02 0000ffeb   40 03 04 0a0a1efe",
        // AS_PATH zero-length segment / confed segment
        "40 01 01 00   40 02 02 02 00   40 03 04 0a0a1efe",
        "40 01 01 00   40 02 06 03 01 0000ffeb   40 03 04 0a0a1efe",
        // NEXT_HOP of 5 bytes
        "40 01 01 00   40 02 06 02 01 0000ffeb   40 03 05 0a0a1efe00",
        // MED of 2 bytes
        "40 01 01 00   40 02 06 02 01 0000ffeb   40 03 04 0a0a1efe  80 04 02 0001",
        // missing NEXT_HOP
        "40 01 01 00   40 02 06 02 01 0000ffeb",
    ];
    for c in cases {
        let d = decode_update(&update_with_attrs(&hex(c)), true).unwrap();
        assert!(
            d.treat_as_withdraw.is_some(),
            "{c} should be treat-as-withdraw"
        );
    }
    // Malformed LOCAL_PREF and AS4_PATH are discarded, the route stays.
    let mut a = hex(GOOD_ATTRS);
    a.extend_from_slice(&hex("40 05 02 0001  c0 11 01 02"));
    let d = decode_update(&update_with_attrs(&a), true).unwrap();
    assert_eq!(d.treat_as_withdraw, None);
    assert_eq!(d.discarded.len(), 2);
    // A duplicate attribute: later copy discarded.
    let mut a = hex(GOOD_ATTRS);
    a.extend_from_slice(&hex("40 01 01 02"));
    let d = decode_update(&update_with_attrs(&a), true).unwrap();
    assert_eq!(d.update.attrs.origin, Some(Origin::Igp));
    // Unknown optional transitive attribute: kept, fine.
    let mut a = hex(GOOD_ATTRS);
    a.extend_from_slice(&hex("c0 63 02 abcd"));
    let d = decode_update(&update_with_attrs(&a), true).unwrap();
    assert_eq!(d.treat_as_withdraw, None);
    assert_eq!(d.update.attrs.other.len(), 1);
}

#[test]
fn update_errors_that_reset_the_session() {
    // Total path attribute length runs past the message.
    let mut b = update_with_attrs(&hex(GOOD_ATTRS));
    b[3] = 200;
    assert_eq!(
        decode_update(&b, true).unwrap_err().subcode,
        err::UPDATE_MALFORMED_ATTR_LIST
    );
    // Withdrawn length runs past the message.
    assert_eq!(
        decode_update(&[0, 9, 24, 10], true).unwrap_err().subcode,
        err::UPDATE_MALFORMED_ATTR_LIST
    );
    // Truncated before the attribute length.
    assert!(decode_update(&[0, 0, 0], true).is_err());
    // NLRI with /33, or truncated NLRI.
    let mut b = update_with_attrs(&hex(GOOD_ATTRS));
    let n = b.len();
    b[n - 4] = 33;
    assert_eq!(
        decode_update(&b, true).unwrap_err().subcode,
        err::UPDATE_INVALID_NETWORK
    );
    let mut b = update_with_attrs(&hex(GOOD_ATTRS));
    b.pop();
    assert_eq!(
        decode_update(&b, true).unwrap_err().subcode,
        err::UPDATE_INVALID_NETWORK
    );
    // Unrecognized well-known attribute.
    let mut a = hex(GOOD_ATTRS);
    a.extend_from_slice(&hex("40 63 00"));
    assert_eq!(
        decode_update(&update_with_attrs(&a), true)
            .unwrap_err()
            .subcode,
        err::UPDATE_UNRECOGNIZED_WELL_KNOWN
    );
    // Malformed MP_REACH (next hop length 3) and duplicate MP_UNREACH.
    let mut a = hex(GOOD_ATTRS);
    a.extend_from_slice(&hex("80 0e 08 0001 01 03 0a0a1e 00"));
    assert_eq!(
        decode_update(&update_with_attrs(&a), true)
            .unwrap_err()
            .subcode,
        err::UPDATE_OPTIONAL_ATTR
    );
    let mut a = hex(GOOD_ATTRS);
    a.extend_from_slice(&hex("80 0f 03 000101  80 0f 03 000101"));
    assert_eq!(
        decode_update(&update_with_attrs(&a), true)
            .unwrap_err()
            .subcode,
        err::UPDATE_MALFORMED_ATTR_LIST
    );
}

#[test]
fn notification_descriptions_are_readable() {
    let n = Notification::cease_with_text(err::CEASE_ADMIN_SHUTDOWN, "maintenance");
    assert_eq!(
        n.describe(),
        "Cease / Administrative Shutdown: \"maintenance\""
    );
    assert_eq!(
        Notification::new(4, 0, vec![]).describe(),
        "Hold Timer Expired / Unspecific"
    );
    assert_eq!(
        Notification::new(2, 2, vec![0xff, 0xeb]).describe(),
        "OPEN Message Error / Bad Peer AS (data ffeb)"
    );
    assert_eq!(
        Notification::new(99, 7, vec![]).describe(),
        "Unknown Error Code / subcode 7"
    );
    // Shutdown text longer than its data: falls back to hex, no panic.
    assert!(Notification::new(6, 2, vec![50, b'x'])
        .describe()
        .contains("data"));
    assert_eq!(
        Notification::cease_with_text(2, &"é".repeat(200)).data[0],
        254
    );
    // The peer's text cannot forge log lines.
    let n = Notification::cease_with_text(err::CEASE_ADMIN_RESET, "bye\nINFO \"fake\"\x1b[0m");
    assert_eq!(
        n.describe(),
        "Cease / Administrative Reset: \"bye\\nINFO \\\"fake\\\"\\u{1b}[0m\""
    );
}

#[test]
fn route_refresh_bad_length() {
    assert_eq!(
        decode_route_refresh(&[0, 1, 0]).unwrap_err().code,
        err::ROUTE_REFRESH
    );
}

#[test]
fn messages_that_do_not_fit_are_errors_not_wrong_lengths() {
    // 1000 host routes need 5000 bytes: more than a BGP message may hold (RFC 4271 4.1).
    let mut u = full_update();
    u.nlri = (0..1000u32)
        .map(|i| IpPrefix::host(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))))
        .collect();
    let e = encode(&Message::Update(u.clone()), true).unwrap_err();
    assert_eq!((e.what, e.max), ("BGP message length", MAX_MESSAGE_LEN));
    u.nlri.truncate(700);
    let bytes = encode(&Message::Update(u.clone()), true).unwrap();
    assert!(bytes.len() <= MAX_MESSAGE_LEN);
    assert_eq!(decode(&bytes, true).unwrap(), Message::Update(u));
    // A capability longer than its one-byte length field.
    let open = Open {
        version: 4,
        my_as: 65021,
        hold_time: 30,
        bgp_id: Ipv4Addr::new(10, 2, 30, 125),
        capabilities: vec![Capability::Other {
            code: 73,
            value: vec![0; 256],
        }],
    };
    assert_eq!(
        encode(&Message::Open(open), true).unwrap_err().what,
        "capability length"
    );
    // An attribute over 255 bytes takes the extended length, and still round-trips.
    let mut u = full_update();
    u.attrs.other[0].flags |= FLAG_EXT_LEN;
    u.attrs.other[0].value = vec![7; 300];
    roundtrip(Message::Update(u), true);
}
