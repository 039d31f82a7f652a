//! docs/config-reference.md is generated from the config reader's key tables; it must list
//! every key the reader accepts, document each one, and state the defaults the reader really
//! falls back to.

use ipsecgw::config::{self, listing, reference};
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

const MINIMAL: &str = r#"
[[connection]]
name = "gw"
local_id = "192.0.2.1"
remote_addrs = ["192.0.2.2"]
psk = "0123456789abcdef0123"
[[connection.children]]
name = "net"
[connection.tunnel]
interface = "ipsec30"
address = "10.255.0.1/30"
[connection.bgp]
local_as = 65001
peer_as = 65002
peer_address = "10.255.0.2"
"#;

/// The documented defaults are the ones the reader falls back to: setting a key explicitly
/// to its documented default changes nothing in the resolved configuration.
#[test]
fn documented_defaults_are_the_real_ones() {
    let base = config::parse(MINIMAL, "minimal.toml").expect("minimal config is valid");
    let resolved = |cfg: &config::Config| (cfg.global.clone(), listing::conn_list(cfg));
    let want = resolved(&base);
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
        let line = format!("{} = {}\n", d.key, d.default);
        let text = if d.section == "[global]" {
            format!("[global]\n{line}{MINIMAL}")
        } else {
            let header = format!("{}\n", d.section);
            assert!(MINIMAL.contains(&header), "{header}");
            MINIMAL.replacen(&header, &format!("{header}{line}"), 1)
        };
        let cfg = config::parse(&text, "explicit.toml").unwrap_or_else(|e| {
            panic!(
                "{} {}: the documented default {} is refused: {e:?}",
                d.section, d.key, d.default
            )
        });
        assert!(
            resolved(&cfg) == want,
            "{} {}: the documented default {} is not what the reader uses without it",
            d.section,
            d.key,
            d.default
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} defaults compared");
    assert_eq!(base.global, config::Global::default());
}
