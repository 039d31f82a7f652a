//! Issue 11 finding 6 and limits: the files ipsecgw reads and creates. A `psk_file` that is a
//! FIFO fails with an error instead of blocking, the control socket is born 0600 in a
//! directory others cannot write, and the config bounds selectors and half-open SAs.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use ipsecgw::config;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("ipsecgw-hardening-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn conn(psk_line: &str, child_extra: &str) -> String {
    format!(
        "[[connection]]\nname = \"a\"\nlocal_addrs = [\"192.0.2.1\"]\nremote_addrs = [\"192.0.2.2\"]\n{psk_line}\n\
         [[connection.children]]\nname = \"c\"\n{child_extra}\n"
    )
}

/// Parses on another thread: a config read that blocks fails the test instead of hanging it.
fn parse_within(text: String, file: PathBuf) -> Result<config::Config, Vec<config::ConfigError>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(config::parse(&text, &file.display().to_string()));
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("config parsing blocked on the psk_file")
}

#[test]
fn psk_file_that_is_a_fifo_or_directory_is_a_clear_error() {
    let dir = TempDir::new("fifo");
    let fifo = dir.0.join("psk.fifo");
    let c = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let text = conn(&format!("psk_file = \"{}\"", fifo.display()), "");
    let errs = parse_within(text, dir.0.join("gw.toml")).unwrap_err();
    let msg = errs
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(msg.contains("is not a regular file (a FIFO)"), "{msg}");
    assert!(errs.iter().any(|e| e.line == 5), "{msg}");

    let sub = dir.0.join("psk.d");
    fs::create_dir(&sub).unwrap();
    let text = conn(&format!("psk_file = \"{}\"", sub.display()), "");
    let msg = parse_within(text, dir.0.join("gw.toml"))
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(msg.contains("not a regular file (a directory)"), "{msg}");

    // A regular 0600 file still works, and a readable one is still refused.
    let ok = dir.0.join("psk");
    fs::write(&ok, "IamSecure123\n").unwrap();
    fs::set_permissions(&ok, fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = parse_within(
        conn(&format!("psk_file = \"{}\"", ok.display()), ""),
        dir.0.join("gw.toml"),
    )
    .expect("0600 psk_file");
    assert_eq!(cfg.connections[0].psk.as_bytes(), b"IamSecure123");
    fs::set_permissions(&ok, fs::Permissions::from_mode(0o644)).unwrap();
    let msg = parse_within(
        conn(&format!("psk_file = \"{}\"", ok.display()), ""),
        dir.0.join("gw.toml"),
    )
    .unwrap_err()
    .iter()
    .map(|e| e.to_string())
    .collect::<Vec<_>>()
    .join("\n");
    assert!(
        msg.contains("readable by group/others (mode 0644)"),
        "{msg}"
    );
}

#[test]
fn selectors_per_child_and_half_open_caps_are_configured_and_bounded() {
    let many: Vec<String> = (0..65).map(|i| format!("\"10.0.{i}.0/24\"")).collect();
    let child = format!("local_ts = [{}]", many.join(", "));
    let errs = config::parse(&conn("psk = \"IamSecure123\"", &child), "t.toml").unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.line == 8 && e.message.contains("65 prefixes, more than the 64")),
        "{errs:?}"
    );
    let d = config::parse(&conn("psk = \"IamSecure123\"", ""), "t.toml").unwrap();
    assert_eq!(
        (d.global.half_open_max, d.global.half_open_per_address_max),
        (5000, 100)
    );
    let text = format!(
        "[global]\nhalf_open_max = 200\nhalf_open_per_address_max = 5\n{}",
        conn("psk = \"IamSecure123\"", "")
    );
    let g = config::parse(&text, "t.toml").unwrap().global;
    assert_eq!((g.half_open_max, g.half_open_per_address_max), (200, 5));
    let bad = format!(
        "[global]\nhalf_open_max = 0\n{}",
        conn("psk = \"IamSecure123\"", "")
    );
    assert!(config::parse(&bad, "t.toml").is_err());
}

#[tokio::test]
async fn control_socket_is_born_0600_and_its_directory_is_checked() {
    let dir = TempDir::new("sock");
    let path = dir.0.join("run").join("control.sock");
    let listener = ipsecgw::control::bind(&path).expect("bind");
    let meta = fs::symlink_metadata(&path).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(
        fs::metadata(dir.0.join("run")).unwrap().mode() & 0o777,
        0o700
    );
    drop(listener);

    // A directory others may write to could have the socket swapped under us.
    let open = dir.0.join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let e = ipsecgw::control::bind(&open.join("control.sock")).unwrap_err();
    assert!(
        e.to_string()
            .contains("writable by group/others (mode 0777)"),
        "{e}"
    );
    // Sticky (like /tmp) is fine.
    fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
    ipsecgw::control::bind(&open.join("control.sock")).expect("sticky dir");
}
