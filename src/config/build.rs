//! Turns the spanned TOML tree into a typed `Config`, collecting every problem on the way.
//!
//! Pattern: each section reads its keys with fallbacks so validation can go on after an error;
//! a section whose reading added errors yields None, and cross-field checks only run on parts
//! that were valid (so one typo produces one error, not a cascade).

use std::net::{IpAddr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::tree::{self, Entry, Kind, LineIndex, Node};
use super::*;
use crate::crypto::proposal::{parse_esp, parse_ike};

type Span = Option<Range<usize>>;

const GLOBAL_KEYS: &[&str] = &[
    "control_socket",
    "log_level",
    "metrics_listen",
    "retransmit_timeout",
    "retransmit_base",
    "retransmit_tries",
    "cookie_threshold",
];
const CONNECTION_KEYS: &[&str] = &[
    "name",
    "local_addrs",
    "remote_addrs",
    "local_id",
    "remote_id",
    "psk_file",
    "psk_file_insecure",
    "psk",
    "ike_proposals",
    "start_action",
    "encap",
    "rekey_time",
    "dpd_delay",
    "dpd_action",
    "local_port",
    "remote_port",
    "children",
    "tunnel",
    "bgp",
];
const CHILD_KEYS: &[&str] = &[
    "name",
    "local_ts",
    "remote_ts",
    "esp_proposals",
    "rekey_time",
    "replay_window",
];
const TUNNEL_KEYS: &[&str] = &["interface", "address", "mtu", "routes"];
const BGP_KEYS: &[&str] = &[
    "local_as",
    "peer_as",
    "peer_address",
    "local_address",
    "multihop",
    "hold_time",
    "connect_retry",
    "passive",
    "networks",
    "export",
    "import_local_pref",
    "max_prefixes",
    "router_id",
    "port",
    "route_source",
];
const TOP_KEYS: &[&str] = &["global", "connection"];

/// Every section with its keys, to say where a misplaced key belongs.
const SECTIONS: &[(&str, &[&str])] = &[
    ("[global]", GLOBAL_KEYS),
    ("[[connection]]", CONNECTION_KEYS),
    ("[[connection.children]]", CHILD_KEYS),
    ("[connection.tunnel]", TUNNEL_KEYS),
    ("[connection.bgp]", BGP_KEYS),
];

const DEFAULT_IKE_PROPOSALS: &[&str] = &["aes256-sha256-modp2048", "aes256-sha1-modp1024"];
const DEFAULT_ESP_PROPOSALS: &[&str] = &["aes256-sha1"];
const MIN_PSK_LEN: usize = 8;

struct Ctx<'a> {
    file: &'a str,
    lines: LineIndex,
    base_dir: Option<&'a Path>,
    errors: Vec<ConfigError>,
}

impl Ctx<'_> {
    fn line(&self, span: &Span) -> usize {
        span.as_ref()
            .map(|s| self.lines.line_of(s.start))
            .unwrap_or(1)
    }

    fn err(&mut self, span: &Span, message: impl Into<String>) {
        let line = self.line(span);
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line,
            message: message.into(),
        });
    }
}

/// A table being read: its display name (for messages), header span and entries.
#[derive(Clone, Copy)]
struct Section<'n> {
    name: &'static str,
    span: &'n Span,
    entries: &'n [Entry],
}

impl<'n> Section<'n> {
    fn from_node(name: &'static str, node: &'n Node, ctx: &mut Ctx) -> Option<Section<'n>> {
        match &node.kind {
            Kind::Table(entries) => Some(Section {
                name,
                span: &node.span,
                entries,
            }),
            other => {
                ctx.err(
                    &node.span,
                    format!("{name} must be a table, found {}", other.type_name()),
                );
                None
            }
        }
    }

    /// Reports keys not in `known`, suggesting the closest known key or the right section.
    fn check_keys(&self, ctx: &mut Ctx, known: &[&str]) {
        for entry in self.entries {
            if known.contains(&entry.key.as_str()) {
                continue;
            }
            let mut msg = format!("unknown key `{}` in {}", entry.key, self.name);
            if let Some(close) = closest(&entry.key, known) {
                msg.push_str(&format!(" (did you mean `{close}`?)"));
            } else if let Some((section, _)) = SECTIONS
                .iter()
                .find(|(s, keys)| *s != self.name && keys.contains(&entry.key.as_str()))
            {
                msg.push_str(&format!(" (it belongs in {section})"));
            }
            ctx.err(&entry.key_span, msg);
        }
    }

    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    fn missing(&self, ctx: &mut Ctx, key: &str) {
        ctx.err(
            self.span,
            format!("missing required key `{key}` in {}", self.name),
        );
    }

    fn type_err(ctx: &mut Ctx, key: &str, node: &Node, expected: &str) {
        ctx.err(
            &node.span,
            format!(
                "`{key}` must be {expected}, found {}",
                node.kind.type_name()
            ),
        );
    }

    fn string(&self, ctx: &mut Ctx, key: &str) -> Option<(&'n str, &'n Node)> {
        let node = self.get(key)?;
        match &node.kind {
            Kind::Str(s) => Some((s.as_str(), node)),
            _ => {
                Self::type_err(ctx, key, node, "a string");
                None
            }
        }
    }

    /// A string value converted by `parse`; conversion errors are reported at the value.
    fn parsed<T>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let (text, node) = self.string(ctx, key)?;
        match parse(text) {
            Ok(v) => Some(v),
            Err(e) => {
                ctx.err(&node.span, format!("`{key}`: {e}"));
                None
            }
        }
    }

    fn required<T>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        if self.get(key).is_none() {
            self.missing(ctx, key);
            return None;
        }
        self.parsed(ctx, key, parse)
    }

    /// A list of strings (a single string is accepted as a one-element list), each converted
    /// by `parse`. Returns None when absent or when any element was bad.
    fn list<T>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        let node = self.get(key)?;
        let items: Vec<&Node> = match &node.kind {
            Kind::Array(items) => items.iter().collect(),
            Kind::Str(_) => vec![node],
            _ => {
                Self::type_err(ctx, key, node, "a list of strings");
                return None;
            }
        };
        let before = ctx.errors.len();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match &item.kind {
                Kind::Str(s) => match parse(s) {
                    Ok(v) => out.push(v),
                    Err(e) => ctx.err(&item.span, format!("`{key}`: {e}")),
                },
                other => ctx.err(
                    &item.span,
                    format!(
                        "`{key}` entries must be strings, found {}",
                        other.type_name()
                    ),
                ),
            }
        }
        (ctx.errors.len() == before).then_some(out)
    }

    fn int(&self, ctx: &mut Ctx, key: &str, range: RangeInclusive<i64>) -> Option<i64> {
        let node = self.get(key)?;
        match &node.kind {
            Kind::Int(i) if range.contains(i) => Some(*i),
            Kind::Int(i) => {
                ctx.err(
                    &node.span,
                    format!(
                        "`{key}` = {i} is out of range ({}..={})",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
            Kind::Str(s) if s.trim().parse::<i64>().is_ok() => {
                ctx.err(
                    &node.span,
                    format!(
                        "`{key}` must be an integer without quotes ({key} = {})",
                        s.trim()
                    ),
                );
                None
            }
            _ => {
                Self::type_err(ctx, key, node, "an integer");
                None
            }
        }
    }

    fn float(&self, ctx: &mut Ctx, key: &str) -> Option<f64> {
        let node = self.get(key)?;
        match &node.kind {
            Kind::Float(f) => Some(*f),
            Kind::Int(i) => Some(*i as f64),
            _ => {
                Self::type_err(ctx, key, node, "a number");
                None
            }
        }
    }

    fn boolean(&self, ctx: &mut Ctx, key: &str) -> Option<bool> {
        let node = self.get(key)?;
        match &node.kind {
            Kind::Bool(b) => Some(*b),
            _ => {
                Self::type_err(ctx, key, node, "true or false");
                None
            }
        }
    }

    fn duration(&self, ctx: &mut Ctx, key: &str) -> Option<Duration> {
        let node = self.get(key)?;
        match &node.kind {
            Kind::Str(s) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    ctx.err(&node.span, format!("`{key}`: {e}"));
                    None
                }
            },
            Kind::Int(i) => {
                ctx.err(
                    &node.span,
                    format!("`{key}`: durations need a unit, write {key} = \"{i}s\" (units: ms, s, m, h, d)"),
                );
                None
            }
            _ => {
                Self::type_err(ctx, key, node, "a duration string like \"10s\"");
                None
            }
        }
    }

    /// One of a fixed set of keywords.
    fn keyword<T: Copy>(&self, ctx: &mut Ctx, key: &str, choices: &[(&str, T)]) -> Option<T> {
        let (text, node) = self.string(ctx, key)?;
        if let Some((_, v)) = choices.iter().find(|(k, _)| *k == text) {
            return Some(*v);
        }
        let names: Vec<&str> = choices.iter().map(|(k, _)| *k).collect();
        let mut msg = format!("`{key}` = \"{text}\" is not one of {}", names.join(", "));
        if let Some(close) = closest(text, &names) {
            msg.push_str(&format!(" (did you mean \"{close}\"?)"));
        }
        ctx.err(&node.span, msg);
        None
    }

    fn subtable(&self, ctx: &mut Ctx, key: &str, name: &'static str) -> Option<Section<'n>> {
        Section::from_node(name, self.get(key)?, ctx)
    }

    /// `[[key]]` tables (an inline array of tables is accepted too).
    fn tables(&self, ctx: &mut Ctx, key: &str, name: &'static str) -> Vec<Section<'n>> {
        let Some(node) = self.get(key) else {
            return Vec::new();
        };
        match &node.kind {
            Kind::Array(items) => items
                .iter()
                .filter_map(|item| Section::from_node(name, item, ctx))
                .collect(),
            Kind::Table(_) => {
                ctx.err(
                    &node.span,
                    format!("`{key}` must be an array of tables: write {name}"),
                );
                Vec::new()
            }
            other => {
                ctx.err(
                    &node.span,
                    format!(
                        "`{key}` must be an array of tables ({name}), found {}",
                        other.type_name()
                    ),
                );
                Vec::new()
            }
        }
    }

    fn span_of(&self, key: &str) -> Span {
        self.get(key)
            .map(|n| n.span.clone())
            .unwrap_or_else(|| self.span.clone())
    }
}

/// Edit distance with adjacent transpositions (optimal string alignment), for "did you mean":
/// `mut` -> `mtu` is one edit, as a human sees it.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

pub(super) fn build(
    text: &str,
    file: &str,
    base_dir: Option<&Path>,
) -> Result<Config, Vec<ConfigError>> {
    let mut ctx = Ctx {
        file,
        lines: LineIndex::new(text),
        base_dir,
        errors: Vec::new(),
    };
    let root = match tree::parse(text) {
        Ok(root) => root,
        Err((offset, message)) => {
            let line = offset.map(|o| ctx.lines.line_of(o)).unwrap_or(1);
            return Err(vec![ConfigError {
                file: file.into(),
                line,
                message: format!("TOML syntax error: {message}"),
            }]);
        }
    };
    let Some(top) = Section::from_node("the top level", &root, &mut ctx) else {
        return Err(ctx.errors);
    };
    top.check_keys(&mut ctx, TOP_KEYS);

    let global = match top.subtable(&mut ctx, "global", "[global]") {
        Some(section) => global(&mut ctx, section),
        None => Some(Global::default()),
    };

    let sections = top.tables(&mut ctx, "connection", "[[connection]]");
    if sections.is_empty() && top.get("connection").is_none() {
        ctx.err(&None, "no [[connection]] defined");
    }
    let mut connections = Vec::new();
    let mut names: Vec<(String, Span)> = Vec::new();
    let mut interfaces: Vec<(String, Span)> = Vec::new();
    for section in sections {
        if let Some((name, node)) = section.string(&mut ctx, "name") {
            if let Some((_, first)) = names.iter().find(|(n, _)| n == name) {
                let first_line = ctx.line(first);
                ctx.err(
                    &node.span,
                    format!(
                        "duplicate connection name \"{name}\" (first defined on line {first_line})"
                    ),
                );
            }
            names.push((name.to_string(), node.span.clone()));
        }
        if let Some(conn) = connection(&mut ctx, section) {
            if let Some(tunnel) = &conn.tunnel {
                let span = section
                    .get("tunnel")
                    .map(|n| n.span.clone())
                    .unwrap_or(None);
                if let Some((_, first)) = interfaces.iter().find(|(i, _)| *i == tunnel.interface) {
                    let first_line = ctx.line(first);
                    ctx.err(
                        &span,
                        format!(
                            "tunnel interface \"{}\" is already used by another connection (line {first_line})",
                            tunnel.interface
                        ),
                    );
                }
                interfaces.push((tunnel.interface.clone(), span));
            }
            connections.push(conn);
        }
    }

    // Report in file order, as a compiler would (stable: same-line errors keep their order).
    ctx.errors.sort_by_key(|e| e.line);
    match global {
        Some(global) if ctx.errors.is_empty() => Ok(Config {
            global,
            connections,
            path: PathBuf::from(file),
        }),
        _ => Err(ctx.errors),
    }
}

fn global(ctx: &mut Ctx, s: Section) -> Option<Global> {
    let before = ctx.errors.len();
    s.check_keys(ctx, GLOBAL_KEYS);
    let d = Global::default();
    let levels = [
        ("error", LogLevel::Error),
        ("warn", LogLevel::Warn),
        ("info", LogLevel::Info),
        ("debug", LogLevel::Debug),
        ("trace", LogLevel::Trace),
    ];
    let control_socket = s
        .parsed(ctx, "control_socket", |p| {
            if Path::new(p).is_absolute() {
                Ok(PathBuf::from(p))
            } else {
                Err(format!("\"{p}\" must be an absolute path"))
            }
        })
        .unwrap_or(d.control_socket);
    let log_level = s.keyword(ctx, "log_level", &levels).unwrap_or(d.log_level);
    let metrics_listen = s.parsed(ctx, "metrics_listen", |a| {
        a.parse::<SocketAddr>()
            .map_err(|_| format!("\"{a}\" is not an address:port like \"127.0.0.1:9813\""))
    });
    let retransmit_timeout = s
        .duration(ctx, "retransmit_timeout")
        .unwrap_or(d.retransmit_timeout);
    if retransmit_timeout.is_zero() {
        ctx.err(
            &s.span_of("retransmit_timeout"),
            "`retransmit_timeout` must be longer than 0s",
        );
    }
    let retransmit_base = s.float(ctx, "retransmit_base").unwrap_or(d.retransmit_base);
    if !(1.0..=10.0).contains(&retransmit_base) {
        ctx.err(
            &s.span_of("retransmit_base"),
            format!("`retransmit_base` = {retransmit_base} must be between 1.0 and 10.0"),
        );
    }
    let retransmit_tries = s
        .int(ctx, "retransmit_tries", 0..=20)
        .map(|v| v as u32)
        .unwrap_or(d.retransmit_tries);
    let cookie_threshold = s
        .int(ctx, "cookie_threshold", 0..=1_000_000)
        .map(|v| v as u32)
        .unwrap_or(d.cookie_threshold);
    (ctx.errors.len() == before).then_some(Global {
        control_socket,
        log_level,
        metrics_listen,
        retransmit_timeout,
        retransmit_base,
        retransmit_tries,
        cookie_threshold,
    })
}

fn valid_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("\"{name}\" must be 1 to 64 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "\"{name}\" may only contain letters, digits, '_' and '-'"
        ));
    }
    Ok(name.to_string())
}

fn ip(text: &str) -> Result<IpAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("\"{text}\" is not an IP address"))
}

/// An address, or None for "%any".
fn ip_or_any(text: &str) -> Result<Option<IpAddr>, String> {
    if text.trim() == "%any" {
        Ok(None)
    } else {
        ip(text).map(Some).map_err(|e| format!("{e} (or \"%any\")"))
    }
}

fn prefix(text: &str) -> Result<IpPrefix, String> {
    text.parse()
}

fn connection(ctx: &mut Ctx, s: Section) -> Option<Connection> {
    let before = ctx.errors.len();
    s.check_keys(ctx, CONNECTION_KEYS);

    let name = s.required(ctx, "name", valid_name).unwrap_or_default();
    // local_addrs: addresses, or ["%any"] / absent (swanctl's default): every address of the host.
    let mut local_any = s.get("local_addrs").is_none();
    let local_addrs = match s.list(ctx, "local_addrs", ip_or_any) {
        Some(v) if v.is_empty() => {
            ctx.err(
                &s.span_of("local_addrs"),
                "`local_addrs` must list at least one address (or [\"%any\"])",
            );
            Vec::new()
        }
        Some(v) if v.iter().any(Option::is_none) => {
            if v.len() > 1 {
                ctx.err(
                    &s.span_of("local_addrs"),
                    "`%any` must stand alone in `local_addrs`",
                );
            }
            local_any = true;
            Vec::new()
        }
        Some(v) => v.into_iter().flatten().collect(),
        None => Vec::new(),
    };

    // remote_addrs: addresses, or exactly ["%any"].
    let mut remote_any = false;
    let remote_addrs = match s.list(ctx, "remote_addrs", ip_or_any) {
        Some(v) if v.is_empty() => {
            ctx.err(
                &s.span_of("remote_addrs"),
                "`remote_addrs` must not be empty (use [\"%any\"] to accept any peer)",
            );
            Vec::new()
        }
        Some(v) => {
            remote_any = v.iter().any(Option::is_none);
            if remote_any && v.len() > 1 {
                ctx.err(
                    &s.span_of("remote_addrs"),
                    "`remote_addrs`: \"%any\" cannot be combined with addresses",
                );
            }
            v.into_iter().flatten().collect()
        }
        None => {
            if s.get("remote_addrs").is_none() {
                s.missing(ctx, "remote_addrs");
            }
            Vec::new()
        }
    };
    if let (Some(l), Some(r)) = (local_addrs.first(), remote_addrs.first()) {
        if l.is_ipv4() != r.is_ipv4() {
            ctx.err(
                &s.span_of("remote_addrs"),
                format!("`remote_addrs`: {r} and local address {l} are not the same IP version"),
            );
        }
    }

    let local_id = s
        .parsed(ctx, "local_id", |t| t.parse::<Identity>())
        .or_else(|| local_addrs.first().map(|a| Identity::Addr(*a)));
    if local_any && local_id.is_none() && s.get("local_id").is_none() {
        ctx.err(
            s.span,
            "[[connection]] needs `local_id` when `local_addrs` is %any",
        );
    }
    let remote_id = s
        .parsed(ctx, "remote_id", |t| t.parse::<Identity>())
        .or_else(|| remote_addrs.first().map(|a| Identity::Addr(*a)));

    let psk = psk(ctx, s);

    let ike_proposals = proposals(ctx, s, "ike_proposals", DEFAULT_IKE_PROPOSALS, parse_ike);
    let start_action = s
        .keyword(
            ctx,
            "start_action",
            &[("start", StartAction::Start), ("none", StartAction::None)],
        )
        .unwrap_or(StartAction::Start);
    if remote_any && start_action == StartAction::Start {
        ctx.err(
            &s.span_of("start_action"),
            "remote_addrs = [\"%any\"] cannot be initiated: set start_action = \"none\" (responder only)",
        );
    }
    let encap = s
        .keyword(
            ctx,
            "encap",
            &[("auto", Encap::Auto), ("always", Encap::Always)],
        )
        .unwrap_or(Encap::Auto);
    let rekey_time = positive_duration(ctx, s, "rekey_time", Duration::from_secs(4 * 3600));
    let dpd_delay = s
        .duration(ctx, "dpd_delay")
        .unwrap_or(Duration::from_secs(10));
    let dpd_delay = (!dpd_delay.is_zero()).then_some(dpd_delay);
    let dpd_action = s
        .keyword(
            ctx,
            "dpd_action",
            &[("restart", DpdAction::Restart), ("clear", DpdAction::Clear)],
        )
        .unwrap_or(DpdAction::Restart);
    let local_port = s
        .int(ctx, "local_port", 1..=65535)
        .map(|p| p as u16)
        .unwrap_or(500);
    let remote_port = s
        .int(ctx, "remote_port", 1..=65535)
        .map(|p| p as u16)
        .unwrap_or(500);

    let child_sections = s.tables(ctx, "children", "[[connection.children]]");
    if child_sections.is_empty() && s.get("children").is_none() {
        ctx.err(
            s.span,
            "connection needs at least one [[connection.children]]",
        );
    }
    let mut children: Vec<Child> = Vec::new();
    let mut child_names: Vec<(String, Span)> = Vec::new();
    for cs in child_sections {
        if let Some((child_name, node)) = cs.string(ctx, "name") {
            if let Some((_, first)) = child_names.iter().find(|(n, _)| n == child_name) {
                let first_line = ctx.line(first);
                ctx.err(&node.span, format!("duplicate child name \"{child_name}\" (first defined on line {first_line})"));
            }
            child_names.push((child_name.to_string(), node.span.clone()));
        }
        if let Some(child) = child(ctx, cs) {
            children.push(child);
        }
    }

    let tunnel_section = s.subtable(ctx, "tunnel", "[connection.tunnel]");
    let tunnel = tunnel_section.and_then(|t| tunnel(ctx, t));
    let bgp_section = s.subtable(ctx, "bgp", "[connection.bgp]");
    let bgp = match bgp_section {
        Some(b) if s.get("tunnel").is_none() => {
            ctx.err(
                b.span,
                "[connection.bgp] needs a [connection.tunnel] to run over",
            );
            None
        }
        Some(b) => bgp(
            ctx,
            b,
            tunnel.as_ref(),
            tunnel_section.is_some() && tunnel.is_none(),
            &local_addrs,
        ),
        None => None,
    };

    if ctx.errors.len() != before {
        return None;
    }
    Some(Connection {
        name,
        local_addrs,
        remote_addrs,
        local_id: local_id?,
        remote_id,
        psk: psk?,
        ike_proposals,
        start_action,
        encap,
        rekey_time,
        dpd_delay,
        dpd_action,
        local_port,
        remote_port,
        children,
        tunnel,
        bgp,
    })
}

fn positive_duration(ctx: &mut Ctx, s: Section, key: &str, default: Duration) -> Duration {
    let d = s.duration(ctx, key).unwrap_or(default);
    if d.is_zero() {
        ctx.err(&s.span_of(key), format!("`{key}` must be longer than 0s"));
    }
    d
}

fn proposals<T>(
    ctx: &mut Ctx,
    s: Section,
    key: &str,
    defaults: &[&str],
    parse: fn(&str) -> Result<T, String>,
) -> Vec<T> {
    match s.list(ctx, key, parse) {
        Some(v) if v.is_empty() => {
            ctx.err(
                &s.span_of(key),
                format!("`{key}` must list at least one proposal"),
            );
            v
        }
        Some(v) => v,
        None => defaults.iter().filter_map(|p| parse(p).ok()).collect(),
    }
}

/// Reads the PSK from exactly one of `psk` / `psk_file`, checking the file's permissions.
fn psk(ctx: &mut Ctx, s: Section) -> Option<Psk> {
    let insecure_ok = s.boolean(ctx, "psk_file_insecure").unwrap_or(false);
    let (secret, span) = match (s.get("psk"), s.get("psk_file")) {
        (Some(_), Some(file_node)) => {
            ctx.err(&file_node.span, "give either `psk` or `psk_file`, not both");
            return None;
        }
        (None, None) => {
            ctx.err(s.span, "missing `psk_file` (or `psk`) in [[connection]]");
            return None;
        }
        (Some(_), None) => {
            let (text, node) = s.string(ctx, "psk")?;
            (Zeroizing::new(text.to_string()), node.span.clone())
        }
        (None, Some(_)) => {
            let (file, node) = s.string(ctx, "psk_file")?;
            let path = match ctx.base_dir {
                Some(dir) if Path::new(file).is_relative() => dir.join(file),
                _ => PathBuf::from(file),
            };
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    ctx.err(
                        &node.span,
                        format!("`psk_file`: cannot read {}: {e}", path.display()),
                    );
                    return None;
                }
            };
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 && !insecure_ok {
                ctx.err(
                    &node.span,
                    format!(
                        "`psk_file`: {} is readable by group/others (mode {mode:04o}); run `chmod 600 {}` \
                         or set psk_file_insecure = true",
                        path.display(),
                        path.display()
                    ),
                );
                return None;
            }
            // Every copy of the key is wiped when dropped, the raw file bytes included.
            match std::fs::read(&path).map(Zeroizing::new) {
                Ok(bytes) => match std::str::from_utf8(&bytes) {
                    // Only the trailing newline an editor adds is dropped; inner spaces are key material.
                    Ok(text) => (
                        Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_string()),
                        node.span.clone(),
                    ),
                    Err(_) => {
                        ctx.err(
                            &node.span,
                            format!(
                                "`psk_file`: {} is not UTF-8 text (use 0x… hex)",
                                path.display()
                            ),
                        );
                        return None;
                    }
                },
                Err(e) => {
                    ctx.err(
                        &node.span,
                        format!("`psk_file`: cannot read {}: {e}", path.display()),
                    );
                    return None;
                }
            }
        }
    };
    let bytes = match decode_psk(&secret) {
        Ok(b) => b,
        Err(e) => {
            ctx.err(&span, e);
            return None;
        }
    };
    if bytes.len() < MIN_PSK_LEN {
        // Never echo the key itself, only its length.
        ctx.err(
            &span,
            format!(
                "pre-shared key is {} bytes; at least {MIN_PSK_LEN} are required",
                bytes.len()
            ),
        );
        return None;
    }
    Some(Psk(bytes))
}

/// strongSwan-style secrets: `0x…` is hex, anything else is the literal bytes.
fn decode_psk(secret: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let Some(hex) = secret
        .strip_prefix("0x")
        .or_else(|| secret.strip_prefix("0X"))
    else {
        return Ok(Zeroizing::new(secret.as_bytes().to_vec()));
    };
    let hex = hex.trim();
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("pre-shared key starts with 0x but is not an even number of hex digits".into());
    }
    Ok(Zeroizing::new(
        (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .unwrap_or(0)
            })
            .collect(),
    ))
}

fn child(ctx: &mut Ctx, s: Section) -> Option<Child> {
    let before = ctx.errors.len();
    s.check_keys(ctx, CHILD_KEYS);
    let name = s.required(ctx, "name", valid_name).unwrap_or_default();
    let any: IpPrefix = "0.0.0.0/0".parse().ok()?;
    let mut selectors = |key: &str| match s.list(ctx, key, prefix) {
        Some(v) if v.is_empty() => {
            ctx.err(
                &s.span_of(key),
                format!("`{key}` must list at least one prefix"),
            );
            v
        }
        Some(v) => v,
        None => vec![any],
    };
    let local_ts = selectors("local_ts");
    let remote_ts = selectors("remote_ts");
    let esp_proposals = proposals(ctx, s, "esp_proposals", DEFAULT_ESP_PROPOSALS, parse_esp);
    let rekey_time = positive_duration(ctx, s, "rekey_time", Duration::from_secs(3600));
    let replay_window = s
        .int(ctx, "replay_window", 0..=4096)
        .map(|v| v as u32)
        .unwrap_or(64);
    if (1..32).contains(&replay_window) {
        ctx.err(
            &s.span_of("replay_window"),
            format!("`replay_window` = {replay_window}: use 0 (off) or 32..=4096"),
        );
    }
    (ctx.errors.len() == before).then_some(Child {
        name,
        local_ts,
        remote_ts,
        esp_proposals,
        rekey_time,
        replay_window,
    })
}

fn interface_name(name: &str) -> Result<String, String> {
    // Linux IFNAMSIZ is 16 including the NUL.
    if name.is_empty() || name.len() > 15 {
        return Err(format!(
            "\"{name}\" must be 1 to 15 characters (Linux interface name limit)"
        ));
    }
    if name == "."
        || name == ".."
        || !name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
    {
        return Err(format!("\"{name}\" is not a valid interface name"));
    }
    Ok(name.to_string())
}

/// An interface address with prefix length; host bits are meaningful here.
fn interface_address(text: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr = ip(addr)?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => l
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("\"{text}\": bad prefix length"))?,
    };
    Ok((addr, len))
}

fn tunnel(ctx: &mut Ctx, s: Section) -> Option<Tunnel> {
    let before = ctx.errors.len();
    s.check_keys(ctx, TUNNEL_KEYS);
    let interface = s
        .required(ctx, "interface", interface_name)
        .unwrap_or_default();
    let address = s.required(ctx, "address", interface_address);
    let mtu = s
        .int(ctx, "mtu", 576..=9000)
        .map(|v| v as u16)
        .unwrap_or(1400);
    let routes = s.list(ctx, "routes", prefix).unwrap_or_default();
    let (address, prefix_len) = address?;
    (ctx.errors.len() == before).then_some(Tunnel {
        interface,
        address,
        prefix_len,
        mtu,
        routes,
    })
}

/// A required AS number: 1..=4294967295 except AS_TRANS.
fn asn(ctx: &mut Ctx, s: Section, key: &str) -> Option<u32> {
    if s.get(key).is_none() {
        s.missing(ctx, key);
        return None;
    }
    let v = s.int(ctx, key, 1..=u32::MAX as i64)?;
    if v == 23456 {
        ctx.err(
            &s.span_of(key),
            format!("`{key}` = 23456 is AS_TRANS (RFC 6793), not a real AS number"),
        );
        return None;
    }
    Some(v as u32)
}

fn bgp(
    ctx: &mut Ctx,
    s: Section,
    tunnel: Option<&Tunnel>,
    tunnel_bad: bool,
    local_addrs: &[IpAddr],
) -> Option<Bgp> {
    let before = ctx.errors.len();
    s.check_keys(ctx, BGP_KEYS);
    let local_as = asn(ctx, s, "local_as");
    let peer_as = asn(ctx, s, "peer_as");
    if let (Some(l), Some(p)) = (local_as, peer_as) {
        if l == p {
            ctx.err(
                &s.span_of("peer_as"),
                format!("`peer_as` = {p} equals local_as: only eBGP is supported"),
            );
        }
    }
    let peer_address = s.required(ctx, "peer_address", ip);
    let local_address = s
        .parsed(ctx, "local_address", ip)
        .or(tunnel.map(|t| t.address));
    if let (Some(local), Some(t)) = (local_address, tunnel) {
        if local != t.address && !local_addrs.contains(&local) {
            ctx.err(
                &s.span_of("local_address"),
                format!("`local_address` {local} is neither the tunnel address {} nor one of local_addrs", t.address),
            );
        }
    }
    if let (Some(peer), Some(t)) = (peer_address, tunnel) {
        let reachable =
            t.on_link_prefix().contains(peer) || t.routes.iter().any(|r| r.contains(peer));
        if !reachable {
            ctx.err(
                &s.span_of("peer_address"),
                format!(
                    "`peer_address` {peer} is not reachable through tunnel {}: add \"{}\" to [connection.tunnel] routes",
                    t.interface,
                    IpPrefix::host(peer)
                ),
            );
        }
    }
    let multihop = s
        .int(ctx, "multihop", 1..=255)
        .map(|v| v as u8)
        .unwrap_or(1);
    let hold_time = s
        .duration(ctx, "hold_time")
        .unwrap_or(Duration::from_secs(30));
    if !hold_time.is_zero() && hold_time < Duration::from_secs(3) {
        ctx.err(
            &s.span_of("hold_time"),
            "`hold_time` must be 0s (no keepalives) or at least 3s (RFC 4271)",
        );
    } else if hold_time.subsec_millis() != 0 || hold_time.as_secs() > 65535 {
        ctx.err(
            &s.span_of("hold_time"),
            "`hold_time` must be whole seconds up to 65535s",
        );
    }
    let connect_retry = positive_duration(ctx, s, "connect_retry", Duration::from_secs(5));
    let passive = s.boolean(ctx, "passive").unwrap_or(false);
    let networks = s.list(ctx, "networks", prefix).unwrap_or_default();
    let export = match s.list(ctx, "export", |e| e.parse::<PrefixFilter>()) {
        // A `networks` entry that `export` does not permit is legal, as on a router: the
        // prefix-list is the last word on what leaves (the speaker logs what it filters).
        Some(filters) => filters,
        None => networks.iter().copied().map(PrefixFilter::exact).collect(),
    };
    let import_local_pref = s
        .int(ctx, "import_local_pref", 0..=u32::MAX as i64)
        .map(|v| v as u32)
        .unwrap_or(100);
    let max_prefixes = s
        .int(ctx, "max_prefixes", 1..=10_000_000)
        .map(|v| v as u32)
        .unwrap_or(1000);
    let router_id = match s.parsed(ctx, "router_id", |r| {
        r.parse()
            .map_err(|_| format!("\"{r}\" is not an IPv4 address"))
    }) {
        Some(id) => Some(id),
        None if s.get("router_id").is_some() => None,
        None => match local_address {
            Some(IpAddr::V4(a)) => Some(a),
            Some(IpAddr::V6(_)) => {
                ctx.err(s.span, "[connection.bgp] needs `router_id` (an IPv4 address) when local_address is IPv6");
                None
            }
            None => None,
        },
    };
    let port = s
        .int(ctx, "port", 1..=65535)
        .map(|v| v as u16)
        .unwrap_or(179);
    let route_source: Option<IpAddr> = s.parsed(ctx, "route_source", |r| {
        r.parse()
            .map_err(|_| format!("\"{r}\" is not an IP address"))
    });
    if local_address.is_none() && tunnel.is_none() && !tunnel_bad {
        ctx.err(s.span, "[connection.bgp] needs `local_address`");
    }
    if ctx.errors.len() != before || tunnel_bad {
        return None;
    }
    Some(Bgp {
        local_as: local_as?,
        peer_as: peer_as?,
        peer_address: peer_address?,
        local_address: local_address?,
        multihop,
        hold_time,
        connect_retry,
        passive,
        networks,
        export,
        import_local_pref,
        max_prefixes,
        router_id: router_id?,
        port,
        route_source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(closest("lcoal_addrs", CONNECTION_KEYS), Some("local_addrs"));
        assert_eq!(closest("mut", TUNNEL_KEYS), Some("mtu"));
        assert_eq!(closest("zzzzzz", TUNNEL_KEYS), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn psk_hex() {
        assert_eq!(*decode_psk("0x0102ff").unwrap(), vec![1, 2, 255]);
        assert!(decode_psk("0x012").is_err());
        assert_eq!(
            *decode_psk("IamSecure123").unwrap(),
            b"IamSecure123".to_vec()
        );
    }

    #[test]
    fn prefix_filters() {
        let f: PrefixFilter = "10.0.0.0/8 le 24".parse().unwrap();
        assert!(f.matches(&"10.2.30.0/24".parse().unwrap()));
        assert!(f.matches(&"10.0.0.0/8".parse().unwrap()));
        assert!(!f.matches(&"10.2.30.0/25".parse().unwrap()));
        let exact: PrefixFilter = "10.2.30.0/25".parse().unwrap();
        assert!(exact.matches(&"10.2.30.0/25".parse().unwrap()));
        assert!(!exact.matches(&"10.2.30.0/26".parse().unwrap()));
        assert!("10.0.0.0/8 ge 4".parse::<PrefixFilter>().is_err());
        assert!("10.0.0.0/8 ge 24 le 16".parse::<PrefixFilter>().is_err());
        assert_eq!(f.to_string(), "10.0.0.0/8 le 24");
    }
}
