//! Blocking client for the CLI (`ipsecgw status`, `initiate`, ...).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::error::ClientError;
use super::protocol::{Request, Response, MAX_RESPONSE_BYTES, PROTOCOL_VERSION};

/// Long enough for `initiate`, which may wait for IKE to finish retransmitting.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Sends one request and waits for the response.
pub fn request(socket: &Path, req: &Request) -> Result<Response, ClientError> {
    let path = || socket.to_path_buf();
    let mut stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            ClientError::NotRunning(path())
        }
        io::ErrorKind::PermissionDenied => ClientError::PermissionDenied(path()),
        _ => ClientError::Connect {
            path: path(),
            source: e,
        },
    })?;
    let io_err = |source: io::Error| ClientError::Io {
        path: path(),
        source,
    };
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io_err)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io_err)?;

    let mut line = req.to_json();
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io_err)?;
    // Half-close so a server reading to EOF also sees the end of the request.
    let _ = stream.shutdown(std::net::Shutdown::Write);

    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| {
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                ClientError::Timeout {
                    path: path(),
                    secs: TIMEOUT.as_secs(),
                }
            } else {
                io_err(e)
            }
        })?;
    if raw.len() > MAX_RESPONSE_BYTES {
        return Err(ClientError::TooLarge {
            path: path(),
            limit: MAX_RESPONSE_BYTES,
        });
    }
    if raw.is_empty() {
        return Err(ClientError::Closed(path()));
    }
    let response: Response =
        serde_json::from_slice(&raw).map_err(|e| ClientError::Malformed(e.to_string()))?;
    if response.version != PROTOCOL_VERSION {
        return Err(ClientError::Version(response.version));
    }
    Ok(response)
}
