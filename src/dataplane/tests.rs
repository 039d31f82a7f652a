//! Unit tests of the control side of the data plane (no traffic: see tests/esp_dataplane.rs).
use super::*;
use rand::{Rng, SeedableRng};

#[test]
fn handle_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Dataplane>();
}

#[test]
fn start_without_sockets_and_shutdown() {
    // A fixed pool of workers, whatever happens later.
    // No sockets, no raw ESP: only the keepalive thread runs; shutdown joins it.
    let (tx, _rx) = mpsc::channel(1);
    let dp = Dataplane::start(DataplaneConfig {
        udp_sockets: vec![],
        raw_esp: false,
        ike_tx: tx,
    })
    .unwrap();
    assert!(dp.counters().is_empty());
    assert!(dp.workers() >= 1 && dp.workers() <= MAX_WORKERS);
    assert_eq!(dp.global_drops(), DropCounters::default());
    assert_eq!(dp.tunnel_offload("none"), None);
    dp.remove(0x1234); // unknown: no effect
    dp.remove_tunnel("none");
    let started = Instant::now();
    dp.shutdown();
    assert!(started.elapsed() < Duration::from_secs(2));
    dp.shutdown(); // idempotent
}

#[test]
fn install_refuses_what_it_cannot_send() {
    let (tx, _rx) = mpsc::channel(1);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dp = Dataplane::start(DataplaneConfig {
        udp_sockets: vec![sock],
        raw_esp: false,
        ike_tx: tx,
    })
    .unwrap();
    let mut sa = child_sa("c", 1, false);
    // raw ESP was not enabled
    assert_eq!(dp.install(&sa).unwrap_err(), InstallError::NoRawSocket);
    assert!(dp.install(&sa).unwrap_err().to_string().contains("raw ESP"));
    sa.udp_encap = true;
    sa.integ_key_in = zeroize::Zeroizing::new(vec![2; 19]);
    assert!(matches!(
        dp.install(&sa).unwrap_err(),
        InstallError::Sa {
            spi: 1,
            inbound: true,
            ..
        }
    ));
    sa.integ_key_in = zeroize::Zeroizing::new(vec![2; 20]);
    dp.install(&sa).unwrap();
    assert_eq!(
        dp.install(&sa).unwrap_err(),
        InstallError::AlreadyInstalled(1)
    );
    // make-before-break: the successor sends, the old one only receives
    let mut next = sa.clone();
    next.spi_in = 11;
    next.spi_out = 12;
    next.rekey_of = Some(1);
    dp.install(&next).unwrap();
    let c = dp.counters();
    assert_eq!(c.len(), 2);
    assert!(!c.iter().find(|r| r.spi_in == 1).unwrap().outbound_active);
    assert!(c.iter().find(|r| r.spi_in == 11).unwrap().outbound_active);
    let tables = dp.shared.snapshot();
    assert_eq!(tables.outbound.get("c").map(|l| l.len()), Some(1));
    assert_eq!(tables.inbound.len(), 2);
    assert_eq!(tables.keepalive.len(), 1);
    drop(tables);
    // NAT rebinding (RFC 7296 2.23): the outbound half follows the peer's new address
    // and keeps its sequence numbers
    let tables = dp.shared.snapshot();
    let first_out = |t: &Tables| t.outbound["c"].values().next().unwrap().clone();
    let (seq_before, _) = first_out(&tables).esp.reserve_seq(1).unwrap();
    drop(tables);
    let moved: SocketAddr = "127.0.0.9:31000".parse().unwrap();
    assert!(dp.update_remote(11, moved));
    let tables = dp.shared.snapshot();
    let out = first_out(&tables);
    assert_eq!(out.dest().as_socket_addr(), Some(moved));
    assert_eq!(tables.keepalive[&11].dest().as_socket_addr(), Some(moved));
    assert_eq!(out.esp.reserve_seq(1).unwrap().0, seq_before + 1);
    drop(tables);
    assert!(!dp.update_remote(0xdead, moved), "unknown SPI");
    dp.remove(1);
    assert_eq!(dp.counters().len(), 1);
    assert_eq!(dp.shared.snapshot().inbound.len(), 1);
    dp.shutdown();
}

/// A CHILD SA `spi_in` (spi_out = spi_in + 1) of `conn` for any local address and the
/// remote /32 10.x.y.z numbered by `spi_in`, aes128-cbc + hmac-sha1-96.
fn child_sa(conn: &str, spi_in: u32, udp_encap: bool) -> ChildSa {
    let ts = |start: IpAddr, end: IpAddr| TrafficSelector {
        ip_proto: 0,
        start_port: 0,
        end_port: 65535,
        start,
        end,
    };
    let any = ts(
        "0.0.0.0".parse().unwrap(),
        "255.255.255.255".parse().unwrap(),
    );
    let host = IpAddr::from((0x0a00_0000 | (spi_in & 0x00ff_ffff)).to_be_bytes());
    ChildSa {
        conn: conn.into(),
        child: "k".into(),
        spi_in,
        spi_out: spi_in + 1,
        encr: crate::crypto::EncrAlg::AesCbc128,
        integ: Some(crate::crypto::IntegAlg::HmacSha1_96),
        esn: false,
        dh: None,
        encr_key_in: zeroize::Zeroizing::new(vec![1; 16]),
        integ_key_in: zeroize::Zeroizing::new(vec![2; 20]),
        encr_key_out: zeroize::Zeroizing::new(vec![3; 16]),
        integ_key_out: zeroize::Zeroizing::new(vec![4; 20]),
        local_ts: vec![any],
        remote_ts: vec![ts(host, host)],
        local: "127.0.0.1:4500".parse().unwrap(),
        remote: "127.0.0.2:4500".parse().unwrap(),
        udp_encap,
        replay_window: 64,
        rekey_of: None,
    }
}

fn dataplane_with_udp() -> Dataplane {
    let (tx, _rx) = mpsc::channel(1);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    Dataplane::start(DataplaneConfig {
        udp_sockets: vec![sock],
        raw_esp: false,
        ike_tx: tx,
    })
    .unwrap()
}

/// What the tables hold, comparable: inbound SPIs, per connection the sending SAs' outbound
/// SPIs newest first, the keepalive SPIs.
type View = (Vec<u32>, Vec<(String, Vec<u32>)>, Vec<u32>);

fn view(t: &Tables) -> View {
    let mut inbound: Vec<u32> = t.inbound.keys().copied().collect();
    inbound.sort_unstable();
    let mut outbound: Vec<(String, Vec<u32>)> = t
        .outbound
        .iter()
        .map(|(c, l)| (c.clone(), l.values().map(|s| s.esp.spi()).collect()))
        .collect();
    outbound.sort();
    let mut keepalive: Vec<u32> = t.keepalive.keys().copied().collect();
    keepalive.sort_unstable();
    (inbound, outbound, keepalive)
}

/// Thousands of installs, rekeys (make-before-break) and removals across a few connections:
/// after every step the incrementally changed tables equal tables built from scratch, and
/// the lookups the workers do find exactly what is installed.
#[test]
fn incremental_tables_match_a_full_rebuild() {
    let dp = dataplane_with_udp();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut live: Vec<(String, u32)> = Vec::new();
    let mut next_spi = 0x100u32;
    for step in 0..3000 {
        let roll = rng.gen_range(0..10);
        if roll < 6 || live.is_empty() {
            let conn = format!("c{}", rng.gen_range(0..4));
            let sa = child_sa(&conn, next_spi, true);
            dp.install(&sa).unwrap();
            live.push((conn, next_spi));
            next_spi += 2;
        } else if roll < 8 {
            // rekey: the successor sends, the old SA only receives until removed
            let i = rng.gen_range(0..live.len());
            let (conn, old) = live[i].clone();
            let mut sa = child_sa(&conn, next_spi, true);
            sa.rekey_of = Some(old);
            dp.install(&sa).unwrap();
            live.push((conn, next_spi));
            next_spi += 2;
        } else {
            let i = rng.gen_range(0..live.len());
            let (_, spi) = live.swap_remove(i);
            dp.remove(spi);
        }
        if step % 97 == 0 || step == 2999 {
            let state = lock(&dp.shared.state);
            let snapshot = dp.shared.snapshot();
            assert_eq!(view(&snapshot), view(&Tables::build(&state)), "step {step}");
            assert_eq!(state.len(), live.len());
            for (conn, spi) in &live {
                assert!(snapshot.inbound.get(spi).is_some(), "inbound {spi:x}");
                let sending = state.get(*spi).unwrap().out_active;
                let listed = snapshot
                    .outbound
                    .get(conn.as_str())
                    .is_some_and(|l| l.values().any(|o| o.esp.spi() == spi + 1));
                assert_eq!(sending, listed, "outbound of {spi:x} on {conn}");
            }
        }
    }
    // newest first within a connection: a packet goes out on the newest SA that covers it
    let t = dp.shared.snapshot();
    for list in t.outbound.values() {
        let seqs: Vec<u32> = list.values().map(|o| o.esp.spi()).collect();
        let mut sorted = seqs.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(seqs, sorted);
    }
    drop(t);
    dp.shutdown();
}

/// Installing into a table of 20,000 SAs is not a rebuild of the table any more (it used to
/// rebuild every table from every SA). Timed against a full rebuild in the same run, so
/// the machine's load slows both alike; the empty-table figure is printed for comparison.
#[test]
fn an_install_does_not_grow_with_the_table() {
    let dp = dataplane_with_udp();
    let mut spi = 0x100u32;
    // Best of a few rounds of 200 installs + 200 removes at a table size.
    let cost_at = |dp: &Dataplane, spi: &mut u32| {
        (0..5)
            .map(|_| {
                let sas: Vec<ChildSa> = (0..200)
                    .map(|i| child_sa("hub", *spi + 2 * i, true))
                    .collect();
                *spi += 400;
                let t = Instant::now();
                for sa in &sas {
                    dp.install(sa).unwrap();
                }
                for sa in &sas {
                    dp.remove(sa.spi_in);
                }
                t.elapsed() / 400
            })
            .min()
            .unwrap()
    };
    let small = cost_at(&dp, &mut spi);
    for _ in 0..20_000 {
        dp.install(&child_sa("hub", spi, true)).unwrap();
        spi += 2;
    }
    let large = cost_at(&dp, &mut spi);
    let rebuild = (0..3)
        .map(|_| {
            let state = lock(&dp.shared.state);
            let t = Instant::now();
            drop(Tables::build(&state));
            t.elapsed()
        })
        .min()
        .unwrap();
    eprintln!(
        "one install or remove: {small:?} into an empty table, {large:?} into 20,000 SAs; \
         one rebuild of 20,000: {rebuild:?}"
    );
    assert!(
        large * 20 < rebuild,
        "an install/remove at 20,000 SAs ({large:?}) costs like a rebuild ({rebuild:?})"
    );
    dp.shutdown();
}
