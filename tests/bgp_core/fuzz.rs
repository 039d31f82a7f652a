//! Property tests: no input makes the session or the codec panic; UPDATEs round-trip.

use proptest::prelude::*;

use super::peer::{route, Peer};
use super::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8)) {
        for established in [false, true] {
            let mut peer = if established { Peer::established(cfg_a(), true) } else { Peer::opensent(cfg_a()) };
            for c in &chunks {
                peer.feed(c);
                peer.now += Duration::from_millis(10);
                peer.s.handle_timeout(peer.now);
            }
            peer.drain();
            let _ = peer.s.status();
        }
    }

    #[test]
    fn random_bodies_behind_valid_headers_never_panic(
        ty in 1u8..6,
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut peer = Peer::established(cfg_a(), true);
        let mut m = vec![0xffu8; 16];
        m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        m.push(ty);
        m.extend_from_slice(&body);
        peer.feed(&m);
        peer.drain();
        let _ = peer.s.rib();
    }

    #[test]
    fn random_updates_round_trip(
        withdrawn in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..20),
        nlri in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..20),
        segments in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u32>(), 1..20)), 0..4),
        origin in 0u8..3,
        med in proptest::option::of(any::<u32>()),
        next_hop in any::<u32>(),
        four_octet in any::<bool>(),
    ) {
        let pfx = |(a, l): (u32, u8)| IpPrefix::new(IpAddr::V4(Ipv4Addr::from(a)), l).unwrap();
        let as_path = AsPath {
            segments: segments
                .into_iter()
                .map(|(set, asns)| if set { msg::AsSegment::Set(asns) } else { msg::AsSegment::Sequence(asns) })
                .collect(),
        };
        let u = Update {
            withdrawn: withdrawn.into_iter().map(pfx).collect(),
            attrs: PathAttrs {
                origin: Some([Origin::Igp, Origin::Egp, Origin::Incomplete][origin as usize]),
                as_path: Some(as_path),
                next_hop: Some(Ipv4Addr::from(next_hop)),
                med,
                ..PathAttrs::default()
            },
            nlri: nlri.into_iter().map(pfx).collect(),
        };
        let bytes = msg::encode(&Message::Update(u.clone()), four_octet).unwrap();
        let body = &bytes[msg::HEADER_LEN..];
        let d = msg::decode_update(body, four_octet).unwrap();
        prop_assert_eq!(d.treat_as_withdraw, None);
        prop_assert_eq!(d.update, u);
    }

    #[test]
    fn mutated_updates_never_panic(idx in 0usize..80, val in any::<u8>()) {
        let mut peer = Peer::established(cfg_a(), true);
        let mut u = route(&["10.2.0.0/24", "10.3.0.0/16"], vec![65515, 65516]);
        u.withdrawn = vec![p("10.9.0.0/16")];
        let mut bytes = msg::encode(&Message::Update(u), true).unwrap();
        let n = bytes.len();
        bytes[19 + idx % (n - 19)] = val;
        peer.feed(&bytes);
        peer.drain();
    }
}
