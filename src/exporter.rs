//! The running exporter: the set of target tasks, the configuration they came from, and
//! reloads. Readers get `Arc` snapshots; nothing here is locked on the read path.

use crate::time::Timestamp;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{
    self, Config, ConfigError, ConfigSource, Discovered, DiscoveryFiles, FileStatus, Notice,
    Placement, Shard, TargetConfig, WebConfig,
};
use crate::groups::GroupSet;
use crate::maintenance::{self, AppFlag, Maintenance, Window};
use crate::runner::{TargetHandle, TargetRunner};
use crate::silences::{self, Silences, SyncStatus};

/// How the exporter finds its configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: ConfigSource,
    /// Instance name used when the configuration sets none (the host name).
    pub default_instance: String,
    /// dbvigil's own files: the maintenance store when `state.url` is not set.
    pub data_dir: PathBuf,
    /// `--web.config.file`: TLS and basic auth for dbvigil's own port, re-read on reload.
    pub web_config_file: Option<PathBuf>,
    /// `--shard.index`/`--shard.count`: the share of the configuration's targets this
    /// replica probes, applied on start and on every reload.
    pub shard: Shard,
}

/// Why the exporter could not start; the configuration itself was already validated.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid web configuration: {0}")]
    WebConfig(#[source] ConfigError),
    #[error("cannot set up the maintenance state store: {0}")]
    StateStore(#[source] maintenance::StoreError),
    #[error("cannot start the threads that probe the targets: {0}")]
    ProbeThreads(#[source] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct ReloadStatus {
    pub successful: bool,
    pub last_success_at: Timestamp,
    pub last_error: Option<String>,
}

/// How many target probe tasks are running: each holds a guard from its spawn until it
/// has ended, so a task that a reload cancelled counts until it really stops, and one that
/// a reload forgot to stop counts for ever (`dbvigil_probe_tasks` above the number of
/// configured targets).
#[derive(Debug, Clone, Default)]
pub struct ProbeTasks(Arc<AtomicUsize>);

impl ProbeTasks {
    pub fn running(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn enter(&self) -> ProbeTaskGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        ProbeTaskGuard(self.0.clone())
    }
}

/// Moved into a probe task's future: dropped when the task ends (or its future is dropped).
struct ProbeTaskGuard(Arc<AtomicUsize>);

impl Drop for ProbeTaskGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReloadSummary {
    pub kept: usize,
    pub started: usize,
    pub stopped: usize,
}

#[derive(Clone)]
pub struct Exporter {
    inner: Arc<Inner>,
}

/// One configuration and what runs for it, published whole: a reader that loads it once
/// (a scrape, an API answer) never mixes two reloads.
pub struct Generation {
    /// This replica's shard of the configuration: its targets and their groups only.
    pub config: Arc<Config>,
    /// Which shard this is, how many targets the whole configuration has, and which shard
    /// holds each of the others.
    pub placement: Arc<Placement>,
    /// In configuration order.
    pub targets: Arc<Vec<Arc<TargetHandle>>>,
    pub groups: Arc<GroupSet>,
    /// When what silences are made from (schedules, groups, `alertmanager:`) last changed
    /// here: the start, or the reload that changed it. Silences made before it that the
    /// configuration no longer wants are leftovers this replica ends; see
    /// `silences::plan::is_over`.
    pub silences_since: Timestamp,
}

impl Generation {
    /// Every window known now (stored, scheduled, application flags), from memory only.
    pub fn maintenance_windows(&self, maintenance: &Maintenance, now: Timestamp) -> Vec<Window> {
        let flags: Vec<(String, AppFlag)> = self
            .targets
            .iter()
            .filter_map(|t| {
                let flag = t.snapshot().app_flag.clone()?;
                Some((t.config.name.clone(), flag))
            })
            .collect();
        maintenance::all_windows(&self.config, &maintenance.stored(), &flags, now)
    }
}

struct Inner {
    settings: Settings,
    generation: ArcSwap<Generation>,
    /// The configuration as last loaded, before discovery and sharding: what a discovery
    /// refresh adds its targets to.
    loaded: ArcSwap<Config>,
    /// Each discovery file's last read; used only under `reload_lock`.
    discovery: Arc<std::sync::Mutex<DiscoveryFiles>>,
    /// The last refresh's targets (to tell whether anything changed) and files (for the
    /// scrape).
    discovered: ArcSwap<Discovered>,
    web: ArcSwap<WebConfig>,
    /// The groups the probe tasks feed: the current generation's, swapped with it.
    groups: Arc<ArcSwap<GroupSet>>,
    maintenance: Maintenance,
    silences: Silences,
    /// Wakes the silences loop when a window changed.
    silences_wake: tokio::sync::Notify,
    /// Told by a target's probe task when its application's flag turned on or off; wakes
    /// the tick that notices the app window opened or closed.
    flag_changed: Arc<tokio::sync::Notify>,
    /// The active windows and their ends as of the last tick, to tell when they change.
    open_windows: std::sync::Mutex<Vec<(String, Option<Timestamp>)>>,
    reload_status: ArcSwap<ReloadStatus>,
    /// Serialises reloads; never taken by readers.
    reload_lock: tokio::sync::Mutex<()>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    probes: ProbeRuntime,
    probe_tasks: ProbeTasks,
}

impl Settings {
    fn load_web(&self) -> Result<WebConfig, ConfigError> {
        match &self.web_config_file {
            Some(path) => config::load_web_file(path),
            None => Ok(WebConfig::default()),
        }
    }
}

/// The threads every probe task runs on, apart from the HTTP server's. Sharing one runtime,
/// a flood of 200 scraping connections queued so many HTTP tasks ahead of each probe's
/// next step that server probes missed their 1 s deadline: the flood made databases look
/// down. On threads of their own, probes get the CPU when they wake, whatever HTTP does.
struct ProbeRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl ProbeRuntime {
    fn new() -> std::io::Result<ProbeRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("dbvigil-probe")
            .enable_all()
            .build()?;
        Ok(ProbeRuntime {
            runtime: Some(runtime),
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("the probe runtime lives as long as the exporter")
            .handle()
    }
}

impl Drop for ProbeRuntime {
    fn drop(&mut self) {
        // The exporter may be dropped inside another runtime, where blocking is not allowed.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Exporter {
    /// Starts one probing task per target and the maintenance refresh loop. Must be called
    /// inside a Tokio runtime. Fails only when the state store cannot be set up.
    pub fn start(settings: Settings, config: Config) -> Result<Exporter, StartError> {
        let web = settings.load_web().map_err(StartError::WebConfig)?;
        let maintenance =
            Maintenance::new(&settings.data_dir, &config.state).map_err(StartError::StateStore)?;
        let probes = ProbeRuntime::new().map_err(StartError::ProbeThreads)?;
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let probe_tasks = ProbeTasks::default();
        let mut discovery = DiscoveryFiles::default();
        let discovered = discover(&mut discovery, &config);
        let loaded = Arc::new(config);
        let (config, placement) = settings.shard.split(with_discovered(&loaded, &discovered));
        let group_set = Arc::new(GroupSet::new(&config, None));
        let groups = Arc::new(ArcSwap::new(group_set.clone()));
        let flag_changed = Arc::new(tokio::sync::Notify::new());
        let handles = config
            .targets
            .iter()
            .map(|t| {
                spawn_target(
                    &Shared {
                        tracker: &tracker,
                        probes: probes.handle(),
                        probe_tasks: &probe_tasks,
                        cancel: &cancel,
                        groups: &groups,
                        flag_changed: &flag_changed,
                    },
                    Arc::new(t.clone()),
                    &config.instance,
                )
            })
            .collect();
        let exporter = Exporter {
            inner: Arc::new(Inner {
                settings,
                loaded: ArcSwap::new(loaded),
                discovery: Arc::new(std::sync::Mutex::new(discovery)),
                discovered: ArcSwap::from_pointee(discovered),
                generation: ArcSwap::from_pointee(Generation {
                    config: Arc::new(config),
                    placement: Arc::new(placement),
                    targets: Arc::new(handles),
                    groups: group_set,
                    silences_since: Timestamp::now(),
                }),
                web: ArcSwap::from_pointee(web),
                groups,
                maintenance,
                silences: Silences::default(),
                silences_wake: tokio::sync::Notify::new(),
                flag_changed,
                open_windows: Default::default(),
                reload_status: ArcSwap::from_pointee(ReloadStatus {
                    successful: true,
                    last_success_at: Timestamp::now(),
                    last_error: None,
                }),
                reload_lock: tokio::sync::Mutex::new(()),
                tracker,
                cancel,
                probes,
                probe_tasks,
            }),
        };
        let looping = exporter.clone();
        exporter
            .inner
            .tracker
            .spawn(async move { looping.maintenance_loop().await });
        let looping = exporter.clone();
        exporter
            .inner
            .tracker
            .spawn(async move { looping.discovery_loop().await });
        let looping = exporter.clone();
        exporter
            .inner
            .tracker
            .spawn(async move { looping.silences_loop().await });
        let looping = exporter.clone();
        exporter
            .inner
            .tracker
            .spawn(async move { looping.app_flag_loop().await });
        Ok(exporter)
    }

    pub fn maintenance(&self) -> &Maintenance {
        &self.inner.maintenance
    }

    /// Every window known now (stored, scheduled, application flags), from memory only.
    pub fn maintenance_windows(&self, now: Timestamp) -> Vec<Window> {
        self.generation()
            .maintenance_windows(&self.inner.maintenance, now)
    }

    /// One step of the maintenance loop: re-read the store, then count the windows that
    /// started. Tests call it to skip the wait.
    pub async fn maintenance_step(&self) {
        let _ = self.inner.maintenance.refresh().await;
        self.maintenance_tick();
    }

    /// Counts windows that became active; in memory only.
    pub fn maintenance_tick(&self) {
        let now = Timestamp::now();
        let windows = self.maintenance_windows(now);
        self.inner.maintenance.tick(&windows, now);
        // A window that opened, moved or ended wants its silences changed now, not at the
        // next sync.
        let open: Vec<(String, Option<Timestamp>)> = windows
            .iter()
            .filter(|w| w.is_active(now))
            .map(|w| (w.id.clone(), w.end()))
            .collect();
        let mut last = self.inner.open_windows.lock().expect("no panic holds it");
        if *last != open {
            *last = open;
            self.inner.silences_wake.notify_one();
        }
    }

    /// One step of the silences loop: the silences the open windows want, made so in
    /// Alertmanager. Tests call it to skip the wait.
    pub async fn silences_step(&self) {
        self.inner
            .silences
            .step(|| {
                let now = Timestamp::now();
                let generation = self.generation();
                silences::View {
                    windows: generation.maintenance_windows(&self.inner.maintenance, now),
                    config: generation.config.clone(),
                    now,
                    config_since: generation.silences_since,
                }
            })
            .await;
    }

    /// How the silences in Alertmanager stand, as of the last step; from memory.
    pub fn silences(&self) -> Arc<SyncStatus> {
        self.inner.silences.status()
    }

    async fn silences_loop(self) {
        loop {
            let wait = match &self.config().alertmanager {
                None => None,
                Some(am) if self.silences().error.is_some() => {
                    Some(silences::retry_after(am.sync_interval))
                }
                Some(am) => Some(am.sync_interval),
            };
            // Without `alertmanager:`, only a window change or a reload wakes it.
            let sleep = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(3600)));
            tokio::select! {
                _ = self.inner.cancel.cancelled() => break,
                _ = self.inner.silences_wake.notified() => {}
                _ = sleep => {}
            }
            self.silences_step().await;
        }
    }

    /// Ticks when an application's flag turned on or off, as an API change does: the app
    /// window opens or closes now, and the silences loop is woken. A tick reads memory
    /// only, so neither the probe that told nor this task waits on the store or on
    /// Alertmanager; the maintenance loop, which also re-reads the store, may be waiting
    /// on it.
    async fn app_flag_loop(self) {
        loop {
            tokio::select! {
                _ = self.inner.cancel.cancelled() => break,
                _ = self.inner.flag_changed.notified() => {}
            }
            self.maintenance_tick();
        }
    }

    async fn maintenance_loop(self) {
        loop {
            self.maintenance_step().await;
            let wait = self.config().state.refresh_interval;
            tokio::select! {
                _ = self.inner.cancel.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The running configuration and its targets and groups, as one consistent whole.
    pub fn generation(&self) -> Arc<Generation> {
        self.inner.generation.load_full()
    }

    pub fn config(&self) -> Arc<Config> {
        self.generation().config.clone()
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn targets(&self) -> Arc<Vec<Arc<TargetHandle>>> {
        self.generation().targets.clone()
    }

    pub fn target(&self, name: &str) -> Option<Arc<TargetHandle>> {
        self.targets()
            .iter()
            .find(|t| t.config.name == name)
            .cloned()
    }

    pub fn groups(&self) -> Arc<GroupSet> {
        self.generation().groups.clone()
    }

    /// TLS and basic auth for dbvigil's own port, as of the last successful (re)load.
    pub fn web(&self) -> Arc<WebConfig> {
        self.inner.web.load_full()
    }

    pub fn reload_status(&self) -> Arc<ReloadStatus> {
        self.inner.reload_status.load_full()
    }

    /// Each discovery file's state as of the last refresh, from memory.
    pub fn target_files(&self) -> Arc<Vec<FileStatus>> {
        Arc::new(self.inner.discovered.load().files.clone())
    }

    /// Target probe tasks running now, including any a reload stopped that has not ended yet.
    pub fn probe_tasks(&self) -> usize {
        self.inner.probe_tasks.running()
    }

    /// Re-reads the configuration and the web configuration file. An invalid one of either
    /// changes nothing and is reported; valid ones keep the tasks (and history) of unchanged
    /// targets, start new or changed ones, stop removed ones, and apply to the next
    /// connection and request on dbvigil's own port.
    pub async fn reload(&self) -> Result<ReloadSummary, ConfigError> {
        let _guard = self.inner.reload_lock.lock().await;
        let settings = self.inner.settings.clone();
        let files = self.inner.discovery.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let web = settings.load_web()?;
            let config = settings.source.load(&settings.default_instance)?;
            let discovered = discover(&mut files.lock().expect("no panic holds it"), &config);
            Ok::<_, ConfigError>((config, discovered, web))
        })
        .await
        .expect("configuration loading does not panic");
        // A new state store is the one part of applying that can fail, so it is opened
        // and asked first: a reload either applies whole or changes nothing.
        let loaded = match loaded {
            Ok((config, discovered, web)) => {
                match self.inner.maintenance.prepare_store(&config.state).await {
                    Ok(store) => Ok((config, discovered, web, store)),
                    Err(e) => Err(ConfigError::StateStore(e.to_string())),
                }
            }
            Err(e) => Err(e),
        };
        let (config, discovered, web, store) = match loaded {
            Ok(both) => both,
            Err(e) => {
                let previous = self.reload_status();
                self.inner.reload_status.store(Arc::new(ReloadStatus {
                    successful: false,
                    last_success_at: previous.last_success_at,
                    last_error: Some(e.to_string()),
                }));
                tracing::error!(error = %e, "configuration reload failed; keeping the running configuration");
                return Err(e);
            }
        };
        if let Some(store) = store {
            self.inner.maintenance.switch_store(store);
        }
        self.inner.web.store(Arc::new(web));
        let config = Arc::new(config);
        let summary = self.apply(with_discovered(&config, &discovered));
        self.inner.loaded.store(config);
        self.inner.discovered.store(Arc::new(discovered));
        // `alertmanager:` may have appeared, moved or changed its matchers.
        self.inner.silences_wake.notify_one();
        self.inner.reload_status.store(Arc::new(ReloadStatus {
            successful: true,
            last_success_at: Timestamp::now(),
            last_error: None,
        }));
        tracing::info!(
            kept = summary.kept,
            started = summary.started,
            stopped = summary.stopped,
            "configuration reloaded"
        );
        Ok(summary)
    }

    /// One refresh of the discovery files: targets of new or changed files start, those of
    /// removed ones stop, the rest keep their state and schedule; a bad file keeps its
    /// previous targets. Returns what changed, if anything did. Tests call it to skip the
    /// wait.
    pub async fn discovery_step(&self) -> Option<ReloadSummary> {
        let _guard = self.inner.reload_lock.lock().await;
        let config = self.inner.loaded.load_full();
        if config.target_files.is_empty() && self.inner.discovered.load().files.is_empty() {
            return None;
        }
        let files = self.inner.discovery.clone();
        let from = config.clone();
        let discovered = tokio::task::spawn_blocking(move || {
            discover(&mut files.lock().expect("no panic holds it"), &from)
        })
        .await
        .expect("reading discovery files does not panic");
        let changed = discovered.targets != self.inner.discovered.load().targets;
        let summary = changed.then(|| self.apply(with_discovered(&config, &discovered)));
        self.inner.discovered.store(Arc::new(discovered));
        if let Some(s) = &summary {
            tracing::info!(
                kept = s.kept,
                started = s.started,
                stopped = s.stopped,
                "discovered targets changed"
            );
        }
        summary
    }

    async fn discovery_loop(self) {
        loop {
            let wait = self
                .inner
                .loaded
                .load()
                .target_files
                .iter()
                .map(|b| b.refresh_interval)
                .min()
                .unwrap_or(config::DEFAULT_REFRESH);
            tokio::select! {
                _ = self.inner.cancel.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
            self.discovery_step().await;
        }
    }

    fn apply(&self, config: Config) -> ReloadSummary {
        let (config, placement) = self.inner.settings.shard.split(config);
        let old_config = self.config();
        let mut old: HashMap<String, Arc<TargetHandle>> = self
            .targets()
            .iter()
            .map(|h| (h.config.name.clone(), h.clone()))
            .collect();
        let mut summary = ReloadSummary::default();
        let same_instance = old_config.instance == config.instance;
        let handles: Vec<Arc<TargetHandle>> = config
            .targets
            .iter()
            .map(|t| match old.remove(&t.name) {
                Some(h) if same_instance && *h.config == *t => {
                    summary.kept += 1;
                    h
                }
                previous => {
                    if let Some(h) = previous {
                        h.stop();
                        summary.stopped += 1;
                    }
                    summary.started += 1;
                    spawn_target(
                        &Shared {
                            tracker: &self.inner.tracker,
                            probes: self.inner.probes.handle(),
                            probe_tasks: &self.inner.probe_tasks,
                            cancel: &self.inner.cancel,
                            groups: &self.inner.groups,
                            flag_changed: &self.inner.flag_changed,
                        },
                        Arc::new(t.clone()),
                        &config.instance,
                    )
                }
            })
            .collect();
        for h in old.values() {
            h.stop();
            summary.stopped += 1;
        }
        let groups = Arc::new(GroupSet::new(&config, Some(&self.groups())));
        self.inner.groups.store(groups.clone());
        let same_silences = old_config.maintenance.schedules == config.maintenance.schedules
            && old_config.groups == config.groups
            && old_config.alertmanager == config.alertmanager;
        let silences_since = if same_silences {
            self.generation().silences_since
        } else {
            Timestamp::now()
        };
        self.inner.generation.store(Arc::new(Generation {
            config: Arc::new(config),
            placement: Arc::new(placement),
            targets: Arc::new(handles),
            groups,
            silences_since,
        }));
        summary
    }

    /// Stops every probing task and waits for them to end.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}

/// Reads the discovery files `config` names and logs what changed about each.
fn discover(files: &mut DiscoveryFiles, config: &Config) -> Discovered {
    let taken: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
    let (discovered, notices) = files.refresh(&config.target_files, &taken);
    for notice in notices {
        match notice {
            Notice::Read { path, targets } => {
                tracing::info!(file = %path.display(), targets, "discovery file read")
            }
            Notice::Invalid { path, error, kept } => tracing::error!(
                file = %path.display(), %error, kept,
                "invalid discovery file: keeping its previous targets until it is fixed"
            ),
            Notice::Gone { path, targets } => tracing::info!(
                file = %path.display(), targets,
                "discovery file no longer matched: its targets stop"
            ),
        }
    }
    discovered
}

/// The loaded configuration with the discovered targets after its own.
fn with_discovered(config: &Config, discovered: &Discovered) -> Config {
    let mut config = config.clone();
    config.targets.extend(discovered.targets.iter().cloned());
    config
}

/// What every target's tasks share.
struct Shared<'a> {
    tracker: &'a TaskTracker,
    probes: &'a tokio::runtime::Handle,
    probe_tasks: &'a ProbeTasks,
    cancel: &'a CancellationToken,
    groups: &'a Arc<ArcSwap<GroupSet>>,
    flag_changed: &'a Arc<tokio::sync::Notify>,
}

fn spawn_target(shared: &Shared, config: Arc<TargetConfig>, instance: &str) -> Arc<TargetHandle> {
    let runner = TargetRunner::new(
        config,
        instance,
        shared.cancel,
        shared.groups.clone(),
        shared.flag_changed.clone(),
    );
    let handle = runner.handle();
    let counted = shared.probe_tasks.enter();
    shared.tracker.spawn_on(
        async move {
            let _counted = counted;
            runner.run().await;
        },
        shared.probes,
    );
    if handle.config.migrations.is_some() {
        shared
            .tracker
            .spawn_on(handle.clone().watch_migrations(), shared.probes);
    }
    handle
}
