//! The rules that tell types apart (`data/lexicon.toml`), loaded as data and checked against
//! the filing plan at start-up, and the scoring of a text against them.

use serde::Deserialize;
use thiserror::Error;

use scanbureau_pipeline::plan::FilingPlan;
use scanbureau_pipeline::text::unaccent;

pub const DEFAULT_LEXICON: &str = include_str!("../data/lexicon.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct TypeRule {
    pub code: String,
    pub categories: Vec<String>,
    #[serde(default)]
    pub identity: bool,
    #[serde(default)]
    pub card: bool,
    /// The document names several people by nature (a livret de famille, a civil-status act,
    /// a judgment): names on it never make it someone else's.
    #[serde(default)]
    pub multi_person: bool,
    /// Another type's pages carry this type's title too (a livret de famille's pages are
    /// extracts of acts): a page it tells is read on before it is decided.
    #[serde(default)]
    pub read_on: bool,
    /// One document of many pages, each headed its own way (a livret de famille: the couple's
    /// page, then a page per child): consecutive pages it tells best are one piece.
    #[serde(default)]
    pub booklet: bool,
    pub title: Vec<String>,
    #[serde(default)]
    pub text: Vec<String>,
    #[serde(default)]
    pub not: Vec<String>,
    /// The document's own full name: read anywhere on the page, even in a line the layout did
    /// not take for a title, it counts as the title (an avis de situation déclarative's heading
    /// read as body text, under "impôt sur les revenus" taken for the title).
    #[serde(default)]
    pub named: Vec<String>,
    /// Phrases of a form of the document that proves less than the document itself, which an
    /// operator verifies before it is filed (a single-use attestation drawn from an identity
    /// card is not the card: it is checked online, for its recipient and its use-by date).
    #[serde(default)]
    pub checked: Vec<String>,
    /// Headings only a later page of the document prints (a tax notice's "Détail des
    /// revenus"): such a page under the document's own title goes on with it rather than
    /// starting another one of the same kind.
    #[serde(default)]
    pub continued: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OutsideRule {
    pub label: String,
    pub title: Vec<String>,
    #[serde(default)]
    pub text: Vec<String>,
    /// As [`TypeRule::continued`]: a bill's "Détail de votre facture".
    #[serde(default)]
    pub continued: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Lexicon {
    #[serde(rename = "type")]
    pub types: Vec<TypeRule>,
    #[serde(default)]
    pub outside: Vec<OutsideRule>,
    /// Words a document's own number follows ("Facture n° …", "N° de facture : …"): pages that
    /// print the same number after one of them are pages of one document.
    #[serde(default)]
    pub references: Vec<String>,
}

#[derive(Debug, Error)]
pub enum LexiconError {
    #[error("lexicon is not valid TOML of the expected shape: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("lexicon rule {code} has no category")]
    NoCategory { code: String },
}

impl Lexicon {
    /// Parses the rules and fits them to `plan`: the registry changes its plan without asking,
    /// so a rule for a (category, type) the plan no longer has is dropped with a warning rather
    /// than stopping the bureau; types of the plan without a rule ([`Lexicon::uncovered`]) have
    /// their pieces sent to review.
    pub fn load(text: &str, plan: &FilingPlan) -> Result<Self, LexiconError> {
        let mut lex: Lexicon = toml::from_str(text)?;
        if let Some(t) = lex.types.iter().find(|t| t.categories.is_empty()) {
            return Err(LexiconError::NoCategory { code: t.code.clone() });
        }
        for t in &mut lex.types {
            t.categories.retain(|c| {
                let known = plan.piece_type(c, &t.code).is_some();
                if !known {
                    tracing::warn!(rule = %t.code, categorie = %c, plan = %plan.version, "the filing plan has no such type in that category: rule ignored there");
                }
                known
            });
        }
        lex.types.retain(|t| !t.categories.is_empty());
        for (c, t) in lex.uncovered(plan) {
            tracing::warn!(categorie = %c, r#type = %t, plan = %plan.version, "no rule recognises this type of the plan: its pieces will go to review");
        }
        for t in &mut lex.types {
            for p in t
                .title
                .iter_mut()
                .chain(t.text.iter_mut())
                .chain(t.not.iter_mut())
                .chain(t.named.iter_mut())
                .chain(t.checked.iter_mut())
                .chain(t.continued.iter_mut())
            {
                *p = phrase(p);
            }
        }
        for o in &mut lex.outside {
            for p in o.title.iter_mut().chain(o.text.iter_mut()).chain(o.continued.iter_mut()) {
                *p = phrase(p);
            }
        }
        Ok(lex)
    }

    /// (category, type) pairs of the plan no rule recognises.
    pub fn uncovered(&self, plan: &FilingPlan) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for c in &plan.categories {
            for t in &c.types {
                if !self.types.iter().any(|r| r.code == t.code && r.categories.contains(&c.code)) {
                    out.push((c.code.clone(), t.code.clone()));
                }
            }
        }
        out
    }
}

/// A rule's phrase, normalised; `^abc` matches any word starting with `abc` (the machine-
/// readable zone of a card runs the holder's name on after its prefix: `IDFRADUPONT<<`).
fn phrase(p: &str) -> String {
    match p.strip_prefix('^') {
        Some(prefix) => normalise(prefix).trim_end().to_string(),
        None => normalise(p),
    }
}

/// Lower case, accents and punctuation removed, single spaces, padded with a space each side
/// (so a phrase matches whole words only). `<` is kept: it marks machine-readable zones.
pub fn normalise(text: &str) -> String {
    let mut out = String::from(" ");
    for ch in text.chars() {
        match unaccent(ch) {
            Some(plain) => out.push_str(plain),
            None if ch.is_alphanumeric() || ch == '<' => out.push(ch.to_ascii_lowercase()),
            None if !out.ends_with(' ') => out.push(' '),
            None => {}
        }
    }
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out
}

/// How much of `phrase` is in `text` (both normalised): 1 for the phrase itself; otherwise the
/// share of its words (of 3+ letters) present, when at least 3/4 of them are (OCR drops or
/// mangles a word now and then); 0 below that.
pub fn coverage(text: &str, phrase: &str) -> f32 {
    if text.contains(phrase) {
        return 1.0;
    }
    let words: Vec<&str> = phrase.split_whitespace().filter(|w| w.len() >= 3).collect();
    if words.len() < 3 {
        return 0.0;
    }
    let found = words.iter().filter(|w| text.contains(&format!(" {w} "))).count();
    let share = found as f32 / words.len() as f32;
    if share >= 0.75 { share * 0.8 } else { 0.0 }
}

/// The score of one type (or outside rule) for a page or piece, with what matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub score: f32,
    pub matched: Vec<String>,
}

/// Text of a page or piece as the scorer sees it: title lines and the rest, normalised.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub title: String,
    pub text: String,
    pub cards: u8,
}

pub const TITLE_IN_TITLE: f32 = 5.0;
const TITLE_IN_TEXT: f32 = 2.0;
const TEXT_PHRASE: f32 = 1.0;
const TEXT_CAP: f32 = 4.0;
const NOT_IN_TITLE: f32 = 6.0;
const NOT_IN_TEXT: f32 = 1.0;
const CARD_BONUS: f32 = 2.0;

/// The text with its references to acts taken out of title matching: "extrait délivré conforme
/// à l'acte de naissance n°", in a livret de famille's boxes, names an act the page is not.
fn without_references(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(" a l acte ") { text.replace(" a l acte ", " a l reference ").into() } else { text.into() }
}

/// The best two title phrases found, the second counting half; a document's full name (`named`)
/// counts as found in the title wherever it is read.
fn title_part(r: &Reading, phrases: &[String], named: &[String], matched: &mut Vec<String>) -> f32 {
    let mut best = [0.0f32; 2];
    let text = without_references(&r.text);
    let names = named.iter().filter(|p| r.title.contains(p.as_str()) || r.text.contains(p.as_str())).map(|p| (p, TITLE_IN_TITLE, "name"));
    let found = phrases.iter().map(|p| {
        let in_title = coverage(&r.title, p) * TITLE_IN_TITLE;
        let in_text = coverage(&text, p) * TITLE_IN_TEXT;
        (p, in_title.max(in_text), if in_title >= in_text { "title" } else { "text" })
    });
    for (p, s, place) in found.chain(names) {
        if s > 0.0 {
            matched.push(format!("{place}:{}", p.trim()));
            if s > best[0] {
                best = [s, best[0]];
            } else if s > best[1] {
                best[1] = s;
            }
        }
    }
    best[0] + 0.5 * best[1]
}

fn text_part(r: &Reading, phrases: &[String], matched: &mut Vec<String>) -> f32 {
    let mut s = 0.0;
    for p in phrases {
        let c = coverage(&r.text, p).max(coverage(&r.title, p));
        if c > 0.0 {
            matched.push(format!("word:{}", p.trim()));
            s += c * TEXT_PHRASE;
        }
    }
    s.min(TEXT_CAP)
}

pub fn score_type(rule: &TypeRule, r: &Reading) -> Score {
    let mut matched = Vec::new();
    let mut score = title_part(r, &rule.title, &rule.named, &mut matched) + text_part(r, &rule.text, &mut matched);
    for p in &rule.not {
        if coverage(&r.title, p) >= 1.0 {
            score -= NOT_IN_TITLE;
            matched.push(format!("against:{}", p.trim()));
        } else if coverage(&r.text, p) >= 1.0 {
            score -= NOT_IN_TEXT;
            matched.push(format!("against:{}", p.trim()));
        }
    }
    if score > 0.0 && rule.card && r.cards > 0 {
        score += CARD_BONUS;
        matched.push("layout:card".into());
    }
    Score { score, matched }
}

pub fn score_outside(rule: &OutsideRule, r: &Reading) -> Score {
    let mut matched = Vec::new();
    let score = title_part(r, &rule.title, &[], &mut matched) + text_part(r, &rule.text, &mut matched);
    Score { score, matched }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_drops_accents_and_punctuation() {
        assert_eq!(normalise("AVIS D'IMPÔT 2025 — sur les revenus"), " avis d impot 2025 sur les revenus ");
        assert_eq!(normalise("IDFRA<DUPONT<<"), " idfra<dupont<< ");
    }

    #[test]
    fn coverage_tolerates_one_mangled_word_in_a_long_phrase() {
        let t = normalise("attestation de paiernent des prestations familiales");
        assert_eq!(coverage(&t, &normalise("prestations familiales")), 1.0);
        assert!(coverage(&t, &normalise("attestation de paiement des prestations familiales")) > 0.5);
        assert_eq!(coverage(&t, &normalise("bulletin de salaire")), 0.0);
    }

    #[test]
    fn a_document_s_full_name_counts_as_its_title_wherever_it_is_read() {
        let plan = FilingPlan::from_toml(scanbureau_pipeline::config::DEFAULT_PLAN).expect("plan");
        let lex = Lexicon::load(DEFAULT_LEXICON, &plan).expect("lexicon");
        let rule = |code: &str| lex.types.iter().find(|t| t.code == code).expect("rule");
        // An avis de situation déclarative's first page as it was read: its name in the body,
        // "impôt sur les revenus" in the title lines.
        let r = Reading {
            title: normalise("RÉPUBLIQUE FRANÇAISE IMPÔT SUR LES REVENUS de l'année MONTANT DE VOTRE IMPÔT Numéro fiscal :"),
            text: normalise(
                "DIRECTION GÉNÉRALE DES FINANCES PUBLIQUES x L AVIS DE SITUATION DÉCLARATIVE À L'IMPÔT SUR LE REVENU Pour accéder à votre espace particulier",
            ),
            cards: 0,
        };
        let (avis, asd) = (score_type(rule("AVIS_IMPOSITION"), &r), score_type(rule("AVIS_SITUATION_DECLARATIVE"), &r));
        assert!(asd.score > avis.score, "{asd:?} {avis:?}");
        assert!(asd.matched.contains(&"name:avis de situation declarative".to_string()), "{asd:?}");
    }

    #[test]
    fn the_bundled_lexicon_matches_the_plan() {
        let plan = FilingPlan::from_toml(scanbureau_pipeline::config::DEFAULT_PLAN).expect("plan");
        let lex = Lexicon::load(DEFAULT_LEXICON, &plan).expect("lexicon");
        assert_eq!(lex.uncovered(&plan), Vec::<(String, String)>::new());
    }

    #[test]
    fn rules_follow_the_plan_they_are_given() {
        let plan = FilingPlan::from_toml(scanbureau_pipeline::config::DEFAULT_PLAN).expect("plan");
        // A rule for a category the plan does not file that type under is left out there.
        let odd =
            "[[type]]\ncode = \"CNI\"\ncategories = [\"RFR\", \"IDD\"]\ntitle = [\"x\"]\n[[type]]\ncode = \"GONE\"\ncategories = [\"RFR\"]\ntitle = [\"y\"]\n";
        let lex = Lexicon::load(odd, &plan).expect("loads");
        assert_eq!(lex.types.len(), 1);
        assert_eq!(lex.types[0].categories, vec!["IDD".to_string()]);
        assert!(lex.uncovered(&plan).contains(&("RFR".to_string(), "AVIS_IMPOSITION".to_string())));
        let bad = "[[type]]\ncode = \"CNI\"\ncategories = []\ntitle = [\"x\"]\n";
        assert!(matches!(Lexicon::load(bad, &plan), Err(LexiconError::NoCategory { .. })));
    }
}
