//! The status document of the running gateway: the engine's view of each connection
//! (rendered by `control::engine_view`), merged with the data plane's counters, the
//! connection totals that survive rekeys, and BGP.

use crate::config::Connection;
use crate::control::{engine_view, BgpSummary, ConnCounters, ConnectionStatus, IkeEngineReport};
use crate::dataplane::{DropCounters, SaCounters};
use crate::ike::{self, EngineStats};
use std::collections::{BTreeMap, HashMap};

/// What the daemon keeps about one connection, as the status needs it.
pub(super) struct ConnView<'a> {
    pub name: &'a str,
    pub cfg: &'a Connection,
    /// Installed CHILD SAs by inbound SPI.
    pub children: &'a HashMap<u32, String>,
    pub retired: &'a ConnCounters,
    pub bgp: Option<BgpSummary>,
}

/// One connection, up or down, with live and retired counters merged.
pub(super) fn connection(
    engine: Option<&ike::ConnStatus>,
    v: ConnView<'_>,
    counters: &[SaCounters],
) -> ConnectionStatus {
    let by_spi: HashMap<u32, &SaCounters> = counters.iter().map(|k| (k.spi_in, k)).collect();
    let mut cs = match engine {
        Some(e) => {
            let mut cs = engine_view::connection(e);
            cs.ike = e.ike.as_ref().map(|i| {
                engine_view::ike_sa(
                    i,
                    Some(v.cfg.local_id.to_string()),
                    v.cfg.remote_id.as_ref().map(|r| r.to_string()),
                )
            });
            for (out, ch) in cs.children.iter_mut().zip(&e.children) {
                if let Some(k) = by_spi.get(&ch.spi_in) {
                    out.bytes_in = k.bytes_in;
                    out.bytes_out = k.bytes_out;
                    out.packets_in = k.packets_in;
                    out.packets_out = k.packets_out;
                    out.replay_drops = k.replay_drops;
                    out.auth_failures = k.auth_failures;
                }
            }
            cs
        }
        None => ConnectionStatus::down(v.name),
    };
    let mut totals = v.retired.clone();
    for k in counters
        .iter()
        .filter(|k| v.children.contains_key(&k.spi_in))
    {
        add_counters(&mut totals, k);
    }
    cs.counters = totals;
    cs.bgp = v.bgp;
    cs.peer = cs.ike.as_ref().map(|i| i.remote.to_string()).or_else(|| {
        let port = v.cfg.remote_port;
        v.cfg
            .remote_addrs
            .first()
            .map(|a| std::net::SocketAddr::new(*a, port).to_string())
    });
    cs
}

/// Adds the counters of one SA pair to a connection's totals.
pub(super) fn add_counters(t: &mut ConnCounters, k: &SaCounters) {
    t.bytes_in += k.bytes_in;
    t.bytes_out += k.bytes_out;
    t.packets_in += k.packets_in;
    t.packets_out += k.packets_out;
    let named = [
        ("replay", k.replay_drops),
        ("auth", k.auth_failures),
        ("ts_violation", k.ts_violations),
    ];
    for (reason, n) in named.into_iter().chain(k.other_drops.iter().copied()) {
        if n > 0 {
            *t.drops.entry(reason.to_string()).or_default() += n;
        }
    }
}

/// Drops (and I/O errors that lose packets) not tied to a connection: the IKE engine's and
/// the data plane's, by reason; only the non-zero ones.
pub(super) fn global_drops(e: &EngineStats, d: &DropCounters) -> BTreeMap<String, u64> {
    [
        ("ike_malformed", e.malformed_dropped),
        ("ike_unknown_spi", e.unknown_spi_dropped),
        ("ike_integrity_failed", e.decrypt_failed),
        ("ike_bad_message_id", e.bad_msgid_dropped),
        ("esp_unknown_spi", d.unknown_spi),
        ("esp_truncated", d.truncated),
        ("udp_not_esp", d.not_esp),
        ("esp_no_tunnel", d.no_tunnel),
        ("tun_no_sa", d.no_sa_outbound),
        ("tun_not_ip", d.not_ip_outbound),
        ("tun_write_errors", d.tun_write_errors),
        ("esp_seq_exhausted", d.seq_exhausted),
        ("send_errors", d.send_errors),
        ("recv_errors", d.recv_errors),
        ("ike_queue_full", d.ike_queue_full),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| (k.to_string(), n))
    .collect()
}

/// The engine's attack-relevant counters and its half-open gauge, for status and metrics.
pub(super) fn ike_engine(e: &EngineStats, half_open: usize) -> IkeEngineReport {
    IkeEngineReport {
        half_open: half_open as u64,
        half_open_dropped: e.half_open_dropped,
        cookies_sent: e.cookies_sent,
        cookies_sent_by_gate: e.cookies_sent_by_gate,
        invalid_ke_sent: e.invalid_ke_sent,
        responses_resent: e.responses_resent,
        unknown_spi: e.unknown_spi_dropped,
        invalid_spi_sent: e.invalid_spi_sent,
        invalid_spi_limited: e.invalid_spi_limited,
        ts_over_limit: e.ts_over_limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control;

    /// Issue 9: the data plane counted these, but neither status nor metrics showed them.
    #[test]
    fn data_plane_io_drops_reach_status_and_metrics() {
        let d = DropCounters {
            no_tunnel: 1,
            tun_write_errors: 2,
            send_errors: 3,
            recv_errors: 4,
            ..DropCounters::default()
        };
        let drops = global_drops(&EngineStats::default(), &d);
        let want = [
            ("esp_no_tunnel", 1),
            ("tun_write_errors", 2),
            ("send_errors", 3),
            ("recv_errors", 4),
        ];
        for (k, n) in want {
            assert_eq!(drops.get(k), Some(&n), "{drops:?}");
        }
        assert_eq!(drops.len(), 4, "zero counters stay out: {drops:?}");
        let report = control::StatusReport {
            connections: vec![],
            drops,
            ..Default::default()
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["drops"]["tun_write_errors"], 2);
        let metrics = control::render_prometheus(&report);
        for (k, n) in want {
            let line = format!("ipsecgw_global_drops_total{{reason=\"{k}\"}} {n}");
            assert!(metrics.contains(&line), "{line} missing in\n{metrics}");
        }
    }
}
