//! Netlink routing layer against the real kernel, each test in its own network namespace.
//!
//! Needs root and iproute2 (`ip` is only used to set up TUN devices and to observe).
//! Opt out explicitly with IPSECGW_SKIP_NETNS=1; otherwise a missing prerequisite fails loudly.

use std::future::Future;
use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use ipsecgw::prefix::IpPrefix;
use ipsecgw::routing::netns::{in_netns, NetnsGuard};
use ipsecgw::routing::{Netlink, RouteSet, RoutingErrorKind, RTPROT_IPSECGW};

const SKIP_VAR: &str = "IPSECGW_SKIP_NETNS";

/// Returns false (skip) only when the opt-out variable is set; panics if the test cannot run.
fn netns_prerequisites() -> bool {
    if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
        eprintln!("skipping: {SKIP_VAR}=1");
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "this test needs root (network namespaces, TUN devices); set {SKIP_VAR}=1 to skip it"
        );
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`ip netns list` failed ({}); set {SKIP_VAR}=1 to skip netns tests",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("cannot run `ip` (iproute2): {e}; set {SKIP_VAR}=1 to skip netns tests"),
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        panic!("/dev/net/tun is missing; set {SKIP_VAR}=1 to skip netns tests");
    }
    true
}

/// A fresh namespace (unique per process and test), deleted when dropped, even on panic.
fn test_ns(tag: &str) -> NetnsGuard {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "ipsecgw-rt-{}-{}-{tag}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    NetnsGuard::create(&name)
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}; set {SKIP_VAR}=1 to skip"))
}

/// `ip -n NS args...`, asserting success; returns stdout.
fn ip(ns: &NetnsGuard, args: &[&str]) -> String {
    let out = Command::new("ip")
        .arg("-n")
        .arg(ns.name())
        .args(args)
        .output()
        .expect("running ip");
    assert!(
        out.status.success(),
        "ip -n {} {}: {}",
        ns.name(),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip -n NS` with the arguments written as one line ("route add 10.50.0.0/16 dev t0").
fn ip_cmd(ns: &NetnsGuard, cmd: &str) -> String {
    ip(ns, &cmd.split_whitespace().collect::<Vec<_>>())
}

/// Whether `ip netns list` shows `name`, and its output (for messages).
fn netns_listed(name: &str) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("running ip");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let listed = text
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name));
    (listed, text)
}

fn add_tun(ns: &NetnsGuard, ifname: &str) {
    ip(ns, &["tuntap", "add", "dev", ifname, "mode", "tun"]);
}

/// Test setup: `address`/32 on `ifname` (MTU 1400, up).
async fn tun_address(nl: &Netlink, ifname: &str, address: &str) {
    nl.configure_interface(ifname, addr(address), 32, 1400)
        .await
        .unwrap();
}

/// Runs an async body inside the namespace on a current-thread tokio runtime, with a Netlink
/// opened there.
fn run_in<T: Send, F, Fut>(ns: &NetnsGuard, body: F) -> T
where
    F: FnOnce(Netlink) -> Fut + Send,
    Fut: Future<Output = T>,
{
    in_netns(ns.name(), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(async {
            let netlink = Netlink::new().await.expect("opening netlink");
            body(netlink).await
        })
    })
    .expect("entering namespace")
}

/// A fresh namespace with the TUN devices `tuns`; None when namespaces cannot be used here.
fn lab(tag: &str, tuns: &[&str]) -> Option<NetnsGuard> {
    if !netns_prerequisites() {
        return None;
    }
    let ns = test_ns(tag);
    for t in tuns {
        add_tun(&ns, t);
    }
    Some(ns)
}

/// Installs our route `prefix dev ifname [src]`, which must succeed.
async fn route(nl: &Netlink, prefix: &str, ifname: &str, src: Option<&str>) {
    nl.add_route(pfx(prefix), ifname, src.map(addr))
        .await
        .unwrap_or_else(|e| panic!("{prefix} dev {ifname}: {e}"));
}

fn pfx(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The main-table route lines of `ip -n NS -d -4|-6 route show` mentioning `needle`, without
/// the leading route type. `-d` makes `ip` print every protocol, `proto boot` included.
fn route_lines(ns: &NetnsGuard, v6: bool, needle: &str) -> Vec<String> {
    ip(ns, &[if v6 { "-6" } else { "-4" }, "-d", "route", "show"])
        .lines()
        .filter(|l| l.contains(needle))
        .map(|l| l.strip_prefix("unicast ").unwrap_or(l).to_string())
        .collect()
}

fn proto_text() -> String {
    format!("proto {RTPROT_IPSECGW}")
}

#[test]
fn configure_interface_sets_address_mtu_and_up_idempotently() {
    let Some(ns) = lab("cfg", &["t0"]) else {
        return;
    };
    let link_line = ip_cmd(&ns, "-o link show dev t0");
    let kernel_index: u32 = link_line.split(':').next().unwrap().trim().parse().unwrap();

    let index = run_in(&ns, |nl| async move {
        let index = nl.link_index("t0").await.unwrap();
        assert_eq!(nl.link_index("nosuch0").await.unwrap(), None);
        nl.configure_interface("t0", addr("10.2.30.125"), 32, 1400)
            .await
            .unwrap();
        // Again: the existing address is fine.
        nl.configure_interface("t0", addr("10.2.30.125"), 32, 1400)
            .await
            .unwrap();
        nl.configure_interface("t0", addr("2001:db8:30::125"), 128, 1400)
            .await
            .unwrap();
        index
    });
    assert_eq!(index, Some(kernel_index));

    let link = ip_cmd(&ns, "-o link show dev t0");
    assert!(link.contains("mtu 1400"), "{link}");
    let flags = link
        .split('<')
        .nth(1)
        .and_then(|s| s.split('>').next())
        .unwrap();
    assert!(flags.split(',').any(|f| f == "UP"), "{link}");
    let addrs = ip_cmd(&ns, "-o addr show dev t0");
    assert_eq!(addrs.matches("inet 10.2.30.125/32").count(), 1, "{addrs}");
    assert!(
        !addrs.contains("brd"),
        "no broadcast address on a TUN: {addrs}"
    );
    assert_eq!(
        addrs.matches("inet6 2001:db8:30::125/128").count(),
        1,
        "{addrs}"
    );
    // Usable at once (no DAD): a tentative address could not be a route's preferred source.
    assert!(
        !addrs.contains("tentative") && addrs.contains("nodad"),
        "{addrs}"
    );

    // A different MTU is applied on reconfiguration.
    run_in(&ns, |nl| async move {
        nl.configure_interface("t0", addr("10.2.30.125"), 32, 1300)
            .await
            .unwrap()
    });
    assert!(ip_cmd(&ns, "-o link show dev t0").contains("mtu 1300"));

    run_in(&ns, |nl| async move {
        nl.remove_address("t0", addr("10.2.30.125"), 32)
            .await
            .unwrap();
        nl.remove_address("t0", addr("2001:db8:30::125"), 128)
            .await
            .unwrap();
        // Absent address / absent interface: nothing to do.
        nl.remove_address("t0", addr("10.2.30.125"), 32)
            .await
            .unwrap();
        nl.remove_address("nosuch0", addr("10.2.30.125"), 32)
            .await
            .unwrap();
    });
    let addrs = ip_cmd(&ns, "-o addr show dev t0");
    assert!(
        !addrs.contains("10.2.30.125") && !addrs.contains("2001:db8:30::125"),
        "{addrs}"
    );
}

#[test]
fn add_route_with_and_without_pref_src_is_ours_and_idempotent() {
    let Some(ns) = lab("add", &["t0"]) else {
        return;
    };
    run_in(&ns, |nl| async move {
        tun_address(&nl, "t0", "10.2.30.125").await;
        nl.configure_interface("t0", addr("2001:db8:30::125"), 128, 1400)
            .await
            .unwrap();
        route(&nl, "10.10.30.254/32", "t0", Some("10.2.30.125")).await;
        route(&nl, "10.99.0.0/16", "t0", None).await;
        route(&nl, "2001:db8:99::/48", "t0", None).await;
        nl.add_route(
            pfx("2001:db8:98::/48"),
            "t0",
            Some(addr("2001:db8:30::125")),
        )
        .await
        .unwrap();
        // Replace, not duplicate.
        route(&nl, "10.10.30.254/32", "t0", Some("10.2.30.125")).await;
        route(&nl, "10.99.0.0/16", "t0", None).await;
        route(&nl, "2001:db8:99::/48", "t0", None).await;
    });

    let host = route_lines(&ns, false, "10.10.30.254");
    assert_eq!(host.len(), 1, "{host:?}");
    assert!(host[0].starts_with("10.10.30.254 dev t0 "), "{host:?}");
    assert!(host[0].contains(&proto_text()), "{host:?}");
    assert!(host[0].contains("scope link"), "{host:?}");
    assert!(host[0].contains("src 10.2.30.125"), "{host:?}");
    assert!(!host[0].contains("via"), "{host:?}");

    let net = route_lines(&ns, false, "10.99.0.0/16");
    assert_eq!(net.len(), 1, "{net:?}");
    assert!(net[0].starts_with("10.99.0.0/16 dev t0 "), "{net:?}");
    assert!(
        net[0].contains(&proto_text()) && !net[0].contains(" src "),
        "{net:?}"
    );

    let v6 = route_lines(&ns, true, "2001:db8:99::/48");
    assert_eq!(v6.len(), 1, "{v6:?}");
    assert!(
        v6[0].starts_with("2001:db8:99::/48 dev t0 ") && v6[0].contains(&proto_text()),
        "{v6:?}"
    );
    let v6src = route_lines(&ns, true, "2001:db8:98::/48");
    assert_eq!(v6src.len(), 1, "{v6src:?}");
    assert!(v6src[0].contains("src 2001:db8:30::125"), "{v6src:?}");

    // The kernel filter agrees: exactly these four routes carry our protocol.
    let ours = ip_cmd(&ns, &format!("route show proto {RTPROT_IPSECGW}"));
    assert_eq!(ours.lines().count(), 2, "{ours}");
    let ours6 = ip_cmd(&ns, &format!("-6 route show proto {RTPROT_IPSECGW}"));
    assert_eq!(ours6.lines().count(), 2, "{ours6}");

    let mut listed = run_in(&ns, |nl| async move { nl.list_own_routes().await.unwrap() });
    listed.sort();
    let index = run_in(&ns, |nl| async move {
        nl.link_index("t0").await.unwrap().unwrap()
    });
    let mut expected = vec![
        (pfx("10.10.30.254/32"), index),
        (pfx("10.99.0.0/16"), index),
        (pfx("2001:db8:99::/48"), index),
        (pfx("2001:db8:98::/48"), index),
    ];
    expected.sort();
    assert_eq!(listed, expected);
}

#[test]
fn add_route_moves_our_route_and_refuses_to_replace_a_foreign_one() {
    let Some(ns) = lab("foreign", &["t0", "t1"]) else {
        return;
    };
    ip_cmd(&ns, "link set t0 up");
    ip_cmd(&ns, "link set t1 up");
    // Someone else's route (proto boot, metric 0) for the prefix we are asked to install.
    ip_cmd(&ns, "route add 10.60.0.0/24 dev t1");
    let before = route_lines(&ns, false, "10.60.0.0/24");

    let err = run_in(&ns, |nl| async move {
        nl.add_route(pfx("10.60.0.0/24"), "t0", None)
            .await
            .unwrap_err()
    });
    assert!(
        matches!(err.kind, RoutingErrorKind::ForeignRoute(3)),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("adding route 10.60.0.0/24 dev t0: "),
        "{err}"
    );
    assert_eq!(
        route_lines(&ns, false, "10.60.0.0/24"),
        before,
        "the foreign route must be untouched"
    );

    // A foreign route with another metric does not collide: ours (metric 0) is added next to it.
    ip_cmd(&ns, "route add 10.61.0.0/24 dev t1 metric 100 proto static");
    run_in(&ns, |nl| async move {
        route(&nl, "10.61.0.0/24", "t0", None).await;
        // Our own route is replaced in place when installed on another device.
        route(&nl, "10.61.0.0/24", "t1", None).await;
    });
    let lines = route_lines(&ns, false, "10.61.0.0/24");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines
        .iter()
        .any(|l| l.contains("dev t1") && l.contains("proto static") && l.contains("metric 100")));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("dev t1") && l.contains(&proto_text())),
        "{lines:?}"
    );
}

#[test]
fn del_route_deletes_only_our_route() {
    let Some(ns) = lab("del", &["t0", "t1"]) else {
        return;
    };
    run_in(&ns, |nl| async move {
        tun_address(&nl, "t0", "10.2.30.125").await;
        tun_address(&nl, "t1", "10.2.31.125").await;
        route(&nl, "10.10.30.254/32", "t0", Some("10.2.30.125")).await;
        route(&nl, "10.10.31.0/24", "t1", None).await;
        route(&nl, "2001:db8:99::/48", "t0", None).await;
    });
    // Foreign routes: same prefix with another metric, and same prefix on another device.
    ip_cmd(
        &ns,
        "route add 10.10.30.254/32 dev t0 metric 100 proto static",
    );
    ip_cmd(&ns, "route add 10.10.30.254/32 dev t1 metric 200");

    run_in(&ns, |nl| async move {
        // Our route is on t0, not t1: asking to delete it on t1 does nothing.
        nl.del_route(pfx("10.10.30.254/32"), "t1").await.unwrap();
        nl.del_route(pfx("10.10.30.254/32"), "t0").await.unwrap();
        nl.del_route(pfx("2001:db8:99::/48"), "t0").await.unwrap();
        // Absent route, absent device: Ok.
        nl.del_route(pfx("10.10.30.254/32"), "t0").await.unwrap();
        nl.del_route(pfx("10.10.30.254/32"), "nosuch0")
            .await
            .unwrap();
    });
    let lines = route_lines(&ns, false, "10.10.30.254");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines.iter().all(|l| !l.contains(&proto_text())),
        "{lines:?}"
    );
    assert!(lines
        .iter()
        .any(|l| l.contains("dev t0") && l.contains("proto static") && l.contains("metric 100")));
    assert!(lines
        .iter()
        .any(|l| l.contains("dev t1") && l.contains("proto boot") && l.contains("metric 200")));
    assert!(route_lines(&ns, true, "2001:db8:99::/48").is_empty());
    // The other route of ours is still there.
    let other = route_lines(&ns, false, "10.10.31.0/24");
    assert!(
        other.len() == 1 && other[0].contains(&proto_text()),
        "{other:?}"
    );
}

#[test]
fn flush_stale_routes_removes_ours_and_nothing_else() {
    let Some(ns) = lab("flush", &["t0"]) else {
        return;
    };
    run_in(&ns, |nl| async move {
        tun_address(&nl, "t0", "10.2.30.125").await;
        route(&nl, "10.10.30.254/32", "t0", Some("10.2.30.125")).await;
        route(&nl, "10.98.0.0/16", "t0", None).await;
        route(&nl, "2001:db8:99::/48", "t0", None).await;
    });
    // A leftover of a crashed run in another table, and the host's own routes.
    ip_cmd(
        &ns,
        &format!("route add 10.97.0.0/16 dev t0 proto {RTPROT_IPSECGW} table 100"),
    );
    ip_cmd(&ns, "route add 10.50.0.0/16 dev t0");
    ip_cmd(&ns, "route add 10.51.0.0/16 dev t0 proto static");
    ip_cmd(
        &ns,
        "route add 10.10.30.254/32 dev t0 metric 50 proto static",
    );
    ip_cmd(&ns, "-6 route add 2001:db8:50::/48 dev t0");
    let foreign = |ns: &NetnsGuard| -> Vec<String> {
        let mut all: Vec<String> = ["-4 -d route show table all", "-6 -d route show table all"]
            .iter()
            .flat_map(|args| {
                ip(ns, &args.split(' ').collect::<Vec<_>>())
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter(|l| !l.contains(&proto_text()))
            .collect();
        all.sort();
        all
    };
    let foreign_before = foreign(&ns);
    assert!(
        foreign_before
            .iter()
            .any(|l| l.starts_with("unicast 10.50.0.0/16 dev t0 table main proto boot")),
        "{foreign_before:?}"
    );

    let (flushed, left, again) = run_in(&ns, |nl| async move {
        let flushed = nl.flush_stale_routes().await.unwrap();
        let left = nl.list_own_routes().await.unwrap();
        let again = nl.flush_stale_routes().await.unwrap();
        (flushed, left, again)
    });
    assert_eq!(flushed, 4);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(again, 0);
    assert_eq!(
        foreign(&ns),
        foreign_before,
        "foreign routes must be untouched"
    );
    let ours = ip_cmd(&ns, &format!("route show table all proto {RTPROT_IPSECGW}"))
        + &ip_cmd(
            &ns,
            &format!("-6 route show table all proto {RTPROT_IPSECGW}"),
        );
    assert!(ours.trim().is_empty(), "{ours}");
}

#[test]
fn missing_device_is_a_clean_error() {
    let Some(ns) = lab("nodev", &[]) else {
        return;
    };
    let (route_err, cfg_err, up_err, bad_name) = run_in(&ns, |nl| async move {
        (
            nl.add_route(pfx("10.10.30.254/32"), "ipsec30", None)
                .await
                .unwrap_err(),
            nl.configure_interface("ipsec30", addr("10.2.30.125"), 32, 1400)
                .await
                .unwrap_err(),
            nl.set_link_up("ipsec30").await.unwrap_err(),
            nl.link_index("much-too-long-ifname").await.unwrap_err(),
        )
    });
    assert_eq!(
        route_err.to_string(),
        "adding route 10.10.30.254/32 dev ipsec30: No such device"
    );
    assert!(route_err.is_no_such_device());
    assert_eq!(
        cfg_err.to_string(),
        "configuring 10.2.30.125/32 mtu 1400 on ipsec30: No such device"
    );
    assert!(up_err.is_no_such_device(), "{up_err}");
    assert!(
        matches!(bad_name.kind, RoutingErrorKind::InvalidInterfaceName),
        "{bad_name}"
    );
    // Nothing was installed.
    let routes = ip_cmd(&ns, "route show table all");
    assert!(!routes.contains("10.10.30.254"), "{routes}");
}

#[test]
fn kernel_refusal_names_what_and_where() {
    let Some(ns) = lab("refuse", &["t0"]) else {
        return;
    };
    let err = run_in(&ns, |nl| async move {
        tun_address(&nl, "t0", "10.2.30.125").await;
        // 10.9.9.9 is not an address of this host: the kernel refuses it as preferred source.
        nl.add_route(pfx("10.10.30.254/32"), "t0", Some(addr("10.9.9.9")))
            .await
            .unwrap_err()
    });
    assert_eq!(err.errno(), Some(libc::EINVAL), "{err}");
    assert_eq!(
        err.to_string(),
        "adding route 10.10.30.254/32 dev t0 src 10.9.9.9: Invalid argument"
    );
}

#[test]
fn route_set_withdraws_exactly_what_it_installed() {
    let Some(ns) = lab("set", &["t0", "t1"]) else {
        return;
    };
    ip_cmd(&ns, "link set t0 up");
    ip_cmd(&ns, "route add 10.50.0.0/16 dev t0");
    let (after_iface, after_all, remaining) = run_in(&ns, |nl| async move {
        tun_address(&nl, "t0", "10.2.30.125").await;
        tun_address(&nl, "t1", "10.2.31.125").await;
        let mut set = RouteSet::new();
        set.install(&nl, pfx("10.10.30.254/32"), "t0", Some(addr("10.2.30.125")))
            .await
            .unwrap();
        set.install(&nl, pfx("10.10.30.0/24"), "t0", None)
            .await
            .unwrap();
        set.install(&nl, pfx("10.10.31.0/24"), "t1", None)
            .await
            .unwrap();
        // Re-installing replaces the entry, it does not add a second one.
        set.install(&nl, pfx("10.10.30.0/24"), "t0", None)
            .await
            .unwrap();
        assert_eq!(set.len(), 3);
        // A failed install is not recorded.
        assert!(set
            .install(&nl, pfx("10.10.40.0/24"), "nosuch0", None)
            .await
            .is_err());
        assert_eq!(set.len(), 3);
        assert_eq!(nl.list_own_routes().await.unwrap().len(), 3);

        assert_eq!(set.withdraw_interface(&nl, "t1").await.unwrap(), 1);
        let after_iface = nl.list_own_routes().await.unwrap().len();
        assert_eq!(set.withdraw_all(&nl).await.unwrap(), 2);
        assert!(set.is_empty());
        let after_all = nl.list_own_routes().await.unwrap().len();
        (after_iface, after_all, set.len())
    });
    assert_eq!((after_iface, after_all, remaining), (2, 0, 0));
    let host = route_lines(&ns, false, "10.50.0.0/16");
    assert_eq!(host.len(), 1, "the host route survives: {host:?}");
}

#[test]
fn in_netns_runs_inside_and_the_guard_deletes_the_namespace() {
    if !netns_prerequisites() {
        return;
    }
    let name;
    {
        let ns = test_ns("guard");
        name = ns.name().to_string();
        add_tun(&ns, "inside0");
        let (listed, text) = netns_listed(&name);
        assert!(listed, "{text}");
        let (inside, outside) = (
            run_in(
                &ns,
                |nl| async move { nl.link_index("inside0").await.unwrap() },
            ),
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    Netlink::new()
                        .await
                        .unwrap()
                        .link_index("inside0")
                        .await
                        .unwrap()
                }),
        );
        assert!(inside.is_some());
        assert_eq!(outside, None, "the TUN lives only inside the namespace");
    }
    let (listed, text) = netns_listed(&name);
    assert!(!listed, "{text}");
    assert!(!std::path::Path::new("/var/run/netns").join(&name).exists());
}
