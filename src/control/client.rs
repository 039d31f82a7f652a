//! Blocking client for the CLI (`ipsecgw status`, `initiate`, ...).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::protocol::{Request, Response, MAX_RESPONSE_BYTES, PROTOCOL_VERSION};

/// Long enough for `initiate`, which may wait for IKE to finish retransmitting.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Sends one request and waits for the response. Errors are complete sentences for the user.
pub fn request(socket: &Path, req: &Request) -> Result<Response, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            format!(
                "cannot connect to {}: is ipsecgw running?",
                socket.display()
            )
        }
        io::ErrorKind::PermissionDenied => {
            format!(
                "cannot connect to {}: permission denied (run as root)",
                socket.display()
            )
        }
        _ => format!("cannot connect to {}: {e}", socket.display()),
    })?;
    let io_err = |e: io::Error| format!("control socket {}: {e}", socket.display());
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
                format!(
                    "no answer from ipsecgw on {} within {}s",
                    socket.display(),
                    TIMEOUT.as_secs()
                )
            } else {
                io_err(e)
            }
        })?;
    if raw.len() > MAX_RESPONSE_BYTES {
        return Err(format!(
            "response from {} is larger than {MAX_RESPONSE_BYTES} bytes",
            socket.display()
        ));
    }
    if raw.is_empty() {
        return Err(format!(
            "ipsecgw closed {} without answering",
            socket.display()
        ));
    }
    let response: Response = serde_json::from_slice(&raw)
        .map_err(|e| format!("malformed response from ipsecgw: {e}"))?;
    if response.version != PROTOCOL_VERSION {
        return Err(format!(
            "ipsecgw answered with control protocol version {} but this client speaks {PROTOCOL_VERSION}; \
             use the ipsecgw binary of the running daemon",
            response.version
        ));
    }
    Ok(response)
}
