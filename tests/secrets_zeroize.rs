//! Issue 11 "Keys": every secret-holding type wipes its memory when dropped.
//!
//! Method: a global allocator that, while a test thread has armed it, looks at every block
//! that thread frees and counts the blocks that still hold the secret's first 16 bytes. A
//! plain `Vec` (and a plain boxed array) with the same bytes shows the detector works.
//!
//! - Heap-held secrets (`Zeroizing<Vec<u8>>` keys, the MODP exponent, cipher and MAC states
//!   behind `Box<dyn ...>`) are checked as they are: dropping the owner frees their blocks.
//! - Secrets held inline (the ECP scalar in `p256::SecretKey`, the X25519 `StaticSecret`,
//!   both inside `DhPrivate`'s enum) are put in a `Box` for the test: the box's block is freed
//!   right after the value's own drop ran, so it still shows whether that drop wiped them.
//! - Derivations are checked with the allocator armed *while they run*, so a temporary copy
//!   freed unwiped (a prf+ buffer, an HMAC state, a parsed TOML string) counts too.
//!
//! What this cannot see: copies on the stack (they are overwritten as the stack is reused,
//! but not wiped) and inside the OS. Nonces key SKEYSEED's prf, but they travel in the clear,
//! so they are not secrets and are not checked.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ipsecgw::crypto::{self, DhGroup, DhPrivate, EncrAlg, IntegAlg, PrfAlg};
use ipsecgw::esp::{Backend, InboundSa, OutboundSa, SaParams};
use ipsecgw::ike::keys::{self, IkeAlgs, KeyMaterial, KeySource};
use zeroize::Zeroizing;

const N: usize = 16;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static PATTERN: Cell<[u8; N]> = const { Cell::new([0; N]) };
    static LEAKS: Cell<usize> = const { Cell::new(0) };
    /// Size of the last leaking block, for the failure message.
    static LEAK_SIZE: Cell<usize> = const { Cell::new(0) };
}

struct Watch;

// SAFETY: forwards to System; the check only reads the block before handing it back.
unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // Const-initialized thread locals without Drop: no allocation, usable here.
        if ARMED.with(Cell::get) && l.size() >= N {
            let pat = PATTERN.with(Cell::get);
            // SAFETY: the block is still ours until System.dealloc below.
            let block = unsafe { std::slice::from_raw_parts(p, l.size()) };
            if block.windows(N).any(|w| w == pat) {
                LEAKS.with(|c| c.set(c.get() + 1));
                LEAK_SIZE.with(|c| c.set(l.size()));
            }
        }
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // A moving realloc frees the old block: check it like a dealloc.
        unsafe {
            let q = self.alloc(Layout::from_size_align_unchecked(new, l.align()));
            if !q.is_null() {
                std::ptr::copy_nonoverlapping(p, q, l.size().min(new));
                self.dealloc(p, l);
            }
            q
        }
    }
}

#[global_allocator]
static GLOBAL: Watch = Watch;

/// Blocks freed (by this thread) while `f` runs that still hold the first 16 bytes of
/// `secret`.
fn leaks_while(secret: &[u8], f: impl FnOnce()) -> usize {
    assert!(secret.len() >= N, "pattern needs {N} bytes");
    let mut pat = [0u8; N];
    pat.copy_from_slice(&secret[..N]);
    assert!(
        pat.iter().any(|b| *b != 0),
        "an all-zero pattern proves nothing"
    );
    PATTERN.with(|c| c.set(pat));
    LEAKS.with(|c| c.set(0));
    ARMED.with(|c| c.set(true));
    f();
    ARMED.with(|c| c.set(false));
    let n = LEAKS.with(Cell::get);
    if n > 0 {
        eprintln!(
            "{n} freed block(s) held the secret, the last one of {} bytes",
            LEAK_SIZE.with(Cell::get)
        );
    }
    n
}

/// The SHA-1 chaining value after the HMAC inner pad, as the keyed HMAC state holds it
/// (five native-endian u32): the state is key-equivalent, so it is what must be wiped.
fn hmac_sha1_ipad_state(key: &[u8]) -> Vec<u8> {
    assert!(key.len() <= 64);
    let mut block = [0x36u8; 64];
    block.iter_mut().zip(key).for_each(|(b, k)| *b ^= k);
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    sha1::compress(&mut h, &[block.into()]);
    h.iter().flat_map(|w| w.to_ne_bytes()).collect()
}

fn algs(encr: EncrAlg, integ: Option<IntegAlg>) -> IkeAlgs {
    IkeAlgs {
        encr,
        integ,
        prf: PrfAlg::HmacSha1,
        dh: DhGroup::Modp1024,
    }
}

const SHARED: [u8; 128] = [0xa7; 128];
const NI: [u8; 32] = [1; 32];
const NR: [u8; 32] = [2; 32];

#[test]
fn the_detector_sees_unwiped_blocks() {
    let plain = vec![0x5au8; 64];
    assert_eq!(leaks_while(&[0x5a; N], move || drop(plain)), 1, "Vec");
    let inline = Box::new([0x6bu8; 32]);
    assert_eq!(
        leaks_while(&[0x6b; N], move || drop(inline)),
        1,
        "Box<[u8; 32]>"
    );
    let wiped = Zeroizing::new(vec![0x5au8; 64]);
    assert_eq!(leaks_while(&[0x5a; N], move || drop(wiped)), 0, "Zeroizing");
    // An HMAC state the hmac crate drops on its own keeps its key-equivalent pads.
    let key = [0x3cu8; 20];
    let pat = hmac_sha1_ipad_state(&key);
    let state = Box::new(<hmac::Hmac<sha1::Sha1> as hmac::Mac>::new_from_slice(&key).unwrap());
    assert_eq!(leaks_while(&pat, move || drop(state)), 1, "bare hmac::Hmac");
}

#[test]
fn skeyseed_and_the_seven_ike_sa_keys_are_wiped() {
    let a = algs(EncrAlg::AesCbc256, Some(IntegAlg::HmacSha1_96));
    let seed = keys::skeyseed(a.prf, &NI, &NR, &SHARED);
    assert_eq!(
        leaks_while(&seed.clone(), || drop(keys::skeyseed(
            a.prf, &NI, &NR, &SHARED
        ))),
        0,
        "SKEYSEED"
    );
    let k = keys::derive_ike_keys(&a, &seed, &NI, &NR, 1, 2);
    let parts = [
        ("SK_d", &k.sk_d),
        ("SK_ai", &k.sk_ai),
        ("SK_ar", &k.sk_ar),
        ("SK_ei", &k.sk_ei),
        ("SK_er", &k.sk_er),
        ("SK_pi", &k.sk_pi),
        ("SK_pr", &k.sk_pr),
    ];
    for (name, part) in parts {
        // Derived and dropped while armed: neither the keys nor prf+'s buffers stay behind.
        let n = leaks_while(part, || {
            drop(keys::derive_ike_keys(&a, &seed, &NI, &NR, 1, 2))
        });
        assert_eq!(n, 0, "IkeKeys.{name}");
    }
}

#[test]
fn sk_payload_ciphers_and_macs_are_wiped() {
    for (encr, integ) in [
        (EncrAlg::AesCbc256, Some(IntegAlg::HmacSha1_96)),
        (EncrAlg::AesGcm16_256, None),
    ] {
        let a = algs(encr, integ);
        let m = KeyMaterial {
            shared: &SHARED,
            ni: &NI,
            nr: &NR,
            spi_i: 1,
            spi_r: 2,
        };
        let ks = keys::key_ike_sa(&a, KeySource::Fresh, &m, true).unwrap();
        let mut pats = vec![
            ("SK_ei", ks.keys.sk_ei.to_vec()),
            ("SK_er", ks.keys.sk_er.to_vec()),
        ];
        if integ.is_some() {
            pats.push(("SK_ai (HMAC state)", hmac_sha1_ipad_state(&ks.keys.sk_ai)));
            pats.push(("SK_ar (HMAC state)", hmac_sha1_ipad_state(&ks.keys.sk_ar)));
        }
        for (name, pat) in pats {
            let n = leaks_while(&pat, || {
                drop(keys::key_ike_sa(&a, KeySource::Fresh, &m, true).unwrap())
            });
            assert_eq!(n, 0, "{encr:?}: {name} in IkeSaKeys / SkCrypto");
        }
    }
}

#[test]
fn child_sa_keys_are_wiped_in_both_directions() {
    for (encr, integ) in [
        (EncrAlg::AesCbc256, Some(IntegAlg::HmacSha1_96)),
        (EncrAlg::AesGcm16_256, None),
    ] {
        let sk_d = [0x4du8; 20];
        let derive = || keys::child_keys(PrfAlg::HmacSha1, &sk_d, None, &NI, &NR, encr, integ);
        let ck = derive();
        let mut pats = vec![("encr_i2r", &ck.encr_i2r), ("encr_r2i", &ck.encr_r2i)];
        if integ.is_some() {
            pats.push(("integ_i2r", &ck.integ_i2r));
            pats.push(("integ_r2i", &ck.integ_r2i));
        }
        for (name, pat) in pats {
            assert_eq!(
                leaks_while(pat, || drop(derive())),
                0,
                "{encr:?} ChildKeys.{name}"
            );
        }
    }
}

#[test]
fn esp_sa_keys_are_wiped_in_both_directions() {
    let cases = [
        (EncrAlg::AesCbc256, Some(IntegAlg::HmacSha1_96), 32, 20),
        (EncrAlg::AesCbc128, Some(IntegAlg::HmacSha1_96), 16, 20),
        (EncrAlg::AesGcm16_256, None, 36, 0),
        (EncrAlg::AesGcm16_128, None, 20, 0),
    ];
    for (encr, integ, elen, ilen) in cases {
        let params = || SaParams {
            spi: 0x1234_5678,
            encr,
            integ,
            encr_key: Zeroizing::new((0..elen as u8).map(|i| i.wrapping_mul(37) ^ 0xc5).collect()),
            integ_key: Zeroizing::new((0..ilen as u8).map(|i| i.wrapping_mul(11) ^ 0x93).collect()),
            esn: false,
            replay_window: 64,
        };
        let p = params();
        let mut pats = vec![("encr key", p.encr_key.to_vec())];
        if ilen > 0 {
            pats.push(("HMAC state", hmac_sha1_ipad_state(&p.integ_key)));
        }
        for backend in [Backend::Auto, Backend::Reference] {
            for (name, pat) in &pats {
                let out = leaks_while(pat, || {
                    drop(OutboundSa::with_backend(&params(), backend).unwrap())
                });
                assert_eq!(out, 0, "{encr:?} {backend:?} outbound: {name}");
                let inn = leaks_while(pat, || {
                    drop(InboundSa::with_backend(&params(), backend).unwrap())
                });
                assert_eq!(inn, 0, "{encr:?} {backend:?} inbound: {name}");
            }
        }
        assert_eq!(
            leaks_while(&pats[0].1, move || drop(p)),
            0,
            "{encr:?} SaParams"
        );
    }
}

const PSK: &[u8] = b"psk-Zq9w8e7r6t5y4u3i-inline";

#[test]
fn the_psk_is_wiped_inline_from_config_text() {
    let psk = ipsecgw::config::Psk::new(PSK.to_vec());
    assert_eq!(leaks_while(PSK, move || drop(psk)), 0, "Psk");
    let text = format!(
        "[[connection]]\nname = \"a\"\nlocal_addrs = [\"192.0.2.1\"]\nremote_addrs = [\"192.0.2.2\"]\npsk = \"{}\"\n\n[[connection.children]]\nname = \"c\"\n",
        std::str::from_utf8(PSK).unwrap()
    );
    // Parsed and dropped while armed: the TOML document's strings, our tree and the Config.
    let n = leaks_while(PSK, || {
        let c = ipsecgw::config::parse(&text, "test.toml").expect("config");
        assert_eq!(c.connections[0].psk.as_bytes(), PSK);
        drop(c);
    });
    assert_eq!(n, 0, "inline psk");
}

#[test]
fn the_psk_is_wiped_when_loaded_from_psk_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("ipsecgw-zeroize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let psk_path = dir.join("peer.psk");
    std::fs::write(&psk_path, [PSK, b"\n"].concat()).unwrap();
    std::fs::set_permissions(&psk_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let conf = dir.join("gw.toml");
    std::fs::write(
        &conf,
        format!(
            "[[connection]]\nname = \"a\"\nlocal_addrs = [\"192.0.2.1\"]\nremote_addrs = [\"192.0.2.2\"]\npsk_file = \"{}\"\n\n[[connection.children]]\nname = \"c\"\n",
            psk_path.display()
        ),
    )
    .unwrap();
    let n = leaks_while(PSK, || {
        let c = ipsecgw::config::load(&conf).expect("config");
        assert_eq!(c.connections[0].psk.as_bytes(), PSK);
        drop(c);
    });
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(n, 0, "psk_file");
}

#[test]
fn the_hmac_state_keyed_with_the_psk_is_wiped() {
    // AUTH = prf(prf(PSK, "Key Pad for IKEv2"), ...): the first prf is keyed with the PSK.
    let pat = hmac_sha1_ipad_state(PSK);
    let n = leaks_while(&pat, || {
        drop(keys::psk_auth(
            PrfAlg::HmacSha1,
            PSK,
            b"message",
            &NR,
            &[9u8; 20],
            b"id",
        ))
    });
    assert_eq!(n, 0, "prf(PSK, ...) HMAC state");
    let n = leaks_while(&pat, || drop(crypto::prf(PrfAlg::HmacSha1, PSK, &[b"x"])));
    assert_eq!(n, 0, "prf HMAC state");
}

#[test]
fn modp_exponent_and_shared_secret_are_wiped() {
    // A 1024-bit safe-prime group and group 24 (2048-bit p, 256-bit exponent, the subgroup
    // check on the peer's value): each runs its own Montgomery size and comb table, built
    // on first use while the allocator watches.
    for (group, len) in [(DhGroup::Modp1024, 128), (DhGroup::Modp2048s256, 32)] {
        let x: Vec<u8> = (0..len as u32).map(|i| (i * 7 + 3) as u8 | 0x40).collect();
        let peer = DhPrivate::from_private_bytes(group, &[9u8; 32]).unwrap();
        let peer_pub = peer.public_value();
        // The exponent: key setup, the public value, one exchange and the drop, all watched.
        let n = leaks_while(&x, || {
            let k = DhPrivate::from_private_bytes(group, &x).unwrap();
            drop(k.public_value());
            drop(k.shared_secret(&peer_pub).unwrap());
            drop(k);
        });
        assert_eq!(n, 0, "{} exponent", group.name());
        let mine = DhPrivate::from_private_bytes(group, &x).unwrap();
        let shared = mine.shared_secret(&peer_pub).unwrap();
        let n = leaks_while(&shared, || drop(mine.shared_secret(&peer_pub).unwrap()));
        assert_eq!(n, 0, "{} shared secret", group.name());
    }
}

#[test]
fn ecp_and_curve25519_private_values_and_shared_secrets_are_wiped() {
    for (group, len) in [
        (DhGroup::Ecp256, 32),
        (DhGroup::Ecp384, 48),
        (DhGroup::Ecp521, 66),
        (DhGroup::Curve25519, 32),
    ] {
        let scalar: Vec<u8> = (0..len as u32).map(|i| (i * 29 + 5) as u8).collect();
        let mut scalar = scalar;
        if group == DhGroup::Ecp521 {
            scalar[0] = 0x01; // below the 521-bit order
        }
        // ECP keeps the scalar as little-endian limbs; X25519 keeps the 32 bytes as given.
        let in_memory: Vec<u8> = if group == DhGroup::Curve25519 {
            scalar.clone()
        } else {
            scalar.iter().rev().copied().collect()
        };
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(5);
        let peer = DhPrivate::generate(group, &mut rng);
        let peer_pub = peer.public_value();
        let n = leaks_while(&in_memory, || {
            // Inline in DhPrivate: boxed so its memory goes through the allocator.
            let k = Box::new(DhPrivate::from_private_bytes(group, &scalar).unwrap());
            drop(k.shared_secret(&peer_pub).unwrap());
            drop(k);
        });
        assert_eq!(n, 0, "{group:?} private value");
        let mine = DhPrivate::from_private_bytes(group, &scalar).unwrap();
        let shared = mine.shared_secret(&peer_pub).unwrap();
        let n = leaks_while(&shared, || drop(mine.shared_secret(&peer_pub).unwrap()));
        assert_eq!(n, 0, "{group:?} shared secret");
    }
}
