//! Interop with a real BIRD 2 (the lab's peer) over loopback: BIRD as AS65515 on 127.0.0.3,
//! our session as AS65021 on 127.0.0.1, both on one high port. Needs the `bird`/`birdc`
//! binaries (Debian: bird2); set IPSECGW_SKIP_BIRD=1 to opt out where BIRD is not installed.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipsecgw::bgp::{BgpConfig, BgpEvent, BgpState, BgpStatus, RibDirection, RibEntry};
use ipsecgw::daemon::bgp_task::{run_session, BgpCommand};
use ipsecgw::prefix::IpPrefix;
use tokio::sync::mpsc;
use tokio::time::timeout;

struct Bird {
    child: Child,
    dir: PathBuf,
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // IPSECGW_KEEP_BIRD=1 keeps the config and bird.log for inspection.
        if std::env::var_os("IPSECGW_KEEP_BIRD").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Bird {
    /// BIRD announcing `routes` (blackhole statics) to us, and taking what we send.
    fn start(port: u16, routes: &[&str]) -> Bird {
        if std::env::var_os("IPSECGW_SKIP_BIRD").is_none() {
            let found = Command::new("bird").arg("--version").output().is_ok();
            assert!(found, "`bird` (BIRD 2) is not installed: install bird2, or set IPSECGW_SKIP_BIRD=1 to skip");
        }
        let dir = std::env::temp_dir().join(format!("ipsecgw-bird-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let statics: String = routes
            .iter()
            .map(|r| format!("route {r} blackhole; "))
            .collect();
        let conf = format!(
            r#"
log "{dir}/bird.log" all;
router id 127.0.0.3;
protocol device {{ }}
protocol static lan {{ ipv4; {statics}}}
protocol static tunnel_peer {{ ipv4; route 127.0.0.1/32 via "lo"; }}
protocol bgp azure {{
    local 127.0.0.3 port {port} as 65515;
    neighbor 127.0.0.1 port {port} as 65021;
    strict bind yes;
    multihop 255;
    connect delay time 1; connect retry time 5; error wait time 1, 10;
    hold time 30; keepalive time 10;
    ipv4 {{ import all; export where proto = "lan"; next hop self; gateway recursive; }};
}}
"#,
            dir = dir.display(),
        );
        std::fs::write(dir.join("bird.conf"), conf).unwrap();
        let child = Command::new("bird")
            .arg("-f")
            .arg("-c")
            .arg(dir.join("bird.conf"))
            .arg("-s")
            .arg(dir.join("bird.ctl"))
            .arg("-P")
            .arg(dir.join("bird.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run bird");
        Bird { child, dir }
    }

    fn birdc(&self, cmd: &str) -> String {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.dir.join("bird.ctl"))
            .args(cmd.split_whitespace())
            .output()
            .expect("cannot run birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn p(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

fn skip() -> bool {
    let skip = std::env::var_os("IPSECGW_SKIP_BIRD").is_some();
    if skip {
        eprintln!("IPSECGW_SKIP_BIRD set: BIRD interop test skipped");
    }
    skip
}

/// Probes every 100 ms until `done` holds or `secs` have passed; the last value either way.
async fn poll<T>(secs: u64, mut probe: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let mut value = probe();
    for _ in 0..secs * 10 {
        if done(&value) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        value = probe();
    }
    value
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Our side: AS65021 on 127.0.0.1, BIRD (AS65515) at 127.0.0.3.
fn our_config(port: u16) -> BgpConfig {
    let mut cfg = BgpConfig::new(
        65021,
        65515,
        "127.0.0.1".parse().unwrap(),
        "127.0.0.3".parse().unwrap(),
    );
    cfg.port = port;
    cfg.multihop = 5;
    cfg.connect_retry = Duration::from_secs(1);
    cfg
}

type Shared = Arc<Mutex<(BgpStatus, Vec<RibEntry>)>>;

fn spawn(
    cfg: BgpConfig,
) -> (
    mpsc::Sender<BgpCommand>,
    mpsc::Receiver<BgpEvent>,
    Shared,
    tokio::task::JoinHandle<()>,
) {
    let status = Arc::new(Mutex::new((
        BgpStatus::idle(cfg.peer_as, cfg.peer_address),
        vec![],
    )));
    let (cmd_tx, cmd_rx) = mpsc::channel(8);
    let (ev_tx, ev_rx) = mpsc::channel(64);
    let task = tokio::spawn(run_session(cfg, cmd_rx, ev_tx, status.clone()));
    (cmd_tx, ev_rx, status, task)
}

#[tokio::test]
async fn interop_with_bird2_exchanges_routes_with_policy() {
    if skip() {
        return;
    }
    let port = free_port();
    let bird = Bird::start(port, &["10.2.0.0/24", "10.2.1.0/24"]);

    let mut cfg = our_config(port);
    cfg.networks = vec![p("10.2.30.0/25"), p("192.168.77.0/24")];
    cfg.export = vec!["10.2.30.0/25".parse().unwrap()];
    cfg.import = Some(vec!["10.2.0.0/16 le 24".parse().unwrap()]);
    cfg.import_local_pref = 200;
    let (cmd_tx, mut ev_rx, status, task) = spawn(cfg);
    cmd_tx.send(BgpCommand::Start).await.unwrap();

    // Both BIRD prefixes arrive, via BIRD's address.
    let mut installed = vec![];
    let got = timeout(Duration::from_secs(30), async {
        while let Some(ev) = ev_rx.recv().await {
            if let BgpEvent::InstallRoute { prefix, next_hop } = ev {
                assert_eq!(next_hop, "127.0.0.3".parse::<IpAddr>().unwrap());
                installed.push(prefix);
                if installed.len() == 2 {
                    return;
                }
            }
        }
    })
    .await;
    assert!(
        got.is_ok(),
        "no routes from BIRD: status {:?}\nbirdc: {}",
        status.lock().unwrap().0,
        bird.birdc("show protocols all azure")
    );
    installed.sort();
    assert_eq!(installed, vec![p("10.2.0.0/24"), p("10.2.1.0/24")]);
    {
        let g = status.lock().unwrap();
        assert_eq!(g.0.state, BgpState::Established);
        assert_eq!(g.0.peer_router_id, Some("127.0.0.3".parse().unwrap()));
        assert!(
            g.1.iter()
                .filter(|r| r.local_pref == Some(200) && r.as_path == "65515")
                .count()
                == 2
        );
    }

    // BIRD sees exactly the prefix our prefix-list lets out, with AS_PATH 65021.
    let routes = poll(
        5,
        || bird.birdc("show route all protocol azure"),
        |routes| routes.contains("10.2.30.0/25"),
    )
    .await;
    assert!(
        routes.contains("10.2.30.0/25"),
        "BIRD did not get our prefix:\n{routes}"
    );
    assert!(
        !routes.contains("192.168.77.0"),
        "export filter leaked:\n{routes}"
    );
    assert!(routes.contains("BGP.as_path: 65021"), "{routes}");
    assert!(routes.contains("BGP.next_hop: 127.0.0.1"), "{routes}");

    // BIRD asks us for a ROUTE-REFRESH ("reload in"): the session survives it and BIRD still
    // has our prefix. Then a clean shutdown whose reason BIRD shows.
    let _ = bird.birdc("reload in azure");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status.lock().unwrap().0.state, BgpState::Established);
    assert!(bird
        .birdc("show route protocol azure")
        .contains("10.2.30.0/25"));
    cmd_tx
        .send(BgpCommand::Stop("interop test done".into()))
        .await
        .unwrap();
    let last = poll(
        5,
        || bird.birdc("show protocols all azure"),
        |last| last.contains("interop test done"),
    )
    .await;
    assert!(
        last.contains("interop test done"),
        "BIRD should show our shutdown message:\n{last}"
    );
    drop(cmd_tx);
    timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

/// BIRD announces, besides one ordinary route, routes that would pull the tunnel into itself:
/// 0.0.0.0/1 + 128.0.0.0/1, the default route, a more-specific and a host route of the IKE
/// peer. Our import list permits all of them on purpose: only the protection refuses them.
/// One more route is outside the import list. BIRD itself reports having exported all seven.
#[tokio::test]
async fn bird2_routes_covering_the_ike_peer_or_underlay_are_refused() {
    if skip() {
        return;
    }
    let ike_peer: IpAddr = "192.0.2.2".parse().unwrap();
    let underlay: IpAddr = "100.64.0.1".parse().unwrap();
    let covering = [
        "0.0.0.0/1",    // covers our underlay 100.64.0.1
        "128.0.0.0/1",  // covers the IKE peer 192.0.2.2
        "0.0.0.0/0",    // covers both
        "192.0.2.0/25", // a more-specific around the IKE peer
        "192.0.2.2/32", // the IKE peer itself
    ];
    let mut routes = vec!["10.2.0.0/24", "10.99.0.0/16"];
    routes.extend(covering);
    let port = free_port();
    let bird = Bird::start(port, &routes);

    let mut cfg = our_config(port);
    cfg.import = Some(
        [
            "10.2.0.0/16 le 24",
            "0.0.0.0/1",
            "128.0.0.0/1",
            "0.0.0.0/0",
            "192.0.2.0/24 le 32",
        ]
        .iter()
        .map(|f| f.parse().unwrap())
        .collect(),
    );
    cfg.protected = vec![ike_peer, underlay];
    let (cmd_tx, mut ev_rx, status, task) = spawn(cfg);
    cmd_tx.send(BgpCommand::Start).await.unwrap();

    // BIRD's own account: Established, seven routes exported to us.
    let shown = poll(
        30,
        || bird.birdc("show protocols all azure"),
        |shown| shown.contains("Established") && shown.contains("7 exported"),
    )
    .await;
    assert!(
        shown.contains("Established") && shown.contains("7 exported"),
        "BIRD did not export its seven routes:\n{shown}"
    );
    let exported = bird.birdc("show route export azure");
    for r in &routes {
        assert!(exported.contains(r), "BIRD does not list {r}:\n{exported}");
    }

    // Our account: one route installed, five refused as covering, one by the prefix-list.
    let counters = poll(
        10,
        || status.lock().unwrap().0.import,
        |counters| counters.refused_protected == 5 && counters.refused_by_policy == 1,
    )
    .await;
    assert_eq!(
        counters.refused_protected,
        5,
        "{:?}",
        status.lock().unwrap().0
    );
    assert_eq!(
        counters.refused_by_policy,
        1,
        "{:?}",
        status.lock().unwrap().0
    );
    let mut installed = vec![];
    while let Ok(ev) = ev_rx.try_recv() {
        match ev {
            BgpEvent::InstallRoute { prefix, .. } => installed.push(prefix),
            BgpEvent::WithdrawRoute { prefix } => installed.retain(|p| *p != prefix),
            _ => {}
        }
    }
    assert_eq!(installed, vec![p("10.2.0.0/24")]);
    {
        let g = status.lock().unwrap();
        assert_eq!(g.0.state, BgpState::Established, "refusing is not an error");
        assert_eq!(g.0.prefixes_received, 1);
        let rib: Vec<IpPrefix> =
            g.1.iter()
                .filter(|r| r.direction == RibDirection::Received)
                .map(|r| r.prefix)
                .collect();
        assert_eq!(rib, vec![p("10.2.0.0/24")]);
    }

    // BIRD restarts the session and sends it all again: refused again, counted again (the
    // counters outlive a session), and still only the one route.
    let _ = bird.birdc("restart azure");
    let counters = poll(
        30,
        || status.lock().unwrap().0.import,
        |counters| counters.refused_protected == 10,
    )
    .await;
    assert_eq!(
        (counters.refused_protected, counters.refused_by_policy),
        (10, 2),
        "{:?}\n{}",
        status.lock().unwrap().0,
        bird.birdc("show protocols all azure")
    );
    {
        let g = status.lock().unwrap();
        assert_eq!(g.0.state, BgpState::Established);
        assert_eq!(g.0.prefixes_received, 1);
    }
    cmd_tx.send(BgpCommand::Stop("done".into())).await.unwrap();
    drop(cmd_tx);
    timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
