//! Prometheus metrics through `prometheus-client` (OpenMetrics text). Counters and latency
//! histograms live in this process; the backlog, SLA and failure figures are read from the
//! database and the broker at scrape time, so every process shows the bureau's whole state.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::Figures;

type Labels = Vec<(&'static str, String)>;
type Counted = Family<Labels, Counter>;
type Gauged = Family<Labels, Gauge>;
type Measured = Family<Labels, Gauge<f64, AtomicU64>>;
type Timed = Family<Labels, Histogram>;

/// Seconds from 10 ms to about 20 min (S3 and SMTP calls, a mailing's processing).
fn seconds_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 18))
}

/// Seconds from 1 min to about 9 days (reception to done; the deadline is two working days).
fn reception_buckets() -> Histogram {
    Histogram::new(exponential_buckets(60.0, 2.0, 14))
}

/// Pages a second of one mailing, 0.25 to about 500.
fn rate_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.25, 2.0, 12))
}

pub struct Metrics {
    registry: Registry,
    pages_processed: Counter,
    mailings_processed: Counter,
    processing_seconds: Counter<f64, AtomicU64>,
    notices_sent: Counter,
    intake: Counted,
    failures: Counted,
    mailing_seconds: Histogram,
    mailing_pages_per_second: Histogram,
    reception_to_done_seconds: Histogram,
    call_seconds: Timed,
    // Read at scrape time: set, then encoded, under `scrape`.
    scrape: Mutex<()>,
    queue_depth: Gauged,
    source_up: Gauged,
    mailings: Gauged,
    notices: Gauged,
    mailings_late: Gauged,
    sla_remaining_seconds: Measured,
    rejected_pages: Gauged,
    dead_letters: Gauged,
    waiting_on_retry: Gauged,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            registry: Registry::default(),
            pages_processed: Counter::default(),
            mailings_processed: Counter::default(),
            processing_seconds: Counter::default(),
            notices_sent: Counter::default(),
            intake: Counted::default(),
            failures: Counted::default(),
            mailing_seconds: seconds_buckets(),
            mailing_pages_per_second: rate_buckets(),
            reception_to_done_seconds: reception_buckets(),
            call_seconds: Timed::new_with_constructor(seconds_buckets),
            scrape: Mutex::new(()),
            queue_depth: Gauged::default(),
            source_up: Gauged::default(),
            mailings: Gauged::default(),
            notices: Gauged::default(),
            mailings_late: Gauged::default(),
            sla_remaining_seconds: Measured::default(),
            rejected_pages: Gauged::default(),
            dead_letters: Gauged::default(),
            waiting_on_retry: Gauged::default(),
        };
        let r = &mut registry;
        r.register("scanbureau_pages_processed", "Pages processed by this process.", m.pages_processed.clone());
        r.register("scanbureau_mailings_processed", "Mailings processed by this process.", m.mailings_processed.clone());
        r.register(
            "scanbureau_processing_seconds",
            "Wall time spent processing mailings in this process (pages/s = rate(pages) / rate(seconds)).",
            m.processing_seconds.clone(),
        );
        r.register("scanbureau_notices_sent", "Notices accepted by the SMTP server, sent by this process.", m.notices_sent.clone());
        r.register("scanbureau_intake", "Mailings taken in by this process, by channel and kind (new, duplicate, refused).", m.intake.clone());
        r.register("scanbureau_failures", "Failed attempts in this process, by stage and reason.", m.failures.clone());
        r.register("scanbureau_mailing_seconds", "Time to process one mailing (read, classify, store, record), seconds.", m.mailing_seconds.clone());
        r.register("scanbureau_mailing_pages_per_second", "Pages a second of each mailing processed.", m.mailing_pages_per_second.clone());
        r.register(
            "scanbureau_reception_to_done_seconds",
            "From a mailing's reception to its pieces filed and notices recorded, seconds.",
            m.reception_to_done_seconds.clone(),
        );
        r.register(
            "scanbureau_call_seconds",
            "Time of a call to a server (s3 put or get, smtp send), by server, operation and outcome.",
            m.call_seconds.clone(),
        );
        r.register("scanbureau_queue_depth", "Messages waiting in each queue.", m.queue_depth.clone());
        r.register(
            "scanbureau_source_up",
            "Whether the figures' source answered this scrape (0: the database or broker figures are missing because it is down).",
            m.source_up.clone(),
        );
        r.register("scanbureau_mailings", "Mailings by status.", m.mailings.clone());
        r.register("scanbureau_notices", "Notices by status.", m.notices.clone());
        r.register("scanbureau_mailings_late", "Open mailings past their due date.", m.mailings_late.clone());
        r.register(
            "scanbureau_sla_remaining_seconds",
            "Time left before the earliest due date of an open mailing (negative: late).",
            m.sla_remaining_seconds.clone(),
        );
        r.register("scanbureau_rejected_pages", "Rejected pages, by reason code.", m.rejected_pages.clone());
        r.register("scanbureau_dead_letters", "Messages a stage gave up on.", m.dead_letters.clone());
        r.register(
            "scanbureau_waiting_on_retry",
            "Mailings and notices whose last try failed, waiting for the next, by the server the failure names.",
            m.waiting_on_retry.clone(),
        );
        Self { registry, ..m }
    }
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

impl Metrics {
    pub fn received(&self, channel: &'static str) {
        self.bump(channel, "new");
    }
    pub fn duplicate(&self, channel: &'static str) {
        self.bump(channel, "duplicate");
    }
    pub fn refused(&self, channel: &'static str) {
        self.bump(channel, "refused");
    }
    fn bump(&self, channel: &'static str, kind: &'static str) {
        self.intake.get_or_create(&labels(&[("channel", channel), ("kind", kind)])).inc();
    }
    pub fn processed(&self, pages: u64, elapsed: Duration) {
        self.pages_processed.inc_by(pages);
        self.mailings_processed.inc();
        let secs = elapsed.as_secs_f64();
        self.processing_seconds.inc_by(secs);
        self.mailing_seconds.observe(secs);
        if secs > 0.0 && pages > 0 {
            self.mailing_pages_per_second.observe(pages as f64 / secs);
        }
    }
    /// A mailing filed `waited` after its reception.
    pub fn done_after(&self, waited: Duration) {
        self.reception_to_done_seconds.observe(waited.as_secs_f64());
    }
    pub fn notice_sent(&self) {
        self.notices_sent.inc();
    }
    /// A call to `server` (`s3`, `smtp`) doing `operation`, and whether it succeeded.
    pub fn call(&self, server: &'static str, operation: &'static str, ok: bool, took: Duration) {
        self.call_timer().observe(server, operation, ok, took);
    }
    /// What the object store's client times its calls with.
    pub fn call_timer(&self) -> CallTimer {
        CallTimer(self.call_seconds.clone())
    }
    pub fn failure(&self, stage: &str, reason: &str) {
        self.failures.get_or_create(&vec![("stage", stage.to_string()), ("reason", short(reason))]).inc();
    }

    /// The exposition text. `depths` are (queue, messages waiting); `figures` is None and
    /// `broker_up` false when their server did not answer or their query failed (said as
    /// `scanbureau_source_up 0`, not as figures that silently vanish).
    pub fn render(&self, figures: Option<&Figures>, depths: &[(String, u32)], broker_up: bool) -> String {
        let _one_scrape_at_a_time = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        let counts = [
            &self.queue_depth,
            &self.source_up,
            &self.mailings,
            &self.notices,
            &self.mailings_late,
            &self.rejected_pages,
            &self.dead_letters,
            &self.waiting_on_retry,
        ];
        for family in counts {
            family.clear();
        }
        self.sla_remaining_seconds.clear();
        let set = |family: &Gauged, pairs: &[(&'static str, &str)], v: i64| {
            family.get_or_create(&labels(pairs)).set(v);
        };
        for (q, n) in depths {
            set(&self.queue_depth, &[("queue", q)], i64::from(*n));
        }
        set(&self.source_up, &[("source", "database")], i64::from(figures.is_some()));
        set(&self.source_up, &[("source", "broker")], i64::from(broker_up));
        if let Some(f) = figures {
            for (status, n) in &f.mailings_by_status {
                set(&self.mailings, &[("status", status)], *n);
            }
            for (status, n) in &f.notices_by_status {
                set(&self.notices, &[("status", status)], *n);
            }
            set(&self.mailings_late, &[], f.open_late);
            if let Some(r) = f.min_remaining_s {
                self.sla_remaining_seconds.get_or_create(&Vec::new()).set(r.round());
            }
            for (reason, n) in &f.rejected_pages_by_reason {
                set(&self.rejected_pages, &[("reason", reason)], *n);
            }
            set(&self.dead_letters, &[], f.dead_letters);
            for w in &f.waiting {
                set(&self.waiting_on_retry, &[("kind", w.kind), ("server", w.server)], w.count);
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Times calls to a server into `scanbureau_call_seconds` (a handle on the process's metrics).
#[derive(Clone)]
pub struct CallTimer(Timed);

impl CallTimer {
    pub fn observe(&self, server: &'static str, operation: &'static str, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.0.get_or_create(&labels(&[("server", server), ("operation", operation), ("outcome", outcome)])).observe(took.as_secs_f64());
    }
}

/// The OpenMetrics content type `render` writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Failure reasons are free text: one short line (the encoder escapes quotes).
fn short(s: &str) -> String {
    s.chars().take(120).map(|c| if c == '\n' { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counters_histograms_and_escaped_labels() {
        let m = Metrics::default();
        m.processed(12, Duration::from_secs(3));
        m.done_after(Duration::from_secs(5400));
        m.call("s3", "put", true, Duration::from_millis(40));
        m.call("smtp", "send", false, Duration::from_secs(2));
        m.received("paper");
        m.failure("process", "S3 \"down\"\nagain");
        let f = Figures {
            open_late: 2,
            min_remaining_s: Some(-60.0),
            waiting: vec![crate::store::Waiting { kind: "notice", server: "smtp", count: 4, since: None, last_error: String::new() }],
            ..Figures::default()
        };
        let text = m.render(Some(&f), &[("p.process".into(), 3)], true);
        for line in [
            "scanbureau_pages_processed_total 12\n",
            "scanbureau_processing_seconds_total 3.0\n",
            "scanbureau_intake_total{channel=\"paper\",kind=\"new\"} 1\n",
            "scanbureau_failures_total{stage=\"process\",reason=\"S3 \\\"down\\\" again\"} 1\n",
            "scanbureau_queue_depth{queue=\"p.process\"} 3\n",
            "scanbureau_sla_remaining_seconds -60.0\n",
            "scanbureau_mailings_late 2\n",
            "scanbureau_waiting_on_retry{kind=\"notice\",server=\"smtp\"} 4\n",
            "scanbureau_source_up{source=\"database\"} 1\n",
            "scanbureau_source_up{source=\"broker\"} 1\n",
            // 12 pages in 3 s: 4 pages a second, in the bucket up to 4.
            "scanbureau_mailing_pages_per_second_bucket{le=\"4.0\"} 1\n",
            "scanbureau_mailing_pages_per_second_bucket{le=\"2.0\"} 0\n",
            // 1 h 30 min from reception to done: over 3,840 s, within 7,680 s.
            "scanbureau_reception_to_done_seconds_bucket{le=\"3840.0\"} 0\n",
            "scanbureau_reception_to_done_seconds_bucket{le=\"7680.0\"} 1\n",
            "scanbureau_call_seconds_count{server=\"s3\",operation=\"put\",outcome=\"ok\"} 1\n",
            "scanbureau_call_seconds_count{server=\"smtp\",operation=\"send\",outcome=\"error\"} 1\n",
            "# EOF\n",
        ] {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
        // The database and broker down: said, not hidden by figures that are simply missing,
        // and no figure of the last scrape left standing.
        let text = m.render(None, &[], false);
        assert!(text.contains("scanbureau_source_up{source=\"database\"} 0\n") && text.contains("scanbureau_source_up{source=\"broker\"} 0\n"), "{text}");
        assert!(!text.contains("\nscanbureau_mailings_late ") && !text.contains("scanbureau_queue_depth{"), "{text}");
    }

    #[test]
    fn a_recorded_failure_names_its_server() {
        use crate::store::server_of;
        assert_eq!(server_of("object storage, get raw/m-1: dispatch failure"), "s3");
        assert_eq!(server_of("SMTP: Connection refused (os error 111)"), "smtp");
        assert_eq!(server_of("pool timed out while waiting for an open connection"), "database");
        assert_eq!(server_of("something else"), "other");
    }
}
