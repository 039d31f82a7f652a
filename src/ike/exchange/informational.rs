//! INFORMATIONAL (RFC 7296 1.4): liveness checks (DPD, an empty request) and Delete of
//! CHILD SAs and of the IKE SA, in both roles.

use super::{Pending as Exchange, SaFate};
use crate::ike::codec::{self, Payload, EXCH_INFORMATIONAL, PROTO_ESP, PROTO_IKE};
use crate::ike::ctx::{later, Ctx};
use crate::ike::message::{self, Req};
use crate::ike::reason::{ChildDownReason, DownReason, ExchangeKind};
use crate::ike::sa::{ChildState, IkeSa, IkeState};
use crate::ike::StartAction;
use tracing::debug;

/// Initiator state while the request is in flight.
pub(crate) enum Pending {
    Dpd,
    /// Inbound SPIs of the CHILD SAs being deleted.
    DeleteChildren(Vec<u32>),
    DeleteIke,
}

impl Pending {
    pub fn kind(&self) -> ExchangeKind {
        match self {
            Pending::Dpd => ExchangeKind::Dpd,
            Pending::DeleteChildren(_) => ExchangeKind::DeleteChild,
            Pending::DeleteIke => ExchangeKind::DeleteIke,
        }
    }
}

pub(crate) fn is_dpd(p: &Exchange) -> bool {
    matches!(p, Exchange::Info(Pending::Dpd))
}

pub(crate) fn is_delete_ike(p: &Exchange) -> bool {
    matches!(p, Exchange::Info(Pending::DeleteIke))
}

fn send(sa: &mut IkeSa, ctx: &mut Ctx, payloads: &[Payload], pending: Pending) {
    message::send_request(
        sa,
        ctx,
        EXCH_INFORMATIONAL,
        payloads,
        Exchange::Info(pending),
    );
}

// ------------------------------------------------------------------------------ initiator

pub(crate) fn start_dpd(sa: &mut IkeSa, ctx: &mut Ctx) {
    ctx.out.stats.dpd_sent += 1;
    debug!(conn = %sa.cfg.name, "sending DPD");
    send(sa, ctx, &[], Pending::Dpd);
}

pub(crate) fn start_delete_child(sa: &mut IkeSa, ctx: &mut Ctx, spi: u32) {
    let Some(c) = sa.child_by_in_mut(spi) else {
        return;
    };
    if c.state != ChildState::Rekeyed {
        c.state = ChildState::Deleting;
    }
    send_delete_child(sa, ctx, spi);
}

/// The Delete exchange for CHILD SA `spi` (whether or not we still hold it).
pub(crate) fn send_delete_child(sa: &mut IkeSa, ctx: &mut Ctx, spi: u32) {
    let p = Payload::Delete {
        protocol: PROTO_ESP,
        spi_size: 4,
        spis: vec![spi.to_be_bytes().to_vec()],
    };
    send(sa, ctx, &[p], Pending::DeleteChildren(vec![spi]));
}

pub(crate) fn start_delete_ike(sa: &mut IkeSa, ctx: &mut Ctx) {
    let d = Payload::Delete {
        protocol: PROTO_IKE,
        spi_size: 0,
        spis: vec![],
    };
    send(sa, ctx, &[d], Pending::DeleteIke);
}

/// Initiator: the peer answered.
pub(crate) fn on_response(sa: &mut IkeSa, ctx: &mut Ctx, pending: Pending) -> SaFate {
    match pending {
        Pending::Dpd => SaFate::Keep,
        Pending::DeleteChildren(spis) => {
            for spi in spis {
                let reason = match sa.child_by_in(spi).map(|c| c.state) {
                    Some(ChildState::Rekeyed) => ChildDownReason::Rekeyed,
                    _ => ChildDownReason::Deleted,
                };
                ctx.remove_child(sa, spi, reason);
            }
            SaFate::Keep
        }
        Pending::DeleteIke => {
            if sa.state == IkeState::Rekeyed {
                ctx.replaced_down(sa);
            }
            SaFate::Gone
        }
    }
}

// ------------------------------------------------------------------------------ responder

/// Responder: Deletes are carried out and answered (our halves of deleted CHILD SAs in
/// the answer); notifies are logged; an empty request (DPD) gets an empty answer.
pub(crate) fn on_request(sa: &mut IkeSa, ctx: &mut Ctx, req: &Req, payloads: &[Payload]) -> SaFate {
    let mut delete_ike = false;
    let mut ours = Vec::new();
    for p in payloads {
        match p {
            Payload::Delete {
                protocol: PROTO_IKE,
                ..
            } => delete_ike = true,
            Payload::Delete {
                protocol: PROTO_ESP,
                spi_size: 4,
                spis,
            } => {
                for s in spis {
                    let Ok(b) = <[u8; 4]>::try_from(s.as_slice()) else {
                        continue;
                    };
                    let spi_out = u32::from_be_bytes(b);
                    let Some(c) = sa.children.iter().find(|c| c.spi_out == spi_out) else {
                        continue;
                    };
                    let spi_in = c.spi_in;
                    let reason = if c.state == ChildState::Rekeyed {
                        ChildDownReason::Rekeyed
                    } else {
                        ChildDownReason::DeletedByPeer
                    };
                    ours.push(spi_in.to_be_bytes().to_vec());
                    ctx.remove_child(sa, spi_in, reason);
                }
            }
            Payload::Notify(nt) => {
                debug!(conn = %sa.cfg.name, "INFORMATIONAL notify {}", codec::notify_name(nt.ntype))
            }
            _ => {}
        }
    }
    if delete_ike {
        message::respond(sa, ctx, req, &[]);
        match sa.state {
            IkeState::Rekeyed => ctx.replaced_down(sa),
            IkeState::Deleting => {}
            _ => {
                ctx.all_down(sa, DownReason::DeletedByPeer);
                // start_action=start means "keep it up", like strongSwan's close_action=start.
                if sa.cfg.start_action == StartAction::Start {
                    let at = later(ctx.now, sa.cfg.retransmit.timeout);
                    ctx.restart(&sa.cfg.name, at);
                }
            }
        }
        return SaFate::Gone;
    }
    let resp = if ours.is_empty() {
        vec![]
    } else {
        vec![Payload::Delete {
            protocol: PROTO_ESP,
            spi_size: 4,
            spis: ours,
        }]
    };
    message::respond(sa, ctx, req, &resp);
    SaFate::Keep
}
