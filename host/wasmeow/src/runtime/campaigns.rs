//! Campaigns from bot.toml, run by the host: one task per campaign drives the scheduler crate's
//! pure campaign state machine with the wall clock and sends through the campaign's session.
//!
//! Contract:
//! * A campaign's state lives in its session's store account (job record `campaign:<name>`),
//!   so it is encrypted at rest and deleted with the session. Each message is queued in the
//!   session's persistent outbox **in the same store transaction** that records the recipient as
//!   done ([`Session::send_with`]): after a crash or restart a recipient has been both queued and
//!   recorded or neither — no one is messaged twice and no one is skipped.
//! * Sends also pass the session's rate limiter (the outbox), on top of the campaign's own pacing
//!   and send window; a disconnected session makes the run wait, never drop recipients.
//! * Opt-outs: a direct message whose whole text is one of a campaign's opt-out words (trimmed,
//!   any case) records the sender's phone number in the session's kv namespace
//!   [`OPT_OUT_NAMESPACE`] (record keys are keyed-hashed by the store); every campaign of that
//!   session skips them from then on, and the configured confirmation is sent once.
//! * Operator commands (run now, pause, resume, cancel) and the runner serialize on one async
//!   lock per campaign, so a command never races a send.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use wasmeow_protocol::binary::Jid;
use wasmeow_protocol::binary::Server;
use wasmeow_scheduler::{Action, CampaignState, Outcome, Run};
use wasmeow_session::events::MessageEvent;
use wasmeow_session::{ConnState, MessageContent, Session};
use wasmeow_store::{
    AccountStore as _, JobStore as _, LidStore as _, PluginKvStore as _, RedbAccount, StoreError,
};

use super::Registry;
use crate::config::CampaignConfig;
use crate::control::{CampaignCommand, CampaignRunStatus, CampaignStatus, ControlError};

/// The kv namespace (in each session's account) holding phone numbers that opted out.
pub(crate) const OPT_OUT_NAMESPACE: &str = "wasmeow.opt-out";

fn job_id(name: &str) -> String {
    format!("campaign:{name}")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Lifetime counters of one campaign (since the host started).
#[derive(Debug, Default)]
pub(crate) struct CampaignCounters {
    pub(crate) queued: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) opted_out: AtomicU64,
}

/// One campaign: its configuration, its state (loaded from the session's account) and the
/// runner's wake-up.
pub(crate) struct Campaign {
    pub(crate) cfg: CampaignConfig,
    state: tokio::sync::Mutex<Loaded>,
    wake: Notify,
    pub(crate) counters: CampaignCounters,
    /// Whether a run is going (as of the last step or command).
    pub(crate) running: AtomicBool,
}

#[derive(Default)]
struct Loaded {
    /// The account the state was loaded from; cleared when its session is removed, so a
    /// re-created session starts over.
    account: Option<RedbAccount>,
    state: CampaignState,
    next_slot_ms: Option<i64>,
}

/// Every campaign of the host.
pub(crate) struct Campaigns {
    list: BTreeMap<String, Arc<Campaign>>,
}

/// Runs a store call on the blocking pool; errors become text for the log and the admin API.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, StoreError> + Send + 'static,
) -> Result<R, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| format!("store: {e}")),
        Err(e) => Err(format!("store task failed: {e}")),
    }
}

async fn persist(account: &RedbAccount, name: &str, state: &CampaignState) -> Result<(), String> {
    let data = serde_json::to_vec(state).map_err(|e| e.to_string())?;
    let (acc, id) = (account.clone(), job_id(name));
    blocking(move || acc.put_job(&id, &data)).await
}

fn phone_jid(phone: &str) -> Result<Jid, String> {
    Jid::new(phone, Server::WhatsApp).map_err(|e| format!("{phone}: {e}"))
}

impl Campaigns {
    pub(crate) fn new(list: Vec<CampaignConfig>) -> Self {
        Self {
            list: list
                .into_iter()
                .map(|cfg| {
                    (
                        cfg.name.clone(),
                        Arc::new(Campaign {
                            cfg,
                            state: tokio::sync::Mutex::new(Loaded::default()),
                            wake: Notify::new(),
                            counters: CampaignCounters::default(),
                            running: AtomicBool::new(false),
                        }),
                    )
                })
                .collect(),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Campaign>> {
        self.list.values()
    }

    /// Starts one runner per enabled campaign.
    pub(crate) fn spawn(
        &self,
        reg: Weak<Registry>,
        stop: Arc<Notify>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        self.list
            .values()
            .filter(|c| c.cfg.enabled)
            .map(|c| tokio::spawn(run(c.clone(), reg.clone(), stop.clone())))
            .collect()
    }

    /// Drops the cached state of the campaigns of a removed session (its account is gone).
    pub(crate) async fn forget_session(&self, session: &str) {
        for c in self.list.values().filter(|c| c.cfg.session == session) {
            *c.state.lock().await = Loaded::default();
        }
    }

    /// Status of every campaign.
    pub(crate) async fn statuses(&self, reg: &Registry) -> Vec<CampaignStatus> {
        let mut out = Vec::with_capacity(self.list.len());
        for c in self.list.values() {
            out.push(c.status(reg).await);
        }
        out
    }

    /// Applies an operator command.
    pub(crate) async fn command(
        &self,
        reg: &Registry,
        name: &str,
        cmd: CampaignCommand,
    ) -> Result<CampaignStatus, ControlError> {
        let c = self
            .list
            .get(name)
            .ok_or_else(|| ControlError::NotFound(format!("campaign {name:?}")))?;
        let session = reg.session(&c.cfg.session).ok_or_else(|| {
            ControlError::Unavailable(format!("session {:?} is not running", c.cfg.session))
        })?;
        {
            let mut l = c.state.lock().await;
            l.load(&c.cfg.name, &session).await.map_err(store_err)?;
            let now = now_ms();
            let done = match cmd {
                CampaignCommand::Run => {
                    if !c.cfg.enabled {
                        return Err(ControlError::Invalid(format!(
                            "campaign {name:?} is disabled in bot.toml"
                        )));
                    }
                    l.state.start_now(now)
                }
                CampaignCommand::Pause => l.state.set_paused(true),
                CampaignCommand::Resume => l.state.set_paused(false),
                CampaignCommand::Cancel => l.state.cancel(now),
            };
            if !done {
                let why = if cmd == CampaignCommand::Run {
                    "a run is already going"
                } else {
                    "no run is going"
                };
                return Err(ControlError::Conflict(format!("campaign {name:?}: {why}")));
            }
            let acc = l.account.clone().expect("loaded above");
            persist(&acc, &c.cfg.name, &l.state)
                .await
                .map_err(store_err)?;
            c.running
                .store(l.state.active().is_some(), Ordering::Relaxed);
            tracing::info!(campaign = name, command = ?cmd, "campaign command");
        }
        c.wake.notify_one();
        Ok(c.status(reg).await)
    }

    /// Looks at an incoming message for an opt-out word; records the sender and confirms.
    pub(crate) fn on_message(
        &self,
        session_name: &str,
        session: &Session<RedbAccount>,
        m: &MessageEvent,
    ) {
        if m.info.is_group || m.info.from_me {
            return;
        }
        let MessageContent::Text { text, .. } = &m.content else {
            return;
        };
        let word = text.trim();
        let mine: Vec<&Arc<Campaign>> = self
            .list
            .values()
            .filter(|c| c.cfg.session == session_name)
            .filter(|c| {
                c.cfg
                    .opt_out
                    .iter()
                    .any(|w| w.to_lowercase() == word.to_lowercase())
            })
            .collect();
        if mine.is_empty() {
            return;
        }
        let reply = mine.iter().find_map(|c| c.cfg.opt_out_reply.clone());
        let (session, info) = (session.clone(), m.info.clone());
        tokio::spawn(async move {
            let account = session.store().clone();
            let candidates = [Some(info.sender.clone()), info.sender_alt.clone()];
            let phone = {
                let acc = account.clone();
                blocking(move || {
                    for jid in candidates.into_iter().flatten() {
                        let Ok(j) = jid.parse::<Jid>() else { continue };
                        match j.server() {
                            Server::WhatsApp => return Ok(Some(j.user().to_string())),
                            Server::Lid => {
                                if let Some(pn) = acc.get_pn_for_lid(j.user())? {
                                    let pn = pn.split(['@', ':']).next().unwrap_or("").to_string();
                                    return Ok(Some(pn));
                                }
                            }
                            _ => {}
                        }
                    }
                    Ok(None)
                })
                .await
            };
            let phone = match phone {
                Ok(Some(p)) => p,
                Ok(None) => {
                    tracing::warn!(sender = %info.sender, "opt-out from a sender whose phone number is unknown; not recorded");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "recording an opt-out failed");
                    return;
                }
            };
            let (acc, key, at) = (account.clone(), phone.clone(), now_ms().to_string());
            let fresh = blocking(move || {
                let fresh = acc.kv_get(OPT_OUT_NAMESPACE, &key)?.is_none();
                acc.kv_set(OPT_OUT_NAMESPACE, &key, at.as_bytes())?;
                Ok(fresh)
            })
            .await;
            match fresh {
                Ok(true) => {
                    tracing::info!("a recipient opted out of campaigns");
                    if let (Some(reply), Ok(chat)) = (reply, phone_jid(&phone))
                        && let Err(e) = session.send(&chat, MessageContent::text(reply)).await
                    {
                        tracing::warn!(error = %e, "the opt-out confirmation could not be queued");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "recording an opt-out failed"),
            }
        });
    }
}

fn store_err(e: String) -> ControlError {
    ControlError::Internal(e)
}

impl Loaded {
    /// Loads the state from `session`'s account unless it is already loaded from it.
    async fn load(&mut self, name: &str, session: &Session<RedbAccount>) -> Result<(), String> {
        let account = session.store();
        if self
            .account
            .as_ref()
            .is_some_and(|a| a.name() == account.name())
        {
            return Ok(());
        }
        let (acc, id) = (account.clone(), job_id(name));
        let stored = blocking(move || acc.get_job(&id)).await?;
        self.state = match stored {
            None => CampaignState::default(),
            Some(data) => serde_json::from_slice(&data)
                .map_err(|e| format!("campaign {name:?}: its stored state is unreadable: {e}"))?,
        };
        self.account = Some(account.clone());
        Ok(())
    }
}

impl Campaign {
    async fn status(&self, reg: &Registry) -> CampaignStatus {
        let mut l = self.state.lock().await;
        if let Some(session) = reg.session(&self.cfg.session)
            && let Err(e) = l.load(&self.cfg.name, &session).await
        {
            tracing::warn!(campaign = %self.cfg.name, error = %e, "campaign state unreadable");
        }
        let plan = &self.cfg.plan;
        let run = l
            .state
            .run
            .as_ref()
            .map(|r| run_status(r, plan.recipients.len()));
        let schedule = match &plan.schedule {
            wasmeow_scheduler::Schedule::Cron { expr, tz } => format!("{expr} ({tz})"),
            wasmeow_scheduler::Schedule::At { at_ms } => format!("at {at_ms}"),
        };
        CampaignStatus {
            name: self.cfg.name.clone(),
            session: self.cfg.session.clone(),
            enabled: self.cfg.enabled,
            schedule,
            next_run_ms: if self.cfg.enabled {
                l.next_slot_ms
                    .or_else(|| plan.schedule.next_after(now_ms()))
            } else {
                None
            },
            recipients: plan.recipients.len(),
            run,
            skipped_slots: l.state.skipped_slots,
        }
    }
}

fn run_status(r: &Run, total: usize) -> CampaignRunStatus {
    let (queued, failed, opted_out) = (
        r.count(Outcome::Queued),
        r.count(Outcome::Failed),
        r.count(Outcome::OptedOut),
    );
    CampaignRunStatus {
        slot_ms: r.slot_ms,
        started_ms: r.started_ms,
        finished_ms: r.finished_ms,
        cancelled: r.cancelled,
        paused: r.paused,
        queued,
        failed,
        opted_out,
        remaining: total.saturating_sub(r.done.len()),
        next_send_ms: r.finished_ms.is_none().then_some(r.not_before_ms),
    }
}

/// What the runner waits for after a step.
enum Next {
    /// Step again at once.
    Now,
    /// Sleep until then (or a command).
    Until(i64),
    /// Wait for a command or the session.
    Idle(Duration),
}

/// The runner of one campaign.
async fn run(c: Arc<Campaign>, reg: Weak<Registry>, stop: Arc<Notify>) {
    let name = c.cfg.name.clone();
    loop {
        let next = match reg.upgrade() {
            None => return,
            Some(reg) => match step(&c, &reg).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(campaign = %name, error = %e, "campaign step failed; retrying in 5 s");
                    Next::Idle(Duration::from_secs(5))
                }
            },
        };
        let sleep = match next {
            Next::Now => continue,
            Next::Until(at) => Duration::from_millis((at - now_ms()).clamp(0, 60_000) as u64),
            Next::Idle(d) => d,
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = c.wake.notified() => {}
            _ = stop.notified() => return,
        }
    }
}

/// One step: start a due run, then send to the next recipient or say how long to wait.
async fn step(c: &Arc<Campaign>, reg: &Registry) -> Result<Next, String> {
    let Some(session) = reg.session(&c.cfg.session) else {
        return Ok(Next::Idle(Duration::from_secs(1)));
    };
    let plan = &c.cfg.plan;
    let mut l = c.state.lock().await;
    l.load(&c.cfg.name, &session).await?;
    let account = l.account.clone().expect("loaded above");
    let now = now_ms();
    let before = l.state.clone();
    let (started, next_slot) = l.state.due_run(plan, now);
    l.next_slot_ms = next_slot;
    if started {
        tracing::info!(campaign = %c.cfg.name, recipients = plan.recipients.len(), "campaign run started");
    }
    let action = l.state.next_action(plan, now);
    c.running
        .store(l.state.active().is_some(), Ordering::Relaxed);
    if l.state != before {
        persist(&account, &c.cfg.name, &l.state).await?;
        if before.active().is_some()
            && l.state.active().is_none()
            && let Some(r) = &l.state.run
        {
            tracing::info!(
                campaign = %c.cfg.name,
                queued = r.count(Outcome::Queued),
                failed = r.count(Outcome::Failed),
                opted_out = r.count(Outcome::OptedOut),
                "campaign run finished"
            );
        }
    }
    let (phone, text) = match action {
        Action::Idle => {
            return Ok(match next_slot {
                Some(at) => Next::Until(at),
                None => Next::Idle(Duration::from_secs(60)),
            });
        }
        Action::Paused => return Ok(Next::Idle(Duration::from_secs(60))),
        Action::WaitUntil(at) => return Ok(Next::Until(at)),
        Action::Send { phone, text } => (phone, text),
    };
    if session.state() != ConnState::Ready {
        drop(l);
        session.wait_ready(Duration::from_secs(5)).await;
        return Ok(Next::Now);
    }
    let opted_out = {
        let (acc, key) = (account.clone(), phone.clone());
        blocking(move || Ok(acc.kv_get(OPT_OUT_NAMESPACE, &key)?.is_some())).await?
    };
    let text = match text {
        _ if opted_out => None,
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(campaign = %c.cfg.name, error = %e, "a recipient's message cannot be rendered");
            None
        }
    };
    let Some(text) = text else {
        let outcome = if opted_out {
            Outcome::OptedOut
        } else {
            Outcome::Failed
        };
        l.state.record(plan, &phone, outcome, now, rand::random());
        persist(&account, &c.cfg.name, &l.state).await?;
        let counter = if opted_out {
            &c.counters.opted_out
        } else {
            &c.counters.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        return Ok(Next::Now);
    };
    let mut after = l.state.clone();
    after.record(plan, &phone, Outcome::Queued, now, rand::random());
    let data = serde_json::to_vec(&after).map_err(|e| e.to_string())?;
    let id = job_id(&c.cfg.name);
    let chat = phone_jid(&phone)?;
    match session
        .send_with(&chat, MessageContent::text(text), move |tx| {
            tx.put_job(&id, &data)
        })
        .await
    {
        Ok((msg_id, outcome)) => {
            l.state = after;
            c.counters.queued.fetch_add(1, Ordering::Relaxed);
            reg.metrics.messages_out.inc();
            tracing::debug!(campaign = %c.cfg.name, id = %msg_id, "campaign message queued");
            let (c2, acc2) = (c.clone(), account.clone());
            tokio::spawn(async move {
                if let Ok(o) = outcome.await
                    && let Err(e) = o.result
                {
                    c2.failed_after_queueing(&acc2, &phone, &e.to_string())
                        .await;
                }
            });
            Ok(Next::Now)
        }
        Err(wasmeow_session::SessionError::NotLoggedIn) => Ok(Next::Idle(Duration::from_secs(1))),
        Err(e) => {
            tracing::warn!(campaign = %c.cfg.name, error = %e, "queueing a campaign message failed; retrying");
            Ok(Next::Idle(Duration::from_secs(5)))
        }
    }
}

impl Campaign {
    /// The server refused a queued message for good: the recipient counts as failed.
    async fn failed_after_queueing(&self, account: &RedbAccount, phone: &str, why: &str) {
        tracing::warn!(campaign = %self.cfg.name, error = why, "a campaign message failed");
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        let mut l = self.state.lock().await;
        let Some(run) = l.state.run.as_mut() else {
            return;
        };
        if let Some(o) = run.done.get_mut(phone)
            && *o == Outcome::Queued
        {
            *o = Outcome::Failed;
            if let Err(e) = persist(account, &self.cfg.name, &l.state).await {
                tracing::warn!(campaign = %self.cfg.name, error = %e, "recording a failure failed");
            }
        }
    }
}
