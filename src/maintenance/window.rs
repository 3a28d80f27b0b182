//! The pure model of a maintenance window: its state is a function of the window and the
//! time, so expiry is exact without a timer; which windows cover a scope; every window
//! known now, from the store, the schedules and the applications' flags.

use crate::config::Config;
use crate::time::Timestamp;

use super::{Stored, schedule};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Api,
    Schedule,
    App,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Api, Source::Schedule, Source::App];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Schedule => "schedule",
            Source::App => "app",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Started,
    Extended,
    Ended,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Started => "started",
            Action::Extended => "extended",
            Action::Ended => "ended",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Action> {
        [Action::Started, Action::Extended, Action::Ended]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// One entry of a window's audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: Timestamp,
    pub action: Action,
    /// Who, as the caller said (`by`), or the token's name.
    pub by: String,
    /// The name of the token that authorised it.
    pub token: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// A number for API windows; `schedule:NAME@START` and `app:TARGET` for the others.
    pub id: String,
    /// A target, a group, or `*`.
    pub scope: String,
    pub source: Source,
    pub reason: String,
    pub created_by: String,
    pub created_at: Timestamp,
    pub starts_at: Timestamp,
    /// The planned end. `None` only for app windows: they last while the flag stays true.
    pub ends_at: Option<Timestamp>,
    /// When it was ended before its planned end, and by whom.
    pub ended_at: Option<Timestamp>,
    pub ended_by: Option<String>,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    /// Starts later.
    Scheduled,
    Active,
    /// Ran to its planned end.
    Expired,
    /// Ended early by someone.
    Ended,
    /// Ended before it started.
    Cancelled,
}

impl WindowState {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowState::Scheduled => "scheduled",
            WindowState::Active => "active",
            WindowState::Expired => "expired",
            WindowState::Ended => "ended",
            WindowState::Cancelled => "cancelled",
        }
    }
}

impl Window {
    /// When it stops (or stopped) covering its scope, if known.
    pub fn end(&self) -> Option<Timestamp> {
        match (self.ends_at, self.ended_at) {
            (Some(planned), Some(ended)) => Some(planned.min(ended)),
            (planned, ended) => planned.or(ended),
        }
    }

    pub fn state(&self, now: Timestamp) -> WindowState {
        match self.ended_at {
            Some(ended) if ended <= self.starts_at => return WindowState::Cancelled,
            Some(ended) if ended <= now && self.ends_at.is_none_or(|p| ended < p) => {
                return WindowState::Ended;
            }
            _ => {}
        }
        if now < self.starts_at {
            WindowState::Scheduled
        } else if self.end().is_none_or(|end| now < end) {
            WindowState::Active
        } else {
            WindowState::Expired
        }
    }

    pub fn is_active(&self, now: Timestamp) -> bool {
        self.state(now) == WindowState::Active
    }

    /// Not started and not ended: the only windows that can still change.
    pub(super) fn is_open(&self, now: Timestamp) -> bool {
        matches!(
            self.state(now),
            WindowState::Scheduled | WindowState::Active
        )
    }
}

/// An application's own maintenance flag, as last read by a target's probe.
#[derive(Debug, Clone, PartialEq)]
pub struct AppFlag {
    pub on: bool,
    /// When it last changed (or was first read).
    pub since: Timestamp,
    /// The last read failed: the flag keeps its last known value.
    pub error: Option<String>,
}

/// What covers one scope now.
#[derive(Debug)]
pub struct Coverage<'a> {
    /// Active windows on the scope itself, its groups, or `*`.
    pub windows: Vec<&'a Window>,
    /// Seconds until the covering windows end, at least 1; app windows, which have no
    /// planned end, count as one probe interval of their target.
    pub retry_after_secs: u64,
    /// The latest planned end among the covering windows that have one.
    pub planned_end: Option<Timestamp>,
}

impl Coverage<'_> {
    pub fn active(&self) -> bool {
        !self.windows.is_empty()
    }
}

/// The windows that cover `scope` at `now`.
pub fn coverage<'a>(
    config: &Config,
    windows: &'a [Window],
    scope: &str,
    now: Timestamp,
) -> Coverage<'a> {
    let scopes = config.covering_scopes(scope);
    let covering: Vec<&Window> = windows
        .iter()
        .filter(|w| scopes.contains(&w.scope.as_str()) && w.is_active(now))
        .collect();
    let planned_end = covering.iter().filter_map(|w| w.end()).max();
    let mut retry_ms = planned_end.map_or(0, |end| end.millis_since(now));
    for w in covering.iter().filter(|w| w.end().is_none()) {
        let interval = config
            .targets
            .iter()
            .find(|t| t.name == w.scope)
            .map_or(1000, |t| t.interval.as_millis() as i64);
        retry_ms = retry_ms.max(interval);
    }
    Coverage {
        retry_after_secs: (retry_ms.max(1) as u64).div_ceil(1000),
        windows: covering,
        planned_end,
    }
}

/// Every window known now: stored ones, the schedules' recent, current and next
/// occurrences, and the applications' open flags. Ordered by start.
pub fn all_windows(
    config: &Config,
    stored: &Stored,
    flags: &[(String, AppFlag)],
    now: Timestamp,
) -> Vec<Window> {
    let mut all = stored.windows.clone();
    for s in &config.maintenance.schedules {
        all.extend(schedule::occurrences(s, now));
    }
    for (target, flag) in flags.iter().filter(|(_, f)| f.on) {
        all.push(Window {
            id: format!("app:{target}"),
            scope: target.clone(),
            source: Source::App,
            reason: "the application's maintenance flag is set (maintenance_query)".to_owned(),
            created_by: "application".to_owned(),
            created_at: flag.since,
            starts_at: flag.since,
            ends_at: None,
            ended_at: None,
            ended_by: None,
            events: Vec::new(),
        });
    }
    all.sort_by(|a, b| (a.starts_at, a.id.as_str()).cmp(&(b.starts_at, b.id.as_str())));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(starts: i64, ends: Option<i64>, ended: Option<i64>) -> Window {
        let at = Timestamp::from_millis;
        Window {
            id: "1".into(),
            scope: "db".into(),
            source: Source::Api,
            reason: "r".into(),
            created_by: "t".into(),
            created_at: Timestamp::UNIX_EPOCH,
            starts_at: at(starts),
            ends_at: ends.map(at),
            ended_at: ended.map(at),
            ended_by: None,
            events: Vec::new(),
        }
    }

    #[test]
    fn a_window_is_active_from_its_start_until_its_end() {
        let w = window(100, Some(200), None);
        assert_eq!(w.state(Timestamp::from_millis(99)), WindowState::Scheduled);
        assert_eq!(w.state(Timestamp::from_millis(100)), WindowState::Active);
        assert_eq!(w.state(Timestamp::from_millis(199)), WindowState::Active);
        assert_eq!(w.state(Timestamp::from_millis(200)), WindowState::Expired);
    }

    #[test]
    fn ending_early_or_before_the_start() {
        let early = window(100, Some(200), Some(150));
        assert_eq!(
            early.state(Timestamp::from_millis(149)),
            WindowState::Active
        );
        assert_eq!(early.state(Timestamp::from_millis(150)), WindowState::Ended);
        assert_eq!(early.end(), Some(Timestamp::from_millis(150)));
        let cancelled = window(100, Some(200), Some(50));
        assert_eq!(
            cancelled.state(Timestamp::from_millis(60)),
            WindowState::Cancelled
        );
        assert!(!cancelled.is_active(Timestamp::from_millis(150)));
        let app = window(100, None, None);
        assert!(app.is_active(Timestamp::from_millis(i64::MAX)));
    }
}
