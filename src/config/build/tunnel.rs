//! `[connection.tunnel]`: the TUN device, its address and static routes.

use std::net::IpAddr;

use crate::config::reader::{Ctx, Section};
use crate::config::values::{ip, prefix, ValueError};
use crate::config::Tunnel;

pub(super) const KEYS: &[&str] = &["interface", "address", "mtu", "routes"];

fn interface_name(name: &str) -> Result<String, ValueError> {
    // Linux IFNAMSIZ is 16 including the NUL.
    if name.is_empty() || name.len() > 15 {
        return Err(ValueError::InterfaceNameLength(name.to_string()));
    }
    if name == "."
        || name == ".."
        || !name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
    {
        return Err(ValueError::InterfaceName(name.to_string()));
    }
    Ok(name.to_string())
}

/// An interface address with prefix length; host bits are meaningful here.
fn interface_address(text: &str) -> Result<(IpAddr, u8), ValueError> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr = ip(addr)?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => l
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| ValueError::PrefixLength(text.to_string()))?,
    };
    Ok((addr, len))
}

pub(super) fn build(ctx: &mut Ctx, s: Section) -> Option<Tunnel> {
    let before = ctx.errors.len();
    s.check_keys(ctx, KEYS);
    let interface = s
        .required(ctx, "interface", interface_name)
        .unwrap_or_default();
    let address = s.required(ctx, "address", interface_address);
    let mtu = s.number(ctx, "mtu", 576..=9000, 1400);
    let routes = s.list(ctx, "routes", prefix).unwrap_or_default();
    let (address, prefix_len) = address?;
    (ctx.errors.len() == before).then_some(Tunnel {
        interface,
        address,
        prefix_len,
        mtu,
        routes,
    })
}
