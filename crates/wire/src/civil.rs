//! Civil time (proleptic Gregorian calendar, UTC) to and from epoch time, for every wire
//! format that prints or reads timestamps (Howard Hinnant's days/civil algorithms).

/// A UTC date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

/// The civil date and time of epoch milliseconds.
pub fn from_epoch_ms(ms: i64) -> DateTime {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    DateTime {
        year: yoe + era * 400 + i64::from(month <= 2),
        month: month as u32,
        day: (doy - (153 * mp + 2) / 5 + 1) as u32,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
        millis: ms.rem_euclid(1000) as u32,
    }
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_dates() {
        // 2026-03-05T07:08:09.123Z
        let t = from_epoch_ms(1_772_694_489_123);
        assert_eq!((t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis), (2026, 3, 5, 7, 8, 9, 123));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        for days in [-1000_i64, 0, 59, 60, 10_957, 20_000, 60_000] {
            let t = from_epoch_ms(days * 86_400_000);
            assert_eq!(days_from_civil(t.year, t.month, t.day), days);
        }
    }
}
