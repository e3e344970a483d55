//! Site configuration: which calendar, which territories, which thresholds. Parsed from TOML;
//! the embedded defaults let the one-shot job run with no file at all.

use serde::Deserialize;
use thiserror::Error;

use crate::calendar::{Subdivision, WorkingCalendar};
use crate::registry::SneTerritories;

/// The filing plan bundled with the program (a copy of the registry's current plan).
pub const DEFAULT_PLAN: &str = include_str!("../data/plan-de-classement.toml");

/// The sample registry snapshot bundled with the program (it matches `scans-samples/`).
pub const SAMPLE_REGISTRY: &str = include_str!("../../scans-samples/registry.json");

/// The default site configuration, also shipped as `scans-samples/site.toml` for reference.
pub const DEFAULT_SITE: &str = include_str!("../data/site.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DuplexMode {
    /// Decide per input file from where the blank pages fall.
    #[default]
    Auto,
    /// Every input file is front, back, front, back...
    Duplex,
    /// One scanned image per sheet.
    Simplex,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub site: SiteSection,
    pub sne: SneSection,
    #[serde(default)]
    pub scan: ScanSection,
    #[serde(default)]
    pub qualify: QualifySection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSection {
    pub name: String,
    /// Holiday calendar code: FR, 57, 6AE, 971, 972, 973, 974, 976, BL, MF.
    pub calendar: String,
    /// Sender address of the notices.
    pub bureau_email: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SneSection {
    /// Territories (first 3 characters of a numéro unique) that run their own system.
    #[serde(default)]
    pub hors_sne: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ScanSection {
    #[serde(default)]
    pub duplex: DuplexMode,
    /// Search the whole page for a QR code when the corners have none (slower).
    #[serde(default)]
    pub thorough_qr: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualifySection {
    /// Below this confidence a piece waits for an operator (`status: review`).
    pub review_threshold: f32,
    /// Tesseract language model(s), e.g. "fra" or "fra+eng".
    #[serde(default = "default_ocr_language")]
    pub ocr_language: String,
    /// Megapixels OCR may read on one page, all passes together (a measure of work, not of
    /// time: the same page is read the same way however busy the machine is).
    #[serde(default = "default_ocr_budget")]
    pub ocr_page_budget_mpx: f32,
    /// Read the whole page when the cheap passes found nothing known.
    #[serde(default = "default_true")]
    pub ocr_whole_page: bool,
    /// The certificates 2D-Doc signatures are checked against: a file or a folder of PEM or DER
    /// certificates, or of key lists (see the README). None: 2D-Docs are read, not verified.
    #[serde(default)]
    pub twoddoc_trust: Option<String>,
}

fn default_true() -> bool {
    true
}

fn default_ocr_language() -> String {
    "fra".into()
}

fn default_ocr_budget() -> f32 {
    12.0
}

impl Default for QualifySection {
    fn default() -> Self {
        Self {
            review_threshold: 0.80,
            ocr_language: default_ocr_language(),
            ocr_page_budget_mpx: default_ocr_budget(),
            ocr_whole_page: true,
            twoddoc_trust: None,
        }
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("site configuration is not valid TOML of the expected shape: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("site configuration: {0}")]
    Invalid(String),
}

impl SiteConfig {
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: SiteConfig = toml::from_str(text)?;
        if Subdivision::from_code(&cfg.site.calendar).is_none() {
            return Err(ConfigError::Invalid(format!("site.calendar {:?} is not one of FR, 57, 6AE, 971, 972, 973, 974, 976, BL, MF", cfg.site.calendar)));
        }
        if !cfg.site.bureau_email.contains('@') {
            return Err(ConfigError::Invalid(format!("site.bureau_email {:?} is not an address", cfg.site.bureau_email)));
        }
        if !(0.0..=1.0).contains(&cfg.qualify.review_threshold) {
            return Err(ConfigError::Invalid("qualify.review_threshold must be between 0 and 1".into()));
        }
        let lang = &cfg.qualify.ocr_language;
        if lang.is_empty() || !lang.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '_') {
            return Err(ConfigError::Invalid(format!("qualify.ocr_language {lang:?} is not a Tesseract language (e.g. \"fra\")")));
        }
        if !(0.1..=100.0).contains(&cfg.qualify.ocr_page_budget_mpx) {
            return Err(ConfigError::Invalid("qualify.ocr_page_budget_mpx must be between 0.1 and 100".into()));
        }
        Ok(cfg)
    }

    pub fn embedded_default() -> Self {
        Self::from_toml(DEFAULT_SITE).expect("the embedded site configuration is valid")
    }

    pub fn calendar(&self) -> WorkingCalendar {
        WorkingCalendar::new(Subdivision::from_code(&self.site.calendar).unwrap_or(Subdivision::Metropole))
    }

    pub fn territories(&self) -> SneTerritories {
        SneTerritories { hors_sne: self.sne.hors_sne.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_are_valid() {
        let cfg = SiteConfig::embedded_default();
        assert_eq!(cfg.calendar().subdivision, Subdivision::Metropole);
        assert!(crate::plan::FilingPlan::from_toml(DEFAULT_PLAN).is_ok());
        assert!(crate::registry::Registry::from_json(SAMPLE_REGISTRY).is_ok());
    }

    #[test]
    fn bad_site_files_say_what_is_wrong() {
        let bad = DEFAULT_SITE.replace("calendar = \"FR\"", "calendar = \"XX\"");
        let e = SiteConfig::from_toml(&bad).expect_err("bad calendar");
        assert!(e.to_string().contains("site.calendar"));
        assert!(SiteConfig::from_toml("[site]\nname='x'").is_err());
    }
}
