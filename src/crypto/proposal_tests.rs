use super::*;
use crate::crypto::keywords::{keywords_of, KEYWORDS};

#[test]
fn reference_deployment_proposals() {
    let p = parse_ike("aes256-sha1-modp1024").unwrap();
    assert_eq!(p.encr, vec![EncrAlg::AesCbc256]);
    assert_eq!(p.integ, vec![IntegAlg::HmacSha1_96]);
    assert_eq!(p.prf, vec![PrfAlg::HmacSha1]);
    assert_eq!(p.dh, vec![DhGroup::Modp1024]);
    assert_eq!(p.to_string(), "aes256-sha1-prfsha1-modp1024");
    let e = parse_esp("aes256-sha1").unwrap();
    assert_eq!(e.esn, vec![false]);
    assert!(e.dh.is_empty());
    assert_eq!(parse_esp("3des-sha1-modp1024-esn").unwrap().esn, vec![true]);
    assert!(p.weak_algorithms().is_empty() && e.weak_algorithms().is_empty());
}

#[test]
fn aead_and_errors() {
    let p = parse_ike("aes256gcm16-prfsha256-modp2048").unwrap();
    assert!(p.integ.is_empty() && p.prf == vec![PrfAlg::HmacSha256]);
    let p = parse_ike("aes128gcm16-sha256-modp2048").unwrap();
    assert!(p.integ.is_empty() && p.prf == vec![PrfAlg::HmacSha256]);
    assert!(parse_esp("aes256gcm16").unwrap().integ.is_empty());
    let err = parse_ike("aes256-md4-modp1024").unwrap_err();
    assert!(err.contains("'md4'"), "{err}");
    assert!(parse_ike("aes256-sha1")
        .unwrap_err()
        .contains("Diffie-Hellman"));
    assert!(parse_esp("aes256").is_err());
    assert!(parse_esp("aes256gcm16-sha1").is_err());
    assert!(parse_esp("").is_err());
}

#[test]
fn the_issues_examples_parse() {
    let p = IkeProposal::parse("aes256gcm16-prfsha384-ecp384").unwrap();
    assert_eq!(
        (p.encr, p.integ, p.prf, p.dh),
        (
            vec![EncrAlg::AesGcm16_256],
            vec![],
            vec![PrfAlg::HmacSha384],
            vec![DhGroup::Ecp384]
        )
    );
    let p = IkeProposal::parse("aes192-sha256-modp2048s256").unwrap();
    assert_eq!(p.encr, vec![EncrAlg::AesCbc192]);
    assert_eq!(p.dh, vec![DhGroup::Modp2048s256]);
    let p = IkeProposal::parse("aes128-sha256-ecp256").unwrap();
    assert_eq!(p.dh, vec![DhGroup::Ecp256]);
    let p = IkeProposal::parse("chacha20poly1305-prfsha256-x25519").unwrap();
    assert_eq!(p.encr, vec![EncrAlg::ChaCha20Poly1305]);
    assert_eq!(p.dh, vec![DhGroup::Curve25519]);
    assert_eq!(p.to_string(), "chacha20poly1305-prfsha256-curve25519");
    // Integrity keywords name their PRF: sha384 -> prfsha384, aesxcbc -> prfaesxcbc.
    let p = IkeProposal::parse("aes256-sha384-sha512-aesxcbc-ecp521").unwrap();
    assert_eq!(
        p.prf,
        vec![PrfAlg::HmacSha384, PrfAlg::HmacSha512, PrfAlg::AesXcbc128]
    );
    assert_eq!(
        p.integ,
        vec![
            IntegAlg::HmacSha384_192,
            IntegAlg::HmacSha512_256,
            IntegAlg::AesXcbc96
        ]
    );
    // ESP with the short GCM ICVs and the aliases of strongSwan.
    let e = EspProposal::parse("aes128gcm8-aes256gcm12-aes128gcm128-aes192gcm64").unwrap();
    assert_eq!(
        e.encr,
        vec![
            EncrAlg::AesGcm8_128,
            EncrAlg::AesGcm12_256,
            EncrAlg::AesGcm16_128,
            EncrAlg::AesGcm8_192
        ]
    );
    let e = EspProposal::parse("chacha20poly1305-ecp256-esn").unwrap();
    assert_eq!(e.dh, vec![DhGroup::Ecp256]);
    assert_eq!(e.esn, vec![true]);
    assert_eq!(
        IkeProposal::parse("AES256-SHA1-MODP1024").unwrap().encr,
        vec![EncrAlg::AesCbc256],
        "keywords are case-insensitive"
    );
}

#[test]
fn every_unknown_token_is_named() {
    let e = IkeProposal::parse("aes256-foo-sha1-bar-modp2048").unwrap_err();
    assert_eq!(e.unknown_tokens(), vec!["foo", "bar"]);
    let text = e.to_string();
    assert!(
        text.starts_with(
            "unknown algorithms 'foo', 'bar' in IKE proposal 'aes256-foo-sha1-bar-modp2048'"
        ),
        "{text}"
    );
    assert!(text.contains("ipsecgw list-algorithms"));
    let e = IkeProposal::parse("aes256-sha1-modp9999").unwrap_err();
    assert!(e
        .to_string()
        .starts_with("unknown algorithm 'modp9999' in IKE"));
    let e = EspProposal::parse("aes256--sha1").unwrap_err();
    assert_eq!(e.unknown_tokens(), vec![""]);
}

#[test]
fn keywords_are_per_context() {
    // null and esn are ESP's; PRFs are IKE's. Each is named with the reason.
    let e = IkeProposal::parse("null-sha256-foo-modp2048-esn").unwrap_err();
    assert_eq!(e.unknown_tokens(), vec!["null", "foo", "esn"]);
    let text = e.to_string();
    assert!(text.contains("unknown algorithm 'foo'"), "{text}");
    assert!(text.contains("'null' not allowed (NULL encryption is for ESP proposals only)"));
    assert!(text.contains("'esn' not allowed"));
    let e = EspProposal::parse("aes256-sha256-prfsha256").unwrap_err();
    assert!(e
        .to_string()
        .contains("'prfsha256' not allowed (PRF keywords are for IKE"));
    assert!(EspProposal::parse("null-sha256").is_ok());
}

#[test]
fn structural_errors() {
    let missing = |r: Result<EspProposal, ProposalError>| match r {
        Err(ProposalError::Incomplete { missing, .. }) => Some(missing),
        _ => None,
    };
    assert_eq!(
        missing(EspProposal::parse("null")),
        Some(Missing::IntegrityForNull)
    );
    assert_eq!(
        missing(EspProposal::parse("null-aes128gcm16-sha1")),
        Some(Missing::MixedAead)
    );
    assert_eq!(
        missing(EspProposal::parse("chacha20poly1305-sha256")),
        Some(Missing::IntegrityWithAead)
    );
    assert_eq!(
        missing(EspProposal::parse("sha1")),
        Some(Missing::Encryption)
    );
    match IkeProposal::parse("aes256gcm16-ecp256") {
        Err(ProposalError::Incomplete { missing, .. }) => assert_eq!(missing, Missing::Prf),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        IkeProposal::parse(" ").unwrap_err(),
        ProposalError::Empty(Context::Ike)
    );
}

#[test]
fn weak_algorithms_are_flagged() {
    let p = IkeProposal::parse("aes256-md5-modp768").unwrap();
    assert_eq!(p.weak_algorithms(), vec!["md5", "prfmd5", "modp768"]);
    let p = IkeProposal::parse("aes256-sha256-prfmd5-modp2048").unwrap();
    assert_eq!(p.weak_algorithms(), vec!["prfmd5"]);
    let e = EspProposal::parse("null-md5-modp768").unwrap();
    assert_eq!(e.weak_algorithms(), vec!["null", "md5", "modp768"]);
    let strong = IkeProposal::parse("aes256gcm16-prfsha384-ecp384-curve25519").unwrap();
    assert!(strong.weak_algorithms().is_empty());
}

/// Every keyword of the table parses where it belongs, and Display writes it canonically.
#[test]
fn every_keyword_round_trips() {
    for &(word, t) in KEYWORDS {
        let canonical = keywords_of(t).next().unwrap();
        let (ike, esp) = match t {
            Transform::Encr(e) if e.is_aead() => {
                (format!("{word}-prfsha256-modp2048"), word.to_string())
            }
            Transform::Encr(_) => (format!("{word}-sha256-modp2048"), format!("{word}-sha256")),
            Transform::Integ(_) => (format!("aes128-{word}-modp2048"), format!("aes128-{word}")),
            Transform::Prf(_) => (format!("aes128-sha256-{word}-modp2048"), String::new()),
            Transform::Ke(_) => (
                format!("aes128-sha256-{word}"),
                format!("aes128-sha256-{word}"),
            ),
            Transform::Esn(_) => (String::new(), format!("aes128-sha256-{word}")),
        };
        if refused_in(t, Context::Ike).is_none() {
            let p = IkeProposal::parse(&ike).unwrap_or_else(|e| panic!("{ike}: {e}"));
            assert!(
                p.to_string().split('-').any(|k| k == canonical),
                "{ike} -> {p}"
            );
            assert_eq!(IkeProposal::parse(&p.to_string()).unwrap(), p);
        }
        if refused_in(t, Context::Esp).is_none() {
            let p = EspProposal::parse(&esp).unwrap_or_else(|e| panic!("{esp}: {e}"));
            assert!(
                p.to_string().split('-').any(|k| k == canonical),
                "{esp} -> {p}"
            );
            assert_eq!(EspProposal::parse(&p.to_string()).unwrap(), p);
        }
    }
}
