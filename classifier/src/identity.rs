//! Whose identity document is it? The names read on the piece against the request's household:
//! the applicant files under IDD, the spouse under IDC, a dependant under IDP.
//!
//! A refusal sends the applicant a rejection notice, so "someone else's" needs proof: a checked
//! machine-readable zone, or a name and a birth date both read clearly, that match nobody in the
//! household ([`Attribution::Stranger`], which says what the proof was). A name that only looks
//! foreign (a surname field misread, a letter's address block) is a [`Attribution::Doubt`]: an
//! operator decides.

use scanbureau_pipeline::qualify::{Household, HouseholdMember};

use crate::lexicon::normalise;
use crate::mrz::Mrz;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Demandeur,
    Conjoint,
    PersonneACharge,
}

impl Role {
    pub fn categorie(self) -> &'static str {
        match self {
            Role::Demandeur => "IDD",
            Role::Conjoint => "IDC",
            Role::PersonneACharge => "IDP",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Attribution {
    /// The document names this member of the household.
    Member { role: Role, name: String, score: f32 },
    /// Proven to be someone else's: `proof` says how (a checked MRZ, a name and a birth date).
    Stranger { read: String, proof: String },
    /// A name that seems to be someone else's, without proof.
    Doubt { read: String },
    /// Too little was read to tell.
    Unknown,
}

/// 2 points for the whole surname, 1 for a first name, 1 for the birth date (dd/mm/yyyy or the
/// MRZ's yymmdd).
fn member_score(m: &HouseholdMember, text: &str) -> f32 {
    let nom = normalise(&m.nom);
    let mut s = 0.0;
    if text.contains(nom.as_str()) || text.contains(&nom.trim().replace(' ', "<")) {
        s += 2.0;
    }
    if normalise(&m.prenoms).split_whitespace().any(|p| p.len() >= 2 && (text.contains(&format!(" {p} ")) || text.contains(&format!("<{p}<")))) {
        s += 1.0;
    }
    if let Some(d) = m.date_naissance {
        let long = normalise(&d.format("%d/%m/%Y").to_string());
        let mrz = d.format("%y%m%d").to_string();
        if text.contains(long.trim()) || text.contains(&mrz) {
            s += 1.0;
        }
    }
    s
}

/// The words of a surname field's label ("Nom(s)", "Nom d'usage", "Nom / Surname").
const SURNAME_LABEL: &[&str] = &["surname", "nom", "noms", "usage"];

/// What may come first after the label without being a name: the next field's label (the
/// field is blank, as on a form: "Nom(s) : _ _ _ Prénom(s) : _ _ _") or a little word of running
/// text ("… au nom de la commune dont …").
const NOT_A_NAME: &[&str] = &[
    "prenom", "prenoms", "given", "names", "date", "ne", "nee", "sexe", "adresse", "de", "du", "des", "la", "le", "les", "et", "ou", "dont", "qui", "que",
    "en", "au", "aux", "par",
];

/// The surname field as printed (`Nom : X`, `Surname X`, MRZ `IDFRAX<<`), when one is legible.
fn printed_surname(text: &str) -> Option<String> {
    for marker in [" nom ", " surname ", " nom surname "] {
        if let Some(i) = text.find(marker) {
            // The first word after the label (a field's number and letters of "(s)" left out).
            let first = text[i + marker.len()..].split_whitespace().find(|w| w.len() >= 2 && !SURNAME_LABEL.contains(w));
            let after = first.filter(|w| !NOT_A_NAME.contains(w));
            if let Some(w) = after {
                return Some(w.to_string());
            }
        }
    }
    for prefix in ["idfra", "p<fra", "irfra"] {
        if let Some(i) = text.find(prefix) {
            let name: String = text[i + prefix.len()..].chars().take_while(|c| c.is_alphanumeric()).collect();
            if name.len() >= 2 {
                return Some(name);
            }
        }
    }
    None
}

/// Everyone in the household, with their role.
fn members(h: &Household) -> impl Iterator<Item = (Role, &HouseholdMember)> {
    let demandeur = h.demandeur.iter().map(|m| (Role::Demandeur, m));
    let conjoint = h.conjoint.iter().map(|m| (Role::Conjoint, m));
    demandeur.chain(conjoint).chain(h.personnes_a_charge.iter().map(|m| (Role::PersonneACharge, m)))
}

/// Attributes a document whose read text is `raw` to the household.
pub fn attribute(household: &Household, raw: &str) -> Attribution {
    let text = normalise(raw);
    let mut scored: Vec<(Role, &HouseholdMember, f32)> = members(household).map(|(r, m)| (r, m, member_score(m, &text))).collect();
    scored.sort_by(|a, b| b.2.total_cmp(&a.2));
    match scored.as_slice() {
        // A surname and a first name or birth date, and better than anyone else in the household
        // (a child shares the applicant's surname: the first name decides).
        [(role, m, s), rest @ ..] if *s >= 3.0 && rest.first().is_none_or(|r| r.2 < *s) => {
            Attribution::Member { role: *role, name: format!("{} {}", m.prenoms, m.nom), score: *s }
        }
        _ => match (printed_surname(&text), printed_birth_date(&text)) {
            (Some(read), Some(born)) if !household_has_surname(household, &read) && !members(household).any(|(_, m)| m.date_naissance == Some(born)) => {
                let proof = format!("name '{read}' and birth date {} read on the document, neither of anyone in the household", born.format("%d/%m/%Y"));
                Attribution::Stranger { read, proof }
            }
            (Some(read), _) if !household_has_surname(household, &read) => Attribution::Doubt { read },
            _ => Attribution::Unknown,
        },
    }
}

/// Attributes an identity document by its machine-readable zone. A checked zone whose holder
/// shares neither the name nor the birth date of anyone in the household is proof.
pub fn attribute_mrz(household: &Household, mrz: &Mrz) -> Attribution {
    let surname = normalise(&mrz.surname);
    let given: Vec<String> = mrz.given_names.iter().map(|g| normalise(g).trim().to_string()).collect();
    // Every word of the zone's name field: OCR may have merged the surname and the first name
    // (a filler read as a letter), so each is looked for among all of them, a letter off at most.
    let words: Vec<&str> = surname.split_whitespace().chain(given.iter().flat_map(|g| g.split_whitespace())).collect();
    let has = |name: &str| words.iter().any(|w| *w == name || (name.len() >= 4 && near(w, name)));
    let mut best: Option<(Role, &HouseholdMember, f32, bool)> = None;
    let (mut any_name, mut any_date) = (false, false);
    for (role, m) in members(household) {
        let nom = normalise(&m.nom);
        let same_surname = nom.split_whitespace().filter(|w| w.len() >= 2).any(|w| surname.contains(&format!(" {w} ")) || has(w));
        let prenoms = normalise(&m.prenoms);
        let same_given =
            prenoms.split_whitespace().next().is_some_and(&has) || given.first().is_some_and(|g| !g.is_empty() && prenoms.contains(&format!(" {g} ")));
        let same_date = m.date_naissance.is_some_and(|d| d.format("%y%m%d").to_string() == mrz.birth);
        any_name |= same_surname;
        any_date |= same_date;
        let s = [(same_surname, 2.0), (same_given, 1.0), (same_date, 1.0)].iter().filter(|(ok, _)| *ok).map(|(_, w)| w).sum::<f32>();
        // Two of the three: the surname alone is shared by a parent and a child; the first
        // name and birth date tell a birth name on the card from a married name on the registry.
        let enough = [same_surname, same_given, same_date].iter().filter(|&&ok| ok).count() >= 2;
        if best.is_none_or(|b| s > b.2) {
            best = Some((role, m, s, enough));
        }
    }
    let read = format!("{} {}", mrz.given_names.join(" "), mrz.surname);
    match best {
        Some((role, m, s, true)) => Attribution::Member { role, name: format!("{} {}", m.prenoms, m.nom), score: s },
        _ if mrz.checked() && !any_name && !any_date => Attribution::Stranger { proof: mrz.describe(), read },
        _ => Attribution::Doubt { read },
    }
}

/// The birth date printed after "né(e) le", "date de naissance" or "birth": dd/mm/yyyy,
/// dd.mm.yyyy or dd mm yyyy (the text is normalised: separators are spaces).
fn printed_birth_date(text: &str) -> Option<chrono::NaiveDate> {
    for marker in [" ne e le ", " nee le ", " ne le ", " date de naissance ", " date of birth ", " birth "] {
        let Some(i) = text.find(marker) else { continue };
        let digits: Vec<&str> = text[i + marker.len()..].split_whitespace().take(3).collect();
        if let [d, m, y] = digits.as_slice()
            && let (Ok(d), Ok(m), Ok(y)) = (d.parse::<u32>(), m.parse::<u32>(), y.parse::<i32>())
            && (1900..2100).contains(&y)
        {
            return chrono::NaiveDate::from_ymd_opt(y, m, d);
        }
    }
    None
}

/// Words that make an address block's first line an organisation, not a person.
const ORGANISATIONS: &[&str] = &[
    "sarl",
    "sas",
    "sasu",
    "sa",
    "sci",
    "eurl",
    "scp",
    "association",
    "societe",
    "mairie",
    "caf",
    "cabinet",
    "agence",
    "office",
    "service",
    "direction",
    "centre",
    "syndic",
];
/// Courtesy words before a name.
const CIVILITIES: &[&str] = &["madame", "monsieur", "mme", "m", "mr", "et"];
/// Small words names are made with ("Marie de la Tour").
const PARTICLES: &[&str] = &["de", "du", "des", "la", "le", "van", "von", "der", "da", "di", "el", "ben", "bin", "d"];

/// Whom a letter is addressed to, from its address block: the first line is a name. A name
/// with none of the household's surnames is a doubt, never proof: address blocks are misread,
/// and letters name representatives, landlords, former spouses.
pub fn addressed_to(household: &Household, block: &str) -> Attribution {
    let Some(first) = block.lines().map(str::trim).find(|l| l.chars().filter(|c| c.is_alphabetic()).count() >= 4) else { return Attribution::Unknown };
    let line = normalise(first);
    let words: Vec<&str> = line.split_whitespace().filter(|w| !CIVILITIES.contains(w)).collect();
    // A name is written with capitals: a sentence ("Vérifiez la véracité des informations")
    // has words in lower case that are not a name's particles.
    let sentence = first.split_whitespace().any(|w| w.chars().next().is_some_and(char::is_lowercase) && !PARTICLES.contains(&normalise(w).trim()));
    let looks_like_a_name =
        !sentence && (2..=5).contains(&words.len()) && words.iter().all(|w| w.chars().all(char::is_alphabetic) && !ORGANISATIONS.contains(w));
    if !looks_like_a_name {
        return Attribution::Unknown;
    }
    let mut best: Option<(Role, &HouseholdMember, f32)> = None;
    for (role, m) in members(household) {
        let s = member_score(m, &line);
        if s >= 2.0 && best.is_none_or(|b| s > b.2) {
            best = Some((role, m, s));
        }
    }
    match best {
        Some((role, m, score)) => Attribution::Member { role, name: format!("{} {}", m.prenoms, m.nom), score },
        // A name misread by a letter or two is not someone else's.
        None if words.iter().any(|w| household_has_surname(household, w)) => Attribution::Unknown,
        None => Attribution::Doubt { read: first.to_string() },
    }
}

/// Edit distance small enough for a misread: one letter in short names, two from 8 letters.
fn near(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let limit = if a.len().max(b.len()) >= 8 { 2 } else { 1 };
    if a.len().abs_diff(b.len()) > limit {
        return false;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()] <= limit
}

/// Whether `read` is (or starts with, or is a misreading of) a surname of the household.
fn household_has_surname(h: &Household, read: &str) -> bool {
    members(h).any(|(_, m)| {
        normalise(&m.nom).split_whitespace().filter(|w| w.len() >= 2).any(|w| w == read || read.starts_with(w) || (w.len() >= 4 && near(w, read)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn m(nom: &str, prenoms: &str, y: i32) -> HouseholdMember {
        HouseholdMember { nom: nom.into(), prenoms: prenoms.into(), date_naissance: NaiveDate::from_ymd_opt(y, 3, 14) }
    }

    fn family() -> Household {
        Household {
            demandeur: Some(m("DUPONT", "MARIE ANNE", 1980)),
            conjoint: Some(m("N'DIAYE", "OMAR", 1978)),
            personnes_a_charge: vec![m("DUPONT", "LÉA", 2012), m("DUPONT", "THÉO", 2015)],
        }
    }

    #[test]
    fn applicant_spouse_and_child_are_told_apart() {
        let h = family();
        let card = |nom: &str, prenom: &str, date: &str| format!("CARTE NATIONALE D'IDENTITÉ Nom : {nom} Prénoms : {prenom} Né(e) le : {date}");
        assert!(matches!(attribute(&h, &card("DUPONT", "MARIE ANNE", "14/03/1980")), Attribution::Member { role: Role::Demandeur, .. }));
        assert!(matches!(attribute(&h, &card("N'DIAYE", "OMAR", "14/03/1978")), Attribution::Member { role: Role::Conjoint, .. }));
        assert!(matches!(attribute(&h, &card("DUPONT", "THÉO", "14/03/2015")), Attribution::Member { role: Role::PersonneACharge, .. }));
    }

    #[test]
    fn someone_else_is_a_stranger_and_a_blur_is_unknown() {
        let h = family();
        assert!(
            matches!(attribute(&h, "Nom : MARTIN Prénoms : LUC Né(e) le : 01/01/1990"), Attribution::Stranger { read, proof } if read == "martin" && proof.contains("01/01/1990"))
        );
        // A foreign surname without a birth date is only a doubt.
        assert_eq!(attribute(&h, "Nom : MARTIN Prénoms : LUC"), Attribution::Doubt { read: "martin".into() });
        assert_eq!(attribute(&h, "RÉPUBLIQUE FRANÇAISE ..."), Attribution::Unknown);
        // The surname alone (a child or the applicant?) does not decide.
        assert_eq!(attribute(&h, "Nom : DUPONT"), Attribution::Unknown);
        // A blank form's field reads no name, whatever words come after it.
        assert_eq!(attribute(&h, "Nom(s) : _ _ _ _ _ _ _ _ _ _ Prénom(s) : _ _ _ _ _ _ Date de naissance : _ _ /_ _ /_ _ _ _"), Attribution::Unknown);
        assert_eq!(attribute(&h, "Nom(s) : _ _ _ _ _ _ _ _ _ _ _ _ _ _\n\ndont la commune est divisée en arrondissements"), Attribution::Unknown);
        // A passport's bilingual label and the field's number before the name.
        assert_eq!(attribute(&h, "Nom / Surname (1) MARTIN"), Attribution::Doubt { read: "martin".into() });
    }

    #[test]
    fn a_letter_is_addressed_to_the_household_or_to_someone_else() {
        let h = family();
        assert!(matches!(addressed_to(&h, "Marie DUPONT\n12 rue Victor Hugo\n69001 LYON"), Attribution::Member { role: Role::Demandeur, .. }));
        assert!(matches!(addressed_to(&h, "OMAR N'DIAYE\n3 allée des Tilleuls"), Attribution::Member { role: Role::Conjoint, .. }));
        assert_eq!(addressed_to(&h, "Luc MARTIN\n8 rue des Lilas"), Attribution::Doubt { read: "Luc MARTIN".into() });
        // A misread surname is not a stranger's.
        assert_eq!(addressed_to(&h, "Marie DUPOMT\n12 rue Victor Hugo"), Attribution::Unknown);
        // A sentence, an organisation, or nothing legible, tells nothing.
        assert_eq!(addressed_to(&h, "Vérifiez la véracité des informations\nindiquées"), Attribution::Unknown);
        assert_eq!(addressed_to(&h, "SARL BOULANGERIE DU PARC\n1 place Bellecour"), Attribution::Unknown);
        assert_eq!(addressed_to(&h, "12\n"), Attribution::Unknown);
    }

    /// A passport zone for `surname`, `given` (fillers between), born `birth` (YYMMDD), with
    /// its check digits computed.
    fn passport_zone(surname: &str, given: &str, birth: &str) -> Mrz {
        let cd = |s: &str| char::from(b'0' + crate::mrz::check_digit(s) as u8);
        let l1 = format!("{:<<44}", format!("P<UTO{surname}<<{given}"));
        let mut l2 = format!("L898902C3{}UTO{birth}{}F3001019", cd("L898902C3"), cd(birth));
        l2.push_str("<<<<<<<<<<<<<<0");
        let composite = format!("{}{}{}", &l2[0..10], &l2[13..20], &l2[21..43]);
        l2.push(cd(&composite));
        crate::mrz::find(&format!("{l1}\n{l2}")).expect("zone")
    }

    #[test]
    fn a_checked_zone_is_proof_and_a_failed_one_only_a_doubt() {
        let h = family();
        let own = passport_zone("DUPONT", "MARIE<ANNE", "800314");
        assert!(own.checked(), "{:?}", own.failed);
        assert!(matches!(attribute_mrz(&h, &own), Attribution::Member { role: Role::Demandeur, .. }));
        // The birth name on the card, the married name on the registry: first name and birth
        // date still tell.
        assert!(matches!(attribute_mrz(&h, &passport_zone("LEGRAND", "MARIE", "800314")), Attribution::Member { role: Role::Demandeur, .. }));
        let other = passport_zone("ERIKSSON", "ANNA", "740812");
        assert!(matches!(attribute_mrz(&h, &other), Attribution::Stranger { proof, .. } if proof.contains("check digits valid")));
        let mut misread = other.clone();
        misread.failed.push("composite");
        assert!(matches!(attribute_mrz(&h, &misread), Attribution::Doubt { .. }));
    }

    #[test]
    fn the_machine_readable_zone_names_the_holder() {
        let h = family();
        assert!(matches!(attribute(&h, "IDFRADUPONT<<LEA<<<<<<<<< 120314"), Attribution::Member { role: Role::PersonneACharge, .. }));
    }
}
