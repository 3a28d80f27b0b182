//! The JSON of `dbvigil migrate --output json`, field by field. The runner returns plain
//! values; the names a script reads are spelled here, once, and stay stable.

use serde_json::{Value, json};

use crate::migrate::history::LockHeld;
use crate::migrate::runner::{Applied, InfoEntry, RepairOutcome, ScriptFailure, Status};

/// Unix seconds, as the report has always given instants.
fn seconds(t: Option<crate::time::Timestamp>) -> Value {
    json!(t.map(crate::time::Timestamp::as_secs_f64))
}

pub fn status(s: &Status) -> Value {
    json!({
        "entries": s.entries.iter().map(entry).collect::<Vec<_>>(),
        "problems": s.problems,
        "holder": s.holder.as_ref().map(holder),
    })
}

fn entry(e: &InfoEntry) -> Value {
    json!({
        "version": e.version,
        "description": e.description,
        "script": e.script,
        "state": e.state.as_str(),
        "installed_on": seconds(e.installed_on),
        "installed_by": e.installed_by,
        "execution_ms": e.execution_ms,
    })
}

fn holder(h: &LockHeld) -> Value {
    json!({ "since": seconds(h.since), "holder": h.holder })
}

pub fn applied(list: &[Applied]) -> Value {
    list.iter()
        .map(|a| {
            json!({
                "version": a.version,
                "description": a.description,
                "script": a.script,
                "execution_ms": a.execution_ms,
            })
        })
        .collect()
}

pub fn failure(f: Option<&ScriptFailure>) -> Value {
    f.map_or(Value::Null, |f| {
        json!({
            "version": f.version,
            "script": f.script,
            "line": f.line,
            "message": f.message,
            "partial_changes_possible": f.partial_changes_possible,
            "retry": f.retry,
        })
    })
}

pub fn repair(r: &RepairOutcome) -> Value {
    json!({ "removed": r.removed, "realigned": r.realigned })
}
