//! `[connection.bgp]`: the eBGP session across the tunnel.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::reader::{Ctx, Section};
use crate::config::values::{ip, ipv4, prefix, ValueError};
use crate::config::{Bgp, PrefixFilter, Tunnel};
use crate::prefix::IpPrefix;

pub(super) const KEYS: &[&str] = &[
    "local_as",
    "peer_as",
    "peer_address",
    "local_address",
    "multihop",
    "hold_time",
    "connect_retry",
    "passive",
    "networks",
    "export",
    "import",
    "import_local_pref",
    "max_prefixes",
    "router_id",
    "port",
    "route_source",
];

/// A required AS number: 1..=4294967295 except AS_TRANS.
fn asn(ctx: &mut Ctx, s: Section, key: &str) -> Option<u32> {
    if s.get(key).is_none() {
        s.missing(ctx, key);
        return None;
    }
    let v = s.int(ctx, key, 1..=i64::from(u32::MAX))?;
    if v == 23456 {
        ctx.err(
            &s.span_of(key),
            format!("`{key}` = 23456 is AS_TRANS (RFC 6793), not a real AS number"),
        );
        return None;
    }
    u32::try_from(v).ok()
}

pub(super) fn build(
    ctx: &mut Ctx,
    s: Section,
    tunnel: Option<&Tunnel>,
    tunnel_bad: bool,
    local_addrs: &[IpAddr],
    remote_addrs: &[IpAddr],
) -> Option<Bgp> {
    let before = ctx.errors.len();
    s.check_keys(ctx, KEYS);
    let local_as = asn(ctx, s, "local_as");
    let peer_as = asn(ctx, s, "peer_as");
    if let (Some(l), Some(p)) = (local_as, peer_as) {
        if l == p {
            ctx.err(
                &s.span_of("peer_as"),
                format!("`peer_as` = {p} equals local_as: only eBGP is supported"),
            );
        }
    }
    let peer_address = s.required(ctx, "peer_address", ip);
    let local_address = s
        .parsed(ctx, "local_address", ip)
        .or(tunnel.map(|t| t.address));
    if let (Some(local), Some(t)) = (local_address, tunnel) {
        if local != t.address && !local_addrs.contains(&local) {
            ctx.err(
                &s.span_of("local_address"),
                format!("`local_address` {local} is neither the tunnel address {} nor one of local_addrs", t.address),
            );
        }
    }
    if let (Some(peer), Some(t)) = (peer_address, tunnel) {
        let reachable =
            t.on_link_prefix().contains(peer) || t.routes.iter().any(|r| r.contains(peer));
        if !reachable {
            ctx.err(
                &s.span_of("peer_address"),
                format!(
                    "`peer_address` {peer} is not reachable through tunnel {}: add \"{}\" to [connection.tunnel] routes",
                    t.interface,
                    IpPrefix::host(peer)
                ),
            );
        }
    }
    let multihop = s.number(ctx, "multihop", 1..=255, 1);
    let hold_time = s
        .duration(ctx, "hold_time")
        .unwrap_or(Duration::from_secs(30));
    if !hold_time.is_zero() && hold_time < Duration::from_secs(3) {
        ctx.err(
            &s.span_of("hold_time"),
            "`hold_time` must be 0s (no keepalives) or at least 3s (RFC 4271)",
        );
    } else if hold_time.subsec_millis() != 0 || hold_time.as_secs() > 65535 {
        ctx.err(
            &s.span_of("hold_time"),
            "`hold_time` must be whole seconds up to 65535s",
        );
    }
    let connect_retry = s.positive_duration(ctx, "connect_retry", Duration::from_secs(5));
    let passive = s.boolean(ctx, "passive").unwrap_or(false);
    let networks = s.list(ctx, "networks", prefix).unwrap_or_default();
    let export = match s.list(ctx, "export", |e| e.parse::<PrefixFilter>()) {
        // A `networks` entry that `export` does not permit is legal, as on a router: the
        // prefix-list is the last word on what leaves (the speaker logs what it filters).
        Some(filters) => filters,
        None => networks.iter().copied().map(PrefixFilter::exact).collect(),
    };
    let import = s.list(ctx, "import", |e| e.parse::<PrefixFilter>());
    if import.is_none() && s.get("import").is_none() {
        let peer = peer_as.map_or("the peer".to_string(), |a| format!("AS{a}"));
        ctx.warn(
            s.span,
            format!(
                "[connection.bgp] has no `import` prefix-list, so no route from {peer} will be \
                 accepted (RFC 8212); add one, e.g. import = [\"10.0.0.0/8 le 24\"] \
                 (or [\"0.0.0.0/0 le 32\"] for all)"
            ),
        );
    }
    let import_local_pref = s.number(ctx, "import_local_pref", 0..=i64::from(u32::MAX), 100);
    let max_prefixes = s.number(ctx, "max_prefixes", 1..=10_000_000, 1000);
    let router_id = match s.parsed(ctx, "router_id", ipv4) {
        Some(id) => Some(id),
        None if s.get("router_id").is_some() => None,
        None => match local_address {
            Some(IpAddr::V4(a)) => Some(a),
            Some(IpAddr::V6(_)) => {
                ctx.err(s.span, "[connection.bgp] needs `router_id` (an IPv4 address) when local_address is IPv6");
                None
            }
            None => None,
        },
    };
    let port = s.number(ctx, "port", 1..=65535, 179);
    let route_source: Option<IpAddr> = s.parsed(ctx, "route_source", |r| {
        r.parse().map_err(|_| ValueError::NotAnIp(r.to_string()))
    });
    if local_address.is_none() && tunnel.is_none() && !tunnel_bad {
        ctx.err(s.span, "[connection.bgp] needs `local_address`");
    }
    if ctx.errors.len() != before || tunnel_bad {
        return None;
    }
    Some(Bgp {
        local_as: local_as?,
        peer_as: peer_as?,
        peer_address: peer_address?,
        local_address: local_address?,
        multihop,
        hold_time,
        connect_retry,
        passive,
        networks,
        export,
        import,
        protected: local_addrs.iter().chain(remote_addrs).copied().collect(),
        import_local_pref,
        max_prefixes,
        router_id: router_id?,
        port,
        route_source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_filters() {
        let f: PrefixFilter = "10.0.0.0/8 le 24".parse().unwrap();
        assert!(f.matches(&"10.2.30.0/24".parse().unwrap()));
        assert!(f.matches(&"10.0.0.0/8".parse().unwrap()));
        assert!(!f.matches(&"10.2.30.0/25".parse().unwrap()));
        let exact: PrefixFilter = "10.2.30.0/25".parse().unwrap();
        assert!(exact.matches(&"10.2.30.0/25".parse().unwrap()));
        assert!(!exact.matches(&"10.2.30.0/26".parse().unwrap()));
        assert!("10.0.0.0/8 ge 4".parse::<PrefixFilter>().is_err());
        assert!("10.0.0.0/8 ge 24 le 16".parse::<PrefixFilter>().is_err());
        assert_eq!(f.to_string(), "10.0.0.0/8 le 24");
    }
}
