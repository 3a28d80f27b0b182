//! The one clock: wall-clock instants as milliseconds since the Unix epoch, and their one
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

/// A wall-clock instant, to the millisecond. Milliseconds are what the exposition format,
/// the maintenance store and the heartbeat table hold, so nothing is lost on the way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    pub fn now() -> Timestamp {
        Timestamp::from(SystemTime::now())
    }

    pub const fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    /// From seconds since the epoch, as other tools' history tables and the exposition
    /// format write them; rounded to the millisecond.
    pub fn from_secs_f64(secs: f64) -> Timestamp {
        Timestamp((secs * 1000.0).round() as i64)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Seconds since the epoch: the value of a `_timestamp_seconds` series.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// How long after `earlier` this is; zero when it is not after it (the clock stepped back).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// The signed distance in milliseconds from `earlier` to this.
    pub const fn millis_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(millis(d)))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(millis(d)))
    }
}

impl From<SystemTime> for Timestamp {
    /// Before the epoch reads as the epoch: no clock dbvigil runs under is set there.
    fn from(t: SystemTime) -> Timestamp {
        Timestamp(t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, millis))
    }
}

/// RFC 3339 with any offset, as the API and the CLI take it; to the millisecond.
impl FromStr for Timestamp {
    type Err = jiff::Error;

    fn from_str(text: &str) -> Result<Timestamp, jiff::Error> {
        Ok(Timestamp(text.parse::<jiff::Timestamp>()?.as_millisecond()))
    }
}

/// RFC 3339 in UTC, `2026-11-22T10:00:00Z`, with milliseconds when there are some
/// (`2026-11-22T10:00:00.250Z`). Outside the range RFC 3339 can write, the milliseconds.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(t) => write!(f, "{t}"),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_rfc3339_with_milliseconds_only_when_there_are_some() {
        assert_eq!(
            Timestamp::from_millis(1_795_860_000_000).to_string(),
            "2026-11-28T10:00:00Z"
        );
        assert_eq!(
            Timestamp::from_millis(1_795_860_000_250).to_string(),
            "2026-11-28T10:00:00.25Z"
        );
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
    fn converts_seconds_and_system_time_to_the_millisecond() {
        let t = Timestamp::from_secs_f64(1_795_860_000.123_4);
        assert_eq!(t.as_millis(), 1_795_860_000_123);
        assert_eq!(t.as_secs_f64(), 1_795_860_000.123);
        let st = SystemTime::UNIX_EPOCH + Duration::from_millis(42);
        assert_eq!(Timestamp::from(st), Timestamp::from_millis(42));
    }
}
