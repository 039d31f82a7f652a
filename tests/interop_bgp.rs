//! eBGP over the tunnel against BIRD 2, as in the reference deployment: ipsecgw (AS 65021,
//! speaking from its tunnel address 10.2.30.125) on the left; strongSwan (kernel-libipsec)
//! plus BIRD (AS 65515 at 10.10.30.254) on the right. Assertions use BIRD's own view
//! (`birdc show protocols`, `show route`) and the kernel's routing table.
//!
//! BIRD also announces routes a careless gateway would install and so route its own IKE and
//! ESP into the tunnel (128.0.0.0/1, a host route and a more-specific of strongSwan's
//! underlay address), and routes our import list does not permit: none may reach the kernel,
//! and the tunnel must not notice.

mod common;
use common::*;
use std::time::Duration;

const GW_TUNNEL_BGP: &str = r#"
[connection.tunnel]
interface = "ipsec30"
address = "10.2.30.125/32"
mtu = 1400
routes = ["10.10.30.254/32"]

[connection.bgp]
local_as = 65021
peer_as = 65515
peer_address = "10.10.30.254"
local_address = "10.2.30.125"
multihop = 5
hold_time = "30s"
connect_retry = "1s"
# 192.168.99.0/24 is a network the export prefix-list must keep in.
networks = ["10.1.0.0/24", "192.168.99.0/24"]
export = ["10.1.0.0/24"]
# BIRD's LAN; the covering routes are permitted here on purpose: they are refused anyway.
import = ["10.2.0.0/16 le 24", "128.0.0.0/1", "192.0.2.0/24 le 32"]
import_local_pref = 200
# learned routes prefer the LAN address as source (BIRD's krt_prefsrc)
route_source = "10.1.0.1"
"#;

fn bird_conf(lab: &Lab) -> String {
    let log = lab.side_dir(Side::Right).join("bird.log");
    format!(
        r#"log "{log}" all;
router id 10.10.30.254;
protocol device {{ scan time 2; }}
# BIRD resolves the multihop next hop through this mirror of the kernel's /32.
protocol static tunnel_peer {{ ipv4; route 10.2.30.125/32 via "ipsec0"; }}
protocol static lan {{ ipv4; route 10.2.0.0/24 via "lan0"; }}
# Never to be installed by ipsecgw: they cover strongSwan's underlay address 192.0.2.2
# (recursive routing), or the import list does not permit them.
protocol static hostile {{
    ipv4;
    route 128.0.0.0/1 via "lan0";
    route 192.0.2.2/32 via "lan0";
    route 192.0.2.0/25 via "lan0";
    route 0.0.0.0/1 via "lan0";
    route 10.99.0.0/16 via "lan0";
}}
protocol kernel {{
    scan time 2;
    ipv4 {{
        import none;
        export filter {{ if source = RTS_BGP then {{ krt_prefsrc = 10.2.0.1; accept; }} reject; }};
    }};
}}
protocol bgp ipsecgw {{
    local 10.10.30.254 as 65515;
    neighbor 10.2.30.125 as 65021;
    multihop 255;
    connect delay time 1;
    connect retry time 2;
    error wait time 1, 5;
    hold time 30;
    keepalive time 10;
    ipv4 {{ import all; export where proto = "lan" || proto = "hostile"; next hop self; gateway recursive; }};
}}
"#,
        log = log.display()
    )
}

fn start_right(lab: &mut Lab) -> u32 {
    let swan = SwanConn::new(Side::Right);
    let pid = lab.start_charon(Side::Right, &swan.render());
    let ok = wait_for(Duration::from_secs(5), || {
        lab.exec(
            Side::Right,
            "ip route replace 10.2.30.125/32 dev ipsec0 src 10.10.30.254",
        )
        .status
        .success()
        .then_some(())
    });
    assert!(ok.is_some(), "cannot route via strongSwan's ipsec0");
    pid
}

fn kernel_route(lab: &Lab) -> String {
    String::from_utf8_lossy(&lab.exec(Side::Left, "ip route show 10.2.0.0/24").stdout).into_owned()
}

#[test]
fn bgp_over_tunnel_with_bird() {
    if !netns_env_ok(&["swanctl", "/usr/lib/ipsec/charon", "bird", "birdc"]) {
        return;
    }
    let mut lab = Lab::new("bgp-bird");
    must(&format!(
        "ip -n {} addr add 10.10.30.254/32 dev lo",
        lab.ns(Side::Right)
    ));
    let charon = start_right(&mut lab);
    let bird_cfg = bird_conf(&lab);
    lab.start_bird(Side::Right, &bird_cfg);

    let mut gw = GwConf::new(Side::Left);
    gw.start_action = "start";
    gw.extra = GW_TUNNEL_BGP;
    let cfg = gw.render(&lab);
    let gw_pid = lab.start_ipsecgw(Side::Left, &cfg);

    // The session is Established within seconds, in BIRD's own words.
    let est = wait_for(Duration::from_secs(30), || {
        lab.birdc(Side::Right, "show protocols ipsecgw")
            .contains("Established")
            .then_some(())
    });
    assert!(
        est.is_some(),
        "BIRD session not Established:\n{}",
        lab.birdc(Side::Right, "show protocols all ipsecgw")
    );

    // BIRD holds our LAN prefix and nothing else of ours (192.168.99.0/24 stayed in).
    let ours = wait_for(Duration::from_secs(15), || {
        let r = lab.birdc(Side::Right, "show route protocol ipsecgw");
        r.contains("10.1.0.0/24").then_some(r)
    })
    .unwrap_or_else(|| {
        panic!(
            "BIRD did not receive 10.1.0.0/24:\n{}",
            lab.birdc(Side::Right, "show route all")
        )
    });
    assert!(
        !ours.contains("192.168.99.0"),
        "the export prefix-list let 192.168.99.0/24 out:\n{ours}"
    );
    let n = ours
        .lines()
        .filter(|l| l.contains('/') && l.contains("unicast"))
        .count();
    assert_eq!(n, 1, "BIRD holds other prefixes from us:\n{ours}");
    let all = lab.birdc(Side::Right, "show route all 10.1.0.0/24");
    assert!(all.contains("BGP.as_path: 65021"), "{all}");

    // We hold BIRD's prefix in the kernel, via the TUN device, with local-preference 200.
    let r = wait_for(Duration::from_secs(15), || {
        let r = kernel_route(&lab);
        (r.contains("dev ipsec30") && r.contains("proto 169") && r.contains("src 10.1.0.1"))
            .then_some(r)
    });
    assert!(
        r.is_some(),
        "10.2.0.0/24 not installed via ipsec30: {}",
        kernel_route(&lab)
    );
    let rib = lab.ipsecgw_cli(Side::Left, "bgp --json");
    let rib: serde_json::Value = serde_json::from_slice(&rib.stdout).expect("bgp --json");
    let learned = rib["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["prefix"] == "10.2.0.0/24")
        .cloned();
    let learned = learned.unwrap_or_else(|| panic!("10.2.0.0/24 not in our RIB: {rib}"));
    assert_eq!(learned["local_pref"], 200, "{learned}");
    assert_eq!(learned["as_path"], serde_json::json!([65515]));
    let st = lab.status_json(Side::Left);
    assert_eq!(st["connections"][0]["bgp"]["state"], "established");
    assert_eq!(st["connections"][0]["bgp"]["prefixes_received"], 1);

    // BIRD says it sent us all six of its routes; we took one. The three covering
    // strongSwan's address were refused and logged as such, the other two by the import list.
    let bird_view = lab.birdc(Side::Right, "show protocols all ipsecgw");
    assert!(bird_view.contains("6 exported"), "{bird_view}");
    let ours = String::from_utf8_lossy(&lab.exec(Side::Left, "ip route show proto 169").stdout)
        .into_owned();
    for hostile in [
        "128.0.0.0/1",
        "192.0.2.2 ",
        "192.0.2.0/25",
        "0.0.0.0/1",
        "10.99.0.0/16",
    ] {
        assert!(!ours.contains(hostile), "{hostile} was installed:\n{ours}");
    }
    let log = lab.log_of(gw_pid);
    let refusal = log
        .lines()
        .find(|l| l.contains("covering an IKE peer or local underlay address"))
        .unwrap_or_else(|| panic!("no refusal in the log:\n{log}"));
    assert!(refusal.contains("refused 3 route(s)"), "{refusal}");
    for r in ["128.0.0.0/1", "192.0.2.2/32", "192.0.2.0/25"] {
        assert!(
            refusal.contains(&format!("{r} (covers 192.0.2.")),
            "{refusal}"
        );
    }

    // LAN to LAN follows the learned route (BIRD installed ours on the right).
    let ping = wait_for(Duration::from_secs(15), || {
        lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 1)
            .then_some(())
    });
    assert!(ping.is_some(), "no LAN-to-LAN ping over the BGP route");
    assert!(lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 3));

    // strongSwan dies without a word (SIGKILL): DPD finds the tunnel dead and our routes go
    // within the BGP hold time.
    lab.kill9(charon);
    let t0 = std::time::Instant::now();
    let gone = wait_for(Duration::from_secs(40), || {
        (!kernel_route(&lab).contains("ipsec30")).then_some(())
    });
    assert!(
        gone.is_some(),
        "learned route still there after the tunnel died: {}",
        kernel_route(&lab)
    );
    let peer = String::from_utf8_lossy(&lab.exec(Side::Left, "ip route show 10.10.30.254").stdout)
        .into_owned();
    assert!(
        !peer.contains("ipsec30"),
        "static /32 to the BGP peer still there: {peer}"
    );
    eprintln!(
        "routes withdrawn {:.1}s after strongSwan was killed (hold time 30s)",
        t0.elapsed().as_secs_f32()
    );

    // strongSwan comes back: the tunnel, the session and the routes come back by themselves.
    start_right(&mut lab);
    let back = wait_for(Duration::from_secs(90), || {
        let r = kernel_route(&lab);
        (r.contains("dev ipsec30")
            && lab
                .birdc(Side::Right, "show protocols ipsecgw")
                .contains("Established"))
        .then_some(())
    });
    assert!(
        back.is_some(),
        "routes did not come back with the tunnel: {}\n{}",
        kernel_route(&lab),
        lab.list_sas(Side::Right)
    );
    let ping = wait_for(Duration::from_secs(15), || {
        lab.ping(Side::Left, "10.1.0.1", "10.2.0.1", 1)
            .then_some(())
    });
    assert!(
        ping.is_some(),
        "no LAN-to-LAN ping after the tunnel came back"
    );
}
