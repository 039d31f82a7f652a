//! Optional key log (`IPSECGW_KEYLOG=FILE`), like SSLKEYLOGFILE: IKE SA keys in the format of
//! Wireshark's `ikev2_decryption_table`, so captures can be decrypted and tests can compare
//! our keys with the peer's. Off unless the variable is set; the file is created mode 0600.

use crate::crypto::{EncrAlg, IntegAlg};
use crate::ike::Event;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

pub struct KeyLog {
    path: PathBuf,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Wireshark's names for the algorithms in `ikev2_decryption_table`.
fn ws_encr(e: EncrAlg) -> &'static str {
    e.wireshark_name()
}

fn ws_integ(i: Option<IntegAlg>) -> &'static str {
    i.map_or("NONE [RFC4306]", IntegAlg::wireshark_name)
}

impl KeyLog {
    pub fn from_env() -> Option<KeyLog> {
        std::env::var_os("IPSECGW_KEYLOG").map(|p| KeyLog {
            path: PathBuf::from(p),
        })
    }

    /// Appends the keys of an `Event::KeyLog` (other events are ignored).
    pub fn write(&self, ev: &Event) {
        let Event::KeyLog {
            spi_i,
            spi_r,
            sk_ai,
            sk_ar,
            sk_ei,
            sk_er,
            encr,
            integ,
            ..
        } = ev
        else {
            return;
        };
        let line = format!(
            "{:016x},{:016x},{},{},\"{}\",{},{},\"{}\"\n",
            spi_i,
            spi_r,
            hex(sk_ei),
            hex(sk_er),
            ws_encr(*encr),
            hex(sk_ai),
            hex(sk_ar),
            ws_integ(*integ)
        );
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&self.path)
            .and_then(|mut f| {
                private_file(&f)?;
                f.write_all(line.as_bytes())
            });
        if let Err(e) = res {
            tracing::warn!("cannot write key log {}: {e}", self.path.display());
        }
    }
}

/// The key log must be a regular file only its owner can read: `mode(0o600)` applies only
/// when the file is created, and an existing file keeps whatever mode it has.
fn private_file(f: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = f.metadata()?;
    let mode = meta.permissions().mode() & 0o777;
    if !meta.is_file() {
        return Err(std::io::Error::other(
            "not a regular file; not writing keys",
        ));
    }
    if mode & 0o077 != 0 {
        return Err(std::io::Error::other(format!(
            "mode {mode:04o} lets group/others read it; not writing keys (chmod 600 it)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{EncrAlg, IntegAlg};
    use std::os::unix::fs::PermissionsExt;
    use zeroize::Zeroizing;

    fn event() -> Event {
        let k = |b| Zeroizing::new(vec![b; 16]);
        Event::KeyLog {
            spi_i: 1,
            spi_r: 2,
            sk_d: k(0),
            sk_pi: k(5),
            sk_pr: k(6),
            sk_ai: k(1),
            sk_ar: k(2),
            sk_ei: k(3),
            sk_er: k(4),
            encr: EncrAlg::AesCbc128,
            integ: Some(IntegAlg::HmacSha1_96),
        }
    }

    #[test]
    fn keys_go_only_to_a_private_regular_file() {
        let dir = std::env::temp_dir().join(format!("ipsecgw-keylog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        let log = KeyLog { path: path.clone() };
        log.write(&event());
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let len = meta.len();
        assert!(len > 0);
        // An existing file others can read gets no keys (it used to be appended to).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        log.write(&event());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
        // Nor does a symlink planted at the path.
        let link = dir.join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        KeyLog { path: link }.write(&event());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
