//! The `ipsecgw` command: run the gateway, check a config, talk to a running gateway, demo.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use ipsecgw::config::{self, DEFAULT_CONTROL_SOCKET};
use ipsecgw::control::{
    self, ActionResult, BgpReport, Command, ConnList, ReloadReport, Request, StatusReport,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit codes of interface.md: 0 ok, 1 usage/config error, 2 runtime failure.
const EXIT_USAGE: u8 = 1;
const EXIT_RUNTIME: u8 = 2;

/// Where `--config` points unless given (the README and deploy/ipsecgw.service use it).
const DEFAULT_CONFIG: &str = "/etc/ipsecgw/ipsecgw.toml";

#[derive(Parser)]
#[command(
    name = "ipsecgw",
    version,
    about = "Userspace IKEv2/IPsec site-to-site VPN gateway with eBGP over the tunnel"
)]
struct Cli {
    /// Control socket of the running gateway (default: the config's `control_socket`, else
    /// /run/ipsecgw/control.sock).
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The config file. `run`/`check` load it; the other commands take the control socket
    /// from it, and stop with its problems if it cannot be read [default: /etc/ipsecgw/ipsecgw.toml].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway in the foreground until SIGTERM/SIGINT (SIGHUP reloads the config).
    Run,
    /// Validate the config; print every problem as file:line and exit 1 if there is any.
    Check,
    /// Show every configured connection of the running gateway.
    Status {
        /// One JSON document (docs/schema/status-v1.json) instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Show the BGP table (received and announced routes).
    Bgp {
        /// One JSON document (docs/schema/bgp-v1.json) instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Bring a connection up; print the exchanges as they happen and wait for the outcome.
    Initiate {
        /// The connection's `name` in the config.
        name: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Delete a connection's SAs at the peer and tear it down; wait until it is down.
    Terminate {
        /// The connection's `name` in the config.
        name: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Rekey a connection's IKE SA (--ike) or its CHILD SAs (--child, the default); wait
    /// until the new SAs are up.
    Rekey {
        /// The connection's `name` in the config.
        name: String,
        /// Rekey the IKE SA (CREATE_CHILD_SA with a new key exchange).
        #[arg(long, conflicts_with = "child")]
        ike: bool,
        /// Rekey every installed CHILD SA (the default).
        #[arg(long)]
        child: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Make the running gateway re-read its config: print what changed and what restarted;
    /// exit 1 (keeping the running config) if the new one is refused.
    Reload,
    /// The running gateway's connections with every default resolved.
    ListConns {
        /// One JSON document instead of the listing.
        #[arg(long)]
        json: bool,
    },
    /// Stream the running gateway's log lines (like `swanctl --log`) until interrupted.
    Log {
        /// Only lines at this level or more severe: error, warn, info, debug, trace.
        #[arg(long, value_name = "LEVEL")]
        level: Option<String>,
        /// Keep streaming (the default; accepted for familiarity with `journalctl -f`).
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Two gateways in two network namespaces, IKE + ESP + BGP, traffic across, then clean up.
    Demo,
    /// Print every IKE/ESP proposal keyword this build supports, with IANA ID and RFC.
    ListAlgorithms,
    /// Print the configuration reference (every key: type, default, strongSwan equivalent),
    /// as checked in at docs/config-reference.md.
    ConfigReference,
}

#[derive(clap::Args)]
struct Wait {
    /// How long to wait for the outcome ("30s", "2m"); "0s" returns at once without waiting.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    timeout: String,
}

impl Wait {
    fn secs(&self) -> Result<u64, String> {
        config::parse_duration(&self.timeout)
            .map(|d| d.as_secs())
            .map_err(|e| format!("--timeout {}: {e}", self.timeout))
    }
}

/// `--version`: the version, what this build has and what this CPU accelerates.
fn long_version() -> &'static str {
    let cpu = |name: &str, on: bool| format!("{name} {}", if on { "yes" } else { "no" });
    #[cfg(target_arch = "x86_64")]
    let accel = [
        cpu("AES-NI", std::arch::is_x86_feature_detected!("aes")),
        cpu("SHA-NI", std::arch::is_x86_feature_detected!("sha")),
        cpu("VAES", std::arch::is_x86_feature_detected!("vaes")),
        cpu("AVX-512", std::arch::is_x86_feature_detected!("avx512f")),
    ]
    .join(", ");
    #[cfg(not(target_arch = "x86_64"))]
    let accel = String::from("portable code only");
    let text = format!(
        "{version}\n\
         build: {profile}, {arch}-{os}; control protocol v{proto}; status JSON schema v1\n\
         features: IKEv2 (PSK), ESP tunnel mode (raw and UDP 4500), NAT-T, DPD, rekeying, \
         eBGP over the tunnel, netlink routes, Prometheus metrics, systemd notify/watchdog, \
         JSON logs\n\
         CPU acceleration at run time: {accel}\n\n{algs}",
        version = env!("CARGO_PKG_VERSION"),
        profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        arch = std::env::consts::ARCH,
        os = std::env::consts::OS,
        proto = control::PROTOCOL_VERSION,
        algs = ipsecgw::crypto::list_algorithms(),
    );
    Box::leak(text.into_boxed_str())
}

fn main() -> ExitCode {
    let matches = match Cli::command()
        .long_version(long_version())
        .try_get_matches()
    {
        Ok(m) => m,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let config_path = cli.config.clone().unwrap_or_else(|| DEFAULT_CONFIG.into());
    match cli.cmd {
        Cmd::Run => {
            let cfg = match config::load(&config_path) {
                Ok(c) => c,
                Err(errs) => {
                    errs.iter().for_each(|e| eprintln!("{e}"));
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            ipsecgw::daemon::init_logging(cfg.global.log_level.as_str(), cfg.global.log_format);
            match ipsecgw::daemon::run(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ipsecgw: {e}");
                    ExitCode::from(EXIT_RUNTIME)
                }
            }
        }
        Cmd::Check => match config::load(&config_path) {
            Ok(c) => {
                c.warnings.iter().for_each(|w| println!("{w}"));
                println!(
                    "{}: OK, {} connection(s)",
                    config_path.display(),
                    c.connections.len()
                );
                ExitCode::SUCCESS
            }
            Err(errs) => {
                errs.iter().for_each(|e| println!("{e}"));
                ExitCode::from(EXIT_USAGE)
            }
        },
        Cmd::Demo => ipsecgw::demo::run(),
        Cmd::ListAlgorithms => {
            print!("{}", ipsecgw::crypto::list_algorithms());
            ExitCode::SUCCESS
        }
        Cmd::ConfigReference => {
            print!("{}", config::reference::markdown());
            ExitCode::SUCCESS
        }
        cmd => {
            let socket = match control_socket(cli.socket, cli.config.as_deref()) {
                Ok(s) => s,
                Err(problems) => {
                    problems.iter().for_each(|p| eprintln!("{p}"));
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            client(&socket, cmd)
        }
    }
}

/// The socket a client command talks to: `--socket`, else the config's. A config that was
/// named (or exists at the default place) and cannot be read is an error that names it,
/// never a silent fallback to another socket.
fn control_socket(socket: Option<PathBuf>, config: Option<&Path>) -> Result<PathBuf, Vec<String>> {
    if let Some(s) = socket {
        return Ok(s);
    }
    let path = match config {
        Some(p) => p,
        None if !Path::new(DEFAULT_CONFIG).exists() => {
            return Ok(PathBuf::from(DEFAULT_CONTROL_SOCKET))
        }
        None => Path::new(DEFAULT_CONFIG),
    };
    match config::load(path) {
        Ok(c) => Ok(c.global.control_socket),
        Err(errs) => {
            let mut out = vec![format!(
                "ipsecgw: cannot use the config {} to find the control socket:",
                path.display()
            )];
            out.extend(errs.iter().map(|e| format!("  {e}")));
            out.push("(fix it, or name the socket with --socket PATH)".into());
            Err(out)
        }
    }
}

fn client(socket: &Path, cmd: Cmd) -> ExitCode {
    let waiting = |command: Command, wait: &Wait| match wait.secs() {
        Ok(0) => Ok(Request::new(command)),
        Ok(secs) => Ok(Request::waiting(command, secs)),
        Err(e) => Err(e),
    };
    let (request, json) = match &cmd {
        Cmd::Status { json } => (Ok(Request::new(Command::Status)), *json),
        Cmd::Bgp { json } => (Ok(Request::new(Command::Bgp { name: None })), *json),
        Cmd::ListConns { json } => (Ok(Request::new(Command::ListConns)), *json),
        Cmd::Reload => (Ok(Request::new(Command::Reload)), false),
        Cmd::Log { level, .. } => (
            Ok(Request::new(Command::Log {
                level: level.clone(),
            })),
            false,
        ),
        Cmd::Initiate { name, wait } => (
            waiting(Command::Initiate { name: name.clone() }, wait),
            false,
        ),
        Cmd::Terminate { name, wait } => (
            waiting(Command::Terminate { name: name.clone() }, wait),
            false,
        ),
        Cmd::Rekey {
            name, ike, wait, ..
        } => (
            waiting(
                Command::Rekey {
                    name: name.clone(),
                    ike: *ike,
                },
                wait,
            ),
            false,
        ),
        Cmd::Run | Cmd::Check | Cmd::Demo | Cmd::ListAlgorithms | Cmd::ConfigReference => {
            unreachable!("handled in main")
        }
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ipsecgw: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let resp = match control::request_streaming(socket, &request, |line| {
        println!("{line}");
        let _ = std::io::stdout().flush();
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ipsecgw: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let pretty = |v: &dyn erased::Json| v.pretty();
    let printed = match request.command {
        Command::Status => resp.into_result::<StatusReport>().map(|r| {
            if json {
                pretty(&r)
            } else {
                control::render_table(&r)
            }
        }),
        Command::Bgp { .. } => resp.into_result::<BgpReport>().map(|r| {
            if json {
                pretty(&r)
            } else {
                control::render_bgp_table(&r)
            }
        }),
        Command::ListConns => resp.into_result::<ConnList>().map(|r| {
            if json {
                pretty(&r)
            } else {
                control::render_conn_list(&r)
            }
        }),
        Command::Reload => resp
            .into_result::<ReloadReport>()
            .map(|r| control::render_reload(&r)),
        _ => resp.into_result::<ActionResult>().map(|r| r.message + "\n"),
    };
    match printed {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ipsecgw: {e}");
            // A refused reload is a config error; everything else failed at run time.
            if matches!(request.command, Command::Reload) {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    }
}

mod erased {
    /// Pretty JSON of any result type (one line of glue instead of a generic per arm).
    pub trait Json {
        fn pretty(&self) -> String;
    }

    impl<T: serde::Serialize> Json for T {
        fn pretty(&self) -> String {
            serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
        }
    }
}
