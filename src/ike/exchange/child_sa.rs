//! CHILD SA negotiation, shared by IKE_AUTH and CREATE_CHILD_SA: the initiator's offer and
//! its check of the answer, the responder's choice of configuration, proposal and narrowed
//! selectors (RFC 7296 2.9), and the keying and installation of the result (2.17).

use super::{ts_list, Collected};
use crate::crypto::DhPrivate;
use crate::ike::codec::{self, notify as n, Payload};
use crate::ike::ctx::Ctx;
use crate::ike::event::{ChildSa, Event};
use crate::ike::keys;
use crate::ike::reason::ProposalMismatch;
use crate::ike::reason::{ExchangeKind, Failure, NegotiationError, ProposalKind};
use crate::ike::sa::{Child, ChildState, IkeSa, Task, UsageLimits};
use crate::ike::select::{self, EspAlgs};
use crate::ike::{ChildConfig, TrafficSelector};
use tracing::{info, warn};

/// The most selectors a CHILD SA holds per side. Narrowing N offered selectors against M
/// configured ones can yield up to N*M (a TS payload can only say 255), and the data plane
/// checks every packet against the list: a responder narrows further, to the first
/// `MAX_TS_PER_CHILD` (RFC 7296 2.9 lets it), and an initiator refuses an answer with more.
pub const MAX_TS_PER_CHILD: usize = 64;

/// A CHILD SA we offered, remembered until the answer.
pub(crate) struct Offer {
    pub name: String,
    pub spi_in: u32,
    /// CREATE_CHILD_SA only: our nonce (IKE_AUTH uses the IKE SA's) and PFS key.
    pub nonce: Option<Vec<u8>>,
    pub dh: Option<DhPrivate>,
    /// The SA this one rekeys (its inbound SPI).
    pub rekey_of: Option<u32>,
}

impl Offer {
    pub fn new(cfg: &ChildConfig, spi_in: u32) -> Offer {
        Offer {
            name: cfg.name.clone(),
            spi_in,
            nonce: None,
            dh: None,
            rekey_of: None,
        }
    }

    fn exchange(&self) -> ExchangeKind {
        match (&self.nonce, self.rekey_of) {
            (None, _) => ExchangeKind::IkeAuth,
            (Some(_), Some(_)) => ExchangeKind::RekeyChild,
            (Some(_), None) => ExchangeKind::CreateChild,
        }
    }
}

/// The configured selectors of a child (local, remote).
pub(crate) fn configured_ts(c: &ChildConfig) -> (Vec<TrafficSelector>, Vec<TrafficSelector>) {
    let ts = |p: &[crate::prefix::IpPrefix]| p.iter().map(TrafficSelector::from_prefix).collect();
    (ts(&c.local_ts), ts(&c.remote_ts))
}

/// Our SA payload: every configured ESP proposal, with DH groups in CREATE_CHILD_SA.
pub(crate) fn sa_payload(c: &ChildConfig, spi_in: u32, with_dh: bool) -> Payload {
    Payload::Sa(select::esp_to_wire(&c.proposals, spi_in, with_dh))
}

/// TSi and TSr, from the sender's point of view of "local" and "remote".
pub(crate) fn ts_payloads(local: &[TrafficSelector], remote: &[TrafficSelector]) -> [Payload; 2] {
    [
        Payload::TsI(select::ts_to_wire(local)),
        Payload::TsR(select::ts_to_wire(remote)),
    ]
}

fn describe_ts(c: &ChildConfig) -> String {
    let (l, r) = configured_ts(c);
    format!("{} === {}", ts_list(&l), ts_list(&r))
}

/// Initiator: checks the responder's answer to `offer` and installs the CHILD SA. Returns
/// its inbound SPI, or None (error notify, or an answer we cannot accept).
pub(crate) fn accept(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    payloads: &[Payload],
    offer: Offer,
) -> Option<u32> {
    let name = &offer.name;
    let ccfg = sa.cfg.children.iter().find(|c| &c.name == name).cloned()?;
    let with_dh = offer.nonce.is_some();
    if let Some(e) = codec::first_error_notify(payloads) {
        let failure = match e.ntype {
            n::NO_PROPOSAL_CHOSEN => {
                ctx.out.stats.no_proposal += 1;
                Failure::NoProposalChosen(ProposalMismatch {
                    kind: ProposalKind::Esp,
                    ours: select::describe(&select::esp_to_wire(
                        &ccfg.proposals,
                        offer.spi_in,
                        with_dh,
                    )),
                    theirs: None,
                })
            }
            n::TS_UNACCEPTABLE => {
                ctx.out.stats.ts_unacceptable += 1;
                Failure::TsUnacceptable {
                    ours: describe_ts(&ccfg),
                    theirs: None,
                }
            }
            t => Failure::PeerError {
                exchange: offer.exchange(),
                notify: t,
            },
        };
        warn!(conn = %sa.cfg.name, "CHILD_SA {name} not established: {failure}");
        ctx.failed(&sa.cfg.name, failure);
        return None;
    }
    let found = Collected::from(payloads);
    let chosen = match found.sa {
        Some([one]) => select::esp_from_chosen(&ccfg.proposals, one, offer.dh.is_some()),
        _ => None,
    };
    let (ours_l, ours_r) = configured_ts(&ccfg);
    let local_ts = found
        .tsi
        .map(|t| clip_answer(&t, &ours_l))
        .unwrap_or_default();
    let remote_ts = found
        .tsr
        .map(|t| clip_answer(&t, &ours_r))
        .unwrap_or_default();
    let Some((spi_out, algs)) = chosen else {
        warn!(conn = %sa.cfg.name, "CHILD_SA {name}: peer chose an ESP proposal we did not offer");
        return None;
    };
    if local_ts.is_empty() || remote_ts.is_empty() {
        warn!(conn = %sa.cfg.name, "CHILD_SA {name}: peer's traffic selectors are outside ours");
        sa.tasks.push_front(Task::DeleteChild(offer.spi_in));
    } else if local_ts.len().max(remote_ts.len()) > MAX_TS_PER_CHILD {
        ctx.out.stats.ts_over_limit += 1;
        warn!(conn = %sa.cfg.name, "CHILD_SA {name}: peer's answer narrows to {} === {} selectors, more than the {MAX_TS_PER_CHILD} a CHILD_SA may hold; deleting it", local_ts.len(), remote_ts.len());
        sa.tasks.push_front(Task::DeleteChild(offer.spi_in));
    }
    let (ni, nr): (Vec<u8>, Vec<u8>) = match (&offer.nonce, found.nonce) {
        (Some(ni), Some(nr)) => (ni.clone(), nr.to_vec()),
        (None, _) => (sa.nonce_i.clone(), sa.nonce_r.clone()),
        (Some(_), None) => {
            warn!(conn = %sa.cfg.name, "CHILD_SA {name}: response without nonce");
            return None;
        }
    };
    let shared = match (&offer.dh, found.ke) {
        (None, _) => None,
        (Some(d), Some((g, data)))
            if g == d.group().transform_id() && algs.dh == Some(d.group()) =>
        {
            match d.shared_secret(data) {
                Ok(s) => Some(s),
                Err(e) => {
                    warn!(conn = %sa.cfg.name, "CHILD_SA {name}: bad KE: {e}");
                    return None;
                }
            }
        }
        _ => {
            warn!(conn = %sa.cfg.name, "CHILD_SA {name}: response lacks the PFS KE payload");
            return None;
        }
    };
    let choice = Choice {
        cfg: ccfg,
        spi_out,
        algs,
        local_ts,
        remote_ts,
        num: 0,
    };
    let keying = Keying {
        shared: shared.as_deref().map(|s| &s[..]),
        ni: &ni,
        nr: &nr,
    };
    let spi_in = offer.spi_in;
    install(
        sa,
        ctx,
        choice.into_new(spi_in, true, offer.rekey_of),
        &keying,
    );
    Some(spi_in)
}

/// Initiator: the responder's (narrowed) selectors, each kept as it is when one of ours
/// covers it and clipped to ours otherwise. Unlike narrowing ours against the answer, this
/// never yields more selectors than the answer has, nor ones the responder did not install.
fn clip_answer(answer: &[TrafficSelector], ours: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = Vec::new();
    for a in answer {
        let clipped: Vec<TrafficSelector> =
            if ours.iter().any(|o| o.intersect(a).as_ref() == Some(a)) {
                vec![a.clone()]
            } else {
                ours.iter().filter_map(|o| o.intersect(a)).collect()
            };
        for c in clipped {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out
}

/// What the initiator proposed, as the responder reads it.
pub(crate) struct Offered<'a> {
    pub props: &'a [codec::Proposal],
    pub tsi: &'a [TrafficSelector],
    pub tsr: &'a [TrafficSelector],
    /// Group of the KE payload (CREATE_CHILD_SA with PFS).
    pub ke_group: Option<u16>,
}

/// A negotiated CHILD SA before keying: its configuration, the peer's SPI, the algorithms,
/// the narrowed selectors, and (responder) the number of the peer's proposal chosen.
pub(crate) struct Choice {
    pub cfg: ChildConfig,
    pub spi_out: u32,
    pub algs: EspAlgs,
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
    num: u8,
}

impl Choice {
    pub fn into_new(self, spi_in: u32, we_initiated: bool, rekey_of: Option<u32>) -> NewChild {
        NewChild {
            choice: self,
            spi_in,
            we_initiated,
            rekey_of,
        }
    }
}

/// Responder: picks the child configuration (only `only` when rekeying), the proposal and
/// the narrowed selectors for a request. `with_dh`: CREATE_CHILD_SA (PFS groups count).
pub(crate) fn negotiate(
    sa: &IkeSa,
    ctx: &mut Ctx,
    offered: &Offered<'_>,
    with_dh: bool,
    only: Option<&str>,
) -> Result<Choice, NegotiationError> {
    let mut proposal_matched = false;
    for c in sa
        .cfg
        .children
        .iter()
        .filter(|c| only.is_none_or(|o| o == c.name))
    {
        let Some((rp, algs)) =
            select::select_esp(&c.proposals, offered.props, with_dh, offered.ke_group)
        else {
            continue;
        };
        proposal_matched = true;
        let (ours_l, ours_r) = configured_ts(c);
        let mut remote_ts = select::narrow(offered.tsi, &ours_r);
        let mut local_ts = select::narrow(offered.tsr, &ours_l);
        if remote_ts.is_empty() || local_ts.is_empty() {
            continue;
        }
        if remote_ts.len().max(local_ts.len()) > MAX_TS_PER_CHILD {
            ctx.out.stats.ts_over_limit += 1;
            warn!(conn = %sa.cfg.name, "CHILD_SA {}: the peer's selectors narrow to {} === {}, keeping the first {MAX_TS_PER_CHILD} of each side", c.name, local_ts.len(), remote_ts.len());
            remote_ts.truncate(MAX_TS_PER_CHILD);
            local_ts.truncate(MAX_TS_PER_CHILD);
        }
        let spi: [u8; 4] = rp.spi.as_slice().try_into().unwrap_or([0; 4]);
        return Ok(Choice {
            cfg: c.clone(),
            spi_out: u32::from_be_bytes(spi),
            algs,
            local_ts,
            remote_ts,
            num: rp.num,
        });
    }
    let err = if proposal_matched {
        ctx.out.stats.ts_unacceptable += 1;
        let configured: Vec<String> = sa.cfg.children.iter().map(describe_ts).collect();
        NegotiationError::TsUnacceptable {
            received: format!("{} === {}", ts_list(offered.tsr), ts_list(offered.tsi)),
            configured: configured.join(", "),
        }
    } else {
        ctx.out.stats.no_proposal += 1;
        let configured: Vec<String> = sa
            .cfg
            .children
            .iter()
            .map(|c| select::describe(&select::esp_to_wire(&c.proposals, 0, with_dh)))
            .collect();
        NegotiationError::NoProposal(ProposalMismatch {
            kind: ProposalKind::Esp,
            ours: configured.join(", "),
            theirs: Some(select::describe(offered.props)),
        })
    };
    warn!(conn = %sa.cfg.name, "{err}");
    Err(err)
}

/// Responder: the SA payload answering the offer with our SPI.
pub(crate) fn reply_sa(choice: &Choice, spi_in: u32) -> Payload {
    Payload::Sa(vec![select::esp_reply(choice.num, &choice.algs, spi_in)])
}

/// Responder: TSi and TSr of the answer (narrowed; TSi is the initiator's side).
pub(crate) fn reply_ts(choice: &Choice) -> [Payload; 2] {
    ts_payloads(&choice.remote_ts, &choice.local_ts)
}

/// Responder in IKE_AUTH: SA, TSi, TSr.
pub(crate) fn reply_payloads(choice: &Choice, spi_in: u32) -> [Payload; 3] {
    let [tsi, tsr] = reply_ts(choice);
    [reply_sa(choice, spi_in), tsi, tsr]
}

/// The nonces and PFS secret a CHILD SA's keys come from.
pub(crate) struct Keying<'a> {
    pub shared: Option<&'a [u8]>,
    pub ni: &'a [u8],
    pub nr: &'a [u8],
}

/// A negotiated CHILD SA ready for keying.
pub(crate) struct NewChild {
    choice: Choice,
    pub spi_in: u32,
    /// We initiated the exchange that created it (orients the keys).
    we_initiated: bool,
    rekey_of: Option<u32>,
}

/// Keys the CHILD SA, adds it to `sa` and emits ChildUp with keys oriented for our side.
pub(crate) fn install(sa: &mut IkeSa, ctx: &mut Ctx, new: NewChild, keying: &Keying<'_>) {
    let (Some(ike_algs), Some(k)) = (sa.algs, &sa.keys) else {
        return;
    };
    let NewChild {
        choice,
        spi_in,
        we_initiated,
        rekey_of,
    } = new;
    let Choice {
        cfg: ccfg,
        spi_out,
        algs,
        local_ts,
        remote_ts,
        ..
    } = choice;
    let ck = keys::child_keys(
        ike_algs.prf,
        &k.sk_d,
        keying.shared,
        keying.ni,
        keying.nr,
        algs.encr,
        algs.integ,
    );
    let (ek_out, ik_out, ek_in, ik_in) = if we_initiated {
        (ck.encr_i2r, ck.integ_i2r, ck.encr_r2i, ck.integ_r2i)
    } else {
        (ck.encr_r2i, ck.integ_r2i, ck.encr_i2r, ck.integ_i2r)
    };
    let rekey_at = ctx.jittered_by(ccfg.rekey_time, ccfg.limits.rand_time);
    let l = ccfg.limits;
    let usage = UsageLimits {
        rekey_bytes: ctx.jittered_limit(l.rekey_bytes, l.life_bytes),
        rekey_packets: ctx.jittered_limit(l.rekey_packets, l.life_packets),
        life_bytes: l.life_bytes,
        life_packets: l.life_packets,
        ..UsageLimits::default()
    };
    info!(
        conn = %sa.cfg.name,
        "CHILD_SA {}{{{:08x}_i {:08x}_o}} {} with {}, {} === {}{}",
        ccfg.name,
        spi_in,
        spi_out,
        if rekey_of.is_some() { "rekeyed" } else { "established" },
        algs.describe(),
        ts_list(&local_ts),
        ts_list(&remote_ts),
        if sa.udp_encap { ", UDP-encapsulated" } else { "" }
    );
    if rekey_of.is_some() {
        ctx.out.stats.child_rekeyed += 1;
    } else {
        ctx.out.stats.child_established += 1;
    }
    ctx.reg.child_added(spi_in, sa.our_spi());
    ctx.out.events.push_back(Event::ChildUp(ChildSa {
        conn: sa.cfg.name.clone(),
        child: ccfg.name.clone(),
        spi_in,
        spi_out,
        encr: algs.encr,
        integ: algs.integ,
        esn: algs.esn,
        dh: algs.dh,
        encr_key_in: ek_in,
        integ_key_in: ik_in,
        encr_key_out: ek_out,
        integ_key_out: ik_out,
        local_ts: local_ts.clone(),
        remote_ts: remote_ts.clone(),
        local: sa.local,
        remote: sa.remote,
        udp_encap: sa.udp_encap,
        replay_window: ccfg.replay_window,
        rekey_of,
    }));
    // Exact sizes: most SAs keep one child and one selector each way for their lifetime
    // (a first push would reserve room for four).
    sa.children.reserve_exact(1);
    let (mut local_ts, mut remote_ts) = (local_ts, remote_ts);
    local_ts.shrink_to_fit();
    remote_ts.shrink_to_fit();
    sa.children.push(Child {
        name: ccfg.name,
        spi_in,
        spi_out,
        algs,
        local_ts,
        remote_ts,
        installed_at: ctx.now,
        rekey_at,
        state: ChildState::Installed,
        udp_encap: sa.udp_encap,
        last_activity: None,
        peer_rekeyed: None,
        expire_at: None,
        usage,
    });
}
