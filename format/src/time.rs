//! Calendar dates of the µs-since-epoch times the format carries, in UTC, without time-zone
//! data: the civil-from-days algorithm of Howard Hinnant (proleptic Gregorian calendar);
//! and [`now_us`], the one reading of the wall clock.

/// The system's wall clock now, in µs since the Unix epoch (UTC): the one place custody
/// reads it (the server for receipt and log times, the device for end records and upload
/// lags, the CLI for ages). Negative for a clock set before 1970, which is reported, not
/// hidden as 0; saturating far in the future.
///
/// It lives here, in the crate with no I/O, because every crate that needs the time already
/// depends on this one and the time is a value of the format (the µs this module turns into
/// dates). Nothing in this crate calls it: parsing, chain checks and verification take times
/// as arguments, so they stay deterministic and testable.
pub fn now_us() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |us| -us),
    }
}

/// A UTC date and time split into its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// Month, 1–12.
    pub month: i64,
    /// Day of the month, 1–31.
    pub day: i64,
    /// Hour, 0–23.
    pub hour: i64,
    /// Minute, 0–59.
    pub minute: i64,
    /// Second, 0–59.
    pub second: i64,
    /// Millisecond, 0–999.
    pub millisecond: i64,
}

/// The UTC calendar fields of `us` µs since the Unix epoch.
pub fn civil(us: i64) -> Civil {
    let millisecond = us.div_euclid(1000).rem_euclid(1000);
    let secs = us.div_euclid(1_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
        millisecond,
    }
}

/// `YYYY-MM-DD HH:MM:SSZ`, to the second.
pub fn utc_seconds(us: i64) -> String {
    let c = civil(us);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_reads_today_in_microseconds() {
        // Between 2026-01-01 and 2100-01-01: µs, not ms or ns, and not 0.
        let now = now_us();
        assert!((1_767_225_600_000_000..4_102_444_800_000_000).contains(&now), "{now}");
        assert!(now_us() >= now);
    }

    #[test]
    fn known_dates() {
        assert_eq!(utc_seconds(0), "1970-01-01 00:00:00Z");
        // 2024-02-29 12:34:56.789 UTC, a leap day.
        let c = civil(1_709_210_096_789_000);
        assert_eq!((c.year, c.month, c.day), (2024, 2, 29));
        assert_eq!((c.hour, c.minute, c.second, c.millisecond), (12, 34, 56, 789));
        assert_eq!(utc_seconds(1_798_761_600_000_000), "2027-01-01 00:00:00Z");
        // Before the epoch: one µs before is the last second of 1969.
        assert_eq!(utc_seconds(-1), "1969-12-31 23:59:59Z");
        assert_eq!(civil(-1).millisecond, 999);
    }
}
