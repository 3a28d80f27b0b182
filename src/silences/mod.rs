//! Maintenance windows as Alertmanager silences, so a window silences the alerts of every
//! exporter (postgres_exporter's, mysqld_exporter's), not only dbvigil's own.
//!
//! Each step compares the silences the open windows want with those Alertmanager holds,
//! and creates, extends, shortens or expires them. The step holds no memory of its own
//! beyond the last report: a restarted dbvigil, or another replica sharing the store,
//! finds its silences by the marker in their comment. Duplicates that two replicas
//! created at once are resolved the same way by both: the smallest id stays.
//! Alertmanager being down never touches the window itself; the next step retries.

mod alertmanager;
pub mod plan;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::config::{AlertmanagerConfig, Config, Matcher};
use crate::maintenance::Window;
use crate::time::Timestamp;
use alertmanager::{Cluster, PostSilence, Silence, am_matchers};

/// How the last step went, for `/metrics` and the windows' API answers.
#[derive(Debug, Clone, Default)]
pub struct SyncStatus {
    /// Whether `alertmanager:` is configured at all.
    pub configured: bool,
    pub last_attempt: Option<Timestamp>,
    /// The last step in which every wanted silence was in place.
    pub last_success: Option<Timestamp>,
    /// The cluster member that answered last.
    pub alertmanager: Option<String>,
    /// Why the last step did not finish, if it did not.
    pub error: Option<String>,
    /// Steps that did not finish since dbvigil started.
    pub failures: u64,
    pub silences: Vec<SilenceState>,
}

impl SyncStatus {
    pub fn for_window<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a SilenceState> {
        self.silences.iter().filter(move |s| s.window == id)
    }

    pub fn in_place(&self) -> usize {
        self.silences.iter().filter(|s| s.id.is_some()).count()
    }

    pub fn missing(&self) -> usize {
        self.silences.len() - self.in_place()
    }
}

/// One silence a window wants, and whether Alertmanager holds it.
#[derive(Debug, Clone)]
pub struct SilenceState {
    pub window: String,
    pub matchers: String,
    /// The silence's id in Alertmanager; `None` until it was created.
    pub id: Option<String>,
    pub ends_at: Timestamp,
    pub error: Option<String>,
}

#[derive(Default)]
pub struct Silences {
    status: ArcSwap<SyncStatus>,
    /// Held through a step, so a slow step never stores its older view over a newer one's.
    stepping: tokio::sync::Mutex<()>,
    /// The client for the configuration it was built from; taken by steps only.
    cluster: Mutex<Option<(AlertmanagerConfig, Arc<Cluster>)>>,
}

impl Silences {
    pub fn status(&self) -> Arc<SyncStatus> {
        self.status.load_full()
    }

    /// One comparison of wanted and held silences, and the changes it calls for. `view`
    /// is read once the step's turn came.
    pub async fn step(&self, view: impl FnOnce() -> View) {
        let _one_at_a_time = self.stepping.lock().await;
        let View {
            config,
            windows,
            now,
            config_since,
        } = view();
        let (config, windows) = (config.as_ref(), windows.as_slice());
        let previous = self.status();
        let Some(am) = &config.alertmanager else {
            self.status.store(Arc::new(SyncStatus::default()));
            return;
        };
        let wanted = plan::wanted(config, am, windows, now);
        let mut status = SyncStatus {
            configured: true,
            last_attempt: Some(now),
            last_success: previous.last_success,
            alertmanager: previous.alertmanager.clone(),
            error: None,
            failures: previous.failures,
            silences: wanted
                .iter()
                .map(|w| SilenceState {
                    window: w.window.clone(),
                    matchers: matchers_text(&w.matchers),
                    id: None,
                    ends_at: w.ends_at,
                    error: None,
                })
                .collect(),
        };
        match self.cluster(am) {
            Ok(cluster) => {
                let plan = Plan {
                    config,
                    am,
                    windows,
                    wanted: &wanted,
                    now,
                    config_since,
                };
                sync(&cluster, &plan, &mut status).await
            }
            Err(e) => status.error = Some(e),
        }
        for s in status.silences.iter_mut().filter(|s| s.id.is_none()) {
            s.error.get_or_insert_with(|| {
                status
                    .error
                    .clone()
                    .unwrap_or_else(|| "not created yet".to_owned())
            });
        }
        match &status.error {
            None => status.last_success = Some(now),
            Some(e) => {
                status.failures += 1;
                if previous.error.as_deref() != Some(e.as_str()) {
                    tracing::error!(error = %e, "cannot keep maintenance silences in Alertmanager; retrying (the windows themselves are unaffected)");
                }
            }
        }
        if status.error.is_none() && previous.error.is_some() {
            tracing::info!("maintenance silences are in place in Alertmanager again");
        }
        self.status.store(Arc::new(status));
    }

    fn cluster(&self, am: &AlertmanagerConfig) -> Result<Arc<Cluster>, String> {
        let mut cached = self.cluster.lock().expect("no panic holds it");
        if let Some((config, cluster)) = cached.as_ref()
            && config == am
        {
            return Ok(cluster.clone());
        }
        let cluster = Arc::new(Cluster::new(am).map_err(|e| e.to_string())?);
        *cached = Some((am.clone(), cluster.clone()));
        Ok(cluster)
    }
}

/// What a step works from.
pub struct View {
    pub config: Arc<Config>,
    /// Every window this replica knows now.
    pub windows: Vec<Window>,
    pub now: Timestamp,
    /// When this replica's configuration last changed what its silences are made from
    /// (schedules, groups, `alertmanager:`); see [`plan::is_over`].
    pub config_since: Timestamp,
}

/// How long a step waits after one that failed: soon, but not in a tight loop.
pub fn retry_after(sync_interval: Duration) -> Duration {
    sync_interval.min(Duration::from_secs(5))
}

/// What one step works from.
struct Plan<'a> {
    config: &'a Config,
    am: &'a AlertmanagerConfig,
    windows: &'a [Window],
    wanted: &'a [plan::Wanted],
    now: Timestamp,
    config_since: Timestamp,
}

async fn sync(cluster: &Cluster, plan: &Plan<'_>, status: &mut SyncStatus) {
    let Plan {
        config,
        am,
        windows,
        wanted,
        now,
        config_since,
    } = *plan;
    let (member, held) = match cluster.list().await {
        Ok(v) => v,
        Err(e) => {
            status.error = Some(e.to_string());
            return;
        }
    };
    status.alertmanager = Some(cluster.url(member).to_string());
    let ours: Vec<(&Silence, &str, &str, Vec<Matcher>)> = held
        .iter()
        .filter(|s| s.is_live())
        .filter_map(|s| {
            let (window, scope) = plan::parse_marker(&am.owner, &s.comment)?;
            Some((s, window, scope, s.matchers()))
        })
        .collect();
    let mut claimed: HashSet<&str> = HashSet::new();
    let mut first_error = None;
    for (w, state) in wanted.iter().zip(status.silences.iter_mut()) {
        let mut same: Vec<&Silence> = ours
            .iter()
            .filter(|(_, window, _, matchers)| *window == w.window && *matchers == w.matchers)
            .map(|(s, ..)| *s)
            .collect();
        same.sort_by(|a, b| a.id.cmp(&b.id));
        claimed.extend(same.iter().map(|s| s.id.as_str()));
        // Two replicas that created one at once: both keep the smallest id.
        for extra in same.iter().skip(1) {
            if let Err(e) = cluster.expire(member, &extra.id).await {
                first_error.get_or_insert(e.to_string());
            }
        }
        let result = match same.first() {
            None => create(cluster, member, w, now).await,
            Some(kept) => keep(cluster, member, kept, w, am, now).await,
        };
        match result {
            Ok(id) => state.id = Some(id),
            Err(e) => {
                state.error = Some(e.clone());
                first_error.get_or_insert(e);
            }
        }
    }
    // Silences of windows that ended (or whose matchers the configuration no longer
    // lists) end now. Scopes this replica does not know belong to another shard's.
    for (s, window, scope, _) in &ours {
        if !claimed.contains(s.id.as_str())
            && config.is_scope(scope)
            && plan::is_over(window, windows, now, s.made_at(), config_since)
        {
            match cluster.expire(member, &s.id).await {
                Ok(()) => {
                    tracing::info!(silence = %s.id, "maintenance window over: its silence expired")
                }
                Err(e) => {
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
    }
    status.error = first_error;
}

async fn create(
    cluster: &Cluster,
    member: usize,
    w: &plan::Wanted,
    now: Timestamp,
) -> Result<String, String> {
    let post = PostSilence {
        id: None,
        matchers: am_matchers(&w.matchers),
        starts_at: now.to_string(),
        ends_at: w.ends_at.to_string(),
        created_by: &w.created_by,
        comment: &w.comment,
    };
    let id = cluster
        .post(member, &post)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(window = %w.window, silence = %id, matchers = %matchers_text(&w.matchers), ends_at = %w.ends_at, "maintenance silence created");
    Ok(id)
}

/// Moves a held silence's end to the window's: extended, shortened, or a lease renewed.
async fn keep(
    cluster: &Cluster,
    member: usize,
    held: &Silence,
    w: &plan::Wanted,
    am: &AlertmanagerConfig,
    now: Timestamp,
) -> Result<String, String> {
    let held_end = held.ends_at();
    let due = match held_end {
        None => true,
        Some(end) if w.leased => end < now + plan::lease(am.sync_interval) / 2,
        Some(end) => end.max(w.ends_at).since(end.min(w.ends_at)) > Duration::from_secs(1),
    };
    if !due {
        return Ok(held.id.clone());
    }
    let post = PostSilence {
        id: Some(&held.id),
        matchers: am_matchers(&w.matchers),
        starts_at: held.starts_at.clone(),
        ends_at: w.ends_at.to_string(),
        created_by: &held.created_by,
        comment: &held.comment,
    };
    let id = cluster
        .post(member, &post)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(window = %w.window, silence = %id, ends_at = %w.ends_at, "maintenance silence moved to the window's end");
    Ok(id)
}

fn matchers_text(matchers: &[Matcher]) -> String {
    let parts: Vec<String> = matchers.iter().map(Matcher::to_string).collect();
    format!("{{{}}}", parts.join(", "))
}
