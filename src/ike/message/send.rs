//! Outbound: encode, protect, send; the request in flight and its retransmissions.

use super::receive::Req;
use super::{fragment, InFlight};
use crate::ike::codec::{self, Header, Payload};
use crate::ike::codec::{FLAG_INITIATOR, FLAG_RESPONSE, IKE_VERSION};
use crate::ike::ctx::{later, Ctx, MAX_DELAY};
use crate::ike::exchange::Pending;
use crate::ike::sa::IkeSa;
use crate::ike::RetransmitConfig;
use std::net::SocketAddr;
use std::time::Duration;
use tracing::debug;
use zeroize::Zeroizing;

fn header(sa: &IkeSa, exchange: u8, msg_id: u32, response: bool) -> Header {
    let mut flags = 0;
    if sa.initiator {
        flags |= FLAG_INITIATOR;
    }
    if response {
        flags |= FLAG_RESPONSE;
    }
    Header {
        spi_i: sa.spi_i,
        spi_r: sa.spi_r,
        next_payload: 0,
        version: IKE_VERSION,
        exchange,
        flags,
        msg_id,
        length: 0,
    }
}

/// The whole message: in an SK payload once the SA has keys, in the clear before; in SKF
/// fragments (RFC 7383) when it is too big for the fragment size and the peer takes them.
fn protect(sa: &mut IkeSa, ctx: &mut Ctx, header: Header, payloads: &[Payload]) -> Vec<Vec<u8>> {
    sa.ensure_sk();
    let Some(sk) = &sa.sk else {
        return vec![codec::encode_plain(header, payloads)];
    };
    let (first, chain) = codec::encode_chain(payloads);
    let chain = Zeroizing::new(chain);
    let whole = sk.seal_bytes(header.clone(), first, None, chain.to_vec(), &mut *ctx.rng);
    let cfg = sa.cfg.fragmentation;
    if !fragment::may_send(&cfg, sa.frags.negotiated) {
        return vec![whole];
    }
    let max = fragment::max_message(cfg.size, sa.local, sa.remote);
    match fragment::split(
        sk,
        &header,
        (first, &chain),
        whole.len(),
        max,
        &mut *ctx.rng,
    ) {
        Some(frags) => {
            debug!(conn = %sa.cfg.name, msg_id = header.msg_id, "IKE message of {} bytes split into {} fragments", whole.len(), frags.len());
            frags
        }
        None => vec![whole],
    }
}

/// Sends every datagram of a message, counting fragments.
fn transmit_all(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    (local, remote): (SocketAddr, SocketAddr),
    datagrams: &[Vec<u8>],
) {
    if datagrams.len() > 1 {
        sa.frags.sent += datagrams.len() as u64;
        ctx.out.stats.fragments_sent += datagrams.len() as u64;
    }
    for d in datagrams {
        ctx.transmit(local, remote, d.clone());
    }
}

/// Sends a request with the next message ID; it stays in flight (and is retransmitted)
/// until its response arrives. Returns the bytes sent (the first fragment if fragmented).
pub(crate) fn send_request(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    exchange: u8,
    payloads: &[Payload],
    pending: Pending,
) -> Vec<u8> {
    let msg_id = sa.next_msg_id;
    sa.next_msg_id = sa.next_msg_id.wrapping_add(1);
    let h = header(sa, exchange, msg_id, false);
    let datagrams = protect(sa, ctx, h, payloads);
    debug!(conn = %sa.cfg.name, spi = format_args!("{:016x}", sa.our_spi()), msg_id, "sending {} request to {}", pending.kind(), sa.remote);
    transmit_all(sa, ctx, (sa.local, sa.remote), &datagrams);
    let first = datagrams.first().cloned().unwrap_or_default();
    sa.in_flight = Some(Box::new(InFlight {
        msg_id,
        datagrams,
        retransmits: 0,
        next_at: later(ctx.now, sa.cfg.retransmit.timeout),
        exchange: pending,
    }));
    first
}

/// Answers `req` (to where it came from, RFC 7296 2.11) and caches the answer for the
/// request's retransmissions.
pub(crate) fn respond(sa: &mut IkeSa, ctx: &mut Ctx, req: &Req, payloads: &[Payload]) {
    let h = header(sa, req.exchange, req.msg_id, true);
    let datagrams = protect(sa, ctx, h, payloads);
    debug!(conn = %sa.cfg.name, msg_id = req.msg_id, exchange = req.exchange, "sending response to {}", req.remote);
    transmit_all(sa, ctx, (req.local, req.remote), &datagrams);
    sa.responses.store(req.msg_id, req.exchange, datagrams);
}

/// A response carrying one notify (an error, or TEMPORARY_FAILURE).
pub(crate) fn respond_notify(sa: &mut IkeSa, ctx: &mut Ctx, req: &Req, ntype: u16, data: Vec<u8>) {
    respond(sa, ctx, req, &[Payload::notify(ntype, data)]);
}

/// An unencrypted response carrying one notify, with no SA behind it (SPIr = 0, nothing
/// kept): the stateless answers to an IKE_SA_INIT request.
pub(crate) fn reply_plain(
    ctx: &mut Ctx,
    (local, remote): (SocketAddr, SocketAddr),
    req: &Header,
    ntype: u16,
    data: Vec<u8>,
) {
    ctx.transmit(local, remote, plain_reply(req, ntype, data));
}

/// The bytes of `reply_plain` (the cookie gate sends them from the socket reader).
pub(crate) fn plain_reply(req: &Header, ntype: u16, data: Vec<u8>) -> Vec<u8> {
    let h = Header {
        spi_i: req.spi_i,
        spi_r: 0,
        next_payload: 0,
        version: IKE_VERSION,
        exchange: req.exchange,
        flags: FLAG_RESPONSE,
        msg_id: req.msg_id,
        length: 0,
    };
    codec::encode_plain(h, &[Payload::notify(ntype, data)])
}

/// Retransmission n (1-based) waits `timeout * base^n`, capped.
pub(crate) fn backoff(rt: &RetransmitConfig, n: u32) -> Duration {
    let base = if rt.base.is_finite() {
        rt.base.max(1.0)
    } else {
        1.0
    };
    let factor = base.powi(n.min(1000) as i32);
    Duration::try_from_secs_f64(rt.timeout.as_secs_f64() * factor)
        .unwrap_or(MAX_DELAY)
        .min(MAX_DELAY)
}

/// What the retransmission timer did.
pub(crate) enum Retransmit {
    /// Nothing due.
    Idle,
    Sent,
    /// Every retransmission went unanswered: the request is given up (returned).
    Exhausted(Box<InFlight>),
}

/// Re-sends the request in flight if its time has come.
pub(crate) fn retransmit(sa: &mut IkeSa, ctx: &mut Ctx) -> Retransmit {
    let rt = sa.cfg.retransmit;
    let Some(p) = &mut sa.in_flight else {
        return Retransmit::Idle;
    };
    if p.next_at > ctx.now {
        return Retransmit::Idle;
    }
    if p.retransmits >= rt.tries {
        return sa
            .in_flight
            .take()
            .map_or(Retransmit::Idle, Retransmit::Exhausted);
    }
    p.retransmits += 1;
    p.next_at = later(ctx.now, backoff(&rt, p.retransmits));
    debug!(conn = %sa.cfg.name, "retransmit {} of {} request {}", p.retransmits, p.kind(), p.msg_id);
    // Every fragment again (RFC 7383 2.6.1).
    let datagrams = p.datagrams.clone();
    ctx.out.stats.retransmits += 1;
    transmit_all(sa, ctx, (sa.local, sa.remote), &datagrams);
    Retransmit::Sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_matches_strongswan_and_never_overflows() {
        let rt = RetransmitConfig {
            timeout: Duration::from_secs(4),
            base: 1.8,
            tries: 5,
        };
        let got: Vec<u128> = (1..=5).map(|n| backoff(&rt, n).as_millis()).collect();
        assert_eq!(got, vec![7200, 12960, 23328, 41990, 75582]);
        let silly = RetransmitConfig {
            timeout: Duration::from_secs(4),
            base: f64::NAN,
            tries: u32::MAX,
        };
        assert_eq!(backoff(&silly, 3), Duration::from_secs(4));
        let huge = RetransmitConfig {
            timeout: Duration::MAX,
            base: 1e300,
            tries: u32::MAX,
        };
        assert_eq!(backoff(&huge, u32::MAX), MAX_DELAY);
    }
}
