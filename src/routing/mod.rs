//! Netlink routing layer: configures the tunnel's TUN device (address, MTU, up) and the static
//! routes into it, through rtnetlink (never by running `ip`).
//!
//! Safety contract: the gateway only ever removes routes it installed. Every route it adds
//! carries the route protocol [`RTPROT_IPSECGW`], and every delete filters on that protocol
//! (the kernel re-checks it too, since we pass it in the delete request).

pub mod netns;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlag, AddressHeaderFlag, AddressMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
};
use netlink_packet_route::AddressFamily;
use rtnetlink::{Handle, IpVersion};

use crate::prefix::IpPrefix;

/// Route protocol number stamped on every route ipsecgw installs (`ip route` shows `proto 169`).
///
/// 0xa9 = 169 is unused by the kernel's RTPROT_* list (0-4, 8-18, 42, 99, 186-192) and by
/// iproute2's `rt_protos`, so no routing daemon or DHCP client on the host shares it: that makes
/// "protocol == RTPROT_IPSECGW" a safe signature for "ours" when cleaning up after a crash.
/// Values above RTPROT_STATIC (4) are also left alone by the kernel's own route flushes.
/// `ip route` prints it as `proto 169`; a packager may name it with a line `169 ipsecgw` in
/// /etc/iproute2/rt_protos.d/ipsecgw.conf (then `ip route show proto ipsecgw` works too).
pub const RTPROT_IPSECGW: u8 = 0xa9;

/// Main routing table id (RT_TABLE_MAIN).
const TABLE_MAIN: u32 = RouteHeader::RT_TABLE_MAIN as u32;

/// The kernel gives IPv6 routes added with metric 0 the metric 1024 (IP6_RT_PRIO_USER).
const IPV6_DEFAULT_METRIC: u32 = 1024;

/// Linux IFNAMSIZ - 1.
const MAX_IFNAME_LEN: usize = 15;

/// What went wrong, without the "where" (see [`RoutingError`]).
#[derive(Debug)]
pub enum RoutingErrorKind {
    /// The named interface does not exist (in this network namespace).
    NoSuchDevice,
    /// The interface name can never be valid (empty, too long, bad characters).
    InvalidInterfaceName,
    /// The kernel refused the request with this errno.
    Kernel(i32),
    /// A route with the same key that is not ours already exists; replacing it would touch a
    /// route of the host, so we refuse. Holds the other route's protocol number.
    ForeignRoute(u8),
    /// An address family mismatch or similar misuse by the caller.
    Invalid(String),
    /// The netlink conversation itself failed (socket error, unexpected message).
    Netlink(String),
}

/// A routing failure: `context` says what we were doing and where
/// ("adding route 10.10.30.254/32 dev ipsec30"), `kind` says why.
#[derive(Debug)]
pub struct RoutingError {
    pub context: String,
    pub kind: RoutingErrorKind,
}

impl RoutingError {
    fn new(context: impl Into<String>, kind: RoutingErrorKind) -> Self {
        RoutingError {
            context: context.into(),
            kind,
        }
    }

    fn from_rtnetlink(context: impl Into<String>, err: rtnetlink::Error) -> Self {
        RoutingError::new(context, kind_of(err))
    }

    /// The kernel errno, if the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self.kind {
            RoutingErrorKind::Kernel(e) => Some(e),
            RoutingErrorKind::NoSuchDevice => Some(libc::ENODEV),
            _ => None,
        }
    }

    pub fn is_no_such_device(&self) -> bool {
        matches!(self.kind, RoutingErrorKind::NoSuchDevice)
            || matches!(self.kind, RoutingErrorKind::Kernel(e) if e == libc::ENODEV)
    }
}

/// strerror text without std's " (os error N)" suffix, so messages read like `ip`'s.
fn errno_text(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

impl fmt::Display for RoutingErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoutingErrorKind::NoSuchDevice => f.write_str(&errno_text(libc::ENODEV)),
            RoutingErrorKind::InvalidInterfaceName => f.write_str("invalid interface name"),
            RoutingErrorKind::Kernel(e) => f.write_str(&errno_text(*e)),
            RoutingErrorKind::ForeignRoute(proto) => write!(
                f,
                "a route with the same destination and metric already exists with proto {proto}, \
                 not ours ({RTPROT_IPSECGW}); refusing to replace it"
            ),
            RoutingErrorKind::Invalid(what) => f.write_str(what),
            RoutingErrorKind::Netlink(what) => write!(f, "netlink: {what}"),
        }
    }
}

impl fmt::Display for RoutingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.kind)
    }
}

impl std::error::Error for RoutingError {}

fn kind_of(err: rtnetlink::Error) -> RoutingErrorKind {
    match err {
        rtnetlink::Error::NetlinkError(msg) => match msg.code {
            // Netlink error codes are negative errnos.
            Some(code) => RoutingErrorKind::Kernel(code.get().saturating_abs()),
            None => RoutingErrorKind::Netlink("unexpected ACK".into()),
        },
        other => RoutingErrorKind::Netlink(other.to_string()),
    }
}

fn is_errno(err: &rtnetlink::Error, errno: i32) -> bool {
    matches!(err, rtnetlink::Error::NetlinkError(msg)
        if msg.code.map(|c| c.get().saturating_abs()) == Some(errno))
}

fn check_ifname(ifname: &str) -> bool {
    !ifname.is_empty()
        && ifname.len() <= MAX_IFNAME_LEN
        && ifname != "."
        && ifname != ".."
        && !ifname
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

/// A route as the kernel reported it, reduced to what we need to recognize and delete ours.
#[derive(Clone, Debug, PartialEq, Eq)]
struct KernelRoute {
    prefix: IpPrefix,
    oif: Option<u32>,
    table: u32,
    protocol: u8,
    tos: u8,
    priority: u32,
    message: RouteMessage,
}

fn parse_route(msg: RouteMessage) -> Option<KernelRoute> {
    let mut dst: Option<IpAddr> = None;
    let mut oif = None;
    let mut table = u32::from(msg.header.table);
    let mut priority = 0;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = Some(IpAddr::V4(*a)),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => dst = Some(IpAddr::V6(*a)),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Priority(p) => priority = *p,
            _ => {}
        }
    }
    let dst = match (dst, msg.header.address_family) {
        (Some(a), _) => a,
        // No RTA_DST: the default route of that family.
        (None, AddressFamily::Inet) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        (None, _) => return None,
    };
    let prefix = IpPrefix::new(dst, msg.header.destination_prefix_length).ok()?;
    Some(KernelRoute {
        prefix,
        oif,
        table,
        protocol: u8::from(msg.header.protocol),
        tos: msg.header.tos,
        priority,
        message: msg,
    })
}

/// A delete request built from a dumped route: only the keys the kernel matches on, plus our
/// protocol so the kernel itself refuses to delete anything that is not ours.
fn delete_message(route: &KernelRoute) -> RouteMessage {
    let src = &route.message;
    let mut msg = RouteMessage::default();
    msg.header.address_family = src.header.address_family;
    msg.header.destination_prefix_length = src.header.destination_prefix_length;
    msg.header.source_prefix_length = src.header.source_prefix_length;
    msg.header.tos = src.header.tos;
    msg.header.table = src.header.table;
    msg.header.protocol = RouteProtocol::from(RTPROT_IPSECGW);
    msg.header.scope = src.header.scope;
    msg.header.kind = src.header.kind;
    for attr in &src.attributes {
        match attr {
            RouteAttribute::Destination(_)
            | RouteAttribute::Source(_)
            | RouteAttribute::Oif(_)
            | RouteAttribute::Table(_)
            | RouteAttribute::Priority(_) => msg.attributes.push(attr.clone()),
            _ => {}
        }
    }
    msg
}

fn ip_version(prefix: &IpPrefix) -> IpVersion {
    if prefix.is_ipv4() {
        IpVersion::V4
    } else {
        IpVersion::V6
    }
}

/// Sends a route add, as NLM_F_REPLACE or NLM_F_EXCL.
async fn execute_add<T>(
    request: rtnetlink::RouteAddRequest<T>,
    replace: bool,
) -> Result<(), rtnetlink::Error> {
    if replace {
        request.replace().execute().await
    } else {
        request.execute().await
    }
}

/// The metric the kernel gives a route we add (we never set one).
fn our_metric(prefix: &IpPrefix) -> u32 {
    if prefix.is_ipv4() {
        0
    } else {
        IPV6_DEFAULT_METRIC
    }
}

/// A netlink (NETLINK_ROUTE) session. The socket belongs to the network namespace of the thread
/// that called [`Netlink::new`]; the connection task runs on the current tokio runtime and is
/// stopped when this value is dropped.
pub struct Netlink {
    handle: Handle,
    connection_task: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.connection_task.abort();
    }
}

impl fmt::Debug for Netlink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netlink").finish_non_exhaustive()
    }
}

impl Netlink {
    /// Opens the netlink socket and spawns its connection task on the current tokio runtime.
    /// Must be called from inside a tokio runtime.
    pub async fn new() -> io::Result<Netlink> {
        let (connection, handle, _unsolicited) = rtnetlink::new_connection()?;
        let connection_task = tokio::spawn(connection);
        Ok(Netlink {
            handle,
            connection_task,
        })
    }

    /// The interface index of `ifname`, or `None` if there is no such interface.
    pub async fn link_index(&self, ifname: &str) -> Result<Option<u32>, RoutingError> {
        let context = || format!("looking up interface {ifname}");
        if !check_ifname(ifname) {
            return Err(RoutingError::new(
                context(),
                RoutingErrorKind::InvalidInterfaceName,
            ));
        }
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(ifname.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(Some(link.header.index)),
            Ok(None) => Ok(None),
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
            Err(e) => Err(RoutingError::from_rtnetlink(context(), e)),
        }
    }

    /// Like [`Netlink::link_index`], but a missing interface is an error (`context` says where).
    /// The interface's index, or None when it is gone (nothing left to remove from it).
    async fn link_if_present(
        &self,
        ifname: &str,
        context: &str,
    ) -> Result<Option<u32>, RoutingError> {
        self.link_index(ifname)
            .await
            .map_err(|e| RoutingError::new(context, e.kind))
    }

    async fn require_link(&self, ifname: &str, context: &str) -> Result<u32, RoutingError> {
        match self.link_index(ifname).await {
            Ok(Some(index)) => Ok(index),
            Ok(None) => Err(RoutingError::new(context, RoutingErrorKind::NoSuchDevice)),
            Err(e) => Err(RoutingError::new(context, e.kind)),
        }
    }

    /// Brings `ifname` up (e.g. `lo` in a fresh namespace).
    pub async fn set_link_up(&self, ifname: &str) -> Result<(), RoutingError> {
        let context = format!("setting {ifname} up");
        let index = self.require_link(ifname, &context).await?;
        self.handle
            .link()
            .set(index)
            .up()
            .execute()
            .await
            .map_err(|e| RoutingError::from_rtnetlink(context, e))
    }

    /// Puts `addr/prefix_len` on `ifname` (the given prefix length is kept, e.g. a /32 on a
    /// point-to-point TUN), sets the MTU and brings the link up. Idempotent: an address that is
    /// already there is fine.
    pub async fn configure_interface(
        &self,
        ifname: &str,
        addr: IpAddr,
        prefix_len: u8,
        mtu: u32,
    ) -> Result<(), RoutingError> {
        let max_len = if addr.is_ipv4() { 32 } else { 128 };
        let context = format!("configuring {addr}/{prefix_len} mtu {mtu} on {ifname}");
        if prefix_len > max_len {
            return Err(RoutingError::new(
                context,
                RoutingErrorKind::Invalid(format!(
                    "prefix length /{prefix_len} is longer than /{max_len}"
                )),
            ));
        }
        let index = self.require_link(ifname, &context).await?;

        // MTU before the address: an IPv6 address needs an MTU of at least 1280 on the link.
        self.handle
            .link()
            .set(index)
            .mtu(mtu)
            .up()
            .execute()
            .await
            .map_err(|e| {
                RoutingError::from_rtnetlink(format!("setting mtu {mtu} and up on {ifname}"), e)
            })?;

        let mut request = self.handle.address().add(index, addr, prefix_len);
        // A TUN is point-to-point: a broadcast address means nothing there, so don't set one
        // (rtnetlink adds it by default; `ip addr add` does not).
        request
            .message_mut()
            .attributes
            .retain(|a| !matches!(a, AddressAttribute::Broadcast(_)));
        if addr.is_ipv6() {
            // No duplicate address detection on our own tunnel address: while DAD runs the
            // address is "tentative" and the kernel refuses it as a route's preferred source
            // (EINVAL), racing the add_route that follows. Nobody else sits on a TUN link.
            let message = request.message_mut();
            message.header.flags.push(AddressHeaderFlag::Nodad);
            message
                .attributes
                .push(AddressAttribute::Flags(vec![AddressFlag::Nodad]));
        }
        match request.execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_errno(&e, libc::EEXIST) => Ok(()),
            Err(e) => Err(RoutingError::from_rtnetlink(
                format!("adding address {addr}/{prefix_len} to {ifname}"),
                e,
            )),
        }
    }

    /// Removes `addr/prefix_len` from `ifname`. An absent address, or an absent interface (its
    /// addresses went with it), is not an error.
    pub async fn remove_address(
        &self,
        ifname: &str,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<(), RoutingError> {
        let context = format!("removing address {addr}/{prefix_len} from {ifname}");
        let Some(index) = self.link_if_present(ifname, &context).await? else {
            return Ok(());
        };
        let found: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(addr)
            .set_prefix_length_filter(prefix_len)
            .execute()
            .try_collect()
            .await
            .map_err(|e| RoutingError::from_rtnetlink(&context, e))?;
        for address in found {
            match self.handle.address().del(address).execute().await {
                Ok(()) => {}
                Err(e) if is_errno(&e, libc::EADDRNOTAVAIL) || is_errno(&e, libc::ENODEV) => {}
                Err(e) => return Err(RoutingError::from_rtnetlink(&context, e)),
            }
        }
        Ok(())
    }

    /// Dumps the routes of one family (all tables).
    async fn dump_routes(
        &self,
        version: IpVersion,
        context: &str,
    ) -> Result<Vec<KernelRoute>, RoutingError> {
        let messages: Vec<RouteMessage> = self
            .handle
            .route()
            .get(version)
            .execute()
            .try_collect()
            .await
            .map_err(|e| RoutingError::from_rtnetlink(context, e))?;
        Ok(messages.into_iter().filter_map(parse_route).collect())
    }

    /// Installs a device route `prefix dev ifname` (no gateway, scope link) in the main table
    /// with proto [`RTPROT_IPSECGW`] and the optional preferred source. Idempotent: our own
    /// route for the same prefix is replaced. A route of someone else with the same key
    /// (destination, tos 0, default metric, main table) is never replaced: that is an error.
    pub async fn add_route(
        &self,
        prefix: IpPrefix,
        ifname: &str,
        pref_src: Option<IpAddr>,
    ) -> Result<(), RoutingError> {
        let context = match pref_src {
            Some(src) => format!("adding route {prefix} dev {ifname} src {src}"),
            None => format!("adding route {prefix} dev {ifname}"),
        };
        if let Some(src) = pref_src {
            if src.is_ipv4() != prefix.is_ipv4() {
                return Err(RoutingError::new(
                    context,
                    RoutingErrorKind::Invalid(format!(
                        "source {src} is not of the route's address family"
                    )),
                ));
            }
        }
        let index = self.require_link(ifname, &context).await?;

        // Fast path: an exclusive add cannot clobber anything. EEXIST means a route with the
        // same key (destination, tos 0, default metric, main table) is there; replace it only
        // if it is ours, so re-installing is idempotent and a host route is never overwritten.
        match self.send_route_add(index, prefix, pref_src, false).await {
            Ok(()) => return Ok(()),
            Err(e) if is_errno(&e, libc::EEXIST) => {}
            Err(e) => return Err(RoutingError::from_rtnetlink(context, e)),
        }
        let metric = our_metric(&prefix);
        let existing = self.dump_routes(ip_version(&prefix), &context).await?;
        if let Some(foreign) = existing.iter().find(|r| {
            r.table == TABLE_MAIN
                && r.prefix == prefix
                && r.tos == 0
                && r.priority == metric
                && r.protocol != RTPROT_IPSECGW
        }) {
            return Err(RoutingError::new(
                context,
                RoutingErrorKind::ForeignRoute(foreign.protocol),
            ));
        }
        self.send_route_add(index, prefix, pref_src, true)
            .await
            .map_err(|e| RoutingError::from_rtnetlink(context, e))
    }

    /// RTM_NEWROUTE for our device route; `replace` = NLM_F_REPLACE, else NLM_F_EXCL.
    async fn send_route_add(
        &self,
        index: u32,
        prefix: IpPrefix,
        pref_src: Option<IpAddr>,
        replace: bool,
    ) -> Result<(), rtnetlink::Error> {
        let request = self
            .handle
            .route()
            .add()
            .table_id(TABLE_MAIN)
            .protocol(RouteProtocol::from(RTPROT_IPSECGW))
            .scope(RouteScope::Link)
            .output_interface(index);
        match prefix.addr() {
            IpAddr::V4(dst) => {
                let mut r = request.v4().destination_prefix(dst, prefix.len());
                if let Some(IpAddr::V4(src)) = pref_src {
                    r = r.pref_source(src);
                }
                execute_add(r, replace).await
            }
            IpAddr::V6(dst) => {
                let mut r = request.v6().destination_prefix(dst, prefix.len());
                if let Some(IpAddr::V6(src)) = pref_src {
                    r = r.pref_source(src);
                }
                execute_add(r, replace).await
            }
        }
    }

    /// Deletes our route `prefix dev ifname` from the main table: only a route with proto
    /// [`RTPROT_IPSECGW`], that destination and that output interface. Absent route or absent
    /// interface (its routes went with it) = Ok.
    pub async fn del_route(&self, prefix: IpPrefix, ifname: &str) -> Result<(), RoutingError> {
        let context = format!("deleting route {prefix} dev {ifname}");
        let Some(index) = self.link_if_present(ifname, &context).await? else {
            return Ok(());
        };
        let routes = self.dump_routes(ip_version(&prefix), &context).await?;
        for route in routes.iter().filter(|r| {
            r.protocol == RTPROT_IPSECGW
                && r.table == TABLE_MAIN
                && r.prefix == prefix
                && r.oif == Some(index)
        }) {
            self.delete_own(route, &context).await?;
        }
        Ok(())
    }

    async fn delete_own(&self, route: &KernelRoute, context: &str) -> Result<(), RoutingError> {
        // Belt and braces: never send a delete for anything that is not ours.
        if route.protocol != RTPROT_IPSECGW {
            return Ok(());
        }
        match self
            .handle
            .route()
            .del(delete_message(route))
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            // Gone in the meantime (e.g. its interface vanished): that is what we wanted.
            Err(e) if is_errno(&e, libc::ESRCH) || is_errno(&e, libc::ENODEV) => Ok(()),
            Err(e) => Err(RoutingError::from_rtnetlink(context, e)),
        }
    }

    async fn own_routes(&self, context: &str) -> Result<Vec<KernelRoute>, RoutingError> {
        let mut routes = self.dump_routes(IpVersion::V4, context).await?;
        routes.extend(self.dump_routes(IpVersion::V6, context).await?);
        routes.retain(|r| r.protocol == RTPROT_IPSECGW);
        Ok(routes)
    }

    /// Every route with proto [`RTPROT_IPSECGW`] (IPv4 and IPv6, any table) as
    /// (prefix, output interface index; 0 if the route has none).
    pub async fn list_own_routes(&self) -> Result<Vec<(IpPrefix, u32)>, RoutingError> {
        let routes = self.own_routes("listing ipsecgw routes").await?;
        Ok(routes
            .into_iter()
            .map(|r| (r.prefix, r.oif.unwrap_or(0)))
            .collect())
    }

    /// Startup cleanup after a crash: deletes every route with proto [`RTPROT_IPSECGW`]
    /// (IPv4 and IPv6, any table) and no other. Returns how many were deleted.
    pub async fn flush_stale_routes(&self) -> Result<usize, RoutingError> {
        let context = "flushing stale ipsecgw routes";
        let routes = self.own_routes(context).await?;
        let mut deleted = 0;
        for route in &routes {
            self.delete_own(route, &format!("{context}: deleting {}", route.prefix))
                .await?;
            deleted += 1;
        }
        Ok(deleted)
    }
}

/// One route we installed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InstalledRoute {
    pub prefix: IpPrefix,
    pub ifname: String,
    pub pref_src: Option<IpAddr>,
}

/// Bookkeeping of the routes the daemon installed, so it can withdraw exactly those on tunnel
/// down or shutdown.
#[derive(Clone, Debug, Default)]
pub struct RouteSet {
    routes: Vec<InstalledRoute>,
}

impl RouteSet {
    pub fn new() -> Self {
        RouteSet::default()
    }

    /// Installs the route and remembers it. Installing the same (prefix, ifname) again replaces
    /// the entry (e.g. a new preferred source).
    pub async fn install(
        &mut self,
        netlink: &Netlink,
        prefix: IpPrefix,
        ifname: &str,
        pref_src: Option<IpAddr>,
    ) -> Result<(), RoutingError> {
        netlink.add_route(prefix, ifname, pref_src).await?;
        self.routes
            .retain(|r| !(r.prefix == prefix && r.ifname == ifname));
        self.routes.push(InstalledRoute {
            prefix,
            ifname: ifname.to_string(),
            pref_src,
        });
        Ok(())
    }

    /// Withdraws one route we installed and forgets it (kept if the delete failed, for a retry).
    pub async fn withdraw(
        &mut self,
        netlink: &Netlink,
        prefix: IpPrefix,
        ifname: &str,
    ) -> Result<(), RoutingError> {
        netlink.del_route(prefix, ifname).await?;
        self.routes
            .retain(|r| !(r.prefix == prefix && r.ifname == ifname));
        Ok(())
    }

    /// Withdraws every route of one interface (tunnel down); returns how many.
    pub async fn withdraw_interface(
        &mut self,
        netlink: &Netlink,
        ifname: &str,
    ) -> Result<usize, RoutingError> {
        self.withdraw_matching(netlink, |r| r.ifname == ifname)
            .await
    }

    /// Withdraws everything we installed (shutdown). Tries every route even if some fail;
    /// failed ones stay in the set and the first error is returned.
    pub async fn withdraw_all(&mut self, netlink: &Netlink) -> Result<usize, RoutingError> {
        self.withdraw_matching(netlink, |_| true).await
    }

    async fn withdraw_matching(
        &mut self,
        netlink: &Netlink,
        select: impl Fn(&InstalledRoute) -> bool,
    ) -> Result<usize, RoutingError> {
        let mut first_error = None;
        let mut withdrawn = 0;
        let mut kept = Vec::with_capacity(self.routes.len());
        for route in std::mem::take(&mut self.routes) {
            if !select(&route) {
                kept.push(route);
                continue;
            }
            match netlink.del_route(route.prefix, &route.ifname).await {
                Ok(()) => withdrawn += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                    kept.push(route);
                }
            }
        }
        self.routes = kept;
        match first_error {
            Some(e) => Err(e),
            None => Ok(withdrawn),
        }
    }

    pub fn routes(&self) -> &[InstalledRoute] {
        &self.routes
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display_says_what_and_where() {
        let e = RoutingError::new(
            "adding route 10.10.30.254/32 dev ipsec30",
            RoutingErrorKind::NoSuchDevice,
        );
        assert_eq!(
            e.to_string(),
            "adding route 10.10.30.254/32 dev ipsec30: No such device"
        );
        let e = RoutingError::new("x", RoutingErrorKind::Kernel(libc::EEXIST));
        assert_eq!(e.to_string(), "x: File exists");
        assert_eq!(e.errno(), Some(libc::EEXIST));
    }

    #[test]
    fn ifname_validation() {
        assert!(check_ifname("ipsec30"));
        assert!(check_ifname("a23456789012345"));
        assert!(!check_ifname("a234567890123456"));
        assert!(!check_ifname(""));
        assert!(!check_ifname("a/b"));
        assert!(!check_ifname("a b"));
        assert!(!check_ifname(".."));
    }

    #[test]
    fn rtprot_is_not_a_known_protocol() {
        // iproute2 rt_protos / kernel RTPROT_* values.
        let known = [
            0u8, 1, 2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 42, 99, 186, 187, 188, 189,
            192,
        ];
        assert!(!known.contains(&RTPROT_IPSECGW));
        assert_eq!(
            RouteProtocol::from(RTPROT_IPSECGW),
            RouteProtocol::Other(RTPROT_IPSECGW)
        );
    }

    #[test]
    fn parse_default_and_delete_message_keeps_only_keys() {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.protocol = RouteProtocol::from(RTPROT_IPSECGW);
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.attributes.push(RouteAttribute::Oif(7));
        msg.attributes
            .push(RouteAttribute::PrefSource(RouteAddress::Inet(
                Ipv4Addr::new(10, 0, 0, 1),
            )));
        let r = parse_route(msg).expect("parsed");
        assert_eq!(r.prefix.to_string(), "0.0.0.0/0");
        assert_eq!(r.oif, Some(7));
        assert_eq!(r.table, TABLE_MAIN);
        let del = delete_message(&r);
        assert_eq!(u8::from(del.header.protocol), RTPROT_IPSECGW);
        assert_eq!(del.attributes, vec![RouteAttribute::Oif(7)]);
    }
}
