//! The IKE responder load generator (issue 11): shared by `benches/ike_load.rs` (the
//! measurement) and `tests/ike_load.rs` (the same generator at small scale, in CI). Both
//! include this folder with `#[path]` and provide `crate::common` (tests/common/mod.rs).
//!
//! - `udp`: a socket that sends from and receives for a whole address range (IP_PKTINFO).
//! - `fleet`: the legitimate initiators, ipsecgw's own `ike::Engine` over real UDP.
//! - `flood`: spoofed IKE_SA_INIT requests on a raw socket, and what came back to them.
//! - `responder`: the responder under test (ipsecgw or charon), its CPU time and memory.
//! - `run`: one measured run.
#![allow(dead_code)]

pub mod fleet;
pub mod flood;
pub mod responder;
pub mod run;
pub mod udp;
