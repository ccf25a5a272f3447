//! In-memory [`KvBackend`] and [`SchedulerBackend`]: complete implementations of
//! the traits' contracts without persistence, for tests and for running the host
//! before the durable store and scheduler are wired in.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::services::{KvBackend, SchedulerBackend};
use crate::types::{ApiError, Event, EventBody, Job, ScheduleFired, Trigger};

/// Key-value storage in a `BTreeMap` behind a mutex.
#[derive(Debug, Default)]
pub struct MemoryKv {
    map: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot of one namespace (for assertions).
    pub fn dump(&self, namespace: &str) -> BTreeMap<String, Vec<u8>> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Vec<u8>>> {
        // A panic while holding the lock cannot leave the map half-updated (every
        // update is a single insert or remove), so a poisoned lock is still usable.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl KvBackend for MemoryKv {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, ApiError> {
        Ok(self
            .lock()
            .get(&(namespace.to_owned(), key.to_owned()))
            .cloned())
    }

    async fn set(&self, namespace: &str, key: &str, value: Vec<u8>) -> Result<(), ApiError> {
        self.lock()
            .insert((namespace.to_owned(), key.to_owned()), value);
        Ok(())
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<bool, ApiError> {
        Ok(self
            .lock()
            .remove(&(namespace.to_owned(), key.to_owned()))
            .is_some())
    }

    async fn list(
        &self,
        namespace: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, ApiError> {
        let map = self.lock();
        let start = (namespace.to_owned(), prefix.to_owned());
        Ok(map
            .range(start..)
            .take_while(|((ns, k), _)| ns == namespace && k.starts_with(prefix))
            .take(limit)
            .map(|((_, k), _)| k.clone())
            .collect())
    }

    async fn compare_and_swap(
        &self,
        namespace: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, ApiError> {
        let mut map = self.lock();
        let k = (namespace.to_owned(), key.to_owned());
        if map.get(&k) != expected.as_ref() {
            return Ok(false);
        }
        match new {
            Some(v) => map.insert(k, v),
            None => map.remove(&k),
        };
        Ok(true)
    }
}

/// The most jobs one plugin may hold in [`MemoryScheduler`].
pub const MAX_JOBS_PER_OWNER: usize = 1000;

/// Jobs in memory. It does not run a clock: tests (or a driver loop) call
/// [`MemoryScheduler::take_due`] or [`MemoryScheduler::fire`] and dispatch the
/// returned events. Cron expressions are checked for shape only (five fields of
/// cron characters, a plausible IANA zone name); computing cron times is the
/// durable scheduler's job, so cron jobs report no `next` time here.
#[derive(Debug, Default)]
pub struct MemoryScheduler {
    state: Mutex<SchedState>,
}

#[derive(Debug, Default)]
struct SchedState {
    next_id: u64,
    /// id → (owner, job)
    jobs: BTreeMap<String, (String, Job)>,
}

impl MemoryScheduler {
    /// No jobs.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SchedState> {
        // Updates are single inserts/removes; a poisoned lock holds consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every job as `(owner, job)`.
    pub fn jobs(&self) -> Vec<(String, Job)> {
        self.lock().jobs.values().cloned().collect()
    }

    /// Removes the one-shot jobs due at `now_ms` and returns them as
    /// `(owner, event)` pairs for [`crate::PluginHost::dispatch_to`].
    pub fn take_due(&self, now_ms: i64) -> Vec<(String, Event)> {
        let mut st = self.lock();
        let due: Vec<String> = st
            .jobs
            .iter()
            .filter(|(_, (_, j))| matches!(j.trigger, Trigger::At(t) if t <= now_ms))
            .map(|(id, _)| id.clone())
            .collect();
        due.into_iter()
            .filter_map(|id| st.jobs.remove(&id))
            .map(|(owner, job)| {
                let at = match job.trigger {
                    Trigger::At(t) => t,
                    Trigger::Cron(_) => now_ms,
                };
                (owner, fired_event(&job, at))
            })
            .collect()
    }

    /// Fires job `id` now: returns `(owner, event)`; a one-shot job is removed, a
    /// cron job stays. `None` if there is no such job.
    pub fn fire(&self, id: &str, now_ms: i64) -> Option<(String, Event)> {
        let mut st = self.lock();
        let (owner, job) = st.jobs.get(id)?.clone();
        if matches!(job.trigger, Trigger::At(_)) {
            st.jobs.remove(id);
        }
        Some((owner, fired_event(&job, now_ms)))
    }
}

fn fired_event(job: &Job, scheduled_for: i64) -> Event {
    Event {
        session: job.session.clone(),
        body: EventBody::ScheduleFired(ScheduleFired {
            job: job.id.clone(),
            payload: job.payload.clone(),
            scheduled_for,
        }),
    }
}

/// Checks the shape of a five-field cron expression and a zone name.
fn check_cron(expression: &str, timezone: &str) -> Result<(), ApiError> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(ApiError::Invalid(format!(
            "cron expression needs 5 fields (minute hour day month weekday), got {}",
            fields.len()
        )));
    }
    let cron_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '*' | ',' | '-' | '/' | '?');
    if let Some(bad) = fields.iter().find(|f| !f.chars().all(cron_char)) {
        return Err(ApiError::Invalid(format!("bad cron field {bad:?}")));
    }
    let zone_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+');
    if timezone.is_empty() || timezone.len() > 64 || !timezone.chars().all(zone_char) {
        return Err(ApiError::Invalid(format!("bad time zone {timezone:?}")));
    }
    Ok(())
}

#[async_trait]
impl SchedulerBackend for MemoryScheduler {
    async fn schedule(
        &self,
        owner: &str,
        session: &str,
        trigger: Trigger,
        payload: String,
    ) -> Result<String, ApiError> {
        if let Trigger::Cron(spec) = &trigger {
            check_cron(&spec.expression, &spec.timezone)?;
        }
        let mut st = self.lock();
        if st.jobs.values().filter(|(o, _)| o == owner).count() >= MAX_JOBS_PER_OWNER {
            return Err(ApiError::Invalid(format!(
                "at most {MAX_JOBS_PER_OWNER} jobs per plugin"
            )));
        }
        st.next_id += 1;
        let id = format!("job-{}", st.next_id);
        let next = match trigger {
            Trigger::At(t) => Some(t),
            Trigger::Cron(_) => None,
        };
        let job = Job {
            id: id.clone(),
            session: session.to_owned(),
            trigger,
            payload,
            next,
        };
        st.jobs.insert(id.clone(), (owner.to_owned(), job));
        Ok(id)
    }

    async fn cancel(&self, owner: &str, id: &str) -> Result<(), ApiError> {
        let mut st = self.lock();
        match st.jobs.get(id) {
            Some((o, _)) if o == owner => {
                st.jobs.remove(id);
                Ok(())
            }
            // Another plugin's job is indistinguishable from no job.
            _ => Err(ApiError::NotFound),
        }
    }

    async fn list(&self, owner: &str) -> Result<Vec<Job>, ApiError> {
        Ok(self
            .lock()
            .jobs
            .values()
            .filter(|(o, _)| o == owner)
            .map(|(_, j)| j.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CronSpec;

    fn block<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn kv_namespaces_prefixes_and_cas() {
        block(async {
            let kv = MemoryKv::new();
            kv.set("a", "x:1", b"1".to_vec()).await.unwrap();
            kv.set("a", "x:2", b"2".to_vec()).await.unwrap();
            kv.set("a", "y", b"3".to_vec()).await.unwrap();
            kv.set("b", "x:3", b"4".to_vec()).await.unwrap();
            assert_eq!(kv.list("a", "x:", 10).await.unwrap(), ["x:1", "x:2"]);
            assert_eq!(kv.list("a", "x:", 1).await.unwrap(), ["x:1"]);
            assert_eq!(kv.get("b", "x:1").await.unwrap(), None);
            assert!(
                !kv.compare_and_swap("a", "y", Some(b"0".to_vec()), None)
                    .await
                    .unwrap()
            );
            assert!(
                kv.compare_and_swap("a", "y", Some(b"3".to_vec()), None)
                    .await
                    .unwrap()
            );
            assert!(
                kv.compare_and_swap("a", "new", None, Some(b"n".to_vec()))
                    .await
                    .unwrap()
            );
            assert!(
                !kv.compare_and_swap("a", "new", None, Some(b"m".to_vec()))
                    .await
                    .unwrap()
            );
            assert!(kv.delete("a", "x:1").await.unwrap());
            assert!(!kv.delete("a", "x:1").await.unwrap());
        });
    }

    #[test]
    fn scheduler_owners_are_separate() {
        block(async {
            let s = MemoryScheduler::new();
            let id = s
                .schedule("p1", "s", Trigger::At(10), "x".into())
                .await
                .unwrap();
            assert_eq!(s.cancel("p2", &id).await, Err(ApiError::NotFound));
            assert!(s.list("p2").await.unwrap().is_empty());
            assert_eq!(s.list("p1").await.unwrap().len(), 1);
            assert!(s.take_due(9).is_empty());
            let due = s.take_due(10);
            assert_eq!(due.len(), 1);
            assert_eq!(due[0].0, "p1");
            assert_eq!(s.cancel("p1", &id).await, Err(ApiError::NotFound));
        });
    }

    #[test]
    fn cron_shape_is_checked() {
        block(async {
            let s = MemoryScheduler::new();
            let cron = |e: &str, z: &str| {
                Trigger::Cron(CronSpec {
                    expression: e.into(),
                    timezone: z.into(),
                })
            };
            assert!(
                s.schedule(
                    "p",
                    "s",
                    cron("0 9 * * 1-5", "Europe/Berlin"),
                    String::new()
                )
                .await
                .is_ok()
            );
            assert!(matches!(
                s.schedule("p", "s", cron("0 9 * *", "UTC"), String::new())
                    .await,
                Err(ApiError::Invalid(_))
            ));
            assert!(matches!(
                s.schedule("p", "s", cron("0 9 * * $", "UTC"), String::new())
                    .await,
                Err(ApiError::Invalid(_))
            ));
            assert!(matches!(
                s.schedule("p", "s", cron("0 9 * * *", ""), String::new())
                    .await,
                Err(ApiError::Invalid(_))
            ));
        });
    }
}
