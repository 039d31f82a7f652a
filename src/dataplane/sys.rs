//! Thin libc wrappers: recvmmsg/sendmmsg batches, the raw ESP socket, socket options, poll.
//! Everything unsafe in the dataplane lives here.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Packets per recvmmsg/sendmmsg call.
pub const BATCH: usize = 32;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: value is a live c_int and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    cvt(r).map(|_| ())
}

/// Large receive/send buffers: bursts of ESP overflow the default rmem (and rmem_default
/// cannot be raised inside a network namespace). SO_RCVBUFFORCE needs CAP_NET_ADMIN; fall
/// back to SO_RCVBUF (capped by rmem_max) without it.
pub fn set_buffers(fd: RawFd, bytes: usize) {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, v).is_err() {
        let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, v);
    }
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, v).is_err() {
        let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, v);
    }
}

/// A raw IPPROTO_ESP (50) IPv4 socket: received datagrams start with the IPv4 header, sends
/// take the ESP packet only (the kernel adds the IP header).
pub fn raw_esp_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the fd is owned right away.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ESP,
        )
    })?;
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Storage for one socket address, convertible both ways.
#[derive(Clone, Copy)]
pub struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    pub fn empty() -> RawAddr {
        // SAFETY: sockaddr_storage is plain data; all-zero is a valid (AF_UNSPEC) value.
        RawAddr {
            storage: unsafe { zeroed() },
            len: size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    pub fn from_socket_addr(addr: SocketAddr) -> RawAddr {
        let mut r = RawAddr::empty();
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { std::ptr::write(&mut r.storage as *mut _ as *mut libc::sockaddr_in, sin) };
                r.len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe {
                    std::ptr::write(&mut r.storage as *mut _ as *mut libc::sockaddr_in6, sin6)
                };
                r.len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        r
    }

    pub fn as_socket_addr(&self) -> Option<SocketAddr> {
        match i32::from(self.storage.ss_family) {
            libc::AF_INET if self.len as usize >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says sockaddr_in and the kernel wrote at least its size.
                let sin = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if self.len as usize >= size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above for sockaddr_in6.
                let sin6 = unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in6) };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// One receive slot: buffer, sender and what the kernel reported.
struct Slot {
    buf: Vec<u8>,
    addr: RawAddr,
    len: usize,
    truncated: bool,
    /// Control messages (u64 for cmsghdr alignment).
    ctrl: [u64; 8],
    /// With UDP GRO: the size of the coalesced datagrams (the last may be shorter).
    gro_size: Option<usize>,
}

/// Reusable receive batch for recvmmsg: BATCH buffers of `buf_len` bytes each.
pub struct RecvBatch {
    slots: Vec<Slot>,
}

impl RecvBatch {
    pub fn new(buf_len: usize) -> RecvBatch {
        RecvBatch {
            slots: (0..BATCH)
                .map(|_| Slot {
                    buf: vec![0u8; buf_len],
                    addr: RawAddr::empty(),
                    len: 0,
                    truncated: false,
                    ctrl: [0; 8],
                    gro_size: None,
                })
                .collect(),
        }
    }

    /// Blocks (up to the socket's receive timeout) for at least one datagram, then takes what
    /// is queued, up to BATCH. Returns how many arrived (0 on timeout).
    pub fn recv(&mut self, fd: RawFd, dontwait: bool) -> io::Result<usize> {
        // SAFETY: arrays of plain C structs; all-zero is a valid value for them.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        // Every pointer set here refers to storage owned by self (or the local iovs) that
        // outlives the recvmmsg call, and the lengths match the buffers.
        for ((slot, iov), hdr) in self
            .slots
            .iter_mut()
            .zip(iovs.iter_mut())
            .zip(hdrs.iter_mut())
        {
            *iov = libc::iovec {
                iov_base: slot.buf.as_mut_ptr() as *mut libc::c_void,
                iov_len: slot.buf.len(),
            };
            slot.addr.len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_hdr.msg_name = &mut slot.addr.storage as *mut _ as *mut libc::c_void;
            hdr.msg_hdr.msg_namelen = slot.addr.len;
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_control = slot.ctrl.as_mut_ptr() as *mut libc::c_void;
            hdr.msg_hdr.msg_controllen = size_of::<[u64; 8]>() as _;
        }
        let count = self.slots.len().min(BATCH) as libc::c_uint;
        // SAFETY: hdrs holds `count` initialised mmsghdr pointing at live buffers.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                count,
                if dontwait {
                    libc::MSG_DONTWAIT
                } else {
                    libc::MSG_WAITFORONE
                },
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = (r as usize).min(count as usize);
        for (slot, hdr) in self.slots.iter_mut().zip(hdrs.iter()).take(n) {
            slot.len = (hdr.msg_len as usize).min(slot.buf.len());
            slot.addr.len = hdr.msg_hdr.msg_namelen;
            slot.truncated = hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            slot.gro_size = gro_size(&mut slot.ctrl, hdr.msg_hdr.msg_controllen);
        }
        Ok(n)
    }

    /// The first `n` datagrams of the last receive, all borrowed at once.
    pub fn iter_mut(&mut self, n: usize) -> impl Iterator<Item = Received<'_>> {
        self.slots.iter_mut().take(n).map(|slot| Received {
            from: slot.addr.as_socket_addr(),
            truncated: slot.truncated,
            gro_size: slot.gro_size,
            data: &mut slot.buf[..slot.len],
        })
    }
}

/// One receive slot's content.
pub struct Received<'a> {
    pub data: &'a mut [u8],
    pub from: Option<SocketAddr>,
    /// The datagram was larger than the buffer.
    pub truncated: bool,
    /// UDP GRO coalesced several datagrams of this size (the last may be shorter).
    pub gro_size: Option<usize>,
}

/// The UDP_GRO control message among the `controllen` bytes the kernel wrote to `ctrl`.
fn gro_size(ctrl: &mut [u64; 8], controllen: usize) -> Option<usize> {
    // A fresh msghdr whose msg_control comes from `ctrl` itself (not the pointer stored in the
    // mmsghdr before `ctrl` was borrowed again), clamped to the buffer's size.
    // SAFETY: msghdr is plain C data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_control = ctrl.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = controllen.min(size_of::<[u64; 8]>()) as _;
    let base = ctrl.as_ptr() as usize;
    let controllen = msg.msg_controllen;
    // SAFETY: msg_control points at `ctrl` (live for this call, 8-aligned as cmsghdr needs)
    // and msg_controllen does not exceed it. CMSG_FIRSTHDR/CMSG_NXTHDR return null rather
    // than a header that does not fit in msg_controllen, and the payload is read only when
    // the header's cmsg_len says it holds a whole c_int that also ends within msg_controllen.
    unsafe {
        let int_cmsg_len = libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as usize;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_UDP
                && (*cmsg).cmsg_type == libc::UDP_GRO
                && (*cmsg).cmsg_len as usize >= int_cmsg_len
                && cmsg as usize - base + int_cmsg_len <= controllen
            {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
                return usize::try_from(v).ok().filter(|&n| n > 0);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    None
}

/// Asks the kernel to coalesce received datagrams of one flow (UDP GRO, Linux 5.0+).
pub fn enable_udp_gro(fd: RawFd) -> bool {
    setsockopt_int(fd, libc::SOL_UDP, libc::UDP_GRO, 1).is_ok()
}

/// Most segments in one UDP GSO send (the kernel's UDP_MAX_SEGMENTS is 64 or more).
const GSO_MAX_SEGS: usize = 64;
/// Most bytes in one UDP GSO send (an IP datagram's payload limit, minus headers).
const GSO_MAX_BYTES: usize = 65_000;
/// Packets one send_gso call can carry.
const GSO_MAX_PKTS: usize = 256;

/// Sends `pkts` (all to `dest`) as UDP GSO super-datagrams: runs of equal-length packets
/// (plus one shorter at the end of a run) go in one message with a UDP_SEGMENT control
/// message, so the stack is traversed once per run. Returns how many packets were handed to
/// the kernel, how many messages with more than one segment that took, and the error that
/// stopped it, if any.
pub fn send_gso(fd: RawFd, pkts: &[&[u8]], dest: &RawAddr) -> (usize, usize, Option<io::Error>) {
    let mut done = 0;
    let mut multi = 0;
    while done < pkts.len() {
        let chunk = &pkts[done..pkts.len().min(done + GSO_MAX_PKTS)];
        // SAFETY: plain C structs, all-zero is valid.
        let mut iovs: [libc::iovec; GSO_MAX_PKTS] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        let mut ctrls = [[0u64; 4]; BATCH];
        // (first packet, packet count) per message
        let mut msgs = [(0usize, 0usize); BATCH];
        let mut nmsgs = 0;
        let mut i = 0;
        while i < chunk.len() && nmsgs < BATCH {
            let seg = chunk[i].len();
            let mut j = i + 1;
            let mut total = seg;
            while j < chunk.len()
                && j - i < GSO_MAX_SEGS
                && chunk[j].len() == seg
                && total + seg <= GSO_MAX_BYTES
            {
                total += seg;
                j += 1;
            }
            if j < chunk.len()
                && j - i < GSO_MAX_SEGS
                && chunk[j].len() < seg
                && total + chunk[j].len() <= GSO_MAX_BYTES
            {
                j += 1;
            }
            msgs[nmsgs] = (i, j - i);
            nmsgs += 1;
            i = j;
        }
        for (k, pkt) in chunk.iter().enumerate().take(i) {
            iovs[k] = libc::iovec {
                iov_base: pkt.as_ptr() as *mut libc::c_void,
                iov_len: pkt.len(),
            };
        }
        for m in 0..nmsgs {
            let (first, count) = msgs[m];
            let h = &mut hdrs[m].msg_hdr;
            h.msg_name = &dest.storage as *const _ as *mut libc::c_void;
            h.msg_namelen = dest.len;
            // A pointer derived from the whole array: the kernel reads `count` iovecs from it.
            h.msg_iov = iovs[first..].as_mut_ptr();
            h.msg_iovlen = count as _;
            if count > 1 {
                let seg = chunk[first].len() as u16;
                h.msg_control = ctrls[m].as_mut_ptr() as *mut libc::c_void;
                // SAFETY: CMSG_SPACE is a pure size computation.
                h.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as _;
                // SAFETY: msg_control points at ctrls[m] (32 bytes, 8-aligned), large enough
                // for one cmsghdr carrying a u16; the header was just set up.
                unsafe {
                    let cmsg = libc::CMSG_FIRSTHDR(h);
                    (*cmsg).cmsg_level = libc::SOL_UDP;
                    (*cmsg).cmsg_type = libc::UDP_SEGMENT;
                    (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, seg);
                }
            }
        }
        // SAFETY: nmsgs initialised headers pointing at live data.
        let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), nmsgs as libc::c_uint, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return (done, multi, Some(e));
        }
        if r == 0 {
            return (done, multi, Some(io::Error::from(io::ErrorKind::WriteZero)));
        }
        // A partial send: the loop retries the rest, which reports the error if it persists.
        let sent_msgs = (r as usize).min(nmsgs);
        done += msgs[..sent_msgs].iter().map(|m| m.1).sum::<usize>();
        multi += msgs[..sent_msgs].iter().filter(|m| m.1 > 1).count();
    }
    (done, multi, None)
}

/// Sends `pkts` to `dest` with as few sendmmsg calls as possible. Returns how many were
/// handed to the kernel and the error that stopped it, if any.
pub fn send_batch(fd: RawFd, pkts: &[&[u8]], dest: &RawAddr) -> (usize, Option<io::Error>) {
    let mut sent = 0;
    while sent < pkts.len() {
        let chunk = &pkts[sent..(sent + BATCH).min(pkts.len())];
        // SAFETY: plain C structs, all-zero is valid. The iovecs point at caller-owned
        // slices that outlive the call; sendmmsg does not write through them or msg_name.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for ((data, iov), hdr) in chunk.iter().zip(iovs.iter_mut()).zip(hdrs.iter_mut()) {
            *iov = libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            };
            hdr.msg_hdr.msg_name = &dest.storage as *const _ as *mut libc::c_void;
            hdr.msg_hdr.msg_namelen = dest.len;
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: chunk.len() initialised headers.
        let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), chunk.len() as libc::c_uint, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return (sent, Some(e));
        }
        if r == 0 {
            return (sent, Some(io::Error::from(io::ErrorKind::WriteZero)));
        }
        sent += r as usize;
    }
    (sent, None)
}

/// sendto(2) of one datagram (keepalives, IKE, the raw socket's occasional single packet).
pub fn send_to(fd: RawFd, data: &[u8], addr: &RawAddr) -> io::Result<usize> {
    // SAFETY: data and addr are live for the call.
    let r = unsafe {
        libc::sendto(
            fd,
            data.as_ptr() as *const libc::c_void,
            data.len(),
            0,
            &addr.storage as *const _ as *const libc::sockaddr,
            addr.len,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// The IP address of the peer for the raw socket: port 0, IPv4 only.
pub fn raw_dest(ip: IpAddr) -> Option<RawAddr> {
    match ip {
        IpAddr::V4(v4) => Some(RawAddr::from_socket_addr(SocketAddr::V4(
            SocketAddrV4::new(v4, 0),
        ))),
        IpAddr::V6(_) => None,
    }
}

/// An epoll instance shared by the packet workers: sources are registered one-shot, so the
/// worker that gets an event owns that source until it re-arms it.
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain epoll_create1 call; the fd is owned right away.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: fd was just returned by epoll_create1 and is owned by nobody else.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLONESHOT) as u32,
            u64: token,
        };
        // SAFETY: ev is a live epoll_event; fds are checked by the kernel.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) }).map(|_| ())
    }

    /// Registers `fd` (armed) under `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token)
    }

    /// Arms `fd` again after its event was taken.
    pub fn rearm(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token)
    }

    pub fn delete(&self, fd: RawFd) {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL since Linux 2.6.9.
        unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
    }

    /// Waits up to `timeout` for one ready source; its token.
    pub fn wait_one(&self, timeout: Duration) -> Option<u64> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: room for exactly one event is passed.
        let r = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                &mut ev,
                1,
                timeout.as_millis().min(i32::MAX as u128) as libc::c_int,
            )
        };
        (r == 1).then_some(ev.u64)
    }
}
