//! Deterministic simulations of two IKE engines talking to each other in memory, with
//! simulated time and seeded randomness.
//!
//! - `harness`: the simulator (immediate delivery, drop/duplicate filters), configs, assertions;
//! - `establishment`: handshakes that succeed (suites, COOKIE, INVALID_KE, selectors, IPv6);
//! - `negotiation_failures`: wrong PSK or identity, no proposal, unacceptable selectors;
//! - `retransmission`: lost and duplicated datagrams, retransmit timing, giving up;
//! - `rekey`: CHILD and IKE SA rekeying, by request, by timer and simultaneous;
//! - `lifecycle`: DPD, deletes, terminate_all, reloads, re-initiation, INITIAL_CONTACT;
//! - `nat`: NAT-T encapsulation, NAT detection, peer address moves;
//! - `hostile_input`: garbage, spoofed and malformed datagrams, absurd settings.

mod establishment;
mod harness;
mod hostile_input;
mod lifecycle;
mod nat;
mod negotiation_failures;
#[path = "../netsim/mod.rs"]
mod netsim;
mod rekey;
mod retransmission;
