//! deploy/grafana/ipsecgw-dashboard.json: it parses as a Grafana dashboard, and every metric
//! its queries name is one the daemon exports (the exporter writes every family's HELP/TYPE
//! even without samples; tests/operator.rs checks the same against a live scrape).

use ipsecgw::control::{self, ConnectionStatus, StatusReport};

#[test]
fn dashboard_parses_and_queries_only_exported_metrics() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/grafana/ipsecgw-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("dashboard file");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    assert_eq!(dash["title"], "ipsecgw");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "{} panels", panels.len());
    let exported: Vec<String> = control::render_prometheus(&StatusReport {
        connections: vec![ConnectionStatus::down("gw")],
        ..Default::default()
    })
    .lines()
    .filter_map(|l| l.strip_prefix("# TYPE "))
    .filter_map(|l| l.split_whitespace().next())
    .map(str::to_string)
    .collect();
    let re = regex::Regex::new(r"ipsecgw_[a-z_]+").unwrap();
    let mut queried = 0;
    for p in panels {
        assert!(p["title"].is_string() && p["gridPos"].is_object(), "{p}");
        let targets = p["targets"]
            .as_array()
            .expect("every panel queries something");
        assert!(!targets.is_empty(), "{p}");
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            let names: Vec<&str> = re.find_iter(expr).map(|m| m.as_str()).collect();
            assert!(!names.is_empty(), "query names no ipsecgw metric: {expr}");
            for n in names {
                assert!(
                    exported.contains(&n.to_string()),
                    "panel {:?} queries {n}, which the daemon does not export ({exported:?})",
                    p["title"]
                );
                queried += 1;
            }
        }
    }
    // The issue's list: up/down, throughput per SA, drops by reason, rekeys, BGP prefixes.
    for must in [
        "ipsecgw_connection_up",
        "ipsecgw_child_sa_bytes_total",
        "ipsecgw_drops_total",
        "ipsecgw_rekeys_total",
        "ipsecgw_bgp_prefixes",
    ] {
        assert!(text.contains(must), "dashboard lacks {must}");
    }
    assert!(queried >= 10);
}
