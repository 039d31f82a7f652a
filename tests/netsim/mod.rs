//! Two in-memory IKE engines with simulated time and a network that hands each batch of
//! datagrams to the test, which may lose, reorder, duplicate or forge them before they are
//! delivered (used by ike_fragments and child_lifetimes).
#![allow(dead_code)]

use ipsecgw::crypto::proposal::{parse_esp, parse_ike};
use ipsecgw::ike::{
    ChildConfig, ChildLimits, ChildSa, ConnState, DpdAction, Engine, Event, FragmentConfig,
    FragmentationMode, IkeConfig, RetransmitConfig, StartAction, Transmit,
};
use ipsecgw::prefix::IpPrefix;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

pub const A_IP: &str = "192.0.2.1";
pub const B_IP: &str = "192.0.2.2";
pub const PSK: &[u8] = b"lab-psk-0123456789";
pub const PT_SKF: u8 = 53;
pub const EXCH_IKE_AUTH: u8 = 35;

/// `n` /32 selectors: enough of them make IKE_AUTH bigger than one fragment.
pub fn selectors(second_octet: u8, n: usize) -> Vec<IpPrefix> {
    (0..n)
        .map(|i| format!("10.{second_octet}.{}.0/24", i).parse().unwrap())
        .collect()
}

/// A connection named "c" from `local` to `remote` (None: a responder for any address),
/// identities = addresses, PSK `PSK`, aes256-sha1-modp1024 / aes256-sha1, one CHILD "net"
/// for 0.0.0.0/0 both ways, no rekeys or DPD; `Conf`'s methods change one thing each.
pub fn conf(local: &str, remote: Option<&str>) -> IkeConfig {
    IkeConfig {
        name: "c".into(),
        local_addrs: vec![local.parse().unwrap()],
        remote_addrs: remote.map(|r| vec![r.parse().unwrap()]).unwrap_or_default(),
        local_port: 500,
        remote_port: 500,
        local_id: local.parse().unwrap(),
        remote_id: remote.map(|r| r.parse().unwrap()),
        psk: Zeroizing::new(PSK.to_vec()),
        proposals: vec![parse_ike("aes256-sha1-modp1024").unwrap()],
        start_action: StartAction::None,
        encap_always: false,
        rekey_time: Duration::ZERO,
        dpd_delay: Duration::ZERO,
        dpd_action: DpdAction::Clear,
        retransmit: RetransmitConfig::default(),
        fragmentation: FragmentConfig::default(),
        children: vec![ChildConfig {
            name: "net".into(),
            local_ts: vec!["0.0.0.0/0".parse().unwrap()],
            remote_ts: vec!["0.0.0.0/0".parse().unwrap()],
            proposals: vec![parse_esp("aes256-sha1").unwrap()],
            rekey_time: Duration::ZERO,
            replay_window: 64,
            limits: ChildLimits::default(),
        }],
    }
}

/// Builder-style overrides of `conf`'s defaults.
pub trait Conf: Sized {
    fn name(self, name: &str) -> Self;
    fn psk(self, psk: &[u8]) -> Self;
    fn ike(self, proposals: &[&str]) -> Self;
    fn esp(self, proposals: &[&str]) -> Self;
    /// `tries` retransmits, the first after 4 s, backing off by 1.8.
    fn retransmit(self, tries: u32) -> Self;
    fn ts(self, local: Vec<IpPrefix>, remote: Vec<IpPrefix>) -> Self;
    fn frag(self, f: FragmentConfig) -> Self;
    /// Accepts any peer identity.
    fn any_id(self) -> Self;
}

impl Conf for IkeConfig {
    fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }
    fn psk(mut self, psk: &[u8]) -> Self {
        self.psk = Zeroizing::new(psk.to_vec());
        self
    }
    fn ike(mut self, proposals: &[&str]) -> Self {
        self.proposals = proposals.iter().map(|p| parse_ike(p).unwrap()).collect();
        self
    }
    fn esp(mut self, proposals: &[&str]) -> Self {
        self.children[0].proposals = proposals.iter().map(|p| parse_esp(p).unwrap()).collect();
        self
    }
    fn retransmit(mut self, tries: u32) -> Self {
        self.retransmit = RetransmitConfig {
            timeout: Duration::from_secs(4),
            base: 1.8,
            tries,
        };
        self
    }
    fn ts(mut self, local: Vec<IpPrefix>, remote: Vec<IpPrefix>) -> Self {
        self.children[0].local_ts = local;
        self.children[0].remote_ts = remote;
        self
    }
    fn frag(mut self, f: FragmentConfig) -> Self {
        self.fragmentation = f;
        self
    }
    fn any_id(mut self) -> Self {
        self.remote_id = None;
        self
    }
}

/// The fragmentation tests' connection: `n_ts` /24 selectors each way (10.{ts.0}.x.0 local).
pub fn cfg(
    local: &str,
    remote: &str,
    ts: (u8, u8),
    n_ts: usize,
    frag: FragmentConfig,
) -> IkeConfig {
    conf(local, Some(remote))
        .psk(b"fragment-psk-0123456789")
        .ike(&["aes256-sha256-modp2048"])
        .ts(selectors(ts.0, n_ts), selectors(ts.1, n_ts))
        .frag(frag)
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
        Sim::engines(vec![ca], vec![cb], (seed, seed + 1))
    }

    /// Engines with several connections each, their RNGs seeded with `seeds`.
    pub fn engines(a: Vec<IkeConfig>, b: Vec<IkeConfig>, seeds: (u64, u64)) -> Sim {
        let now = Instant::now();
        Sim {
            now,
            a: Engine::new(a, Box::new(StdRng::seed_from_u64(seeds.0)), now),
            b: Engine::new(b, Box::new(StdRng::seed_from_u64(seeds.1)), now),
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

    /// A initiates `conn`; the exchanges run without time passing.
    pub fn initiate(&mut self, conn: &str) {
        let now = self.now;
        self.a.initiate(now, conn).unwrap();
        self.pump();
    }

    /// `side` rekeys connection "c" (its IKE SA with `ike`, else its CHILD SA), time standing.
    pub fn rekey(&mut self, side: Side, ike: bool) {
        let now = self.now;
        self.engine(side).rekey(now, "c", ike).unwrap();
        self.pump();
    }

    /// The events `side` reported, in order.
    pub fn events_of(&self, side: Side) -> impl Iterator<Item = &Event> {
        self.events
            .iter()
            .filter(move |(s, _)| *s == side)
            .map(|(_, e)| e)
    }

    /// Every CHILD SA `side` installed, in order.
    pub fn children(&self, side: Side) -> Vec<&ChildSa> {
        self.events_of(side)
            .filter_map(|e| match e {
                Event::ChildUp(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    /// The datagrams `side` sent, as sent.
    pub fn sent_by(&self, side: Side) -> impl Iterator<Item = &[u8]> {
        self.sent
            .iter()
            .filter(move |(_, d)| d.from == side)
            .map(|(_, d)| &d.t.data[..])
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
