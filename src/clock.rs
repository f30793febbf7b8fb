//! Time as Perseus measures it.
//!
//! Operations and fault events are stamped with `CLOCK_MONOTONIC`, which is one clock for
//! every process on the machine: a `perseus isolate` in another terminal and the running
//! `perseus watch` stamp their events on the same time line.

use std::time::Duration;

/// Nanoseconds on the system-wide monotonic clock.
pub fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available on Linux");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// `d` in whole milliseconds, `u64::MAX` where it has more (never wrapped around).
pub fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since the Unix epoch on the wall clock.
pub fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The wall clock as the seed's log prints it (`2018/01/08 07:35:04`, local time).
pub fn format_wall(unix_ms: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_millis_opt(unix_ms) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.format("%Y/%m/%d %H:%M:%S").to_string()
        }
        chrono::LocalResult::None => String::from("-"),
    }
}

/// The longest duration Perseus takes anywhere (a year): longer ones are mistakes, and
/// would overflow the clock's arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// The forms [`parse_duration`] accepts, for help texts.
pub const DURATION_FORMS: &str = "30s, 1m30s, 500ms, 2h, or a number of seconds";

/// Parses `30s`, `1m30s`, `500ms`, or a bare number of seconds, up to [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("'{text}' is not a duration (e.g. 30s, 1m, 500ms)");
    let d = match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => {
            Duration::try_from_secs_f64(secs).map_err(|_| bad())?
        }
        Ok(_) => return Err(bad()),
        Err(_) => humantime::parse_duration(text).map_err(|_| bad())?,
    };
    if d > MAX_DURATION {
        return Err(format!(
            "'{text}' is longer than {}: give a shorter duration",
            format_duration(MAX_DURATION)
        ));
    }
    Ok(d)
}

/// Formats a duration the way `parse_duration` reads it.
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_past_u64_stay_at_the_top() {
        assert_eq!(ms(Duration::from_millis(2199)), 2199);
        let huge = Duration::from_millis(u64::MAX) + Duration::from_millis(2200);
        assert_eq!(ms(huge), u64::MAX, "not 2199");
    }

    #[test]
    fn durations_parse_in_the_forms_the_cli_accepts() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        // Huge values are errors, not panics or overflowing deadlines.
        assert!(parse_duration("1e20").is_err());
        assert!(parse_duration("400d").unwrap_err().contains("longer than"));
        assert!(parse_duration("1000000000000y").is_err());
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a);
    }
}

/// Durations as text (`30s`, `1m`) in serialised specs and scenarios, as the command line
/// takes them.
pub mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&crate::clock::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        crate::clock::parse_duration(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}
