//! The SA tables the packet workers read, and the control plane's record of what is
//! installed.
//!
//! Workers take one immutable snapshot (`Arc<Tables>`) per batch, without locks, as before.
//! The maps in it are persistent (imbl's HAMT and B-tree): a new snapshot is a clone that
//! shares every node with the old one, and installing or removing a CHILD SA copies only the
//! nodes on one path, O(log n), instead of rebuilding every table from every SA (which was
//! 8 % of the responder's CPU at 4,000 SAs). Only adding or removing a tunnel device, a
//! configuration change, rebuilds them all.

use super::{InSa, OutSa, Tunnel};
use imbl::{HashMap as PersistentMap, OrdMap};
use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;

/// One installed CHILD SA pair, as the control plane knows it.
pub(super) struct Installed {
    pub conn: String,
    pub child: String,
    pub spi_in: u32,
    pub spi_out: u32,
    pub udp_encap: bool,
    pub inb: Arc<InSa>,
    pub outb: Arc<OutSa>,
    /// False once a rekeyed successor took over sending (make-before-break).
    pub out_active: bool,
    /// Install order: the outbound lists run newest first, the counters oldest first.
    pub seq: u64,
}

#[derive(Default)]
pub(super) struct State {
    sas: HashMap<u32, Installed>,
    next_seq: u64,
    pub tunnels: HashMap<String, Arc<Tunnel>>,
}

#[derive(Clone)]
pub(super) struct InRoute {
    pub sa: Arc<InSa>,
    pub tun: Option<Arc<Tunnel>>,
}

/// A connection's SAs allowed to send, newest first.
pub(super) type OutList = OrdMap<Reverse<u64>, Arc<OutSa>>;

/// Immutable lookup tables; cloning one is O(1) (the maps share their nodes).
#[derive(Clone, Default)]
pub(super) struct Tables {
    pub inbound: PersistentMap<u32, InRoute>,
    /// conn -> SAs allowed to send, newest first.
    pub outbound: PersistentMap<String, OutList>,
    /// UDP-encapsulated outbound SAs (by inbound SPI), for NAT-T keepalives.
    pub keepalive: PersistentMap<u32, Arc<OutSa>>,
    /// epoll token -> tunnel device.
    pub tuns: Arc<HashMap<u64, Arc<Tunnel>>>,
}

impl Tables {
    /// Every table from scratch (tunnel devices added or removed: configuration time).
    pub fn build(state: &State) -> Tables {
        let mut t = Tables {
            tuns: Arc::new(
                state
                    .tunnels
                    .values()
                    .map(|tun| (tun.token, tun.clone()))
                    .collect(),
            ),
            ..Tables::default()
        };
        for s in state.sas.values() {
            t.add(state, s);
        }
        t
    }

    fn add(&mut self, state: &State, s: &Installed) {
        let route = InRoute {
            sa: s.inb.clone(),
            tun: state.tunnels.get(&s.conn).cloned(),
        };
        self.inbound.insert(s.spi_in, route);
        if s.out_active {
            self.add_out(s);
        }
    }

    fn add_out(&mut self, s: &Installed) {
        let mut list = self
            .outbound
            .get(s.conn.as_str())
            .cloned()
            .unwrap_or_default();
        list.insert(Reverse(s.seq), s.outb.clone());
        self.outbound.insert(s.conn.clone(), list);
        if s.udp_encap {
            self.keepalive.insert(s.spi_in, s.outb.clone());
        }
    }

    fn remove_out(&mut self, s: &Installed) {
        if let Some(list) = self.outbound.get(s.conn.as_str()) {
            let mut list = list.clone();
            list.remove(&Reverse(s.seq));
            if list.is_empty() {
                self.outbound.remove(s.conn.as_str());
            } else {
                self.outbound.insert(s.conn.clone(), list);
            }
        }
        self.keepalive.remove(&s.spi_in);
    }
}

impl State {
    pub fn get(&self, spi_in: u32) -> Option<&Installed> {
        self.sas.get(&spi_in)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.sas.len()
    }

    /// Records `s` (a fresh install order) and adds it to `t`; with `rekey_of`, that SA
    /// stops sending (its inbound half stays until removed).
    pub fn install(&mut self, t: &mut Tables, mut s: Installed, rekey_of: Option<u32>) {
        if let Some(old) = rekey_of.and_then(|o| self.sas.get_mut(&o)) {
            if old.out_active {
                old.out_active = false;
                t.remove_out(old);
            }
        }
        s.seq = self.next_seq;
        self.next_seq += 1;
        t.add(self, &s);
        self.sas.insert(s.spi_in, s);
    }

    /// Removes the SA pair with this inbound SPI from the record and from `t`.
    pub fn remove(&mut self, t: &mut Tables, spi_in: u32) -> bool {
        let Some(s) = self.sas.remove(&spi_in) else {
            return false;
        };
        t.inbound.remove(&spi_in);
        if s.out_active {
            t.remove_out(&s);
        }
        true
    }

    /// Every SA pair, oldest first.
    pub fn in_order(&self) -> Vec<&Installed> {
        let mut v: Vec<&Installed> = self.sas.values().collect();
        v.sort_unstable_by_key(|s| s.seq);
        v
    }

    pub fn clear(&mut self) {
        self.sas.clear();
    }
}
