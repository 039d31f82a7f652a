//! Counters kept in atomics by the packet threads and snapshotted for status output.

use crate::esp::DropReason;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A relaxed counter: only ever read for reporting.
#[derive(Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Per installed SA pair.
#[derive(Default)]
pub(crate) struct SaStats {
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub packets_in: Counter,
    pub packets_out: Counter,
    pub ts_violations: Counter,
    pub drops: [Counter; DropReason::ALL.len()],
    /// Nanoseconds since the dataplane epoch (+1); 0 = nothing authenticated yet.
    pub last_inbound_ns: AtomicU64,
}

impl SaStats {
    pub fn count_drop(&self, reason: DropReason) {
        if let Some(c) = self.drops.get(reason.index()) {
            c.inc();
        }
    }

    fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).map_or(0, Counter::get)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn snapshot(
        &self,
        conn: &str,
        child: &str,
        spi_in: u32,
        spi_out: u32,
        udp_encap: bool,
        outbound_active: bool,
        needs_rekey: bool,
        epoch: Instant,
    ) -> SaCounters {
        let last = self.last_inbound_ns.load(Ordering::Relaxed);
        let other_drops = DropReason::ALL
            .into_iter()
            .filter(|r| !matches!(r, DropReason::Replay | DropReason::AuthFailed))
            .map(|r| (r.name(), self.dropped(r)))
            .filter(|(_, n)| *n > 0)
            .collect();
        SaCounters {
            conn: conn.to_string(),
            child: child.to_string(),
            spi_in,
            spi_out,
            udp_encap,
            outbound_active,
            bytes_in: self.bytes_in.get(),
            bytes_out: self.bytes_out.get(),
            packets_in: self.packets_in.get(),
            packets_out: self.packets_out.get(),
            replay_drops: self.dropped(DropReason::Replay),
            auth_failures: self.dropped(DropReason::AuthFailed),
            ts_violations: self.ts_violations.get(),
            other_drops,
            last_inbound: (last > 0).then(|| epoch + Duration::from_nanos(last - 1)),
            needs_rekey,
        }
    }
}

/// Counters of one installed CHILD SA pair (inbound `spi_in`, outbound `spi_out`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaCounters {
    pub conn: String,
    pub child: String,
    pub spi_in: u32,
    pub spi_out: u32,
    pub udp_encap: bool,
    /// False for an SA that was replaced by a rekey and only still receives.
    pub outbound_active: bool,
    /// Inner (decrypted) bytes / packets written to the TUN.
    pub bytes_in: u64,
    /// Inner bytes / packets encapsulated for sending.
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub replay_drops: u64,
    pub auth_failures: u64,
    /// Authenticated packets whose inner addresses were outside the traffic selectors.
    pub ts_violations: u64,
    /// Every other non-zero drop reason by name (`DropReason::name`).
    pub other_drops: Vec<(&'static str, u64)>,
    /// When the last packet authenticated (for DPD / idle detection).
    pub last_inbound: Option<Instant>,
    /// The outbound sequence counter is near its end: rekey now.
    pub needs_rekey: bool,
}

/// Drops that cannot be attributed to an SA, plus a few packet-path events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounters {
    pub unknown_spi: u64,
    pub truncated: u64,
    /// Neither keepalive, IKE nor plausible ESP (or a raw packet that is not IPv4/ESP).
    pub not_esp: u64,
    /// Packet from a TUN no SA's selectors cover.
    pub no_sa_outbound: u64,
    /// Packet from a TUN that is not IPv4/IPv6.
    pub not_ip_outbound: u64,
    /// Inbound SA without a tunnel device for its connection.
    pub no_tunnel: u64,
    pub seq_exhausted: u64,
    pub ike_queue_full: u64,
    pub tun_write_errors: u64,
    pub send_errors: u64,
    pub recv_errors: u64,
    pub keepalives_received: u64,
    pub keepalives_sent: u64,
    /// UDP GSO messages sent (each carrying several ESP packets).
    pub gso_sends: u64,
    /// Received UDP GRO messages (each holding several ESP packets).
    pub gro_receives: u64,
    /// TUN writes that carried several decrypted TCP segments coalesced (GRO).
    pub tun_gro_writes: u64,
}

#[derive(Default)]
pub(crate) struct GlobalStats {
    pub unknown_spi: Counter,
    pub truncated: Counter,
    pub not_esp: Counter,
    pub no_sa_outbound: Counter,
    pub not_ip_outbound: Counter,
    pub no_tunnel: Counter,
    pub seq_exhausted: Counter,
    pub ike_queue_full: Counter,
    pub tun_write_errors: Counter,
    pub send_errors: Counter,
    pub recv_errors: Counter,
    pub keepalives_received: Counter,
    pub keepalives_sent: Counter,
    pub gso_sends: Counter,
    pub gro_receives: Counter,
    pub tun_gro_writes: Counter,
}

impl GlobalStats {
    pub fn snapshot(&self) -> DropCounters {
        DropCounters {
            unknown_spi: self.unknown_spi.get(),
            truncated: self.truncated.get(),
            not_esp: self.not_esp.get(),
            no_sa_outbound: self.no_sa_outbound.get(),
            not_ip_outbound: self.not_ip_outbound.get(),
            no_tunnel: self.no_tunnel.get(),
            seq_exhausted: self.seq_exhausted.get(),
            ike_queue_full: self.ike_queue_full.get(),
            tun_write_errors: self.tun_write_errors.get(),
            send_errors: self.send_errors.get(),
            recv_errors: self.recv_errors.get(),
            keepalives_received: self.keepalives_received.get(),
            keepalives_sent: self.keepalives_sent.get(),
            gso_sends: self.gso_sends.get(),
            gro_receives: self.gro_receives.get(),
            tun_gro_writes: self.tun_gro_writes.get(),
        }
    }
}
