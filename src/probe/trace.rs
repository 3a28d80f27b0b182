//! A probe's own log, for `/probe?debug=true`: each step, with its offset from the start of
//! the probe. It belongs to one probe (passed in its `ProbeContext`), never to the process's
//! logging, so concurrent probes never see each other's lines. Off, it is a `None`: a note
//! costs one branch and its text is never built.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Beat, Failure, Phase};

#[derive(Debug, Clone, Default)]
pub struct Trace(Option<Arc<Mutex<Log>>>);

#[derive(Debug)]
struct Log {
    started: Instant,
    /// The phase running now: its name prefixes the notes made inside it.
    phase: Option<Phase>,
    lines: Vec<String>,
}

impl Trace {
    /// Records from now on.
    pub fn recording() -> Trace {
        Trace(Some(Arc::new(Mutex::new(Log {
            started: Instant::now(),
            phase: None,
            lines: Vec::new(),
        }))))
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Adds a line; `text` runs only when recording.
    pub fn note(&self, text: impl FnOnce() -> String) {
        let Some(log) = &self.0 else {
            return;
        };
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        let offset = log.started.elapsed();
        let prefix = log.phase.map_or("", Phase::as_str);
        // One line per note, whatever it quotes (a statement written over several lines).
        let text = text();
        let text = if text.contains('\n') {
            text.lines().map(str::trim).collect::<Vec<_>>().join(" ")
        } else {
            text
        };
        let line = match prefix {
            "" => format!("{} {text}", offset_text(offset)),
            p => format!("{} {p}: {text}", offset_text(offset)),
        };
        log.lines.push(line);
    }

    /// The phase that notes from here on belong to (`None`: the probe itself).
    pub fn enter(&self, phase: Option<Phase>) {
        if let Some(log) = &self.0 {
            log.lock().unwrap_or_else(|e| e.into_inner()).phase = phase;
        }
    }

    /// The lines so far, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.0.as_ref().map_or_else(Vec::new, |log| {
            log.lock().unwrap_or_else(|e| e.into_inner()).lines.clone()
        })
    }
}

/// A heartbeat row as read, for a note.
pub(super) fn beat_text(beat: Option<Beat>) -> String {
    match beat {
        Some(b) => format!("seq {} written at {}", b.seq, b.at),
        None => "none".to_owned(),
    }
}

pub(super) fn read_only_text(read_only: Option<bool>) -> String {
    match read_only {
        Some(true) => "the database is read-only".to_owned(),
        Some(false) => "the database takes writes (not read-only)".to_owned(),
        None => "the read-only state is unknown".to_owned(),
    }
}

/// What a `maintenance_query` answered.
pub(super) fn flag_text(read: &Result<bool, Failure>) -> String {
    match read {
        Ok(true) => "maintenance_query: the application's flag is on".to_owned(),
        Ok(false) => "maintenance_query: the application's flag is off".to_owned(),
        Err(f) => format!("maintenance_query failed: {}", f.message),
    }
}

/// `+0.0120s`: time since the probe began.
fn offset_text(d: Duration) -> String {
    format!("+{}", super::seconds(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_carry_their_offset_and_phase_and_nothing_is_built_when_off() {
        let off = Trace::default();
        off.note(|| unreachable!("an unrecorded note is never formatted"));
        assert!(off.lines().is_empty());

        let t = Trace::recording();
        t.note(|| "begin\n   on two lines".to_owned());
        t.enter(Some(Phase::Connect));
        t.note(|| "logging in".to_owned());
        t.enter(None);
        t.note(|| "end".to_owned());
        let lines = t.lines();
        assert_eq!(lines.len(), 3);
        let want = ["begin on two lines", "connect: logging in", "end"];
        for (line, want) in lines.iter().zip(want) {
            let (offset, rest) = line.split_once(' ').unwrap();
            assert!(offset.starts_with("+0.") && offset.ends_with('s'), "{line}");
            assert_eq!(rest, want);
        }
    }
}
