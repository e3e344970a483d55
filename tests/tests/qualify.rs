//! The classifier through the real job: every type of the filing plan recognised from its scan,
//! identity documents filed under the right person, someone else's identity card refused on
//! proof and a letter to someone else sent to an operator, and the plan's rules (maxima, review
//! threshold) applied to what the classifier decided.

use std::fs;

use scanbureau::process::ChannelArg;
use scanbureau_fixtures::catalogue::{self, PlanDoc, Subject};
use scanbureau_fixtures::docs::DocKind;
use scanbureau_fixtures::mailing::{MailingKind, Scanning, generate, random_spec};
use scanbureau_fixtures::write::write_jpeg_folder;
use scanbureau_pipeline::reason::ReasonCode;
use scanbureau_pipeline::report::{PieceStatus, Report};
use scanbureau_tests::{args, process, write_registry};

fn scanning() -> Scanning {
    Scanning { dpi: 200.0, duplex: false, upside_down_rate: 0.0, ..Scanning::default() }
}

/// One portal request carrying `docs`, through the job; with `edit` applied to the registry's
/// record of the applicant and `config` as the site configuration.
fn run_request(
    seed: u64,
    docs: impl Fn(&scanbureau_fixtures::people::Person, &mut rand::rngs::SmallRng) -> Vec<DocKind>,
    held: &[(&str, u32)],
    config: Option<&str>,
) -> (Report, scanbureau_fixtures::Truth) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut spec = random_spec(seed, MailingKind::Portal, 1, scanning());
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(seed);
    let p = &mut spec.requests[0].person;
    if p.conjoint.is_none() {
        p.conjoint = Some(scanbureau_fixtures::people::stranger(&mut rng, p));
    }
    if p.personnes_a_charge.is_empty() {
        let mut child = scanbureau_fixtures::people::stranger(&mut rng, p);
        child.nom = p.nom.clone();
        p.personnes_a_charge.push(child);
    }
    for (cat, n) in held {
        p.pieces.insert((*cat).to_string(), *n);
    }
    spec.requests[0].docs = docs(&spec.requests[0].person, &mut rng);
    let g = generate(&spec);
    write_jpeg_folder(&dir.path().join("depot"), &g.pages, 75).expect("write");
    let reg = write_registry(dir.path(), &g, &spec.guichet);
    let mut a = args(vec![dir.path().join("depot")], &dir.path().join("out"), Some(reg), ChannelArg::Portal);
    a.notify = Some("agent@guichet.example".into());
    if let Some(c) = config {
        let path = dir.path().join("site.toml");
        fs::write(&path, c).expect("write config");
        a.config = Some(path);
    }
    (process(&a), g.truth)
}

fn plan(code: &str, subject: Subject, rng: &mut rand::rngs::SmallRng) -> DocKind {
    DocKind::Plan(PlanDoc::of_type(code, subject, rng).expect("type in the catalogue"))
}

#[test]
fn every_type_of_the_plan_is_recognised_from_its_scan() {
    // One request per four types, each document scanned at 200 dpi and read back by the job.
    let codes: Vec<(&str, Subject)> = catalogue::entries()
        .iter()
        .filter(|e| e.categorie != "HORS_PLAN")
        .flat_map(|e| {
            let subjects = if e.subjects.is_empty() { vec![Subject::Demandeur] } else { e.subjects.clone() };
            subjects.into_iter().map(move |s| (e.type_code.as_str(), s))
        })
        .collect();
    let mut failures = Vec::new();
    for (k, chunk) in codes.chunks(4).enumerate() {
        let (report, truth) = run_request(500 + k as u64, |_, rng| chunk.iter().map(|(c, s)| plan(c, *s, rng)).collect(), &[], None);
        let req = &report.requests[0];
        for (d, (code, subject)) in truth.requests[0].docs.iter().zip(chunk) {
            let piece = req.pieces.iter().find(|p| p.pages.contains(&d.pages[0]));
            let got = piece.map(|p| (p.pages.clone(), p.categorie.as_deref(), p.type_code.as_deref(), p.status));
            let want = (d.pages.clone(), Some(d.categorie), Some(d.type_code), PieceStatus::Uploaded);
            if got.as_ref() != Some(&want) {
                failures.push(format!("{code} ({subject:?}): want {want:?}, got {got:?}; {:?}", piece.map(|p| &p.evidence)));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} documents misread:\n{}", failures.len(), codes.len(), failures.join("\n"));
}

#[test]
fn identity_documents_go_to_whose_they_are_a_stranger_s_card_is_refused_and_a_letter_reviewed() {
    let (report, truth) = run_request(
        601,
        |_, rng| {
            vec![
                plan("CNI", Subject::Conjoint, rng),
                plan("TITRE_SEJOUR", Subject::Enfant, rng),
                plan("PASSEPORT", Subject::Demandeur, rng),
                plan("CNI", Subject::Etranger, rng),
                plan("BULLETIN_SALAIRE", Subject::Etranger, rng),
            ]
        },
        &[],
        None,
    );
    let got: Vec<(Option<&str>, Option<ReasonCode>)> = report.requests[0].pieces.iter().map(|p| (p.categorie.as_deref(), p.reason)).collect();
    let wrong_person = Some(ReasonCode::IncoherenceIdentite);
    assert_eq!(got, vec![(Some("IDC"), None), (Some("IDP"), None), (Some("IDD"), None), (Some("IDD"), wrong_person), (Some("RMS"), None)], "{truth:?}");
    // Someone else's payslip: its address block names the stranger, which is no proof.
    let payslip = &report.requests[0].pieces[4];
    assert_eq!(payslip.status, PieceStatus::Review);
    assert!(payslip.evidence.iter().any(|e| e.contains("not in the household")), "{:?}", payslip.evidence);
    // Someone else's card: refused, and the evidence says what proved it.
    let refused = &report.requests[0].pieces[3];
    assert_eq!(refused.status, PieceStatus::Rejected);
    assert!(refused.evidence.iter().any(|e| e.contains("not in the household") && e.contains("proof")), "{:?}", refused.evidence);
}

#[test]
fn a_full_category_refuses_only_the_excess_piece() {
    // The registry already holds 11 of the 12 monthly-income pieces allowed.
    let (report, _) = run_request(
        602,
        |_, rng| {
            vec![
                plan("BULLETIN_SALAIRE", Subject::Demandeur, rng),
                plan("BULLETIN_SALAIRE", Subject::Demandeur, rng),
                plan("QUITTANCE_LOYER", Subject::Demandeur, rng),
            ]
        },
        &[("RMS", 11)],
        None,
    );
    let got: Vec<(Option<&str>, PieceStatus, Option<ReasonCode>)> =
        report.requests[0].pieces.iter().map(|p| (p.type_code.as_deref(), p.status, p.reason)).collect();
    assert_eq!(
        got,
        vec![
            (Some("BULLETIN_SALAIRE"), PieceStatus::Uploaded, None),
            (Some("BULLETIN_SALAIRE"), PieceStatus::Rejected, Some(ReasonCode::CategoriePleine)),
            (Some("QUITTANCE_LOYER"), PieceStatus::Uploaded, None),
        ]
    );
    assert!(report.requests[0].pieces.iter().all(|p| p.plan_version == "2026.1"));
}

#[test]
fn the_review_threshold_is_the_site_s() {
    let docs = |_: &scanbureau_fixtures::people::Person, rng: &mut rand::rngs::SmallRng| {
        vec![plan("AVIS_IMPOSITION", Subject::Demandeur, rng), plan("ATTESTATION_CAF", Subject::Demandeur, rng)]
    };
    let (report, _) = run_request(603, docs, &[], None);
    assert!(report.requests[0].pieces.iter().all(|p| p.status == PieceStatus::Uploaded && p.confidence >= 0.8), "{:?}", report.requests[0].pieces);
    // A site that wants every piece checked by an operator.
    let strict = scanbureau_pipeline::config::DEFAULT_SITE.replace("review_threshold = 0.80", "review_threshold = 1.0");
    let (report, _) = run_request(603, docs, &[], Some(&strict));
    let pieces = &report.requests[0].pieces;
    assert_eq!(pieces.len(), 2);
    assert!(pieces.iter().all(|p| p.status == PieceStatus::Review && p.type_code.is_some() && p.file.is_some()), "{pieces:?}");
}
