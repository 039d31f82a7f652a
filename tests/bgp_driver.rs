//! The tokio driver over real TCP: two `run_session` instances on 127.0.0.1 and 127.0.0.2.

use std::net::{IpAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipsecgw::bgp::{BgpConfig, BgpEvent, BgpState, BgpStatus, RibEntry};
use ipsecgw::daemon::bgp_task::{run_session, BgpCommand};
use ipsecgw::prefix::IpPrefix;
use tokio::sync::mpsc;
use tokio::time::timeout;

type Shared = Arc<Mutex<(BgpStatus, Vec<RibEntry>)>>;

fn p(s: &str) -> IpPrefix {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A port that is free on 127.0.0.1 right now (both sessions listen on it, each on its own
/// loopback address).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cfg(local: &str, peer: &str, local_as: u32, peer_as: u32, port: u16, net: &str) -> BgpConfig {
    let mut c = BgpConfig::new(local_as, peer_as, ip(local), ip(peer));
    c.port = port;
    c.connect_retry = Duration::from_millis(500);
    c.hold_time = Duration::from_secs(9);
    c.multihop = 5;
    c.networks = vec![p(net)];
    // Both ends take what the other announces (without it, RFC 8212 takes nothing).
    c.import = Some(vec!["10.0.0.0/8 le 32".parse().unwrap()]);
    c
}

struct Running {
    cmd: mpsc::Sender<BgpCommand>,
    events: mpsc::Receiver<BgpEvent>,
    status: Shared,
    task: tokio::task::JoinHandle<()>,
}

fn spawn(c: BgpConfig) -> Running {
    let status: Shared = Arc::new(Mutex::new((
        BgpStatus::idle(c.peer_as, c.peer_address),
        vec![],
    )));
    let (cmd_tx, cmd_rx) = mpsc::channel(8);
    let (ev_tx, ev_rx) = mpsc::channel(64);
    let task = tokio::spawn(run_session(c, cmd_rx, ev_tx, status.clone()));
    Running {
        cmd: cmd_tx,
        events: ev_rx,
        status,
        task,
    }
}

/// Waits (up to 15 s) for an event matching `want`, returning everything seen up to it.
async fn wait_for(r: &mut Running, want: impl Fn(&BgpEvent) -> bool) -> Vec<BgpEvent> {
    let mut seen = vec![];
    let res = timeout(Duration::from_secs(15), async {
        while let Some(ev) = r.events.recv().await {
            let hit = want(&ev);
            seen.push(ev);
            if hit {
                return;
            }
        }
    })
    .await;
    assert!(
        res.is_ok(),
        "timed out; events so far: {seen:?}; status {:?}",
        r.status.lock().unwrap().0
    );
    seen
}

async fn pair_exchanges_prefixes(b_passive: bool) {
    let port = free_port();
    let a_cfg = cfg("127.0.0.1", "127.0.0.2", 65021, 65515, port, "10.2.30.0/25");
    let mut b_cfg = cfg("127.0.0.2", "127.0.0.1", 65515, 65021, port, "10.2.0.0/24");
    b_cfg.passive = b_passive;
    let mut a = spawn(a_cfg);
    let mut b = spawn(b_cfg);
    a.cmd.send(BgpCommand::Start).await.unwrap();
    b.cmd.send(BgpCommand::Start).await.unwrap();

    let want_a = BgpEvent::InstallRoute {
        prefix: p("10.2.0.0/24"),
        next_hop: ip("127.0.0.2"),
    };
    let seen = wait_for(&mut a, |e| *e == want_a).await;
    assert!(seen.contains(&BgpEvent::Established), "{seen:?}");
    let want_b = BgpEvent::InstallRoute {
        prefix: p("10.2.30.0/25"),
        next_hop: ip("127.0.0.1"),
    };
    wait_for(&mut b, |e| *e == want_b).await;

    {
        let g = a.status.lock().unwrap();
        assert_eq!(g.0.state, BgpState::Established);
        assert_eq!((g.0.prefixes_received, g.0.prefixes_announced), (1, 1));
        assert!(g
            .1
            .iter()
            .any(|r| r.prefix == p("10.2.0.0/24") && r.best && r.local_pref == Some(100)));
    }

    // A new network on A reaches B; then A stops with a reason B can read.
    a.cmd
        .send(BgpCommand::SetNetworks(vec![
            p("10.2.30.0/25"),
            p("10.2.31.0/24"),
        ]))
        .await
        .unwrap();
    let want = BgpEvent::InstallRoute {
        prefix: p("10.2.31.0/24"),
        next_hop: ip("127.0.0.1"),
    };
    wait_for(&mut b, |e| *e == want).await;

    // B is told that 10.2.31.0/24 holds a protected address (an IKE peer): it drops the
    // route it installed, and counts it.
    b.cmd
        .send(BgpCommand::SetProtected(vec![ip("10.2.31.9")]))
        .await
        .unwrap();
    wait_for(&mut b, |e| {
        *e == BgpEvent::WithdrawRoute {
            prefix: p("10.2.31.0/24"),
        }
    })
    .await;
    assert_eq!(b.status.lock().unwrap().0.import.refused_protected, 1);
    a.cmd
        .send(BgpCommand::Stop("maintenance".into()))
        .await
        .unwrap();
    let seen = wait_for(&mut b, |e| matches!(e, BgpEvent::Down { .. })).await;
    let down = seen.last().unwrap();
    assert!(
        matches!(down, BgpEvent::Down { reason } if reason.contains("maintenance")),
        "{down:?}"
    );
    wait_for(&mut b, |e| {
        *e == BgpEvent::WithdrawRoute {
            prefix: p("10.2.30.0/25"),
        }
    })
    .await;
    wait_for(&mut a, |e| {
        *e == BgpEvent::WithdrawRoute {
            prefix: p("10.2.0.0/24"),
        }
    })
    .await;

    // Stop + Start (what the daemon does when the tunnel flaps) brings the session back.
    a.cmd.send(BgpCommand::Start).await.unwrap();
    let want_a = BgpEvent::InstallRoute {
        prefix: p("10.2.0.0/24"),
        next_hop: ip("127.0.0.2"),
    };
    wait_for(&mut a, |e| *e == want_a).await;
    assert_eq!(a.status.lock().unwrap().0.state, BgpState::Established);

    // Closing the command channel ends the task.
    drop(a.cmd);
    timeout(Duration::from_secs(5), a.task)
        .await
        .expect("task did not end")
        .unwrap();
    b.task.abort();
}

#[tokio::test]
async fn loopback_pair_active_to_passive_reaches_established_and_exchanges_prefixes() {
    pair_exchanges_prefixes(true).await;
}

#[tokio::test]
async fn loopback_pair_both_active_resolves_collisions() {
    pair_exchanges_prefixes(false).await;
}

#[tokio::test]
async fn unconfigured_local_address_is_retried_not_fatal() {
    // 192.0.2.77 is on no interface (like the tunnel address before the tunnel exists).
    let port = free_port();
    let c = cfg(
        "192.0.2.77",
        "127.0.0.2",
        65021,
        65515,
        port,
        "10.2.30.0/25",
    );
    let r = spawn(c);
    r.cmd.send(BgpCommand::Start).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!r.task.is_finished(), "the task must keep retrying");
    let st = r.status.lock().unwrap().0.clone();
    assert_ne!(st.state, BgpState::Established);
    let e = st.last_error.unwrap_or_default();
    assert!(
        e.contains("192.0.2.77"),
        "last_error should name the address: {e}"
    );
    r.task.abort();
}
