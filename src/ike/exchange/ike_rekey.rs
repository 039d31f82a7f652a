//! CREATE_CHILD_SA rekeying the IKE SA (RFC 7296 1.3.2, 2.18): a new IKE SA with fresh
//! SPIs and keys takes over the children and the queued work; the old one is deleted by
//! the rekey's initiator.

use super::create_child::REPLACED_SA_TIMEOUT;
use super::{informational, requested_group, Collected, SaFate};
use crate::crypto::{DhGroup, DhPrivate};
use crate::ike::codec::{self, notify as n, Payload, EXCH_CREATE_CHILD_SA, PROTO_IKE};
use crate::ike::ctx::{Ctx, Request};
use crate::ike::keys::{self, IkeAlgs, IkeSaKeys, KeyMaterial, KeySource};
use crate::ike::message::{self, Req};
use crate::ike::reason::{ProposalKind, ProposalMismatch};
use crate::ike::sa::{ChildState, IkeSa, IkeState, Task};
use crate::ike::select;
use std::collections::VecDeque;
use std::time::Duration;
use tracing::{debug, info, warn};

/// Retry of a rekey that failed for another reason than a collision.
const RETRY_FAILED_REKEY: Duration = Duration::from_secs(60);

/// Initiator state while the request is in flight.
pub(crate) struct Pending {
    /// SPI of the new IKE SA (ours).
    spi: u64,
    nonce: Vec<u8>,
    dh: DhPrivate,
}

/// Starts the rekey (with the group the peer asked for after INVALID_KE_PAYLOAD).
pub(crate) fn start(sa: &mut IkeSa, ctx: &mut Ctx, group: Option<u16>) {
    let Some(algs) = sa.algs else { return };
    let group = group.and_then(DhGroup::from_transform).unwrap_or(algs.dh);
    let spi = ctx.new_ike_spi();
    let nonce = ctx.nonce();
    let dh = DhPrivate::generate(group, &mut *ctx.rng);
    let payloads = vec![
        Payload::Sa(select::ike_to_wire(&sa.cfg.proposals, &spi.to_be_bytes())),
        Payload::Nonce(nonce.clone()),
        Payload::Ke {
            group: group.transform_id(),
            data: dh.public_value(),
        },
    ];
    info!(conn = %sa.cfg.name, "rekeying IKE_SA {}[{:016x}_i {:016x}_r]", sa.cfg.name, sa.spi_i, sa.spi_r);
    let pending = Pending { spi, nonce, dh };
    message::send_request(
        sa,
        ctx,
        EXCH_CREATE_CHILD_SA,
        &payloads,
        super::Pending::RekeyIke(pending),
    );
}

/// Initiator: the answer; on success the new SA replaces `sa`, which we then delete.
pub(crate) fn on_response(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    pending: Pending,
    payloads: &[Payload],
) -> SaFate {
    let Pending { spi, nonce, dh } = pending;
    if let Some(e) = codec::first_error_notify(payloads) {
        match e.ntype {
            n::INVALID_KE_PAYLOAD => {
                let g = requested_group(&e.data);
                if g.and_then(DhGroup::from_transform)
                    .is_some_and(|g| g != dh.group())
                {
                    sa.tasks.push_front(Task::RekeyIke(g));
                    return SaFate::Keep;
                }
            }
            n::NO_PROPOSAL_CHOSEN => ctx.out.stats.no_proposal += 1,
            _ => {}
        }
        let delay = if e.ntype == n::TEMPORARY_FAILURE {
            ctx.temporary_failure_delay()
        } else {
            RETRY_FAILED_REKEY
        };
        warn!(conn = %sa.cfg.name, "IKE_SA rekey failed: peer sent {}, retrying in {:?}", codec::notify_name(e.ntype), delay);
        sa.rekey_at = Some(ctx.now + delay);
        return SaFate::Keep;
    }
    let (Some(old_algs), Some(old_keys)) = (sa.algs, &sa.keys) else {
        return SaFate::Keep;
    };
    let found = Collected::from(payloads);
    let chosen = match found.sa {
        Some([one]) if one.spi.len() == 8 => select::ike_from_chosen(one)
            .filter(|a| select::ike_choice_ok(&sa.cfg.proposals, a) && a.dh == dh.group())
            .map(|a| (a, spi_of(&one.spi))),
        _ => None,
    };
    let shared = found
        .ke
        .filter(|(g, _)| *g == dh.group().transform_id())
        .and_then(|(_, d)| dh.shared_secret(d).ok());
    let (Some((algs, new_spi_r)), Some(nonce_r), Some(shared)) = (chosen, found.nonce, shared)
    else {
        warn!(conn = %sa.cfg.name, "invalid IKE rekey response, retrying later");
        sa.rekey_at = Some(ctx.now + RETRY_FAILED_REKEY);
        return SaFate::Keep;
    };
    let source = KeySource::Rekey {
        prf: old_algs.prf,
        sk_d: &old_keys.sk_d,
    };
    let material = KeyMaterial {
        shared: &shared,
        ni: &nonce,
        nr: nonce_r,
        spi_i: spi,
        spi_r: new_spi_r,
    };
    let Ok(keyed) = keys::key_ike_sa(&algs, source, &material, true) else {
        return SaFate::Keep;
    };
    let nonces = (nonce.clone(), nonce_r.to_vec());
    let new = successor(sa, ctx, true, (spi, new_spi_r), (algs, keyed), nonces);
    replace(sa, ctx, new);
    // We initiated the rekey, so we delete the old SA.
    informational::start_delete_ike(sa, ctx);
    SaFate::Keep
}

fn spi_of(b: &[u8]) -> u64 {
    <[u8; 8]>::try_from(b).map(u64::from_be_bytes).unwrap_or(0)
}

/// Responder: rekeys the IKE SA the peer asks to, unless our own work must finish first.
pub(crate) fn on_request(sa: &mut IkeSa, ctx: &mut Ctx, req: &Req, payloads: &[Payload]) -> SaFate {
    let found = Collected::from(payloads);
    let (Some(props), Some(nonce_i)) = (found.sa, found.nonce) else {
        message::respond_notify(sa, ctx, req, n::INVALID_SYNTAX, vec![]);
        return SaFate::Keep;
    };
    // Our own exchanges must finish first (strongSwan does the same).
    let collision = sa
        .in_flight
        .as_ref()
        .is_some_and(|p| !informational::is_dpd(&p.exchange));
    let busy = sa.children.iter().any(|c| c.state == ChildState::Rekeying);
    if collision || busy {
        // Let the peer retry later; our own rekey (if any) proceeds.
        debug!(conn = %sa.cfg.name, "peer rekeys IKE_SA while we are busy rekeying: TEMPORARY_FAILURE");
        message::respond_notify(sa, ctx, req, n::TEMPORARY_FAILURE, vec![]);
        return SaFate::Keep;
    }
    let (Some(old_algs), Some(old_keys)) = (sa.algs, &sa.keys) else {
        return SaFate::Keep;
    };
    let Some((ke_group, ke_data)) = found.ke else {
        message::respond_notify(sa, ctx, req, n::INVALID_SYNTAX, vec![]);
        return SaFate::Keep;
    };
    let valid: Vec<codec::Proposal> = props
        .iter()
        .filter(|p| p.protocol == PROTO_IKE && p.spi.len() == 8)
        .cloned()
        .collect();
    let Some((rp, algs)) = select::select_ike(&sa.cfg.proposals, &valid, Some(ke_group)) else {
        ctx.out.stats.no_proposal += 1;
        let mismatch = ProposalMismatch {
            kind: ProposalKind::IkeRekey,
            ours: select::describe(&select::ike_to_wire(&sa.cfg.proposals, &[])),
            theirs: Some(select::describe(props)),
        };
        warn!(conn = %sa.cfg.name, "{mismatch}");
        message::respond_notify(sa, ctx, req, n::NO_PROPOSAL_CHOSEN, vec![]);
        return SaFate::Keep;
    };
    if algs.dh.transform_id() != ke_group {
        ctx.out.stats.invalid_ke_sent += 1;
        let want = algs.dh.transform_id().to_be_bytes().to_vec();
        message::respond_notify(sa, ctx, req, n::INVALID_KE_PAYLOAD, want);
        return SaFate::Keep;
    }
    let new_spi_i = spi_of(&rp.spi);
    let dh = DhPrivate::generate(algs.dh, &mut *ctx.rng);
    let Ok(shared) = dh.shared_secret(ke_data) else {
        message::respond_notify(sa, ctx, req, n::INVALID_SYNTAX, vec![]);
        return SaFate::Keep;
    };
    let new_spi_r = ctx.new_ike_spi();
    let nonce_r = ctx.nonce();
    let source = KeySource::Rekey {
        prf: old_algs.prf,
        sk_d: &old_keys.sk_d,
    };
    let material = KeyMaterial {
        shared: &shared,
        ni: nonce_i,
        nr: &nonce_r,
        spi_i: new_spi_i,
        spi_r: new_spi_r,
    };
    let Ok(keyed) = keys::key_ike_sa(&algs, source, &material, false) else {
        return SaFate::Keep;
    };
    let resp = vec![
        Payload::Sa(vec![select::ike_reply(
            rp.num,
            &algs,
            &new_spi_r.to_be_bytes(),
        )]),
        Payload::Nonce(nonce_r.clone()),
        Payload::Ke {
            group: algs.dh.transform_id(),
            data: dh.public_value(),
        },
    ];
    message::respond(sa, ctx, req, &resp);
    let nonces = (nonce_i.to_vec(), nonce_r);
    let new = successor(
        sa,
        ctx,
        false,
        (new_spi_i, new_spi_r),
        (algs, keyed),
        nonces,
    );
    replace(sa, ctx, new);
    SaFate::Keep
}

/// The IKE SA replacing `old` after a rekey; children and queued work move over.
fn successor(
    old: &mut IkeSa,
    ctx: &mut Ctx,
    initiator: bool,
    spis: (u64, u64),
    (algs, keyed): (IkeAlgs, IkeSaKeys),
    (nonce_i, nonce_r): (Vec<u8>, Vec<u8>),
) -> IkeSa {
    let rekey_at = ctx.jittered(old.cfg.rekey_time);
    let mut tasks: VecDeque<Task> = std::mem::take(&mut old.tasks);
    tasks.retain(|t| !matches!(t, Task::RekeyIke(_) | Task::Dpd));
    let mut new = IkeSa {
        nonce_i,
        nonce_r,
        nat_detected: old.nat_detected,
        udp_encap: old.udp_encap,
        tasks,
        children: std::mem::take(&mut old.children),
        established_at: Some(ctx.now),
        rekey_at,
        rekeyed: true,
        peer_id: old.peer_id.clone(),
        ..IkeSa::new(
            old.cfg.clone(),
            initiator,
            spis,
            IkeState::Established,
            (old.local, old.remote),
            ctx.now,
        )
    };
    new.set_keys(algs, keyed);
    // Negotiated in IKE_SA_INIT, it holds for the SAs that rekey this one (RFC 7383 2.3).
    new.frags.negotiated = old.frags.negotiated;
    new
}

/// Marks `old` as replaced and hands `new` to the engine for its table.
fn replace(old: &mut IkeSa, ctx: &mut Ctx, new: IkeSa) {
    info!(
        conn = %old.cfg.name,
        "IKE_SA {}[{:016x}_i {:016x}_r] rekeyed to [{:016x}_i {:016x}_r]",
        old.cfg.name,
        old.spi_i,
        old.spi_r,
        new.spi_i,
        new.spi_r
    );
    ctx.out.stats.ike_rekeyed += 1;
    old.state = IkeState::Rekeyed;
    old.rekey_at = None;
    old.expire_at = Some(ctx.now + REPLACED_SA_TIMEOUT);
    ctx.keylog(&new);
    ctx.ike_up(&new);
    ctx.out.requests.push(Request::Insert(Box::new(new)));
}
