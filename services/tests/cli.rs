//! The `scanbureau` binary as an operator or a script uses it: exit codes, messages, --json.

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scanbureau"))
}

fn samples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scans-samples")
}

#[test]
fn usage_errors_say_what_to_fix_and_exit_2() {
    let out = tempfile::tempdir().expect("tmp");
    for (args, needle) in [
        (vec!["process", "--registry", "sample", "/nonexistent/batch"], "does not exist"),
        (vec!["process", "--registry", "sample", "--received-at", "yesterday", "x"], "RFC 3339"),
        (vec!["process", "--registry", "sample", "--channel", "portal", "--numero-unique", "123", "x"], "numero unique"),
        (vec!["process", "--registry", "sample", "--numero-unique", "0740126000123G0042", "x"], "--channel portal"),
        // The bundled sample registry is used only when named.
        (vec!["process", "x"], "--registry sample"),
    ] {
        let o = bin().args(&args).arg("--out").arg(out.path()).output().expect("runs");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let cfg = out.path().join("site.toml");
    std::fs::write(&cfg, "[site]\nname='x'\ncalendar='ZZ'\nbureau_email='a@b'\n[sne]\n").expect("write");
    let o = bin()
        .args(["process", "--registry", "sample", "--config"])
        .arg(&cfg)
        .arg(samples().join("applicant-mailing.tif"))
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("site.calendar"));
}

#[test]
fn json_report_on_stdout_with_embedded_defaults() {
    let out = tempfile::tempdir().expect("tmp");
    let o = bin()
        .args(["process", "--registry", "sample", "--json", "--received-at", "2026-11-18T09:12:00+01:00", "--out"])
        .arg(out.path())
        .arg(samples().join("counter-mailing"))
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is the JSON report");
    let truth: serde_json::Value = serde_json::from_slice(&std::fs::read(samples().join("truth/counter-mailing.json")).expect("truth")).expect("json");
    assert_eq!(report["batch"]["pages"].as_u64(), truth["pages"].as_array().map(|p| p.len() as u64));
    // Classified with the bundled rules: the tax notice opens the first request.
    assert_eq!(report["requests"][0]["pieces"][0]["type"], "AVIS_IMPOSITION");
    assert_eq!(report["batch"]["due_at"], "2026-11-20T23:59:59+01:00");
    assert_eq!(report["batch"]["sender"]["kind"], "guichet");
    assert!(out.path().join("report.json").exists());
}

#[test]
fn a_rejected_mailing_exits_3() {
    let out = tempfile::tempdir().expect("tmp");
    // The applicant's pieces alone, without the attestation: a paper mailing without any slip.
    let dir = out.path().join("batch");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(samples().join("counter-mailing/scan-0005.jpg"), dir.join("scan-0001.jpg")).expect("copy");
    let o = bin().args(["process", "--registry", "sample", "--out"]).arg(out.path().join("o")).arg(&dir).output().expect("runs");
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("PLI_SANS_BORDEREAU"));
}

#[test]
fn the_summary_lists_each_piece_and_its_fate() {
    let out = tempfile::tempdir().expect("tmp");
    let o = bin()
        .args(["process", "--registry", "sample", "--received-at", "2026-11-18T09:12:00+01:00", "--out"])
        .arg(out.path())
        .arg(samples().join("counter-mailing"))
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("IDC/CNI"), "{text}");
    assert!(text.contains("rejected INCOHERENCE_IDENTITE"), "{text}");
    assert!(text.contains("outside the plan") && text.contains("for review"), "{text}");
}

#[test]
fn inspect_says_what_each_file_would_be_filed_as_and_why() {
    let dir = samples().join("counter-mailing");
    // The first page of the counter's tax notice, then the blank back of its sheet.
    let o = bin().arg("inspect").arg(dir.join("scan-0005.jpg")).arg(dir.join("scan-0006.jpg")).output().expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let pieces = text.split_once("pieces of scan-0005.jpg").map(|(_, p)| p).unwrap_or_else(|| panic!("no pieces for the notice: {text}"));
    assert!(pieces.contains("RFR/AVIS_IMPOSITION, confidence"), "{pieces}");
    assert!(pieces.contains("AVIS_IMPOSITION ") && pieces.contains("next "), "the evidence: {pieces}");
    assert!(!text.contains("pieces of scan-0006.jpg"), "a blank page is no piece: {text}");
    // How the notice's page would be stored, in the report's words, with its weight.
    assert!(text.lines().any(|l| l.starts_with("  stored as ") && l.contains(" KB (")), "{text}");
}
