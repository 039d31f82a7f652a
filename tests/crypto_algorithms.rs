//! The algorithm surface through the real binary: `ipsecgw list-algorithms` lists every
//! keyword the parser knows with its IANA ID and RFC, and `ipsecgw check` accepts the new
//! suites and names every unknown token of a proposal, not only the first.

use ipsecgw::crypto::keywords::KEYWORDS;
use std::path::PathBuf;
use std::process::{Command, Output};

fn ipsecgw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipsecgw"))
        .args(args)
        .output()
        .expect("run ipsecgw")
}

/// A config file in the temp dir, removed on drop.
struct TempConfig(PathBuf);

impl TempConfig {
    fn new(tag: &str, ike: &str, esp: &str) -> TempConfig {
        let path =
            std::env::temp_dir().join(format!("ipsecgw-algs-{}-{tag}.toml", std::process::id()));
        let text = format!(
            "[[connection]]\nname = \"a\"\nlocal_addrs = [\"192.0.2.1\"]\nremote_addrs = [\"192.0.2.2\"]\n\
             psk = \"IamSecure123\"\nike_proposals = {ike}\n\
             [[connection.children]]\nname = \"c\"\nesp_proposals = {esp}\n"
        );
        std::fs::write(&path, text).expect("write config");
        TempConfig(path)
    }

    fn check(&self) -> Output {
        ipsecgw(&["check", "--config", self.0.to_str().unwrap()])
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn list_algorithms_prints_every_keyword_with_id_and_rfc() {
    let o = ipsecgw(&["list-algorithms"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    for (word, _) in KEYWORDS {
        assert!(
            out.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|w| w == *word),
            "keyword {word} not listed:\n{out}"
        );
    }
    let line = |kw: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(kw))
            .unwrap_or_else(|| panic!("no line for {kw}:\n{out}"))
            .to_string()
    };
    for (kw, name, id, rfc) in [
        ("ecp256 ", "ECP_256", " 19 ", "RFC 5903"),
        ("ecp521 ", "ECP_521", " 21 ", "RFC 5903"),
        ("curve25519 ", "CURVE_25519", " 31 ", "RFC 8031"),
        ("modp2048s256 ", "MODP_2048_256", " 24 ", "RFC 5114"),
        ("modp4096 ", "MODP_4096", " 16 ", "RFC 3526"),
        ("chacha20poly1305 ", "CHACHA20_POLY1305", " 28 ", "RFC 7634"),
        ("aes256gcm12 ", "AES_GCM_12_256", "19 key 256", "RFC 4106"),
        ("aes192 ", "AES_CBC_192", "12 key 192", "RFC 3602"),
        ("sha384 ", "HMAC_SHA2_384_192", " 13 ", "RFC 4868"),
        ("prfsha512 ", "PRF_HMAC_SHA2_512", " 7 ", "RFC 4868"),
        ("aesxcbc ", "AES_XCBC_96", " 5 ", "RFC 3566"),
        ("prfaesxcbc ", "PRF_AES128_XCBC", " 4 ", "RFC 4434"),
    ] {
        let l = line(kw);
        assert!(
            l.contains(name) && l.contains(id) && l.contains(rfc),
            "{kw}: {l}"
        );
    }
    for weak in ["md5 ", "prfmd5 ", "modp768 ", "null "] {
        assert!(line(weak).contains("weak"), "{}", line(weak));
    }
}

#[test]
fn check_accepts_the_new_suites() {
    let c = TempConfig::new(
        "good",
        r#"["aes256gcm16-prfsha384-ecp384", "chacha20poly1305-prfsha256-curve25519", "aes192-sha512-modp2048s256", "aes128-sha256-ecp256-ecp521-modp3072-modp4096"]"#,
        r#"["aes128gcm8-ecp256", "aes256gcm12", "chacha20poly1305-x25519", "aes192-sha384-modp1536"]"#,
    );
    let o = c.check();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("OK"), "{}", text(&o));
}

#[test]
fn check_names_every_unknown_token_and_wrong_context() {
    let c = TempConfig::new(
        "bad",
        r#"["aes256-foo-sha1-bar-modp2048"]"#,
        r#"["aes256-sha256-prfsha256-baz"]"#,
    );
    let o = c.check();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("unknown algorithms 'foo', 'bar'"), "{t}");
    assert!(t.contains("unknown algorithm 'baz'"), "{t}");
    assert!(t.contains("'prfsha256' not allowed"), "{t}");
}
