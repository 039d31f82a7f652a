//! Path attributes (RFC 4271 4.3, RFC 4760, RFC 6793) in both directions, with the RFC 7606
//! verdicts: reset the session, treat the UPDATE as a withdraw, or discard the attribute.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::decode::{malformed_attr_list, read_prefixes, Reader};
use super::encode::write_prefix;
use super::*;

/// The path attributes of one UPDATE and what RFC 7606 says about them.
pub(super) struct DecodedAttrs {
    pub attrs: PathAttrs,
    /// Why the UPDATE's NLRI are to be treated as withdrawn, if they are.
    pub treat_as_withdraw: Option<String>,
    pub discarded: Vec<String>,
}

/// Decodes the Path Attributes field of an UPDATE. `Err` means the session must be reset.
pub(super) fn decode_path_attrs(
    abuf: &[u8],
    four_octet_as: bool,
) -> Result<DecodedAttrs, Notification> {
    let mut attrs = PathAttrs::default();
    let mut treat_as_withdraw: Option<String> = None;
    let mut discarded = Vec::new();
    let mut as4_path: Option<AsPath> = None;
    let mut seen = [false; 256];
    let mut a = Reader::new(abuf);
    let mut withdraw = |why: String| {
        if treat_as_withdraw.is_none() {
            treat_as_withdraw = Some(why);
        }
    };
    while !a.is_empty() {
        let Some(hdr) = a.buf.get(..2) else {
            withdraw("attribute header truncated".into());
            break;
        };
        let (flags, type_code) = (hdr[0], hdr[1]);
        let hdr_len = if flags & FLAG_EXT_LEN != 0 { 4 } else { 3 };
        if a.remaining() < hdr_len {
            withdraw(format!("attribute {type_code} header truncated"));
            break;
        }
        a.take(2);
        let len = if flags & FLAG_EXT_LEN != 0 {
            a.u16().map(usize::from)
        } else {
            a.u8().map(usize::from)
        };
        let Some(value) = len.and_then(|l| a.take(l)) else {
            // RFC 7606 4: rely on Total Path Attribute Length to find the NLRI.
            withdraw(format!(
                "attribute {type_code} length overruns the path attributes"
            ));
            break;
        };
        let is_mp = type_code == ATTR_MP_REACH || type_code == ATTR_MP_UNREACH;
        if seen[type_code as usize] {
            if is_mp {
                return Err(malformed_attr_list());
            }
            discarded.push(format!("duplicate attribute {type_code}"));
            continue;
        }
        seen[type_code as usize] = true;

        let expected_flags = match type_code {
            ATTR_ORIGIN
            | ATTR_AS_PATH
            | ATTR_NEXT_HOP
            | ATTR_LOCAL_PREF
            | ATTR_ATOMIC_AGGREGATE => Some(FLAG_TRANSITIVE),
            ATTR_MED | ATTR_MP_REACH | ATTR_MP_UNREACH => Some(FLAG_OPTIONAL),
            ATTR_AGGREGATOR | ATTR_AS4_PATH | ATTR_AS4_AGGREGATOR => {
                Some(FLAG_OPTIONAL | FLAG_TRANSITIVE)
            }
            _ => None,
        };
        if let Some(exp) = expected_flags {
            if flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE) != exp {
                if is_mp {
                    return Err(Notification::new(
                        err::UPDATE,
                        err::UPDATE_ATTR_FLAGS,
                        vec![],
                    ));
                }
                withdraw(format!("attribute {type_code} has flags {flags:#04x}"));
                continue;
            }
        }
        match type_code {
            ATTR_ORIGIN => match value {
                [0] => attrs.origin = Some(Origin::Igp),
                [1] => attrs.origin = Some(Origin::Egp),
                [2] => attrs.origin = Some(Origin::Incomplete),
                _ => withdraw(format!("malformed ORIGIN {value:02x?}")),
            },
            ATTR_AS_PATH => match parse_as_path(value, four_octet_as) {
                Some(p) => attrs.as_path = Some(p),
                None => withdraw("malformed AS_PATH".into()),
            },
            ATTR_NEXT_HOP => match value {
                [a, b, c, d] => attrs.next_hop = Some(Ipv4Addr::new(*a, *b, *c, *d)),
                _ => withdraw(format!("NEXT_HOP length {}", value.len())),
            },
            ATTR_MED => match value {
                [a, b, c, d] => attrs.med = Some(u32::from_be_bytes([*a, *b, *c, *d])),
                _ => withdraw(format!("MULTI_EXIT_DISC length {}", value.len())),
            },
            ATTR_LOCAL_PREF => match value {
                [a, b, c, d] => attrs.local_pref = Some(u32::from_be_bytes([*a, *b, *c, *d])),
                _ => discarded.push(format!("LOCAL_PREF length {}", value.len())),
            },
            ATTR_ATOMIC_AGGREGATE | ATTR_AGGREGATOR | ATTR_AS4_AGGREGATOR => {
                // Not used for route selection here; RFC 7606 says discard if malformed.
                attrs.other.push(RawAttr {
                    flags,
                    type_code,
                    value: value.to_vec(),
                });
            }
            ATTR_AS4_PATH => match parse_as_path(value, true) {
                Some(p) => as4_path = Some(p),
                None => discarded.push("malformed AS4_PATH".into()),
            },
            ATTR_MP_REACH => attrs.mp_reach = Some(parse_mp_reach(value)?),
            ATTR_MP_UNREACH => attrs.mp_unreach = Some(parse_mp_unreach(value)?),
            _ => {
                if flags & FLAG_OPTIONAL == 0 {
                    // A well-known attribute we do not know (RFC 4271 6.3).
                    let mut data = vec![flags, type_code];
                    data.extend_from_slice(value);
                    return Err(Notification::new(
                        err::UPDATE,
                        err::UPDATE_UNRECOGNIZED_WELL_KNOWN,
                        data,
                    ));
                }
                attrs.other.push(RawAttr {
                    flags,
                    type_code,
                    value: value.to_vec(),
                });
            }
        }
    }

    if let Some(as4) = as4_path {
        if four_octet_as {
            discarded.push("AS4_PATH from a 4-octet speaker".into());
        } else if let Some(path) = attrs.as_path.take() {
            attrs.as_path = Some(merge_as4_path(path, as4));
        }
    }

    Ok(DecodedAttrs {
        attrs,
        treat_as_withdraw,
        discarded,
    })
}

fn parse_as_path(value: &[u8], four_octet: bool) -> Option<AsPath> {
    let mut r = Reader::new(value);
    let mut segments = Vec::new();
    while !r.is_empty() {
        let seg_type = r.u8()?;
        let count = r.u8()? as usize;
        if count == 0 {
            return None;
        }
        let mut asns = Vec::with_capacity(count);
        for _ in 0..count {
            asns.push(if four_octet {
                r.u32()?
            } else {
                r.u16()? as u32
            });
        }
        segments.push(match seg_type {
            SEG_SET => AsSegment::Set(asns),
            SEG_SEQUENCE => AsSegment::Sequence(asns),
            // Confederation segments never come from an eBGP peer (RFC 7606 7.2).
            _ => return None,
        });
    }
    Some(AsPath { segments })
}

/// RFC 6793 4.2.3: keep the leading part of AS_PATH that AS4_PATH does not cover.
fn merge_as4_path(as_path: AsPath, as4: AsPath) -> AsPath {
    let (n, n4) = (as_path.path_len(), as4.path_len());
    if n < n4 {
        return as_path;
    }
    let mut keep = n - n4;
    let mut segments = Vec::new();
    for seg in as_path.segments {
        if keep == 0 {
            break;
        }
        match seg {
            AsSegment::Sequence(a) => {
                let take = a.len().min(keep);
                keep -= take;
                segments.push(AsSegment::Sequence(a.into_iter().take(take).collect()));
            }
            AsSegment::Set(a) => {
                keep -= 1;
                segments.push(AsSegment::Set(a));
            }
        }
    }
    segments.extend(as4.segments);
    AsPath { segments }
}

fn mp_error() -> Notification {
    Notification::new(err::UPDATE, err::UPDATE_OPTIONAL_ATTR, vec![])
}

fn parse_mp_reach(value: &[u8]) -> Result<MpReach, Notification> {
    let mut r = Reader::new(value);
    let afi = r.u16().ok_or_else(mp_error)?;
    let safi = r.u8().ok_or_else(mp_error)?;
    let nh_len = r.u8().ok_or_else(mp_error)? as usize;
    let nh = r.take(nh_len).ok_or_else(mp_error)?;
    r.u8().ok_or_else(mp_error)?; // reserved
    let known = safi == SAFI_UNICAST && (afi == AFI_IPV4 || afi == AFI_IPV6);
    if !known {
        return Ok(MpReach {
            afi,
            safi,
            next_hop: None,
            nlri: vec![],
        });
    }
    let next_hop = match nh {
        [a, b, c, d] => Some(IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d))),
        // IPv6 global (+ optional link-local): the global one is the next hop.
        _ if nh.len() == 16 || nh.len() == 32 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(nh.get(..16).ok_or_else(mp_error)?);
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => return Err(mp_error()),
    };
    let nlri = read_prefixes(r.buf, afi == AFI_IPV6).ok_or_else(mp_error)?;
    Ok(MpReach {
        afi,
        safi,
        next_hop,
        nlri,
    })
}

fn parse_mp_unreach(value: &[u8]) -> Result<MpUnreach, Notification> {
    let mut r = Reader::new(value);
    let afi = r.u16().ok_or_else(mp_error)?;
    let safi = r.u8().ok_or_else(mp_error)?;
    let known = safi == SAFI_UNICAST && (afi == AFI_IPV4 || afi == AFI_IPV6);
    let withdrawn = if known {
        read_prefixes(r.buf, afi == AFI_IPV6).ok_or_else(mp_error)?
    } else {
        vec![]
    };
    Ok(MpUnreach {
        afi,
        safi,
        withdrawn,
    })
}

fn push_attr(out: &mut Vec<u8>, flags: u8, type_code: u8, value: &[u8]) {
    if value.len() > 255 {
        out.extend_from_slice(&[flags | FLAG_EXT_LEN, type_code]);
        out.extend_from_slice(&(value.len().min(0xffff) as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[flags & !FLAG_EXT_LEN, type_code, value.len() as u8]);
    }
    out.extend_from_slice(value);
}

fn encode_as_path(path: &AsPath, four_octet: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for seg in &path.segments {
        let (t, asns) = match seg {
            AsSegment::Set(a) => (SEG_SET, a),
            AsSegment::Sequence(a) => (SEG_SEQUENCE, a),
        };
        for chunk in asns.chunks(255) {
            out.extend_from_slice(&[t, chunk.len() as u8]);
            for &asn in chunk {
                if four_octet {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    let short = u16::try_from(asn).unwrap_or(AS_TRANS);
                    out.extend_from_slice(&short.to_be_bytes());
                }
            }
        }
    }
    out
}

/// Encodes the Path Attributes field. A 2-octet peer gets AS_TRANS in AS_PATH and the real
/// path in AS4_PATH.
pub(super) fn encode_path_attrs(a: &PathAttrs, four_octet: bool) -> Vec<u8> {
    let mut attrs = Vec::new();
    if let Some(o) = a.origin {
        push_attr(&mut attrs, FLAG_TRANSITIVE, ATTR_ORIGIN, &[o as u8]);
    }
    if let Some(p) = &a.as_path {
        push_attr(
            &mut attrs,
            FLAG_TRANSITIVE,
            ATTR_AS_PATH,
            &encode_as_path(p, four_octet),
        );
    }
    if let Some(nh) = a.next_hop {
        push_attr(&mut attrs, FLAG_TRANSITIVE, ATTR_NEXT_HOP, &nh.octets());
    }
    if let Some(med) = a.med {
        push_attr(&mut attrs, FLAG_OPTIONAL, ATTR_MED, &med.to_be_bytes());
    }
    if let Some(lp) = a.local_pref {
        push_attr(
            &mut attrs,
            FLAG_TRANSITIVE,
            ATTR_LOCAL_PREF,
            &lp.to_be_bytes(),
        );
    }
    if let Some(m) = &a.mp_reach {
        let mut v = m.afi.to_be_bytes().to_vec();
        v.push(m.safi);
        match m.next_hop {
            Some(IpAddr::V4(nh)) => {
                v.push(4);
                v.extend_from_slice(&nh.octets());
            }
            Some(IpAddr::V6(nh)) => {
                v.push(16);
                v.extend_from_slice(&nh.octets());
            }
            None => v.push(0),
        }
        v.push(0);
        for p in &m.nlri {
            write_prefix(&mut v, p);
        }
        push_attr(&mut attrs, FLAG_OPTIONAL, ATTR_MP_REACH, &v);
    }
    if let Some(m) = &a.mp_unreach {
        let mut v = m.afi.to_be_bytes().to_vec();
        v.push(m.safi);
        for p in &m.withdrawn {
            write_prefix(&mut v, p);
        }
        push_attr(&mut attrs, FLAG_OPTIONAL, ATTR_MP_UNREACH, &v);
    }
    if let Some(p) = &a.as_path {
        if !four_octet && p.needs_as4() {
            // Carry the real 4-octet path for a 2-octet peer (RFC 6793 4.2.2).
            push_attr(
                &mut attrs,
                FLAG_OPTIONAL | FLAG_TRANSITIVE,
                ATTR_AS4_PATH,
                &encode_as_path(p, true),
            );
        }
    }
    for raw in &a.other {
        push_attr(&mut attrs, raw.flags, raw.type_code, &raw.value);
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_as4_path_keeps_leading_asns_not_covered() {
        // A 2-octet AS_PATH "100 23456 23456" with AS4_PATH "4200000000 4200000001" (RFC 6793 4.2.3).
        let merged = merge_as4_path(
            AsPath::sequence(vec![100, 23456, 23456]),
            AsPath::sequence(vec![4_200_000_000, 4_200_000_001]),
        );
        assert_eq!(merged.flat(), vec![100, 4_200_000_000, 4_200_000_001]);
        // AS4_PATH longer than AS_PATH: ignored.
        let kept = merge_as4_path(AsPath::sequence(vec![100]), AsPath::sequence(vec![1, 2]));
        assert_eq!(kept.flat(), vec![100]);
    }
}
