//! What `dbvigil migrate` shows: lines for people (a progress bar on a terminal), or one
//! JSON document at the end for pipelines.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde_json::{Value, json};

use super::args::{MigrateArgs, MigrateCommand};
use super::jobs::Job;
use crate::cli::output::Output;
use crate::migrate::history::LockHeld;
use crate::migrate::runner::{Observer, Status};
use crate::migrate::script::Script;

/// Text for people (a progress bar on a terminal, lines otherwise) or one JSON document at
/// the end for pipelines.
pub struct Printer {
    output: Output,
    bar: Option<indicatif::ProgressBar>,
    label: String,
    /// The last whole second of lock waiting reported.
    waited_reported: Option<u64>,
}

impl Printer {
    pub fn new(output: Output) -> Printer {
        Printer {
            output,
            bar: None,
            label: String::new(),
            waited_reported: None,
        }
    }

    pub fn line(&self, text: &str) {
        if self.output == Output::Text {
            match &self.bar {
                Some(bar) => bar.println(text),
                None => println!("{text}"),
            }
        }
    }

    pub fn error(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// Names the database in the lines about waiting for its lock.
    pub fn working_on(&mut self, job: &Job) {
        self.label = job.label.clone();
    }

    pub fn begin_run(&mut self, job: &Job) {
        self.working_on(job);
        if self.output == Output::Text && std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_prefix(job.label.clone());
            self.bar = Some(bar);
        }
    }

    pub fn end_run(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    pub fn status(&self, label: &str, status: &Status) {
        if self.output != Output::Text {
            return;
        }
        // One write for the whole table: stdout is line-buffered even into a pipe, and
        // `info` on a thousand versions spent more time in write calls than in its queries.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let _ = self
            .write_status(&mut out, label, status)
            .and_then(|()| out.flush());
    }

    fn write_status(
        &self,
        out: &mut impl Write,
        label: &str,
        status: &Status,
    ) -> std::io::Result<()> {
        writeln!(out, "{label}:")?;
        writeln!(
            out,
            "  {:<12} {:<12} {:<25} {:>9}  script",
            "version", "state", "installed on", "time"
        )?;
        for e in &status.entries {
            writeln!(
                out,
                "  {:<12} {:<12} {:<25} {:>9}  {}",
                e.version,
                e.state.as_str(),
                e.installed_on.map(|t| t.to_string()).unwrap_or_default(),
                e.execution_ms
                    .map(|ms| format!("{ms} ms"))
                    .unwrap_or_default(),
                e.script
            )?;
        }
        if let Some(h) = &status.holder {
            writeln!(out, "  a run is in progress: {}", h.holder)?;
        }
        for p in &status.problems {
            writeln!(out, "  problem: {p}")?;
        }
        Ok(())
    }

    pub fn finish(&self, args: &MigrateArgs, code: u8, databases: Vec<Value>) {
        self.document(args, code, json!({ "databases": databases }));
    }

    /// With `--output json`, the one document: the command, its exit code, and the fields
    /// of `what`.
    pub fn document(&self, args: &MigrateArgs, code: u8, what: Value) {
        if self.output != Output::Json {
            return;
        }
        let command = match &args.command {
            MigrateCommand::Run(_) => "run",
            MigrateCommand::Info(_) => "info",
            MigrateCommand::Validate(_) => "validate",
            MigrateCommand::Repair => "repair",
            MigrateCommand::Baseline(_) => "baseline",
            MigrateCommand::New(_) => "new",
        };
        let mut doc = json!({ "command": command, "exit_code": code });
        if let (Some(doc), Value::Object(fields)) = (doc.as_object_mut(), what) {
            doc.extend(fields);
        }
        println!("{doc}");
    }
}

impl Observer for Printer {
    fn waiting_for_lock(&mut self, holder: Option<&LockHeld>, waited: Duration) {
        // Once a second is enough for a person; the retry loop runs more often.
        if self.waited_reported != Some(waited.as_secs()) {
            self.waited_reported = Some(waited.as_secs());
            let who = holder.map_or_else(|| "another run".to_owned(), |h| h.holder.clone());
            self.line(&format!(
                "{}: waiting for the migration lock held by {who} ({}s)",
                self.label,
                waited.as_secs()
            ));
        }
    }

    fn starting(&mut self, index: usize, total: usize, script: &Script) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total as u64);
                bar.set_position(index as u64);
                bar.set_message(script.name.clone());
            }
            None => self.line(&format!(
                "{}: applying V{} {} ({}/{total})",
                self.label,
                script.version,
                script.description,
                index + 1
            )),
        }
    }

    fn finished(&mut self, script: &Script, execution_ms: i64) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        self.line(&format!(
            "{}: applied V{} in {execution_ms} ms",
            self.label, script.version
        ));
    }
}
