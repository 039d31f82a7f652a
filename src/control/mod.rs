//! The operator surface of a running gateway: the control-socket protocol (versioned JSON,
//! one request per connection), its tokio server and blocking client, the status types of
//! `ipsecgw status --json`, the human tables, and the Prometheus metrics endpoint.

mod client;
pub mod engine_view;
mod error;
mod metrics;
mod protocol;
mod render;
mod server;
mod status;

pub use client::{request, request_streaming};
pub use error::{ClientError, RequestError, ResponseError};
pub use metrics::{render_prometheus, serve_metrics, serve_metrics_listener, StatusSource};
pub use protocol::{
    ActionResult, Command, ConnList, ConnSettings, ReloadReport, Request, Response,
    MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, PROTOCOL_VERSION,
};
pub use render::{
    format_bytes, format_secs, print_response, render_bgp_table, render_conn_list, render_reload,
    render_table,
};
pub use server::{
    bind, channel_handler, serve, serve_listener, ControlCall, ControlHandler, HandlerFuture,
    Progress,
};
pub use status::bgp_state_name::name as bgp_state_name;
pub use status::{
    BgpReport, BgpState, BgpSummary, ChildSaStatus, ChildState, ConnCounters, ConnState,
    ConnectionStatus, EspEncap, IkeEngineReport, IkeSaStatus, InFlightReport, LastErrorReport,
    RibRow, RouteDirection, StatusReport, BGP_SCHEMA, STATUS_SCHEMA,
};
