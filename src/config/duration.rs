//! Human durations as written in the config: "10s", "4h", "1h30m", "500ms", "2d".

use std::time::Duration;

/// Parses a duration made of `<number><unit>` parts (units: ms, s, m, h, d).
/// A bare number is refused: "rekey_time = 3600" is ambiguous between seconds and minutes.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration (write e.g. \"10s\", \"4h\", \"1h30m\")".into());
    }
    if text.contains(char::is_whitespace) {
        return Err(format!(
            "duration \"{text}\" must not contain spaces (write e.g. \"10s\", \"1h30m\")"
        ));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("duration \"{text}\" has no unit (write \"{text}s\" for seconds; units: ms, s, m, h, d)"));
    }
    let mut total_ms: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!(
                "bad duration \"{text}\" (write e.g. \"10s\", \"4h\", \"1h30m\", \"500ms\")"
            ));
        }
        let (num, after) = rest.split_at(digits);
        let unit_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        let (unit, next) = after.split_at(unit_len);
        let ms_per_unit: u128 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                return Err(format!(
                    "duration \"{text}\": \"{num}\" has no unit (units: ms, s, m, h, d)"
                ))
            }
            other => {
                return Err(format!(
                    "duration \"{text}\": unknown unit \"{other}\" (units: ms, s, m, h, d)"
                ))
            }
        };
        let value: u128 = num
            .parse()
            .map_err(|_| format!("duration \"{text}\" is too large"))?;
        total_ms = value
            .checked_mul(ms_per_unit)
            .and_then(|v| v.checked_add(total_ms))
            .filter(|v| *v <= u64::MAX as u128)
            .ok_or_else(|| format!("duration \"{text}\" is too large"))?;
        rest = next;
    }
    Ok(Duration::from_millis(total_ms as u64))
}

/// Formats a duration back into the config syntax ("1h30m", "500ms", "0s").
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(2 * 86400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_bad_forms() {
        assert!(parse_duration("3600").unwrap_err().contains("no unit"));
        assert!(parse_duration("10x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("1h30").unwrap_err().contains("no unit"));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("10 s").unwrap_err().contains("spaces"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("99999999999999999999999d").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for s in ["1h30m", "500ms", "2d", "10s", "0s", "1m1s1ms"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
