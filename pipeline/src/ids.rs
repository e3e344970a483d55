//! Typed identifiers of the domain, parsed once at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Conversions shared by the string identifiers: parsed from a `String` (serde), back to one,
/// displayed as is.
macro_rules! string_id {
    ($t:ident) => {
        impl TryFrom<String> for $t {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(n: $t) -> String {
                n.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// Position of a page in the mailing, across all inputs, from 0 (the report's `index`).
pub type PageIndex = usize;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{what} {value:?} is not valid: {why}")]
pub struct IdError {
    pub what: &'static str,
    pub value: String,
    pub why: &'static str,
    /// `why` as the bureau's people read it, in French.
    pub pourquoi: &'static str,
}

impl IdError {
    /// The error as a page or an API answer says it to people: « 12345 » n'est pas valide : …
    pub fn en_francais(&self) -> String {
        format!("« {} » n'est pas valide : {}", self.value, self.pourquoi)
    }
}

/// The 18-character request number of the SNE (`slips.md`): territory, MMYY, sequence, counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NumeroUnique(String);

impl NumeroUnique {
    /// Accepts lower case and upper-cases it; checks the shape only (no check digit exists).
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let value = raw.trim().to_ascii_uppercase();
        let err = |why, pourquoi| IdError { what: "numero unique", value: raw.to_string(), why, pourquoi };
        let b = value.as_bytes();
        if b.len() != 18 {
            return Err(err("must have 18 characters", "il compte 18 caractères, chiffres et lettres"));
        }
        let alnum = |c: u8| c.is_ascii_digit() || c.is_ascii_uppercase();
        if !b[0..3].iter().all(|&c| alnum(c)) {
            return Err(err("territory must be 3 characters [0-9A-Z]", "ses 3 premiers caractères (le territoire) sont des chiffres ou des lettres"));
        }
        let month = &value[3..5];
        if !matches!(month, "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12") {
            return Err(err("month of first deposit must be 01 to 12", "ses caractères 4 et 5 (le mois du premier dépôt) vont de 01 à 12"));
        }
        if !b[5..13].iter().all(u8::is_ascii_digit) {
            return Err(err("year and sequence must be digits", "ses caractères 6 à 13 (l'année et le rang) sont des chiffres"));
        }
        if !b[13..18].iter().all(|&c| alnum(c)) {
            return Err(err("counter code must be 5 characters [0-9A-Z]", "ses 5 derniers caractères (le guichet) sont des chiffres ou des lettres"));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Département code (`075`, `02A`) or `111` for Île-de-France.
    pub fn territoire(&self) -> &str {
        &self.0[0..3]
    }

    /// Code of the counter that registered the request (`GDPUB` = public portal).
    pub fn guichet_enregistreur(&self) -> &str {
        &self.0[13..18]
    }
}

string_id!(NumeroUnique);

/// A counter's (guichet's) number: 1 to 10 characters `[0-9A-Z]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NumeroGuichet(String);

impl NumeroGuichet {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let value = raw.trim().to_ascii_uppercase();
        let ok = (1..=10).contains(&value.len()) && value.bytes().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
        if ok {
            Ok(Self(value))
        } else {
            Err(IdError {
                what: "numero guichet",
                value: raw.to_string(),
                why: "must be 1 to 10 characters [0-9A-Z]",
                pourquoi: "un numéro de guichet compte 1 à 10 chiffres ou lettres",
            })
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_id!(NumeroGuichet);

/// A département on 3 characters (`075`, `974`, `02A`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Departement(String);

impl Departement {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let value = raw.trim().to_ascii_uppercase();
        let b = value.as_bytes();
        let ok = b.len() == 3
            && b[0].is_ascii_digit()
            && b[1].is_ascii_digit()
            && (b[2].is_ascii_digit() || (&value[..2] == "02" && (b[2] == b'A' || b[2] == b'B')));
        if ok {
            Ok(Self(value))
        } else {
            Err(IdError {
                what: "departement",
                value: raw.to_string(),
                why: "must be 3 characters like 075, 974 or 02A",
                pourquoi: "un département s'écrit sur 3 caractères, comme 075, 974 ou 02A",
            })
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_id!(Departement);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numero_unique_shapes() {
        let n = NumeroUnique::parse("0740126000123g0042").expect("valid");
        assert_eq!(n.as_str(), "0740126000123G0042");
        assert_eq!(n.territoire(), "074");
        assert_eq!(n.guichet_enregistreur(), "G0042");
        assert!(NumeroUnique::parse("02A0126000123GDPUB").is_ok());
        for bad in ["", "0740126000123G004", "0741326000123G0042", "0740026000123G0042", "07401260001X3G0042", "074012600012 G0042", "0740126000123G004é"] {
            assert!(NumeroUnique::parse(bad).is_err(), "{bad} should be refused");
        }
        // People read why in French; logs and the command line keep the English.
        let e = NumeroUnique::parse("12345").expect_err("too short");
        assert_eq!(e.en_francais(), "« 12345 » n'est pas valide : il compte 18 caractères, chiffres et lettres");
        assert_eq!(e.to_string(), r#"numero unique "12345" is not valid: must have 18 characters"#);
        let e = NumeroUnique::parse("0741326000123G0042").expect_err("month 13");
        assert!(e.en_francais().contains("de 01 à 12"), "{}", e.en_francais());
    }

    #[test]
    fn guichet_and_departement() {
        assert!(NumeroGuichet::parse("G0042").is_ok());
        assert!(NumeroGuichet::parse("").is_err());
        assert!(NumeroGuichet::parse("G0042G0042X").is_err());
        assert!(NumeroGuichet::parse("G-42").is_err());
        for ok in ["075", "974", "02A", "02b"] {
            assert!(Departement::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["75", "0750", "03A", "A75"] {
            assert!(Departement::parse(bad).is_err(), "{bad}");
        }
    }
}
