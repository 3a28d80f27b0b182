//! Windows from the configuration's schedules: for each, the occurrences that ended within
//! [`RECENT`](super::RECENT), the one in progress, and the next one.

use jiff::ToSpan;
use jiff::tz::TimeZone;

use super::{Source, Window};
use crate::config::{ScheduleConfig, When};
use crate::time::Timestamp;

pub fn occurrences(s: &ScheduleConfig, now: Timestamp) -> Vec<Window> {
    let starts: Vec<Timestamp> = match &s.when {
        When::Once(at) => vec![*at],
        When::Weekly {
            day,
            time,
            timezone,
        } => weekly_starts(*day, *time, timezone, now),
    };
    let mut windows: Vec<Window> = Vec::new();
    let mut next_seen = false;
    for start in starts {
        let end = start + s.duration;
        if end < now - super::RECENT {
            continue;
        }
        if start > now {
            // Only the next one is worth showing.
            if next_seen {
                continue;
            }
            next_seen = true;
        }
        windows.push(Window {
            id: format!("schedule:{}@{}", s.name, start.as_millis() / 1000),
            scope: s.scope.clone(),
            source: Source::Schedule,
            reason: s.reason.clone(),
            created_by: format!("schedule {}", s.name),
            created_at: start,
            starts_at: start,
            ends_at: Some(end),
            ended_at: None,
            ended_by: None,
            events: Vec::new(),
        });
    }
    windows
}

/// Starts of the weekly occurrences from two weeks before `now` to two weeks after, in
/// order. A local time that does not exist on a DST day moves forward; one that exists
/// twice takes the earlier instant (RFC 5545 "compatible").
fn weekly_starts(
    day: jiff::civil::Weekday,
    time: jiff::civil::Time,
    timezone: &str,
    now: Timestamp,
) -> Vec<Timestamp> {
    let Ok(tz) = TimeZone::get(timezone) else {
        // Validated when the configuration was loaded.
        return Vec::new();
    };
    let Ok(now) = jiff::Timestamp::from_microsecond(now.as_micros()) else {
        return Vec::new();
    };
    let today = now.to_zoned(tz.clone()).date();
    (-14..=14)
        .filter_map(|offset: i64| today.checked_add(offset.days()).ok())
        .filter(|date| date.weekday() == day)
        .filter_map(|date| date.to_datetime(time).to_zoned(tz.clone()).ok())
        .map(|z| Timestamp::from_millis(z.timestamp().as_millisecond()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn schedule(when: When, minutes: u64) -> ScheduleConfig {
        ScheduleConfig {
            name: "weekly".into(),
            scope: "db".into(),
            reason: "vacuum".into(),
            duration: Duration::from_secs(minutes * 60),
            when,
        }
    }

    fn ms(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn weekly_occurrences_follow_local_time_across_dst() {
        // Sundays 03:30 in Berlin: CEST (UTC+2) on 2026-10-18, CET (UTC+1) from 2026-10-25.
        let s = schedule(
            When::Weekly {
                day: jiff::civil::Weekday::Sunday,
                time: jiff::civil::time(3, 30, 0, 0),
                timezone: "Europe/Berlin".into(),
            },
            60,
        );
        let now = ms("2026-10-25T02:45:00Z");
        let w = occurrences(&s, now);
        let active: Vec<&Window> = w.iter().filter(|w| w.is_active(now)).collect();
        assert_eq!(active.len(), 1, "{w:#?}");
        assert_eq!(active[0].starts_at, ms("2026-10-25T02:30:00Z"));
        // The previous Sunday ended more than a day ago; the next one is a week later.
        let starts: Vec<Timestamp> = w.iter().map(|w| w.starts_at).collect();
        assert_eq!(
            starts,
            vec![ms("2026-10-25T02:30:00Z"), ms("2026-11-01T02:30:00Z")]
        );
        assert!(!w[0].is_active(ms("2026-10-25T03:30:00Z")));
    }

    #[test]
    fn a_one_off_window_is_shown_until_a_day_after_it_ends() {
        let s = schedule(When::Once("2026-12-01T02:00:00Z".parse().unwrap()), 30);
        assert_eq!(occurrences(&s, ms("2026-11-01T00:00:00Z")).len(), 1);
        assert!(
            occurrences(&s, ms("2026-12-01T02:10:00Z"))[0].is_active(ms("2026-12-01T02:10:00Z"))
        );
        assert!(occurrences(&s, ms("2026-12-03T00:00:00Z")).is_empty());
    }
}
