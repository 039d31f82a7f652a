//! Reading the spanned TOML tree: typed getters that report every problem as
//! `file:line: message` and keep going, so one run of `check` lists them all.
//!
//! Pattern: a getter returns None when the key is absent or its value was bad (the error is
//! already recorded); builders then fall back to defaults so validation can continue.

use std::fmt::Display;
use std::ops::{Range, RangeInclusive};
use std::path::Path;
use std::time::Duration;

use super::tree::{Entry, Kind, LineIndex, Node};
use super::values::parse_volume;
use super::{parse_duration, ConfigError};

pub(super) type Span = Option<Range<usize>>;

/// The sections of the file with their keys, to say where a misplaced key belongs.
pub(super) type SectionKeys = [(&'static str, &'static [&'static str])];

/// Where errors go, and what the readers need to know about the file.
pub(super) struct Ctx<'a> {
    pub file: &'a str,
    pub lines: LineIndex,
    /// Directory of the config file, for relative `psk_file` paths.
    pub base_dir: Option<&'a Path>,
    pub sections: &'a SectionKeys,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

impl Ctx<'_> {
    pub fn line(&self, span: &Span) -> usize {
        span.as_ref()
            .map(|s| self.lines.line_of(s.start))
            .unwrap_or(1)
    }

    pub fn err(&mut self, span: &Span, message: impl Into<String>) {
        let e = self.at(span, message);
        self.errors.push(e);
    }

    pub fn warn(&mut self, span: &Span, message: impl Into<String>) {
        let w = self.at(span, message);
        self.warnings.push(w);
    }

    fn at(&self, span: &Span, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: self.line(span),
            message: message.into(),
        }
    }
}

/// A table being read: its display name (for messages), header span and entries.
#[derive(Clone, Copy)]
pub(super) struct Section<'n> {
    pub name: &'static str,
    pub span: &'n Span,
    entries: &'n [Entry],
}

impl<'n> Section<'n> {
    pub fn from_node(name: &'static str, node: &'n Node, ctx: &mut Ctx) -> Option<Section<'n>> {
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
    pub fn check_keys(&self, ctx: &mut Ctx, known: &[&str]) {
        for entry in self.entries {
            if known.contains(&entry.key.as_str()) {
                continue;
            }
            let mut msg = format!("unknown key `{}` in {}", entry.key, self.name);
            if let Some(close) = closest(&entry.key, known) {
                msg.push_str(&format!(" (did you mean `{close}`?)"));
            } else if let Some((section, _)) = ctx
                .sections
                .iter()
                .find(|(s, keys)| *s != self.name && keys.contains(&entry.key.as_str()))
            {
                msg.push_str(&format!(" (it belongs in {section})"));
            }
            ctx.err(&entry.key_span, msg);
        }
    }

    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    pub fn missing(&self, ctx: &mut Ctx, key: &str) {
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

    pub fn string(&self, ctx: &mut Ctx, key: &str) -> Option<(&'n str, &'n Node)> {
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
    pub fn parsed<T, E: Display>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        parse: impl Fn(&str) -> Result<T, E>,
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

    pub fn required<T, E: Display>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Option<T> {
        if self.get(key).is_none() {
            self.missing(ctx, key);
            return None;
        }
        self.parsed(ctx, key, parse)
    }

    /// A list of strings (a single string is accepted as a one-element list), each converted
    /// by `parse`. Returns None when absent or when any element was bad.
    pub fn list<T, E: Display>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        parse: impl Fn(&str) -> Result<T, E>,
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

    pub fn int(&self, ctx: &mut Ctx, key: &str, range: RangeInclusive<i64>) -> Option<i64> {
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

    /// An integer in `range` (checked there), as the type of the field it fills.
    pub fn number<T: TryFrom<i64>>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        range: RangeInclusive<i64>,
        default: T,
    ) -> T {
        self.int(ctx, key, range)
            .and_then(|v| T::try_from(v).ok())
            .unwrap_or(default)
    }

    /// A byte or packet count as swanctl writes it: an integer, or a string with an optional
    /// binary suffix ("100M", "1G", "102400000K"); 0 when absent.
    pub fn volume(&self, ctx: &mut Ctx, key: &str) -> u64 {
        match self.get(key).map(|n| &n.kind) {
            Some(Kind::Int(_)) => self.int(ctx, key, 0..=i64::MAX).map_or(0, |v| v as u64),
            Some(_) => self.parsed(ctx, key, parse_volume).unwrap_or(0),
            None => 0,
        }
    }

    pub fn float(&self, ctx: &mut Ctx, key: &str) -> Option<f64> {
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

    pub fn boolean(&self, ctx: &mut Ctx, key: &str) -> Option<bool> {
        let node = self.get(key)?;
        match &node.kind {
            Kind::Bool(b) => Some(*b),
            _ => {
                Self::type_err(ctx, key, node, "true or false");
                None
            }
        }
    }

    pub fn duration(&self, ctx: &mut Ctx, key: &str) -> Option<Duration> {
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
    pub fn keyword<T: Copy>(&self, ctx: &mut Ctx, key: &str, choices: &[(&str, T)]) -> Option<T> {
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

    pub fn subtable(&self, ctx: &mut Ctx, key: &str, name: &'static str) -> Option<Section<'n>> {
        Section::from_node(name, self.get(key)?, ctx)
    }

    /// `[[key]]` tables (an inline array of tables is accepted too).
    pub fn tables(&self, ctx: &mut Ctx, key: &str, name: &'static str) -> Vec<Section<'n>> {
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

    /// A duration that must not be zero (rekey and retry intervals).
    pub fn positive_duration(&self, ctx: &mut Ctx, key: &str, default: Duration) -> Duration {
        let d = self.duration(ctx, key).unwrap_or(default);
        if d.is_zero() {
            ctx.err(
                &self.span_of(key),
                format!("`{key}` must be longer than 0s"),
            );
        }
        d
    }

    pub fn span_of(&self, key: &str) -> Span {
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

pub(super) fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let keys = &["local_addrs", "remote_addrs", "mtu", "interface"];
        assert_eq!(closest("lcoal_addrs", keys), Some("local_addrs"));
        assert_eq!(closest("mut", keys), Some("mtu"));
        assert_eq!(closest("zzzzzz", keys), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
