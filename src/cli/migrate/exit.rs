//! Exit codes of `dbvigil migrate`, documented in its `--help` and docs/migrations.md.

/// Done: applied, nothing to apply, valid.
pub const OK: u8 = 0;
/// A script failed; the failure is recorded and blocks runs until `repair`.
pub const SCRIPT_FAILED: u8 = 1;
/// Bad input: flags, script names, the plan, a script that cannot be split, a baseline
/// above every script, a description `new` cannot use.
pub const INVALID: u8 = 2;
/// Refused: a failed or interrupted entry, an edited or missing script, out of order, a
/// baseline on a history that has entries.
pub const REFUSED: u8 = 3;
/// The database, or the bastion in front of it, could not be reached (within
/// --wait-for), or failed dbvigil.
pub const UNREACHABLE: u8 = 4;
/// Another run held the lock for longer than --lock-timeout.
pub const LOCKED: u8 = 5;
/// --maintenance: the window could not be opened; nothing ran.
pub const MAINTENANCE: u8 = 6;
/// `info --exit-code`, `validate --exit-code`: scripts are pending.
pub const PENDING: u8 = 7;

/// The codes above, for `dbvigil migrate --help`.
pub const HELP: &str = "Exit codes: 0 done, 1 a script failed (recorded, so run `repair` after fixing it, unless a time or lock-wait limit stopped it before anything stayed), 2 bad input (flags, script names, plan, a baseline above every script, a description `new` cannot use), 3 refused (failed, interrupted, edited, missing or out-of-order history; a baseline on a history that has entries), 4 database or its bastion unreachable, or the database not stopping a statement past its limit, 5 lock not obtained within --lock-timeout, 6 --maintenance window could not be opened (nothing ran), 7 scripts are pending (info and validate with --exit-code only).";
