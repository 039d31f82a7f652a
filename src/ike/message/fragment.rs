//! IKE fragmentation (RFC 7383): splitting a protected message into Encrypted Fragment
//! (SKF) payloads, and putting the peer's fragments back together. Only fragments that
//! passed their integrity check reach `Fragments::add`; what it keeps is bounded in count,
//! bytes and time, and every fragment it refuses is counted.

use crate::ike::codec::{Fragment, Header, EXCH_IKE_SA_INIT};
use crate::ike::keys::SkCrypto;
use crate::ike::{FragmentConfig, NATT_PORT};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The most fragments one message may come in (strongSwan's limit is as large; a 64 KiB
/// message at the smallest fragment size needs about 140).
pub(crate) const MAX_FRAGMENTS: u16 = 255;
/// The most reassembled plaintext kept per message being collected.
pub(crate) const MAX_REASSEMBLY_BYTES: usize = 64 * 1024;
/// A message whose fragments do not all arrive within this is dropped.
pub(crate) const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest IKE message (from the IKE header on) that fits a datagram of `size` bytes
/// between these addresses: less IP and UDP headers, and the non-ESP marker on 4500.
pub(crate) fn max_message(size: u16, local: SocketAddr, remote: SocketAddr) -> usize {
    let ip = if remote.is_ipv4() { 20 } else { 40 };
    let marker = if local.port() == NATT_PORT || remote.port() == NATT_PORT {
        4
    } else {
        0
    };
    usize::from(size).saturating_sub(ip + 8 + marker)
}

/// Splits a message that does not fit `max` into SKF fragments, each sealed on its own.
/// None when fragmenting is off, not negotiated, not allowed for this exchange or not
/// needed (`sealed_len` fits), or when not even one byte fits a fragment.
pub(crate) fn split(
    sk: &SkCrypto,
    header: &Header,
    (first, chain): (u8, &[u8]),
    sealed_len: usize,
    max: usize,
    rng: &mut dyn rand::RngCore,
) -> Option<Vec<Vec<u8>>> {
    if header.exchange == EXCH_IKE_SA_INIT || sealed_len <= max {
        return None;
    }
    let per = sk.fragment_capacity(max);
    if per == 0 {
        return None;
    }
    let total = u16::try_from(chain.len().div_ceil(per)).ok()?;
    if total > MAX_FRAGMENTS {
        return None;
    }
    let out = chain
        .chunks(per)
        .zip(1..=total)
        .map(|(piece, number)| {
            // RFC 7383 2.5: only the first fragment names the first inner payload.
            let next = if number == 1 { first } else { 0 };
            let f = Fragment { number, total };
            sk.seal_bytes(header.clone(), next, Some(f), piece.to_vec(), rng)
        })
        .collect();
    Some(out)
}

/// True when our messages on this SA may go out in fragments.
pub(crate) fn may_send(cfg: &FragmentConfig, negotiated: bool) -> bool {
    negotiated && cfg.send()
}

/// Why a verified fragment was not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its number arrived already.
    Duplicate,
    /// Fewer fragments than the message being collected: an old transmission.
    Stale,
    /// More fragments, or more bytes, than we keep for one message.
    TooLarge,
}

/// What adding a fragment gave.
pub(crate) enum Collected {
    /// Kept; more to come.
    Waiting,
    /// The whole message: the type of its first payload and the payload chain.
    Complete(u8, Zeroizing<Vec<u8>>),
}

/// One message being collected.
struct Reassembly {
    msg_id: u32,
    total: u16,
    first_next: u8,
    pieces: BTreeMap<u16, Zeroizing<Vec<u8>>>,
    bytes: usize,
    started: Instant,
}

/// The fragmentation state of one IKE SA: whether the peer supports it, the peer's request
/// and response being collected (the two windows are independent), and counters.
#[derive(Default)]
pub(crate) struct Fragments {
    /// Both ends announced IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT.
    pub negotiated: bool,
    // Boxed: an IkeSa carries these while almost never reassembling anything.
    requests: Option<Box<Reassembly>>,
    responses: Option<Box<Reassembly>>,
    /// Fragments we sent (retransmissions included) and verified ones we received.
    pub sent: u64,
    pub received: u64,
}

impl Fragments {
    fn slot(&mut self, response: bool) -> &mut Option<Box<Reassembly>> {
        if response {
            &mut self.responses
        } else {
            &mut self.requests
        }
    }

    /// When the oldest incomplete message times out.
    pub fn deadline(&self) -> Option<Instant> {
        [&self.requests, &self.responses]
            .into_iter()
            .flatten()
            .map(|r| crate::ike::ctx::later(r.started, REASSEMBLY_TIMEOUT))
            .min()
    }

    /// Drops incomplete messages that timed out; returns how many fragments went with them.
    pub fn expire(&mut self, now: Instant) -> u64 {
        let mut dropped = 0;
        for slot in [&mut self.requests, &mut self.responses] {
            let expired = slot
                .as_ref()
                .is_some_and(|r| crate::ike::ctx::later(r.started, REASSEMBLY_TIMEOUT) <= now);
            if expired {
                dropped += slot.take().map_or(0, |r| r.pieces.len() as u64);
            }
        }
        dropped
    }

    /// Keeps one verified fragment of message `msg_id` (a response or a request of the
    /// peer) with its decrypted piece of the payload chain.
    pub fn add(
        &mut self,
        response: bool,
        msg_id: u32,
        (f, inner_next): (Fragment, u8),
        piece: Zeroizing<Vec<u8>>,
        now: Instant,
    ) -> Result<Collected, Refused> {
        self.expire(now);
        if f.total > MAX_FRAGMENTS {
            return Err(Refused::TooLarge);
        }
        let slot = self.slot(response);
        // RFC 7383 2.6: more fragments than before means the peer re-fragmented (smaller
        // PMTU): start over; fewer means an old transmission.
        match slot {
            Some(r) if r.msg_id == msg_id && f.total < r.total => return Err(Refused::Stale),
            Some(r) if r.msg_id == msg_id && f.total == r.total => {}
            _ => {
                *slot = Some(Box::new(Reassembly {
                    msg_id,
                    total: f.total,
                    first_next: 0,
                    pieces: BTreeMap::new(),
                    bytes: 0,
                    started: now,
                }))
            }
        }
        let Some(r) = slot.as_mut() else {
            return Err(Refused::Stale);
        };
        if r.pieces.contains_key(&f.number) {
            return Err(Refused::Duplicate);
        }
        if r.bytes + piece.len() > MAX_REASSEMBLY_BYTES {
            *slot = None;
            return Err(Refused::TooLarge);
        }
        if f.number == 1 {
            r.first_next = inner_next;
        }
        r.bytes += piece.len();
        r.pieces.insert(f.number, piece);
        if r.pieces.len() < usize::from(r.total) {
            return Ok(Collected::Waiting);
        }
        let Some(r) = slot.take() else {
            return Err(Refused::Stale);
        };
        let mut whole = Zeroizing::new(Vec::with_capacity(r.bytes));
        for piece in r.pieces.values() {
            whole.extend_from_slice(piece);
        }
        Ok(Collected::Complete(r.first_next, whole))
    }

    /// Fragments held now (for tests and status).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        [&self.requests, &self.responses]
            .into_iter()
            .flatten()
            .map(|r| r.pieces.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(b: &[u8]) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(b.to_vec())
    }

    fn frag(number: u16, total: u16) -> Fragment {
        Fragment { number, total }
    }

    #[test]
    fn reassembles_in_any_order_and_refuses_duplicates() {
        let now = Instant::now();
        let mut f = Fragments::default();
        let add = |f: &mut Fragments, n, next, b: &[u8]| {
            f.add(false, 1, (frag(n, 3), next), piece(b), now)
        };
        assert!(matches!(add(&mut f, 3, 0, b"ef"), Ok(Collected::Waiting)));
        assert!(matches!(add(&mut f, 1, 35, b"ab"), Ok(Collected::Waiting)));
        assert_eq!(add(&mut f, 1, 35, b"ab").err(), Some(Refused::Duplicate));
        match add(&mut f, 2, 0, b"cd") {
            Ok(Collected::Complete(next, whole)) => {
                assert_eq!((next, &whole[..]), (35, &b"abcdef"[..]));
            }
            _ => panic!("not complete"),
        }
        assert_eq!(f.held(), 0);
    }

    #[test]
    fn more_fragments_restart_fewer_are_stale() {
        let now = Instant::now();
        let mut f = Fragments::default();
        assert!(f.add(true, 4, (frag(1, 2), 36), piece(b"x"), now).is_ok());
        // Re-fragmented smaller: start over with the 3-fragment transmission.
        assert!(f.add(true, 4, (frag(2, 3), 0), piece(b"y"), now).is_ok());
        assert_eq!(f.held(), 1);
        assert_eq!(
            f.add(true, 4, (frag(1, 2), 36), piece(b"x"), now).err(),
            Some(Refused::Stale)
        );
    }

    #[test]
    fn bounded_in_count_bytes_and_time() {
        let now = Instant::now();
        let mut f = Fragments::default();
        assert_eq!(
            f.add(false, 1, (frag(1, MAX_FRAGMENTS + 1), 0), piece(b"x"), now)
                .err(),
            Some(Refused::TooLarge)
        );
        let big = vec![0u8; MAX_REASSEMBLY_BYTES / 2 + 1];
        assert!(f.add(false, 1, (frag(1, 3), 0), piece(&big), now).is_ok());
        assert_eq!(
            f.add(false, 1, (frag(2, 3), 0), piece(&big), now).err(),
            Some(Refused::TooLarge)
        );
        assert_eq!(f.held(), 0, "an oversized message is dropped whole");
        assert!(f.add(false, 2, (frag(1, 2), 0), piece(b"x"), now).is_ok());
        assert_eq!(f.deadline(), Some(now + REASSEMBLY_TIMEOUT));
        assert_eq!(f.expire(now + REASSEMBLY_TIMEOUT), 1);
        assert_eq!(f.held(), 0);
        assert_eq!(f.deadline(), None);
    }

    /// Split with real keys, each fragment parsed, opened and put back together; the ICV
    /// covers the fragment numbers.
    #[test]
    fn split_fragments_open_and_join_and_numbers_are_authenticated() {
        use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
        use crate::ike::codec::{Message, EXCH_IKE_AUTH, IKE_VERSION};
        use crate::ike::keys::{self, IkeAlgs, SkError};
        use rand::SeedableRng;
        let algs = IkeAlgs {
            encr: EncrAlg::AesCbc256,
            integ: Some(IntegAlg::HmacSha1_96),
            prf: PrfAlg::HmacSha1,
            dh: DhGroup::Modp1024,
        };
        let k = keys::derive_ike_keys(&algs, &[1; 20], &[2; 16], &[3; 16], 7, 8);
        let (ini, res) = (
            SkCrypto::new(&algs, &k, true).unwrap(),
            SkCrypto::new(&algs, &k, false).unwrap(),
        );
        let header = Header {
            spi_i: 7,
            spi_r: 8,
            next_payload: 0,
            version: IKE_VERSION,
            exchange: EXCH_IKE_AUTH,
            flags: 0x08,
            msg_id: 1,
            length: 0,
        };
        let chain: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let frags = split(&ini, &header, (35, &chain), 1600, 500, &mut rng).unwrap();
        assert_eq!(frags.len(), 4);
        let mut joined = Vec::new();
        for (i, d) in frags.iter().enumerate() {
            assert!(d.len() <= 500);
            let loc = Message::parse(d).unwrap().sk.unwrap();
            let f = loc.fragment.unwrap();
            assert_eq!(
                (f.number, f.total, loc.inner_next),
                (i as u16 + 1, 4, if i == 0 { 35 } else { 0 })
            );
            joined.extend_from_slice(&res.open_bytes(d, &loc).unwrap());
            // Renumbered (fragment 1 <-> 2): the ICV no longer matches.
            let mut moved = d.clone();
            moved[33] ^= 3;
            let loc = Message::parse(&moved).map(|m| m.sk);
            if let Ok(Some(loc)) = loc {
                assert_eq!(res.open_bytes(&moved, &loc), Err(SkError::Integrity));
            }
        }
        assert_eq!(joined, chain);
        // A message that fits, and IKE_SA_INIT, are not split.
        assert!(split(&ini, &header, (35, &chain), 400, 500, &mut rng).is_none());
        let init = Header {
            exchange: 34,
            ..header
        };
        assert!(split(&ini, &init, (35, &chain), 1600, 500, &mut rng).is_none());
    }

    #[test]
    fn max_message_leaves_room_for_headers() {
        let v4: SocketAddr = "192.0.2.1:500".parse().unwrap();
        let v4n: SocketAddr = "192.0.2.1:4500".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:500".parse().unwrap();
        assert_eq!(max_message(1280, v4, v4), 1280 - 28);
        assert_eq!(max_message(1280, v4n, v4n), 1280 - 32);
        assert_eq!(max_message(1280, v6, v6), 1280 - 48);
    }
}
