//! Parsing of the slips' QR payloads (`slips.md`, version 1), kept in one place so a version 2
//! can be added beside it.

use chrono::NaiveDate;
use thiserror::Error;

use crate::ids::{Departement, NumeroGuichet, NumeroUnique};

/// The three kinds of slip the registry prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlipKind {
    Bordereau,
    Fiche,
    Attestation,
}

impl SlipKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bordereau => "bordereau",
            Self::Fiche => "fiche",
            Self::Attestation => "attestation",
        }
    }
    fn from_tag(tag: &str) -> Option<Self> {
        match tag {
            "SNE-BT" => Some(Self::Bordereau),
            "SNE-FR" => Some(Self::Fiche),
            "SNE-AT" => Some(Self::Attestation),
            _ => None,
        }
    }
}

/// Fiche récapitulative: one per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fiche {
    pub numero: NumeroUnique,
    pub nom: String,
    pub prenoms: String,
    pub date_naissance: NaiveDate,
    pub nb_documents: u32,
    /// Pages of the request including the fiche itself.
    pub nb_pages: u32,
    pub date_remplissage: NaiveDate,
}

/// Bordereau de transmission: one per counter mailing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bordereau {
    pub guichet: NumeroGuichet,
    pub departement: Departement,
    pub nb_dossiers: u32,
    /// Pages of the mailing including every fiche and the bordereau.
    pub nb_pages_total: u32,
    pub date_transmission: NaiveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationKind {
    Enregistrement,
    Renouvellement,
}

/// Page 1 of an applicant's registration attestation: plays the fiche's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    pub numero: NumeroUnique,
    pub kind: AttestationKind,
    pub date_attestation: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slip {
    Bordereau(Bordereau),
    Fiche(Fiche),
    Attestation(Attestation),
}

impl Slip {
    pub fn kind(&self) -> SlipKind {
        match self {
            Self::Bordereau(_) => SlipKind::Bordereau,
            Self::Fiche(_) => SlipKind::Fiche,
            Self::Attestation(_) => SlipKind::Attestation,
        }
    }
}

/// What is wrong with a payload of a known kind.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PayloadError {
    #[error("unknown format version {0:?}")]
    UnknownVersion(String),
    #[error("expected {expected} fields, found {found}")]
    FieldCount { expected: usize, found: usize },
    #[error("field {field} is invalid: {value:?}")]
    Field { field: &'static str, value: String },
    #[error("payload is not UTF-8 text")]
    NotText,
    #[error("payload of {0} bytes: a slip's is never longer than {MAX_PAYLOAD_BYTES}")]
    TooLong(usize),
    /// No code could be read, but the page's printed title says it is a slip.
    #[error("its code could not be read (the page's printed title says what it is)")]
    CodeUnreadable,
}

/// The kind of slip a page's printed title names, for a page whose code could not be read.
/// The attestation is left out: "attestation d'enregistrement" also titles a PACS certificate.
pub fn kind_from_title(title: &str) -> Option<SlipKind> {
    let t = crate::text::normalise_name(title);
    if t.contains("FICHE RECAPITULATIVE") {
        Some(SlipKind::Fiche)
    } else if t.contains("BORDEREAU DE TRANSMISSION") {
        Some(SlipKind::Bordereau)
    } else {
        None
    }
}

/// The longest payload a slip can carry: nine fields, names of a hundred characters each with
/// room to spare. A longer one is not the registry's, whatever its fields say.
pub const MAX_PAYLOAD_BYTES: usize = 512;

impl PayloadError {
    /// True when the request number itself is what is wrong (`NUMERO_INVALIDE`, not
    /// `FICHE_ILLISIBLE`).
    pub fn is_numero(&self) -> bool {
        matches!(self, Self::Field { field: "numero_unique", .. })
    }
}

/// The result of reading a QR payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlipParse {
    /// Not one of the registry's kinds: an ordinary QR code (a URL on a tax notice) is content.
    NotASlip,
    Valid(Slip),
    /// A known kind with a payload off the contract: reported, never guessed.
    Invalid {
        kind: SlipKind,
        error: PayloadError,
    },
}

/// Parses a QR payload strictly per `slips.md`.
pub fn parse_payload(bytes: &[u8]) -> SlipParse {
    let Ok(text) = std::str::from_utf8(bytes) else {
        // Could still be a slip whose bytes were damaged; only call it one if the tag is there.
        return match bytes.get(..6).and_then(|t| std::str::from_utf8(t).ok()).and_then(SlipKind::from_tag) {
            Some(kind) => SlipParse::Invalid { kind, error: PayloadError::NotText },
            None => SlipParse::NotASlip,
        };
    };
    let fields: Vec<&str> = text.split('|').collect();
    let Some(kind) = SlipKind::from_tag(fields[0]) else {
        return SlipParse::NotASlip;
    };
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return SlipParse::Invalid { kind, error: PayloadError::TooLong(bytes.len()) };
    }
    match parse_fields(kind, &fields) {
        Ok(slip) => SlipParse::Valid(slip),
        Err(error) => SlipParse::Invalid { kind, error },
    }
}

fn parse_fields(kind: SlipKind, f: &[&str]) -> Result<Slip, PayloadError> {
    if f.iter().any(|x| x.contains(['\r', '\n'])) {
        return Err(PayloadError::Field { field: "payload", value: "CR or LF in a field".into() });
    }
    let version = f.get(1).copied().unwrap_or_default();
    if version != "1" {
        return Err(PayloadError::UnknownVersion(version.to_string()));
    }
    let expected = match kind {
        SlipKind::Fiche => 9,
        SlipKind::Bordereau => 7,
        SlipKind::Attestation => 5,
    };
    if f.len() != expected {
        return Err(PayloadError::FieldCount { expected, found: f.len() });
    }
    Ok(match kind {
        SlipKind::Fiche => Slip::Fiche(Fiche {
            numero: numero(f[2])?,
            nom: name("nom", f[3])?,
            prenoms: name("prenoms", f[4])?,
            date_naissance: date("date_naissance", f[5])?,
            nb_documents: count("nb_documents", f[6])?,
            nb_pages: count("nb_pages", f[7])?,
            date_remplissage: date("date_remplissage", f[8])?,
        }),
        SlipKind::Bordereau => Slip::Bordereau(Bordereau {
            guichet: NumeroGuichet::parse(f[2]).ok().filter(|_| f[2] == f[2].to_ascii_uppercase()).ok_or_else(|| bad("numero_guichet", f[2]))?,
            departement: Departement::parse(f[3]).ok().filter(|_| f[3] == f[3].to_ascii_uppercase()).ok_or_else(|| bad("departement", f[3]))?,
            nb_dossiers: count("nb_dossiers", f[4])?,
            nb_pages_total: count("nb_pages_total", f[5])?,
            date_transmission: date("date_transmission", f[6])?,
        }),
        SlipKind::Attestation => Slip::Attestation(Attestation {
            numero: numero(f[2])?,
            kind: match f[3] {
                "ENR" => AttestationKind::Enregistrement,
                "REN" => AttestationKind::Renouvellement,
                other => return Err(bad("type_attestation", other)),
            },
            date_attestation: date("date_attestation", f[4])?,
        }),
    })
}

fn bad(field: &'static str, value: &str) -> PayloadError {
    PayloadError::Field { field, value: value.to_string() }
}

fn numero(v: &str) -> Result<NumeroUnique, PayloadError> {
    NumeroUnique::parse(v).map_err(|_| bad("numero_unique", v))
}

fn date(field: &'static str, v: &str) -> Result<NaiveDate, PayloadError> {
    if v.len() != 10 {
        return Err(bad(field, v));
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| bad(field, v))
}

fn count(field: &'static str, v: &str) -> Result<u32, PayloadError> {
    if v.is_empty() || v.len() > 6 || !v.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad(field, v));
    }
    v.parse().map_err(|_| bad(field, v))
}

/// Names are upper case and may contain accents, spaces, `-` and `'`.
fn name(field: &'static str, v: &str) -> Result<String, PayloadError> {
    let ok = !v.trim().is_empty() && v.chars().all(|c| c == ' ' || c == '-' || c == '\'' || (c.is_alphabetic() && !c.is_lowercase()));
    if ok { Ok(v.to_string()) } else { Err(bad(field, v)) }
}

/// Builds the payload of a slip (the registry's side; used by fixtures and the portal's print).
pub fn payload(slip: &Slip) -> String {
    let d = |d: &NaiveDate| d.format("%Y-%m-%d").to_string();
    match slip {
        Slip::Fiche(f) => {
            format!("SNE-FR|1|{}|{}|{}|{}|{}|{}|{}", f.numero, f.nom, f.prenoms, d(&f.date_naissance), f.nb_documents, f.nb_pages, d(&f.date_remplissage))
        }
        Slip::Bordereau(b) => format!("SNE-BT|1|{}|{}|{}|{}|{}", b.guichet, b.departement, b.nb_dossiers, b.nb_pages_total, d(&b.date_transmission)),
        Slip::Attestation(a) => format!(
            "SNE-AT|1|{}|{}|{}",
            a.numero,
            match a.kind {
                AttestationKind::Enregistrement => "ENR",
                AttestationKind::Renouvellement => "REN",
            },
            d(&a.date_attestation)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> SlipParse {
        parse_payload(s.as_bytes())
    }

    #[test]
    fn contract_examples_parse() {
        let SlipParse::Valid(Slip::Fiche(f)) = parse("SNE-FR|1|0740126000123G0042|DUPONT|MARIE ANNE|1980-02-14|3|7|2026-11-16") else {
            panic!("fiche example must parse")
        };
        assert_eq!(f.numero.as_str(), "0740126000123G0042");
        assert_eq!((f.nb_documents, f.nb_pages), (3, 7));
        let SlipParse::Valid(Slip::Bordereau(b)) = parse("SNE-BT|1|G0042|974|2|15|2026-11-18") else { panic!("bordereau example must parse") };
        assert_eq!((b.guichet.as_str(), b.departement.as_str(), b.nb_dossiers, b.nb_pages_total), ("G0042", "974", 2, 15));
        assert!(matches!(parse("SNE-AT|1|0740126000123G0042|REN|2026-01-03"), SlipParse::Valid(Slip::Attestation(_))));
    }

    #[test]
    fn names_with_accents_hyphens_and_apostrophes() {
        assert!(matches!(parse("SNE-FR|1|0740126000123G0042|N'DIAYE-LÉON|JOSÉ ÉLODIE|1980-02-14|1|2|2026-11-16"), SlipParse::Valid(_)));
        let lower = parse("SNE-FR|1|0740126000123G0042|dupont|MARIE|1980-02-14|1|2|2026-11-16");
        assert!(matches!(lower, SlipParse::Invalid { error: PayloadError::Field { field: "nom", .. }, .. }));
    }

    #[test]
    fn ordinary_qr_codes_are_not_slips() {
        for s in ["https://www.impots.gouv.fr/verif?x=1", "", "SNE", "SNE-XX|1|a", "sne-fr|1|0740126000123G0042|A|B|1980-02-14|1|2|2026-11-16"] {
            assert_eq!(parse(s), SlipParse::NotASlip, "{s}");
        }
        assert_eq!(parse_payload(&[0xff, 0xfe, 0x00]), SlipParse::NotASlip);
    }

    #[test]
    fn off_contract_payloads_are_invalid_slips() {
        let cases = [
            ("SNE-FR|2|0740126000123G0042|DUPONT|MARIE|1980-02-14|3|7|2026-11-16", "version"),
            ("SNE-FR|1|0740126000123G0042|DUPONT|MARIE|1980-02-14|3|7", "count"),
            ("SNE-FR|1|0740126000123G0042|DUPONT|MARIE|1980-02-30|3|7|2026-11-16", "date"),
            ("SNE-FR|1|0740126000123G0042|DUPONT|MARIE|1980-2-14|3|7|2026-11-16", "date"),
            ("SNE-FR|1|0740126000123G0042|DUPONT|MARIE|1980-02-14|-3|7|2026-11-16", "count"),
            ("SNE-FR|1|0741326000123G0042|DUPONT|MARIE|1980-02-14|3|7|2026-11-16", "numero"),
            ("SNE-BT|1|G0042|74|2|15|2026-11-18", "departement"),
            ("SNE-BT|1|G00420000000|074|2|15|2026-11-18", "guichet"),
            ("SNE-BT|1|g0042|074|2|15|2026-11-18", "guichet"),
            ("SNE-AT|1|0740126000123G0042|XXX|2026-01-03", "type"),
        ];
        for (s, why) in cases {
            assert!(matches!(parse(s), SlipParse::Invalid { .. }), "{why}: {s}");
        }
        let SlipParse::Invalid { error, .. } = parse("SNE-FR|1|0741326000123G0042|DUPONT|MARIE|1980-02-14|3|7|2026-11-16") else { panic!("invalid") };
        assert!(error.is_numero());
        assert!(matches!(parse_payload(b"SNE-FR|1|\xff\xfe"), SlipParse::Invalid { error: PayloadError::NotText, .. }));
        // A fiche whose name field runs to thousands of characters is not the registry's.
        for n in [2_900, 10_000] {
            let long = format!("SNE-FR|1|0740126000123G0042|{}|MARIE|1980-02-14|3|7|2026-11-16", "D".repeat(n));
            assert!(matches!(parse(&long), SlipParse::Invalid { kind: SlipKind::Fiche, error: PayloadError::TooLong(_) }), "{n}");
        }
    }

    #[test]
    fn a_slip_is_known_by_its_printed_title_when_its_code_is_not_read() {
        assert_eq!(kind_from_title("FICHE RÉCAPITULATIVE À placer en tête"), Some(SlipKind::Fiche));
        assert_eq!(kind_from_title("Bordereau de transmission"), Some(SlipKind::Bordereau));
        assert_eq!(kind_from_title("Attestation d'enregistrement du PACS"), None);
        assert_eq!(kind_from_title("Quittance de loyer"), None);
    }

    #[test]
    fn payload_round_trips() {
        for s in [
            "SNE-FR|1|0740126000123G0042|DUPONT|MARIE ANNE|1980-02-14|3|7|2026-11-16",
            "SNE-BT|1|G0042|974|2|15|2026-11-18",
            "SNE-AT|1|0740126000123G0042|ENR|2026-01-03",
        ] {
            let SlipParse::Valid(slip) = parse(s) else { panic!("{s}") };
            assert_eq!(payload(&slip), s);
        }
    }
}
