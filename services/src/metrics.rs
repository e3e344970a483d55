//! Prometheus metrics in the text exposition format. Counters live in this process; the
//! backlog, SLA and failure figures are read from the database and the broker at scrape time,
//! so every process shows the bureau's whole state.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::Figures;

/// Name, type and help of every metric.
const HELP: &[(&str, &str, &str)] = &[
    ("scanbureau_pages_processed_total", "counter", "Pages processed by this process."),
    ("scanbureau_mailings_processed_total", "counter", "Mailings processed by this process."),
    ("scanbureau_processing_seconds_total", "counter", "Wall time spent processing mailings in this process (pages/s = rate(pages) / rate(seconds))."),
    ("scanbureau_notices_sent_total", "counter", "Notices accepted by the SMTP server, sent by this process."),
    ("scanbureau_intake_total", "counter", "Mailings taken in by this process, by channel and kind (new, duplicate, refused)."),
    ("scanbureau_failures_total", "counter", "Failed attempts in this process, by stage and reason."),
    ("scanbureau_queue_depth", "gauge", "Messages waiting in each queue."),
    ("scanbureau_source_up", "gauge", "Whether the figures' source answered this scrape (0: the database or broker figures are missing because it is down)."),
    ("scanbureau_mailings", "gauge", "Mailings by status."),
    ("scanbureau_notices", "gauge", "Notices by status."),
    ("scanbureau_mailings_late", "gauge", "Open mailings past their due date."),
    ("scanbureau_sla_remaining_seconds", "gauge", "Time left before the earliest due date of an open mailing (negative: late)."),
    ("scanbureau_rejected_pages", "gauge", "Rejected pages, by reason code."),
    ("scanbureau_dead_letters", "gauge", "Messages a stage gave up on."),
    ("scanbureau_waiting_on_retry", "gauge", "Mailings and notices whose last try failed, waiting for the next, by the server the failure names."),
];

#[derive(Default)]
pub struct Metrics {
    pages_processed: AtomicU64,
    mailings_processed: AtomicU64,
    processing_ms: AtomicU64,
    notices_sent: AtomicU64,
    by_channel: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    failures: Mutex<BTreeMap<(String, String), u64>>,
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
        if let Ok(mut m) = self.by_channel.lock() {
            *m.entry((channel, kind)).or_default() += 1;
        }
    }
    pub fn processed(&self, pages: u64, ms: u64) {
        self.pages_processed.fetch_add(pages, Ordering::Relaxed);
        self.mailings_processed.fetch_add(1, Ordering::Relaxed);
        self.processing_ms.fetch_add(ms, Ordering::Relaxed);
    }
    pub fn notice_sent(&self) {
        self.notices_sent.fetch_add(1, Ordering::Relaxed);
    }
    pub fn failure(&self, stage: &str, reason: &str) {
        if let Ok(mut m) = self.failures.lock() {
            *m.entry((stage.to_string(), reason.to_string())).or_default() += 1;
        }
    }

    /// The exposition text. `depths` are (queue, messages waiting); `figures` is None and
    /// `broker_up` false when their server did not answer or their query failed (said as
    /// `scanbureau_source_up 0`, not as figures that silently vanish).
    pub fn render(&self, figures: Option<&Figures>, depths: &[(String, u32)], broker_up: bool) -> String {
        let mut out = String::new();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        }
        let _ = writeln!(out, "scanbureau_pages_processed_total {}", self.pages_processed.load(Ordering::Relaxed));
        let _ = writeln!(out, "scanbureau_mailings_processed_total {}", self.mailings_processed.load(Ordering::Relaxed));
        let _ = writeln!(out, "scanbureau_processing_seconds_total {:.3}", self.processing_ms.load(Ordering::Relaxed) as f64 / 1000.0);
        let _ = writeln!(out, "scanbureau_notices_sent_total {}", self.notices_sent.load(Ordering::Relaxed));
        if let Ok(m) = self.by_channel.lock() {
            for ((channel, kind), n) in m.iter() {
                let _ = writeln!(out, "scanbureau_intake_total{{channel=\"{channel}\",kind=\"{kind}\"}} {n}");
            }
        }
        if let Ok(m) = self.failures.lock() {
            for ((stage, reason), n) in m.iter() {
                let _ = writeln!(out, "scanbureau_failures_total{{stage=\"{stage}\",reason=\"{}\"}} {n}", escape(reason));
            }
        }
        for (q, n) in depths {
            let _ = writeln!(out, "scanbureau_queue_depth{{queue=\"{q}\"}} {n}");
        }
        let _ = writeln!(out, "scanbureau_source_up{{source=\"database\"}} {}", u8::from(figures.is_some()));
        let _ = writeln!(out, "scanbureau_source_up{{source=\"broker\"}} {}", u8::from(broker_up));
        if let Some(f) = figures {
            for (status, n) in &f.mailings_by_status {
                let _ = writeln!(out, "scanbureau_mailings{{status=\"{status}\"}} {n}");
            }
            for (status, n) in &f.notices_by_status {
                let _ = writeln!(out, "scanbureau_notices{{status=\"{status}\"}} {n}");
            }
            let _ = writeln!(out, "scanbureau_mailings_late {}", f.open_late);
            if let Some(r) = f.min_remaining_s {
                let _ = writeln!(out, "scanbureau_sla_remaining_seconds {r:.0}");
            }
            for (reason, n) in &f.rejected_pages_by_reason {
                let _ = writeln!(out, "scanbureau_rejected_pages{{reason=\"{reason}\"}} {n}");
            }
            let _ = writeln!(out, "scanbureau_dead_letters {}", f.dead_letters);
            for w in &f.waiting {
                let _ = writeln!(out, "scanbureau_waiting_on_retry{{kind=\"{}\",server=\"{}\"}} {}", w.kind, w.server, w.count);
            }
        }
        out
    }
}

/// Failure reasons are free text: keep them one line and quote-safe, and short.
fn escape(s: &str) -> String {
    let one: String = s.chars().take(120).map(|c| if c == '\n' { ' ' } else { c }).collect();
    one.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counters_and_escaped_labels() {
        let m = Metrics::default();
        m.processed(12, 3000);
        m.received("paper");
        m.failure("process", "S3 \"down\"\nagain");
        let f = Figures {
            open_late: 2,
            min_remaining_s: Some(-60.0),
            waiting: vec![crate::store::Waiting { kind: "notice", server: "smtp", count: 4, since: None, last_error: String::new() }],
            ..Figures::default()
        };
        let text = m.render(Some(&f), &[("p.process".into(), 3)], true);
        assert!(text.contains("scanbureau_pages_processed_total 12\n"), "{text}");
        assert!(text.contains("scanbureau_processing_seconds_total 3.000\n"));
        assert!(text.contains("scanbureau_intake_total{channel=\"paper\",kind=\"new\"} 1\n"));
        assert!(text.contains("reason=\"S3 \\\"down\\\" again\"} 1\n"), "{text}");
        assert!(text.contains("scanbureau_queue_depth{queue=\"p.process\"} 3\n"));
        assert!(text.contains("scanbureau_sla_remaining_seconds -60\n"));
        assert!(text.contains("scanbureau_mailings_late 2\n"));
        assert!(text.contains("scanbureau_waiting_on_retry{kind=\"notice\",server=\"smtp\"} 4\n"), "{text}");
        assert!(text.contains("scanbureau_source_up{source=\"database\"} 1\n") && text.contains("scanbureau_source_up{source=\"broker\"} 1\n"), "{text}");
        // The database and broker down: said, not hidden by figures that are simply missing.
        let text = m.render(None, &[], false);
        assert!(text.contains("scanbureau_source_up{source=\"database\"} 0\n") && text.contains("scanbureau_source_up{source=\"broker\"} 0\n"), "{text}");
        assert!(!text.contains("\nscanbureau_mailings_late "), "{text}");
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
