//! Proposals on the wire, proposal selection (the responder's configured order wins) and
//! traffic selector narrowing.

use super::codec::{
    Proposal, Transform, WireTs, PROTO_ESP, PROTO_IKE, TT_DH, TT_ENCR, TT_ESN, TT_INTEG, TT_PRF,
};
use super::keys::IkeAlgs;
use super::TrafficSelector;
use crate::crypto::proposal::{EspProposal, IkeProposal};
use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};

/// The algorithms of one CHILD SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EspAlgs {
    pub encr: EncrAlg,
    pub integ: Option<IntegAlg>,
    pub dh: Option<DhGroup>,
    pub esn: bool,
}

impl EspAlgs {
    pub fn describe(&self) -> String {
        let mut s = self.encr.name().to_string();
        if let Some(i) = self.integ {
            s.push('/');
            s.push_str(i.name());
        }
        if let Some(d) = self.dh {
            s.push('/');
            s.push_str(d.name());
        }
        s.push_str(if self.esn { "/EXT_SEQ" } else { "/NO_EXT_SEQ" });
        s
    }
}

fn encr_t(a: EncrAlg) -> Transform {
    Transform {
        ttype: TT_ENCR,
        id: a.transform_id(),
        key_len: a.key_attr_bits(),
    }
}
fn t(ttype: u8, id: u16) -> Transform {
    Transform {
        ttype,
        id,
        key_len: None,
    }
}

/// Our IKE proposals as sent in an SA payload (numbered from 1).
pub fn ike_to_wire(props: &[IkeProposal], spi: &[u8]) -> Vec<Proposal> {
    props
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut ts: Vec<Transform> = p.encr.iter().map(|&e| encr_t(e)).collect();
            // strongSwan's order (ENCR, INTEG, PRF, DH), so logs read the same on both ends.
            ts.extend(p.integ.iter().map(|a| t(TT_INTEG, a.transform_id())));
            ts.extend(p.prf.iter().map(|a| t(TT_PRF, a.transform_id())));
            ts.extend(p.dh.iter().map(|a| t(TT_DH, a.transform_id())));
            Proposal {
                num: (i + 1) as u8,
                protocol: PROTO_IKE,
                spi: spi.to_vec(),
                transforms: ts,
            }
        })
        .collect()
}

/// Our ESP proposals. DH transforms only when PFS applies (CREATE_CHILD_SA); an ESN transform
/// is always present (strongSwan requires it).
pub fn esp_to_wire(props: &[EspProposal], spi: u32, with_dh: bool) -> Vec<Proposal> {
    props
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut ts: Vec<Transform> = p.encr.iter().map(|&e| encr_t(e)).collect();
            ts.extend(p.integ.iter().map(|a| t(TT_INTEG, a.transform_id())));
            if with_dh {
                ts.extend(p.dh.iter().map(|a| t(TT_DH, a.transform_id())));
            }
            if p.esn.is_empty() {
                ts.push(t(TT_ESN, 0));
            }
            ts.extend(p.esn.iter().map(|&e| t(TT_ESN, e as u16)));
            Proposal {
                num: (i + 1) as u8,
                protocol: PROTO_ESP,
                spi: spi.to_be_bytes().to_vec(),
                transforms: ts,
            }
        })
        .collect()
}

fn ids(p: &Proposal, ttype: u8) -> impl Iterator<Item = &Transform> {
    p.transforms.iter().filter(move |t| t.ttype == ttype)
}

fn pick_encr(ours: &[EncrAlg], p: &Proposal) -> Option<EncrAlg> {
    ours.iter()
        .copied()
        .find(|a| ids(p, TT_ENCR).any(|t| EncrAlg::from_transform(t.id, t.key_len) == Some(*a)))
}

/// Integrity: AEAD ciphers take none (a received INTEG of NONE/0 is tolerated).
fn pick_integ(encr: EncrAlg, ours: &[IntegAlg], p: &Proposal) -> Option<Option<IntegAlg>> {
    if encr.is_aead() {
        return if ids(p, TT_INTEG).all(|t| t.id == 0) {
            Some(None)
        } else {
            None
        };
    }
    ours.iter()
        .copied()
        .find(|a| ids(p, TT_INTEG).any(|t| t.id == a.transform_id()))
        .map(Some)
}

/// DH: prefer the group of the KE payload when both sides accept it, else our first match.
fn pick_dh(ours: &[DhGroup], p: &Proposal, ke_group: Option<u16>) -> Option<DhGroup> {
    let theirs = |g: DhGroup| ids(p, TT_DH).any(|t| t.id == g.transform_id());
    if let Some(kg) = ke_group {
        if let Some(g) = ours
            .iter()
            .copied()
            .find(|g| g.transform_id() == kg && theirs(*g))
        {
            return Some(g);
        }
    }
    ours.iter().copied().find(|g| theirs(*g))
}

/// Responder-side IKE proposal selection: our configured order first, then theirs.
/// Returns the received proposal (for its number and SPI) and the chosen algorithms.
pub fn select_ike<'a>(
    ours: &[IkeProposal],
    theirs: &'a [Proposal],
    ke_group: Option<u16>,
) -> Option<(&'a Proposal, IkeAlgs)> {
    for op in ours {
        for rp in theirs.iter().filter(|p| p.protocol == PROTO_IKE) {
            // ENCR_NULL never protects an IKE SA (RFC 7296 3.3.2), whatever the config says.
            let Some(encr) = pick_encr(&op.encr, rp).filter(|e| e.allowed_in_ike()) else {
                continue;
            };
            let Some(integ) = pick_integ(encr, &op.integ, rp) else {
                continue;
            };
            let Some(prf) = op
                .prf
                .iter()
                .copied()
                .find(|a| ids(rp, TT_PRF).any(|t| t.id == a.transform_id()))
            else {
                continue;
            };
            let Some(dh) = pick_dh(&op.dh, rp, ke_group) else {
                continue;
            };
            return Some((
                rp,
                IkeAlgs {
                    encr,
                    integ,
                    prf,
                    dh,
                },
            ));
        }
    }
    None
}

/// Responder-side ESP selection. `with_dh`: CREATE_CHILD_SA (PFS groups must match; no DH
/// configured requires none offered); in IKE_AUTH DH transforms are ignored.
pub fn select_esp<'a>(
    ours: &[EspProposal],
    theirs: &'a [Proposal],
    with_dh: bool,
    ke_group: Option<u16>,
) -> Option<(&'a Proposal, EspAlgs)> {
    for op in ours {
        for rp in theirs
            .iter()
            .filter(|p| p.protocol == PROTO_ESP && p.spi.len() == 4)
        {
            let Some(encr) = pick_encr(&op.encr, rp) else {
                continue;
            };
            let Some(integ) = pick_integ(encr, &op.integ, rp) else {
                continue;
            };
            let dh = if !with_dh {
                None
            } else if op.dh.is_empty() {
                if ids(rp, TT_DH).any(|t| t.id != 0) && ids(rp, TT_DH).all(|t| t.id != 0) {
                    continue;
                }
                None
            } else {
                match pick_dh(&op.dh, rp, ke_group) {
                    Some(g) => Some(g),
                    None => continue,
                }
            };
            let esn_ok = |e: bool| {
                let mut rt = ids(rp, TT_ESN).peekable();
                if rt.peek().is_none() {
                    !e
                } else {
                    rt.any(|t| t.id == e as u16)
                }
            };
            let ours_esn: &[bool] = if op.esn.is_empty() { &[false] } else { &op.esn };
            let Some(esn) = ours_esn.iter().copied().find(|e| esn_ok(*e)) else {
                continue;
            };
            return Some((
                rp,
                EspAlgs {
                    encr,
                    integ,
                    dh,
                    esn,
                },
            ));
        }
    }
    None
}

/// Reads the single-transform-per-type proposal a responder chose (initiator side).
pub fn ike_from_chosen(p: &Proposal) -> Option<IkeAlgs> {
    if p.protocol != PROTO_IKE {
        return None;
    }
    let one = |tt: u8| -> Option<Option<&Transform>> {
        let mut it = ids(p, tt);
        let first = it.next();
        if it.next().is_some() {
            None
        } else {
            Some(first)
        }
    };
    let e = one(TT_ENCR)??;
    let encr = EncrAlg::from_transform(e.id, e.key_len).filter(|e| e.allowed_in_ike())?;
    let integ = match one(TT_INTEG)? {
        Some(t) if t.id != 0 => Some(IntegAlg::from_transform(t.id)?),
        _ => None,
    };
    if integ.is_none() != encr.is_aead() {
        return None;
    }
    let prf = PrfAlg::from_transform(one(TT_PRF)??.id)?;
    let dh = DhGroup::from_transform(one(TT_DH)??.id)?;
    Some(IkeAlgs {
        encr,
        integ,
        prf,
        dh,
    })
}

/// True if the responder's choice is one we offered (all from one of our proposals).
pub fn ike_choice_ok(ours: &[IkeProposal], algs: &IkeAlgs) -> bool {
    ours.iter().any(|p| {
        p.encr.contains(&algs.encr)
            && p.prf.contains(&algs.prf)
            && p.dh.contains(&algs.dh)
            && match algs.integ {
                Some(i) => p.integ.contains(&i),
                None => algs.encr.is_aead(),
            }
    })
}

/// Reads the ESP proposal a responder chose and checks it against ours.
pub fn esp_from_chosen(
    ours: &[EspProposal],
    p: &Proposal,
    with_dh: bool,
) -> Option<(u32, EspAlgs)> {
    let spi: [u8; 4] = p.spi.as_slice().try_into().ok()?;
    let (_, algs) = select_esp(ours, std::slice::from_ref(p), with_dh, None)?;
    // A choice must carry exactly one transform of each type.
    for tt in [TT_ENCR, TT_INTEG, TT_DH, TT_ESN] {
        if ids(p, tt).count() > 1 {
            return None;
        }
    }
    Some((u32::from_be_bytes(spi), algs))
}

/// Builds the reply proposal: the received proposal's number and our SPI, one transform each.
pub fn ike_reply(num: u8, algs: &IkeAlgs, spi: &[u8]) -> Proposal {
    let mut ts = vec![encr_t(algs.encr), t(TT_PRF, algs.prf.transform_id())];
    if let Some(i) = algs.integ {
        ts.push(t(TT_INTEG, i.transform_id()));
    }
    ts.push(t(TT_DH, algs.dh.transform_id()));
    Proposal {
        num,
        protocol: PROTO_IKE,
        spi: spi.to_vec(),
        transforms: ts,
    }
}

pub fn esp_reply(num: u8, algs: &EspAlgs, spi: u32) -> Proposal {
    let mut ts = vec![encr_t(algs.encr)];
    if let Some(i) = algs.integ {
        ts.push(t(TT_INTEG, i.transform_id()));
    }
    if let Some(d) = algs.dh {
        ts.push(t(TT_DH, d.transform_id()));
    }
    ts.push(t(TT_ESN, algs.esn as u16));
    Proposal {
        num,
        protocol: PROTO_ESP,
        spi: spi.to_be_bytes().to_vec(),
        transforms: ts,
    }
}

/// strongSwan-like rendering of proposals for logs:
/// `AES_CBC_256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024, 3DES_CBC/...`.
pub fn describe(props: &[Proposal]) -> String {
    let one = |p: &Proposal| {
        let names: Vec<String> = p
            .transforms
            .iter()
            .map(|t| match t.ttype {
                TT_ENCR => EncrAlg::from_transform(t.id, t.key_len)
                    .map(|a| a.name().to_string())
                    .unwrap_or_else(|| {
                        format!(
                            "ENCR_{}{}",
                            t.id,
                            t.key_len.map(|k| format!("_{k}")).unwrap_or_default()
                        )
                    }),
                TT_INTEG => IntegAlg::from_transform(t.id)
                    .map(|a| a.name().to_string())
                    .unwrap_or_else(|| format!("INTEG_{}", t.id)),
                TT_PRF => PrfAlg::from_transform(t.id)
                    .map(|a| a.name().to_string())
                    .unwrap_or_else(|| format!("PRF_{}", t.id)),
                TT_DH => DhGroup::from_transform(t.id)
                    .map(|a| a.name().to_string())
                    .unwrap_or_else(|| format!("DH_{}", t.id)),
                TT_ESN => if t.id == 1 { "EXT_SEQ" } else { "NO_EXT_SEQ" }.to_string(),
                other => format!("T{other}_{}", t.id),
            })
            .collect();
        names.join("/")
    };
    props.iter().map(one).collect::<Vec<_>>().join(", ")
}

pub fn ts_to_wire(ts: &[TrafficSelector]) -> Vec<WireTs> {
    ts.iter()
        .map(|t| WireTs {
            ip_proto: t.ip_proto,
            start_port: t.start_port,
            end_port: t.end_port,
            start: t.start,
            end: t.end,
        })
        .collect()
}

pub fn ts_from_wire(ts: &[WireTs]) -> Vec<TrafficSelector> {
    ts.iter()
        .filter(|t| t.start.is_ipv4() == t.end.is_ipv4())
        .map(|t| TrafficSelector {
            ip_proto: t.ip_proto,
            start_port: t.start_port,
            end_port: t.end_port,
            start: t.start,
            end: t.end,
        })
        .collect()
}

/// Narrowing (RFC 7296 2.9): every non-empty intersection of an offered selector with a
/// configured one, without duplicates.
pub fn narrow(offered: &[TrafficSelector], configured: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = Vec::new();
    for c in configured {
        for o in offered {
            if let Some(i) = c.intersect(o) {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::proposal::{parse_esp, parse_ike};
    use crate::prefix::IpPrefix;

    fn ts(s: &str) -> TrafficSelector {
        TrafficSelector::from_prefix(&s.parse::<IpPrefix>().unwrap())
    }

    #[test]
    fn responder_order_wins() {
        let initiator = vec![
            parse_ike("aes128-sha1-modp1024").unwrap(),
            parse_ike("aes256-sha1-modp1024").unwrap(),
        ];
        let responder = vec![
            parse_ike("aes256-sha1-modp1024").unwrap(),
            parse_ike("aes128-sha1-modp1024").unwrap(),
        ];
        let wire = ike_to_wire(&initiator, &[]);
        let (rp, algs) = select_ike(&responder, &wire, Some(2)).unwrap();
        assert_eq!(rp.num, 2);
        assert_eq!(algs.encr, EncrAlg::AesCbc256);
        assert_eq!(
            algs.describe(),
            "AES_CBC_256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024"
        );
        let reply = ike_reply(rp.num, &algs, &[]);
        assert_eq!(ike_from_chosen(&reply), Some(algs));
        assert!(ike_choice_ok(&initiator, &algs));
    }

    #[test]
    fn no_common_proposal() {
        let a = vec![parse_ike("3des-sha1-modp1024").unwrap()];
        let b = vec![parse_ike("aes256-sha1-modp1024").unwrap()];
        assert!(select_ike(&b, &ike_to_wire(&a, &[]), Some(2)).is_none());
        assert_eq!(
            describe(&ike_to_wire(&a, &[])),
            "3DES_CBC/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024"
        );
    }

    #[test]
    fn ke_group_preferred_when_acceptable() {
        let a = vec![parse_ike("aes256-sha1-modp2048-modp1024").unwrap()];
        let b = vec![parse_ike("aes256-sha1-modp1024-modp2048").unwrap()];
        let (_, algs) = select_ike(&b, &ike_to_wire(&a, &[]), Some(14)).unwrap();
        assert_eq!(algs.dh, DhGroup::Modp2048);
        let (_, algs) = select_ike(&b, &ike_to_wire(&a, &[]), None).unwrap();
        assert_eq!(algs.dh, DhGroup::Modp1024);
    }

    #[test]
    fn esp_selection_and_esn() {
        let ours = vec![
            parse_esp("aes256-sha1").unwrap(),
            parse_esp("aes128-sha1").unwrap(),
        ];
        let wire = esp_to_wire(&[parse_esp("aes128-sha1").unwrap()], 0x11223344, false);
        assert!(wire[0]
            .transforms
            .iter()
            .any(|t| t.ttype == TT_ESN && t.id == 0));
        let (rp, algs) = select_esp(&ours, &wire, false, None).unwrap();
        assert_eq!(
            algs,
            EspAlgs {
                encr: EncrAlg::AesCbc128,
                integ: Some(IntegAlg::HmacSha1_96),
                dh: None,
                esn: false
            }
        );
        let reply = esp_reply(rp.num, &algs, 0x55667788);
        assert_eq!(
            esp_from_chosen(&ours, &reply, false),
            Some((0x55667788, algs))
        );
        // PFS: configured DH must be matched when with_dh.
        let pfs = vec![parse_esp("aes256-sha1-modp1024").unwrap()];
        assert!(select_esp(&pfs, &esp_to_wire(&ours, 1, true), true, None).is_none());
        let (_, a) = select_esp(&pfs, &esp_to_wire(&pfs, 1, true), true, Some(2)).unwrap();
        assert_eq!(a.dh, Some(DhGroup::Modp1024));
        // In IKE_AUTH DH is ignored.
        assert!(select_esp(&pfs, &esp_to_wire(&ours, 1, false), false, None).is_some());
    }

    #[test]
    fn gcm_proposals() {
        let ours = vec![parse_ike("aes256gcm16-prfsha256-modp2048").unwrap()];
        let wire = ike_to_wire(&ours, &[]);
        let (rp, algs) = select_ike(&ours, &wire, Some(14)).unwrap();
        assert_eq!(algs.integ, None);
        assert_eq!(ike_from_chosen(&ike_reply(rp.num, &algs, &[])), Some(algs));
    }

    #[test]
    fn narrowing() {
        let any = vec![ts("0.0.0.0/0")];
        let sub = vec![ts("10.1.0.0/16"), ts("10.2.0.0/24")];
        assert_eq!(narrow(&any, &sub), sub);
        assert_eq!(narrow(&sub, &any), sub);
        assert!(narrow(&[ts("192.168.0.0/16")], &sub).is_empty());
        assert_eq!(narrow(&[ts("10.1.2.0/24")], &sub), vec![ts("10.1.2.0/24")]);
        assert!(narrow(&[ts("2001:db8::/32")], &any).is_empty());
        assert!(ts("10.0.0.0/8").contains("10.9.9.9".parse().unwrap()));
        assert!(!ts("10.0.0.0/8").contains("11.0.0.0".parse().unwrap()));
    }
}
