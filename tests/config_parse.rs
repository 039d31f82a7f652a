//! Config parsing and validation: the interface.md example, and that every error names the
//! right `file:line:`.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ipsecgw::config::{self, ConfigError, DpdAction, Encap, LogLevel, StartAction};
use ipsecgw::crypto::{DhGroup, EncrAlg, IntegAlg};
use ipsecgw::ike::Identity;

/// A fresh directory under the system temp dir (removed on drop).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("ipsecgw-config-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, content: &str, mode: u32) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The example of interface.md, with the PSK path pointed at `psk_path`.
fn interface_example(psk_path: &str) -> String {
    format!(
        r#"[global]
control_socket = "/run/ipsecgw/control.sock"
log_level = "info"                      # error|warn|info|debug|trace
# metrics_listen = "127.0.0.1:9813"     # Prometheus text format, off unless set

[[connection]]
name = "azure"
local_addrs = ["66.198.12.106"]         # underlay address(es) to bind IKE/ESP on
remote_addrs = ["52.168.162.84"]        # peer; ["%any"] = accept from anywhere (responder only)
local_id = "66.198.12.106"              # IPv4/IPv6 address, FQDN, or user@fqdn
remote_id = "52.168.162.84"
psk_file = "{psk_path}"     # file holding the key (mode 0600); `psk = "..."` also accepted
ike_proposals = ["aes256-sha1-modp1024", "aes128-sha1-modp1024", "3des-sha1-modp1024"]
start_action = "start"                  # start (initiate at startup and keep up) | none (wait for the peer)
encap = "auto"                          # auto (UDP 4500 when NAT is detected) | always (force UDP encapsulation)
rekey_time = "4h"                       # IKE SA; jittered down by up to 10%
dpd_delay = "10s"                       # liveness check when nothing arrived for this long; "0s" = off
dpd_action = "restart"                  # restart | clear

[[connection.children]]
name = "vti"
local_ts = ["0.0.0.0/0"]                # route-based: 0/0 both sides (Cisco "tunnel mode ipsec ipv4")
remote_ts = ["0.0.0.0/0"]
esp_proposals = ["aes256-sha1"]         # add "-modp1024" etc. for PFS on rekey
rekey_time = "1h"
replay_window = 64

[connection.tunnel]                     # the TUN device that carries this connection's traffic
interface = "ipsec30"
address = "10.2.30.125/32"
mtu = 1400
routes = ["10.10.30.254/32"]            # static routes into the tunnel, installed via netlink

[connection.bgp]                        # optional: eBGP over the tunnel
local_as = 65021
peer_as = 65515
peer_address = "10.10.30.254"
local_address = "10.2.30.125"           # update-source
multihop = 5
hold_time = "30s"
networks = ["10.2.30.0/25"]             # announced
export = ["10.2.30.0/25"]               # prefix-list out (only these may leave)
import_local_pref = 200                 # route-map in: set local-preference
"#
    )
}

/// A minimal valid connection with an inline PSK; `extra` lines go into [[connection]].
fn minimal(extra: &str) -> String {
    format!(
        "[[connection]]\nname = \"a\"\nlocal_addrs = [\"192.0.2.1\"]\nremote_addrs = [\"192.0.2.2\"]\npsk = \"IamSecure123\"\n{extra}\n[[connection.children]]\nname = \"c\"\n"
    )
}

fn errors(text: &str) -> Vec<ConfigError> {
    match config::parse(text, "test.toml") {
        Ok(c) => panic!("expected errors, config was accepted: {c:?}"),
        Err(e) => e,
    }
}

/// Asserts that some error is on `line` and its message contains `needle`.
fn assert_error(errs: &[ConfigError], line: usize, needle: &str) {
    assert!(
        errs.iter()
            .any(|e| e.line == line && e.message.contains(needle)),
        "no error on line {line} containing {needle:?}; got:\n{}",
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn interface_example_parses() {
    let dir = TempDir::new();
    let psk = dir.write("azure.psk", "IamSecure123\n", 0o600);
    let cfg_path = dir.write(
        "ipsecgw.toml",
        &interface_example(psk.to_str().unwrap()),
        0o644,
    );
    let cfg = config::load(&cfg_path).unwrap_or_else(|e| panic!("{e:?}"));

    assert_eq!(cfg.path, cfg_path);
    assert_eq!(
        cfg.global.control_socket,
        PathBuf::from("/run/ipsecgw/control.sock")
    );
    assert_eq!(cfg.global.log_level, LogLevel::Info);
    assert_eq!(cfg.global.metrics_listen, None);
    assert_eq!(cfg.global.retransmit_timeout, Duration::from_secs(4));
    assert_eq!(cfg.global.cookie_threshold, 10);
    assert_eq!(cfg.connections.len(), 1);

    let c = &cfg.connections[0];
    assert_eq!(c.name, "azure");
    assert_eq!(
        c.local_addrs,
        vec!["66.198.12.106".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        c.remote_addrs,
        vec!["52.168.162.84".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(c.local_id, Identity::Addr("66.198.12.106".parse().unwrap()));
    assert_eq!(
        c.remote_id,
        Some(Identity::Addr("52.168.162.84".parse().unwrap()))
    );
    assert_eq!(c.psk.as_bytes(), b"IamSecure123");
    assert_eq!(c.ike_proposals.len(), 3);
    assert_eq!(c.ike_proposals[0].encr, vec![EncrAlg::AesCbc256]);
    assert_eq!(c.ike_proposals[2].encr, vec![EncrAlg::TripleDesCbc]);
    assert_eq!(c.ike_proposals[0].integ, vec![IntegAlg::HmacSha1_96]);
    assert_eq!(c.ike_proposals[0].dh, vec![DhGroup::Modp1024]);
    assert_eq!(c.start_action, StartAction::Start);
    assert_eq!(c.encap, Encap::Auto);
    assert_eq!(c.rekey_time, Duration::from_secs(4 * 3600));
    assert_eq!(c.dpd_delay, Some(Duration::from_secs(10)));
    assert_eq!(c.dpd_action, DpdAction::Restart);
    assert_eq!((c.local_port, c.remote_port), (500, 500));

    assert_eq!(c.children.len(), 1);
    let child = &c.children[0];
    assert_eq!(child.name, "vti");
    assert_eq!(child.local_ts, vec!["0.0.0.0/0".parse().unwrap()]);
    assert_eq!(child.esp_proposals[0].encr, vec![EncrAlg::AesCbc256]);
    assert_eq!(child.esp_proposals[0].integ, vec![IntegAlg::HmacSha1_96]);
    assert_eq!(child.rekey_time, Duration::from_secs(3600));
    assert_eq!(child.replay_window, 64);

    let t = c.tunnel.as_ref().expect("tunnel");
    assert_eq!(t.interface, "ipsec30");
    assert_eq!(t.address, "10.2.30.125".parse::<IpAddr>().unwrap());
    assert_eq!(t.prefix_len, 32);
    assert_eq!(t.mtu, 1400);
    assert_eq!(t.routes, vec!["10.10.30.254/32".parse().unwrap()]);

    let b = c.bgp.as_ref().expect("bgp");
    assert_eq!((b.local_as, b.peer_as), (65021, 65515));
    assert_eq!(b.peer_address, "10.10.30.254".parse::<IpAddr>().unwrap());
    assert_eq!(b.local_address, "10.2.30.125".parse::<IpAddr>().unwrap());
    assert_eq!(b.multihop, 5);
    assert_eq!(b.hold_time, Duration::from_secs(30));
    assert_eq!(b.connect_retry, Duration::from_secs(5));
    assert!(!b.passive);
    assert_eq!(b.networks, vec!["10.2.30.0/25".parse().unwrap()]);
    assert_eq!(b.export.len(), 1);
    assert!(b.export[0].matches(&"10.2.30.0/25".parse().unwrap()));
    assert_eq!(b.import_local_pref, 200);
    assert_eq!(b.max_prefixes, 1000);
    assert_eq!(
        b.router_id,
        "10.2.30.125".parse::<std::net::Ipv4Addr>().unwrap()
    );
    assert_eq!(b.port, 179);
    // The example has no `import`: RFC 8212 accepts nothing, and says so.
    assert_eq!(b.import, None);
    assert_eq!(
        b.protected,
        vec![
            "66.198.12.106".parse::<IpAddr>().unwrap(),
            "52.168.162.84".parse().unwrap()
        ]
    );
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    let w = cfg.warnings[0].to_string();
    let line = format!("{}:34: warning: [connection.bgp] has no `import` prefix-list, so no route from AS65515 will be accepted (RFC 8212)", cfg_path.display());
    assert!(w.starts_with(&line), "{w}");

    // Reload comparison relies on PartialEq; parsing twice gives equal connections.
    let again = config::load(&cfg_path).unwrap();
    assert_eq!(again.connections[0], cfg.connections[0]);
}

#[test]
fn defaults_apply() {
    let cfg = config::parse(&minimal(""), "/etc/ipsecgw/x.toml").unwrap();
    let c = &cfg.connections[0];
    assert_eq!(c.local_id, Identity::Addr("192.0.2.1".parse().unwrap()));
    assert_eq!(
        c.remote_id,
        Some(Identity::Addr("192.0.2.2".parse().unwrap()))
    );
    assert_eq!(c.ike_proposals.len(), 2);
    assert_eq!(
        c.ike_proposals[0].to_string(),
        ipsecgw::crypto::proposal::parse_ike("aes256-sha256-modp2048")
            .unwrap()
            .to_string()
    );
    assert_eq!(c.children[0].esp_proposals.len(), 1);
    assert_eq!(c.children[0].remote_ts, vec!["0.0.0.0/0".parse().unwrap()]);
    assert_eq!(c.children[0].replay_window, 64);
    assert_eq!(c.rekey_time, Duration::from_secs(4 * 3600));
    assert_eq!(c.tunnel, None);
    assert_eq!(c.bgp, None);
    assert_eq!(
        cfg.global.control_socket,
        PathBuf::from(config::DEFAULT_CONTROL_SOCKET)
    );
}

#[test]
fn psk_never_in_debug() {
    let cfg = config::parse(&minimal(""), "x.toml").unwrap();
    let dump = format!("{cfg:?}");
    assert!(
        !dump.contains("IamSecure123"),
        "PSK leaked into Debug output"
    );
    assert!(dump.contains("redacted"));
}

#[test]
fn hex_psk_and_dpd_off() {
    let text =
        minimal("dpd_delay = \"0s\"").replace("\"IamSecure123\"", "\"0x00112233445566778899\"");
    let cfg = config::parse(&text, "x.toml").unwrap();
    assert_eq!(
        cfg.connections[0].psk.as_bytes(),
        &[0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99]
    );
    assert_eq!(cfg.connections[0].dpd_delay, None);
}

#[test]
fn unknown_keys_suggest_at_every_level() {
    let text = r#"[global]
log_levle = "info"

[[connection]]
name = "a"
local_addrs = ["192.0.2.1"]
remote_addrs = ["192.0.2.2"]
psk = "IamSecure123"
mtu = 1400

[[connection.children]]
name = "c"
esp_proposal = ["aes256-sha1"]

[connection.tunnel]
interface = "ipsec0"
address = "10.0.0.1/30"
rotues = ["10.9.0.0/16"]
"#;
    let errs = errors(text);
    assert_error(
        &errs,
        2,
        "unknown key `log_levle` in [global] (did you mean `log_level`?)",
    );
    assert_error(
        &errs,
        9,
        "unknown key `mtu` in [[connection]] (it belongs in [connection.tunnel])",
    );
    assert_error(&errs, 13, "did you mean `esp_proposals`?");
    assert_error(&errs, 18, "did you mean `routes`?");
    assert_eq!(errs.len(), 4, "{errs:?}");
}

#[test]
fn display_is_file_line_message() {
    let errs = errors(&format!("[global]\nlog_level = \"loud\"\n{}", minimal("")));
    assert_eq!(errs.len(), 1, "{errs:?}");
    let text = errs[0].to_string();
    assert!(
        text.starts_with("test.toml:2: `log_level` = \"loud\" is not one of"),
        "{text}"
    );

    let errs = errors(&format!("[globl]\nlog_level = \"info\"\n{}", minimal("")));
    assert_error(
        &errs,
        1,
        "unknown key `globl` in the top level (did you mean `global`?)",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");

    // Errors come out in file order.
    let errs = errors("[global]\nlog_level = \"loud\"\nlog_levle = 1\n");
    let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![1, 2, 3], "{errs:?}");
}

#[test]
fn bad_durations() {
    let text = minimal("rekey_time = 3600\ndpd_delay = \"10sec\"");
    let errs = errors(&text);
    // minimal(): extra lines start at line 6
    assert_error(&errs, 6, "write rekey_time = \"3600s\"");
    assert_error(&errs, 7, "unknown unit \"sec\"");
    let errs = errors(&minimal("rekey_time = \"90\""));
    assert_error(&errs, 6, "has no unit");
}

#[test]
fn unknown_algorithm_is_named() {
    let errs = errors(&minimal(
        "ike_proposals = [\"aes256-sha1-modp1024\", \"aes256-md4-modp1024\"]",
    ));
    assert_error(&errs, 6, "md4");
    assert_eq!(errs.len(), 1);
}

#[test]
fn weak_algorithms_only_by_name_and_with_a_warning() {
    // The defaults offer nothing weak, so they warn about nothing.
    let cfg = config::parse(&minimal(""), "x.toml").unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let c = &cfg.connections[0];
    let weak = |w: Vec<&str>| w.is_empty();
    assert!(c.ike_proposals.iter().all(|p| weak(p.weak_algorithms())));
    assert!(c.children[0]
        .esp_proposals
        .iter()
        .all(|p| weak(p.weak_algorithms())));
    // Written by name: accepted, one warning per list naming each weak algorithm once.
    let text = minimal("ike_proposals = [\"aes128-md5-prfmd5-modp768\", \"aes256-sha1-modp768\"]")
        + "esp_proposals = [\"null-sha256\", \"aes128-sha1\"]\n";
    let cfg = config::parse(&text, "x.toml").unwrap_or_else(|e| panic!("{e:?}"));
    let w: Vec<String> = cfg.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].starts_with(
            "x.toml:6: warning: `ike_proposals` offers weak algorithms (md5, prfmd5, modp768)"
        ),
        "{w:?}"
    );
    assert!(
        w[1].starts_with("x.toml:9: warning: `esp_proposals` offers weak algorithms (null)"),
        "{w:?}"
    );
    // ESP NULL encryption is an ESP-only keyword.
    let errs = errors(&minimal("ike_proposals = [\"null-sha256-modp2048\"]"));
    assert_error(&errs, 6, "NULL encryption is for ESP proposals only");
}

#[test]
fn insecure_psk_file_refused_then_accepted_with_override() {
    let dir = TempDir::new();
    let psk = dir.write("open.psk", "IamSecure123\n", 0o644);
    let text = minimal("").replace(
        "psk = \"IamSecure123\"",
        &format!("psk_file = \"{}\"", psk.display()),
    );
    let errs = errors(&text);
    assert_error(&errs, 5, "readable by group/others (mode 0644)");
    assert!(!errs.iter().any(|e| e.message.contains("IamSecure123")));

    let accepted = text.replace("psk_file =", "psk_file_insecure = true\npsk_file =");
    let cfg = config::parse(&accepted, "x.toml").unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(cfg.connections[0].psk.as_bytes(), b"IamSecure123");
}

#[test]
fn relative_psk_file_is_resolved_against_the_config_dir() {
    let dir = TempDir::new();
    dir.write("k.psk", "0x0011223344556677", 0o600);
    let text = minimal("").replace("psk = \"IamSecure123\"", "psk_file = \"k.psk\"");
    let cfg_path = dir.write("gw.toml", &text, 0o644);
    let cfg = config::load(&cfg_path).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        cfg.connections[0].psk.as_bytes(),
        &[0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]
    );
}

#[test]
fn psk_problems() {
    let errs = errors(&minimal("").replace("IamSecure123", "short"));
    assert_error(&errs, 5, "at least 8");
    assert!(!errs[0].message.contains("short"), "PSK echoed in error");
    let errs = errors(&minimal("psk_file = \"/nonexistent/x.psk\""));
    assert_error(&errs, 6, "not both");
    let errs = errors(&minimal("").replace("psk = \"IamSecure123\"\n", ""));
    assert_error(&errs, 1, "missing `psk_file` (or `psk`)");
}

#[test]
fn missing_required_fields_point_at_the_header() {
    let text = "[global]\nlog_level = \"info\"\n\n[[connection]]\npsk = \"IamSecure123\"\n\n[[connection.children]]\nlocal_ts = [\"10.0.0.0/8\"]\n";
    let errs = errors(text);
    assert_error(&errs, 4, "missing required key `name` in [[connection]]");
    // local_addrs may be left out (%any), but then there is no address to be our ID
    assert_error(&errs, 4, "needs `local_id` when `local_addrs` is %any");
    assert_error(&errs, 4, "missing required key `remote_addrs`");
    assert_error(
        &errs,
        7,
        "missing required key `name` in [[connection.children]]",
    );
    assert_eq!(errs.len(), 4, "{errs:?}");

    assert_error(&errors("[global]\n"), 1, "no [[connection]] defined");
    let no_child = "[[connection]]\nname = \"a\"\nlocal_addrs = [\"192.0.2.1\"]\nremote_addrs = [\"192.0.2.2\"]\npsk = \"IamSecure123\"\n";
    assert_error(&errors(no_child), 1, "at least one [[connection.children]]");
}

#[test]
fn many_errors_reported_together() {
    let text = r#"[global]
log_level = "verbose"
metrics_listen = "localhost"

[[connection]]
name = "bad name"
local_addrs = ["192.0.2.300"]
remote_addrs = ["%any"]
psk = "IamSecure123"
start_action = "start"
encap = "sometimes"

[[connection.children]]
name = "c"
local_ts = ["10.0.0.1/8"]
replay_window = 16

[connection.tunnel]
interface = "this-name-is-way-too-long"
address = "10.0.0.1/30"
mtu = 100
"#;
    let errs = errors(text);
    assert_error(&errs, 2, "is not one of error, warn, info, debug, trace");
    assert_error(&errs, 3, "not an address:port");
    assert_error(&errs, 6, "may only contain");
    assert_error(&errs, 7, "not an IP address");
    assert_error(&errs, 10, "start_action = \"none\"");
    assert_error(&errs, 11, "is not one of auto, always");
    assert_error(&errs, 15, "host bits set");
    assert_error(&errs, 16, "use 0 (off) or 32..=4096");
    assert_error(&errs, 19, "1 to 15 characters");
    assert_error(&errs, 21, "out of range (576..=9000)");
    assert_eq!(errs.len(), 10, "{errs:#?}");
}

#[test]
fn any_remote_as_responder() {
    let text = minimal("start_action = \"none\"").replace("[\"192.0.2.2\"]", "[\"%any\"]");
    let cfg = config::parse(&text, "x.toml").unwrap_or_else(|e| panic!("{e:?}"));
    assert!(cfg.connections[0].accepts_any_remote());
    assert_eq!(cfg.connections[0].remote_id, None);
}

#[test]
fn duplicate_names() {
    let one = minimal("");
    let text = format!("{one}\n{one}");
    let errs = errors(&text);
    // minimal() is 8 lines; after a blank line the second copy's `name` is on line 11
    assert_error(
        &errs,
        11,
        "duplicate connection name \"a\" (first defined on line 2)",
    );

    let errs = errors(&format!("{one}[[connection.children]]\nname = \"c\"\n"));
    assert_error(&errs, 10, "duplicate child name \"c\"");
}

#[test]
fn bgp_cross_checks() {
    let bgp_only = minimal("")
        + "[connection.bgp]\nlocal_as = 65001\npeer_as = 65002\npeer_address = \"10.0.0.2\"\n";
    assert_error(&errors(&bgp_only), 9, "needs a [connection.tunnel]");

    let base = minimal("")
        + "[connection.tunnel]\ninterface = \"ipsec0\"\naddress = \"10.0.0.1/30\"\n[connection.bgp]\n";
    // line 13 is the first line after [connection.bgp]
    let ok = base.clone() + "local_as = 65001\npeer_as = 65002\npeer_address = \"10.0.0.2\"\nnetworks = [\"10.1.0.0/16\"]\n";
    let cfg = config::parse(&ok, "x.toml").unwrap_or_else(|e| panic!("{e:?}"));
    let b = cfg.connections[0].bgp.as_ref().unwrap();
    assert_eq!(b.local_address, "10.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(b.multihop, 1);
    assert_eq!(b.export.len(), 1, "export defaults to the networks");

    let bad = base
        + "local_as = 0\npeer_as = 23456\npeer_address = \"10.9.9.9\"\nlocal_address = \"10.0.0.5\"\nhold_time = \"2s\"\nnetworks = [\"10.1.0.0/16\"]\nexport = [\"10.2.0.0/16 le 24\"]\n";
    let errs = errors(&bad);
    assert_error(&errs, 13, "`local_as` = 0 is out of range");
    assert_error(&errs, 14, "AS_TRANS");
    assert_error(&errs, 15, "not reachable through tunnel ipsec0");
    assert_error(&errs, 16, "neither the tunnel address");
    assert_error(&errs, 17, "at least 3s");
    assert!(
        !errs.iter().any(|e| e.message.contains("export")),
        "a network filtered by the export prefix-list is legal: {errs:?}"
    );
}

#[test]
fn bgp_import_prefix_list() {
    let base = minimal("")
        + "[connection.tunnel]\ninterface = \"ipsec0\"\naddress = \"10.0.0.1/30\"\n[connection.bgp]\nlocal_as = 65001\npeer_as = 65002\npeer_address = \"10.0.0.2\"\n";
    // Same syntax as export; with it there is nothing to warn about.
    let ok = base.clone() + "import = [\"10.2.0.0/16 le 24\", \"192.168.7.0/24\"]\n";
    let cfg = config::parse(&ok, "x.toml").unwrap_or_else(|e| panic!("{e:?}"));
    let b = cfg.connections[0].bgp.as_ref().unwrap();
    let import = b.import.as_ref().expect("import");
    assert_eq!(import.len(), 2);
    assert!(import[0].matches(&"10.2.9.0/24".parse().unwrap()));
    assert!(!import[0].matches(&"10.2.9.0/25".parse().unwrap()));
    assert!(import[1].matches(&"192.168.7.0/24".parse().unwrap()));
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    // Our underlay and the IKE peer are protected from learned routes.
    assert_eq!(
        b.protected,
        vec![
            "192.0.2.1".parse::<IpAddr>().unwrap(),
            "192.0.2.2".parse().unwrap()
        ]
    );
    // An explicitly empty list is a choice (accept nothing), not an oversight.
    let empty = config::parse(&(base.clone() + "import = []\n"), "x.toml").unwrap();
    assert_eq!(
        empty.connections[0].bgp.as_ref().unwrap().import,
        Some(vec![])
    );
    assert!(empty.warnings.is_empty());
    // Without it: accepted, with a warning at the section header (line 12).
    let none = config::parse(&base, "x.toml").unwrap();
    assert_eq!(none.connections[0].bgp.as_ref().unwrap().import, None);
    assert_eq!(none.warnings.len(), 1);
    assert_eq!(none.warnings[0].0.line, 12);
    assert!(none.warnings[0].to_string().starts_with(
        "x.toml:12: warning: [connection.bgp] has no `import` prefix-list, so no route from AS65002 will be accepted (RFC 8212)"
    ));
    // Entries are checked like export's, at their line.
    let bad = base + "import = [\"10.2.0.0/16 lt 24\"]\n";
    assert_error(
        &errors(&bad),
        16,
        "`import`: '10.2.0.0/16 lt 24': expected 'ge' or 'le', found 'lt'",
    );
}

#[test]
fn check_prints_warnings_and_still_succeeds() {
    let dir = TempDir::new();
    let psk = dir.write("azure.psk", "IamSecure123\n", 0o600);
    let path = dir.write(
        "ipsecgw.toml",
        &interface_example(psk.to_str().unwrap()),
        0o644,
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ipsecgw"))
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(&format!(
            "{}:34: warning: [connection.bgp] has no `import` prefix-list",
            path.display()
        )),
        "{text}"
    );
    assert_eq!(lines[1], format!("{}: OK, 1 connection(s)", path.display()));
}

#[test]
fn syntax_error_has_a_line() {
    let errs = errors("[global]\nlog_level = \"info\"\n\n[[connection]\nname = \"x\"\n");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].line, 4, "{errs:?}");
    assert!(errs[0].message.contains("TOML syntax error"));
}

#[test]
fn unreadable_file_is_reported() {
    let errs = config::load(std::path::Path::new("/nonexistent/ipsecgw.toml")).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0]
            .to_string()
            .starts_with("/nonexistent/ipsecgw.toml: cannot read config file"),
        "{}",
        errs[0]
    );
}

#[test]
fn reload_diff() {
    let conn = |name: &str, extra: &str| {
        minimal(extra).replace("name = \"a\"", &format!("name = \"{name}\""))
    };
    let old = config::parse(
        &format!(
            "{}\n{}\n{}",
            conn("keep", ""),
            conn("edit", ""),
            conn("gone", "")
        ),
        "x.toml",
    )
    .unwrap();
    let new = config::parse(
        &format!(
            "{}\n{}\n{}",
            conn("keep", ""),
            conn("edit", "dpd_delay = \"30s\""),
            conn("fresh", "")
        ),
        "x.toml",
    )
    .unwrap();
    let d = config::diff(&old, &new);
    assert_eq!(d.unchanged, vec!["keep"]);
    assert_eq!(d.changed, vec!["edit"]);
    assert_eq!(d.added, vec!["fresh"]);
    assert_eq!(d.removed, vec!["gone"]);
    assert!(!d.global_changed);

    // A changed PSK alone counts as a change.
    let rekeyed = config::parse(&old_text_with_psk("AnotherSecret1"), "x.toml").unwrap();
    let base = config::parse(&old_text_with_psk("IamSecure123"), "x.toml").unwrap();
    assert_eq!(config::diff(&base, &rekeyed).changed, vec!["a"]);
}

fn old_text_with_psk(psk: &str) -> String {
    minimal("").replace("IamSecure123", psk)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Hostile or mangled config text is a list of errors, never a panic, and every error
    /// points at a line of the file.
    #[test]
    fn mangled_config_text_never_panics(
        at in 0usize..4000,
        cut in 0usize..24,
        insert in "[\\PC\n\"\\[\\]=#0-9a-z./:%-]{0,12}",
    ) {
        let mut text = interface_example("unused").replace(
            "psk_file = \"unused\"",
            "psk = \"0x00112233445566778899\"",
        );
        proptest::prop_assert!(config::parse(&text, "/etc/ipsecgw/fuzz.toml").is_ok());
        let mut start = at % (text.len() + 1);
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + cut).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.replace_range(start..end, &insert);
        if let Err(errs) = config::parse(&text, "/etc/ipsecgw/fuzz.toml") {
            let lines = text.lines().count().max(1);
            for e in errs {
                proptest::prop_assert!(e.line <= lines, "{e} (file has {lines} lines)");
            }
        }
    }
}
