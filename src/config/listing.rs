//! `ipsecgw list-conns`: the running connections with every default resolved, as
//! `[section] key = value` rows in the order of the configuration reference.

use super::{Bgp, Child, Config, Connection, DpdAction, Encap, StartAction, Tunnel};
use crate::config::format_duration;
use crate::control::{ConnList, ConnSettings};
use std::fmt::Display;
use std::time::Duration;

fn quoted(s: impl Display) -> String {
    format!("\"{s}\"")
}

fn list<T: Display>(items: &[T]) -> String {
    let inner: Vec<String> = items.iter().map(quoted).collect();
    format!("[{}]", inner.join(", "))
}

fn dur(d: Duration) -> String {
    quoted(format_duration(d))
}

struct Rows {
    section: String,
    out: Vec<(String, String, String)>,
}

impl Rows {
    fn put(&mut self, key: &str, value: String) {
        self.out
            .push((self.section.clone(), key.to_string(), value));
    }
}

fn connection(r: &mut Rows, c: &Connection) {
    r.put("name", quoted(&c.name));
    r.put(
        "local_addrs",
        if c.local_addrs.is_empty() {
            "[\"%any\"]".into()
        } else {
            list(&c.local_addrs)
        },
    );
    r.put(
        "remote_addrs",
        if c.remote_addrs.is_empty() {
            "[\"%any\"]".into()
        } else {
            list(&c.remote_addrs)
        },
    );
    r.put("local_id", quoted(&c.local_id));
    r.put(
        "remote_id",
        c.remote_id.as_ref().map_or("(any)".into(), quoted),
    );
    // Never the key itself.
    r.put("psk", "(set, not shown)".into());
    r.put("ike_proposals", list(&c.ike_proposals));
    let start = match c.start_action {
        StartAction::Start => "start",
        StartAction::None => "none",
    };
    r.put("start_action", quoted(start));
    let encap = match c.encap {
        Encap::Auto => "auto",
        Encap::Always => "always",
    };
    r.put("encap", quoted(encap));
    r.put("rekey_time", dur(c.rekey_time));
    r.put("dpd_delay", dur(c.dpd_delay.unwrap_or(Duration::ZERO)));
    let dpd = match c.dpd_action {
        DpdAction::Restart => "restart",
        DpdAction::Clear => "clear",
    };
    r.put("dpd_action", quoted(dpd));
    r.put("local_port", c.local_port.to_string());
    r.put("remote_port", c.remote_port.to_string());
}

fn child(r: &mut Rows, ch: &Child) {
    r.put("name", quoted(&ch.name));
    r.put("local_ts", list(&ch.local_ts));
    r.put("remote_ts", list(&ch.remote_ts));
    r.put("esp_proposals", list(&ch.esp_proposals));
    r.put("rekey_time", dur(ch.rekey_time));
    r.put("replay_window", ch.replay_window.to_string());
}

fn tunnel(r: &mut Rows, t: &Tunnel) {
    r.put("interface", quoted(&t.interface));
    r.put("address", quoted(format!("{}/{}", t.address, t.prefix_len)));
    r.put("mtu", t.mtu.to_string());
    r.put("routes", list(&t.routes));
}

fn bgp(r: &mut Rows, b: &Bgp) {
    r.put("local_as", b.local_as.to_string());
    r.put("peer_as", b.peer_as.to_string());
    r.put("peer_address", quoted(b.peer_address));
    r.put("local_address", quoted(b.local_address));
    r.put("router_id", quoted(b.router_id));
    r.put("port", b.port.to_string());
    r.put("multihop", b.multihop.to_string());
    r.put("hold_time", dur(b.hold_time));
    r.put("connect_retry", dur(b.connect_retry));
    r.put("passive", b.passive.to_string());
    r.put("networks", list(&b.networks));
    r.put("export", list(&b.export));
    r.put(
        "import",
        b.import
            .as_ref()
            .map_or("(absent: accept nothing, RFC 8212)".into(), |i| list(i)),
    );
    r.put("import_local_pref", b.import_local_pref.to_string());
    r.put("max_prefixes", b.max_prefixes.to_string());
    if let Some(s) = b.route_source {
        r.put("route_source", quoted(s));
    }
}

/// Every connection of `cfg` with its resolved settings.
pub fn conn_list(cfg: &Config) -> ConnList {
    let connections = cfg
        .connections
        .iter()
        .map(|c| {
            let mut r = Rows {
                section: "connection".into(),
                out: vec![],
            };
            connection(&mut r, c);
            for ch in &c.children {
                r.section = format!("connection.children.{}", ch.name);
                child(&mut r, ch);
            }
            if let Some(t) = &c.tunnel {
                r.section = "connection.tunnel".into();
                tunnel(&mut r, t);
            }
            if let Some(b) = &c.bgp {
                r.section = "connection.bgp".into();
                bgp(&mut r, b);
            }
            ConnSettings {
                name: c.name.clone(),
                settings: r.out,
            }
        })
        .collect();
    ConnList { connections }
}
