//! Prometheus metrics: text exposition format 0.0.4 rendered from a `StatusReport`, and a
//! tiny HTTP/1.1 server answering `GET /metrics` (no HTTP crate needed for one endpoint).

use std::fmt::Write;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::status::{ChildState, ConnState, StatusReport};

/// Produces the current status each time `/metrics` is scraped.
pub type StatusSource = Arc<dyn Fn() -> StatusReport + Send + Sync>;

const MAX_REQUEST_HEAD: usize = 8 * 1024;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One metric family being written: HELP/TYPE once, then samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: u64) {
        let _ = write!(self.out, "{}", self.name);
        if !labels.is_empty() {
            let rendered: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = write!(self.out, "{{{}}}", rendered.join(","));
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Label values escape backslash, double quote and newline (exposition format rules).
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Renders every metric of every connection. Counters come from `ConnCounters`, which keep
/// counting across rekeys, so Prometheus `rate()` works.
pub fn render_prometheus(report: &StatusReport) -> String {
    let mut out = String::new();
    let conns = &report.connections;

    let mut f = Family::new(
        &mut out,
        "ipsecgw_connection_up",
        "gauge",
        "1 if the IKE SA is established.",
    );
    for c in conns {
        f.sample(&[("connection", &c.name)], u64::from(c.state.is_up()));
    }

    let mut f = Family::new(
        &mut out,
        "ipsecgw_ike_sa_state",
        "gauge",
        "1 for the current IKE SA state of the connection.",
    );
    for c in conns {
        for state in ConnState::ALL {
            f.sample(
                &[("connection", &c.name), ("state", state.as_str())],
                u64::from(c.state == state),
            );
        }
    }

    let mut f = Family::new(
        &mut out,
        "ipsecgw_ike_sa_established_seconds",
        "gauge",
        "Age of the current IKE SA in seconds (0 without one).",
    );
    for c in conns {
        f.sample(
            &[("connection", &c.name)],
            c.ike.as_ref().map_or(0, |i| i.established_secs),
        );
    }

    let mut f = Family::new(
        &mut out,
        "ipsecgw_ike_retransmits",
        "gauge",
        "Retransmits so far of the IKE request in flight (0 without one).",
    );
    for c in conns {
        let (exchange, n) = c.in_flight.as_ref().map_or(("none", 0), |p| {
            (p.exchange.as_str(), u64::from(p.retransmits))
        });
        f.sample(&[("connection", &c.name), ("exchange", exchange)], n);
    }

    let mut f = Family::new(
        &mut out,
        "ipsecgw_next_attempt_seconds",
        "gauge",
        "Seconds until the connection is initiated again (absent when none is scheduled).",
    );
    for c in conns {
        if let Some(secs) = c.next_attempt_secs {
            f.sample(&[("connection", &c.name)], secs);
        }
    }

    let mut f = Family::new(
        &mut out,
        "ipsecgw_last_error",
        "gauge",
        "1, labelled with the kind of the connection's last failure (absent once established).",
    );
    for c in conns {
        if let Some(e) = &c.last_error {
            f.sample(&[("connection", &c.name), ("kind", &e.kind)], 1);
        }
    }

    let mut f = Family::new(
        &mut out,
        "ipsecgw_last_error_age_seconds",
        "gauge",
        "Seconds since the connection's last failure.",
    );
    for c in conns {
        if let Some(e) = &c.last_error {
            f.sample(&[("connection", &c.name)], e.secs_ago);
        }
    }

    let mut f = Family::new(
        &mut out,
        "ipsecgw_nat_detected",
        "gauge",
        "1 if NAT was detected and ESP runs in UDP 4500.",
    );
    for c in conns {
        f.sample(
            &[("connection", &c.name)],
            u64::from(c.ike.as_ref().is_some_and(|i| i.nat_detected)),
        );
    }

    let mut f = Family::new(
        &mut out,
        "ipsecgw_child_sa_installed",
        "gauge",
        "1 if the CHILD SA is installed in the data plane.",
    );
    for c in conns {
        for child in &c.children {
            let installed = matches!(child.state, ChildState::Installed | ChildState::Rekeying);
            f.sample(
                &[("connection", &c.name), ("child", &child.name)],
                u64::from(installed),
            );
        }
    }

    let mut f = Family::new(
        &mut out,
        "ipsecgw_bytes_total",
        "counter",
        "Payload bytes through the tunnel, across rekeys.",
    );
    for c in conns {
        f.sample(
            &[("connection", &c.name), ("direction", "in")],
            c.counters.bytes_in,
        );
        f.sample(
            &[("connection", &c.name), ("direction", "out")],
            c.counters.bytes_out,
        );
    }

    let mut f = Family::new(
        &mut out,
        "ipsecgw_child_sa_bytes_total",
        "counter",
        "Payload bytes of one CHILD SA (restarts at 0 with each rekey: a new spi_in).",
    );
    for c in conns {
        for child in &c.children {
            for (direction, n) in [("in", child.bytes_in), ("out", child.bytes_out)] {
                f.sample(
                    &[
                        ("connection", &c.name),
                        ("child", &child.name),
                        ("spi_in", &child.spi_in),
                        ("direction", direction),
                    ],
                    n,
                );
            }
        }
    }

    let mut f = Family::new(
        &mut out,
        "ipsecgw_packets_total",
        "counter",
        "Packets through the tunnel, across rekeys.",
    );
    for c in conns {
        f.sample(
            &[("connection", &c.name), ("direction", "in")],
            c.counters.packets_in,
        );
        f.sample(
            &[("connection", &c.name), ("direction", "out")],
            c.counters.packets_out,
        );
    }

    let mut f = Family::new(
        &mut out,
        "ipsecgw_drops_total",
        "counter",
        "Dropped packets by reason.",
    );
    for c in conns {
        for (reason, n) in &c.counters.drops {
            f.sample(&[("connection", &c.name), ("reason", reason)], *n);
        }
    }

    let mut f = Family::new(
        &mut out,
        "ipsecgw_rekeys_total",
        "counter",
        "Completed rekeys, by SA kind.",
    );
    for c in conns {
        f.sample(
            &[("connection", &c.name), ("sa", "ike")],
            c.counters.ike_rekeys,
        );
        f.sample(
            &[("connection", &c.name), ("sa", "child")],
            c.counters.child_rekeys,
        );
    }

    let mut f = Family::new(
        &mut out,
        "ipsecgw_dpd_failures_total",
        "counter",
        "Dead peer detections that failed.",
    );
    for c in conns {
        f.sample(&[("connection", &c.name)], c.counters.dpd_failures);
    }

    let mut f = Family::new(
        &mut out,
        "ipsecgw_bgp_session_up",
        "gauge",
        "1 if the BGP session is Established.",
    );
    for c in conns {
        if let Some(bgp) = &c.bgp {
            f.sample(
                &[("connection", &c.name)],
                u64::from(bgp.state == super::status::BgpState::Established),
            );
        }
    }

    let mut f = Family::new(
        &mut out,
        "ipsecgw_bgp_prefixes",
        "gauge",
        "Prefixes received from / announced to the peer.",
    );
    for c in conns {
        if let Some(bgp) = &c.bgp {
            f.sample(
                &[("connection", &c.name), ("direction", "received")],
                bgp.prefixes_received,
            );
            f.sample(
                &[("connection", &c.name), ("direction", "announced")],
                bgp.prefixes_announced,
            );
        }
    }

    let mut f = Family::new(
        &mut out,
        "ipsecgw_global_drops_total",
        "counter",
        "Packets dropped before they could be tied to a connection, by reason.",
    );
    for (reason, n) in &report.drops {
        f.sample(&[("reason", reason)], *n);
    }

    let e = &report.ike_engine;
    let mut f = Family::new(
        &mut out,
        "ipsecgw_ike_half_open",
        "gauge",
        "Responder IKE SAs waiting for IKE_AUTH.",
    );
    f.sample(&[], e.half_open);
    let mut f = Family::new(
        &mut out,
        "ipsecgw_ike_engine_total",
        "counter",
        "What unauthenticated IKE traffic made the engine do or refuse, by event.",
    );
    for (event, n) in [
        ("half_open_dropped", e.half_open_dropped),
        ("cookie_sent", e.cookies_sent),
        ("cookie_sent_by_gate", e.cookies_sent_by_gate),
        ("invalid_ke_sent", e.invalid_ke_sent),
        ("response_resent", e.responses_resent),
        ("unknown_spi", e.unknown_spi),
        ("invalid_spi_sent", e.invalid_spi_sent),
        ("invalid_spi_limited", e.invalid_spi_limited),
        ("ts_over_limit", e.ts_over_limit),
    ] {
        f.sample(&[("event", event)], n);
    }
    out
}

/// Serves `GET /metrics` on `addr` forever; anything else gets 404 (or 405 for non-GET).
pub async fn serve_metrics(addr: SocketAddr, source: StatusSource) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot listen for metrics on {addr}: {e}"),
        )
    })?;
    serve_metrics_listener(listener, source).await
}

/// Same as `serve_metrics` on an already bound listener (lets the daemon fail early on bind,
/// and tests use port 0).
pub async fn serve_metrics_listener(listener: TcpListener, source: StatusSource) -> io::Result<()> {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let source = Arc::clone(&source);
                tokio::spawn(async move {
                    match tokio::time::timeout(CLIENT_TIMEOUT, answer(stream, source)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::debug!("metrics client: {e}"),
                        Err(_) => tracing::debug!("metrics client timed out"),
                    }
                });
            }
            Err(e) => {
                tracing::warn!("metrics accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream, source: StatusSource) -> io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if head.len() > MAX_REQUEST_HEAD {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"request too large\n",
                true,
            )
            .await;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let body = render_prometheus(&source());
            respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                body.as_bytes(),
                method == "GET",
            )
            .await
        }
        ("GET" | "HEAD", _) => {
            respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                b"try /metrics\n",
                method == "GET",
            )
            .await
        }
        _ => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                b"only GET\n",
                true,
            )
            .await
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    with_body: bool,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if with_body {
        stream.write_all(body).await?;
    }
    stream.shutdown().await
}
