//! Algorithm identifiers: sizes, IKEv2 transform IDs (IANA "IKEv2 Transform Type" registries)
//! and the names that strongSwan prints, so logs and status read the same on both ends.
//!
//! Each enum reads its numbers from one table row (`info()`), so adding an algorithm is one
//! row, not one arm in every method.

/// Encryption transforms (IKEv2 transform type 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncrAlg {
    AesCbc128,
    AesCbc256,
    TripleDesCbc,
    AesGcm16_128,
    AesGcm16_256,
    AesCbc192,
    AesGcm8_128,
    AesGcm8_192,
    AesGcm8_256,
    AesGcm12_128,
    AesGcm12_192,
    AesGcm12_256,
    AesGcm16_192,
    /// RFC 7634, in IKE and ESP: 256-bit key, 4-byte salt, 8-byte IV, 16-byte tag.
    ChaCha20Poly1305,
    /// ENCR_NULL (RFC 2410), ESP only and only with an integrity algorithm (RFC 4303 3.2).
    Null,
}

/// One row of the encryption table.
pub(crate) struct EncrInfo {
    pub id: u16,
    /// Cipher key bytes, without the salt.
    pub key: usize,
    /// Salt bytes taken from KEYMAT after the key (RFC 4106 8.1, RFC 5282 7.1, RFC 7634 2).
    pub salt: usize,
    /// Alignment of the padded plaintext.
    pub block: usize,
    pub iv: usize,
    /// Tag bytes of an AEAD cipher; 0 for the others.
    pub icv: usize,
    /// Whether the Key Length attribute (RFC 7296 3.3.5) is sent.
    pub key_attr: bool,
    pub name: &'static str,
    pub keyword: &'static str,
    pub rfc: &'static str,
}

/// One table row, positionally, so the table below stays one line per cipher.
#[allow(clippy::too_many_arguments)]
const fn encr(
    id: u16,
    key: usize,
    salt: usize,
    block: usize,
    iv: usize,
    icv: usize,
    key_attr: bool,
    name: &'static str,
    keyword: &'static str,
    rfc: &'static str,
) -> EncrInfo {
    EncrInfo {
        id,
        key,
        salt,
        block,
        iv,
        icv,
        key_attr,
        name,
        keyword,
        rfc,
    }
}

impl EncrAlg {
    pub const ALL: [EncrAlg; 15] = [
        EncrAlg::AesCbc128,
        EncrAlg::AesCbc192,
        EncrAlg::AesCbc256,
        EncrAlg::TripleDesCbc,
        EncrAlg::AesGcm8_128,
        EncrAlg::AesGcm8_192,
        EncrAlg::AesGcm8_256,
        EncrAlg::AesGcm12_128,
        EncrAlg::AesGcm12_192,
        EncrAlg::AesGcm12_256,
        EncrAlg::AesGcm16_128,
        EncrAlg::AesGcm16_192,
        EncrAlg::AesGcm16_256,
        EncrAlg::ChaCha20Poly1305,
        EncrAlg::Null,
    ];

    #[rustfmt::skip]
    pub(crate) fn info(self) -> EncrInfo {
        use EncrAlg::*;
        // AES-GCM: RFC 4106 (ESP), RFC 5282 (IKE); ICV 8/12/16 = transform 18/19/20.
        const GCM: &str = "RFC 4106, RFC 5282";
        match self {
            AesCbc128 => encr(12, 16, 0, 16, 16, 0, true, "AES_CBC_128", "aes128", "RFC 3602"),
            AesCbc192 => encr(12, 24, 0, 16, 16, 0, true, "AES_CBC_192", "aes192", "RFC 3602"),
            AesCbc256 => encr(12, 32, 0, 16, 16, 0, true, "AES_CBC_256", "aes256", "RFC 3602"),
            TripleDesCbc => encr(3, 24, 0, 8, 8, 0, false, "3DES_CBC", "3des", "RFC 2451"),
            AesGcm8_128 => encr(18, 16, 4, 4, 8, 8, true, "AES_GCM_8_128", "aes128gcm8", GCM),
            AesGcm8_192 => encr(18, 24, 4, 4, 8, 8, true, "AES_GCM_8_192", "aes192gcm8", GCM),
            AesGcm8_256 => encr(18, 32, 4, 4, 8, 8, true, "AES_GCM_8_256", "aes256gcm8", GCM),
            AesGcm12_128 => encr(19, 16, 4, 4, 8, 12, true, "AES_GCM_12_128", "aes128gcm12", GCM),
            AesGcm12_192 => encr(19, 24, 4, 4, 8, 12, true, "AES_GCM_12_192", "aes192gcm12", GCM),
            AesGcm12_256 => encr(19, 32, 4, 4, 8, 12, true, "AES_GCM_12_256", "aes256gcm12", GCM),
            AesGcm16_128 => encr(20, 16, 4, 4, 8, 16, true, "AES_GCM_16_128", "aes128gcm16", GCM),
            AesGcm16_192 => encr(20, 24, 4, 4, 8, 16, true, "AES_GCM_16_192", "aes192gcm16", GCM),
            AesGcm16_256 => encr(20, 32, 4, 4, 8, 16, true, "AES_GCM_16_256", "aes256gcm16", GCM),
            ChaCha20Poly1305 => encr(28, 32, 4, 4, 8, 16, false, "CHACHA20_POLY1305", "chacha20poly1305", "RFC 7634"),
            Null => encr(11, 0, 0, 4, 0, 0, false, "NULL", "null", "RFC 2410, RFC 4303"),
        }
    }

    /// Cipher key bytes, without the 4-byte AEAD salt.
    pub fn key_len(self) -> usize {
        self.info().key
    }

    /// Bytes taken from KEYMAT / prf+: the key plus the salt for AEAD ciphers.
    pub fn keymat_len(self) -> usize {
        let i = self.info();
        i.key + i.salt
    }

    /// Salt bytes at the end of the keymat (4 for AES-GCM and ChaCha20-Poly1305, else 0).
    pub fn salt_len(self) -> usize {
        self.info().salt
    }

    /// Alignment of the padded plaintext.
    pub fn block_len(self) -> usize {
        self.info().block
    }

    /// Bytes of IV carried in each packet.
    pub fn iv_len(self) -> usize {
        self.info().iv
    }

    pub fn is_aead(self) -> bool {
        self.info().icv > 0
    }

    /// Integrity check bytes contributed by the cipher itself (the AEAD tag).
    pub fn icv_len(self) -> usize {
        self.info().icv
    }

    pub fn transform_id(self) -> u16 {
        self.info().id
    }

    /// Value of the Key Length attribute (RFC 7296 3.3.5), absent for fixed-size ciphers.
    pub fn key_attr_bits(self) -> Option<u16> {
        let i = self.info();
        i.key_attr.then_some((i.key * 8) as u16)
    }

    pub fn from_transform(id: u16, key_bits: Option<u16>) -> Option<EncrAlg> {
        EncrAlg::ALL
            .into_iter()
            .find(|a| a.transform_id() == id && a.key_attr_bits() == key_bits)
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// strongSwan proposal keyword.
    pub fn keyword(self) -> &'static str {
        self.info().keyword
    }

    /// The RFC(s) the transform follows.
    pub fn rfc(self) -> &'static str {
        self.info().rfc
    }

    /// The name Wireshark's `ikev2_decryption_table` uses (the key log's format). Wireshark
    /// has no entry for ChaCha20-Poly1305; its line names the RFC so a reader still knows.
    pub fn wireshark_name(self) -> &'static str {
        use EncrAlg::*;
        match self {
            AesCbc128 => "AES-CBC-128 [RFC3602]",
            AesCbc192 => "AES-CBC-192 [RFC3602]",
            AesCbc256 => "AES-CBC-256 [RFC3602]",
            TripleDesCbc => "3DES [RFC2451]",
            AesGcm8_128 => "AES-GCM-128 with 8 octet ICV [RFC5282]",
            AesGcm8_192 => "AES-GCM-192 with 8 octet ICV [RFC5282]",
            AesGcm8_256 => "AES-GCM-256 with 8 octet ICV [RFC5282]",
            AesGcm12_128 => "AES-GCM-128 with 12 octet ICV [RFC5282]",
            AesGcm12_192 => "AES-GCM-192 with 12 octet ICV [RFC5282]",
            AesGcm12_256 => "AES-GCM-256 with 12 octet ICV [RFC5282]",
            AesGcm16_128 => "AES-GCM-128 with 16 octet ICV [RFC5282]",
            AesGcm16_192 => "AES-GCM-192 with 16 octet ICV [RFC5282]",
            AesGcm16_256 => "AES-GCM-256 with 16 octet ICV [RFC5282]",
            ChaCha20Poly1305 => "CHACHA20-POLY1305 [RFC7634]",
            Null => "NULL [RFC2410]",
        }
    }

    /// Allowed in IKE SA proposals (RFC 7296 3.3.2: never ENCR_NULL).
    pub fn allowed_in_ike(self) -> bool {
        self != EncrAlg::Null
    }

    /// Accepted only when configured by name, and flagged by `check`.
    pub fn is_weak(self) -> bool {
        self == EncrAlg::Null
    }
}

/// Integrity transforms (IKEv2 transform type 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntegAlg {
    HmacSha1_96,
    HmacSha256_128,
    HmacSha384_192,
    HmacSha512_256,
    HmacMd5_96,
    AesXcbc96,
}

impl IntegAlg {
    pub const ALL: [IntegAlg; 6] = [
        IntegAlg::HmacMd5_96,
        IntegAlg::HmacSha1_96,
        IntegAlg::AesXcbc96,
        IntegAlg::HmacSha256_128,
        IntegAlg::HmacSha384_192,
        IntegAlg::HmacSha512_256,
    ];

    /// (transform id, key bytes, ICV bytes, name, keyword, RFC, matching PRF)
    #[allow(clippy::type_complexity)]
    #[rustfmt::skip]
    fn info(self) -> (u16, usize, usize, &'static str, &'static str, &'static str, PrfAlg) {
        use IntegAlg::*;
        match self {
            HmacMd5_96 => (1, 16, 12, "HMAC_MD5_96", "md5", "RFC 2403", PrfAlg::HmacMd5),
            HmacSha1_96 => (2, 20, 12, "HMAC_SHA1_96", "sha1", "RFC 2404", PrfAlg::HmacSha1),
            AesXcbc96 => (5, 16, 12, "AES_XCBC_96", "aesxcbc", "RFC 3566", PrfAlg::AesXcbc128),
            HmacSha256_128 => (12, 32, 16, "HMAC_SHA2_256_128", "sha256", "RFC 4868", PrfAlg::HmacSha256),
            HmacSha384_192 => (13, 48, 24, "HMAC_SHA2_384_192", "sha384", "RFC 4868", PrfAlg::HmacSha384),
            HmacSha512_256 => (14, 64, 32, "HMAC_SHA2_512_256", "sha512", "RFC 4868", PrfAlg::HmacSha512),
        }
    }

    pub fn key_len(self) -> usize {
        self.info().1
    }

    pub fn icv_len(self) -> usize {
        self.info().2
    }

    pub fn transform_id(self) -> u16 {
        self.info().0
    }

    pub fn from_transform(id: u16) -> Option<IntegAlg> {
        IntegAlg::ALL.into_iter().find(|a| a.transform_id() == id)
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

    /// The PRF strongSwan pairs with this integrity keyword when no `prf…` is given.
    pub fn matching_prf(self) -> PrfAlg {
        self.info().6
    }

    /// The name Wireshark's `ikev2_decryption_table` uses (no entry exists for AES-XCBC-96).
    pub fn wireshark_name(self) -> &'static str {
        match self {
            IntegAlg::HmacMd5_96 => "HMAC_MD5_96 [RFC2403]",
            IntegAlg::HmacSha1_96 => "HMAC_SHA1_96 [RFC2404]",
            IntegAlg::AesXcbc96 => "AES_XCBC_96 [RFC3566]",
            IntegAlg::HmacSha256_128 => "HMAC_SHA2_256_128 [RFC4868]",
            IntegAlg::HmacSha384_192 => "HMAC_SHA2_384_192 [RFC4868]",
            IntegAlg::HmacSha512_256 => "HMAC_SHA2_512_256 [RFC4868]",
        }
    }

    /// HMAC-MD5-96: accepted only when configured by name, and flagged by `check`.
    pub fn is_weak(self) -> bool {
        self == IntegAlg::HmacMd5_96
    }
}

/// Pseudo-random functions (IKEv2 transform type 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrfAlg {
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
    HmacMd5,
    /// RFC 4434: AES-XCBC-PRF-128, any key length, 16-byte output.
    AesXcbc128,
}

impl PrfAlg {
    pub const ALL: [PrfAlg; 6] = [
        PrfAlg::HmacMd5,
        PrfAlg::HmacSha1,
        PrfAlg::AesXcbc128,
        PrfAlg::HmacSha256,
        PrfAlg::HmacSha384,
        PrfAlg::HmacSha512,
    ];

    /// (transform id, output bytes, name, keyword, RFC)
    fn info(self) -> (u16, usize, &'static str, &'static str, &'static str) {
        use PrfAlg::*;
        match self {
            HmacMd5 => (1, 16, "PRF_HMAC_MD5", "prfmd5", "RFC 2104"),
            HmacSha1 => (2, 20, "PRF_HMAC_SHA1", "prfsha1", "RFC 2104"),
            AesXcbc128 => (4, 16, "PRF_AES128_XCBC", "prfaesxcbc", "RFC 4434"),
            HmacSha256 => (5, 32, "PRF_HMAC_SHA2_256", "prfsha256", "RFC 4868"),
            HmacSha384 => (6, 48, "PRF_HMAC_SHA2_384", "prfsha384", "RFC 4868"),
            HmacSha512 => (7, 64, "PRF_HMAC_SHA2_512", "prfsha512", "RFC 4868"),
        }
    }

    pub fn out_len(self) -> usize {
        self.info().1
    }

    /// Preferred key size: SK_d, SK_pi and SK_pr are this long (RFC 7296 2.14). For the
    /// HMAC PRFs and AES-XCBC-PRF-128 alike it equals the output length.
    pub fn key_len(self) -> usize {
        self.out_len()
    }

    pub fn transform_id(self) -> u16 {
        self.info().0
    }

    pub fn from_transform(id: u16) -> Option<PrfAlg> {
        PrfAlg::ALL.into_iter().find(|a| a.transform_id() == id)
    }

    pub fn name(self) -> &'static str {
        self.info().2
    }

    pub fn keyword(self) -> &'static str {
        self.info().3
    }

    pub fn rfc(self) -> &'static str {
        self.info().4
    }

    /// PRF-HMAC-MD5: accepted only when configured by name, and flagged by `check`.
    pub fn is_weak(self) -> bool {
        self == PrfAlg::HmacMd5
    }

    /// RFC 7296 2.14: with AES-XCBC-PRF-128 only the first 64 bits of Ni and of Nr key
    /// SKEYSEED's prf (all bits still go into prf+).
    pub fn uses_truncated_nonces(self) -> bool {
        self == PrfAlg::AesXcbc128
    }
}
