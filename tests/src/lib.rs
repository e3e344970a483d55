//! Harness of the end-to-end tests: generate a mailing, run the real `process` job on it in a
//! fresh temporary directory, and compare the report with the generator's truth.

pub mod imap;
pub mod own_servers;
pub mod stack;
pub mod web;

use std::path::{Path, PathBuf};

use scanbureau::process::{ChannelArg, ProcessArgs, run};
use scanbureau_fixtures::mailing::{Generated, Truth};
use scanbureau_pipeline::report::{PageRole, Report};

/// The fixed reception time of test mailings (a Wednesday).
pub const RECEIVED_AT: &str = "2026-11-18T09:12:00+01:00";

pub fn args(inputs: Vec<PathBuf>, out: &Path, registry: Option<PathBuf>, channel: ChannelArg) -> ProcessArgs {
    ProcessArgs {
        inputs,
        out: out.to_path_buf(),
        channel,
        received_at: Some(RECEIVED_AT.into()),
        numero_unique: None,
        registry,
        plan: None,
        config: None,
        notify: None,
        json: false,
        jobs: Some(2),
        duplex: None,
    }
}

/// Runs the job and checks the report's own accounting invariant before handing it back.
pub fn process(a: &ProcessArgs) -> Report {
    let report = run(a, false).unwrap_or_else(|e| panic!("process failed: {e}"));
    if let Err(e) = report.check_accounting() {
        panic!("report does not account for every page: {e}");
    }
    let on_disk: Report = serde_json::from_slice(&std::fs::read(a.out.join("report.json")).expect("report.json written")).expect("report.json parses");
    assert_eq!(on_disk.pages.len(), report.pages.len());
    for piece in report.requests.iter().flat_map(|r| &r.pieces) {
        if let Some(f) = &piece.file {
            let bytes = std::fs::read(a.out.join(f)).unwrap_or_else(|_| panic!("piece file {f} missing"));
            assert_eq!(Some(bytes.len() as u64), piece.bytes);
            let doc = lopdf::Document::load_mem(&bytes).unwrap_or_else(|e| panic!("{f} is not a readable PDF: {e}"));
            assert_eq!(doc.get_pages().len(), piece.pages.len(), "{f}: one PDF page per scanned page");
        }
    }
    for r in &report.requests {
        if let Some(n) = &r.notice {
            assert!(a.out.join(n).exists(), "notice {n} missing");
        }
    }
    report
}

/// Pages whose role differs from the truth (page, expected, got).
pub fn role_mismatches(report: &Report, truth: &Truth) -> Vec<(usize, &'static str, PageRole)> {
    truth
        .pages
        .iter()
        .filter_map(|t| {
            let got = report.pages[t.index].role;
            // A document that must be refused (someone else's, outside the plan) is, page by page.
            let refused = t.request.zip(t.doc).and_then(|(r, d)| truth.requests[r].docs[d].rejection);
            let ok = match t.role {
                "slip" => got == PageRole::Slip,
                "blank" => got == PageRole::Blank,
                _ if refused.is_some() => got == PageRole::Rejected && report.pages[t.index].reason.map(|r| r.code()) == refused,
                _ => got == PageRole::Piece,
            };
            (!ok).then_some((t.index, t.role, got))
        })
        .collect()
}

/// Writes the generated mailing's registry snapshot beside it.
pub fn write_registry(dir: &Path, g: &Generated, guichet: &scanbureau_fixtures::people::Guichet) -> PathBuf {
    let path = dir.join("registry.json");
    std::fs::write(&path, scanbureau_fixtures::people::registry_json(&g.registry_people, std::slice::from_ref(guichet))).expect("write registry");
    path
}
