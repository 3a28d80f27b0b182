//! The one clock: wall-clock instants as microseconds since the Unix epoch, and their one
//! written form (RFC 3339).
//!
//! Probe reports, outage episodes, group switches, maintenance windows and migration runs
//! all carry a `Timestamp`, so two of them compare and subtract without conversions, and
//! every API answer, log line and CLI output writes time the same way. Durations between
//! two probes' steps use `Instant`, never this: the wall clock may jump.

use std::fmt;
use std::ops::{Add, Sub};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// A wall-clock instant, to the microsecond: other tools' history tables record
/// microseconds, and their last run must read back as written. dbvigil's own readings of
/// the clock are to the millisecond (`now`), which is what the maintenance store and the
/// heartbeat table hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

const MICROS_PER_MILLI: i64 = 1_000;

impl Timestamp {
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// The clock now, to the millisecond.
    pub fn now() -> Timestamp {
        Timestamp::from(SystemTime::now()).floor_millis()
    }

    pub const fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms.saturating_mul(MICROS_PER_MILLI))
    }

    pub const fn from_micros(us: i64) -> Timestamp {
        Timestamp(us)
    }

    /// From seconds since the epoch, as some history tables hold them; to the microsecond.
    pub fn from_secs_f64(secs: f64) -> Timestamp {
        Timestamp((secs * 1e6).round() as i64)
    }

    /// Whole milliseconds since the epoch (rounded down), as the stores keep them.
    pub const fn as_millis(self) -> i64 {
        self.0.div_euclid(MICROS_PER_MILLI)
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Seconds since the epoch: the value of a `_timestamp_seconds` series.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// This instant without its microseconds: what a store keeping milliseconds reads back.
    pub const fn floor_millis(self) -> Timestamp {
        Timestamp::from_millis(self.as_millis())
    }

    /// How long after `earlier` this is; zero when it is not after it (the clock stepped back).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// The signed distance in whole milliseconds from `earlier` to this, rounded down.
    pub const fn millis_since(self, earlier: Timestamp) -> i64 {
        self.0
            .saturating_sub(earlier.0)
            .div_euclid(MICROS_PER_MILLI)
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(micros(d)))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(micros(d)))
    }
}

impl From<SystemTime> for Timestamp {
    /// Before the epoch reads as the epoch: no clock dbvigil runs under is set there.
    fn from(t: SystemTime) -> Timestamp {
        Timestamp(t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, micros))
    }
}

/// RFC 3339 with any offset, as the API and the CLI take it; to the microsecond.
impl FromStr for Timestamp {
    type Err = jiff::Error;

    fn from_str(text: &str) -> Result<Timestamp, jiff::Error> {
        Ok(Timestamp(text.parse::<jiff::Timestamp>()?.as_microsecond()))
    }
}

/// RFC 3339 in UTC, `2026-11-22T10:00:00Z`, with the fraction of a second when there is
/// one (`2026-11-22T10:00:00.25Z`). Outside the range RFC 3339 can write, the microseconds.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_microsecond(self.0) {
            Ok(t) => write!(f, "{t}"),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_rfc3339_with_a_fraction_only_when_there_is_one() {
        assert_eq!(
            Timestamp::from_millis(1_795_860_000_000).to_string(),
            "2026-11-28T10:00:00Z"
        );
        assert_eq!(
            Timestamp::from_millis(1_795_860_000_250).to_string(),
            "2026-11-28T10:00:00.25Z"
        );
        let parsed: Timestamp = "2026-11-28T12:00:00.25+02:00".parse().unwrap();
        assert_eq!(parsed, Timestamp::from_millis(1_795_860_000_250));
    }

    #[test]
    fn a_clock_that_stepped_back_gives_zero_not_a_panic() {
        let later = Timestamp::from_millis(2_000);
        assert_eq!(Timestamp::from_millis(1_000).since(later), Duration::ZERO);
        assert_eq!(
            later.since(Timestamp::from_millis(500)),
            Duration::from_millis(1_500)
        );
    }

    #[test]
    fn keeps_microseconds_and_rounds_milliseconds_down() {
        let t = Timestamp::from_secs_f64(1_714_550_403.123_456);
        assert_eq!(t, Timestamp::from_micros(1_714_550_403_123_456));
        assert_eq!(t.as_secs_f64(), 1_714_550_403.123_456);
        assert_eq!(t.as_millis(), 1_714_550_403_123);
        assert_eq!(t.floor_millis(), Timestamp::from_millis(1_714_550_403_123));
        assert_eq!(
            Timestamp::from_micros(-1).as_millis(),
            -1,
            "before the epoch"
        );
        let st = SystemTime::UNIX_EPOCH + Duration::from_micros(42_001);
        assert_eq!(Timestamp::from(st), Timestamp::from_micros(42_001));
        assert_eq!(Timestamp::now(), Timestamp::now().floor_millis());
    }
}
