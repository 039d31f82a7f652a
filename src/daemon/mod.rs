//! The gateway process: tokio drives the control plane (the IKE engine, BGP sessions, the
//! control socket, metrics, signals); the packet path runs on the data plane's own threads.
//!
//! One task owns the IKE engine and all per-connection state, so nothing here needs a lock:
//! every input (datagrams, timers, control requests, BGP events, signals) arrives on a
//! channel or a future polled by `Gateway::run`.

mod bgp_glue;
pub mod bgp_task;
mod error;
mod gateway;
mod keylog;
pub mod logging;
mod notify;
mod reload;
mod sockets;
mod status;
mod waiters;

pub use error::DaemonError;
pub use gateway::run_config as run_async;

use crate::config::Config;

/// Sets up `tracing` on stderr (see `logging`). `RUST_LOG` overrides the configured level.
pub fn init_logging(level: &str, format: crate::config::LogFormat) {
    logging::init(level, format);
}

/// Runs the gateway until SIGTERM/SIGINT. Errors are runtime failures (exit code 2).
pub fn run(cfg: Config) -> Result<(), DaemonError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("ipsecgw-ctl")
        .build()
        .map_err(DaemonError::Runtime)?;
    rt.block_on(gateway::run_config(cfg))
}
