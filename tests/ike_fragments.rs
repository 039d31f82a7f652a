//! IKE fragmentation (RFC 7383) between two in-memory engines with simulated time: the
//! network here hands each batch of datagrams to the test, which may lose, reorder,
//! duplicate or forge fragments before they are delivered.

use ipsecgw::crypto::proposal::{parse_esp, parse_ike};
use ipsecgw::ike::{
    ChildConfig, ConnState, DpdAction, Engine, Event, FragmentConfig, FragmentationMode, IkeConfig,
    RetransmitConfig, StartAction, Transmit,
};
use ipsecgw::prefix::IpPrefix;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

const A_IP: &str = "192.0.2.1";
const B_IP: &str = "192.0.2.2";
const PT_SKF: u8 = 53;
const EXCH_IKE_AUTH: u8 = 35;

/// `n` /32 selectors: enough of them make IKE_AUTH bigger than one fragment.
fn selectors(second_octet: u8, n: usize) -> Vec<IpPrefix> {
    (0..n)
        .map(|i| format!("10.{second_octet}.{}.0/24", i).parse().unwrap())
        .collect()
}

fn cfg(local: &str, remote: &str, ts: (u8, u8), n_ts: usize, frag: FragmentConfig) -> IkeConfig {
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
            limits: Default::default(),
        }],
    }
}

fn frag(mode: FragmentationMode, size: u16) -> FragmentConfig {
    FragmentConfig { mode, size }
}

/// A pair whose IKE_AUTH messages (40 selectors each way) need several 576-byte fragments.
fn big_pair(ma: FragmentationMode, mb: FragmentationMode) -> (IkeConfig, IkeConfig) {
    (
        cfg(A_IP, B_IP, (1, 2), 40, frag(ma, 576)),
        cfg(B_IP, A_IP, (2, 1), 40, frag(mb, 576)),
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    A,
    B,
}

/// One datagram on the wire.
#[derive(Clone)]
struct Dgram {
    from: Side,
    t: Transmit,
}

impl Dgram {
    /// (number, total) when it carries an SKF payload.
    fn fragment(&self) -> Option<(u16, u16)> {
        let d = &self.t.data;
        (d.get(16) == Some(&PT_SKF)).then(|| {
            (
                u16::from_be_bytes([d[32], d[33]]),
                u16::from_be_bytes([d[34], d[35]]),
            )
        })
    }

    fn exchange(&self) -> u8 {
        self.t.data[18]
    }

    fn is_response(&self) -> bool {
        self.t.data[19] & 0x20 != 0
    }
}

/// What the network does to each batch of datagrams before delivering it, in order.
type Network = Box<dyn FnMut(&mut Vec<Dgram>)>;

struct Sim {
    now: Instant,
    a: Engine,
    b: Engine,
    events: Vec<(Side, Event)>,
    /// Every datagram as sent, before the network touched it.
    sent: Vec<(Duration, Dgram)>,
    base: Instant,
    net: Network,
}

impl Sim {
    fn new((ca, cb): (IkeConfig, IkeConfig), seed: u64) -> Sim {
        let now = Instant::now();
        Sim {
            now,
            a: Engine::new(vec![ca], Box::new(StdRng::seed_from_u64(seed)), now),
            b: Engine::new(vec![cb], Box::new(StdRng::seed_from_u64(seed + 1)), now),
            events: vec![],
            sent: vec![],
            base: now,
            net: Box::new(|_| {}),
        }
    }

    fn engine(&mut self, s: Side) -> &mut Engine {
        match s {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// Delivers batches until both engines are quiet at the current time.
    fn pump(&mut self) {
        loop {
            let mut batch = Vec::new();
            for side in [Side::A, Side::B] {
                while let Some(t) = self.engine(side).poll_transmit() {
                    batch.push(Dgram { from: side, t });
                }
                while let Some(e) = self.engine(side).poll_event() {
                    self.events.push((side, e));
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

    fn run_for(&mut self, d: Duration) {
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

    fn establish(&mut self) {
        let now = self.now;
        self.a.initiate(now, "c").unwrap();
        self.run_for(Duration::from_secs(60));
    }

    fn up(&self, side: Side) -> bool {
        let e = match side {
            Side::A => &self.a,
            Side::B => &self.b,
        };
        let st = e.status(self.now);
        st[0].state == ConnState::Established && !st[0].children.is_empty()
    }

    fn child_ups(&self, side: Side) -> usize {
        self.events
            .iter()
            .filter(|(s, e)| *s == side && matches!(e, Event::ChildUp(_)))
            .count()
    }

    /// Fragments sent by `side` in `exchange`, requests or responses.
    fn fragments(&self, side: Side, exchange: u8, response: bool) -> Vec<(Duration, Dgram)> {
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

    fn assert_up_once(&self) {
        assert!(self.up(Side::A) && self.up(Side::B), "not established");
        assert_eq!((self.child_ups(Side::A), self.child_ups(Side::B)), (1, 1));
    }
}

#[test]
fn big_ike_auth_goes_in_fragments_both_ways() {
    let mut sim = Sim::new(big_pair(FragmentationMode::Yes, FragmentationMode::Yes), 1);
    sim.establish();
    sim.assert_up_once();
    let req = sim.fragments(Side::A, EXCH_IKE_AUTH, false);
    let resp = sim.fragments(Side::B, EXCH_IKE_AUTH, true);
    assert!(req.len() >= 3, "request in {} fragments", req.len());
    assert!(resp.len() >= 3, "response in {} fragments", resp.len());
    let total = req[0].1.fragment().unwrap().1;
    let numbers: Vec<u16> = req.iter().map(|(_, d)| d.fragment().unwrap().0).collect();
    assert_eq!(numbers, (1..=total).collect::<Vec<_>>());
    // Every fragment fits the configured 576-byte datagram (20 IP + 8 UDP headers).
    for (_, d) in req.iter().chain(&resp) {
        assert!(d.t.data.len() + 28 <= 576, "{} bytes", d.t.data.len());
    }
    let (sa, sb) = (sim.a.stats(), sim.b.stats());
    assert_eq!(sa.fragments_sent, req.len() as u64);
    assert_eq!(sb.fragments_received, req.len() as u64);
    assert_eq!(sb.fragments_sent, resp.len() as u64);
    assert_eq!((sa.fragments_reassembled, sb.fragments_reassembled), (1, 1));
    assert_eq!(sa.fragments_dropped + sb.fragments_dropped, 0);
    let ike = sim.a.status(sim.now)[0].ike.clone().unwrap();
    assert!(ike.fragments.negotiated);
    assert_eq!(ike.fragments.sent, req.len() as u64);
    assert_eq!(ike.fragments.received, resp.len() as u64);
    // IKE_SA_INIT is never fragmented.
    assert!(sim
        .sent
        .iter()
        .all(|(_, d)| d.exchange() != 34 || d.fragment().is_none()));
}

#[test]
fn small_messages_and_unwilling_peers_are_not_fragmented() {
    // Small IKE_AUTH: support negotiated, nothing fragmented.
    let small = (
        cfg(A_IP, B_IP, (1, 2), 1, frag(FragmentationMode::Yes, 576)),
        cfg(B_IP, A_IP, (2, 1), 1, frag(FragmentationMode::Yes, 576)),
    );
    let mut sim = Sim::new(small, 2);
    sim.establish();
    sim.assert_up_once();
    assert!(sim.sent.iter().all(|(_, d)| d.fragment().is_none()));
    assert!(
        sim.a.status(sim.now)[0]
            .ike
            .clone()
            .unwrap()
            .fragments
            .negotiated
    );

    // B does not announce support: A sends its big IKE_AUTH whole (the network here
    // carries it), and B answers whole.
    let mut sim = Sim::new(big_pair(FragmentationMode::Yes, FragmentationMode::No), 3);
    sim.establish();
    sim.assert_up_once();
    assert!(sim.sent.iter().all(|(_, d)| d.fragment().is_none()));
    assert!(
        !sim.a.status(sim.now)[0]
            .ike
            .clone()
            .unwrap()
            .fragments
            .negotiated
    );

    // A accepts but does not send fragments; B fragments its response.
    let mut sim = Sim::new(
        big_pair(FragmentationMode::Accept, FragmentationMode::Force),
        4,
    );
    sim.establish();
    sim.assert_up_once();
    assert!(sim.fragments(Side::A, EXCH_IKE_AUTH, false).is_empty());
    assert!(sim.fragments(Side::B, EXCH_IKE_AUTH, true).len() >= 3);
}

#[test]
fn lost_request_fragment_makes_the_initiator_resend_every_fragment() {
    let mut sim = Sim::new(big_pair(FragmentationMode::Yes, FragmentationMode::Yes), 5);
    let mut lost = false;
    sim.net = Box::new(move |batch| {
        batch.retain(|d| {
            let drop = !lost && d.from == Side::A && d.fragment().is_some_and(|f| f.0 == 2);
            lost |= drop;
            !drop
        })
    });
    sim.establish();
    sim.assert_up_once();
    let req = sim.fragments(Side::A, EXCH_IKE_AUTH, false);
    let total = usize::from(req[0].1.fragment().unwrap().1);
    // Sent twice, whole: at 0 s and at the 4 s retransmission.
    assert_eq!(req.len(), 2 * total);
    assert!(req[total..]
        .iter()
        .all(|(t, _)| *t == Duration::from_secs(4)));
    assert_eq!(sim.a.stats().retransmits, 1);
    // B kept fragment 1 and 3.. from the first transmission: their copies are duplicates.
    assert_eq!(sim.b.stats().fragments_dropped, (total - 1) as u64);
}

#[test]
fn lost_response_fragment_is_answered_with_the_cached_fragments() {
    let mut sim = Sim::new(big_pair(FragmentationMode::Yes, FragmentationMode::Yes), 6);
    let mut lost = false;
    sim.net = Box::new(move |batch| {
        batch.retain(|d| {
            let drop = !lost && d.from == Side::B && d.fragment().is_some_and(|f| f.0 == 2);
            lost |= drop;
            !drop
        })
    });
    sim.establish();
    sim.assert_up_once();
    let resp = sim.fragments(Side::B, EXCH_IKE_AUTH, true);
    let total = usize::from(resp[0].1.fragment().unwrap().1);
    // A's retransmitted request: only its fragment 1 makes B re-send the response, once,
    // and byte for byte the fragments it sent the first time.
    assert_eq!(resp.len(), 2 * total);
    for i in 0..total {
        assert_eq!(
            resp[i].1.t.data,
            resp[total + i].1.t.data,
            "fragment {}",
            i + 1
        );
    }
    let sb = sim.b.stats();
    assert_eq!(sb.responses_resent, 1);
    assert_eq!(sim.child_ups(Side::B), 1, "the request was processed once");
}

#[test]
fn reordered_and_duplicated_fragments_are_reassembled_once() {
    let mut sim = Sim::new(big_pair(FragmentationMode::Yes, FragmentationMode::Yes), 7);
    sim.net = Box::new(|batch| {
        batch.reverse();
        let copies: Vec<Dgram> = batch
            .iter()
            .filter(|d| d.fragment().is_some())
            .cloned()
            .collect();
        batch.extend(copies);
    });
    sim.establish();
    sim.assert_up_once();
    let (sa, sb) = (sim.a.stats(), sim.b.stats());
    let req = sim.fragments(Side::A, EXCH_IKE_AUTH, false).len() as u64;
    let resp = sim.fragments(Side::B, EXCH_IKE_AUTH, true).len() as u64;
    // The first copy of each is kept; the second copies arrive after the message was
    // whole. At B they are fragments of an answered request: fragment 1 makes B re-send
    // its cached response (once), the others are dropped. At A the response is no longer
    // awaited: dropped by message ID.
    assert_eq!((sa.fragments_reassembled, sb.fragments_reassembled), (1, 1));
    assert_eq!(sb.fragments_received, req);
    assert_eq!(sb.fragments_dropped, req - 1);
    assert_eq!(sb.responses_resent, 1);
    // B sent its response twice (the re-send of the cache); A kept the first copy of each.
    assert_eq!(sa.fragments_received, resp / 2);
    assert!(sa.bad_msgid_dropped >= resp, "{sa:?}");
}

#[test]
fn forged_fragments_are_dropped_before_reassembly() {
    let mut sim = Sim::new(big_pair(FragmentationMode::Yes, FragmentationMode::Yes), 8);
    let mut forged = 0;
    sim.net = Box::new(move |batch| {
        // Ahead of each genuine fragment 2 goes a forgery with the same numbers: if it were
        // kept, the genuine one would be refused as a duplicate and nothing would decrypt.
        let mut out = Vec::new();
        for d in batch.drain(..) {
            if d.fragment().is_some_and(|f| f.0 == 2) && forged < 2 {
                let mut bad = d.clone();
                let n = bad.t.data.len();
                bad.t.data[n - 20] ^= 0x55;
                out.push(bad);
                forged += 1;
            }
            out.push(d);
        }
        *batch = out;
    });
    sim.establish();
    sim.assert_up_once();
    let (sa, sb) = (sim.a.stats(), sim.b.stats());
    assert_eq!(sa.decrypt_failed + sb.decrypt_failed, 2);
    assert_eq!(sa.fragments_dropped + sb.fragments_dropped, 0);
    assert_eq!(sa.retransmits, 0, "no retransmission was needed");
}

#[test]
fn fragments_of_other_message_ids_are_not_kept() {
    let mut sim = Sim::new(big_pair(FragmentationMode::Yes, FragmentationMode::Yes), 9);
    sim.net = Box::new(|batch| {
        // A copy of each request fragment with message ID 7 (beyond the window) goes first.
        let mut out = Vec::new();
        for d in batch.drain(..) {
            if d.fragment().is_some() && !d.is_response() {
                let mut odd = d.clone();
                odd.t.data[20..24].copy_from_slice(&7u32.to_be_bytes());
                out.push(odd);
            }
            out.push(d);
        }
        *batch = out;
    });
    sim.establish();
    sim.assert_up_once();
    let req = sim.fragments(Side::A, EXCH_IKE_AUTH, false).len() as u64;
    let sb = sim.b.stats();
    assert_eq!(sb.bad_msgid_dropped, req);
    assert_eq!(sb.fragments_received, req);
}
