//! Blocking client for the CLI (`ipsecgw status`, `initiate`, ...).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::error::ClientError;
use super::protocol::{Request, Response, MAX_RESPONSE_BYTES, PROTOCOL_VERSION};

/// Long enough for a daemon busy with other work; waiting actions add their own wait.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Sends one request and waits for the response (progress lines, if any, are skipped).
pub fn request(socket: &Path, req: &Request) -> Result<Response, ClientError> {
    request_streaming(socket, req, |_| {})
}

/// Sends one request, hands every progress line to `on_progress` as it arrives, and
/// returns the final response. `log` requests wait forever (until the daemon stops).
pub fn request_streaming(
    socket: &Path,
    req: &Request,
    mut on_progress: impl FnMut(&str),
) -> Result<Response, ClientError> {
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
    // Between two lines of a streamed answer the daemon may be quiet for the whole wait.
    let timeout = match (&req.command, req.wait_secs) {
        (super::Command::Log { .. }, _) => None,
        (_, Some(secs)) => Some(TIMEOUT + Duration::from_secs(secs)),
        _ => Some(TIMEOUT),
    };
    stream.set_read_timeout(timeout).map_err(io_err)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io_err)?;

    let mut line = req.to_json();
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io_err)?;
    // Half-close so a server reading to EOF also sees the end of the request.
    let _ = stream.shutdown(std::net::Shutdown::Write);

    let mut reader = BufReader::new(stream.take(MAX_RESPONSE_BYTES as u64 + 1));
    let mut total = 0usize;
    loop {
        let mut raw = Vec::new();
        let n = reader.read_until(b'\n', &mut raw).map_err(|e| {
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                ClientError::Timeout {
                    path: path(),
                    secs: timeout.unwrap_or(TIMEOUT).as_secs(),
                }
            } else {
                io_err(e)
            }
        })?;
        total += n;
        // A log stream may run for days; only one answer is bounded.
        if total > MAX_RESPONSE_BYTES && !matches!(req.command, super::Command::Log { .. }) {
            return Err(ClientError::TooLarge {
                path: path(),
                limit: MAX_RESPONSE_BYTES,
            });
        }
        if n == 0 {
            return Err(ClientError::Closed(path()));
        }
        let response: Response =
            serde_json::from_slice(&raw).map_err(|e| ClientError::Malformed(e.to_string()))?;
        if response.version != PROTOCOL_VERSION {
            return Err(ClientError::Version(response.version));
        }
        match &response.progress {
            Some(text) => on_progress(text),
            None => return Ok(response),
        }
        if matches!(req.command, super::Command::Log { .. }) {
            // The `take` limit would end a long log stream; renew it per line.
            reader.get_mut().set_limit(MAX_RESPONSE_BYTES as u64 + 1);
            total = 0;
        }
    }
}
