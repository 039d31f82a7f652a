//! The `ipsecgw` command: run the gateway, check a config, talk to a running gateway, demo.

use clap::{Parser, Subcommand};
use ipsecgw::config::{self, DEFAULT_CONTROL_SOCKET};
use ipsecgw::control::{self, ActionResult, BgpReport, Command, Request, StatusReport};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes of interface.md: 0 ok, 1 usage/config error, 2 runtime failure.
const EXIT_USAGE: u8 = 1;
const EXIT_RUNTIME: u8 = 2;

#[derive(Parser)]
#[command(
    name = "ipsecgw",
    version,
    about = "Userspace IKEv2/IPsec site-to-site VPN gateway with eBGP over the tunnel"
)]
struct Cli {
    /// Control socket of the running gateway (default: the config's, else /run/ipsecgw/control.sock).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    /// The config file (run, check); other commands read the control socket path from it.
    #[arg(long, global = true)]
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
        /// One JSON document instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Show the BGP table (received and announced routes).
    Bgp {
        #[arg(long)]
        json: bool,
    },
    /// Bring a connection up now.
    Initiate { name: String },
    /// Delete a connection's SAs at the peer and tear it down.
    Terminate { name: String },
    /// Rekey a connection's IKE SA (--ike) or its CHILD SAs (--child, the default).
    Rekey {
        name: String,
        #[arg(long, conflicts_with = "child")]
        ike: bool,
        #[arg(long)]
        child: bool,
    },
    /// Two gateways in two network namespaces, IKE + ESP + BGP, traffic across, then clean up.
    Demo,
    /// Print every IKE/ESP proposal keyword this build supports, with IANA ID and RFC.
    ListAlgorithms,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.cmd {
        Cmd::Run => {
            let Some(path) = cli.config.as_deref() else {
                eprintln!("ipsecgw run: --config FILE is required");
                return ExitCode::from(EXIT_USAGE);
            };
            let cfg = match config::load(path) {
                Ok(c) => c,
                Err(errs) => {
                    errs.iter().for_each(|e| eprintln!("{e}"));
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            ipsecgw::daemon::init_logging(cfg.global.log_level.as_str());
            match ipsecgw::daemon::run(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ipsecgw: {e}");
                    ExitCode::from(EXIT_RUNTIME)
                }
            }
        }
        Cmd::Check => {
            let Some(path) = cli.config.as_deref() else {
                eprintln!("ipsecgw check: --config FILE is required");
                return ExitCode::from(EXIT_USAGE);
            };
            match config::load(path) {
                Ok(c) => {
                    c.warnings.iter().for_each(|w| println!("{w}"));
                    println!(
                        "{}: OK, {} connection(s)",
                        path.display(),
                        c.connections.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(errs) => {
                    errs.iter().for_each(|e| println!("{e}"));
                    ExitCode::from(EXIT_USAGE)
                }
            }
        }
        Cmd::Demo => ipsecgw::demo::run(),
        Cmd::ListAlgorithms => {
            print!("{}", ipsecgw::crypto::list_algorithms());
            ExitCode::SUCCESS
        }
        cmd => client(cli.socket, cli.config, cmd),
    }
}

fn client(socket: Option<PathBuf>, config: Option<PathBuf>, cmd: Cmd) -> ExitCode {
    let socket = socket
        .or_else(|| {
            config
                .and_then(|p| config::load(&p).ok())
                .map(|c| c.global.control_socket)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET));
    let (command, json) = match &cmd {
        Cmd::Status { json } => (Command::Status, *json),
        Cmd::Bgp { json } => (Command::Bgp { name: None }, *json),
        Cmd::Initiate { name } => (Command::Initiate { name: name.clone() }, false),
        Cmd::Terminate { name } => (Command::Terminate { name: name.clone() }, false),
        Cmd::Rekey { name, ike, .. } => (
            Command::Rekey {
                name: name.clone(),
                ike: *ike,
            },
            false,
        ),
        Cmd::Run | Cmd::Check | Cmd::Demo | Cmd::ListAlgorithms => unreachable!("handled in main"),
    };
    let resp = match control::request(&socket, &Request::new(command.clone())) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ipsecgw: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let printed = match command {
        Command::Status => resp.into_result::<StatusReport>().map(|r| {
            if json {
                serde_json::to_string_pretty(&r).unwrap_or_default() + "\n"
            } else {
                control::render_table(&r)
            }
        }),
        Command::Bgp { .. } => resp.into_result::<BgpReport>().map(|r| {
            if json {
                serde_json::to_string_pretty(&r).unwrap_or_default() + "\n"
            } else {
                control::render_bgp_table(&r)
            }
        }),
        _ => resp.into_result::<ActionResult>().map(|r| r.message + "\n"),
    };
    match printed {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ipsecgw: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
