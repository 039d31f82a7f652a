//! Optional key log (`IPSECGW_KEYLOG=FILE`), like SSLKEYLOGFILE: IKE SA keys in the format of
//! Wireshark's `ikev2_decryption_table`, so captures can be decrypted and tests can compare
//! our keys with the peer's. Off unless the variable is set; the file is created mode 0600.

use crate::crypto::{EncrAlg, IntegAlg};
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

    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &self,
        spi_i: u64,
        spi_r: u64,
        sk_ei: &[u8],
        sk_er: &[u8],
        sk_ai: &[u8],
        sk_ar: &[u8],
        encr: EncrAlg,
        integ: Option<IntegAlg>,
    ) {
        let line = format!(
            "{:016x},{:016x},{},{},\"{}\",{},{},\"{}\"\n",
            spi_i,
            spi_r,
            hex(sk_ei),
            hex(sk_er),
            ws_encr(encr),
            hex(sk_ai),
            hex(sk_ar),
            ws_integ(integ)
        );
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = res {
            tracing::warn!("cannot write key log {}: {e}", self.path.display());
        }
    }
}
