//! Proposals written with strongSwan's keywords: `aes256-sha1-modp1024`,
//! `aes256gcm16-prfsha384-ecp384` for IKE; `aes256-sha1`, `aes256gcm16`, `chacha20poly1305`,
//! `aes128-sha1-modp2048-esn` for ESP. A string may list several algorithms of one kind
//! (`aes256-aes128-sha1-modp1024`), which makes one proposal with several transforms of that
//! type, as in swanctl.conf. The keywords are in `keywords.rs`; which are known depends on
//! the context (IKE or ESP), and every unknown one in a proposal is reported, not the first.

pub use super::keywords::Context;
use super::keywords::{lookup, refused_in, Transform};
use super::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
use std::fmt;

/// An IKE SA proposal: any of each listed transform may be chosen.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IkeProposal {
    pub encr: Vec<EncrAlg>,
    /// Empty for AEAD ciphers.
    pub integ: Vec<IntegAlg>,
    pub prf: Vec<PrfAlg>,
    pub dh: Vec<DhGroup>,
}

/// An ESP CHILD SA proposal. `dh` non-empty means PFS on CREATE_CHILD_SA.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EspProposal {
    pub encr: Vec<EncrAlg>,
    pub integ: Vec<IntegAlg>,
    pub dh: Vec<DhGroup>,
    /// Extended sequence numbers offered, in order; `[false]` unless `esn` is written.
    pub esn: Vec<bool>,
}

/// A token of a proposal that could not be used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadToken {
    pub token: String,
    /// None: no such keyword at all. Some: a keyword of the other context.
    pub wrong_context: Option<&'static str>,
}

/// What is missing or contradictory in a proposal whose keywords are all known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    Encryption,
    /// AEAD and non-AEAD ciphers in one proposal.
    MixedAead,
    Integrity,
    /// ESP NULL encryption without an integrity algorithm (RFC 4303 3.2 forbids it).
    IntegrityForNull,
    Prf,
    KeyExchange,
    /// ESP: an integrity algorithm next to an AEAD cipher.
    IntegrityWithAead,
}

/// Why a proposal string was refused. `Display` is one readable line naming the proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposalError {
    Empty(Context),
    /// Every token that is no keyword in this context, in order of appearance.
    Unknown {
        context: Context,
        proposal: String,
        tokens: Vec<BadToken>,
    },
    Incomplete {
        context: Context,
        proposal: String,
        missing: Missing,
    },
}

impl ProposalError {
    /// The tokens that are not keywords of this context (empty for other errors).
    pub fn unknown_tokens(&self) -> Vec<&str> {
        match self {
            ProposalError::Unknown { tokens, .. } => {
                tokens.iter().map(|t| t.token.as_str()).collect()
            }
            _ => Vec::new(),
        }
    }
}

fn quoted(tokens: &[&BadToken]) -> String {
    tokens
        .iter()
        .map(|t| format!("'{}'", t.token))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for ProposalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposalError::Empty(ctx) => write!(f, "empty {} proposal", ctx.label()),
            ProposalError::Unknown {
                context,
                proposal,
                tokens,
            } => {
                let ctx = context.label();
                let unknown: Vec<&BadToken> = tokens
                    .iter()
                    .filter(|t| t.wrong_context.is_none())
                    .collect();
                let mut parts = Vec::new();
                match unknown.len() {
                    0 => {}
                    1 => parts.push(format!("unknown algorithm {}", quoted(&unknown))),
                    _ => parts.push(format!("unknown algorithms {}", quoted(&unknown))),
                }
                for t in tokens {
                    if let Some(why) = t.wrong_context {
                        parts.push(format!("'{}' not allowed ({why})", t.token));
                    }
                }
                write!(
                    f,
                    "{} in {ctx} proposal '{proposal}' (`ipsecgw list-algorithms` shows the {ctx} keywords)",
                    parts.join("; ")
                )
            }
            ProposalError::Incomplete {
                context,
                proposal,
                missing,
            } => {
                let ctx = context.label();
                match missing {
                    Missing::Encryption => {
                        write!(f, "{ctx} proposal '{proposal}' has no encryption algorithm")
                    }
                    Missing::MixedAead => write!(
                        f,
                        "{ctx} proposal '{proposal}' mixes AEAD and non-AEAD ciphers; write two proposals"
                    ),
                    Missing::Integrity => write!(
                        f,
                        "{ctx} proposal '{proposal}' has no integrity algorithm (e.g. aes256-sha256)"
                    ),
                    Missing::IntegrityForNull => write!(
                        f,
                        "{ctx} proposal '{proposal}': NULL encryption needs an integrity algorithm (e.g. null-sha256)"
                    ),
                    Missing::Prf => write!(
                        f,
                        "{ctx} proposal '{proposal}' has no PRF (add e.g. prfsha256)"
                    ),
                    Missing::KeyExchange => write!(
                        f,
                        "{ctx} proposal '{proposal}' has no Diffie-Hellman group (add e.g. modp2048)"
                    ),
                    Missing::IntegrityWithAead => write!(
                        f,
                        "{ctx} proposal '{proposal}': AEAD ciphers (AES-GCM, ChaCha20-Poly1305) already authenticate, drop the integrity algorithm"
                    ),
                }
            }
        }
    }
}

impl std::error::Error for ProposalError {}

fn push<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// Splits on '-' and looks every token up; collects all bad tokens before failing.
fn split(s: &str, ctx: Context) -> Result<Vec<Transform>, ProposalError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(ProposalError::Empty(ctx));
    }
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for token in s.split('-') {
        match lookup(token) {
            Some(t) => match refused_in(t, ctx) {
                None => good.push(t),
                Some(why) => bad.push(BadToken {
                    token: token.to_string(),
                    wrong_context: Some(why),
                }),
            },
            None => bad.push(BadToken {
                token: token.to_string(),
                wrong_context: None,
            }),
        }
    }
    if bad.is_empty() {
        Ok(good)
    } else {
        Err(ProposalError::Unknown {
            context: ctx,
            proposal: s.to_string(),
            tokens: bad,
        })
    }
}

fn incomplete(ctx: Context, s: &str, missing: Missing) -> ProposalError {
    ProposalError::Incomplete {
        context: ctx,
        proposal: s.trim().to_string(),
        missing,
    }
}

/// Every transform a proposal string names, each kind de-duplicated in order, after the
/// checks IKE and ESP share: some encryption, and AEAD not mixed with other ciphers.
#[derive(Default)]
struct Transforms {
    encr: Vec<EncrAlg>,
    integ: Vec<IntegAlg>,
    prf: Vec<PrfAlg>,
    dh: Vec<DhGroup>,
    esn: Vec<bool>,
    aead: bool,
}

impl Transforms {
    /// `split` already refused what `ctx` does not allow (PRFs in ESP, ESN in IKE).
    fn parse(s: &str, ctx: Context) -> Result<Transforms, ProposalError> {
        let mut p = Transforms::default();
        for t in split(s, ctx)? {
            match t {
                Transform::Encr(e) => push(&mut p.encr, e),
                Transform::Integ(i) => push(&mut p.integ, i),
                Transform::Prf(f) => push(&mut p.prf, f),
                Transform::Ke(d) => push(&mut p.dh, d),
                Transform::Esn(e) => push(&mut p.esn, e),
            }
        }
        if p.encr.is_empty() {
            return Err(incomplete(ctx, s, Missing::Encryption));
        }
        let aead = p.encr.iter().filter(|e| e.is_aead()).count();
        if aead != 0 && aead != p.encr.len() {
            return Err(incomplete(ctx, s, Missing::MixedAead));
        }
        p.aead = aead > 0;
        Ok(p)
    }
}

/// The canonical keyword of a transform (what `Display` writes).
fn keyword(t: Transform) -> &'static str {
    match t {
        Transform::Encr(a) => a.keyword(),
        Transform::Integ(a) => a.keyword(),
        Transform::Prf(a) => a.keyword(),
        Transform::Ke(a) => a.keyword(),
        Transform::Esn(true) => "esn",
        Transform::Esn(false) => "noesn",
    }
}

/// Canonical keywords of the weak transforms, for `check` to warn about.
fn weak(ts: impl Iterator<Item = Transform>) -> Vec<&'static str> {
    ts.filter(|t| t.is_weak()).map(keyword).collect()
}

/// The keywords of the transforms joined by '-', the form the parser reads.
fn write_keywords(f: &mut fmt::Formatter<'_>, ts: impl Iterator<Item = Transform>) -> fmt::Result {
    f.write_str(&ts.map(keyword).collect::<Vec<_>>().join("-"))
}

impl IkeProposal {
    /// Parses an IKE proposal. Without `prf…`, each integrity keyword also names its PRF
    /// (strongSwan's rule); with an AEAD cipher, integrity keywords name only the PRF.
    pub fn parse(s: &str) -> Result<IkeProposal, ProposalError> {
        let ctx = Context::Ike;
        let t = Transforms::parse(s, ctx)?;
        let prf = if t.prf.is_empty() {
            t.integ.iter().map(|i| i.matching_prf()).collect()
        } else {
            t.prf
        };
        let integ = if t.aead { vec![] } else { t.integ };
        if !t.aead && integ.is_empty() {
            return Err(incomplete(ctx, s, Missing::Integrity));
        }
        if prf.is_empty() {
            return Err(incomplete(ctx, s, Missing::Prf));
        }
        if t.dh.is_empty() {
            return Err(incomplete(ctx, s, Missing::KeyExchange));
        }
        Ok(IkeProposal {
            encr: t.encr,
            integ,
            prf,
            dh: t.dh,
        })
    }

    fn transforms(&self) -> impl Iterator<Item = Transform> + '_ {
        (self.encr.iter().map(|&a| Transform::Encr(a)))
            .chain(self.integ.iter().map(|&a| Transform::Integ(a)))
            .chain(self.prf.iter().map(|&a| Transform::Prf(a)))
            .chain(self.dh.iter().map(|&a| Transform::Ke(a)))
    }

    /// Canonical keywords of the weak algorithms in this proposal (modp768, md5, prfmd5),
    /// for `check` to warn about.
    pub fn weak_algorithms(&self) -> Vec<&'static str> {
        weak(self.transforms())
    }
}

impl EspProposal {
    /// Parses an ESP proposal.
    pub fn parse(s: &str) -> Result<EspProposal, ProposalError> {
        let ctx = Context::Esp;
        let mut t = Transforms::parse(s, ctx)?;
        if t.aead && !t.integ.is_empty() {
            return Err(incomplete(ctx, s, Missing::IntegrityWithAead));
        }
        if !t.aead && t.integ.is_empty() {
            let missing = if t.encr.contains(&EncrAlg::Null) {
                Missing::IntegrityForNull
            } else {
                Missing::Integrity
            };
            return Err(incomplete(ctx, s, missing));
        }
        if t.esn.is_empty() {
            t.esn.push(false);
        }
        Ok(EspProposal {
            encr: t.encr,
            integ: t.integ,
            dh: t.dh,
            esn: t.esn,
        })
    }

    fn transforms(&self) -> impl Iterator<Item = Transform> + '_ {
        (self.encr.iter().map(|&a| Transform::Encr(a)))
            .chain(self.integ.iter().map(|&a| Transform::Integ(a)))
            .chain(self.dh.iter().map(|&a| Transform::Ke(a)))
            .chain(self.esn.iter().map(|&e| Transform::Esn(e)))
    }

    /// Canonical keywords of the weak algorithms in this proposal (null, md5, modp768).
    pub fn weak_algorithms(&self) -> Vec<&'static str> {
        weak(self.transforms())
    }
}

/// Parses an IKE proposal; the error as one line of text (what the config loader takes).
pub fn parse_ike(s: &str) -> Result<IkeProposal, String> {
    IkeProposal::parse(s).map_err(|e| e.to_string())
}

/// Parses an ESP proposal; the error as one line of text (what the config loader takes).
pub fn parse_esp(s: &str) -> Result<EspProposal, String> {
    EspProposal::parse(s).map_err(|e| e.to_string())
}

impl fmt::Display for IkeProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_keywords(f, self.transforms())
    }
}

impl fmt::Display for EspProposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_keywords(f, self.transforms())
    }
}

#[cfg(test)]
#[path = "proposal_tests.rs"]
mod tests;
