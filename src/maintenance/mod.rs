//! Maintenance windows: the model, which windows cover a scope now, and the service that
//! changes them in the store and keeps an in-memory copy for readers.
//!
//! Windows come from three sources: the API (stored, audited), the configuration's
//! schedules (computed), and applications' own flags (a target's `maintenance_query`).
//! Whether a window is active is a pure function of the window and the time, so expiry is
//! exact without any timer, and readers (`/metrics`, the gate) never touch the store.

mod schedule;
pub mod store;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::config::{Config, StateConfig};
pub use store::StoreError;
use store::{Change, NewWindow, Store};

/// Ended windows stay in the in-memory copy (and the default listing) this long.
pub const RECENT: Duration = Duration::from_secs(24 * 3600);
const MAX_REASON_LENGTH: usize = 500;
const MAX_ACTOR_LENGTH: usize = 200;

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

    fn parse(s: &str) -> Option<Action> {
        [Action::Started, Action::Extended, Action::Ended]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// One entry of a window's audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at_ms: i64,
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
    pub created_at_ms: i64,
    pub starts_at_ms: i64,
    /// The planned end. `None` only for app windows: they last while the flag stays true.
    pub ends_at_ms: Option<i64>,
    /// When it was ended before its planned end, and by whom.
    pub ended_at_ms: Option<i64>,
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
    pub fn end_ms(&self) -> Option<i64> {
        match (self.ends_at_ms, self.ended_at_ms) {
            (Some(planned), Some(ended)) => Some(planned.min(ended)),
            (planned, ended) => planned.or(ended),
        }
    }

    pub fn state(&self, now_ms: i64) -> WindowState {
        match self.ended_at_ms {
            Some(ended) if ended <= self.starts_at_ms => return WindowState::Cancelled,
            Some(ended) if ended <= now_ms && self.ends_at_ms.is_none_or(|p| ended < p) => {
                return WindowState::Ended;
            }
            _ => {}
        }
        if now_ms < self.starts_at_ms {
            WindowState::Scheduled
        } else if self.end_ms().is_none_or(|end| now_ms < end) {
            WindowState::Active
        } else {
            WindowState::Expired
        }
    }

    pub fn is_active(&self, now_ms: i64) -> bool {
        self.state(now_ms) == WindowState::Active
    }

    /// Not started and not ended: the only windows that can still change.
    fn is_open(&self, now_ms: i64) -> bool {
        matches!(
            self.state(now_ms),
            WindowState::Scheduled | WindowState::Active
        )
    }
}

/// An application's own maintenance flag, as last read by a target's probe.
#[derive(Debug, Clone, PartialEq)]
pub struct AppFlag {
    pub on: bool,
    /// When it last changed (or was first read).
    pub since_ms: i64,
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
    pub planned_end_ms: Option<i64>,
}

impl Coverage<'_> {
    pub fn active(&self) -> bool {
        !self.windows.is_empty()
    }
}

/// The windows that cover `scope` at `now_ms`.
pub fn coverage<'a>(
    config: &Config,
    windows: &'a [Window],
    scope: &str,
    now_ms: i64,
) -> Coverage<'a> {
    let scopes = config.covering_scopes(scope);
    let covering: Vec<&Window> = windows
        .iter()
        .filter(|w| scopes.contains(&w.scope.as_str()) && w.is_active(now_ms))
        .collect();
    let planned_end_ms = covering.iter().filter_map(|w| w.end_ms()).max();
    let mut retry_ms = planned_end_ms.map_or(0, |end| end - now_ms);
    for w in covering.iter().filter(|w| w.end_ms().is_none()) {
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
        planned_end_ms,
    }
}

/// Every window known now: stored ones, the schedules' recent, current and next
/// occurrences, and the applications' open flags. Ordered by start.
pub fn all_windows(
    config: &Config,
    stored: &Stored,
    flags: &[(String, AppFlag)],
    now_ms: i64,
) -> Vec<Window> {
    let mut all = stored.windows.clone();
    for s in &config.maintenance.schedules {
        all.extend(schedule::occurrences(s, now_ms));
    }
    for (target, flag) in flags.iter().filter(|(_, f)| f.on) {
        all.push(Window {
            id: format!("app:{target}"),
            scope: target.clone(),
            source: Source::App,
            reason: "the application's maintenance flag is set (maintenance_query)".to_owned(),
            created_by: "application".to_owned(),
            created_at_ms: flag.since_ms,
            starts_at_ms: flag.since_ms,
            ends_at_ms: None,
            ended_at_ms: None,
            ended_by: None,
            events: Vec::new(),
        });
    }
    all.sort_by(|a, b| (a.starts_at_ms, a.id.as_str()).cmp(&(b.starts_at_ms, b.id.as_str())));
    all
}

pub fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

pub fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `2026-11-22T10:00:00Z`, to the millisecond when there is one.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

/// The store's windows as last read, and how that read went.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub windows: Vec<Window>,
    pub refreshed_at: Option<SystemTime>,
    /// The last refresh failed: the windows are the last good read.
    pub error: Option<String>,
}

/// Why a change was refused. Each maps to one HTTP status and names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the state store is unavailable ({0}); nothing was changed: retry when it is back")]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> MaintenanceError {
    MaintenanceError::Invalid {
        field,
        message: message.into(),
    }
}

/// How long a new window lasts.
#[derive(Debug, Clone, Copy)]
pub enum Length {
    Default,
    For(Duration),
    Until(i64),
}

#[derive(Debug, Clone)]
pub struct StartRequest {
    pub scope: String,
    pub reason: String,
    pub by: Option<String>,
    pub starts_at_ms: Option<i64>,
    pub length: Length,
}

/// How far to move a window's end.
#[derive(Debug, Clone, Copy)]
pub enum Extension {
    By(Duration),
    Until(i64),
}

/// The caller of a change: the authenticated token's name, and who they say they are.
#[derive(Debug, Clone)]
pub struct Actor {
    pub token: String,
    pub by: Option<String>,
}

impl Actor {
    fn name(&self) -> Result<String, MaintenanceError> {
        match &self.by {
            Some(by) if by.trim().is_empty() => Err(invalid(
                "by",
                "must not be empty: name who makes the change, or leave it out to record the token's name",
            )),
            Some(by) if by.chars().count() > MAX_ACTOR_LENGTH => Err(invalid(
                "by",
                format!("is longer than {MAX_ACTOR_LENGTH} characters"),
            )),
            Some(by) => Ok(by.trim().to_owned()),
            None => Ok(self.token.clone()),
        }
    }
}

/// A state store that answered, ready to be switched to.
pub struct PreparedStore(StoreSlot);

struct StoreSlot {
    url: Option<crate::config::Secret>,
    store: Arc<Store>,
}

/// Windows counted as started, and which are active, as of the last tick.
#[derive(Default)]
struct Tally {
    active: HashSet<String>,
    started: BTreeMap<(String, Source), u64>,
}

pub struct Maintenance {
    data_dir: PathBuf,
    store: ArcSwap<StoreSlot>,
    stored: ArcSwap<Stored>,
    /// Taken by ticks only (the loop, and after a change): never by a reader.
    tally: Mutex<Tally>,
    started: ArcSwap<BTreeMap<(String, Source), u64>>,
}

impl Maintenance {
    pub fn new(data_dir: &Path, state: &StateConfig) -> Result<Maintenance, StoreError> {
        Ok(Maintenance {
            data_dir: data_dir.to_owned(),
            store: ArcSwap::from_pointee(open_store(data_dir, state)?),
            stored: ArcSwap::from_pointee(Stored::default()),
            tally: Mutex::new(Tally::default()),
            started: ArcSwap::from_pointee(BTreeMap::new()),
        })
    }

    /// On reload: a changed `state.url` switches stores; the next refresh reads the new one.
    /// Opens the store `state` names and makes sure it answers and holds dbvigil's tables,
    /// without switching to it: `None` when it is the store in use. A reload does this
    /// before it changes anything, so a store that cannot be used fails the whole reload.
    pub async fn prepare_store(
        &self,
        state: &StateConfig,
    ) -> Result<Option<PreparedStore>, StoreError> {
        if self.store.load().url == state.url {
            return Ok(None);
        }
        let slot = open_store(&self.data_dir, state)?;
        slot.store.ready().await?;
        Ok(Some(PreparedStore(slot)))
    }

    /// Switches to a store [`Maintenance::prepare_store`] opened.
    pub fn switch_store(&self, prepared: PreparedStore) {
        let slot = prepared.0;
        tracing::info!(store = %slot.store.description, "maintenance state store changed");
        self.store.store(Arc::new(slot));
    }

    pub fn store_description(&self) -> String {
        self.store.load().store.description.clone()
    }

    pub fn stored(&self) -> Arc<Stored> {
        self.stored.load_full()
    }

    /// Windows started per (scope, source) since this exporter started.
    pub fn started(&self) -> Arc<BTreeMap<(String, Source), u64>> {
        self.started.load_full()
    }

    /// One refresh: re-reads the store into memory. A failure keeps the last good copy.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let store = self.store.load().store.clone();
        let since = now_ms() - RECENT.as_millis() as i64;
        let previous = self.stored();
        match store.load(since).await {
            Ok(windows) => {
                if previous.error.is_some() {
                    tracing::info!(store = %store.description, "maintenance state store is back");
                }
                self.stored.store(Arc::new(Stored {
                    windows,
                    refreshed_at: Some(SystemTime::now()),
                    error: None,
                }));
                Ok(())
            }
            Err(e) => {
                if previous.error.is_none() {
                    tracing::error!(store = %store.description, error = %e, "cannot read maintenance windows; keeping the last ones read");
                }
                self.stored.store(Arc::new(Stored {
                    windows: previous.windows.clone(),
                    refreshed_at: previous.refreshed_at,
                    error: Some(e.to_string()),
                }));
                Err(e)
            }
        }
    }

    /// One tick: counts windows that became active since the last tick and logs starts
    /// and ends. Windows already active at the first tick count as started.
    pub fn tick(&self, windows: &[Window], now_ms: i64) {
        let mut tally = self.tally.lock().expect("tally lock is never poisoned");
        let active: HashSet<String> = windows
            .iter()
            .filter(|w| w.is_active(now_ms))
            .map(|w| w.id.clone())
            .collect();
        let mut changed = false;
        for w in windows.iter().filter(|w| active.contains(&w.id)) {
            if !tally.active.contains(&w.id) {
                *tally
                    .started
                    .entry((w.scope.clone(), w.source))
                    .or_default() += 1;
                changed = true;
                tracing::info!(
                    id = %w.id, scope = %w.scope, source = w.source.as_str(), reason = %w.reason,
                    ends_at = %w.end_ms().map_or_else(|| "when the flag clears".to_owned(), rfc3339),
                    "maintenance window started"
                );
            }
        }
        for id in tally.active.difference(&active) {
            tracing::info!(id = %id, "maintenance window ended");
        }
        tally.active = active;
        if changed {
            self.started.store(Arc::new(tally.started.clone()));
        }
    }

    pub async fn get(&self, id: &str) -> Result<Window, MaintenanceError> {
        let number = api_id(id)?;
        let store = self.store.load().store.clone();
        store.get(number).await?.ok_or_else(|| not_found(id))
    }

    pub async fn start(
        &self,
        config: &Config,
        req: StartRequest,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<Window, MaintenanceError> {
        if req.scope.trim().is_empty() {
            return Err(invalid(
                "scope",
                "is missing: name a target, a group, or \"*\"",
            ));
        }
        if !config.is_scope(&req.scope) {
            return Err(invalid(
                "scope",
                format!(
                    "{:?} is neither a configured target, a group, nor \"*\"; known: {}",
                    req.scope,
                    known_scopes(config)
                ),
            ));
        }
        let reason = req.reason.trim();
        if reason.is_empty() {
            return Err(invalid(
                "reason",
                "is missing: say why, for the audit trail and the people who see the 503",
            ));
        }
        if reason.chars().count() > MAX_REASON_LENGTH {
            return Err(invalid(
                "reason",
                format!("is longer than {MAX_REASON_LENGTH} characters"),
            ));
        }
        let by = actor.name()?;
        let start = match req.starts_at_ms {
            None => now_ms,
            // A little slack for clocks and pipelines that compute "now" themselves.
            Some(t) if t < now_ms - 60_000 => {
                return Err(invalid(
                    "starts_at",
                    format!("{} is in the past: leave it out to start now", rfc3339(t)),
                ));
            }
            Some(t) => t.max(now_ms),
        };
        let max = config.maintenance.max_duration;
        let end = match req.length {
            Length::Default => start.saturating_add(millis(config.maintenance.default_duration)),
            Length::For(d) if d.is_zero() => {
                return Err(invalid("duration", "must be greater than zero"));
            }
            Length::For(d) if d < MIN_STEP => return Err(below_a_millisecond(d)),
            Length::For(d) if d > max => {
                return Err(invalid(
                    "duration",
                    format!(
                        "{} is longer than the maximum of {} (maintenance.max_duration): plan a shorter window and extend it if needed",
                        crate::config::format_duration(d),
                        crate::config::format_duration(max)
                    ),
                ));
            }
            Length::For(d) => start.saturating_add(millis(d)),
            Length::Until(t) if t <= start => {
                return Err(invalid(
                    "ends_at",
                    format!("{} is not after the start ({})", rfc3339(t), rfc3339(start)),
                ));
            }
            Length::Until(t) if t - start > millis(max) => {
                return Err(invalid(
                    "ends_at",
                    format!(
                        "{} is more than the maximum of {} (maintenance.max_duration) after the start",
                        rfc3339(t),
                        crate::config::format_duration(max)
                    ),
                ));
            }
            Length::Until(t) => t,
        };
        let store = self.store.load().store.clone();
        let id = store
            .insert(&NewWindow {
                scope: &req.scope,
                reason,
                by: &by,
                token: &actor.token,
                now_ms,
                starts_at_ms: start,
                ends_at_ms: end,
            })
            .await?;
        self.after_change().await;
        let window = self.get(&id.to_string()).await?;
        tracing::info!(id, scope = %window.scope, by = %by, ends_at = %rfc3339(end), reason = %reason, "maintenance window created");
        Ok(window)
    }

    pub async fn extend(
        &self,
        config: &Config,
        id: &str,
        extension: Extension,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<Window, MaintenanceError> {
        let by = actor.name()?;
        let current = self.get(id).await?;
        refuse_closed(&current, now_ms)?;
        let planned = current.ends_at_ms.expect("API windows have a planned end");
        let max = config.maintenance.max_duration;
        let (field, new_end) = match extension {
            Extension::By(d) if d.is_zero() => {
                return Err(invalid("duration", "must be greater than zero"));
            }
            Extension::By(d) if d < MIN_STEP => return Err(below_a_millisecond(d)),
            Extension::By(d) if d > max => {
                return Err(invalid(
                    "duration",
                    format!(
                        "{} is longer than the maximum of {} (maintenance.max_duration) for a whole window: start a new window when this one ends",
                        crate::config::format_duration(d),
                        crate::config::format_duration(max)
                    ),
                ));
            }
            // Saturating: a duration of millions of years must be refused by the check
            // below, not wrap around into a small extension or overflow.
            Extension::By(d) => ("duration", planned.saturating_add(millis(d))),
            Extension::Until(t) if t <= planned => {
                return Err(invalid(
                    "ends_at",
                    format!(
                        "{} is not after the current end ({}): to finish sooner, end the window",
                        rfc3339(t),
                        rfc3339(planned)
                    ),
                ));
            }
            Extension::Until(t) => ("ends_at", t),
        };
        if new_end - current.starts_at_ms > millis(max) {
            return Err(invalid(
                field,
                format!(
                    "the window would end at {}, more than the maximum of {} (maintenance.max_duration) after its start ({}); start a new window when this one ends",
                    rfc3339(new_end),
                    crate::config::format_duration(max),
                    rfc3339(current.starts_at_ms)
                ),
            ));
        }
        let store = self.store.load().store.clone();
        let change = Change {
            by: &by,
            token: &actor.token,
            now_ms,
        };
        if !store
            .extend(api_id(id)?, new_end, millis(max), &change)
            .await?
        {
            // Someone else changed it between the read and the update.
            return Err(self.why_unchanged(id, now_ms).await);
        }
        self.after_change().await;
        tracing::info!(id, by = %by, ends_at = %rfc3339(new_end), "maintenance window extended");
        self.get(id).await
    }

    pub async fn end(
        &self,
        id: &str,
        note: Option<String>,
        actor: &Actor,
        now_ms: i64,
    ) -> Result<Window, MaintenanceError> {
        let by = actor.name()?;
        let current = self.get(id).await?;
        refuse_closed(&current, now_ms)?;
        let note = note.map(|n| n.trim().to_owned()).unwrap_or_default();
        if note.chars().count() > MAX_REASON_LENGTH {
            return Err(invalid(
                "reason",
                format!("is longer than {MAX_REASON_LENGTH} characters"),
            ));
        }
        let store = self.store.load().store.clone();
        let change = Change {
            by: &by,
            token: &actor.token,
            now_ms,
        };
        if !store.end(api_id(id)?, &note, &change).await? {
            return Err(self.why_unchanged(id, now_ms).await);
        }
        self.after_change().await;
        tracing::info!(id, by = %by, "maintenance window ended early");
        self.get(id).await
    }

    /// A change is visible to this exporter's readers before its answer goes out.
    async fn after_change(&self) {
        let _ = self.refresh().await;
    }

    async fn why_unchanged(&self, id: &str, now_ms: i64) -> MaintenanceError {
        match self.get(id).await {
            Ok(w) => match refuse_closed(&w, now_ms) {
                Err(e) => e,
                Ok(()) => MaintenanceError::Conflict(format!(
                    "window {id} changed while this request ran: read it again and retry"
                )),
            },
            Err(e) => e,
        }
    }
}

fn open_store(data_dir: &Path, state: &StateConfig) -> Result<StoreSlot, StoreError> {
    let store = match &state.url {
        Some(url) => Store::postgres(&url.0)?,
        None => Store::sqlite(data_dir)?,
    };
    Ok(StoreSlot {
        url: state.url.clone(),
        store: Arc::new(store),
    })
}

fn not_found(id: &str) -> MaintenanceError {
    MaintenanceError::NotFound(format!(
        "no maintenance window {id:?}: list them with GET /api/v1/maintenance"
    ))
}

/// Windows are kept to the millisecond: a shorter duration would plan an end equal to
/// the start (or leave an end where it was).
const MIN_STEP: Duration = Duration::from_millis(1);

fn below_a_millisecond(d: Duration) -> MaintenanceError {
    invalid(
        "duration",
        format!(
            "{} is shorter than a millisecond, the finest step windows are kept in: give at least 1ms",
            crate::config::format_duration(d)
        ),
    )
}

/// Milliseconds of `d`, saturating instead of wrapping for durations beyond any window.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// API windows have numeric ids; schedule and app windows are changed at their source.
fn api_id(id: &str) -> Result<i64, MaintenanceError> {
    if id.starts_with("schedule:") {
        return Err(MaintenanceError::Conflict(format!(
            "window {id:?} comes from a schedule in the configuration: change or remove the schedule and reload"
        )));
    }
    if id.starts_with("app:") {
        return Err(MaintenanceError::Conflict(format!(
            "window {id:?} comes from the application's own flag (maintenance_query): it ends when the application clears the flag"
        )));
    }
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| not_found(id))
}

fn refuse_closed(w: &Window, now_ms: i64) -> Result<(), MaintenanceError> {
    if w.is_open(now_ms) {
        return Ok(());
    }
    let when = w.end_ms().map_or_else(String::new, rfc3339);
    Err(MaintenanceError::Conflict(format!(
        "window {} is {} (since {when}): start a new window instead",
        w.id,
        w.state(now_ms).as_str()
    )))
}

fn known_scopes(config: &Config) -> String {
    let mut names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
    names.extend(config.groups.iter().map(|g| g.name.as_str()));
    names.push("*");
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(starts: i64, ends: Option<i64>, ended: Option<i64>) -> Window {
        Window {
            id: "1".into(),
            scope: "db".into(),
            source: Source::Api,
            reason: "r".into(),
            created_by: "t".into(),
            created_at_ms: 0,
            starts_at_ms: starts,
            ends_at_ms: ends,
            ended_at_ms: ended,
            ended_by: None,
            events: Vec::new(),
        }
    }

    #[test]
    fn a_window_is_active_from_its_start_until_its_end() {
        let w = window(100, Some(200), None);
        assert_eq!(w.state(99), WindowState::Scheduled);
        assert_eq!(w.state(100), WindowState::Active);
        assert_eq!(w.state(199), WindowState::Active);
        assert_eq!(w.state(200), WindowState::Expired);
    }

    #[test]
    fn ending_early_or_before_the_start() {
        let early = window(100, Some(200), Some(150));
        assert_eq!(early.state(149), WindowState::Active);
        assert_eq!(early.state(150), WindowState::Ended);
        assert_eq!(early.end_ms(), Some(150));
        let cancelled = window(100, Some(200), Some(50));
        assert_eq!(cancelled.state(60), WindowState::Cancelled);
        assert!(!cancelled.is_active(150));
        let app = window(100, None, None);
        assert!(app.is_active(i64::MAX));
    }
}
