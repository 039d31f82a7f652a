//! ESP (RFC 4303) tunnel mode as a sans-IO core: no sockets, no clock. Randomness is
//! injected. The dataplane threads own the I/O and call `OutboundSa::encapsulate` /
//! `InboundSa::decapsulate` per packet; key schedules happen once in `new`.
//!
//! Wire format produced and accepted (packet starts at the SPI; UDP encapsulation and the
//! outer IP header belong to the caller):
//! `SPI(4) | Seq(4) | IV | ciphertext(inner | padding 1,2,3.. | pad length | next header) | ICV`

mod replay;
mod sa;
mod transform;

pub use replay::{ReplayError, ReplayWindow, MAX_WINDOW};
pub use sa::{Decapsulated, InboundSa, Inner, OutboundSa, PacketBuf, HEADROOM, TAILROOM};
pub use transform::{Backend, CHUNK};

use crate::crypto::{CryptoError, EncrAlg, IntegAlg};
use std::fmt;
use zeroize::Zeroizing;

/// RFC 3948 2.2: IKE on the NAT-T port 4500 is preceded by four zero octets (a zero SPI).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// ESP header bytes before the IV: SPI and sequence number.
pub const ESP_HEADER_LEN: usize = 8;
/// Next header values for tunnel mode.
pub const NEXT_HEADER_IPV4: u8 = 4;
pub const NEXT_HEADER_IPV6: u8 = 41;
/// "No next header": a dummy packet for traffic flow confidentiality (RFC 4303 2.6).
pub const NEXT_HEADER_NONE: u8 = 59;

/// Keys and parameters of one direction of a CHILD SA.
pub struct SaParams {
    pub spi: u32,
    pub encr: EncrAlg,
    /// None for AEAD (GCM); required for CBC.
    pub integ: Option<IntegAlg>,
    /// Cipher key; for GCM the key followed by the 4-byte salt (RFC 4106 8.1).
    pub encr_key: Zeroizing<Vec<u8>>,
    /// Empty for AEAD.
    pub integ_key: Zeroizing<Vec<u8>>,
    pub esn: bool,
    /// Anti-replay window size in packets (inbound only); 0 disables the replay check.
    pub replay_window: u32,
}

impl fmt::Debug for SaParams {
    // Keys are never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaParams")
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("encr", &self.encr)
            .field("integ", &self.integ)
            .field("esn", &self.esn)
            .field("replay_window", &self.replay_window)
            .finish_non_exhaustive()
    }
}

/// Errors when setting up an SA or sending a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EspError {
    /// A key of the wrong length (or another refusal from the crypto layer).
    Crypto(CryptoError),
    /// CBC without an integrity algorithm: encryption-only ESP is refused.
    MissingIntegrity,
    /// GCM already authenticates; an extra integrity algorithm is a negotiation bug.
    UnexpectedIntegrity,
    /// replay_window above `MAX_WINDOW`.
    ReplayWindowTooLarge(u32),
    /// The sequence number space is used up: the SA must be rekeyed (RFC 4303 3.3.3).
    SeqExhausted,
    /// The inner packet is neither IPv4 nor IPv6 (tunnel mode needs one of them).
    NotIp,
}

impl fmt::Display for EspError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EspError::Crypto(e) => write!(f, "ESP SA setup: {e}"),
            EspError::MissingIntegrity => {
                write!(f, "ESP with a CBC cipher needs an integrity algorithm")
            }
            EspError::UnexpectedIntegrity => {
                write!(f, "ESP with AES-GCM takes no separate integrity algorithm")
            }
            EspError::ReplayWindowTooLarge(n) => {
                write!(
                    f,
                    "replay window {n} is larger than the supported {MAX_WINDOW}"
                )
            }
            EspError::SeqExhausted => {
                write!(f, "ESP sequence numbers exhausted; the SA must be rekeyed")
            }
            EspError::NotIp => write!(f, "inner packet is neither IPv4 nor IPv6"),
        }
    }
}

impl std::error::Error for EspError {}

impl From<CryptoError> for EspError {
    fn from(e: CryptoError) -> Self {
        EspError::Crypto(e)
    }
}

/// Why an inbound packet was dropped. The dataplane counts each reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than header + IV + minimal ciphertext + ICV.
    Truncated,
    /// Ciphertext not a whole number of cipher blocks.
    BadLength,
    /// The SPI in the packet is not this SA's (caller routed it wrongly).
    WrongSpi,
    /// Sequence number already seen or left of the window.
    Replay,
    /// ESN high half could not be placed.
    SeqOutOfRange,
    /// ICV (HMAC or GCM tag) did not verify.
    AuthFailed,
    /// Padding bytes not 1,2,3.. or pad length larger than the payload.
    BadPadding,
    /// Next header not IPv4/IPv6, or disagreeing with the inner packet's version.
    BadNextHeader,
    /// Next header 59: a dummy packet (RFC 4303 2.6), silently discarded.
    Dummy,
}

impl DropReason {
    pub const ALL: [DropReason; 9] = [
        DropReason::Truncated,
        DropReason::BadLength,
        DropReason::WrongSpi,
        DropReason::Replay,
        DropReason::SeqOutOfRange,
        DropReason::AuthFailed,
        DropReason::BadPadding,
        DropReason::BadNextHeader,
        DropReason::Dummy,
    ];

    /// Stable snake_case name for counters and logs.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadLength => "bad_length",
            DropReason::WrongSpi => "wrong_spi",
            DropReason::Replay => "replay",
            DropReason::SeqOutOfRange => "seq_out_of_range",
            DropReason::AuthFailed => "auth_failed",
            DropReason::BadPadding => "bad_padding",
            DropReason::BadNextHeader => "bad_next_header",
            DropReason::Dummy => "dummy",
        }
    }

    /// Dense index for counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads the SPI of an ESP packet (None if shorter than 4 bytes).
pub fn packet_spi(packet: &[u8]) -> Option<u32> {
    let b: [u8; 4] = packet.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod batch_tests;
