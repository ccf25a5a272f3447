//! Host-enforced send limits: the one place that decides when an outgoing message may leave.
//!
//! Contract: [`RateLimiter::check`] answers, for a message to `chat` at time `now`, either
//! "send now" or "not before `now + wait`", taking into account every limit of [`RateLimits`]:
//! messages per minute and per hour for the session, per chat per minute, new chats per day,
//! a minimum spacing between two sends (plus random jitter drawn once per send) and the
//! server-imposed pause after a `429 rate-overlimit` or `463` answer. [`RateLimiter::record`]
//! books a send that went out. Nothing here sleeps or reads a clock: time is an argument,
//! so the outbox can be tested with a paused tokio clock.
//!
//! Why: WhatsApp bans accounts that behave like bulk senders (`protocol-whatsmeow.md` §4
//! item 7, `platform-anchors.md` on safe rates). Spacing and jitter make a bot look less like a
//! script; the windows bound bursts; new-chat limits bound cold outreach, the behaviour bans
//! are most often reported for.
//!
//! Memory: windows keep one `Instant` per send inside the window (at most `per_hour` entries
//! for the session and `per_chat_per_minute` per recently active chat); chats idle for a
//! minute are pruned. An idle session holds empty collections.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::RngExt as _;

/// The limits one session obeys. `0` in a count means "no limit of this kind".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RateLimits {
    /// Messages per rolling minute, all chats together.
    pub per_minute: u32,
    /// Messages per rolling hour, all chats together.
    pub per_hour: u32,
    /// Messages per rolling minute to one chat.
    pub per_chat_per_minute: u32,
    /// Chats we had never talked to, first messaged per rolling 24 hours.
    pub new_chats_per_day: u32,
    /// The least time between two sends of this session.
    #[serde(with = "duration_ms")]
    pub min_spacing: Duration,
    /// A random extra delay in `[0, jitter]` added to `min_spacing` for each send.
    #[serde(with = "duration_ms")]
    pub jitter: Duration,
    /// The first pause after the server answers 429 or 463; doubles on each repeat.
    #[serde(with = "duration_ms")]
    pub overlimit_pause: Duration,
    /// The longest pause after repeated 429/463 answers.
    #[serde(with = "duration_ms")]
    pub overlimit_pause_max: Duration,
}

impl Default for RateLimits {
    /// Conservative defaults for a bot on a personal account: 20/min, 300/h, 6 per chat per
    /// minute, 50 new chats a day, at least 1 s (+ up to 1 s jitter) between messages.
    fn default() -> Self {
        Self {
            per_minute: 20,
            per_hour: 300,
            per_chat_per_minute: 6,
            new_chats_per_day: 50,
            min_spacing: Duration::from_secs(1),
            jitter: Duration::from_secs(1),
            overlimit_pause: Duration::from_secs(30),
            overlimit_pause_max: Duration::from_secs(15 * 60),
        }
    }
}

impl RateLimits {
    /// No limits at all (tests and benchmarks against the local simulator).
    pub fn unlimited() -> Self {
        Self {
            per_minute: 0,
            per_hour: 0,
            per_chat_per_minute: 0,
            new_chats_per_day: 0,
            min_spacing: Duration::ZERO,
            jitter: Duration::ZERO,
            overlimit_pause: Duration::from_millis(100),
            overlimit_pause_max: Duration::from_secs(5),
        }
    }
}

mod duration_ms {
    //! `Duration` as whole milliseconds in config files.
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let ms = <u64 as serde::Deserialize>::deserialize(d)?;
        Ok(Duration::from_millis(ms))
    }
}

/// Which limit held a message back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// Minimum spacing plus jitter since the previous send.
    Spacing,
    /// Messages per minute (session).
    PerMinute,
    /// Messages per hour (session).
    PerHour,
    /// Messages per minute to this chat.
    PerChatPerMinute,
    /// New chats per day.
    NewChatsPerDay,
    /// The server answered 429/463 recently.
    ServerOverlimit,
}

/// A message may not be sent yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deferred {
    /// The earliest time the message may go.
    pub until: Instant,
    /// The limit that decided it (the one with the latest `until`).
    pub limit: LimitKind,
}

/// The limiter state of one session.
#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    /// Send times within the last hour, oldest first.
    hour: VecDeque<Instant>,
    /// Per chat: send times within the last minute.
    chats: HashMap<String, VecDeque<Instant>>,
    /// First-contact times within the last day.
    new_chats: VecDeque<Instant>,
    /// The earliest time the next message may go (spacing + jitter of the last send).
    next_allowed: Option<Instant>,
    /// The end of a server-imposed pause, and how many 429/463 answers came in a row.
    paused_until: Option<Instant>,
    overlimit_streak: u32,
    /// How many times a send was held back ([`RateLimiter::check`] returned `Err`).
    waits: u64,
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

impl RateLimiter {
    /// A limiter with no history.
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            hour: VecDeque::new(),
            chats: HashMap::new(),
            new_chats: VecDeque::new(),
            next_allowed: None,
            paused_until: None,
            overlimit_streak: 0,
            waits: 0,
        }
    }

    /// How many times a send was held back by a limit so far (a metric).
    pub fn waits(&self) -> u64 {
        self.waits
    }

    /// The configured limits.
    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Whether a message to `chat` (a first contact if `new_chat`) may be sent at `now`.
    pub fn check(&mut self, now: Instant, chat: &str, new_chat: bool) -> Result<(), Deferred> {
        self.prune(now);
        let mut worst: Option<Deferred> = None;
        let mut consider = |until: Instant, limit: LimitKind| {
            if until > now && worst.is_none_or(|w| until > w.until) {
                worst = Some(Deferred { until, limit });
            }
        };
        if let Some(t) = self.paused_until {
            consider(t, LimitKind::ServerOverlimit);
        }
        if let Some(t) = self.next_allowed {
            consider(t, LimitKind::Spacing);
        }
        let l = &self.limits;
        if let Some(t) = window_free_at(&self.hour, l.per_minute, MINUTE, now) {
            consider(t, LimitKind::PerMinute);
        }
        if let Some(t) = window_free_at(&self.hour, l.per_hour, HOUR, now) {
            consider(t, LimitKind::PerHour);
        }
        if let Some(q) = self.chats.get(chat)
            && let Some(t) = window_free_at(q, l.per_chat_per_minute, MINUTE, now)
        {
            consider(t, LimitKind::PerChatPerMinute);
        }
        if new_chat && let Some(t) = window_free_at(&self.new_chats, l.new_chats_per_day, DAY, now)
        {
            consider(t, LimitKind::NewChatsPerDay);
        }
        match worst {
            Some(d) => {
                self.waits += 1;
                Err(d)
            }
            None => Ok(()),
        }
    }

    /// Books a message that was sent at `now`; draws the jitter for the next spacing.
    pub fn record<R: rand::Rng + ?Sized>(
        &mut self,
        now: Instant,
        chat: &str,
        new_chat: bool,
        rng: &mut R,
    ) {
        // Only keep the history a configured limit needs.
        if self.limits.per_minute > 0 || self.limits.per_hour > 0 {
            self.hour.push_back(now);
        }
        if self.limits.per_chat_per_minute > 0 {
            self.chats
                .entry(chat.to_owned())
                .or_default()
                .push_back(now);
        }
        if new_chat && self.limits.new_chats_per_day > 0 {
            self.new_chats.push_back(now);
        }
        let jitter_ms = self.limits.jitter.as_millis() as u64;
        let jitter = Duration::from_millis(rng.random_range(0..=jitter_ms));
        let spacing = self.limits.min_spacing + jitter;
        self.next_allowed = (!spacing.is_zero()).then(|| now + spacing);
    }

    /// The server answered 429 (rate-overlimit) or 463: pause every send, doubling the pause
    /// on each consecutive answer up to the configured maximum. Returns the pause end.
    pub fn server_overlimit(&mut self, now: Instant) -> Instant {
        let factor = 1u32
            .checked_shl(self.overlimit_streak.min(16))
            .unwrap_or(u32::MAX);
        let pause = self
            .limits
            .overlimit_pause
            .checked_mul(factor)
            .unwrap_or(self.limits.overlimit_pause_max)
            .min(
                self.limits
                    .overlimit_pause_max
                    .max(self.limits.overlimit_pause),
            );
        self.overlimit_streak = self.overlimit_streak.saturating_add(1);
        let until = now + pause;
        self.paused_until = Some(until);
        until
    }

    /// A send was accepted by the server: the 429/463 streak is over.
    pub fn server_accepted(&mut self) {
        self.overlimit_streak = 0;
    }

    fn prune(&mut self, now: Instant) {
        drop_older(&mut self.hour, now, HOUR);
        drop_older(&mut self.new_chats, now, DAY);
        self.chats.retain(|_, q| {
            drop_older(q, now, MINUTE);
            !q.is_empty()
        });
        if self.paused_until.is_some_and(|t| t <= now) {
            self.paused_until = None;
        }
        if self.next_allowed.is_some_and(|t| t <= now) {
            self.next_allowed = None;
        }
        if self.chats.capacity() > 64 && self.chats.len() < self.chats.capacity() / 4 {
            self.chats.shrink_to_fit();
        }
    }
}

/// Removes entries at least `window` old.
fn drop_older(q: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while q
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        q.pop_front();
    }
    if q.is_empty() && q.capacity() > 0 {
        *q = VecDeque::new();
    }
}

/// With `times` sorted oldest first, when a new entry fits under `limit` per `window` ending
/// at `now`: `None` if it fits now (or `limit == 0`), else the time the oldest blocking entry
/// leaves the window.
fn window_free_at(
    times: &VecDeque<Instant>,
    limit: u32,
    window: Duration,
    now: Instant,
) -> Option<Instant> {
    if limit == 0 {
        return None;
    }
    let first_inside = times.partition_point(|t| now.saturating_duration_since(*t) >= window);
    let inside = times.len() - first_inside;
    let limit = limit as usize;
    if inside < limit {
        return None;
    }
    // The (inside - limit + 1)-th oldest entry inside the window must leave it first.
    Some(times[times.len() - limit] + window)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    use super::*;

    fn limits() -> RateLimits {
        RateLimits {
            per_minute: 3,
            per_hour: 5,
            per_chat_per_minute: 2,
            new_chats_per_day: 2,
            min_spacing: Duration::ZERO,
            jitter: Duration::ZERO,
            overlimit_pause: Duration::from_secs(10),
            overlimit_pause_max: Duration::from_secs(35),
        }
    }

    #[test]
    fn per_chat_then_per_minute_then_per_hour() {
        let mut rng = StdRng::seed_from_u64(0);
        let t0 = Instant::now();
        let mut r = RateLimiter::new(limits());
        for _ in 0..2 {
            r.check(t0, "a", false).unwrap();
            r.record(t0, "a", false, &mut rng);
        }
        let d = r.check(t0, "a", false).unwrap_err();
        assert_eq!(
            d,
            Deferred {
                until: t0 + MINUTE,
                limit: LimitKind::PerChatPerMinute
            }
        );
        r.check(t0, "b", false).unwrap();
        r.record(t0, "b", false, &mut rng);
        let d = r.check(t0, "c", false).unwrap_err();
        assert_eq!(d.limit, LimitKind::PerMinute);
        assert_eq!(d.until, t0 + MINUTE);
        // A minute later two more fit, then the hour is full.
        let t1 = t0 + MINUTE;
        for chat in ["c", "d"] {
            r.check(t1, chat, false).unwrap();
            r.record(t1, chat, false, &mut rng);
        }
        let t2 = t0 + 2 * MINUTE;
        let d = r.check(t2, "e", false).unwrap_err();
        assert_eq!(
            d,
            Deferred {
                until: t0 + HOUR,
                limit: LimitKind::PerHour
            }
        );
        r.check(t0 + HOUR, "e", false).unwrap();
    }

    #[test]
    fn new_chats_per_day() {
        let mut rng = StdRng::seed_from_u64(0);
        let t0 = Instant::now();
        let mut r = RateLimiter::new(RateLimits {
            per_hour: 0,
            per_minute: 0,
            ..limits()
        });
        r.record(t0, "a", true, &mut rng);
        r.record(t0 + MINUTE, "b", true, &mut rng);
        let t = t0 + 2 * MINUTE;
        // Known chats are not affected.
        r.check(t, "a", false).unwrap();
        let d = r.check(t, "c", true).unwrap_err();
        assert_eq!(
            d,
            Deferred {
                until: t0 + DAY,
                limit: LimitKind::NewChatsPerDay
            }
        );
    }

    #[test]
    fn spacing_and_jitter() {
        let mut rng = StdRng::seed_from_u64(5);
        let t0 = Instant::now();
        let mut r = RateLimiter::new(RateLimits {
            min_spacing: Duration::from_secs(2),
            jitter: Duration::from_secs(1),
            ..RateLimits::unlimited()
        });
        r.record(t0, "a", false, &mut rng);
        let d = r.check(t0, "b", false).unwrap_err();
        assert_eq!(d.limit, LimitKind::Spacing);
        assert!(d.until >= t0 + Duration::from_secs(2) && d.until <= t0 + Duration::from_secs(3));
        r.check(d.until, "b", false).unwrap();
        assert_eq!(r.waits(), 1, "one send was held back");
    }

    #[test]
    fn server_overlimit_doubles_and_caps() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(limits());
        assert_eq!(r.server_overlimit(t0), t0 + Duration::from_secs(10));
        assert_eq!(
            r.check(t0, "a", false).unwrap_err().limit,
            LimitKind::ServerOverlimit
        );
        assert_eq!(r.server_overlimit(t0), t0 + Duration::from_secs(20));
        assert_eq!(r.server_overlimit(t0), t0 + Duration::from_secs(35));
        r.server_accepted();
        assert_eq!(r.server_overlimit(t0), t0 + Duration::from_secs(10));
        r.check(t0 + Duration::from_secs(10), "a", false).unwrap();
    }

    #[test]
    fn unlimited_never_defers() {
        let mut rng = StdRng::seed_from_u64(0);
        let t0 = Instant::now();
        let mut r = RateLimiter::new(RateLimits::unlimited());
        for i in 0..10_000 {
            r.check(t0, "a", i % 2 == 0).unwrap();
            r.record(t0, "a", i % 2 == 0, &mut rng);
        }
    }
}
