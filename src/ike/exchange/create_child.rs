//! CREATE_CHILD_SA for CHILD SAs (RFC 7296 1.3.1, 1.3.3): more children, and the
//! make-before-break rekey of one, with PFS, INVALID_KE / TEMPORARY_FAILURE retries and
//! simultaneous rekeys resolved by the lowest nonce (2.8.1).

use super::child_sa::{self, Offer, Offered};
use super::{requested_group, Collected, SaFate};
use crate::crypto::{DhGroup, DhPrivate};
use crate::ike::codec::{self, notify as n, Payload, EXCH_CREATE_CHILD_SA, PROTO_ESP};
use crate::ike::ctx::Ctx;
use crate::ike::message::{self, Req};
use crate::ike::reason::ChildDownReason;
use crate::ike::sa::{ChildState, IkeSa, Task};
use std::time::Duration;
use tracing::{debug, info};

/// An SA replaced by the peer's rekey is dropped after this if the peer never deletes it.
pub(crate) const REPLACED_SA_TIMEOUT: Duration = Duration::from_secs(60);
/// Retry of a rekey that failed for another reason than a collision.
const RETRY_FAILED_REKEY: Duration = Duration::from_secs(60);

/// Initiator state while the request is in flight.
pub(crate) struct Pending {
    pub offer: Offer,
}

// ------------------------------------------------------------------------------ initiator

/// Rekeys the installed CHILD SA with inbound SPI `spi` (optionally with the DH group the
/// peer asked for in INVALID_KE_PAYLOAD).
pub(crate) fn start_rekey(sa: &mut IkeSa, ctx: &mut Ctx, spi: u32, group: Option<u16>) {
    let Some(c) = sa.child_by_in(spi) else { return };
    if c.state != ChildState::Installed {
        return;
    }
    let name = c.name.clone();
    start(sa, ctx, name, Some(spi), group);
}

/// Creates child `name`, or rekeys `rekey_of` (its inbound SPI).
pub(crate) fn start(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    name: String,
    rekey_of: Option<u32>,
    group: Option<u16>,
) {
    let Some(ccfg) = sa.cfg.children.iter().find(|c| c.name == name).cloned() else {
        debug!(conn = %sa.cfg.name, "child {name} no longer configured, not (re)creating it");
        return;
    };
    let spi_in = ctx.new_child_spi(sa);
    let nonce = ctx.nonce();
    let pfs = group
        .and_then(DhGroup::from_transform)
        .or_else(|| ccfg.proposals.first().and_then(|p| p.dh.first().copied()));
    let dh = pfs.map(|g| DhPrivate::generate(g, &mut *ctx.rng));
    let mut payloads = Vec::new();
    if let Some(old) = rekey_of {
        payloads.push(Payload::Notify(codec::Notify {
            protocol: PROTO_ESP,
            spi: old.to_be_bytes().to_vec(),
            ntype: n::REKEY_SA,
            data: vec![],
        }));
        if let Some(c) = sa.child_by_in_mut(old) {
            c.state = ChildState::Rekeying;
        }
        info!(conn = %sa.cfg.name, "rekeying CHILD_SA {}{{{:08x}_i}}", name, old);
    }
    payloads.push(child_sa::sa_payload(&ccfg, spi_in, true));
    payloads.push(Payload::Nonce(nonce.clone()));
    if let Some(d) = &dh {
        payloads.push(Payload::Ke {
            group: d.group().transform_id(),
            data: d.public_value(),
        });
    }
    // A rekey keeps the selectors negotiated for the old SA (as strongSwan does).
    let (tsi, tsr) = match rekey_of.and_then(|o| sa.child_by_in(o)) {
        Some(c) => (c.local_ts.clone(), c.remote_ts.clone()),
        None => child_sa::configured_ts(&ccfg),
    };
    payloads.extend(child_sa::ts_payloads(&tsi, &tsr));
    let offer = Offer {
        nonce: Some(nonce),
        dh,
        rekey_of,
        ..Offer::new(&ccfg, spi_in)
    };
    message::send_request(
        sa,
        ctx,
        EXCH_CREATE_CHILD_SA,
        &payloads,
        super::Pending::Child(Pending { offer }),
    );
}

/// Initiator: the answer to our CREATE_CHILD_SA.
pub(crate) fn on_response(sa: &mut IkeSa, ctx: &mut Ctx, pending: Pending, payloads: &[Payload]) {
    let offer = pending.offer;
    let rekey_of = offer.rekey_of;
    let nonce_i = offer.nonce.clone().unwrap_or_default();
    if let Some(e) = codec::first_error_notify(payloads) {
        if let Some(old) = rekey_of.and_then(|o| sa.child_by_in_mut(o)) {
            if old.state == ChildState::Rekeying {
                old.state = ChildState::Installed;
            }
        }
        if let Some(old) = rekey_of {
            if retry_rekey(sa, ctx, e, old, offer.dh.as_ref()) {
                return;
            }
        }
        // Report (NO_PROPOSAL_CHOSEN etc.) and retry a failed rekey later.
        let offer = Offer { dh: None, ..offer };
        child_sa::accept(sa, ctx, payloads, offer);
        if let Some(c) = rekey_of.and_then(|o| sa.child_by_in_mut(o)) {
            c.rekey_at = Some(ctx.now + RETRY_FAILED_REKEY);
        }
        return;
    }
    let nonce_r = Collected::from(payloads).nonce;
    let created = child_sa::accept(sa, ctx, payloads, offer);
    let Some(old_spi) = rekey_of else { return };
    let Some(new_spi) = created else {
        if let Some(c) = sa.child_by_in_mut(old_spi) {
            c.state = ChildState::Installed;
            c.rekey_at = Some(ctx.now + RETRY_FAILED_REKEY);
        }
        return;
    };
    let now = ctx.now;
    let conn = sa.cfg.name.clone();
    let Some(old) = sa.child_by_in_mut(old_spi) else {
        // The old SA vanished meanwhile (deleted by the peer): keep the new one.
        return;
    };
    old.state = ChildState::Rekeyed;
    old.rekey_at = None;
    if let (Some((pni, pnr, _)), Some(nr)) = (&old.peer_rekeyed, &nonce_r) {
        // Simultaneous rekey: the SA of the exchange with the lowest nonce is redundant
        // and deleted by its initiator (RFC 7296 2.8.1).
        let ours_min = std::cmp::min(nonce_i.as_slice(), *nr);
        let theirs_min = std::cmp::min(pni.as_slice(), pnr.as_slice());
        if ours_min < theirs_min {
            info!(conn = %conn, "simultaneous CHILD_SA rekey: ours lost, deleting redundant {new_spi:08x}");
            old.expire_at = Some(now + REPLACED_SA_TIMEOUT);
            if let Some(c) = sa.child_by_in_mut(new_spi) {
                c.state = ChildState::Deleting;
                c.rekey_at = None;
            }
            sa.tasks.push_front(Task::DeleteChild(new_spi));
            return;
        }
        info!(conn = %conn, "simultaneous CHILD_SA rekey: ours won");
    }
    sa.tasks.push_front(Task::DeleteChild(old_spi));
}

/// Error notifies a rekey answers by trying again: another DH group, a collision
/// (TEMPORARY_FAILURE), or a peer that lost the SA. True if handled.
fn retry_rekey(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    e: &codec::Notify,
    old: u32,
    dh: Option<&DhPrivate>,
) -> bool {
    match e.ntype {
        n::INVALID_KE_PAYLOAD => {
            let g = requested_group(&e.data);
            let acceptable = g
                .and_then(DhGroup::from_transform)
                .is_some_and(|g| dh.is_none_or(|d| d.group() != g));
            if acceptable {
                sa.tasks.push_front(Task::RekeyChild(old, g));
            }
            acceptable
        }
        n::TEMPORARY_FAILURE => {
            let delay = ctx.temporary_failure_delay();
            if let Some(c) = sa.child_by_in_mut(old) {
                c.rekey_at = Some(ctx.now + delay);
            }
            debug!(conn = %sa.cfg.name, "CHILD_SA rekey got TEMPORARY_FAILURE, retrying in {delay:?}");
            true
        }
        n::CHILD_SA_NOT_FOUND => {
            let Some(c) = sa.child_by_in(old) else {
                return false;
            };
            let name = c.name.clone();
            ctx.remove_child(sa, old, ChildDownReason::NotFoundAtPeer);
            sa.tasks.push_back(Task::CreateChild(name));
            true
        }
        _ => false,
    }
}

// ------------------------------------------------------------------------------ responder

/// Responder: a new CHILD SA, or the rekey of one (REKEY_SA).
pub(crate) fn on_request(sa: &mut IkeSa, ctx: &mut Ctx, req: &Req, payloads: &[Payload]) -> SaFate {
    let found = Collected::from(payloads);
    let (Some(props), Some(nonce_i), Some(tsi), Some(tsr)) =
        (found.sa, found.nonce, &found.tsi, &found.tsr)
    else {
        message::respond_notify(sa, ctx, req, n::INVALID_SYNTAX, vec![]);
        return SaFate::Keep;
    };
    let mut rekey_of = None;
    let mut only = None;
    if let Some(r) = codec::find_notify(payloads, n::REKEY_SA) {
        let spi = <[u8; 4]>::try_from(r.spi.as_slice())
            .map(u32::from_be_bytes)
            .unwrap_or(0);
        match sa.children.iter().find(|c| {
            c.spi_out == spi && matches!(c.state, ChildState::Installed | ChildState::Rekeying)
        }) {
            Some(c) => {
                rekey_of = Some(c.spi_in);
                only = Some(c.name.clone());
            }
            None => {
                debug!(conn = %sa.cfg.name, "peer rekeys unknown CHILD_SA {spi:08x}");
                let nt = codec::Notify {
                    protocol: PROTO_ESP,
                    spi: r.spi.clone(),
                    ntype: n::CHILD_SA_NOT_FOUND,
                    data: vec![],
                };
                message::respond(sa, ctx, req, &[Payload::Notify(nt)]);
                return SaFate::Keep;
            }
        }
    }
    let offered = Offered {
        props,
        tsi,
        tsr,
        ke_group: found.ke.map(|(g, _)| g),
    };
    let choice = match child_sa::negotiate(sa, ctx, &offered, true, only.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            message::respond_notify(sa, ctx, req, e.notify(), vec![]);
            return SaFate::Keep;
        }
    };
    let mut shared = None;
    let mut our_ke = None;
    if let Some(g) = choice.algs.dh {
        match found.ke {
            Some((kg, data)) if kg == g.transform_id() => {
                let d = DhPrivate::generate(g, &mut *ctx.rng);
                match d.shared_secret(data) {
                    Ok(s) => shared = Some(s),
                    Err(e) => {
                        debug!(conn = %sa.cfg.name, "bad KE in CREATE_CHILD_SA: {e}");
                        message::respond_notify(sa, ctx, req, n::INVALID_SYNTAX, vec![]);
                        return SaFate::Keep;
                    }
                }
                our_ke = Some(Payload::Ke {
                    group: kg,
                    data: d.public_value(),
                });
            }
            _ => {
                ctx.out.stats.invalid_ke_sent += 1;
                let want = g.transform_id().to_be_bytes().to_vec();
                message::respond_notify(sa, ctx, req, n::INVALID_KE_PAYLOAD, want);
                return SaFate::Keep;
            }
        }
    }
    let spi_in = ctx.new_child_spi(sa);
    let nonce_r = ctx.nonce();
    let mut resp = vec![
        child_sa::reply_sa(&choice, spi_in),
        Payload::Nonce(nonce_r.clone()),
    ];
    resp.extend(our_ke);
    resp.extend(child_sa::reply_ts(&choice));
    message::respond(sa, ctx, req, &resp);
    let keying = child_sa::Keying {
        shared: shared.as_deref().map(|s| &s[..]),
        ni: nonce_i,
        nr: &nonce_r,
    };
    child_sa::install(sa, ctx, choice.into_new(spi_in, false, rekey_of), &keying);
    if let Some(old) = rekey_of.and_then(|o| sa.child_by_in_mut(o)) {
        old.peer_rekeyed = Some((nonce_i.to_vec(), nonce_r, spi_in));
        if old.state == ChildState::Installed {
            // The peer deletes the old SA; do not keep it forever if it never does.
            old.state = ChildState::Rekeyed;
            old.rekey_at = None;
            old.expire_at = Some(ctx.now + REPLACED_SA_TIMEOUT);
        }
    }
    SaFate::Keep
}
