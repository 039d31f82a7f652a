//! Issue 11 "Keys": at `trace` level, the log of a whole IKE handshake (IKE_SA_INIT, IKE_AUTH,
//! the CHILD SA) and a rekey carries neither the PSK nor any derived key, in any spelling.
//! The real daemon too, at `RUST_LOG=trace` (every crate's trace output), through config
//! loads, a refused reload, a handshake and both rekeys.

mod common;
mod netsim;

use common::{netns_env_ok, GwConf, Lab, Side};
use ipsecgw::ike::{Event, IkeConfig};
use netsim::{conf, Conf, Sim};
use std::io::Write;
use std::sync::{Arc, Mutex};

const PSK: &[u8] = b"trace-psk-Zq9w8e7r6t";

fn cfg(local: &str, remote: &str) -> IkeConfig {
    conf(local, Some(remote)).psk(PSK)
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hex_sep(b: &[u8], sep: &str) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(sep)
}

fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

/// Every way a log line could spell `s` (at least 8 characters, so a match means something).
fn spellings(s: &[u8]) -> Vec<String> {
    let h = hex(s);
    let mut v = vec![
        h.clone(),
        h.to_uppercase(),
        hex_sep(s, ":"),
        hex_sep(s, " "),
        hex_sep(s, "-"),
        format!("{s:?}"),
        format!("{:02x?}", s),
        String::from_utf8_lossy(s).to_string(),
    ];
    // base64 starting at offsets 0, 1 and 2, so any alignment in a longer encoding is found;
    // the first and last characters depend on neighbours, so only the middle is searched.
    for skip in 0..3 {
        if let Some(t) = s.get(skip..) {
            let b = base64(t);
            let mid: String = b.chars().skip(1).take(b.len().saturating_sub(4)).collect();
            v.push(mid);
        }
    }
    v.retain(|x| x.len() >= 8);
    v
}

#[test]
fn the_spellings_catch_what_they_should() {
    assert_eq!(base64(b"Man"), "TWFu");
    assert_eq!(base64(b"Ma"), "TWE");
    let k = b"\x01\x02\xab\xcd-secret-psk!";
    let sp = spellings(k);
    let lines = [
        format!("key={}", hex(k)),
        format!("key {:?}", &k[..]),
        hex_sep(k, ":").to_uppercase(),
        "psk=\x01\x02\u{fffd}\u{fffd}-secret-psk!".to_string(),
        format!("b64 {}", base64(&[b"xy".as_slice(), k].concat())),
    ];
    for line in lines {
        let lower = line.to_lowercase();
        assert!(
            sp.iter().any(|s| lower.contains(&s.to_lowercase())),
            "not caught: {line}"
        );
    }
}

#[test]
fn trace_log_of_a_handshake_and_rekey_holds_no_psk_or_key_bytes() {
    let log = Captured::default();
    let sink = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let mut secrets: Vec<Vec<u8>> = vec![PSK.to_vec()];
    tracing::subscriber::with_default(subscriber, || {
        let mut sim = Sim::engines(
            vec![cfg("192.0.2.1", "192.0.2.2")],
            vec![cfg("192.0.2.2", "192.0.2.1")],
            (1, 2),
        );
        sim.a.set_keylog(true);
        sim.b.set_keylog(true);
        sim.initiate("c");
        sim.rekey(netsim::Side::A, false);
        sim.rekey(netsim::Side::A, true);
        assert!(sim.a.status(sim.now)[0].ike.is_some());
        for (_, e) in &sim.events {
            match e {
                Event::KeyLog {
                    sk_d,
                    sk_ai,
                    sk_ar,
                    sk_ei,
                    sk_er,
                    sk_pi,
                    sk_pr,
                    ..
                } => {
                    for k in [sk_d, sk_ai, sk_ar, sk_ei, sk_er, sk_pi, sk_pr] {
                        secrets.push(k.to_vec());
                    }
                }
                Event::ChildUp(c) => {
                    for k in [
                        &c.encr_key_in,
                        &c.encr_key_out,
                        &c.integ_key_in,
                        &c.integ_key_out,
                    ] {
                        secrets.push(k.to_vec());
                    }
                }
                _ => {}
            }
        }
    });
    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).to_string();
    assert!(
        text.contains("TRACE") || text.contains("DEBUG"),
        "nothing was logged at trace level"
    );
    assert!(secrets.len() > 20, "too few keys seen: {}", secrets.len());
    let lower = text.to_lowercase();
    for s in &secrets {
        for sp in spellings(s) {
            assert!(
                !text.contains(sp.as_str()) && !lower.contains(&sp.to_lowercase()),
                "a secret appears in the trace log: {sp}"
            );
        }
        // Any 8-byte window of a key, hex-encoded, also counts.
        for w in s.windows(8) {
            assert!(
                !text.contains(&hex(w)),
                "8 bytes of a key appear in the trace log"
            );
        }
    }
}

const DAEMON_PSK: &str = "daemon-trace-psk-Hq4Lm8Xv2Rk7";

/// The IKE keys of each line of the key log (`IPSECGW_KEYLOG`, Wireshark's decryption table:
/// SPIi, SPIr, SK_ei, SK_er, encr, SK_ai, SK_ar, integ).
fn keylog_keys(text: &str) -> Vec<Vec<u8>> {
    let unhex = |h: &str| -> Vec<u8> {
        (0..h.len() / 2)
            .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex in key log"))
            .collect()
    };
    let mut keys = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        assert!(f.len() >= 7, "key log line: {line}");
        for i in [2, 3, 5, 6] {
            if !f[i].is_empty() {
                keys.push(unhex(f[i]));
            }
        }
    }
    keys
}

#[test]
fn the_daemon_at_rust_log_trace_never_logs_the_psk_or_ike_keys() {
    if !netns_env_ok(&[]) {
        return;
    }
    let mut lab = Lab::new("trlog");
    let conf = |side| {
        let mut c = GwConf::tunneled(side);
        c.psk = DAEMON_PSK;
        c.render(&lab)
    };
    let (left_conf, right_conf) = (conf(Side::Left), conf(Side::Right));
    let right = lab.start_ipsecgw_with(Side::Right, &right_conf, "trace");
    let left = lab.start_ipsecgw_with(Side::Left, &left_conf, "trace");

    // A broken line next to the PSK: the refusal names the file and line, never the value.
    let path = lab.side_dir(Side::Right).join("ipsecgw.toml");
    let psk_line = format!("psk = \"{DAEMON_PSK}\"");
    assert!(right_conf.contains(&psk_line));
    let broken = right_conf.replace(&psk_line, &format!("{psk_line} x"));
    std::fs::write(&path, &broken).unwrap();
    let (code, out, err) = lab.cli(Side::Right, "reload");
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("ipsecgw.toml:"), "{err}");
    assert!(
        !format!("{out}{err}").contains(DAEMON_PSK),
        "the refusal echoed the PSK"
    );
    let (code, out, err) = lab.cli(Side::Right, &format!("check --config {}", path.display()));
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        !format!("{out}{err}").contains(DAEMON_PSK),
        "check echoed the PSK"
    );
    // A PSK that is too short is named by its length only.
    let short = right_conf.replace(&psk_line, "psk = \"Hq4Lm8\"");
    std::fs::write(&path, &short).unwrap();
    let (code, out, err) = lab.cli(Side::Right, "reload");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        !format!("{out}{err}").contains("Hq4Lm8"),
        "the refusal echoed the short PSK"
    );
    std::fs::write(&path, &right_conf).unwrap();
    let (code, out, err) = lab.cli(Side::Right, "reload");
    assert_eq!(code, 0, "{out}{err}");

    // A handshake, traffic, both rekeys, a terminate.
    let (code, out, err) = lab.cli(Side::Left, "initiate gw");
    assert_eq!(code, 0, "{out}{err}");
    assert!(lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 2));
    for verb in ["rekey gw --child", "rekey gw --ike", "terminate gw"] {
        let (code, out, err) = lab.cli(Side::Left, verb);
        assert_eq!(code, 0, "{verb}: {out}{err}");
    }

    let keylog = std::fs::read_to_string(lab.side_dir(Side::Left).join("ipsecgw.keylog"))
        .expect("the key log of the left daemon");
    let keys = keylog_keys(&keylog);
    assert!(
        keys.len() >= 8,
        "two IKE SAs' keys expected, got {}",
        keys.len()
    );
    for pid in [left, right] {
        let text = lab.log_of(pid);
        assert!(
            text.contains("TRACE") && text.contains("] established between"),
            "the daemon did not log at trace level through a handshake:\n{text}"
        );
        let lower = text.to_lowercase();
        for sp in spellings(DAEMON_PSK.as_bytes()) {
            assert!(
                !lower.contains(&sp.to_lowercase()),
                "the PSK appears in the daemon's trace log: {sp}"
            );
        }
        for k in &keys {
            for w in k.windows(8) {
                assert!(
                    !lower.contains(&hex(w)),
                    "8 bytes of an IKE key appear in the trace log"
                );
            }
        }
    }
}
