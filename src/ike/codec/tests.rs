use std::net::IpAddr;

use super::*;

fn sample_payloads() -> Vec<Payload> {
    vec![
        Payload::notify(notify::COOKIE, vec![1, 2, 3, 4]),
        Payload::Sa(vec![
            Proposal {
                num: 1,
                protocol: PROTO_IKE,
                spi: vec![],
                transforms: vec![
                    Transform {
                        ttype: TT_ENCR,
                        id: 12,
                        key_len: Some(256),
                    },
                    Transform {
                        ttype: TT_ENCR,
                        id: 3,
                        key_len: None,
                    },
                    Transform {
                        ttype: TT_PRF,
                        id: 2,
                        key_len: None,
                    },
                    Transform {
                        ttype: TT_INTEG,
                        id: 2,
                        key_len: None,
                    },
                    Transform {
                        ttype: TT_DH,
                        id: 2,
                        key_len: None,
                    },
                ],
            },
            Proposal {
                num: 2,
                protocol: PROTO_ESP,
                spi: vec![0xc4, 0x86, 0x11, 0x13],
                transforms: vec![
                    Transform {
                        ttype: TT_ENCR,
                        id: 12,
                        key_len: Some(128),
                    },
                    Transform {
                        ttype: TT_ESN,
                        id: 0,
                        key_len: None,
                    },
                ],
            },
        ]),
        Payload::Ke {
            group: 2,
            data: vec![7; 128],
        },
        Payload::Nonce(vec![9; 32]),
        Payload::IdI {
            id_type: 1,
            data: vec![192, 0, 2, 1],
        },
        Payload::IdR {
            id_type: 2,
            data: b"vpn.example".to_vec(),
        },
        Payload::Auth {
            method: AUTH_PSK,
            data: vec![0xaa; 20],
        },
        Payload::Notify(Notify {
            protocol: PROTO_ESP,
            spi: vec![1, 2, 3, 4],
            ntype: notify::REKEY_SA,
            data: vec![],
        }),
        Payload::Delete {
            protocol: PROTO_ESP,
            spi_size: 4,
            spis: vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]],
        },
        Payload::Vendor(b"strongSwan".to_vec()),
        Payload::TsI(vec![WireTs {
            ip_proto: 0,
            start_port: 0,
            end_port: 65535,
            start: "0.0.0.0".parse().unwrap(),
            end: "255.255.255.255".parse().unwrap(),
        }]),
        Payload::TsR(vec![
            WireTs {
                ip_proto: 6,
                start_port: 179,
                end_port: 179,
                start: "10.0.0.0".parse().unwrap(),
                end: "10.0.0.255".parse().unwrap(),
            },
            WireTs {
                ip_proto: 0,
                start_port: 0,
                end_port: 65535,
                start: "2001:db8::".parse().unwrap(),
                end: "2001:db8::ffff".parse().unwrap(),
            },
        ]),
        Payload::Other {
            ptype: 200,
            critical: false,
            body: vec![1, 2, 3],
        },
    ]
}

fn sample_header() -> Header {
    Header {
        spi_i: 0x0102030405060708,
        spi_r: 0,
        next_payload: 0,
        version: IKE_VERSION,
        exchange: EXCH_IKE_SA_INIT,
        flags: FLAG_INITIATOR,
        msg_id: 0,
        length: 0,
    }
}

#[test]
fn round_trip_all_payloads() {
    let payloads = sample_payloads();
    let bytes = encode_plain(sample_header(), &payloads);
    let msg = Message::parse(&bytes).unwrap();
    assert_eq!(msg.payloads, payloads);
    assert_eq!(msg.header.length as usize, bytes.len());
    assert_eq!(msg.header.next_payload, PT_NOTIFY);
    assert!(msg.sk.is_none());
    // Re-encoding gives the same bytes.
    assert_eq!(encode_plain(msg.header.clone(), &msg.payloads), bytes);
}

#[test]
fn key_length_attribute_is_tv() {
    let sa = Payload::Sa(vec![Proposal {
        num: 1,
        protocol: PROTO_IKE,
        spi: vec![],
        transforms: vec![Transform {
            ttype: TT_ENCR,
            id: 12,
            key_len: Some(256),
        }],
    }]);
    let body = sa.body();
    // proposal header (8) + transform header (8) + TV attribute 0x800e 0x0100
    assert_eq!(body.len(), 20);
    assert_eq!(&body[16..20], &[0x80, 0x0e, 0x01, 0x00]);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = encode_plain(sample_header(), &sample_payloads());
    for n in 0..bytes.len() {
        assert!(Message::parse(&bytes[..n]).is_err(), "prefix {n} parsed");
    }
}

#[test]
fn lying_lengths_are_errors() {
    let bytes = encode_plain(sample_header(), &sample_payloads());
    // Message length field larger than the datagram.
    let mut b = bytes.clone();
    b[27] = b[27].wrapping_add(1);
    assert!(Message::parse(&b).is_err());
    // First payload length too large/small.
    let mut b = bytes.clone();
    b[HEADER_LEN + 2] = 0xff;
    assert!(Message::parse(&b).is_err());
    let mut b = bytes.clone();
    b[HEADER_LEN + 2] = 0;
    b[HEADER_LEN + 3] = 3;
    assert!(Message::parse(&b).is_err());
}

#[test]
fn unknown_critical_payload_is_reported() {
    let p = vec![Payload::Other {
        ptype: 201,
        critical: true,
        body: vec![],
    }];
    let bytes = encode_plain(sample_header(), &p);
    assert_eq!(
        Message::parse(&bytes),
        Err(ParseError::UnsupportedCritical(201))
    );
    // Non-critical unknown payloads are kept aside and skipped.
    let p = vec![
        Payload::Other {
            ptype: 201,
            critical: false,
            body: vec![5],
        },
        Payload::Nonce(vec![1; 16]),
    ];
    let msg = Message::parse(&encode_plain(sample_header(), &p)).unwrap();
    assert_eq!(msg.payloads.len(), 2);
}

#[test]
fn delete_count_without_spi_size_allocates_nothing() {
    let d = Payload::Delete {
        protocol: PROTO_IKE,
        spi_size: 0,
        spis: vec![],
    };
    let mut bytes = encode_plain(sample_header(), &[d.clone(), d]);
    // Both payloads claim 65535 SPIs of size 0.
    for at in [HEADER_LEN + 6, HEADER_LEN + 8 + 6] {
        bytes[at..at + 2].copy_from_slice(&[0xff, 0xff]);
    }
    let msg = Message::parse(&bytes).unwrap();
    assert_eq!(msg.payloads.len(), 2);
    for p in &msg.payloads {
        assert!(
            matches!(p, Payload::Delete { protocol: PROTO_IKE, spi_size: 0, spis } if spis.is_empty()),
            "{p:?}"
        );
    }
}

#[test]
fn bad_version_rejected() {
    let mut bytes = encode_plain(sample_header(), &[Payload::Nonce(vec![1; 16])]);
    bytes[17] = 0x10;
    assert_eq!(Message::parse(&bytes), Err(ParseError::BadVersion(0x10)));
}

#[test]
fn sk_location_found() {
    let mut h = sample_header();
    h.exchange = EXCH_IKE_AUTH;
    let (_, chain) = encode_chain(&[Payload::Nonce(vec![1; 16])]);
    // Handcraft: header + SK payload with 20 bytes of body.
    let mut out = Vec::new();
    h.next_payload = PT_SK;
    h.length = (HEADER_LEN + 4 + 20) as u32;
    h.write(&mut out);
    out.extend_from_slice(&[PT_IDI, 0, 0, 24]);
    out.extend_from_slice(&[0u8; 20]);
    let msg = Message::parse(&out).unwrap();
    assert_eq!(
        msg.sk,
        Some(SkLocation {
            inner_next: PT_IDI,
            offset: HEADER_LEN,
            fragment: None,
        })
    );
    assert!(!chain.is_empty());
}

fn ts(n: usize) -> Vec<WireTs> {
    (0..n)
        .map(|i| WireTs {
            ip_proto: 0,
            start_port: 0,
            end_port: 65535,
            start: IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]),
            end: IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]),
        })
        .collect()
}

#[test]
fn counts_that_do_not_fit_their_field_are_errors_not_wrong_counts() {
    // 255 selectors is the most a TS payload can say; they round-trip.
    let full = vec![Payload::TsI(ts(255))];
    let bytes = try_encode_plain(sample_header(), &full).unwrap();
    assert_eq!(Message::parse(&bytes).unwrap().payloads, full);
    // 256 (or the 510 of a wide narrowing) cannot be said: an error naming the field,
    // where `as u8` used to send a count of 0 (or 254) followed by every selector.
    let too_many = Payload::TsR(ts(256));
    let e = too_many.try_body().unwrap_err();
    assert_eq!(
        (e.what, e.value, e.max),
        ("TS payload selector count", 256, 255)
    );
    assert!(try_encode_chain(std::slice::from_ref(&too_many)).is_err());
    assert!(try_encode_plain(sample_header(), std::slice::from_ref(&too_many)).is_err());
    // The infallible wrappers send nothing rather than a lie.
    assert!(too_many.body().is_empty());
    assert_eq!(
        encode_chain(std::slice::from_ref(&too_many)),
        (PT_NONE, vec![])
    );
    assert!(encode_plain(sample_header(), &[too_many]).is_empty());

    let spi_too_long = Payload::Notify(Notify {
        protocol: PROTO_ESP,
        spi: vec![0; 256],
        ntype: notify::REKEY_SA,
        data: vec![],
    });
    assert_eq!(spi_too_long.try_body().unwrap_err().what, "Notify SPI size");
    let deletes = Payload::Delete {
        protocol: PROTO_ESP,
        spi_size: 4,
        spis: vec![vec![0; 4]; 65536],
    };
    assert_eq!(deletes.try_body().unwrap_err().what, "Delete SPI count");
    // A payload body over 65531 bytes does not fit the generic header's length.
    let huge = Payload::Vendor(vec![0; 65532]);
    assert_eq!(
        try_encode_chain(&[huge]).unwrap_err().what,
        "payload length"
    );
    assert!(try_encode_chain(&[Payload::Vendor(vec![0; 65531])]).is_ok());
}

proptest::proptest! {
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        let _ = Message::parse(&data);
    }

    #[test]
    fn mutated_messages_never_panic(pos in 0usize..2000, val in proptest::prelude::any::<u8>(), cut in 0usize..2000) {
        let mut bytes = encode_plain(sample_header(), &sample_payloads());
        let n = bytes.len();
        bytes[pos % n] = val;
        let _ = Message::parse(&bytes);
        bytes.truncate(cut % (n + 1));
        let _ = Message::parse(&bytes);
    }
}

#[test]
fn skf_numbers_are_located_and_checked() {
    let mut h = sample_header();
    h.exchange = EXCH_IKE_AUTH;
    h.next_payload = PT_SKF;
    let skf = |number: u16, total: u16| {
        let mut out = Vec::new();
        let mut h = h.clone();
        h.length = (HEADER_LEN + 8 + 20) as u32;
        h.write(&mut out);
        out.extend_from_slice(&[PT_IDI, 0, 0, 28]);
        out.extend_from_slice(&number.to_be_bytes());
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&[0u8; 20]);
        out
    };
    let msg = Message::parse(&skf(2, 3)).unwrap();
    let loc = msg.sk.unwrap();
    assert_eq!(
        loc.fragment,
        Some(Fragment {
            number: 2,
            total: 3
        })
    );
    assert_eq!(loc.body_at(), HEADER_LEN + 8);
    for (n, t) in [(0, 3), (4, 3), (0, 0), (1, 0)] {
        assert_eq!(
            Message::parse(&skf(n, t)),
            Err(ParseError::Invalid("Encrypted Fragment payload numbers")),
            "{n}/{t}"
        );
    }
    // An SKF body too short for its numbers.
    let mut short = Vec::new();
    h.length = (HEADER_LEN + 4 + 2) as u32;
    h.write(&mut short);
    short.extend_from_slice(&[0, 0, 0, 6, 0, 1]);
    assert!(Message::parse(&short).is_err());
}
