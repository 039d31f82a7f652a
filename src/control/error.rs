//! Errors of the control surface. Each `Display`s as a complete sentence for the user.

use super::protocol::{MAX_REQUEST_BYTES, PROTOCOL_VERSION};
use std::fmt;
use std::io;
use std::path::PathBuf;

/// A request line the server refuses (answered with its text as the error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    TooLarge,
    Read(String),
    NotUtf8,
    NotJson(String),
    NotObject,
    NoVersion,
    VersionNotNumber,
    UnsupportedVersion(u64),
    /// The command fields do not parse (serde's explanation).
    BadCommand(String),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::TooLarge => write!(f, "request larger than {MAX_REQUEST_BYTES} bytes"),
            RequestError::Read(e) => write!(f, "read error: {e}"),
            RequestError::NotUtf8 => f.write_str("request is not UTF-8"),
            RequestError::NotJson(e) => write!(f, "request is not valid JSON: {e}"),
            RequestError::NotObject => f.write_str("request must be a JSON object"),
            RequestError::NoVersion => write!(
                f,
                "request has no \"version\" (this ipsecgw speaks version {PROTOCOL_VERSION})"
            ),
            RequestError::VersionNotNumber => f.write_str("\"version\" must be a number"),
            RequestError::UnsupportedVersion(v) => write!(
                f,
                "unsupported control protocol version {v} (this ipsecgw speaks version {PROTOCOL_VERSION})"
            ),
            RequestError::BadCommand(e) => write!(f, "bad request: {e}"),
        }
    }
}

impl std::error::Error for RequestError {}

/// Why the client got no answer from the daemon.
#[derive(Debug)]
pub enum ClientError {
    NotRunning(PathBuf),
    PermissionDenied(PathBuf),
    Connect {
        path: PathBuf,
        source: io::Error,
    },
    Io {
        path: PathBuf,
        source: io::Error,
    },
    Timeout {
        path: PathBuf,
        secs: u64,
    },
    TooLarge {
        path: PathBuf,
        limit: usize,
    },
    Closed(PathBuf),
    Malformed(String),
    /// The daemon speaks another protocol version.
    Version(u32),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NotRunning(p) => {
                write!(f, "cannot connect to {}: is ipsecgw running?", p.display())
            }
            ClientError::PermissionDenied(p) => write!(
                f,
                "cannot connect to {}: permission denied (run as root)",
                p.display()
            ),
            ClientError::Connect { path, source } => {
                write!(f, "cannot connect to {}: {source}", path.display())
            }
            ClientError::Io { path, source } => {
                write!(f, "control socket {}: {source}", path.display())
            }
            ClientError::Timeout { path, secs } => write!(
                f,
                "no answer from ipsecgw on {} within {secs}s",
                path.display()
            ),
            ClientError::TooLarge { path, limit } => write!(
                f,
                "response from {} is larger than {limit} bytes",
                path.display()
            ),
            ClientError::Closed(p) => {
                write!(f, "ipsecgw closed {} without answering", p.display())
            }
            ClientError::Malformed(e) => write!(f, "malformed response from ipsecgw: {e}"),
            ClientError::Version(v) => write!(
                f,
                "ipsecgw answered with control protocol version {v} but this client speaks {PROTOCOL_VERSION}; \
                 use the ipsecgw binary of the running daemon"
            ),
        }
    }
}

impl std::error::Error for ClientError {}

/// An answer that carries no usable result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// The daemon refused (its message, e.g. an unknown connection name).
    Refused(String),
    /// The result is not what the command returns.
    Unexpected(String),
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Refused(m) => f.write_str(m),
            ResponseError::Unexpected(e) => write!(f, "unexpected answer from ipsecgw: {e}"),
        }
    }
}

impl std::error::Error for ResponseError {}
