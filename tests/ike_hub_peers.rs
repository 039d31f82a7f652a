//! A hub connection (`remote_addrs = ["%any"]`, any identity) with several peers behind one
//! address (one NAT): each peer is its address *and* the identity it proved, so a second
//! peer's INITIAL_CONTACT or IKE SA does not take the first one's down; the same identity
//! coming back still replaces its stale SA.

mod netsim;

use ipsecgw::ike::{DownReason, Engine, Event, IkeConfig};
use netsim::{conf, Conf};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const HUB: &str = "192.0.2.2:500";
const NAT: &str = "192.0.2.1";

/// A connection from `local` (its port too) to `remote` (None: any address), proving `id`,
/// accepting any peer identity, with the hub's PSK.
fn cfg(name: &str, local: SocketAddr, remote: Option<SocketAddr>, id: &str) -> IkeConfig {
    let remote = remote.map(|r| r.ip().to_string());
    let mut c = conf(&local.ip().to_string(), remote.as_deref())
        .name(name)
        .psk(b"hub-psk-0123456789")
        .any_id();
    c.local_port = local.port();
    c.local_id = id.parse().unwrap();
    c
}

struct Net {
    now: Instant,
    hub: Engine,
    hub_events: Vec<Event>,
    /// Peers by their (shared-address) local endpoint.
    peers: Vec<(SocketAddr, Engine)>,
}

impl Net {
    fn peer(&mut self, port: u16, id: &str, seed: u64) -> usize {
        let local: SocketAddr = format!("{NAT}:{port}").parse().unwrap();
        let c = cfg("up", local, Some(HUB.parse().unwrap()), id);
        let e = Engine::new(vec![c], Box::new(StdRng::seed_from_u64(seed)), self.now);
        self.peers.push((local, e));
        self.peers.len() - 1
    }

    /// Delivers every datagram until the network is quiet.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.hub.poll_transmit() {
                moved = true;
                if let Some((_, p)) = self.peers.iter_mut().find(|(l, _)| *l == t.remote) {
                    p.handle_datagram(self.now, t.remote, t.local, &t.data);
                }
            }
            for (_, p) in &mut self.peers {
                while let Some(t) = p.poll_transmit() {
                    moved = true;
                    self.hub
                        .handle_datagram(self.now, t.remote, t.local, &t.data);
                }
            }
            while let Some(ev) = self.hub.poll_event() {
                self.hub_events.push(ev);
            }
            if !moved {
                return;
            }
            self.now += Duration::from_millis(10);
        }
    }

    fn hub_ups(&self) -> usize {
        let up = |e: &&Event| matches!(e, Event::IkeUp { .. });
        self.hub_events.iter().filter(up).count()
    }

    fn hub_downs(&self) -> Vec<DownReason> {
        self.hub_events
            .iter()
            .filter_map(|e| match e {
                Event::IkeDown { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn peers_behind_one_address_keep_their_own_sas() {
    let now = Instant::now();
    let hub_cfg = cfg("hub", HUB.parse().unwrap(), None, "192.0.2.2");
    let hub = Engine::new(vec![hub_cfg], Box::new(StdRng::seed_from_u64(1)), now);
    let mut net = Net {
        now,
        hub,
        hub_events: vec![],
        peers: vec![],
    };
    for (i, id) in ["a.branch.test", "b.branch.test", "c.branch.test"]
        .iter()
        .enumerate()
    {
        let p = net.peer(40000 + i as u16, id, 10 + i as u64);
        net.peers[p].1.initiate(net.now, "up").unwrap();
        net.pump();
    }
    assert_eq!(net.hub_ups(), 3, "three peers, three IKE SAs");
    assert_eq!(net.hub_downs(), vec![], "no peer replaced another");

    // a.branch.test restarts behind the same NAT (a fresh engine, a new port): its
    // INITIAL_CONTACT replaces its own stale SA, and only that one.
    let p = net.peer(40100, "a.branch.test", 20);
    net.peers[p].1.initiate(net.now, "up").unwrap();
    net.pump();
    assert_eq!(net.hub_ups(), 4);
    assert_eq!(net.hub_downs(), vec![DownReason::ReplacedByInitialContact]);
}
