//! Maintenance windows: the model, which windows cover a scope now, and the service that
//! changes them in the store and keeps an in-memory copy for readers.
//!
//! Windows come from three sources: the API (stored, audited), the configuration's
//! schedules (computed), and applications' own flags (a target's `maintenance_query`).
//! Whether a window is active is a pure function of the window and the time, so expiry is
//! exact without any timer, and readers (`/metrics`, the gate) never touch the store.

mod schedule;
mod service;
pub mod store;
mod window;

use std::time::Duration;

pub use service::{
    Actor, Extension, Length, Maintenance, MaintenanceError, PreparedStore, StartRequest, Stored,
};
pub use store::StoreError;
pub use window::{
    Action, AppFlag, Coverage, Event, Source, Window, WindowState, all_windows, coverage,
};

/// Ended windows stay in the in-memory copy (and the default listing) this long.
pub const RECENT: Duration = Duration::from_secs(24 * 3600);
