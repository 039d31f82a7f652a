//! The UDP sockets of the control plane: IKE on 500 or a configured `local_port` (read here,
//! on tokio) and the NAT-T port 4500, whose receive side belongs to the data plane threads
//! (ESP-in-UDP dominates it); IKE found there comes back to us over a channel. We send IKE on
//! 4500 through a duplicate of the same socket so the peer sees one source port.

use super::error::DaemonError;
use crate::dataplane::IkeDatagram;
use crate::ike::{Transmit, NATT_PORT};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use tokio::sync::mpsc;

pub const IKE_PORT: u16 = 500;
use crate::esp::NON_ESP_MARKER;

pub struct IkeSockets {
    /// IKE sockets by local address and port (500, or a connection's `local_port`).
    ike: HashMap<SocketAddr, UdpSocket>,
    /// Send side of the NAT-T socket, per local address.
    natt: HashMap<IpAddr, UdpSocket>,
}

/// The host's IPv4 addresses (loopback aside), for a gateway configured without local_addrs.
fn host_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: on success getifaddrs hands us a null-terminated list that stays valid until the
    // single freeifaddrs below; nothing borrowed from it (only copied Ipv4Addr values) outlives
    // that. ifa_addr may be null (checked) and is read as sockaddr_in only when its family says
    // AF_INET; libc allocates the entries suitably aligned for the sockaddr type they hold.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return out;
        }
        let mut p = ifap;
        while !p.is_null() {
            let a = (*p).ifa_addr;
            if !a.is_null() && i32::from((*a).sa_family) == libc::AF_INET {
                let sin = &*(a as *const libc::sockaddr_in);
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() {
                    out.push(IpAddr::V4(ip));
                }
            }
            p = (*p).ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    out
}

/// Binds the IKE port(s) and 4500 on every local address. Without configured local addresses
/// it binds each address the host has, rather than the wildcard, so that every datagram arrives
/// with its real local address: NAT detection hashes it, and a wildcard socket cannot tell.
/// Returns our sockets and the 4500 sockets to hand to the data plane.
pub fn bind_all(
    addrs: &[IpAddr],
    ports: &[u16],
) -> Result<(IkeSockets, Vec<UdpSocket>), DaemonError> {
    let bind = |addr: SocketAddr| {
        UdpSocket::bind(addr).map_err(|source| DaemonError::Bind { addr, source })
    };
    let mut list: Vec<IpAddr> = addrs.to_vec();
    if list.is_empty() {
        list = host_addresses();
    }
    if list.is_empty() {
        list.push(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    list.sort();
    list.dedup();
    let mut ports: Vec<u16> = ports.iter().copied().filter(|p| *p != NATT_PORT).collect();
    if ports.is_empty() {
        ports.push(IKE_PORT);
    }
    ports.sort_unstable();
    ports.dedup();
    let mut ike = HashMap::new();
    let mut natt_send = HashMap::new();
    let mut natt = Vec::new();
    for a in list {
        for &p in &ports {
            let s = bind(SocketAddr::new(a, p))?;
            ike.insert(SocketAddr::new(a, p), s);
        }
        let s4500 = bind(SocketAddr::new(a, NATT_PORT))?;
        let send4500 = s4500.try_clone().map_err(|source| DaemonError::Socket {
            what: format!("cannot duplicate the {a}:{NATT_PORT} socket"),
            source,
        })?;
        natt.push(s4500);
        natt_send.insert(a, send4500);
    }
    Ok((
        IkeSockets {
            ike,
            natt: natt_send,
        },
        natt,
    ))
}

impl IkeSockets {
    /// Spawns one reader task per IKE socket feeding `tx` (4500 is read by the data plane).
    pub fn spawn_readers(&self, tx: mpsc::Sender<IkeDatagram>) -> Result<(), DaemonError> {
        for (&local, s) in &self.ike {
            let failed = |what: &'static str| {
                move |source| DaemonError::Socket {
                    what: format!("cannot {what} the IKE socket {local}"),
                    source,
                }
            };
            let std_sock = s.try_clone().map_err(failed("duplicate"))?;
            std_sock
                .set_nonblocking(true)
                .map_err(failed("configure"))?;
            let sock = tokio::net::UdpSocket::from_std(std_sock).map_err(failed("register"))?;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    match sock.recv_from(&mut buf).await {
                        Ok((n, remote)) => {
                            let d = IkeDatagram {
                                local,
                                remote,
                                data: buf[..n].to_vec(),
                            };
                            if tx.send(d).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::debug!("IKE receive on {local}: {e}"),
                    }
                }
            });
        }
        Ok(())
    }

    /// Sends one IKE message, from 4500 with the non-ESP marker when the engine says so.
    pub fn send(&self, t: &Transmit) {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let port = t.local.port();
        let res = if port == NATT_PORT {
            let Some(s) = self
                .natt
                .get(&t.local.ip())
                .or_else(|| self.natt.get(&any))
                .or_else(|| self.natt.values().next())
            else {
                return;
            };
            let mut d = Vec::with_capacity(t.data.len() + 4);
            d.extend_from_slice(&NON_ESP_MARKER);
            d.extend_from_slice(&t.data);
            s.send_to(&d, t.remote)
        } else {
            let Some(s) = self
                .ike
                .get(&t.local)
                .or_else(|| self.ike.get(&SocketAddr::new(any, port)))
                .or_else(|| {
                    self.ike
                        .iter()
                        .find(|(k, _)| k.port() == port)
                        .map(|(_, s)| s)
                })
            else {
                tracing::warn!("no IKE socket for {} (to {})", t.local, t.remote);
                return;
            };
            s.send_to(&t.data, t.remote)
        };
        if let Err(e) = res {
            tracing::warn!("cannot send IKE to {}: {e}", t.remote);
        }
    }
}
