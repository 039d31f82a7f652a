//! The message layer, between the exchanges and the wire. Outbound: header, SK protection,
//! the one request in flight with its retransmissions (`send`), and the cache of our last
//! response (`cache`). Inbound: SPI/role checks are the engine's; here the message is
//! verified, decrypted, matched to its message ID and handed up as a fresh request or the
//! response to our request (`receive`). Nothing unverified gets past `receive`: it never
//! answers, never refreshes liveness and never moves the SA.
//!
//! IKE fragmentation (RFC 7383) lives here (`fragment`): `send::protect` splits, `receive`
//! verifies each fragment and reassembles, and the request in flight and the cached
//! response keep all their fragments for retransmission.

mod cache;
pub(crate) mod fragment;
mod receive;
mod send;

pub(crate) use cache::ResponseCache;
pub(crate) use fragment::Fragments;
pub(crate) use receive::{receive, retransmitted_init, Inbound, Req};
pub(crate) use send::{
    plain_reply, reply_plain, respond, respond_notify, retransmit, send_request, Retransmit,
};

use super::exchange::Pending;
use super::reason::ExchangeKind;
use std::time::Instant;

/// Our request waiting for its response: the datagrams as sent (one, or its fragments), the
/// retransmission state, and the state of the exchange that sent it.
pub(crate) struct InFlight {
    pub msg_id: u32,
    pub datagrams: Vec<Vec<u8>>,
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
