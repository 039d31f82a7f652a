//! Configuration: the TOML file of interface.md, validated into typed structs.
//!
//! `load`/`parse` collect *every* problem as `file:line: what is wrong` instead of stopping at
//! the first, so `ipsecgw check` shows an operator the whole list at once.
//!
//! Defaults chosen here (documented in one place so the daemon and docs agree):
//! - `ike_proposals`: `["aes256-sha256-modp2048", "aes256-sha1-modp1024"]` (strongSwan-like: a
//!   modern first choice, plus the group-2/SHA-1 suite that Azure/Cisco setups still use).
//! - `esp_proposals`: `["aes256-sha1"]`.
//! - `replay_window`: 64; allowed values are 0 (anti-replay off) or 32..=4096.
//! - `bgp.multihop`: 1 (plain eBGP TTL; a peer on the far tunnel address is one hop away since a
//!   TUN device does not decrement TTL). Azure needs `multihop = 5` as in its Cisco sample.
//! - `bgp.export`: when absent, exactly the `networks` entries (nothing learned is re-announced).
//! - `bgp.import`: when absent, no learned route is accepted (RFC 8212 default deny for eBGP,
//!   like BIRD and FRR), with a warning; routes covering an IKE peer or local underlay address
//!   are refused whatever `import` says.
//! - `bgp.local_address`: the tunnel address; `bgp.router_id`: local_address when IPv4.
//! - `dpd_delay = "0s"` turns DPD off (`Connection::dpd_delay == None`).
//! - `remote_addrs = ["%any"]` is stored as an empty list and requires `start_action = "none"`.
//! - relative `psk_file` paths are resolved against the config file's directory.

mod build;
pub mod duration;
pub mod listing;
mod reader;
pub mod reference;
mod tree;
mod values;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::proposal::{EspProposal, IkeProposal};
use crate::ike::Identity;
use crate::prefix::IpPrefix;

/// `[connection.bgp]`: an eBGP session across the tunnel, validated into exactly what the
/// session runs on. `import` None means the key was absent (RFC 8212: accept nothing, with a
/// warning); `protected` is not a key: it is the connection's local_addrs and remote_addrs.
pub use crate::bgp::BgpConfig as Bgp;
pub use crate::bgp::PrefixFilter;
/// `start_action` and `dpd_action` are the engine's own types: the config says exactly what
/// the engine does (start: initiate and keep up; restart: re-initiate after DPD declares the
/// peer dead, clear: drop the SAs and wait).
pub use crate::ike::{DpdAction, StartAction};
pub use duration::{format_duration, parse_duration, DurationError};
pub use values::ValueError;

/// Where the control socket lives unless `[global] control_socket` or `--socket` says otherwise.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/ipsecgw/control.sock";

/// One problem in the config file, shown as `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line of the offending key or value (of the table header for missing keys);
    /// 0 when the problem is not tied to a line.
    pub line: usize,
    pub message: String,
}

impl ConfigError {
    /// `file:line: ` (or `file: ` when not tied to a line, e.g. the file cannot be read).
    fn write_location(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: ", self.file)
        } else {
            write!(f, "{}:{}: ", self.file, self.line)
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_location(f)?;
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Legal, but probably not what was meant: `file:line: warning: message`. The place and text
/// are those of a [`ConfigError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning(pub ConfigError);

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write_location(f)?;
        write!(f, "warning: {}", self.0.message)
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub global: Global,
    pub connections: Vec<Connection>,
    /// The file it was loaded from (as given to `load`, or the `file_name` given to `parse`).
    pub path: PathBuf,
    /// What `check` points out besides errors, in file order.
    pub warnings: Vec<ConfigWarning>,
}

impl Config {
    pub fn connection(&self, name: &str) -> Option<&Connection> {
        self.connections.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    pub control_socket: PathBuf,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    /// Prometheus endpoint; metrics are off when None.
    pub metrics_listen: Option<SocketAddr>,
    /// First IKE retransmission timeout (strongSwan `retransmit_timeout`, default 4s).
    pub retransmit_timeout: Duration,
    /// Backoff base: try n waits `retransmit_timeout * retransmit_base^n` (default 1.8).
    pub retransmit_base: f64,
    /// Retransmissions before giving up (default 5).
    pub retransmit_tries: u32,
    /// Half-open IKE SAs above which a responder demands COOKIEs (default 10).
    pub cookie_threshold: u32,
    /// Half-open IKE SAs kept at most, in all (default 5000) and from one peer address
    /// (default 100); further IKE_SA_INITs are dropped and counted.
    pub half_open_max: u32,
    pub half_open_per_address_max: u32,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            log_level: LogLevel::Info,
            log_format: LogFormat::Text,
            metrics_listen: None,
            retransmit_timeout: Duration::from_secs(4),
            retransmit_base: 1.8,
            retransmit_tries: 5,
            cookie_threshold: 10,
            half_open_max: 5000,
            half_open_per_address_max: 100,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The tracing/EnvFilter directive ("info").
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// How log lines are written to stderr (`log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human text (coloured only on a terminal; journal-style under systemd).
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    /// UDP encapsulation (port 4500) only when NAT is detected.
    Auto,
    /// Always UDP-encapsulate (fake a NAT detection, RFC 7296 2.23).
    Always,
}

/// A pre-shared key. Never printed: Debug is redacted, the bytes are wiped on drop.
#[derive(Clone)]
pub struct Psk(Zeroizing<Vec<u8>>);

impl Psk {
    pub fn new(bytes: Vec<u8>) -> Self {
        Psk(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(<redacted>)")
    }
}

impl PartialEq for Psk {
    fn eq(&self, other: &Self) -> bool {
        // Length is not secret; the content compare is constant-time.
        self.0.len() == other.0.len() && bool::from(self.0.as_slice().ct_eq(other.0.as_slice()))
    }
}

impl Eq for Psk {}

/// One `[[connection]]`: an IKE SA to one peer plus its children, tunnel and BGP session.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub name: String,
    /// Underlay addresses to bind IKE/ESP on (at least one).
    pub local_addrs: Vec<IpAddr>,
    /// Peer addresses to initiate to; empty means `%any` (responder only).
    pub remote_addrs: Vec<IpAddr>,
    pub local_id: Identity,
    /// None: accept any peer identity (only possible with `remote_addrs = ["%any"]`).
    pub remote_id: Option<Identity>,
    pub psk: Psk,
    /// In order of preference.
    pub ike_proposals: Vec<IkeProposal>,
    pub start_action: StartAction,
    pub encap: Encap,
    /// IKE SA rekey interval (the daemon jitters it down by up to 10%).
    pub rekey_time: Duration,
    /// None: DPD off (`dpd_delay = "0s"`).
    pub dpd_delay: Option<Duration>,
    pub dpd_action: DpdAction,
    /// IKE port (500 unless testing); NAT-T floats to 4500 as usual.
    pub local_port: u16,
    pub remote_port: u16,
    /// IKE fragmentation (RFC 7383): `fragmentation` and `fragment_size`.
    pub fragmentation: crate::ike::FragmentConfig,
    /// At least one.
    pub children: Vec<Child>,
    pub tunnel: Option<Tunnel>,
    pub bgp: Option<Bgp>,
}

impl Connection {
    /// True for `remote_addrs = ["%any"]`.
    pub fn accepts_any_remote(&self) -> bool {
        self.remote_addrs.is_empty()
    }
}

/// One `[[connection.children]]`: a CHILD SA (pair of ESP SAs).
#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    pub name: String,
    pub local_ts: Vec<IpPrefix>,
    pub remote_ts: Vec<IpPrefix>,
    /// In order of preference; PFS group and ESN come from the proposal keywords.
    pub esp_proposals: Vec<EspProposal>,
    pub rekey_time: Duration,
    /// Anti-replay window in packets; 0 = off.
    pub replay_window: u32,
    /// rekey_bytes, life_bytes, rekey_packets, life_packets, rand_time.
    pub limits: crate::ike::ChildLimits,
}

/// `[connection.tunnel]`: the TUN device carrying this connection's traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    pub interface: String,
    /// Interface address; host bits are allowed ("10.2.30.125/32", "10.0.0.1/30").
    pub address: IpAddr,
    pub prefix_len: u8,
    pub mtu: u16,
    /// Static routes into the tunnel.
    pub routes: Vec<IpPrefix>,
}

impl Tunnel {
    /// The on-link prefix of the interface address ("10.0.0.1/30" -> 10.0.0.0/30).
    pub fn on_link_prefix(&self) -> IpPrefix {
        IpPrefix::new(self.address, self.prefix_len)
            .unwrap_or_else(|_| IpPrefix::host(self.address))
    }
}

/// What a SIGHUP reload changes, by connection name (in the new config's order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// In the new config only: bring up.
    pub added: Vec<String>,
    /// In the old config only: delete their SAs, routes and addresses.
    pub removed: Vec<String>,
    /// Present in both but different (any field, PSK included): restart them.
    pub changed: Vec<String>,
    /// Identical: keep their SAs untouched.
    pub unchanged: Vec<String>,
    /// `[global]` differs (control socket / metrics address need a restart to move).
    pub global_changed: bool,
}

/// Compares two configs for reload.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let mut d = ConfigDiff {
        global_changed: old.global != new.global,
        ..ConfigDiff::default()
    };
    for conn in &new.connections {
        match old.connection(&conn.name) {
            None => d.added.push(conn.name.clone()),
            Some(prev) if prev == conn => d.unchanged.push(conn.name.clone()),
            Some(_) => d.changed.push(conn.name.clone()),
        }
    }
    d.removed = old
        .connections
        .iter()
        .filter(|c| new.connection(&c.name).is_none())
        .map(|c| c.name.clone())
        .collect();
    d
}

/// Reads and validates a config file. PSK files are read (and their mode checked) too.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let file_name = path.display().to_string();
    // The text may hold an inline `psk`: wipe it when done.
    let text = std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| {
            vec![ConfigError {
                file: file_name.clone(),
                line: 0,
                message: format!("cannot read config file: {e}"),
            }]
        })?;
    let base_dir = path.parent().map(Path::to_path_buf);
    let mut config = build::build(&text, &file_name, base_dir.as_deref())?;
    config.path = path.to_path_buf();
    Ok(config)
}

/// Validates config text. `file_name` is used in error messages and as `Config::path`;
/// relative `psk_file` paths are resolved against its directory.
pub fn parse(text: &str, file_name: &str) -> Result<Config, Vec<ConfigError>> {
    let base_dir = Path::new(file_name)
        .parent()
        .filter(|p| !p.as_os_str().is_empty());
    build::build(text, file_name, base_dir)
}
