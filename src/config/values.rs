//! Small text-to-value converters shared by the section builders. Their error text follows
//! the key name in messages: `` `remote_addrs`: "x" is not an IP address ``.

use std::net::IpAddr;

use crate::prefix::IpPrefix;

pub(super) fn valid_name(name: &str) -> Result<String, String> {
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

pub(super) fn ip(text: &str) -> Result<IpAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("\"{text}\" is not an IP address"))
}

/// An address, or None for "%any".
pub(super) fn ip_or_any(text: &str) -> Result<Option<IpAddr>, String> {
    if text.trim() == "%any" {
        Ok(None)
    } else {
        ip(text).map(Some).map_err(|e| format!("{e} (or \"%any\")"))
    }
}

pub(super) fn prefix(text: &str) -> Result<IpPrefix, String> {
    text.parse()
}
