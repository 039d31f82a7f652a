//! Routing policy: Cisco-style prefix-list entries for export, and the best-path decision.

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::msg::{AsPath, Origin};
use crate::prefix::{IpPrefix, PrefixError};

/// One `ip prefix-list ... permit A/L [ge G] [le E]` entry.
///
/// Without `ge`/`le` only the exact prefix matches. With them, any prefix inside `A/L` whose
/// length lies in `[ge or L, le or address width]` matches (Cisco semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PrefixFilter {
    pub prefix: IpPrefix,
    pub ge: Option<u8>,
    pub le: Option<u8>,
}

impl PrefixFilter {
    pub fn exact(prefix: IpPrefix) -> Self {
        PrefixFilter {
            prefix,
            ge: None,
            le: None,
        }
    }

    pub fn matches(&self, p: &IpPrefix) -> bool {
        if p.is_ipv4() != self.prefix.is_ipv4() {
            return false;
        }
        if self.ge.is_none() && self.le.is_none() {
            return *p == self.prefix;
        }
        let width = if p.is_ipv4() { 32 } else { 128 };
        let lo = self.ge.unwrap_or(self.prefix.len());
        let hi = self.le.unwrap_or(width);
        self.prefix.covers(p) && (lo..=hi).contains(&p.len())
    }
}

/// True if `p` may be announced: an empty list means "no prefix-list configured".
pub fn permitted(filters: &[PrefixFilter], p: &IpPrefix) -> bool {
    filters.is_empty() || filters.iter().any(|f| f.matches(p))
}

/// Why a prefix-list entry was refused (`entry` is the whole text as written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrefixFilterError {
    Empty,
    Prefix(PrefixError),
    /// A word other than `ge`/`le`.
    Keyword {
        entry: String,
        found: String,
    },
    MissingLength {
        entry: String,
        keyword: String,
    },
    BadLength {
        entry: String,
        value: String,
    },
    LongerThanWidth {
        entry: String,
        keyword: String,
        len: u8,
        width: u8,
    },
    Repeated {
        entry: String,
        keyword: String,
    },
    GeBelowPrefix {
        entry: String,
        ge: u8,
        prefix_len: u8,
    },
    LeBelowGe {
        entry: String,
        le: u8,
    },
}

impl fmt::Display for PrefixFilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefixFilterError::Empty => f.write_str("empty prefix-list entry"),
            PrefixFilterError::Prefix(e) => e.fmt(f),
            PrefixFilterError::Keyword { entry, found } => {
                write!(f, "'{entry}': expected 'ge' or 'le', found '{found}'")
            }
            PrefixFilterError::MissingLength { entry, keyword } => {
                write!(f, "'{entry}': '{keyword}' needs a prefix length")
            }
            PrefixFilterError::BadLength { entry, value } => {
                write!(f, "'{entry}': '{value}' is not a prefix length")
            }
            PrefixFilterError::LongerThanWidth {
                entry,
                keyword,
                len,
                width,
            } => write!(f, "'{entry}': {keyword} {len} is longer than /{width}"),
            PrefixFilterError::Repeated { entry, keyword } => {
                write!(f, "'{entry}': '{keyword}' given twice")
            }
            PrefixFilterError::GeBelowPrefix {
                entry,
                ge,
                prefix_len,
            } => write!(
                f,
                "'{entry}': ge {ge} is shorter than the prefix length /{prefix_len}"
            ),
            PrefixFilterError::LeBelowGe { entry, le } => {
                write!(
                    f,
                    "'{entry}': le {le} must be at least ge/the prefix length"
                )
            }
        }
    }
}

impl std::error::Error for PrefixFilterError {}

impl FromStr for PrefixFilter {
    type Err = PrefixFilterError;

    /// "10.2.30.0/25", "10.0.0.0/8 le 24", "10.0.0.0/8 ge 16 le 24".
    fn from_str(s: &str) -> Result<Self, PrefixFilterError> {
        let entry = || s.to_string();
        let mut words = s.split_whitespace();
        let prefix: IpPrefix = words
            .next()
            .ok_or(PrefixFilterError::Empty)?
            .parse()
            .map_err(PrefixFilterError::Prefix)?;
        let width: u8 = if prefix.is_ipv4() { 32 } else { 128 };
        let (mut ge, mut le) = (None, None);
        while let Some(kw) = words.next() {
            let slot = match kw {
                "ge" => &mut ge,
                "le" => &mut le,
                _ => {
                    return Err(PrefixFilterError::Keyword {
                        entry: entry(),
                        found: kw.to_string(),
                    })
                }
            };
            let val = words
                .next()
                .ok_or_else(|| PrefixFilterError::MissingLength {
                    entry: entry(),
                    keyword: kw.to_string(),
                })?;
            let n: u8 = val.parse().map_err(|_| PrefixFilterError::BadLength {
                entry: entry(),
                value: val.to_string(),
            })?;
            if n > width {
                return Err(PrefixFilterError::LongerThanWidth {
                    entry: entry(),
                    keyword: kw.to_string(),
                    len: n,
                    width,
                });
            }
            if slot.replace(n).is_some() {
                return Err(PrefixFilterError::Repeated {
                    entry: entry(),
                    keyword: kw.to_string(),
                });
            }
        }
        if let Some(g) = ge {
            if g < prefix.len() {
                return Err(PrefixFilterError::GeBelowPrefix {
                    entry: entry(),
                    ge: g,
                    prefix_len: prefix.len(),
                });
            }
        }
        if let Some(l) = le {
            if l < ge.unwrap_or(prefix.len()) {
                return Err(PrefixFilterError::LeBelowGe {
                    entry: entry(),
                    le: l,
                });
            }
        }
        Ok(PrefixFilter { prefix, ge, le })
    }
}

impl fmt::Display for PrefixFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.prefix)?;
        if let Some(g) = self.ge {
            write!(f, " ge {g}")?;
        }
        if let Some(l) = self.le {
            write!(f, " le {l}")?;
        }
        Ok(())
    }
}

/// A path to a prefix as seen by the decision process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    /// Locally originated (`networks`): always preferred, like Cisco's weight 32768.
    pub local: bool,
    pub local_pref: u32,
    pub as_path: AsPath,
    pub origin: Origin,
    pub med: Option<u32>,
    pub next_hop: IpAddr,
}

/// Orders two paths: `Greater` means `a` is preferred (RFC 4271 9.1.2.2, reduced to what a
/// single-peer eBGP speaker can see: local origination, LOCAL_PREF, AS_PATH length, ORIGIN,
/// MED between paths from the same neighbour AS, then the lower next hop as a stable tie-break).
pub fn compare(a: &Path, b: &Path) -> Ordering {
    a.local
        .cmp(&b.local)
        .then(a.local_pref.cmp(&b.local_pref))
        .then(b.as_path.path_len().cmp(&a.as_path.path_len()))
        .then(b.origin.cmp(&a.origin))
        .then_with(|| {
            if a.as_path.first_as() == b.as_path.first_as() {
                // A missing MED is the best value (0), RFC 4271 9.1.2.2 c.
                b.med.unwrap_or(0).cmp(&a.med.unwrap_or(0))
            } else {
                Ordering::Equal
            }
        })
        .then(b.next_hop.cmp(&a.next_hop))
}

/// Index of the best path, or None for no candidates. Earlier candidates win full ties.
pub fn best_path(candidates: &[Path]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, p) in candidates.iter().enumerate() {
        best = match best.and_then(|b| candidates.get(b).map(|bp| (b, bp))) {
            Some((b, bp)) if compare(p, bp) != Ordering::Greater => Some(b),
            _ => Some(i),
        };
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf(s: &str) -> PrefixFilter {
        s.parse().unwrap()
    }
    fn p(s: &str) -> IpPrefix {
        s.parse().unwrap()
    }

    #[test]
    fn prefix_list_exact_match_only_without_ge_le() {
        let f = pf("10.2.30.0/25");
        assert!(f.matches(&p("10.2.30.0/25")));
        assert!(!f.matches(&p("10.2.30.0/26")));
        assert!(!f.matches(&p("10.2.30.0/24")));
        assert!(!f.matches(&p("10.2.30.128/25")));
    }

    #[test]
    fn prefix_list_ge_le_ranges() {
        let le = pf("10.0.0.0/8 le 24");
        assert!(le.matches(&p("10.0.0.0/8")));
        assert!(le.matches(&p("10.2.30.0/24")));
        assert!(!le.matches(&p("10.2.30.0/25")));
        assert!(!le.matches(&p("11.0.0.0/16")));
        let ge = pf("10.0.0.0/8 ge 16");
        assert!(!ge.matches(&p("10.0.0.0/8")));
        assert!(ge.matches(&p("10.1.0.0/16")) && ge.matches(&p("10.1.2.3/32")));
        let both = pf("10.0.0.0/8 ge 16 le 24");
        assert!(both.matches(&p("10.9.9.0/24")) && !both.matches(&p("10.9.9.0/25")));
        assert!(!both.matches(&p("10.8.0.0/15")));
        assert_eq!(both.to_string(), "10.0.0.0/8 ge 16 le 24");
    }

    #[test]
    fn prefix_list_parse_errors() {
        for bad in [
            "",
            "10.0.0.0/8 le",
            "10.0.0.0/8 lt 9",
            "10.0.0.0/8 le 33",
            "10.0.0.0/16 ge 8",
            "10.0.0.0/8 ge 20 le 16",
            "10.0.0.0/8 le 9 le 10",
            "10.0.0.1/8",
        ] {
            assert!(
                bad.parse::<PrefixFilter>().is_err(),
                "{bad:?} should not parse"
            );
        }
    }

    #[test]
    fn prefix_list_names_the_bad_keyword() {
        let err = "10.0.0.0/8 lt".parse::<PrefixFilter>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "'10.0.0.0/8 lt': expected 'ge' or 'le', found 'lt'"
        );
    }

    #[test]
    fn empty_export_list_permits_everything() {
        assert!(permitted(&[], &p("192.168.0.0/16")));
        assert!(!permitted(&[pf("10.2.30.0/25")], &p("192.168.0.0/16")));
    }

    fn path(lp: u32, asns: &[u32], origin: Origin, med: Option<u32>) -> Path {
        Path {
            local: false,
            local_pref: lp,
            as_path: AsPath::sequence(asns.to_vec()),
            origin,
            med,
            next_hop: "10.10.30.254".parse().unwrap(),
        }
    }

    #[test]
    fn decision_prefers_local_pref_then_path_len_then_origin_then_med() {
        let base = path(100, &[65515, 1], Origin::Igp, Some(10));
        assert_eq!(
            compare(
                &path(200, &[65515, 1, 2, 3], Origin::Incomplete, Some(99)),
                &base
            ),
            Ordering::Greater
        );
        assert_eq!(
            compare(&path(100, &[65515], Origin::Incomplete, Some(99)), &base),
            Ordering::Greater
        );
        assert_eq!(
            compare(&path(100, &[65515, 7], Origin::Egp, Some(0)), &base),
            Ordering::Less
        );
        assert_eq!(
            compare(&path(100, &[65515, 7], Origin::Igp, Some(5)), &base),
            Ordering::Greater
        );
        assert_eq!(
            compare(&path(100, &[65515, 7], Origin::Igp, None), &base),
            Ordering::Greater
        );
        // MED is not compared across different neighbour ASes; next hop breaks the tie.
        let mut other = path(100, &[65000, 7], Origin::Igp, Some(50));
        other.next_hop = "10.0.0.1".parse().unwrap();
        assert_eq!(compare(&other, &base), Ordering::Greater);
        let mut local = path(0, &[], Origin::Incomplete, None);
        local.local = true;
        assert_eq!(compare(&local, &base), Ordering::Greater);
    }

    #[test]
    fn as_set_counts_as_one_hop() {
        let mut set = path(100, &[65515], Origin::Igp, None);
        set.as_path
            .segments
            .push(super::super::msg::AsSegment::Set(vec![1, 2, 3]));
        assert_eq!(set.as_path.path_len(), 2);
        assert_eq!(
            compare(&set, &path(100, &[65515, 1, 2], Origin::Igp, None)),
            Ordering::Greater
        );
    }

    #[test]
    fn best_path_picks_the_winner_and_keeps_the_first_on_ties() {
        assert_eq!(best_path(&[]), None);
        let a = path(100, &[65515, 1], Origin::Igp, None);
        let b = path(200, &[65515, 1, 2], Origin::Igp, None);
        let c = path(200, &[65515, 3], Origin::Igp, None);
        assert_eq!(best_path(&[a.clone(), b.clone(), c.clone()]), Some(2));
        assert_eq!(best_path(&[c.clone(), c.clone()]), Some(0));
        assert_eq!(best_path(&[a]), Some(0));
    }
}
