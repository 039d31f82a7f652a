//! The IKE engine fed hostile datagrams, as responder (`ike_responder`) and as initiator
//! (`ike_initiator`).
//!
//! Input: `flags u8`, then records `tag u8 | len u16 | body` (see [`super::Input::record`]).
//! - flags bits 0-1, the stage reached before the records play: 0 = nothing (the initiator has
//!   sent its IKE_SA_INIT request), 1 = after a valid IKE_SA_INIT exchange, 2 = IKE SA and CHILD
//!   SA established. Stages 1-2 replay a transcript recorded once per process from two engines
//!   in memory (the harness then plays the peer and knows the SA's keys from the engine's key
//!   log). Bits 2-3 pick the peer's cipher suite for that exchange; bit 4 makes the engine
//!   demand cookies from every new IKE_SA_INIT.
//! - record tag bits 0-2: 0 = raw datagram; 1 = sealed message: `exchange | flags | msg_id u32 |
//!   first payload | chain`, protected with the peer's SK keys of the newest IKE SA; 2 = time
//!   step: `seconds u16`, then the timers run; 3 = operator call (`initiate`, `rekey`,
//!   `terminate`, `status`); others = raw datagram.
//! - bit 3: on the NAT-T port 4500 (both ends); bit 4: from another address than the peer's;
//!   bit 5: fix the message up: raw datagrams get the current SA's SPIs (SPIr only once
//!   known), sealed ones the expected message ID (the engine's last request ID for a response,
//!   one past the peer's last request for a request) and the Initiator flag of the peer's role
//!   in that SA; bit 6 (sealed): seal as the other role.

use super::ike::raw_payloads;
use super::Input;
use crate::crypto::proposal::{parse_esp, parse_ike};
use crate::crypto::{DhGroup, PrfAlg};
use crate::ike::codec::{Header, FLAG_INITIATOR, FLAG_RESPONSE, IKE_VERSION};
use crate::ike::keys::{IkeAlgs, IkeKeys, SkCrypto};
use crate::ike::{ChildConfig, DpdAction, Engine, Event, IkeConfig, RetransmitConfig, StartAction};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The lab's addresses: the engine under test is 192.0.2.1, its peer 192.0.2.2 (as in the
/// captured strongSwan traffic the corpus was seeded with).
const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const STRANGER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const PSK: &[u8] = b"lab-psk-0123456789";
const CONN: &str = "gw";
const UT_SEED: u64 = 0x1b5e_c9a1;
const PEER_SEED: u64 = 0x9e37_79b9;

/// What the peer proposes in the replayed exchange (the engine under test accepts all).
const SUITES: [&str; 3] = [
    "aes256-sha1-modp1024",
    "aes128gcm16-prfsha256-modp1024",
    "3des-sha256-modp1024",
];
const UT_IKE: [&str; 7] = [
    "aes256-sha1-modp1024",
    "aes128-sha1-modp1024",
    "3des-sha1-modp1024",
    "3des-sha256-modp1024",
    "aes128gcm16-prfsha256-modp1024",
    "aes256gcm16-prfsha256-modp2048",
    "aes256-sha256-modp2048",
];
const UT_ESP: [&str; 5] = [
    "aes256-sha1",
    "aes128-sha1-esn",
    "3des-sha1",
    "aes256gcm16",
    "aes128gcm16",
];

fn addr(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), port)
}

fn config(name: &str, local: Ipv4Addr, remote: Option<Ipv4Addr>, psk: &[u8]) -> IkeConfig {
    let prefix = "0.0.0.0/0".parse().ok();
    IkeConfig {
        name: name.into(),
        local_addrs: vec![IpAddr::V4(local)],
        remote_addrs: remote.map(IpAddr::V4).into_iter().collect(),
        local_port: 500,
        remote_port: 500,
        local_id: crate::ike::Identity::Addr(IpAddr::V4(local)),
        remote_id: remote.map(|r| crate::ike::Identity::Addr(IpAddr::V4(r))),
        psk: Zeroizing::new(psk.to_vec()),
        proposals: UT_IKE.iter().filter_map(|p| parse_ike(p).ok()).collect(),
        start_action: StartAction::None,
        encap_always: false,
        rekey_time: Duration::from_secs(3600),
        dpd_delay: Duration::from_secs(30),
        dpd_action: DpdAction::Restart,
        retransmit: RetransmitConfig::default(),
        fragmentation: Default::default(),
        children: vec![ChildConfig {
            name: "net".into(),
            local_ts: prefix.into_iter().collect(),
            remote_ts: prefix.into_iter().collect(),
            proposals: UT_ESP.iter().filter_map(|p| parse_esp(p).ok()).collect(),
            rekey_time: Duration::from_secs(1800),
            replay_window: 64,
            limits: Default::default(),
        }],
    }
}

/// The engine under test: the lab connection plus a second one for anyone (other PSK), so that
/// connection selection has a choice.
fn engine_under_test(now: Instant) -> Engine {
    let mut any = config("any", LOCAL, None, b"another-psk");
    any.proposals.truncate(1);
    let configs = vec![config(CONN, LOCAL, Some(PEER), PSK), any];
    let mut e = Engine::new(configs, Box::new(StdRng::seed_from_u64(UT_SEED)), now);
    e.set_keylog(true);
    e
}

/// What the peer sent in a valid IKE_SA_INIT + IKE_AUTH exchange with the engine under test.
struct Transcript {
    peer_msgs: Vec<Vec<u8>>,
}

fn record_transcript(ut_initiator: bool, suite: &str) -> Transcript {
    let now = Instant::now();
    let mut ut = engine_under_test(now);
    let mut peer_cfg = config(CONN, PEER, Some(LOCAL), PSK);
    peer_cfg.proposals = parse_ike(suite).into_iter().collect();
    let mut peer = Engine::new(
        vec![peer_cfg],
        Box::new(StdRng::seed_from_u64(PEER_SEED)),
        now,
    );
    let _ = if ut_initiator {
        ut.initiate(now, CONN)
    } else {
        peer.initiate(now, CONN)
    };
    let mut peer_msgs = Vec::new();
    let mut up = false;
    for _ in 0..16 {
        let mut quiet = true;
        while let Some(t) = ut.poll_transmit() {
            quiet = false;
            peer.handle_datagram(now, t.remote, t.local, &t.data);
        }
        while let Some(t) = peer.poll_transmit() {
            quiet = false;
            peer_msgs.push(t.data.clone());
            ut.handle_datagram(now, t.remote, t.local, &t.data);
        }
        while let Some(e) = ut.poll_event() {
            up |= matches!(e, Event::ChildUp(_));
        }
        if quiet {
            break;
        }
    }
    assert!(
        up && peer_msgs.len() >= 2,
        "fuzz harness: the in-memory exchange ({suite}) did not establish"
    );
    Transcript { peer_msgs }
}

fn transcript(ut_initiator: bool, suite: usize) -> &'static Transcript {
    static T: [[OnceLock<Transcript>; SUITES.len()]; 2] = [
        [OnceLock::new(), OnceLock::new(), OnceLock::new()],
        [OnceLock::new(), OnceLock::new(), OnceLock::new()],
    ];
    T[usize::from(ut_initiator)][suite]
        .get_or_init(|| record_transcript(ut_initiator, SUITES[suite]))
}

/// Keys of the newest IKE SA, from the engine's key log.
struct SaKeys {
    spi_i: u64,
    spi_r: u64,
    algs: IkeAlgs,
    keys: IkeKeys,
    /// The harness (the peer) initiated the exchange that created this SA.
    peer_initiator: bool,
}

struct Harness {
    now: Instant,
    ut: Engine,
    sa: Option<SaKeys>,
    /// The message being delivered is a request: keys that appear now are of an SA the peer
    /// initiated.
    delivering_request: bool,
    /// SPIs of the newest message the engine sent.
    spis: (u64, u64),
    last_ut_request: u32,
    next_peer_request: u32,
    ike_up: bool,
    /// Responses the engine sent.
    responses: usize,
    rng: StdRng,
}

impl Harness {
    fn drain(&mut self) {
        while let Some(t) = self.ut.poll_transmit() {
            if let Ok(h) = Header::parse(&t.data) {
                self.spis = (h.spi_i, h.spi_r);
                if h.is_response() {
                    self.responses += 1;
                } else {
                    self.last_ut_request = h.msg_id;
                }
            }
        }
        while let Some(e) = self.ut.poll_event() {
            match e {
                Event::KeyLog {
                    spi_i,
                    spi_r,
                    sk_d,
                    sk_ai,
                    sk_ar,
                    sk_ei,
                    sk_er,
                    sk_pi,
                    sk_pr,
                    encr,
                    integ,
                } => {
                    let algs = IkeAlgs {
                        encr,
                        integ,
                        prf: PrfAlg::ALL[0],
                        dh: DhGroup::ALL[0],
                    };
                    let keys = IkeKeys {
                        sk_d,
                        sk_ai,
                        sk_ar,
                        sk_ei,
                        sk_er,
                        sk_pi,
                        sk_pr,
                    };
                    // A rekeyed IKE SA starts its message IDs afresh.
                    if self.sa.is_some() {
                        self.next_peer_request = 0;
                    }
                    self.sa = Some(SaKeys {
                        spi_i,
                        spi_r,
                        algs,
                        keys,
                        peer_initiator: self.delivering_request,
                    });
                }
                Event::IkeUp { .. } => self.ike_up = true,
                _ => {}
            }
        }
    }

    fn deliver(&mut self, tag: u8, data: &[u8]) {
        let port = if tag & 0x08 != 0 { 4500 } else { 500 };
        let from = if tag & 0x10 != 0 { STRANGER } else { PEER };
        let request = Header::parse(data).ok().filter(|h| !h.is_response());
        if let Some(h) = &request {
            self.next_peer_request = h.msg_id.wrapping_add(1);
        }
        self.delivering_request = request.is_some();
        self.ut
            .handle_datagram(self.now, addr(LOCAL, port), addr(from, port), data);
        self.drain();
        self.delivering_request = false;
    }

    fn raw(&mut self, tag: u8, body: &[u8]) {
        let mut data = body.to_vec();
        if tag & 0x20 != 0 && data.len() >= 16 {
            let (spi_i, spi_r) = self.sa.as_ref().map_or(self.spis, |s| (s.spi_i, s.spi_r));
            data[..8].copy_from_slice(&spi_i.to_be_bytes());
            // Before the peer's SPI is known, the message's own one stands.
            if spi_r != 0 {
                data[8..16].copy_from_slice(&spi_r.to_be_bytes());
            }
        }
        self.deliver(tag, &data);
    }

    fn sealed(&mut self, tag: u8, body: &[u8]) {
        let Some(sa) = &self.sa else {
            return self.raw(tag, body);
        };
        let mut r = Input::new(body);
        let exchange = r.u8();
        let mut flags = r.u8();
        let mut msg_id = r.u32();
        let peer_is_initiator = sa.peer_initiator ^ (tag & 0x40 != 0);
        if tag & 0x20 != 0 {
            flags &= !FLAG_INITIATOR;
            if peer_is_initiator {
                flags |= FLAG_INITIATOR;
            }
            msg_id = if flags & FLAG_RESPONSE != 0 {
                self.last_ut_request
            } else {
                self.next_peer_request
            };
        }
        let first = r.u8();
        let payloads = raw_payloads(first, r.rest());
        let header = Header {
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            next_payload: 0,
            version: IKE_VERSION,
            exchange,
            flags,
            msg_id,
            length: 0,
        };
        let Ok(sk) = SkCrypto::new(&sa.algs, &sa.keys, peer_is_initiator) else {
            return;
        };
        let data = sk.seal(header, &payloads, &mut self.rng);
        self.deliver(tag, &data);
    }

    fn time_step(&mut self, body: &[u8]) {
        let secs = Input::new(body).u16();
        self.now += Duration::from_secs(u64::from(secs));
        // As the daemon's loop does: run every timer that is due.
        for _ in 0..16 {
            self.ut.handle_timeout(self.now);
            self.drain();
            if self.ut.poll_timeout().is_none_or(|t| t > self.now) {
                break;
            }
        }
    }

    fn operator(&mut self, body: &[u8]) {
        let now = self.now;
        let _ = match Input::new(body).u8() % 5 {
            0 => self.ut.initiate(now, CONN),
            1 => self.ut.rekey(now, CONN, false),
            2 => self.ut.rekey(now, CONN, true),
            3 => self.ut.terminate(now, CONN),
            _ => {
                // The status the control socket renders, as the daemon renders it.
                let view: Vec<_> = self
                    .ut
                    .status(now)
                    .iter()
                    .map(crate::control::engine_view::connection)
                    .collect();
                let _ = serde_json::to_string(&view);
                Ok(())
            }
        };
        self.drain();
    }
}

fn play(data: &[u8], ut_initiator: bool) -> Harness {
    let mut input = Input::new(data);
    let flags = input.u8();
    let stage = (flags & 3).min(2);
    let suite = usize::from(flags >> 2 & 3) % SUITES.len();
    let now = Instant::now();
    let mut h = Harness {
        now,
        ut: engine_under_test(now),
        sa: None,
        delivering_request: false,
        spis: (0, 0),
        last_ut_request: 0,
        next_peer_request: 0,
        ike_up: false,
        responses: 0,
        rng: StdRng::seed_from_u64(PEER_SEED ^ 1),
    };
    if ut_initiator {
        let _ = h.ut.initiate(now, CONN);
        h.drain();
    }
    if stage > 0 {
        let t = transcript(ut_initiator, suite);
        for m in t.peer_msgs.iter().take(usize::from(stage)) {
            h.deliver(0, m);
        }
        assert!(
            h.sa.is_some() && (stage < 2 || h.ike_up),
            "fuzz harness: replaying the recorded exchange did not reach stage {stage}"
        );
    }
    if flags & 0x10 != 0 {
        h.ut.set_cookie_threshold(0);
    }
    while let Some((tag, body)) = input.record() {
        match tag & 7 {
            1 => h.sealed(tag, body),
            2 => h.time_step(body),
            3 => h.operator(body),
            _ => h.raw(tag, body),
        }
    }
    h
}

/// `ike_responder`: the engine as responder (see the module docs for the input format).
pub fn ike_responder(data: &[u8]) {
    play(data, false);
}

/// `ike_initiator`: the engine as initiator of the lab connection.
pub fn ike_initiator(data: &[u8]) {
    play(data, true);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::record;

    /// An empty INFORMATIONAL request (a DPD), sealed by the harness with the right message ID.
    fn dpd() -> Vec<u8> {
        record(0x21, &[37, 0, 0, 0, 0, 0, 0])
    }

    #[test]
    fn sealed_messages_reach_the_established_sa() {
        for ut_initiator in [false, true] {
            for suite in 0..SUITES.len() as u8 {
                let mut input = vec![2 | suite << 2];
                input.extend(dpd());
                input.extend(dpd());
                let h = play(&input, ut_initiator);
                let st = h.ut.stats();
                assert_eq!(
                    (
                        st.decrypt_failed,
                        st.bad_msgid_dropped,
                        st.malformed_dropped
                    ),
                    (0, 0, 0),
                    "initiator={ut_initiator} suite {suite}: {st:?}"
                );
                let before = if ut_initiator { 0 } else { 2 };
                assert_eq!(h.responses, before + 2, "both DPDs answered");
            }
        }
    }

    #[test]
    fn fixed_up_raw_datagrams_reach_the_sa() {
        // SK payload: IV 16 | 2 AES blocks | ICV 12 (suite 0 is aes256-sha1).
        let mut garbage = vec![0u8; 28 + 64];
        garbage[16..20].copy_from_slice(&[46, 0x20, 37, 0x08]);
        garbage[20..24].copy_from_slice(&2u32.to_be_bytes());
        garbage[24..28].copy_from_slice(&92u32.to_be_bytes());
        garbage[28..32].copy_from_slice(&[0, 0, 0, 64]);
        let mut input = vec![2];
        input.extend(record(0x20, &garbage));
        let st = play(&input, false).ut.stats();
        assert_eq!(
            (st.unknown_spi_dropped, st.decrypt_failed),
            (0, 1),
            "{st:?}"
        );
    }
}
