//! Indexes kept beside the SA table: which SAs a connection has, which IKE SA holds a CHILD
//! SA, and the deadline of every SA. They live apart from the table itself so that an
//! exchange holding `&mut IkeSa` can still ask about the others (through `Ctx`), and so that
//! nothing the engine does per SA has to scan all of them.

use super::Identity;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Who an established SA is with: its connection, the peer's address and the identity it
/// proved. Peers behind one NAT share the address, not the identity.
pub(crate) type PeerKey = (String, IpAddr, Option<Identity>);

/// Who is where: SA keys (our SPIs) by connection, and CHILD SAs by inbound SPI.
#[derive(Default)]
pub(crate) struct Registry {
    by_conn: HashMap<String, BTreeSet<u64>>,
    conn_of: HashMap<u64, String>,
    /// Installed CHILD SAs: inbound SPI -> key of the IKE SA holding it.
    children: HashMap<u32, u64>,
    /// Established SAs by peer, so that INITIAL_CONTACT and duplicate checks look at that
    /// peer's SAs only, not at every SA of a hub connection.
    /// One shared key per peer, and a sorted Vec (almost always one SA; a BTreeSet node
    /// would be ten times its size).
    by_peer: HashMap<Arc<PeerKey>, Vec<u64>>,
    peer_of: HashMap<u64, Arc<PeerKey>>,
}

impl Registry {
    pub fn add_sa(&mut self, key: u64, conn: &str) {
        self.remove_sa(key);
        self.conn_of.insert(key, conn.to_string());
        self.by_conn
            .entry(conn.to_string())
            .or_default()
            .insert(key);
    }

    pub fn remove_sa(&mut self, key: u64) {
        if let Some(peer) = self.peer_of.remove(&key) {
            if let Some(keys) = self.by_peer.get_mut(&*peer) {
                keys.retain(|k| *k != key);
                if keys.is_empty() {
                    self.by_peer.remove(&*peer);
                }
            }
        }
        let Some(conn) = self.conn_of.remove(&key) else {
            return;
        };
        if let Some(keys) = self.by_conn.get_mut(&conn) {
            keys.remove(&key);
            if keys.is_empty() {
                self.by_conn.remove(&conn);
            }
        }
    }

    /// The SA now runs under another connection (the responder's IKE_AUTH picked it).
    pub fn rename(&mut self, key: u64, conn: &str) {
        if self.conn_of.contains_key(&key) {
            self.add_sa(key, conn);
        }
    }

    /// Records who established SA `key` is with (once; false if it already was).
    pub fn set_peer(&mut self, key: u64, peer: PeerKey) -> bool {
        if self.peer_of.contains_key(&key) {
            return false;
        }
        let peer = match self.by_peer.get_key_value(&peer) {
            Some((shared, _)) => shared.clone(),
            None => Arc::new(peer),
        };
        let keys = self.by_peer.entry(peer.clone()).or_default();
        if let Err(at) = keys.binary_search(&key) {
            keys.reserve_exact(1);
            keys.insert(at, key);
        }
        self.peer_of.insert(key, peer);
        true
    }

    /// Keys of the SAs recorded for this peer, in key order.
    pub fn sas_with(&self, peer: &PeerKey) -> Vec<u64> {
        self.by_peer
            .get(peer)
            .map(|k| k.to_vec())
            .unwrap_or_default()
    }

    pub fn has_sa(&self, key: u64) -> bool {
        self.conn_of.contains_key(&key)
    }

    /// Keys of the SAs of one connection, in key order.
    pub fn sas_of(&self, conn: &str) -> Vec<u64> {
        self.by_conn
            .get(conn)
            .map(|k| k.iter().copied().collect())
            .unwrap_or_default()
    }

    /// True if the connection has an SA other than `key`.
    pub fn others_of(&self, conn: &str, key: u64) -> bool {
        self.by_conn
            .get(conn)
            .is_some_and(|k| k.iter().any(|k| *k != key))
    }

    pub fn child_added(&mut self, spi_in: u32, key: u64) {
        self.children.insert(spi_in, key);
    }

    pub fn child_removed(&mut self, spi_in: u32) {
        self.children.remove(&spi_in);
    }

    pub fn child_in_use(&self, spi_in: u32) -> bool {
        self.children.contains_key(&spi_in)
    }

    /// Key of the IKE SA holding the CHILD SA with this inbound SPI.
    pub fn sa_of_child(&self, spi_in: u32) -> Option<u64> {
        self.children.get(&spi_in).copied()
    }
}

/// Every SA's next deadline, ordered: the earliest is O(log n) away, and so is moving one.
#[derive(Default)]
pub(crate) struct Timers {
    queue: BTreeSet<(Instant, u64)>,
    at: HashMap<u64, Instant>,
}

impl Timers {
    /// Sets (or clears, with None) the deadline of SA `key`.
    pub fn set(&mut self, key: u64, deadline: Option<Instant>) {
        match (self.at.get(&key).copied(), deadline) {
            (Some(old), Some(new)) if old == new => {}
            (old, new) => {
                if let Some(old) = old {
                    self.queue.remove(&(old, key));
                    self.at.remove(&key);
                }
                if let Some(new) = new {
                    self.queue.insert((new, key));
                    self.at.insert(key, new);
                }
            }
        }
    }

    pub fn first(&self) -> Option<Instant> {
        self.queue.first().map(|(t, _)| *t)
    }

    /// Removes and returns the SAs whose deadline is at or before `now`, earliest first.
    pub fn take_due(&mut self, now: Instant) -> Vec<u64> {
        let mut due = Vec::new();
        while let Some(&(t, key)) = self.queue.first() {
            if t > now {
                break;
            }
            self.queue.remove(&(t, key));
            self.at.remove(&key);
            due.push(key);
        }
        due
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn registry_tracks_connections_and_children() {
        let mut r = Registry::default();
        r.add_sa(1, "a");
        r.add_sa(2, "a");
        r.add_sa(3, "ab");
        assert_eq!(r.sas_of("a"), vec![1, 2]);
        assert!(r.others_of("a", 1));
        assert!(!r.others_of("ab", 3));
        r.rename(2, "b");
        assert_eq!(r.sas_of("a"), vec![1]);
        assert_eq!(r.sas_of("b"), vec![2]);
        r.remove_sa(1);
        assert!(r.sas_of("a").is_empty() && !r.has_sa(1));
        r.child_added(0x1000, 3);
        assert_eq!(r.sa_of_child(0x1000), Some(3));
        r.child_removed(0x1000);
        assert!(!r.child_in_use(0x1000));
    }

    #[test]
    fn timers_pop_in_deadline_order_and_move() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut t = Timers::default();
        t.set(1, Some(s(5)));
        t.set(2, Some(s(1)));
        t.set(3, Some(s(9)));
        t.set(1, Some(s(2)));
        t.set(3, None);
        assert_eq!(t.first(), Some(s(1)));
        assert_eq!(t.take_due(s(4)), vec![2, 1]);
        assert_eq!(t.len(), 0);
        assert_eq!(t.first(), None);
    }
}
