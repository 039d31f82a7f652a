//! IKE_SA_INIT (RFC 7296 1.2): algorithms, nonces and the DH exchange, NAT detection (2.23),
//! cookies (2.6) and INVALID_KE_PAYLOAD (1.2). The initiator restarts the exchange when the
//! responder demands a cookie or another group; the responder answers statelessly until it
//! commits to a half-open SA.

use super::{ike_auth, requested_group, Collected, SaFate};
use crate::crypto::{DhGroup, DhPrivate};
use crate::ike::codec::{self, notify as n, Header, Message, Payload};
use crate::ike::codec::{EXCH_IKE_SA_INIT, FLAG_RESPONSE, IKE_VERSION};
use crate::ike::cookie_gate::CookieGate;
use crate::ike::ctx::Ctx;
use crate::ike::keys::{self, KeyMaterial, KeySource};
use crate::ike::lifecycle::fail_initiator;
use crate::ike::message::{self, InFlight};
use crate::ike::reason::{ExchangeKind, Failure, ProposalKind, ProposalMismatch};
use crate::ike::sa::{IkeSa, IkeState};
use crate::ike::{select, IkeConfig, NATT_PORT};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

/// A responder SA that never sees IKE_AUTH is dropped after this.
pub(crate) const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// IKE_SA_INIT restarts (COOKIE, INVALID_KE_PAYLOAD) before giving up.
const MAX_INIT_RESTARTS: u32 = 4;

const EXCHANGE: ExchangeKind = ExchangeKind::IkeSaInit;

/// Initiator state while the request is in flight.
pub(crate) struct Pending {
    dh: Option<DhPrivate>,
    cookie: Option<Vec<u8>>,
    /// COOKIE and INVALID_KE restarts so far.
    restarts: u32,
}

fn float_port(p: u16) -> u16 {
    if p == 500 {
        NATT_PORT
    } else {
        p
    }
}

/// NAT_DETECTION_*_IP (RFC 7296 2.23): a NAT sits in between when the peer's hash of its own
/// source (`peer`, as we see it) or of its destination (`us`) does not match. Without both
/// notifies there is no detection, hence no NAT.
fn nat_between(
    payloads: &[Payload],
    (spi_i, spi_r): (u64, u64),
    peer: SocketAddr,
    us: SocketAddr,
) -> bool {
    let src = codec::find_notify(payloads, n::NAT_DETECTION_SOURCE_IP);
    let dst = codec::find_notify(payloads, n::NAT_DETECTION_DESTINATION_IP);
    match (src, dst) {
        (Some(s), Some(d)) => {
            s.data != keys::nat_hash(spi_i, spi_r, peer)
                || d.data != keys::nat_hash(spi_i, spi_r, us)
        }
        _ => false,
    }
}

/// The peer announced IKE fragmentation (RFC 7383 2.3).
fn fragmentation_offered(payloads: &[Payload]) -> bool {
    codec::find_notify(payloads, n::IKEV2_FRAGMENTATION_SUPPORTED).is_some()
}

fn conn_matches_addrs(c: &IkeConfig, local: IpAddr, remote: IpAddr) -> bool {
    (c.local_addrs.is_empty() || c.local_addrs.contains(&local))
        && (c.remote_addrs.is_empty() || c.remote_addrs.contains(&remote))
}

/// The configurations a peer at `remote` reaching us at `local` may run under.
pub(crate) fn candidates(
    configs: &[Arc<IkeConfig>],
    local: IpAddr,
    remote: IpAddr,
) -> impl Iterator<Item = &Arc<IkeConfig>> {
    configs
        .iter()
        .filter(move |c| conn_matches_addrs(c, local, remote))
}

// ------------------------------------------------------------------------------ initiator

/// A new initiator SA for `cfg` with its IKE_SA_INIT sent; None if the connection cannot
/// be initiated.
pub(crate) fn initiate(ctx: &mut Ctx, cfg: Arc<IkeConfig>) -> Option<IkeSa> {
    let &remote_ip = cfg.remote_addrs.first()?;
    let Some(group) = cfg.proposals.first().and_then(|p| p.dh.first()).copied() else {
        warn!(conn = %cfg.name, "connection {} has no IKE proposal with a DH group", cfg.name);
        return None;
    };
    let local_ip = cfg
        .local_addrs
        .iter()
        .find(|a| a.is_ipv4() == remote_ip.is_ipv4())
        .copied()
        .unwrap_or(if remote_ip.is_ipv4() {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        });
    let spi_i = ctx.new_ike_spi();
    let nonce_i = ctx.nonce();
    let dh = DhPrivate::generate(group, &mut *ctx.rng);
    let local = SocketAddr::new(local_ip, cfg.local_port);
    let remote = SocketAddr::new(remote_ip, cfg.remote_port);
    let mut sa = IkeSa {
        nonce_i,
        ..IkeSa::new(
            cfg,
            true,
            (spi_i, 0),
            IkeState::InitSent,
            (local, remote),
            ctx.now,
        )
    };
    info!(conn = %sa.cfg.name, "initiating IKE_SA {}[{:016x}_i] to {}", sa.cfg.name, spi_i, sa.remote);
    let pending = Pending {
        dh: Some(dh),
        cookie: None,
        restarts: 0,
    };
    send(&mut sa, ctx, pending);
    Some(sa)
}

/// Sends (or re-sends, after a COOKIE or INVALID_KE) the request.
fn send(sa: &mut IkeSa, ctx: &mut Ctx, pending: Pending) {
    let Some(dh) = &pending.dh else { return };
    let mut payloads = Vec::new();
    if let Some(c) = &pending.cookie {
        payloads.push(Payload::notify(n::COOKIE, c.clone()));
    }
    payloads.push(Payload::Sa(select::ike_to_wire(&sa.cfg.proposals, &[])));
    payloads.push(Payload::Ke {
        group: dh.group().transform_id(),
        data: dh.public_value(),
    });
    payloads.push(Payload::Nonce(sa.nonce_i.clone()));
    // encap=always: a deliberately wrong source hash makes the peer see "NAT" too.
    let src = if sa.cfg.encap_always {
        ctx.random_bytes(20)
    } else {
        keys::nat_hash(sa.spi_i, 0, sa.local)
    };
    payloads.push(Payload::notify(n::NAT_DETECTION_SOURCE_IP, src));
    payloads.push(Payload::notify(
        n::NAT_DETECTION_DESTINATION_IP,
        keys::nat_hash(sa.spi_i, 0, sa.remote),
    ));
    if sa.cfg.fragmentation.announce() {
        payloads.push(Payload::notify(n::IKEV2_FRAGMENTATION_SUPPORTED, vec![]));
    }
    sa.next_msg_id = 0;
    sa.spi_r = 0;
    sa.init_req = message::send_request(
        sa,
        ctx,
        EXCH_IKE_SA_INIT,
        &payloads,
        super::Pending::Init(pending),
    );
}

/// Our request in flight, if it is an IKE_SA_INIT.
fn pending_mut(sa: &mut IkeSa) -> Option<&mut Pending> {
    match sa.in_flight.as_deref_mut() {
        Some(InFlight {
            exchange: super::Pending::Init(p),
            ..
        }) => Some(p),
        _ => None,
    }
}

/// Restarts the exchange with the cookie or group the responder asked for.
fn restart(sa: &mut IkeSa, ctx: &mut Ctx, cookie: Option<Vec<u8>>, group: Option<DhGroup>) {
    let Some(p) = pending_mut(sa) else { return };
    let mut next = Pending {
        dh: p.dh.take(),
        cookie: p.cookie.take(),
        restarts: p.restarts + 1,
    };
    if let Some(c) = cookie {
        next.cookie = Some(c);
    }
    if let Some(g) = group {
        next.dh = Some(DhPrivate::generate(g, &mut *ctx.rng));
    }
    send(sa, ctx, next);
}

/// Initiator: the responder's answer (unprotected; the request is still in flight).
pub(crate) fn on_response(sa: &mut IkeSa, ctx: &mut Ctx, data: &[u8], msg: &Message) -> SaFate {
    let p = &msg.payloads;
    let (restarts, current) = match pending_mut(sa) {
        Some(pd) => (pd.restarts, pd.dh.as_ref().map(|d| d.group())),
        None => return SaFate::Keep,
    };
    let protocol = |what| Failure::Protocol {
        exchange: EXCHANGE,
        what,
    };
    if let Some(c) = codec::find_notify(p, n::COOKIE) {
        if restarts >= MAX_INIT_RESTARTS || c.data.is_empty() || c.data.len() > 64 {
            return fail_initiator(sa, ctx, protocol("peer keeps demanding a COOKIE"));
        }
        debug!(conn = %sa.cfg.name, "peer demands a COOKIE, restarting IKE_SA_INIT");
        restart(sa, ctx, Some(c.data.clone()), None);
        return SaFate::Keep;
    }
    if let Some(ike) = codec::find_notify(p, n::INVALID_KE_PAYLOAD) {
        let wanted = requested_group(&ike.data).and_then(DhGroup::from_transform);
        return match wanted {
            Some(g)
                if Some(g) != current
                    && restarts < MAX_INIT_RESTARTS
                    && sa.cfg.proposals.iter().any(|pr| pr.dh.contains(&g)) =>
            {
                info!(conn = %sa.cfg.name, "peer requests DH group {}, restarting IKE_SA_INIT", g.name());
                restart(sa, ctx, None, Some(g));
                SaFate::Keep
            }
            _ => fail_initiator(
                sa,
                ctx,
                protocol("peer sent INVALID_KE_PAYLOAD for a group we do not offer"),
            ),
        };
    }
    if let Some(e) = codec::first_error_notify(p) {
        let failure = if e.ntype == n::NO_PROPOSAL_CHOSEN {
            ctx.out.stats.no_proposal += 1;
            let ours = select::describe(&select::ike_to_wire(&sa.cfg.proposals, &[]));
            warn!(conn = %sa.cfg.name, "peer accepted none of our IKE proposals: offered {ours}");
            Failure::NoProposalChosen(ProposalMismatch {
                kind: ProposalKind::Ike,
                ours,
                theirs: None,
            })
        } else {
            Failure::PeerError {
                exchange: EXCHANGE,
                notify: e.ntype,
            }
        };
        return fail_initiator(sa, ctx, failure);
    }
    let found = Collected::from(p);
    let (Some(props), Some((ke_group, ke_data)), Some(nonce_r)) = (found.sa, found.ke, found.nonce)
    else {
        // Not a valid answer; keep waiting (retransmits continue) rather than let junk kill us.
        ctx.out.stats.malformed_dropped += 1;
        return SaFate::Keep;
    };
    let algs = match props {
        [one] => {
            select::ike_from_chosen(one).filter(|a| select::ike_choice_ok(&sa.cfg.proposals, a))
        }
        _ => None,
    };
    let Some(dh) = pending_mut(sa).and_then(|pd| pd.dh.take()) else {
        return SaFate::Keep;
    };
    let Some(algs) = algs.filter(|a| a.dh == dh.group() && ke_group == a.dh.transform_id()) else {
        return fail_initiator(sa, ctx, protocol("peer chose a proposal we did not offer"));
    };
    if msg.header.spi_r == 0 {
        if let Some(pd) = pending_mut(sa) {
            pd.dh = Some(dh);
        }
        ctx.out.stats.malformed_dropped += 1;
        return SaFate::Keep;
    }
    let crypto = |error| Failure::Crypto {
        exchange: EXCHANGE,
        error,
    };
    let shared = match dh.shared_secret(ke_data) {
        Ok(s) => s,
        Err(e) => return fail_initiator(sa, ctx, crypto(e.into())),
    };
    sa.spi_r = msg.header.spi_r;
    sa.nonce_r = nonce_r.to_vec();
    let material = KeyMaterial {
        shared: &shared,
        ni: &sa.nonce_i,
        nr: nonce_r,
        spi_i: sa.spi_i,
        spi_r: sa.spi_r,
    };
    let keyed = match keys::key_ike_sa(&algs, KeySource::Fresh, &material, true) {
        Ok(k) => k,
        Err(e) => return fail_initiator(sa, ctx, crypto(e)),
    };
    sa.nat_detected = nat_between(p, (sa.spi_i, sa.spi_r), sa.remote, sa.local);
    if sa.nat_detected || sa.cfg.encap_always {
        sa.local.set_port(float_port(sa.local.port()));
        sa.remote.set_port(float_port(sa.remote.port()));
        sa.udp_encap = true;
    }
    sa.set_keys(algs, keyed);
    sa.frags.negotiated = sa.cfg.fragmentation.announce() && fragmentation_offered(p);
    sa.init_resp = data.to_vec();
    sa.in_flight = None;
    sa.state = IkeState::AuthSent;
    ctx.keylog(sa);
    debug!(conn = %sa.cfg.name, "IKE_SA_INIT done: {}{}", algs.describe(), if sa.nat_detected { ", NAT detected, floating to 4500" } else { "" });
    ike_auth::start(sa, ctx);
    SaFate::Keep
}

// ------------------------------------------------------------------------------ responder

/// Responder: answers a new IKE_SA_INIT request. Returns the half-open SA to keep, or None
/// when the answer was stateless (cookie, error notify) or there was none.
pub(crate) fn respond(
    ctx: &mut Ctx,
    jar: &CookieGate,
    half_open: usize,
    (local, remote): (SocketAddr, SocketAddr),
    data: &[u8],
    msg: &Message,
) -> Option<IkeSa> {
    let h = &msg.header;
    let path = (local, remote);
    let cands: Vec<&Arc<IkeConfig>> = candidates(ctx.configs, local.ip(), remote.ip()).collect();
    if cands.is_empty() {
        warn!("no connection configured for IKE_SA_INIT {local} <- {remote}, answering NO_PROPOSAL_CHOSEN");
        ctx.out.stats.no_proposal += 1;
        message::reply_plain(ctx, path, h, n::NO_PROPOSAL_CHOSEN, vec![]);
        return None;
    }
    let found = Collected::from(&msg.payloads);
    let (Some(props), Some((ke_group, ke_data)), Some(nonce_i)) = (found.sa, found.ke, found.nonce)
    else {
        debug!("IKE_SA_INIT from {remote} lacks SA, KE or Nonce");
        ctx.out.stats.malformed_dropped += 1;
        message::reply_plain(ctx, path, h, n::INVALID_SYNTAX, vec![]);
        return None;
    };
    let presented = codec::find_notify(&msg.payloads, n::COOKIE).map(|c| c.data.as_slice());
    if let Some(cookie) = jar.demand(ctx.now, half_open, (nonce_i, remote, h.spi_i), presented) {
        debug!("demanding COOKIE from {remote} ({half_open} half-open IKE_SAs)");
        ctx.out.stats.cookies_sent += 1;
        message::reply_plain(ctx, path, h, n::COOKIE, cookie);
        return None;
    }
    let chosen = cands.iter().find_map(|c| {
        select::select_ike(&c.proposals, props, Some(ke_group)).map(|(rp, a)| (*c, rp.num, a))
    });
    let Some((cfg, num, algs)) = chosen else {
        let ours: Vec<String> = cands
            .iter()
            .map(|c| select::describe(&select::ike_to_wire(&c.proposals, &[])))
            .collect();
        let mismatch = ProposalMismatch {
            kind: ProposalKind::Ike,
            ours: ours.join(", "),
            theirs: Some(select::describe(props)),
        };
        warn!("IKE_SA_INIT from {remote}: {mismatch}");
        ctx.out.stats.no_proposal += 1;
        let name = cands[0].name.clone();
        ctx.failed(&name, Failure::NoProposalChosen(mismatch));
        message::reply_plain(ctx, path, h, n::NO_PROPOSAL_CHOSEN, vec![]);
        return None;
    };
    let cfg = cfg.clone();
    if algs.dh.transform_id() != ke_group {
        debug!(
            "IKE_SA_INIT from {remote} has KE group {ke_group}, requesting {}",
            algs.dh.name()
        );
        ctx.out.stats.invalid_ke_sent += 1;
        let want = algs.dh.transform_id().to_be_bytes().to_vec();
        message::reply_plain(ctx, path, h, n::INVALID_KE_PAYLOAD, want);
        return None;
    }
    let dh = DhPrivate::generate(algs.dh, &mut *ctx.rng);
    let shared = match dh.shared_secret(ke_data) {
        Ok(s) => s,
        Err(e) => {
            debug!("bad KE from {remote}: {e}");
            ctx.out.stats.malformed_dropped += 1;
            message::reply_plain(ctx, path, h, n::INVALID_SYNTAX, vec![]);
            return None;
        }
    };
    let spi_r = ctx.new_ike_spi();
    let nonce_r = ctx.nonce();
    let nat_detected = nat_between(&msg.payloads, (h.spi_i, 0), remote, local);
    let fragmentation = cfg.fragmentation.announce() && fragmentation_offered(&msg.payloads);
    let mut payloads = vec![
        Payload::Sa(vec![select::ike_reply(num, &algs, &[])]),
        Payload::Ke {
            group: algs.dh.transform_id(),
            data: dh.public_value(),
        },
        Payload::Nonce(nonce_r.clone()),
        Payload::notify(
            n::NAT_DETECTION_SOURCE_IP,
            keys::nat_hash(h.spi_i, spi_r, local),
        ),
        Payload::notify(
            n::NAT_DETECTION_DESTINATION_IP,
            keys::nat_hash(h.spi_i, spi_r, remote),
        ),
    ];
    if fragmentation {
        payloads.push(Payload::notify(n::IKEV2_FRAGMENTATION_SUPPORTED, vec![]));
    }
    let rh = Header {
        spi_i: h.spi_i,
        spi_r,
        next_payload: 0,
        version: IKE_VERSION,
        exchange: EXCH_IKE_SA_INIT,
        flags: FLAG_RESPONSE,
        msg_id: 0,
        length: 0,
    };
    let resp = codec::encode_plain(rh, &payloads);
    let material = KeyMaterial {
        shared: &shared,
        ni: nonce_i,
        nr: &nonce_r,
        spi_i: h.spi_i,
        spi_r,
    };
    let keyed = match keys::key_ike_sa(&algs, KeySource::Fresh, &material, false) {
        Ok(k) => k,
        Err(e) => {
            warn!("cannot key IKE_SA: {e}");
            return None;
        }
    };
    debug!(conn = %cfg.name, "IKE_SA_INIT from {remote}: chose {}{}", algs.describe(), if nat_detected { ", NAT detected" } else { "" });
    let mut sa = IkeSa {
        nonce_i: nonce_i.to_vec(),
        nonce_r,
        init_req: data.to_vec(),
        init_resp: resp.clone(),
        init_key: Some((remote, h.spi_i)),
        nat_detected,
        udp_encap: nat_detected || local.port() == NATT_PORT,
        peer_msg_id: 1,
        expire_at: Some(ctx.now + HALF_OPEN_TIMEOUT),
        ..IkeSa::new(
            cfg,
            false,
            (h.spi_i, spi_r),
            IkeState::InitReplied,
            (local, remote),
            ctx.now,
        )
    };
    sa.set_keys(algs, keyed);
    sa.frags.negotiated = fragmentation;
    sa.responses.store(0, EXCH_IKE_SA_INIT, vec![resp.clone()]);
    ctx.transmit(local, remote, resp);
    ctx.keylog(&sa);
    Some(sa)
}
