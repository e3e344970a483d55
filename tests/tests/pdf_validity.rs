//! The light PDFs must open in the readers the registry and the counters use: poppler (pdfinfo,
//! pdftoppm) and pdfium (through pypdfium2). Both are installed by scripts/setup.sh.

use std::path::{Path, PathBuf};
use std::process::Command;

use scanbureau::process::ChannelArg;
use scanbureau_tests::{args, process};

fn tool_missing(what: &str) -> bool {
    // On CI the set-up script installs the readers: a missing one is a failure there.
    assert!(std::env::var("CI").is_err(), "{what} is missing on CI: scripts/setup.sh should have installed it");
    eprintln!("skipping: {what} not installed (run scripts/setup.sh)");
    true
}

fn pieces_of_all_samples(out: &Path) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scans-samples");
    let mut files = Vec::new();
    for (input, channel) in [
        ("counter-mailing", ChannelArg::Paper),
        ("applicant-mailing.tif", ChannelArg::Paper),
        ("portal-deposit.pdf", ChannelArg::Portal),
        ("mail-deposit.eml", ChannelArg::Mail),
    ] {
        let dir = out.join(input);
        let report = process(&args(vec![root.join(input)], &dir, Some(root.join("registry.json")), channel));
        files.extend(report.requests.iter().flat_map(|r| &r.pieces).filter_map(|p| p.file.as_ref()).map(|f| dir.join(f)));
    }
    assert!(files.len() >= 10, "the samples give at least ten pieces, got {}", files.len());
    files
}

#[test]
fn pieces_open_in_poppler_and_pdfium_at_a4() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pieces = pieces_of_all_samples(tmp.path());
    if Command::new("pdfinfo").arg("-v").output().is_err() {
        tool_missing("poppler-utils");
    } else {
        for p in &pieces {
            let info = Command::new("pdfinfo").arg(p).output().expect("pdfinfo runs");
            let stderr = String::from_utf8_lossy(&info.stderr);
            assert!(info.status.success() && stderr.trim().is_empty(), "poppler: {}: {stderr}", p.display());
            let text = String::from_utf8_lossy(&info.stdout);
            assert!(text.contains("595.28 x 841.89 pts (A4)"), "{} is not A4: {text}", p.display());
            let render = Command::new("pdftoppm").args(["-r", "20", "-gray"]).arg(p).arg(tmp.path().join("r")).output().expect("pdftoppm runs");
            assert!(render.status.success() && render.stderr.is_empty(), "pdftoppm: {}: {}", p.display(), String::from_utf8_lossy(&render.stderr));
        }
    }
    let check = r#"
import sys, pypdfium2 as pdfium
for path in sys.argv[1:]:
    pdf = pdfium.PdfDocument(path)
    for i in range(len(pdf)):
        page = pdf[i]
        w, h = page.get_size()
        assert abs(w - 595.28) < 1 and abs(h - 841.89) < 1, (path, w, h)
        bitmap = page.render(scale=0.25, grayscale=True)
        assert bitmap.width > 100 and bitmap.height > 100, path
        assert min(bytes(bitmap.buffer)) < 200, ("page renders empty", path, i)
print("ok", len(sys.argv) - 1)
"#;
    match Command::new("python3").arg("-c").arg("import pypdfium2").output() {
        Ok(o) if o.status.success() => {
            let out = Command::new("python3").arg("-c").arg(check).args(&pieces).output().expect("python runs");
            assert!(out.status.success(), "pdfium: {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("ok {}", pieces.len()));
        }
        _ => {
            tool_missing("pypdfium2");
        }
    }
}
