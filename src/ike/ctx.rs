//! What an exchange gets besides `&mut IkeSa`: the time, the RNG, the output queues, the
//! configurations, and the indexes over the other SAs. Exchanges never call into `Engine`;
//! what only the engine can do (touch another SA, schedule a connection) they ask for with a
//! `Request`, which the engine carries out once the exchange has returned.

use super::event::Event;
use super::reason::{ChildDownReason, DownReason, Failure};
use super::sa::{Child, ChildState, IkeSa};
use super::status::EngineStats;
use super::table::Registry;
use super::{Identity, IkeConfig, Transmit};
use rand::RngCore;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::info;

pub(crate) const NONCE_LEN: usize = 32;

/// Longest wait the engine ever schedules; keeps configured durations from overflowing.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);

/// `at + d` that cannot panic on absurd configured durations.
pub(crate) fn later(at: Instant, d: Duration) -> Instant {
    let d = d.min(MAX_DELAY);
    at.checked_add(d).unwrap_or(at)
}

/// Work for the engine, asked for by an exchange.
pub(crate) enum Request {
    /// (Re-)initiate the connection at this time.
    Restart { conn: String, at: Instant },
    /// INITIAL_CONTACT: drop the connection's other established SAs with this peer (its
    /// address and the identity it proved).
    DropStale {
        conn: String,
        peer: IpAddr,
        peer_id: Option<Identity>,
        keep: u64,
    },
    /// A rekeyed IKE SA to put in the table (its children moved over already).
    Insert(Box<IkeSa>),
}

/// Everything the engine hands back to its driver, and what it remembers per connection.
#[derive(Default)]
pub(crate) struct Output {
    pub transmits: VecDeque<Transmit>,
    pub events: VecDeque<Event>,
    pub stats: EngineStats,
    pub keylog: bool,
    pub requests: Vec<Request>,
    /// Last failure per connection name (cleared when it comes up).
    pub last_error: HashMap<String, (Failure, Instant)>,
}

pub(crate) struct Ctx<'a> {
    pub now: Instant,
    pub rng: &'a mut dyn RngCore,
    pub out: &'a mut Output,
    pub configs: &'a [Arc<IkeConfig>],
    pub reg: &'a mut Registry,
}

impl Ctx<'_> {
    pub fn transmit(&mut self, local: SocketAddr, remote: SocketAddr, data: Vec<u8>) {
        // An encoder that could not say a length or count truthfully returned nothing.
        if data.is_empty() {
            tracing::warn!("not sending to {remote}: the message could not be encoded");
            return;
        }
        self.out.stats.sent += 1;
        self.out.transmits.push_back(Transmit {
            local,
            remote,
            data,
        });
    }

    pub fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill_bytes(&mut v);
        v
    }

    pub fn nonce(&mut self) -> Vec<u8> {
        self.random_bytes(NONCE_LEN)
    }

    /// A fresh IKE SPI of ours, unused in the table.
    pub fn new_ike_spi(&mut self) -> u64 {
        loop {
            let s = self.rng.next_u64();
            if s != 0 && !self.reg.has_sa(s) {
                return s;
            }
        }
    }

    /// A fresh inbound ESP SPI, unused by any installed CHILD SA or by `sa`'s own
    /// CREATE_CHILD_SA in flight.
    pub fn new_child_spi(&mut self, sa: &IkeSa) -> u32 {
        let pending = sa.in_flight.as_ref().and_then(|p| p.child_spi());
        loop {
            let s = self.rng.next_u32();
            if s >= 0x100 && !self.reg.child_in_use(s) && pending != Some(s) {
                return s;
            }
        }
    }

    /// How long to wait after TEMPORARY_FAILURE: 2 to 10 s, random so that two peers that
    /// collided do not retry in lock-step.
    pub fn temporary_failure_delay(&mut self) -> Duration {
        Duration::from_millis(2000 + self.rng.next_u64() % 8000)
    }

    /// `now + d`, jittered down by up to 10%; None when `d` is zero (feature off).
    pub fn jittered(&mut self, d: Duration) -> Option<Instant> {
        if d.is_zero() {
            return None;
        }
        let d = d.min(MAX_DELAY);
        let max_ms = (d.as_millis() / 10) as u64;
        let j = if max_ms == 0 {
            0
        } else {
            self.rng.next_u64() % (max_ms + 1)
        };
        Some(later(self.now, d.saturating_sub(Duration::from_millis(j))))
    }

    /// `now + d`, jittered down by up to `rand` (None: 10% of `d`), never below zero;
    /// None when `d` is zero (feature off). strongSwan's rand_time.
    pub fn jittered_by(&mut self, d: Duration, rand: Option<Duration>) -> Option<Instant> {
        let Some(rand) = rand else {
            return self.jittered(d);
        };
        if d.is_zero() {
            return None;
        }
        let d = d.min(MAX_DELAY);
        let max_ms = rand.min(d).as_millis() as u64;
        let j = self.rng.next_u64() % (max_ms.saturating_add(1)).max(1);
        Some(later(self.now, d.saturating_sub(Duration::from_millis(j))))
    }

    /// The point at which a soft limit `soft` (bytes or packets) starts a rekey: jittered
    /// down by up to `hard - soft` (strongSwan's rand_bytes/rand_packets default), 10% of
    /// `soft` without a hard limit, and never below half of `soft`. 0 = off.
    pub fn jittered_limit(&mut self, soft: u64, hard: u64) -> u64 {
        if soft == 0 {
            return 0;
        }
        let range = if hard > soft { hard - soft } else { soft / 10 };
        let range = range.min(soft / 2);
        soft - self.rng.next_u64() % range.saturating_add(1)
    }

    /// Asks for connection `conn` to be initiated at `at` (if it can be: it needs a remote
    /// address).
    pub fn restart(&mut self, conn: &str, at: Instant) {
        if self
            .configs
            .iter()
            .any(|c| c.name == conn && !c.remote_addrs.is_empty())
        {
            self.out.requests.push(Request::Restart {
                conn: conn.to_string(),
                at,
            });
        }
    }

    /// Remembers why connection `conn` failed, for its status.
    pub fn failed(&mut self, conn: &str, failure: Failure) {
        self.out
            .last_error
            .insert(conn.to_string(), (failure, self.now));
    }

    pub fn keylog(&mut self, sa: &IkeSa) {
        if !self.out.keylog {
            return;
        }
        if let (Some(k), Some(a)) = (&sa.keys, &sa.algs) {
            self.out.events.push_back(Event::KeyLog {
                spi_i: sa.spi_i,
                spi_r: sa.spi_r,
                sk_d: k.sk_d.clone(),
                sk_ai: k.sk_ai.clone(),
                sk_ar: k.sk_ar.clone(),
                sk_ei: k.sk_ei.clone(),
                sk_er: k.sk_er.clone(),
                sk_pi: k.sk_pi.clone(),
                sk_pr: k.sk_pr.clone(),
                encr: a.encr,
                integ: a.integ,
            });
        }
    }

    pub fn ike_up(&mut self, sa: &IkeSa) {
        let Some(a) = sa.algs else { return };
        info!(
            conn = %sa.cfg.name,
            "IKE_SA {}[{:016x}_i {:016x}_r] established between {}...{} ({}){}{}",
            sa.cfg.name,
            sa.spi_i,
            sa.spi_r,
            sa.local,
            sa.remote,
            a.describe(),
            if sa.nat_detected { ", NAT detected" } else { "" },
            if sa.rekeyed { ", rekeyed" } else { "" }
        );
        self.out.last_error.remove(&sa.cfg.name);
        self.out.events.push_back(Event::IkeUp {
            conn: sa.cfg.name.clone(),
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            local: sa.local,
            remote: sa.remote,
            encr: a.encr,
            integ: a.integ,
            prf: a.prf,
            dh: a.dh,
            nat_detected: sa.nat_detected,
            rekeyed: sa.rekeyed,
        });
    }

    pub fn ike_down(&mut self, sa: &IkeSa, reason: DownReason) {
        info!(conn = %sa.cfg.name, "IKE_SA {}[{:016x}_i {:016x}_r] down: {}", sa.cfg.name, sa.spi_i, sa.spi_r, reason);
        self.out.events.push_back(Event::IkeDown {
            conn: sa.cfg.name.clone(),
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            reason,
        });
    }

    /// A CHILD SA of connection `conn` is gone (already out of its IKE SA's list).
    pub fn child_down(&mut self, conn: &str, c: &Child, reason: ChildDownReason) {
        info!(
            conn,
            "CHILD_SA {}{{{:08x}_i {:08x}_o}} removed: {}", c.name, c.spi_in, c.spi_out, reason
        );
        self.reg.child_removed(c.spi_in);
        self.out.events.push_back(Event::ChildDown {
            conn: conn.to_string(),
            child: c.name.clone(),
            spi_in: c.spi_in,
            spi_out: c.spi_out,
            reason,
        });
    }

    /// Removes the child with inbound SPI `spi_in` from `sa` and reports it gone.
    pub fn remove_child(&mut self, sa: &mut IkeSa, spi_in: u32, reason: ChildDownReason) {
        if let Some(i) = sa.children.iter().position(|c| c.spi_in == spi_in) {
            let c = sa.children.remove(i);
            self.child_down(&sa.cfg.name, &c, reason);
        }
    }

    /// ChildDown for every child (a replaced one as "rekeyed"), then IkeDown.
    pub fn all_down(&mut self, sa: &mut IkeSa, reason: DownReason) {
        for c in std::mem::take(&mut sa.children) {
            let r = if c.state == ChildState::Rekeyed {
                ChildDownReason::Rekeyed
            } else {
                ChildDownReason::Ike(reason.clone())
            };
            self.child_down(&sa.cfg.name, &c, r);
        }
        self.ike_down(sa, reason);
    }

    /// Final events of an SA replaced by an IKE rekey (its children normally moved already).
    pub fn replaced_down(&mut self, sa: &mut IkeSa) {
        for c in std::mem::take(&mut sa.children) {
            self.child_down(&sa.cfg.name, &c, ChildDownReason::IkeRekeyed);
        }
        self.ike_down(sa, DownReason::Rekeyed);
    }
}
