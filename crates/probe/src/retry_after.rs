//! How long a backend asks the prober to wait: the `Retry-After` header of a
//! 429 or 503 (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) and the
//! `retryAfterMs` of a JSON-RPC -32023 (RateLimited, SEP-3304) error. The
//! scheduler caps what it honours (`rateLimitHold`), so nothing here bounds it.

use std::time::{Duration, SystemTime};

use serde_json::Value;

/// The JSON-RPC error code of the draft RateLimited error (SEP-3304).
pub const RATE_LIMITED: i64 = -32023;

/// The wait a `Retry-After` field value asks for at `now`: `delay-seconds`
/// (`1*DIGIT`, saturating rather than overflowing) or an `HTTP-date` in any of
/// the three forms RFC 9110 §5.6.7 tells recipients to accept (a date in the
/// past asks for no wait). None for anything else, which is ignored.
pub fn parse(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim_matches([' ', '\t']);
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Only digits: the one way parsing fails is overflow.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The first usable `Retry-After` of a response.
pub fn from_headers(headers: &http::HeaderMap) -> Option<Duration> {
    let now = SystemTime::now();
    headers
        .get_all(http::header::RETRY_AFTER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| parse(v, now))
}

/// `error.data.retryAfterMs` of a JSON-RPC error object: a non-negative
/// number of milliseconds (fractions kept); None when absent or malformed.
pub fn from_error(error: &Value) -> Option<Duration> {
    let ms = error.get("data")?.get("retryAfterMs")?.as_f64()?;
    if !ms.is_finite() || ms < 0.0 {
        return None;
    }
    // Past ~584 billion years `Duration` overflows: as long as it gets, since
    // the scheduler caps the wait anyway.
    Some(Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX))
}

#[cfg(test)]
mod tests {
    use rand::Rng;
    use serde_json::json;

    use super::*;

    /// 1994-11-06T08:49:37Z, the instant of RFC 9110's date examples.
    fn rfc_example_instant() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    #[test]
    fn the_rfc_examples() {
        // RFC 9110 §10.2.3: "Retry-After: Fri, 31 Dec 1999 23:59:59 GMT" and "Retry-After: 120".
        let new_year = SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_799);
        let a_minute_before = new_year - Duration::from_secs(60);
        assert_eq!(parse("Fri, 31 Dec 1999 23:59:59 GMT", a_minute_before), Some(Duration::from_secs(60)));
        assert_eq!(parse("120", a_minute_before), Some(Duration::from_secs(120)));
        // §5.6.7: the same instant in IMF-fixdate, the obsolete RFC 850 form and asctime.
        let before = rfc_example_instant() - Duration::from_secs(5);
        for date in ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
            assert_eq!(parse(date, before), Some(Duration::from_secs(5)), "{date}");
        }
    }

    #[test]
    fn table() {
        let now = rfc_example_instant();
        let cases: &[(&str, Option<Duration>)] = &[
            ("0", Some(Duration::ZERO)),
            ("5", Some(Duration::from_secs(5))),
            (" 7\t", Some(Duration::from_secs(7))),
            ("007", Some(Duration::from_secs(7))),
            ("99999999999999999999999", Some(Duration::from_secs(u64::MAX))),
            // A date in the past asks for no wait.
            ("Sat, 05 Nov 1994 08:49:37 GMT", Some(Duration::ZERO)),
            ("", None),
            ("-5", None),
            ("+5", None),
            ("5.5", None),
            ("1e3", None),
            ("5 s", None),
            ("soon", None),
            ("Sun, 06 Nov 1994 08:49:37 UTC", None),
            ("Sun, 32 Nov 1994 08:49:37 GMT", None),
            ("٥", None),
        ];
        for &(value, want) in cases {
            assert_eq!(parse(value, now), want, "{value:?}");
        }
    }

    #[test]
    fn random_dates_and_delays_round_trip_and_garbage_never_panics() {
        let mut rng = rand::rng();
        for _ in 0..2000 {
            // Whole seconds between 1970 and 9999 (HTTP-date has second resolution).
            let date = SystemTime::UNIX_EPOCH + Duration::from_secs(rng.random_range(0..253_402_300_799));
            let ahead = Duration::from_secs(rng.random_range(0..10_000_000));
            let now = date.checked_sub(ahead).unwrap_or(SystemTime::UNIX_EPOCH);
            let text = httpdate::fmt_http_date(date);
            let want = date.duration_since(now).unwrap();
            assert_eq!(parse(&text, now), Some(want), "{text}");
            let seconds: u64 = rng.random();
            assert_eq!(parse(&seconds.to_string(), now), Some(Duration::from_secs(seconds)));
            // Random printable bytes: parsed or refused, never a panic, and
            // never a wait unless it is all digits or a valid date.
            let len = rng.random_range(0..40);
            let junk: String = (0..len).map(|_| char::from(rng.random_range(0x20u8..0x7f))).collect();
            if let Some(d) = parse(&junk, now) {
                let digits = junk.trim_matches([' ', '\t']);
                assert!(
                    digits.bytes().all(|b| b.is_ascii_digit()) || httpdate::parse_http_date(digits).is_ok(),
                    "{junk:?} -> {d:?}"
                );
            }
        }
    }

    #[test]
    fn retry_after_ms_of_an_error() {
        let cases = [
            (json!({"code": -32023, "data": {"retryAfterMs": 5000}}), Some(Duration::from_secs(5))),
            (json!({"code": -32023, "data": {"retryAfterMs": 1.5}}), Some(Duration::from_micros(1500))),
            (json!({"code": -32023, "data": {"retryAfterMs": 0}}), Some(Duration::ZERO)),
            (json!({"code": -32023, "data": {"retryAfterMs": -1}}), None),
            (json!({"code": -32023, "data": {"retryAfterMs": "5000"}}), None),
            (json!({"code": -32023, "data": {}}), None),
            (json!({"code": -32023}), None),
            (json!({"code": -32023, "data": {"retryAfterMs": 1e300}}), Some(Duration::MAX)),
        ];
        for (error, want) in cases {
            assert_eq!(from_error(&error), want, "{error}");
        }
    }
}
