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
    let out = Command::new(env!("CARGO_BIN_EXE_ipsecgw"))
        .arg("demo")
        .output()
        .expect("run demo");
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
    // Nothing left: no namespaces, no gateway processes of the demo.
    let ns = must("ip netns list");
    assert!(!ns.contains("ipsecgw-demo"), "namespaces left behind: {ns}");
    let procs = sh("pgrep -af 'ipsecgw-dem[o]-'");
    assert!(
        String::from_utf8_lossy(&procs.stdout).trim().is_empty(),
        "processes left behind"
    );
}
