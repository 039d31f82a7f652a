//! Where the daemon's log lines go, and in which shape:
//! - a terminal gets colour (unless `NO_COLOR` is set), a file or pipe plain text;
//! - under systemd (`JOURNAL_STREAM` set) each line is `<N>message` with the syslog priority
//!   the journal understands, no timestamp (the journal adds its own) and no colour;
//! - `log_format = "json"`: one JSON object per line, for log shippers;
//! - every line also goes to `ipsecgw log` clients over the control socket.

use crate::config::LogFormat;
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::sync::OnceLock;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Lines for `ipsecgw log` clients: (level, text).
static FOLLOWERS: OnceLock<broadcast::Sender<(Level, String)>> = OnceLock::new();

fn followers() -> &'static broadcast::Sender<(Level, String)> {
    FOLLOWERS.get_or_init(|| broadcast::channel(1024).0)
}

/// How stderr is written, decided once from the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Human text; colour only when stderr is a terminal and NO_COLOR is unset.
    Text {
        colour: bool,
    },
    /// systemd's journal: `<priority>message`, no time, no colour.
    Journal,
    Json,
}

impl Style {
    pub fn from_env(format: LogFormat) -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        match format {
            LogFormat::Json => Style::Json,
            _ if std::env::var_os("JOURNAL_STREAM").is_some() => Style::Journal,
            LogFormat::Text => Style::Text {
                colour: std::io::stderr().is_terminal() && !no_color,
            },
        }
    }
}

/// Sets up `tracing`. `RUST_LOG` overrides the configured level.
pub fn init(level: &str, format: LogFormat) {
    let filter = || {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            EnvFilter::new(format!("ipsecgw={level},warn,netlink_packet_route=error"))
        })
    };
    let style = Style::from_env(format);
    let registry = tracing_subscriber::registry().with(Followers.with_filter(filter()));
    let _ = match style {
        Style::Text { colour } => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(colour)
                    .with_writer(std::io::stderr)
                    .with_filter(filter()),
            )
            .try_init(),
        Style::Journal | Style::Json => registry
            .with(Lines { style }.with_filter(filter()))
            .try_init(),
    };
}

/// Log lines from now on, at `min` or more severe, until the returned receiver is dropped.
pub fn subscribe() -> broadcast::Receiver<(Level, String)> {
    followers().subscribe()
}

/// Parses "error".."trace" (the config's levels).
pub fn parse_level(text: &str) -> Option<Level> {
    text.parse().ok()
}

/// The message and fields of one event.
#[derive(Default)]
struct Fields {
    message: String,
    rest: Map<String, Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.rest.insert(field.name().into(), value.into());
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rest.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rest.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.rest.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.rest
                .insert(field.name().into(), format!("{value:?}").into());
        }
    }
}

impl Fields {
    fn of(event: &Event<'_>) -> Fields {
        let mut f = Fields::default();
        event.record(&mut f);
        f
    }

    /// "message key=value ..." as the text formatter prints it.
    fn text(&self) -> String {
        let mut out = self.message.clone();
        for (k, v) in &self.rest {
            match v {
                Value::String(s) => {
                    let _ = write!(out, " {k}={s}");
                }
                other => {
                    let _ = write!(out, " {k}={other}");
                }
            }
        }
        out
    }
}

/// syslog priority of a level (sd-daemon(3) prefixes).
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// The journal and JSON writers.
struct Lines {
    style: Style,
}

impl<S: Subscriber> Layer<S> for Lines {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let fields = Fields::of(event);
        let line = match self.style {
            Style::Json => {
                let mut obj = Map::new();
                obj.insert("timestamp".into(), unix_time().into());
                obj.insert("level".into(), meta.level().as_str().into());
                obj.insert("target".into(), meta.target().into());
                obj.insert("message".into(), fields.message.clone().into());
                if !fields.rest.is_empty() {
                    obj.insert("fields".into(), Value::Object(fields.rest));
                }
                Value::Object(obj).to_string()
            }
            _ => format!(
                "<{}>{}: {}",
                priority(meta.level()),
                meta.target(),
                fields.text()
            ),
        };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }
}

/// Seconds since the epoch with milliseconds (the only clock read is for the log line).
fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0)
}

/// Feeds `ipsecgw log` clients; costs nothing while none is connected.
struct Followers;

impl<S: Subscriber> Layer<S> for Followers {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let tx = followers();
        if tx.receiver_count() == 0 {
            return;
        }
        let meta = event.metadata();
        let line = format!(
            "{:>5} {}: {}",
            meta.level(),
            meta.target(),
            Fields::of(event).text()
        );
        let _ = tx.send((*meta.level(), line));
    }
}

/// `ipsecgw log`: forwards log lines at `level` or more severe until the client goes away.
pub(super) fn follow_log(
    level: Option<&str>,
    progress: crate::control::Progress,
    reply: tokio::sync::oneshot::Sender<crate::control::Response>,
) {
    let min = match level.map(parse_level) {
        None => tracing::Level::TRACE,
        Some(Some(l)) => l,
        Some(None) => {
            let _ = reply.send(crate::control::Response::error(format!(
                "unknown log level \"{}\" (error, warn, info, debug, trace)",
                level.unwrap_or_default()
            )));
            return;
        }
    };
    let mut rx = subscribe();
    let _ = progress.send(format!(
        "following the log of ipsecgw {} (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    ));
    tokio::spawn(async move {
        // The reply is never sent: the stream ends when the client or the daemon goes.
        let _reply = reply;
        loop {
            match rx.recv().await {
                Ok((l, line)) if l <= min => {
                    if progress.send(line).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    if progress
                        .send(format!("({n} log lines skipped: client too slow)"))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
            if progress.is_closed() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_text_styles_from_env() {
        assert_eq!(Style::from_env(LogFormat::Json), Style::Json);
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::DEBUG), 7);
        assert_eq!(parse_level("warn"), Some(Level::WARN));
        assert_eq!(parse_level("loud"), None);
    }
}
