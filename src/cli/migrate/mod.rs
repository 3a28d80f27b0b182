//! `dbvigil migrate run|info|validate|repair|baseline|new`: ordered SQL scripts for a configured target,
//! a database URL, or the CSV plan of home-made updaters, with exit codes a pipeline can
//! branch on.

mod args;
mod connect;
mod exit;
mod jobs;
mod new;
mod printer;
mod report;
mod run_job;
mod ssh;
mod window;

use std::process::ExitCode;

pub use args::MigrateArgs;
use args::MigrateCommand;
use printer::Printer;
use run_job::run_job;
use window::Window;

pub fn run(args: MigrateArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(exit::UNREACHABLE);
        }
    };
    ExitCode::from(runtime.block_on(execute(args)))
}

async fn execute(args: MigrateArgs) -> u8 {
    let mut out = Printer::new(args.output);
    if let MigrateCommand::New(new) = &args.command {
        return new::run(&args, new, &out);
    }
    let (jobs, notes, warnings) = match jobs::choose(&args) {
        Ok(j) => j,
        Err(e) => {
            out.error(&e.to_string());
            out.finish(&args, exit::INVALID, Vec::new());
            return exit::INVALID;
        }
    };
    for warning in warnings {
        out.error(&warning);
    }
    for note in notes {
        out.line(&note);
    }
    let mut reports = Vec::new();
    let mut window: Option<Window> = None;
    let mut code = exit::OK;
    let mut pending = false;
    for job in &jobs {
        let (job_code, report) = run_job(&args, job, &mut out, &mut window).await;
        reports.push(report);
        // Pending scripts are an answer, not a failure: the next database is asked too.
        if job_code == exit::PENDING {
            pending = true;
            continue;
        }
        code = job_code;
        if code != exit::OK {
            break;
        }
    }
    if pending && code == exit::OK {
        code = exit::PENDING;
    }
    if let (Some(w), MigrateCommand::Run(run)) = (&window, &args.command) {
        if code == exit::OK {
            match window::end(run, w).await {
                Ok(()) => out.line(&format!("ended maintenance window {}", w.id)),
                Err(e) => out.error(&format!(
                    "the migration succeeded but ending maintenance window {} failed: {e}; end it with `dbvigil maintenance end {}`",
                    w.id, w.id
                )),
            }
        } else {
            out.error(&format!(
                "maintenance window {} stays open until {}, when it expires; end it earlier with `dbvigil maintenance end {}`",
                w.id, w.ends_at, w.id
            ));
        }
    }
    out.finish(&args, code, reports);
    code
}

/// Who ran the scripts, for the history tables.
fn installed_by() -> String {
    super::user_at_host().unwrap_or_else(|| format!("unknown@{}", super::hostname()))
}
