//! The sync dispatcher: TVL's changes out to Hostaway, and reconciliation in
//! both directions.
//!
//! ```text
//! {ns}.changes.{kind}.{unit}  ──changes──▶ desired_calendar / desired_listing (newest per field)
//!                                        └─▶ one pending job per listing and kind on {ns}.sync.…
//! {ns}.sync.{mode}.{kind}.…   ──lanes────▶ worker: lease, plan, calendarIntervals (≤200/call), remote_*
//! reconciliation schedules    ──────────▶ jobs that read Hostaway back first; reservation polling
//! ```
//!
//! [`contract`] validates what TVL publishes; [`changes`] projects it;
//! [`queue`] folds jobs; [`lanes`] orders them by priority; [`worker`] runs
//! them with [`plan`]; [`reconcile`] schedules read-backs; failures end in
//! [`dead_letter`].

pub mod changes;
pub mod channel_config;
pub mod contract;
pub mod credentials;
pub mod dead_letter;
pub mod lanes;
pub mod metrics;
pub mod plan;
pub mod polling;
pub mod queue;
pub mod reconcile;
pub mod report;
pub mod server;
pub mod shared_api;
pub mod worker;

pub use server::{DispatcherDeps, DispatcherSettings, Roles, SyncDispatcher};
