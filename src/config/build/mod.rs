//! Turns the spanned TOML tree into a typed `Config`, one builder per section, collecting
//! every problem on the way.
//!
//! Pattern: each section reads its keys with fallbacks so validation can go on after an error;
//! a section whose reading added errors yields None, and cross-field checks only run on parts
//! that were valid (so one typo produces one error, not a cascade).

mod bgp;
mod child;
mod connection;
mod global;
mod psk;
mod tunnel;

use std::path::{Path, PathBuf};

use super::reader::{Ctx, Section, SectionKeys, Span};
use super::tree::{self, LineIndex};
use super::{Config, ConfigError, ConfigWarning, Global};

const TOP_KEYS: &[&str] = &["global", "connection"];

/// Every section with its keys, to say where a misplaced key belongs.
const SECTIONS: &SectionKeys = &[
    ("[global]", global::KEYS),
    ("[[connection]]", connection::KEYS),
    ("[[connection.children]]", child::KEYS),
    ("[connection.tunnel]", tunnel::KEYS),
    ("[connection.bgp]", bgp::KEYS),
];

pub(super) fn build(
    text: &str,
    file: &str,
    base_dir: Option<&Path>,
) -> Result<Config, Vec<ConfigError>> {
    let mut ctx = Ctx {
        file,
        lines: LineIndex::new(text),
        base_dir,
        sections: SECTIONS,
        errors: Vec::new(),
        warnings: Vec::new(),
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
        Some(section) => global::build(&mut ctx, section),
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
        if let Some(conn) = connection::build(&mut ctx, section) {
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
    ctx.warnings.sort_by_key(|w| w.line);
    match global {
        Some(global) if ctx.errors.is_empty() => Ok(Config {
            global,
            connections,
            path: PathBuf::from(file),
            warnings: ctx.warnings.into_iter().map(ConfigWarning).collect(),
        }),
        _ => Err(ctx.errors),
    }
}

/// A proposal list (absent: `defaults`; present but empty: an error).
fn proposals<T, E: std::fmt::Display>(
    ctx: &mut Ctx,
    s: Section,
    key: &str,
    defaults: &[&str],
    parse: fn(&str) -> Result<T, E>,
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

/// Weak algorithms (modp768, md5, prfmd5, ESP null) are accepted only when written by name:
/// no default offers them, and `check` warns once per list that does.
fn warn_weak<'a>(ctx: &mut Ctx, s: Section, key: &str, weak: impl Iterator<Item = &'a str>) {
    let mut names: Vec<&str> = Vec::new();
    for w in weak {
        if !names.contains(&w) {
            names.push(w);
        }
    }
    if !names.is_empty() {
        ctx.warn(
            &s.span_of(key),
            format!(
                "`{key}` offers weak algorithms ({}): accepted because configured by name; prefer them only where the peer offers nothing better",
                names.join(", ")
            ),
        );
    }
}
