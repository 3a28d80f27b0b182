//! The probe flow shared by database servers (PostgreSQL, MySQL/MariaDB): tcp, connect,
//! read, write, read-only state, identity. A [`Dialect`] supplies the SQL and the error
//! codes; this module decides what runs, in which order, and what a failure stops.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::trace::{beat_text, flag_text, read_only_text};
use super::{
    Beat, Failure, FlagValue, Identity, LostWrites, Phase, PhaseRunner, ProbeContext, ProbeFuture,
    ProbeReport, Prober, Reason, Trace, net, seconds,
};
use crate::config::{Check, ConnectionMode, Role, Server, TargetConfig};
use crate::time::Timestamp;
use crate::tunnel::Tunnel;

/// A dialect's statements for one configured heartbeat table, built once per target.
pub struct HeartbeatSql {
    /// Qualified table name, for messages.
    pub table: String,
    pub exists: Arc<str>,
    pub read: Arc<str>,
    pub create: Arc<str>,
    pub write: Arc<str>,
    /// The login, for the GRANT statement in messages.
    pub user: String,
}

impl HeartbeatSql {
    /// A server error caused by a table of the same name with another layout (someone
    /// else's table, or an old one), with what to do about it.
    pub fn shape_hint(&self, message: &str) -> String {
        format!(
            "{message}; {} has another layout than dbvigil's heartbeat (target, instance, seq, beat_at_ms, unique on target and instance): rename or drop that table, or set heartbeat.schema so dbvigil keeps its own elsewhere; dbvigil's is: {}",
            self.table, self.create
        )
    }
}

/// One open connection, spoken in a server's dialect.
pub trait Session: Send + Sized {
    fn select_one(&mut self) -> impl Future<Output = Result<(), Failure>> + Send;
    fn heartbeat_exists(&mut self) -> impl Future<Output = Result<bool, Failure>> + Send;
    /// The heartbeat row of (target, instance), if there is one.
    fn read_beat(
        &mut self,
        target: &str,
        instance: &str,
    ) -> impl Future<Output = Result<Option<Beat>, Failure>> + Send;
    fn create_heartbeat(&mut self) -> impl Future<Output = Result<(), Failure>> + Send;
    fn write_beat(
        &mut self,
        target: &str,
        instance: &str,
        beat: Beat,
    ) -> impl Future<Output = Result<(), Failure>> + Send;
    fn read_only(&mut self) -> impl Future<Output = Result<bool, Failure>> + Send;
    fn identity(&mut self) -> impl Future<Output = Result<Identity, Failure>> + Send;
    /// Runs a target's `maintenance_query` and returns its first value.
    fn maintenance_flag(
        &mut self,
        sql: &str,
    ) -> impl Future<Output = Result<FlagValue, Failure>> + Send;
    /// The session as the server sees it (login, TLS version and cipher, or none), for the
    /// probe's log only: asked only while it records.
    fn describe(&mut self) -> impl Future<Output = Result<String, Failure>> + Send;
    fn close(self) -> impl Future<Output = ()> + Send;
}

pub trait Dialect: Send + 'static {
    type Session: Session;
    /// An authenticated connection with server-side statement limits of `timeout`; its
    /// statements are noted in `trace`.
    fn connect(
        &mut self,
        timeout: Duration,
        trace: &Trace,
    ) -> impl Future<Output = Result<Self::Session, Failure>> + Send;
    /// The statement that creates the heartbeat table, for messages when dbvigil may not.
    fn heartbeat_ddl(&self) -> &str;
    /// From now on, connects through `tunnel`'s socket instead of to the server itself.
    fn through(&mut self, tunnel: &Tunnel);
}

pub struct ServerProber<D: Dialect> {
    dialect: D,
    server: Server,
    target: String,
    checks: Vec<Check>,
    reuse: bool,
    /// A target that may stand by learns its read-only state before writing, and is not
    /// asked to write while read-only (a standby's server log stays free of refusals).
    may_stand_by: bool,
    session: Option<D::Session>,
    maintenance_query: Option<String>,
    /// Whether the heartbeat table is known to exist, to skip asking every cycle.
    table_seen: bool,
    seq: i64,
    /// The last heartbeat the database acknowledged (written and read back), in this
    /// process: a restart starts without one, so it can never read as a loss.
    acknowledged: Option<Beat>,
    /// Found by this cycle's read, reported when it ends.
    lost: Option<LostWrites>,
    /// This cycle's read of the `replica_of` target's row, reported when it ends.
    primary_beat: Option<Beat>,
    /// This cycle's write, once read back, reported when it ends.
    wrote: Option<Beat>,
    /// The way through the bastion, for a server behind one: made at the first probe (it
    /// reads the key), then kept.
    tunnel: Option<Tunnel>,
}

impl<D: Dialect> ServerProber<D> {
    pub fn new(target: &TargetConfig, server: &Server, dialect: D) -> Self {
        ServerProber {
            dialect,
            server: server.clone(),
            target: target.name.clone(),
            checks: target.checks.clone(),
            reuse: target.connection == ConnectionMode::Reuse,
            may_stand_by: target.role != Role::Primary,
            session: None,
            maintenance_query: target.maintenance_query.clone(),
            table_seen: false,
            seq: 0,
            acknowledged: None,
            lost: None,
            primary_beat: None,
            wrote: None,
            tunnel: None,
        }
    }

    fn has(&self, check: Check) -> bool {
        self.checks.contains(&check)
    }

    async fn run_cycle(&mut self, ctx: &ProbeContext) -> ProbeReport {
        let trace = &ctx.trace;
        let mut run = PhaseRunner::new(ctx.timeout, trace);
        let mut lag = None;
        if self.server.ssh.is_some() && run.run(Phase::Bastion, self.bastion(ctx)).await.is_none() {
            // Whatever the kept session was carried by is gone or unknown.
            self.session = None;
            return self.end(run, None, None, None, trace).await;
        }
        if self.has(Check::Tcp) {
            let reached = match &self.tunnel {
                Some(tunnel) => {
                    run.run(Phase::Tcp, async {
                        trace.note(|| {
                            format!(
                                "asking the bastion to connect to {}:{}",
                                self.server.host, self.server.port
                            )
                        });
                        tunnel.reach().await.map_err(net::tunnel_failure)
                    })
                    .await
                }
                None => {
                    run.run(
                        Phase::Tcp,
                        net::tcp_connect(&self.server.host, self.server.port, trace),
                    )
                    .await
                }
            };
            if reached.is_none() {
                return self.end(run, None, None, None, trace).await;
            }
        }
        if !(self.has(Check::Connect) || self.has(Check::Read) || self.has(Check::Write)) {
            trace.note(|| "no connect, read or write check: nothing more to do".to_owned());
            return self.end(run, None, None, None, trace).await;
        }
        // A kept session (connection: reuse) proves it still answers; a new one logs in.
        let session = match self.session.take() {
            Some(mut kept) => {
                run.run(Phase::Connect, async {
                    trace.note(|| "reusing the session kept from the last probe".to_owned());
                    kept.select_one().await.map(|()| kept)
                })
                .await
            }
            None => {
                let (server, dialect, tunnel) = (&self.server, &mut self.dialect, &self.tunnel);
                run.run(Phase::Connect, async {
                    trace.note(|| login(server));
                    if let Some(t) = tunnel {
                        t.take_relay_failure();
                    }
                    dialect.connect(ctx.timeout, trace).await.map_err(|f| {
                        // The driver saw only a closed socket; the relay knows why.
                        match tunnel.as_ref().and_then(Tunnel::take_relay_failure) {
                            Some(why) => net::tunnel_failure(why),
                            None => f,
                        }
                    })
                })
                .await
            }
        };
        let Some(mut session) = session else {
            return self.end(run, None, None, None, trace).await;
        };
        if trace.is_on() {
            // Outside the connect phase, so that its time stays the login's alone.
            let said = super::bounded(
                run.remaining(),
                "describing the session",
                session.describe(),
            )
            .await;
            trace.note(|| match said {
                Ok(s) => s,
                Err(f) => format!("could not describe the session: {}", f.message),
            });
        }

        if self.has(Check::Read) {
            let (target, row, instance) = (
                self.target.as_str(),
                ctx.beat_row.as_str(),
                ctx.instance.as_str(),
            );
            let primary = self.server.replica_of.as_deref();
            let read = run
                .run(Phase::Read, async {
                    session.select_one().await?;
                    let exists = session.heartbeat_exists().await?;
                    let (mut own, mut primary_beat) = (None, None);
                    if exists {
                        own = session.read_beat(target, row).await?;
                        trace.note(|| format!("heartbeat row ({target}, {row}): {}", beat_text(own)));
                        if let Some(primary) = primary {
                            primary_beat = session.read_beat(primary, instance).await?;
                            trace.note(|| {
                                format!(
                                    "replica_of {primary}: its heartbeat row ({primary}, {instance}): {}",
                                    beat_text(primary_beat)
                                )
                            });
                        }
                    } else {
                        trace.note(|| "the heartbeat table does not exist yet".to_owned());
                    }
                    Ok((exists, own, primary_beat))
                })
                .await;
            if let Some((exists, own, primary_beat)) = read {
                self.table_seen = exists;
                if let Some(lost) = self
                    .acknowledged
                    .and_then(|ack| LostWrites::between(ack, own))
                {
                    // The surviving row is the new baseline: the loss is told once.
                    self.acknowledged = own;
                    self.lost = Some(lost);
                }
                lag = primary_beat.map(|b: Beat| Timestamp::now().since(b.at));
                if let Some(lag) = lag {
                    trace.note(|| format!("replication lag: {}", seconds(lag)));
                }
                self.primary_beat = primary_beat;
            }
            if !usable(&run) {
                return self.end(run, Some(session), None, lag, trace).await;
            }
        }

        let mut read_only = None;
        if self.may_stand_by {
            read_only = run.run(Phase::ReadOnly, session.read_only()).await;
            trace.note(|| read_only_text(read_only));
            if !usable(&run) {
                return self.end(run, Some(session), read_only, lag, trace).await;
            }
        }
        if self.has(Check::Write) && read_only == Some(true) {
            trace.note(|| {
                "the server stands by read-only (role standby or either): the write is not asked"
                    .to_owned()
            });
        }
        if self.has(Check::Write) && read_only != Some(true) {
            let beat = Beat::next(&mut self.seq);
            let (target, instance) = (self.target.as_str(), ctx.beat_row.as_str());
            let (table_seen, create, ddl) = (
                self.table_seen,
                self.server.create_heartbeat_table,
                self.dialect.heartbeat_ddl(),
            );
            let written = run
                .run(Phase::Write, async {
                    if !table_seen && !session.heartbeat_exists().await? {
                        if !create {
                            return Err(Failure::new(
                                Reason::Query,
                                format!("the heartbeat table does not exist and heartbeat.create is false: create it with: {ddl}"),
                            ));
                        }
                        session.create_heartbeat().await?;
                    }
                    trace.note(|| format!("writing heartbeat seq {}", beat.seq));
                    session.write_beat(target, instance, beat).await?;
                    beat.verify(session.read_beat(target, instance).await?)
                })
                .await;
            self.table_seen = written.is_some();
            if written.is_some() {
                self.acknowledged = Some(beat);
                self.wrote = Some(beat);
            }
            if run.last_failure_reason() == Some(Reason::ReadOnly) {
                read_only = Some(true);
            }
            if !usable(&run) {
                return self.end(run, Some(session), read_only, lag, trace).await;
            }
        }

        if !self.may_stand_by {
            if let Some(ro) = run.run(Phase::ReadOnly, session.read_only()).await {
                read_only = Some(read_only.unwrap_or(false) || ro);
            }
            trace.note(|| read_only_text(read_only));
            if !usable(&run) {
                return self.end(run, Some(session), read_only, lag, trace).await;
            }
        }
        let identity = run.run(Phase::Identity, session.identity()).await;
        if let Some(id) = &identity {
            trace.note(|| format!("identity: {}, version {}", id.key, id.version));
        }
        let mut report = self.end(run, Some(session), read_only, lag, trace).await;
        report.identity = identity;
        report
    }

    /// Keeps the session for the next cycle in `reuse` mode while it is healthy; otherwise
    /// closes it within what is left of the timeout.
    async fn end(
        &mut self,
        run: PhaseRunner,
        session: Option<D::Session>,
        read_only: Option<bool>,
        lag: Option<Duration>,
        trace: &Trace,
    ) -> ProbeReport {
        let mut session = session;
        let mut flag = None;
        if let (Some(s), Some(sql), true) =
            (session.as_mut(), &self.maintenance_query, usable(&run))
        {
            let read = super::bounded(
                run.remaining(),
                "maintenance_query",
                s.maintenance_flag(sql),
            )
            .await
            .and_then(FlagValue::truthy);
            trace.note(|| flag_text(&read));
            flag = Some(read);
        }
        if let Some(session) = session {
            if self.reuse && usable(&run) {
                trace.note(|| {
                    "keeping the session for the next probe (connection: reuse)".to_owned()
                });
                self.session = Some(session);
            } else if usable(&run) {
                trace.note(|| "closing the session".to_owned());
                let budget = run.remaining().max(Duration::from_millis(100));
                let _ = tokio::time::timeout(budget, session.close()).await;
            } else {
                // A session whose last phase timed out or broke is dropped without a
                // goodbye: the server may be frozen.
                trace.note(|| {
                    "dropping the session without a goodbye: its last phase broke it".to_owned()
                });
            }
        }
        if let Some(tunnel) = &self.tunnel {
            let bastion_broke = matches!(
                run.last_failure_reason(),
                Some(Reason::BastionTimeout | Reason::BastionIo)
            );
            if bastion_broke {
                trace.note(|| "dropping the SSH session: the bastion broke it".to_owned());
                tunnel.abandon().await;
            } else if !self.reuse {
                trace.note(|| "closing the SSH session (connection: close)".to_owned());
                tunnel.close().await;
            }
        }
        let mut report = run.finish(read_only, None);
        report.replication_lag = lag;
        report.maintenance_flag = flag;
        report.lost_writes = self.lost.take();
        report.acknowledged = self.wrote.take();
        report.primary_beat = self.primary_beat.take();
        report
    }
}

impl<D: Dialect> ServerProber<D> {
    /// The bastion's phase: the tunnel (made at the first probe), and a live session
    /// through it.
    async fn bastion(&mut self, ctx: &ProbeContext) -> Result<(), Failure> {
        let trace = &ctx.trace;
        if self.tunnel.is_none() {
            let ssh = self
                .server
                .ssh
                .as_ref()
                .expect("only called behind a bastion");
            let tunnel = Tunnel::new(ssh, &self.server.host, self.server.port, ctx.timeout)
                .await
                .map_err(net::tunnel_failure)?;
            self.dialect.through(&tunnel);
            self.tunnel = Some(tunnel);
        }
        let tunnel = self.tunnel.as_ref().expect("made above");
        trace.note(|| format!("SSH session to the bastion {}", tunnel.describe()));
        tunnel.ensure().await.map_err(net::tunnel_failure)
    }
}

impl<D: Dialect> Prober for ServerProber<D> {
    fn probe<'a>(&'a mut self, ctx: &'a ProbeContext) -> ProbeFuture<'a> {
        Box::pin(self.run_cycle(ctx))
    }
}

/// How the probe logs in, for its log: never the password.
fn login(s: &Server) -> String {
    let database = s
        .database
        .as_deref()
        .map_or_else(String::new, |d| format!(" to database {d}"));
    let ca = s
        .tls
        .ca_file
        .as_ref()
        .map_or_else(String::new, |f| format!(", CA file {}", f.display()));
    format!(
        "logging in as {}{database} at {}:{}, TLS mode {}{ca}",
        s.user,
        s.host,
        s.port,
        s.tls.mode.as_str()
    )
}

/// After a failure the server still answers (it refused a write, rejected a statement):
/// the remaining phases can still tell its read-only state and identity.
fn usable(run: &PhaseRunner) -> bool {
    run.last_failure_reason().is_none_or(|r| {
        matches!(
            r,
            Reason::ReadOnly | Reason::Query | Reason::Mismatch | Reason::Locked
        )
    })
}
