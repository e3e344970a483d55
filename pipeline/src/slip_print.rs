//! Printing a slip: the one-page PDF a counter prints and puts on top of a request's pieces
//! (fiche récapitulative) or of a mailing (bordereau de transmission).
//!
//! The page is vector: text in the standard Helvetica font and the QR code as filled squares,
//! so it prints sharp at any resolution and weighs a few kilobytes. The QR code sits in the
//! top-right corner, where the bureau's reader looks first, and carries the payload of
//! `slips.md` built by [`crate::slip::payload`]; the same facts are printed as text.

use lopdf::content::{Content, Operation};
use lopdf::{Dictionary, Document, Object, Stream, StringFormat};

use crate::slip::{AttestationKind, Slip, payload};

/// A4 in points.
const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
/// Side of the QR code (quiet zone excluded), in points: 42 mm.
const QR_SIDE: f32 = 119.0;
const MARGIN: f32 = 48.0;

#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error("the slip's payload does not fit in a QR code: {0}")]
    Qr(String),
    #[error("writing the PDF: {0}")]
    Pdf(String),
}

impl PrintError {
    /// What the counter is told, in French.
    pub fn en_francais(&self) -> String {
        match self {
            Self::Qr(_) => "Les données de la fiche sont trop longues pour son code QR : raccourcissez le nom ou les prénoms.".into(),
            Self::Pdf(_) => "Le PDF de la fiche n'a pas pu être écrit ; réessayez.".into(),
        }
    }
}

/// The printed slip as PDF bytes.
pub fn slip_pdf(slip: &Slip) -> Result<Vec<u8>, PrintError> {
    let text = payload(slip);
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M).map_err(|e| PrintError::Qr(e.to_string()))?;
    let mut ops = Vec::new();
    qr_squares(&mut ops, &code);
    let (title, subtitle, lines, footer) = wording(slip);
    let mut y = PAGE_H - MARGIN - 20.0;
    text_line(&mut ops, "F2", 18.0, MARGIN, y, title);
    y -= 22.0;
    text_line(&mut ops, "F1", 11.0, MARGIN, y, subtitle);
    y = PAGE_H - MARGIN - QR_SIDE - 60.0;
    for (label, value) in &lines {
        text_line(&mut ops, "F1", 12.0, MARGIN, y, label);
        text_line(&mut ops, "F2", 13.0, MARGIN + 210.0, y, value);
        // A rule under each line, as on a form.
        ops.push(Operation::new("w", vec![0.5.into()]));
        ops.push(Operation::new("m", vec![MARGIN.into(), (y - 7.0).into()]));
        ops.push(Operation::new("l", vec![(PAGE_W - MARGIN).into(), (y - 7.0).into()]));
        ops.push(Operation::new("S", vec![]));
        y -= 34.0;
    }
    y -= 20.0;
    for line in footer {
        text_line(&mut ops, "F1", 10.0, MARGIN, y, line);
        y -= 15.0;
    }
    text_line(&mut ops, "F1", 7.0, MARGIN, MARGIN, &text);
    document(ops)
}

/// The title, subtitle, labelled facts and instructions of a slip, in French.
fn wording(slip: &Slip) -> (&'static str, &'static str, Vec<(&'static str, String)>, &'static [&'static str]) {
    let date = |d: &chrono::NaiveDate| d.format("%d/%m/%Y").to_string();
    match slip {
        Slip::Fiche(f) => (
            "FICHE RÉCAPITULATIVE",
            "Demande de logement social : pièces justificatives",
            vec![
                ("Numéro unique", f.numero.to_string()),
                ("Nom", f.nom.clone()),
                ("Prénoms", f.prenoms.clone()),
                ("Date de naissance", date(&f.date_naissance)),
                ("Nombre de documents", f.nb_documents.to_string()),
                ("Nombre de pages (fiche comprise)", f.nb_pages.to_string()),
                ("Date de remplissage", date(&f.date_remplissage)),
            ],
            &["Placez cette fiche en tête des pièces de la demande, puis les pièces à la suite.", "Ne pliez pas la fiche et ne couvrez pas le code QR."],
        ),
        Slip::Bordereau(b) => (
            "BORDEREAU DE TRANSMISSION",
            "Pli de pièces justificatives envoyé au bureau de numérisation",
            vec![
                ("Guichet", b.guichet.to_string()),
                ("Département", b.departement.to_string()),
                ("Nombre de dossiers", b.nb_dossiers.to_string()),
                ("Nombre total de pages", b.nb_pages_total.to_string()),
                ("Date de transmission", date(&b.date_transmission)),
            ],
            &[
                "Placez ce bordereau en tête du pli, puis chaque fiche récapitulative suivie de ses pièces.",
                "Le nombre de pages compte le bordereau et les fiches ; les versos blancs ne comptent pas.",
            ],
        ),
        Slip::Attestation(a) => (
            "ATTESTATION D'ENREGISTREMENT",
            "Demande de logement social",
            vec![
                ("Numéro unique", a.numero.to_string()),
                (
                    "Nature",
                    match a.kind {
                        AttestationKind::Enregistrement => "Enregistrement".into(),
                        AttestationKind::Renouvellement => "Renouvellement".into(),
                    },
                ),
                ("Date", date(&a.date_attestation)),
            ],
            &["Joignez une copie de cette page en tête des pièces envoyées."],
        ),
    }
}

/// Dark modules as filled squares, with the quiet zone left white, in the top-right corner.
fn qr_squares(ops: &mut Vec<Operation>, code: &qrcode::QrCode) {
    let n = code.width();
    let module = QR_SIDE / n as f32;
    let x0 = PAGE_W - MARGIN - QR_SIDE;
    let top = PAGE_H - MARGIN;
    ops.push(Operation::new("g", vec![0.into()]));
    for (i, c) in code.to_colors().iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let (mx, my) = ((i % n) as f32, (i / n) as f32);
            let x = x0 + mx * module;
            let y = top - (my + 1.0) * module;
            ops.push(Operation::new("re", vec![x.into(), y.into(), module.into(), module.into()]));
        }
    }
    ops.push(Operation::new("f", vec![]));
}

pub(crate) fn text_line(ops: &mut Vec<Operation>, font: &str, size: f32, x: f32, y: f32, text: &str) {
    ops.push(Operation::new("BT", vec![]));
    ops.push(Operation::new("Tf", vec![Object::Name(font.as_bytes().to_vec()), size.into()]));
    ops.push(Operation::new("Td", vec![x.into(), y.into()]));
    ops.push(Operation::new("Tj", vec![Object::String(win_ansi(text), StringFormat::Literal)]));
    ops.push(Operation::new("ET", vec![]));
}

/// The standard fonts' WinAnsi encoding: Latin-1 for French accents, a few typographic signs
/// at their own places, `?` for anything else.
fn win_ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match c {
            '\u{2019}' => 0x92,
            '\u{0153}' => 0x9C,
            '\u{0152}' => 0x8C,
            '\u{20AC}' => 0x80,
            c if (c as u32) < 0x80 || (0xA0..=0xFF).contains(&(c as u32)) => c as u32 as u8,
            _ => b'?',
        })
        .collect()
}

fn document(ops: Vec<Operation>) -> Result<Vec<u8>, PrintError> {
    let mut doc = Document::with_version("1.4");
    let font = |base: &str| {
        Dictionary::from_iter([
            ("Type", Object::Name(b"Font".to_vec())),
            ("Subtype", Object::Name(b"Type1".to_vec())),
            ("BaseFont", Object::Name(base.as_bytes().to_vec())),
            ("Encoding", Object::Name(b"WinAnsiEncoding".to_vec())),
        ])
    };
    let regular = doc.add_object(font("Helvetica"));
    let bold = doc.add_object(font("Helvetica-Bold"));
    let resources = doc.add_object(Dictionary::from_iter([(
        "Font",
        Object::Dictionary(Dictionary::from_iter([("F1", Object::Reference(regular)), ("F2", Object::Reference(bold))])),
    )]));
    let content = Content { operations: ops }.encode().map_err(|e| PrintError::Pdf(e.to_string()))?;
    let contents = doc.add_object(Stream::new(Dictionary::new(), content));
    let pages_id = doc.new_object_id();
    let page = doc.add_object(Dictionary::from_iter([
        ("Type", Object::Name(b"Page".to_vec())),
        ("Parent", Object::Reference(pages_id)),
        ("MediaBox", Object::Array(vec![0.into(), 0.into(), PAGE_W.into(), PAGE_H.into()])),
        ("Resources", Object::Reference(resources)),
        ("Contents", Object::Reference(contents)),
    ]));
    doc.objects.insert(
        pages_id,
        Object::Dictionary(Dictionary::from_iter([
            ("Type", Object::Name(b"Pages".to_vec())),
            ("Kids", Object::Array(vec![Object::Reference(page)])),
            ("Count", Object::Integer(1)),
        ])),
    );
    let catalog = doc.add_object(Dictionary::from_iter([("Type", Object::Name(b"Catalog".to_vec())), ("Pages", Object::Reference(pages_id))]));
    doc.trailer.set("Root", Object::Reference(catalog));
    doc.compress();
    let mut out = Vec::new();
    doc.save_to(&mut out).map_err(|e| PrintError::Pdf(e.to_string()))?;
    Ok(out)
}

/// The bureau's separator sheet: an operator puts it before an original sent by mistake while
/// preparing a batch; the job reads its code like a slip's and files the document after it as
/// an original (see [`crate::originals::SEPARATOR_PAYLOAD`]). Printed once, used again.
pub fn separator_pdf() -> Result<Vec<u8>, PrintError> {
    let payload = crate::originals::SEPARATOR_PAYLOAD;
    let code = qrcode::QrCode::with_error_correction_level(payload.as_bytes(), qrcode::EcLevel::M).map_err(|e| PrintError::Qr(e.to_string()))?;
    let mut ops = Vec::new();
    qr_squares(&mut ops, &code);
    let mut y = PAGE_H - MARGIN - 20.0;
    text_line(&mut ops, "F2", 18.0, MARGIN, y, "INTERCALAIRE : ORIGINAL");
    y -= 22.0;
    text_line(&mut ops, "F1", 11.0, MARGIN, y, "Bureau de numérisation - feuille de séparation");
    y = PAGE_H - MARGIN - QR_SIDE - 80.0;
    text_line(&mut ops, "F2", 40.0, MARGIN, y, "ORIGINAL");
    y -= 50.0;
    for line in [
        "Placez cette feuille juste avant un document original reçu par erreur.",
        "Le document qui la suit est classé comme original : une copie tamponnée « COPIE »",
        "est déposée au dossier et l'original entre au registre, à renvoyer au GIP SNE",
        "dans le mois qui suit sa réception.",
        "",
        "La feuille n'est pas une page du pli : elle n'est pas comptée et peut resservir.",
        "Ne la pliez pas et ne couvrez pas le code.",
    ] {
        text_line(&mut ops, "F1", 12.0, MARGIN, y, line);
        y -= 17.0;
    }
    text_line(&mut ops, "F1", 7.0, MARGIN, MARGIN, payload);
    document(ops)
}

/// One original of a posting back to the GIP SNE, as the return slip lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnedOriginal {
    pub numero_unique: String,
    /// What the document is (the plan's label).
    pub document: String,
    pub received_on: chrono::NaiveDate,
    /// Where it was kept (tray or box).
    pub location: String,
}

/// A posting of originals back to the GIP SNE.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnSlip {
    pub bureau: String,
    pub posted_on: chrono::NaiveDate,
    pub tracking: String,
    pub originals: Vec<ReturnedOriginal>,
}

/// Lines of originals one return slip holds (a posting of more is split by the console).
pub const RETURN_SLIP_LINES: usize = 30;

/// The return slip put in the envelope of originals posted back to the GIP SNE: who sends,
/// when, under which tracking number, and each original with its request.
pub fn return_slip_pdf(slip: &ReturnSlip) -> Result<Vec<u8>, PrintError> {
    if slip.originals.len() > RETURN_SLIP_LINES {
        return Err(PrintError::Pdf(format!("{} originals on one slip, at most {RETURN_SLIP_LINES}", slip.originals.len())));
    }
    let date = |d: &chrono::NaiveDate| d.format("%d/%m/%Y").to_string();
    let mut ops = Vec::new();
    let mut y = PAGE_H - MARGIN - 20.0;
    text_line(&mut ops, "F2", 18.0, MARGIN, y, "BORDEREAU DE RESTITUTION D'ORIGINAUX");
    y -= 22.0;
    text_line(&mut ops, "F1", 11.0, MARGIN, y, "Documents originaux reçus par erreur, renvoyés au GIP SNE pour restitution à leurs titulaires");
    y -= 40.0;
    let count = slip.originals.len().to_string();
    for (label, value) in
        [("Expéditeur", slip.bureau.as_str()), ("Date d'envoi", &date(&slip.posted_on)), ("N° de suivi", &slip.tracking), ("Nombre d'originaux", &count)]
    {
        text_line(&mut ops, "F1", 11.0, MARGIN, y, label);
        text_line(&mut ops, "F2", 11.0, MARGIN + 150.0, y, value);
        y -= 18.0;
    }
    y -= 16.0;
    let columns = [MARGIN, MARGIN + 130.0, MARGIN + 330.0, MARGIN + 410.0];
    for (x, head) in columns.iter().zip(["Numéro unique", "Document", "Reçu le", "Rangé en"]) {
        text_line(&mut ops, "F2", 9.5, *x, y, head);
    }
    for o in &slip.originals {
        ops.push(Operation::new("w", vec![0.5.into()]));
        ops.push(Operation::new("m", vec![MARGIN.into(), (y - 5.0).into()]));
        ops.push(Operation::new("l", vec![(PAGE_W - MARGIN).into(), (y - 5.0).into()]));
        ops.push(Operation::new("S", vec![]));
        y -= 18.0;
        let document: String = o.document.chars().take(38).collect();
        let location: String = o.location.chars().take(16).collect();
        for (x, value) in columns.iter().zip([o.numero_unique.as_str(), &document, &date(&o.received_on), &location]) {
            text_line(&mut ops, "F1", 9.5, *x, y, value);
        }
    }
    text_line(&mut ops, "F1", 9.0, MARGIN, MARGIN + 30.0, "Visa de l'expéditeur :");
    text_line(&mut ops, "F1", 9.0, PAGE_W / 2.0, MARGIN + 30.0, "Reçu par le GIP SNE le :");
    document(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::split_pdf;
    use crate::qr::{QrSearch, find_qr_codes};
    use crate::raster::{Limits, decode_page};
    use crate::slip::{Bordereau, Fiche, SlipParse, parse_payload};
    use crate::{Departement, NumeroGuichet, NumeroUnique};
    use chrono::NaiveDate;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    /// What the bureau's own reader finds on the printed page.
    fn read_back(pdf: &[u8]) -> Slip {
        let pages = split_pdf("slip.pdf", pdf, &Limits::default());
        assert_eq!(pages.len(), 1);
        let raster = decode_page(&pages[0].blob, &Limits::default()).expect("the printed slip renders");
        let hits = find_qr_codes(&raster.gray, &QrSearch::default());
        assert_eq!(hits.len(), 1, "one QR code in a corner window");
        match parse_payload(&hits[0].payload) {
            SlipParse::Valid(s) => s,
            other => panic!("the printed QR code is not a valid slip: {other:?}"),
        }
    }

    #[test]
    fn a_printed_fiche_reads_back_as_the_same_fiche() {
        let fiche = Slip::Fiche(Fiche {
            numero: NumeroUnique::parse("0740126000123G0042").expect("numero"),
            nom: "LEFÈVRE-D'ARC".into(),
            prenoms: "MARIE ANNE".into(),
            date_naissance: date("1980-02-14"),
            nb_documents: 3,
            nb_pages: 7,
            date_remplissage: date("2026-11-16"),
        });
        let pdf = slip_pdf(&fiche).expect("printed");
        assert!(pdf.len() < 20_000, "a vector slip is light: {} bytes", pdf.len());
        assert_eq!(read_back(&pdf), fiche);
    }

    #[test]
    fn a_printed_bordereau_reads_back_as_the_same_bordereau() {
        let bordereau = Slip::Bordereau(Bordereau {
            guichet: NumeroGuichet::parse("G0042").expect("guichet"),
            departement: Departement::parse("974").expect("departement"),
            nb_dossiers: 2,
            nb_pages_total: 15,
            date_transmission: date("2026-11-18"),
        });
        assert_eq!(read_back(&slip_pdf(&bordereau).expect("printed")), bordereau);
    }

    #[test]
    fn text_is_encoded_for_the_standard_fonts() {
        assert_eq!(win_ansi("Récap’"), vec![b'R', 0xE9, b'c', b'a', b'p', 0x92]);
        assert_eq!(win_ansi("☃"), b"?");
    }

    #[test]
    fn a_return_slip_lists_each_original_of_the_posting() {
        let original = |n: &str| ReturnedOriginal {
            numero_unique: n.into(),
            document: "Carte nationale d'identité".into(),
            received_on: date("2026-11-18"),
            location: "bac B3".into(),
        };
        let slip = ReturnSlip {
            bureau: "Bureau de numérisation".into(),
            posted_on: date("2026-12-05"),
            tracking: "8R01234567890".into(),
            originals: vec![original("0740126000123G0042"), original("0740126000125G0042")],
        };
        let pdf = return_slip_pdf(&slip).expect("pdf");
        assert_eq!(pdf, return_slip_pdf(&slip).expect("again"), "same bytes");
        let doc = lopdf::Document::load_mem(&pdf).expect("valid");
        let page = doc.get_pages().into_values().next().expect("a page");
        let text = doc.extract_text(&[1]).unwrap_or_else(|_| String::from_utf8_lossy(&doc.get_page_content(page)).into_owned());
        for want in ["RESTITUTION", "8R01234567890", "0740126000123G0042", "0740126000125G0042", "bac B3"] {
            assert!(text.contains(want), "{want} in {text}");
        }
        let too_many = ReturnSlip { originals: vec![original("0740126000123G0042"); RETURN_SLIP_LINES + 1], ..slip };
        assert!(return_slip_pdf(&too_many).is_err());
    }

    #[test]
    fn the_separator_sheet_prints_its_code_where_the_reader_finds_it() {
        let pdf = separator_pdf().expect("pdf");
        let page = split_pdf("intercalaire.pdf", &pdf, &Limits::default()).into_iter().next().expect("a page");
        let raster = decode_page(&page.blob, &Limits::default()).expect("renders");
        let hits = find_qr_codes(&raster.gray, &QrSearch::default());
        assert_eq!(hits.first().map(|h| h.payload.as_slice()), Some(crate::originals::SEPARATOR_PAYLOAD.as_bytes()));
        assert!(matches!(parse_payload(&hits[0].payload), SlipParse::NotASlip), "not one of the SNE's slips");
    }
}
