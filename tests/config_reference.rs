//! docs/config-reference.md is generated from the config reader's key tables; it must list
//! every key the reader accepts, document each one, and state the defaults the reader really
//! falls back to.

use ipsecgw::config::{self, format_duration, listing, reference};
use std::collections::BTreeMap;
use std::path::Path;

const REGENERATE: &str = "cargo run --release -- config-reference > docs/config-reference.md";

#[test]
fn config_reference_is_current() {
    let undocumented: Vec<String> = reference::accepted_keys()
        .filter(|(s, k)| reference::doc(s, k).is_none())
        .map(|(s, k)| format!("{s} {k}"))
        .collect();
    assert!(
        undocumented.is_empty(),
        "config keys without a line in src/config/reference.rs DOCS: {undocumented:?}\n\
         add one (type, default, strongSwan equivalent, what it does), then run:\n  {REGENERATE}"
    );
    let accepted: Vec<(&str, &str)> = reference::accepted_keys().collect();
    let stale: Vec<String> = reference::DOCS
        .iter()
        .filter(|d| !accepted.contains(&(d.section, d.key)))
        .map(|d| format!("{} {}", d.section, d.key))
        .collect();
    assert!(
        stale.is_empty(),
        "documented keys the reader does not accept: {stale:?}"
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/config-reference.md");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == reference::markdown(),
        "{} is not current: regenerate it with\n  {REGENERATE}",
        path.display()
    );
}

/// The documented defaults are the ones the reader falls back to: a config that sets only
/// the required keys, listed with every default resolved (`list-conns`).
#[test]
fn documented_defaults_are_the_real_ones() {
    let minimal = r#"
[[connection]]
name = "gw"
local_id = "192.0.2.1"
remote_addrs = ["192.0.2.2"]
psk = "0123456789abcdef0123"
[[connection.children]]
name = "net"
[connection.tunnel]
interface = "ipsec30"
address = "10.255.0.1/32"
[connection.bgp]
local_as = 65001
peer_as = 65002
peer_address = "10.255.0.2"
"#;
    let cfg = config::parse(minimal, "minimal.toml").expect("minimal config is valid");
    let mut resolved: BTreeMap<(String, String), String> = BTreeMap::new();
    for (section, key, value) in &listing::conn_list(&cfg).connections[0].settings {
        let section = match section.as_str() {
            "connection" => "[[connection]]".to_string(),
            s if s.starts_with("connection.children.") => "[[connection.children]]".into(),
            s => format!("[{s}]"),
        };
        resolved.insert((section, key.clone()), value.clone());
    }
    let g = config::Global::default();
    let global = [
        ("control_socket", format!("\"{}\"", g.control_socket.display())),
        ("log_level", format!("\"{}\"", g.log_level.as_str())),
        ("log_format", "\"text\"".to_string()),
        ("retransmit_timeout", format!("\"{}\"", format_duration(g.retransmit_timeout))),
        ("retransmit_base", g.retransmit_base.to_string()),
        ("retransmit_tries", g.retransmit_tries.to_string()),
        ("cookie_threshold", g.cookie_threshold.to_string()),
    ];
    for (key, value) in global {
        resolved.insert(("[global]".into(), key.into()), value);
    }
    assert_eq!(cfg.global, g, "a config without [global] gets the defaults");
    let mut checked = 0;
    for d in reference::DOCS {
        let toml_like = d.default.starts_with('"')
            || d.default.starts_with('[')
            || d.default.parse::<f64>().is_ok()
            || d.default == "true"
            || d.default == "false";
        if !toml_like {
            continue;
        }
        let real = resolved
            .get(&(d.section.to_string(), d.key.to_string()))
            .unwrap_or_else(|| panic!("{} {}: no resolved value to compare", d.section, d.key));
        assert_eq!(
            real, d.default,
            "{} {}: the reference says default {}, the reader uses {real}",
            d.section, d.key, d.default
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} defaults compared");
}
