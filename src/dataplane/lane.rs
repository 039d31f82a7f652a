//! Order per packet source. A source (a TUN device, a socket) is read by one worker at a
//! time, but the batches it yields are encrypted or decrypted by whichever workers took
//! them, in parallel. Each batch takes a ticket while its worker still owns the source; the
//! writes then happen in ticket order, so packets leave in the order they came in (TCP sees
//! no reordering) while the crypto of one busy tunnel spreads over every worker.

use std::sync::{Condvar, Mutex};

#[derive(Default)]
pub(super) struct Lane {
    /// Next ticket to hand out (taken while the source is owned: in read order).
    next: Mutex<u64>,
    /// Ticket whose turn it is to write.
    turn: Mutex<u64>,
    cv: Condvar,
}

impl Lane {
    /// Takes the next ticket. Call only while owning the source.
    pub fn ticket(&self) -> Ticket<'_> {
        let mut n = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let t = *n;
        *n += 1;
        Ticket {
            lane: self,
            t,
            waited: false,
        }
    }
}

/// A place in a lane's write order. Dropping it (also while unwinding) waits for its turn and
/// passes the turn on, so a failed batch never blocks the ones behind it.
pub(super) struct Ticket<'l> {
    lane: &'l Lane,
    t: u64,
    waited: bool,
}

impl Ticket<'_> {
    /// Blocks until every earlier ticket of the lane has written.
    pub fn wait_turn(&mut self) {
        if self.waited {
            return;
        }
        let mut turn = self.lane.turn.lock().unwrap_or_else(|e| e.into_inner());
        while *turn != self.t {
            turn = self.lane.cv.wait(turn).unwrap_or_else(|e| e.into_inner());
        }
        self.waited = true;
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.wait_turn();
        let mut turn = self.lane.turn.lock().unwrap_or_else(|e| e.into_inner());
        *turn = self.t + 1;
        drop(turn);
        self.lane.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn writes_happen_in_ticket_order_whatever_the_finishing_order() {
        let lane = Arc::new(Lane::default());
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for i in 0..8u64 {
            // tickets in order 0..8, taken one after another like reads of a source
            let t = lane.ticket();
            assert_eq!(t.t, i);
            std::mem::forget(t);
        }
        for i in (0..8u64).rev() {
            let (lane, log) = (lane.clone(), log.clone());
            handles.push(std::thread::spawn(move || {
                let mut t = Ticket {
                    lane: &lane,
                    t: i,
                    waited: false,
                };
                std::thread::sleep(std::time::Duration::from_millis(5 * (8 - i)));
                t.wait_turn();
                log.lock().unwrap().push(i);
            }));
        }
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(*log.lock().unwrap(), (0..8).collect::<Vec<_>>());
    }
}
