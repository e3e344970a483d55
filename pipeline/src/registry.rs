//! The registry snapshot (`--registry`, `report-contract.md`) and the checks of a request
//! against it.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use serde::Deserialize;
use thiserror::Error;

use crate::ids::{Departement, NumeroGuichet, NumeroUnique};
use crate::reason::ReasonCode;
use crate::slip::Fiche;
use crate::text::same_person;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Etat {
    Active,
    Radiee,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DemandeRecord {
    pub numero_unique: NumeroUnique,
    pub nom: String,
    pub prenoms: String,
    pub date_naissance: NaiveDate,
    #[serde(default)]
    pub email: Option<String>,
    pub etat: Etat,
    /// What the registry already holds, per category code.
    #[serde(default)]
    pub pieces: BTreeMap<String, u32>,
    /// Spouse or co-holder (optional; identity pieces are attributed with it).
    #[serde(default)]
    pub conjoint: Option<MembreRecord>,
    /// Dependants of the household.
    #[serde(default)]
    pub personnes_a_charge: Vec<MembreRecord>,
}

/// A member of the applicant's household.
#[derive(Debug, Clone, Deserialize)]
pub struct MembreRecord {
    pub nom: String,
    pub prenoms: String,
    #[serde(default)]
    pub date_naissance: Option<NaiveDate>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GuichetRecord {
    pub numero: NumeroGuichet,
    pub departement: Departement,
    pub email_referent: String,
}

#[derive(Debug, Clone, Deserialize)]
struct SnapshotFile {
    plan_version: String,
    #[serde(default)]
    demandes: Vec<DemandeRecord>,
    #[serde(default)]
    guichets: Vec<GuichetRecord>,
}

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("registry snapshot is not valid JSON of the contract: {0}")]
    Json(#[from] serde_json::Error),
    #[error("registry snapshot lists request {0} twice")]
    DuplicateDemande(String),
}

/// A read-only view of the registry at one moment.
#[derive(Debug, Clone)]
pub struct Registry {
    pub plan_version: String,
    demandes: HashMap<NumeroUnique, DemandeRecord>,
    guichets: HashMap<String, GuichetRecord>,
}

impl Registry {
    pub fn from_json(json: &str) -> Result<Self, RegistryError> {
        let file: SnapshotFile = serde_json::from_str(json)?;
        let mut demandes = HashMap::new();
        for d in file.demandes {
            let key = d.numero_unique.clone();
            if demandes.insert(key.clone(), d).is_some() {
                return Err(RegistryError::DuplicateDemande(key.to_string()));
            }
        }
        let guichets = file.guichets.into_iter().map(|g| (g.numero.as_str().to_string(), g)).collect();
        Ok(Self { plan_version: file.plan_version, demandes, guichets })
    }

    pub fn demande(&self, n: &NumeroUnique) -> Option<&DemandeRecord> {
        self.demandes.get(n)
    }

    pub fn guichet(&self, numero: &str) -> Option<&GuichetRecord> {
        self.guichets.get(&numero.to_ascii_uppercase())
    }

    pub fn guichet_by_email(&self, email: &str) -> Option<&GuichetRecord> {
        self.guichets.values().find(|g| g.email_referent.eq_ignore_ascii_case(email))
    }

    pub fn len(&self) -> usize {
        self.demandes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.demandes.is_empty()
    }
}

/// Territories the SNE serves: every département except those listed as running their own
/// system (configuration).
#[derive(Debug, Clone, Default)]
pub struct SneTerritories {
    pub hors_sne: Vec<String>,
}

impl SneTerritories {
    pub fn serves(&self, territoire: &str) -> bool {
        !self.hors_sne.iter().any(|t| t.eq_ignore_ascii_case(territoire))
    }
}

/// Checks a request number (and the identity printed on its fiche) against the registry.
pub fn check_request<'r>(
    registry: &'r Registry,
    territories: &SneTerritories,
    numero: &NumeroUnique,
    fiche: Option<&Fiche>,
) -> Result<&'r DemandeRecord, ReasonCode> {
    if !territories.serves(numero.territoire()) {
        return Err(ReasonCode::NumeroHorsSne);
    }
    let demande = registry.demande(numero).ok_or(ReasonCode::NumeroInconnu)?;
    if demande.etat == Etat::Radiee {
        return Err(ReasonCode::DemandeRadiee);
    }
    if let Some(f) = fiche {
        let same = same_person(&f.nom, &f.prenoms, &demande.nom, &demande.prenoms) && f.date_naissance == demande.date_naissance;
        if !same {
            return Err(ReasonCode::IncoherenceIdentite);
        }
    }
    Ok(demande)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT: &str = r#"{
      "plan_version": "2026.1",
      "demandes": [
        {"numero_unique": "0740126000123G0042", "nom": "DUPONT", "prenoms": "MARIE ANNE",
         "date_naissance": "1980-02-14", "email": "marie.dupont@example.org", "etat": "active",
         "pieces": {"RFR": 1, "IDD": 3}},
        {"numero_unique": "0740126000124G0042", "nom": "MARTIN", "prenoms": "LUC",
         "date_naissance": "1970-01-01", "etat": "radiee"}
      ],
      "guichets": [{"numero": "G0042", "departement": "074", "email_referent": "pj@bailleur-exemple.fr"}]
    }"#;

    fn fiche(nom: &str, prenoms: &str, naissance: &str) -> Fiche {
        Fiche {
            numero: NumeroUnique::parse("0740126000123G0042").expect("n"),
            nom: nom.into(),
            prenoms: prenoms.into(),
            date_naissance: NaiveDate::parse_from_str(naissance, "%Y-%m-%d").expect("d"),
            nb_documents: 1,
            nb_pages: 2,
            date_remplissage: NaiveDate::from_ymd_opt(2026, 11, 16).expect("d"),
        }
    }

    #[test]
    fn each_rule_gives_its_reason() {
        let reg = Registry::from_json(SNAPSHOT).expect("snapshot");
        let t = SneTerritories { hors_sne: vec!["987".into()] };
        let n = |s: &str| NumeroUnique::parse(s).expect("n");
        assert!(check_request(&reg, &t, &n("0740126000123G0042"), Some(&fiche("Dupont", "Marie", "1980-02-14"))).is_ok());
        assert_eq!(check_request(&reg, &t, &n("0740126000999G0042"), None).err(), Some(ReasonCode::NumeroInconnu));
        assert_eq!(check_request(&reg, &t, &n("9870126000123G0042"), None).err(), Some(ReasonCode::NumeroHorsSne));
        assert_eq!(check_request(&reg, &t, &n("0740126000124G0042"), None).err(), Some(ReasonCode::DemandeRadiee));
        assert_eq!(
            check_request(&reg, &t, &n("0740126000123G0042"), Some(&fiche("DUPONT", "MARIE", "1981-02-14"))).err(),
            Some(ReasonCode::IncoherenceIdentite)
        );
        assert_eq!(
            check_request(&reg, &t, &n("0740126000123G0042"), Some(&fiche("DURAND", "MARIE", "1980-02-14"))).err(),
            Some(ReasonCode::IncoherenceIdentite)
        );
        assert_eq!(reg.guichet("g0042").map(|g| g.email_referent.as_str()), Some("pj@bailleur-exemple.fr"));
        assert!(reg.guichet_by_email("PJ@bailleur-exemple.fr").is_some());
    }

    #[test]
    fn malformed_snapshots_are_errors() {
        assert!(Registry::from_json("{}").is_err());
        let bad_numero = SNAPSHOT.replace("0740126000124G0042", "XYZ");
        assert!(Registry::from_json(&bad_numero).is_err());
        let dup = SNAPSHOT.replace("0740126000124G0042", "0740126000123G0042");
        assert!(matches!(Registry::from_json(&dup), Err(RegistryError::DuplicateDemande(_))));
    }
}
