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
