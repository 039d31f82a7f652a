//! BGP-4 wire format (RFC 4271) with the extensions the speaker negotiates: capabilities
//! (RFC 5492), 4-octet AS numbers (RFC 6793), multiprotocol NLRI (RFC 4760), route refresh
//! (RFC 2918) and the RFC 7606 split between "reset the session" and "treat as withdraw".
//!
//! Decoding never panics: every length comes from the wire and is checked before use.
//! Errors that require a session reset come back as the [`Notification`] to send.

mod attrs;
mod decode;
mod encode;
mod notification;
#[cfg(test)]
mod tests;
mod types;

pub use decode::{
    decode, decode_notification, decode_open, decode_route_refresh, decode_update, parse_header,
    Header,
};
pub use encode::encode;
pub use notification::Notification;
pub use types::*;

pub const MARKER: [u8; 16] = [0xff; 16];
pub const HEADER_LEN: usize = 19;
pub const MAX_MESSAGE_LEN: usize = 4096;
pub const BGP_VERSION: u8 = 4;
/// Stand-in for a 4-octet AS number in 2-octet fields (RFC 6793).
pub const AS_TRANS: u16 = 23456;

pub const AFI_IPV4: u16 = 1;
pub const AFI_IPV6: u16 = 2;
pub const SAFI_UNICAST: u8 = 1;

pub const TYPE_OPEN: u8 = 1;
pub const TYPE_UPDATE: u8 = 2;
pub const TYPE_NOTIFICATION: u8 = 3;
pub const TYPE_KEEPALIVE: u8 = 4;
pub const TYPE_ROUTE_REFRESH: u8 = 5;

// Path attribute type codes.
pub const ATTR_ORIGIN: u8 = 1;
pub const ATTR_AS_PATH: u8 = 2;
pub const ATTR_NEXT_HOP: u8 = 3;
pub const ATTR_MED: u8 = 4;
pub const ATTR_LOCAL_PREF: u8 = 5;
pub const ATTR_ATOMIC_AGGREGATE: u8 = 6;
pub const ATTR_AGGREGATOR: u8 = 7;
pub const ATTR_MP_REACH: u8 = 14;
pub const ATTR_MP_UNREACH: u8 = 15;
pub const ATTR_AS4_PATH: u8 = 17;
pub const ATTR_AS4_AGGREGATOR: u8 = 18;

// Attribute flag bits.
pub const FLAG_OPTIONAL: u8 = 0x80;
pub const FLAG_TRANSITIVE: u8 = 0x40;
pub const FLAG_PARTIAL: u8 = 0x20;
pub const FLAG_EXT_LEN: u8 = 0x10;

// Capability codes.
pub const CAP_MULTIPROTOCOL: u8 = 1;
pub const CAP_ROUTE_REFRESH: u8 = 2;
pub const CAP_FOUR_OCTET_AS: u8 = 65;

/// NOTIFICATION error codes and the subcodes this speaker uses (RFC 4271 4.5, RFC 4486, RFC 6608).
pub mod err {
    pub const HEADER: u8 = 1;
    pub const HEADER_NOT_SYNC: u8 = 1;
    pub const HEADER_BAD_LENGTH: u8 = 2;
    pub const HEADER_BAD_TYPE: u8 = 3;

    pub const OPEN: u8 = 2;
    pub const OPEN_BAD_VERSION: u8 = 1;
    pub const OPEN_BAD_PEER_AS: u8 = 2;
    pub const OPEN_BAD_BGP_ID: u8 = 3;
    pub const OPEN_UNSUPPORTED_PARAM: u8 = 4;
    pub const OPEN_BAD_HOLD_TIME: u8 = 6;

    pub const UPDATE: u8 = 3;
    pub const UPDATE_MALFORMED_ATTR_LIST: u8 = 1;
    pub const UPDATE_UNRECOGNIZED_WELL_KNOWN: u8 = 2;
    pub const UPDATE_ATTR_FLAGS: u8 = 4;
    pub const UPDATE_OPTIONAL_ATTR: u8 = 9;
    pub const UPDATE_INVALID_NETWORK: u8 = 10;

    pub const HOLD_TIMER_EXPIRED: u8 = 4;

    pub const FSM: u8 = 5;
    pub const FSM_IN_OPENSENT: u8 = 1;
    pub const FSM_IN_OPENCONFIRM: u8 = 2;
    pub const FSM_IN_ESTABLISHED: u8 = 3;

    pub const CEASE: u8 = 6;
    pub const CEASE_MAX_PREFIXES: u8 = 1;
    pub const CEASE_ADMIN_SHUTDOWN: u8 = 2;
    pub const CEASE_ADMIN_RESET: u8 = 4;
    pub const CEASE_COLLISION: u8 = 7;

    pub const ROUTE_REFRESH: u8 = 7;
    pub const ROUTE_REFRESH_BAD_LENGTH: u8 = 1;
}
