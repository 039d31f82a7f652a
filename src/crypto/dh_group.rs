//! Key exchange groups (IKEv2 transform type 4, "Diffie-Hellman Group"): IANA numbers, public
//! value sizes and names.

/// Diffie-Hellman groups (IKEv2 transform type 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// Group 2, RFC 2409 6.2. Weak, but it is what the reference Azure/Cisco deployment runs.
    Modp1024,
    /// Group 14, RFC 3526 3.
    Modp2048,
    /// Group 1, RFC 2409 6.1. Broken in practice: accepted only when configured by name.
    Modp768,
    /// Group 5, RFC 3526 2.
    Modp1536,
    /// Group 15, RFC 3526 4.
    Modp3072,
    /// Group 16, RFC 3526 5.
    Modp4096,
    /// Group 19, RFC 5903 (NIST P-256).
    Ecp256,
    /// Group 20, RFC 5903 (NIST P-384).
    Ecp384,
    /// Group 21, RFC 5903 (NIST P-521).
    Ecp521,
    /// Group 24, RFC 5114 2.3: 2048-bit MODP with a 256-bit prime-order subgroup.
    Modp2048s256,
    /// Group 31, RFC 8031.
    Curve25519,
}

/// How a group's public values are built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// g^x mod p, big-endian, as long as p.
    Modp,
    /// x || y of a point on a NIST prime curve (RFC 5903 7), without the SEC1 0x04 prefix.
    Ecp,
    /// A 32-byte little-endian Montgomery u-coordinate (RFC 7748 5).
    Montgomery,
}

impl DhGroup {
    pub const ALL: [DhGroup; 11] = [
        DhGroup::Modp768,
        DhGroup::Modp1024,
        DhGroup::Modp1536,
        DhGroup::Modp2048,
        DhGroup::Modp3072,
        DhGroup::Modp4096,
        DhGroup::Ecp256,
        DhGroup::Ecp384,
        DhGroup::Ecp521,
        DhGroup::Modp2048s256,
        DhGroup::Curve25519,
    ];

    /// (transform id, public value bytes, kind, name, keyword, RFC)
    #[rustfmt::skip]
    fn info(self) -> (u16, usize, GroupKind, &'static str, &'static str, &'static str) {
        use DhGroup::*;
        use GroupKind::*;
        match self {
            Modp768 => (1, 96, Modp, "MODP_768", "modp768", "RFC 2409"),
            Modp1024 => (2, 128, Modp, "MODP_1024", "modp1024", "RFC 2409"),
            Modp1536 => (5, 192, Modp, "MODP_1536", "modp1536", "RFC 3526"),
            Modp2048 => (14, 256, Modp, "MODP_2048", "modp2048", "RFC 3526"),
            Modp3072 => (15, 384, Modp, "MODP_3072", "modp3072", "RFC 3526"),
            Modp4096 => (16, 512, Modp, "MODP_4096", "modp4096", "RFC 3526"),
            Ecp256 => (19, 64, Ecp, "ECP_256", "ecp256", "RFC 5903"),
            Ecp384 => (20, 96, Ecp, "ECP_384", "ecp384", "RFC 5903"),
            Ecp521 => (21, 132, Ecp, "ECP_521", "ecp521", "RFC 5903"),
            Modp2048s256 => (24, 256, Modp, "MODP_2048_256", "modp2048s256", "RFC 5114, RFC 6989"),
            Curve25519 => (31, 32, Montgomery, "CURVE_25519", "curve25519", "RFC 8031, RFC 7748"),
        }
    }

    pub fn transform_id(self) -> u16 {
        self.info().0
    }

    /// Bytes of the KE payload's data (and, for MODP and X25519, of the shared secret).
    pub fn public_len(self) -> usize {
        self.info().1
    }

    /// Bytes of g^ir: p's length for MODP, one coordinate for ECP (RFC 5903 7), 32 for X25519.
    pub fn shared_len(self) -> usize {
        match self.kind() {
            GroupKind::Ecp => self.public_len() / 2,
            _ => self.public_len(),
        }
    }

    pub fn kind(self) -> GroupKind {
        self.info().2
    }

    pub fn from_transform(id: u16) -> Option<DhGroup> {
        DhGroup::ALL.into_iter().find(|a| a.transform_id() == id)
    }

    pub fn name(self) -> &'static str {
        self.info().3
    }

    pub fn keyword(self) -> &'static str {
        self.info().4
    }

    pub fn rfc(self) -> &'static str {
        self.info().5
    }

    /// MODP-768: accepted only when configured by name, and flagged by `check`.
    pub fn is_weak(self) -> bool {
        self == DhGroup::Modp768
    }
}
