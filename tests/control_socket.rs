//! Control socket server/client, status rendering and Prometheus metrics.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[path = "common/schema.rs"]
mod schema;

use ipsecgw::control::{
    self, BgpReport, BgpState, BgpSummary, ChildSaStatus, ChildState, Command, ConnCounters,
    ConnState, ConnectionStatus, EspEncap, IkeSaStatus, LastErrorReport, Request, Response, RibRow,
    RouteDirection, StatusReport,
};

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("ipsecgw-ctl-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sample_report() -> StatusReport {
    let mut drops = BTreeMap::new();
    drops.insert("replay".to_string(), 3);
    drops.insert("auth".to_string(), 1);
    StatusReport {
        schema: control::STATUS_SCHEMA.into(),
        connections: vec![
            ConnectionStatus {
                name: "azure".into(),
                state: ConnState::Established,
                peer: Some("192.0.2.2:4500".into()),
                ike: Some(IkeSaStatus {
                    spi_i: "3f1c2b3a4d5e6f70".into(),
                    spi_r: "9a0b1c2d3e4f5061".into(),
                    local: "192.0.2.1:4500".parse().unwrap(),
                    remote: "192.0.2.2:4500".parse().unwrap(),
                    encr: "AES_CBC_256".into(),
                    integ: Some("HMAC_SHA1_96".into()),
                    prf: "PRF_HMAC_SHA1".into(),
                    dh: "MODP_1024".into(),
                    nat_detected: true,
                    established_secs: 42,
                    rekey_in_secs: 14000,
                    initiator: true,
                    local_id: Some("66.198.12.106".into()),
                    remote_id: Some("52.168.162.84".into()),
                    fragmentation: Default::default(),
                }),
                children: vec![ChildSaStatus {
                    name: "vti".into(),
                    state: ChildState::Installed,
                    spi_in: "c4861113".into(),
                    spi_out: "976df49d".into(),
                    encr: "AES_CBC_256".into(),
                    integ: Some("HMAC_SHA1_96".into()),
                    encap: EspEncap::Udp,
                    bytes_in: 1500,
                    bytes_out: 3000,
                    packets_in: 1,
                    packets_out: 2,
                    replay_drops: 3,
                    auth_failures: 1,
                    local_ts: vec!["0.0.0.0/0".into()],
                    remote_ts: vec!["0.0.0.0/0".into()],
                    dh: None,
                    esn: false,
                    established_secs: 40,
                    rekey_in_secs: 3300,
                }],
                bgp: Some(BgpSummary {
                    state: BgpState::Established,
                    prefixes_received: 1,
                    prefixes_announced: 1,
                    peer_address: Some("10.10.30.254".parse().unwrap()),
                    local_as: 65021,
                    peer_as: 65515,
                    uptime_secs: Some(30),
                    last_error: None,
                }),
                counters: ConnCounters {
                    bytes_in: 10_000,
                    bytes_out: 20_000,
                    packets_in: 10,
                    packets_out: 20,
                    drops,
                    ike_rekeys: 2,
                    child_rekeys: 5,
                    dpd_failures: 0,
                },
                in_flight: None,
                next_attempt_secs: None,
                last_error: None,
            },
            ConnectionStatus {
                // Trying and failing: where it is, and why the last attempt failed.
                next_attempt_secs: Some(25),
                last_error: Some(LastErrorReport {
                    kind: "peer_not_responding".into(),
                    message:
                        "peer 192.0.2.9:500 not responding (5 retransmits of IKE_SA_INIT exhausted)"
                            .into(),
                    secs_ago: 5,
                }),
                ..ConnectionStatus::down("branch \"b\"")
            },
        ],
        drops: BTreeMap::from([("ike_malformed".to_string(), 2)]),
        ike_engine: Default::default(),
    }
}

/// Starts a server with `handler` on a socket inside a not-yet-existing directory.
async fn start_server(dir: &TempDir, handler: Arc<dyn control::ControlHandler>) -> PathBuf {
    let path = dir.0.join("run").join("control.sock");
    let listener = control::bind(&path).expect("bind");
    tokio::spawn(control::serve_listener(listener, handler));
    path
}

fn fake_handler() -> Arc<dyn control::ControlHandler> {
    Arc::new(|req: Request| async move {
        match req.command {
            Command::Status => Response::ok(&sample_report()),
            Command::Initiate { name } if name == "azure" => Response::ok(&control::ActionResult {
                message: format!("initiated {name}"),
            }),
            Command::Initiate { name } => {
                Response::error(format!("no connection named \"{name}\""))
            }
            other => Response::error(format!("unexpected {other:?}")),
        }
    })
}

/// Sends raw bytes and returns the parsed response line.
fn raw_exchange(path: &Path, bytes: &[u8]) -> Response {
    let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer (and close) before reading everything we send; ignore EPIPE.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(
        out.ends_with('\n'),
        "response not newline-terminated: {out:?}"
    );
    serde_json::from_str(&out).unwrap()
}

async fn client(path: &Path, req: Request) -> Result<Response, control::ClientError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || control::request(&path, &req))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_round_trip_and_actions() {
    let dir = TempDir::new();
    let path = start_server(&dir, fake_handler()).await;

    let resp = client(&path, Request::new(Command::Status)).await.unwrap();
    assert!(resp.ok);
    let report: StatusReport = resp.into_result().unwrap();
    assert_eq!(report, sample_report());

    let resp = client(
        &path,
        Request::new(Command::Initiate {
            name: "azure".into(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        resp.into_result::<control::ActionResult>().unwrap().message,
        "initiated azure"
    );
    let resp = client(
        &path,
        Request::new(Command::Initiate {
            name: "nope".into(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        resp.into_result::<control::ActionResult>(),
        Err(control::ResponseError::Refused(
            "no connection named \"nope\"".into()
        ))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_and_directory_modes() {
    let dir = TempDir::new();
    let path = start_server(&dir, fake_handler()).await;
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "socket must be root-only"
    );
    let dir_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700, "created socket directory must be private");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_error_responses() {
    let dir = TempDir::new();
    let path = start_server(&dir, fake_handler()).await;
    let p = path.clone();
    let (bad_json, bad_version, no_version, unknown_cmd, huge, binary) =
        tokio::task::spawn_blocking(move || {
            (
                raw_exchange(&p, b"{not json\n"),
                raw_exchange(&p, b"{\"version\":7,\"command\":\"status\"}\n"),
                raw_exchange(&p, b"{\"command\":\"status\"}\n"),
                raw_exchange(&p, b"{\"version\":1,\"command\":\"selfdestruct\"}\n"),
                raw_exchange(&p, &vec![b'x'; control::MAX_REQUEST_BYTES + 10_000]),
                raw_exchange(&p, b"\xff\xfe\n"),
            )
        })
        .await
        .unwrap();
    for r in [
        &bad_json,
        &bad_version,
        &no_version,
        &unknown_cmd,
        &huge,
        &binary,
    ] {
        assert!(!r.ok && r.result.is_none(), "{r:?}");
        assert_eq!(r.version, 1);
    }
    assert!(
        bad_json
            .error
            .as_deref()
            .unwrap()
            .contains("not valid JSON"),
        "{bad_json:?}"
    );
    assert!(
        bad_version
            .error
            .as_deref()
            .unwrap()
            .contains("unsupported control protocol version 7"),
        "{bad_version:?}"
    );
    assert!(
        no_version
            .error
            .as_deref()
            .unwrap()
            .contains("no \"version\""),
        "{no_version:?}"
    );
    assert!(
        unknown_cmd
            .error
            .as_deref()
            .unwrap()
            .contains("selfdestruct"),
        "{unknown_cmd:?}"
    );
    assert!(
        huge.error.as_deref().unwrap().contains("larger than"),
        "{huge:?}"
    );
    assert!(
        binary.error.as_deref().unwrap().contains("UTF-8"),
        "{binary:?}"
    );

    // The server survived all of that.
    let resp = client(&path, Request::new(Command::Status)).await.unwrap();
    assert!(resp.ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_socket_replaced_live_socket_refused() {
    let dir = TempDir::new();
    let path = dir.0.join("ctl.sock");
    // A socket file left behind by a crashed daemon: bound, then the listener is dropped.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let listener = control::bind(&path).expect("stale socket must be replaced");
    tokio::spawn(control::serve_listener(listener, fake_handler()));

    let err = control::bind(&path).expect_err("a live socket must not be stolen");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains("another ipsecgw"), "{err}");

    let regular = dir.0.join("not-a-socket");
    std::fs::write(&regular, b"data").unwrap();
    assert!(control::bind(&regular).is_err());
    assert_eq!(
        std::fs::read(&regular).unwrap(),
        b"data",
        "a regular file must not be deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_handler_forwards_requests() {
    let dir = TempDir::new();
    let (handler, mut calls) = control::channel_handler(4);
    let path = start_server(&dir, handler).await;
    tokio::spawn(async move {
        while let Some(call) = calls.recv().await {
            let answer = match call.request.command {
                Command::Rekey { name, ike } => Response::ok(&control::ActionResult {
                    message: format!("{name} ike={ike}"),
                }),
                _ => Response::error("unsupported"),
            };
            let _ = call.reply.send(answer);
        }
    });
    let resp = client(
        &path,
        Request::new(Command::Rekey {
            name: "azure".into(),
            ike: true,
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        resp.into_result::<control::ActionResult>().unwrap().message,
        "azure ike=true"
    );
}

/// A waiting action streams progress lines before its answer; the client hands them over in
/// order as they arrive, and a plain request to the same server gets just the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_progress_then_answer() {
    let dir = TempDir::new();
    let (handler, mut calls) = control::channel_handler(4);
    let path = start_server(&dir, handler).await;
    tokio::spawn(async move {
        while let Some(call) = calls.recv().await {
            if let Some(p) = &call.progress {
                for step in ["sending IKE_SA_INIT", "sending IKE_AUTH"] {
                    let _ = p.send(step.to_string());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let _ = call
                .reply
                .send(Response::error("gw: authentication failed"));
        }
    });
    let p = path.clone();
    let (lines, resp) = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        let req = Request::waiting(Command::Initiate { name: "gw".into() }, 5);
        let resp = control::request_streaming(&p, &req, |l| lines.push(l.to_string()));
        (lines, resp)
    })
    .await
    .unwrap();
    assert_eq!(lines, ["sending IKE_SA_INIT", "sending IKE_AUTH"]);
    let resp = resp.unwrap();
    assert!(!resp.ok);
    assert_eq!(resp.error.as_deref(), Some("gw: authentication failed"));
    // Without wait_secs there is no progress channel and no progress line.
    let plain = client(&path, Request::new(Command::Initiate { name: "gw".into() }))
        .await
        .unwrap();
    assert!(plain.progress.is_none() && !plain.ok);
}

#[test]
fn client_says_when_daemon_is_not_running() {
    let dir = TempDir::new();
    let path = dir.0.join("missing.sock");
    let err = control::request(&path, &Request::new(Command::Status)).unwrap_err();
    assert!(matches!(&err, control::ClientError::NotRunning(p) if p == &path));
    assert_eq!(
        err.to_string(),
        format!("cannot connect to {}: is ipsecgw running?", path.display())
    );
}

/// Every field the status and BGP types can produce, optional ones included, is in the
/// versioned schemas of docs/schema (the real binary's output is checked in tests/operator*).
#[test]
fn status_and_bgp_documents_match_their_schemas() {
    let mut report = sample_report();
    let mut trying = ConnectionStatus::down("cisco");
    trying.state = ConnState::Connecting;
    trying.peer = Some("192.0.2.9:500".into());
    trying.in_flight = Some(control::InFlightReport {
        exchange: "IKE_SA_INIT".into(),
        retransmits: 2,
        next_retransmit_secs: 7,
    });
    trying.next_attempt_secs = Some(30);
    trying.last_error = Some(control::LastErrorReport {
        kind: "authentication_failed".into(),
        message: "authentication failed: peer sent AUTHENTICATION_FAILED".into(),
        secs_ago: 4,
    });
    report.connections.push(trying);
    let doc = serde_json::to_value(&report).unwrap();
    assert_eq!(doc["schema"], control::STATUS_SCHEMA);
    schema::assert_valid("status-v1.json", &doc);
    let mut broken = doc.clone();
    broken["connections"][0]["state"] = "sleeping".into();
    assert!(!schema::validate(&schema::load("status-v1.json"), &broken).is_empty());

    let bgp = BgpReport::new(vec![RibRow {
        connection: "azure".into(),
        prefix: "10.10.0.0/16".parse().unwrap(),
        next_hop: "10.10.30.254".parse().unwrap(),
        as_path: vec![65515],
        local_pref: 200,
        med: Some(10),
        best: true,
        direction: RouteDirection::Received,
    }]);
    let doc = serde_json::to_value(&bgp).unwrap();
    assert_eq!(doc["schema"], control::BGP_SCHEMA);
    schema::assert_valid("bgp-v1.json", &doc);
}

#[test]
fn render_table_shows_names_spis_and_counters() {
    let text = control::render_table(&sample_report());
    for needle in [
        "azure: ESTABLISHED",
        "3f1c2b3a4d5e6f70_i*",
        "9a0b1c2d3e4f5061_r",
        "192.0.2.1:4500",
        "AES_CBC_256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        "NAT detected",
        "rekeying in 3h53m",
        "vti: INSTALLED, TUNNEL-in-UDP, ESP SPIs: c4861113_i 976df49d_o",
        "1.5 KiB",
        "3 replay, 1 auth",
        "bgp: ESTABLISHED with 10.10.30.254 AS65515",
        "1 prefixes received, 1 announced",
        "branch \"b\": DOWN",
        "1 auth, 3 replay",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert_eq!(
        control::render_table(&StatusReport::default()),
        "no connections configured\n"
    );
}

#[test]
fn render_bgp_table_marks_best() {
    let row = |prefix: &str, best: bool, direction| RibRow {
        connection: "azure".into(),
        prefix: prefix.parse().unwrap(),
        next_hop: "10.10.30.254".parse().unwrap(),
        as_path: vec![65515, 12076],
        local_pref: 200,
        med: None,
        best,
        direction,
    };
    let report = BgpReport {
        schema: control::BGP_SCHEMA.into(),
        routes: vec![
            row("10.2.30.0/25", false, RouteDirection::Announced),
            row("10.10.0.0/16", true, RouteDirection::Received),
            row("10.11.0.0/16", false, RouteDirection::Received),
        ],
    };
    let text = control::render_bgp_table(&report);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("Prefix") && lines[0].contains("AS path"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("*>")
            && lines[1].contains("10.10.0.0/16")
            && lines[1].contains("65515 12076"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("* ") && lines[2].contains("10.11.0.0/16"),
        "{text}"
    );
    assert!(
        lines[3].starts_with(">>") && lines[3].contains("10.2.30.0/25"),
        "{text}"
    );
    assert!(lines[1].contains(" 200 "), "{text}");
}

/// One parsed sample line: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Parses `name{k="v",...} value` strictly; returns (name, labels, value).
fn parse_sample(line: &str) -> Sample {
    let (series, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("no value: {line}"));
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("bad value: {line}"));
    let (name, labels) = match series.split_once('{') {
        None => (series, Vec::new()),
        Some((name, rest)) => {
            let body = rest
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("unclosed labels: {line}"));
            let mut labels = Vec::new();
            let mut chars = body.chars().peekable();
            while chars.peek().is_some() {
                let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                assert!(
                    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "bad label: {line}"
                );
                assert_eq!(chars.next(), Some('"'), "label value not quoted: {line}");
                let mut val = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => val.push(
                            chars
                                .next()
                                .unwrap_or_else(|| panic!("dangling escape: {line}")),
                        ),
                        Some('"') => break,
                        Some(c) => val.push(c),
                        None => panic!("unterminated label value: {line}"),
                    }
                }
                labels.push((key, val));
                match chars.next() {
                    Some(',') | None => {}
                    Some(c) => panic!("unexpected {c:?} after label: {line}"),
                }
            }
            (name, labels)
        }
    };
    assert!(
        name.starts_with("ipsecgw_") && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "bad name: {line}"
    );
    (name.to_string(), labels, value)
}

fn check_exposition(text: &str) -> Vec<Sample> {
    let mut help = HashMap::new();
    let mut types = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, doc) = rest.split_once(' ').unwrap();
            assert!(!doc.is_empty());
            assert!(
                help.insert(name.to_string(), ()).is_none(),
                "duplicate HELP for {name}"
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(matches!(kind, "gauge" | "counter"), "{line}");
            assert_eq!(
                kind == "counter",
                name.ends_with("_total"),
                "counters (and only they) end in _total: {line}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "duplicate TYPE for {name}"
            );
        } else {
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "unexpected line {line:?}"
            );
            let sample = parse_sample(line);
            assert!(
                help.contains_key(&sample.0) && types.contains_key(&sample.0),
                "sample before HELP/TYPE: {line}"
            );
            samples.push(sample);
        }
    }
    assert_eq!(help.len(), types.len());
    samples
}

fn value_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
        .2
}

#[test]
fn prometheus_text_is_well_formed() {
    let text = control::render_prometheus(&sample_report());
    let samples = check_exposition(&text);
    let azure = ("connection", "azure");
    assert_eq!(value_of(&samples, "ipsecgw_connection_up", &[azure]), 1.0);
    assert_eq!(
        value_of(
            &samples,
            "ipsecgw_connection_up",
            &[("connection", "branch \"b\"")]
        ),
        0.0
    );
    assert_eq!(
        value_of(
            &samples,
            "ipsecgw_ike_sa_state",
            &[azure, ("state", "established")]
        ),
        1.0
    );
    assert_eq!(
        value_of(
            &samples,
            "ipsecgw_ike_sa_state",
            &[azure, ("state", "down")]
        ),
        0.0
    );
    assert_eq!(
        value_of(
            &samples,
            "ipsecgw_child_sa_installed",
            &[azure, ("child", "vti")]
        ),
        1.0
    );
    assert_eq!(
        value_of(
            &samples,
            "ipsecgw_bytes_total",
            &[azure, ("direction", "in")]
        ),
        10_000.0
    );
    assert_eq!(
        value_of(
            &samples,
            "ipsecgw_bytes_total",
            &[azure, ("direction", "out")]
        ),
        20_000.0
    );
    assert_eq!(
        value_of(
            &samples,
            "ipsecgw_packets_total",
            &[azure, ("direction", "out")]
        ),
        20.0
    );
    assert_eq!(
        value_of(
            &samples,
            "ipsecgw_drops_total",
            &[azure, ("reason", "replay")]
        ),
        3.0
    );
    assert_eq!(
        value_of(&samples, "ipsecgw_rekeys_total", &[azure, ("sa", "child")]),
        5.0
    );
    assert_eq!(
        value_of(&samples, "ipsecgw_dpd_failures_total", &[azure]),
        0.0
    );
    assert_eq!(value_of(&samples, "ipsecgw_bgp_session_up", &[azure]), 1.0);
    assert_eq!(
        value_of(
            &samples,
            "ipsecgw_bgp_prefixes",
            &[azure, ("direction", "received")]
        ),
        1.0
    );
    assert_eq!(
        value_of(
            &samples,
            "ipsecgw_bgp_prefixes",
            &[azure, ("direction", "announced")]
        ),
        1.0
    );
    // Escaped label values survive the round trip.
    assert!(text.contains(r#"connection="branch \"b\"""#), "{text}");
    // An empty report is still valid exposition text.
    check_exposition(&control::render_prometheus(&StatusReport::default()));
}

async fn http_get(addr: std::net::SocketAddr, target: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_http_endpoint() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let source: control::StatusSource = Arc::new(sample_report);
    tokio::spawn(control::serve_metrics_listener(listener, source));

    let resp = http_get(addr, "/metrics").await;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    assert_eq!(body, control::render_prometheus(&sample_report()));
    check_exposition(body);

    let resp = http_get(addr, "/").await;
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
}
