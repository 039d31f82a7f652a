//! The responder's stateless cookie defence (RFC 7296 2.6), in one place for two callers:
//! the engine (`exchange::ike_sa_init::respond`) and the daemon's socket readers, which
//! screen IKE_SA_INIT requests before they reach the engine so that a spoofed flood is
//! answered where it arrives and never queues behind real work (charon's receiver does the
//! same). Sans-IO: every call takes `now`; the engine publishes its half-open count here.
//!
//! Cookie = version of the secret (4 bytes, big-endian) || HMAC-SHA1(secret, Ni || IPi ||
//! SPIi). The secret is replaced every `ROTATE_EVERY`; cookies made with the one before stay
//! good until the next change, so an honest initiator's round trip never straddles a failure.

use super::codec::{notify as n, Header, EXCH_IKE_SA_INIT, HEADER_LEN, PT_NONCE};
use super::codec::{PT_NONE, PT_NOTIFY};
use super::message;
use crate::crypto::PrfAlg;
use rand::{rngs::StdRng, RngCore, SeedableRng};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::RwLock;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// How long one secret makes new cookies.
pub const ROTATE_EVERY: Duration = Duration::from_secs(60);
/// Half-open SAs before cookies are demanded, until `set_threshold`.
const DEFAULT_THRESHOLD: usize = 100;

struct Secret {
    version: u32,
    key: Zeroizing<[u8; 32]>,
}

struct Secrets {
    current: Secret,
    previous: Option<Secret>,
    /// When `current` is replaced; set by the first cookie made.
    rotate_at: Option<Instant>,
    rng: StdRng,
}

/// What a socket reader does with a datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Screened {
    /// Hand it to the engine.
    Pass,
    /// Send this COOKIE demand back to the sender; the engine never sees the request.
    Answer(Vec<u8>),
}

/// Cookie secrets, the "under load" state and the count of demands sent from the readers.
/// Shared (`Arc`) between the engine and the socket readers.
pub struct CookieGate {
    secrets: RwLock<Secrets>,
    /// Demand cookies once this many half-open SAs exist.
    threshold: AtomicUsize,
    /// The engine's half-open count (it publishes every change).
    half_open: AtomicUsize,
    /// COOKIE demands sent by `screen` (the engine counts its own).
    answered: AtomicU64,
}

impl CookieGate {
    /// `rng` seeds the secrets (the first now, later ones at each rotation).
    pub fn new(rng: &mut dyn RngCore) -> CookieGate {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut rng = StdRng::from_seed(seed);
        seed.iter_mut().for_each(|b| *b = 0);
        let current = Secret {
            version: 1,
            key: fresh_key(&mut rng),
        };
        CookieGate {
            secrets: RwLock::new(Secrets {
                current,
                previous: None,
                rotate_at: None,
                rng,
            }),
            threshold: AtomicUsize::new(DEFAULT_THRESHOLD),
            half_open: AtomicUsize::new(0),
            answered: AtomicU64::new(0),
        }
    }

    pub fn set_threshold(&self, half_open: usize) {
        self.threshold.store(half_open, Relaxed);
    }

    /// The engine's half-open count, published on every change.
    pub fn set_half_open(&self, n: usize) {
        self.half_open.store(n, Relaxed);
    }

    /// Cookies are demanded now (the engine's view, as last published).
    pub fn under_load(&self) -> bool {
        self.half_open.load(Relaxed) >= self.threshold.load(Relaxed)
    }

    /// COOKIE demands sent by `screen`, i.e. requests the engine never saw.
    pub fn answered(&self) -> u64 {
        self.answered.load(Relaxed)
    }

    /// The decision both callers make: with `half_open` SAs, is the request (nonce `nonce`,
    /// from `remote` with SPIi `spi_i`, carrying `presented` as its COOKIE if any) let
    /// through? None = yes; Some(cookie) = answer with a COOKIE notify holding `cookie`.
    pub fn demand(
        &self,
        now: Instant,
        half_open: usize,
        (nonce, remote, spi_i): (&[u8], SocketAddr, u64),
        presented: Option<&[u8]>,
    ) -> Option<Vec<u8>> {
        if half_open < self.threshold.load(Relaxed) {
            return None;
        }
        self.rotate_if_due(now);
        let s = self.secrets.read().unwrap_or_else(|e| e.into_inner());
        let valid = presented.is_some_and(|c| {
            let Some(ver) = c
                .get(..4)
                .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
            else {
                return false;
            };
            let secret = [Some(&s.current), s.previous.as_ref()]
                .into_iter()
                .flatten()
                .find(|x| x.version == ver);
            secret.is_some_and(|x| {
                let want = make(x, nonce, remote, spi_i);
                want.len() == c.len() && bool::from(want.ct_eq(c))
            })
        });
        (!valid).then(|| make(&s.current, nonce, remote, spi_i))
    }

    /// A socket reader's look at a datagram: an IKE_SA_INIT request without a valid cookie
    /// while under load is answered here (and counted); everything else goes to the engine,
    /// which also gets whatever this parser cannot read, to drop and count it.
    pub fn screen(&self, now: Instant, remote: SocketAddr, data: &[u8]) -> Screened {
        if !self.under_load() {
            return Screened::Pass;
        }
        let Some((h, nonce, cookie)) = init_request(data) else {
            return Screened::Pass;
        };
        let half_open = self.half_open.load(Relaxed);
        match self.demand(now, half_open, (nonce, remote, h.spi_i), cookie) {
            None => Screened::Pass,
            Some(c) => {
                self.answered.fetch_add(1, Relaxed);
                Screened::Answer(message::plain_reply(&h, n::COOKIE, c))
            }
        }
    }

    fn rotate_if_due(&self, now: Instant) {
        let due = |s: &Secrets| s.rotate_at.is_none_or(|t| now >= t);
        if !due(&self.secrets.read().unwrap_or_else(|e| e.into_inner())) {
            return;
        }
        let mut s = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        match s.rotate_at {
            None => s.rotate_at = Some(now + ROTATE_EVERY),
            Some(t) if now >= t => {
                let next = Secret {
                    version: s.current.version.wrapping_add(1),
                    key: fresh_key(&mut s.rng),
                };
                s.previous = Some(std::mem::replace(&mut s.current, next));
                s.rotate_at = Some(now + ROTATE_EVERY);
            }
            Some(_) => {}
        }
    }
}

fn fresh_key(rng: &mut StdRng) -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut k[..]);
    k
}

fn make(s: &Secret, nonce: &[u8], remote: SocketAddr, spi_i: u64) -> Vec<u8> {
    let v4;
    let v6;
    let ip: &[u8] = match remote.ip() {
        IpAddr::V4(a) => {
            v4 = a.octets();
            &v4
        }
        IpAddr::V6(a) => {
            v6 = a.octets();
            &v6
        }
    };
    let mac = crate::crypto::prf(
        PrfAlg::HmacSha1,
        &s.key[..],
        &[nonce, ip, &spi_i.to_be_bytes()],
    );
    let mut c = Vec::with_capacity(4 + mac.len());
    c.extend_from_slice(&s.version.to_be_bytes());
    c.extend_from_slice(&mac);
    c
}

/// What the gate reads of an IKE_SA_INIT request: header, Nonce, COOKIE data.
type InitRequest<'a> = (Header, &'a [u8], Option<&'a [u8]>);

/// For a well-formed new IKE_SA_INIT request (SPIr 0, message ID 0, from the initiator):
/// its header, its (last) Nonce and its first COOKIE notify's data. Walks the payload chain
/// without copying; None for anything else.
fn init_request(data: &[u8]) -> Option<InitRequest<'_>> {
    let h = Header::parse(data).ok()?;
    if h.exchange != EXCH_IKE_SA_INIT
        || h.is_response()
        || !h.from_initiator()
        || h.spi_r != 0
        || h.msg_id != 0
    {
        return None;
    }
    let (mut next, mut at) = (h.next_payload, HEADER_LEN);
    let (mut nonce, mut cookie) = (None, None);
    while next != PT_NONE {
        let g = data.get(at..at + 4)?;
        let len = usize::from(u16::from_be_bytes([g[2], g[3]]));
        let body = data.get(at + 4..at.checked_add(len)?)?;
        match next {
            // The last Nonce and the first COOKIE, as the engine reads them.
            PT_NONCE => nonce = Some(body),
            PT_NOTIFY if cookie.is_none() => {
                // Protocol ID, SPI size, type, SPI, data.
                let spi = usize::from(*body.get(1)?);
                let ntype = u16::from_be_bytes([*body.get(2)?, *body.get(3)?]);
                if ntype == n::COOKIE {
                    cookie = Some(body.get(4 + spi..)?);
                }
            }
            _ => {}
        }
        next = g[0];
        at += len;
    }
    Some((h, nonce?, cookie))
}

#[cfg(test)]
#[path = "cookie_gate_tests.rs"]
pub(super) mod tests;
