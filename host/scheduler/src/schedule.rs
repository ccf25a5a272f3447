//! When a job runs: once at an instant, or on a cron expression in an IANA time zone.
//!
//! Cron expressions are the standard five fields people write (`minute hour day-of-month month
//! day-of-week`, day-of-week 0–7 with 0 and 7 both Sunday, names like `MON` allowed) or one of the macros
//! `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`. They are evaluated in the job's time zone, so
//! `0 9 * * MON-FRI` in `Europe/Berlin` fires at 09:00 Berlin time across daylight-saving changes.
//!
//! Internally the expression is translated to the seven-field dialect of the `cron` crate, whose
//! day-of-week numbering differs from the standard one; the translation spells days by name so the two
//! can never be confused.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// A schedule could not be parsed or has no future occurrence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression is malformed.
    #[error("invalid cron expression {expr:?}: {reason}")]
    BadCron {
        /// The expression as given.
        expr: String,
        /// What is wrong.
        reason: String,
    },
    /// The time zone is not an IANA zone name.
    #[error("unknown time zone {0:?}: use an IANA name such as \"Europe/Berlin\" or \"UTC\"")]
    BadTimeZone(String),
    /// The cron expression can never fire (e.g. 30 February).
    #[error("cron expression {0:?} never fires")]
    NeverFires(String),
}

/// A parsed, validated schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// Fire once at this instant (Unix milliseconds).
    At {
        /// When, in Unix milliseconds.
        at_ms: i64,
    },
    /// Fire on every occurrence of a cron expression in a time zone.
    Cron {
        /// The expression as the user wrote it.
        expr: String,
        /// The IANA time zone name.
        tz: String,
    },
}

impl Schedule {
    /// A one-shot schedule.
    pub fn at(at_ms: i64) -> Self {
        Schedule::At { at_ms }
    }

    /// A cron schedule; validates the expression and the zone and checks that it can fire.
    pub fn cron(expr: &str, tz: &str) -> Result<Self, ScheduleError> {
        let zone = parse_tz(tz)?;
        let compiled = compile(expr)?;
        // Five-field expressions have no year, so one that fires at all fires after any instant:
        // checking from the epoch needs no clock.
        let epoch = Utc
            .timestamp_millis_opt(0)
            .single()
            .expect("the epoch is a valid instant");
        if compiled.after(&epoch.with_timezone(&zone)).next().is_none() {
            return Err(ScheduleError::NeverFires(expr.to_string()));
        }
        Ok(Schedule::Cron {
            expr: expr.trim().to_string(),
            tz: zone.name().to_string(),
        })
    }

    /// The first occurrence strictly after `after_ms`, in Unix milliseconds; `None` once a one-shot is
    /// past or a cron expression has no further occurrence.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match self {
            Schedule::At { at_ms } => (*at_ms > after_ms).then_some(*at_ms),
            Schedule::Cron { expr, tz } => {
                // Both were validated on construction; a record edited by hand that no longer parses
                // simply never fires again rather than panicking.
                let zone = parse_tz(tz).ok()?;
                let compiled = compile(expr).ok()?;
                let after = Utc
                    .timestamp_millis_opt(after_ms)
                    .single()?
                    .with_timezone(&zone);
                compiled
                    .after(&after)
                    .next()
                    .map(|t: DateTime<Tz>| t.timestamp_millis())
            }
        }
    }

    /// Whether the schedule fires more than once.
    pub fn is_recurring(&self) -> bool {
        matches!(self, Schedule::Cron { .. })
    }
}

fn parse_tz(tz: &str) -> Result<Tz, ScheduleError> {
    tz.parse::<Tz>()
        .map_err(|_| ScheduleError::BadTimeZone(tz.to_string()))
}

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn bad(expr: &str, reason: impl Into<String>) -> ScheduleError {
    ScheduleError::BadCron {
        expr: expr.to_string(),
        reason: reason.into(),
    }
}

/// Translates a standard cron expression into the `cron` crate's seven-field form and parses it.
fn compile(expr: &str) -> Result<cron::Schedule, ScheduleError> {
    let trimmed = expr.trim();
    let five = match trimmed {
        "@hourly" => "0 * * * *".to_string(),
        "@daily" | "@midnight" => "0 0 * * *".to_string(),
        "@weekly" => "0 0 * * 0".to_string(),
        "@monthly" => "0 0 1 * *".to_string(),
        "@yearly" | "@annually" => "0 0 1 1 *".to_string(),
        other if other.starts_with('@') => {
            return Err(bad(
                expr,
                "unknown macro; use @hourly, @daily, @weekly, @monthly or @yearly",
            ));
        }
        other => other.to_string(),
    };
    let fields: Vec<&str> = five.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(bad(
            expr,
            format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
                fields.len()
            ),
        ));
    }
    let dow = translate_dow(fields[4]).map_err(|r| bad(expr, r))?;
    let seven = format!(
        "0 {} {} {} {} {} *",
        fields[0], fields[1], fields[2], fields[3], dow
    );
    seven
        .parse::<cron::Schedule>()
        .map_err(|e| bad(expr, e.to_string()))
}

/// Rewrites a standard day-of-week field (0–7, Sunday = 0 or 7) into day names, expanding ranges and
/// steps into explicit lists so that no numbering convention is involved.
fn translate_dow(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok("*".to_string());
    }
    let mut days = [false; 7];
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: usize = s
                    .parse()
                    .map_err(|_| format!("bad step {s:?} in day-of-week"))?;
                if step == 0 {
                    return Err("day-of-week step must be at least 1".into());
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            (day_number(a)?, day_number(b)?)
        } else {
            let d = day_number(range)?;
            if step > 1 { (d, 6) } else { (d, d) }
        };
        if lo > hi {
            return Err(format!("day-of-week range {range:?} runs backwards"));
        }
        for d in (lo..=hi).step_by(step) {
            days[d % 7] = true;
        }
    }
    let names: Vec<&str> = (0..7).filter(|d| days[*d]).map(|d| DAY_NAMES[d]).collect();
    Ok(names.join(","))
}

fn day_number(s: &str) -> Result<usize, String> {
    if let Ok(n) = s.parse::<usize>() {
        return if n <= 7 {
            Ok(n)
        } else {
            Err(format!("day-of-week {n} is out of range 0-7"))
        };
    }
    let upper = s.to_ascii_uppercase();
    DAY_NAMES
        .iter()
        .position(|d| *d == upper)
        .ok_or_else(|| format!("unknown day-of-week {s:?}; use 0-7 or SUN..SAT"))
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, Timelike, Weekday};

    use super::*;

    fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32, tz: Tz) -> i64 {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap()
            .timestamp_millis()
    }

    fn local(t: i64, tz: Tz) -> DateTime<Tz> {
        Utc.timestamp_millis_opt(t)
            .single()
            .unwrap()
            .with_timezone(&tz)
    }

    #[test]
    fn one_shot_fires_once() {
        let s = Schedule::at(1_000);
        assert_eq!(s.next_after(999), Some(1_000));
        assert_eq!(s.next_after(1_000), None);
        assert!(!s.is_recurring());
    }

    #[test]
    fn standard_day_of_week_numbers_mean_what_people_expect() {
        let tz = chrono_tz::UTC;
        // 2026-11-23 is a Monday.
        let start = ms(2026, 11, 22, 12, 0, tz); // Sunday noon
        let mon = Schedule::cron("0 9 * * 1", "UTC").unwrap();
        let t = local(mon.next_after(start).unwrap(), tz);
        assert_eq!((t.weekday(), t.hour(), t.minute()), (Weekday::Mon, 9, 0));
        for sunday in ["0 9 * * 0", "0 9 * * 7", "0 9 * * SUN"] {
            let s = Schedule::cron(sunday, "UTC").unwrap();
            let t = local(s.next_after(start).unwrap(), tz);
            assert_eq!(t.weekday(), Weekday::Sun, "{sunday}");
        }
        let weekdays = Schedule::cron("30 8 * * 1-5", "UTC").unwrap();
        let mut t = ms(2026, 11, 20, 9, 0, tz); // Friday after 08:30
        let mut seen = Vec::new();
        for _ in 0..5 {
            t = weekdays.next_after(t).unwrap();
            seen.push(local(t, tz).weekday());
        }
        assert_eq!(
            seen,
            [
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri
            ]
        );
        let wrap = Schedule::cron("0 0 * * 5-7", "UTC").unwrap();
        let mut t = ms(2026, 11, 23, 0, 0, tz);
        let mut seen = Vec::new();
        for _ in 0..3 {
            t = wrap.next_after(t).unwrap();
            seen.push(local(t, tz).weekday());
        }
        assert_eq!(seen, [Weekday::Fri, Weekday::Sat, Weekday::Sun]);
    }

    #[test]
    fn time_zone_and_daylight_saving_are_respected() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let s = Schedule::cron("0 9 * * *", "Europe/Berlin").unwrap();
        // Across the end of summer time (2026-10-25) the local hour stays 09:00 while UTC shifts by one.
        let mut t = ms(2026, 10, 23, 12, 0, berlin);
        let mut utc_hours = Vec::new();
        for _ in 0..4 {
            t = s.next_after(t).unwrap();
            assert_eq!(local(t, berlin).hour(), 9);
            utc_hours.push(local(t, chrono_tz::UTC).hour());
        }
        // 24 Oct is still summer time (UTC+2); summer time ends early on 25 Oct (UTC+1 from then on).
        assert_eq!(utc_hours, [7, 8, 8, 8]);
    }

    #[test]
    fn macros_work() {
        let tz = chrono_tz::UTC;
        let start = ms(2026, 11, 23, 10, 30, tz);
        let hourly = Schedule::cron("@hourly", "UTC").unwrap();
        assert_eq!(hourly.next_after(start), Some(ms(2026, 11, 23, 11, 0, tz)));
        let daily = Schedule::cron("@daily", "UTC").unwrap();
        assert_eq!(daily.next_after(start), Some(ms(2026, 11, 24, 0, 0, tz)));
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let e = Schedule::cron("0 9 * *", "UTC").unwrap_err().to_string();
        assert!(e.contains("expected 5 fields"), "{e}");
        let e = Schedule::cron("0 9 * * 8", "UTC").unwrap_err().to_string();
        assert!(e.contains("day-of-week 8 is out of range 0-7"), "{e}");
        let e = Schedule::cron("61 9 * * *", "UTC").unwrap_err().to_string();
        assert!(
            e.starts_with("invalid cron expression \"61 9 * * *\""),
            "{e}"
        );
        let e = Schedule::cron("0 9 * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(e, ScheduleError::BadTimeZone("Mars/Olympus".into()));
        let e = Schedule::cron("@often", "UTC").unwrap_err().to_string();
        assert!(e.contains("unknown macro"), "{e}");
        let e = Schedule::cron("0 0 30 2 *", "UTC").unwrap_err();
        assert_eq!(e, ScheduleError::NeverFires("0 0 30 2 *".into()));
        let e = Schedule::cron("0 0 * * 5-1", "UTC")
            .unwrap_err()
            .to_string();
        assert!(e.contains("runs backwards"), "{e}");
    }

    #[test]
    fn schedules_serialize_for_persistence() {
        let s = Schedule::cron("*/15 * * * *", "Asia/Tokyo").unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"cron","expr":"*/15 * * * *","tz":"Asia/Tokyo"}"#
        );
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
    }
}
