//! `[[connection]]`: addresses, identities, IKE settings, and the sub-sections (children,
//! tunnel, bgp) built by their own builders.

use std::time::Duration;

use super::{bgp, child, proposals, psk, tunnel, warn_weak};
use crate::config::reader::{Ctx, Section, Span};
use crate::config::values::{ip_or_any, valid_name};
use crate::config::{Child, Connection, DpdAction, Encap, StartAction};
use crate::crypto::proposal::parse_ike;
use crate::ike::Identity;

pub(super) const KEYS: &[&str] = &[
    "name",
    "local_addrs",
    "remote_addrs",
    "local_id",
    "remote_id",
    "psk_file",
    "psk_file_insecure",
    "psk",
    "ike_proposals",
    "start_action",
    "encap",
    "rekey_time",
    "dpd_delay",
    "dpd_action",
    "local_port",
    "remote_port",
    "children",
    "tunnel",
    "bgp",
];

const DEFAULT_IKE_PROPOSALS: &[&str] = &["aes256-sha256-modp2048", "aes256-sha1-modp1024"];

pub(super) fn build(ctx: &mut Ctx, s: Section) -> Option<Connection> {
    let before = ctx.errors.len();
    s.check_keys(ctx, KEYS);

    let name = s.required(ctx, "name", valid_name).unwrap_or_default();
    // local_addrs: addresses, or ["%any"] / absent (swanctl's default): every address of the host.
    let mut local_any = s.get("local_addrs").is_none();
    let local_addrs = match s.list(ctx, "local_addrs", ip_or_any) {
        Some(v) if v.is_empty() => {
            ctx.err(
                &s.span_of("local_addrs"),
                "`local_addrs` must list at least one address (or [\"%any\"])",
            );
            Vec::new()
        }
        Some(v) if v.iter().any(Option::is_none) => {
            if v.len() > 1 {
                ctx.err(
                    &s.span_of("local_addrs"),
                    "`%any` must stand alone in `local_addrs`",
                );
            }
            local_any = true;
            Vec::new()
        }
        Some(v) => v.into_iter().flatten().collect(),
        None => Vec::new(),
    };

    // remote_addrs: addresses, or exactly ["%any"].
    let mut remote_any = false;
    let remote_addrs = match s.list(ctx, "remote_addrs", ip_or_any) {
        Some(v) if v.is_empty() => {
            ctx.err(
                &s.span_of("remote_addrs"),
                "`remote_addrs` must not be empty (use [\"%any\"] to accept any peer)",
            );
            Vec::new()
        }
        Some(v) => {
            remote_any = v.iter().any(Option::is_none);
            if remote_any && v.len() > 1 {
                ctx.err(
                    &s.span_of("remote_addrs"),
                    "`remote_addrs`: \"%any\" cannot be combined with addresses",
                );
            }
            v.into_iter().flatten().collect()
        }
        None => {
            if s.get("remote_addrs").is_none() {
                s.missing(ctx, "remote_addrs");
            }
            Vec::new()
        }
    };
    if let (Some(l), Some(r)) = (local_addrs.first(), remote_addrs.first()) {
        if l.is_ipv4() != r.is_ipv4() {
            ctx.err(
                &s.span_of("remote_addrs"),
                format!("`remote_addrs`: {r} and local address {l} are not the same IP version"),
            );
        }
    }

    let local_id = s
        .parsed(ctx, "local_id", |t| t.parse::<Identity>())
        .or_else(|| local_addrs.first().map(|a| Identity::Addr(*a)));
    if local_any && local_id.is_none() && s.get("local_id").is_none() {
        ctx.err(
            s.span,
            "[[connection]] needs `local_id` when `local_addrs` is %any",
        );
    }
    let remote_id = s
        .parsed(ctx, "remote_id", |t| t.parse::<Identity>())
        .or_else(|| remote_addrs.first().map(|a| Identity::Addr(*a)));

    let psk = psk::read(ctx, s);

    let ike_proposals = proposals(ctx, s, "ike_proposals", DEFAULT_IKE_PROPOSALS, parse_ike);
    let weak = ike_proposals.iter().flat_map(|p| p.weak_algorithms());
    warn_weak(ctx, s, "ike_proposals", weak);
    let start_action = s
        .keyword(
            ctx,
            "start_action",
            &[("start", StartAction::Start), ("none", StartAction::None)],
        )
        .unwrap_or(StartAction::Start);
    if remote_any && start_action == StartAction::Start {
        ctx.err(
            &s.span_of("start_action"),
            "remote_addrs = [\"%any\"] cannot be initiated: set start_action = \"none\" (responder only)",
        );
    }
    let encap = s
        .keyword(
            ctx,
            "encap",
            &[("auto", Encap::Auto), ("always", Encap::Always)],
        )
        .unwrap_or(Encap::Auto);
    let rekey_time = s.positive_duration(ctx, "rekey_time", Duration::from_secs(4 * 3600));
    let dpd_delay = s
        .duration(ctx, "dpd_delay")
        .unwrap_or(Duration::from_secs(10));
    let dpd_delay = (!dpd_delay.is_zero()).then_some(dpd_delay);
    let dpd_action = s
        .keyword(
            ctx,
            "dpd_action",
            &[("restart", DpdAction::Restart), ("clear", DpdAction::Clear)],
        )
        .unwrap_or(DpdAction::Restart);
    let local_port = s.number(ctx, "local_port", 1..=65535, 500);
    let remote_port = s.number(ctx, "remote_port", 1..=65535, 500);

    let child_sections = s.tables(ctx, "children", "[[connection.children]]");
    if child_sections.is_empty() && s.get("children").is_none() {
        ctx.err(
            s.span,
            "connection needs at least one [[connection.children]]",
        );
    }
    let mut children: Vec<Child> = Vec::new();
    let mut child_names: Vec<(String, Span)> = Vec::new();
    for cs in child_sections {
        if let Some((child_name, node)) = cs.string(ctx, "name") {
            if let Some((_, first)) = child_names.iter().find(|(n, _)| n == child_name) {
                let first_line = ctx.line(first);
                ctx.err(&node.span, format!("duplicate child name \"{child_name}\" (first defined on line {first_line})"));
            }
            child_names.push((child_name.to_string(), node.span.clone()));
        }
        if let Some(child) = child::build(ctx, cs) {
            children.push(child);
        }
    }

    let tunnel_section = s.subtable(ctx, "tunnel", "[connection.tunnel]");
    let tunnel = tunnel_section.and_then(|t| tunnel::build(ctx, t));
    let bgp_section = s.subtable(ctx, "bgp", "[connection.bgp]");
    let bgp = match bgp_section {
        Some(b) if s.get("tunnel").is_none() => {
            ctx.err(
                b.span,
                "[connection.bgp] needs a [connection.tunnel] to run over",
            );
            None
        }
        Some(b) => bgp::build(
            ctx,
            b,
            tunnel.as_ref(),
            tunnel_section.is_some() && tunnel.is_none(),
            &local_addrs,
            &remote_addrs,
        ),
        None => None,
    };

    if ctx.errors.len() != before {
        return None;
    }
    Some(Connection {
        name,
        local_addrs,
        remote_addrs,
        local_id: local_id?,
        remote_id,
        psk: psk?,
        ike_proposals,
        start_action,
        encap,
        rekey_time,
        dpd_delay,
        dpd_action,
        local_port,
        remote_port,
        children,
        tunnel,
        bgp,
    })
}
