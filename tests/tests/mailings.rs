//! End to end: generated mailings of every channel and format, with and without faults, through
//! the real `process` job; the report must match the generator's truth and account for every page.

use std::fs;

use scanbureau::process::ChannelArg;
use scanbureau_fixtures::docs::DocKind;
use scanbureau_fixtures::mailing::{Fault, MailingKind, Scanning, generate, random_spec};
use scanbureau_fixtures::write::{eml_bytes, pdf_bytes, tiff_g4_bytes, write_jpeg_folder};
use scanbureau_pipeline::reason::{AnomalyCode, ReasonCode};
use scanbureau_pipeline::report::{PageRole, PieceStatus, Status};
use scanbureau_tests::{args, process, role_mismatches, write_registry};

fn fast() -> Scanning {
    Scanning { dpi: 200.0, ..Scanning::default() }
}

#[test]
fn counter_mailing_duplex_jpeg_folder_matches_the_truth() {
    let dir = tempfile::tempdir().expect("tmp");
    let spec = random_spec(11, MailingKind::Guichet, 3, Scanning { upside_down_rate: 0.2, ..fast() });
    let g = generate(&spec);
    write_jpeg_folder(&dir.path().join("batch"), &g.pages, 75).expect("write");
    let reg = write_registry(dir.path(), &g, &spec.guichet);
    let report = process(&args(vec![dir.path().join("batch")], &dir.path().join("out"), Some(reg), ChannelArg::Paper));
    assert_eq!(role_mismatches(&report, &g.truth), vec![]);
    assert_eq!(report.batch.duplex, vec![true]);
    assert_eq!(report.requests.len(), 3);
    assert_eq!(report.batch.sender.id.as_deref(), Some(spec.guichet.numero.as_str()));
    assert_eq!(report.batch.due_at, "2026-11-20T23:59:59+01:00");
    // Recto and verso of a two-sided piece stay together.
    for (rt, rr) in g.truth.requests.iter().zip(&report.requests) {
        assert_eq!(rr.numero_unique.as_deref(), Some(rt.numero_unique.as_str()));
        let cut: Vec<Vec<usize>> = rr.pieces.iter().map(|p| p.pages.clone()).collect();
        let truth: Vec<Vec<usize>> = rt.docs.iter().map(|d| d.pages.clone()).collect();
        assert_eq!(cut, truth, "pieces of {}", rt.numero_unique);
        assert!(rr.notice.is_some());
    }
    // No anomaly on a well-formed mailing.
    assert!(report.batch.anomalies.is_empty(), "{:?}", report.batch.anomalies);
    // Upside-down sheets of text are turned back; nothing upright is ever turned. (An identity
    // card or a near-empty page gives too little text to tell: it stays as scanned.)
    for t in g.truth.pages.iter().filter(|t| t.role == "piece") {
        let kind = g.truth.requests[t.request.expect("request")].docs[t.doc.expect("doc")].kind;
        let tellable = !matches!(kind, DocKind::Cni | DocKind::CniRectoVerso | DocKind::CourteMention);
        if !t.upside_down || tellable {
            assert_eq!(report.pages[t.index].rotated, t.upside_down, "page {} ({kind:?}) rotation", t.index);
        }
    }
}

#[test]
fn applicant_mailing_as_bitonal_g4_tiff() {
    let dir = tempfile::tempdir().expect("tmp");
    let spec = random_spec(12, MailingKind::Demandeur, 1, Scanning { duplex: false, upside_down_rate: 0.0, ..Scanning::default() });
    let g = generate(&spec);
    let tif = dir.path().join("pli.tif");
    fs::write(&tif, tiff_g4_bytes(&g.pages, 300)).expect("write");
    let reg = write_registry(dir.path(), &g, &spec.guichet);
    let report = process(&args(vec![tif], &dir.path().join("out"), Some(reg), ChannelArg::Paper));
    assert_eq!(role_mismatches(&report, &g.truth), vec![]);
    assert_eq!(report.slips[0].kind, "attestation");
    assert_eq!(report.batch.sender.kind, scanbureau_pipeline::report::SenderKind::Demandeur);
    assert_ne!(report.batch.status, Status::Rejected);
}

#[test]
fn portal_multi_request_pdf_and_single_request_deposit() {
    let dir = tempfile::tempdir().expect("tmp");
    let spec = random_spec(13, MailingKind::Portal, 2, Scanning { duplex: false, ..fast() });
    let g = generate(&spec);
    let pdf = dir.path().join("depot.pdf");
    fs::write(&pdf, pdf_bytes(&g.pages, 70, false)).expect("write");
    let reg = write_registry(dir.path(), &g, &spec.guichet);
    let mut a = args(vec![pdf.clone()], &dir.path().join("out"), Some(reg.clone()), ChannelArg::Portal);
    a.notify = Some("agent@guichet.example".into());
    let report = process(&a);
    assert_eq!(role_mismatches(&report, &g.truth), vec![]);
    assert_eq!(report.requests.len(), 2);
    let notice = fs::read_to_string(dir.path().join("out").join(report.requests[0].notice.as_ref().expect("notice"))).expect("eml");
    assert!(notice.contains("agent@guichet.example"), "portal notices go to the uploading user");

    // The same pieces without their fiche, the number given with the upload.
    let pieces_only: Vec<_> = g.truth.pages.iter().filter(|t| t.request == Some(0) && t.role == "piece").map(|t| g.pages[t.index].clone()).collect();
    let pdf1 = dir.path().join("one.pdf");
    fs::write(&pdf1, pdf_bytes(&pieces_only, 70, true)).expect("write");
    let mut a = args(vec![pdf1], &dir.path().join("out1"), Some(reg), ChannelArg::Portal);
    a.numero_unique = Some(g.truth.requests[0].numero_unique.to_lowercase());
    let report = process(&a);
    assert_eq!(report.requests.len(), 1);
    assert_eq!(report.requests[0].numero_unique.as_deref(), Some(g.truth.requests[0].numero_unique.as_str()));
    assert!(report.pages.iter().all(|p| p.role == PageRole::Piece));
}

#[test]
fn secure_mail_from_a_known_counter() {
    let dir = tempfile::tempdir().expect("tmp");
    let spec = random_spec(14, MailingKind::Portal, 1, Scanning { duplex: false, ..fast() });
    let g = generate(&spec);
    let eml = eml_bytes(&spec.guichet.email_referent, "PJ", &[("application/pdf", "a.pdf", pdf_bytes(&g.pages, 70, false))]);
    let path = dir.path().join("m.eml");
    fs::write(&path, eml).expect("write");
    let reg = write_registry(dir.path(), &g, &spec.guichet);
    let report = process(&args(vec![path], &dir.path().join("out"), Some(reg), ChannelArg::Mail));
    assert_eq!(role_mismatches(&report, &g.truth), vec![]);
    assert_eq!(report.batch.sender.id.as_deref(), Some(spec.guichet.numero.as_str()));
    assert!(report.pages[0].source.starts_with("m.eml/a.pdf"));
}

#[test]
fn paper_mailing_without_bordereau_is_refused_page_by_page() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut spec = random_spec(15, MailingKind::Guichet, 2, fast());
    spec.without_bordereau = true;
    let g = generate(&spec);
    write_jpeg_folder(&dir.path().join("b"), &g.pages, 75).expect("write");
    let reg = write_registry(dir.path(), &g, &spec.guichet);
    let report = process(&args(vec![dir.path().join("b")], &dir.path().join("out"), Some(reg), ChannelArg::Paper));
    assert_eq!(report.batch.status, Status::Rejected);
    assert_eq!(report.batch.reason, Some(ReasonCode::PliSansBordereau));
    for (t, p) in g.truth.pages.iter().zip(&report.pages) {
        if t.role == "blank" {
            assert_eq!(p.role, PageRole::Blank);
        } else {
            assert_eq!((p.role, p.reason), (PageRole::Rejected, Some(ReasonCode::PliSansBordereau)), "page {}", p.index);
        }
    }
    assert!(report.batch.notice.is_some(), "the counter is told");
    assert!(report.requests.iter().all(|r| r.pieces.is_empty()));
}

/// A counter mailing of one request per fault, each with a pay slip and a rent receipt, through
/// the job.
fn counter_mailing_with_faults(seed: u64, faults: &[Fault]) -> scanbureau_pipeline::report::Report {
    let dir = tempfile::tempdir().expect("tmp");
    let mut spec = random_spec(seed, MailingKind::Guichet, faults.len(), Scanning { duplex: false, ..fast() });
    for (r, f) in spec.requests.iter_mut().zip(faults) {
        r.fault = *f;
        r.docs = vec![DocKind::BulletinSalaire, DocKind::QuittanceLoyer];
    }
    let g = generate(&spec);
    write_jpeg_folder(&dir.path().join("b"), &g.pages, 75).expect("write");
    let reg = write_registry(dir.path(), &g, &spec.guichet);
    process(&args(vec![dir.path().join("b")], &dir.path().join("out"), Some(reg), ChannelArg::Paper))
}

#[test]
fn each_request_fault_gets_its_reason_and_the_rest_goes_through() {
    let faults = [Fault::None, Fault::InvalidPayload, Fault::WrongIdentity, Fault::UnknownNumero, Fault::Radiee, Fault::MissingFiche, Fault::CountsOff];
    let report = counter_mailing_with_faults(16, &faults);
    assert_eq!(report.batch.status, Status::Partial);
    // The pieces without fiche follow the previous request (struck off, so refused with it).
    let reasons: Vec<Option<ReasonCode>> = report.requests.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        vec![
            None,
            Some(ReasonCode::FicheIllisible),
            Some(ReasonCode::IncoherenceIdentite),
            Some(ReasonCode::NumeroInconnu),
            Some(ReasonCode::DemandeRadiee),
            None
        ]
    );
    // The sound request's payslip and rent receipt are classified and filed.
    let filed: Vec<(Option<&str>, PieceStatus)> = report.requests[0].pieces.iter().map(|p| (p.type_code.as_deref(), p.status)).collect();
    assert_eq!(filed, vec![(Some("BULLETIN_SALAIRE"), PieceStatus::Uploaded), (Some("QUITTANCE_LOYER"), PieceStatus::Uploaded)]);
    assert!(report.requests[0].pieces.iter().all(|p| p.file.is_some()));
    let codes: Vec<AnomalyCode> = report.batch.anomalies.iter().map(|a| a.code).collect();
    assert!(codes.contains(&AnomalyCode::SlipInvalide), "{codes:?}");
    assert!(codes.contains(&AnomalyCode::NbPagesIncoherent), "{codes:?}");
    // The struck-off request that took the orphan pages, and the one whose fiche miscounts.
    assert_eq!(codes.iter().filter(|c| **c == AnomalyCode::NbPagesIncoherent).count(), 2, "{codes:?}");
    // Rejected requests' pages are rejected with the request's reason; every request has a notice.
    for (r, reason) in report.requests.iter().zip(&reasons) {
        if let Some(reason) = reason {
            let first = r.slip_page.expect("slip") + 1;
            assert_eq!(report.pages[first].reason, Some(*reason));
        }
        assert!(r.notice.is_some());
    }
}

#[test]
fn a_bad_file_in_a_batch_is_accounted_and_does_not_stop_the_rest() {
    let dir = tempfile::tempdir().expect("tmp");
    let spec = random_spec(17, MailingKind::Guichet, 1, Scanning { duplex: false, ..fast() });
    let g = generate(&spec);
    let batch = dir.path().join("b");
    write_jpeg_folder(&batch, &g.pages, 75).expect("write");
    // Damaged and unsupported files land in the middle of the batch.
    fs::write(batch.join("scan-0002a.jpg"), b"\xff\xd8\xff\xe0 truncated").expect("write");
    fs::write(batch.join("scan-0002b.pdf"), b"%PDF-1.4\n1 0 obj << /Type /Catalog").expect("write");
    fs::write(batch.join("scan-0002c.txt"), b"notes de l'operateur").expect("write");
    let mut encrypted = pdf_bytes(&g.pages[..1], 70, false);
    let at = encrypted.windows(7).rposition(|w| w == b"/Root 1").expect("trailer");
    encrypted.splice(
        at..at,
        b"/Encrypt << /Filter /Standard /V 1 /R 2 /O (0123456789abcdef0123456789abcdef) /U (0123456789abcdef0123456789abcdef) /P -4 >> ".iter().copied(),
    );
    fs::write(batch.join("scan-0002d.pdf"), encrypted).expect("write");
    fs::write(batch.join("scan-0002e.jpg"), b"").expect("write");
    let reg = write_registry(dir.path(), &g, &spec.guichet);
    let report = process(&args(vec![batch], &dir.path().join("out"), Some(reg), ChannelArg::Paper));
    let by_source = |s: &str| report.pages.iter().find(|p| p.source == s).unwrap_or_else(|| panic!("{s} not in report"));
    assert_eq!(by_source("scan-0002a.jpg").reason, Some(ReasonCode::FichierCorrompu));
    assert_eq!(by_source("scan-0002b.pdf").reason, Some(ReasonCode::FichierCorrompu));
    assert_eq!(by_source("scan-0002c.txt").reason, Some(ReasonCode::FormatNonSupporte));
    assert_eq!(by_source("scan-0002d.pdf").reason, Some(ReasonCode::FormatNonSupporte));
    assert_eq!(by_source("scan-0002e.jpg").reason, Some(ReasonCode::FichierCorrompu));
    assert_eq!(report.pages.len(), g.pages.len() + 5);
    let pieces: usize = report.requests.iter().map(|r| r.pieces.len()).sum();
    assert_eq!(pieces, g.truth.requests[0].docs.len(), "the good pages still make their pieces");
    assert_eq!(report.batch.status, Status::Partial);
}

#[test]
fn the_bundled_samples_match_their_truth() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scans-samples");
    let reg = root.join("registry.json");
    for (input, truth, channel) in [
        ("counter-mailing", "counter-mailing", ChannelArg::Paper),
        ("applicant-mailing.tif", "applicant-mailing", ChannelArg::Paper),
        ("portal-deposit.pdf", "portal-deposit", ChannelArg::Portal),
        ("mail-deposit.eml", "mail-deposit", ChannelArg::Mail),
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        let report = process(&args(vec![root.join(input)], dir.path(), Some(reg.clone()), channel));
        let truth: serde_json::Value = serde_json::from_slice(&fs::read(root.join("truth").join(format!("{truth}.json"))).expect("truth")).expect("json");
        for t in truth["pages"].as_array().expect("pages") {
            let i = t["index"].as_u64().expect("index") as usize;
            let want = t["role"].as_str().expect("role");
            let got = report.pages[i].role;
            let rejected_request = report.pages[i].reason == Some(ReasonCode::NumeroInconnu);
            let doc = t["request"].as_u64().zip(t["doc"].as_u64()).map(|(r, d)| &truth["requests"][r as usize]["docs"][d as usize]);
            let refused = doc.and_then(|d| d["rejection"].as_str());
            let ok = match want {
                "slip" => got == PageRole::Slip,
                "blank" => got == PageRole::Blank,
                _ if refused.is_some() => got == PageRole::Rejected && report.pages[i].reason.map(|r| r.code()) == refused,
                _ => got == PageRole::Piece || rejected_request,
            };
            assert!(ok, "{input} page {i}: truth {want} {refused:?}, report {got:?} {:?}", report.pages[i].reason);
            if t["upside_down"].as_bool() == Some(true) {
                assert!(report.pages[i].rotated, "{input} page {i} should have been turned");
            }
        }
        // Every document of a known request is one piece, filed under its category and type
        // (the page with one short line is for an operator to judge).
        for (rt, rr) in truth["requests"].as_array().expect("requests").iter().zip(&report.requests) {
            if rr.reason.is_some() {
                continue;
            }
            for d in rt["docs"].as_array().expect("docs") {
                let pages: Vec<usize> = d["pages"].as_array().expect("pages").iter().filter_map(|v| v.as_u64()).map(|v| v as usize).collect();
                let piece = rr.pieces.iter().find(|p| p.pages.contains(&pages[0])).expect("a piece for every document");
                assert_eq!(piece.pages, pages, "{input}: document {d}");
                if d["kind"] == "CourteMention" {
                    assert_eq!(piece.status, PieceStatus::Review, "{input}: {piece:?}");
                } else if let Some(code) = d["rejection"].as_str() {
                    assert_eq!(piece.reason.map(|r| r.code()), Some(code), "{input}: {piece:?}");
                } else {
                    let got = (piece.categorie.as_deref(), piece.type_code.as_deref(), piece.status);
                    assert_eq!(got, (d["categorie"].as_str(), d["type_code"].as_str(), PieceStatus::Uploaded), "{input}: {:?}", piece.evidence);
                }
            }
        }
    }
}

#[test]
fn born_digital_portal_pdf_is_rendered_and_its_fiche_read() {
    use scanbureau_fixtures::write::{BornDigitalPage, born_digital_pdf};
    let dir = tempfile::tempdir().expect("tmp");
    let spec = random_spec(18, MailingKind::Portal, 1, fast());
    let p = &spec.requests[0].person;
    let payload = format!("SNE-FR|1|{}|{}|{}|{}|2|3|2026-11-16", p.numero_unique, p.nom, p.prenoms, p.date_naissance);
    let pages = vec![
        BornDigitalPage { lines: vec!["FICHE RÉCAPITULATIVE".into(), format!("Numéro unique : {}", p.numero_unique)], qr: Some(payload), hidden: None },
        BornDigitalPage {
            lines: vec![
                "ATTESTATION EMPLOYEUR".into(),
                "Je soussigné, directeur des ressources humaines, atteste que".into(),
                format!("{} {} est employé(e) depuis le 1er mars 2021.", p.prenoms, p.nom),
            ],
            qr: None,
            hidden: None,
        },
        BornDigitalPage {
            lines: vec!["QUITTANCE DE LOYER".into(), "Reçu la somme de 612,40 € pour le loyer de novembre 2026.".into()],
            qr: None,
            hidden: None,
        },
    ];
    let pdf = dir.path().join("export.pdf");
    fs::write(&pdf, born_digital_pdf(&pages)).expect("write");
    let g = generate(&spec);
    let reg = write_registry(dir.path(), &g, &spec.guichet);
    let report = process(&args(vec![pdf], &dir.path().join("out"), Some(reg), ChannelArg::Portal));
    let roles: Vec<PageRole> = report.pages.iter().map(|p| p.role).collect();
    assert_eq!(roles, vec![PageRole::Slip, PageRole::Piece, PageRole::Piece]);
    assert_eq!(report.requests[0].numero_unique.as_deref(), Some(p.numero_unique.as_str()));
    let types: Vec<Option<&str>> = report.requests[0].pieces.iter().map(|p| p.type_code.as_deref()).collect();
    assert_eq!(types, vec![Some("ATTESTATION_EMPLOYEUR"), Some("QUITTANCE_LOYER")]);
    assert!(report.batch.anomalies.is_empty(), "{:?}", report.batch.anomalies);
    // Their pages are kept as they were sent, text and fonts, lighter than any raster: a
    // piece's reader selects and searches their exact text.
    for piece in &report.requests[0].pieces {
        assert!(piece.bytes.expect("filed") < 30_000, "{piece:?}");
        let page = report.pages.iter().find(|p| p.index == piece.pages[0]).expect("its page");
        let detail = page.detail.as_deref().unwrap_or("");
        assert!(detail.starts_with("stored as the PDF page as sent"), "{detail}");
        let bytes = fs::read(dir.path().join("out").join(piece.file.as_deref().expect("file"))).expect("piece");
        let text = scanbureau_pipeline::pdftext::page_text(&std::sync::Arc::new(bytes), 0).expect("a text layer");
        let title = if piece.type_code.as_deref() == Some("QUITTANCE_LOYER") { "QUITTANCE DE LOYER" } else { "ATTESTATION EMPLOYEUR" };
        assert!(text.lines.iter().any(|l| l.text == title), "{text:?}");
    }
}

#[test]
fn portal_pages_without_fiche_or_number_are_refused_and_the_user_told() {
    let dir = tempfile::tempdir().expect("tmp");
    let spec = random_spec(19, MailingKind::Portal, 1, Scanning { duplex: false, ..fast() });
    let g = generate(&spec);
    let pieces: Vec<_> = g.truth.pages.iter().filter(|t| t.role == "piece").map(|t| g.pages[t.index].clone()).collect();
    let pdf = dir.path().join("depot.pdf");
    fs::write(&pdf, pdf_bytes(&pieces, 70, true)).expect("write");
    let mut a = args(vec![pdf], &dir.path().join("out"), Some("sample".into()), ChannelArg::Portal);
    a.notify = Some("agent@guichet.example".into());
    let report = process(&a);
    assert_eq!(report.batch.status, Status::Rejected);
    assert_eq!(report.batch.reason, Some(ReasonCode::DemandeSansFiche));
    assert!(report.pages.iter().all(|p| p.reason == Some(ReasonCode::DemandeSansFiche)));
    let notice = fs::read_to_string(dir.path().join("out").join(report.batch.notice.as_ref().expect("notice"))).expect("eml");
    assert!(notice.contains("agent@guichet.example"));
}

#[test]
fn pieces_beyond_what_a_fiche_announces_are_held_not_filed_in_that_request() {
    // The second fiche is missing (as when its code cannot be read): its applicant's pages
    // follow the first request, which then holds more pages than its fiche announces.
    let report = counter_mailing_with_faults(23, &[Fault::None, Fault::MissingFiche, Fault::None]);
    assert_eq!(report.requests.len(), 2, "two fiches read");
    let first = &report.requests[0];
    assert_eq!(first.pieces.len(), 4, "its own two documents and the next applicant's two");
    for p in &first.pieces {
        assert_eq!(p.status, PieceStatus::Review, "nothing filed on a guess: {:?}", p.evidence);
        assert!(p.evidence.iter().any(|e| e.contains("held for an operator")), "{:?}", p.evidence);
    }
    // Pieces in review do not make a request partial (report-contract.md).
    assert_eq!(first.status, Status::Accepted);
    // The third request, whose fiche was read, is filed as usual.
    assert!(report.requests[1].pieces.iter().all(|p| p.status == PieceStatus::Uploaded), "{:?}", report.requests[1].pieces);
}

#[test]
fn a_fiche_whose_code_is_washed_out_still_ends_the_request_before_it() {
    // The second fiche's QR code cannot be read; its printed title says it is a fiche. Its
    // applicant's pages must not join the first request: they open a request of their own,
    // refused as unreadable (the counter is told to send it again), and nothing is held.
    let report = counter_mailing_with_faults(29, &[Fault::None, Fault::WashedOutCode, Fault::None]);
    let reasons: Vec<Option<ReasonCode>> = report.requests.iter().map(|r| r.reason).collect();
    assert_eq!(reasons, vec![None, Some(ReasonCode::FicheIllisible), None]);
    let first: Vec<(Option<&str>, PieceStatus)> = report.requests[0].pieces.iter().map(|p| (p.type_code.as_deref(), p.status)).collect();
    assert_eq!(first, vec![(Some("BULLETIN_SALAIRE"), PieceStatus::Uploaded), (Some("QUITTANCE_LOYER"), PieceStatus::Uploaded)]);
    let slip = report.requests[1].slip_page.expect("the washed-out fiche is the request's slip");
    assert_eq!(report.pages[slip].role, PageRole::Slip);
    let codes: Vec<AnomalyCode> = report.batch.anomalies.iter().map(|a| a.code).collect();
    assert!(codes.contains(&AnomalyCode::SlipInvalide), "{codes:?}");
}

/// No piece is filed (or held) in a request that is not its applicant's: every page of every
/// piece of a request numbered X comes from the applicant numbered X.
fn no_piece_in_another_applicants_request(report: &scanbureau_pipeline::report::Report, truth: &scanbureau_fixtures::mailing::Truth) {
    for r in &report.requests {
        for piece in r.pieces.iter().filter(|p| p.status != PieceStatus::Rejected) {
            for &page in &piece.pages {
                let owner = truth.pages[page].request.map(|i| truth.requests[i].numero_unique.as_str());
                assert_eq!(owner, r.numero_unique.as_deref(), "page {page} of piece {} is in request {:?}", piece.id, r.numero_unique);
            }
        }
    }
}

#[test]
fn a_bordereau_whose_code_is_washed_out_files_nothing_on_a_guess() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut spec = random_spec(31, MailingKind::Guichet, 2, Scanning { duplex: false, ..fast() });
    spec.washed_out_bordereau = true;
    let g = generate(&spec);
    write_jpeg_folder(&dir.path().join("b"), &g.pages, 75).expect("write");
    let reg = write_registry(dir.path(), &g, &spec.guichet);
    let report = process(&args(vec![dir.path().join("b")], &dir.path().join("out"), Some(reg), ChannelArg::Paper));
    no_piece_in_another_applicants_request(&report, &g.truth);
    // The counter is told either way: the mailing is refused or its requests go through.
    assert!(report.batch.notice.is_some() || report.requests.iter().all(|r| r.notice.is_some()), "someone is told");
}

#[test]
fn an_attestation_whose_code_is_washed_out_files_nothing_on_a_guess() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut spec = random_spec(32, MailingKind::Demandeur, 1, Scanning { duplex: false, upside_down_rate: 0.0, ..fast() });
    spec.requests[0].fault = Fault::WashedOutCode;
    let g = generate(&spec);
    write_jpeg_folder(&dir.path().join("b"), &g.pages, 75).expect("write");
    let reg = write_registry(dir.path(), &g, &spec.guichet);
    let report = process(&args(vec![dir.path().join("b")], &dir.path().join("out"), Some(reg), ChannelArg::Paper));
    no_piece_in_another_applicants_request(&report, &g.truth);
    let filed = report.requests.iter().flat_map(|r| &r.pieces).filter(|p| p.status == PieceStatus::Uploaded).count();
    assert_eq!(filed, 0, "nothing filed without a read attestation: {:?}", report.requests);
}

/// The separator sheet an operator put before an original, drawn as the printed one reads.
fn separator_sheet(dpi: f32) -> scanbureau_fixtures::page::Scan {
    let mut c = scanbureau_fixtures::page::Canvas::new(dpi, 245, false);
    c.text(17.0, 25.0, 18.0, "INTERCALAIRE : ORIGINAL", true, [0, 0, 0]);
    c.text(17.0, 90.0, 40.0, "ORIGINAL", true, [0, 0, 0]);
    c.qr(151.0, 17.0, 42.0, scanbureau_pipeline::originals::SEPARATOR_PAYLOAD.as_bytes(), 0);
    c.finish()
}

#[test]
fn an_original_marked_by_the_separator_sheet_is_filed_stamped_and_the_sheet_counts_for_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let spec = random_spec(23, MailingKind::Guichet, 1, Scanning { duplex: false, upside_down_rate: 0.0, ..fast() });
    let mut g = generate(&spec);
    let docs = &g.truth.requests[0].docs;
    assert!(docs.len() >= 2, "the test needs two documents");
    let original_first = docs[1].pages[0];
    g.pages.insert(original_first, separator_sheet(200.0));
    write_jpeg_folder(&dir.path().join("batch"), &g.pages, 75).expect("write");
    let reg = write_registry(dir.path(), &g, &spec.guichet);
    let report = process(&args(vec![dir.path().join("batch")], &dir.path().join("out"), Some(reg), ChannelArg::Paper));
    // The sheet is the bureau's, not a page of the mailing: no count is off.
    assert!(report.batch.anomalies.is_empty(), "{:?}", report.batch.anomalies);
    assert_eq!(report.pages[original_first].role, PageRole::Slip);
    let pieces = &report.requests[0].pieces;
    let marked: Vec<_> = pieces.iter().filter(|p| p.original).collect();
    assert_eq!(marked.len(), 1, "{pieces:#?}");
    assert_eq!(marked[0].pages.first(), Some(&(original_first + 1)), "the document after the sheet");
    assert!(marked[0].evidence.iter().any(|e| e.contains("separator sheet")), "{:?}", marked[0].evidence);
    let pdf = fs::read(dir.path().join("out").join(marked[0].file.as_deref().expect("filed"))).expect("piece PDF");
    let doc = lopdf::Document::load_mem(&pdf).expect("valid PDF");
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    assert!(doc.extract_text(&pages).expect("text").contains("COPIE"), "stamped");
    let notice = fs::read(dir.path().join("out").join(report.requests[0].notice.as_deref().expect("notice"))).expect("notice");
    let body = mail_parser::MessageParser::default().parse(&notice).and_then(|m| m.body_text(0).map(|t| t.to_string())).unwrap_or_default();
    assert!(body.contains("il vous sera restitué par le GIP SNE"), "{body}");
}
