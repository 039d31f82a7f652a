//! A small TOML tree that remembers where every key and value sits in the file.
//!
//! toml_edit keeps byte spans; we copy them into our own tree so the validator can say
//! `file:line:` for any key or value without caring about toml_edit's table flavours
//! (standard, inline, dotted, implicit).

use std::ops::Range;

use zeroize::Zeroizing;

/// One TOML value with the byte range it came from (None for implicit tables).
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub span: Option<Range<usize>>,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// Wiped on drop: the value of an inline `psk` is one of these.
    Str(Zeroizing<String>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime,
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

/// A key of a table, with the span of the key itself (for "unknown key" errors).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub key_span: Option<Range<usize>>,
    pub value: Node,
}

impl Kind {
    /// The TOML type name, for "expected a string, found an integer" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Str(_) => "a string",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::Bool(_) => "a boolean",
            Kind::Datetime => "a date/time",
            Kind::Array(_) => "an array",
            Kind::Table(_) => "a table",
        }
    }
}

/// Parses TOML text into a spanned tree, or returns the syntax error with its byte offset.
pub(crate) fn parse(text: &str) -> Result<Node, (Option<usize>, String)> {
    let doc = toml_edit::ImDocument::parse(text).map_err(|e| {
        // toml_edit's message is multi-line with a caret drawing; the first line is the gist.
        let msg = e
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .trim()
            .to_string();
        (e.span().map(|s| s.start), msg)
    })?;
    let node = table_node(doc.as_table(), Some(0..0));
    // toml_edit decoded every string (an inline `psk` too) into its own String; our tree
    // holds Zeroizing copies, so wipe toml_edit's before they are freed. `into_table` takes
    // the document apart without copying the raw text (`into_mut` would).
    let mut root = doc.into_table();
    wipe_table(&mut root);
    Ok(node)
}

fn wipe_table(table: &mut toml_edit::Table) {
    for (_, item) in table.iter_mut() {
        wipe_item(item);
    }
}

fn wipe_item(item: &mut toml_edit::Item) {
    match item {
        toml_edit::Item::None => {}
        toml_edit::Item::Value(v) => wipe_value(v),
        toml_edit::Item::Table(t) => wipe_table(t),
        toml_edit::Item::ArrayOfTables(a) => a.iter_mut().for_each(wipe_table),
    }
}

fn wipe_value(value: &mut toml_edit::Value) {
    match value {
        toml_edit::Value::String(s) => {
            let taken = std::mem::replace(s, toml_edit::Formatted::new(String::new()));
            zeroize::Zeroize::zeroize(&mut taken.into_value());
        }
        toml_edit::Value::Array(a) => a.iter_mut().for_each(wipe_value),
        toml_edit::Value::InlineTable(t) => {
            for (_, v) in t.iter_mut() {
                wipe_value(v);
            }
        }
        _ => {}
    }
}

fn table_node(table: &toml_edit::Table, fallback: Option<Range<usize>>) -> Node {
    let span = table.span().or(fallback);
    let entries = table
        .iter()
        .map(|(key, item)| {
            let key_span = table.key(key).and_then(|k| k.span());
            Entry {
                key: key.to_string(),
                key_span: key_span.clone(),
                value: item_node(item, key_span.or(span.clone())),
            }
        })
        .collect();
    Node {
        span,
        kind: Kind::Table(entries),
    }
}

fn inline_table_node(table: &toml_edit::InlineTable, fallback: Option<Range<usize>>) -> Node {
    let span = table.span().or(fallback);
    let entries = table
        .iter()
        .map(|(key, value)| {
            let key_span = table.key(key).and_then(|k| k.span());
            Entry {
                key: key.to_string(),
                key_span: key_span.clone(),
                value: value_node(value, key_span.or(span.clone())),
            }
        })
        .collect();
    Node {
        span,
        kind: Kind::Table(entries),
    }
}

fn item_node(item: &toml_edit::Item, fallback: Option<Range<usize>>) -> Node {
    match item {
        toml_edit::Item::None => Node {
            span: fallback,
            kind: Kind::Table(Vec::new()),
        },
        toml_edit::Item::Value(v) => value_node(v, fallback),
        toml_edit::Item::Table(t) => table_node(t, fallback),
        toml_edit::Item::ArrayOfTables(a) => {
            let span = a.span().or(fallback);
            let items = a.iter().map(|t| table_node(t, span.clone())).collect();
            Node {
                span,
                kind: Kind::Array(items),
            }
        }
    }
}

fn value_node(value: &toml_edit::Value, fallback: Option<Range<usize>>) -> Node {
    let span = value.span().or(fallback);
    let kind = match value {
        toml_edit::Value::String(s) => Kind::Str(Zeroizing::new(s.value().clone())),
        toml_edit::Value::Integer(i) => Kind::Int(*i.value()),
        toml_edit::Value::Float(f) => Kind::Float(*f.value()),
        toml_edit::Value::Boolean(b) => Kind::Bool(*b.value()),
        toml_edit::Value::Datetime(_) => Kind::Datetime,
        toml_edit::Value::Array(a) => {
            Kind::Array(a.iter().map(|v| value_node(v, span.clone())).collect())
        }
        toml_edit::Value::InlineTable(t) => return inline_table_node(t, span),
    };
    Node { span, kind }
}

/// Maps byte offsets to 1-based line numbers.
pub(crate) struct LineIndex {
    line_starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { line_starts }
    }

    pub fn line_of(&self, offset: usize) -> usize {
        // partition_point gives the number of line starts <= offset, which is the 1-based line.
        self.line_starts
            .partition_point(|&start| start <= offset)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_map_to_lines() {
        let text = "[global]\nlog_level = \"info\"\n\n[[connection]]\nname = \"a\"\n[connection.tunnel]\nmtu = 1400\n";
        let idx = LineIndex::new(text);
        let root = parse(text).unwrap();
        let Kind::Table(top) = &root.kind else {
            panic!("root is not a table")
        };
        let conn = top.iter().find(|e| e.key == "connection").unwrap();
        let Kind::Array(conns) = &conn.value.kind else {
            panic!("connection is not an array")
        };
        assert_eq!(idx.line_of(conns[0].span.clone().unwrap().start), 4);
        let Kind::Table(c0) = &conns[0].kind else {
            panic!()
        };
        let tunnel = c0.iter().find(|e| e.key == "tunnel").unwrap();
        assert_eq!(idx.line_of(tunnel.value.span.clone().unwrap().start), 6);
        let Kind::Table(t) = &tunnel.value.kind else {
            panic!()
        };
        assert_eq!(idx.line_of(t[0].key_span.clone().unwrap().start), 7);
        assert_eq!(idx.line_of(t[0].value.span.clone().unwrap().start), 7);
    }

    #[test]
    fn syntax_error_has_offset() {
        let text = "[global]\nlog_level = \n";
        let (off, msg) = parse(text).unwrap_err();
        assert_eq!(LineIndex::new(text).line_of(off.unwrap()), 2);
        assert!(!msg.is_empty());
    }
}
