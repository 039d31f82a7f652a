//! `[[connection.children]]`: one CHILD SA (its selectors and ESP proposals).

use std::time::Duration;

use super::{proposals, warn_weak};
use crate::config::reader::{Ctx, Section};
use crate::config::values::{prefix, valid_name};
use crate::config::Child;
use crate::crypto::proposal::parse_esp;
use crate::ike::{ChildLimits, MAX_TS_PER_CHILD};
use crate::prefix::IpPrefix;

pub(super) const KEYS: &[&str] = &[
    "name",
    "local_ts",
    "remote_ts",
    "esp_proposals",
    "rekey_time",
    "replay_window",
    // Soft volume limit: rekey after this many bytes in either direction (integer, or swanctl
    // style "100M", "1G", "102400000K" with 1024-based suffixes); default 0 = off.
    "rekey_bytes",
    // Hard volume limit: delete the SA after this many bytes; default 110% of rekey_bytes
    // (strongSwan's), 0 = off. The rekey point is jittered down by life_bytes - rekey_bytes.
    "life_bytes",
    // Soft packet limit (as rekey_bytes, in packets); default 0 = off.
    "rekey_packets",
    // Hard packet limit (as life_bytes, in packets); default 110% of rekey_packets.
    "life_packets",
    // Most taken off rekey_time at random so both ends do not rekey in step; default 10% of
    // rekey_time (strongSwan's life_time - rekey_time); must be below rekey_time.
    "rand_time",
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
    let limits = limits(ctx, s, rekey_time);
    (ctx.errors.len() == before).then_some(Child {
        name,
        local_ts,
        remote_ts,
        esp_proposals,
        rekey_time,
        replay_window,
        limits,
    })
}

/// The soft and hard limit of one kind: the hard one defaults to 10% above the soft one
/// (strongSwan's default) and must lie above it.
fn soft_hard(ctx: &mut Ctx, s: Section, soft_key: &str, hard_key: &str) -> (u64, u64) {
    let soft = s.volume(ctx, soft_key);
    let hard = match s.volume(ctx, hard_key) {
        0 if s.get(hard_key).is_none() => soft.saturating_add(soft / 10),
        h => h,
    };
    if soft != 0 && hard != 0 && hard <= soft {
        ctx.err(
            &s.span_of(hard_key),
            format!("`{hard_key}` ({hard}) must be above `{soft_key}` ({soft}), or 0 (off)"),
        );
    }
    (soft, hard)
}

fn limits(ctx: &mut Ctx, s: Section, rekey_time: Duration) -> ChildLimits {
    let (rekey_bytes, life_bytes) = soft_hard(ctx, s, "rekey_bytes", "life_bytes");
    let (rekey_packets, life_packets) = soft_hard(ctx, s, "rekey_packets", "life_packets");
    let rand_time = s.duration(ctx, "rand_time");
    if let Some(r) = rand_time.filter(|r| !rekey_time.is_zero() && *r >= rekey_time) {
        ctx.err(
            &s.span_of("rand_time"),
            format!(
                "`rand_time` ({}s) must be below `rekey_time` ({}s)",
                r.as_secs(),
                rekey_time.as_secs()
            ),
        );
    }
    ChildLimits {
        rekey_bytes,
        life_bytes,
        rekey_packets,
        life_packets,
        rand_time,
    }
}
