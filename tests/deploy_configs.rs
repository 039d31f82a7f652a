//! The example configs in deploy/ must stay valid: `ipsecgw check` accepts each of them
//! (with its psk_file pointed at a real 0600 file).

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn every_deploy_config_passes_check() {
    let dir = std::env::temp_dir().join(format!("ipsecgw-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let psk = dir.join("key.psk");
    std::fs::write(&psk, "an-example-key-0123").unwrap();
    std::fs::set_permissions(&psk, std::fs::Permissions::from_mode(0o600)).unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let files = [
        "reference-azure.toml",
        "strongswan-peer/ipsecgw.toml",
        "pair/left.toml",
        "pair/right.toml",
    ];
    for f in files {
        let text = std::fs::read_to_string(format!("{root}/deploy/configs/{f}")).unwrap();
        let text = text
            .lines()
            .map(|l| {
                if l.starts_with("psk_file") {
                    format!("psk_file = \"{}\"", psk.display())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let path = dir.join(f.replace('/', "-"));
        std::fs::write(&path, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_ipsecgw"))
            .arg("check")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{f}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Every shipped BGP config says what it imports (else RFC 8212 accepts nothing).
        assert!(!stdout.contains("warning:"), "{f}: {stdout}");
    }
    // And a broken one is refused with exit code 1 and file:line.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[global]\nlog_levle = \"info\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ipsecgw"))
        .arg("check")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("bad.toml:2:") && text.contains("log_level"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
