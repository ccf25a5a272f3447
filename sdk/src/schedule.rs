//! Timers that outlive one event (the `scheduler` capability). A job's payload
//! comes back in [`crate::Plugin::on_schedule`].

use core::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wit::wasmeow::bot::scheduler::schedule;
pub use crate::wit::wasmeow::bot::scheduler::{CronSpec, Job, Trigger, cancel, list_jobs};
use crate::{ApiError, Error, ScheduleFired};

/// Schedules `payload` for `at` (milliseconds since the epoch, UTC).
pub fn at(session: &str, at: i64, payload: &str) -> Result<String, ApiError> {
    schedule(session, &Trigger::At(at), payload)
}

/// Schedules `payload` to fire `delay` from now (by the host's clock).
pub fn after(session: &str, delay: Duration, payload: &str) -> Result<String, ApiError> {
    let now = crate::time::now_ms()?;
    let delay =
        i64::try_from(delay.as_millis()).map_err(|_| ApiError::Invalid("delay too long".into()))?;
    at(session, now.saturating_add(delay), payload)
}

/// Schedules `payload` on a five-field cron `expression` in an IANA `timezone`.
pub fn cron(
    session: &str,
    expression: &str,
    timezone: &str,
    payload: &str,
) -> Result<String, ApiError> {
    let spec = CronSpec {
        expression: expression.to_owned(),
        timezone: timezone.to_owned(),
    };
    schedule(session, &Trigger::Cron(spec), payload)
}

/// Like [`after`] with a payload serialized as JSON.
pub fn after_json<T: Serialize>(
    session: &str,
    delay: Duration,
    payload: &T,
) -> Result<String, Error> {
    let json = serde_json::to_string(payload).map_err(|e| Error::Decode(e.to_string()))?;
    Ok(after(session, delay, &json)?)
}

/// Like [`cron`] with a payload serialized as JSON.
pub fn cron_json<T: Serialize>(
    session: &str,
    expression: &str,
    timezone: &str,
    payload: &T,
) -> Result<String, Error> {
    let json = serde_json::to_string(payload).map_err(|e| Error::Decode(e.to_string()))?;
    Ok(cron(session, expression, timezone, &json)?)
}

/// Decodes the JSON payload of a fired job.
pub fn payload<T: DeserializeOwned>(fired: &ScheduleFired) -> Result<T, Error> {
    serde_json::from_str(&fired.payload).map_err(|e| Error::Decode(format!("job payload: {e}")))
}
