//! Whose identity document is it? The names read on the piece against the request's household:
//! the applicant files under IDD, the spouse under IDC, a dependant under IDP. A document that
//! names none of them is someone else's (INCOHERENCE_IDENTITE), never filed on a guess.

use scanbureau_pipeline::qualify::{Household, HouseholdMember};

use crate::lexicon::normalise;

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
    /// Names are printed but none is of the household.
    Stranger { read: String },
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

/// The surname field as printed (`Nom : X`, `Surname X`, MRZ `IDFRAX<<`), when one is legible.
fn printed_surname(text: &str) -> Option<String> {
    for marker in [" nom ", " surname ", " nom surname "] {
        if let Some(i) = text.find(marker) {
            let after = text[i + marker.len()..].split_whitespace().find(|w| w.len() >= 2 && !["surname", "nom", "usage"].contains(w));
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
        _ => match printed_surname(&text) {
            Some(read) if !household_has_surname(household, &read) => Attribution::Stranger { read },
            _ => Attribution::Unknown,
        },
    }
}

/// Words that make an address block's first line an organisation, not a person.
const ORGANISATIONS: &[&str] =
    &["sarl", "sas", "sasu", "sa", "sci", "eurl", "scp", "association", "societe", "mairie", "caf", "cabinet", "agence", "office", "service", "direction", "centre", "syndic"];
/// Courtesy words before a name.
const CIVILITIES: &[&str] = &["madame", "monsieur", "mme", "m", "mr", "et"];

/// Whom a letter is addressed to, from its address block: the first line is a name. A name
/// with none of the household's surnames is someone else's document.
pub fn addressed_to(household: &Household, block: &str) -> Attribution {
    let Some(first) = block.lines().map(str::trim).find(|l| l.chars().filter(|c| c.is_alphabetic()).count() >= 4) else { return Attribution::Unknown };
    let line = normalise(first);
    let words: Vec<&str> = line.split_whitespace().filter(|w| !CIVILITIES.contains(w)).collect();
    let looks_like_a_name = (2..=5).contains(&words.len()) && words.iter().all(|w| w.chars().all(char::is_alphabetic) && !ORGANISATIONS.contains(w));
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
        None => Attribution::Stranger { read: first.to_string() },
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
        assert_eq!(attribute(&h, "Nom : MARTIN Prénoms : LUC Né(e) le : 01/01/1990"), Attribution::Stranger { read: "martin".into() });
        assert_eq!(attribute(&h, "RÉPUBLIQUE FRANÇAISE ..."), Attribution::Unknown);
        // The surname alone (a child or the applicant?) does not decide.
        assert_eq!(attribute(&h, "Nom : DUPONT"), Attribution::Unknown);
    }

    #[test]
    fn a_letter_is_addressed_to_the_household_or_to_someone_else() {
        let h = family();
        assert!(matches!(addressed_to(&h, "Marie DUPONT\n12 rue Victor Hugo\n69001 LYON"), Attribution::Member { role: Role::Demandeur, .. }));
        assert!(matches!(addressed_to(&h, "OMAR N'DIAYE\n3 allée des Tilleuls"), Attribution::Member { role: Role::Conjoint, .. }));
        assert_eq!(addressed_to(&h, "Luc MARTIN\n8 rue des Lilas"), Attribution::Stranger { read: "Luc MARTIN".into() });
        // A misread surname is not a stranger's.
        assert_eq!(addressed_to(&h, "Marie DUPOMT\n12 rue Victor Hugo"), Attribution::Unknown);
        // An organisation, or nothing legible, tells nothing.
        assert_eq!(addressed_to(&h, "SARL BOULANGERIE DU PARC\n1 place Bellecour"), Attribution::Unknown);
        assert_eq!(addressed_to(&h, "12\n"), Attribution::Unknown);
    }

    #[test]
    fn the_machine_readable_zone_names_the_holder() {
        let h = family();
        assert!(matches!(attribute(&h, "IDFRADUPONT<<LEA<<<<<<<<< 120314"), Attribution::Member { role: Role::PersonneACharge, .. }));
    }
}
