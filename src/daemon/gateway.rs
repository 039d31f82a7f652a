//! The control-plane actor: owns the IKE engine, the per-connection state (tunnel, routes,
//! BGP) and answers the control socket. Everything arrives through `select!` in `run`.

use super::bgp_glue::{self, BgpHandle};
use super::error::DaemonError;
use super::keylog::KeyLog;
use super::notify::Notifier;
use super::sockets::{self, BatchPool, IkeBatch, IkeSockets};
use super::status::{self, ConnView};
use super::waiters::{Goal, Waiters};
use crate::config::{self, Config, Connection};
use crate::control::{
    self, ActionResult, BgpReport, Command, ConnCounters, ControlCall, Request, Response,
    StatusReport,
};
use crate::dataplane::{Dataplane, DataplaneConfig, IkeDatagram};
use crate::ike::{self, Engine, Event, HalfOpenLimits, IkeConfig};
use crate::routing::{Netlink, RouteSet};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};
use zeroize::Zeroizing;

/// Translates a validated connection into the IKE engine's view of it.
pub fn ike_config(c: &Connection, g: &config::Global) -> IkeConfig {
    IkeConfig {
        name: c.name.clone(),
        local_addrs: c.local_addrs.clone(),
        remote_addrs: c.remote_addrs.clone(),
        local_port: c.local_port,
        remote_port: c.remote_port,
        local_id: c.local_id.clone(),
        remote_id: c.remote_id.clone(),
        psk: Zeroizing::new(c.psk.as_bytes().to_vec()),
        proposals: c.ike_proposals.clone(),
        start_action: match c.start_action {
            config::StartAction::Start => ike::StartAction::Start,
            config::StartAction::None => ike::StartAction::None,
        },
        encap_always: c.encap == config::Encap::Always,
        rekey_time: c.rekey_time,
        dpd_delay: c.dpd_delay.unwrap_or(Duration::ZERO),
        dpd_action: match c.dpd_action {
            config::DpdAction::Restart => ike::DpdAction::Restart,
            config::DpdAction::Clear => ike::DpdAction::Clear,
        },
        retransmit: ike::RetransmitConfig {
            timeout: g.retransmit_timeout,
            base: g.retransmit_base,
            tries: g.retransmit_tries,
        },
        fragmentation: c.fragmentation,
        children: c
            .children
            .iter()
            .map(|ch| ike::ChildConfig {
                name: ch.name.clone(),
                local_ts: ch.local_ts.clone(),
                remote_ts: ch.remote_ts.clone(),
                proposals: ch.esp_proposals.clone(),
                rekey_time: ch.rekey_time,
                replay_window: ch.replay_window,
                limits: ch.limits,
            })
            .collect(),
    }
}

/// What we keep per configured connection besides the engine's SAs.
pub(super) struct ConnEntry {
    pub cfg: Connection,
    /// Installed CHILD SAs by inbound SPI.
    pub children: HashMap<u32, String>,
    /// Counters of SAs already removed, so connection totals survive rekeys.
    retired: ConnCounters,
    /// Static routes of `[connection.tunnel]`, present while a CHILD SA is up.
    pub routes: RouteSet,
    pub bgp: Option<BgpHandle>,
}

impl ConnEntry {
    fn new(cfg: Connection) -> ConnEntry {
        ConnEntry {
            cfg,
            children: HashMap::new(),
            retired: ConnCounters::default(),
            routes: RouteSet::new(),
            bgp: None,
        }
    }
}

pub(super) struct Gateway {
    pub cfg: Config,
    pub engine: Engine,
    sockets: IkeSockets,
    dataplane: Dataplane,
    pub netlink: Netlink,
    pub conns: BTreeMap<String, ConnEntry>,
    pub bgp_tx: mpsc::Sender<(String, crate::bgp::BgpEvent)>,
    keylog: Option<KeyLog>,
    /// Latest status, for the metrics endpoint (which must not wait on this task).
    snapshot: Arc<Mutex<StatusReport>>,
    /// initiate/terminate/rekey clients waiting for the outcome.
    waiters: Waiters,
    /// systemd: READY=1, the watchdog heartbeat, RELOADING=1.
    pub notify: Notifier,
}

/// Runs the gateway for `cfg` until SIGTERM/SIGINT.
pub async fn run_config(cfg: Config) -> Result<(), DaemonError> {
    let now = Instant::now();
    let netlink = Netlink::new().await.map_err(DaemonError::Netlink)?;
    match netlink.flush_stale_routes().await {
        Ok(0) => {}
        Ok(n) => info!("removed {n} stale route(s) left by an earlier ipsecgw"),
        Err(e) => warn!("cannot look for stale routes: {e}"),
    }

    let local_addrs: Vec<IpAddr> = if cfg.connections.iter().any(|c| c.local_addrs.is_empty()) {
        vec![]
    } else {
        cfg.connections
            .iter()
            .flat_map(|c| c.local_addrs.iter().copied())
            .collect()
    };
    let ike_ports: Vec<u16> = cfg.connections.iter().map(|c| c.local_port).collect();
    let (socks, natt) = sockets::bind_all(&local_addrs, &ike_ports)?;
    // IKE found on 4500 by the data plane, one datagram at a time.
    let (ike_tx, mut ike_rx) = mpsc::channel::<IkeDatagram>(1024);
    let dataplane = Dataplane::start(DataplaneConfig {
        udp_sockets: natt,
        raw_esp: true,
        ike_tx,
    })
    .map_err(DaemonError::Dataplane)?;

    let ike_cfgs = cfg
        .connections
        .iter()
        .map(|c| ike_config(c, &cfg.global))
        .collect();
    let mut engine = Engine::new(ike_cfgs, Box::new(rand::rngs::OsRng), now);
    engine.set_cookie_threshold(cfg.global.cookie_threshold as usize);
    // The IKE sockets' readers, in batches, with the engine's cookie gate in front.
    let (batch_tx, mut batch_rx) = mpsc::channel::<IkeBatch>(64);
    let pool = BatchPool::default();
    socks.spawn_readers(batch_tx, pool.clone(), engine.cookie_gate())?;
    engine.set_half_open_limits(HalfOpenLimits {
        total: cfg.global.half_open_max as usize,
        per_address: cfg.global.half_open_per_address_max as usize,
    });
    let keylog = KeyLog::from_env();
    if keylog.is_some() {
        warn!("IPSECGW_KEYLOG is set: IKE SA keys are written to a file (for debugging only)");
        engine.set_keylog(true);
    }

    let listener =
        control::bind(&cfg.global.control_socket).map_err(|e| DaemonError::ControlSocket {
            path: cfg.global.control_socket.clone(),
            source: e,
        })?;
    let (handler, mut ctl_rx) = control::channel_handler(64);
    tokio::spawn(async move {
        if let Err(e) = control::serve_listener(listener, handler).await {
            error!("control socket: {e}");
        }
    });

    let snapshot = Arc::new(Mutex::new(StatusReport::default()));
    if let Some(addr) = cfg.global.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| DaemonError::Metrics { addr, source: e })?;
        let snap = snapshot.clone();
        let source: control::StatusSource =
            Arc::new(move || snap.lock().map(|s| s.clone()).unwrap_or_default());
        tokio::spawn(async move {
            if let Err(e) = control::serve_metrics_listener(listener, source).await {
                error!("metrics endpoint: {e}");
            }
        });
        info!("Prometheus metrics on http://{addr}/metrics");
    }

    let (bgp_tx, mut bgp_rx) = mpsc::channel(256);
    let mut gw = Gateway {
        cfg,
        engine,
        sockets: socks,
        dataplane,
        netlink,
        conns: BTreeMap::new(),
        bgp_tx,
        keylog,
        snapshot,
        waiters: Waiters::default(),
        notify: Notifier::from_env(),
    };
    // Before anything is installed: a failure here then leaves nothing behind, and a
    // SIGTERM during setup is handled by the loop below (with teardown) instead of killing us.
    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
    for c in gw.cfg.connections.clone() {
        if let Err(e) = gw.setup_conn(c.clone()).await {
            gw.stop().await;
            return Err(e);
        }
    }
    info!(
        "ipsecgw {} running: {} connection(s), control socket {}",
        env!("CARGO_PKG_VERSION"),
        gw.conns.len(),
        gw.cfg.global.control_socket.display()
    );
    // Sockets bound, TUN devices up and addressed: what is ordered after us may start.
    gw.notify
        .ready(&format!("{} connection(s)", gw.conns.len()));
    if let Some(every) = gw.notify.watchdog_interval() {
        info!("systemd watchdog: heartbeat every {}ms", every.as_millis());
    }

    // The tick is the main loop's heartbeat: a loop that stops turning stops feeding the
    // systemd watchdog.
    let beat = gw
        .notify
        .watchdog_interval()
        .map_or(Duration::from_secs(1), |w| w.min(Duration::from_secs(1)));
    let mut tick = tokio::time::interval(beat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        gw.drain().await;
        let deadline = gw.engine.poll_timeout();
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(b) = batch_rx.recv() => gw.ike_batch(b, &pool),
            Some(d) = ike_rx.recv() => gw.engine.handle_datagram(Instant::now(), d.local, d.remote, &d.data),
            _ = timer => gw.engine.handle_timeout(Instant::now()),
            Some(call) = ctl_rx.recv() => gw.control(call).await,
            Some((conn, ev)) = bgp_rx.recv() => gw.bgp_event(&conn, ev).await,
            _ = tick.tick() => gw.tick(),
            _ = sigterm.recv() => { info!("SIGTERM: deleting SAs and removing routes"); break; }
            _ = sigint.recv() => { info!("SIGINT: deleting SAs and removing routes"); break; }
            _ = sighup.recv() => { let _ = gw.reload().await; }
        }
    }
    gw.notify.stopping();

    // Delete every SA at the peer, give the responses a moment, then undo what we installed.
    gw.engine.terminate_all(Instant::now());
    gw.drain().await;
    let grace = tokio::time::sleep(Duration::from_millis(500));
    tokio::pin!(grace);
    loop {
        tokio::select! {
            Some(b) = batch_rx.recv() => { gw.ike_batch(b, &pool); gw.drain().await; }
            Some(d) = ike_rx.recv() => { gw.engine.handle_datagram(Instant::now(), d.local, d.remote, &d.data); gw.drain().await; }
            _ = &mut grace => break,
        }
    }
    gw.stop().await;
    info!("ipsecgw stopped");
    Ok(())
}

impl Gateway {
    /// A reader's batch, all of it before the loop turns again (one clock read).
    fn ike_batch(&mut self, b: IkeBatch, pool: &BatchPool) {
        let now = Instant::now();
        for (local, remote, data) in b.iter() {
            self.engine.handle_datagram(now, local, remote, data);
        }
        pool.put(b);
    }

    /// Sends what the engine wants sent and acts on its events.
    pub(super) async fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.engine.poll_transmit() {
                self.sockets.send(&t);
                progressed = true;
            }
            while let Some(ev) = self.engine.poll_event() {
                self.on_event(ev).await;
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        if !self.waiters.is_empty() {
            let now = Instant::now();
            let status = self.engine.status(now);
            self.waiters.check(now, &status);
        }
    }

    /// The engine logs every SA event at info; here we only act on them.
    async fn on_event(&mut self, ev: Event) {
        if !self.waiters.is_empty() {
            self.tell_waiters(&ev);
        }
        match ev {
            Event::IkeUp { conn, rekeyed, .. } => {
                if rekeyed {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.retired.ike_rekeys += 1;
                    }
                }
            }
            Event::IkeDown { conn, reason, .. } => {
                // A peer found dead on an SA that was up; not a connection that never came up.
                if reason.is_dead_peer() {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.retired.dpd_failures += 1;
                    }
                }
            }
            Event::PeerMoved {
                conn,
                remote,
                children,
                ..
            } => self.peer_moved(&conn, remote, &children),
            Event::ChildUp(sa) => self.child_up(sa).await,
            Event::ChildDown { conn, spi_in, .. } => self.child_down(&conn, spi_in).await,
            ev @ Event::KeyLog { .. } => {
                if let Some(k) = &self.keylog {
                    k.write(&ev);
                }
            }
        }
    }

    /// What happened, in a line, for the clients waiting on the connection.
    fn tell_waiters(&mut self, ev: &Event) {
        let (conn, line) = match ev {
            Event::IkeUp {
                conn,
                spi_i,
                spi_r,
                local,
                remote,
                encr,
                integ,
                prf,
                dh,
                rekeyed,
                ..
            } => {
                let algs = [
                    Some(encr.name()),
                    integ.map(|i| i.name()),
                    Some(prf.name()),
                    Some(dh.name()),
                ];
                let algs: Vec<&str> = algs.into_iter().flatten().collect();
                let what = if *rekeyed { "rekeyed" } else { "established" };
                (
                    conn,
                    format!(
                        "IKE SA {what}: {local} <-> {remote}, SPIs {spi_i:016x}_i {spi_r:016x}_r, {}",
                        algs.join("/")
                    ),
                )
            }
            Event::IkeDown {
                conn,
                spi_i,
                reason,
                ..
            } => {
                if let Some(f) = reason.failure() {
                    let f = f.clone();
                    self.waiters
                        .say(conn, &format!("IKE SA {spi_i:016x}_i failed: {f}"));
                    self.waiters.failed(conn, &f);
                    return;
                }
                (conn, format!("IKE SA {spi_i:016x}_i deleted: {reason}"))
            }
            Event::ChildUp(sa) => (
                &sa.conn,
                format!(
                    "CHILD SA {} installed: SPIs {:08x}_i {:08x}_o, {} === {}",
                    sa.child,
                    sa.spi_in,
                    sa.spi_out,
                    join(&sa.local_ts),
                    join(&sa.remote_ts)
                ),
            ),
            Event::ChildDown {
                conn,
                child,
                spi_in,
                reason,
                ..
            } => (
                conn,
                format!("CHILD SA {child} {spi_in:08x}_i deleted: {reason}"),
            ),
            Event::PeerMoved { conn, remote, .. } => (conn, format!("peer moved to {remote}")),
            Event::KeyLog { .. } => return,
        };
        self.waiters.say(conn, &line);
    }

    async fn child_up(&mut self, sa: ike::ChildSa) {
        let Some(c) = self.conns.get_mut(&sa.conn) else {
            return;
        };
        if let Err(e) = self.dataplane.install(&sa) {
            error!(
                "{}/{}: cannot install CHILD SA {:08x}: {e}",
                sa.conn, sa.child, sa.spi_in
            );
            return;
        }
        if sa.rekey_of.is_some() {
            c.retired.child_rekeys += 1;
        }
        let first = c.children.is_empty();
        c.children.insert(sa.spi_in, sa.child.clone());
        if first {
            if let Some(t) = &c.cfg.tunnel {
                for r in &t.routes {
                    match c
                        .routes
                        .install(&self.netlink, *r, &t.interface, Some(t.address))
                        .await
                    {
                        Ok(()) => info!("{}: route {r} dev {} installed", sa.conn, t.interface),
                        Err(e) => error!("{}: {e}", sa.conn),
                    }
                }
            }
        }
    }

    /// Behind a NAT the peer's address changed: the ESP of its CHILD SAs follows.
    fn peer_moved(&mut self, conn: &str, remote: SocketAddr, children: &[u32]) {
        let moved = children
            .iter()
            .filter(|spi| self.dataplane.update_remote(**spi, remote))
            .count();
        info!(
            "{conn}: peer now at {remote}; {moved} of {} CHILD SA(s) send there",
            children.len()
        );
    }

    async fn child_down(&mut self, conn: &str, spi_in: u32) {
        let counters = self.dataplane.counters();
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if let Some(k) = counters.iter().find(|k| k.spi_in == spi_in) {
            status::add_counters(&mut c.retired, k);
        }
        self.dataplane.remove(spi_in);
        if c.children.remove(&spi_in).is_some() && c.children.is_empty() {
            // Tunnel lost: its static routes go, and so does what BGP learned through it.
            if let Some(t) = &c.cfg.tunnel {
                match c
                    .routes
                    .withdraw_interface(&self.netlink, &t.interface)
                    .await
                {
                    Ok(n) if n > 0 => info!("{conn}: tunnel down, {n} static route(s) withdrawn"),
                    Ok(_) => {}
                    Err(e) => error!("{conn}: {e}"),
                }
            }
            if let Some(b) = &mut c.bgp {
                b.tunnel_down(&self.netlink).await;
            }
        }
    }

    async fn bgp_event(&mut self, conn: &str, ev: crate::bgp::BgpEvent) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let (Some(b), Some(t)) = (&mut c.bgp, &c.cfg.tunnel) else {
            return;
        };
        // Learned routes only go in while the tunnel carries traffic.
        let tunnel_up = !c.children.is_empty();
        b.on_event(conn, ev, &self.netlink, &t.interface, tunnel_up)
            .await;
    }

    fn tick(&mut self) {
        self.notify.watchdog();
        let now = Instant::now();
        for k in self.dataplane.counters() {
            self.engine.child_activity(k.spi_in, k.last_inbound);
            let (bytes, packets) = (k.bytes_in.max(k.bytes_out), k.packets_in.max(k.packets_out));
            self.engine.child_usage(now, k.spi_in, bytes, packets);
            if k.needs_rekey {
                self.engine.request_child_rekey(now, k.spi_in);
            }
        }
        let report = self.status(now);
        if let Ok(mut s) = self.snapshot.lock() {
            *s = report;
        }
    }

    pub(super) async fn setup_conn(&mut self, c: Connection) -> Result<(), DaemonError> {
        let name = c.name.clone();
        let mut st = ConnEntry::new(c.clone());
        if let Some(t) = &c.tunnel {
            self.dataplane
                .add_tunnel(&name, &t.interface, t.mtu)
                .map_err(|e| DaemonError::Tunnel {
                    conn: name.clone(),
                    ifname: t.interface.clone(),
                    source: e,
                })?;
            if let Err(e) = self
                .netlink
                .configure_interface(&t.interface, t.address, t.prefix_len, u32::from(t.mtu))
                .await
            {
                // The connection is not recorded yet, so no teardown would find this device;
                // left registered, it would also block every later setup under this name.
                self.dataplane.remove_tunnel(&name);
                return Err(DaemonError::Routing {
                    conn: name,
                    source: e,
                });
            }
            info!(
                "{name}: tunnel {} up with {}/{} mtu {}",
                t.interface, t.address, t.prefix_len, t.mtu
            );
            if let Some(b) = &c.bgp {
                st.bgp = Some(bgp_glue::spawn(&name, b, t, self.bgp_tx.clone()));
            }
        }
        self.conns.insert(name.clone(), st);
        if c.start_action == config::StartAction::Start {
            if let Err(e) = self.engine.initiate(Instant::now(), &name) {
                warn!("{name}: cannot initiate: {e}");
            }
        }
        Ok(())
    }

    pub(super) async fn teardown_conn(&mut self, name: &str) {
        let Some(mut c) = self.conns.remove(name) else {
            return;
        };
        for spi in c.children.keys() {
            self.dataplane.remove(*spi);
        }
        if let Some(b) = c.bgp.take() {
            b.shutdown(&self.netlink).await;
        }
        if let Err(e) = c.routes.withdraw_all(&self.netlink).await {
            error!("{name}: {e}");
        }
        if let Some(t) = &c.cfg.tunnel {
            if let Err(e) = self
                .netlink
                .remove_address(&t.interface, t.address, t.prefix_len)
                .await
            {
                debug!("{name}: {e}");
            }
            self.dataplane.remove_tunnel(name);
        }
    }

    /// Undoes everything installed: connections, packet threads, the control socket file.
    async fn stop(&mut self) {
        self.teardown_all().await;
        self.dataplane.shutdown();
        let _ = std::fs::remove_file(&self.cfg.global.control_socket);
    }

    async fn teardown_all(&mut self) {
        let names: Vec<String> = self.conns.keys().cloned().collect();
        for n in names {
            self.teardown_conn(&n).await;
        }
    }

    async fn control(&mut self, call: ControlCall) {
        let now = Instant::now();
        let ControlCall {
            request,
            reply,
            progress,
        } = call;
        match (&request.command, progress) {
            (Command::Log { level }, Some(progress)) => {
                super::logging::follow_log(level.as_deref(), progress, reply);
                return;
            }
            (Command::Reload, _) => {
                let resp = match self.reload().await {
                    Ok(report) => Response::ok(&report),
                    Err(problems) => Response::error(format!(
                        "new config refused, the running one is kept:\n{}",
                        problems.join("\n")
                    )),
                };
                let _ = reply.send(resp);
                return;
            }
            (
                Command::Initiate { name }
                | Command::Terminate { name }
                | Command::Rekey { name, .. },
                Some(progress),
            ) if request.wait_secs.is_some_and(|s| s > 0) => {
                let name = name.clone();
                let wait = Duration::from_secs(request.wait_secs.unwrap_or(0));
                match self.start_action(&request.command, now) {
                    Ok(goal) => {
                        let peer = self.conns.get(&name).and_then(|c| {
                            c.cfg
                                .remote_addrs
                                .first()
                                .map(|a| SocketAddr::new(*a, c.cfg.remote_port).to_string())
                        });
                        self.waiters
                            .add(&name, peer, goal, now, wait, progress, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Response::error(e.to_string()));
                    }
                }
                self.drain().await;
                return;
            }
            _ => {}
        }
        let resp = self.answer(request, now);
        self.drain().await;
        let _ = reply.send(resp);
    }

    /// Starts initiate/terminate/rekey and says what its completion will look like.
    fn start_action(&mut self, cmd: &Command, now: Instant) -> Result<Goal, ike::IkeError> {
        let before = self.engine.status(now);
        let of = |name: &str| before.iter().find(|s| s.name == name);
        match cmd {
            Command::Initiate { name } => {
                self.engine.initiate(now, name)?;
                let children = self.conns.get(name).map_or(1, |c| c.cfg.children.len());
                Ok(Goal::Up { children })
            }
            Command::Terminate { name } => {
                self.engine.terminate(now, name)?;
                Ok(Goal::Down)
            }
            Command::Rekey { name, ike } => {
                let st = of(name);
                self.engine.rekey(now, name, *ike)?;
                Ok(if *ike {
                    Goal::IkeRekeyed {
                        old_spi_i: st.and_then(|s| s.ike.as_ref()).map_or(0, |i| i.spi_i),
                    }
                } else {
                    Goal::ChildRekeyed {
                        old: st.map_or(vec![], |s| s.children.iter().map(|c| c.spi_in).collect()),
                    }
                })
            }
            _ => Err(ike::IkeError::UnknownConnection(String::new())),
        }
    }

    fn answer(&mut self, req: Request, now: Instant) -> Response {
        let act = |r: Result<(), ike::IkeError>, msg: String| match r {
            Ok(()) => Response::ok(&ActionResult { message: msg }),
            Err(e) => Response::error(e.to_string()),
        };
        match req.command {
            Command::Status => Response::ok(&self.status(now)),
            Command::ListConns => Response::ok(&crate::config::listing::conn_list(&self.cfg)),
            Command::Reload | Command::Log { .. } => {
                Response::error("this request needs a streaming client")
            }
            Command::Initiate { name } => act(
                self.engine.initiate(now, &name),
                format!("initiating {name}"),
            ),
            Command::Terminate { name } => act(
                self.engine.terminate(now, &name),
                format!("terminating {name}"),
            ),
            Command::Rekey { name, ike } => {
                let what = if ike { "IKE SA" } else { "CHILD SAs" };
                act(
                    self.engine.rekey(now, &name, ike),
                    format!("rekeying the {what} of {name}"),
                )
            }
            Command::Bgp { name } => {
                if let Some(n) = &name {
                    if !self.conns.contains_key(n) {
                        return Response::error(format!("no connection named \"{n}\""));
                    }
                }
                let routes = self
                    .conns
                    .iter()
                    .filter(|(n, _)| name.as_ref().is_none_or(|want| want == *n))
                    .filter_map(|(n, c)| c.bgp.as_ref().map(|b| b.rib_rows(n)))
                    .flatten()
                    .collect();
                Response::ok(&BgpReport::new(routes))
            }
        }
    }

    /// Every configured connection, up or down, with live and retired counters merged.
    fn status(&self, now: Instant) -> StatusReport {
        let engine = self.engine.status(now);
        let counters = self.dataplane.counters();
        let connections = self
            .conns
            .iter()
            .map(|(name, c)| {
                let view = ConnView {
                    name,
                    cfg: &c.cfg,
                    children: &c.children,
                    retired: &c.retired,
                    bgp: c.bgp.as_ref().map(|b| b.summary()),
                };
                status::connection(engine.iter().find(|e| &e.name == name), view, &counters)
            })
            .collect();
        StatusReport {
            schema: control::STATUS_SCHEMA.into(),
            connections,
            drops: status::global_drops(&self.engine.stats(), &self.dataplane.global_drops()),
            ike_engine: status::ike_engine(&self.engine.stats(), self.engine.half_open()),
        }
    }
}

fn join(ts: &[ike::TrafficSelector]) -> String {
    ts.iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
