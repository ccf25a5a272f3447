//! The plugin host's storage backends on the encrypted store: plugin key-value data
//! ([`StoreKv`]) and durable jobs ([`StoreScheduler`], with the loop that fires them).
//!
//! Contract: both live in one store account reserved for the host ([`HOST_ACCOUNT`]); a plugin's
//! name is its namespace, so plugins never see each other's keys or jobs. Store calls run on the
//! blocking pool. Jobs persist as the scheduler crate's records (JSON, encrypted at rest by the
//! store); a job fires into its owning plugin as a `schedule-fired` event and is acknowledged only
//! after it was queued for the plugin, so a crash in between re-delivers it at the next start
//! (at-least-once, as the scheduler crate documents). A job's session travels in its stored
//! payload envelope ([`Envelope`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use wasmeow_plugin_host::types::{ApiError, CronSpec, Job as WitJob, ScheduleFired, Trigger};
use wasmeow_plugin_host::{KvBackend, PluginHost, SchedulerBackend};
use wasmeow_scheduler::{
    Job, JobError, JobLimits, JobStore as SchedJobStore, Schedule, Scheduler, StoreFailure,
};
use wasmeow_store::{JobStore as _, PluginKvStore as _, RedbAccount, StoreError};

/// The store account holding plugin key-value data and jobs.
pub(crate) const HOST_ACCOUNT: &str = "host:plugins";

fn unavailable(e: StoreError) -> ApiError {
    tracing::warn!(error = %e, "plugin storage failed");
    ApiError::Unavailable
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, StoreError> + Send + 'static,
) -> Result<R, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(unavailable),
        Err(_) => Err(ApiError::Unavailable),
    }
}

/// Plugin key-value data in the host account.
pub(crate) struct StoreKv {
    pub(crate) account: RedbAccount,
}

#[async_trait]
impl KvBackend for StoreKv {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, ApiError> {
        let (acc, ns, key) = (self.account.clone(), namespace.to_owned(), key.to_owned());
        blocking(move || Ok(acc.kv_get(&ns, &key)?.map(|s| s.to_vec()))).await
    }

    async fn set(&self, namespace: &str, key: &str, value: Vec<u8>) -> Result<(), ApiError> {
        let (acc, ns, key) = (self.account.clone(), namespace.to_owned(), key.to_owned());
        blocking(move || acc.kv_set(&ns, &key, &value)).await
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<bool, ApiError> {
        let (acc, ns, key) = (self.account.clone(), namespace.to_owned(), key.to_owned());
        blocking(move || acc.kv_delete(&ns, &key)).await
    }

    async fn list(
        &self,
        namespace: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, ApiError> {
        let (acc, ns, prefix) = (
            self.account.clone(),
            namespace.to_owned(),
            prefix.to_owned(),
        );
        blocking(move || {
            Ok(acc
                .kv_list(&ns, &prefix)?
                .into_iter()
                .take(limit)
                .map(|(k, _)| k)
                .collect())
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        namespace: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, ApiError> {
        let (acc, ns, key) = (self.account.clone(), namespace.to_owned(), key.to_owned());
        blocking(move || acc.kv_compare_and_swap(&ns, &key, expected.as_deref(), new.as_deref()))
            .await
    }
}

/// The scheduler crate's persistence on the store's job table.
pub(crate) struct JobTable {
    account: RedbAccount,
}

impl SchedJobStore for JobTable {
    fn load_all(&self) -> Result<Vec<Job>, StoreFailure> {
        let rows = self
            .account
            .list_jobs()
            .map_err(|e| StoreFailure(e.to_string()))?;
        rows.into_iter()
            .map(|(id, data)| {
                serde_json::from_slice(&data)
                    .map_err(|e| StoreFailure(format!("job {id} is unreadable: {e}")))
            })
            .collect()
    }

    fn put(&mut self, job: &Job) -> Result<(), StoreFailure> {
        let data = serde_json::to_vec(job).map_err(|e| StoreFailure(e.to_string()))?;
        self.account
            .put_job(&job.id, &data)
            .map_err(|e| StoreFailure(e.to_string()))
    }

    fn delete(&mut self, id: &str) -> Result<(), StoreFailure> {
        self.account
            .delete_job(id)
            .map(|_| ())
            .map_err(|e| StoreFailure(e.to_string()))
    }
}

/// What a job's stored payload holds: the session it was scheduled for and the plugin's payload.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// The session.
    pub(crate) s: String,
    /// The plugin's payload.
    pub(crate) p: String,
}

impl Envelope {
    /// (session, plugin payload) of a stored job payload; a payload that is not an envelope
    /// belongs to no session.
    fn open(stored: &str) -> (String, String) {
        match serde_json::from_str::<Envelope>(stored) {
            Ok(env) => (env.s, env.p),
            Err(_) => (String::new(), stored.to_owned()),
        }
    }
}

/// Durable jobs for plugins, and the loop that fires them.
pub(crate) struct StoreScheduler {
    table: Mutex<Scheduler<JobTable>>,
    wake: Notify,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn job_error(e: JobError) -> ApiError {
    match e {
        JobError::NotFound(_) => ApiError::NotFound,
        JobError::Store(f) => {
            tracing::warn!(error = %f, "job store failed");
            ApiError::Unavailable
        }
        other => ApiError::Invalid(other.to_string()),
    }
}

impl StoreScheduler {
    /// Opens the job table in `account`.
    pub(crate) fn open(account: RedbAccount) -> Result<Arc<Self>, StoreFailure> {
        let table = Scheduler::open(JobTable { account }, JobLimits::default())?;
        Ok(Arc::new(Self {
            table: Mutex::new(table),
            wake: Notify::new(),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Scheduler<JobTable>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of stored jobs.
    pub(crate) fn len(&self) -> usize {
        self.lock().all().count()
    }

    /// Fires due jobs into `plugins` until `stop` is notified.
    pub(crate) async fn run(self: Arc<Self>, plugins: PluginHost, stop: Arc<Notify>) {
        loop {
            let now = now_ms();
            let fired = {
                let mut table = self.lock();
                match table.due(now) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading due jobs failed");
                        Vec::new()
                    }
                }
            };
            for f in fired {
                let (session, payload) = Envelope::open(&f.payload);
                let event = wasmeow_plugin_host::Event {
                    session,
                    body: wasmeow_plugin_host::types::EventBody::ScheduleFired(ScheduleFired {
                        job: f.job_id.clone(),
                        payload,
                        scheduled_for: f.scheduled_ms,
                    }),
                };
                match plugins.dispatch_to(&f.owner, event) {
                    Ok(()) => {
                        tracing::info!(plugin = %f.owner, job = %f.job_id, late_ms = f.late_ms, "job fired");
                    }
                    Err(e) => {
                        tracing::warn!(plugin = %f.owner, job = %f.job_id, error = %e, "job could not be delivered; acknowledged anyway")
                    }
                }
                if let Err(e) = self.lock().ack(&f.job_id, f.scheduled_ms, now_ms()) {
                    tracing::warn!(job = %f.job_id, error = %e, "acknowledging a job failed");
                }
            }
            let sleep = match self.lock().next_wakeup() {
                Some(at) => Duration::from_millis((at - now_ms()).clamp(0, 60_000) as u64),
                None => Duration::from_secs(60),
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.notified() => {}
                _ = stop.notified() => return,
            }
        }
    }
}

#[async_trait]
impl SchedulerBackend for StoreScheduler {
    async fn schedule(
        &self,
        owner: &str,
        session: &str,
        trigger: Trigger,
        payload: String,
    ) -> Result<String, ApiError> {
        let schedule = match &trigger {
            Trigger::At(ms) => Schedule::at(*ms),
            Trigger::Cron(CronSpec {
                expression,
                timezone,
            }) => Schedule::cron(expression, timezone)
                .map_err(|e| ApiError::Invalid(e.to_string()))?,
        };
        let envelope = serde_json::to_string(&Envelope {
            s: session.to_owned(),
            p: payload,
        })
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
        let id = {
            let mut table = self.lock();
            tokio::task::block_in_place(|| table.add(owner, schedule, envelope, now_ms()))
                .map_err(job_error)?
        };
        self.wake.notify_one();
        Ok(id)
    }

    async fn cancel(&self, owner: &str, id: &str) -> Result<(), ApiError> {
        let mut table = self.lock();
        tokio::task::block_in_place(|| table.cancel(owner, id)).map_err(job_error)
    }

    async fn list(&self, owner: &str) -> Result<Vec<WitJob>, ApiError> {
        Ok(self
            .lock()
            .list(owner)
            .into_iter()
            .map(|j| {
                let (session, payload) = Envelope::open(&j.payload);
                WitJob {
                    id: j.id,
                    session,
                    trigger: match j.schedule {
                        Schedule::At { at_ms } => Trigger::At(at_ms),
                        Schedule::Cron { expr, tz } => Trigger::Cron(CronSpec {
                            expression: expr,
                            timezone: tz,
                        }),
                    },
                    payload,
                    next: j.next_ms.or(j.pending_ms),
                }
            })
            .collect())
    }
}
