//! The French 2D-Doc (ANTS specification, versions 02 to 04): a signed DataMatrix printed on
//! tax notices, pay slips, bills and other documents. Its header says what the document is and
//! who signed it; its fields carry the document's own data (names, year, amounts); its ECDSA
//! signature, checked against the certificates of a trust list the site configures, proves them.
//!
//! A verified 2D-Doc is the strongest proof a bureau can have of what a piece is; a printed text
//! that contradicts it is a forged or altered document. Pure: the trust list is parsed from
//! bytes the caller read.

use chrono::{Days, NaiveDate};
use thiserror::Error;

const GS: char = '\u{1d}';
const RS: char = '\u{1e}';
const US: char = '\u{1f}';

/// Length of a data identifier's value: fixed (`min == max`), or variable up to `max`
/// (`None` = unbounded), ended by GS.
#[derive(Debug, Clone, Copy)]
struct FieldSpec {
    id: &'static str,
    min: u16,
    max: Option<u16>,
    label: &'static str,
}

const fn f(id: &'static str, min: u16, max: u16, label: &'static str) -> FieldSpec {
    FieldSpec { id, min, max: Some(max), label }
}

const fn open(id: &'static str, label: &'static str) -> FieldSpec {
    FieldSpec { id, min: 0, max: None, label }
}

/// Data identifiers of perimeter 01 (C40), from the specification's table (3.2.6 to 3.3.8).
const FIELDS: &[FieldSpec] = &[
    open("01", "identifiant unique du document"),
    open("02", "catégorie de document"),
    open("03", "sous-catégorie de document"),
    open("04", "application de composition"),
    open("05", "version de l'application"),
    f("06", 4, 4, "date d'association"),
    f("07", 6, 6, "heure d'association"),
    f("08", 4, 4, "date d'expiration"),
    f("09", 4, 4, "nombre de pages"),
    f("0A", 9, 9, "éditeur du 2D-Doc"),
    f("0B", 9, 9, "intégrateur du 2D-Doc"),
    open("0C", "URL du document"),
    f("0D", 36, 36, "UUID du document"),
    f("10", 0, 38, "bénéficiaire"),
    f("11", 0, 38, "qualité du bénéficiaire"),
    f("12", 0, 38, "prénom du bénéficiaire"),
    f("13", 0, 38, "nom du bénéficiaire"),
    f("14", 0, 38, "destinataire de la facture"),
    f("15", 0, 38, "qualité du destinataire"),
    f("16", 0, 38, "prénom du destinataire"),
    f("17", 0, 38, "nom du destinataire"),
    open("18", "numéro de facture"),
    open("19", "numéro de client"),
    open("1A", "numéro du contrat"),
    open("1B", "identifiant du souscripteur"),
    f("1C", 8, 8, "date d'effet du contrat"),
    f("1D", 0, 16, "montant TTC"),
    f("1E", 0, 30, "téléphone du bénéficiaire"),
    f("1F", 0, 30, "téléphone du destinataire"),
    f("1G", 1, 1, "co-bénéficiaire"),
    f("1H", 1, 1, "co-destinataire"),
    f("1I", 0, 38, "co-bénéficiaire"),
    f("1J", 0, 38, "qualité du co-bénéficiaire"),
    f("1K", 0, 38, "prénom du co-bénéficiaire"),
    f("1L", 0, 38, "nom du co-bénéficiaire"),
    f("1M", 0, 38, "co-destinataire"),
    f("1N", 0, 38, "qualité du co-destinataire"),
    f("1O", 0, 38, "prénom du co-destinataire"),
    f("1P", 0, 38, "nom du co-destinataire"),
    f("20", 0, 38, "adresse ligne 2"),
    f("21", 0, 38, "adresse ligne 3"),
    f("22", 0, 38, "adresse ligne 4"),
    f("23", 0, 38, "adresse ligne 5"),
    f("24", 5, 5, "code postal"),
    f("25", 0, 32, "localité"),
    f("26", 2, 2, "pays"),
    f("27", 0, 38, "adresse du destinataire ligne 2"),
    f("28", 0, 38, "adresse du destinataire ligne 3"),
    f("29", 0, 38, "adresse du destinataire ligne 4"),
    f("2A", 0, 38, "adresse du destinataire ligne 5"),
    f("2B", 5, 5, "code postal du destinataire"),
    f("2C", 0, 32, "localité du destinataire"),
    f("2D", 2, 2, "pays du destinataire"),
    f("30", 0, 140, "qualité, nom et prénom"),
    f("31", 14, 38, "IBAN"),
    f("32", 8, 11, "BIC"),
    f("33", 0, 30, "BBAN"),
    f("34", 2, 2, "pays du compte"),
    f("35", 14, 34, "identifiant SEPAmail"),
    f("36", 4, 4, "début de période"),
    f("37", 4, 4, "fin de période"),
    f("38", 0, 11, "solde de début"),
    f("39", 0, 11, "solde de fin"),
    f("40", 13, 13, "numéro fiscal"),
    f("41", 0, 12, "revenu fiscal de référence"),
    open("42", "situation du foyer"),
    f("43", 0, 5, "nombre de parts"),
    f("44", 13, 13, "référence d'avis"),
    f("45", 4, 4, "année des revenus"),
    f("46", 0, 38, "déclarant 1"),
    f("47", 13, 13, "numéro fiscal du déclarant 1"),
    f("48", 0, 38, "déclarant 2"),
    f("49", 13, 13, "numéro fiscal du déclarant 2"),
    f("4A", 8, 8, "date de mise en recouvrement"),
    f("4B", 8, 8, "date de la déclaration"),
    f("4V", 0, 10, "impôt sur le revenu net"),
    f("4W", 0, 10, "reste à payer"),
    f("4X", 0, 10, "retenue à la source"),
    f("4Y", 1, 155, "adresse du domicile"),
    f("4Z", 0, 10, "prélèvements sociaux"),
    f("50", 14, 14, "SIRET de l'employeur"),
    f("51", 6, 6, "heures travaillées"),
    f("52", 7, 7, "cumul des heures"),
    f("53", 4, 4, "début de période"),
    f("54", 4, 4, "fin de période"),
    f("55", 8, 8, "début de contrat"),
    f("56", 8, 8, "fin de contrat"),
    f("57", 8, 8, "signature du contrat"),
    f("58", 0, 11, "salaire net imposable"),
    f("59", 0, 12, "cumul du net imposable"),
    f("5A", 0, 11, "salaire brut du mois"),
    f("5B", 0, 12, "cumul du brut"),
    f("5C", 0, 11, "salaire net"),
    f("5M", 0, 38, "dénomination sociale"),
    f("5O", 0, 38, "nom de l'employeur"),
    f("5P", 0, 38, "prénom de l'employeur"),
    f("5T", 1, 1, "type de contrat"),
    f("5U", 0, 12, "durée du contrat"),
    f("60", 0, 60, "prénoms"),
    f("61", 0, 20, "prénom"),
    f("62", 0, 38, "nom patronymique"),
    f("63", 0, 38, "nom d'usage"),
    f("64", 0, 38, "nom d'époux"),
    f("65", 2, 2, "type de pièce d'identité"),
    f("66", 0, 20, "numéro de la pièce"),
    f("67", 2, 2, "nationalité"),
    f("68", 1, 1, "genre"),
    f("69", 8, 8, "date de naissance"),
    f("6A", 0, 32, "lieu de naissance"),
    f("6B", 3, 3, "département du bureau émetteur"),
    f("6C", 2, 2, "pays de naissance"),
    f("6D", 0, 60, "père"),
    f("6E", 0, 60, "mère"),
    f("6F", 0, 90, "zone de lecture automatique"),
    f("6G", 1, 38, "nom"),
    f("6H", 1, 10, "civilité"),
    f("6I", 2, 2, "pays émetteur"),
    f("6J", 1, 1, "type de document étranger"),
    f("6K", 19, 19, "numéro de la demande"),
    f("6L", 8, 8, "date de dépôt"),
    f("6M", 0, 40, "catégorie du titre"),
    f("6N", 8, 8, "début de validité"),
    f("6O", 8, 8, "fin de validité"),
    f("6P", 0, 40, "autorisation"),
    f("6Q", 0, 10, "numéro d'étranger"),
    f("6R", 12, 12, "numéro de visa"),
    f("6S", 0, 38, "adresse ligne 2"),
    f("6T", 0, 38, "adresse ligne 3"),
    f("6U", 0, 38, "adresse ligne 4"),
    f("6V", 0, 38, "adresse ligne 5"),
    f("6W", 5, 5, "code postal"),
    f("6X", 0, 32, "commune"),
    f("6Y", 2, 2, "pays"),
];

/// What the header's document type says, and where the filing plan puts it.
pub fn document_type(id: &str) -> (&'static str, Option<(&'static str, &'static str)>) {
    match id {
        "00" => ("justificatif de domicile", None),
        "01" => ("facture (justificatif de domicile)", None),
        "02" => ("avis de taxe d'habitation", None),
        "03" => ("relevé d'identité bancaire", None),
        "04" | "28" => ("avis d'impôt sur le revenu", Some(("RFR", "AVIS_IMPOSITION"))),
        "05" => ("relevé d'identité SEPAmail", None),
        "06" => ("bulletin de salaire", Some(("RMS", "BULLETIN_SALAIRE"))),
        "07" => ("titre d'identité", None),
        "08" => ("zone de lecture automatique d'un titre", None),
        "10" => ("contrat de travail", Some(("SPR", "CONTRAT_TRAVAIL"))),
        "11" => ("relevé de compte", None),
        "12" => ("acte d'huissier", None),
        "13" => ("document étranger (récépissé, autorisation)", Some(("IDD", "TITRE_SEJOUR"))),
        "18" | "24" | "27" => ("avis de situation déclarative", Some(("RFR", "AVIS_SITUATION_DECLARATIVE"))),
        _ => ("autre document", None),
    }
}

/// A 2D-Doc's documents outside the filing plan (bills, bank documents): a signed proof that
/// the piece is not a supporting document the plan files.
pub fn outside_the_plan(id: &str) -> bool {
    matches!(id, "00" | "01" | "02" | "03" | "05" | "11")
}

/// One field of the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub id: String,
    pub value: String,
    pub truncated: bool,
}

/// A 2D-Doc read from its code.
#[derive(Debug, Clone, PartialEq)]
pub struct TwoDDoc {
    pub version: u8,
    /// Certification authority (`FR04`) and certificate (`FPE3`) that signed it.
    pub ca: String,
    pub cert: String,
    pub issued: Option<NaiveDate>,
    pub signed_on: Option<NaiveDate>,
    pub doc_type: String,
    pub fields: Vec<Field>,
    /// Fields could not all be read (an identifier this reader does not know).
    pub unparsed: bool,
    /// The bytes the signature covers (header and message, up to the separator).
    pub signed: Vec<u8>,
    /// The signature, raw r‖s.
    pub signature: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TwoDDocError {
    #[error("not a 2D-Doc (no DC header)")]
    NotTwoDDoc,
    #[error("2D-Doc version {0} is not read (only 02, 03 and 04 in C40)")]
    Version(String),
    #[error("2D-Doc header truncated or malformed")]
    Header,
    #[error("2D-Doc without its signature (truncated message)")]
    NoSignature,
    #[error("2D-Doc signature is not valid base32 of a P-256, P-384 or P-521 signature")]
    SignatureEncoding,
}

impl TwoDDoc {
    pub fn field(&self, id: &str) -> Option<&str> {
        self.fields.iter().find(|f| f.id == id).map(|f| f.value.as_str())
    }

    /// One line for a piece's evidence: what it is, who signed it, its main fields.
    pub fn describe(&self) -> String {
        let (label, _) = document_type(&self.doc_type);
        let mut shown: Vec<String> = Vec::new();
        for id in ["46", "48", "10", "13", "12", "62", "60", "45", "41", "43", "44", "58", "5A"] {
            if let Some(v) = self.field(id).filter(|v| !v.is_empty()) {
                let spec = FIELDS.iter().find(|s| s.id == id).map(|s| s.label).unwrap_or(id);
                shown.push(format!("{spec} {v}"));
            }
        }
        format!(
            "2D-Doc {} ({label}), signed by {}/{}{}{}",
            self.doc_type,
            self.ca,
            self.cert,
            self.signed_on.map(|d| format!(" on {}", d.format("%d/%m/%Y"))).unwrap_or_default(),
            if shown.is_empty() { String::new() } else { format!(": {}", shown.join(", ")) }
        )
    }
}

fn hex_date(s: &str) -> Option<NaiveDate> {
    if s == "FFFF" {
        return None;
    }
    let days = u64::from_str_radix(s, 16).ok()?;
    NaiveDate::from_ymd_opt(2000, 1, 1)?.checked_add_days(Days::new(days))
}

/// RFC 4648 base32 without padding.
fn base32(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u64, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        } as u64;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Reads a 2D-Doc from a DataMatrix's text (separators GS, RS, US as control characters; an
/// AIM prefix `]d2` and the written tokens `<GS>`... are tolerated).
pub fn parse(text: &str) -> Result<TwoDDoc, TwoDDocError> {
    let text = text.trim_start_matches("]d2").trim_start_matches("]d1").replace("<GS>", "\u{1d}").replace("<RS>", "\u{1e}").replace("<US>", "\u{1f}");
    if !text.starts_with("DC") {
        return Err(TwoDDocError::NotTwoDDoc);
    }
    let version = text.get(2..4).ok_or(TwoDDocError::Header)?;
    let (version, header_len) = match version {
        "02" => (2, 22),
        "03" => (3, 24),
        "04" => (4, 26),
        v => return Err(TwoDDocError::Version(v.to_string())),
    };
    let header = text.get(..header_len).ok_or(TwoDDocError::Header)?;
    if !header.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(TwoDDocError::Header);
    }
    let us = text.find(US).ok_or(TwoDDocError::NoSignature)?;
    let signed = text.as_bytes()[..us].to_vec();
    let after = &text[us + 1..];
    let sig_text = after.split(GS).next().unwrap_or("");
    let signature = base32(sig_text).ok_or(TwoDDocError::SignatureEncoding)?;
    if ![64, 96, 132].contains(&signature.len()) {
        return Err(TwoDDocError::SignatureEncoding);
    }
    // The message: identifier, value; a variable value ends at GS (RS when truncated), at its
    // maximum length, or at the end.
    let message: Vec<char> = text[header_len..us].chars().collect();
    let mut fields = Vec::new();
    let mut i = 0;
    let mut unparsed = false;
    while i + 2 <= message.len() {
        let id: String = message[i..i + 2].iter().collect();
        let Some(spec) = FIELDS.iter().find(|s| s.id == id) else {
            unparsed = true;
            break;
        };
        i += 2;
        let (mut value, mut truncated) = (String::new(), false);
        if spec.max == Some(spec.min) && spec.min > 0 {
            let end = (i + spec.min as usize).min(message.len());
            value = message[i..end].iter().collect();
            i = end;
            if message.get(i) == Some(&GS) {
                i += 1;
            }
        } else {
            let max = spec.max.map(usize::from).unwrap_or(usize::MAX);
            while i < message.len() && value.chars().count() < max {
                match message[i] {
                    GS => {
                        i += 1;
                        break;
                    }
                    RS => {
                        i += 1;
                        truncated = true;
                        break;
                    }
                    c => value.push(c),
                }
                i += 1;
            }
        }
        fields.push(Field { id, value, truncated });
    }
    Ok(TwoDDoc {
        version,
        ca: header[4..8].to_string(),
        cert: header[8..12].to_string(),
        issued: hex_date(&header[12..16]),
        signed_on: hex_date(&header[16..20]),
        doc_type: header[20..22].to_string(),
        fields,
        unparsed,
        signed,
        signature,
    })
}

/// A public key the site trusts to sign 2D-Docs.
#[derive(Debug, Clone, PartialEq)]
pub enum PublicKey {
    P256(Vec<u8>),
    P384(Vec<u8>),
}

/// A signing certificate of the trust list: its authority, its id, its key, its validity.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustedKey {
    pub ca: String,
    pub cert: String,
    pub key: PublicKey,
    pub not_before: Option<NaiveDate>,
    pub not_after: Option<NaiveDate>,
}

/// The certificates the site trusts (a snapshot of the ANTS trust list and its authorities'
/// signing certificates). Empty: nothing can be verified.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrustList {
    pub keys: Vec<TrustedKey>,
    /// Where it came from (a folder, a file), for the evidence.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TrustListError {
    #[error("{file}: {reason}")]
    File { file: String, reason: String },
}

const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

impl TrustList {
    /// Adds the certificates of one file: PEM (one or several), DER, or lines of
    /// `CA CERT P256|P384 <hex SEC1 point>` (a key list, `#` comments).
    pub fn add_file(&mut self, name: &str, bytes: &[u8]) -> Result<usize, TrustListError> {
        let err = |reason: String| TrustListError::File { file: name.to_string(), reason };
        let before = self.keys.len();
        if bytes.starts_with(b"-----BEGIN") {
            let certs = x509_cert::Certificate::load_pem_chain(bytes).map_err(|e| err(format!("not PEM certificates: {e}")))?;
            for c in certs {
                self.keys.push(trusted_key(&c).map_err(err)?);
            }
        } else if bytes.first() == Some(&0x30) {
            use x509_cert::der::Decode;
            let c = x509_cert::Certificate::from_der(bytes).map_err(|e| err(format!("not a DER certificate: {e}")))?;
            self.keys.push(trusted_key(&c).map_err(err)?);
        } else {
            let text = std::str::from_utf8(bytes).map_err(|_| err("neither a certificate nor a key list".into()))?;
            for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#')) {
                let parts: Vec<&str> = line.split_whitespace().collect();
                let [ca, cert, curve, hex] = parts.as_slice() else { return Err(err(format!("line {}: want CA CERT CURVE HEX", n + 1))) };
                let point = (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .map_err(|_| err(format!("line {}: key is not hex", n + 1)))?;
                let key = match *curve {
                    "P256" => PublicKey::P256(point),
                    "P384" => PublicKey::P384(point),
                    c => return Err(err(format!("line {}: curve {c} (P256 or P384)", n + 1))),
                };
                self.keys.push(TrustedKey { ca: ca.to_string(), cert: cert.to_string(), key, not_before: None, not_after: None });
            }
        }
        Ok(self.keys.len() - before)
    }
}

fn common_name(name: &x509_cert::name::Name) -> Option<String> {
    name.common_name().ok().flatten().map(|cn| cn.value().into_owned())
}

/// The authority is the issuer's common name (`FR04`), the certificate id the subject's (`FPE3`).
fn trusted_key(c: &x509_cert::Certificate) -> Result<TrustedKey, String> {
    let tbs = c.tbs_certificate();
    let ca = common_name(tbs.issuer()).ok_or("certificate without an issuer common name")?;
    let cert = common_name(tbs.subject()).ok_or("certificate without a subject common name")?;
    let spki = tbs.subject_public_key_info();
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok()).map(|o| o.to_string());
    let point = spki.subject_public_key.raw_bytes().to_vec();
    let key = match curve.as_deref() {
        Some(OID_P256) => PublicKey::P256(point),
        Some(OID_P384) => PublicKey::P384(point),
        other => return Err(format!("certificate {ca}/{cert}: key on {other:?}, not P-256 or P-384")),
    };
    let day = |t: &x509_cert::time::Time| {
        let d = t.to_date_time();
        NaiveDate::from_ymd_opt(d.year() as i32, d.month() as u32, d.day() as u32)
    };
    let v = tbs.validity();
    Ok(TrustedKey { ca, cert, key, not_before: day(&v.not_before), not_after: day(&v.not_after) })
}

/// What the signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Signed by a certificate of the trust list, valid on the signature date.
    Verified,
    /// No trust list is configured: the data is read, not proven.
    NotVerified,
    /// The trust list has no certificate of that id.
    UnknownCertificate,
    /// The certificate was not valid on the day the code says it was signed.
    OutOfValidity,
    /// The signature does not match the data: altered or forged.
    Invalid,
}

impl Verdict {
    pub fn describe(&self) -> &'static str {
        match self {
            Verdict::Verified => "signature verified",
            Verdict::NotVerified => "signature not verified (no trust list configured)",
            Verdict::UnknownCertificate => "signature not verified (certificate not in the trust list)",
            Verdict::OutOfValidity => "signature not verified (certificate not valid on the signature date)",
            Verdict::Invalid => "SIGNATURE INVALID: the data was altered or forged",
        }
    }
}

/// Checks the signature against the trust list.
pub fn verify(doc: &TwoDDoc, trust: &TrustList) -> Verdict {
    if trust.keys.is_empty() {
        return Verdict::NotVerified;
    }
    let Some(k) = trust.keys.iter().find(|k| k.ca == doc.ca && k.cert == doc.cert) else { return Verdict::UnknownCertificate };
    if let Some(day) = doc.signed_on
        && (k.not_before.is_some_and(|b| day < b) || k.not_after.is_some_and(|a| day > a))
    {
        return Verdict::OutOfValidity;
    }
    let ok = match &k.key {
        PublicKey::P256(point) => {
            use p256::ecdsa::signature::Verifier;
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point);
            let sig = p256::ecdsa::Signature::from_slice(&doc.signature);
            matches!((key, sig), (Ok(key), Ok(sig)) if key.verify(&doc.signed, &sig).is_ok())
        }
        PublicKey::P384(point) => {
            use p384::ecdsa::signature::Verifier;
            let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(point);
            let sig = p384::ecdsa::Signature::from_slice(&doc.signature);
            matches!((key, sig), (Ok(key), Ok(sig)) if key.verify(&doc.signed, &sig).is_ok())
        }
    };
    if ok { Verdict::Verified } else { Verdict::Invalid }
}

/// Where the printed text says otherwise than the signed data: the fiscal reference income
/// printed after its label, the year of the income. Only clear contradictions count: a value
/// read after its label, different, while the signed value is printed nowhere (OCR may read a
/// form's columns in any order), never a value OCR missed.
pub fn contradictions(doc: &TwoDDoc, normalised_text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let digits: String = normalised_text.split_whitespace().collect::<Vec<_>>().join("");
    if let Some(rfr) = doc.field("41").filter(|v| !v.is_empty())
        && let Some(printed) = number_after(normalised_text, " revenu fiscal de reference ")
        && printed != rfr.trim_start_matches('0')
        && !(printed.is_empty() && rfr.chars().all(|c| c == '0'))
        && !digits.contains(rfr.trim_start_matches('0'))
    {
        out.push(format!("revenu fiscal de référence printed {printed}, signed {rfr}"));
    }
    // The value not beside its label (a column read apart from its labels), and the signed one
    // nowhere in the print: one of the first numbers after the label that differs from it by a
    // single digit is the signed value altered (or misread: either way, not a confirmation).
    // Five digits at least, and a few numbers only: amounts of a notice are many and alike.
    if out.is_empty()
        && let Some(rfr) = doc.field("41").map(|v| v.trim_start_matches('0')).filter(|v| v.len() >= 5)
        && !digits.contains(rfr)
        && let Some(at) = normalised_text.find(" revenu fiscal de reference ")
        && let Some(near) = numbers(&normalised_text[at..])
            .into_iter()
            .take(NUMBERS_AFTER_LABEL)
            .find(|n| n.len() == rfr.len() && n.bytes().zip(rfr.bytes()).filter(|(a, b)| a != b).count() == 1)
    {
        out.push(format!("revenu fiscal de référence signed {rfr}, found nowhere in the print, and {near} printed after its label"));
    }
    if let Some(year) = doc.field("45")
        && let Some(printed) = number_after(normalised_text, " revenus de l annee ").or_else(|| number_after(normalised_text, " revenus de "))
        && printed.len() == 4
        && printed != year
    {
        out.push(format!("year of the income printed {printed}, signed {year}"));
    }
    out
}

/// The printed text lacks what the signed fields say should be in it (the revenu fiscal de
/// référence of a tax notice): the page must be read further before print and signature can be
/// compared.
pub fn print_unchecked(doc: &TwoDDoc, normalised_text: &str) -> bool {
    doc.field("41").is_some_and(|v| !v.is_empty()) && number_after(normalised_text, " revenu fiscal de reference ").is_none()
}

/// How many numbers after a label its value may be, when the values were read as a column
/// apart from their labels (a tax notice's figures: numéro fiscal, référence, revenu, parts;
/// each digit group counts, alone and joined to the groups after it).
const NUMBERS_AFTER_LABEL: usize = 20;

/// The numbers of a text: each word of digits alone, and joined with the groups of three
/// digits that follow it ("12 345" is 12345).
fn numbers(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let digits = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
    let mut out = Vec::new();
    for i in (0..words.len()).filter(|&i| digits(words[i])) {
        let groups = words[i + 1..].iter().take_while(|w| w.len() == 3 && digits(w)).count();
        out.extend((0..=groups).map(|g| words[i..=i + g].concat()));
    }
    out
}

/// The first number within a few words after `label` (spaces between its digit groups, as
/// "12 345", joined).
fn number_after(text: &str, label: &str) -> Option<String> {
    let at = text.find(label)? + label.len();
    let words: Vec<&str> = text[at..].split_whitespace().take(8).collect();
    let start = words.iter().position(|w| w.chars().all(|c| c.is_ascii_digit()))?;
    let digits: String = words[start..]
        .iter()
        .take_while(|w| w.chars().all(|c| c.is_ascii_digit()) && w.len() <= 3 || w.len() >= 4 && w.chars().all(|c| c.is_ascii_digit()))
        .copied()
        .collect();
    Some(digits.trim_start_matches('0').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's test certificate (FR00/0001, P-256), valid 2012-2015.
    const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIICVzCCAT8CCQCpMEvcR9M4RTANBgkqhkiG9w0BAQUFADBPMQswCQYDVQQGEwJG
UjETMBEGA1UECgwKQUMgREUgVEVTVDEcMBoGA1UECwwTMDAwMiAwMDAwMDAwMDAw
MDAwMDENMAsGA1UEAwwERlIwMDAeFw0xMjExMDExMzQ3NDZaFw0xNTExMDExMzQ3
NDZaMFcxCzAJBgNVBAYTAkZSMRswGQYDVQQKDBJDRVJUSUZJQ0FUIERFIFRFU1Qx
HDAaBgNVBAsMEzAwMDIgMDAwMDAwMDAwMDAwMDAxDTALBgNVBAMMBDAwMDEwWTAT
BgcqhkjOPQIBBggqhkjOPQMBBwNCAASpjw18zWKAiJO+xNQ2550YNKHW4AHXDxxM
3M2dni/iKfckBRTo3cDKmNDHRAycxJKEmg+9pz/DkvTaCuB/hMI8MA0GCSqGSIb3
DQEBBQUAA4IBAQA6HN+w/bzIdg0ZQF+ELrocplehP7r5JuRJNBAgmoqoER7IonCv
KSNUgUVbJ/MB4UKQ6CgzK7AOlCpiViAnBv+i6fg8Dh9evoUcHBiDvbl19+4iREaO
oyVZ8RAlkp7VJKrC3s6dJEmI8/19obLbTvdHfY+TZfduqpVl63RSxwLG0Fjl0SAQ
z9a+KJSKZnEvT9I0iUUgCSnqFt77RSppziQTZ+rkWcfd+BSorWr8BHqOkLtj7EiV
amIh+g3A8JtwV7nm+NUbBlhh2UPSI0eevsRjQRghtTiEn0wflVBX7xFP9zXpViHq
Ij+R9WiXzWGFYyKuAFK1pQ2QH8BxCbvdNdff
-----END CERTIFICATE-----
";

    /// The specification's avis d'impôt (type 04, version 04), signed with the test key.
    const AVIS: &str = "DC04FR000001FFFF1FB60401FR432,75<GS>44227801234567845202146RETI PATRICK<GS>4A310720224163198<GS>47300112345678948RETI SOPHIE<GS>490701987765432<US>QHA4A6QOV6AZJEBTIUNR7QOBXINNTMZTD5COQH6VN24NCZTXA7MYXB6SNSNTWAQRYK3ZFP4ZWBGLTJ6SDSPMURF7YFILKQFIAJY7NTI";
    /// Its pay slip (type 06, version 02).
    const BULLETIN: &str = "DC02FR000001125113AD0610M/EXEMPLE/HENRY<GS>5000000000000000510157,55200934,553123154124F5515032012581319,24<GS>599894,3<GS><US>TNNEU7MVNZYP5IUQ5R2DCNYIEPLB3TU6UNOGYGJXCAIK4ESBRY6YFTAVRYQHZZO53TFUJGBFD7SMKHDL4RZ2OUAMD557R6QA54DAIEA";

    fn trust() -> TrustList {
        let mut t = TrustList::default();
        assert_eq!(t.add_file("test.pem", TEST_CERT.as_bytes()), Ok(1));
        t
    }

    #[test]
    fn the_specification_s_tax_notice_reads_and_verifies() {
        let doc = parse(AVIS).expect("parses");
        assert_eq!((doc.version, doc.ca.as_str(), doc.cert.as_str(), doc.doc_type.as_str()), (4, "FR00", "0001", "04"));
        assert_eq!(doc.signed_on, NaiveDate::from_ymd_opt(2022, 3, 24));
        assert_eq!(doc.issued, None);
        assert_eq!(doc.field("46"), Some("RETI PATRICK"));
        assert_eq!(doc.field("41"), Some("63198"));
        assert_eq!(doc.field("49"), Some("0701987765432"));
        assert!(!doc.unparsed);
        assert_eq!(document_type(&doc.doc_type).1, Some(("RFR", "AVIS_IMPOSITION")));
        // The test certificate expired in 2015; this code says it was signed in 2022.
        assert_eq!(verify(&doc, &trust()), Verdict::OutOfValidity);
        let mut open = trust();
        open.keys[0].not_after = None;
        assert_eq!(verify(&doc, &open), Verdict::Verified);
        assert_eq!(verify(&doc, &TrustList::default()), Verdict::NotVerified);
    }

    #[test]
    fn a_changed_field_breaks_the_signature() {
        let mut open = trust();
        open.keys[0].not_after = None;
        let doc = parse(BULLETIN).expect("parses");
        assert_eq!(doc.field("58"), Some("1319,24"));
        assert_eq!(verify(&doc, &open), Verdict::Verified);
        let forged = parse(&BULLETIN.replace("581319,24", "582319,24")).expect("parses");
        assert_eq!(verify(&forged, &open), Verdict::Invalid);
        // The trailing separator is signed too.
        let cut = parse(&BULLETIN.replace("<GS><US>", "<US>")).expect("parses");
        assert_eq!(verify(&cut, &open), Verdict::Invalid);
        // Another authority: not in the list.
        let other = parse(&BULLETIN.replace("DC02FR00", "DC02FR99")).expect("parses");
        assert_eq!(verify(&other, &open), Verdict::UnknownCertificate);
    }

    #[test]
    fn bad_codes_are_errors_not_panics() {
        assert_eq!(parse("hello"), Err(TwoDDocError::NotTwoDDoc));
        assert_eq!(parse("DC01FR000001"), Err(TwoDDocError::Version("01".into())));
        assert_eq!(parse("DC04FR00"), Err(TwoDDocError::Header));
        assert_eq!(parse(&AVIS[..60]), Err(TwoDDocError::NoSignature));
        let short = AVIS.trim_end_matches("NTI");
        assert_eq!(parse(short), Err(TwoDDocError::SignatureEncoding));
        // An identifier this reader does not know stops the fields, not the reading.
        let odd = parse(&AVIS.replace("<GS>4A", "<GS>ZZ")).expect("parses");
        assert!(odd.unparsed);
        assert_eq!(odd.field("46"), Some("RETI PATRICK"));
    }

    #[test]
    fn a_printed_text_that_says_otherwise_is_a_contradiction() {
        let doc = parse(AVIS).expect("parses");
        let agree = " avis d impot 2022 sur les revenus de l annee 2021 revenu fiscal de reference 63 198 nombre de parts 2 75 ";
        assert_eq!(contradictions(&doc, agree), Vec::<String>::new());
        let other = " sur les revenus de l annee 2021 revenu fiscal de reference 13 198 ";
        assert_eq!(contradictions(&doc, other).len(), 1);
        // A value OCR did not read is no contradiction.
        assert!(contradictions(&doc, " revenu fiscal de reference ").is_empty());
        // The values' column read apart from the labels': the signed value further on agrees...
        let column = " revenu fiscal de reference nombre de parts 2d doc l l noiit da a 75001 22 78 0123456 25 63 198 2 75 ";
        assert_eq!(contradictions(&doc, column), Vec::<String>::new());
        // ... one a digit off is the value altered, and numbers unlike it say nothing.
        let altered = column.replace("63 198", "68 198");
        assert!(matches!(&contradictions(&doc, &altered)[..], [one] if one.contains("68198 printed after")), "{:?}", contradictions(&doc, &altered));
        assert!(contradictions(&doc, &column.replace("63 198", "")).is_empty());
        // Two digits off, or no label read: no proof either way.
        assert!(contradictions(&doc, &column.replace("63 198", "68 178")).is_empty());
        assert!(contradictions(&doc, &altered.replace(" revenu fiscal de reference", "")).is_empty());
    }

    #[test]
    fn a_key_list_is_a_trust_list_too() {
        let mut t = TrustList::default();
        let line = "FR00 0001 P256 04a98f0d7ccd62808893bec4d436e79d1834a1d6e001d70f1c4cdccd9d9e2fe229f7240514e8ddc0ca98d0c7440c9cc492849a0fbda73fc392f4da0ae07f84c23c\n";
        assert_eq!(t.add_file("keys.txt", line.as_bytes()), Ok(1));
        assert_eq!(verify(&parse(AVIS).expect("parses"), &t), Verdict::Verified);
        assert!(t.add_file("bad.txt", b"FR00 0001 P999 00").is_err());
    }
}
