//! ipsecgw: a userspace IKEv2/IPsec site-to-site VPN gateway with a built-in eBGP speaker.
//!
//! Layout: the protocol cores (`ike`, `esp`, `bgp`) are sans-IO state machines that take
//! bytes and the current time and return bytes to send, timers and events. `crypto` holds the
//! transforms behind small traits, `wire` the bounded byte reader and checked writer of the
//! IKE and BGP codecs. Everything that does I/O lives in `daemon` (tokio control
//! plane), `dataplane` (packet threads) and `routing` (netlink).
// rust-version 1.89 (for the AVX-512 intrinsics of the ESP fast path) turned this style
// lint on; the existing `% n == 0` checks read fine as they are.
#![allow(clippy::manual_is_multiple_of)]

pub mod bgp;
pub mod config;
pub mod control;
pub mod crypto;
pub mod daemon;
pub mod dataplane;
pub mod demo;
pub mod esp;
#[doc(hidden)]
pub mod fuzzing;
pub mod ike;
pub mod prefix;
pub mod routing;
pub mod wire;
