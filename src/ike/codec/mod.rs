//! IKEv2 wire format (RFC 7296 section 3): header, generic payload chain and the payloads
//! this gateway uses. Parsing is strict and total: every length is checked against the
//! bytes that are really there, nothing panics, and a lie is a [`ParseError`].

mod chain;
mod header;
mod payload;
mod sa;
#[cfg(test)]
mod tests;
mod ts;

use std::fmt;

use crate::wire::{Overflow, Truncated};

pub use chain::{
    encode_chain, encode_plain, parse_chain, try_encode_chain, try_encode_plain, Fragment, Message,
    SkLocation, SKF_NUMBERS_LEN,
};
pub use header::Header;
pub use payload::{find_notify, first_error_notify, Notify, Payload};
pub use sa::{Proposal, Transform};
pub use ts::WireTs;

/// A message or payload that cannot be encoded: a length or count does not fit its field.
pub type EncodeError = Overflow;

pub const HEADER_LEN: usize = 28;
pub const IKE_VERSION: u8 = 0x20;

// Exchange types.
pub const EXCH_IKE_SA_INIT: u8 = 34;
pub const EXCH_IKE_AUTH: u8 = 35;
pub const EXCH_CREATE_CHILD_SA: u8 = 36;
pub const EXCH_INFORMATIONAL: u8 = 37;

// Header flags.
pub const FLAG_INITIATOR: u8 = 0x08;
pub const FLAG_VERSION: u8 = 0x10;
pub const FLAG_RESPONSE: u8 = 0x20;

// Payload types.
pub const PT_NONE: u8 = 0;
pub const PT_SA: u8 = 33;
pub const PT_KE: u8 = 34;
pub const PT_IDI: u8 = 35;
pub const PT_IDR: u8 = 36;
pub const PT_CERT: u8 = 37;
pub const PT_CERTREQ: u8 = 38;
pub const PT_AUTH: u8 = 39;
pub const PT_NONCE: u8 = 40;
pub const PT_NOTIFY: u8 = 41;
pub const PT_DELETE: u8 = 42;
pub const PT_VENDOR: u8 = 43;
pub const PT_TSI: u8 = 44;
pub const PT_TSR: u8 = 45;
pub const PT_SK: u8 = 46;
pub const PT_CP: u8 = 47;
pub const PT_EAP: u8 = 48;
/// Encrypted Fragment payload (RFC 7383 2.5).
pub const PT_SKF: u8 = 53;

// Protocol ids (proposals, notify, delete).
pub const PROTO_IKE: u8 = 1;
pub const PROTO_ESP: u8 = 3;

// Transform types.
pub const TT_ENCR: u8 = 1;
pub const TT_PRF: u8 = 2;
pub const TT_INTEG: u8 = 3;
pub const TT_DH: u8 = 4;
pub const TT_ESN: u8 = 5;
pub const ATTR_KEY_LENGTH: u16 = 14;

// AUTH methods.
pub const AUTH_PSK: u8 = 2;

// TS types.
pub const TS_IPV4_ADDR_RANGE: u8 = 7;
pub const TS_IPV6_ADDR_RANGE: u8 = 8;

/// Notify message types (RFC 7296 3.10.1 and later registrations) that we send or act on.
pub mod notify {
    pub const UNSUPPORTED_CRITICAL_PAYLOAD: u16 = 1;
    pub const INVALID_IKE_SPI: u16 = 4;
    pub const INVALID_MAJOR_VERSION: u16 = 5;
    pub const INVALID_SYNTAX: u16 = 7;
    pub const INVALID_MESSAGE_ID: u16 = 9;
    pub const INVALID_SPI: u16 = 11;
    pub const NO_PROPOSAL_CHOSEN: u16 = 14;
    pub const INVALID_KE_PAYLOAD: u16 = 17;
    pub const AUTHENTICATION_FAILED: u16 = 24;
    pub const SINGLE_PAIR_REQUIRED: u16 = 34;
    pub const NO_ADDITIONAL_SAS: u16 = 35;
    pub const INTERNAL_ADDRESS_FAILURE: u16 = 36;
    pub const FAILED_CP_REQUIRED: u16 = 37;
    pub const TS_UNACCEPTABLE: u16 = 38;
    pub const INVALID_SELECTORS: u16 = 39;
    pub const TEMPORARY_FAILURE: u16 = 43;
    pub const CHILD_SA_NOT_FOUND: u16 = 44;
    /// Error types are below this value; status types at or above it.
    pub const FIRST_STATUS: u16 = 16384;
    pub const INITIAL_CONTACT: u16 = 16384;
    pub const NAT_DETECTION_SOURCE_IP: u16 = 16388;
    pub const NAT_DETECTION_DESTINATION_IP: u16 = 16389;
    pub const COOKIE: u16 = 16390;
    pub const USE_TRANSPORT_MODE: u16 = 16391;
    pub const REKEY_SA: u16 = 16393;
    pub const ESP_TFC_PADDING_NOT_SUPPORTED: u16 = 16394;
    pub const NON_FIRST_FRAGMENTS_ALSO: u16 = 16395;
    /// RFC 7383 2.3: IKE fragmentation supported (IKE_SA_INIT, both roles).
    pub const IKEV2_FRAGMENTATION_SUPPORTED: u16 = 16430;
}

/// Readable name of a notify type, for logs.
pub fn notify_name(t: u16) -> String {
    use notify::*;
    let name = match t {
        UNSUPPORTED_CRITICAL_PAYLOAD => "UNSUPPORTED_CRITICAL_PAYLOAD",
        INVALID_IKE_SPI => "INVALID_IKE_SPI",
        INVALID_MAJOR_VERSION => "INVALID_MAJOR_VERSION",
        INVALID_SYNTAX => "INVALID_SYNTAX",
        INVALID_MESSAGE_ID => "INVALID_MESSAGE_ID",
        INVALID_SPI => "INVALID_SPI",
        NO_PROPOSAL_CHOSEN => "NO_PROPOSAL_CHOSEN",
        INVALID_KE_PAYLOAD => "INVALID_KE_PAYLOAD",
        AUTHENTICATION_FAILED => "AUTHENTICATION_FAILED",
        SINGLE_PAIR_REQUIRED => "SINGLE_PAIR_REQUIRED",
        NO_ADDITIONAL_SAS => "NO_ADDITIONAL_SAS",
        INTERNAL_ADDRESS_FAILURE => "INTERNAL_ADDRESS_FAILURE",
        FAILED_CP_REQUIRED => "FAILED_CP_REQUIRED",
        TS_UNACCEPTABLE => "TS_UNACCEPTABLE",
        INVALID_SELECTORS => "INVALID_SELECTORS",
        TEMPORARY_FAILURE => "TEMPORARY_FAILURE",
        CHILD_SA_NOT_FOUND => "CHILD_SA_NOT_FOUND",
        INITIAL_CONTACT => "INITIAL_CONTACT",
        NAT_DETECTION_SOURCE_IP => "NAT_DETECTION_SOURCE_IP",
        NAT_DETECTION_DESTINATION_IP => "NAT_DETECTION_DESTINATION_IP",
        COOKIE => "COOKIE",
        USE_TRANSPORT_MODE => "USE_TRANSPORT_MODE",
        REKEY_SA => "REKEY_SA",
        IKEV2_FRAGMENTATION_SUPPORTED => "IKEV2_FRAGMENTATION_SUPPORTED",
        _ => return format!("NOTIFY({t})"),
    };
    name.to_string()
}

/// Why a message could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Fewer bytes than a header or length field claims.
    Truncated(&'static str),
    /// A length field that is impossible (too small, or disagrees with its container).
    BadLength(&'static str),
    /// Not IKEv2 (major version != 2).
    BadVersion(u8),
    /// A payload whose content is invalid.
    Invalid(&'static str),
    /// An unknown payload with the critical bit set: answer UNSUPPORTED_CRITICAL_PAYLOAD.
    UnsupportedCritical(u8),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Truncated(w) => write!(f, "truncated {w}"),
            ParseError::BadLength(w) => write!(f, "bad length in {w}"),
            ParseError::BadVersion(v) => write!(f, "unsupported IKE version 0x{v:02x}"),
            ParseError::Invalid(w) => write!(f, "invalid {w}"),
            ParseError::UnsupportedCritical(t) => write!(f, "unsupported critical payload {t}"),
        }
    }
}

impl std::error::Error for ParseError {}

pub(crate) type Result<T> = std::result::Result<T, ParseError>;

impl From<Truncated> for ParseError {
    fn from(t: Truncated) -> Self {
        ParseError::Truncated(t.what)
    }
}
