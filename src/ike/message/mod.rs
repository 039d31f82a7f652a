//! The message layer, between the exchanges and the wire. Outbound: header, SK protection,
//! the one request in flight with its retransmissions (`send`), and the cache of our last
//! response (`cache`). Inbound: SPI/role checks are the engine's; here the message is
//! verified, decrypted, matched to its message ID and handed up as a fresh request or the
//! response to our request (`receive`). Nothing unverified gets past `receive`: it never
//! answers, never refreshes liveness and never moves the SA.
//!
//! IKE fragmentation (RFC 7383) belongs here: split after `send::protect`, reassemble before
//! `receive::verify`, and keep the fragments of the request in flight and of the cached
//! response for retransmission.

mod cache;
mod receive;
mod send;

pub(crate) use cache::ResponseCache;
pub(crate) use receive::{receive, retransmitted_init, Inbound, Req};
pub(crate) use send::{reply_plain, respond, respond_notify, retransmit, send_request, Retransmit};

use super::exchange::Pending;
use super::reason::ExchangeKind;
use std::time::Instant;

/// Our request waiting for its response: the bytes as sent, the retransmission state, and
/// the state of the exchange that sent it.
pub(crate) struct InFlight {
    pub msg_id: u32,
    pub data: Vec<u8>,
    pub retransmits: u32,
    pub next_at: Instant,
    pub exchange: Pending,
}

impl InFlight {
    pub fn kind(&self) -> ExchangeKind {
        self.exchange.kind()
    }

    /// The inbound SPI a CREATE_CHILD_SA in flight has offered.
    pub fn child_spi(&self) -> Option<u32> {
        match &self.exchange {
            Pending::Child(c) => Some(c.offer.spi_in),
            Pending::Auth(a) => a.offer.as_ref().map(|o| o.spi_in),
            _ => None,
        }
    }
}
