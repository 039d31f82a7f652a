//! Human-readable tables for `ipsecgw status` and `ipsecgw bgp`, in the spirit of
//! `swanctl --list-sas`.

use std::fmt::Write;

use super::error::ResponseError;
use super::protocol::{ActionResult, Command, ConnList, ReloadReport, Request, Response};
use super::status::{
    BgpReport, ChildSaStatus, ConnCounters, ConnectionStatus, EspEncap, IkeSaStatus,
    RouteDirection, StatusReport,
};

/// The status of every connection, one block each.
pub fn render_table(report: &StatusReport) -> String {
    let mut out = String::new();
    if report.connections.is_empty() {
        out.push_str("no connections configured\n");
    }
    for (i, conn) in report.connections.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        render_connection(&mut out, conn);
    }
    if !report.drops.is_empty() {
        let list: Vec<String> = report
            .drops
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        let _ = writeln!(
            out,
            "\ndropped before reaching a connection: {}",
            list.join(", ")
        );
    }
    out
}

fn render_connection(out: &mut String, conn: &ConnectionStatus) {
    let _ = write!(out, "{}: {}", conn.name, conn.state.as_str().to_uppercase());
    match &conn.ike {
        Some(ike) => {
            let _ = writeln!(
                out,
                ", IKEv2, SPIs {}_i{} {}_r{}",
                ike.spi_i,
                star(ike.initiator),
                ike.spi_r,
                star(!ike.initiator)
            );
            render_ike(out, ike);
        }
        None => match &conn.peer {
            Some(peer) => {
                let _ = writeln!(out, ", peer {peer}");
            }
            None => out.push('\n'),
        },
    }
    render_attempt(out, conn);
    for child in &conn.children {
        render_child(out, child);
    }
    if let Some(bgp) = &conn.bgp {
        let state = super::status::bgp_state_name::name(bgp.state);
        let _ = write!(out, "  bgp: {}", state.to_uppercase());
        if let Some(peer) = bgp.peer_address {
            let _ = write!(out, " with {peer}");
            if bgp.peer_as != 0 {
                let _ = write!(out, " AS{}", bgp.peer_as);
            }
        }
        if let Some(up) = bgp.uptime_secs {
            let _ = write!(out, " for {}", format_secs(up));
        }
        let _ = writeln!(
            out,
            ", {} prefixes received, {} announced",
            bgp.prefixes_received, bgp.prefixes_announced
        );
        if let Some(err) = &bgp.last_error {
            let _ = writeln!(out, "    last error: {err}");
        }
    }
    render_counters(out, &conn.counters);
}

/// A connection trying (and failing): the request in flight, the next attempt, the last error.
fn render_attempt(out: &mut String, conn: &ConnectionStatus) {
    if let Some(p) = &conn.in_flight {
        let _ = writeln!(
            out,
            "  {} in flight, {} retransmit{} so far, next in {}",
            p.exchange,
            p.retransmits,
            if p.retransmits == 1 { "" } else { "s" },
            format_secs(p.next_retransmit_secs)
        );
    }
    if let Some(secs) = conn.next_attempt_secs {
        let _ = writeln!(out, "  next attempt in {}", format_secs(secs));
    }
    if let Some(e) = &conn.last_error {
        let _ = writeln!(
            out,
            "  last error ({} ago): {}",
            format_secs(e.secs_ago),
            e.message
        );
    }
}

/// strongSwan marks our own SPI with `*`.
fn star(ours: bool) -> &'static str {
    if ours {
        "*"
    } else {
        ""
    }
}

fn render_ike(out: &mut String, ike: &IkeSaStatus) {
    let id = |id: &Option<String>| id.as_ref().map(|i| format!("'{i}' @ ")).unwrap_or_default();
    let _ = writeln!(out, "  local  {}{}", id(&ike.local_id), ike.local);
    let _ = writeln!(out, "  remote {}{}", id(&ike.remote_id), ike.remote);
    let algs = [
        Some(ike.encr.as_str()),
        ike.integ.as_deref(),
        Some(ike.prf.as_str()),
        Some(ike.dh.as_str()),
    ];
    let _ = writeln!(
        out,
        "  {}",
        algs.iter().flatten().copied().collect::<Vec<_>>().join("/")
    );
    let _ = write!(
        out,
        "  established {} ago, rekeying in {}",
        format_secs(ike.established_secs),
        format_secs(ike.rekey_in_secs)
    );
    if ike.nat_detected {
        out.push_str(", NAT detected (UDP 4500)");
    }
    out.push('\n');
}

fn render_child(out: &mut String, child: &ChildSaStatus) {
    let encap = match child.encap {
        EspEncap::Udp => "TUNNEL-in-UDP",
        EspEncap::None => "TUNNEL",
    };
    let _ = writeln!(
        out,
        "  {}: {}, {encap}, ESP SPIs: {}_i {}_o",
        child.name,
        child.state.as_str().to_uppercase(),
        child.spi_in,
        child.spi_out
    );
    let mut algs = vec![child.encr.as_str()];
    algs.extend(child.integ.as_deref());
    algs.extend(child.dh.as_deref());
    if child.esn {
        algs.push("ESN");
    }
    let _ = write!(out, "    {}", algs.join("/"));
    if child.established_secs > 0 || child.rekey_in_secs > 0 {
        let _ = write!(
            out,
            ", established {} ago, rekeying in {}",
            format_secs(child.established_secs),
            format_secs(child.rekey_in_secs)
        );
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "    in  {:>12}, {:>10} packets",
        format_bytes(child.bytes_in),
        child.packets_in
    );
    let _ = writeln!(
        out,
        "    out {:>12}, {:>10} packets",
        format_bytes(child.bytes_out),
        child.packets_out
    );
    let _ = writeln!(
        out,
        "    drops: {} replay, {} auth",
        child.replay_drops, child.auth_failures
    );
    if !child.local_ts.is_empty() || !child.remote_ts.is_empty() {
        let _ = writeln!(out, "    local  {}", child.local_ts.join(", "));
        let _ = writeln!(out, "    remote {}", child.remote_ts.join(", "));
    }
}

fn render_counters(out: &mut String, c: &ConnCounters) {
    let _ = write!(
        out,
        "  totals: in {} ({} packets), out {} ({} packets)",
        format_bytes(c.bytes_in),
        c.packets_in,
        format_bytes(c.bytes_out),
        c.packets_out
    );
    let _ = write!(
        out,
        ", rekeys {} IKE / {} child, DPD failures {}",
        c.ike_rekeys, c.child_rekeys, c.dpd_failures
    );
    out.push('\n');
    let drops: Vec<String> = c
        .drops
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(why, n)| format!("{n} {why}"))
        .collect();
    if !drops.is_empty() {
        let _ = writeln!(out, "  dropped: {}", drops.join(", "));
    }
}

/// The RIB like `show ip bgp`: `*>` marks the best (installed) route; announced routes are
/// listed after the received ones.
pub fn render_bgp_table(report: &BgpReport) -> String {
    if report.routes.is_empty() {
        return "no BGP routes\n".into();
    }
    let header = [
        "",
        "Connection",
        "Prefix",
        "Next hop",
        "LocPrf",
        "MED",
        "AS path",
    ];
    let mut rows: Vec<[String; 7]> = Vec::new();
    for direction in [RouteDirection::Received, RouteDirection::Announced] {
        for r in report.routes.iter().filter(|r| r.direction == direction) {
            let marker = match (direction, r.best) {
                (RouteDirection::Announced, _) => ">>",
                (_, true) => "*>",
                (_, false) => "* ",
            };
            let path = if r.as_path.is_empty() {
                "i".to_string()
            } else {
                r.as_path
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            rows.push([
                marker.to_string(),
                r.connection.clone(),
                r.prefix.to_string(),
                r.next_hop.to_string(),
                r.local_pref.to_string(),
                r.med.map(|m| m.to_string()).unwrap_or_default(),
                path,
            ]);
        }
    }
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&header);
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out.push_str("*> best received route (installed), >> announced to the peer\n");
    out
}

/// Turns a daemon response into the text the CLI prints: the human table (or one pretty JSON
/// document with `json`) for `status`/`bgp`, the daemon's message for actions. `Err` carries
/// the daemon's error message (e.g. an unknown connection name).
pub fn print_response(req: &Request, resp: &Response, json: bool) -> Result<String, ResponseError> {
    if !resp.ok {
        return Err(ResponseError::Refused(
            resp.error
                .clone()
                .unwrap_or_else(|| "request failed".into()),
        ));
    }
    let result = resp.result.clone().unwrap_or(serde_json::Value::Null);
    if json {
        let mut text = serde_json::to_string_pretty(&result)
            .map_err(|e| ResponseError::Unexpected(e.to_string()))?;
        text.push('\n');
        return Ok(text);
    }
    let decode_err = |e: serde_json::Error| ResponseError::Unexpected(e.to_string());
    match req.command {
        Command::Status => Ok(render_table(
            &serde_json::from_value::<StatusReport>(result).map_err(decode_err)?,
        )),
        Command::Bgp { .. } => Ok(render_bgp_table(
            &serde_json::from_value::<BgpReport>(result).map_err(decode_err)?,
        )),
        Command::Reload => Ok(render_reload(
            &serde_json::from_value::<ReloadReport>(result).map_err(decode_err)?,
        )),
        Command::ListConns => Ok(render_conn_list(
            &serde_json::from_value::<ConnList>(result).map_err(decode_err)?,
        )),
        Command::Log { .. } => Ok(String::new()),
        Command::Initiate { .. } | Command::Terminate { .. } | Command::Rekey { .. } => {
            let action: ActionResult = serde_json::from_value(result).map_err(decode_err)?;
            Ok(format!("{}\n", action.message))
        }
    }
}

/// What a reload did, one line per kind of change.
pub fn render_reload(r: &ReloadReport) -> String {
    let mut out = String::new();
    let mut line = |what: &str, names: &[String]| {
        if !names.is_empty() {
            let _ = writeln!(out, "{what}: {}", names.join(", "));
        }
    };
    line("unchanged", &r.unchanged);
    line("updated in place (SAs kept)", &r.updated);
    line("restarted", &r.restarted);
    line("added", &r.added);
    line("removed", &r.removed);
    line("changed, take effect after a restart", &r.need_restart);
    if out.is_empty() {
        out.push_str("no connections configured\n");
    }
    out
}

/// `list-conns`: each connection's resolved settings, grouped by section.
pub fn render_conn_list(list: &ConnList) -> String {
    let mut out = String::new();
    if list.connections.is_empty() {
        out.push_str("no connections configured\n");
    }
    for (i, c) in list.connections.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut section = "";
        for (sec, key, value) in &c.settings {
            if sec != section {
                let _ = writeln!(out, "[{sec}]");
                section = sec;
            }
            let _ = writeln!(out, "  {key} = {value}");
        }
    }
    out
}

/// "3h53m", "42s", "2d4h".
pub fn format_secs(secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let mut rest = secs;
    let mut out = String::new();
    let mut parts = 0;
    for (unit, size) in [("d", 86_400u64), ("h", 3_600), ("m", 60), ("s", 1)] {
        // Two units are precise enough for a human ("2d4h", not "2d4h12m3s").
        if rest >= size && parts < 2 {
            let _ = write!(out, "{}{unit}", rest / size);
            rest %= size;
            parts += 1;
        } else if parts > 0 {
            parts = 2;
        }
    }
    out
}

/// "0 B", "1.5 KiB", "3.2 GiB".
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_response_per_command() {
        let status = Request::new(Command::Status);
        let report = StatusReport {
            connections: vec![super::super::status::ConnectionStatus::down("azure")],
            ..Default::default()
        };
        let resp = Response::ok(&report);
        assert!(print_response(&status, &resp, false)
            .unwrap()
            .starts_with("azure: DOWN"));
        let json = print_response(&status, &resp, true).unwrap();
        assert_eq!(serde_json::from_str::<StatusReport>(&json).unwrap(), report);
        let act = Request::new(Command::Initiate {
            name: "azure".into(),
        });
        let done = Response::ok(&ActionResult {
            message: "initiating azure".into(),
        });
        assert_eq!(
            print_response(&act, &done, false).unwrap(),
            "initiating azure\n"
        );
        assert_eq!(
            print_response(&act, &Response::error("no connection named \"x\""), false),
            Err(ResponseError::Refused("no connection named \"x\"".into()))
        );
        let bgp = Request::new(Command::Bgp { name: None });
        assert_eq!(
            print_response(&bgp, &Response::ok(&BgpReport::default()), false).unwrap(),
            "no BGP routes\n"
        );
        assert!(print_response(&status, &done, false)
            .unwrap_err()
            .to_string()
            .contains("unexpected answer"));
    }

    #[test]
    fn human_units() {
        assert_eq!(format_secs(0), "0s");
        assert_eq!(format_secs(42), "42s");
        assert_eq!(format_secs(14_000), "3h53m");
        assert_eq!(format_secs(3_601), "1h");
        assert_eq!(format_secs(2 * 86_400 + 4 * 3_600 + 5), "2d4h");
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
