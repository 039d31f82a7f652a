//! `ipsecgw demo` as a user runs it: it must bring up IKE, ESP and BGP between two gateways,
//! ping across, print both status tables and a throughput figure, and leave nothing behind.

mod common;
use common::*;
use std::process::Command;

#[test]
fn demo_runs_and_cleans_up() {
    if !netns_env_ok(&[]) {
        return;
    }
    let child = Command::new(env!("CARGO_BIN_EXE_ipsecgw"))
        .arg("demo")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run demo");
    let pid = child.id();
    let out = child.wait_with_output().expect("demo exit");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{text}\n{err}");
    for want in [
        "tunnel and BGP up",
        "bytes from 10.10.1.1",
        "0% packet loss",
        "Mbit/s",
        "established",
        "10.10.1.0/24",
        "cleaning up",
        "demo OK",
    ] {
        assert!(text.contains(want), "demo output lacks {want:?}:\n{text}");
    }
    // Nothing left of this demo (named by its pid): no namespaces, no gateway processes.
    let ns = must("ip netns list");
    assert!(
        !ns.contains(&format!("-{pid}")),
        "namespaces left behind: {ns}"
    );
    let procs = sh(&format!("pgrep -af 'ipsecgw-dem[o]-.*-{pid}'"));
    assert!(
        String::from_utf8_lossy(&procs.stdout).trim().is_empty(),
        "processes left behind"
    );
}

/// Ctrl-C in the middle (SIGINT to the whole process group, as a terminal sends it): the demo
/// and both gateways stop, and nothing is left behind.
#[test]
fn demo_ctrl_c_cleans_up() {
    use std::os::unix::process::CommandExt;
    if !netns_env_ok(&[]) {
        return;
    }
    let child = Command::new(env!("CARGO_BIN_EXE_ipsecgw"))
        .arg("demo")
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start demo");
    let pid = child.id();
    // Wait until its namespaces exist, so there is something to clean up.
    let ns = format!("ipsecgw-demo-left-{pid}");
    let seen = wait_for(std::time::Duration::from_secs(10), || {
        must("ip netns list").contains(&ns).then_some(())
    });
    assert!(seen.is_some(), "demo never created {ns}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    unsafe { libc::kill(-(pid as i32), libc::SIGINT) };
    let out = child.wait_with_output().expect("demo exit");
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ns_list = must("ip netns list");
    assert!(
        !ns_list.contains(&format!("-{pid}")),
        "namespaces left behind: {ns_list}"
    );
    let procs = sh(&format!("pgrep -af 'ipsecgw-dem[o]-.*-{pid}'"));
    assert!(
        String::from_utf8_lossy(&procs.stdout).trim().is_empty(),
        "processes left behind"
    );
}
