//! `ipsecgw reload` and SIGHUP: the new config is compared connection by connection.
//! Unchanged connections keep everything; a change of only the static routes or only the
//! BGP policy is applied in place (routes added/withdrawn, the session's networks replaced
//! or only the BGP session restarted) without touching the IKE and CHILD SAs; any other
//! change restarts the connection.

use super::bgp_glue;
use super::gateway::{ike_config, Gateway};
use crate::config::{self, Connection};
use crate::control::ReloadReport;
use std::time::Instant;
use tracing::{error, info, warn};

/// What differs between two versions of a connection, if that can be applied in place.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct InPlace {
    pub routes: bool,
    /// Only the announced networks: the running session takes them.
    pub networks: bool,
    /// Other BGP policy (export/import prefix-lists, local-pref, prefix limit, route source):
    /// the BGP session restarts, the SAs stay.
    pub bgp_policy: bool,
}

impl InPlace {
    pub fn describe(&self) -> String {
        let mut what = vec![];
        if self.routes {
            what.push("routes");
        }
        if self.networks {
            what.push("BGP networks");
        }
        if self.bgp_policy {
            what.push("BGP policy (session restarted)");
        }
        what.join(", ")
    }
}

/// Some(what) when `new` differs from `old` only in ways that leave the SAs alone.
pub(super) fn in_place(old: &Connection, new: &Connection) -> Option<InPlace> {
    let mut probe = old.clone();
    let mut d = InPlace::default();
    if let (Some(t), Some(nt)) = (probe.tunnel.as_mut(), new.tunnel.as_ref()) {
        if t.routes != nt.routes {
            t.routes = nt.routes.clone();
            d.routes = true;
        }
    }
    if let (Some(b), Some(nb)) = (probe.bgp.as_mut(), new.bgp.as_ref()) {
        if b.networks != nb.networks {
            b.networks = nb.networks.clone();
            d.networks = true;
        }
        let policy = (
            &nb.export,
            &nb.import,
            nb.import_local_pref,
            nb.max_prefixes,
            nb.route_source,
        );
        if (
            &b.export,
            &b.import,
            b.import_local_pref,
            b.max_prefixes,
            b.route_source,
        ) != policy
        {
            b.export = nb.export.clone();
            b.import = nb.import.clone();
            b.import_local_pref = nb.import_local_pref;
            b.max_prefixes = nb.max_prefixes;
            b.route_source = nb.route_source;
            d.bgp_policy = true;
        }
    }
    (probe == *new && d != InPlace::default()).then_some(d)
}

impl Gateway {
    /// Re-reads the config file. Err: every problem in it (the running config is kept).
    pub(super) async fn reload(&mut self) -> Result<ReloadReport, Vec<String>> {
        self.notify.reloading();
        let result = self.reload_inner().await;
        self.notify
            .status(&format!("{} connection(s)", self.conns.len()));
        result
    }

    async fn reload_inner(&mut self) -> Result<ReloadReport, Vec<String>> {
        let new = match config::load(&self.cfg.path) {
            Ok(c) => c,
            Err(errs) => {
                for e in &errs {
                    error!("reload: {e}");
                }
                warn!(
                    "reload: {} problem(s) in {}, keeping the running config",
                    errs.len(),
                    self.cfg.path.display()
                );
                return Err(errs.iter().map(|e| e.to_string()).collect());
            }
        };
        let mut report = ReloadReport::default();
        for (what, changed) in [
            (
                "control_socket",
                new.global.control_socket != self.cfg.global.control_socket,
            ),
            (
                "metrics_listen",
                new.global.metrics_listen != self.cfg.global.metrics_listen,
            ),
            (
                "log_level",
                new.global.log_level != self.cfg.global.log_level,
            ),
            (
                "log_format",
                new.global.log_format != self.cfg.global.log_format,
            ),
        ] {
            if changed {
                report.need_restart.push(what.to_string());
            }
        }
        if !report.need_restart.is_empty() {
            warn!(
                "reload: {} change(s) take effect after a restart",
                report.need_restart.join(", ")
            );
        }
        let now = Instant::now();
        let mut restart = Vec::new();
        let mut updates = Vec::new();
        for (n, st) in &self.conns {
            match new.connection(n) {
                None => report.removed.push(n.clone()),
                Some(c) if *c == st.cfg => report.unchanged.push(n.clone()),
                Some(c) => match in_place(&st.cfg, c) {
                    Some(d) => updates.push((c.clone(), d)),
                    None => restart.push(n.clone()),
                },
            }
        }
        // Restarted connections whose IKE settings are the same would keep their SAs in the
        // engine (it compares only those): end them here so they come up on the new settings.
        for n in &restart {
            let same_ike = match (self.cfg.connection(n), new.connection(n)) {
                (Some(o), Some(c)) => ike_config(o, &self.cfg.global) == ike_config(c, &new.global),
                _ => false,
            };
            if same_ike {
                let _ = self.engine.terminate(now, n);
            }
        }
        // The engine deletes SAs of removed/changed connections; let it say so first.
        self.engine.reload(
            now,
            new.connections
                .iter()
                .map(|c| ike_config(c, &new.global))
                .collect(),
        );
        self.drain().await;
        for n in restart.iter().chain(&report.removed) {
            self.teardown_conn(n).await;
        }
        for (c, d) in updates {
            self.apply_in_place(c.clone(), &d).await;
            report
                .updated
                .push(format!("{} ({})", c.name, d.describe()));
        }
        self.cfg = new;
        for c in self.cfg.connections.clone() {
            if self.conns.contains_key(&c.name) {
                continue;
            }
            let name = c.name.clone();
            let was = restart.contains(&name);
            match self.setup_conn(c).await {
                Ok(()) if was => report.restarted.push(name),
                Ok(()) => report.added.push(name),
                Err(e) => error!("reload: {e}"),
            }
        }
        info!(
            "reload: {} connection(s) unchanged, {} updated in place, {} (re)started, {} added, {} removed",
            report.unchanged.len(),
            report.updated.len(),
            report.restarted.len(),
            report.added.len(),
            report.removed.len()
        );
        Ok(report)
    }

    /// Routes and BGP policy of a running connection, its SAs untouched.
    async fn apply_in_place(&mut self, new: Connection, d: &InPlace) {
        let name = new.name.clone();
        let Some(c) = self.conns.get_mut(&name) else {
            return;
        };
        if d.routes {
            if let (Some(old_t), Some(t)) = (c.cfg.tunnel.clone(), new.tunnel.as_ref()) {
                for r in old_t.routes.iter().filter(|r| !t.routes.contains(r)) {
                    match c.routes.withdraw(&self.netlink, *r, &t.interface).await {
                        Ok(()) => info!("{name}: route {r} withdrawn (reload)"),
                        Err(e) => error!("{name}: {e}"),
                    }
                }
                // Routes go in only while the tunnel carries traffic (as on CHILD SA up).
                if !c.children.is_empty() {
                    for r in t.routes.iter().filter(|r| !old_t.routes.contains(r)) {
                        match c
                            .routes
                            .install(&self.netlink, *r, &t.interface, Some(t.address))
                            .await
                        {
                            Ok(()) => {
                                info!("{name}: route {r} dev {} installed (reload)", t.interface)
                            }
                            Err(e) => error!("{name}: {e}"),
                        }
                    }
                }
            }
        }
        if let (Some(b), Some(t)) = (new.bgp.as_ref(), new.tunnel.as_ref()) {
            if d.bgp_policy {
                if let Some(old) = c.bgp.take() {
                    old.shutdown(&self.netlink).await;
                }
                c.bgp = Some(bgp_glue::spawn(&name, b, t, self.bgp_tx.clone()));
                info!("{name}: BGP policy changed, session restarted (SAs kept)");
            } else if d.networks {
                if let Some(h) = &c.bgp {
                    h.set_networks(b.networks.clone());
                    info!("{name}: BGP networks now {:?} (reload)", b.networks);
                }
            }
        }
        c.cfg = new;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(routes: &str, extra: &str) -> Connection {
        let text = format!(
            r#"[[connection]]
name = "gw"
local_addrs = ["192.0.2.1"]
remote_addrs = ["192.0.2.2"]
local_id = "192.0.2.1"
remote_id = "192.0.2.2"
psk = "0123456789abcdef0123"
[[connection.children]]
name = "net"
[connection.tunnel]
interface = "ipsec30"
address = "10.255.0.1/32"
routes = ["10.255.0.2/32", {routes}]
[connection.bgp]
local_as = 65021
peer_as = 65515
peer_address = "10.255.0.2"
networks = ["10.1.0.0/24"]
import = ["10.2.0.0/16 le 32"]
{extra}
"#
        );
        let cfg = config::parse(&text, "t.toml").expect("valid");
        cfg.connections[0].clone()
    }

    #[test]
    fn route_and_policy_changes_apply_in_place() {
        let a = conn(r#""10.2.0.0/24""#, "");
        assert_eq!(in_place(&a, &a), None, "no change is no update");
        let routes = in_place(&a, &conn(r#""10.2.0.0/24", "10.3.0.0/24""#, "")).unwrap();
        assert!(routes.routes && !routes.bgp_policy, "{routes:?}");
        let pref = in_place(&a, &conn(r#""10.2.0.0/24""#, "import_local_pref = 200")).unwrap();
        assert!(pref.bgp_policy && !pref.routes, "{pref:?}");
        let mut mtu = conn(r#""10.2.0.0/24""#, "");
        if let Some(t) = mtu.tunnel.as_mut() {
            t.mtu = 1300;
        }
        assert_eq!(in_place(&a, &mtu), None, "an MTU change restarts");
        let mut esp = a.clone();
        esp.rekey_time = std::time::Duration::from_secs(60);
        assert_eq!(in_place(&a, &esp), None, "an IKE change restarts");
    }
}
