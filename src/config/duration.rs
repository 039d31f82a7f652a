//! Human durations as written in the config: "10s", "4h", "1h30m", "500ms", "2d".

use std::fmt;
use std::time::Duration;

/// Why a duration was refused; each says how to write it instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurationError {
    Empty,
    /// Spaces inside (`"10 s"`).
    Spaces(String),
    /// Only digits (`"3600"`): seconds or minutes?
    NoUnit(String),
    /// A number without a unit after other parts (`"1h30"`): the text and the number.
    PartWithoutUnit {
        text: String,
        number: String,
    },
    UnknownUnit {
        text: String,
        unit: String,
    },
    /// Not `<number><unit>` at all.
    Malformed(String),
    TooLarge(String),
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Empty => {
                f.write_str("empty duration (write e.g. \"10s\", \"4h\", \"1h30m\")")
            }
            DurationError::Spaces(t) => write!(
                f,
                "duration \"{t}\" must not contain spaces (write e.g. \"10s\", \"1h30m\")"
            ),
            DurationError::NoUnit(t) => write!(
                f,
                "duration \"{t}\" has no unit (write \"{t}s\" for seconds; units: ms, s, m, h, d)"
            ),
            DurationError::PartWithoutUnit { text, number } => write!(
                f,
                "duration \"{text}\": \"{number}\" has no unit (units: ms, s, m, h, d)"
            ),
            DurationError::UnknownUnit { text, unit } => write!(
                f,
                "duration \"{text}\": unknown unit \"{unit}\" (units: ms, s, m, h, d)"
            ),
            DurationError::Malformed(t) => write!(
                f,
                "bad duration \"{t}\" (write e.g. \"10s\", \"4h\", \"1h30m\", \"500ms\")"
            ),
            DurationError::TooLarge(t) => write!(f, "duration \"{t}\" is too large"),
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration made of `<number><unit>` parts (units: ms, s, m, h, d).
/// A bare number is refused: "rekey_time = 3600" is ambiguous between seconds and minutes.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let text = s.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.contains(char::is_whitespace) {
        return Err(DurationError::Spaces(text.to_string()));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DurationError::NoUnit(text.to_string()));
    }
    let mut total_ms: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(DurationError::Malformed(text.to_string()));
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
                return Err(DurationError::PartWithoutUnit {
                    text: text.to_string(),
                    number: num.to_string(),
                })
            }
            other => {
                return Err(DurationError::UnknownUnit {
                    text: text.to_string(),
                    unit: other.to_string(),
                })
            }
        };
        let too_large = || DurationError::TooLarge(text.to_string());
        let value: u128 = num.parse().map_err(|_| too_large())?;
        total_ms = value
            .checked_mul(ms_per_unit)
            .and_then(|v| v.checked_add(total_ms))
            .filter(|v| *v <= u64::MAX as u128)
            .ok_or_else(too_large)?;
        rest = next;
    }
    // At most u64::MAX milliseconds, checked above.
    Ok(Duration::from_millis(
        u64::try_from(total_ms).unwrap_or(u64::MAX),
    ))
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
        let text = |s: &str| parse_duration(s).unwrap_err().to_string();
        assert!(text("3600").contains("no unit"));
        assert!(text("10x").contains("unknown unit"));
        assert!(text("1h30").contains("no unit"));
        assert!(parse_duration("h").is_err());
        assert!(text("10 s").contains("spaces"));
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
