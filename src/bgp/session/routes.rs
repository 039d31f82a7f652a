//! The routes side of a session: Adj-RIB-In with import policy, the decision process, what
//! we announce, and the status/RIB views.
//!
//! Import, per NLRI, after the UPDATE-wide checks (RFC 7606 verdict, AS_PATH, next hop):
//! 1. a route covering a protected address (IKE peer, local underlay) is always refused;
//! 2. then the `import` prefix-list decides; without one, eBGP accepts nothing (RFC 8212).
//!
//! Both refusals are counted in [`crate::bgp::ImportCounters`] and logged.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Instant;

use super::{after, Route, Session, NLRI_PER_UPDATE};
use crate::bgp::msg::{
    err, AsPath, DecodedUpdate, Message, Notification, Origin, PathAttrs, Update, AFI_IPV4,
    SAFI_UNICAST,
};
use crate::bgp::policy::{self, Path};
use crate::bgp::{BgpEvent, BgpState, BgpStatus, RibDirection, RibEntry};
use crate::prefix::IpPrefix;

/// How many refused prefixes one log line names.
const LOG_PREFIXES: usize = 8;

/// Why the import side refused a learned route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// It covers this protected address (recursive routing).
    Protected(IpAddr),
    /// The `import` prefix-list does not permit it.
    PrefixList,
    /// eBGP without an import policy (RFC 8212).
    NoPolicy,
}

/// "a, b, c and 5 more", for log lines about many prefixes.
fn some_of<T: std::fmt::Display>(items: &[T]) -> String {
    let mut s = items
        .iter()
        .take(LOG_PREFIXES)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > LOG_PREFIXES {
        s.push_str(&format!(" and {} more", items.len() - LOG_PREFIXES));
    }
    s
}

/// A refused route that covers a protected address, for the log line.
struct Covering(IpPrefix, IpAddr);

impl std::fmt::Display for Covering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (covers {})", self.0, self.1)
    }
}

impl Session {
    // ---- routes in -------------------------------------------------------------------------

    pub(super) fn handle_update(&mut self, now: Instant, d: DecodedUpdate) {
        let peer = self.cfg.peer_address;
        let DecodedUpdate {
            update,
            treat_as_withdraw,
            discarded,
        } = d;
        for what in &discarded {
            tracing::debug!("bgp {peer}: attribute discarded: {what}");
        }
        let Update {
            withdrawn,
            attrs,
            nlri,
        } = update;
        let mut gone: Vec<IpPrefix> = withdrawn;
        if let Some(mp) = &attrs.mp_unreach {
            if mp.afi == AFI_IPV4 && mp.safi == SAFI_UNICAST {
                gone.extend(mp.withdrawn.iter().copied());
            }
        }
        // (prefix, next hop) pairs announced by this UPDATE.
        let mut reach: Vec<(IpPrefix, Option<IpAddr>)> = nlri
            .iter()
            .map(|p| (*p, attrs.next_hop.map(IpAddr::V4)))
            .collect();
        if let Some(mp) = &attrs.mp_reach {
            if mp.afi == AFI_IPV4 && mp.safi == SAFI_UNICAST {
                reach.extend(mp.nlri.iter().map(|p| (*p, mp.next_hop)));
            }
        }

        let verdict = match treat_as_withdraw {
            Some(why) => {
                tracing::warn!(
                    "bgp {peer}: malformed UPDATE, treating {} prefixes as withdrawn: {why}",
                    reach.len()
                );
                Err(())
            }
            None => self.import_check(&attrs),
        };
        let mut changed = BTreeSet::new();
        for p in gone {
            if self.adj_in.remove(&p).is_some() {
                changed.insert(p);
            }
        }
        let mut covering = Vec::new();
        let mut by_policy = Vec::new();
        let mut no_policy = false;
        for (p, nh) in reach {
            changed.insert(p);
            let next_hop = match (verdict, nh) {
                (Ok(()), Some(nh)) if self.next_hop_usable(nh) => nh,
                (Ok(()), nh) => {
                    tracing::debug!("bgp {peer}: {p}: unusable next hop {nh:?}, route ignored");
                    self.adj_in.remove(&p);
                    continue;
                }
                (Err(()), _) => {
                    self.adj_in.remove(&p);
                    continue;
                }
            };
            if let Err(why) = self.import_verdict(&p) {
                self.adj_in.remove(&p);
                match why {
                    Refusal::Protected(addr) => covering.push(Covering(p, addr)),
                    Refusal::PrefixList => by_policy.push(p),
                    Refusal::NoPolicy => {
                        no_policy = true;
                        by_policy.push(p);
                    }
                }
                continue;
            }
            let route = Route {
                next_hop,
                as_path: attrs.as_path.clone().unwrap_or_default(),
                origin: attrs.origin.unwrap_or(Origin::Incomplete),
                med: attrs.med,
                // route-map in: set local-preference (a received LOCAL_PREF is ignored on eBGP).
                local_pref: self.cfg.import_local_pref,
            };
            self.adj_in.insert(p, route);
        }
        self.refused_protected(&covering);
        self.refused_by_policy(&by_policy, no_policy);
        let max = self.cfg.max_prefixes;
        if max > 0 && self.adj_in.len() > max as usize {
            tracing::warn!("maximum-prefix limit {max} reached from {peer}");
            let mut data = AFI_IPV4.to_be_bytes().to_vec();
            data.push(SAFI_UNICAST);
            data.extend_from_slice(&max.to_be_bytes());
            self.fatal(
                now,
                Notification::new(err::CEASE, err::CEASE_MAX_PREFIXES, data),
            );
            return;
        }
        for p in changed {
            self.recompute(p);
        }
    }

    /// Import policy on the attributes shared by all NLRI of one UPDATE.
    fn import_check(&self, attrs: &PathAttrs) -> Result<(), ()> {
        let peer = self.cfg.peer_address;
        let Some(path) = &attrs.as_path else {
            return Ok(());
        };
        if path.contains(self.cfg.local_as) {
            tracing::debug!(
                "bgp {peer}: AS_PATH {path} contains our AS {}, rejected",
                self.cfg.local_as
            );
            return Err(());
        }
        let ebgp = self.cfg.local_as != self.cfg.peer_as;
        if ebgp && path.first_as() != Some(self.cfg.peer_as) {
            // RFC 4271 6.3 / RFC 7606 7.2: treat-as-withdraw rather than a session reset.
            tracing::warn!(
                "bgp {peer}: AS_PATH {path} does not start with AS{}, treated as withdraw",
                self.cfg.peer_as
            );
            return Err(());
        }
        Ok(())
    }

    /// The per-prefix import decision (see the module docs).
    fn import_verdict(&self, p: &IpPrefix) -> Result<(), Refusal> {
        if let Some(addr) = self.covered_protected(p) {
            return Err(Refusal::Protected(addr));
        }
        match &self.cfg.import {
            Some(list) if list.iter().any(|f| f.matches(p)) => Ok(()),
            Some(_) => Err(Refusal::PrefixList),
            // RFC 8212 is about eBGP: an iBGP session without a policy takes everything.
            None if self.cfg.local_as == self.cfg.peer_as => Ok(()),
            None => Err(Refusal::NoPolicy),
        }
    }

    fn covered_protected(&self, p: &IpPrefix) -> Option<IpAddr> {
        self.cfg.protected.iter().copied().find(|a| p.contains(*a))
    }

    fn refused_protected(&mut self, covering: &[Covering]) {
        if covering.is_empty() {
            return;
        }
        self.import_counters.refused_protected += covering.len() as u64;
        tracing::warn!(
            "bgp {}: refused {} route(s) covering an IKE peer or local underlay address \
             (they would route the tunnel into itself): {}",
            self.cfg.peer_address,
            covering.len(),
            some_of(covering)
        );
    }

    fn refused_by_policy(&mut self, refused: &[IpPrefix], no_policy: bool) {
        if refused.is_empty() {
            return;
        }
        self.import_counters.refused_by_policy += refused.len() as u64;
        let peer = self.cfg.peer_address;
        if no_policy && !self.no_policy_warned {
            self.no_policy_warned = true;
            tracing::warn!(
                "bgp {peer}: no import prefix-list, so no route from AS{} is accepted (RFC 8212); \
                 list what to accept in [connection.bgp] import",
                self.cfg.peer_as
            );
        }
        tracing::debug!(
            "bgp {peer}: {} route(s) refused by the import policy: {}",
            refused.len(),
            some_of(refused)
        );
    }

    /// Replaces the protected addresses (e.g. the IKE peers of every connection, or a peer's
    /// address after a NAT change); learned routes that now cover one are withdrawn.
    pub fn set_protected(&mut self, now: Instant, protected: Vec<IpAddr>) {
        self.last_now = now;
        self.cfg.protected = protected;
        let covering: Vec<Covering> = self
            .adj_in
            .keys()
            .filter_map(|p| self.covered_protected(p).map(|a| Covering(*p, a)))
            .collect();
        for Covering(p, _) in &covering {
            self.adj_in.remove(p);
            self.recompute(*p);
        }
        self.refused_protected(&covering);
    }

    fn next_hop_usable(&self, nh: IpAddr) -> bool {
        let bad_v4 = match nh {
            IpAddr::V4(a) => a.is_unspecified() || a.is_broadcast() || a.is_multicast(),
            IpAddr::V6(_) => true, // no extended next hop negotiated
        };
        !bad_v4 && nh != self.cfg.local_address
    }

    /// Runs the decision process for `p` and tells the driver about a changed best route.
    fn recompute(&mut self, p: IpPrefix) {
        let mut candidates = Vec::new();
        let locally_originated = self.cfg.networks.contains(&p);
        if locally_originated {
            candidates.push(Path {
                local: true,
                local_pref: self.cfg.import_local_pref,
                as_path: AsPath::default(),
                origin: Origin::Igp,
                med: None,
                next_hop: self.cfg.local_address,
            });
        }
        if let Some(r) = self.adj_in.get(&p) {
            candidates.push(Path {
                local: false,
                local_pref: r.local_pref,
                as_path: r.as_path.clone(),
                origin: r.origin,
                med: r.med,
                next_hop: r.next_hop,
            });
        }
        let best = policy::best_path(&candidates)
            .and_then(|i| candidates.get(i))
            .filter(|b| !b.local);
        match best {
            Some(b) => {
                if self.installed.get(&p) != Some(&b.next_hop) {
                    self.installed.insert(p, b.next_hop);
                    self.events.push_back(BgpEvent::InstallRoute {
                        prefix: p,
                        next_hop: b.next_hop,
                    });
                }
            }
            None => {
                if self.installed.remove(&p).is_some() {
                    self.events.push_back(BgpEvent::WithdrawRoute { prefix: p });
                }
            }
        }
    }

    // ---- routes out ------------------------------------------------------------------------

    /// `networks` that pass the export prefix-list and can be sent (IPv4 with an IPv4 next hop).
    fn exported(&self) -> BTreeSet<IpPrefix> {
        if !self.cfg.local_address.is_ipv4() {
            return BTreeSet::new();
        }
        self.cfg
            .networks
            .iter()
            .filter(|p| p.is_ipv4() && policy::permitted(&self.cfg.export, p))
            .copied()
            .collect()
    }

    pub(super) fn announce_all(&mut self, now: Instant) {
        let all = self.exported();
        let list: Vec<IpPrefix> = all.iter().copied().collect();
        self.send_announce(now, &list);
        self.announced = all;
    }

    pub(super) fn send_announce(&mut self, now: Instant, prefixes: &[IpPrefix]) {
        let IpAddr::V4(next_hop) = self.cfg.local_address else {
            return;
        };
        for chunk in prefixes.chunks(NLRI_PER_UPDATE) {
            let attrs = PathAttrs {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence(vec![self.cfg.local_as])),
                next_hop: Some(next_hop),
                ..PathAttrs::default()
            };
            let u = Update {
                withdrawn: vec![],
                attrs,
                nlri: chunk.to_vec(),
            };
            self.send(&Message::Update(u));
            self.sent_update(now);
        }
    }

    fn send_withdraw(&mut self, now: Instant, prefixes: &[IpPrefix]) {
        for chunk in prefixes.chunks(NLRI_PER_UPDATE) {
            let u = Update {
                withdrawn: chunk.to_vec(),
                ..Update::default()
            };
            self.send(&Message::Update(u));
            self.sent_update(now);
        }
    }

    /// RFC 4271 8.2.2: sending an UPDATE restarts the KeepaliveTimer.
    fn sent_update(&mut self, now: Instant) {
        let keepalive = self.keepalive_time();
        if !keepalive.is_zero() {
            self.keepalive_at = after(now, keepalive);
        }
    }

    /// Replaces the originated prefixes; announces/withdraws the difference if established.
    pub fn set_networks(&mut self, now: Instant, networks: Vec<IpPrefix>) {
        self.last_now = now;
        let old: BTreeSet<IpPrefix> = self.cfg.networks.iter().copied().collect();
        self.cfg.networks = networks;
        let new_set: BTreeSet<IpPrefix> = self.cfg.networks.iter().copied().collect();
        if self.state == BgpState::Established {
            let export = self.exported();
            let gone: Vec<IpPrefix> = self.announced.difference(&export).copied().collect();
            let added: Vec<IpPrefix> = export.difference(&self.announced).copied().collect();
            self.send_withdraw(now, &gone);
            self.send_announce(now, &added);
            self.announced = export;
        }
        // A network we now originate (or stopped originating) changes the best path.
        for p in old
            .symmetric_difference(&new_set)
            .copied()
            .collect::<Vec<_>>()
        {
            self.recompute(p);
        }
    }

    // ---- views -----------------------------------------------------------------------------

    /// Status as of the last time passed in (uptime granularity = the last call).
    pub fn status(&self) -> BgpStatus {
        self.status_at(self.last_now)
    }

    pub fn status_at(&self, now: Instant) -> BgpStatus {
        BgpStatus {
            state: self.state,
            prefixes_received: u32::try_from(self.adj_in.len()).unwrap_or(u32::MAX),
            prefixes_announced: u32::try_from(self.announced.len()).unwrap_or(u32::MAX),
            peer_as: self.cfg.peer_as,
            peer_address: self.cfg.peer_address,
            peer_router_id: self.peer_id.filter(|_| self.state != BgpState::OpenSent),
            hold_time: self.peer_hold,
            uptime_secs: self
                .established_at
                .map(|t| now.saturating_duration_since(t).as_secs()),
            last_error: self.last_error.clone(),
            import: self.import_counters,
        }
    }

    pub fn rib(&self) -> Vec<RibEntry> {
        let mut out: Vec<RibEntry> = self
            .adj_in
            .iter()
            .map(|(p, r)| RibEntry {
                prefix: *p,
                next_hop: r.next_hop,
                as_path: r.as_path.to_string(),
                local_pref: Some(r.local_pref),
                med: r.med,
                origin: r.origin.name(),
                best: self.installed.get(p) == Some(&r.next_hop),
                direction: RibDirection::Received,
            })
            .collect();
        out.extend(self.announced.iter().map(|p| RibEntry {
            prefix: *p,
            next_hop: self.cfg.local_address,
            as_path: self.cfg.local_as.to_string(),
            local_pref: None,
            med: None,
            origin: Origin::Igp.name(),
            best: true,
            direction: RibDirection::Announced,
        }));
        out
    }
}
