//! Campaigns: one message, rendered per recipient, sent to a list on a cron schedule — paced,
//! inside a send window, skipping people who opted out, and resumable after any crash.
//!
//! Like the rest of the crate this module does no IO, reads no clock and draws no randomness:
//! the binary passes `now` and a random number in, persists [`CampaignState`] (plain serde data)
//! and does the sending. The contract the binary relies on:
//!
//! * [`CampaignState::due_run`] says when a scheduled run should start. A run never overlaps the
//!   previous one (a slot that comes while a run is still going is skipped and counted), and a slot
//!   missed while the host was down is started late only within [`Plan::catch_up_ms`]; older slots
//!   are skipped, so a week of downtime never turns into seven back-to-back runs.
//! * [`CampaignState::next_action`] walks the recipient list in order and answers *send this text
//!   to this phone now*, *wait until then*, or *finished*. Progress is recorded per phone number
//!   (not per index), so editing the list between two restarts neither re-sends to anyone already
//!   handled nor skips anyone new.
//! * The binary records a send with [`CampaignState::record`] **in the same store transaction
//!   that queues the message**, so after a crash a recipient has either been queued and recorded,
//!   or neither: nobody gets the message twice and nobody is lost.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::Schedule;

/// A message template with `{name}` placeholders filled from each recipient's variables; `{{` and
/// `}}` stand for literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(String),
}

/// A template that cannot be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{` without its closing `}`.
    #[error("unclosed '{{' at character {0}; write '{{{{' for a literal brace")]
    Unclosed(usize),
    /// A `}` that closes nothing.
    #[error("unmatched '}}' at character {0}; write '}}}}' for a literal brace")]
    Unmatched(usize),
    /// A placeholder whose name is empty or not letters, digits and `_`.
    #[error("placeholder {{{0}}} must be a name of letters, digits and '_'")]
    BadName(String),
    /// A recipient has no value for a placeholder.
    #[error("no value for {{{0}}}")]
    Missing(String),
    /// The template renders to nothing.
    #[error("the message is empty")]
    Empty,
}

impl Template {
    /// Parses a template.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().enumerate().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '}')) => break,
                            Some((_, ch)) => name.push(ch),
                            None => return Err(TemplateError::Unclosed(i)),
                        }
                    }
                    let trimmed = name.trim();
                    if trimmed.is_empty()
                        || !trimmed
                            .chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                    {
                        return Err(TemplateError::BadName(name));
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Var(trimmed.to_string()));
                }
                '}' => return Err(TemplateError::Unmatched(i)),
                other => lit.push(other),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        if parts.is_empty() {
            return Err(TemplateError::Empty);
        }
        Ok(Self { parts })
    }

    /// The placeholder names used, in order of first use.
    pub fn variables(&self) -> Vec<&str> {
        let mut seen = BTreeSet::new();
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Var(v) if seen.insert(v.as_str()) => Some(v.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Fills the placeholders from `vars`.
    pub fn render(&self, vars: &BTreeMap<String, String>) -> Result<String, TemplateError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => out.push_str(
                    vars.get(v)
                        .ok_or_else(|| TemplateError::Missing(v.clone()))?,
                ),
            }
        }
        if out.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        Ok(out)
    }
}

/// One recipient: a phone number (digits only, with country code) and the template variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// International number, digits only (`4915112345678`).
    pub phone: String,
    /// Values for the template's placeholders (`phone` is always available too).
    pub vars: BTreeMap<String, String>,
}

impl Recipient {
    /// A recipient; `phone` may carry a leading `+`, spaces and dashes, which are removed. The
    /// result must have 7 to 15 digits (E.164).
    pub fn new(phone: &str, vars: BTreeMap<String, String>) -> Result<Self, String> {
        let digits: String = phone
            .trim()
            .trim_start_matches('+')
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
            .collect();
        if !(7..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "{phone:?} is not a phone number in international form (7 to 15 digits, e.g. +4915112345678)"
            ));
        }
        if digits.starts_with('0') {
            return Err(format!(
                "{phone:?} starts with 0: write it with its country code, without a trunk prefix"
            ));
        }
        let mut vars = vars;
        vars.entry("phone".into()).or_insert_with(|| digits.clone());
        Ok(Self {
            phone: digits,
            vars,
        })
    }
}

/// How fast a run sends: a random gap between two messages, and a longer pause every so often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Shortest gap between two sends.
    pub min_gap_ms: u64,
    /// Longest gap between two sends (the gap is uniform in `min..=max`).
    pub max_gap_ms: u64,
    /// After this many sends, pause (0: never).
    pub pause_every: u32,
    /// How long that pause lasts.
    pub pause_ms: u64,
}

impl Default for Pacing {
    /// Conservative defaults from what operators of bulk senders report as safe: 20–60 s between
    /// messages, a minute's pause after every 20.
    fn default() -> Self {
        Self {
            min_gap_ms: 20_000,
            max_gap_ms: 60_000,
            pause_every: 20,
            pause_ms: 60_000,
        }
    }
}

/// Hours and weekdays in which a run may send, in a time zone. Outside it a run waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow {
    /// Opening time, minutes after local midnight.
    pub start_min: u16,
    /// Closing time (exclusive), minutes after local midnight; after `start_min`.
    pub end_min: u16,
    /// Allowed weekdays, bit 0 = Monday … bit 6 = Sunday.
    pub days: u8,
    /// The zone the hours are in.
    pub tz: Tz,
}

impl SendWindow {
    /// Parses `"HH:MM-HH:MM"`; the end must be after the start (no window across midnight).
    pub fn parse_hours(text: &str) -> Result<(u16, u16), String> {
        let (a, b) = text
            .split_once('-')
            .ok_or_else(|| format!("{text:?} is not a window like \"09:00-18:00\""))?;
        let parse = |s: &str| {
            NaiveTime::parse_from_str(s.trim(), "%H:%M")
                .map(|t| (t.hour() * 60 + t.minute()) as u16)
                .or_else(|_| {
                    if s.trim() == "24:00" {
                        Ok(24 * 60)
                    } else {
                        Err(format!("{s:?} is not a time like 09:00"))
                    }
                })
        };
        let (start, end) = (parse(a)?, parse(b)?);
        if end <= start {
            return Err(format!(
                "the window {text:?} ends before it starts (windows across midnight are not supported)"
            ));
        }
        Ok((start, end))
    }

    /// Parses a weekday name (`mon` … `sun`, any case, or full names) to its bit.
    pub fn day_bit(name: &str) -> Option<u8> {
        let n = name.trim().to_ascii_lowercase();
        let idx = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .iter()
            .position(|d| n.starts_with(d) && n.len() >= 3)?;
        Some(1 << idx)
    }

    /// `now_ms` if the window is open then, else the next instant it opens (within two weeks;
    /// `None` if it never opens, e.g. no weekday allowed).
    pub fn next_open(&self, now_ms: i64) -> Option<i64> {
        let now = Utc
            .timestamp_millis_opt(now_ms)
            .single()?
            .with_timezone(&self.tz);
        let mut date = now.date_naive();
        for day in 0..15 {
            let allowed = self.days & (1 << date.weekday().num_days_from_monday()) != 0;
            if allowed {
                let minute =
                    |m: u16| NaiveTime::from_hms_opt(u32::from(m / 60), u32::from(m % 60), 0);
                let open = minute(self.start_min).and_then(|t| {
                    self.tz
                        .from_local_datetime(&date.and_time(t))
                        .earliest()
                        .or_else(|| {
                            // The opening time falls in a DST gap: open an hour later.
                            self.tz
                                .from_local_datetime(
                                    &(date.and_time(t) + chrono::Duration::hours(1)),
                                )
                                .earliest()
                        })
                });
                let close = if self.end_min >= 24 * 60 {
                    date.succ_opt().and_then(|d| {
                        self.tz
                            .from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
                            .earliest()
                    })
                } else {
                    minute(self.end_min)
                        .and_then(|t| self.tz.from_local_datetime(&date.and_time(t)).latest())
                };
                if let (Some(open), Some(close)) = (open, close) {
                    let (open, close) = (open.timestamp_millis(), close.timestamp_millis());
                    if day == 0 && now_ms >= open && now_ms < close {
                        return Some(now_ms);
                    }
                    if open > now_ms {
                        return Some(open);
                    }
                }
            }
            date = date.succ_opt()?;
        }
        None
    }
}

/// Everything a campaign is, as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// When runs start.
    pub schedule: Schedule,
    /// The message.
    pub template: Template,
    /// Who gets it, in this order.
    pub recipients: Vec<Recipient>,
    /// How fast.
    pub pacing: Pacing,
    /// When sending is allowed (`None`: any time).
    pub window: Option<SendWindow>,
    /// A slot missed by at most this much (host down, run still going) is started late; older
    /// slots are skipped.
    pub catch_up_ms: i64,
}

/// What happened to one recipient in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Queued in the session's persistent outbox.
    Queued,
    /// The template could not be rendered for them, or the number cannot be messaged.
    Failed,
    /// They opted out earlier.
    OptedOut,
}

/// One run of a campaign, in progress or finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// The schedule slot it serves (or when it was started by hand).
    pub slot_ms: i64,
    /// When it started.
    pub started_ms: i64,
    /// When it finished or was cancelled.
    pub finished_ms: Option<i64>,
    /// Whether it was cancelled before the end.
    pub cancelled: bool,
    /// Per phone number: what happened.
    pub done: BTreeMap<String, Outcome>,
    /// No send before this instant (pacing).
    pub not_before_ms: i64,
    /// Sends since the last long pause.
    pub since_pause: u32,
    /// Paused by an operator.
    pub paused: bool,
}

impl Run {
    /// How many recipients ended with `o`.
    pub fn count(&self, o: Outcome) -> usize {
        self.done.values().filter(|x| **x == o).count()
    }
}

/// A campaign's persistent state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignState {
    /// The latest schedule slot that was handled (started or skipped); `None` until the
    /// campaign is first seen, which sets it to "now" so past slots never fire.
    pub last_slot_ms: Option<i64>,
    /// The current run.
    pub run: Option<Run>,
    /// The most recent finished runs, newest last (at most [`HISTORY`]).
    pub history: Vec<Run>,
    /// Slots skipped because the previous run was still going or the host was down too long.
    pub skipped_slots: u64,
}

/// How many finished runs a campaign keeps.
pub const HISTORY: usize = 5;

/// What a run should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `text` to `phone` now (unless they opted out: then [`CampaignState::record`] them
    /// as [`Outcome::OptedOut`]).
    Send {
        /// Digits of the number.
        phone: String,
        /// The rendered message, or why it could not be rendered.
        text: Result<String, TemplateError>,
    },
    /// Nothing to do before this instant.
    WaitUntil(i64),
    /// Paused by an operator.
    Paused,
    /// No run is going.
    Idle,
}

impl CampaignState {
    /// Called when the runner looks at the campaign at `now_ms`: starts a run if a schedule slot
    /// has come (returns `true`), skipping slots that overlap a running run or are too old.
    /// Also returns the next instant worth waking up for a slot, if any.
    pub fn due_run(&mut self, plan: &Plan, now_ms: i64) -> (bool, Option<i64>) {
        let Some(mut last) = self.last_slot_ms else {
            self.last_slot_ms = Some(now_ms);
            return (false, plan.schedule.next_after(now_ms));
        };
        let mut started = false;
        // Walk the slots that have come since the last one handled; only the newest can start.
        let mut newest = None;
        let mut count = 0u64;
        while let Some(slot) = plan.schedule.next_after(last) {
            if slot > now_ms {
                break;
            }
            count += 1;
            newest = Some(slot);
            last = slot;
            if count > 100_000 {
                // A minutely schedule over a very long downtime: jump straight to now.
                last = now_ms;
            }
        }
        if let Some(slot) = newest {
            self.last_slot_ms = Some(last);
            self.skipped_slots += count - 1;
            let running = self.run.as_ref().is_some_and(|r| r.finished_ms.is_none());
            if running || now_ms - slot > plan.catch_up_ms {
                self.skipped_slots += 1;
            } else {
                self.start(slot, now_ms);
                started = true;
            }
        }
        (started, plan.schedule.next_after(last))
    }

    /// Starts a run now (an operator's "run now"); `false` if one is already going.
    pub fn start_now(&mut self, now_ms: i64) -> bool {
        if self.run.as_ref().is_some_and(|r| r.finished_ms.is_none()) {
            return false;
        }
        self.start(now_ms, now_ms);
        true
    }

    fn start(&mut self, slot_ms: i64, now_ms: i64) {
        if let Some(prev) = self.run.take() {
            self.history.push(prev);
            let excess = self.history.len().saturating_sub(HISTORY);
            self.history.drain(..excess);
        }
        self.run = Some(Run {
            slot_ms,
            started_ms: now_ms,
            finished_ms: None,
            cancelled: false,
            done: BTreeMap::new(),
            not_before_ms: now_ms,
            since_pause: 0,
            paused: false,
        });
    }

    /// The running run, if any.
    pub fn active(&self) -> Option<&Run> {
        self.run.as_ref().filter(|r| r.finished_ms.is_none())
    }

    /// Pauses or resumes the running run; `false` if none is going.
    pub fn set_paused(&mut self, paused: bool) -> bool {
        match self.run.as_mut().filter(|r| r.finished_ms.is_none()) {
            Some(r) => {
                r.paused = paused;
                true
            }
            None => false,
        }
    }

    /// Cancels the running run; `false` if none is going.
    pub fn cancel(&mut self, now_ms: i64) -> bool {
        match self.run.as_mut().filter(|r| r.finished_ms.is_none()) {
            Some(r) => {
                r.cancelled = true;
                r.finished_ms = Some(now_ms);
                true
            }
            None => false,
        }
    }

    /// What to do at `now_ms`. Finishes the run when every recipient is handled.
    pub fn next_action(&mut self, plan: &Plan, now_ms: i64) -> Action {
        let Some(run) = self.run.as_mut().filter(|r| r.finished_ms.is_none()) else {
            return Action::Idle;
        };
        if run.paused {
            return Action::Paused;
        }
        let Some(next) = plan
            .recipients
            .iter()
            .find(|r| !run.done.contains_key(&r.phone))
        else {
            run.finished_ms = Some(now_ms);
            return Action::Idle;
        };
        let mut at = run.not_before_ms.max(now_ms);
        if let Some(w) = &plan.window {
            match w.next_open(at) {
                Some(open) => at = open,
                None => {
                    // The window never opens: nothing can be sent; end the run rather than hang.
                    run.finished_ms = Some(now_ms);
                    run.cancelled = true;
                    return Action::Idle;
                }
            }
        }
        if at > now_ms {
            return Action::WaitUntil(at);
        }
        Action::Send {
            phone: next.phone.clone(),
            text: plan.template.render(&next.vars),
        }
    }

    /// Records what happened to `phone` at `now_ms`; `random` (any u64) picks the gap before the
    /// next send. Persist the state in the same transaction that queued the message.
    pub fn record(&mut self, plan: &Plan, phone: &str, outcome: Outcome, now_ms: i64, random: u64) {
        let Some(run) = self.run.as_mut().filter(|r| r.finished_ms.is_none()) else {
            return;
        };
        run.done.insert(phone.to_string(), outcome);
        if outcome != Outcome::Queued {
            return;
        }
        let p = plan.pacing;
        let span = p.max_gap_ms.saturating_sub(p.min_gap_ms);
        let mut gap = p.min_gap_ms + if span == 0 { 0 } else { random % (span + 1) };
        run.since_pause += 1;
        if p.pause_every > 0 && run.since_pause >= p.pause_every {
            run.since_pause = 0;
            gap += p.pause_ms;
        }
        run.not_before_ms = now_ms.saturating_add(i64::try_from(gap).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MON_2026_11_23_UTC: i64 = 1_795_392_000_000; // Monday 00:00 UTC

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn plan(recipients: &[(&str, &str)], pacing: Pacing, window: Option<SendWindow>) -> Plan {
        Plan {
            schedule: Schedule::cron("0 9 * * *", "UTC").unwrap(),
            template: Template::parse("Hi {name}!").unwrap(),
            recipients: recipients
                .iter()
                .map(|(p, n)| Recipient::new(p, vars(&[("name", n)])).unwrap())
                .collect(),
            pacing,
            window,
            catch_up_ms: 3_600_000,
        }
    }

    #[test]
    fn templates_render_and_reject_bad_syntax() {
        let t = Template::parse("Hi {name}, {{literal}} {name} {city}").unwrap();
        assert_eq!(t.variables(), vec!["name", "city"]);
        assert_eq!(
            t.render(&vars(&[("name", "Ana"), ("city", "Porto")]))
                .unwrap(),
            "Hi Ana, {literal} Ana Porto"
        );
        assert_eq!(
            t.render(&vars(&[("name", "Ana")])),
            Err(TemplateError::Missing("city".into()))
        );
        assert_eq!(Template::parse("Hi {name"), Err(TemplateError::Unclosed(3)));
        assert_eq!(Template::parse("Hi }"), Err(TemplateError::Unmatched(3)));
        assert_eq!(
            Template::parse("Hi {na me}"),
            Err(TemplateError::BadName("na me".into()))
        );
        assert_eq!(Template::parse(""), Err(TemplateError::Empty));
        assert_eq!(
            Template::parse("{x}").unwrap().render(&vars(&[("x", " ")])),
            Err(TemplateError::Empty)
        );
    }

    #[test]
    fn phone_numbers_are_normalised_or_refused() {
        let r = Recipient::new("+49 151-1234 5678", BTreeMap::new()).unwrap();
        assert_eq!(r.phone, "4915112345678");
        assert_eq!(r.vars["phone"], "4915112345678");
        assert!(Recipient::new("12345", BTreeMap::new()).is_err());
        assert!(Recipient::new("0151 12345678", BTreeMap::new()).is_err());
        assert!(Recipient::new("+49 151 abc", BTreeMap::new()).is_err());
    }

    #[test]
    fn window_opens_on_allowed_days_and_hours_across_dst() {
        let (start, end) = SendWindow::parse_hours("09:00-18:00").unwrap();
        let w = SendWindow {
            start_min: start,
            end_min: end,
            days: 0b0011111, // Monday to Friday
            tz: "Europe/Berlin".parse().unwrap(),
        };
        // Monday 00:00 UTC = 01:00 Berlin: opens at 09:00 Berlin = 08:00 UTC.
        assert_eq!(
            w.next_open(MON_2026_11_23_UTC),
            Some(MON_2026_11_23_UTC + 8 * 3_600_000)
        );
        // Inside the window: now.
        let noon = MON_2026_11_23_UTC + 11 * 3_600_000;
        assert_eq!(w.next_open(noon), Some(noon));
        // Friday 18:30 Berlin: next Monday 09:00.
        let fri_evening = MON_2026_11_23_UTC + 4 * 86_400_000 + 17 * 3_600_000 + 1_800_000;
        assert_eq!(
            w.next_open(fri_evening),
            Some(MON_2026_11_23_UTC + 7 * 86_400_000 + 8 * 3_600_000)
        );
        // Summer time: Monday 2027-03-29 09:00 Berlin is 07:00 UTC.
        let mon_summer = 1_806_278_400_000; // 2027-03-29T00:00:00Z
        assert_eq!(w.next_open(mon_summer), Some(mon_summer + 7 * 3_600_000));
        assert!(SendWindow::parse_hours("18:00-09:00").is_err());
        assert!(SendWindow::parse_hours("9-18").is_err());
        assert_eq!(SendWindow::parse_hours("00:00-24:00"), Ok((0, 1440)));
        assert_eq!(SendWindow::day_bit("Saturday"), Some(1 << 5));
        assert_eq!(SendWindow::day_bit("xyz"), None);
        let never = SendWindow { days: 0, ..w };
        assert_eq!(never.next_open(noon), None);
    }

    #[test]
    fn runs_start_on_slots_never_overlap_and_skip_old_slots() {
        let p = plan(&[("+4915100000001", "A")], Pacing::default(), None);
        let mut s = CampaignState::default();
        // First sight: remembers now; the next slot is today 09:00 UTC.
        let (started, next) = s.due_run(&p, MON_2026_11_23_UTC);
        assert!(!started);
        assert_eq!(next, Some(MON_2026_11_23_UTC + 9 * 3_600_000));
        // Before the slot: nothing.
        assert!(!s.due_run(&p, MON_2026_11_23_UTC + 3_600_000).0);
        // At the slot: a run starts.
        let nine = MON_2026_11_23_UTC + 9 * 3_600_000;
        assert!(s.due_run(&p, nine + 5).0);
        assert_eq!(s.active().unwrap().slot_ms, nine);
        // The next day's slot while the run still goes: skipped.
        assert!(!s.due_run(&p, nine + 86_400_000).0);
        assert_eq!(s.skipped_slots, 1);
        assert_eq!(s.active().unwrap().slot_ms, nine);
        // Finish the run, then the host is down for three days: the missed slots are too old.
        s.cancel(nine + 86_400_000);
        let later = nine + 4 * 86_400_000 + 2 * 3_600_000; // 2 h after a slot
        assert!(!s.due_run(&p, later).0);
        assert_eq!(s.skipped_slots, 4);
        // Down only 30 minutes past a slot: started late.
        let next_slot = nine + 5 * 86_400_000;
        assert!(s.due_run(&p, next_slot + 1_800_000).0);
        assert_eq!(s.active().unwrap().slot_ms, next_slot);
        assert_eq!(s.history.len(), 1);
    }

    #[test]
    fn a_run_sends_in_order_paced_and_resumes_by_phone() {
        let pacing = Pacing {
            min_gap_ms: 1_000,
            max_gap_ms: 3_000,
            pause_every: 2,
            pause_ms: 10_000,
        };
        let p = plan(
            &[
                ("+4915100000001", "A"),
                ("+4915100000002", "B"),
                ("+4915100000003", "C"),
            ],
            pacing,
            None,
        );
        let mut s = CampaignState::default();
        let t0 = MON_2026_11_23_UTC;
        assert!(s.start_now(t0));
        assert!(!s.start_now(t0), "no second run while one goes");
        assert_eq!(
            s.next_action(&p, t0),
            Action::Send {
                phone: "4915100000001".into(),
                text: Ok("Hi A!".into())
            }
        );
        s.record(&p, "4915100000001", Outcome::Queued, t0, 500);
        // Gap = 1000 + 500 % 2001 = 1500.
        assert_eq!(s.next_action(&p, t0 + 10), Action::WaitUntil(t0 + 1_500));
        let t1 = t0 + 1_500;
        assert!(
            matches!(s.next_action(&p, t1), Action::Send { ref phone, .. } if phone == "4915100000002")
        );
        s.record(&p, "4915100000002", Outcome::Queued, t1, 0);
        // Second send: the long pause is added (1000 + 10000).
        assert_eq!(s.next_action(&p, t1), Action::WaitUntil(t1 + 11_000));
        // Operator pause and resume.
        assert!(s.set_paused(true));
        assert_eq!(s.next_action(&p, t1 + 20_000), Action::Paused);
        assert!(s.set_paused(false));
        // Round trip through JSON (what the store holds), as after a restart.
        let mut s: CampaignState =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        // The list was edited meanwhile: B removed, D added before C. A and B are not re-sent.
        let p2 = plan(
            &[
                ("+4915100000001", "A"),
                ("+4915100000004", "D"),
                ("+4915100000003", "C"),
            ],
            pacing,
            None,
        );
        let t2 = t1 + 20_000;
        assert!(
            matches!(s.next_action(&p2, t2), Action::Send { ref phone, .. } if phone == "4915100000004")
        );
        s.record(&p2, "4915100000004", Outcome::OptedOut, t2, 0);
        // An opt-out costs no gap.
        assert!(
            matches!(s.next_action(&p2, t2), Action::Send { ref phone, .. } if phone == "4915100000003")
        );
        s.record(&p2, "4915100000003", Outcome::Queued, t2, 0);
        assert_eq!(s.next_action(&p2, t2 + 60_000), Action::Idle);
        let run = s.run.as_ref().unwrap();
        assert_eq!(run.finished_ms, Some(t2 + 60_000));
        assert_eq!(
            (run.count(Outcome::Queued), run.count(Outcome::OptedOut)),
            (3, 1)
        );
        assert_eq!(s.active(), None);
    }

    #[test]
    fn a_run_waits_for_the_window_and_reports_render_failures() {
        let (start, end) = SendWindow::parse_hours("09:00-10:00").unwrap();
        let w = SendWindow {
            start_min: start,
            end_min: end,
            days: 0x7f,
            tz: Tz::UTC,
        };
        let mut p = plan(&[("+4915100000001", "A")], Pacing::default(), Some(w));
        p.template = Template::parse("Hi {name} from {city}").unwrap();
        let mut s = CampaignState::default();
        s.start_now(MON_2026_11_23_UTC);
        assert_eq!(
            s.next_action(&p, MON_2026_11_23_UTC),
            Action::WaitUntil(MON_2026_11_23_UTC + 9 * 3_600_000)
        );
        assert_eq!(
            s.next_action(&p, MON_2026_11_23_UTC + 9 * 3_600_000),
            Action::Send {
                phone: "4915100000001".into(),
                text: Err(TemplateError::Missing("city".into()))
            }
        );
        // A window that never opens ends the run instead of waiting forever.
        p.window = Some(SendWindow { days: 0, ..w });
        let mut s = CampaignState::default();
        s.start_now(MON_2026_11_23_UTC);
        assert_eq!(s.next_action(&p, MON_2026_11_23_UTC), Action::Idle);
        assert!(s.run.as_ref().unwrap().cancelled);
    }
}
