//! Proposals written with strongSwan's keywords: `aes256-sha1-modp1024` for IKE,
//! `aes256-sha1`, `aes256gcm16`, `aes128-sha1-modp2048-esn` for ESP. A string may list several
//! algorithms of one kind (`aes256-aes128-sha1-modp1024`), which makes one proposal with
//! several transforms of that type, as in swanctl.conf.

use super::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
use std::fmt;

/// An IKE SA proposal: any of each listed transform may be chosen.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IkeProposal {
    pub encr: Vec<EncrAlg>,
    /// Empty for AEAD ciphers.
    pub integ: Vec<IntegAlg>,
    pub prf: Vec<PrfAlg>,
    pub dh: Vec<DhGroup>,
}

/// An ESP CHILD SA proposal. `dh` non-empty means PFS on CREATE_CHILD_SA.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EspProposal {
    pub encr: Vec<EncrAlg>,
    pub integ: Vec<IntegAlg>,
    pub dh: Vec<DhGroup>,
    /// Extended sequence numbers offered, in order; `[false]` unless `esn` is written.
    pub esn: Vec<bool>,
}

enum Kw {
    Encr(EncrAlg),
    Integ(IntegAlg),
    Prf(PrfAlg),
    Dh(DhGroup),
    Esn(bool),
}

fn keyword(k: &str) -> Option<Kw> {
    Some(match k {
        "aes" | "aes128" => Kw::Encr(EncrAlg::AesCbc128),
        "aes256" => Kw::Encr(EncrAlg::AesCbc256),
        "3des" => Kw::Encr(EncrAlg::TripleDesCbc),
        "aes128gcm16" | "aes128gcm128" | "aes128gcm" => Kw::Encr(EncrAlg::AesGcm16_128),
        "aes256gcm16" | "aes256gcm128" | "aes256gcm" => Kw::Encr(EncrAlg::AesGcm16_256),
        "sha" | "sha1" => Kw::Integ(IntegAlg::HmacSha1_96),
        "sha256" | "sha2_256" => Kw::Integ(IntegAlg::HmacSha256_128),
        "prfsha1" => Kw::Prf(PrfAlg::HmacSha1),
        "prfsha256" => Kw::Prf(PrfAlg::HmacSha256),
        "modp1024" => Kw::Dh(DhGroup::Modp1024),
        "modp2048" => Kw::Dh(DhGroup::Modp2048),
        "esn" => Kw::Esn(true),
        "noesn" => Kw::Esn(false),
        _ => return None,
    })
}

const KNOWN: &str = "aes128 aes256 3des aes128gcm16 aes256gcm16 sha1 sha256 prfsha1 prfsha256 modp1024 modp2048 esn noesn";

fn push<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

fn split(s: &str) -> Result<Vec<Kw>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty proposal".into());
    }
    s.split('-')
        .map(|k| {
            keyword(&k.to_ascii_lowercase()).ok_or_else(|| {
                format!("unknown algorithm '{k}' in proposal '{s}' (known: {KNOWN})")
            })
        })
        .collect()
}

/// Parses an IKE proposal. Without `prf…`, each integrity keyword also names its PRF
/// (strongSwan's rule); with an AEAD cipher, integrity keywords name only the PRF.
pub fn parse_ike(s: &str) -> Result<IkeProposal, String> {
    let mut p = IkeProposal {
        encr: vec![],
        integ: vec![],
        prf: vec![],
        dh: vec![],
    };
    let mut integ_kw = vec![];
    for kw in split(s)? {
        match kw {
            Kw::Encr(e) => push(&mut p.encr, e),
            Kw::Integ(i) => push(&mut integ_kw, i),
            Kw::Prf(f) => push(&mut p.prf, f),
            Kw::Dh(d) => push(&mut p.dh, d),
            Kw::Esn(_) => {
                return Err(format!(
                    "'esn'/'noesn' is for ESP proposals, not IKE ('{s}')"
                ))
            }
        }
    }
    if p.encr.is_empty() {
        return Err(format!("IKE proposal '{s}' has no encryption algorithm"));
    }
    let aead = p.encr.iter().filter(|e| e.is_aead()).count();
    if aead != 0 && aead != p.encr.len() {
        return Err(format!(
            "IKE proposal '{s}' mixes AEAD and non-AEAD ciphers; write two proposals"
        ));
    }
    if p.prf.is_empty() {
        p.prf = integ_kw.iter().map(|i| i.matching_prf()).collect();
    }
    if aead == 0 {
        p.integ = integ_kw;
        if p.integ.is_empty() {
            return Err(format!("IKE proposal '{s}' has no integrity algorithm"));
        }
    }
    if p.prf.is_empty() {
        return Err(format!(
            "IKE proposal '{s}' has no PRF (add e.g. prfsha256)"
        ));
    }
    if p.dh.is_empty() {
        return Err(format!(
            "IKE proposal '{s}' has no Diffie-Hellman group (add e.g. modp2048)"
        ));
    }
    Ok(p)
}

/// Parses an ESP proposal.
pub fn parse_esp(s: &str) -> Result<EspProposal, String> {
    let mut p = EspProposal {
        encr: vec![],
        integ: vec![],
        dh: vec![],
        esn: vec![],
    };
    for kw in split(s)? {
        match kw {
            Kw::Encr(e) => push(&mut p.encr, e),
            Kw::Integ(i) => push(&mut p.integ, i),
            Kw::Prf(_) => {
                return Err(format!(
                    "PRF keywords are for IKE proposals, not ESP ('{s}')"
                ))
            }
            Kw::Dh(d) => push(&mut p.dh, d),
            Kw::Esn(e) => push(&mut p.esn, e),
        }
    }
    if p.encr.is_empty() {
        return Err(format!("ESP proposal '{s}' has no encryption algorithm"));
    }
    let aead = p.encr.iter().filter(|e| e.is_aead()).count();
    if aead != 0 && aead != p.encr.len() {
        return Err(format!(
            "ESP proposal '{s}' mixes AEAD and non-AEAD ciphers; write two proposals"
        ));
    }
    if aead > 0 && !p.integ.is_empty() {
        return Err(format!(
            "ESP proposal '{s}': AES-GCM already authenticates, drop the integrity algorithm"
        ));
    }
    if aead == 0 && p.integ.is_empty() {
        return Err(format!(
            "ESP proposal '{s}' has no integrity algorithm (e.g. aes256-sha1)"
        ));
    }
    if p.esn.is_empty() {
        p.esn.push(false);
    }
    Ok(p)
}

impl fmt::Display for IkeProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<&str> = (self.encr.iter().map(|a| a.keyword()))
            .chain(self.integ.iter().map(|a| a.keyword()))
            .chain(self.prf.iter().map(|a| a.keyword()))
            .chain(self.dh.iter().map(|a| a.keyword()))
            .collect();
        f.write_str(&parts.join("-"))
    }
}

impl fmt::Display for EspProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<&str> = (self.encr.iter().map(|a| a.keyword()))
            .chain(self.integ.iter().map(|a| a.keyword()))
            .chain(self.dh.iter().map(|a| a.keyword()))
            .chain(self.esn.iter().map(|&e| if e { "esn" } else { "noesn" }))
            .collect();
        f.write_str(&parts.join("-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn aead_and_errors() {
        let p = parse_ike("aes256gcm16-prfsha256-modp2048").unwrap();
        assert!(p.integ.is_empty() && p.prf == vec![PrfAlg::HmacSha256]);
        let p = parse_ike("aes128gcm16-sha256-modp2048").unwrap();
        assert!(p.integ.is_empty() && p.prf == vec![PrfAlg::HmacSha256]);
        assert!(parse_esp("aes256gcm16").unwrap().integ.is_empty());
        let err = parse_ike("aes256-md5-modp1024").unwrap_err();
        assert!(err.contains("'md5'"), "{err}");
        assert!(parse_ike("aes256-sha1")
            .unwrap_err()
            .contains("Diffie-Hellman"));
        assert!(parse_esp("aes256").is_err());
        assert!(parse_esp("aes256gcm16-sha1").is_err());
        assert!(parse_esp("").is_err());
    }
}
