//! The exchanges, one unit each (like charon's tasks), each building and processing its
//! messages for both roles and keeping its own state while its request is in flight:
//!
//! - `ike_sa_init`: IKE_SA_INIT, the key exchange (cookies, INVALID_KE, NAT detection);
//! - `ike_auth`: IKE_AUTH, PSK authentication and the first CHILD SA;
//! - `create_child`: CREATE_CHILD_SA for CHILD SAs (new ones and rekeys);
//! - `ike_rekey`: CREATE_CHILD_SA rekeying the IKE SA;
//! - `informational`: DPD and Delete;
//! - `child_sa`: the CHILD SA negotiation that IKE_AUTH and CREATE_CHILD_SA share.
//!
//! A unit works on `&mut IkeSa` and a `Ctx`, sends through `crate::ike::message`, and never
//! calls into the engine. This module routes verified messages to the right unit and starts
//! queued work when the window is free.

pub(crate) mod child_sa;
pub(crate) mod create_child;
pub(crate) mod ike_auth;
pub(crate) mod ike_rekey;
pub(crate) mod ike_sa_init;
pub(crate) mod informational;

use super::codec::{self, notify as n, Payload, PROTO_IKE};
use super::codec::{EXCH_CREATE_CHILD_SA, EXCH_IKE_AUTH, EXCH_INFORMATIONAL};
use super::ctx::Ctx;
use super::message::{self, Req};
use super::reason::ExchangeKind;
use super::sa::{IkeSa, IkeState, Task};
use super::{select, TrafficSelector};
use subtle::ConstantTimeEq;
use tracing::debug;

/// Whether the SA stays in the table after what just happened to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SaFate {
    Keep,
    Gone,
}

/// The state an exchange keeps while its request is in flight.
pub(crate) enum Pending {
    Init(ike_sa_init::Pending),
    Auth(ike_auth::Pending),
    Child(create_child::Pending),
    RekeyIke(ike_rekey::Pending),
    Info(informational::Pending),
}

impl Pending {
    pub fn kind(&self) -> ExchangeKind {
        match self {
            Pending::Init(_) => ExchangeKind::IkeSaInit,
            Pending::Auth(_) => ExchangeKind::IkeAuth,
            Pending::Child(c) if c.offer.rekey_of.is_some() => ExchangeKind::RekeyChild,
            Pending::Child(_) => ExchangeKind::CreateChild,
            Pending::RekeyIke(_) => ExchangeKind::RekeyIke,
            Pending::Info(i) => i.kind(),
        }
    }
}

/// Routes a verified request to its exchange.
pub(crate) fn on_request(sa: &mut IkeSa, ctx: &mut Ctx, req: &Req, payloads: &[Payload]) -> SaFate {
    match (req.exchange, sa.state) {
        (EXCH_IKE_AUTH, IkeState::InitReplied) => ike_auth::on_request(sa, ctx, req, payloads),
        (_, IkeState::InitReplied) | (EXCH_IKE_AUTH, _) => {
            message::respond_notify(sa, ctx, req, n::INVALID_SYNTAX, vec![]);
            if sa.state == IkeState::InitReplied {
                SaFate::Gone
            } else {
                SaFate::Keep
            }
        }
        (EXCH_CREATE_CHILD_SA, IkeState::Established) => {
            let rekeys_ike = payloads.iter().any(|p| match p {
                Payload::Sa(props) => props.iter().any(|p| p.protocol == PROTO_IKE),
                _ => false,
            });
            if rekeys_ike {
                ike_rekey::on_request(sa, ctx, req, payloads)
            } else {
                create_child::on_request(sa, ctx, req, payloads)
            }
        }
        (EXCH_CREATE_CHILD_SA, _) => {
            message::respond_notify(sa, ctx, req, n::TEMPORARY_FAILURE, vec![]);
            SaFate::Keep
        }
        (EXCH_INFORMATIONAL, _) => informational::on_request(sa, ctx, req, payloads),
        _ => {
            ctx.out.stats.malformed_dropped += 1;
            SaFate::Keep
        }
    }
}

/// Routes the verified response to our request to the exchange that sent it.
pub(crate) fn on_response(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    pending: Pending,
    payloads: &[Payload],
) -> SaFate {
    if sa.state == IkeState::Deleting && !informational::is_delete_ike(&pending) {
        // The Delete waited for this window; the answer itself no longer matters.
        informational::start_delete_ike(sa, ctx);
        return SaFate::Keep;
    }
    debug!(conn = %sa.cfg.name, "received {} response", pending.kind());
    match pending {
        // Answered before it got here (unprotected); nothing left to do.
        Pending::Init(_) => SaFate::Keep,
        Pending::Auth(p) => ike_auth::on_response(sa, ctx, p, payloads),
        Pending::Child(p) => {
            create_child::on_response(sa, ctx, p, payloads);
            SaFate::Keep
        }
        Pending::RekeyIke(p) => ike_rekey::on_response(sa, ctx, p, payloads),
        Pending::Info(p) => informational::on_response(sa, ctx, p),
    }
}

/// Starts queued exchanges while the window is free.
pub(crate) fn run_tasks(sa: &mut IkeSa, ctx: &mut Ctx) {
    while sa.in_flight.is_none() && sa.state == IkeState::Established {
        let Some(task) = sa.tasks.pop_front() else {
            return;
        };
        match task {
            Task::Dpd => informational::start_dpd(sa, ctx),
            Task::DeleteChild(spi) => informational::start_delete_child(sa, ctx, spi),
            Task::DeleteExpired(spi) => informational::send_delete_child(sa, ctx, spi),
            Task::CreateChild(name) => create_child::start(sa, ctx, name, None, None),
            Task::RekeyChild(spi, group) => create_child::start_rekey(sa, ctx, spi, group),
            Task::RekeyIke(group) => ike_rekey::start(sa, ctx, group),
        }
    }
}

/// The payloads an exchange reads, by type (a repeated payload: the last one counts).
#[derive(Default)]
pub(crate) struct Collected<'a> {
    pub sa: Option<&'a [codec::Proposal]>,
    pub ke: Option<(u16, &'a [u8])>,
    pub nonce: Option<&'a [u8]>,
    pub idi: Option<(u8, &'a [u8])>,
    pub idr: Option<(u8, &'a [u8])>,
    pub auth: Option<(u8, &'a [u8])>,
    pub tsi: Option<Vec<TrafficSelector>>,
    pub tsr: Option<Vec<TrafficSelector>>,
}

impl<'a> Collected<'a> {
    pub fn from(payloads: &'a [Payload]) -> Self {
        let mut c = Collected::default();
        for p in payloads {
            match p {
                Payload::Sa(props) => c.sa = Some(props),
                Payload::Ke { group, data } => c.ke = Some((*group, data)),
                Payload::Nonce(nv) => c.nonce = Some(nv),
                Payload::IdI { id_type, data } => c.idi = Some((*id_type, data)),
                Payload::IdR { id_type, data } => c.idr = Some((*id_type, data)),
                Payload::Auth { method, data } => c.auth = Some((*method, data)),
                Payload::TsI(t) => c.tsi = Some(select::ts_from_wire(t)),
                Payload::TsR(t) => c.tsr = Some(select::ts_from_wire(t)),
                _ => {}
            }
        }
        c
    }
}

pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The DH group number an INVALID_KE_PAYLOAD notify asks for.
pub(crate) fn requested_group(data: &[u8]) -> Option<u16> {
    let b: [u8; 2] = data.get(..2)?.try_into().ok()?;
    Some(u16::from_be_bytes(b))
}

pub(crate) fn ts_list(ts: &[TrafficSelector]) -> String {
    ts.iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}
