//! The filing plan (plan de classement), loaded as data and validated: the registry changes it
//! (notably the maxima) without a rebuild.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use thiserror::Error;

use crate::reason::ReasonCode;

#[derive(Debug, Clone, Deserialize)]
pub struct PieceType {
    pub code: String,
    pub libelle: String,
    pub sensible: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Categorie {
    pub code: String,
    pub libelle: String,
    pub max: u32,
    pub types: Vec<PieceType>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FilingPlan {
    pub version: String,
    #[serde(rename = "categorie")]
    pub categories: Vec<Categorie>,
}

#[derive(Debug, Error)]
pub enum PlanError {
    #[error("filing plan is not valid TOML of the expected shape: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("filing plan: {0}")]
    Invalid(String),
}

impl FilingPlan {
    pub fn from_toml(text: &str) -> Result<Self, PlanError> {
        let plan: FilingPlan = toml::from_str(text)?;
        plan.validate()?;
        Ok(plan)
    }

    fn validate(&self) -> Result<(), PlanError> {
        let invalid = |m: String| Err(PlanError::Invalid(m));
        if self.version.trim().is_empty() {
            return invalid("version is empty".into());
        }
        if self.categories.is_empty() {
            return invalid("no category".into());
        }
        let mut seen = HashSet::new();
        for c in &self.categories {
            if !seen.insert(c.code.as_str()) {
                return invalid(format!("category {} is listed twice", c.code));
            }
            if c.max == 0 {
                return invalid(format!("category {} has a maximum of 0", c.code));
            }
            if c.types.is_empty() {
                return invalid(format!("category {} has no type", c.code));
            }
            let mut types = HashSet::new();
            for t in &c.types {
                if !types.insert(t.code.as_str()) {
                    return invalid(format!("type {} is listed twice in category {}", t.code, c.code));
                }
            }
        }
        Ok(())
    }

    pub fn categorie(&self, code: &str) -> Option<&Categorie> {
        self.categories.iter().find(|c| c.code == code)
    }

    pub fn piece_type(&self, categorie: &str, type_code: &str) -> Option<&PieceType> {
        self.categorie(categorie)?.types.iter().find(|t| t.code == type_code)
    }
}

/// Applies the category maxima to a request's pieces in order: a piece that would take its
/// category past the maximum (counting what the registry already holds) is refused with
/// `CATEGORIE_PLEINE`; the others go through. Returns one verdict per piece.
pub fn apply_maxima(plan: &FilingPlan, held: &BTreeMap<String, u32>, categories: &[Option<&str>]) -> Vec<Option<ReasonCode>> {
    let mut counts = held.clone();
    categories
        .iter()
        .map(|cat| {
            let cat = (*cat)?;
            let max = plan.categorie(cat)?.max;
            let n = counts.entry(cat.to_string()).or_insert(0);
            if *n >= max {
                Some(ReasonCode::CategoriePleine)
            } else {
                *n += 1;
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared_plan() -> FilingPlan {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/domain/plan-de-classement.toml");
        let text = std::fs::read_to_string(path).unwrap_or_else(|_| crate::config::DEFAULT_PLAN.to_string());
        FilingPlan::from_toml(&text).expect("the shared plan is valid")
    }

    #[test]
    fn shared_plan_loads() {
        let plan = shared_plan();
        assert_eq!(plan.version, "2026.1");
        assert_eq!(plan.categorie("IDD").map(|c| c.max), Some(3));
        assert!(plan.piece_type("MOS", "CERTIFICAT_MEDICAL").is_some_and(|t| t.sensible));
    }

    #[test]
    fn invalid_plans_are_refused() {
        assert!(FilingPlan::from_toml("version = \"x\"").is_err());
        let dup = "version = \"1\"\n[[categorie]]\ncode=\"A\"\nlibelle=\"a\"\nmax=1\ntypes=[{code=\"T\",libelle=\"t\",sensible=false}]\n[[categorie]]\ncode=\"A\"\nlibelle=\"a\"\nmax=1\ntypes=[{code=\"T\",libelle=\"t\",sensible=false}]";
        assert!(matches!(FilingPlan::from_toml(dup), Err(PlanError::Invalid(_))));
        let zero = "version = \"1\"\n[[categorie]]\ncode=\"A\"\nlibelle=\"a\"\nmax=0\ntypes=[{code=\"T\",libelle=\"t\",sensible=false}]";
        assert!(FilingPlan::from_toml(zero).is_err());
    }

    #[test]
    fn maxima_refuse_only_the_excess_piece() {
        let plan = shared_plan();
        let held = BTreeMap::from([("IDD".to_string(), 2), ("PRI".to_string(), 2)]);
        let verdicts = apply_maxima(&plan, &held, &[Some("IDD"), Some("IDD"), Some("RFR"), Some("PRI"), None]);
        assert_eq!(verdicts, vec![None, Some(ReasonCode::CategoriePleine), None, Some(ReasonCode::CategoriePleine), None]);
    }
}
