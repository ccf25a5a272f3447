//! The job table: adding, cancelling and listing jobs, and deciding which are due.
//!
//! [`Scheduler`] is deterministic: it never reads a clock. The caller passes `now` (Unix milliseconds)
//! into every call, sleeps until [`Scheduler::next_wakeup`], and hands what [`Scheduler::due`] returns to
//! the plugin host. Delivery is **at least once**:
//!
//! ```text
//!   due(now) ──► job marked pending(occurrence), persisted ──► Fired delivered ──► ack(id, occurrence, now)
//!                                                                                   │
//!        recurring: next occurrence after `now` (missed windows collapse into one) ◄┘  one-shot: deleted
//! ```
//!
//! A crash between `due` and `ack` redelivers the pending occurrence after restart ([`Scheduler::open`]
//! reloads pending jobs and the next `due` hands them out again), so a reminder is never lost; the
//! `scheduled_ms` in each [`Fired`] lets a consumer recognise a repeat.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::schedule::Schedule;

/// A persisted job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Unique id.
    pub id: String,
    /// Who owns it (e.g. `plugin:reminders/session:main`); only the owner may list or cancel it.
    pub owner: String,
    /// When it fires.
    pub schedule: Schedule,
    /// Opaque data handed back when it fires.
    pub payload: String,
    /// When it was added (Unix ms).
    pub created_ms: i64,
    /// The next occurrence not yet handed out.
    pub next_ms: Option<i64>,
    /// An occurrence handed out and not yet acknowledged.
    pub pending_ms: Option<i64>,
    /// How many occurrences were acknowledged.
    pub runs: u64,
}

/// A job occurrence to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired {
    /// The job.
    pub job_id: String,
    /// Its owner.
    pub owner: String,
    /// Its payload.
    pub payload: String,
    /// The occurrence this delivery is for (Unix ms).
    pub scheduled_ms: i64,
    /// How late the delivery is (0 when on time).
    pub late_ms: i64,
}

/// Persistence for jobs. The encrypted store implements this; [`MemoryJobStore`] is for tests.
pub trait JobStore: Send {
    /// Every stored job.
    fn load_all(&self) -> Result<Vec<Job>, StoreFailure>;
    /// Inserts or replaces a job.
    fn put(&mut self, job: &Job) -> Result<(), StoreFailure>;
    /// Removes a job; removing a missing job is not an error.
    fn delete(&mut self, id: &str) -> Result<(), StoreFailure>;
}

/// The job store failed; the message comes from the backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job store failed: {0}")]
pub struct StoreFailure(pub String);

/// A job operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The schedule has no occurrence after now (e.g. a one-shot in the past).
    #[error("the schedule has no occurrence after now")]
    InThePast,
    /// The owner already has the maximum number of jobs.
    #[error("owner {owner:?} already has {limit} jobs, the maximum")]
    TooManyJobs {
        /// The owner.
        owner: String,
        /// The limit.
        limit: usize,
    },
    /// The payload is larger than allowed.
    #[error("payload is {len} bytes; the maximum is {limit}")]
    PayloadTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// No such job for this owner.
    #[error("no job {0:?}")]
    NotFound(String),
    /// The backing store failed; nothing changed in memory.
    #[error(transparent)]
    Store(#[from] StoreFailure),
}

/// Limits that keep one owner from filling the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    /// Jobs per owner.
    pub max_jobs_per_owner: usize,
    /// Payload bytes per job.
    pub max_payload_bytes: usize,
}

impl Default for JobLimits {
    fn default() -> Self {
        Self {
            max_jobs_per_owner: 1_000,
            max_payload_bytes: 16 * 1024,
        }
    }
}

/// The job table over a [`JobStore`].
#[derive(Debug)]
pub struct Scheduler<S> {
    store: S,
    limits: JobLimits,
    jobs: BTreeMap<String, Job>,
    /// (next occurrence, id) for jobs with nothing pending.
    queue: BTreeSet<(i64, String)>,
    /// Pending occurrences loaded at start-up, to redeliver.
    redeliver: BTreeSet<String>,
    seq: u64,
}

impl<S: JobStore> Scheduler<S> {
    /// Loads every job from `store`. Jobs that were handed out but not acknowledged before a restart
    /// are delivered again by the next [`Scheduler::due`].
    pub fn open(store: S, limits: JobLimits) -> Result<Self, StoreFailure> {
        let mut s = Self {
            store,
            limits,
            jobs: BTreeMap::new(),
            queue: BTreeSet::new(),
            redeliver: BTreeSet::new(),
            seq: 0,
        };
        for job in s.store.load_all()? {
            if job.pending_ms.is_some() {
                s.redeliver.insert(job.id.clone());
            } else if let Some(next) = job.next_ms {
                s.queue.insert((next, job.id.clone()));
            }
            s.jobs.insert(job.id.clone(), job);
        }
        Ok(s)
    }

    /// Adds a job for `owner` and returns its id.
    pub fn add(
        &mut self,
        owner: &str,
        schedule: Schedule,
        payload: String,
        now_ms: i64,
    ) -> Result<String, JobError> {
        if payload.len() > self.limits.max_payload_bytes {
            return Err(JobError::PayloadTooLarge {
                len: payload.len(),
                limit: self.limits.max_payload_bytes,
            });
        }
        let owned = self.jobs.values().filter(|j| j.owner == owner).count();
        if owned >= self.limits.max_jobs_per_owner {
            return Err(JobError::TooManyJobs {
                owner: owner.to_string(),
                limit: self.limits.max_jobs_per_owner,
            });
        }
        let next = schedule.next_after(now_ms - 1).ok_or(JobError::InThePast)?;
        let id = loop {
            self.seq += 1;
            let candidate = format!("{now_ms:x}-{:x}", self.seq);
            if !self.jobs.contains_key(&candidate) {
                break candidate;
            }
        };
        let job = Job {
            id: id.clone(),
            owner: owner.to_string(),
            schedule,
            payload,
            created_ms: now_ms,
            next_ms: Some(next),
            pending_ms: None,
            runs: 0,
        };
        self.store.put(&job)?;
        self.queue.insert((next, id.clone()));
        self.jobs.insert(id.clone(), job);
        Ok(id)
    }

    /// Cancels one of `owner`'s jobs.
    pub fn cancel(&mut self, owner: &str, id: &str) -> Result<(), JobError> {
        let job = self
            .jobs
            .get(id)
            .filter(|j| j.owner == owner)
            .ok_or_else(|| JobError::NotFound(id.to_string()))?;
        let next = job.next_ms;
        self.store.delete(id)?;
        if let Some(n) = next {
            self.queue.remove(&(n, id.to_string()));
        }
        self.redeliver.remove(id);
        self.jobs.remove(id);
        Ok(())
    }

    /// `owner`'s jobs, ordered by id.
    pub fn list(&self, owner: &str) -> Vec<Job> {
        self.jobs
            .values()
            .filter(|j| j.owner == owner)
            .cloned()
            .collect()
    }

    /// Every job, for administration.
    pub fn all(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    /// When the next job is due (Unix ms); `Some(i64::MIN)` when redeliveries are waiting.
    pub fn next_wakeup(&self) -> Option<i64> {
        if !self.redeliver.is_empty() {
            return Some(i64::MIN);
        }
        self.queue.first().map(|(t, _)| *t)
    }

    /// Hands out every occurrence due at `now_ms`, marking each pending in the store first.
    pub fn due(&mut self, now_ms: i64) -> Result<Vec<Fired>, JobError> {
        let mut out = Vec::new();
        for id in std::mem::take(&mut self.redeliver) {
            if let Some(job) = self.jobs.get(&id) {
                let at = job.pending_ms.unwrap_or(now_ms);
                out.push(fired(job, at, now_ms));
            }
        }
        while let Some((at, id)) = self.queue.first().cloned() {
            if at > now_ms {
                break;
            }
            let mut job = self.jobs[&id].clone();
            job.pending_ms = Some(at);
            job.next_ms = None;
            self.store.put(&job)?;
            self.queue.pop_first();
            out.push(fired(&job, at, now_ms));
            self.jobs.insert(id, job);
        }
        Ok(out)
    }

    /// Acknowledges a delivered occurrence: a one-shot job is removed; a recurring job is scheduled for
    /// its first occurrence after `now_ms` (occurrences missed while the host was down fire once, late,
    /// not once each). Acknowledging an occurrence that is not pending is a no-op (idempotent).
    pub fn ack(&mut self, id: &str, scheduled_ms: i64, now_ms: i64) -> Result<(), JobError> {
        let Some(job) = self.jobs.get(id) else {
            return Ok(());
        };
        if job.pending_ms != Some(scheduled_ms) {
            return Ok(());
        }
        let mut job = job.clone();
        job.pending_ms = None;
        job.runs += 1;
        job.next_ms = if job.schedule.is_recurring() {
            job.schedule.next_after(now_ms.max(scheduled_ms))
        } else {
            None
        };
        match job.next_ms {
            None => {
                self.store.delete(id)?;
                self.jobs.remove(id);
            }
            Some(next) => {
                self.store.put(&job)?;
                self.queue.insert((next, id.to_string()));
                self.jobs.insert(id.to_string(), job);
            }
        }
        Ok(())
    }

    /// The backing store (e.g. to close it).
    pub fn into_store(self) -> S {
        self.store
    }
}

fn fired(job: &Job, at: i64, now: i64) -> Fired {
    Fired {
        job_id: job.id.clone(),
        owner: job.owner.clone(),
        payload: job.payload.clone(),
        scheduled_ms: at,
        late_ms: (now - at).max(0),
    }
}

/// An in-memory [`JobStore`], optionally failing on demand for tests.
#[derive(Debug, Default, Clone)]
pub struct MemoryJobStore {
    jobs: BTreeMap<String, Job>,
    /// When set, every write fails with this message.
    pub fail_writes: Option<String>,
}

impl JobStore for MemoryJobStore {
    fn load_all(&self) -> Result<Vec<Job>, StoreFailure> {
        Ok(self.jobs.values().cloned().collect())
    }

    fn put(&mut self, job: &Job) -> Result<(), StoreFailure> {
        if let Some(m) = &self.fail_writes {
            return Err(StoreFailure(m.clone()));
        }
        self.jobs.insert(job.id.clone(), job.clone());
        Ok(())
    }

    fn delete(&mut self, id: &str) -> Result<(), StoreFailure> {
        if let Some(m) = &self.fail_writes {
            return Err(StoreFailure(m.clone()));
        }
        self.jobs.remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    // 2026-11-23T00:00:00Z
    const T0: i64 = 1_795_392_000_000;

    fn sched() -> Scheduler<MemoryJobStore> {
        Scheduler::open(MemoryJobStore::default(), JobLimits::default()).unwrap()
    }

    #[test]
    fn one_shot_fires_once_then_disappears() {
        let mut s = sched();
        let id = s
            .add("p", Schedule::at(T0 + 10 * MIN), "hello".into(), T0)
            .unwrap();
        assert_eq!(s.next_wakeup(), Some(T0 + 10 * MIN));
        assert!(s.due(T0 + 9 * MIN).unwrap().is_empty());
        let f = s.due(T0 + 10 * MIN + 5).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].job_id.as_str(), f[0].payload.as_str(), f[0].late_ms),
            (id.as_str(), "hello", 5)
        );
        assert!(
            s.due(T0 + 11 * MIN).unwrap().is_empty(),
            "pending, not handed out twice"
        );
        s.ack(&id, f[0].scheduled_ms, T0 + 11 * MIN).unwrap();
        assert!(s.list("p").is_empty());
        assert!(s.into_store().load_all().unwrap().is_empty());
    }

    #[test]
    fn cron_job_recurs_and_missed_windows_collapse() {
        let mut s = sched();
        let id = s
            .add(
                "p",
                Schedule::cron("*/15 * * * *", "UTC").unwrap(),
                String::new(),
                T0 + 1,
            )
            .unwrap();
        let f = s.due(T0 + 15 * MIN).unwrap();
        assert_eq!(f[0].scheduled_ms, T0 + 15 * MIN);
        s.ack(&id, f[0].scheduled_ms, T0 + 15 * MIN).unwrap();
        assert_eq!(s.next_wakeup(), Some(T0 + 30 * MIN));
        // The host was busy for two hours: one late delivery, then back on the grid.
        let f = s.due(T0 + 150 * MIN).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].late_ms, 120 * MIN);
        s.ack(&id, f[0].scheduled_ms, T0 + 150 * MIN + 1).unwrap();
        assert_eq!(s.next_wakeup(), Some(T0 + 165 * MIN));
        assert_eq!(s.list("p")[0].runs, 2);
    }

    #[test]
    fn unacknowledged_occurrence_is_redelivered_after_restart() {
        let mut s = sched();
        let id = s.add("p", Schedule::at(T0 + MIN), "x".into(), T0).unwrap();
        let f = s.due(T0 + MIN).unwrap();
        assert_eq!(f.len(), 1);
        // Crash before ack: reopen from what was persisted.
        let store = s.into_store();
        let mut s = Scheduler::open(store, JobLimits::default()).unwrap();
        assert_eq!(s.next_wakeup(), Some(i64::MIN));
        let again = s.due(T0 + 5 * MIN).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].job_id.as_str(), again[0].scheduled_ms),
            (id.as_str(), T0 + MIN)
        );
        s.ack(&id, T0 + MIN, T0 + 5 * MIN).unwrap();
        assert!(s.due(T0 + 10 * MIN).unwrap().is_empty());
    }

    #[test]
    fn jobs_persist_across_restart_and_fire_later() {
        let mut s = sched();
        s.add(
            "p",
            Schedule::cron("0 9 * * *", "Europe/Berlin").unwrap(),
            "daily".into(),
            T0,
        )
        .unwrap();
        let store = s.into_store();
        let mut s = Scheduler::open(store, JobLimits::default()).unwrap();
        let wake = s.next_wakeup().unwrap();
        assert_eq!(
            wake,
            T0 + 8 * 60 * MIN,
            "09:00 Berlin is 08:00 UTC in November"
        );
        assert_eq!(s.due(wake).unwrap()[0].payload, "daily");
    }

    #[test]
    fn owners_are_isolated_and_limits_hold() {
        let mut s = Scheduler::open(
            MemoryJobStore::default(),
            JobLimits {
                max_jobs_per_owner: 2,
                max_payload_bytes: 4,
            },
        )
        .unwrap();
        let a = s.add("a", Schedule::at(T0 + MIN), "1".into(), T0).unwrap();
        s.add("a", Schedule::at(T0 + MIN), "2".into(), T0).unwrap();
        assert_eq!(
            s.add("a", Schedule::at(T0 + MIN), "3".into(), T0),
            Err(JobError::TooManyJobs {
                owner: "a".into(),
                limit: 2
            })
        );
        assert_eq!(
            s.add("b", Schedule::at(T0 + MIN), "12345".into(), T0),
            Err(JobError::PayloadTooLarge { len: 5, limit: 4 })
        );
        assert_eq!(
            s.cancel("b", &a),
            Err(JobError::NotFound(a.clone())),
            "b cannot cancel a's job"
        );
        assert!(s.list("b").is_empty());
        s.cancel("a", &a).unwrap();
        assert_eq!(s.list("a").len(), 1);
        assert_eq!(
            s.add("a", Schedule::at(T0 - 1), "p".into(), T0),
            Err(JobError::InThePast)
        );
    }

    #[test]
    fn store_failure_changes_nothing() {
        let store = MemoryJobStore {
            fail_writes: Some("disk full".into()),
            ..Default::default()
        };
        let mut s = Scheduler::open(store, JobLimits::default()).unwrap();
        assert_eq!(
            s.add("p", Schedule::at(T0 + MIN), String::new(), T0),
            Err(JobError::Store(StoreFailure("disk full".into())))
        );
        assert!(s.list("p").is_empty());
        assert_eq!(s.next_wakeup(), None);
    }
}
