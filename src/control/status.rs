//! Status types: the JSON of `ipsecgw status --json` (interface.md) and of the `bgp` command.
//! Plain pub fields so the daemon fills them straight from the IKE engine, the data plane
//! counters and the BGP speaker. Fields beyond interface.md have serde defaults, so older or
//! partial documents still parse.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::prefix::IpPrefix;

pub use crate::bgp::BgpState;
pub use crate::ike::{ChildState, ConnState};

/// The `schema` of `status --json` (docs/schema/status-v1.json). Bumped when a field is
/// removed or changes meaning; new optional fields keep the version.
pub const STATUS_SCHEMA: &str = "ipsecgw/status/v1";
/// The `schema` of `bgp --json` (docs/schema/bgp-v1.json).
pub const BGP_SCHEMA: &str = "ipsecgw/bgp/v1";

fn status_schema() -> String {
    STATUS_SCHEMA.into()
}

fn bgp_schema() -> String {
    BGP_SCHEMA.into()
}

/// The whole status document: every configured connection, up or down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Which document this is, with its version (`STATUS_SCHEMA`).
    #[serde(default = "status_schema")]
    pub schema: String,
    pub connections: Vec<ConnectionStatus>,
    /// Packets dropped before they could be tied to a connection (malformed IKE, unknown
    /// SPIs, failed integrity on IKE messages, ...), by reason. Each bad input is counted.
    #[serde(default)]
    pub drops: BTreeMap<String, u64>,
    /// What unauthenticated IKE traffic made the engine do (or refuse), for all connections.
    #[serde(default)]
    pub ike_engine: IkeEngineReport,
}

/// The IKE engine's attack-relevant counters (totals since start) and its half-open gauge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeEngineReport {
    /// Responder IKE SAs now waiting for IKE_AUTH.
    #[serde(default)]
    pub half_open: u64,
    /// IKE_SA_INITs dropped at the half-open caps (in all or per address), before any DH.
    #[serde(default)]
    pub half_open_dropped: u64,
    /// IKE_SA_INITs answered with a COOKIE instead of DH work.
    #[serde(default)]
    pub cookies_sent: u64,
    /// Of those, sent by the IKE socket readers: requests the engine never saw.
    #[serde(default)]
    pub cookies_sent_by_gate: u64,
    /// IKE_SA_INITs answered with INVALID_KE_PAYLOAD.
    #[serde(default)]
    pub invalid_ke_sent: u64,
    /// Retransmitted requests answered from the response cache.
    #[serde(default)]
    pub responses_resent: u64,
    /// Messages for an IKE SA we do not have.
    #[serde(default)]
    pub unknown_spi: u64,
    /// Of those, requests answered with INVALID_IKE_SPI.
    #[serde(default)]
    pub invalid_spi_sent: u64,
    /// Of those, requests left unanswered because the answer rate was used up.
    #[serde(default)]
    pub invalid_spi_limited: u64,
    /// CHILD SAs whose narrowed selectors exceeded the per-child bound.
    #[serde(default)]
    pub ts_over_limit: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionStatus {
    pub name: String,
    #[serde(with = "conn_state_name")]
    pub state: ConnState,
    /// The configured peer ("192.0.2.2:500"; absent for a `%any` responder), so a connection
    /// that is still trying says whom it is trying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The current IKE SA, if any.
    pub ike: Option<IkeSaStatus>,
    pub children: Vec<ChildSaStatus>,
    /// Present when the connection has a `[connection.bgp]` section.
    pub bgp: Option<BgpSummary>,
    /// Totals that keep counting across rekeys and reconnects.
    #[serde(default)]
    pub counters: ConnCounters,
    /// Our IKE request waiting for an answer (while connecting: the step it is at).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlightReport>,
    /// Seconds until the connection is initiated again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_secs: Option<u64>,
    /// Why the last attempt failed (cleared once the connection is established).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastErrorReport>,
}

/// An IKE request of ours in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlightReport {
    /// "IKE_SA_INIT", "IKE_AUTH", "INFORMATIONAL (DPD)", ...
    pub exchange: String,
    pub retransmits: u32,
    pub next_retransmit_secs: u64,
}

/// The last failure of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastErrorReport {
    /// "peer_not_responding", "authentication_failed", "no_proposal_chosen",
    /// "ts_unacceptable", "peer_error", "protocol_error", "key_exchange_failed".
    pub kind: String,
    pub message: String,
    pub secs_ago: u64,
}

impl ConnectionStatus {
    /// A configured connection with no SA (what the daemon reports before the first attempt).
    pub fn down(name: impl Into<String>) -> ConnectionStatus {
        ConnectionStatus {
            name: name.into(),
            state: ConnState::Down,
            peer: None,
            ike: None,
            children: Vec::new(),
            bgp: None,
            counters: ConnCounters::default(),
            in_flight: None,
            next_attempt_secs: None,
            last_error: None,
        }
    }
}

/// Enums of other modules in the document by their `as_str` names ("established",
/// "open_sent", ...), so the one type serves the core, the tables and the JSON.
macro_rules! by_name {
    ($module:ident, $ty:ty, $all:expr, $name:expr) => {
        pub mod $module {
            use serde::{Deserialize, Deserializer, Serializer};

            pub fn name(s: $ty) -> &'static str {
                ($name)(s)
            }

            pub fn serialize<S: Serializer>(s: &$ty, ser: S) -> Result<S::Ok, S::Error> {
                ser.serialize_str(name(*s))
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                let text = String::deserialize(d)?;
                $all.into_iter().find(|s| name(*s) == text).ok_or_else(|| {
                    serde::de::Error::custom(format!("unknown {} \"{text}\"", stringify!($module)))
                })
            }
        }
    };
}

by_name!(
    conn_state_name,
    crate::ike::ConnState,
    crate::ike::ConnState::ALL,
    crate::ike::ConnState::as_str
);
by_name!(
    child_state_name,
    crate::ike::ChildState,
    crate::ike::ChildState::ALL,
    crate::ike::ChildState::as_str
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IkeSaStatus {
    /// Initiator SPI, 16 hex digits.
    pub spi_i: String,
    /// Responder SPI, 16 hex digits.
    pub spi_r: String,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Algorithm names as strongSwan prints them ("AES_CBC_256"); see crate::crypto `name()`.
    pub encr: String,
    /// None for AEAD ciphers.
    #[serde(default)]
    pub integ: Option<String>,
    pub prf: String,
    pub dh: String,
    pub nat_detected: bool,
    pub established_secs: u64,
    pub rekey_in_secs: u64,
    /// True if this gateway initiated the SA.
    #[serde(default)]
    pub initiator: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// IKE fragmentation (RFC 7383) on this SA.
    #[serde(default)]
    pub fragmentation: FragmentationReport,
}

/// IKE fragmentation on one IKE SA: negotiated or not, fragments sent and received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentationReport {
    pub negotiated: bool,
    pub fragments_sent: u64,
    pub fragments_received: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildSaStatus {
    pub name: String,
    #[serde(with = "child_state_name")]
    pub state: ChildState,
    /// Inbound ESP SPI, 8 hex digits.
    pub spi_in: String,
    /// Outbound ESP SPI, 8 hex digits.
    pub spi_out: String,
    pub encr: String,
    /// None for AEAD ciphers.
    #[serde(default)]
    pub integ: Option<String>,
    pub encap: EspEncap,
    /// Counters of this SA pair (they reset on rekey; see `ConnCounters` for totals).
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub replay_drops: u64,
    pub auth_failures: u64,
    #[serde(default)]
    pub local_ts: Vec<String>,
    #[serde(default)]
    pub remote_ts: Vec<String>,
    /// PFS group used when the SA was created/rekeyed, if any ("MODP_1024").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dh: Option<String>,
    #[serde(default)]
    pub esn: bool,
    #[serde(default)]
    pub established_secs: u64,
    #[serde(default)]
    pub rekey_in_secs: u64,
}

/// How ESP packets travel: raw IP protocol 50, or inside UDP 4500 (NAT-T).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EspEncap {
    None,
    Udp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgpSummary {
    #[serde(with = "bgp_state_name")]
    pub state: BgpState,
    pub prefixes_received: u64,
    pub prefixes_announced: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<IpAddr>,
    #[serde(default)]
    pub local_as: u32,
    #[serde(default)]
    pub peer_as: u32,
    /// Seconds in Established, when established.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_secs: Option<u64>,
    /// Last NOTIFICATION or connection error, for "why is it down".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

fn bgp_name(s: crate::bgp::BgpState) -> &'static str {
    use crate::bgp::BgpState;
    match s {
        BgpState::Idle => "idle",
        BgpState::Connect => "connect",
        BgpState::Active => "active",
        BgpState::OpenSent => "open_sent",
        BgpState::OpenConfirm => "open_confirm",
        BgpState::Established => "established",
    }
}

// RFC 4271 8.2.2 session states.
by_name!(
    bgp_state_name,
    crate::bgp::BgpState,
    [
        crate::bgp::BgpState::Idle,
        crate::bgp::BgpState::Connect,
        crate::bgp::BgpState::Active,
        crate::bgp::BgpState::OpenSent,
        crate::bgp::BgpState::OpenConfirm,
        crate::bgp::BgpState::Established,
    ],
    super::bgp_name
);

/// Per-connection totals that survive rekeys (the data plane adds each SA's counts on retire).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnCounters {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    /// Dropped packets by reason ("replay", "auth", "no_sa", "malformed", "no_route", ...).
    #[serde(default)]
    pub drops: BTreeMap<String, u64>,
    #[serde(default)]
    pub ike_rekeys: u64,
    #[serde(default)]
    pub child_rekeys: u64,
    #[serde(default)]
    pub dpd_failures: u64,
}

impl Default for StatusReport {
    fn default() -> StatusReport {
        StatusReport {
            schema: status_schema(),
            connections: vec![],
            drops: BTreeMap::new(),
            ike_engine: IkeEngineReport::default(),
        }
    }
}

/// Result of the `bgp` command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BgpReport {
    /// Which document this is, with its version (`BGP_SCHEMA`).
    #[serde(default = "bgp_schema")]
    pub schema: String,
    pub routes: Vec<RibRow>,
}

impl BgpReport {
    pub fn new(routes: Vec<RibRow>) -> BgpReport {
        BgpReport {
            schema: bgp_schema(),
            routes,
        }
    }
}

impl Default for BgpReport {
    fn default() -> BgpReport {
        BgpReport::new(vec![])
    }
}

/// One route of the RIB: received from the peer (Adj-RIB-In after policy) or announced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RibRow {
    pub connection: String,
    #[serde(with = "prefix_as_string")]
    pub prefix: IpPrefix,
    pub next_hop: IpAddr,
    pub as_path: Vec<u32>,
    pub local_pref: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
    /// Selected and installed in the kernel.
    pub best: bool,
    pub direction: RouteDirection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteDirection {
    Received,
    Announced,
}

/// IpPrefix travels as "10.2.30.0/25".
mod prefix_as_string {
    use super::IpPrefix;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(prefix: &IpPrefix, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(prefix)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpPrefix, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document of interface.md parses into these types and serializes back with the
    /// same fields.
    #[test]
    fn interface_md_example_round_trips() {
        let doc = r#"{"connections": [{
  "name": "azure", "state": "established",
  "ike": {"spi_i": "3f1c", "spi_r": "9a0b", "local": "192.0.2.1:4500", "remote": "192.0.2.2:4500",
          "encr": "AES_CBC_256", "integ": "HMAC_SHA1_96", "prf": "PRF_HMAC_SHA1", "dh": "MODP_1024",
          "nat_detected": true, "established_secs": 42, "rekey_in_secs": 14000},
  "children": [{"name": "vti", "state": "installed", "spi_in": "c4861113", "spi_out": "976df49d",
                "encr": "AES_CBC_256", "integ": "HMAC_SHA1_96", "encap": "udp",
                "bytes_in": 0, "bytes_out": 0, "packets_in": 0, "packets_out": 0,
                "replay_drops": 0, "auth_failures": 0}],
  "bgp": {"state": "established", "prefixes_received": 1, "prefixes_announced": 1}
}]}"#;
        let report: StatusReport = serde_json::from_str(doc).unwrap();
        let c = &report.connections[0];
        assert_eq!(c.state, ConnState::Established);
        assert_eq!(
            c.ike.as_ref().unwrap().local,
            "192.0.2.1:4500".parse().unwrap()
        );
        assert_eq!(c.children[0].encap, EspEncap::Udp);
        assert_eq!(c.bgp.as_ref().unwrap().state, BgpState::Established);

        let out: serde_json::Value = serde_json::to_value(&report).unwrap();
        let original: serde_json::Value = serde_json::from_str(doc).unwrap();
        // Every field of the documented shape is present with the same value.
        fn subset(small: &serde_json::Value, big: &serde_json::Value) -> bool {
            match (small, big) {
                (serde_json::Value::Object(a), serde_json::Value::Object(b)) => a
                    .iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| subset(v, w))),
                (serde_json::Value::Array(a), serde_json::Value::Array(b)) => {
                    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| subset(x, y))
                }
                _ => small == big,
            }
        }
        assert!(subset(&original, &out), "{out}");
        assert_eq!(serde_json::from_value::<StatusReport>(out).unwrap(), report);
    }

    #[test]
    fn rib_row_json() {
        let row = RibRow {
            connection: "azure".into(),
            prefix: "10.10.0.0/16".parse().unwrap(),
            next_hop: "10.10.30.254".parse().unwrap(),
            as_path: vec![65515],
            local_pref: 200,
            med: None,
            best: true,
            direction: RouteDirection::Received,
        };
        let json = serde_json::to_string(&row).unwrap();
        assert!(json.contains(r#""prefix":"10.10.0.0/16""#), "{json}");
        assert_eq!(serde_json::from_str::<RibRow>(&json).unwrap(), row);
        assert!(
            serde_json::from_str::<RibRow>(&json.replace("10.10.0.0/16", "10.10.0.1/16")).is_err()
        );
    }
}
