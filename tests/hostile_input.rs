//! A running gateway under hostile input: garbage IKE on 500 and 4500, IKE messages naming a
//! live IKE SA but failing their integrity check, ESP with unknown SPIs, truncated ESP, and ESP
//! with the live SPI but a bad ICV. Every one is dropped (and the ESP ones counted); the SAs,
//! their SPIs and the traffic through them stay. None is answered: not even a short SK payload
//! claiming to retransmit the request whose response is cached (no reflection).

mod common;
use common::*;
use std::net::UdpSocket;
use std::time::Duration;

fn hex_u64(s: &str) -> u64 {
    u64::from_str_radix(s, 16).expect("hex SPI")
}

#[test]
fn garbage_and_forgeries_are_dropped_and_the_sa_survives() {
    if !netns_env_ok(&[]) {
        return;
    }
    let mut lab = Lab::new("hostile");
    let mut r = GwConf::tunneled(Side::Right);
    r.encap = "always";
    let cfg = r.render(&lab);
    lab.start_ipsecgw(Side::Right, &cfg);
    let mut l = GwConf::tunneled(Side::Left);
    l.encap = "always";
    l.start_action = "start";
    let cfg = l.render(&lab);
    let left = lab.start_ipsecgw(Side::Left, &cfg);
    let up = wait_for(Duration::from_secs(15), || {
        let c = lab.status_json(Side::Left)["connections"][0].clone();
        (c["state"] == "established" && !c["children"][0].is_null()).then_some(c)
    })
    .expect("tunnel up");
    assert!(lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 2));
    let ike_i = hex_u64(up["ike"]["spi_i"].as_str().unwrap());
    let ike_r = hex_u64(up["ike"]["spi_r"].as_str().unwrap());
    let spi_in = u32::from_str_radix(up["children"][0]["spi_in"].as_str().unwrap(), 16).unwrap();

    // The attacker sits on the peer's underlay address.
    ipsecgw::routing::netns::in_netns(lab.ns(Side::Right), move || {
        let s = UdpSocket::bind("192.0.2.2:0").unwrap();
        let mut seed = 0x1234_5678u32;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u8
        };
        for len in [0usize, 1, 3, 27, 28, 29, 100, 1400] {
            let junk: Vec<u8> = (0..len).map(|_| rnd()).collect();
            s.send_to(&junk, "192.0.2.1:500").unwrap();
            s.send_to(&junk, "192.0.2.1:4500").unwrap();
        }
        // IKE header naming the live IKE SA: INFORMATIONAL request, then an SK payload of junk.
        for msg_id in [0u32, 1, 1000] {
            let mut m = Vec::new();
            m.extend_from_slice(&ike_i.to_be_bytes());
            m.extend_from_slice(&ike_r.to_be_bytes());
            m.extend_from_slice(&[46, 0x20, 37, 0x00]); // next SK, v2.0, INFORMATIONAL, responder's request
            m.extend_from_slice(&msg_id.to_be_bytes());
            // IV (16) + two AES blocks + ICV (12): only the integrity check can reject it
            let body: Vec<u8> = (0..60).map(|_| rnd()).collect();
            m.extend_from_slice(&((28 + 4 + body.len()) as u32).to_be_bytes());
            m.extend_from_slice(&[0, 0]);
            m.extend_from_slice(&((4 + body.len()) as u16).to_be_bytes());
            m.extend_from_slice(&body);
            let mut natt = vec![0u8; 4];
            natt.extend_from_slice(&m);
            s.send_to(&natt, "192.0.2.1:4500").unwrap();
            // a length that lies
            let mut liar = natt.clone();
            liar[4 + 24..4 + 28].copy_from_slice(&9999u32.to_be_bytes());
            s.send_to(&liar, "192.0.2.1:4500").unwrap();
        }
        // ESP: unknown SPI, truncated, and the live SPI with a forged ICV.
        for spi in [0xdead_beefu32, spi_in] {
            let mut esp = spi.to_be_bytes().to_vec();
            esp.extend_from_slice(&77u32.to_be_bytes());
            // IV (16) + four AES blocks + ICV (12): well-formed, so only the ICV can reject it
            esp.extend((0..92).map(|_| rnd()));
            s.send_to(&esp, "192.0.2.1:4500").unwrap();
            s.send_to(&esp[..9], "192.0.2.1:4500").unwrap();
        }
    })
    .expect("netns");
    std::thread::sleep(Duration::from_millis(500));

    // Still running, same SAs, traffic flows, the forged ESP counted as an auth failure.
    assert!(lab.is_running(left), "ipsecgw died:\n{}", lab.log_of(left));
    let c = lab.status_json(Side::Left)["connections"][0].clone();
    assert_eq!(c["state"], "established");
    assert_eq!(c["ike"]["spi_i"], up["ike"]["spi_i"]);
    assert_eq!(c["children"][0]["spi_in"], up["children"][0]["spi_in"]);
    assert!(
        c["children"][0]["auth_failures"].as_u64().unwrap() >= 1,
        "{c}"
    );
    assert!(
        lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 3),
        "traffic stopped after hostile input"
    );
    // The rest is counted too, by reason.
    let drops = &lab.status_json(Side::Left)["drops"];
    for reason in ["ike_malformed", "ike_integrity_failed", "esp_unknown_spi"] {
        assert!(
            drops[reason].as_u64().unwrap_or(0) >= 1,
            "{reason} not counted: {drops}"
        );
    }
    // The truncated packet with the live SPI is the SA's own drop.
    let sa_drops = lab.status_json(Side::Left)["connections"][0]["counters"]["drops"].clone();
    assert!(
        sa_drops["auth"].as_u64() >= Some(1),
        "per-SA drops by reason: {sa_drops}"
    );
    assert!(
        sa_drops["truncated"].as_u64() >= Some(1),
        "per-SA drops by reason: {sa_drops}"
    );

    // Issue 11 finding 1: 33-byte datagrams with the live SPIs, claiming to retransmit the
    // initiator's requests (whose response the responder caches), from a victim's address.
    // They are rejected before any integrity check, and must not be answered.
    let reflected = ipsecgw::routing::netns::in_netns(lab.ns(Side::Left), move || {
        let s = UdpSocket::bind("192.0.2.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        for exchange in [35u8, 36, 37] {
            for msg_id in 0u32..6 {
                let mut m = vec![0u8; 4];
                m.extend_from_slice(&ike_i.to_be_bytes());
                m.extend_from_slice(&ike_r.to_be_bytes());
                m.extend_from_slice(&[46, 0x20, exchange, 0x08]);
                m.extend_from_slice(&msg_id.to_be_bytes());
                m.extend_from_slice(&33u32.to_be_bytes());
                m.extend_from_slice(&[35, 0, 0, 5, 0xaa]);
                s.send_to(&m, "192.0.2.2:4500").unwrap();
            }
        }
        let mut buf = [0u8; 2048];
        let mut answers = 0;
        while s.recv_from(&mut buf).is_ok() {
            answers += 1;
        }
        answers
    })
    .expect("netns");
    assert_eq!(reflected, 0, "unauthenticated datagrams were answered");
    let c = lab.status_json(Side::Right)["connections"][0].clone();
    assert_eq!(c["state"], "established", "{c}");
    assert!(lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 2));
}
