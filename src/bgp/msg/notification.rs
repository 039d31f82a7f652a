//! NOTIFICATION messages: the error the speaker sends or receives, and its readable form.

use std::fmt;

use super::err;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Notification {
            code,
            subcode,
            data,
        }
    }

    /// Cease with an RFC 8203/9003 shutdown communication (a length-prefixed UTF-8 text).
    pub fn cease_with_text(subcode: u8, text: &str) -> Self {
        let mut end = text.len().min(255);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = vec![u8::try_from(end).unwrap_or(u8::MAX)];
        data.extend_from_slice(&text.as_bytes()[..end]);
        Notification::new(err::CEASE, subcode, data)
    }

    /// Human-readable form, e.g. "Cease / Administrative Shutdown: \"maintenance\"".
    pub fn describe(&self) -> String {
        let (code, sub) = names(self.code, self.subcode);
        let mut s = match sub {
            Some(sub) => format!("{code} / {sub}"),
            None => format!("{code} / subcode {}", self.subcode),
        };
        let shutdown_text = self.code == err::CEASE
            && (self.subcode == err::CEASE_ADMIN_SHUTDOWN
                || self.subcode == err::CEASE_ADMIN_RESET);
        if shutdown_text {
            if let Some((&len, rest)) = self.data.split_first() {
                if let Some(text) = rest.get(..len as usize) {
                    // The peer's text goes into logs: escape newlines, terminal escapes, quotes.
                    let text = String::from_utf8_lossy(text);
                    s.push_str(&format!(": \"{}\"", text.escape_debug()));
                    return s;
                }
            }
        }
        if !self.data.is_empty() {
            s.push_str(" (data ");
            for b in self.data.iter().take(32) {
                s.push_str(&format!("{b:02x}"));
            }
            s.push(')');
        }
        s
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::error::Error for Notification {}

fn names(code: u8, subcode: u8) -> (&'static str, Option<&'static str>) {
    match code {
        1 => (
            "Message Header Error",
            match subcode {
                1 => Some("Connection Not Synchronized"),
                2 => Some("Bad Message Length"),
                3 => Some("Bad Message Type"),
                _ => None,
            },
        ),
        2 => (
            "OPEN Message Error",
            match subcode {
                0 => Some("Unspecific"),
                1 => Some("Unsupported Version Number"),
                2 => Some("Bad Peer AS"),
                3 => Some("Bad BGP Identifier"),
                4 => Some("Unsupported Optional Parameter"),
                6 => Some("Unacceptable Hold Time"),
                7 => Some("Unsupported Capability"),
                11 => Some("Role Mismatch"),
                _ => None,
            },
        ),
        3 => (
            "UPDATE Message Error",
            match subcode {
                1 => Some("Malformed Attribute List"),
                2 => Some("Unrecognized Well-known Attribute"),
                3 => Some("Missing Well-known Attribute"),
                4 => Some("Attribute Flags Error"),
                5 => Some("Attribute Length Error"),
                6 => Some("Invalid ORIGIN Attribute"),
                8 => Some("Invalid NEXT_HOP Attribute"),
                9 => Some("Optional Attribute Error"),
                10 => Some("Invalid Network Field"),
                11 => Some("Malformed AS_PATH"),
                _ => None,
            },
        ),
        4 => ("Hold Timer Expired", (subcode == 0).then_some("Unspecific")),
        5 => (
            "Finite State Machine Error",
            match subcode {
                0 => Some("Unspecified"),
                1 => Some("Unexpected Message in OpenSent"),
                2 => Some("Unexpected Message in OpenConfirm"),
                3 => Some("Unexpected Message in Established"),
                _ => None,
            },
        ),
        6 => (
            "Cease",
            match subcode {
                0 => Some("Unspecific"),
                1 => Some("Maximum Number of Prefixes Reached"),
                2 => Some("Administrative Shutdown"),
                3 => Some("Peer De-configured"),
                4 => Some("Administrative Reset"),
                5 => Some("Connection Rejected"),
                6 => Some("Other Configuration Change"),
                7 => Some("Connection Collision Resolution"),
                8 => Some("Out of Resources"),
                9 => Some("Hard Reset"),
                10 => Some("BFD Down"),
                _ => None,
            },
        ),
        7 => (
            "ROUTE-REFRESH Message Error",
            (subcode == 1).then_some("Invalid Message Length"),
        ),
        _ => ("Unknown Error Code", None),
    }
}
