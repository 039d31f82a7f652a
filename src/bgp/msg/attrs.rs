//! Path attributes (RFC 4271 4.3, RFC 4760, RFC 6793) in both directions, with the RFC 7606
//! verdicts: reset the session, treat the UPDATE as a withdraw, or discard the attribute.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::decode::{malformed_attr_list, read_prefixes};
use super::encode::write_prefix;
use super::*;
use crate::wire::{Overflow, Reader, Writer};

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
        let Ok([flags, type_code]) = a.array("attribute header") else {
            withdraw("attribute header truncated".into());
            break;
        };
        let len = if flags & FLAG_EXT_LEN != 0 {
            a.u16("attribute length").map(usize::from)
        } else {
            a.u8("attribute length").map(usize::from)
        };
        let Ok(len) = len else {
            withdraw(format!("attribute {type_code} header truncated"));
            break;
        };
        let Ok(value) = a.take(len, "attribute value") else {
            // RFC 7606 4: rely on Total Path Attribute Length to find the NLRI.
            withdraw(format!(
                "attribute {type_code} length overruns the path attributes"
            ));
            break;
        };
        let is_mp = type_code == ATTR_MP_REACH || type_code == ATTR_MP_UNREACH;
        if seen[usize::from(type_code)] {
            if is_mp {
                return Err(malformed_attr_list());
            }
            discarded.push(format!("duplicate attribute {type_code}"));
            continue;
        }
        seen[usize::from(type_code)] = true;

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
        let seg_type = r.u8("AS_PATH segment type").ok()?;
        let count = usize::from(r.u8("AS_PATH segment length").ok()?);
        if count == 0 {
            return None;
        }
        let mut asns = Vec::with_capacity(count);
        for _ in 0..count {
            asns.push(if four_octet {
                r.u32("AS number").ok()?
            } else {
                u32::from(r.u16("AS number").ok()?)
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

fn mp_truncated(_: crate::wire::Truncated) -> Notification {
    mp_error()
}

fn parse_mp_reach(value: &[u8]) -> Result<MpReach, Notification> {
    let mut r = Reader::new(value);
    let afi = r.u16("MP_REACH AFI").map_err(mp_truncated)?;
    let safi = r.u8("MP_REACH SAFI").map_err(mp_truncated)?;
    let nh_len = r.u8("MP_REACH next hop length").map_err(mp_truncated)?;
    let nh = r
        .take(usize::from(nh_len), "MP_REACH next hop")
        .map_err(mp_truncated)?;
    r.skip(1, "MP_REACH reserved").map_err(mp_truncated)?;
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
    let nlri = read_prefixes(r.rest(), afi == AFI_IPV6).ok_or_else(mp_error)?;
    Ok(MpReach {
        afi,
        safi,
        next_hop,
        nlri,
    })
}

fn parse_mp_unreach(value: &[u8]) -> Result<MpUnreach, Notification> {
    let mut r = Reader::new(value);
    let afi = r.u16("MP_UNREACH AFI").map_err(mp_truncated)?;
    let safi = r.u8("MP_UNREACH SAFI").map_err(mp_truncated)?;
    let known = safi == SAFI_UNICAST && (afi == AFI_IPV4 || afi == AFI_IPV6);
    let withdrawn = if known {
        read_prefixes(r.rest(), afi == AFI_IPV6).ok_or_else(mp_error)?
    } else {
        vec![]
    };
    Ok(MpUnreach {
        afi,
        safi,
        withdrawn,
    })
}

fn push_attr(w: &mut Writer, flags: u8, type_code: u8, value: &[u8]) -> Result<(), Overflow> {
    if value.len() > usize::from(u8::MAX) {
        w.u8(flags | FLAG_EXT_LEN);
        w.u8(type_code);
        w.len_u16("extended attribute length", value.len())?;
    } else {
        w.u8(flags & !FLAG_EXT_LEN);
        w.u8(type_code);
        w.len_u8("attribute length", value.len())?;
    }
    w.bytes(value);
    Ok(())
}

fn encode_as_path(path: &AsPath, four_octet: bool) -> Result<Vec<u8>, Overflow> {
    let mut w = Writer::new();
    for seg in &path.segments {
        let (t, asns) = match seg {
            AsSegment::Set(a) => (SEG_SET, a),
            AsSegment::Sequence(a) => (SEG_SEQUENCE, a),
        };
        // A segment holds at most 255 ASNs: longer runs become consecutive segments.
        for chunk in asns.chunks(usize::from(u8::MAX)) {
            w.u8(t);
            w.len_u8("AS_PATH segment length", chunk.len())?;
            for &asn in chunk {
                if four_octet {
                    w.u32(asn);
                } else {
                    w.u16(u16::try_from(asn).unwrap_or(AS_TRANS));
                }
            }
        }
    }
    Ok(w.into_vec())
}

/// Encodes the Path Attributes field. A 2-octet peer gets AS_TRANS in AS_PATH and the real
/// path in AS4_PATH.
pub(super) fn encode_path_attrs(
    a: &PathAttrs,
    four_octet: bool,
    w: &mut Writer,
) -> Result<(), Overflow> {
    if let Some(o) = a.origin {
        push_attr(w, FLAG_TRANSITIVE, ATTR_ORIGIN, &[o as u8])?;
    }
    if let Some(p) = &a.as_path {
        let path = encode_as_path(p, four_octet)?;
        push_attr(w, FLAG_TRANSITIVE, ATTR_AS_PATH, &path)?;
    }
    if let Some(nh) = a.next_hop {
        push_attr(w, FLAG_TRANSITIVE, ATTR_NEXT_HOP, &nh.octets())?;
    }
    if let Some(med) = a.med {
        push_attr(w, FLAG_OPTIONAL, ATTR_MED, &med.to_be_bytes())?;
    }
    if let Some(lp) = a.local_pref {
        push_attr(w, FLAG_TRANSITIVE, ATTR_LOCAL_PREF, &lp.to_be_bytes())?;
    }
    if let Some(m) = &a.mp_reach {
        let mut v = Writer::new();
        v.u16(m.afi);
        v.u8(m.safi);
        match m.next_hop {
            Some(IpAddr::V4(nh)) => {
                v.u8(4);
                v.bytes(&nh.octets());
            }
            Some(IpAddr::V6(nh)) => {
                v.u8(16);
                v.bytes(&nh.octets());
            }
            None => v.u8(0),
        }
        v.u8(0); // reserved
        for p in &m.nlri {
            write_prefix(&mut v, p);
        }
        push_attr(w, FLAG_OPTIONAL, ATTR_MP_REACH, v.as_slice())?;
    }
    if let Some(m) = &a.mp_unreach {
        let mut v = Writer::new();
        v.u16(m.afi);
        v.u8(m.safi);
        for p in &m.withdrawn {
            write_prefix(&mut v, p);
        }
        push_attr(w, FLAG_OPTIONAL, ATTR_MP_UNREACH, v.as_slice())?;
    }
    if let Some(p) = &a.as_path {
        if !four_octet && p.needs_as4() {
            // Carry the real 4-octet path for a 2-octet peer (RFC 6793 4.2.2).
            let path = encode_as_path(p, true)?;
            push_attr(w, FLAG_OPTIONAL | FLAG_TRANSITIVE, ATTR_AS4_PATH, &path)?;
        }
    }
    for raw in &a.other {
        push_attr(w, raw.flags, raw.type_code, &raw.value)?;
    }
    Ok(())
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
