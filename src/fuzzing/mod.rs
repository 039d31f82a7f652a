//! Bodies of the fuzz targets (`fuzz/fuzz_targets/*`), kept in the library so that the same code
//! runs under libFuzzer on nightly and in the stable replay test (`tests/fuzz_corpus.rs`), which
//! feeds every file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through it.
//!
//! Each function takes arbitrary bytes and must never panic; a panic is a finding. Everything is
//! deterministic: seeded RNGs, and time that only moves by steps the input asks for (offsets from
//! one base `Instant`, so a crash reproduces bit for bit). The harnesses only use the public entry
//! points of each core (codec decode, `Engine`, `InboundSa`, BGP `Session`, config parse, control
//! request parse), so they survive rewrites of the internals.

mod bgp;
mod cookie;
mod engine;
mod esp;
mod ike;
mod text;

pub use bgp::{bgp_decode, bgp_session};
pub use cookie::cookie_gate;
pub use engine::{ike_initiator, ike_responder};
pub use esp::esp_decap;
pub use ike::{ike_decode, ike_sk};
pub use text::{config, control, flow};

/// The body of one fuzz target.
pub type Target = fn(&[u8]);

/// Every target: its name (the folder under `fuzz/corpus/` and `fuzz/regressions/`, and the
/// cargo-fuzz target name) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("ike_decode", ike_decode),
    ("ike_sk", ike_sk),
    ("ike_responder", ike_responder),
    ("ike_initiator", ike_initiator),
    ("cookie_gate", cookie_gate),
    ("esp_decap", esp_decap),
    ("bgp_decode", bgp_decode),
    ("bgp_session", bgp_session),
    ("flow", flow),
    ("config", config),
    ("control", control),
];

/// A cursor over the fuzz input: reads past the end yield zeros / empty slices, so every input
/// is a valid script.
pub(crate) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn u8(&mut self) -> u8 {
        let (b, rest) = self
            .data
            .split_first()
            .map_or((0, &[][..]), |(b, r)| (*b, r));
        self.data = rest;
        b
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub(crate) fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }

    /// Up to `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }

    /// One record `tag u8 | len u16 | len bytes` (the body is cut short at the end of input).
    pub(crate) fn record(&mut self) -> Option<(u8, &'a [u8])> {
        if self.is_empty() {
            return None;
        }
        let tag = self.u8();
        let len = usize::from(self.u16());
        Some((tag, self.take(len)))
    }
}

/// Builds one record in the format [`Input::record`] reads (for seeds and tests).
pub fn record(tag: u8, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
    let mut r = vec![tag];
    r.extend_from_slice(&len.to_be_bytes());
    r.extend_from_slice(body.get(..usize::from(len)).unwrap_or(body));
    r
}
