//! Algorithm identifiers: sizes, IKEv2 transform IDs (IANA "IKEv2 Transform Type" registries)
//! and the names that strongSwan prints, so logs and status read the same on both ends.

/// Encryption transforms (IKEv2 transform type 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncrAlg {
    AesCbc128,
    AesCbc256,
    TripleDesCbc,
    AesGcm16_128,
    AesGcm16_256,
}

impl EncrAlg {
    pub const ALL: [EncrAlg; 5] = [
        EncrAlg::AesCbc128,
        EncrAlg::AesCbc256,
        EncrAlg::TripleDesCbc,
        EncrAlg::AesGcm16_128,
        EncrAlg::AesGcm16_256,
    ];

    /// Cipher key bytes, without the 4-byte GCM salt.
    pub fn key_len(self) -> usize {
        match self {
            EncrAlg::AesCbc128 | EncrAlg::AesGcm16_128 => 16,
            EncrAlg::AesCbc256 | EncrAlg::AesGcm16_256 => 32,
            EncrAlg::TripleDesCbc => 24,
        }
    }

    /// Bytes taken from KEYMAT / prf+: the key plus the salt for GCM (RFC 4106 8.1, RFC 5282).
    pub fn keymat_len(self) -> usize {
        self.key_len() + if self.is_aead() { 4 } else { 0 }
    }

    /// Alignment of the padded plaintext.
    pub fn block_len(self) -> usize {
        match self {
            EncrAlg::AesCbc128 | EncrAlg::AesCbc256 => 16,
            EncrAlg::TripleDesCbc => 8,
            EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256 => 4,
        }
    }

    /// Bytes of IV carried in each packet.
    pub fn iv_len(self) -> usize {
        match self {
            EncrAlg::AesCbc128 | EncrAlg::AesCbc256 => 16,
            EncrAlg::TripleDesCbc | EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256 => 8,
        }
    }

    pub fn is_aead(self) -> bool {
        matches!(self, EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256)
    }

    /// Integrity check bytes contributed by the cipher itself (the GCM tag).
    pub fn icv_len(self) -> usize {
        if self.is_aead() {
            16
        } else {
            0
        }
    }

    pub fn transform_id(self) -> u16 {
        match self {
            EncrAlg::TripleDesCbc => 3,
            EncrAlg::AesCbc128 | EncrAlg::AesCbc256 => 12,
            EncrAlg::AesGcm16_128 | EncrAlg::AesGcm16_256 => 20,
        }
    }

    /// Value of the Key Length attribute (RFC 7296 3.3.5), absent for fixed-size ciphers.
    pub fn key_attr_bits(self) -> Option<u16> {
        match self {
            EncrAlg::TripleDesCbc => None,
            a => Some((a.key_len() * 8) as u16),
        }
    }

    pub fn from_transform(id: u16, key_bits: Option<u16>) -> Option<EncrAlg> {
        match (id, key_bits) {
            (3, None) => Some(EncrAlg::TripleDesCbc),
            (12, Some(128)) => Some(EncrAlg::AesCbc128),
            (12, Some(256)) => Some(EncrAlg::AesCbc256),
            (20, Some(128)) => Some(EncrAlg::AesGcm16_128),
            (20, Some(256)) => Some(EncrAlg::AesGcm16_256),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EncrAlg::AesCbc128 => "AES_CBC_128",
            EncrAlg::AesCbc256 => "AES_CBC_256",
            EncrAlg::TripleDesCbc => "3DES_CBC",
            EncrAlg::AesGcm16_128 => "AES_GCM_16_128",
            EncrAlg::AesGcm16_256 => "AES_GCM_16_256",
        }
    }

    /// strongSwan proposal keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            EncrAlg::AesCbc128 => "aes128",
            EncrAlg::AesCbc256 => "aes256",
            EncrAlg::TripleDesCbc => "3des",
            EncrAlg::AesGcm16_128 => "aes128gcm16",
            EncrAlg::AesGcm16_256 => "aes256gcm16",
        }
    }
}

/// Integrity transforms (IKEv2 transform type 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntegAlg {
    HmacSha1_96,
    HmacSha256_128,
}

impl IntegAlg {
    pub const ALL: [IntegAlg; 2] = [IntegAlg::HmacSha1_96, IntegAlg::HmacSha256_128];

    pub fn key_len(self) -> usize {
        match self {
            IntegAlg::HmacSha1_96 => 20,
            IntegAlg::HmacSha256_128 => 32,
        }
    }

    pub fn icv_len(self) -> usize {
        match self {
            IntegAlg::HmacSha1_96 => 12,
            IntegAlg::HmacSha256_128 => 16,
        }
    }

    pub fn transform_id(self) -> u16 {
        match self {
            IntegAlg::HmacSha1_96 => 2,
            IntegAlg::HmacSha256_128 => 12,
        }
    }

    pub fn from_transform(id: u16) -> Option<IntegAlg> {
        IntegAlg::ALL.into_iter().find(|a| a.transform_id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            IntegAlg::HmacSha1_96 => "HMAC_SHA1_96",
            IntegAlg::HmacSha256_128 => "HMAC_SHA2_256_128",
        }
    }

    pub fn keyword(self) -> &'static str {
        match self {
            IntegAlg::HmacSha1_96 => "sha1",
            IntegAlg::HmacSha256_128 => "sha256",
        }
    }

    /// The PRF strongSwan pairs with this integrity keyword when no `prf…` is given.
    pub fn matching_prf(self) -> PrfAlg {
        match self {
            IntegAlg::HmacSha1_96 => PrfAlg::HmacSha1,
            IntegAlg::HmacSha256_128 => PrfAlg::HmacSha256,
        }
    }
}

/// Pseudo-random functions (IKEv2 transform type 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrfAlg {
    HmacSha1,
    HmacSha256,
}

impl PrfAlg {
    pub const ALL: [PrfAlg; 2] = [PrfAlg::HmacSha1, PrfAlg::HmacSha256];

    pub fn out_len(self) -> usize {
        match self {
            PrfAlg::HmacSha1 => 20,
            PrfAlg::HmacSha256 => 32,
        }
    }

    /// Preferred key size: SK_d, SK_pi and SK_pr are this long (RFC 7296 2.14).
    pub fn key_len(self) -> usize {
        self.out_len()
    }

    pub fn transform_id(self) -> u16 {
        match self {
            PrfAlg::HmacSha1 => 2,
            PrfAlg::HmacSha256 => 5,
        }
    }

    pub fn from_transform(id: u16) -> Option<PrfAlg> {
        PrfAlg::ALL.into_iter().find(|a| a.transform_id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            PrfAlg::HmacSha1 => "PRF_HMAC_SHA1",
            PrfAlg::HmacSha256 => "PRF_HMAC_SHA2_256",
        }
    }

    pub fn keyword(self) -> &'static str {
        match self {
            PrfAlg::HmacSha1 => "prfsha1",
            PrfAlg::HmacSha256 => "prfsha256",
        }
    }
}

/// Diffie-Hellman groups (IKEv2 transform type 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// Group 2, RFC 2409 6.2. Weak, but it is what the reference Azure/Cisco deployment runs.
    Modp1024,
    /// Group 14, RFC 3526 3.
    Modp2048,
}

impl DhGroup {
    pub const ALL: [DhGroup; 2] = [DhGroup::Modp1024, DhGroup::Modp2048];

    pub fn transform_id(self) -> u16 {
        match self {
            DhGroup::Modp1024 => 2,
            DhGroup::Modp2048 => 14,
        }
    }

    pub fn public_len(self) -> usize {
        match self {
            DhGroup::Modp1024 => 128,
            DhGroup::Modp2048 => 256,
        }
    }

    pub fn from_transform(id: u16) -> Option<DhGroup> {
        DhGroup::ALL.into_iter().find(|a| a.transform_id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            DhGroup::Modp1024 => "MODP_1024",
            DhGroup::Modp2048 => "MODP_2048",
        }
    }

    pub fn keyword(self) -> &'static str {
        match self {
            DhGroup::Modp1024 => "modp1024",
            DhGroup::Modp2048 => "modp2048",
        }
    }
}
