//! Interop with a real BIRD 2 (the lab's peer) over loopback: BIRD as AS65515 on 127.0.0.3,
//! our session as AS65021 on 127.0.0.1, both on one high port. Needs the `bird`/`birdc`
//! binaries (Debian: bird2); set IPSECGW_SKIP_BIRD=1 to opt out where BIRD is not installed.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipsecgw::bgp::{BgpConfig, BgpEvent, BgpState, BgpStatus};
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
    fn start(port: u16) -> Bird {
        if std::env::var_os("IPSECGW_SKIP_BIRD").is_none() {
            let found = Command::new("bird").arg("--version").output().is_ok();
            assert!(found, "`bird` (BIRD 2) is not installed: install bird2, or set IPSECGW_SKIP_BIRD=1 to skip");
        }
        let dir = std::env::temp_dir().join(format!("ipsecgw-bird-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = format!(
            r#"
log "{dir}/bird.log" all;
router id 127.0.0.3;
protocol device {{ }}
protocol static lan {{ ipv4; route 10.2.0.0/24 blackhole; route 10.2.1.0/24 blackhole; }}
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
            dir = dir.display()
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

#[tokio::test]
async fn interop_with_bird2_exchanges_routes_with_policy() {
    if std::env::var_os("IPSECGW_SKIP_BIRD").is_some() {
        eprintln!("IPSECGW_SKIP_BIRD set: BIRD interop test skipped");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bird = Bird::start(port);

    let local: IpAddr = "127.0.0.1".parse().unwrap();
    let mut cfg = BgpConfig::new(65021, 65515, local, "127.0.0.3".parse().unwrap());
    cfg.port = port;
    cfg.multihop = 5;
    cfg.connect_retry = Duration::from_secs(1);
    cfg.networks = vec![p("10.2.30.0/25"), p("192.168.77.0/24")];
    cfg.export = vec!["10.2.30.0/25".parse().unwrap()];
    cfg.import_local_pref = 200;
    let status = Arc::new(Mutex::new((
        BgpStatus {
            state: BgpState::Idle,
            prefixes_received: 0,
            prefixes_announced: 0,
            peer_as: 65515,
            peer_address: cfg.peer_address,
            peer_router_id: None,
            hold_time: None,
            uptime_secs: None,
            last_error: None,
        },
        vec![],
    )));
    let (cmd_tx, cmd_rx) = mpsc::channel(8);
    let (ev_tx, mut ev_rx) = mpsc::channel(64);
    let task = tokio::spawn(run_session(cfg, cmd_rx, ev_tx, status.clone()));
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
    let mut routes = String::new();
    for _ in 0..50 {
        routes = bird.birdc("show route all protocol azure");
        if routes.contains("10.2.30.0/25") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let mut last = String::new();
    for _ in 0..50 {
        last = bird.birdc("show protocols all azure");
        if last.contains("interop test done") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
