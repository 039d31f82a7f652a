//! Glue between a connection and its BGP session: runs the session task on `[connection.bgp]`
//! (which is the session's own `BgpConfig`), and maps learned routes onto netlink routes
//! through the connection's TUN device.

use super::bgp_task::{self, BgpCommand};
use crate::bgp::{BgpEvent, BgpStatus, ImportCounters, RibDirection, RibEntry};
use crate::config;
use crate::control::{BgpSummary, RibRow, RouteDirection};
use crate::routing::{Netlink, RouteSet};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

pub struct BgpHandle {
    cmd: mpsc::Sender<BgpCommand>,
    shared: Arc<Mutex<(BgpStatus, Vec<RibEntry>)>>,
    /// Routes learned from the peer and installed in the kernel.
    learned: RouteSet,
    local_as: u32,
    route_source: Option<std::net::IpAddr>,
    task: tokio::task::JoinHandle<()>,
    forward: tokio::task::JoinHandle<()>,
}

/// Starts the BGP session of connection `name`; its events come back tagged on `tx`.
pub fn spawn(
    name: &str,
    b: &config::Bgp,
    _t: &config::Tunnel,
    tx: mpsc::Sender<(String, BgpEvent)>,
) -> BgpHandle {
    let cfg = b.clone();
    for n in cfg
        .networks
        .iter()
        .filter(|n| !cfg.export.iter().any(|f| f.matches(n)))
    {
        info!("{name}: network {n} is not permitted by the export prefix-list and will not be announced");
    }
    if cfg.import.is_none() {
        warn!(
            "{name}: [connection.bgp] has no import prefix-list: no route from AS{} will be accepted (RFC 8212)",
            b.peer_as
        );
    }
    let initial = BgpStatus::idle(b.peer_as, b.peer_address);
    let shared = Arc::new(Mutex::new((initial, Vec::new())));
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let (ev_tx, mut ev_rx) = mpsc::channel(256);
    let task = tokio::spawn(bgp_task::run_session(cfg, cmd_rx, ev_tx, shared.clone()));
    let conn = name.to_string();
    let forward = tokio::spawn(async move {
        while let Some(ev) = ev_rx.recv().await {
            if tx.send((conn.clone(), ev)).await.is_err() {
                return;
            }
        }
    });
    let _ = cmd_tx.try_send(BgpCommand::Start);
    info!(
        "{name}: BGP AS{} -> AS{} at {} (from {})",
        b.local_as, b.peer_as, b.peer_address, b.local_address
    );
    BgpHandle {
        cmd: cmd_tx,
        shared,
        learned: RouteSet::new(),
        local_as: b.local_as,
        route_source: b.route_source,
        task,
        forward,
    }
}

impl BgpHandle {
    pub async fn on_event(
        &mut self,
        conn: &str,
        ev: BgpEvent,
        netlink: &Netlink,
        ifname: &str,
        _tunnel_up: bool,
    ) {
        match ev {
            BgpEvent::Established => info!("{conn}: BGP session established"),
            BgpEvent::Down { reason } => {
                let refused = self.import_counters();
                warn!(
                    "{conn}: BGP session down: {reason} (routes refused so far: {} by the import policy, {} covering IKE peer or underlay addresses)",
                    refused.refused_by_policy, refused.refused_protected
                );
            }
            BgpEvent::InstallRoute { prefix, next_hop } => {
                match self
                    .learned
                    .install(netlink, prefix, ifname, self.route_source)
                    .await
                {
                    Ok(()) => info!(
                        "{conn}: BGP route {prefix} (next hop {next_hop}) installed dev {ifname}"
                    ),
                    Err(e) => error!("{conn}: {e}"),
                }
            }
            BgpEvent::WithdrawRoute { prefix } => {
                match self.learned.withdraw(netlink, prefix, ifname).await {
                    Ok(()) => info!("{conn}: BGP route {prefix} withdrawn"),
                    Err(e) => error!("{conn}: {e}"),
                }
            }
            BgpEvent::Connect | BgpEvent::Disconnect => {}
        }
    }

    /// The tunnel went away: its learned routes go now (not after the hold time), and the
    /// session restarts so it comes back with the tunnel.
    pub async fn tunnel_down(&mut self, netlink: &Netlink) {
        match self.learned.withdraw_all(netlink).await {
            Ok(n) if n > 0 => info!("tunnel down: {n} BGP route(s) withdrawn"),
            Ok(_) => {}
            Err(e) => error!("{e}"),
        }
        let _ = self.cmd.try_send(BgpCommand::Stop("tunnel down".into()));
        let _ = self.cmd.try_send(BgpCommand::Start);
    }

    /// Replaces the announced networks in the running session (reload, no reset).
    pub fn set_networks(&self, networks: Vec<crate::prefix::IpPrefix>) {
        let _ = self.cmd.try_send(BgpCommand::SetNetworks(networks));
    }

    pub async fn shutdown(mut self, netlink: &Netlink) {
        let _ = self
            .cmd
            .send(BgpCommand::Stop("shutting down".into()))
            .await;
        // Give the session a moment to send its Cease NOTIFICATION.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(300), &mut self.task).await;
        self.task.abort();
        self.forward.abort();
        if let Err(e) = self.learned.withdraw_all(netlink).await {
            error!("{e}");
        }
    }

    /// Routes refused on import (prefix-list / RFC 8212, and those covering an IKE peer or
    /// underlay address), for status and metrics. To protect more addresses than this
    /// connection's own (other connections' peers, a `%any` peer's address), send the session
    /// `BgpCommand::SetProtected`.
    pub fn import_counters(&self) -> ImportCounters {
        let g = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        g.0.import
    }

    pub fn summary(&self) -> BgpSummary {
        let g = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let s = &g.0;
        BgpSummary {
            state: s.state,
            prefixes_received: u64::from(s.prefixes_received),
            prefixes_announced: u64::from(s.prefixes_announced),
            peer_address: Some(s.peer_address),
            local_as: self.local_as,
            peer_as: s.peer_as,
            uptime_secs: s.uptime_secs,
            last_error: s.last_error.clone(),
        }
    }

    pub fn rib_rows(&self, conn: &str) -> Vec<RibRow> {
        let g = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        g.1.iter()
            .map(|e| RibRow {
                connection: conn.to_string(),
                prefix: e.prefix,
                next_hop: e.next_hop,
                as_path: e
                    .as_path
                    .split_whitespace()
                    .filter_map(|a| a.parse().ok())
                    .collect(),
                local_pref: e.local_pref.unwrap_or(0),
                med: e.med,
                best: e.best,
                direction: match e.direction {
                    RibDirection::Received => RouteDirection::Received,
                    RibDirection::Announced => RouteDirection::Announced,
                },
            })
            .collect()
    }
}
