//! `ipsecgw list-algorithms`: every proposal keyword this build knows, with its IANA
//! transform ID and RFC, in the spirit of `swanctl --list-algs`. Built from the same tables
//! the parser uses (`keywords.rs`, `algs.rs`), so it cannot drift from what parses.

use super::keywords::{keywords_of, refused_in, Context, Transform};
use super::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
use std::fmt::Write;

/// One printed row.
struct Row {
    keywords: String,
    name: &'static str,
    id: String,
    rfc: &'static str,
    contexts: String,
    note: &'static str,
}

fn row(t: Transform, name: &'static str, id: String, rfc: &'static str) -> Row {
    let words: Vec<&str> = keywords_of(t).collect();
    let keywords = match words.split_first() {
        Some((first, [])) => first.to_string(),
        Some((first, rest)) => format!("{first} ({})", rest.join(", ")),
        None => String::new(),
    };
    let contexts = [Context::Ike, Context::Esp]
        .into_iter()
        .filter(|c| refused_in(t, *c).is_none())
        .map(|c| c.label())
        .collect::<Vec<_>>()
        .join(" ");
    let note = if t.is_weak() {
        "weak: only when named, `check` warns"
    } else {
        ""
    };
    Row {
        keywords,
        name,
        id,
        rfc,
        contexts,
        note,
    }
}

fn encr_id(e: EncrAlg) -> String {
    match e.key_attr_bits() {
        Some(bits) => format!("{} key {bits}", e.transform_id()),
        None => e.transform_id().to_string(),
    }
}

fn section(out: &mut String, title: &str, rows: &[Row]) {
    let w = |f: fn(&Row) -> usize| rows.iter().map(f).max().unwrap_or(0);
    let (kw, nm, id, rfc, ctx) = (
        w(|r| r.keywords.len()).max(7),
        w(|r| r.name.len()),
        w(|r| r.id.len()).max(2),
        w(|r| r.rfc.len()),
        w(|r| r.contexts.len()),
    );
    let _ = writeln!(out, "{title}:");
    for r in rows {
        let line = format!(
            "  {:kw$}  {:nm$}  {:>id$}  {:rfc$}  {:ctx$}  {}",
            r.keywords, r.name, r.id, r.rfc, r.contexts, r.note
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out.push('\n');
}

/// The text `ipsecgw list-algorithms` prints.
pub fn list_algorithms() -> String {
    let mut out = String::new();
    out.push_str(
        "Proposal keywords (strongSwan syntax), IANA IKEv2 transform ID, RFC, and where they apply.\n\
         First keyword canonical, aliases in parentheses.\n\n",
    );
    let encr: Vec<Row> = EncrAlg::ALL
        .iter()
        .map(|&e| row(Transform::Encr(e), e.name(), encr_id(e), e.rfc()))
        .collect();
    section(&mut out, "encryption (transform type 1)", &encr);
    let prf: Vec<Row> = PrfAlg::ALL
        .iter()
        .map(|&p| {
            row(
                Transform::Prf(p),
                p.name(),
                p.transform_id().to_string(),
                p.rfc(),
            )
        })
        .collect();
    section(&mut out, "pseudo-random functions (transform type 2)", &prf);
    let integ: Vec<Row> = IntegAlg::ALL
        .iter()
        .map(|&i| {
            row(
                Transform::Integ(i),
                i.name(),
                i.transform_id().to_string(),
                i.rfc(),
            )
        })
        .collect();
    section(&mut out, "integrity (transform type 3)", &integ);
    let ke: Vec<Row> = DhGroup::ALL
        .iter()
        .map(|&g| {
            row(
                Transform::Ke(g),
                g.name(),
                g.transform_id().to_string(),
                g.rfc(),
            )
        })
        .collect();
    section(&mut out, "key exchange groups (transform type 4)", &ke);
    let esn = [
        row(Transform::Esn(true), "EXT_SEQ", "1".into(), "RFC 4303"),
        row(Transform::Esn(false), "NO_EXT_SEQ", "0".into(), "RFC 4303"),
    ];
    section(
        &mut out,
        "extended sequence numbers (transform type 5)",
        &esn,
    );
    out.push_str(
        "In IKE, an integrity keyword without a prf... keyword also selects the matching PRF;\n\
         AEAD ciphers (gcm, chacha20poly1305) take no integrity algorithm but IKE needs a PRF.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keywords::KEYWORDS;

    #[test]
    fn lists_every_keyword_with_its_id_and_rfc() {
        let text = list_algorithms();
        for (word, _) in KEYWORDS {
            assert!(
                text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .any(|w| w == *word),
                "{word} missing"
            );
        }
        let line = |kw: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(&format!("{kw} ")))
                .unwrap_or_else(|| panic!("no line for {kw}"))
                .to_string()
        };
        let l = line("ecp384");
        assert!(
            l.contains("ECP_384") && l.contains(" 20 ") && l.contains("RFC 5903"),
            "{l}"
        );
        let null = line("null");
        assert!(null.contains("ESP") && !null.contains("IKE") && null.contains("weak"));
        assert!(line("prfsha384").contains("IKE") && !line("prfsha384").contains("ESP"));
        assert!(line("aes128gcm8").contains("18 key 128"));
        assert!(line("curve25519 (x25519)").contains("31"));
        assert!(line("modp768").contains("weak"));
        assert!(!line("modp2048").contains("weak"));
    }
}
