//! BGP message decoding (`bgp::msg`) and a BGP session fed a byte stream (`bgp::Session`).

use super::Input;
use crate::bgp::msg::{self, Capability, Message, Open};
use crate::bgp::{BgpConfig, BgpEvent, Session};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// The lab's addresses: ipsecgw AS 65021 at 10.2.30.125, BIRD AS 65515 at 10.10.30.254.
const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 2, 30, 125);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 10, 30, 254);
const LOCAL_AS: u32 = 65021;
const PEER_AS: u32 = 65515;

/// `bgp_decode`: `flags u8 | one message`; flags bit 0 = both sides use 4-octet AS numbers.
/// A message that decodes must decode the same after encoding it again.
pub fn bgp_decode(data: &[u8]) {
    let mut input = Input::new(data);
    let four = input.u8() & 1 != 0;
    let buf = input.rest();
    if let Some(body) = buf.get(msg::HEADER_LEN..) {
        if let Err(n) = msg::decode_update(body, four) {
            let _ = n.describe();
        }
    }
    let m = match msg::decode(buf, four) {
        Ok(m) => m,
        Err(n) => {
            let _ = n.describe();
            return;
        }
    };
    let again = msg::encode(&m, four).expect("a decoded BGP message re-encodes");
    assert_eq!(
        msg::decode(&again, four).map(normalized),
        Ok(normalized(m)),
        "re-encoded BGP message decodes differently"
    );
}

/// The Extended Length flag of an attribute kept raw is an encoding detail: the encoder sets it
/// only when the value needs it.
fn normalized(mut m: Message) -> Message {
    if let Message::Update(u) = &mut m {
        for a in &mut u.attrs.other {
            a.flags &= !msg::FLAG_EXT_LEN;
        }
    }
    m
}

/// The peer's valid OPEN and KEEPALIVE, which bring the session to Established.
fn peer_open(four_octet: bool) -> Vec<u8> {
    let mut capabilities = vec![
        Capability::Multiprotocol { afi: 1, safi: 1 },
        Capability::RouteRefresh,
    ];
    if four_octet {
        capabilities.push(Capability::FourOctetAs(PEER_AS));
    }
    let open = Open {
        version: 4,
        my_as: PEER_AS as u16,
        hold_time: 30,
        bgp_id: PEER,
        capabilities,
    };
    let mut out = msg::encode(&Message::Open(open), four_octet).expect("OPEN fits");
    out.extend(msg::encode(&Message::Keepalive, four_octet).expect("KEEPALIVE fits"));
    out
}

/// A minimal driver: transport requests are granted at once, bytes to send are dropped.
struct Driver {
    s: Session,
    now: Instant,
    connected: bool,
}

impl Driver {
    fn pump(&mut self) {
        for _ in 0..64 {
            while self.s.poll_transmit().is_some() {}
            let Some(ev) = self.s.poll_event() else {
                return;
            };
            match ev {
                BgpEvent::Connect => {
                    self.s.transport_up(self.now);
                    self.connected = true;
                }
                BgpEvent::Disconnect => self.connected = false,
                _ => {}
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.s.handle_timeout(self.now);
        self.pump();
    }
}

/// `bgp_session`: `flags u8 | chunk u8 | stream`. The session (ipsecgw's side of the lab) has
/// its transport up and its OPEN sent, then reads the stream in chunks of `chunk` bytes (0 = at
/// once). Flags: bit 0 = a valid peer OPEN + KEEPALIVE comes first (Established before the
/// stream), bit 1 = passive (the peer connected to us), bit 2 = 10 s pass between chunks,
/// bit 3 = max-prefix 2, bit 4 = that OPEN has no 4-octet AS capability.
pub fn bgp_session(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let chunk = usize::from(input.u8());
    let stream = input.rest();
    let mut cfg = BgpConfig::new(LOCAL_AS, PEER_AS, IpAddr::V4(LOCAL), IpAddr::V4(PEER));
    cfg.multihop = 5;
    cfg.connect_retry = Duration::from_secs(1);
    cfg.networks = ["10.1.0.0/24", "192.168.99.0/24"]
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
    cfg.export = ["10.1.0.0/24"]
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
    cfg.import_local_pref = 200;
    cfg.passive = flags & 2 != 0;
    if flags & 8 != 0 {
        cfg.max_prefixes = 2;
    }
    let now = Instant::now();
    let mut d = Driver {
        s: Session::new(cfg, now),
        now,
        connected: false,
    };
    d.s.start(now);
    d.pump();
    if d.s.config().passive {
        d.connected = d.s.accept_inbound(now);
        d.pump();
    }
    if flags & 1 != 0 && d.connected {
        d.s.handle_data(now, &peer_open(flags & 0x10 == 0));
        d.pump();
    }
    let size = if chunk == 0 {
        stream.len().max(1)
    } else {
        chunk
    };
    for part in stream.chunks(size) {
        if flags & 4 != 0 {
            d.advance(Duration::from_secs(10));
        }
        if !d.connected {
            // Reconnect as the daemon would: after the retry timer, or the peer connects again.
            d.advance(Duration::from_secs(2));
            if d.s.config().passive {
                d.connected = d.s.accept_inbound(d.now);
                d.pump();
            }
        }
        d.s.handle_data(d.now, part);
        d.pump();
    }
    let _ = (d.s.status_at(d.now), d.s.rib());
}
