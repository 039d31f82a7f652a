//! Two ipsecgw in network namespaces with a NAT in front of the initiator that changes its
//! port mapping mid-session (RFC 7296 2.23). The responder's IKE SA follows the next
//! authenticated request from the new port, and so must its ESP: traffic keeps flowing.
//!
//! The NAT is stateless nftables port rewriting in the initiator's namespace (UDP 4500 leaves
//! as 40000, and 40000 comes back as 4500); changing the mapping swaps the rules, after which
//! packets to the old port are lost, as behind a real NAT that forgot the mapping.

mod common;
use common::*;
use std::time::Duration;

/// Left's UDP 4500 appears on the wire as `port`.
fn nat_rules(port: u16) -> String {
    format!(
        r#"table ip natsim {{
  chain out {{
    type filter hook output priority raw; policy accept;
    oifname "ul-l" udp sport 4500 udp sport set {port} notrack
  }}
  chain pre {{
    type filter hook prerouting priority raw; policy accept;
    iifname "ul-l" udp dport {port} udp dport set 4500 notrack
  }}
}}
"#
    )
}

fn set_nat(lab: &Lab, port: u16) {
    let _ = lab.exec(Side::Left, "nft delete table ip natsim");
    let path = lab.dir.join(format!("nat-{port}.nft"));
    std::fs::write(&path, nat_rules(port)).expect("write nft rules");
    let o = lab.exec(Side::Left, &format!("nft -f {}", path.display()));
    assert!(
        o.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn esp_follows_the_peer_when_its_nat_mapping_changes() {
    if !netns_env_ok(&["nft"]) {
        return;
    }
    let mut lab = Lab::new("natrebind");
    set_nat(&lab, 40000);
    let fast_dpd = |c: String| c.replace("dpd_delay = \"10s\"", "dpd_delay = \"2s\"");
    let cfg = fast_dpd(GwConf::tunneled(Side::Right).render(&lab));
    lab.start_ipsecgw(Side::Right, &cfg);
    let mut l = GwConf::tunneled(Side::Left);
    // A NAT the responder can see: the initiator floats to 4500, where the NAT rewrites.
    l.encap = "always";
    let cfg = fast_dpd(l.render(&lab));
    lab.start_ipsecgw(Side::Left, &cfg);

    let o = lab.ipsecgw_cli(Side::Left, "initiate gw");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let up = wait_for(Duration::from_secs(15), || {
        let c = lab.conn(Side::Right);
        (c["state"] == "established" && !c["children"].as_array()?.is_empty()).then_some(c)
    })
    .unwrap_or_else(|| panic!("never established: {}", lab.conn(Side::Right)));
    assert_eq!(up["ike"]["remote"], "192.0.2.1:40000", "{up}");
    assert_eq!(up["ike"]["nat_detected"], true, "{up}");
    assert_eq!(up["children"][0]["encap"], "udp", "{up}");
    assert!(
        lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 3),
        "no traffic through the NAT"
    );

    // The NAT forgets the mapping: from now on left's 4500 is 40001 on the wire.
    set_nat(&lab, 40001);
    // Left hears nothing back, sends DPD from the new port, right follows it.
    let flowing = wait_for(Duration::from_secs(30), || {
        lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 1)
            .then_some(())
    });
    assert!(
        flowing.is_some(),
        "traffic did not recover after the NAT mapping changed: {}",
        lab.conn(Side::Right)
    );
    assert!(
        lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 3),
        "traffic is not stable after the move"
    );
    let moved = lab.conn(Side::Right);
    assert_eq!(moved["ike"]["remote"], "192.0.2.1:40001", "{moved}");
    assert_eq!(
        moved["children"][0]["spi_in"], up["children"][0]["spi_in"],
        "the same CHILD SA carries the traffic (it moved, it was not replaced)"
    );
}
