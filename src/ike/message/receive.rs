//! Inbound: verify, decrypt, match the message ID, answer retransmissions from the cache.

use super::fragment::Collected;
use super::send::respond_notify;
use super::InFlight;
use crate::ike::codec::{self, notify as n, Message, ParseError, Payload, EXCH_IKE_SA_INIT};
use crate::ike::ctx::Ctx;
use crate::ike::event::Event;
use crate::ike::exchange::{Pending, SaFate};
use crate::ike::keys::SkError;
use crate::ike::sa::{IkeSa, IkeState};
use crate::ike::NATT_PORT;
use std::net::SocketAddr;
use tracing::debug;

/// A verified request of the peer: what to answer and where.
pub(crate) struct Req {
    pub exchange: u8,
    pub msg_id: u32,
    /// Our address it arrived on and the peer's it came from: the response goes back there.
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// What a received message is, once verified.
pub(crate) enum Inbound {
    /// A new request of the peer, decrypted.
    Request(Req, Vec<Payload>),
    /// The response to our request in flight (taken out of the SA), decrypted.
    Response(InFlight, Vec<Payload>),
    /// The (unprotected) response to our IKE_SA_INIT; the request stays in flight until the
    /// exchange has judged it.
    InitResponse,
    /// Dealt with here: dropped and counted, or answered from the cache.
    Handled(SaFate),
}

/// Takes one message for `sa` (SPIs already matched) through verification.
pub(crate) fn receive(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    (local, remote): (SocketAddr, SocketAddr),
    data: &[u8],
    msg: &Message,
) -> Inbound {
    if msg.header.is_response() {
        response(sa, ctx, data, msg)
    } else {
        request(sa, ctx, (local, remote), data, msg)
    }
}

/// What verifying a message gave.
enum Opened {
    /// The whole message, authentic (or put together from authentic fragments): its
    /// payloads, or why they do not parse.
    Whole(Result<Vec<Payload>, ParseError>),
    /// An authentic fragment, kept until the rest arrive (or refused, and counted).
    Fragment,
    /// Not authentic or malformed: dropped and counted.
    Dropped,
}

/// Opens the SK payload, or the SKF payload and adds it to its message. Nothing but an
/// authentic whole message may move anything beyond the reassembly.
fn verify(sa: &mut IkeSa, ctx: &mut Ctx, data: &[u8], msg: &Message) -> Opened {
    sa.ensure_sk();
    let (Some(sk), Some(loc)) = (&sa.sk, &msg.sk) else {
        ctx.out.stats.malformed_dropped += 1;
        return Opened::Dropped;
    };
    let Some(f) = loc.fragment else {
        return match sk.open(data, loc) {
            Ok(p) => Opened::Whole(Ok(p)),
            // Authentic, but the decrypted payloads do not parse.
            Err(SkError::Parse(e)) => Opened::Whole(Err(e)),
            Err(e) => dropped(sa, ctx, e),
        };
    };
    // RFC 7383 2.6: each fragment is checked on its own, before it is kept.
    let piece = match sk.open_bytes(data, loc) {
        Ok(p) => p,
        Err(e) => return dropped(sa, ctx, e),
    };
    ctx.out.stats.fragments_received += 1;
    sa.frags.received += 1;
    let h = &msg.header;
    let fragment = (f, loc.inner_next);
    match sa
        .frags
        .add(h.is_response(), h.msg_id, fragment, piece, ctx.now)
    {
        Ok(Collected::Waiting) => Opened::Fragment,
        Ok(Collected::Complete(first, chain)) => {
            debug!(conn = %sa.cfg.name, msg_id = h.msg_id, "reassembled IKE message from {} fragments", f.total);
            ctx.out.stats.fragments_reassembled += 1;
            Opened::Whole(codec::parse_chain(first, &chain, 0, false).map(|(p, _)| p))
        }
        Err(why) => {
            debug!(conn = %sa.cfg.name, msg_id = h.msg_id, "dropping fragment {}/{}: {why:?}", f.number, f.total);
            ctx.out.stats.fragments_dropped += 1;
            Opened::Fragment
        }
    }
}

fn dropped(sa: &IkeSa, ctx: &mut Ctx, e: SkError) -> Opened {
    match e {
        SkError::Integrity => ctx.out.stats.decrypt_failed += 1,
        e => {
            debug!(conn = %sa.cfg.name, "dropping message: {e}");
            ctx.out.stats.malformed_dropped += 1;
        }
    }
    Opened::Dropped
}

fn response(sa: &mut IkeSa, ctx: &mut Ctx, data: &[u8], msg: &Message) -> Inbound {
    let Some(p) = &sa.in_flight else {
        ctx.out.stats.bad_msgid_dropped += 1;
        return Inbound::Handled(SaFate::Keep);
    };
    if p.msg_id != msg.header.msg_id {
        ctx.out.stats.bad_msgid_dropped += 1;
        return Inbound::Handled(SaFate::Keep);
    }
    if msg.header.exchange == EXCH_IKE_SA_INIT {
        if !matches!(p.exchange, Pending::Init(_)) {
            ctx.out.stats.malformed_dropped += 1;
            return Inbound::Handled(SaFate::Keep);
        }
        return Inbound::InitResponse;
    }
    let payloads = match verify(sa, ctx, data, msg) {
        Opened::Whole(Ok(p)) => p,
        Opened::Whole(Err(e)) => {
            debug!(conn = %sa.cfg.name, "dropping response: {e}");
            ctx.out.stats.malformed_dropped += 1;
            return Inbound::Handled(SaFate::Keep);
        }
        Opened::Fragment | Opened::Dropped => return Inbound::Handled(SaFate::Keep),
    };
    sa.last_inbound = ctx.now;
    match sa.in_flight.take() {
        Some(p) => Inbound::Response(*p, payloads),
        None => Inbound::Handled(SaFate::Keep),
    }
}

/// The peer did not get our response: re-send it (every fragment), do not process again.
fn resend_cached(sa: &mut IkeSa, ctx: &mut Ctx, req: &Req) -> bool {
    let Some(cached) = sa.responses.answer_to(req.msg_id, req.exchange) else {
        return false;
    };
    debug!(conn = %sa.cfg.name, msg_id = req.msg_id, "retransmitted request, re-sending cached response");
    let datagrams = cached.to_vec();
    ctx.out.stats.responses_resent += 1;
    if datagrams.len() > 1 {
        sa.frags.sent += datagrams.len() as u64;
        ctx.out.stats.fragments_sent += datagrams.len() as u64;
    }
    for d in datagrams {
        ctx.transmit(req.local, req.remote, d);
    }
    sa.last_inbound = ctx.now;
    true
}

/// A fragment of the request we answered already (RFC 7383 2.6.1): once it proves
/// authentic, fragment 1 makes us re-send the response; any other is ignored.
fn old_fragment(sa: &mut IkeSa, ctx: &mut Ctx, req: &Req, data: &[u8], msg: &Message) {
    sa.ensure_sk();
    let (Some(sk), Some(loc)) = (&sa.sk, &msg.sk) else {
        return;
    };
    if let Err(e) = sk.open_bytes(data, loc) {
        dropped(sa, ctx, e);
        return;
    }
    let first = loc.fragment.is_some_and(|f| f.number == 1);
    if !(first && resend_cached(sa, ctx, req)) {
        ctx.out.stats.fragments_dropped += 1;
    }
}

fn request(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    (local, remote): (SocketAddr, SocketAddr),
    data: &[u8],
    msg: &Message,
) -> Inbound {
    let h = &msg.header;
    let req = Req {
        exchange: h.exchange,
        msg_id: h.msg_id,
        local,
        remote,
    };
    let retransmitted = h.msg_id.wrapping_add(1) == sa.peer_msg_id;
    if msg.sk.as_ref().is_some_and(|l| l.fragment.is_some()) {
        if retransmitted {
            old_fragment(sa, ctx, &req, data, msg);
            return Inbound::Handled(SaFate::Keep);
        }
        if h.msg_id != sa.peer_msg_id {
            // Not kept, not even checked: no state for message IDs outside the window.
            ctx.out.stats.bad_msgid_dropped += 1;
            return Inbound::Handled(SaFate::Keep);
        }
    }
    let opened = match verify(sa, ctx, data, msg) {
        Opened::Whole(r) => r,
        Opened::Fragment | Opened::Dropped => return Inbound::Handled(SaFate::Keep),
    };
    // From here on the message is authentic.
    if retransmitted {
        if !(opened.is_ok() && resend_cached(sa, ctx, &req)) {
            ctx.out.stats.bad_msgid_dropped += 1;
        }
        return Inbound::Handled(SaFate::Keep);
    }
    if h.msg_id != sa.peer_msg_id {
        debug!(conn = %sa.cfg.name, "request with message ID {}, expected {}", h.msg_id, sa.peer_msg_id);
        ctx.out.stats.bad_msgid_dropped += 1;
        return Inbound::Handled(SaFate::Keep);
    }
    let payloads = match opened {
        Ok(p) => p,
        Err(ParseError::UnsupportedCritical(pt)) => {
            sa.peer_msg_id = sa.peer_msg_id.wrapping_add(1);
            respond_notify(sa, ctx, &req, n::UNSUPPORTED_CRITICAL_PAYLOAD, vec![pt]);
            let fate = if sa.state == IkeState::InitReplied {
                SaFate::Gone
            } else {
                SaFate::Keep
            };
            return Inbound::Handled(fate);
        }
        Err(e) => {
            debug!(conn = %sa.cfg.name, "dropping request: {e}");
            ctx.out.stats.malformed_dropped += 1;
            return Inbound::Handled(SaFate::Keep);
        }
    };
    sa.last_inbound = ctx.now;
    follow_peer(sa, ctx, local, remote);
    sa.peer_msg_id = sa.peer_msg_id.wrapping_add(1);
    debug!(conn = %sa.cfg.name, msg_id = h.msg_id, exchange = h.exchange, "received request");
    Inbound::Request(req, payloads)
}

/// RFC 7296 2.23: behind a NAT, the peer's mapping may change (or it floated to 4500); an
/// authenticated new request shows where it is now. Without a NAT the SA stays put.
fn follow_peer(sa: &mut IkeSa, ctx: &mut Ctx, local: SocketAddr, remote: SocketAddr) {
    if (sa.local, sa.remote) == (local, remote) {
        return;
    }
    if !sa.nat_detected {
        debug!(conn = %sa.cfg.name, "request from {remote} (local {local}) instead of {}: no NAT detected, the SA stays", sa.remote);
        return;
    }
    debug!(conn = %sa.cfg.name, "peer moved from {} to {} (local {})", sa.remote, remote, local);
    sa.local = local;
    sa.remote = remote;
    if local.port() == NATT_PORT {
        sa.udp_encap = true;
    }
    if sa.state == IkeState::Established && !sa.children.is_empty() {
        ctx.out.events.push_back(Event::PeerMoved {
            conn: sa.cfg.name.clone(),
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            local,
            remote,
            children: sa.children.iter().map(|c| c.spi_in).collect(),
        });
    }
}

/// The cached IKE_SA_INIT response of a half-open SA, if `data` is a byte-identical copy
/// of the request it answers (anything else is not a retransmission).
pub(crate) fn retransmitted_init<'a>(sa: &'a IkeSa, data: &[u8]) -> Option<&'a [Vec<u8>]> {
    if sa.state != IkeState::InitReplied || sa.init_req != data {
        return None;
    }
    sa.responses.answer_to(0, EXCH_IKE_SA_INIT)
}
