//! `[[connection.children]]`: one CHILD SA (its selectors and ESP proposals).

use std::time::Duration;

use super::{proposals, warn_weak};
use crate::config::reader::{Ctx, Section};
use crate::config::values::{prefix, valid_name};
use crate::config::Child;
use crate::crypto::proposal::parse_esp;
use crate::ike::MAX_TS_PER_CHILD;
use crate::prefix::IpPrefix;

pub(super) const KEYS: &[&str] = &[
    "name",
    "local_ts",
    "remote_ts",
    "esp_proposals",
    "rekey_time",
    "replay_window",
];

const DEFAULT_ESP_PROPOSALS: &[&str] = &["aes256-sha1"];

pub(super) fn build(ctx: &mut Ctx, s: Section) -> Option<Child> {
    let before = ctx.errors.len();
    s.check_keys(ctx, KEYS);
    let name = s.required(ctx, "name", valid_name).unwrap_or_default();
    let any: IpPrefix = "0.0.0.0/0".parse().ok()?;
    let mut selectors = |key: &str| match s.list(ctx, key, prefix) {
        Some(v) if v.is_empty() => {
            ctx.err(
                &s.span_of(key),
                format!("`{key}` must list at least one prefix"),
            );
            v
        }
        Some(v) if v.len() > MAX_TS_PER_CHILD => {
            ctx.err(
                &s.span_of(key),
                format!(
                    "`{key}` lists {} prefixes, more than the {MAX_TS_PER_CHILD} a CHILD SA holds",
                    v.len()
                ),
            );
            v
        }
        Some(v) => v,
        None => vec![any],
    };
    let local_ts = selectors("local_ts");
    let remote_ts = selectors("remote_ts");
    let esp_proposals = proposals(ctx, s, "esp_proposals", DEFAULT_ESP_PROPOSALS, parse_esp);
    let weak = esp_proposals.iter().flat_map(|p| p.weak_algorithms());
    warn_weak(ctx, s, "esp_proposals", weak);
    let rekey_time = s.positive_duration(ctx, "rekey_time", Duration::from_secs(3600));
    let replay_window = s.number(ctx, "replay_window", 0..=4096, 64);
    if (1..32).contains(&replay_window) {
        ctx.err(
            &s.span_of("replay_window"),
            format!("`replay_window` = {replay_window}: use 0 (off) or 32..=4096"),
        );
    }
    (ctx.errors.len() == before).then_some(Child {
        name,
        local_ts,
        remote_ts,
        esp_proposals,
        rekey_time,
        replay_window,
    })
}
