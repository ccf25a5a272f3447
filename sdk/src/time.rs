//! Time helpers: the host clock and human durations like `1h30m`.

use core::time::Duration;

use crate::ApiError;

/// The host's wall clock in milliseconds since the epoch (the `clock` capability).
pub fn now_ms() -> Result<i64, ApiError> {
    crate::wit::wasmeow::bot::clock::now()
}

/// Parses a duration written as numbers with units `s`, `m`, `h`, `d`, `w`
/// (e.g. `"90s"`, `"10m"`, `"1h30m"`, `"2d"`). `None` for anything else, for
/// zero, and for more than ten years.
pub fn parse_duration(text: &str) -> Option<Duration> {
    const MAX_SECS: u64 = 10 * 366 * 24 * 3600;
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.trim().chars() {
        if let Some(d) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(u64::from(d))?,
            );
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(number.take()?.checked_mul(unit)?)?;
    }
    if number.is_some() || total == 0 || total > MAX_SECS {
        return None;
    }
    Some(Duration::from_secs(total))
}

/// Whether two JIDs name the same user, ignoring device suffixes.
pub fn same_user(a: &str, b: &str) -> bool {
    fn bare(j: &str) -> (&str, &str) {
        let (user, server) = j.split_once('@').unwrap_or((j, ""));
        (user.split(':').next().unwrap_or(user), server)
    }
    bare(a) == bare(b)
}

#[cfg(test)]
mod tests {
    use core::time::Duration;

    use super::{parse_duration, same_user};

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("0m"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("99999999999999999999s"), None);
        assert_eq!(parse_duration("100000w"), None);
    }

    #[test]
    fn jid_users() {
        assert!(same_user("1@s.whatsapp.net", "1:7@s.whatsapp.net"));
        assert!(!same_user("1@s.whatsapp.net", "1@lid"));
        assert!(!same_user("1@s.whatsapp.net", "2@s.whatsapp.net"));
    }
}
