//! The configuration reference (docs/config-reference.md), generated from the reader's own
//! key tables (`build::SECTIONS`, the lists `check_keys` enforces) plus one line of
//! documentation per key here. A key the reader accepts without a line here shows up as
//! UNDOCUMENTED, and the test `config_reference_is_current` fails until it is documented and
//! the file is regenerated with:
//!
//! ```text
//! cargo run --release -- config-reference > docs/config-reference.md
//! ```

use super::build::SECTIONS;
use std::fmt::Write;

/// One key: (section, key, type, default, strongSwan equivalent, what it does).
pub struct KeyDoc {
    pub section: &'static str,
    pub key: &'static str,
    pub kind: &'static str,
    pub default: &'static str,
    pub strongswan: &'static str,
    pub about: &'static str,
}

const fn k(
    section: &'static str,
    key: &'static str,
    kind: &'static str,
    default: &'static str,
    strongswan: &'static str,
    about: &'static str,
) -> KeyDoc {
    KeyDoc {
        section,
        key,
        kind,
        default,
        strongswan,
        about,
    }
}

const G: &str = "[global]";
const C: &str = "[[connection]]";
const CH: &str = "[[connection.children]]";
const T: &str = "[connection.tunnel]";
const B: &str = "[connection.bgp]";

/// The documentation of every key. Defaults are what the builders fall back to.
pub const DOCS: &[KeyDoc] = &[
    k(G, "control_socket", "path", "\"/run/ipsecgw/control.sock\"", "charon.plugins.vici.socket", "Unix socket of `ipsecgw status`/`initiate`/...; mode 0600, root only."),
    k(G, "log_level", "error|warn|info|debug|trace", "\"info\"", "charon.filelog.*.default", "Log level of ipsecgw's own lines; `RUST_LOG` overrides it."),
    k(G, "log_format", "text|json", "\"text\"", "-", "`json`: one JSON object per line for log shippers. Text is coloured only on a terminal (and never with NO_COLOR); under systemd it is journal-style."),
    k(G, "metrics_listen", "address:port", "(off)", "-", "Prometheus text-format endpoint `GET /metrics`."),
    k(G, "retransmit_timeout", "duration", "\"4s\"", "charon.retransmit_timeout", "First IKE retransmission timeout."),
    k(G, "retransmit_base", "float 1.0..10.0", "1.8", "charon.retransmit_base", "Backoff base: try n waits retransmit_timeout * base^n."),
    k(G, "retransmit_tries", "integer 0..20", "5", "charon.retransmit_tries", "Retransmissions before the peer is declared dead."),
    k(G, "cookie_threshold", "integer", "10", "charon.cookie_threshold", "Half-open IKE SAs above which a responder demands COOKIEs."),
    k(G, "half_open_max", "integer 1..1000000", "5000", "charon.init_limit_half_open", "Half-open IKE SAs kept in all; further IKE_SA_INIT requests are dropped and counted before any DH work."),
    k(G, "half_open_per_address_max", "integer", "100", "charon.block_threshold", "Half-open IKE SAs kept per peer IP address; more are dropped and counted."),
    k(C, "name", "string", "(required)", "connections.<name>", "Connection name used by the CLI, logs and metrics."),
    k(C, "local_addrs", "list of IP", "[\"%any\"]", "connections.<conn>.local_addrs", "Underlay address(es) to bind IKE/ESP on."),
    k(C, "remote_addrs", "list of IP", "(required)", "connections.<conn>.remote_addrs", "Peer address(es); [\"%any\"] accepts any peer (responder only)."),
    k(C, "local_id", "IP|FQDN|user@FQDN", "first local address", "connections.<conn>.local.id", "Our IKE identity."),
    k(C, "remote_id", "IP|FQDN|user@FQDN", "first remote address", "connections.<conn>.remote.id", "Identity the peer must prove."),
    k(C, "psk_file", "path", "-", "secrets.ike<suffix>.secret", "File holding the pre-shared key (mode 0600; relative to the config file)."),
    k(C, "psk_file_insecure", "bool", "false", "-", "Accept a psk_file readable by group/others."),
    k(C, "psk", "string", "-", "secrets.ike<suffix>.secret", "The pre-shared key inline (0x... hex or 0s... base64 accepted); give psk or psk_file."),
    k(C, "ike_proposals", "list of proposals", "[\"aes256-sha256-modp2048\", \"aes256-sha1-modp1024\"]", "connections.<conn>.proposals", "IKE proposals in strongSwan notation, most preferred first."),
    k(C, "start_action", "start|none", "\"start\"", "connections.<conn>.children.<child>.start_action", "start: initiate at startup and keep up; none: wait for the peer."),
    k(C, "encap", "auto|always", "\"auto\"", "connections.<conn>.encap", "always: force UDP 4500 encapsulation even without NAT."),
    k(C, "rekey_time", "duration", "\"4h\"", "connections.<conn>.rekey_time", "IKE SA rekey interval, jittered down by up to 10%."),
    k(C, "fragmentation", "yes|accept|force|no", "\"yes\"", "connections.<conn>.fragmentation", "RFC 7383: announce support; yes/force fragment ours above fragment_size, accept only reassembles, no does not announce."),
    k(C, "fragment_size", "integer 576..65535", "1280", "charon.fragment_size", "Largest IP datagram of one IKE fragment (IP and UDP headers included)."),
    k(C, "dpd_delay", "duration", "\"10s\"", "connections.<conn>.dpd_delay", "Liveness check after this long without inbound traffic; \"0s\" = off."),
    k(C, "dpd_action", "restart|clear", "\"restart\"", "connections.<conn>.children.<child>.dpd_action", "What to do when DPD declares the peer dead."),
    k(C, "local_port", "port", "500", "connections.<conn>.local_port", "Our IKE port (NAT-T floats to 4500)."),
    k(C, "remote_port", "port", "500", "connections.<conn>.remote_port", "The peer's IKE port."),
    k(C, "children", "table list", "(one required)", "connections.<conn>.children", "The CHILD SAs, see [[connection.children]]."),
    k(C, "tunnel", "table", "(none)", "- (a VTI/XFRM interface)", "The TUN device of the connection, see [connection.tunnel]."),
    k(C, "bgp", "table", "(none)", "- (BIRD/FRR)", "An eBGP session over the tunnel, see [connection.bgp]."),
    k(CH, "name", "string", "(required)", "connections.<conn>.children.<name>", "CHILD SA name."),
    k(CH, "local_ts", "list of prefixes", "[\"0.0.0.0/0\"]", "children.<child>.local_ts", "Our traffic selectors (0/0 for route-based)."),
    k(CH, "remote_ts", "list of prefixes", "[\"0.0.0.0/0\"]", "children.<child>.remote_ts", "The peer's traffic selectors."),
    k(CH, "esp_proposals", "list of proposals", "[\"aes256-sha1\"]", "children.<child>.esp_proposals", "ESP proposals; add a DH group (-modp1024) for PFS on rekey."),
    k(CH, "rekey_time", "duration", "\"1h\"", "children.<child>.rekey_time", "CHILD SA rekey interval."),
    k(CH, "replay_window", "0 or 32..4096", "64", "children.<child>.replay_window", "Anti-replay window in packets; 0 = off."),
    k(CH, "rekey_bytes", "count or K/M/G", "0", "children.<child>.rekey_bytes", "Rekey after this many bytes in the busier direction (jittered down by up to life_bytes - rekey_bytes); 0 = off."),
    k(CH, "life_bytes", "count or K/M/G", "(110% of rekey_bytes)", "children.<child>.life_bytes", "Take the SA out of service at this many bytes (Azure: \"102400000K\"); 0 = off."),
    k(CH, "rekey_packets", "count or K/M/G", "0", "children.<child>.rekey_packets", "As rekey_bytes, in packets."),
    k(CH, "life_packets", "count or K/M/G", "(110% of rekey_packets)", "children.<child>.life_packets", "As life_bytes, in packets."),
    k(CH, "rand_time", "duration", "(10% of rekey_time)", "children.<child>.rand_time", "Most taken off rekey_time at random, so both ends do not rekey in lockstep."),
    k(T, "interface", "interface name", "(required)", "- (ip link add ... type vti)", "TUN device name (up to 15 characters)."),
    k(T, "address", "IP/len", "(required)", "- (ip addr add)", "Address of the TUN device."),
    k(T, "mtu", "integer 576..9000", "1400", "- (ip link set mtu)", "MTU of the TUN device."),
    k(T, "routes", "list of prefixes", "[]", "- (ip route add ... dev)", "Static routes into the tunnel, present while a CHILD SA is up; a reload changes them in place."),
    k(B, "local_as", "AS number", "(required)", "- (BIRD: local as)", "Our AS."),
    k(B, "peer_as", "AS number", "(required)", "- (BIRD: neighbor ... as)", "The peer's AS."),
    k(B, "peer_address", "IP", "(required)", "- (BIRD: neighbor)", "The peer's BGP address, through the tunnel."),
    k(B, "local_address", "IP", "the tunnel address", "- (BIRD: source address)", "update-source, also our NEXT_HOP."),
    k(B, "multihop", "integer 1..255", "1", "- (BIRD: multihop)", "IP TTL of the session (Azure wants 5)."),
    k(B, "hold_time", "duration", "\"30s\"", "- (BIRD: hold time)", "BGP hold time; 0s = no keepalives."),
    k(B, "connect_retry", "duration", "\"5s\"", "- (BIRD: connect retry time)", "Wait between connection attempts."),
    k(B, "passive", "bool", "false", "- (BIRD: passive)", "Never connect, only accept."),
    k(B, "networks", "list of prefixes", "[]", "- (BIRD: static protocol)", "Prefixes we originate."),
    k(B, "export", "list of prefix filters", "the networks", "- (prefix-list out)", "Outbound prefix-list (\"10.0.0.0/8 le 24\")."),
    k(B, "import", "list of prefix filters", "(absent: accept nothing, RFC 8212)", "- (prefix-list in)", "Inbound prefix-list."),
    k(B, "import_local_pref", "integer", "100", "- (route-map in: set local-preference)", "LOCAL_PREF set on every imported route."),
    k(B, "max_prefixes", "integer", "1000", "- (BIRD: import limit)", "Cease when the peer sends more prefixes than this."),
    k(B, "router_id", "IPv4", "local_address", "- (BIRD: router id)", "BGP identifier."),
    k(B, "port", "port", "179", "-", "TCP port of the peer and of our listener."),
    k(B, "route_source", "IP", "(none)", "- (BIRD: krt_prefsrc)", "Preferred source of routes learned from the peer."),
];

/// The documentation of `key` in `section`, if any.
pub fn doc(section: &str, key: &str) -> Option<&'static KeyDoc> {
    DOCS.iter().find(|d| d.section == section && d.key == key)
}

/// Every (section, key) the reader accepts, in its order.
pub fn accepted_keys() -> impl Iterator<Item = (&'static str, &'static str)> {
    SECTIONS
        .iter()
        .flat_map(|(section, keys)| keys.iter().map(move |k| (*section, *k)))
}

/// The reference as Markdown, one table row per key.
pub fn markdown() -> String {
    let mut out = String::from(
        "# ipsecgw configuration reference\n\n\
         Generated from the config reader's key tables (`src/config/reference.rs`); do not edit.\n\
         Regenerate with `cargo run --release -- config-reference > docs/config-reference.md`.\n\
         Durations are written like \"30s\", \"5m\", \"4h\", \"1d\". strongSwan equivalents are\n\
         swanctl.conf(5) / strongswan.conf(5) keys; \"-\" means strongSwan has none.\n",
    );
    for (section, keys) in SECTIONS {
        let _ = write!(
            out,
            "\n## {section}\n\n| key | type | default | strongSwan | description |\n| --- | --- | --- | --- | --- |\n"
        );
        for key in *keys {
            match doc(section, key) {
                Some(d) => {
                    let _ = writeln!(
                        out,
                        "| `{}` | {} | {} | {} | {} |",
                        d.key,
                        d.kind.replace('|', "\\|"),
                        cell(d.default),
                        cell(d.strongswan),
                        d.about.replace('|', "\\|")
                    );
                }
                None => {
                    let _ = writeln!(out, "| `{key}` | UNDOCUMENTED | | | |");
                }
            }
        }
    }
    out
}

/// Code-formats values that are TOML (quoted strings, lists, numbers, bools).
fn cell(text: &str) -> String {
    let toml_like = text.starts_with('"')
        || text.starts_with('[')
        || text.parse::<f64>().is_ok()
        || text == "true"
        || text == "false";
    if toml_like {
        format!("`{text}`")
    } else {
        text.to_string()
    }
}
