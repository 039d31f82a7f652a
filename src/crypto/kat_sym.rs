//! Known-answer tests of the ciphers, MACs and PRFs added for issue 10, from the RFCs' and
//! specifications' own vectors, plus a property test of the short-tag GCM against aes-gcm.

use super::{new_aead, new_mac, prf, skeyseed_key, EncrAlg, IntegAlg, PrfAlg};
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Seals `pt` and checks ciphertext and ICV, then opens it back and checks that a flipped
/// tag bit, a flipped ciphertext bit and a tag of the wrong length are all refused.
fn check_aead(alg: EncrAlg, keymat: &[u8], iv: &str, aad: &[u8], pt: &[u8], ct_tag: &[u8]) {
    let a = new_aead(alg, keymat).unwrap();
    let icv = alg.icv_len();
    assert_eq!(a.icv_len(), icv, "{}", alg.name());
    let iv: [u8; 8] = hex(iv).try_into().unwrap();
    let (ct, tag) = ct_tag.split_at(ct_tag.len() - icv);
    let mut buf = pt.to_vec();
    let full = a.seal(&iv, aad, &mut buf);
    assert_eq!(buf, ct, "{} ciphertext", alg.name());
    assert_eq!(&full[..icv], tag, "{} ICV", alg.name());
    assert!(full[icv..].iter().all(|&b| b == 0));
    let mut icv_out = vec![0u8; icv];
    let mut buf2 = pt.to_vec();
    assert!(a.seal_icv(&iv, aad, &mut buf2, &mut icv_out));
    assert_eq!((buf2.as_slice(), icv_out.as_slice()), (ct, tag));
    assert!(a.open(&iv, aad, &mut buf, tag), "{}", alg.name());
    assert_eq!(buf, pt);
    let mut bad = tag.to_vec();
    bad[icv - 1] ^= 0x01;
    assert!(!a.open(&iv, aad, &mut ct.to_vec(), &bad));
    if !ct.is_empty() {
        let mut ct_bad = ct.to_vec();
        ct_bad[0] ^= 0x80;
        assert!(!a.open(&iv, aad, &mut ct_bad, tag));
    }
    assert!(!a.open(&iv, aad, &mut ct.to_vec(), &full[..icv - 1]));
    assert!(!a.open(&iv, aad, &mut ct.to_vec(), &[tag, &[0]].concat()));
}

const GCM_PT: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
                      1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
const GCM_AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";

/// McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 3/4 (AES-128), 9/10
/// (AES-192) and 15/16 (AES-256): IV cafebabefacedbaddecaf888 = RFC 4106 salt || IV. Each
/// runs at ICV 16, 12 and 8; the shorter ICVs are the full tag's leading bytes (NIST SP
/// 800-38D 5.2.1.2), which is how RFC 4106/5282 define ENCR_AES_GCM_8/12.
#[test]
fn aes_gcm_all_icv_lengths_mcgrew_viega() {
    let cases: [(&str, [EncrAlg; 3], &str, &str, &str); 3] = [
        (
            "feffe9928665731c6d6a8f9467308308",
            [
                EncrAlg::AesGcm16_128,
                EncrAlg::AesGcm12_128,
                EncrAlg::AesGcm8_128,
            ],
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
             21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
            "4d5c2af327cd64a62cf35abd2ba6fab4",
            "5bc94fbc3221a5db94fae95ae7121a47",
        ),
        (
            "feffe9928665731c6d6a8f9467308308feffe9928665731c",
            [
                EncrAlg::AesGcm16_192,
                EncrAlg::AesGcm12_192,
                EncrAlg::AesGcm8_192,
            ],
            "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c
             7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710acade256",
            "9924a7c8587336bfb118024db8674a14",
            "2519498e80f1478f37ba55bd6d27618c",
        ),
        (
            "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            [
                EncrAlg::AesGcm16_256,
                EncrAlg::AesGcm12_256,
                EncrAlg::AesGcm8_256,
            ],
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
             8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
            "b094dac5d93471bdec1a502270e3cc6c",
            "76fc6ece0f4e1768cddf8853bb2d551b",
        ),
    ];
    let pt = hex(GCM_PT);
    for (key, algs, ct, tag_no_aad, tag_aad) in cases {
        let keymat = [hex(key), hex("cafebabe")].concat();
        let ct = hex(ct);
        for alg in algs {
            let n = alg.icv_len();
            // Test case 3/9/15: 64 bytes, no AAD.
            let expect = [ct.clone(), hex(tag_no_aad)[..n].to_vec()].concat();
            check_aead(alg, &keymat, "facedbaddecaf888", &[], &pt, &expect);
            // Test case 4/10/16: 60 bytes with 20 bytes of AAD.
            let expect = [ct[..60].to_vec(), hex(tag_aad)[..n].to_vec()].concat();
            check_aead(
                alg,
                &keymat,
                "facedbaddecaf888",
                &hex(GCM_AAD),
                &pt[..60],
                &expect,
            );
        }
    }
}

#[test]
fn chacha20poly1305_rfc7539_section_2_8_2() {
    // RFC 7539 (= RFC 8439) 2.8.2: nonce 07000000 || 4041424344454647, i.e. salt || IV.
    let keymat = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f 07000000");
    let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
    let ct = hex(
        "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
         3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
         92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
         3ff4def08e4b7a9de576d26586cec64b6116
         1ae10b594f09e26a7e902ecbd0600691",
    );
    check_aead(
        EncrAlg::ChaCha20Poly1305,
        &keymat,
        "4041424344454647",
        &hex("50515253c0c1c2c3c4c5c6c7"),
        pt,
        &ct,
    );
}

#[test]
fn chacha20poly1305_rfc7634_appendix_a_esp() {
    // RFC 7634 A: an ESP packet; AAD = SPI 0x01020304 || sequence number 5.
    let keymat = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f a0a1a2a3");
    let pt = hex(
        "45000054a6f200004001e778c6336405c000020508005b7a3a080000553bec10
         0007362708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223
         2425262728292a2b2c2d2e2f303132333435363701020204",
    );
    let ct = hex(
        "24039428b97f417e3c13753a4f05087b67c352e6a7fab1b982d466ef407ae5c6
         14ee8099d52844eb61aa95dfab4c02f72aa71e7c4c4f64c9befe2facc638e8f3
         cbec163fac469b502773f6fb94e664da9165b82829f641e0
         76aaa8266b7fb0f7b11b369907e1ad43",
    );
    check_aead(
        EncrAlg::ChaCha20Poly1305,
        &keymat,
        "1011121314151617",
        &hex("01020304 00000005"),
        &pt,
        &ct,
    );
}

#[test]
fn chacha20poly1305_rfc7634_appendix_b_ikev2() {
    // RFC 7634 B: an IKEv2 SK payload; AAD = IKE header || SK payload header (RFC 5282 5.1).
    let keymat = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f a0a1a2a3");
    check_aead(
        EncrAlg::ChaCha20Poly1305,
        &keymat,
        "1011121314151617",
        &hex("c0c1c2c3c4c5c6c7d0d1d2d3d4d5d6d7 2e202500000000090000004529000029"),
        &hex("0000000c000040010000000a00"),
        &hex("610394701f8d017f7c129248896b71bfe25236efd7cdc67066906315b2"),
    );
}

#[test]
fn aead_keymat_and_kind_errors() {
    for alg in EncrAlg::ALL {
        if alg.is_aead() {
            assert_eq!(alg.keymat_len(), alg.key_len() + 4, "{}", alg.name());
            assert!(new_aead(alg, &vec![0u8; alg.keymat_len()]).is_ok());
            assert!(
                new_aead(alg, &vec![0u8; alg.key_len()]).is_err(),
                "salt missing"
            );
        } else {
            assert!(new_aead(alg, &vec![0u8; alg.keymat_len()]).is_err());
        }
    }
}

/// (key, data, HMAC-SHA-384, HMAC-SHA-512): RFC 4231 test cases 1, 2 and 6.
const RFC4231: [(&str, &str, &str, &str); 3] = [
    (
        "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
        "4869205468657265",
        "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c
         faea9ea9076ede7f4af152e8b2fa9cb6",
        "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde
         daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
    ),
    (
        "4a656665",
        "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
        "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e
         8e2240ca5e69e2c78b3239ecfab21649",
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554
         9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
    ),
    (
        // 131 bytes of 0xaa: a key longer than the block, hashed first.
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
         aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
         aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
         aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
         aaaaaa",
        "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a
         65204b6579202d2048617368204b6579204669727374",
        "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6
         0c2ef6ab4030fe8296248df163f44952",
        "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352
         6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
    ),
];

#[test]
fn prf_hmac_sha384_sha512_rfc4231() {
    for (key, data, h384, h512) in RFC4231 {
        assert_eq!(
            *prf(PrfAlg::HmacSha384, &hex(key), &[&hex(data)]),
            hex(h384)
        );
        assert_eq!(
            *prf(PrfAlg::HmacSha512, &hex(key), &[&hex(data)]),
            hex(h512)
        );
    }
    assert_eq!(PrfAlg::HmacSha384.key_len(), 48);
    assert_eq!(PrfAlg::HmacSha512.out_len(), 64);
}

/// RFC 4868 2.7.2.2/2.7.2.3: the authenticator test cases, keys as long as the output
/// (48 / 64 bytes), ICVs truncated to 192 / 256 bits.
#[test]
fn hmac_sha384_192_and_sha512_256_rfc4868_truncations() {
    let cases: [(IntegAlg, &str, &str, &str); 6] = [
        (
            IntegAlg::HmacSha384_192,
            "0b",
            "4869205468657265",
            "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973",
        ),
        (
            IntegAlg::HmacSha384_192,
            "4a656665",
            "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
            "2c7353974f1842fd66d53c452ca42122b28c0b594cfb184d",
        ),
        (
            IntegAlg::HmacSha384_192,
            "aa",
            &"dd".repeat(50),
            "809f439be00274321d4a538652164b53554a508184a0c316",
        ),
        (
            IntegAlg::HmacSha512_256,
            "0b",
            "4869205468657265",
            "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8",
        ),
        (
            IntegAlg::HmacSha512_256,
            "4a656665",
            "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
            "cb370917ae8a7ce28cfd1d8f4705d6141c173b2a9362c15df235dfb251b15454",
        ),
        (
            IntegAlg::HmacSha512_256,
            "aa",
            &"dd".repeat(50),
            "2ee7acd783624ca9398710f3ee05ae41b9f9b0510c87e49e586cc9bf961733d8",
        ),
    ];
    for (alg, key_unit, data, icv) in cases {
        // The key pattern repeated to the key length (Jefe 12 or 16 times, 0x0b / 0xaa).
        let unit = hex(key_unit);
        let key: Vec<u8> = unit.iter().copied().cycle().take(alg.key_len()).collect();
        let m = new_mac(alg, &key).unwrap();
        assert_eq!(m.icv_len(), alg.icv_len());
        let mut out = vec![0u8; alg.icv_len()];
        m.sign(&[&hex(data)], &mut out);
        assert_eq!(out, hex(icv), "{}", alg.name());
        assert!(m.verify(&[&hex(data)], &out));
        let mut bad = out.clone();
        bad[0] ^= 1;
        assert!(!m.verify(&[&hex(data)], &bad));
        assert!(!m.verify(&[&hex(data)], &out[..out.len() - 1]));
    }
    assert!(new_mac(IntegAlg::HmacSha384_192, &[0u8; 32]).is_err());
}

#[test]
fn hmac_md5_rfc2202() {
    // RFC 2202 2, test cases 1-3 and 6; HMAC-MD5-96 keeps the first 96 bits (RFC 2403).
    let cases = [
        (
            "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
            "4869205468657265".to_string(),
            "9294727a3638bb1c13f48ef8158bfc9d",
        ),
        (
            "4a656665",
            "7768617420646f2079612077616e7420666f72206e6f7468696e673f".to_string(),
            "750c783e6ab0b503eaa86e310a5db738",
        ),
        (
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "dd".repeat(50),
            "56be34521d144c88dbb8c733f0e8b3f6",
        ),
    ];
    for (key, data, out) in &cases {
        assert_eq!(*prf(PrfAlg::HmacMd5, &hex(key), &[&hex(data)]), hex(out));
    }
    let large = hex(&"aa".repeat(80));
    assert_eq!(
        *prf(
            PrfAlg::HmacMd5,
            &large,
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
        ),
        hex("6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd")
    );
    let m = new_mac(IntegAlg::HmacMd5_96, &hex(cases[0].0)).unwrap();
    let mut icv = [0u8; 12];
    m.sign(&[b"Hi ", b"There"], &mut icv);
    assert_eq!(icv.to_vec(), hex("9294727a3638bb1c13f48ef8"));
    assert!(IntegAlg::HmacMd5_96.is_weak() && PrfAlg::HmacMd5.is_weak());
}

#[test]
fn aes_xcbc_mac_96_rfc3566_and_prf_rfc4434() {
    let key = hex("000102030405060708090a0b0c0d0e0f");
    let msg: Vec<u8> = (0u8..34).collect();
    // RFC 3566 4.6 test cases 1-6: message lengths 0, 3, 16, 20, 32, 34.
    let cases = [
        (0, "75f0251d528ac01c4573dfd584d79f29"),
        (3, "5b376580ae2f19afe7219ceef172756f"),
        (16, "d2a246fa349b68a79998a4394ff7a263"),
        (20, "47f51b4564966215b8985c63055ed308"),
        (32, "f54f0ec8d2b9f3d36807734bd5283fd4"),
        (34, "becbb3bccdb518a30677d5481fb6b4d8"),
    ];
    let m = new_mac(IntegAlg::AesXcbc96, &key).unwrap();
    for (len, full) in cases {
        let full = hex(full);
        assert_eq!(
            *prf(PrfAlg::AesXcbc128, &key, &[&msg[..len]]),
            full,
            "len {len}"
        );
        let mut icv = [0u8; 12];
        m.sign(&[&msg[..len]], &mut icv);
        assert_eq!(icv, full[..12], "len {len}");
        // Split across parts at every position: same MAC.
        for cut in 0..=len {
            let mut icv2 = [0u8; 12];
            m.sign(&[&msg[..cut], &msg[cut..len]], &mut icv2);
            assert_eq!(icv2, icv);
        }
        assert!(m.verify(&[&msg[..len]], &icv));
    }
    // RFC 4434 4: AES-XCBC-PRF-128 with 16-, 10- and 18-byte keys over 20 bytes.
    let data = &msg[..20];
    assert_eq!(
        *prf(PrfAlg::AesXcbc128, &key, &[data]),
        hex("47f51b4564966215b8985c63055ed308")
    );
    assert_eq!(
        *prf(PrfAlg::AesXcbc128, &key[..10], &[data]),
        hex("0fa087af7d866e7653434e602fdde835")
    );
    assert_eq!(
        *prf(
            PrfAlg::AesXcbc128,
            &[key.clone(), hex("edcb")].concat(),
            &[data]
        ),
        hex("8cd3c93ae598a9803006ffb67c40e9e4")
    );
}

#[test]
fn skeyseed_key_truncates_nonces_only_for_xcbc() {
    let ni = [1u8; 32];
    let nr = [2u8; 32];
    assert_eq!(skeyseed_key(PrfAlg::HmacSha256, &ni, &nr).len(), 64);
    let k = skeyseed_key(PrfAlg::AesXcbc128, &ni, &nr);
    assert_eq!(*k, [[1u8; 8], [2u8; 8]].concat());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The hand-assembled GCM (8/12-byte ICVs) is aes-gcm's tag, truncated; at 12 bytes it
    /// also equals aes-gcm's own 12-byte-tag mode.
    #[test]
    fn short_tag_gcm_matches_aes_gcm(
        key in proptest::collection::vec(any::<u8>(), 16),
        salt in any::<[u8; 4]>(),
        iv in any::<[u8; 8]>(),
        aad in proptest::collection::vec(any::<u8>(), 0..40),
        pt in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let keymat = [key.as_slice(), &salt].concat();
        let full = new_aead(EncrAlg::AesGcm16_128, &keymat).unwrap();
        let mut c16 = pt.clone();
        let t16 = full.seal(&iv, &aad, &mut c16);
        for alg in [EncrAlg::AesGcm8_128, EncrAlg::AesGcm12_128] {
            let short = new_aead(alg, &keymat).unwrap();
            let mut c = pt.clone();
            let t = short.seal(&iv, &aad, &mut c);
            prop_assert_eq!(&c, &c16);
            prop_assert_eq!(&t[..alg.icv_len()], &t16[..alg.icv_len()]);
            prop_assert!(short.open(&iv, &aad, &mut c, &t[..alg.icv_len()]));
            prop_assert_eq!(&c, &pt);
        }
        use aes_gcm::aead::{consts::U12, AeadInPlace, KeyInit};
        let g12 = aes_gcm::AesGcm::<aes::Aes128, U12, U12>::new_from_slice(&key).unwrap();
        let mut c = pt.clone();
        let n = super::aead::nonce(&salt, &iv);
        let t = g12.encrypt_in_place_detached((&n).into(), &aad, &mut c).unwrap();
        prop_assert_eq!(t.as_slice(), &t16[..12]);
    }
}
