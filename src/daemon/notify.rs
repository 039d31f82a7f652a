//! systemd's service notification protocol (sd_notify(3)): datagrams like `READY=1` to the
//! unix socket named by `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).
//! Without `NOTIFY_SOCKET` (not started by systemd with Type=notify) every call does nothing.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;
use tracing::debug;

pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
    /// Half of `WATCHDOG_USEC`: how often the main loop must say it is alive.
    watchdog: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let bytes = path.as_encoded_bytes();
            let addr = match bytes.strip_prefix(b"@") {
                Some(name) => SocketAddr::from_abstract_name(name),
                None => SocketAddr::from_pathname(&path),
            };
            let addr = addr
                .map_err(|e| debug!("NOTIFY_SOCKET {path:?}: {e}"))
                .ok()?;
            let sock = UnixDatagram::unbound()
                .map_err(|e| debug!("NOTIFY_SOCKET: {e}"))
                .ok()?;
            Some((sock, addr))
        });
        // The watchdog is for us only if WATCHDOG_PID is unset or names this process.
        let ours = std::env::var("WATCHDOG_PID")
            .map_or(true, |p| p.trim() == std::process::id().to_string());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|u| *u > 0 && ours)
            .map(|u| Duration::from_micros(u / 2));
        Notifier { socket, watchdog }
    }

    /// How often `watchdog()` must be called, when systemd watches us.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.filter(|_| self.socket.is_some())
    }

    fn send(&self, text: &str) {
        if let Some((sock, addr)) = &self.socket {
            if let Err(e) = sock.send_to_addr(text.as_bytes(), addr) {
                debug!("sd_notify {text:?}: {e}");
            }
        }
    }

    /// Sockets bound, TUN devices up: systemd may start what comes after us.
    pub fn ready(&self, status: &str) {
        self.send(&format!(
            "READY=1\nMAINPID={}\nSTATUS={status}",
            std::process::id()
        ));
    }

    pub fn reloading(&self) {
        let usec = monotonic_usec();
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// The main loop's heartbeat.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }
}

/// CLOCK_MONOTONIC in microseconds, as `RELOADING=1` wants it (systemd 253+).
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}
