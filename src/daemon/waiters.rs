//! `initiate`/`terminate`/`rekey` that wait for their outcome (like `swanctl --initiate`):
//! each waiter streams what happens on its connection (requests sent, retransmits, SAs up
//! and down) and is answered when the goal is reached, when the attempt fails, or at its
//! deadline.

use crate::control::{ActionResult, Progress, Response};
use crate::ike::{self, ChildState, ConnState, ExchangeKind};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// What the operator asked for, with what it looked like when asked.
pub(super) enum Goal {
    /// The IKE SA established and every configured CHILD SA installed.
    Up { children: usize },
    /// No IKE SA left.
    Down,
    /// A new IKE SA (other SPIs) established.
    IkeRekeyed { old_spi_i: u64 },
    /// None of these inbound SPIs left, and CHILD SAs installed again.
    ChildRekeyed { old: Vec<u32> },
}

pub(super) struct Waiter {
    conn: String,
    goal: Goal,
    started: Instant,
    deadline: Instant,
    progress: Progress,
    reply: oneshot::Sender<Response>,
    /// The request in flight last reported, to say only what changed.
    seen: Option<(ExchangeKind, u32)>,
    /// The configured peer, for lines before the IKE SA knows its address.
    peer: Option<String>,
}

#[derive(Default)]
pub(super) struct Waiters {
    list: Vec<Waiter>,
}

impl Waiters {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        conn: &str,
        peer: Option<String>,
        goal: Goal,
        now: Instant,
        wait: Duration,
        progress: Progress,
        reply: oneshot::Sender<Response>,
    ) {
        self.list.push(Waiter {
            peer,
            conn: conn.to_string(),
            goal,
            started: now,
            deadline: now + wait,
            progress,
            reply,
            seen: None,
        });
    }

    /// A line about `conn` for everyone waiting on it.
    pub fn say(&mut self, conn: &str, line: &str) {
        for w in self.list.iter().filter(|w| w.conn == conn) {
            let _ = w.progress.send(line.to_string());
        }
    }

    /// An SA of `conn` went down because it failed: waiters for it going up give up.
    pub fn failed(&mut self, conn: &str, failure: &ike::Failure) {
        self.list.retain_mut(|w| {
            if w.conn != conn || !matches!(w.goal, Goal::Up { .. } | Goal::IkeRekeyed { .. }) {
                return true;
            }
            finish(w, Err(failure.to_string()));
            false
        });
    }

    /// Reports requests sent and retransmitted, answers waiters whose goal is reached or
    /// whose deadline passed. `status` is the engine's, of every connection.
    pub fn check(&mut self, now: Instant, status: &[ike::ConnStatus]) {
        self.list.retain_mut(|w| {
            // A client that went away is not waited for.
            if w.progress.is_closed() || w.reply.is_closed() {
                return false;
            }
            let Some(st) = status.iter().find(|s| s.name == w.conn) else {
                finish(w, Err(format!("connection '{}' was removed", w.conn)));
                return false;
            };
            let now_in_flight = st.in_flight.as_ref().map(|p| (p.exchange, p.retransmits));
            if now_in_flight != w.seen {
                if let Some((exchange, n)) = now_in_flight {
                    let peer = st
                        .ike
                        .as_ref()
                        .map(|i| i.remote.to_string())
                        .or_else(|| w.peer.clone())
                        .map(|p| format!(" to {p}"))
                        .unwrap_or_default();
                    let line = match w.seen {
                        Some((e, _)) if e == exchange && n > 0 => {
                            format!("retransmit {n} of {exchange}{peer}")
                        }
                        _ => format!("sending {exchange}{peer}"),
                    };
                    let _ = w.progress.send(line);
                }
                w.seen = now_in_flight;
            }
            if let Some(done) = reached(&w.goal, st) {
                finish(w, Ok(done));
                return false;
            }
            // A failure after we started (the engine records it even without an IkeDown).
            if let Some(e) = &st.last_error {
                let since_start = now.saturating_duration_since(w.started);
                if e.ago < since_start && matches!(w.goal, Goal::Up { .. }) {
                    finish(w, Err(e.failure.to_string()));
                    return false;
                }
            }
            if now >= w.deadline {
                let secs = w.deadline.saturating_duration_since(w.started).as_secs();
                finish(w, Err(timed_out(secs, st)));
                return false;
            }
            true
        });
    }
}

fn finish(w: &mut Waiter, outcome: Result<String, String>) {
    let (reply, _) = oneshot::channel();
    let reply = std::mem::replace(&mut w.reply, reply);
    let _ = reply.send(match outcome {
        Ok(message) => Response::ok(&ActionResult { message }),
        Err(e) => Response::error(format!("{}: {e}", w.conn)),
    });
}

fn installed(st: &ike::ConnStatus) -> impl Iterator<Item = &ike::ChildStatus> {
    st.children
        .iter()
        .filter(|c| matches!(c.state, ChildState::Installed | ChildState::Rekeying))
}

/// Some(message) once the goal is reached.
fn reached(goal: &Goal, st: &ike::ConnStatus) -> Option<String> {
    match goal {
        Goal::Up { children } => {
            let n = installed(st).count();
            (st.state.is_up() && n >= *children).then(|| {
                let spis = st
                    .ike
                    .as_ref()
                    .map(|i| format!(" (IKE SPIs {:016x}_i {:016x}_r)", i.spi_i, i.spi_r))
                    .unwrap_or_default();
                format!(
                    "connection '{}' established{spis}, {n} CHILD SA(s) installed",
                    st.name
                )
            })
        }
        Goal::Down => {
            (st.state == ConnState::Down).then(|| format!("connection '{}' terminated", st.name))
        }
        Goal::IkeRekeyed { old_spi_i } => st
            .ike
            .as_ref()
            .filter(|i| st.state == ConnState::Established && i.spi_i != *old_spi_i)
            .map(|i| {
                format!(
                    "IKE SA of '{}' rekeyed: new SPIs {:016x}_i {:016x}_r",
                    st.name, i.spi_i, i.spi_r
                )
            }),
        Goal::ChildRekeyed { old } => {
            let now: Vec<u32> = installed(st).map(|c| c.spi_in).collect();
            (!now.is_empty() && !now.iter().any(|s| old.contains(s))).then(|| {
                let list: Vec<String> = now.iter().map(|s| format!("{s:08x}")).collect();
                format!(
                    "CHILD SAs of '{}' rekeyed: new inbound SPIs {}",
                    st.name,
                    list.join(", ")
                )
            })
        }
    }
}

fn timed_out(secs: u64, st: &ike::ConnStatus) -> String {
    let mut text = format!("timed out after {secs}s, connection is {}", st.state);
    if let Some(p) = &st.in_flight {
        let peer = st
            .ike
            .as_ref()
            .map(|i| format!(" from {}", i.remote))
            .unwrap_or_default();
        text += &format!(
            "; no answer{peer} to {} after {} retransmit(s)",
            p.exchange, p.retransmits
        );
    }
    if let Some(e) = &st.last_error {
        text += &format!("; last error: {}", e.failure);
    }
    text
}
