//! The IKEv2 engine (work in progress: API published first).
use super::*;
use std::collections::VecDeque;
use std::time::Instant;

pub struct Engine {
    configs: Vec<IkeConfig>,
    #[allow(dead_code)]
    rng: Box<dyn rand::RngCore + Send>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: EngineStats,
    keylog: bool,
    cookie_threshold: usize,
}

impl Engine {
    pub fn new(configs: Vec<IkeConfig>, rng: Box<dyn rand::RngCore + Send>, _now: Instant) -> Engine {
        Engine { configs, rng, transmits: VecDeque::new(), events: VecDeque::new(), stats: EngineStats::default(), keylog: false, cookie_threshold: 100 }
    }
    pub fn set_keylog(&mut self, on: bool) { self.keylog = on; }
    pub fn set_cookie_threshold(&mut self, half_open: usize) { self.cookie_threshold = half_open; }
    pub fn handle_datagram(&mut self, _now: Instant, _local: SocketAddr, _remote: SocketAddr, _data: &[u8]) { self.stats.received += 1; }
    pub fn handle_timeout(&mut self, _now: Instant) {}
    pub fn poll_timeout(&self) -> Option<Instant> { None }
    pub fn poll_transmit(&mut self) -> Option<Transmit> { self.transmits.pop_front() }
    pub fn poll_event(&mut self) -> Option<Event> { self.events.pop_front() }
    pub fn initiate(&mut self, _now: Instant, conn: &str) -> Result<(), IkeError> { self.conn(conn).map(|_| ()) }
    pub fn terminate(&mut self, _now: Instant, conn: &str) -> Result<(), IkeError> { self.conn(conn).map(|_| ()) }
    pub fn terminate_all(&mut self, _now: Instant) {}
    pub fn rekey(&mut self, _now: Instant, conn: &str, _ike: bool) -> Result<(), IkeError> { self.conn(conn).map(|_| ()) }
    pub fn child_activity(&mut self, _spi_in: u32, _last_inbound: Option<Instant>) {}
    pub fn request_child_rekey(&mut self, _now: Instant, _spi_in: u32) {}
    pub fn reload(&mut self, _now: Instant, configs: Vec<IkeConfig>) { self.configs = configs; }
    pub fn status(&self, _now: Instant) -> Vec<ConnStatus> {
        self.configs.iter().map(|c| ConnStatus { name: c.name.clone(), state: "down".into(), ike: None, children: vec![] }).collect()
    }
    pub fn stats(&self) -> EngineStats { self.stats.clone() }
    fn conn(&self, name: &str) -> Result<&IkeConfig, IkeError> {
        self.configs.iter().find(|c| c.name == name).ok_or_else(|| IkeError::UnknownConnection(name.into()))
    }
}
