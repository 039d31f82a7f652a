//! Requests for an IKE SA we do not have (RFC 7296 2.21.4): after a restart of ours the peer
//! still sends DPD or rekeys under SPIs we forgot. The RFC lets us answer such a *request*
//! with an unprotected INVALID_IKE_SPI (never a response), and 1.5 asks that this be
//! rate-limited, since anyone can send the request with any source address. We answer,
//! because a peer that acts on it notices our restart at once instead of after its DPD
//! timeout, but only:
//! - to a request, never to a response;
//! - when the answer is no larger than the request (no amplification: the answer is a bare
//!   header plus one empty notify, 36 bytes);
//! - within one global token bucket (`BURST` at once, `PER_SECOND` sustained), driven by the
//!   engine's `now`, so a flood costs at most that many small datagrams a second.
//!
//! Everything else is dropped and counted.

use super::codec::{self, notify as n, Header, Payload, FLAG_INITIATOR, FLAG_RESPONSE};
use std::time::Instant;

/// Answers that may go out at once after a quiet period.
pub const BURST: u64 = 10;
/// Sustained answers per second.
pub const PER_SECOND: u64 = 10;

/// Tokens are kept in thousandths so the refill is exact in integer milliseconds.
const MILLI: u64 = 1000;

/// The global token bucket for INVALID_IKE_SPI answers.
#[derive(Debug)]
pub(crate) struct InvalidSpiLimiter {
    milli_tokens: u64,
    last: Option<Instant>,
}

impl Default for InvalidSpiLimiter {
    fn default() -> Self {
        InvalidSpiLimiter {
            milli_tokens: BURST * MILLI,
            last: None,
        }
    }
}

impl InvalidSpiLimiter {
    /// Takes a token if one is there at `now`. A `now` earlier than the last one refills
    /// nothing (time is the driver's, and never goes back in a well-behaved one).
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let ms = now.saturating_duration_since(last).as_millis();
            let add = u64::try_from(ms)
                .unwrap_or(u64::MAX)
                .saturating_mul(PER_SECOND);
            self.milli_tokens = self.milli_tokens.saturating_add(add).min(BURST * MILLI);
        }
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
        if self.milli_tokens >= MILLI {
            self.milli_tokens -= MILLI;
            true
        } else {
            false
        }
    }
}

/// What to do with a message for an unknown IKE SA.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A response, or a request too small to answer without amplifying it: dropped.
    Drop,
    /// A request we would answer, but the bucket is empty: dropped and counted as limited.
    Limited,
    /// Send this INVALID_IKE_SPI answer.
    Answer(Vec<u8>),
}

/// The unprotected INVALID_IKE_SPI answer to `req`: both SPIs and the message ID copied, the
/// response flag set, the initiator flag set when the request came from the original
/// responder.
pub(crate) fn answer(req: &Header) -> Vec<u8> {
    let mut flags = FLAG_RESPONSE;
    if !req.from_initiator() {
        flags |= FLAG_INITIATOR;
    }
    let h = Header {
        spi_i: req.spi_i,
        spi_r: req.spi_r,
        next_payload: 0,
        version: codec::IKE_VERSION,
        exchange: req.exchange,
        flags,
        msg_id: req.msg_id,
        length: 0,
    };
    codec::encode_plain(h, &[Payload::notify(n::INVALID_IKE_SPI, Vec::new())])
}

/// Decides on one datagram of `len` bytes with header `req` for an unknown IKE SA.
pub(crate) fn decide(
    limiter: &mut InvalidSpiLimiter,
    now: Instant,
    req: &Header,
    len: usize,
) -> Verdict {
    if req.is_response() {
        return Verdict::Drop;
    }
    let reply = answer(req);
    if reply.is_empty() || reply.len() > len {
        return Verdict::Drop;
    }
    if !limiter.take(now) {
        return Verdict::Limited;
    }
    Verdict::Answer(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_gives_burst_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut b = InvalidSpiLimiter::default();
        let first: usize = (0..100).filter(|_| b.take(t0)).count();
        assert_eq!(first as u64, BURST);
        // One second later, PER_SECOND more, however many are asked for.
        let later: usize = (0..100)
            .filter(|_| b.take(t0 + Duration::from_secs(1)))
            .count();
        assert_eq!(later as u64, PER_SECOND);
        // A clock that goes back gives nothing.
        assert!(!b.take(t0));
        // Idle time never saves up more than the burst.
        let idle: usize = (0..100)
            .filter(|_| b.take(t0 + Duration::from_secs(3600)))
            .count();
        assert_eq!(idle as u64, BURST);
    }
}
