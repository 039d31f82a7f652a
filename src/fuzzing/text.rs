//! The data plane's traffic-selector check, config text, and control-socket requests.

use super::Input;
use crate::control::{Request, Response};
use crate::dataplane::flow::Flow;
use crate::ike::TrafficSelector;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `flow`: `count u8 | selectors | inner packet`. Each selector is `kind u8 (bit 0 = IPv6) |
/// proto u8 | start port u16 | end port u16 | start address | end address`; the packet is
/// parsed as the data plane does and checked against them in both directions.
pub fn flow(data: &[u8]) {
    let mut input = Input::new(data);
    let count = input.u8() % 5;
    let selectors: Vec<TrafficSelector> = (0..count)
        .map(|_| {
            let v6 = input.u8() & 1 != 0;
            let (ip_proto, start_port, end_port) = (input.u8(), input.u16(), input.u16());
            let mut addr = || {
                if v6 {
                    IpAddr::V6(Ipv6Addr::from(
                        (u128::from(input.u64()) << 64) | u128::from(input.u64()),
                    ))
                } else {
                    IpAddr::V4(Ipv4Addr::from(input.u32()))
                }
            };
            let (start, end) = (addr(), addr());
            TrafficSelector {
                ip_proto,
                start_port,
                end_port,
                start,
                end,
            }
        })
        .collect();
    if let Some(f) = Flow::parse(input.rest()) {
        let _ =
            f.matches(&selectors, f.src, f.src_port) && f.matches(&selectors, f.dst, f.dst_port);
    }
}

/// True if the text could make the config reader open something other than a missing file:
/// `psk_file` is read from disk, and a FIFO or a device would block or never end.
fn may_touch_files(text: &str) -> bool {
    ["/dev", "/proc", "/sys", "..", "\\u", "\\U", "insecure"]
        .iter()
        .any(|s| text.contains(s))
}

/// `config`: config text through the parse + validate path of `ipsecgw check` (relative
/// `psk_file`s resolve to a directory that does not exist).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if may_touch_files(text) {
        return;
    }
    match crate::config::parse(text, "/nonexistent-ipsecgw-fuzz/ipsecgw.toml") {
        Ok(c) => {
            let _ = crate::config::diff(&c, &c);
        }
        Err(errors) => {
            for e in errors {
                let _ = e.to_string();
            }
        }
    }
}

/// `control`: one control-socket request line as the server parses it (and, for the client
/// side, as a response). A request that parses must parse the same after `to_json`.
pub fn control(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(req) = Request::from_json(&text) {
        assert_eq!(
            Request::from_json(&req.to_json()).as_ref(),
            Ok(&req),
            "request changes through to_json"
        );
    }
    if let Ok(resp) = serde_json::from_str::<Response>(&text) {
        let _ = resp.to_json();
        let _ = resp.into_result::<serde_json::Value>();
    }
}
