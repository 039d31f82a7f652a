//! A packet worker: takes one ready source at a time from the shared epoll set and runs one
//! batch of it (`tx` for a TUN device, `rx` for a socket). Its buffers are allocated once.

use super::{rx, tx, Shared, IDLE_WAKE, RAW_TOKEN};
use std::sync::atomic::Ordering;

pub(super) struct Worker {
    pub rng: rand::rngs::ThreadRng,
    pub tx: tx::TxBufs,
    pub rx: rx::RxBufs,
}

pub(super) fn run(shared: &Shared) {
    let mut w = Worker {
        rng: rand::thread_rng(),
        tx: tx::TxBufs::new(shared.max_mtu.load(Ordering::Relaxed)),
        rx: rx::RxBufs::new(),
    };
    while !shared.shutdown.load(Ordering::Relaxed) {
        let Some(token) = shared.epoll.wait_one(IDLE_WAKE) else {
            continue;
        };
        if token == RAW_TOKEN {
            rx::raw(shared, &mut w);
        } else if token < RAW_TOKEN {
            rx::udp(shared, &mut w, token as usize);
        } else {
            // A token of a removed tunnel finds nothing and is dropped.
            let tun = shared.snapshot().tuns.get(&token).cloned();
            if let Some(tun) = tun {
                tx::run(shared, &mut w, &tun);
            }
        }
    }
}
