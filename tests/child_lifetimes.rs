//! Volume and packet lifetimes of CHILD SAs (rekey_bytes, life_bytes, rekey_packets,
//! life_packets) and rand_time, between two in-memory engines with simulated time. The
//! traffic counts are what the daemon hands the engine from the data plane on each tick.

mod netsim;
use ipsecgw::ike::{ChildDownReason, ChildLimits, ChildSa, Event, FragmentConfig, IkeConfig};
use netsim::*;
use std::time::Duration;

const A_IP: &str = "192.0.2.1";
const B_IP: &str = "192.0.2.2";

fn pair(limits: ChildLimits, rekey_time: Duration) -> (IkeConfig, IkeConfig) {
    let mut a = cfg(A_IP, B_IP, (1, 2), 1, FragmentConfig::default());
    let mut b = cfg(B_IP, A_IP, (2, 1), 1, FragmentConfig::default());
    a.children[0].limits = limits;
    a.children[0].rekey_time = rekey_time;
    // The responder keeps its own (no) limits: only A acts on volume.
    b.children[0].rekey_time = Duration::ZERO;
    (a, b)
}

fn established(limits: ChildLimits, rekey_time: Duration, seed: u64) -> Sim {
    let mut sim = Sim::new(pair(limits, rekey_time), seed);
    let now = sim.now;
    sim.a.initiate(now, "c").unwrap();
    sim.run_for(Duration::from_millis(100));
    assert_eq!(ups(&sim, Side::A).len(), 1);
    sim
}

fn ups(sim: &Sim, side: Side) -> Vec<ChildSa> {
    sim.events
        .iter()
        .filter(|(s, _)| *s == side)
        .filter_map(|(_, e)| match e {
            Event::ChildUp(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn downs(sim: &Sim, side: Side) -> Vec<(u32, ChildDownReason)> {
    sim.events
        .iter()
        .filter(|(s, _)| *s == side)
        .filter_map(|(_, e)| match e {
            Event::ChildDown { spi_in, reason, .. } => Some((*spi_in, reason.clone())),
            _ => None,
        })
        .collect()
}

/// A's data plane reports this much traffic on `spi_in` (busier direction), one tick.
fn usage(sim: &mut Sim, spi_in: u32, bytes: u64, packets: u64) {
    let now = sim.now;
    sim.a.child_usage(now, spi_in, bytes, packets);
    sim.run_for(Duration::from_millis(100));
}

const AZURE_KB: u64 = 102_400_000;

#[test]
fn byte_limit_rekeys_once_and_the_new_sa_starts_from_zero() {
    let limits = ChildLimits {
        rekey_bytes: 1_000_000,
        life_bytes: 1_100_000,
        ..ChildLimits::default()
    };
    let mut sim = established(limits, Duration::ZERO, 1);
    let first = ups(&sim, Side::A)[0].spi_in;
    // Below the lowest jittered limit (half of rekey_bytes at most is taken off): nothing.
    usage(&mut sim, first, 899_999, 10);
    assert_eq!(ups(&sim, Side::A).len(), 1);
    usage(&mut sim, first, 1_000_000, 10);
    let a = ups(&sim, Side::A);
    assert_eq!(a.len(), 2, "{:?}", sim.events);
    assert_eq!(a[1].rekey_of, Some(first));
    assert_eq!(ups(&sim, Side::B).len(), 2);
    assert!(downs(&sim, Side::A).contains(&(first, ChildDownReason::Rekeyed)));
    // The old SA is gone; its counters mean nothing now, and one rekey is all it gets.
    usage(&mut sim, first, 1_050_000, 10);
    assert_eq!(ups(&sim, Side::A).len(), 2);
    // The new SA is measured from its own zero.
    let second = a[1].spi_in;
    usage(&mut sim, second, 100, 1);
    assert_eq!(ups(&sim, Side::A).len(), 2);
    usage(&mut sim, second, 1_000_000, 1);
    assert_eq!(ups(&sim, Side::A).len(), 3);
}

#[test]
fn packet_limit_rekeys() {
    let limits = ChildLimits {
        rekey_packets: 5000,
        life_packets: 6000,
        ..ChildLimits::default()
    };
    let mut sim = established(limits, Duration::ZERO, 2);
    let first = ups(&sim, Side::A)[0].spi_in;
    usage(&mut sim, first, u64::MAX / 2, 2499);
    assert_eq!(ups(&sim, Side::A).len(), 1, "bytes are not limited here");
    usage(&mut sim, first, 0, 5000);
    let a = ups(&sim, Side::A);
    assert_eq!(a.len(), 2);
    assert_eq!(a[1].rekey_of, Some(first));
    assert_eq!(sim.a.stats().child_rekeyed, 1);
}

#[test]
fn hard_limit_deletes_the_child_and_keeps_the_ike_sa() {
    let limits = ChildLimits {
        rekey_packets: 5000,
        life_packets: 6000,
        ..ChildLimits::default()
    };
    let mut sim = established(limits, Duration::ZERO, 3);
    let first = ups(&sim, Side::A)[0].spi_in;
    // The rekey's response is lost for good: the old SA keeps counting to its hard limit.
    sim.net = Box::new(|batch| batch.retain(|d| !(d.from == Side::B && d.t.data[18] == 36)));
    usage(&mut sim, first, 0, 5000);
    assert_eq!(ups(&sim, Side::A).len(), 1);
    sim.net = Box::new(|_| {});
    usage(&mut sim, first, 0, 6000);
    assert!(
        downs(&sim, Side::A).contains(&(first, ChildDownReason::LifetimeExpired)),
        "{:?}",
        downs(&sim, Side::A)
    );
    assert_eq!(sim.a.stats().child_expired, 1);
    // The rekey retransmitted in the meantime completes; then the peer hears of the
    // expired SA, and both ends are left with the one new pair.
    sim.run_for(Duration::from_secs(10));
    let peer_spi = ups(&sim, Side::B)[0].spi_in;
    assert!(downs(&sim, Side::B).iter().any(|(s, _)| *s == peer_spi));
    assert_eq!(sim.a.status(sim.now)[0].children.len(), 1, "IKE SA kept");
    assert_eq!(sim.b.status(sim.now)[0].children.len(), 1);
}

#[test]
fn azure_volume_lifetime_does_not_overflow() {
    // Azure: 102,400,000 KB, as life_bytes (strongSwan's rekey default: 10% less).
    let life = AZURE_KB * 1024;
    let limits = ChildLimits {
        rekey_bytes: life - life / 11,
        life_bytes: life,
        ..ChildLimits::default()
    };
    let mut sim = established(limits, Duration::ZERO, 4);
    let first = ups(&sim, Side::A)[0].spi_in;
    usage(&mut sim, first, 40_000_000_000, 1 << 26);
    assert_eq!(ups(&sim, Side::A).len(), 1);
    usage(&mut sim, first, 100_000_000_000, 1 << 27);
    assert_eq!(ups(&sim, Side::A).len(), 2, "rekeyed before 102,400,000 KB");
    let second = ups(&sim, Side::A)[1].spi_in;
    usage(&mut sim, second, u64::MAX, u64::MAX);
    assert!(downs(&sim, Side::A).contains(&(second, ChildDownReason::LifetimeExpired)));
}

/// Where the byte-triggered rekey happens differs from SA to SA (seeded randomness), always
/// within [rekey_bytes - (life_bytes - rekey_bytes), rekey_bytes].
#[test]
fn volume_rekey_point_is_jittered() {
    let limits = ChildLimits {
        rekey_bytes: 10_000,
        life_bytes: 11_000,
        ..ChildLimits::default()
    };
    let mut points = Vec::new();
    for seed in 10..16 {
        let mut sim = established(limits, Duration::ZERO, seed);
        let spi = ups(&sim, Side::A)[0].spi_in;
        let at = (8_900..=10_000).step_by(50).find(|&bytes| {
            usage(&mut sim, spi, bytes, 0);
            ups(&sim, Side::A).len() == 2
        });
        let at = at.expect("no rekey by rekey_bytes");
        assert!(at >= 9_000, "rekeyed at {at}");
        points.push(at);
    }
    points.sort();
    points.dedup();
    assert!(points.len() >= 3, "rekey points {points:?}");
}

/// rand_time: the time-based rekey lands in [rekey_time - rand_time, rekey_time], at a
/// different time for different SAs.
#[test]
fn rand_time_spreads_the_time_rekey() {
    let limits = ChildLimits {
        rand_time: Some(Duration::from_secs(600)),
        ..ChildLimits::default()
    };
    let mut times = Vec::new();
    for seed in 20..26 {
        let mut sim = established(limits, Duration::from_secs(3600), seed);
        sim.run_for(Duration::from_secs(3700));
        let i = sim
            .events
            .iter()
            .position(|(s, e)| {
                *s == Side::A && matches!(e, Event::ChildUp(c) if c.rekey_of.is_some())
            })
            .expect("no time-based rekey");
        let t = sim.event_at[i].as_secs();
        assert!((3000..=3600).contains(&t), "rekeyed at {t}s");
        times.push(t);
    }
    times.sort();
    times.dedup();
    assert!(times.len() >= 3, "rekey times {times:?}");
}
