//! Unit tests of the control side of the data plane (no traffic: see tests/esp_dataplane.rs).
use super::*;

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
    let ts = TrafficSelector {
        ip_proto: 0,
        start_port: 0,
        end_port: 65535,
        start: "0.0.0.0".parse().unwrap(),
        end: "255.255.255.255".parse().unwrap(),
    };
    let mut sa = ChildSa {
        conn: "c".into(),
        child: "k".into(),
        spi_in: 1,
        spi_out: 2,
        encr: crate::crypto::EncrAlg::AesCbc128,
        integ: Some(crate::crypto::IntegAlg::HmacSha1_96),
        esn: false,
        dh: None,
        encr_key_in: zeroize::Zeroizing::new(vec![1; 16]),
        integ_key_in: zeroize::Zeroizing::new(vec![2; 20]),
        encr_key_out: zeroize::Zeroizing::new(vec![3; 16]),
        integ_key_out: zeroize::Zeroizing::new(vec![4; 20]),
        local_ts: vec![ts.clone()],
        remote_ts: vec![ts],
        local: "127.0.0.1:4500".parse().unwrap(),
        remote: "127.0.0.2:4500".parse().unwrap(),
        udp_encap: false,
        replay_window: 64,
        rekey_of: None,
    };
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
    assert_eq!(tables.outbound.get("c").map(Vec::len), Some(1));
    assert_eq!(tables.inbound.len(), 2);
    assert_eq!(tables.keepalive.len(), 1);
    drop(tables);
    // NAT rebinding (RFC 7296 2.23): the outbound half follows the peer's new address
    // and keeps its sequence numbers
    let tables = dp.shared.snapshot();
    let (seq_before, _) = tables.outbound["c"][0].esp.reserve_seq(1).unwrap();
    drop(tables);
    let moved: SocketAddr = "127.0.0.9:31000".parse().unwrap();
    assert!(dp.update_remote(11, moved));
    let tables = dp.shared.snapshot();
    let out = &tables.outbound["c"][0];
    assert_eq!(out.dest().as_socket_addr(), Some(moved));
    assert_eq!(tables.keepalive[0].dest().as_socket_addr(), Some(moved));
    assert_eq!(out.esp.reserve_seq(1).unwrap().0, seq_before + 1);
    drop(tables);
    assert!(!dp.update_remote(0xdead, moved), "unknown SPI");
    dp.remove(1);
    assert_eq!(dp.counters().len(), 1);
    assert_eq!(dp.shared.snapshot().inbound.len(), 1);
    dp.shutdown();
}
