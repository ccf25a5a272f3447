//! Time-driven work for wasmeow: one-shot and cron jobs that plugins schedule, and the campaigns
//! operators declare in `bot.toml`.
//!
//! The crate does no IO and reads no clock: [`Scheduler`] takes `now` as a value and persists through
//! the [`JobStore`] trait (the encrypted store implements it). The binary runs the loop — sleep until
//! [`Scheduler::next_wakeup`], dispatch what [`Scheduler::due`] returns, then [`Scheduler::ack`].
//!
//! ```
//! use wasmeow_scheduler::{JobLimits, MemoryJobStore, Schedule, Scheduler};
//!
//! let now = 1_795_392_000_000; // 2026-11-23T00:00:00Z
//! let mut s = Scheduler::open(MemoryJobStore::default(), JobLimits::default()).unwrap();
//! let id = s
//!     .add("plugin:reminders", Schedule::cron("0 9 * * MON-FRI", "Europe/Berlin").unwrap(), "standup".into(), now)
//!     .unwrap();
//! let at = s.next_wakeup().unwrap(); // Monday 09:00 in Berlin
//! let fired = s.due(at).unwrap();
//! assert_eq!(fired[0].payload, "standup");
//! s.ack(&id, fired[0].scheduled_ms, at).unwrap();
//! ```

mod campaign;
mod jobs;
mod schedule;

pub use campaign::{
    Action, CampaignState, HISTORY, Outcome, Pacing, Plan, Recipient, Run, SendWindow, Template,
    TemplateError,
};

pub use jobs::{
    Fired, Job, JobError, JobLimits, JobStore, MemoryJobStore, Scheduler, StoreFailure,
};
pub use schedule::{Schedule, ScheduleError};
