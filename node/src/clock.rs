//! The wall clock, read in one place.

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The UTC calendar date and time of `ms` milliseconds since the Unix epoch: year, month,
/// day, hour, minute and second (Howard Hinnant's `civil_from_days`).
pub fn utc_fields(ms: i64) -> [i64; 6] {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    [y, m, d, rem / 3600, rem % 3600 / 60, rem % 60]
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_fields_are_the_calendar_date_and_time() {
        // 2024-02-29 23:59:58 UTC, a leap day.
        assert_eq!(
            super::utc_fields(1_709_251_198_000),
            [2024, 2, 29, 23, 59, 58]
        );
        assert_eq!(super::utc_fields(0), [1970, 1, 1, 0, 0, 0]);
        assert_eq!(super::utc_fields(-1000), [1969, 12, 31, 23, 59, 59]);
    }
}
