//! People's accounts: roles, argon2id password hashes, random tokens.
//!
//! A password is never kept, logged or compared in clear: only its argon2id hash (PHC string,
//! salt inside) is stored. Session and CSRF tokens are 32 random bytes from the operating
//! system; the database keeps a session token's SHA-256 only.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use thiserror::Error;

/// What an account may do in the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A counter's agent: deposits, slips, its own mailings, incidents.
    Counter,
    /// A bureau operator: batches, the review queue, failed jobs.
    Operator,
    /// A bureau supervisor: the SLA dashboard, priorities, exports (and what operators see).
    Supervisor,
    /// Manages the accounts (create, disable, reset) and sees nothing else: no mailing, no piece.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Counter => "counter",
            Role::Operator => "operator",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "counter" => Some(Role::Counter),
            "operator" => Some(Role::Operator),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    /// Bureau staff see every counter's mailings (an administrator sees none).
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Operator | Role::Supervisor)
    }
}

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    /// The counter of a counter's agent.
    pub guichet: Option<String>,
    /// May open pieces the filing plan marks sensitive.
    pub sensitive: bool,
}

impl Account {
    /// How the audit trail names this person.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role.as_str(), self.email)
    }
    /// May this account see a mailing of counter `guichet`?
    pub fn sees_counter(&self, guichet: Option<&str>) -> bool {
        self.role.is_staff() || (self.guichet.is_some() && self.guichet.as_deref() == guichet)
    }
}

#[derive(Debug, Error)]
pub enum AccountError {
    #[error("the password must have at least {MIN_PASSWORD} characters")]
    PasswordTooShort,
    /// Twelve times the same letter, or two letters in turn: long, and guessed at once.
    #[error("the password must have at least {MIN_DISTINCT} different characters")]
    PasswordTooSimple,
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    #[error("password hashing: {0}")]
    Hash(String),
}

impl AccountError {
    /// What the person changing a password is told, in French.
    pub fn en_francais(&self) -> String {
        match self {
            Self::PasswordTooShort => format!("Le mot de passe doit compter au moins {MIN_PASSWORD} caractères."),
            Self::PasswordTooSimple => format!("Le mot de passe doit compter au moins {MIN_DISTINCT} caractères différents."),
            Self::Random(_) | Self::Hash(_) => "Le mot de passe n'a pas pu être enregistré ; réessayez dans un instant.".into(),
        }
    }
}

pub const MIN_PASSWORD: usize = 12;
pub const MIN_DISTINCT: usize = 6;

/// argon2id with OWASP's first recommended setting (19 MiB, 2 passes, 1 lane): about 25 ms a
/// login on the bureau's machines, slow enough for anyone trying passwords off a stolen table.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash_password(password: &str) -> Result<String, AccountError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(AccountError::PasswordTooShort);
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < MIN_DISTINCT {
        return Err(AccountError::PasswordTooSimple);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AccountError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Hash(e.to_string()))?;
    Ok(hasher().hash_password(password.as_bytes(), &salt).map_err(|e| AccountError::Hash(e.to_string()))?.to_string())
}

/// Checks a password against a stored hash; a malformed hash never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(h) => hasher().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the e-mail is unknown, so that an unknown address costs the
/// same time as a wrong password (no account discovery by timing).
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy-password-never-valid").unwrap_or_default())
}

/// 32 random bytes as 64 hex digits.
pub fn random_token() -> Result<String, AccountError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| AccountError::Random(e.to_string()))?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct horse"), "the hash does not carry the password");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("correct horse battery", "not a hash"));
        // Salted: the same password twice gives two hashes.
        assert_ne!(h, hash_password("correct horse battery").expect("hash"));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(matches!(hash_password("short"), Err(AccountError::PasswordTooShort)));
        assert!(matches!(hash_password("aaaaaaaaaaaa"), Err(AccountError::PasswordTooSimple)));
        assert!(matches!(hash_password("abababababababab"), Err(AccountError::PasswordTooSimple)));
        assert!(hash_password("correct horse battery").is_ok());
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (random_token().expect("token"), random_token().expect("token"));
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &b));
        assert!(!same_secret(&a, &a[..63]));
    }

    #[test]
    fn counters_see_their_own_mailings_and_staff_see_all() {
        let counter = Account { id: 1, email: "a@x".into(), display_name: String::new(), role: Role::Counter, guichet: Some("G1".into()), sensitive: false };
        assert!(counter.sees_counter(Some("G1")));
        assert!(!counter.sees_counter(Some("G2")));
        assert!(!counter.sees_counter(None));
        let operator = Account { role: Role::Operator, guichet: None, ..counter };
        assert!(operator.sees_counter(Some("G2")) && operator.sees_counter(None));
    }
}
