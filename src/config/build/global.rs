//! `[global]`: daemon-wide settings.

use crate::config::reader::{Ctx, Section};
use crate::config::values::{absolute_path, socket_addr};
use crate::config::{Global, LogFormat, LogLevel};

pub(super) const KEYS: &[&str] = &[
    "control_socket",
    "log_level",
    "log_format",
    "metrics_listen",
    "retransmit_timeout",
    "retransmit_base",
    "retransmit_tries",
    "cookie_threshold",
    "half_open_max",
    "half_open_per_address_max",
];

pub(super) fn build(ctx: &mut Ctx, s: Section) -> Option<Global> {
    let before = ctx.errors.len();
    s.check_keys(ctx, KEYS);
    let d = Global::default();
    let levels = [
        ("error", LogLevel::Error),
        ("warn", LogLevel::Warn),
        ("info", LogLevel::Info),
        ("debug", LogLevel::Debug),
        ("trace", LogLevel::Trace),
    ];
    let control_socket = s
        .parsed(ctx, "control_socket", absolute_path)
        .unwrap_or(d.control_socket);
    let log_level = s.keyword(ctx, "log_level", &levels).unwrap_or(d.log_level);
    let log_format = s
        .keyword(
            ctx,
            "log_format",
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        )
        .unwrap_or(d.log_format);
    let metrics_listen = s.parsed(ctx, "metrics_listen", socket_addr);
    let retransmit_timeout = s
        .duration(ctx, "retransmit_timeout")
        .unwrap_or(d.retransmit_timeout);
    if retransmit_timeout.is_zero() {
        ctx.err(
            &s.span_of("retransmit_timeout"),
            "`retransmit_timeout` must be longer than 0s",
        );
    }
    let retransmit_base = s.float(ctx, "retransmit_base").unwrap_or(d.retransmit_base);
    if !(1.0..=10.0).contains(&retransmit_base) {
        ctx.err(
            &s.span_of("retransmit_base"),
            format!("`retransmit_base` = {retransmit_base} must be between 1.0 and 10.0"),
        );
    }
    let retransmit_tries = s.number(ctx, "retransmit_tries", 0..=20, d.retransmit_tries);
    let cookie_threshold = s.number(ctx, "cookie_threshold", 0..=1_000_000, d.cookie_threshold);
    let half_open_max = s.number(ctx, "half_open_max", 1..=1_000_000, d.half_open_max);
    let half_open_per_address_max = s.number(
        ctx,
        "half_open_per_address_max",
        1..=1_000_000,
        d.half_open_per_address_max,
    );
    (ctx.errors.len() == before).then_some(Global {
        control_socket,
        log_level,
        log_format,
        metrics_listen,
        retransmit_timeout,
        retransmit_base,
        retransmit_tries,
        cookie_threshold,
        half_open_max,
        half_open_per_address_max,
    })
}
