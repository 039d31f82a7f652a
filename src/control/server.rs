//! The control socket server (tokio, Unix stream socket, one request per connection).
//!
//! Handler design: a trait returning a boxed future, so a handler can await the daemon's
//! state. For a daemon whose state lives in one task, `channel_handler` turns requests into
//! messages on an mpsc channel, each carrying a oneshot sender for the reply.

use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::error::RequestError;
use super::protocol::{Request, Response, MAX_REQUEST_BYTES};

/// A slow or stuck client must not hold a task forever.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Response> + Send + 'a>>;

/// Lines of a streamed answer, written to the client as they come (before the final
/// response). Sending fails once the client has gone away.
pub type Progress = mpsc::UnboundedSender<String>;

/// Answers control requests. Errors are answered with `Response::error`, never by panicking.
pub trait ControlHandler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> HandlerFuture<'_>;

    /// A request whose answer streams (`Request::streams`): progress lines go to `progress`.
    /// Handlers that have nothing to stream just answer.
    fn handle_streaming(&self, request: Request, progress: Progress) -> HandlerFuture<'_> {
        drop(progress);
        self.handle(request)
    }
}

/// Any `Fn(Request) -> impl Future<Output = Response>` is a handler (handy in tests).
impl<F, Fut> ControlHandler for F
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    fn handle(&self, request: Request) -> HandlerFuture<'_> {
        Box::pin(self(request))
    }
}

/// One request travelling to the daemon's main loop; answer it with `reply.send(response)`.
pub struct ControlCall {
    pub request: Request,
    pub reply: oneshot::Sender<Response>,
    /// For streamed answers: where progress lines go (None for plain requests).
    pub progress: Option<Progress>,
}

/// A handler that forwards each request over a channel to whoever owns the state.
pub fn channel_handler(capacity: usize) -> (Arc<dyn ControlHandler>, mpsc::Receiver<ControlCall>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (Arc::new(ChannelHandler { tx }), rx)
}

struct ChannelHandler {
    tx: mpsc::Sender<ControlCall>,
}

impl ChannelHandler {
    async fn call(&self, request: Request, progress: Option<Progress>) -> Response {
        let (reply, answer) = oneshot::channel();
        let call = ControlCall {
            request,
            reply,
            progress,
        };
        if self.tx.send(call).await.is_err() {
            return Response::error("ipsecgw is shutting down");
        }
        answer
            .await
            .unwrap_or_else(|_| Response::error("request dropped by ipsecgw"))
    }
}

impl ControlHandler for ChannelHandler {
    fn handle(&self, request: Request) -> HandlerFuture<'_> {
        Box::pin(self.call(request, None))
    }

    fn handle_streaming(&self, request: Request, progress: Progress) -> HandlerFuture<'_> {
        Box::pin(self.call(request, Some(progress)))
    }
}

/// Creates the socket: parent directory (0700 if we create it), stale socket removed, socket
/// file mode 0600. Fails if another live process is already listening on `path`.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    // The umask narrowed below is process-wide: a directory created by another bind while it
    // is narrowed would come out 0600 (not searchable). One bind at a time in this process.
    static UMASK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _umask = UMASK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let with_path = |e: io::Error, what: &str| {
        io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| with_path(e, "cannot create the directory of"))?;
        }
        check_parent_dir(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // A socket that still answers belongs to a running daemon: never steal it.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use: is another ipsecgw running?", path.display()),
                ));
            }
            std::fs::remove_file(path).map_err(|e| with_path(e, "cannot remove stale socket"))?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                ),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(with_path(e, "cannot inspect")),
    }
    // Root-only: the socket can tear tunnels down. It is created 0600 by bind itself (the
    // umask), never chmod'ed by path afterwards: there is no window in which it is open to
    // others, and no path lookup a swapped directory entry could redirect. (fchmod on a
    // socket's fd does not reach the file bind creates.) The umask is process-wide but only
    // ever narrowed, for the length of one bind.
    // SAFETY: umask only swaps the process's file mode creation mask.
    let old_mask = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old_mask) };
    bound.map_err(|e| with_path(e, "cannot listen on"))
}

/// The socket's directory must not let other users replace the socket: owned by root or by
/// us, and writable only by its owner (or sticky, like /tmp).
fn check_parent_dir(dir: &Path) -> io::Result<()> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot inspect {}: {e}", dir.display())))?;
    let mode = meta.mode() & 0o7777;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let problem = if !meta.is_dir() {
        Some("is not a directory".to_string())
    } else if meta.uid() != 0 && meta.uid() != euid {
        Some(format!("is owned by uid {}, not root or us", meta.uid()))
    } else if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        Some(format!(
            "is writable by group/others (mode {mode:04o}); run `chmod go-w {}`",
            dir.display()
        ))
    } else {
        None
    };
    match problem {
        Some(p) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("control socket directory {} {p}", dir.display()),
        )),
        None => Ok(()),
    }
}

/// Binds `path` and serves requests forever (until the task is dropped/aborted).
pub async fn serve(path: &Path, handler: Arc<dyn ControlHandler>) -> io::Result<()> {
    let listener = bind(path)?;
    serve_listener(listener, handler).await
}

/// Serves requests on an already bound listener, one task per client.
pub async fn serve_listener(
    listener: UnixListener,
    handler: Arc<dyn ControlHandler>,
) -> io::Result<()> {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let handler = Arc::clone(&handler);
                tokio::spawn(async move {
                    if let Err(e) = handle_client(stream, handler).await {
                        tracing::debug!("control client: {e}");
                    }
                });
            }
            Err(e) => {
                // EMFILE and friends are transient; back off instead of spinning or dying.
                tracing::warn!("control socket accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Only root and the daemon's own user may talk to it (defence in depth behind mode 0600).
fn peer_allowed(stream: &UnixStream) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let own_uid = unsafe { libc::geteuid() };
    match stream.peer_cred() {
        Ok(cred) => cred.uid() == 0 || cred.uid() == own_uid,
        Err(_) => false,
    }
}

/// Writes one response line, bounded by WRITE_TIMEOUT.
async fn write_line(stream: &mut UnixStream, response: &Response) -> io::Result<()> {
    let mut out = response.to_json();
    out.push('\n');
    tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(out.as_bytes()))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client did not read the response"))?
}

/// Runs a streaming handler, writing its progress lines as they come; a client that goes
/// away ends it (the handler sees its progress sender fail).
async fn stream_answer(
    stream: &mut UnixStream,
    handler: &dyn ControlHandler,
    request: Request,
) -> io::Result<Response> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let answer = handler.handle_streaming(request, tx);
    tokio::pin!(answer);
    let response = loop {
        tokio::select! {
            response = &mut answer => break response,
            Some(line) = rx.recv() => write_line(stream, &Response::progress(line)).await?,
        }
    };
    while let Ok(line) = rx.try_recv() {
        write_line(stream, &Response::progress(line)).await?;
    }
    Ok(response)
}

async fn handle_client(mut stream: UnixStream, handler: Arc<dyn ControlHandler>) -> io::Result<()> {
    let response = if !peer_allowed(&stream) {
        Response::error("permission denied")
    } else {
        match tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream)).await {
            Err(_) => Response::error("timed out waiting for the request"),
            Ok(Err(e @ RequestError::TooLarge)) => {
                // Swallow the rest (bounded) so the client sees our answer instead of a reset.
                let _ = tokio::time::timeout(READ_TIMEOUT, drain(&mut stream)).await;
                Response::error(e.to_string())
            }
            Ok(Err(e)) => Response::error(e.to_string()),
            Ok(Ok(text)) => match Request::from_json(&text) {
                Ok(request) if request.streams() => {
                    stream_answer(&mut stream, handler.as_ref(), request).await?
                }
                Ok(request) => handler.handle(request).await,
                Err(e) => Response::error(e.to_string()),
            },
        }
    };
    let mut out = response.to_json();
    out.push('\n');
    tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(out.as_bytes()).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client did not read the response"))?
}

/// Reads up to the first newline (or EOF), refusing more than MAX_REQUEST_BYTES.
async fn read_request(stream: &mut UnixStream) -> Result<String, RequestError> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| RequestError::Read(e.to_string()))?;
        let data = chunk.get(..n).unwrap_or_default();
        let (line, done) = match data.iter().position(|b| *b == b'\n') {
            Some(pos) => (data.get(..pos).unwrap_or_default(), true),
            None => (data, n == 0),
        };
        buf.extend_from_slice(line);
        if buf.len() > MAX_REQUEST_BYTES {
            return Err(RequestError::TooLarge);
        }
        if done {
            break;
        }
    }
    String::from_utf8(buf).map_err(|_| RequestError::NotUtf8)
}

/// Reads and discards input until EOF, at most 16 times the request limit.
async fn drain(stream: &mut UnixStream) {
    let mut chunk = [0u8; 4096];
    let mut total = 0usize;
    while total < 16 * MAX_REQUEST_BYTES {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
}
