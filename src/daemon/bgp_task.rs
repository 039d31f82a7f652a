//! The tokio driver of one BGP session: owns the TCP listener/stream and the timers, and feeds
//! the sans-IO [`crate::bgp::Session`].
//!
//! - Listens on `local_address:port` and accepts only connections from `peer_address`; whether
//!   an inbound connection replaces the current one is the core's call (`accept_inbound`).
//! - Connects when the core emits `Connect`: the socket is bound to `local_address`
//!   (update-source), IP TTL = `multihop` (ebgp-multihop), TCP_NODELAY.
//! - `local_address` lives on the tunnel device and may not exist yet: binding the listener is
//!   retried every ConnectRetry, a failed connect is just a failed connect for the core.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::bgp::{BgpConfig, BgpEvent, BgpState, BgpStatus, RibEntry, Session};
use crate::prefix::IpPrefix;

/// Requests from the daemon to a running session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BgpCommand {
    /// ManualStart (the task starts Idle).
    Start,
    /// ManualStop: Cease NOTIFICATION with this text, routes withdrawn; Start brings it back.
    Stop(String),
    /// Replace the announced networks (the export prefix-list still applies).
    SetNetworks(Vec<IpPrefix>),
    /// Replace the addresses no learned route may cover (see `BgpConfig::protected`).
    SetProtected(Vec<IpAddr>),
}

/// A write that takes longer than this means the peer stopped reading: drop the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

enum Wake {
    Command(Option<BgpCommand>),
    Connected(io::Result<TcpStream>),
    Accepted(io::Result<(TcpStream, SocketAddr)>),
    Read(io::Result<usize>),
    Timer,
    Rebind,
}

type ConnectFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<TcpStream>> + Send>>;

/// Runs one session until `cmds` is closed (then it stops the session and returns). Learned
/// route changes and session transitions go to `events`; `status` is refreshed after every
/// step.
pub async fn run_session(
    cfg: BgpConfig,
    mut cmds: mpsc::Receiver<BgpCommand>,
    events: mpsc::Sender<BgpEvent>,
    status: Arc<Mutex<(BgpStatus, Vec<RibEntry>)>>,
) {
    let listen_addr = SocketAddr::new(cfg.local_address, cfg.port);
    let peer_addr = SocketAddr::new(cfg.peer_address, cfg.port);
    let mut session = Session::new(cfg.clone(), Instant::now());
    let mut listener: Option<TcpListener> = None;
    let mut rebind_at = tokio::time::Instant::now();
    let mut stream: Option<TcpStream> = None;
    let mut connecting: Option<ConnectFuture> = None;
    let mut driver_error: Option<String> = None;
    let mut buf = vec![0u8; 8192];

    loop {
        let deadline = session.poll_timeout().map(tokio::time::Instant::from_std);
        let wake = tokio::select! {
            cmd = cmds.recv() => Wake::Command(cmd),
            res = async { match connecting.as_mut() { Some(f) => f.await, None => std::future::pending().await } } => {
                Wake::Connected(res)
            }
            res = async { match listener.as_ref() { Some(l) => l.accept().await, None => std::future::pending().await } } => {
                Wake::Accepted(res)
            }
            res = async { match stream.as_mut() { Some(s) => s.read(&mut buf).await, None => std::future::pending().await } } => {
                Wake::Read(res)
            }
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                Wake::Timer
            }
            _ = tokio::time::sleep_until(rebind_at), if listener.is_none() => Wake::Rebind,
        };
        let now = Instant::now();
        let mut done = false;
        match wake {
            Wake::Command(None) => {
                session.stop(now, "shutting down");
                driver_error = None;
                done = true;
            }
            Wake::Command(Some(BgpCommand::Start)) => session.start(now),
            Wake::Command(Some(BgpCommand::Stop(reason))) => session.stop(now, &reason),
            Wake::Command(Some(BgpCommand::SetNetworks(nets))) => session.set_networks(now, nets),
            Wake::Command(Some(BgpCommand::SetProtected(addrs))) => {
                session.set_protected(now, addrs)
            }
            Wake::Connected(res) => {
                connecting = None;
                match res {
                    Ok(s) => {
                        debug!("bgp {peer_addr}: connected");
                        driver_error = None;
                        stream = Some(s);
                        session.transport_up(now);
                    }
                    Err(e) => {
                        debug!("bgp {peer_addr}: connect failed: {e}");
                        driver_error = Some(format!(
                            "connect from {} to {peer_addr} failed: {e}",
                            cfg.local_address
                        ));
                        session.transport_failed(now);
                    }
                }
            }
            Wake::Accepted(Ok((s, from))) => {
                if from.ip() != cfg.peer_address {
                    debug!("bgp {peer_addr}: refused connection from {from} (not the peer)");
                } else if session.accept_inbound(now) {
                    debug!("bgp {peer_addr}: accepted connection from {from}");
                    if let Err(e) = tune(&s, cfg.multihop, cfg.peer_address) {
                        debug!("bgp {peer_addr}: socket options: {e}");
                    }
                    connecting = None;
                    driver_error = None;
                    stream = Some(s);
                } else {
                    debug!(
                        "bgp {peer_addr}: refused connection from {from} in state {:?}",
                        session.state()
                    );
                }
            }
            Wake::Accepted(Err(e)) => {
                warn!("bgp {peer_addr}: accept on {listen_addr} failed: {e}");
                listener = None;
                rebind_at = tokio::time::Instant::now() + cfg.connect_retry;
            }
            Wake::Read(Ok(0)) | Wake::Read(Err(_)) => {
                debug!("bgp {peer_addr}: connection closed");
                stream = None;
                session.transport_failed(now);
            }
            Wake::Read(Ok(n)) => session.handle_data(now, buf.get(..n).unwrap_or(&[])),
            Wake::Timer => session.handle_timeout(now),
            Wake::Rebind => match bind_listener(listen_addr) {
                Ok(l) => {
                    info!("bgp: listening on {listen_addr} for {}", cfg.peer_address);
                    if driver_error
                        .as_deref()
                        .is_some_and(|e| e.starts_with("cannot listen"))
                    {
                        driver_error = None;
                    }
                    listener = Some(l);
                }
                Err(e) => {
                    // Usually the tunnel address is not configured yet: try again later.
                    debug!("bgp: cannot listen on {listen_addr}: {e}");
                    driver_error = Some(format!("cannot listen on {listen_addr}: {e}"));
                    rebind_at = tokio::time::Instant::now()
                        + cfg.connect_retry.max(Duration::from_millis(100));
                }
            },
        }
        flush(
            &mut session,
            &mut stream,
            &mut connecting,
            &events,
            &peer_addr,
        )
        .await;
        publish(&session, &status, &driver_error);
        if done {
            return;
        }
    }
}

/// Writes what the core queued, then carries out its events, until it has nothing more.
async fn flush(
    session: &mut Session,
    stream: &mut Option<TcpStream>,
    connecting: &mut Option<ConnectFuture>,
    events: &mpsc::Sender<BgpEvent>,
    peer_addr: &SocketAddr,
) {
    loop {
        let mut progress = false;
        while let Some(bytes) = session.poll_transmit() {
            progress = true;
            let Some(s) = stream.as_mut() else { continue };
            let res = tokio::time::timeout(WRITE_TIMEOUT, s.write_all(&bytes)).await;
            if !matches!(res, Ok(Ok(()))) {
                debug!("bgp {peer_addr}: write failed");
                *stream = None;
                session.transport_failed(Instant::now());
            }
        }
        while let Some(ev) = session.poll_event() {
            progress = true;
            match ev {
                BgpEvent::Connect => {
                    let cfg = session.config().clone();
                    *connecting = Some(Box::pin(connect(cfg)));
                }
                BgpEvent::Disconnect => {
                    *connecting = None;
                    if let Some(mut s) = stream.take() {
                        let _ = tokio::time::timeout(Duration::from_secs(1), s.shutdown()).await;
                    }
                }
                other => {
                    // The daemon went away: nothing to deliver to, keep the session logic going.
                    let _ = events.send(other).await;
                }
            }
        }
        if !progress {
            return;
        }
    }
}

fn publish(
    session: &Session,
    status: &Mutex<(BgpStatus, Vec<RibEntry>)>,
    driver_error: &Option<String>,
) {
    let mut st = session.status_at(Instant::now());
    if st.state != BgpState::Established {
        if let Some(e) = driver_error {
            st.last_error = Some(e.clone());
        }
    }
    let rib = session.rib();
    let mut guard = status.lock().unwrap_or_else(|p| p.into_inner());
    *guard = (st, rib);
}

fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(8)
}

/// Active open from the update-source address with the multihop TTL.
async fn connect(cfg: BgpConfig) -> io::Result<TcpStream> {
    let sock = if cfg.peer_address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.bind(SocketAddr::new(cfg.local_address, 0))?;
    set_ttl(sock.as_raw_fd(), cfg.multihop, cfg.peer_address)?;
    let stream = sock
        .connect(SocketAddr::new(cfg.peer_address, cfg.port))
        .await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn tune(s: &TcpStream, ttl: u8, peer: IpAddr) -> io::Result<()> {
    s.set_nodelay(true)?;
    set_ttl(s.as_raw_fd(), ttl, peer)
}

fn set_ttl(fd: std::os::fd::RawFd, ttl: u8, peer: IpAddr) -> io::Result<()> {
    let ttl: libc::c_int = ttl.max(1).into();
    let (level, name) = match peer {
        IpAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_TTL),
        IpAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS),
    };
    // SAFETY: fd is a valid open socket owned by the caller for the duration of the call;
    // the option value points to a live c_int of the length passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&ttl as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
