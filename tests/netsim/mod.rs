//! Two in-memory IKE engines with simulated time and a network that hands each batch of
//! datagrams to the test, which may lose, reorder, duplicate or forge them before they are
//! delivered (used by ike_fragments and child_lifetimes).
#![allow(dead_code)]

use ipsecgw::crypto::proposal::{parse_esp, parse_ike};
use ipsecgw::ike::{
    ChildConfig, ChildLimits, ConnState, DpdAction, Engine, Event, FragmentConfig,
    FragmentationMode, IkeConfig, RetransmitConfig, StartAction, Transmit,
};
use ipsecgw::prefix::IpPrefix;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

pub const A_IP: &str = "192.0.2.1";
pub const B_IP: &str = "192.0.2.2";
pub const PT_SKF: u8 = 53;
pub const EXCH_IKE_AUTH: u8 = 35;

/// `n` /32 selectors: enough of them make IKE_AUTH bigger than one fragment.
pub fn selectors(second_octet: u8, n: usize) -> Vec<IpPrefix> {
    (0..n)
        .map(|i| format!("10.{second_octet}.{}.0/24", i).parse().unwrap())
        .collect()
}

pub fn cfg(
    local: &str,
    remote: &str,
    ts: (u8, u8),
    n_ts: usize,
    frag: FragmentConfig,
) -> IkeConfig {
    IkeConfig {
        name: "c".into(),
        local_addrs: vec![local.parse().unwrap()],
        remote_addrs: vec![remote.parse().unwrap()],
        local_port: 500,
        remote_port: 500,
        local_id: local.parse().unwrap(),
        remote_id: Some(remote.parse().unwrap()),
        psk: Zeroizing::new(b"fragment-psk-0123456789".to_vec()),
        proposals: vec![parse_ike("aes256-sha256-modp2048").unwrap()],
        start_action: StartAction::None,
        encap_always: false,
        rekey_time: Duration::ZERO,
        dpd_delay: Duration::ZERO,
        dpd_action: DpdAction::Clear,
        retransmit: RetransmitConfig::default(),
        fragmentation: frag,
        children: vec![ChildConfig {
            name: "net".into(),
            local_ts: selectors(ts.0, n_ts),
            remote_ts: selectors(ts.1, n_ts),
            proposals: vec![parse_esp("aes256-sha1").unwrap()],
            rekey_time: Duration::ZERO,
            replay_window: 64,
            limits: ChildLimits::default(),
        }],
    }
}

pub fn frag(mode: FragmentationMode, size: u16) -> FragmentConfig {
    FragmentConfig { mode, size }
}

/// A pair whose IKE_AUTH messages (40 selectors each way) need several 576-byte fragments.
pub fn big_pair(ma: FragmentationMode, mb: FragmentationMode) -> (IkeConfig, IkeConfig) {
    (
        cfg(A_IP, B_IP, (1, 2), 40, frag(ma, 576)),
        cfg(B_IP, A_IP, (2, 1), 40, frag(mb, 576)),
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

/// One datagram on the wire.
#[derive(Clone)]
pub struct Dgram {
    pub from: Side,
    pub t: Transmit,
}

impl Dgram {
    /// (number, total) when it carries an SKF payload.
    pub fn fragment(&self) -> Option<(u16, u16)> {
        let d = &self.t.data;
        (d.get(16) == Some(&PT_SKF)).then(|| {
            (
                u16::from_be_bytes([d[32], d[33]]),
                u16::from_be_bytes([d[34], d[35]]),
            )
        })
    }

    pub fn exchange(&self) -> u8 {
        self.t.data[18]
    }

    pub fn is_response(&self) -> bool {
        self.t.data[19] & 0x20 != 0
    }
}

/// What the network does to each batch of datagrams before delivering it, in order.
pub type Network = Box<dyn FnMut(&mut Vec<Dgram>)>;

pub struct Sim {
    pub now: Instant,
    pub a: Engine,
    pub b: Engine,
    pub events: Vec<(Side, Event)>,
    /// When each of `events` came, since the start.
    pub event_at: Vec<Duration>,
    /// Every datagram as sent, before the network touched it.
    pub sent: Vec<(Duration, Dgram)>,
    pub base: Instant,
    pub net: Network,
}

impl Sim {
    pub fn new((ca, cb): (IkeConfig, IkeConfig), seed: u64) -> Sim {
        let now = Instant::now();
        Sim {
            now,
            a: Engine::new(vec![ca], Box::new(StdRng::seed_from_u64(seed)), now),
            b: Engine::new(vec![cb], Box::new(StdRng::seed_from_u64(seed + 1)), now),
            events: vec![],
            event_at: vec![],
            sent: vec![],
            base: now,
            net: Box::new(|_| {}),
        }
    }

    pub fn engine(&mut self, s: Side) -> &mut Engine {
        match s {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// Delivers batches until both engines are quiet at the current time.
    pub fn pump(&mut self) {
        loop {
            let mut batch = Vec::new();
            for side in [Side::A, Side::B] {
                while let Some(t) = self.engine(side).poll_transmit() {
                    batch.push(Dgram { from: side, t });
                }
                while let Some(e) = self.engine(side).poll_event() {
                    self.events.push((side, e));
                    self.event_at.push(self.now - self.base);
                }
            }
            if batch.is_empty() {
                return;
            }
            let at = self.now - self.base;
            self.sent.extend(batch.iter().map(|d| (at, d.clone())));
            (self.net)(&mut batch);
            let now = self.now;
            for d in batch {
                let to = match d.from {
                    Side::A => Side::B,
                    Side::B => Side::A,
                };
                self.engine(to)
                    .handle_datagram(now, d.t.remote, d.t.local, &d.t.data);
            }
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.pump();
        while let Some(t) = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .filter(|t| *t <= end)
        {
            self.now = self.now.max(t);
            let now = self.now;
            self.a.handle_timeout(now);
            self.b.handle_timeout(now);
            self.pump();
        }
        self.now = end;
    }

    pub fn establish(&mut self) {
        let now = self.now;
        self.a.initiate(now, "c").unwrap();
        self.run_for(Duration::from_secs(60));
    }

    pub fn up(&self, side: Side) -> bool {
        let e = match side {
            Side::A => &self.a,
            Side::B => &self.b,
        };
        let st = e.status(self.now);
        st[0].state == ConnState::Established && !st[0].children.is_empty()
    }

    pub fn child_ups(&self, side: Side) -> usize {
        self.events
            .iter()
            .filter(|(s, e)| *s == side && matches!(e, Event::ChildUp(_)))
            .count()
    }

    /// Fragments sent by `side` in `exchange`, requests or responses.
    pub fn fragments(&self, side: Side, exchange: u8, response: bool) -> Vec<(Duration, Dgram)> {
        self.sent
            .iter()
            .filter(|(_, d)| {
                d.from == side
                    && d.exchange() == exchange
                    && d.is_response() == response
                    && d.fragment().is_some()
            })
            .cloned()
            .collect()
    }

    pub fn assert_up_once(&self) {
        assert!(self.up(Side::A) && self.up(Side::B), "not established");
        assert_eq!((self.child_ups(Side::A), self.child_ups(Side::B)), (1, 1));
    }
}
