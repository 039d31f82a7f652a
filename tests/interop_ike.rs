//! IKEv2 interop with real strongSwan 5.9.8 (charon + kernel-libipsec) in network namespaces.
//! Assertions use what strongSwan itself reports (`swanctl --list-sas`, its log) next to what
//! ipsecgw reports (`ipsecgw status --json`, its key log).

mod common;
use common::*;
use std::time::Duration;

/// strongSwan prints AES_CBC-256 / AES_GCM_16-256 where ipsecgw says AES_CBC_256 / AES_GCM_16_256.
fn swan_alg(ours: &str) -> String {
    ours.replace("AES_CBC_", "AES_CBC-")
        .replace("AES_GCM_16_", "AES_GCM_16-")
}

/// "A/B/C" from the algorithm names present (AEAD ciphers have no integrity algorithm).
fn alg_list(names: &[&serde_json::Value]) -> String {
    let parts: Vec<String> = names
        .iter()
        .filter_map(|n| n.as_str())
        .map(swan_alg)
        .collect();
    parts.join("/")
}

struct Established {
    json: serde_json::Value,
    swan: String,
}

/// Waits until both sides report an established IKE SA and an installed CHILD SA, then checks
/// that strongSwan shows exactly the SPIs and algorithms that ipsecgw reports.
fn wait_established(lab: &Lab, gw: Side, swan: Side) -> Established {
    let ok = wait_for(Duration::from_secs(20), || {
        let s = lab.list_sas(swan);
        let j = lab.status_json(gw);
        let up = j["connections"][0]["state"] == "established"
            && j["connections"][0]["children"]
                .as_array()
                .is_some_and(|c| !c.is_empty());
        (s.contains("ESTABLISHED") && s.contains("INSTALLED") && up)
            .then_some(Established { json: j, swan: s })
    });
    let Some(e) = ok else {
        panic!(
            "no established SA.\nstrongSwan:\n{}\nipsecgw:\n{}",
            lab.list_sas(swan),
            serde_json::to_string_pretty(&lab.status_json(gw)).unwrap_or_default()
        )
    };
    let c = &e.json["connections"][0];
    let ike = &c["ike"];
    let child = &c["children"][0];
    for spi in [&ike["spi_i"], &ike["spi_r"]] {
        let spi = spi.as_str().expect("IKE SPI string");
        assert!(
            e.swan.contains(spi),
            "strongSwan does not show IKE SPI {spi}:\n{}",
            e.swan
        );
    }
    // Our inbound SPI is strongSwan's outbound and vice versa.
    let (spi_in, spi_out) = (
        child["spi_in"].as_str().unwrap(),
        child["spi_out"].as_str().unwrap(),
    );
    assert!(
        e.swan.contains(&format!("in  {spi_out}")),
        "strongSwan in-SPI is not our out-SPI {spi_out}:\n{}",
        e.swan
    );
    assert!(
        e.swan.contains(&format!("out {spi_in}")),
        "strongSwan out-SPI is not our in-SPI {spi_in}:\n{}",
        e.swan
    );
    let ike_algs = alg_list(&[&ike["encr"], &ike["integ"], &ike["prf"], &ike["dh"]]);
    assert!(
        e.swan.contains(&ike_algs),
        "strongSwan IKE algorithms differ from ours ({ike_algs}):\n{}",
        e.swan
    );
    let esp_algs = format!("ESP:{}", alg_list(&[&child["encr"], &child["integ"]]));
    assert!(
        e.swan.contains(&esp_algs),
        "strongSwan ESP algorithms differ from ours ({esp_algs}):\n{}",
        e.swan
    );
    e
}

/// ipsecgw initiates `ike`/`esp` to the strongSwan responder already running on the right:
/// both sides must agree (SPIs, algorithms), strongSwan must show `ike_expect`/`esp_expect`,
/// IKE must have floated to 4500 (libipsec's faked NAT hash), and SIGTERM must delete the SA
/// at the peer.
fn initiate_check_delete(lab: &mut Lab, ike: &str, esp: &str, ike_expect: &str, esp_expect: &str) {
    let mut gw = GwConf::new(Side::Left);
    gw.ike = ike;
    gw.esp = esp;
    gw.start_action = "start";
    let cfg = gw.render(lab);
    let pid = lab.start_ipsecgw(Side::Left, &cfg);
    let e = wait_established(lab, Side::Left, Side::Right);
    assert!(
        e.swan.contains(ike_expect),
        "{ike}: strongSwan shows\n{}",
        e.swan
    );
    assert!(
        e.swan.contains(esp_expect),
        "{esp}: strongSwan shows\n{}",
        e.swan
    );
    assert_eq!(e.json["connections"][0]["ike"]["nat_detected"], true);
    assert!(
        e.swan.contains("192.0.2.1[4500]"),
        "IKE did not float to 4500:\n{}",
        e.swan
    );
    let st = lab.stop(pid).expect("ipsecgw exit status");
    assert!(st.success(), "ipsecgw exited with {st}");
    let gone = wait_for(Duration::from_secs(5), || {
        (!lab.list_sas(Side::Right).contains("ESTABLISHED")).then_some(())
    });
    assert!(
        gone.is_some(),
        "strongSwan still has the SA after our Delete:\n{}",
        lab.list_sas(Side::Right)
    );
}

const MATRIX: [(&str, &str, &str, &str); 3] = [
    (
        "aes256-sha1-modp1024",
        "AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        "aes256-sha1",
        "ESP:AES_CBC-256/HMAC_SHA1_96",
    ),
    (
        "aes128-sha1-modp1024",
        "AES_CBC-128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        "aes128-sha1",
        "ESP:AES_CBC-128/HMAC_SHA1_96",
    ),
    (
        "3des-sha1-modp1024",
        "3DES_CBC/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        "3des-sha1",
        "ESP:3DES_CBC/HMAC_SHA1_96",
    ),
];

#[test]
fn ipsecgw_initiates_to_strongswan_all_proposals() {
    if !netns_env_ok(&["swanctl", "/usr/lib/ipsec/charon"]) {
        return;
    }
    let mut lab = Lab::new("ike-init");
    // strongSwan accepts all three IKE and ESP proposals; ipsecgw offers one pair at a time.
    let swan = SwanConn {
        ike: "aes256-sha1-modp1024,aes128-sha1-modp1024,3des-sha1-modp1024",
        esp: "aes256-sha1,aes128-sha1,3des-sha1",
        ..SwanConn::new(Side::Right)
    };
    lab.start_charon(Side::Right, &swan.render());
    for (ike, ike_expect) in MATRIX.iter().map(|m| (m.0, m.1)) {
        for (esp, esp_expect) in MATRIX.iter().map(|m| (m.2, m.3)) {
            initiate_check_delete(&mut lab, ike, esp, ike_expect, esp_expect);
        }
    }
}

#[test]
fn strongswan_initiates_to_ipsecgw() {
    if !netns_env_ok(&["swanctl", "/usr/lib/ipsec/charon"]) {
        return;
    }
    let mut lab = Lab::new("ike-resp");
    let mut gw = GwConf::new(Side::Right);
    gw.ike = "aes256-sha1-modp1024";
    gw.esp = "aes256-sha1";
    let cfg = gw.render(&lab);
    let pid = lab.start_ipsecgw(Side::Right, &cfg);
    for (ike, ike_expect, esp, esp_expect) in MATRIX {
        let swan = SwanConn {
            ike,
            esp,
            ..SwanConn::new(Side::Left)
        };
        // Reconfigure ipsecgw for this proposal pair with SIGHUP, as an operator would.
        let mut gw = GwConf::new(Side::Right);
        gw.ike = ike;
        gw.esp = esp;
        lab.reload_ipsecgw(Side::Right, pid, &gw.render(&lab));
        lab.load_swanctl(Side::Left, &swan.render());
        let (ok, out) = lab.swanctl(Side::Left, "--initiate --child net --timeout 20", "");
        assert!(ok, "strongSwan could not initiate ({ike}, {esp}):\n{out}");
        let e = wait_established(&lab, Side::Right, Side::Left);
        assert!(
            e.swan.contains(ike_expect) && e.swan.contains(esp_expect),
            "{}",
            e.swan
        );
        let (ok, out) = lab.swanctl(Side::Left, "--terminate --ike gw --timeout 10", "");
        assert!(ok, "terminate: {out}");
        let down = wait_for(Duration::from_secs(5), || {
            (lab.status_json(Side::Right)["connections"][0]["state"] != "established").then_some(())
        });
        assert!(
            down.is_some(),
            "ipsecgw kept the SA after strongSwan's Delete"
        );
    }
}

/// A lab with the default strongSwan responder on the right and ipsecgw initiating from the
/// left with `tweak` applied to its config; returns the lab and ipsecgw's pid.
fn initiate_to_swan(tag: &str, tweak: impl FnOnce(&mut GwConf)) -> (Lab, u32) {
    let mut lab = Lab::new(tag);
    lab.start_charon(Side::Right, &SwanConn::new(Side::Right).render());
    let mut gw = GwConf::new(Side::Left);
    gw.start_action = "start";
    tweak(&mut gw);
    let cfg = gw.render(&lab);
    let pid = lab.start_ipsecgw(Side::Left, &cfg);
    (lab, pid)
}

fn charon_log(lab: &Lab, side: Side) -> String {
    std::fs::read_to_string(lab.side_dir(side).join("charon.log")).unwrap_or_default()
}

#[test]
fn wrong_psk_fails_on_both_sides_in_both_directions() {
    if !netns_env_ok(&["swanctl", "/usr/lib/ipsec/charon"]) {
        return;
    }
    // ipsecgw initiates with the wrong key.
    let (lab, pid) = initiate_to_swan("psk-i", |gw| gw.psk = "not-the-right-key-42");
    let seen = wait_for(Duration::from_secs(10), || {
        charon_log(&lab, Side::Right)
            .contains("AUTH_FAILED")
            .then_some(())
    });
    assert!(
        seen.is_some(),
        "strongSwan did not answer AUTHENTICATION_FAILED:\n{}",
        charon_log(&lab, Side::Right)
    );
    let ours = wait_for(Duration::from_secs(10), || {
        lab.log_of(pid)
            .to_ascii_lowercase()
            .contains("authentication_failed")
            .then_some(())
    });
    assert!(
        ours.is_some(),
        "ipsecgw does not report the auth failure:\n{}",
        lab.log_of(pid)
    );
    assert!(
        !lab.list_sas(Side::Right).contains("ESTABLISHED"),
        "{}",
        lab.list_sas(Side::Right)
    );
    assert_ne!(
        lab.status_json(Side::Left)["connections"][0]["state"],
        "established"
    );
    let log = lab.log_of(pid);
    assert!(
        !log.contains("not-the-right-key-42") && !log.contains(PSK),
        "the PSK appears in the log"
    );
    drop(lab);

    // strongSwan initiates to ipsecgw, which has a different key.
    let mut lab = Lab::new("psk-r");
    let mut gw = GwConf::new(Side::Right);
    gw.psk = "not-the-right-key-42";
    let cfg = gw.render(&lab);
    let pid = lab.start_ipsecgw(Side::Right, &cfg);
    lab.start_charon(Side::Left, &SwanConn::new(Side::Left).render());
    let (ok, out) = lab.swanctl(Side::Left, "--initiate --child net --timeout 15", "");
    assert!(!ok, "strongSwan established with the wrong PSK:\n{out}");
    assert!(
        out.contains("AUTH_FAILED") || charon_log(&lab, Side::Left).contains("AUTH_FAILED"),
        "{out}"
    );
    assert!(!lab.list_sas(Side::Left).contains("ESTABLISHED"));
    assert_ne!(
        lab.status_json(Side::Right)["connections"][0]["state"],
        "established"
    );
    assert!(
        lab.log_of(pid).to_ascii_lowercase().contains("auth"),
        "{}",
        lab.log_of(pid)
    );
}

#[test]
fn no_common_proposal_is_refused_and_logged_readably() {
    if !netns_env_ok(&["swanctl", "/usr/lib/ipsec/charon"]) {
        return;
    }
    let (mut lab, pid) = initiate_to_swan("noprop", |gw| gw.ike = "aes128-sha256-modp2048");
    let seen = wait_for(Duration::from_secs(10), || {
        lab.log_of(pid).contains("NO_PROPOSAL_CHOSEN").then_some(())
    });
    assert!(
        seen.is_some(),
        "ipsecgw did not report NO_PROPOSAL_CHOSEN:\n{}",
        lab.log_of(pid)
    );
    assert!(
        charon_log(&lab, Side::Right).contains("NO_PROP"),
        "{}",
        charon_log(&lab, Side::Right)
    );
    assert!(!lab.list_sas(Side::Right).contains("ESTABLISHED"));
    lab.stop(pid);

    // strongSwan offers what ipsecgw (responder) does not accept: both offers are logged.
    let mut gw = GwConf::new(Side::Left);
    gw.ike = "aes128-sha256-modp2048";
    let cfg = gw.render(&lab);
    let pid = lab.start_ipsecgw(Side::Left, &cfg);
    let (ok, out) = lab.swanctl(Side::Right, "--initiate --child net --timeout 15", "");
    assert!(!ok, "established without a common proposal:\n{out}");
    assert!(
        out.contains("NO_PROPOSAL_CHOSEN") || charon_log(&lab, Side::Right).contains("NO_PROP"),
        "{out}"
    );
    let log = lab.log_of(pid);
    assert!(
        log.contains("AES_CBC_256") && log.contains("AES_CBC_128"),
        "both sides' offers should be readable in our log:\n{log}"
    );
}

/// Pulls `name` (e.g. "Sk_ei") out of charon's `ike = 4` hex dumps.
fn swan_secret(log: &str, name: &str) -> Option<String> {
    let mut lines = log.lines();
    let header = format!("{name} secret =>");
    let header_line = lines.by_ref().find(|l| l.contains(&header))?;
    let n: usize = header_line
        .split("=>")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let mut hex = String::new();
    for l in lines {
        let body = l
            .rsplit_once("> ")
            .map(|(_, b)| b)
            .or_else(|| l.split_once("] ").map(|(_, b)| b))?;
        let body = body.trim_start();
        let Some((off, rest)) = body.split_once(": ") else {
            break;
        };
        if off.trim().parse::<usize>().is_err() {
            break;
        }
        let want = (n - hex.len() / 2).min(16);
        for tok in rest.split_whitespace().take(want) {
            hex.push_str(&tok.to_ascii_lowercase());
        }
        if hex.len() / 2 >= n {
            return Some(hex);
        }
    }
    None
}

/// The IKE SA keys ipsecgw derives are byte for byte charon's, for the reference suite, an
/// ECP suite, Curve25519 with AES-GCM (the keys include the RFC 5282 salt) and AES-XCBC
/// (RFC 7296 2.14: SKEYSEED keyed with half of each nonce).
#[test]
fn ike_keys_match_strongswan() {
    if !netns_env_ok(&["swanctl", "/usr/lib/ipsec/charon"]) {
        return;
    }
    for (i, ike) in [
        "aes256-sha1-modp1024",
        "aes128-sha256-ecp256",
        "aes256gcm16-prfsha384-curve25519",
        "aes128-aesxcbc-ecp384",
    ]
    .into_iter()
    .enumerate()
    {
        let mut lab = Lab::new(&format!("keys{i}"));
        let swan = SwanConn {
            ike,
            ..SwanConn::new(Side::Right)
        };
        lab.start_charon(Side::Right, &swan.render());
        let mut gw = GwConf::new(Side::Left);
        gw.ike = ike;
        gw.start_action = "start";
        let cfg = gw.render(&lab);
        lab.start_ipsecgw(Side::Left, &cfg);
        wait_established(&lab, Side::Left, Side::Right);
        let keylog = std::fs::read_to_string(lab.side_dir(Side::Left).join("ipsecgw.keylog"))
            .expect("ipsecgw key log");
        // Wireshark ikev2_decryption_table: SPIi,SPIr,SK_ei,SK_er,"encr",SK_ai,SK_ar,"integ"
        let f: Vec<&str> = keylog
            .lines()
            .next()
            .expect("a key log line")
            .split(',')
            .collect();
        let log = charon_log(&lab, Side::Right);
        let mut compared = 0;
        for (name, ours) in [
            ("Sk_ei", f[2]),
            ("Sk_er", f[3]),
            ("Sk_ai", f[5]),
            ("Sk_ar", f[6]),
        ] {
            if ours.is_empty() {
                continue; // AEAD: no integrity keys
            }
            let theirs = swan_secret(&log, name)
                .unwrap_or_else(|| panic!("{ike}: {name} not in strongSwan's log"));
            assert_eq!(
                ours, theirs,
                "{ike}: {name} differs between ipsecgw and strongSwan"
            );
            compared += 1;
        }
        let aead = ike.contains("gcm");
        assert_eq!(compared, if aead { 2 } else { 4 }, "{ike}: {keylog}");
    }
}

/// Beyond the reference suite: SHA-256, MODP-2048 and AES-GCM for IKE and ESP, with strongSwan.
#[test]
fn modern_proposals_with_strongswan() {
    if !netns_env_ok(&["swanctl", "/usr/lib/ipsec/charon"]) {
        return;
    }
    let mut lab = Lab::new("modern");
    let swan = SwanConn {
        ike: "aes256gcm16-prfsha256-modp2048,aes256-sha256-modp2048",
        esp: "aes256gcm16,aes256-sha256",
        ..SwanConn::new(Side::Right)
    };
    lab.start_charon(Side::Right, &swan.render());
    for (ike, esp, ike_expect, esp_expect) in [
        (
            "aes256-sha256-modp2048",
            "aes256-sha256",
            "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048",
            "ESP:AES_CBC-256/HMAC_SHA2_256_128",
        ),
        (
            "aes256gcm16-prfsha256-modp2048",
            "aes256gcm16",
            "AES_GCM_16-256/PRF_HMAC_SHA2_256/MODP_2048",
            "ESP:AES_GCM_16-256",
        ),
    ] {
        initiate_check_delete(&mut lab, ike, esp, ike_expect, esp_expect);
    }
}
