//! What the engine tells its driver: SA lifecycle events (with typed reasons) and the
//! CHILD SA keys to install.

use super::reason::{ChildDownReason, DownReason};
use super::TrafficSelector;
use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
use std::fmt;
use std::net::SocketAddr;
use zeroize::Zeroizing;

/// A negotiated CHILD SA, ready to be installed in the data plane (both directions).
#[derive(Clone)]
pub struct ChildSa {
    pub conn: String,
    pub child: String,
    pub spi_in: u32,
    pub spi_out: u32,
    pub encr: EncrAlg,
    pub integ: Option<IntegAlg>,
    pub esn: bool,
    /// The PFS group used when this SA was created (None for the first CHILD SA / no PFS).
    pub dh: Option<DhGroup>,
    /// For AES-GCM: key || 4-byte salt.
    pub encr_key_in: Zeroizing<Vec<u8>>,
    pub integ_key_in: Zeroizing<Vec<u8>>,
    pub encr_key_out: Zeroizing<Vec<u8>>,
    pub integ_key_out: Zeroizing<Vec<u8>>,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    /// ESP endpoints; with udp_encap the remote port is the peer's NAT-T port.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub udp_encap: bool,
    pub replay_window: u32,
    /// spi_in of the SA this one replaces (make-before-break): keep the old one for inbound
    /// until its ChildDown arrives.
    pub rekey_of: Option<u32>,
}

impl fmt::Debug for ChildSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSa")
            .field("conn", &self.conn)
            .field("child", &self.child)
            .field("spi_in", &format_args!("{:08x}", self.spi_in))
            .field("spi_out", &format_args!("{:08x}", self.spi_out))
            .field("encr", &self.encr)
            .field("integ", &self.integ)
            .field("esn", &self.esn)
            .field("dh", &self.dh)
            .field("keys", &"<redacted>")
            .field("local_ts", &self.local_ts)
            .field("remote_ts", &self.remote_ts)
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("udp_encap", &self.udp_encap)
            .field("replay_window", &self.replay_window)
            .field("rekey_of", &self.rekey_of)
            .finish()
    }
}

/// What the engine tells its driver.
#[derive(Clone)]
pub enum Event {
    IkeUp {
        conn: String,
        spi_i: u64,
        spi_r: u64,
        local: SocketAddr,
        remote: SocketAddr,
        encr: EncrAlg,
        integ: Option<IntegAlg>,
        prf: PrfAlg,
        dh: DhGroup,
        nat_detected: bool,
        /// True when this IKE SA replaces an older one (IKE rekey).
        rekeyed: bool,
    },
    IkeDown {
        conn: String,
        spi_i: u64,
        spi_r: u64,
        reason: DownReason,
    },
    ChildUp(ChildSa),
    ChildDown {
        conn: String,
        child: String,
        spi_in: u32,
        spi_out: u32,
        reason: ChildDownReason,
    },
    /// An authenticated request came from a new address or port behind a NAT (RFC 7296
    /// 2.23): the IKE SA now talks to `remote`, and so must the outbound ESP of every CHILD
    /// SA in `children` (by inbound SPI).
    PeerMoved {
        conn: String,
        spi_i: u64,
        spi_r: u64,
        local: SocketAddr,
        remote: SocketAddr,
        children: Vec<u32>,
    },
    /// IKE SA keys, only with `set_keylog(true)` (Wireshark's ikev2_decryption_table / tests).
    KeyLog {
        spi_i: u64,
        spi_r: u64,
        sk_d: Zeroizing<Vec<u8>>,
        sk_ai: Zeroizing<Vec<u8>>,
        sk_ar: Zeroizing<Vec<u8>>,
        sk_ei: Zeroizing<Vec<u8>>,
        sk_er: Zeroizing<Vec<u8>>,
        sk_pi: Zeroizing<Vec<u8>>,
        sk_pr: Zeroizing<Vec<u8>>,
        encr: EncrAlg,
        integ: Option<IntegAlg>,
    },
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::IkeUp {
                conn,
                spi_i,
                spi_r,
                local,
                remote,
                encr,
                integ,
                prf,
                dh,
                nat_detected,
                rekeyed,
            } => f
                .debug_struct("IkeUp")
                .field("conn", conn)
                .field("spi_i", &format_args!("{spi_i:016x}"))
                .field("spi_r", &format_args!("{spi_r:016x}"))
                .field("local", local)
                .field("remote", remote)
                .field("encr", encr)
                .field("integ", integ)
                .field("prf", prf)
                .field("dh", dh)
                .field("nat_detected", nat_detected)
                .field("rekeyed", rekeyed)
                .finish(),
            Event::IkeDown {
                conn,
                spi_i,
                spi_r,
                reason,
            } => f
                .debug_struct("IkeDown")
                .field("conn", conn)
                .field("spi_i", &format_args!("{spi_i:016x}"))
                .field("spi_r", &format_args!("{spi_r:016x}"))
                .field("reason", reason)
                .finish(),
            Event::ChildUp(c) => f.debug_tuple("ChildUp").field(c).finish(),
            Event::PeerMoved {
                conn,
                spi_i,
                spi_r,
                local,
                remote,
                children,
            } => f
                .debug_struct("PeerMoved")
                .field("conn", conn)
                .field("spi_i", &format_args!("{spi_i:016x}"))
                .field("spi_r", &format_args!("{spi_r:016x}"))
                .field("local", local)
                .field("remote", remote)
                .field("children", children)
                .finish(),
            Event::ChildDown {
                conn,
                child,
                spi_in,
                spi_out,
                reason,
            } => f
                .debug_struct("ChildDown")
                .field("conn", conn)
                .field("child", child)
                .field("spi_in", &format_args!("{spi_in:08x}"))
                .field("spi_out", &format_args!("{spi_out:08x}"))
                .field("reason", reason)
                .finish(),
            Event::KeyLog {
                spi_i,
                spi_r,
                encr,
                integ,
                ..
            } => f
                .debug_struct("KeyLog")
                .field("spi_i", &format_args!("{spi_i:016x}"))
                .field("spi_r", &format_args!("{spi_r:016x}"))
                .field("encr", encr)
                .field("integ", integ)
                .field("keys", &"<redacted>")
                .finish(),
        }
    }
}
