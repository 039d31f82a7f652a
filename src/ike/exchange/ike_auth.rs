//! IKE_AUTH (RFC 7296 1.2, 2.15): identities and PSK authentication, INITIAL_CONTACT, and
//! the first CHILD SA piggybacked on it (negotiated by `child_sa`).

use super::child_sa::{self, Offer};
use super::{ct_eq, Collected, SaFate};
use crate::ike::codec::{self, notify as n, Payload, EXCH_IKE_AUTH};
use crate::ike::ctx::{Ctx, Request};
use crate::ike::exchange::ike_sa_init::candidates;
use crate::ike::lifecycle::{established, fail_initiator};
use crate::ike::message::{self, Req};
use crate::ike::reason::{AuthFailure, ExchangeKind, Failure};
use crate::ike::sa::IkeSa;
use crate::ike::sa::Task;
use crate::ike::{select, Identity, IkeConfig};
use std::sync::Arc;
use tracing::warn;

/// Initiator state while the request is in flight: the CHILD SA offered with it.
pub(crate) struct Pending {
    pub offer: Option<Offer>,
}

fn id_body(id_type: u8, data: &[u8]) -> Vec<u8> {
    let mut b = vec![id_type, 0, 0, 0];
    b.extend_from_slice(data);
    b
}

// ------------------------------------------------------------------------------ initiator

/// Sends IKE_AUTH right after IKE_SA_INIT completed.
pub(crate) fn start(sa: &mut IkeSa, ctx: &mut Ctx) {
    let id = &sa.cfg.local_id;
    let Some(auth) = sa.psk_auth(&sa.cfg.psk, true, &id_body(id.id_type(), &id.data())) else {
        return;
    };
    let mut payloads = vec![Payload::IdI {
        id_type: id.id_type(),
        data: id.data(),
    }];
    if let Some(r) = &sa.cfg.remote_id {
        payloads.push(Payload::IdR {
            id_type: r.id_type(),
            data: r.data(),
        });
    }
    payloads.push(Payload::Auth {
        method: codec::AUTH_PSK,
        data: auth.to_vec(),
    });
    // Like strongSwan: only claim "no other SAs" when it is true.
    if !ctx.reg.others_of(&sa.cfg.name, sa.our_spi()) {
        payloads.push(Payload::notify(n::INITIAL_CONTACT, vec![]));
    }
    let mut offer = None;
    if let Some(c) = sa.cfg.children.first().cloned() {
        let o = Offer::new(&c, ctx.new_child_spi(sa));
        payloads.push(child_sa::sa_payload(&c, o.spi_in, false));
        let (local, remote) = child_sa::configured_ts(&c);
        payloads.extend(child_sa::ts_payloads(&local, &remote));
        offer = Some(o);
    }
    message::send_request(
        sa,
        ctx,
        EXCH_IKE_AUTH,
        &payloads,
        super::Pending::Auth(Pending { offer }),
    );
}

/// Initiator: verifies the responder, then the first CHILD SA.
pub(crate) fn on_response(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    pending: Pending,
    payloads: &[Payload],
) -> SaFate {
    let found = Collected::from(payloads);
    let auth_failed = |ctx: &mut Ctx, a| {
        ctx.out.stats.auth_failures += 1;
        Failure::AuthFailed(a)
    };
    let (Some((id_type, id_data)), Some((method, auth_data))) = (found.idr, found.auth) else {
        let failure = match codec::first_error_notify(payloads) {
            Some(e) if e.ntype == n::AUTHENTICATION_FAILED => {
                auth_failed(ctx, AuthFailure::RejectedByPeer)
            }
            Some(e) => Failure::PeerError {
                exchange: ExchangeKind::IkeAuth,
                notify: e.ntype,
            },
            None => Failure::Protocol {
                exchange: ExchangeKind::IkeAuth,
                what: "response without IDr/AUTH",
            },
        };
        return fail_initiator(sa, ctx, failure);
    };
    let peer_id = Identity::from_wire(id_type, id_data);
    if let Some(want) = &sa.cfg.remote_id {
        if peer_id.as_ref().ok() != Some(want) {
            let got = peer_id.map_or_else(|e| e.to_string(), |i| i.to_string());
            let f = auth_failed(
                ctx,
                AuthFailure::PeerIdentity {
                    got,
                    want: want.clone(),
                },
            );
            return fail_initiator(sa, ctx, f);
        }
    }
    let verified = sa
        .psk_auth(&sa.cfg.psk, false, &id_body(id_type, id_data))
        .is_some_and(|expected| ct_eq(&expected, auth_data));
    if method != codec::AUTH_PSK || !verified {
        let f = auth_failed(ctx, AuthFailure::PeerAuthInvalid);
        return fail_initiator(sa, ctx, f);
    }
    sa.peer_id = peer_id.ok();
    established(sa, ctx);
    if let Some(offer) = pending.offer {
        child_sa::accept(sa, ctx, payloads, offer);
    }
    let more: Vec<String> = sa
        .cfg
        .children
        .iter()
        .skip(1)
        .map(|c| c.name.clone())
        .collect();
    sa.tasks.extend(more.into_iter().map(Task::CreateChild));
    SaFate::Keep
}

// ------------------------------------------------------------------------------ responder

/// Which connection the peer's AUTH selects.
enum Selected<'c> {
    /// Its PSK verifies and its IKE proposals allow the algorithms IKE_SA_INIT chose.
    Conn(&'c Arc<IkeConfig>),
    /// The PSK of `0` verifies, but its proposals do not allow the negotiated algorithms:
    /// IKE_SA_INIT ran under another connection matching the addresses (issue 11 finding 2).
    AlgsNotAllowed(&'c Arc<IkeConfig>),
    None,
}

/// The connection whose PSK verifies the peer's AUTH, among those matching the addresses
/// and the peer's identity (those whose local ID the peer asked for first), and whose IKE
/// proposals allow the algorithms already negotiated.
fn authenticate<'c>(
    sa: &IkeSa,
    configs: &'c [Arc<IkeConfig>],
    found: &Collected<'_>,
) -> (Selected<'c>, Option<Identity>) {
    let peer_id = found.idi.and_then(|(t, d)| Identity::from_wire(t, d).ok());
    let our_id_wanted = found.idr.and_then(|(t, d)| Identity::from_wire(t, d).ok());
    let (Some((t, d)), Some(pid), Some((codec::AUTH_PSK, adata))) =
        (found.idi, &peer_id, found.auth)
    else {
        return (Selected::None, peer_id);
    };
    let body = id_body(t, d);
    let cands: Vec<&Arc<IkeConfig>> = candidates(configs, sa.local.ip(), sa.remote.ip())
        .filter(|c| c.remote_id.as_ref().is_none_or(|r| r == pid))
        .collect();
    let preferred: Vec<&Arc<IkeConfig>> = cands
        .iter()
        .copied()
        .filter(|c| Some(&c.local_id) == our_id_wanted.as_ref())
        .collect();
    let order = if preferred.is_empty() {
        cands
    } else {
        preferred
    };
    let verified: Vec<&Arc<IkeConfig>> = order
        .into_iter()
        .filter(|c| {
            sa.psk_auth(&c.psk, true, &body)
                .is_some_and(|expected| ct_eq(&expected, adata))
        })
        .collect();
    let allowed = |c: &&&Arc<IkeConfig>| {
        sa.algs
            .as_ref()
            .is_some_and(|a| select::ike_choice_ok(&c.proposals, a))
    };
    let selected = match (verified.iter().find(allowed), verified.first()) {
        (Some(c), _) => Selected::Conn(c),
        (None, Some(c)) => Selected::AlgsNotAllowed(c),
        (None, None) => Selected::None,
    };
    (selected, peer_id)
}

/// Responder: authenticates the initiator, answers with our AUTH and the first CHILD SA.
pub(crate) fn on_request(sa: &mut IkeSa, ctx: &mut Ctx, req: &Req, payloads: &[Payload]) -> SaFate {
    let found = Collected::from(payloads);
    let (selected, peer_id) = authenticate(sa, ctx.configs, &found);
    let (cfg, failure) = match selected {
        Selected::Conn(c) => (c.clone(), None),
        Selected::AlgsNotAllowed(c) => {
            let algs = sa.algs.map(|a| a.describe()).unwrap_or_default();
            let f = AuthFailure::IkeAlgsNotAllowed {
                conn: c.name.clone(),
                algs,
            };
            (c.clone(), Some(f))
        }
        Selected::None => {
            let f = AuthFailure::NoMatchingPsk {
                peer_id: peer_id.clone(),
                peer: sa.remote,
            };
            (sa.cfg.clone(), Some(f))
        }
    };
    if let Some(failure) = failure {
        ctx.out.stats.auth_failures += 1;
        warn!(conn = %cfg.name, "{failure}; answering AUTHENTICATION_FAILED");
        ctx.failed(&cfg.name, Failure::AuthFailed(failure));
        message::respond_notify(sa, ctx, req, n::AUTHENTICATION_FAILED, vec![]);
        return SaFate::Gone;
    }
    if cfg.name != sa.cfg.name {
        ctx.reg.rename(sa.our_spi(), &cfg.name);
    }
    sa.cfg = cfg;
    sa.peer_id = peer_id;
    if codec::find_notify(payloads, n::INITIAL_CONTACT).is_some() {
        ctx.out.requests.push(Request::DropStale {
            conn: sa.cfg.name.clone(),
            peer: sa.remote.ip(),
            peer_id: sa.peer_id.clone(),
            keep: sa.our_spi(),
        });
    }
    let our_id = &sa.cfg.local_id;
    let body = id_body(our_id.id_type(), &our_id.data());
    let Some(our_auth) = sa.psk_auth(&sa.cfg.psk, false, &body) else {
        return SaFate::Gone;
    };
    let mut resp = vec![
        Payload::IdR {
            id_type: our_id.id_type(),
            data: our_id.data(),
        },
        Payload::Auth {
            method: codec::AUTH_PSK,
            data: our_auth.to_vec(),
        },
    ];
    sa.in_flight = None;
    established(sa, ctx);
    if let (Some(props), Some(tsi), Some(tsr)) = (found.sa, &found.tsi, &found.tsr) {
        let offered = child_sa::Offered {
            props,
            tsi,
            tsr,
            ke_group: None,
        };
        match child_sa::negotiate(sa, ctx, &offered, false, None) {
            Ok(choice) => {
                let spi_in = ctx.new_child_spi(sa);
                resp.extend(child_sa::reply_payloads(&choice, spi_in));
                message::respond(sa, ctx, req, &resp);
                let (ni, nr) = (sa.nonce_i.clone(), sa.nonce_r.clone());
                let keying = child_sa::Keying {
                    shared: None,
                    ni: &ni,
                    nr: &nr,
                };
                child_sa::install(sa, ctx, choice.into_new(spi_in, false, None), &keying);
                return SaFate::Keep;
            }
            Err(e) => {
                resp.push(Payload::notify(e.notify(), vec![]));
                ctx.failed(&sa.cfg.name, e.into());
            }
        }
    }
    message::respond(sa, ctx, req, &resp);
    SaFate::Keep
}
