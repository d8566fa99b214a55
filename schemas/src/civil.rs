//! UTC calendar days without a date library, for the dashboard's periods and
//! the alert evaluator's budget months.
//!
//! A [`Day`] is a count of days since 1970-01-01 (the same number ClickHouse's
//! `Date` stores), so query results map onto it without conversion. Every
//! dashboard period is a half-open range of whole UTC days.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds in one day.
pub const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// A UTC calendar day, as days since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i32);

impl Day {
    /// Today in UTC, from the given clock reading in Unix nanoseconds.
    pub fn from_unix_ns(ns: i64) -> Day {
        Day(i32::try_from(ns.div_euclid(DAY_NS)).unwrap_or(i32::MAX))
    }

    pub fn today() -> Day {
        Day::from_unix_ns(now_ns())
    }

    /// Parses `YYYY-MM-DD`; `None` for anything else, including impossible dates.
    pub fn parse(s: &str) -> Option<Day> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let y: i32 = s.get(0..4)?.parse().ok()?;
        let m: u32 = s.get(5..7)?.parse().ok()?;
        let d: u32 = s.get(8..10)?.parse().ok()?;
        if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
            return None;
        }
        Some(Day(days_from_civil(y, m, d)))
    }

    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(self.0)
    }

    /// The first day of this day's month.
    pub fn month_start(self) -> Day {
        let (y, m, _) = self.ymd();
        Day(days_from_civil(y, m, 1))
    }

    pub fn offset(self, days: i32) -> Day {
        Day(self.0.saturating_add(days))
    }

    /// Midnight at the start of this day, in Unix nanoseconds.
    pub fn start_ns(self) -> i64 {
        i64::from(self.0) * DAY_NS
    }

    /// Short label for chart axes: `Mar 7`.
    pub fn short(self) -> String {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let (_, m, d) = self.ymd();
        let name = MONTHS.get((m as usize).saturating_sub(1)).unwrap_or(&"?");
        format!("{name} {d}")
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `2024-03-07 14:05:09` (UTC) from Unix nanoseconds.
pub fn format_ns(ns: i64) -> String {
    let day = Day::from_unix_ns(ns);
    let secs = ns.div_euclid(1_000_000_000) - i64::from(day.0) * 86_400;
    format!(
        "{day} {:02}:{:02}:{:02}",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

// Howard Hinnant's civil-date algorithms (public domain).
fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_dates() {
        assert_eq!(Day::parse("1970-01-01"), Some(Day(0)));
        assert_eq!(Day::parse("2000-03-01").map(|d| d.0), Some(11_017));
        for s in ["2024-02-29", "1999-12-31", "2026-11-23", "2100-02-28"] {
            assert_eq!(Day::parse(s).map(|d| d.to_string()).as_deref(), Some(s));
        }
        assert_eq!(Day::parse("2023-02-29"), None);
        assert_eq!(Day::parse("2024-13-01"), None);
        assert_eq!(Day::parse("2024-1-01"), None);
        assert_eq!(Day::parse("yesterday"), None);
    }

    #[test]
    fn month_start_and_labels() {
        let d = Day::parse("2024-03-17").unwrap();
        assert_eq!(d.month_start().to_string(), "2024-03-01");
        assert_eq!(d.short(), "Mar 17");
        assert_eq!(
            format_ns(d.start_ns() + 3_723_000_000_000),
            "2024-03-17 01:02:03"
        );
    }
}
