//! The service that changes windows: validation of a request, one store transaction per
//! change with its audit event, and the in-memory copy readers use.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::config::{Config, StateConfig};
use crate::time::Timestamp;

use super::store::{Change, NewWindow, Store, StoreError};
use super::{RECENT, Source, Window};

const MAX_REASON_LENGTH: usize = 500;
const MAX_ACTOR_LENGTH: usize = 200;

/// The store's windows as last read, and how that read went.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub windows: Vec<Window>,
    pub refreshed_at: Option<Timestamp>,
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
    Until(Timestamp),
}

#[derive(Debug, Clone)]
pub struct StartRequest {
    pub scope: String,
    pub reason: String,
    pub by: Option<String>,
    pub starts_at: Option<Timestamp>,
    pub length: Length,
}

/// How far to move a window's end.
#[derive(Debug, Clone, Copy)]
pub enum Extension {
    By(Duration),
    Until(Timestamp),
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
        let since = Timestamp::now() - RECENT;
        let previous = self.stored();
        match store.load(since).await {
            Ok(windows) => {
                if previous.error.is_some() {
                    tracing::info!(store = %store.description, "maintenance state store is back");
                }
                self.stored.store(Arc::new(Stored {
                    windows,
                    refreshed_at: Some(Timestamp::now()),
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
    pub fn tick(&self, windows: &[Window], now: Timestamp) {
        let mut tally = self.tally.lock().expect("tally lock is never poisoned");
        let active: HashSet<String> = windows
            .iter()
            .filter(|w| w.is_active(now))
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
                    ends_at = %w.end().map_or_else(|| "when the flag clears".to_owned(), |t| t.to_string()),
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
        now: Timestamp,
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
        let start = match req.starts_at {
            None => now,
            // A little slack for clocks and pipelines that compute "now" themselves.
            Some(t) if t < now - Duration::from_secs(60) => {
                return Err(invalid(
                    "starts_at",
                    format!("{t} is in the past: leave it out to start now"),
                ));
            }
            Some(t) => t.max(now),
        };
        let max = config.maintenance.max_duration;
        let end = match req.length {
            Length::Default => (start + config.maintenance.default_duration).floor_millis(),
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
            Length::For(d) => (start + d).floor_millis(),
            Length::Until(t) if t <= start => {
                return Err(invalid(
                    "ends_at",
                    format!("{t} is not after the start ({start})"),
                ));
            }
            Length::Until(t) if t.since(start) > max => {
                return Err(invalid(
                    "ends_at",
                    format!(
                        "{} is more than the maximum of {} (maintenance.max_duration) after the start",
                        t,
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
                now,
                starts_at: start,
                ends_at: end,
            })
            .await?;
        self.after_change().await;
        let window = self.get(&id.to_string()).await?;
        tracing::info!(id, scope = %window.scope, by = %by, ends_at = %end, reason = %reason, "maintenance window created");
        Ok(window)
    }

    pub async fn extend(
        &self,
        config: &Config,
        id: &str,
        extension: Extension,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Window, MaintenanceError> {
        let by = actor.name()?;
        let current = self.get(id).await?;
        refuse_closed(&current, now)?;
        let planned = current.ends_at.expect("API windows have a planned end");
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
            Extension::By(d) => ("duration", (planned + d).floor_millis()),
            Extension::Until(t) if t <= planned => {
                return Err(invalid(
                    "ends_at",
                    format!(
                        "{} is not after the current end ({}): to finish sooner, end the window",
                        t, planned
                    ),
                ));
            }
            Extension::Until(t) => ("ends_at", t),
        };
        if new_end.since(current.starts_at) > max {
            return Err(invalid(
                field,
                format!(
                    "the window would end at {}, more than the maximum of {} (maintenance.max_duration) after its start ({}); start a new window when this one ends",
                    new_end,
                    crate::config::format_duration(max),
                    current.starts_at
                ),
            ));
        }
        let store = self.store.load().store.clone();
        let change = Change {
            by: &by,
            token: &actor.token,
            now,
        };
        if !store.extend(api_id(id)?, new_end, max, &change).await? {
            // Someone else changed it between the read and the update.
            return Err(self.why_unchanged(id, now).await);
        }
        self.after_change().await;
        tracing::info!(id, by = %by, ends_at = %new_end, "maintenance window extended");
        self.get(id).await
    }

    pub async fn end(
        &self,
        id: &str,
        note: Option<String>,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Window, MaintenanceError> {
        let by = actor.name()?;
        let current = self.get(id).await?;
        refuse_closed(&current, now)?;
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
            now,
        };
        if !store.end(api_id(id)?, &note, &change).await? {
            return Err(self.why_unchanged(id, now).await);
        }
        self.after_change().await;
        tracing::info!(id, by = %by, "maintenance window ended early");
        self.get(id).await
    }

    /// A change is visible to this exporter's readers before its answer goes out.
    async fn after_change(&self) {
        let _ = self.refresh().await;
    }

    async fn why_unchanged(&self, id: &str, now: Timestamp) -> MaintenanceError {
        match self.get(id).await {
            Ok(w) => match refuse_closed(&w, now) {
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

fn refuse_closed(w: &Window, now: Timestamp) -> Result<(), MaintenanceError> {
    if w.is_open(now) {
        return Ok(());
    }
    let when = w.end().map_or_else(String::new, |t| t.to_string());
    Err(MaintenanceError::Conflict(format!(
        "window {} is {} (since {when}): start a new window instead",
        w.id,
        w.state(now).as_str()
    )))
}

fn known_scopes(config: &Config) -> String {
    let mut names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
    names.extend(config.groups.iter().map(|g| g.name.as_str()));
    names.push("*");
    names.join(", ")
}
