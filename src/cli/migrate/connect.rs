//! `--wait-for`: opening a job's database, retrying while it starts.

use std::time::{Duration, Instant};

use super::args::MigrateArgs;
use super::jobs::Job;
use super::printer::Printer;
use crate::migrate::conn::{DbConn, Purpose};
use crate::migrate::runner;

/// The database did not accept a connection in time (exit 4); `error` is the last attempt's.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "{label}: still not accepting connections after {secs}s ({attempts} attempts): {error}"
    )]
    StillDown {
        label: String,
        secs: u64,
        attempts: u32,
        error: String,
    },
    #[error(
        "{label}: cannot connect: {error}; pass --wait-for 60s to wait for a database that is starting"
    )]
    Refused { label: String, error: String },
    /// The bastion said no, and would say it again: no retry.
    #[error("{label}: cannot connect: {error}")]
    BastionRefused { label: String, error: String },
}

/// Opens the database, retrying for `--wait-for` with a line of progress per attempt.
pub async fn connect(
    args: &MigrateArgs,
    job: &Job,
    out: &mut Printer,
) -> Result<DbConn, ConnectError> {
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
    const RETRY: Duration = Duration::from_secs(1);
    let started = Instant::now();
    let wait = args.wait_for.unwrap_or_default();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match tokio::time::timeout(
            ATTEMPT_TIMEOUT,
            DbConn::open(&job.endpoint, job.kind, Purpose::Migrate),
        )
        .await
        {
            Ok(Ok(conn)) => {
                if attempt > 1 {
                    out.line(&format!(
                        "{}: accepting connections after {:.1}s",
                        job.label,
                        started.elapsed().as_secs_f64()
                    ));
                }
                return Ok(conn);
            }
            Ok(Err(e)) if DbConn::bastion_refused(&e) => {
                return Err(ConnectError::BastionRefused {
                    label: job.label.clone(),
                    error: runner::server_message(&e),
                });
            }
            Ok(Err(e)) => runner::server_message(&e),
            Err(_) => format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs()),
        };
        let elapsed = started.elapsed();
        if elapsed >= wait {
            let label = job.label.clone();
            return Err(if args.wait_for.is_some() {
                ConnectError::StillDown {
                    label,
                    secs: elapsed.as_secs(),
                    attempts: attempt,
                    error,
                }
            } else {
                ConnectError::Refused { label, error }
            });
        }
        out.line(&format!(
            "{}: waiting for the database ({}s of {}s, attempt {attempt}): {error}",
            job.label,
            elapsed.as_secs(),
            wait.as_secs()
        ));
        tokio::time::sleep(RETRY.min(wait - elapsed)).await;
    }
}
