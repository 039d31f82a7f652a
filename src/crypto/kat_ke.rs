//! Known-answer tests of the key exchange groups from the RFCs' own vectors, plus the checks
//! on hostile peer values (RFC 6989, RFC 8031 2.3) and property tests that no peer value,
//! whatever its length or content, panics or slips through.

use super::{validate_public, DhGroup, DhPrivate, KeError, KeyExchange};
use proptest::prelude::*;
use rand::{rngs::StdRng, SeedableRng};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// One RFC 5903 section 8 vector: i, g^i = (gix, giy), r, g^r = (grx, gry), girx.
struct EcpVector {
    group: DhGroup,
    i: &'static str,
    gi: [&'static str; 2],
    r: &'static str,
    gr: [&'static str; 2],
    girx: &'static str,
}

fn check_exchange(group: DhGroup, i: &[u8], gi: &[u8], r: &[u8], gr: &[u8], shared: &[u8]) {
    let a = DhPrivate::from_private_bytes(group, i).unwrap();
    let b = DhPrivate::from_private_bytes(group, r).unwrap();
    assert_eq!(a.public_value(), gi, "{} g^i", group.name());
    assert_eq!(b.public_value(), gr, "{} g^r", group.name());
    assert_eq!(a.public_value().len(), group.public_len());
    assert_eq!(
        *a.shared_secret(gr).unwrap(),
        shared,
        "{} i*g^r",
        group.name()
    );
    assert_eq!(
        *b.shared_secret(gi).unwrap(),
        shared,
        "{} r*g^i",
        group.name()
    );
    assert_eq!(shared.len(), group.shared_len());
}

#[test]
fn ecp_rfc5903_section8_vectors() {
    let vectors = [
        // RFC 5903 8.1, 256-bit random ECP group.
        EcpVector {
            group: DhGroup::Ecp256,
            i: "C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433",
            gi: [
                "DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180",
                "5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3",
            ],
            r: "C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53",
            gr: [
                "D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63",
                "56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB",
            ],
            girx: "D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE",
        },
        // RFC 5903 8.2, 384-bit random ECP group.
        EcpVector {
            group: DhGroup::Ecp384,
            i: "099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655
                E35B5380 41E649EE 3FAEF896 783AB194",
            gi: [
                "667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3 1634FE72 B4C55EE6
                 DE3AC808 ACB4BDB4 C88732AE E95F41AA",
                "9482ED1F C0EEB9CA FC498462 5CCFC23F 65032149 E0E144AD A0241815 35A0F38E
                 EB9FCFF3 C2C947DA E69B4C63 4573A81C",
            ],
            r: "41CB0779 B4BDB85D 47846725 FBEC3C94 30FAB46C C8DC5060 855CC9BD A0AA2942
                E0308312 916B8ED2 960E4BD5 5A7448FC",
            gr: [
                "E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D 83CFA417 32BC509D
                 0D1AC43A 0336DEF9 6FDA41D0 774A3571",
                "DCFBEC7A ACF31964 72169E83 8430367F 66EEBE3C 6E70C416 DD5F0C68 759DD1FF
                 F83FA401 42209DFF 5EAAD96D B9E6386C",
            ],
            girx: "11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4
                   D6031355 69B9E9D0 9CF5D4A2 70F59746",
        },
        // RFC 5903 8.3, 521-bit random ECP group.
        EcpVector {
            group: DhGroup::Ecp521,
            i: "0037ADE9 319A89F4 DABDB3EF 411AACCC A5123C61 ACAB57B5 393DCE47 608172A0
                95AA85A3 0FE1C295 2C6771D9 37BA9777 F5957B26 39BAB072 462F68C2 7A57382D
                4A52",
            gi: [
                "0015417E 84DBF28C 0AD3C278 713349DC 7DF153C8 97A1891B D98BAB43 57C9ECBE
                 E1E3BF42 E00B8E38 0AEAE57C 2D107564 94188594 2AF5A7F4 601723C4 195D176C
                 ED3E",
                "017CAE20 B6641D2E EB695786 D8C94614 6239D099 E18E1D5A 514C739D 7CB4A10A
                 D8A78801 5AC405D7 799DC75E 7B7D5B6C F2261A6A 7F150743 8BF01BEB 6CA3926F
                 9582",
            ],
            r: "0145BA99 A847AF43 793FDD0E 872E7CDF A16BE30F DC780F97 BCCC3F07 8380201E
                9C677D60 0B343757 A3BDBF2A 3163E4C2 F869CCA7 458AA4A4 EFFC311F 5CB15168
                5EB9",
            gr: [
                "00D0B397 5AC4B799 F5BEA16D 5E13E9AF 971D5E9B 984C9F39 728B5E57 39735A21
                 9B97C356 436ADC6E 95BB0352 F6BE64A6 C2912D4E F2D0433C ED2B6171 640012D9
                 460F",
                "015C6822 6383956E 3BD066E7 97B623C2 7CE0EAC2 F551A10C 2C724D98 52077B87
                 220B6536 C5C408A1 D2AEBB8E 86D678AE 49CB5709 1F473229 6579AB44 FCD17F0F
                 C56A",
            ],
            girx: "01144C7D 79AE6956 BC8EDB8E 7C787C45 21CB086F A64407F9 7894E5E6 B2D79B04
                   D1427E73 CA4BAA24 0A347868 59810C06 B3C715A3 A8CC3151 F2BEE417 996D19F3
                   DDEA",
        },
    ];
    for v in vectors {
        let gi = [hex(v.gi[0]), hex(v.gi[1])].concat();
        let gr = [hex(v.gr[0]), hex(v.gr[1])].concat();
        check_exchange(v.group, &hex(v.i), &gi, &hex(v.r), &gr, &hex(v.girx));
    }
}

#[test]
fn x25519_rfc7748_section6_1() {
    check_exchange(
        DhGroup::Curve25519,
        &hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
        &hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"),
        &hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"),
        &hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"),
        &hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"),
    );
}

#[test]
fn curve25519_rfc8031_appendix_a() {
    check_exchange(
        DhGroup::Curve25519,
        &hex("75 1f b4 30 86 55 b4 76 b6 78 9b 73 25 f9 ea 8c dd d1 6a 58 53 3f f6 d9 e6 00 09 46 4a 5f 9d 94"),
        &hex("48 d5 dd d4 06 12 57 ba 16 6f a3 f9 bb db 74 f1 a4 e8 1c 08 93 84 fa 77 f7 90 70 9f 0d fb c7 66"),
        &hex("0a 54 64 52 53 29 0d 60 dd ad d0 e0 30 ba cd 9e 55 01 ef dc 22 07 55 a1 e9 78 f1 b8 39 a0 56 88"),
        &hex("0b e7 c1 f5 aa d8 7d 7e 44 86 62 67 32 98 a4 43 47 8b 85 97 45 17 9e af 56 4c 79 c0 ef 6e ee 25"),
        &hex("c7 49 50 60 7a 12 32 7f 32 04 d9 4b 68 25 bf b0 68 b7 f8 31 9a 9e 37 08 ed 3d 43 ce 81 30 c9 50"),
    );
}

#[test]
fn modp2048s256_rfc5114_appendix_a3() {
    // RFC 5114 A.3: xA, yA, xB, yB and the shared ZZ for group 24.
    let ya = "2E9380C8 323AF975 45BC4941 DEB0EC37 42C62FE0 ECE824A6 ABDBE66C 59BEE024
              2911BFB9 67235CEB A35AE13E 4EC752BE 630B92DC 4BDE2847 A9C62CB8 15274542
              1FB7EB60 A63C0FE9 159FCCE7 26CE7CD8 523D7450 667EF840 E4919121 EB5F01C8
              C9B0D3D6 48A93BFB 75689E82 44AC134A F544711C E79A02DC C3422668 4780DDDC
              B4985941 06C37F5B C7985648 7AF5AB02 2A2E5E42 F09897C1 A85A11EA 0212AF04
              D9B4CEBC 937C3C1A 3E15A8A0 342E3376 15C84E7F E3B8B9B8 7FB1E73A 15AF12A3
              0D746E06 DFC34F29 0D797CE5 1AA13AA7 85BF6658 AFF5E4B0 93003CBE AF665B3C
              2E113A3A 4E905269 341DC071 1426685F 4EF37E86 8A8126FF 3F2279B5 7CA67E29";
    let yb = "575F0351 BD2B1B81 7448BDF8 7A6C362C 1E289D39 03A30B98 32C5741F A250363E
              7ACBC7F7 7F3DACBC 1F131ADD 8E03367E FF8FBBB3 E1C57844 24809B25 AFE4D226
              2A1A6FD2 FAB64105 CA30A674 E07F7809 85208863 2FC04923 3791AD4E DD083A97
              8B883EE6 18BC5E0D D047415F 2D95E683 CF14826B 5FBE10D3 CE41C6C1 20C78AB2
              0008C698 BF7F0BCA B9D7F407 BED0F43A FB2970F5 7F8D1204 3963E66D DD320D59
              9AD9936C 8F44137C 08B180EC 5E985CEB E186F3D5 49677E80 607331EE 17AF3380
              A725B078 2317D7DD 43F59D7A F9568A9B B63A84D3 65F92244 ED120988 219302F4
              2924C7CA 90B89D24 F71B0AB6 97823D7D EB1AFF5B 0E8E4A45 D49F7F53 757E1913";
    let zz = "86C70BF8 D0BB81BB 01078A17 219CB7D2 7203DB2A 19C877F1 D1F19FD7 D77EF225
              46A68F00 5AD52DC8 4553B78F C60330BE 51EA7C06 72CAC151 5E4B35C0 47B9A551
              B88F39DC 26DA14A0 9EF74774 D47C762D D177F9ED 5BC2F11E 52C879BD 95098504
              CD9EECD8 A8F9B3EF BD1F008A C5853097 D9D1837F 2B18F77C D7BE01AF 80A7C7B5
              EA3CA54C C02D0C11 6FEE3F95 BB873993 85875D7E 86747E67 6E728938 ACBFF709
              8E05BE4D CFB24052 B83AEFFB 14783F02 9ADBDE7F 53FAE920 84224090 E007CEE9
              4D4BF2BA CE9FFD4B 57D2AF7C 724D0CAA 19BF0501 F6F17B4A A10F425E 3EA76080
              B4B9D6B3 CEFEA115 B2CEB878 9BB8A3B0 EA87FEBE 63B6C8F8 46EC6DB0 C26C5D7C";
    check_exchange(
        DhGroup::Modp2048s256,
        &hex("0881382C DB87660C 6DC13E61 4938D5B9 C8B2F248 581CC5E3 1B354543 97FCE50E"),
        &hex(ya),
        &hex("7D62A7E3 EF36DE61 7B13D1AF B82C780D 83A23BD4 EE670564 5121F371 F546A53D"),
        &hex(yb),
        &hex(zz),
    );
}

#[test]
fn modp2048s256_rfc6989_subgroup_check() {
    use num_bigint::BigUint;
    let g = DhGroup::Modp2048s256;
    let p = BigUint::from_bytes_be(&super::modp_prime(g).unwrap());
    let q = BigUint::from_bytes_be(&hex(
        "8CF83642 A709A097 B4479976 40129DA2 99B1A47D 1EB3750B A308B0FE 64F5FBD3",
    ));
    let a = DhPrivate::generate(g, &mut StdRng::seed_from_u64(24));
    let pad = |v: &BigUint| {
        let b = v.to_bytes_be();
        let mut out = vec![0u8; 256 - b.len()];
        out.extend(b);
        out
    };
    // 2 and 3^q lie outside the order-q subgroup (the oracle confirms it), yet both pass
    // the safe-prime range check 1 < y < p-1: only the y^q = 1 test catches them.
    let two = BigUint::from(2u32);
    let small_order = BigUint::from(3u32).modpow(&q, &p);
    for y in [two, small_order] {
        assert_ne!(y.modpow(&q, &p), BigUint::from(1u32));
        assert_eq!(
            a.shared_secret(&pad(&y)),
            Err(KeError::NotInSubgroup { group: g })
        );
        assert_eq!(
            validate_public(g, &pad(&y)),
            Err(KeError::NotInSubgroup { group: g })
        );
    }
    // A genuine member passes.
    let b = DhPrivate::generate(g, &mut StdRng::seed_from_u64(25));
    assert!(validate_public(g, &b.public_value()).is_ok());
    assert!(a.shared_secret(&b.public_value()).is_ok());
}

#[test]
fn ecp_peer_points_are_validated() {
    for g in [DhGroup::Ecp256, DhGroup::Ecp384, DhGroup::Ecp521] {
        let a = DhPrivate::generate(g, &mut StdRng::seed_from_u64(5));
        let good = DhPrivate::generate(g, &mut StdRng::seed_from_u64(6)).public_value();
        let n = g.public_len();
        assert!(a.shared_secret(&good).is_ok());
        // The "point at infinity" as all zeros.
        assert_eq!(
            a.shared_secret(&vec![0u8; n]),
            Err(KeError::Identity { group: g })
        );
        // y flipped: off the curve.
        let mut off = good.clone();
        off[n - 1] ^= 1;
        assert_eq!(a.shared_secret(&off), Err(KeError::NotOnCurve { group: g }));
        // x = all ones is >= p for all three fields.
        let mut big = good.clone();
        big[..n / 2].iter_mut().for_each(|b| *b = 0xff);
        assert_eq!(a.shared_secret(&big), Err(KeError::NotOnCurve { group: g }));
        // The SEC1 forms other stacks use are not RFC 5903's encoding.
        let mut sec1 = vec![0x04];
        sec1.extend_from_slice(&good);
        assert!(matches!(
            a.shared_secret(&sec1),
            Err(KeError::WrongLength { .. })
        ));
        assert!(a.shared_secret(&good[..n / 2 + 1]).is_err());
        assert!(a.shared_secret(&[]).is_err());
    }
}

#[test]
fn x25519_low_order_points_give_the_all_zero_secret_and_are_refused() {
    let a = DhPrivate::generate(DhGroup::Curve25519, &mut StdRng::seed_from_u64(31));
    // The points of order 1, 2, 4 and 8 and their non-canonical encodings.
    for p in [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ] {
        assert_eq!(
            a.shared_secret(&hex(p)),
            Err(KeError::ZeroSharedSecret {
                group: DhGroup::Curve25519
            }),
            "{p}"
        );
    }
    assert!(matches!(
        a.shared_secret(&[9u8; 31]),
        Err(KeError::WrongLength { .. })
    ));
}

#[test]
fn every_group_agrees_through_the_trait_and_reports_its_sizes() {
    let mut rng = StdRng::seed_from_u64(99);
    for g in DhGroup::ALL {
        let a: Box<dyn KeyExchange> = Box::new(DhPrivate::generate(g, &mut rng));
        let b: Box<dyn KeyExchange> = Box::new(DhPrivate::generate(g, &mut rng));
        assert_eq!(a.group(), g);
        assert_eq!(a.public_value().len(), g.public_len(), "{}", g.name());
        let s1 = a.shared_secret(&b.public_value()).unwrap();
        let s2 = b.shared_secret(&a.public_value()).unwrap();
        assert_eq!(*s1, *s2, "{}", g.name());
        assert_eq!(s1.len(), g.shared_len(), "{}", g.name());
        assert_eq!(DhGroup::from_transform(g.transform_id()), Some(g));
        assert!(format!("{:?}", DhPrivate::generate(g, &mut rng)).contains("redacted"));
    }
}

#[test]
fn a_stuck_rng_still_yields_valid_distinct_keys_per_group() {
    for g in DhGroup::ALL {
        let mut stuck = rand::rngs::mock::StepRng::new(0, 0);
        let a = DhPrivate::generate(g, &mut stuck);
        let b = DhPrivate::generate(g, &mut StdRng::seed_from_u64(7));
        assert!(
            validate_public(g, &a.public_value()).is_ok(),
            "{}",
            g.name()
        );
        assert!(b.shared_secret(&a.public_value()).is_ok(), "{}", g.name());
    }
}

#[test]
fn errors_name_the_group_and_the_check() {
    let e = KeError::NotOnCurve {
        group: DhGroup::Ecp384,
    };
    assert_eq!(
        e.to_string(),
        "ECP_384: public value is not a point on the curve"
    );
    let c: super::CryptoError = e.into();
    assert!(c.to_string().contains("ECP_384"));
}

fn groups() -> impl Strategy<Value = DhGroup> {
    proptest::sample::select(DhGroup::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any byte string as a peer value: never a panic; a wrong length is always refused.
    #[test]
    fn arbitrary_peer_values_never_panic(g in groups(), data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let a = DhPrivate::generate(g, &mut StdRng::seed_from_u64(1));
        let r = a.shared_secret(&data);
        prop_assert_eq!(r.is_ok(), validate_public(g, &data).is_ok() && !matches!(r, Err(KeError::ZeroSharedSecret { .. })));
        if data.len() != g.public_len() {
            prop_assert!(
                matches!(r, Err(KeError::WrongLength { .. })),
                "{} accepted {} bytes",
                g.name(),
                data.len()
            );
        }
    }

    /// Random x || y of the right length is (all but certainly) not a curve point.
    #[test]
    fn random_ecp_coordinates_are_refused(
        g in proptest::sample::select(vec![DhGroup::Ecp256, DhGroup::Ecp384, DhGroup::Ecp521]),
        seed in any::<u64>(),
    ) {
        use rand::RngCore;
        let mut v = vec![0u8; g.public_len()];
        StdRng::seed_from_u64(seed).fill_bytes(&mut v);
        let a = DhPrivate::generate(g, &mut StdRng::seed_from_u64(2));
        prop_assert!(a.shared_secret(&v).is_err());
    }

    /// MODP values at or above p-1 are refused, whatever the low bytes.
    #[test]
    fn modp_values_not_below_p_minus_1_are_refused(
        g in proptest::sample::select(vec![DhGroup::Modp768, DhGroup::Modp1536, DhGroup::Modp2048s256]),
        low in any::<u8>(),
    ) {
        let a = DhPrivate::generate(g, &mut StdRng::seed_from_u64(3));
        let mut y = super::modp_prime(g).unwrap();
        let n = y.len();
        y[n - 1] = y[n - 1].max(low).max(y[n - 1] - 1);
        prop_assert_eq!(a.shared_secret(&y), Err(KeError::OutOfRange { group: g }));
        prop_assert_eq!(a.shared_secret(&vec![0xff; n]), Err(KeError::OutOfRange { group: g }));
    }
}
