//! The legitimate initiators: one `ipsecgw::ike::Engine` holding one connection per generated
//! peer (its own source address, its own FQDN identity, its own inner /32), driven over real
//! UDP sockets. At most `concurrency` handshakes are in flight; a handshake counts when its
//! first CHILD SA is up (IKE_SA_INIT + IKE_AUTH with the CHILD SA).

use super::udp::{wait_readable, AnySock};
use ipsecgw::crypto::proposal::{parse_esp, parse_ike};
use ipsecgw::ike::codec::{notify, Message, Payload, EXCH_IKE_SA_INIT};
use ipsecgw::ike::{
    ChildConfig, DpdAction, Engine, Event, FragmentConfig, Identity, IkeConfig, RetransmitConfig,
    StartAction,
};
use ipsecgw::prefix::IpPrefix;
use rand::SeedableRng;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Where the generated peers live: source address k is `ADDR_BASE + k % addresses`, inner
/// address k is `INNER_BASE + k`.
pub const ADDR_BASE: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);
pub const ADDR_NET: &str = "100.64.0.0/16";
pub const INNER_BASE: Ipv4Addr = Ipv4Addr::new(10, 128, 0, 0);
pub const INNER_NET: &str = "10.128.0.0/9";
/// The responder's side of every CHILD SA.
pub const HUB_NET: &str = "10.0.0.0/16";
pub const NATT_MARKER: [u8; 4] = [0; 4];

#[derive(Clone, Debug)]
pub struct FleetConfig {
    pub peers: usize,
    pub concurrency: usize,
    /// Distinct source addresses (peers share them round-robin when fewer than peers).
    pub addresses: usize,
    pub ike: String,
    pub esp: String,
    pub psk: String,
    pub responder: Ipv4Addr,
    /// A handshake not done after this long counts as failed (retransmits included).
    pub give_up: Duration,
    /// Count a handshake done at IkeUp instead of ChildUp (strongSwan with kernel-libipsec
    /// negotiates the CHILD SA but cannot install its policies in these namespaces).
    pub ike_only: bool,
}

#[derive(Clone, Debug, Default)]
pub struct FleetResult {
    pub completed: usize,
    pub failed: usize,
    /// First initiate to last completion.
    pub elapsed: Duration,
    /// IKE_SA_INIT responses carrying a COOKIE notify (the responder asked for one).
    pub cookies_received: u64,
    pub latency_p50: Duration,
    pub latency_p99: Duration,
    /// The engine's own counters (retransmissions).
    pub retransmits: u64,
    pub interrupted: bool,
}

fn add(base: Ipv4Addr, k: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base) + k as u32)
}

pub fn source_addr(cfg: &FleetConfig, k: usize) -> Ipv4Addr {
    add(ADDR_BASE, 1 + k % cfg.addresses.max(1))
}

/// The connection of generated peer `k`.
pub fn peer_config(cfg: &FleetConfig, k: usize) -> IkeConfig {
    let inner: IpPrefix = format!("{}/32", add(INNER_BASE, k + 1))
        .parse()
        .expect("inner /32");
    let hub: IpPrefix = HUB_NET.parse().expect("hub net");
    IkeConfig {
        name: format!("p{k}"),
        local_addrs: vec![IpAddr::V4(source_addr(cfg, k))],
        remote_addrs: vec![IpAddr::V4(cfg.responder)],
        local_port: 500,
        remote_port: 500,
        local_id: Identity::Fqdn(format!("p{k}.load.test")),
        remote_id: None,
        psk: Zeroizing::new(cfg.psk.as_bytes().to_vec()),
        proposals: vec![parse_ike(&cfg.ike).expect("IKE proposal")],
        start_action: StartAction::None,
        encap_always: false,
        rekey_time: Duration::ZERO,
        dpd_delay: Duration::ZERO,
        dpd_action: DpdAction::Clear,
        retransmit: RetransmitConfig {
            timeout: Duration::from_secs(2),
            base: 1.8,
            tries: 3,
        },
        fragmentation: FragmentConfig::default(),
        children: vec![ChildConfig {
            name: "net".into(),
            local_ts: vec![inner],
            remote_ts: vec![hub],
            proposals: vec![parse_esp(&cfg.esp).expect("ESP proposal")],
            rekey_time: Duration::ZERO,
            replay_window: 64,
            limits: Default::default(),
        }],
    }
}

/// One IKE_SA_INIT request as peer 0 would send it (the flood's template).
pub fn init_request(cfg: &FleetConfig) -> Vec<u8> {
    let now = Instant::now();
    let rng = Box::new(rand::rngs::StdRng::from_entropy());
    let mut e = Engine::new(vec![peer_config(cfg, 0)], rng, now);
    e.initiate(now, "p0").expect("initiate");
    e.poll_transmit().expect("IKE_SA_INIT").data
}

fn is_cookie_demand(data: &[u8]) -> bool {
    match Message::parse(data) {
        Ok(m) if m.header.exchange == EXCH_IKE_SA_INIT && m.header.is_response() => m
            .payloads
            .iter()
            .any(|p| matches!(p, Payload::Notify(nt) if nt.ntype == notify::COOKIE)),
        _ => false,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum PeerState {
    Waiting,
    InFlight(Instant),
    Done,
    Failed,
}

/// Runs the whole fleet in the calling thread (which must be in the generator's namespace).
/// Returns when every peer completed or failed, or when `stop` is set (Ctrl-C).
pub fn run(cfg: &FleetConfig, stop: &AtomicBool) -> std::io::Result<FleetResult> {
    let s500 = AnySock::bind(500)?;
    let s4500 = AnySock::bind(4500)?;
    let t0 = Instant::now();
    let configs: Vec<IkeConfig> = (0..cfg.peers).map(|k| peer_config(cfg, k)).collect();
    let names: Vec<String> = configs.iter().map(|c| c.name.clone()).collect();
    let rng = Box::new(rand::rngs::StdRng::from_entropy());
    let mut engine = Engine::new(configs, rng, t0);
    let mut state = vec![PeerState::Waiting; cfg.peers];
    let mut latencies: Vec<Duration> = Vec::with_capacity(cfg.peers);
    let mut res = FleetResult::default();
    let (mut next, mut in_flight) = (0usize, 0usize);
    let mut buf = vec![0u8; 65536];
    let started = Instant::now();
    let mut last_done = started;
    let mut next_sweep = started + Duration::from_millis(200);
    loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) {
            res.interrupted = true;
            break;
        }
        while in_flight < cfg.concurrency && next < cfg.peers {
            engine.initiate(now, &names[next]).expect("initiate");
            state[next] = PeerState::InFlight(now);
            next += 1;
            in_flight += 1;
        }
        if engine.poll_timeout().is_some_and(|t| t <= now) {
            engine.handle_timeout(now);
        }
        let mut busy = false;
        for sock in [&s500, &s4500] {
            for _ in 0..256 {
                let Some((n, src, dst)) = sock.recv(&mut buf)? else {
                    break;
                };
                busy = true;
                let mut data = &buf[..n];
                if sock.port == 4500 {
                    if n < 4 || data[..4] != NATT_MARKER {
                        continue; // ESP: nothing to do with it here
                    }
                    data = &data[4..];
                }
                if is_cookie_demand(data) {
                    res.cookies_received += 1;
                }
                let local = SocketAddr::V4(SocketAddrV4::new(dst, sock.port));
                engine.handle_datagram(Instant::now(), local, SocketAddr::V4(src), data);
            }
        }
        while let Some(t) = engine.poll_transmit() {
            let (SocketAddr::V4(l), SocketAddr::V4(r)) = (t.local, t.remote) else {
                continue;
            };
            let sent = if l.port() == 4500 {
                let mut d = NATT_MARKER.to_vec();
                d.extend_from_slice(&t.data);
                s4500.send_from(*l.ip(), r, &d)
            } else {
                s500.send_from(*l.ip(), r, &t.data)
            };
            // A full socket buffer is a lost datagram: the engine retransmits.
            let _ = sent;
        }
        while let Some(ev) = engine.poll_event() {
            if std::env::var_os("IKE_LOAD_DEBUG").is_some() {
                eprintln!("event {ev:?}");
            }
            let (conn, up) = match &ev {
                Event::ChildUp(c) if !cfg.ike_only => (c.conn.as_str(), true),
                Event::IkeUp { conn, .. } if cfg.ike_only => (conn.as_str(), true),
                Event::IkeDown { conn, reason, .. } => {
                    if std::env::var_os("IKE_LOAD_DEBUG").is_some() {
                        eprintln!("{conn}: IKE SA down: {reason}");
                    }
                    (conn.as_str(), false)
                }
                _ => continue,
            };
            let Some(k) = conn.strip_prefix('p').and_then(|s| s.parse::<usize>().ok()) else {
                continue;
            };
            if let Some(PeerState::InFlight(t)) = state.get(k).copied() {
                in_flight -= 1;
                if up {
                    state[k] = PeerState::Done;
                    res.completed += 1;
                    last_done = Instant::now();
                    latencies.push(last_done - t);
                } else {
                    state[k] = PeerState::Failed;
                    res.failed += 1;
                }
            }
        }
        if now >= next_sweep {
            next_sweep = now + Duration::from_millis(200);
            for s in state.iter_mut() {
                if matches!(s, PeerState::InFlight(t) if now - *t > cfg.give_up) {
                    *s = PeerState::Failed;
                    res.failed += 1;
                    in_flight -= 1;
                }
            }
        }
        if res.completed + res.failed == cfg.peers {
            break;
        }
        if !busy {
            let wait = engine.poll_timeout().map_or(5, |t| {
                t.saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(5)
            });
            wait_readable(&[&s500, &s4500], wait as i32);
        }
    }
    res.elapsed = last_done - started;
    res.retransmits = engine.stats().retransmits;
    latencies.sort();
    if !latencies.is_empty() {
        res.latency_p50 = latencies[latencies.len() / 2];
        res.latency_p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    }
    // Keep the engine (and so the SAs' peers) alive until the caller has measured: the
    // responder is not told anything either way, since nothing is sent from here on.
    drop(engine);
    Ok(res)
}
