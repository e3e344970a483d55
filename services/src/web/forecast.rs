//! When will each open mailing be done? A plain forecast from the queue's order and the
//! bureau's recent throughput, so a supervisor sees a mailing at risk before it is late.
//!
//! The processing queue takes mailings by priority, then in order of reception; each one
//! costs its pages (counted once processed, estimated from its bytes before). A mailing whose
//! forecast end falls within `margin` of its due date is at risk.

use chrono::{DateTime, Duration, Utc};

use crate::store::desk::{MailingView, RecentThroughput};

/// One open mailing, in queue order.
#[derive(Debug, Clone)]
pub struct Queued {
    pub id: String,
    pub due_at: DateTime<Utc>,
    /// Pages if known, else an estimate.
    pub pages: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub id: String,
    pub done_by: DateTime<Utc>,
    pub at_risk: bool,
    pub late: bool,
}

/// Pages a mailing holds, from its count or its size.
pub fn pages_of(pages: Option<i32>, bytes: i64, bytes_per_page: Option<f64>) -> f64 {
    match pages {
        Some(p) if p > 0 => p as f64,
        _ => (bytes as f64 / bytes_per_page.filter(|b| *b > 0.0).unwrap_or(DEFAULT_BYTES_PER_PAGE)).max(1.0),
    }
}

/// A scanned A4 page at 300 dpi in JPEG, when nothing has been measured yet.
pub const DEFAULT_BYTES_PER_PAGE: f64 = 250_000.0;

/// Pages per hour the bureau processes: the last day's pages over the time spent processing
/// them (its speed when busy, not its idle hours), or `nominal` with too little history (under
/// a minute of work). Workers processing side by side make the bureau faster than this: the
/// forecast errs on the safe side.
pub fn throughput(pages: i64, busy_seconds: f64, nominal: f64) -> f64 {
    if pages <= 0 || busy_seconds < 60.0 {
        return nominal;
    }
    pages as f64 / busy_seconds * 3600.0
}

/// The open mailings' forecasts, in the queue's order, and the rate they were made at (pages
/// an hour; `nominal` when too little was processed lately to measure it).
pub fn of_open(open: &[MailingView], recent: &RecentThroughput, nominal: f64, margin: Duration, now: DateTime<Utc>) -> (f64, Vec<Forecast>) {
    let rate = throughput(recent.processing.0, recent.processing.1, nominal);
    let queue: Vec<Queued> =
        open.iter().map(|m| Queued { id: m.id.clone(), due_at: m.due_at, pages: pages_of(m.pages, m.bytes, recent.bytes_per_page) }).collect();
    (rate, forecast(&queue, rate, now, margin))
}

pub fn forecast(queue: &[Queued], pages_per_hour: f64, now: DateTime<Utc>, margin: Duration) -> Vec<Forecast> {
    let rate = pages_per_hour.max(1.0);
    let mut pages_before = 0.0;
    queue
        .iter()
        .map(|q| {
            pages_before += q.pages;
            let done_by = now + Duration::milliseconds((pages_before / rate * 3_600_000.0) as i64);
            Forecast { id: q.id.clone(), done_by, at_risk: done_by + margin > q.due_at, late: q.due_at < now }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(id: &str, due_in_h: i64, pages: f64, now: DateTime<Utc>) -> Queued {
        Queued { id: id.into(), due_at: now + Duration::hours(due_in_h), pages }
    }

    #[test]
    fn a_mailing_behind_a_long_queue_is_at_risk_and_one_ahead_is_not() {
        let now = Utc::now();
        // 1,000 pages an hour; 5,000 pages ahead of the last one, due in 4 hours.
        let queue = [q("a", 48, 2000.0, now), q("b", 48, 2900.0, now), q("c", 4, 100.0, now)];
        let f = forecast(&queue, 1000.0, now, Duration::minutes(30));
        assert!(!f[0].at_risk && !f[1].at_risk);
        assert!(f[2].at_risk, "{f:?}");
        assert_eq!((f[2].done_by - now).num_minutes(), 300);
        // Prioritised, it jumps the queue and is safe.
        let queue = [q("c", 4, 100.0, now), q("a", 48, 2000.0, now), q("b", 48, 2900.0, now)];
        let f = forecast(&queue, 1000.0, now, Duration::minutes(30));
        assert!(!f[0].at_risk, "{f:?}");
    }

    #[test]
    fn a_mailing_past_its_due_date_is_late_and_at_risk() {
        let now = Utc::now();
        let f = forecast(&[q("x", -1, 1.0, now)], 10_000.0, now, Duration::zero());
        assert!(f[0].late && f[0].at_risk);
    }

    #[test]
    fn throughput_is_pages_over_processing_time_or_the_nominal_rate() {
        assert_eq!(throughput(0, 0.0, 500.0), 500.0);
        assert_eq!(throughput(11, 4.0, 500.0), 500.0, "four seconds of work tell nothing yet");
        assert!((throughput(1000, 120.0, 500.0) - 30_000.0).abs() < 1e-6);
    }

    #[test]
    fn pages_are_counted_or_estimated_from_bytes() {
        assert_eq!(pages_of(Some(12), 0, None), 12.0);
        assert_eq!(pages_of(None, 1_000_000, Some(100_000.0)), 10.0);
        assert_eq!(pages_of(None, 10, None), 1.0);
    }
}
