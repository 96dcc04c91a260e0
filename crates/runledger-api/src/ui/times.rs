//! Times and durations as the pages show them: relative to the moment a page is rendered
//! (`4 min ago`), with the absolute time on hover and in the `datetime` attribute, and
//! durations in their two largest units.

use chrono::{DateTime, SecondsFormat, Utc};

/// A time, as a `<time>` element shows it.
#[derive(Debug, Clone)]
pub struct TimeView {
    /// RFC 3339 with milliseconds, for the `datetime` attribute and for machines (the page's
    /// script refreshes [`Self::relative`] from it).
    pub machine: String,
    /// `2026-11-27 09:14:03 UTC`, for people: the hover text.
    pub human: String,
    /// `2026-11-27 09:14:03.120 UTC`: events a few milliseconds apart read apart.
    pub precise: String,
    /// `4 min ago`, or `in 3 min` for a deadline, as of the page's rendering.
    pub relative: String,
}

impl TimeView {
    /// `time`, seen at `now`.
    pub fn new(time: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        Self {
            machine: time.to_rfc3339_opts(SecondsFormat::Millis, true),
            human: time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            precise: time.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
            relative: relative_text(time, now),
        }
    }
}

/// `just now`, `12 s ago`, `4 min ago`, `3 h ago`, `2 d ago`; `in …` for a time still ahead.
/// The page's script (`assets/live.js`, `relative`) applies the same rules as time passes.
pub fn relative_text(time: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - time).num_seconds();
    let magnitude = seconds.unsigned_abs();
    let amount = match magnitude {
        0..5 => return "just now".to_owned(),
        5..60 => format!("{magnitude} s"),
        60..3600 => format!("{} min", magnitude / 60),
        3600..86_400 => format!("{} h", magnitude / 3600),
        _ => format!("{} d", magnitude / 86_400),
    };
    if seconds >= 0 {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// `3 h 02 m`, `4 m 05 s`, `12.3 s` or `85 ms`: the two largest units are enough to compare runs.
pub fn duration_text(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let millis = (to - from).num_milliseconds().max(0);
    let seconds = millis / 1000;
    match seconds {
        0 => format!("{millis} ms"),
        1..60 => format!("{}.{} s", seconds, (millis % 1000) / 100),
        60..3600 => format!("{} m {:02} s", seconds / 60, seconds % 60),
        3600..86_400 => format!("{} h {:02} m", seconds / 3600, (seconds % 3600) / 60),
        _ => format!("{} d {:02} h", seconds / 86_400, (seconds % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_their_two_largest_units() {
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let after = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
        assert_eq!(duration_text(t0, after(85)), "85 ms");
        assert_eq!(duration_text(t0, after(12_345)), "12.3 s");
        assert_eq!(duration_text(t0, after(245_000)), "4 m 05 s");
        assert_eq!(duration_text(t0, after(10_920_000)), "3 h 02 m");
        assert_eq!(duration_text(t0, after(90_000_000)), "1 d 01 h");
        assert_eq!(
            duration_text(after(10), t0),
            "0 ms",
            "a clock step back is not negative"
        );
    }

    #[test]
    fn relative_times_read_back_and_ahead() {
        let now = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(10);
        let ago = |s: i64| now - chrono::Duration::seconds(s);
        assert_eq!(relative_text(ago(2), now), "just now");
        assert_eq!(relative_text(ago(12), now), "12 s ago");
        assert_eq!(relative_text(ago(245), now), "4 min ago");
        assert_eq!(relative_text(ago(3 * 3600 + 5), now), "3 h ago");
        assert_eq!(relative_text(ago(2 * 86_400), now), "2 d ago");
        assert_eq!(relative_text(ago(-180), now), "in 3 min");
        let precise = TimeView::new(now + chrono::Duration::milliseconds(120), now).precise;
        assert_eq!(precise, "1970-01-11 00:00:00.120 UTC");
    }
}
