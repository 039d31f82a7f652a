//! The few header fields traffic selectors look at (RFC 4301 4.4.1): addresses, protocol and
//! ports, parsed from an inner IPv4/IPv6 packet without allocating.

use crate::ike::TrafficSelector;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// Only for TCP/UDP/SCTP/UDP-Lite first fragments.
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
}

/// Protocols whose first four payload bytes are source and destination port.
fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 132 | 136)
}

impl Flow {
    pub fn parse(pkt: &[u8]) -> Option<Flow> {
        match pkt.first()? >> 4 {
            4 => {
                let hdr: &[u8; 20] = pkt.get(..20)?.try_into().ok()?;
                let ihl = usize::from(hdr[0] & 0x0f) * 4;
                let proto = hdr[9];
                let frag_offset = u16::from_be_bytes([hdr[6], hdr[7]]) & 0x1fff;
                let src = IpAddr::V4(Ipv4Addr::new(hdr[12], hdr[13], hdr[14], hdr[15]));
                let dst = IpAddr::V4(Ipv4Addr::new(hdr[16], hdr[17], hdr[18], hdr[19]));
                let ports = if frag_offset == 0 && has_ports(proto) {
                    pkt.get(ihl..ihl + 4)
                } else {
                    None
                };
                Some(Flow::new(src, dst, proto, ports))
            }
            6 => {
                let hdr: &[u8; 40] = pkt.get(..40)?.try_into().ok()?;
                let proto = hdr[6];
                let mut s = [0u8; 16];
                s.copy_from_slice(&hdr[8..24]);
                let mut d = [0u8; 16];
                d.copy_from_slice(&hdr[24..40]);
                // Extension headers are not walked: ports are then unknown.
                let ports = if has_ports(proto) {
                    pkt.get(40..44)
                } else {
                    None
                };
                Some(Flow::new(
                    IpAddr::V6(Ipv6Addr::from(s)),
                    IpAddr::V6(Ipv6Addr::from(d)),
                    proto,
                    ports,
                ))
            }
            _ => None,
        }
    }

    fn new(src: IpAddr, dst: IpAddr, proto: u8, ports: Option<&[u8]>) -> Flow {
        let (src_port, dst_port) = match ports {
            Some(&[a, b, c, d]) => (
                Some(u16::from_be_bytes([a, b])),
                Some(u16::from_be_bytes([c, d])),
            ),
            _ => (None, None),
        };
        Flow {
            src,
            dst,
            proto,
            src_port,
            dst_port,
        }
    }

    /// True if any selector covers (`ip`, this protocol, `port`).
    pub fn matches(&self, selectors: &[TrafficSelector], ip: IpAddr, port: Option<u16>) -> bool {
        selectors.iter().any(|ts| {
            let any_port = ts.start_port == 0 && ts.end_port == 65535;
            ts.contains(ip)
                && (ts.ip_proto == 0 || ts.ip_proto == self.proto)
                && (any_port || port.is_some_and(|p| ts.start_port <= p && p <= ts.end_port))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(start: &str, end: &str, proto: u8, ports: (u16, u16)) -> TrafficSelector {
        TrafficSelector {
            ip_proto: proto,
            start_port: ports.0,
            end_port: ports.1,
            start: start.parse().unwrap(),
            end: end.parse().unwrap(),
        }
    }

    fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[9] = 17;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p
    }

    #[test]
    fn parses_and_matches_v4() {
        let f = Flow::parse(&udp4([10, 1, 0, 5], [10, 2, 0, 7], 1234, 53)).unwrap();
        assert_eq!(f.src, "10.1.0.5".parse::<IpAddr>().unwrap());
        assert_eq!(f.dst_port, Some(53));
        let any = [ts("0.0.0.0", "255.255.255.255", 0, (0, 65535))];
        assert!(f.matches(&any, f.src, f.src_port));
        let lan = [ts("10.2.0.0", "10.2.0.255", 0, (0, 65535))];
        assert!(f.matches(&lan, f.dst, f.dst_port));
        assert!(!f.matches(&lan, f.src, f.src_port));
        let dns = [ts("10.2.0.0", "10.2.0.255", 17, (53, 53))];
        assert!(f.matches(&dns, f.dst, f.dst_port));
        let tcp = [ts("10.2.0.0", "10.2.0.255", 6, (0, 65535))];
        assert!(!f.matches(&tcp, f.dst, f.dst_port));
        let v6 = [ts(
            "::",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            0,
            (0, 65535),
        )];
        assert!(!f.matches(&v6, f.dst, f.dst_port));
        assert!(!f.matches(&[], f.dst, f.dst_port));
    }

    #[test]
    fn parses_v6_and_rejects_garbage() {
        let mut p = vec![0u8; 48];
        p[0] = 0x60;
        p[6] = 6;
        p[23] = 1;
        p[39] = 2;
        p[42..44].copy_from_slice(&443u16.to_be_bytes());
        let f = Flow::parse(&p).unwrap();
        assert_eq!(f.src, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(f.dst, "::2".parse::<IpAddr>().unwrap());
        assert_eq!(f.dst_port, Some(443));
        assert!(Flow::parse(&[]).is_none());
        assert!(Flow::parse(&[0x45; 19]).is_none());
        assert!(Flow::parse(&[0x60; 39]).is_none());
        assert!(Flow::parse(&[0x10; 60]).is_none());
        // a short IPv4 packet claiming ports: no ports, no panic
        let mut p = udp4([1, 1, 1, 1], [2, 2, 2, 2], 1, 2);
        p.truncate(21);
        assert_eq!(Flow::parse(&p).unwrap().src_port, None);
    }
}
