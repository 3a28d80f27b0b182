//! Probers: one module per database kind behind one signature. A prober returns a
//! [`ProbeReport`] value (each phase's outcome and duration, read-only state, identity) and
//! knows nothing of HTTP, metrics or scheduling.

pub mod mysql;
mod net;
pub mod postgres;
mod server;
mod sqlite;
mod tcp;
mod trace;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::time::Timestamp;

use crate::config::{Check, Endpoint, Kind, TargetConfig};

pub use trace::Trace;

/// What a probe cycle needs besides the target's own configuration.
#[derive(Debug, Clone)]
pub struct ProbeContext {
    /// This exporter's instance: whose row a replica reads for the primary's heartbeat.
    pub instance: String,
    /// The instance column of the row this probe writes and reads back. Continuous and
    /// on-demand probes keep a row each, so neither ever reads back the other's beat.
    pub beat_row: String,
    /// The whole cycle must end by then; every phase gets what is left.
    pub timeout: Duration,
    /// The probe's own log, recorded only for `/probe?debug=true`.
    pub trace: Trace,
}

impl ProbeContext {
    /// The target's own schedule.
    pub fn continuous(instance: &str, timeout: Duration) -> Self {
        ProbeContext {
            instance: instance.to_owned(),
            beat_row: instance.to_owned(),
            timeout,
            trace: Trace::default(),
        }
    }

    /// `/probe`, while the continuous probe of the same target goes on.
    pub fn on_demand(instance: &str, timeout: Duration) -> Self {
        ProbeContext {
            instance: instance.to_owned(),
            beat_row: format!("{instance}/probe"),
            timeout,
            trace: Trace::default(),
        }
    }
}

pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = ProbeReport> + Send + 'a>>;

/// One database kind's probe. Implementations keep whatever they reuse between cycles
/// (a connection in `connection: reuse` mode, a write sequence number).
pub trait Prober: Send {
    fn probe<'a>(&'a mut self, ctx: &'a ProbeContext) -> ProbeFuture<'a>;
}

/// The dispatch table: the prober for a target's kind.
pub fn new_prober(target: &TargetConfig) -> Box<dyn Prober> {
    match (&target.endpoint, target.kind) {
        (Endpoint::Sqlite { path, create }, _) => {
            Box::new(sqlite::SqliteProber::new(target, path, *create))
        }
        (Endpoint::Server(s), Kind::Postgres) => Box::new(server::ServerProber::new(
            target,
            s,
            postgres::Postgres::new(s),
        )),
        (Endpoint::Server(s), _) => {
            Box::new(server::ServerProber::new(target, s, mysql::MySql::new(s)))
        }
        (Endpoint::Tcp { host, port }, _) => Box::new(tcp::TcpProber::new(host, *port)),
    }
}

/// The phases a target's prober can run (for the latency histograms): a server behind a
/// bastion has the bastion's phase first.
pub fn phases(target: &TargetConfig) -> &'static [Phase] {
    match (&target.endpoint, target.kind) {
        (Endpoint::Server(s), _) if s.ssh.is_some() => &Phase::ALL,
        (_, Kind::Sqlite) => &[Phase::Connect, Phase::Read, Phase::Write, Phase::ReadOnly],
        (_, Kind::Postgres | Kind::Mysql) => &Phase::ALL[1..],
        (_, Kind::Tcp) => &[Phase::Tcp],
    }
}

/// The failure reasons a target can have: the bastion's only behind a bastion, so that
/// every other target keeps its series.
pub fn reasons(target: &TargetConfig) -> &'static [Reason] {
    match &target.endpoint {
        Endpoint::Server(s) if s.ssh.is_some() => &Reason::ALL,
        _ => &Reason::ALL[..Reason::BASTION_FIRST],
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The SSH session to the bastion, for a target behind one.
    Bastion,
    Tcp,
    Connect,
    Read,
    Write,
    ReadOnly,
    Identity,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Bastion,
        Phase::Tcp,
        Phase::Connect,
        Phase::Read,
        Phase::Write,
        Phase::ReadOnly,
        Phase::Identity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Bastion => "bastion",
            Phase::Tcp => "tcp",
            Phase::Connect => "connect",
            Phase::Read => "read",
            Phase::Write => "write",
            Phase::ReadOnly => "read_only",
            Phase::Identity => "identity",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The user-facing check a phase answers for; read-only state and identity are facts
    /// about the server, not checks that fail a probe.
    pub fn check(self) -> Option<Check> {
        match self {
            Phase::Tcp => Some(Check::Tcp),
            Phase::Connect => Some(Check::Connect),
            Phase::Read => Some(Check::Read),
            Phase::Write => Some(Check::Write),
            // Every check needs the bastion: its failure fails them all (see
            // `ProbeReport::failure`), as a failed login fails read and write.
            Phase::Bastion | Phase::ReadOnly | Phase::Identity => None,
        }
    }
}

/// Why a phase failed: a small fixed set, so that alerts can tell failures apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The phase did not finish within the target's timeout.
    Timeout,
    /// The host name did not resolve.
    Dns,
    /// Nothing listens on the port.
    Refused,
    /// TLS negotiation or certificate verification failed.
    Tls,
    /// The server rejected the credentials.
    Auth,
    /// The server refused a new connection because it is full.
    TooManyConnections,
    /// The database (file, or database on the server) does not exist.
    NotFound,
    /// Another session holds a lock the probe needs.
    Locked,
    /// The database refused a write because it is read-only.
    ReadOnly,
    /// The heartbeat read back is not what was just written.
    Mismatch,
    /// The server answered with an error to a probe statement.
    Query,
    /// The connection or the file failed below SQL (reset, I/O error, corrupt file).
    Io,
    /// The bastion's name did not resolve.
    BastionDns,
    /// Nothing listens on the bastion's SSH port.
    BastionRefused,
    /// The bastion did not answer within the timeout (down, frozen, packets lost).
    BastionTimeout,
    /// The bastion presented a host key that is not the pinned one.
    BastionHostKey,
    /// The bastion refused the login.
    BastionAuth,
    /// The bastion does not allow forwarding to the database.
    BastionDenied,
    /// The SSH session broke or its handshake failed.
    BastionIo,
}

impl Reason {
    /// Where the bastion's reasons start in [`Reason::ALL`].
    pub const BASTION_FIRST: usize = 12;

    pub const ALL: [Reason; 19] = [
        Reason::Timeout,
        Reason::Dns,
        Reason::Refused,
        Reason::Tls,
        Reason::Auth,
        Reason::TooManyConnections,
        Reason::NotFound,
        Reason::Locked,
        Reason::ReadOnly,
        Reason::Mismatch,
        Reason::Query,
        Reason::Io,
        Reason::BastionDns,
        Reason::BastionRefused,
        Reason::BastionTimeout,
        Reason::BastionHostKey,
        Reason::BastionAuth,
        Reason::BastionDenied,
        Reason::BastionIo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Dns => "dns",
            Reason::Refused => "refused",
            Reason::Tls => "tls",
            Reason::Auth => "auth",
            Reason::TooManyConnections => "too_many_connections",
            Reason::NotFound => "not_found",
            Reason::Locked => "locked",
            Reason::ReadOnly => "read_only",
            Reason::Mismatch => "mismatch",
            Reason::Query => "query",
            Reason::Io => "io",
            Reason::BastionDns => "bastion_dns",
            Reason::BastionRefused => "bastion_refused",
            Reason::BastionTimeout => "bastion_timeout",
            Reason::BastionHostKey => "bastion_host_key",
            Reason::BastionAuth => "bastion_auth",
            Reason::BastionDenied => "bastion_denied",
            Reason::BastionIo => "bastion_io",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    /// A sentence for humans; never holds a credential (see [`ProbeReport::redact`]).
    pub message: String,
}

impl Failure {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PhaseOutcome {
    pub phase: Phase,
    pub duration: Duration,
    pub result: Result<(), Failure>,
}

/// Who answered: what tells one server (or file) apart from another. A change between two
/// successful probes is how a switchover or failover shows up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Stable key compared between probes (e.g. `dev=2049 ino=1234` for SQLite).
    pub key: String,
    pub version: String,
}

#[derive(Debug, Clone)]
pub struct ProbeReport {
    pub started_at: Timestamp,
    pub duration: Duration,
    /// The phases that ran, in order. A phase after a failed one does not run.
    pub phases: Vec<PhaseOutcome>,
    pub read_only: Option<bool>,
    pub identity: Option<Identity>,
    /// On a replica (`replica_of`), the age of the primary's heartbeat as read here.
    pub replication_lag: Option<Duration>,
    /// The application's maintenance flag (`maintenance_query`); `None` when not
    /// configured or the probe ended before it could ask.
    pub maintenance_flag: Option<Result<bool, Failure>>,
    /// Heartbeats the database acknowledged that this probe's read no longer found.
    pub lost_writes: Option<LostWrites>,
    /// The heartbeat this probe wrote and read back: set only when its write check passed,
    /// so the database acknowledged it. A failover group remembers each member's last one.
    pub acknowledged: Option<Beat>,
    /// On a replica (`replica_of`), the primary target's heartbeat row (this exporter's
    /// instance) as this probe's read found it; `None` when the target is no replica, the
    /// read did not run or failed, or the row is missing. A failover group compares it with
    /// the primary's last acknowledged heartbeat when the replica takes over.
    pub primary_beat: Option<Beat>,
}

/// Acknowledged writes a database no longer holds: a failover to a standby that had not
/// received them, a restore, a rollback. Counted at heartbeat granularity, so a lower bound
/// of what applications lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LostWrites {
    /// Heartbeats acknowledged after the one that survived.
    pub writes: u64,
    /// From the surviving heartbeat to the last acknowledged one.
    pub span: Duration,
}

impl LostWrites {
    /// What reading `found` tells, when `acknowledged` was the last write the database
    /// confirmed: a row older than that lost the writes in between. A missing row says
    /// nothing: a new server, or a table someone dropped, has no history to compare.
    pub fn between(acknowledged: Beat, found: Option<Beat>) -> Option<LostWrites> {
        let found = found?;
        (found.seq < acknowledged.seq).then(|| LostWrites {
            writes: (acknowledged.seq - found.seq) as u64,
            span: acknowledged.at.since(found.at),
        })
    }
}

impl ProbeReport {
    /// Whether each configured check succeeded; a check whose phase never ran failed.
    pub fn check_results<'a>(
        &'a self,
        checks: &'a [Check],
    ) -> impl Iterator<Item = (Check, bool)> + 'a {
        checks.iter().map(|&check| {
            let ok = self
                .phases
                .iter()
                .any(|p| p.phase.check() == Some(check) && p.result.is_ok());
            (check, ok)
        })
    }

    pub fn success(&self, checks: &[Check]) -> bool {
        self.check_results(checks).all(|(_, ok)| ok)
    }

    /// Why the probe failed: the first failed check phase, including one that ran only
    /// because a configured check needs it (a failed login when only `read` is checked);
    /// else the failed phase that stopped the checks (a standby's read-only query that
    /// timed out before its write was decided).
    pub fn failure(&self, checks: &[Check]) -> Option<&Failure> {
        if self.success(checks) {
            return None;
        }
        self.phases
            .iter()
            .filter(|p| p.phase.check().is_some())
            .find_map(|p| p.result.as_ref().err())
            .or_else(|| self.phases.iter().find_map(|p| p.result.as_ref().err()))
    }

    /// Why `check` did not pass: its own phase's failure, or, for a write that was not
    /// asked of a server standing by read-only, that; else the probe's first failure.
    pub fn check_failure(&self, checks: &[Check], check: Check) -> Option<Failure> {
        let own = self
            .phases
            .iter()
            .find(|p| p.phase.check() == Some(check))
            .and_then(|p| p.result.as_ref().err());
        if let Some(f) = own {
            return Some(f.clone());
        }
        if check == Check::Write && self.read_only == Some(true) {
            return Some(not_asked_to_write());
        }
        self.failure(checks).cloned()
    }

    pub fn phase(&self, phase: Phase) -> Option<&PhaseOutcome> {
        self.phases.iter().find(|p| p.phase == phase)
    }

    /// Replaces every secret in every message. Drivers sometimes echo what they were given
    /// (a URL, a connection string); this is the one place that makes sure none survives.
    pub fn redact(&mut self, secrets: &[&str]) {
        for p in &mut self.phases {
            if let Err(f) = &mut p.result {
                f.message = crate::connect::redact(&f.message, secrets);
            }
        }
        if let Some(Err(f)) = &mut self.maintenance_flag {
            f.message = crate::connect::redact(&f.message, secrets);
        }
    }
}

/// A write not attempted because the server stands by read-only (role standby or either).
pub fn not_asked_to_write() -> Failure {
    Failure::new(
        Reason::ReadOnly,
        "the server is read-only (standing by), so it was not asked to write",
    )
}

/// Runs a probe's phases against one deadline and collects their outcomes; shared by
/// every prober so that timing and timeouts mean the same thing for every kind.
pub struct PhaseRunner {
    started: Instant,
    started_at: Timestamp,
    deadline: Instant,
    phases: Vec<PhaseOutcome>,
    trace: Trace,
}

impl PhaseRunner {
    /// Notes each phase's outcome and time in `trace`.
    pub fn new(timeout: Duration, trace: &Trace) -> Self {
        let started = Instant::now();
        PhaseRunner {
            started,
            started_at: Timestamp::now(),
            deadline: started + timeout,
            phases: Vec::with_capacity(6),
            trace: trace.clone(),
        }
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Runs one phase bounded by the deadline and records it. Returns the value on success.
    pub async fn run<T>(
        &mut self,
        phase: Phase,
        fut: impl Future<Output = Result<T, Failure>>,
    ) -> Option<T> {
        let start = Instant::now();
        self.trace.enter(Some(phase));
        self.trace.note(|| {
            format!(
                "started, {} left of the probe timeout",
                seconds(self.remaining())
            )
        });
        let result = match tokio::time::timeout_at(self.deadline.into(), fut).await {
            Ok(r) => r,
            Err(_) if phase == Phase::Bastion => Err(Failure::new(
                Reason::BastionTimeout,
                "the bastion did not answer within the probe timeout: it is down, frozen, or its packets are lost",
            )),
            Err(_) => Err(Failure::new(
                Reason::Timeout,
                format!("{} did not finish within the probe timeout", phase.as_str()),
            )),
        };
        let duration = start.elapsed();
        self.trace.note(|| match &result {
            Ok(_) => format!("succeeded in {}", seconds(duration)),
            Err(f) => format!(
                "failed after {} with reason {}: {}",
                seconds(duration),
                f.reason.as_str(),
                f.message
            ),
        });
        self.trace.enter(None);
        let (value, result) = match result {
            Ok(v) => (Some(v), Ok(())),
            Err(f) => (None, Err(f)),
        };
        self.phases.push(PhaseOutcome {
            phase,
            duration,
            result,
        });
        value
    }

    pub fn last_failure_reason(&self) -> Option<Reason> {
        self.phases
            .last()
            .and_then(|p| p.result.as_ref().err())
            .map(|f| f.reason)
    }

    pub fn finish(self, read_only: Option<bool>, identity: Option<Identity>) -> ProbeReport {
        ProbeReport {
            started_at: self.started_at,
            duration: self.started.elapsed(),
            phases: self.phases,
            read_only,
            identity,
            replication_lag: None,
            maintenance_flag: None,
            lost_writes: None,
            acknowledged: None,
            primary_beat: None,
        }
    }
}

/// A duration as the probe's log writes it: seconds, to the tenth of a millisecond.
pub fn seconds(d: Duration) -> String {
    format!("{:.4}s", d.as_secs_f64())
}

/// Runs `fut` within `budget`; running out is a `timeout` failure naming `what`.
pub async fn bounded<T>(
    budget: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::time::timeout(budget, fut).await.unwrap_or_else(|_| {
        Err(Failure::new(
            Reason::Timeout,
            format!("{what} did not finish within the probe timeout"),
        ))
    })
}

/// The first column of the first row of a `maintenance_query`, as the driver decoded it.
#[derive(Debug, Clone, PartialEq)]
pub enum FlagValue {
    /// No row, or NULL.
    Missing,
    Bool(bool),
    Int(i64),
    Text(String),
}

impl FlagValue {
    /// Whether the application says it is in maintenance: true, a non-zero number, or one
    /// of `t`, `true`, `y`, `yes`, `on`; no row and NULL mean no.
    pub fn truthy(self) -> Result<bool, Failure> {
        match self {
            FlagValue::Missing => Ok(false),
            FlagValue::Bool(b) => Ok(b),
            FlagValue::Int(i) => Ok(i != 0),
            FlagValue::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                "t" | "true" | "y" | "yes" | "on" => Ok(true),
                "" | "f" | "false" | "n" | "no" | "off" => Ok(false),
                n if n.parse::<f64>().is_ok() => Ok(n.parse::<f64>() != Ok(0.0)),
                _ => Err(Failure::new(
                    Reason::Query,
                    format!(
                        "maintenance_query returned {:?}: make its first column a boolean, a number, or one of true/false, yes/no, on/off",
                        t.chars().take(40).collect::<String>()
                    ),
                )),
            },
        }
    }
}

/// Reads the first column of a `maintenance_query` row, whatever its type in the driver.
pub fn flag_value<R: sqlx::Row>(row: &R) -> Result<FlagValue, Failure>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i16: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i8: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    use sqlx::{Column, TypeInfo, ValueRef};
    let Some(column) = row.columns().first() else {
        return Err(Failure::new(
            Reason::Query,
            "maintenance_query returned no column: select the flag, like SELECT maintenance FROM service_context LIMIT 1",
        ));
    };
    let raw = row
        .try_get_raw(0)
        .map_err(|e| Failure::new(Reason::Query, e.to_string()))?;
    if raw.is_null() {
        return Ok(FlagValue::Missing);
    }
    if let Ok(v) = row.try_get::<bool, _>(0) {
        return Ok(FlagValue::Bool(v));
    }
    if let Ok(v) = row.try_get::<i64, _>(0) {
        return Ok(FlagValue::Int(v));
    }
    if let Ok(v) = row.try_get::<i32, _>(0) {
        return Ok(FlagValue::Int(v.into()));
    }
    if let Ok(v) = row.try_get::<i16, _>(0) {
        return Ok(FlagValue::Int(v.into()));
    }
    if let Ok(v) = row.try_get::<i8, _>(0) {
        return Ok(FlagValue::Int(v.into()));
    }
    if let Ok(v) = row.try_get::<String, _>(0) {
        return Ok(FlagValue::Text(v));
    }
    Err(Failure::new(
        Reason::Query,
        format!(
            "maintenance_query's first column has type {}: cast it to a boolean, an integer or text",
            column.type_info().name()
        ),
    ))
}

/// A heartbeat value unique to one write: the read-back must return exactly this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beat {
    pub seq: i64,
    /// When it was written: the replica's lag is the time since.
    pub at: Timestamp,
}

impl Beat {
    /// The write round trip: what was read back right after the write must be this beat.
    pub fn verify(self, read_back: Option<Beat>) -> Result<(), Failure> {
        match read_back {
            Some(back) if back == self => Ok(()),
            Some(back) => Err(Failure::new(
                Reason::Mismatch,
                format!(
                    "heartbeat read back seq {}, expected {}",
                    back.seq, self.seq
                ),
            )),
            None => Err(Failure::new(
                Reason::Mismatch,
                "heartbeat row missing right after it was written",
            )),
        }
    }

    pub fn next(seq: &mut i64) -> Beat {
        *seq += 1;
        Beat {
            seq: *seq,
            at: Timestamp::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_implicit_connect_failure_is_the_reason_when_only_read_is_checked() {
        let mut r = PhaseRunner::new(Duration::from_secs(1), &Trace::default()).finish(None, None);
        r.phases.push(PhaseOutcome {
            phase: Phase::Connect,
            duration: Duration::ZERO,
            result: Err(Failure::new(Reason::Auth, "password authentication failed")),
        });
        let checks = [Check::Read];
        assert!(!r.success(&checks));
        assert_eq!(r.failure(&checks).map(|f| f.reason), Some(Reason::Auth));
        // A failed phase that is no check (identity) never fails a probe.
        let mut ok = PhaseRunner::new(Duration::from_secs(1), &Trace::default()).finish(None, None);
        for (phase, result) in [
            (Phase::Read, Ok(())),
            (
                Phase::Identity,
                Err(Failure::new(Reason::Query, "no permission")),
            ),
        ] {
            ok.phases.push(PhaseOutcome {
                phase,
                duration: Duration::ZERO,
                result,
            });
        }
        assert!(ok.success(&checks));
        assert!(ok.failure(&checks).is_none());
    }

    #[test]
    fn a_phase_that_stopped_the_checks_is_the_reason_when_no_check_phase_failed() {
        // A standby's read-only query timed out: its write was never decided, and the
        // reason is that timeout, not a made-up one.
        let mut r = PhaseRunner::new(Duration::from_secs(1), &Trace::default()).finish(None, None);
        for (phase, result) in [
            (Phase::Connect, Ok(())),
            (Phase::Read, Ok(())),
            (Phase::ReadOnly, Err(Failure::new(Reason::Timeout, "slow"))),
        ] {
            r.phases.push(PhaseOutcome {
                phase,
                duration: Duration::ZERO,
                result,
            });
        }
        let checks = [Check::Connect, Check::Read, Check::Write];
        assert_eq!(r.failure(&checks).map(|f| f.reason), Some(Reason::Timeout));
    }

    #[test]
    fn redact_removes_every_secret_from_failure_messages() {
        let mut r = PhaseRunner::new(Duration::from_secs(1), &Trace::default()).finish(None, None);
        r.phases.push(PhaseOutcome {
            phase: Phase::Connect,
            duration: Duration::ZERO,
            result: Err(Failure::new(
                Reason::Auth,
                "login postgres://u:hunter2@db failed for hunter2",
            )),
        });
        r.redact(&["hunter2", ""]);
        let msg = &r.phases[0].result.as_ref().unwrap_err().message;
        assert_eq!(
            msg,
            "login postgres://u:<redacted>@db failed for <redacted>"
        );
    }

    #[test]
    fn an_older_heartbeat_than_the_acknowledged_one_is_a_loss() {
        let beat = |seq, ms| Beat {
            seq,
            at: Timestamp::from_millis(ms),
        };
        let acknowledged = beat(12, 5_000);
        assert_eq!(
            LostWrites::between(acknowledged, Some(beat(9, 3_500))),
            Some(LostWrites {
                writes: 3,
                span: Duration::from_millis(1_500)
            })
        );
        assert_eq!(LostWrites::between(acknowledged, Some(acknowledged)), None);
        assert_eq!(
            LostWrites::between(acknowledged, Some(beat(40, 1_000))),
            None,
            "a newer row is no loss"
        );
        assert_eq!(LostWrites::between(acknowledged, None), None);
    }

    #[test]
    fn only_targets_behind_a_bastion_have_the_bastions_reasons() {
        let (before, after) = Reason::ALL.split_at(Reason::BASTION_FIRST);
        assert!(before.iter().all(|r| !r.as_str().starts_with("bastion_")));
        assert!(after.iter().all(|r| r.as_str().starts_with("bastion_")));
        assert_eq!(after.len(), 7);
        assert_eq!(Phase::ALL[0], Phase::Bastion);
    }
}
