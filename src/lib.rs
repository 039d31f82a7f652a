//! ipsecgw: a userspace IKEv2/IPsec site-to-site VPN gateway with a built-in eBGP speaker.
//!
//! Layout: the protocol cores (`ike`, `esp`, `bgp`) are sans-IO state machines that take
//! bytes and the current time and return bytes to send, timers and events. `crypto` holds the
//! transforms behind small traits, `wire` the bounded byte reader and checked writer of the
//! IKE and BGP codecs. Everything that does I/O lives in `daemon` (tokio control
//! plane), `dataplane` (packet threads) and `routing` (netlink).

pub mod bgp;
pub mod config;
pub mod control;
pub mod crypto;
pub mod daemon;
pub mod dataplane;
pub mod demo;
pub mod esp;
pub mod ike;
pub mod prefix;
pub mod routing;
pub mod wire;
