//! How a node's disk behaves now, as its layer is told over its control socket and as it
//! reads back.

use std::time::Duration;

/// A disk's behaviour. Every fault on disks sets one; `heal` sets [`Mode::Healthy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Every operation passes through.
    #[default]
    Healthy,
    /// Every operation blocks until the mode changes, as on a hung volume.
    Stall,
    /// Every write and sync waits this long first.
    Slow(Duration),
    /// Writes and syncs fail with EIO, this share of them (1–100 %).
    Error(u8),
    /// Writes, and whatever makes a file, fail with ENOSPC; reads still work.
    Full,
    /// The power is off (`lose-unsynced`): every operation fails with EIO until the node
    /// starts again.
    Cut,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Healthy => f.write_str("healthy"),
            Mode::Stall => f.write_str("stall"),
            Mode::Slow(d) => write!(f, "slow {}ms", d.as_millis()),
            Mode::Error(p) => write!(f, "error {p}%"),
            Mode::Full => f.write_str("full"),
            Mode::Cut => f.write_str("cut"),
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    /// As [`Mode`] displays: `healthy`, `stall`, `slow 100ms`, `error 30%`, `full`.
    fn from_str(text: &str) -> Result<Mode, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            ["healthy"] => Ok(Mode::Healthy),
            ["stall"] => Ok(Mode::Stall),
            ["full"] => Ok(Mode::Full),
            ["cut"] => Ok(Mode::Cut),
            ["slow", d] => parse_delay(d).map(Mode::Slow),
            ["error", p] => parse_share(p).map(Mode::Error),
            _ => Err(format!(
                "'{text}' is no disk mode: healthy, stall, slow DELAY, error PERCENT, full or cut"
            )),
        }
    }
}

/// A delay of 1 ms to 60 s: a number and `ms` or `s`.
pub fn parse_delay(text: &str) -> Result<Duration, String> {
    let (n, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000)
    } else {
        (text, 0)
    };
    n.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|ms| (1..=60_000).contains(ms))
        .map(Duration::from_millis)
        .ok_or_else(|| format!("'{text}' is not a delay from 1ms to 60s, e.g. 100ms"))
}

/// A share of operations, `1%` to `100%` (the sign may be left out).
pub fn parse_share(text: &str) -> Result<u8, String> {
    text.trim_end_matches('%')
        .parse::<u8>()
        .ok()
        .filter(|p| (1..=100).contains(p))
        .ok_or_else(|| format!("'{text}' is not a percentage from 1% to 100%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_back_as_they_are_written() {
        for m in [
            Mode::Healthy,
            Mode::Stall,
            Mode::Slow(Duration::from_millis(100)),
            Mode::Error(30),
            Mode::Full,
            Mode::Cut,
        ] {
            assert_eq!(m.to_string().parse::<Mode>(), Ok(m));
        }
        assert_eq!("slow 2s".parse(), Ok(Mode::Slow(Duration::from_secs(2))));
        assert_eq!("error 5".parse(), Ok(Mode::Error(5)));
        for bad in [
            "",
            "slow",
            "slow 0ms",
            "slow 61s",
            "slow 1.5s",
            "error 0%",
            "error 101%",
            "sick",
        ] {
            assert!(bad.parse::<Mode>().is_err(), "{bad}");
        }
    }
}
