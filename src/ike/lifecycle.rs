//! The life of an IKE SA outside any one exchange: coming up, failing, timers (half-open
//! and replaced SAs expiring, retransmissions, rekey times, DPD), a dead peer, and deletion
//! on the operator's word.

use super::ctx::{later, Ctx};
use super::exchange::{informational, SaFate};
use super::message::{self, InFlight, Retransmit};
use super::reason::{ChildDownReason, DownReason, ExchangeKind, Failure};
use super::sa::{queue_rekey, ChildState, IkeSa, IkeState, Task};
use super::{DpdAction, StartAction};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Pause before re-initiating after authentication/proposal failures (start_action=start).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// IKE_AUTH completed (either role).
pub(crate) fn established(sa: &mut IkeSa, ctx: &mut Ctx) {
    sa.state = IkeState::Established;
    sa.established_at = Some(ctx.now);
    sa.expire_at = None;
    sa.last_inbound = ctx.now;
    sa.rekey_at = ctx.jittered(sa.cfg.rekey_time);
    ctx.out.stats.ike_established += 1;
    ctx.ike_up(sa);
}

/// An initiator SA that failed before or while establishing: reported, and retried later
/// when the connection is to be kept up.
pub(crate) fn fail_initiator(sa: &mut IkeSa, ctx: &mut Ctx, failure: Failure) -> SaFate {
    warn!(conn = %sa.cfg.name, "initiating IKE_SA {} failed: {}", sa.cfg.name, failure);
    ctx.failed(&sa.cfg.name, failure.clone());
    ctx.all_down(sa, failure.into());
    if sa.cfg.start_action == StartAction::Start {
        let at = ctx.now + RETRY_AFTER_FAILURE;
        ctx.restart(&sa.cfg.name, at);
    }
    SaFate::Gone
}

/// Our request went unanswered through every retransmission.
fn peer_dead(sa: &mut IkeSa, ctx: &mut Ctx, request: InFlight) -> SaFate {
    match sa.state {
        IkeState::Deleting => return SaFate::Gone,
        IkeState::Rekeyed => {
            ctx.replaced_down(sa);
            return SaFate::Gone;
        }
        _ => {}
    }
    ctx.out.stats.peers_dead += 1;
    let exchange = request.kind();
    let failure = Failure::PeerNotResponding {
        peer: sa.remote,
        exchange,
        retransmits: sa.cfg.retransmit.tries,
    };
    warn!(conn = %sa.cfg.name, "{failure}");
    let established = sa.established_at.is_some();
    ctx.failed(&sa.cfg.name, failure.clone());
    ctx.all_down(sa, failure.into());
    let restart = if exchange == ExchangeKind::Dpd {
        sa.cfg.dpd_action == DpdAction::Restart
    } else {
        sa.cfg.start_action == StartAction::Start
            || (established && sa.cfg.dpd_action == DpdAction::Restart)
    };
    if restart {
        let at = later(ctx.now, sa.cfg.retransmit.timeout);
        ctx.restart(&sa.cfg.name, at);
    }
    SaFate::Gone
}

/// The earliest time something is due on `sa`; `on_timers` acts on exactly these.
pub(crate) fn deadline(sa: &IkeSa) -> Option<Instant> {
    let mut t: Option<Instant> = None;
    let mut add = |x: Option<Instant>| {
        if let Some(x) = x {
            t = Some(t.map_or(x, |t| t.min(x)));
        }
    };
    add(sa.expire_at);
    add(sa.in_flight.as_ref().map(|p| p.next_at));
    add(sa.frags.deadline());
    if sa.state == IkeState::Established {
        add(sa.rekey_at);
        for c in &sa.children {
            add(c.rekey_at);
            add(c.expire_at);
        }
        if let Some(dpd) = dpd_at(sa) {
            add(Some(dpd));
        }
    }
    t
}

/// When DPD is due: the window is idle and nothing came from the peer for dpd_delay.
fn dpd_at(sa: &IkeSa) -> Option<Instant> {
    let idle = sa.in_flight.is_none() && sa.tasks.is_empty();
    (!sa.cfg.dpd_delay.is_zero() && idle).then(|| later(sa.last_alive(), sa.cfg.dpd_delay))
}

/// Runs what is due on `sa` at `ctx.now`.
pub(crate) fn on_timers(sa: &mut IkeSa, ctx: &mut Ctx) -> SaFate {
    let now = ctx.now;
    if sa.expire_at.is_some_and(|t| t <= now) {
        match sa.state {
            IkeState::InitReplied => {
                debug!(
                    "half-open IKE_SA {:016x} from {} expired",
                    sa.spi_r, sa.remote
                );
                return SaFate::Gone;
            }
            IkeState::Rekeyed => {
                ctx.replaced_down(sa);
                return SaFate::Gone;
            }
            _ => sa.expire_at = None,
        }
    }
    ctx.out.stats.fragments_dropped += sa.frags.expire(now);
    match message::retransmit(sa, ctx) {
        Retransmit::Exhausted(request) => return peer_dead(sa, ctx, *request),
        Retransmit::Idle | Retransmit::Sent => {}
    }
    if sa.state != IkeState::Established {
        return SaFate::Keep;
    }
    if sa.rekey_at.is_some_and(|t| t <= now) {
        sa.rekey_at = None;
        queue_rekey(&mut sa.tasks, Task::RekeyIke(None));
    }
    let mut expired = Vec::new();
    for c in sa.children.iter_mut() {
        if c.rekey_at.is_some_and(|t| t <= now) {
            c.rekey_at = None;
            if c.state == ChildState::Installed {
                queue_rekey(&mut sa.tasks, Task::RekeyChild(c.spi_in, None));
            }
        }
        if c.expire_at.is_some_and(|t| t <= now) {
            expired.push(c.spi_in);
        }
    }
    for spi in expired {
        ctx.remove_child(sa, spi, ChildDownReason::Rekeyed);
    }
    if dpd_at(sa).is_some_and(|t| t <= now) {
        sa.tasks.push_back(Task::Dpd);
    }
    SaFate::Keep
}

/// The data plane's count of what CHILD SA `spi_in` carried (the busier direction):
/// past its soft limit it is rekeyed (once), past its hard limit deleted.
pub(crate) fn on_usage(
    sa: &mut IkeSa,
    ctx: &mut Ctx,
    spi_in: u32,
    (bytes, packets): (u64, u64),
) -> SaFate {
    if sa.state != IkeState::Established {
        return SaFate::Keep;
    }
    let conn = sa.cfg.name.clone();
    let Some(c) = sa.child_by_in_mut(spi_in) else {
        return SaFate::Keep;
    };
    let over = |used: u64, limit: u64| limit != 0 && used >= limit;
    let u = &mut c.usage;
    let live = matches!(c.state, ChildState::Installed | ChildState::Rekeying);
    if live && (over(bytes, u.life_bytes) || over(packets, u.life_packets)) {
        // Out of service now (the data plane drops it with the ChildDown); the peer hears
        // of it as soon as the window is free.
        info!(conn, "CHILD_SA {}{{{:08x}_i}} reached its hard lifetime ({bytes} bytes, {packets} packets), deleting it", c.name, spi_in);
        ctx.out.stats.child_expired += 1;
        ctx.remove_child(sa, spi_in, ChildDownReason::LifetimeExpired);
        sa.tasks.push_front(Task::DeleteExpired(spi_in));
        return SaFate::Keep;
    }
    let soft = over(bytes, u.rekey_bytes) || over(packets, u.rekey_packets);
    if c.state == ChildState::Installed && !u.rekey_started && soft {
        u.rekey_started = true;
        info!(conn, "CHILD_SA {}{{{:08x}_i}} reached its rekey volume ({bytes} bytes, {packets} packets), rekeying", c.name, spi_in);
        queue_rekey(&mut sa.tasks, Task::RekeyChild(spi_in, None));
    }
    SaFate::Keep
}

/// Deletes the SA on our side: down events now, a Delete to the peer if it was ever up
/// (after the request in flight, if any).
pub(crate) fn terminate(sa: &mut IkeSa, ctx: &mut Ctx, reason: DownReason) -> SaFate {
    match sa.state {
        IkeState::Established | IkeState::AuthSent | IkeState::Rekeyed => {
            if sa.state == IkeState::Rekeyed {
                ctx.replaced_down(sa);
            } else {
                ctx.all_down(sa, reason);
            }
            sa.tasks.clear();
            sa.state = IkeState::Deleting;
            // With a request in flight the window is full: the Delete follows its
            // response (or the SA dies with its retransmissions).
            if sa.in_flight.is_none() {
                informational::start_delete_ike(sa, ctx);
            }
            SaFate::Keep
        }
        IkeState::InitSent => {
            ctx.ike_down(sa, reason);
            SaFate::Gone
        }
        IkeState::InitReplied => SaFate::Gone,
        IkeState::Deleting => SaFate::Keep,
    }
}
