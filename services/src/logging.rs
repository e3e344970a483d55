//! Logs. Text for a terminal; JSON lines for a collector (`[log] format = "json"`), one object
//! per event carrying its spans: the HTTP request (`http`: method, path), the queue delivery
//! (`delivery`: stage, attempt), the mailing (`mailing`: its id), the notice (`notice`) and the
//! applicant's request inside a mailing (`request`: its place in the mailing and its slip's page;
//! never its numéro unique, which is personal data). One mailing's life reads as
//! one thread of logs by filtering on `mailing`.

use serde::Deserialize;
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The subscriber for `format`, filtered by `RUST_LOG` when set, else by `default_filter`.
pub fn subscriber<W>(format: LogFormat, default_filter: &str, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    let builder = tracing_subscriber::fmt().with_writer(writer).with_env_filter(filter);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(builder.json().with_current_span(false).with_span_list(true).flatten_event(true).finish()),
    }
}

/// Installs the process's logger (to standard error).
pub fn init(format: LogFormat, default_filter: &str) {
    // Only fails when a logger is already set (a test that set its own): that one stays.
    let _ = tracing::subscriber::set_global_default(subscriber(format, default_filter, std::io::stderr));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// A writer into memory, for reading back what was logged.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
        }
    }

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    #[test]
    fn a_json_line_names_the_mailing_the_stage_and_the_attempt_it_happened_in() {
        let out = Captured::default();
        tracing::subscriber::with_default(subscriber(LogFormat::Json, "info", out.clone()), || {
            let delivery = tracing::info_span!("delivery", stage = "process", attempt = 3);
            let _d = delivery.enter();
            let mailing = tracing::info_span!("mailing", mailing = "m-2d1ddf32");
            let _m = mailing.enter();
            tracing::info!(pages = 12, "mailing done");
        });
        let line: serde_json::Value = serde_json::from_str(out.text().lines().next().expect("one line")).expect("JSON");
        assert_eq!(line["message"], "mailing done");
        assert_eq!(line["pages"], 12);
        assert_eq!(line["level"], "INFO");
        let spans = line["spans"].as_array().expect("spans");
        assert_eq!(spans[0]["name"], "delivery");
        assert_eq!((spans[0]["stage"].as_str(), spans[0]["attempt"].as_i64()), (Some("process"), Some(3)));
        assert_eq!((spans[1]["name"].as_str(), spans[1]["mailing"].as_str()), (Some("mailing"), Some("m-2d1ddf32")));
    }

    #[test]
    fn text_logs_stay_one_readable_line() {
        let out = Captured::default();
        tracing::subscriber::with_default(subscriber(LogFormat::Text, "info", out.clone()), || {
            let _m = tracing::info_span!("mailing", mailing = "m-1").entered();
            tracing::info!("mailing done");
        });
        // Without the terminal's colour codes.
        let mut text = String::new();
        let mut codes = out.text();
        while let Some(at) = codes.find('\u{1b}') {
            text.push_str(&codes[..at]);
            codes = codes[at..].split_once('m').map(|(_, rest)| rest.to_string()).unwrap_or_default();
        }
        text.push_str(&codes);
        assert!(text.contains("mailing{mailing=\"m-1\"}") && text.contains("mailing done") && !text.trim_start().starts_with('{'), "{text}");
    }
}
