//! Request/response correlation: IQ ids and message acks matched to their waiters, with
//! deadlines.
//!
//! Contract: [`Pending`] maps a request id to a one-shot waiter and a deadline. The driver
//! calls [`Pending::resolve`] when a `<iq type=result|error>` or an `<ack>` with that id
//! arrives, [`Pending::expire`] when [`Pending::next_deadline`] passes, and
//! [`Pending::fail_all`] when the connection drops. Each waiter is answered exactly once:
//! with the response, [`RequestError::Timeout`] or [`RequestError::Disconnected`]. A waiter
//! whose caller gave up (dropped the receiver) is simply discarded. Time is passed in.
//!
//! Ids follow whatsmeow's shape, `"<rand byte>.<rand byte>-<counter>"` (`protocol-whatsmeow.md`
//! §2.6): a per-connection random prefix and a counter, unique within a connection.

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::oneshot;

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No response before the deadline.
    #[error("request timed out")]
    Timeout,
    /// The connection closed before the response came.
    #[error("connection closed before the response arrived")]
    Disconnected,
    /// The session is not connected, so the request was not sent.
    #[error("not connected")]
    NotConnected,
}

/// The outcome a waiter receives.
pub type Outcome<T> = Result<T, RequestError>;

struct Waiter<T> {
    deadline: Instant,
    tx: oneshot::Sender<Outcome<T>>,
}

/// Outstanding requests of one connection.
pub struct Pending<T> {
    waiters: HashMap<String, Waiter<T>>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Self {
            waiters: HashMap::new(),
        }
    }
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("len", &self.waiters.len())
            .finish()
    }
}

impl<T> Pending<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a waiter for `id`. A waiter already registered under the same id is answered
    /// with [`RequestError::Disconnected`] (ids are unique per connection, so this only
    /// happens for a caller-chosen duplicate message id).
    pub fn insert(&mut self, id: String, deadline: Instant, tx: oneshot::Sender<Outcome<T>>) {
        if let Some(old) = self.waiters.insert(id, Waiter { deadline, tx }) {
            let _ = old.tx.send(Err(RequestError::Disconnected));
        }
    }

    /// Answers the waiter of `id` with `response`. Returns the response back if no one waits
    /// for this id (an unsolicited node, or a response after its timeout).
    pub fn resolve(&mut self, id: &str, response: T) -> Result<(), T> {
        match self.waiters.remove(id) {
            Some(w) => {
                // A dropped receiver means the caller stopped caring; that is not an error.
                let _ = w.tx.send(Ok(response));
                self.shrink();
                Ok(())
            }
            None => Err(response),
        }
    }

    /// Whether a waiter for `id` is registered.
    pub fn contains(&self, id: &str) -> bool {
        self.waiters.contains_key(id)
    }

    /// The earliest deadline, if any request is outstanding.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiters.values().map(|w| w.deadline).min()
    }

    /// Answers every waiter whose deadline is at or before `now` with a timeout; returns how
    /// many expired.
    pub fn expire(&mut self, now: Instant) -> usize {
        let expired: Vec<String> = self
            .waiters
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            if let Some(w) = self.waiters.remove(id) {
                let _ = w.tx.send(Err(RequestError::Timeout));
            }
        }
        // Callers that gave up: drop their entries too, they will never be read.
        self.waiters.retain(|_, w| !w.tx.is_closed());
        self.shrink();
        expired.len()
    }

    /// Answers every waiter with `err` (the connection is gone).
    pub fn fail_all(&mut self, err: RequestError) {
        for (_, w) in self.waiters.drain() {
            let _ = w.tx.send(Err(err.clone()));
        }
        self.shrink();
    }

    /// Number of outstanding requests.
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// Whether nothing is outstanding.
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// Idle sessions should not keep a large table allocated after a burst.
    fn shrink(&mut self) {
        if self.waiters.capacity() > 32 && self.waiters.len() < self.waiters.capacity() / 4 {
            self.waiters.shrink_to_fit();
        }
    }
}

/// Generates request ids `"<a>.<b>-<n>"` unique within one connection.
#[derive(Debug, Clone)]
pub struct IdGenerator {
    prefix: String,
    counter: u64,
}

impl IdGenerator {
    /// A generator with a random two-byte prefix.
    pub fn new<R: rand::Rng + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; 2];
        rng.fill_bytes(&mut b);
        Self {
            prefix: format!("{}.{}-", b[0], b[1]),
            counter: 0,
        }
    }

    /// The next id.
    pub fn next_id(&mut self) -> String {
        self.counter += 1;
        format!("{}{}", self.prefix, self.counter)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::SeedableRng as _;

    use super::*;

    #[test]
    fn resolve_timeout_and_disconnect_each_answer_once() {
        let t0 = Instant::now();
        let mut p = Pending::<u32>::new();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let (tx3, mut rx3) = oneshot::channel();
        p.insert("a".into(), t0 + Duration::from_secs(1), tx1);
        p.insert("b".into(), t0 + Duration::from_secs(5), tx2);
        p.insert("c".into(), t0 + Duration::from_secs(9), tx3);
        assert_eq!(p.next_deadline(), Some(t0 + Duration::from_secs(1)));

        assert_eq!(p.resolve("b", 7), Ok(()));
        assert_eq!(rx2.try_recv().unwrap(), Ok(7));
        assert_eq!(p.resolve("b", 8), Err(8), "a second answer has no waiter");
        assert_eq!(p.resolve("zzz", 9), Err(9));

        assert_eq!(p.expire(t0 + Duration::from_millis(999)), 0);
        assert_eq!(p.expire(t0 + Duration::from_secs(1)), 1);
        assert_eq!(rx1.try_recv().unwrap(), Err(RequestError::Timeout));
        assert_eq!(p.next_deadline(), Some(t0 + Duration::from_secs(9)));

        p.fail_all(RequestError::Disconnected);
        assert_eq!(rx3.try_recv().unwrap(), Err(RequestError::Disconnected));
        assert!(p.is_empty());
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn abandoned_waiters_are_dropped_on_expire() {
        let t0 = Instant::now();
        let mut p = Pending::<u32>::new();
        let (tx, rx) = oneshot::channel();
        p.insert("a".into(), t0 + Duration::from_secs(60), tx);
        drop(rx);
        p.expire(t0);
        assert!(p.is_empty());
    }

    #[test]
    fn ids_are_unique_and_shaped() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut g = IdGenerator::new(&mut rng);
        let a = g.next_id();
        let b = g.next_id();
        assert_ne!(a, b);
        assert!(a.ends_with("-1") && b.ends_with("-2"));
        let (prefix, _) = a.split_once('-').unwrap();
        let (x, y) = prefix.split_once('.').unwrap();
        x.parse::<u8>().unwrap();
        y.parse::<u8>().unwrap();
    }
}
