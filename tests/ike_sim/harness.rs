//! The two-engine simulator: A and B share an in-memory network that delivers each datagram
//! the moment it is sent (unless the test's filter drops or duplicates it), timers run on
//! simulated time and `run_for` fires them once more at the end of its span; plus the configs,
//! assertions and forged datagrams several test modules share.

use crate::netsim::{conf, Conf, A_IP, B_IP};
use ipsecgw::ike::{ChildDownReason, ChildSa, DownReason, Engine, Event, IkeConfig, Transmit};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::{Duration, Instant};

/// Retransmits 5 times, the first after 4 s.
pub(crate) fn cfg(
    name: &str,
    local: &str,
    remote: Option<&str>,
    ike: &[&str],
    esp: &[&str],
) -> IkeConfig {
    conf(local, remote)
        .name(name)
        .ike(ike)
        .esp(esp)
        .retransmit(5)
}

pub(crate) const IKE3: [&str; 3] = [
    "aes256-sha1-modp1024",
    "aes128-sha1-modp1024",
    "3des-sha1-modp1024",
];

pub(crate) const ESP3: [&str; 3] = ["aes256-sha1", "aes128-sha1", "3des-sha1"];

pub(crate) fn pair() -> (IkeConfig, IkeConfig) {
    (
        cfg("c", A_IP, Some(B_IP), &IKE3, &ESP3),
        cfg("c", B_IP, Some(A_IP), &IKE3, &ESP3),
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    A,
    B,
}

/// What the network does with one datagram.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Deliver,
    Drop,
    Duplicate,
}

/// IKE header fields of a datagram, for filters.
pub(crate) fn exch(t: &Transmit) -> (u8, bool, u32) {
    let d = &t.data;
    (
        d[18],
        d[19] & 0x20 != 0,
        u32::from_be_bytes([d[20], d[21], d[22], d[23]]),
    )
}

pub(crate) type Filter = Box<dyn FnMut(Side, &Transmit) -> Fate>;

pub(crate) struct Sim {
    pub(crate) base: Instant,
    pub(crate) now: Instant,
    pub(crate) a: Engine,
    pub(crate) b: Engine,
    pub(crate) ev_a: Vec<(Duration, Event)>,
    pub(crate) ev_b: Vec<(Duration, Event)>,
    /// Every datagram sent: (time, from, transmit).
    pub(crate) wire: Vec<(Duration, Side, Transmit)>,
    pub(crate) filter: Filter,
}

impl Sim {
    pub(crate) fn new(ca: IkeConfig, cb: IkeConfig, seed: u64) -> Sim {
        let base = Instant::now();
        let mut a = Engine::new(vec![ca], Box::new(StdRng::seed_from_u64(seed)), base);
        let mut b = Engine::new(vec![cb], Box::new(StdRng::seed_from_u64(seed + 1000)), base);
        a.set_keylog(true);
        b.set_keylog(true);
        Sim {
            base,
            now: base,
            a,
            b,
            ev_a: vec![],
            ev_b: vec![],
            wire: vec![],
            filter: Box::new(|_, _| Fate::Deliver),
        }
    }

    pub(crate) fn t(&self) -> Duration {
        self.now - self.base
    }

    pub(crate) fn engine(&mut self, s: Side) -> &mut Engine {
        match s {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// Moves datagrams and events until nothing is left to do at the current time.
    pub(crate) fn pump(&mut self) {
        loop {
            let mut progressed = false;
            for side in [Side::A, Side::B] {
                while let Some(t) = self.engine(side).poll_transmit() {
                    progressed = true;
                    self.wire.push((self.t(), side, t.clone()));
                    let fate = (self.filter)(side, &t);
                    let to = match side {
                        Side::A => Side::B,
                        Side::B => Side::A,
                    };
                    let n = match fate {
                        Fate::Deliver => 1,
                        Fate::Drop => 0,
                        Fate::Duplicate => 2,
                    };
                    let now = self.now;
                    for _ in 0..n {
                        // The receiver sees its own address as local and the sender as remote.
                        self.engine(to)
                            .handle_datagram(now, t.remote, t.local, &t.data);
                    }
                }
                let at = self.t();
                while let Some(e) = self.engine(side).poll_event() {
                    progressed = true;
                    match side {
                        Side::A => self.ev_a.push((at, e)),
                        Side::B => self.ev_b.push((at, e)),
                    }
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Runs timers and traffic until `d` of simulated time has passed.
    pub(crate) fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.pump();
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    self.a.handle_timeout(now);
                    self.b.handle_timeout(now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
        let now = self.now;
        self.a.handle_timeout(now);
        self.b.handle_timeout(now);
        self.pump();
    }

    pub(crate) fn initiate(&mut self) {
        let now = self.now;
        self.a.initiate(now, "c").unwrap();
        self.pump();
    }

    pub(crate) fn events(&self, s: Side) -> Vec<&Event> {
        match s {
            Side::A => self.ev_a.iter().map(|(_, e)| e).collect(),
            Side::B => self.ev_b.iter().map(|(_, e)| e).collect(),
        }
    }

    pub(crate) fn child_ups(&self, s: Side) -> Vec<ChildSa> {
        self.events(s)
            .into_iter()
            .filter_map(|e| match e {
                Event::ChildUp(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    #[allow(dead_code)]
    pub(crate) fn count(&self, s: Side, f: impl Fn(&Event) -> bool) -> usize {
        self.events(s).into_iter().filter(|e| f(e)).count()
    }

    pub(crate) fn ike_ups(&self, s: Side) -> Vec<(u64, u64, bool)> {
        self.events(s)
            .into_iter()
            .filter_map(|e| match e {
                Event::IkeUp {
                    spi_i,
                    spi_r,
                    rekeyed,
                    ..
                } => Some((*spi_i, *spi_r, *rekeyed)),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn ike_downs(&self, s: Side) -> Vec<DownReason> {
        self.events(s)
            .into_iter()
            .filter_map(|e| match e {
                Event::IkeDown { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn child_downs(&self, s: Side) -> Vec<(u32, ChildDownReason)> {
        self.events(s)
            .into_iter()
            .filter_map(|e| match e {
                Event::ChildDown { spi_in, reason, .. } => Some((*spi_in, reason.clone())),
                _ => None,
            })
            .collect()
    }

    /// Child SAs currently installed per the event stream (ChildUp minus ChildDown).
    pub(crate) fn installed(&self, s: Side) -> Vec<ChildSa> {
        let downs: Vec<u32> = self.child_downs(s).into_iter().map(|(s, _)| s).collect();
        self.child_ups(s)
            .into_iter()
            .filter(|c| !downs.contains(&c.spi_in))
            .collect()
    }

    /// Asserts that exactly one CHILD SA is installed on each side and that the two mirror
    /// each other; returns them (A's, B's).
    pub(crate) fn one_mirrored_pair(&self, context: &str) -> (ChildSa, ChildSa) {
        let (mut ia, mut ib) = (self.installed(Side::A), self.installed(Side::B));
        assert_eq!(
            (ia.len(), ib.len()),
            (1, 1),
            "{context}: A {:?} B {:?}",
            self.ev_a,
            self.ev_b
        );
        let (a, b) = (ia.remove(0), ib.remove(0));
        assert_mirrored(&a, &b);
        (a, b)
    }
}

/// The two sides of one CHILD SA must mirror each other.
pub(crate) fn assert_mirrored(a: &ChildSa, b: &ChildSa) {
    assert_eq!(a.spi_in, b.spi_out);
    assert_eq!(a.spi_out, b.spi_in);
    assert_eq!(a.encr, b.encr);
    assert_eq!(a.integ, b.integ);
    assert_eq!(&a.encr_key_in[..], &b.encr_key_out[..]);
    assert_eq!(&a.encr_key_out[..], &b.encr_key_in[..]);
    assert_eq!(&a.integ_key_in[..], &b.integ_key_out[..]);
    assert_eq!(&a.integ_key_out[..], &b.integ_key_in[..]);
    assert_ne!(&a.encr_key_in[..], &a.encr_key_out[..]);
    assert_eq!(a.encr_key_in.len(), a.encr.keymat_len());
    assert_eq!(a.integ_key_in.len(), a.integ.map_or(0, |i| i.key_len()));
}

pub(crate) fn established(ca: IkeConfig, cb: IkeConfig, seed: u64) -> Sim {
    let mut sim = Sim::new(ca, cb, seed);
    sim.initiate();
    sim.run_for(Duration::from_millis(10));
    assert_eq!(sim.ike_ups(Side::A).len(), 1, "A events: {:?}", sim.ev_a);
    assert_eq!(sim.ike_ups(Side::B).len(), 1, "B events: {:?}", sim.ev_b);
    sim
}

/// A 33-byte datagram: an IKE header with the given SPIs and an SK payload too short to
/// hold an IV and ICV (rejected before any integrity check could run).
pub(crate) fn spoofed_short_sk(spi_i: u64, spi_r: u64, exchange: u8, msg_id: u32) -> Vec<u8> {
    let mut d = Vec::with_capacity(33);
    d.extend_from_slice(&spi_i.to_be_bytes());
    d.extend_from_slice(&spi_r.to_be_bytes());
    d.extend_from_slice(&[46, 0x20, exchange, 0x08]);
    d.extend_from_slice(&msg_id.to_be_bytes());
    d.extend_from_slice(&33u32.to_be_bytes());
    d.extend_from_slice(&[35, 0, 0, 5, 0xaa]);
    assert_eq!(d.len(), 33);
    d
}
