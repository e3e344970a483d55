//! What people deposit on the portal, as they send it: phone photos in the formats phones write
//! (HEIC, WebP), a photograph far too large, broken HEIF files, two documents in one photograph.
//! Each deposit goes through the real job for a request of the registry; every page must end in
//! one accounted outcome, a refusal only for a reason the applicant can act on.

use std::path::PathBuf;

use chrono::DateTime;
use image::{GrayImage, ImageFormat, RgbImage};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use scanbureau::process::{MailingJob, classifier_for, execute};
use scanbureau_fixtures::catalogue::{self, Cast, PlanDoc, Subject};
use scanbureau_fixtures::hard::phone_photo;
use scanbureau_fixtures::page::Scan;
use scanbureau_fixtures::people::{Person, guichet, person, registry_json};
use scanbureau_fixtures::write::{heic_bytes, jpeg_bytes, webp_bytes};
use scanbureau_pipeline::NumeroUnique;
use scanbureau_pipeline::config::{DEFAULT_PLAN, SiteConfig};
use scanbureau_pipeline::mailing::Channel;
use scanbureau_pipeline::plan::FilingPlan;
use scanbureau_pipeline::reason::ReasonCode;
use scanbureau_pipeline::registry::Registry;
use scanbureau_pipeline::report::{PageRole, PieceStatus, Report};
use scanbureau_tests::RECEIVED_AT;

/// The applicant of every deposit here.
fn applicant(seed: u64) -> Person {
    let g = guichet(&mut SmallRng::seed_from_u64(seed));
    person(&mut SmallRng::seed_from_u64(seed + 1), &g.departement, &g.numero)
}

/// A one-page document of `code`, the applicant's, drawn at 300 dpi.
fn document(code: &str, who: &Person, rng: &mut SmallRng) -> Scan {
    let doc = PlanDoc::of_type(code, Subject::Demandeur, rng).expect("type in the catalogue");
    let cast = Cast::new(&doc, who, rng);
    catalogue::draw(&doc, 0, &cast, 300.0, 240, rng)
}

/// Deposits `files` (name, bytes) for the applicant's request and runs the job on them.
fn deposit(who: &Person, files: Vec<(&str, Vec<u8>)>) -> Report {
    deposit_keeping_pieces(who, files).0
}

/// As [`deposit`], with the pieces' PDFs the job filed.
fn deposit_keeping_pieces(who: &Person, files: Vec<(&str, Vec<u8>)>) -> (Report, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().expect("tmp");
    let paths: Vec<(usize, PathBuf)> = files
        .into_iter()
        .enumerate()
        .map(|(i, (name, bytes))| {
            let path = dir.path().join(format!("{i}-{name}"));
            std::fs::write(&path, bytes).expect("write");
            (i, path)
        })
        .collect();
    let site = SiteConfig::embedded_default();
    let plan = FilingPlan::from_toml(DEFAULT_PLAN).expect("plan");
    let classifier = classifier_for(&site, &plan).expect("classifier");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("pool");
    let g = guichet(&mut SmallRng::seed_from_u64(1));
    let registry = Registry::from_json(&registry_json(std::slice::from_ref(who), &[g])).expect("registry");
    let job = MailingJob {
        files: &paths,
        channel: Channel::Portal,
        received_at: DateTime::parse_from_rfc3339(RECEIVED_AT).expect("date"),
        numero: Some(NumeroUnique::parse(&who.numero_unique).expect("numero")),
        notify: Some("agent@guichet.example".into()),
        site: &site,
        registry: &registry,
        plan: &plan,
    };
    let out = execute(&job, &classifier, &pool, &|_| {}, &|| {}).expect("the job runs");
    out.report.check_accounting().expect("every page accounted for");
    (out.report, out.pieces.into_iter().map(|p| p.bytes).collect())
}

/// Pieces of the report (type, status, reason).
fn pieces(report: &Report) -> Vec<(Option<String>, PieceStatus, Option<ReasonCode>)> {
    report.requests.iter().flat_map(|r| &r.pieces).map(|p| (p.type_code.clone(), p.status, p.reason)).collect()
}

#[test]
fn phone_photos_in_heic_and_webp_are_read_like_scans() {
    let who = applicant(40);
    let mut rng = SmallRng::seed_from_u64(41);
    let page = document("ATTESTATION_CAF", &who, &mut rng);
    let photo = phone_photo(&page, 2400, 9.0, false, &mut rng);
    for (name, bytes) in [("IMG_0001.HEIC", heic_bytes(&photo, 70).expect("HEIC")), ("photo.webp", webp_bytes(&photo))] {
        let report = deposit(&who, vec![(name, bytes)]);
        let got = pieces(&report);
        assert_eq!(got.len(), 1, "{name}: one piece, got {got:?}");
        assert_eq!(got[0].0.as_deref(), Some("ATTESTATION_CAF"), "{name}: {got:?}");
        assert_eq!(got[0].2, None, "{name}: not refused");
        // The stored page is the straightened photograph, not the phone's frame.
        let reading = report.pages[0].reading.join(" ");
        assert!(reading.contains("document found in the photo"), "{name}: the photo's outline found: {reading}");
    }
}

#[test]
fn a_photo_too_large_is_refused_for_its_size_and_the_rest_of_the_deposit_is_read() {
    let who = applicant(50);
    let mut rng = SmallRng::seed_from_u64(51);
    // 100 Mpx of grey: small as a PNG, far over the 80 Mpx page limit once decoded.
    let mut huge = Vec::new();
    GrayImage::from_pixel(10_000, 10_000, image::Luma([200])).write_to(&mut std::io::Cursor::new(&mut huge), ImageFormat::Png).expect("png");
    let page = document("BULLETIN_SALAIRE", &who, &mut rng);
    let report = deposit(&who, vec![("panorama.png", huge), ("paie.jpg", jpeg_bytes(&page, 85))]);
    assert_eq!(report.pages.len(), 2);
    let big = &report.pages[0];
    assert_eq!(big.role, PageRole::Rejected);
    assert_eq!(big.reason, Some(ReasonCode::FichierTropVolumineux), "{big:?}");
    let got = pieces(&report);
    assert!(got.iter().any(|p| p.0.as_deref() == Some("BULLETIN_SALAIRE") && p.2.is_none()), "the pay slip is still filed: {got:?}");
}

#[test]
fn broken_heif_files_are_a_reason_not_a_panic() {
    let who = applicant(60);
    let mut rng = SmallRng::seed_from_u64(61);
    let page = document("QUITTANCE_LOYER", &who, &mut rng);
    let whole = heic_bytes(&page, 60).expect("HEIC");
    let truncated = whole[..whole.len() / 2].to_vec();
    // A file type box that says HEIC and nothing after it.
    let empty = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    let report = deposit(&who, vec![("cut.heic", truncated), ("empty.heic", empty), ("ok.heic", whole)]);
    assert_eq!(report.pages.len(), 3, "one page each: {:?}", report.pages);
    for p in &report.pages[..2] {
        assert_eq!(p.role, PageRole::Rejected, "{p:?}");
        assert!(matches!(p.reason, Some(ReasonCode::FichierCorrompu | ReasonCode::FormatNonSupporte)), "{p:?}");
    }
    assert_eq!(report.pages[2].role, PageRole::Piece, "the whole file is read: {:?}", report.pages[2]);
}

#[test]
fn two_documents_in_one_photograph_are_never_refused() {
    let who = applicant(70);
    let mut rng = SmallRng::seed_from_u64(71);
    let rgb = |s: Scan| match s {
        Scan::Rgb(c) => c,
        Scan::Gray(g) => image::DynamicImage::ImageLuma8(g).into_rgb8(),
    };
    let left = rgb(document("BULLETIN_SALAIRE", &who, &mut rng));
    let right = rgb(document("QUITTANCE_LOYER", &who, &mut rng));
    // Two sheets side by side on a dark table.
    let (w, h) = left.dimensions();
    let mut table = RgbImage::from_pixel(2 * w + 300, h + 200, image::Rgb([60, 50, 40]));
    image::imageops::overlay(&mut table, &left, 100, 100);
    image::imageops::overlay(&mut table, &right, (w + 200) as i64, 100);
    let photo = phone_photo(&Scan::Rgb(table), 3000, 4.0, false, &mut rng);
    let report = deposit(&who, vec![("deux.jpg", jpeg_bytes(&photo, 85))]);
    let got = pieces(&report);
    assert_eq!(report.pages.len(), 1);
    assert!(!got.is_empty(), "the photograph is a piece");
    // Which of the two it is may be unsure; what it must not be is a refusal.
    assert!(got.iter().all(|p| p.2.is_none()), "{got:?}");
}

#[test]
fn a_file_over_the_portal_s_limit_is_refused_for_its_size() {
    let who = applicant(80);
    let mut rng = SmallRng::seed_from_u64(81);
    let page = document("BULLETIN_SALAIRE", &who, &mut rng);
    // A real PDF padded past the portal's 18 MB: it cannot have come through the portal.
    let mut pdf = scanbureau_fixtures::write::pdf_bytes(std::slice::from_ref(&page), 80, false);
    pdf.extend(std::iter::repeat_n(b'%', 19_000_000));
    let report = deposit(&who, vec![("gros.pdf", pdf), ("paie.jpg", jpeg_bytes(&page, 85))]);
    assert_eq!(report.pages[0].reason, Some(ReasonCode::FichierTropVolumineux), "{:?}", report.pages[0]);
    assert!(report.pages[0].detail.as_deref().is_some_and(|d| d.contains("18000000")), "{:?}", report.pages[0].detail);
    assert!(pieces(&report).iter().any(|p| p.0.as_deref() == Some("BULLETIN_SALAIRE") && p.2.is_none()));
}

#[test]
fn a_mirrored_photo_is_read_put_right_and_filed() {
    let who = applicant(90);
    let mut rng = SmallRng::seed_from_u64(91);
    let page = document("ATTESTATION_CAF", &who, &mut rng);
    let photo = match phone_photo(&page, 2400, 6.0, false, &mut rng) {
        Scan::Rgb(c) => c,
        Scan::Gray(g) => image::DynamicImage::ImageLuma8(g).into_rgb8(),
    };
    // A phone's front camera mirrors left to right; held upside down, the page comes out
    // flipped top to bottom.
    for (how, mirrored) in
        [("mirrored left to right", image::imageops::flip_horizontal(&photo)), ("flipped top to bottom", image::imageops::flip_vertical(&photo))]
    {
        let (report, filed) = deposit_keeping_pieces(&who, vec![("selfie.jpg", jpeg_bytes(&Scan::Rgb(mirrored), 85))]);
        let got = pieces(&report);
        assert_eq!(got.len(), 1, "{how}: one piece, got {got:?}");
        assert_eq!(got[0].0.as_deref(), Some("ATTESTATION_CAF"), "{how}: {got:?} {:?}", report.pages[0].reading);
        assert_eq!(got[0].2, None, "{how}: not refused");
        // Flipped top to bottom, the print's own orientation may turn the page first: it then
        // reads mirrored left to right. Either way it is stored put right.
        let reading = report.pages[0].reading.join(" | ");
        let mirror_read = reading.contains("read mirrored left to right: makes more sense") || reading.contains("read flipped top to bottom: makes more sense");
        assert!(mirror_read && reading.contains("read mirrored (a front camera's photo): put right"), "{how}: {reading}");
        // The piece filed reads as it is: deposited again, it needs no mirror.
        let again = deposit(&who, vec![("piece.pdf", filed.into_iter().next().expect("a piece filed"))]);
        assert_eq!(pieces(&again)[0].0.as_deref(), Some("ATTESTATION_CAF"), "{how}: the filed piece");
        let reread = again.pages[0].reading.join(" | ");
        assert!(!reread.contains("put right") && !reread.contains("read mirrored"), "{how}: the filed piece is the right way round: {reread}");
    }
}
