//! A request's pages become pieces: where each document starts (segmentation), what it is
//! (classification against the lexicon and the plan), whose it is (identity), and why.
//!
//! Pure: it works on the features the reader left on each page, no pixels and no OCR.

use scanbureau_pipeline::ids::PageIndex;
use scanbureau_pipeline::qualify::{Household, PageFeatures, PieceDraft};
use scanbureau_pipeline::reason::ReasonCode;

use crate::identity::{Attribution, addressed_to, attribute, attribute_mrz};
use crate::lexicon::{Lexicon, Reading, Score, TITLE_IN_TITLE, coverage, normalise, score_outside, score_type};
use crate::mrz::{self, LicenceLine, Mrz, MrzDocument};
use crate::twoddoc::{self, TrustList, TwoDDoc, Verdict};

/// "Page 2 / 3", "2/3", "page 2 sur 3" in a page's text: (2, 3). Dates (14/03/2026) are not.
pub fn page_marker(raw: &str) -> Option<(u32, u32)> {
    let lower = raw.to_lowercase();
    let b = lower.as_bytes();
    let number_at = |i: usize| -> Option<(u32, usize)> {
        let end = (i..b.len()).find(|&j| !b[j].is_ascii_digit()).unwrap_or(b.len());
        (end > i && end - i <= 2).then(|| (lower[i..end].parse().ok(), end)).and_then(|(n, e)| n.map(|n| (n, e)))
    };
    for i in 0..b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'/' || b[i - 1] == b'.' || b[i - 1] == b',')) {
            continue;
        }
        let Some((k, mut j)) = number_at(i) else { continue };
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        let sep = if lower[j..].starts_with('/') {
            1
        } else if lower[j..].starts_with("sur") && lower[..i].trim_end().ends_with("page") {
            3
        } else {
            continue;
        };
        j += sep;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        let Some((n, end)) = number_at(j) else { continue };
        if end < b.len() && (b[end] == b'/' || b[end].is_ascii_digit()) {
            continue;
        }
        if (1..=k.max(1)).contains(&k) && k <= n && (2..=30).contains(&n) {
            return Some((k, n));
        }
    }
    None
}

/// Lines of a page's text that count as its top (issuer, address block, title).
const HEAD_LINES: usize = 8;
/// Words from which a line is running prose, not a heading or an address line.
const PROSE_WORDS: usize = 14;

/// A normalised line of running prose: many words, nearly all of letters (a letterhead's
/// address, numbers and web address on one line is not).
fn prose(line: &str) -> bool {
    let tokens = line.split_whitespace().count();
    let words = line.split_whitespace().filter(|w| w.len() >= 2 && w.chars().all(char::is_alphabetic)).count();
    words >= PROSE_WORDS && words * 100 >= tokens * 85
}

/// The score from which a page is taken as a booklet's (its formulas read, if not its heading).
const BOOKLET_PAGE: f32 = 2.0;
/// How far below the best type a booklet's score on a page without a title of its own may be
/// for the page to go on the booklet before it: a child's page carries the "Extrait de l'acte de
/// décès n°" box, which reads as a death extract almost as well as a booklet page.
const BOOKLET_GOES_ON: f32 = 1.0;
/// What pages in a row pointing to the same booklet add to its type: one page of act formulas
/// could be a single extract, several in a row are the booklet's pages (as much as a title read
/// in the text).
const BOOKLET_PAGES: f32 = 2.0;
/// A title stands on its own line: a phrase found in a line much longer than itself is a
/// mention in running text, not a title.
const TITLE_LINE_SLACK: usize = 24;
/// Tighter, for a line anywhere on the page to count as the document's title.
const STANDALONE_SLACK: usize = 12;

/// A normalised line's length without its numbers: a title followed by its number ("carte
/// nationale d identite n 880692310285", "avis d impot 2024") still stands alone.
fn wording_len(line: &str) -> usize {
    line.split_whitespace().filter(|w| !w.bytes().all(|b| b.is_ascii_digit()) && !matches!(*w, "n" | "no")).map(|w| w.len() + 1).sum::<usize>() + 1
}

/// Whether a normalised line holds a title phrase as a title, not as a reference to another
/// document ("extrait délivré conforme à l'acte de mariage n° 73" refers to an act: it is a
/// livret's box, not an act).
fn titled_by(line: &str, phrase: &str) -> bool {
    line.match_indices(phrase).any(|(at, _)| !line[..at].ends_with(" a l") && !line[..at].ends_with(" conforme a"))
}

/// Whether a normalised line ends in an empty number label: a form's field waiting for its
/// number (a livret's box "Extrait de l'acte de décès n°"), not a title (a title followed by its
/// number, "carte nationale d'identité n° 880692310285", still is one).
fn form_field(line: &str) -> bool {
    line.trim_end().ends_with(" n")
}

/// What the scorer makes of one page.
#[derive(Debug, Clone)]
struct PageView {
    index: PageIndex,
    reading: Reading,
    marker: Option<(u32, u32)>,
    card: bool,
    /// Types (and outside documents, after the types) whose title is in the page's title lines.
    titled: Vec<usize>,
    /// Types whose title phrase is in the first lines read at the top of the page (where a
    /// title the layout did not single out would be).
    mentioned: Vec<usize>,
    /// Among `titled`, types that are cards.
    titled_cards: bool,
    /// The booklet type (a livret de famille) the page's reading points to best, if it does.
    booklet: Option<usize>,
    /// The booklet type the page could go on, its formulas read nearly as well as the best
    /// type's (see [`BOOKLET_GOES_ON`]).
    booklet_like: Option<usize>,
    /// Whose card it is, when the page is a card and names someone.
    holder: Option<String>,
    /// The address block's text, when the page has one.
    addressee: Option<String>,
    /// The machine-readable zone read on the page.
    mrz: Option<Mrz>,
    /// A driving licence's machine-readable line, read with its check digits holding.
    licence: Option<LicenceLine>,
    /// The 2D-Docs printed on the page.
    twoddocs: Vec<TwoDDoc>,
    /// The document's own numbers printed on the page (see [`references`]).
    references: Vec<String>,
    /// Types (and outside documents, after the types) whose title and one of whose later
    /// pages' headings (`continued`) are in the page's title lines, with that heading; none
    /// that a `not` phrase read on the page contradicts.
    continues: Vec<(usize, String)>,
    /// Among `titled` and `mentioned`, those no `not` phrase read on the page contradicts: what
    /// a document begun on this page may be continued as.
    named_as: Vec<usize>,
    /// Lines of the page's text that are a title phrase standing alone (a title the layout did
    /// not single out, such as one read by the whole-page pass).
    standalone_titles: Vec<String>,
    unreadable: bool,
    words: usize,
}

fn view_of(index: PageIndex, f: &PageFeatures, lex: &Lexicon, household: &Household) -> PageView {
    let raw = f.text.as_deref().unwrap_or("");
    // A card's title is printed small on the card: whatever the card says counts as its title.
    let title = if f.layout.cards > 0 { format!("{} {raw}", f.title.as_deref().unwrap_or("")) } else { f.title.clone().unwrap_or_default() };
    let mut reading = Reading { title: normalise(&title), text: normalise(raw), cards: f.layout.cards };
    // A document's full name read anywhere on the page is its title, for every rule: its own
    // (see `named`) and the rules that say they are not it (an avis de situation déclarative
    // "valant avis d'impôt", its heading read as body text, is not an avis d'impôt).
    for name in lex.types.iter().flat_map(|t| &t.named) {
        if reading.text.contains(name.as_str()) && !reading.title.contains(name.as_str()) {
            reading.title.push_str(name.trim_start());
        }
    }
    // The top ends where running prose begins: a title under a paragraph is a section's
    // heading (a lease's "Congé et résiliation"), not the start of another document.
    let head: Vec<String> = raw.lines().filter(|l| !l.trim().is_empty()).take(HEAD_LINES).map(normalise).take_while(|l| !prose(l)).collect();
    let standalone =
        |phrases: &[String]| phrases.iter().any(|p| head.iter().any(|l| !form_field(l) && titled_by(l, p) && wording_len(l) <= p.len() + TITLE_LINE_SLACK));
    let titles: Vec<&[String]> = lex.types.iter().map(|t| t.title.as_slice()).chain(lex.outside.iter().map(|o| o.title.as_slice())).collect();
    let scored: Vec<Score> = lex.types.iter().map(|t| score_type(t, &reading)).collect();
    let best = (0..scored.len()).max_by(|&a, &b| scored[a].score.total_cmp(&scored[b].score));
    let booklet = best.filter(|&i| lex.types[i].booklet && scored[i].score >= BOOKLET_PAGE);
    let best_score = best.map_or(0.0, |i| scored[i].score);
    let booklet_like = (0..scored.len()).find(|&i| lex.types[i].booklet && scored[i].score >= BOOKLET_PAGE && scored[i].score + BOOKLET_GOES_ON >= best_score);
    let matches: Vec<Vec<String>> = scored.into_iter().map(|s| s.matched).chain(lex.outside.iter().map(|o| score_outside(o, &reading).matched)).collect();
    let titled: Vec<usize> = (0..matches.len()).filter(|&i| matches[i].iter().any(|m| m.starts_with("title:"))).collect();
    let mentioned: Vec<usize> = (0..titles.len()).filter(|&i| standalone(titles[i])).collect();
    // Each line of the text, normalised once for the title and reference rules.
    let lines: Vec<String> = raw.lines().map(normalise).collect();
    let standalone_titles: Vec<String> = lines
        .iter()
        .filter(|l| {
            !form_field(l)
                && titles.iter().any(|phrases| phrases.iter().any(|p| p.trim().len() >= 6 && titled_by(l, p) && wording_len(l) <= p.len() + STANDALONE_SLACK))
        })
        .cloned()
        .collect();
    let titled_cards = titled.iter().any(|&i| lex.types.get(i).is_some_and(|t| t.card));
    // A later page's heading is looked for in the title lines alone (a card's whole text
    // counts as its title above, and a bill's first page may say "le détail de votre facture"
    // in a sentence), with the document's title, and where no `not` phrase says otherwise.
    let contradicted = |i: usize| matches[i].iter().any(|m| m.starts_with("against:"));
    let title_lines = normalise(f.title.as_deref().unwrap_or(""));
    let continued: Vec<&[String]> = lex.types.iter().map(|t| t.continued.as_slice()).chain(lex.outside.iter().map(|o| o.continued.as_slice())).collect();
    let continues: Vec<(usize, String)> = (0..matches.len())
        .filter(|&i| !contradicted(i) && titles[i].iter().any(|t| coverage(&title_lines, t) >= 1.0))
        .filter_map(|i| {
            let heading = continued[i].iter().find(|h| coverage(&title_lines, h) >= 1.0)?;
            Some((i, heading.trim().to_string()))
        })
        .collect();
    let named_as: Vec<usize> = titled.iter().chain(&mentioned).copied().filter(|&i| !contradicted(i)).collect();
    let mrz = f.mrz.as_deref().and_then(mrz::find).or_else(|| raw.contains("<<").then(|| mrz::find(raw)).flatten());
    let holder = if f.layout.cards > 0 || mrz.is_some() {
        let attribution = attribute_with_zone(household, mrz.as_ref(), raw);
        match attribution {
            Attribution::Member { name, .. } => Some(name),
            Attribution::Stranger { read, .. } => Some(read),
            // A doubtful reading (a zone misread) says nothing of where a document starts.
            Attribution::Doubt { .. } | Attribution::Unknown => None,
        }
    } else {
        None
    };
    let words = reading.text.split_whitespace().filter(|w| w.len() >= 3 && w.chars().all(char::is_alphabetic)).count();
    PageView {
        index,
        marker: page_marker(raw),
        card: f.layout.cards > 0,
        titled,
        mentioned,
        titled_cards,
        booklet,
        booklet_like,
        holder,
        addressee: f.addressee.clone(),
        mrz,
        licence: mrz::find_licence_line(raw),
        twoddocs: f.datamatrix.iter().filter_map(|t| twoddoc::parse(t).ok()).collect(),
        standalone_titles,
        references: references(&lines, &lex.references),
        continues,
        named_as,
        unreadable: f.layout.unreadable,
        words,
        reading,
    }
}

/// How many words after its label a document's number may stand ("Facture du 29/01/2021 n°
/// 1012…": six).
const REFERENCE_REACH: usize = 6;
/// Digits a document's number has at least: fewer is a date, an amount, a page.
const REFERENCE_DIGITS: usize = 6;

/// The document's own numbers a page prints (its lines normalised): a word of
/// [`REFERENCE_DIGITS`] digits or more standing right after "n°" within [`REFERENCE_REACH`] words
/// after one of `labels` on one line, or right after a label that follows "n° de". A telephone
/// number or an amount after the label is not taken: it does not follow "n°".
fn references(lines: &[String], labels: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let numbered = |k: usize| matches!(words[k], "n" | "no" | "numero" | "number" | "nr");
        for (i, word) in words.iter().enumerate() {
            // "Facturen° 1048…": a text layer that lost the space; the label carries its "n°".
            let glued = match word.strip_suffix('n') {
                Some(stem) if labels.iter().any(|l| l == stem) => true,
                _ if labels.iter().any(|l| l == word) => false,
                _ => continue,
            };
            // "N° de facture : 1048…": the label itself follows "n° de".
            let label_numbered = glued || (i >= 2 && words[i - 1] == "de" && numbered(i - 2));
            let number = (i + 1..words.len().min(i + 1 + REFERENCE_REACH))
                .find(|&j| words[j].chars().filter(char::is_ascii_digit).count() >= REFERENCE_DIGITS && (numbered(j - 1) || (j == i + 1 && label_numbered)));
            if let Some(j) = number {
                found.push(words[j].to_string());
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

impl PageView {
    /// A page of a document that is no card (a booklet's page, or one titled as a document that
    /// is not a card) with a card-shaped box on it: a livret's photo box, a bill's tinted table.
    fn boxed_not_card(&self) -> bool {
        self.card && (self.booklet.is_some() || (!self.titled.is_empty() && !self.titled_cards))
    }
}

/// Whose document: a checked zone decides; a zone read with errors is believed when it names
/// someone of the household, else the printed name and birth date are (they may prove it is
/// someone else's); what remains is the zone's doubt.
fn attribute_with_zone(household: &Household, zone: Option<&Mrz>, text: &str) -> Attribution {
    match zone {
        Some(m) if m.checked() => attribute_mrz(household, m),
        Some(m) => match (attribute_mrz(household, m), attribute(household, text)) {
            (member @ Attribution::Member { .. }, _) => member,
            (_, printed @ (Attribution::Member { .. } | Attribution::Stranger { .. })) => printed,
            (from_zone, _) => from_zone,
        },
        None => attribute(household, text),
    }
}

/// The heading under which `p` goes on with the document whose pages are `earlier` (see the
/// lexicon's `continued`): a later page's heading under the title of the document begun, with
/// nothing on the page saying it is another one (numbers of its own that the document's pages
/// do not print, or another holder's name).
fn continued_heading<'a>(earlier: &[&PageView], p: &'a PageView) -> Option<&'a str> {
    let first = earlier.first()?;
    let numbers: Vec<&String> = earlier.iter().flat_map(|q| &q.references).collect();
    if !p.references.is_empty() && !numbers.is_empty() && !p.references.iter().any(|r| numbers.contains(&r)) {
        return None;
    }
    if p.holder.as_ref().is_some_and(|h| earlier.iter().filter_map(|q| q.holder.as_ref()).any(|q| q != h)) {
        return None;
    }
    p.continues.iter().find(|(t, _)| first.named_as.contains(t)).map(|(_, h)| h.as_str())
}

/// Cuts the pages into documents.
fn segment(pages: &[PageView]) -> Vec<Vec<usize>> {
    let mut pieces: Vec<Vec<usize>> = Vec::new();
    for (i, p) in pages.iter().enumerate() {
        let new = match pieces.last() {
            None => true,
            Some(prev) => {
                let first = &pages[prev[0]];
                let last = &pages[*prev.last().unwrap_or(&prev[0])];
                match p.marker {
                    Some((1, _)) => true,
                    // The previous document said it was complete ("3/3").
                    _ if last.marker.is_some_and(|(k, n)| k == n) => true,
                    // "2/3" after "1/3": the same document, whatever else the page shows.
                    Some((k, n)) if last.marker.is_some_and(|(lk, ln)| ln == n && lk + 1 == k) => false,
                    // The document's own number, printed on a page of it already: the same
                    // document under another heading (a bill's annex and detail pages).
                    _ if p.references.iter().any(|r| prev.iter().any(|&q| pages[q].references.contains(r))) => false,
                    // A later page's heading under the title of the document begun ("Détail
                    // des revenus" under a tax notice's title): its next page, not another one.
                    _ if continued_heading(&prev.iter().map(|&q| &pages[q]).collect::<Vec<_>>(), p).is_some() => false,
                    // The next page of the same booklet, under its own heading (a photo box on
                    // it is not a card).
                    _ if p.booklet.is_some() && p.booklet == first.booklet => false,
                    // Or a page of its formulas with no title of its own, read nearly as well
                    // as another act's (a child's page and its death box).
                    _ if first.booklet.is_some() && p.titled.is_empty() && p.booklet_like == first.booklet => false,
                    // A card-shaped box on a page of a document that is no card does not cut
                    // that document from its next page.
                    _ if p.card != first.card && !first.boxed_not_card() => true,
                    // A card's verso on a sheet of its own: no card title of its own, and
                    // nobody else's name.
                    _ if p.card => p.titled_cards || p.holder.as_ref().is_some_and(|h| prev.iter().filter_map(|&q| pages[q].holder.as_ref()).any(|q| q != h)),
                    Some((k, _)) if k > 1 => false,
                    // A title, or (title lines missed) another document's title in the header.
                    _ => {
                        let current: Vec<usize> = first.titled.iter().chain(&first.mentioned).copied().collect();
                        !p.titled.is_empty() || (!p.mentioned.is_empty() && !p.mentioned.iter().any(|t| current.contains(t)))
                    }
                }
            }
        };
        if new {
            pieces.push(vec![i]);
        } else if let Some(last) = pieces.last_mut() {
            last.push(i);
        }
    }
    pieces
}

/// Confidence from the best score and its margin over the runner-up: a logistic curve set by
/// hand, checked against accuracy by the benchmark's calibration table.
fn confidence(best: f32, margin: f32) -> f32 {
    let s = |x: f32| 1.0 / (1.0 + (-x).exp());
    (s(1.3 * (margin - 1.5)) * s(1.3 * (best - 3.0))).clamp(0.0, 0.999)
}

/// What a machine-readable zone adds to its type's score: with its check digits holding, more
/// than any title; read with failures, as much as a title.
const MRZ_CHECKED: f32 = 12.0;
const MRZ_READ: f32 = 5.0;

fn describe(s: &Score) -> String {
    s.matched.join(", ")
}

/// Qualifies a request's pages: documents cut, classified, attributed, explained.
pub fn qualify_pages(lex: &Lexicon, household: &Household, pages: &[(PageIndex, &PageFeatures)]) -> Vec<PieceDraft> {
    qualify_pages_with(lex, &TrustList::default(), household, pages)
}

/// As [`qualify_pages`], checking 2D-Doc signatures against `trust`.
pub fn qualify_pages_with(lex: &Lexicon, trust: &TrustList, household: &Household, pages: &[(PageIndex, &PageFeatures)]) -> Vec<PieceDraft> {
    let views: Vec<PageView> = pages.iter().map(|(i, f)| view_of(*i, f, lex, household)).collect();
    let mut drafts = Vec::new();
    for cut in segment(&views) {
        let members: Vec<&PageView> = cut.iter().map(|&i| &views[i]).collect();
        drafts.push(classify_piece(lex, trust, household, &members));
    }
    drafts
}

fn classify_piece(lex: &Lexicon, trust: &TrustList, household: &Household, pages: &[&PageView]) -> PieceDraft {
    let indices: Vec<PageIndex> = pages.iter().map(|p| p.index).collect();
    let mut evidence = Vec::new();
    if pages.len() > 1 {
        let markers: Vec<String> = pages.iter().map(|p| p.marker.map(|(k, n)| format!("{k}/{n}")).unwrap_or_else(|| "-".into())).collect();
        // The document's own numbers printed on more than one of its pages: why pages under
        // different headings were kept together.
        let mut numbers: Vec<&String> = pages.iter().flat_map(|p| &p.references).collect();
        numbers.sort();
        let shared: Vec<String> = numbers
            .chunk_by(|a, b| a == b)
            .filter(|run| run.len() > 1)
            .map(|run| format!(", the document's number {} on {} pages", run[0], run.len()))
            .collect();
        // Later pages' headings under the document's title: why a titled page did not start
        // another document.
        let continued: Vec<String> = (1..pages.len())
            .filter_map(|k| continued_heading(&pages[..k], pages[k]).map(|h| format!(", page {} headed \"{h}\" under its title", k + 1)))
            .collect();
        evidence.push(format!("segment: {} pages, page marks [{}]{}{}", pages.len(), markers.join(" "), shared.concat(), continued.concat()));
    }
    let draft = |categorie: Option<&str>, type_code: Option<&str>, confidence: f32, evidence: Vec<String>, rejection: Option<ReasonCode>| PieceDraft {
        pages: indices.clone(),
        categorie: categorie.map(str::to_string),
        type_code: type_code.map(str::to_string),
        confidence,
        evidence,
        rejection,
    };
    if pages.iter().all(|p| p.unreadable) {
        evidence.push("image: too dark or too faint to read".into());
        return draft(None, None, 1.0, evidence, Some(ReasonCode::PieceIllisible));
    }
    // The first page's title names the document (with the title phrases standing alone on
    // its lines); every page's text adds its words.
    let reading = Reading {
        title: format!("{} {}", pages[0].reading.title, pages[0].standalone_titles.join(" ")),
        text: pages.iter().map(|p| p.reading.text.as_str()).collect::<Vec<_>>().join(" "),
        cards: pages.iter().map(|p| p.reading.cards).max().unwrap_or(0),
    };
    let words: usize = pages.iter().map(|p| p.words).sum();
    // A machine-readable zone says what the document is; with its check digits holding, that
    // is proof, and the type is taken from it.
    let zone = pages.iter().filter_map(|p| p.mrz.as_ref()).min_by_key(|m| (m.failed.len(), m.guesses, m.repairs));
    let zone_type = zone.and_then(|m| match m.document {
        MrzDocument::Passport => Some("PASSEPORT"),
        MrzDocument::IdentityCard => Some("CNI"),
        MrzDocument::ResidencePermit => Some("TITRE_SEJOUR"),
        MrzDocument::Other => None,
    });
    let mut scores: Vec<(usize, Score)> = lex.types.iter().enumerate().map(|(i, t)| (i, score_type(t, &reading))).collect();
    // A 2D-Doc says what the document is; its signature, verified, proves it; the printed text
    // must not say otherwise.
    let code = pages.iter().flat_map(|p| p.twoddocs.iter()).next();
    let verdict = code.map(|d| twoddoc::verify(d, trust));
    let mut doubt: Option<String> = None;
    if let (Some(d), Some(v)) = (code, &verdict) {
        evidence.push(format!("{}; {}", d.describe(), v.describe()));
        // What the print says without the code, against what the code says.
        let printed =
            scores.iter().max_by(|a, b| a.1.score.total_cmp(&b.1.score)).filter(|s| s.1.score >= TITLE_IN_TITLE).map(|s| lex.types[s.0].code.as_str());
        let (label, coded) = twoddoc::document_type(&d.doc_type);
        if let Some(printed) = printed
            && coded.map(|c| c.1) != Some(printed)
        {
            doubt = Some(format!("the 2D-Doc says {label}, the printed document reads as {printed}"));
        }
        match v {
            Verdict::Invalid => doubt = Some("the 2D-Doc's signature does not match its data".into()),
            _ if doubt.is_some() => {}
            _ => {
                if let Some((_, code_type)) = twoddoc::document_type(&d.doc_type).1 {
                    for (i, s) in &mut scores {
                        if lex.types[*i].code == code_type {
                            s.score += if *v == Verdict::Verified { MRZ_CHECKED } else { MRZ_READ };
                            s.matched.push(format!("2d-doc:{}", d.doc_type));
                        }
                    }
                }
                let against = twoddoc::contradictions(d, &reading.text);
                if !against.is_empty() {
                    doubt = Some(format!("the printed text contradicts the signed 2D-Doc ({})", against.join("; ")));
                }
            }
        }
    }
    if let Some(b) = pages[0].booklet
        && pages.len() > 1
        && pages.iter().all(|p| p.booklet_like == Some(b))
        && let Some((_, s)) = scores.iter_mut().find(|(i, _)| *i == b)
    {
        s.score += BOOKLET_PAGES;
        s.matched.push(format!("layout:{} pages of one booklet", pages.len()));
    }
    if let (Some(m), Some(code)) = (zone, zone_type) {
        for (i, s) in &mut scores {
            if lex.types[*i].code == code {
                s.score += if m.checked() { MRZ_CHECKED } else { MRZ_READ };
                s.matched.push(format!("mrz:{}", m.code.trim_end_matches('<')));
            }
        }
        evidence.push(m.describe());
    }
    scores.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    let (best_i, best) = scores[0].clone();
    let runner_up = scores.get(1).map(|s| s.1.score).unwrap_or(0.0).max(0.0);
    let outside = lex.outside.iter().map(|o| (o, score_outside(o, &reading))).max_by(|a, b| a.1.score.total_cmp(&b.1.score));
    // A verified 2D-Doc of a bill or a bank document proves the piece is outside the plan.
    let signed_outside = code.zip(verdict.as_ref()).is_some_and(|(d, v)| *v == Verdict::Verified && twoddoc::outside_the_plan(&d.doc_type));
    if signed_outside && best.score < TITLE_IN_TITLE {
        let d = code.map(|d| twoddoc::document_type(&d.doc_type).0).unwrap_or("");
        evidence.push(format!("outside the plan: a signed 2D-Doc says it is a {d}"));
        return draft(None, None, 0.97, evidence, Some(ReasonCode::HorsPerimetreReglementaire));
    }
    // So does a driving licence's line whose check digits hold, when nothing of an identity
    // document of the plan (a zone, a title) was read beside it.
    if let Some(line) = pages.iter().find_map(|p| p.licence.as_ref())
        && zone.is_none()
        && best.score < TITLE_IN_TITLE
    {
        evidence.push(format!("outside the plan (permis de conduire): {}", line.describe()));
        return draft(None, None, 0.97, evidence, Some(ReasonCode::HorsPerimetreReglementaire));
    }
    if let Some((o, s)) = &outside
        && s.score >= TITLE_IN_TITLE
        && s.score > best.score + 1.0
    {
        evidence.push(format!("outside the plan ({}): {} [{:.1} vs {:.1} for {}]", o.label, describe(s), s.score, best.score, lex.types[best_i].code));
        let conf = confidence(s.score, s.score - best.score.max(0.0));
        return draft(None, None, conf, evidence, Some(ReasonCode::HorsPerimetreReglementaire));
    }
    if best.score <= 0.5 {
        evidence.push(if words < 3 { "nothing legible was read: an operator decides".into() } else { format!("{words} words read, none of a known document") });
        return draft(None, None, 0.0, evidence, None);
    }
    let rule = &lex.types[best_i];
    let mut conf = confidence(best.score, best.score - runner_up);
    evidence.push(format!("{} {:.1} ({}); next {} {:.1}", rule.code, best.score, describe(&best), lex.types[scores[1].0].code, runner_up));
    if zone.is_some_and(|m| m.checked() && zone_type == Some(rule.code.as_str())) {
        conf = conf.max(0.97);
    }
    if code.zip(verdict.as_ref()).is_some_and(|(d, v)| *v == Verdict::Verified && twoddoc::document_type(&d.doc_type).1.is_some_and(|(_, t)| t == rule.code)) {
        conf = conf.max(0.97);
    }
    if let Some(why) = doubt {
        evidence.push(format!("for an operator: {why}"));
        conf = conf.min(0.5);
    }
    if let Some(form) = rule.checked.iter().find(|p| coverage(&reading.text, p) > 0.0 || coverage(&reading.title, p) > 0.0) {
        evidence.push(format!("a form an operator verifies: '{}' is read, which proves less than the document itself", form.trim()));
        conf = conf.min(0.5);
    }
    let mut categorie = rule.categories[0].as_str();
    let mut rejection = None;
    if rule.identity {
        let all_text: String = pages.iter().map(|p| p.reading.text.as_str()).collect::<Vec<_>>().join(" ");
        let attribution = attribute_with_zone(household, zone, &all_text);
        match attribution {
            Attribution::Member { role, name, score } => {
                evidence.push(format!("identity: {name} ({:?}, name score {score})", role));
                match rule.categories.iter().find(|c| c.as_str() == role.categorie()) {
                    Some(c) => categorie = c.as_str(),
                    None => {
                        evidence.push(format!("the plan has no {} under {}", rule.code, role.categorie()));
                        conf = conf.min(0.3);
                    }
                }
            }
            Attribution::Stranger { read, proof } => {
                evidence.push(format!("identity: '{read}' is not in the household (proof: {proof})"));
                rejection = Some(ReasonCode::IncoherenceIdentite);
            }
            Attribution::Doubt { read } => {
                evidence.push(format!("identity: '{read}' read, not in the household, without proof: an operator checks"));
                conf = conf.min(0.5);
            }
            Attribution::Unknown => {
                evidence.push("identity: no household name read".into());
                conf = conf.min(0.5);
            }
        }
    } else if !rule.multi_person
        && let Some(block) = &pages[0].addressee
    {
        // A letter's address block is never proof: a stranger's name there is for an operator.
        match addressed_to(household, block) {
            Attribution::Member { name, .. } => evidence.push(format!("addressed to {name}")),
            Attribution::Stranger { read, .. } | Attribution::Doubt { read } => {
                evidence.push(format!("addressed to '{read}', who is not in the household: an operator checks"));
                conf = conf.min(0.5);
            }
            Attribution::Unknown => {}
        }
    }
    draft(Some(categorie), Some(&rule.code), conf, evidence, rejection)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use scanbureau_pipeline::plan::FilingPlan;
    use scanbureau_pipeline::qualify::{HouseholdMember, PageLayout};

    fn lex() -> Lexicon {
        let plan = FilingPlan::from_toml(scanbureau_pipeline::config::DEFAULT_PLAN).expect("plan");
        Lexicon::load(crate::lexicon::DEFAULT_LEXICON, &plan).expect("lexicon")
    }

    fn page(title: &str, text: &str) -> PageFeatures {
        PageFeatures { title: Some(title.into()), text: Some(format!("{title}\n{text}")), ..PageFeatures::default() }
    }

    fn card(text: &str) -> PageFeatures {
        PageFeatures { text: Some(text.into()), layout: PageLayout { cards: 1, ..PageLayout::default() }, ..PageFeatures::default() }
    }

    fn household() -> Household {
        let m = |nom: &str, p: &str, y| HouseholdMember { nom: nom.into(), prenoms: p.into(), date_naissance: NaiveDate::from_ymd_opt(y, 5, 2) };
        Household { demandeur: Some(m("PAYET", "SOPHIE", 1985)), conjoint: Some(m("HOARAU", "LUC", 1983)), personnes_a_charge: vec![m("PAYET", "NOAH", 2014)] }
    }

    fn run(pages: &[PageFeatures]) -> Vec<PieceDraft> {
        let refs: Vec<(usize, &PageFeatures)> = pages.iter().enumerate().map(|(i, f)| (i + 10, f)).collect();
        qualify_pages(&lex(), &household(), &refs)
    }

    #[test]
    fn a_title_stands_alone_with_its_number_and_not_when_it_refers_to_another_act() {
        let l = normalise("CARTE NATIONALE D'IDENTITÉ N° : 880692310285");
        assert_eq!(wording_len(&l), normalise("carte nationale d identite").len());
        assert!(!titled_by(&normalise("ie à l'acte de mariage n° 73 - le"), &normalise("acte de mariage")));
        assert!(titled_by(&normalise("EXTRAIT D'ACTE DE MARIAGE"), &normalise("acte de mariage")));
    }

    #[test]
    fn a_single_use_identity_attestation_is_proposed_as_the_card_for_an_operator_to_verify() {
        let who = "Nom PAYET\nPrénoms SOPHIE\nSexe F Nationalité FRA\nDate de naissance 02/05/1985";
        let attestation = format!(
            "RÉPUBLIQUE FRANÇAISE\nN° Z6KZAAT76UI2TXC\nDestiné à 072c immo Motif Location d'appartement\n{who}\nVérifier ce justificatif sur france-identite.gouv.fr/justificatif"
        );
        let d = &run(&[page("Justificatif d'identité à usage unique", &attestation)])[0];
        assert_eq!(d.type_code.as_deref(), Some("CNI"), "{:?}", d.evidence);
        assert!(d.rejection.is_none() && d.confidence < 0.8, "{} {:?}", d.confidence, d.evidence);
        assert!(d.evidence.iter().any(|e| e.contains("a form an operator verifies: 'justificatif d identite a usage unique'")), "{:?}", d.evidence);
        // Its title not read as one, the address it is verified at still says what it is.
        let d = &run(&[page("RÉPUBLIQUE FRANÇAISE", &format!("Carte d'identité\n{attestation}"))])[0];
        assert!(d.confidence < 0.8 && d.evidence.iter().any(|e| e.contains("operator verifies")), "{} {:?}", d.confidence, d.evidence);
        // The card itself, the same person: filed.
        let d = &run(&[card(&format!("RÉPUBLIQUE FRANÇAISE CARTE NATIONALE D'IDENTITÉ\n{who}"))])[0];
        assert_eq!(d.type_code.as_deref(), Some("CNI"), "{:?}", d.evidence);
        assert!(d.confidence >= 0.8 && !d.evidence.iter().any(|e| e.contains("operator verifies")), "{} {:?}", d.confidence, d.evidence);
    }

    #[test]
    fn page_marks_are_read_and_dates_are_not() {
        assert_eq!(page_marker("blah\nPage 2 / 3\n"), Some((2, 3)));
        assert_eq!(page_marker("1/4"), Some((1, 4)));
        assert_eq!(page_marker("page 3 sur 3"), Some((3, 3)));
        assert_eq!(page_marker("Né le 01/03/2026 à Lyon"), None);
        assert_eq!(page_marker("ratio 7/3"), None);
    }

    #[test]
    fn one_type_per_document_with_evidence() {
        let cases = [
            ("AVIS D'IMPÔT 2025", "Revenu fiscal de référence 12 000 € Nombre de parts 2", "RFR", "AVIS_IMPOSITION"),
            ("BULLETIN DE PAIE", "Salaire de base Net à payer avant impôt CSG déductible", "RMS", "BULLETIN_SALAIRE"),
            ("QUITTANCE DE LOYER", "déclare avoir reçu ... au titre du loyer et des charges, et lui en donne quittance", "LOG", "QUITTANCE_LOYER"),
            ("ORDONNANCE DE PROTECTION", "violences au sein du couple, interdiction d'entrer en contact", "MOS", "ORDONNANCE_PROTECTION"),
            ("DÉCISION DE LA COMMISSION DE MÉDIATION", "droit au logement opposable, prioritaire et devant être satisfait d'urgence", "PRI", "DECISION_DALO"),
            ("AVIS DE SITUATION DÉCLARATIVE", "ne constitue pas un avis d'impôt ; revenu fiscal de référence", "RFR", "AVIS_SITUATION_DECLARATIVE"),
        ];
        for (title, text, cat, typ) in cases {
            let d = &run(&[page(title, text)])[0];
            assert_eq!((d.categorie.as_deref(), d.type_code.as_deref()), (Some(cat), Some(typ)), "{title}: {:?}", d.evidence);
            assert!(d.confidence >= 0.8, "{title}: confidence {}", d.confidence);
            assert!(d.evidence.iter().any(|e| e.contains("title:")), "{:?}", d.evidence);
        }
    }

    #[test]
    fn multi_page_documents_stay_whole_and_the_next_one_starts_on_its_title() {
        let pages = [
            page("CONTRAT DE LOCATION", "le bailleur le locataire dépôt de garantie Page 1 / 3"),
            PageFeatures { text: Some("loyer mensuel ... Page 2 / 3".into()), ..PageFeatures::default() },
            PageFeatures { text: Some("risques locatifs ... Page 3 / 3".into()), ..PageFeatures::default() },
            page("BULLETIN DE SALAIRE", "Salaire de base net à payer"),
            page("BULLETIN DE SALAIRE", "Salaire de base net à payer"),
            PageFeatures { text: Some("suite du texte sans titre".into()), ..PageFeatures::default() },
        ];
        let d = run(&pages);
        let cut: Vec<Vec<usize>> = d.iter().map(|p| p.pages.clone()).collect();
        assert_eq!(cut, vec![vec![10, 11, 12], vec![13], vec![14, 15]]);
        assert_eq!(d[0].type_code.as_deref(), Some("BAIL"));
        // A lease's section heading under the paragraph the previous page began is not a
        // notice to quit; the same heading at the top of a page is.
        let paragraph = "Le présent bail sera résolu de plein droit en cas de non-paiement d'un seul terme de loyer ou de charges";
        let section = format!("{paragraph}\nCONGÉ\nLe locataire peut résilier le bail à tout moment.");
        let pages =
            [page("CONTRAT DE LOCATION", "le bailleur le locataire dépôt de garantie"), PageFeatures { text: Some(section), ..PageFeatures::default() }];
        assert_eq!(run(&pages).len(), 1, "{:?}", run(&pages));
        let notice = PageFeatures { text: Some(format!("CONGÉ\n{paragraph}")), ..PageFeatures::default() };
        assert_eq!(run(&[pages[0].clone(), notice]).len(), 2);
        // A letterhead on one long line (address, numbers, web address) is not prose.
        let letterhead = "Caisse d'allocations familiales de Paris - 50 rue du Docteur Finlay - 75750 Paris cedex 15 - www.caf.fr";
        assert!(!prose(&normalise(letterhead)) && prose(&normalise(paragraph)));
        let notice = PageFeatures { text: Some(format!("{letterhead}\nCONGÉ\n{paragraph}")), ..PageFeatures::default() };
        assert_eq!(run(&[pages[0].clone(), notice]).len(), 2);
    }

    #[test]
    fn identity_cards_go_to_the_holder_s_category_and_a_verso_sheet_joins_its_recto() {
        let d = run(&[
            card("RÉPUBLIQUE FRANÇAISE CARTE NATIONALE D'IDENTITÉ Nom : HOARAU Prénoms : LUC Né(e) le : 02/05/1983"),
            card("Adresse : 14 RUE DES ÉCOLES Valable jusqu'au IDFRAHOARAU<<LUC<<<<"),
            card("RÉPUBLIQUE FRANÇAISE TITRE DE SÉJOUR Nom : PAYET Prénoms : NOAH Né(e) le : 02/05/2014"),
            card("RÉPUBLIQUE FRANÇAISE CARTE NATIONALE D'IDENTITÉ Nom : GARCIA Prénoms : JOSÉ Né(e) le : 01/01/1990"),
        ]);
        assert_eq!(d.len(), 3, "{d:?}");
        assert_eq!(d[0].pages, vec![10, 11]);
        assert_eq!((d[0].categorie.as_deref(), d[0].type_code.as_deref()), (Some("IDC"), Some("CNI")));
        assert_eq!((d[1].categorie.as_deref(), d[1].type_code.as_deref()), (Some("IDP"), Some("TITRE_SEJOUR")));
        assert_eq!(d[2].rejection, Some(ReasonCode::IncoherenceIdentite));
    }

    /// A passport zone (ICAO TD3) with its check digits computed.
    fn passport_zone(surname: &str, given: &str, birth: &str) -> String {
        let cd = |s: &str| char::from(b'0' + crate::mrz::check_digit(s) as u8);
        let l1 = format!("{:<<44}", format!("P<FRA{surname}<<{given}"));
        let mut l2 = format!("15AB12345{}FRA{birth}{}F3001019", cd("15AB12345"), cd(birth));
        l2.push_str("<<<<<<<<<<<<<<0");
        let composite = format!("{}{}{}", &l2[0..10], &l2[13..20], &l2[21..43]);
        l2.push(cd(&composite));
        format!("{l1}\n{l2}")
    }

    #[test]
    fn a_checked_machine_readable_zone_tells_the_type_and_the_holder() {
        // A phone photo of a passport: no card frame, little text read, the zone.
        let photo = |zone: String| PageFeatures { text: Some("PASSEPORT\nREPUBLIQUE".into()), mrz: Some(zone), ..PageFeatures::default() };
        let d = &run(&[photo(passport_zone("PAYET", "SOPHIE", "850502"))])[0];
        assert_eq!((d.categorie.as_deref(), d.type_code.as_deref(), d.rejection), (Some("IDD"), Some("PASSEPORT"), None), "{:?}", d.evidence);
        assert!(d.confidence >= 0.95, "{}", d.confidence);
        assert!(d.evidence.iter().any(|e| e.contains("check digits valid")), "{:?}", d.evidence);
        // Someone else's, proven by the zone: refused, and the evidence says what the proof was.
        let d = &run(&[photo(passport_zone("MARTIN", "LUC", "900101"))])[0];
        assert_eq!(d.rejection, Some(ReasonCode::IncoherenceIdentite));
        assert!(d.evidence.iter().any(|e| e.contains("proof: MRZ")), "{:?}", d.evidence);
        // The same zone misread (a digit wrong): no proof, an operator decides.
        let misread = passport_zone("MARTIN", "LUC", "900101").replace("FRA900101", "FRA900107");
        let d = &run(&[photo(misread)])[0];
        assert_eq!(d.rejection, None, "{:?}", d.evidence);
        assert!(d.confidence < 0.8);
    }

    #[test]
    fn a_verified_2d_doc_proves_the_type_and_a_contradicted_one_goes_to_an_operator() {
        // The specification's avis d'impôt code, signed with its test key.
        let code = "DC04FR000001FFFF1FB60401FR432,75\u{1d}44227801234567845202146RETI PATRICK\u{1d}4A310720224163198\u{1d}47300112345678948RETI SOPHIE\u{1d}490701987765432\u{1f}QHA4A6QOV6AZJEBTIUNR7QOBXINNTMZTD5COQH6VN24NCZTXA7MYXB6SNSNTWAQRYK3ZFP4ZWBGLTJ6SDSPMURF7YFILKQFIAJY7NTI";
        let mut trust = TrustList::default();
        trust.add_file("keys", b"FR00 0001 P256 04a98f0d7ccd62808893bec4d436e79d1834a1d6e001d70f1c4cdccd9d9e2fe229f7240514e8ddc0ca98d0c7440c9cc492849a0fbda73fc392f4da0ae07f84c23c").expect("key");
        let run_with = |f: PageFeatures| qualify_pages_with(&lex(), &trust, &household(), &[(3, &f)]).remove(0);
        // Little read on the page: the code alone tells, and proves.
        let page = PageFeatures { text: Some("Direction générale des finances publiques".into()), datamatrix: vec![code.into()], ..PageFeatures::default() };
        let d = run_with(page.clone());
        assert_eq!((d.categorie.as_deref(), d.type_code.as_deref()), (Some("RFR"), Some("AVIS_IMPOSITION")), "{:?}", d.evidence);
        assert!(d.confidence >= 0.95 && d.evidence.iter().any(|e| e.contains("signature verified")), "{:?}", d.evidence);
        // One figure changed in the code: the signature fails, an operator looks.
        let d = run_with(PageFeatures { datamatrix: vec![code.replace("4163198", "4113198")], ..page.clone() });
        assert!(d.confidence < 0.8 && d.evidence.iter().any(|e| e.contains("SIGNATURE INVALID")), "{:?}", d.evidence);
        // The printed income is not the signed one.
        let d = run_with(PageFeatures { text: Some("AVIS D'IMPÔT\nRevenu fiscal de référence 12 000".into()), ..page.clone() });
        assert!(d.confidence < 0.8 && d.evidence.iter().any(|e| e.contains("contradicts")), "{:?}", d.evidence);
        // A pay slip's print with a tax notice's code.
        let d = run_with(PageFeatures { title: Some("BULLETIN DE PAIE".into()), text: Some("BULLETIN DE PAIE\nSalaire de base net à payer".into()), ..page });
        assert!(d.confidence < 0.8 && d.evidence.iter().any(|e| e.contains("the 2D-Doc says")), "{:?}", d.evidence);
    }

    #[test]
    fn documents_that_name_other_people_are_not_refused_for_it() {
        // A livret names spouses and children; a letter may be addressed to a representative.
        let mut livret = page("LIVRET DE FAMILLE", "Époux : MARTIN Jean Épouse : DURAND Claire enfants");
        livret.addressee = Some("Jean MARTIN\n3 rue des Lilas".into());
        let d = &run(&[livret])[0];
        assert_eq!((d.type_code.as_deref(), d.rejection), (Some("LIVRET_FAMILLE"), None), "{:?}", d.evidence);
        assert!(d.confidence >= 0.8, "{:?}", d.evidence);
        let mut letter = page("ATTESTATION D'INSCRIPTION", "France Travail demandeur d'emploi catégorie d'inscription");
        letter.addressee = Some("Luc MARTIN\n8 rue des Lilas".into());
        let d = &run(&[letter])[0];
        assert_eq!(d.rejection, None, "{:?}", d.evidence);
        assert!(d.confidence < 0.8 && d.evidence.iter().any(|e| e.contains("an operator checks")), "{:?}", d.evidence);
    }

    #[test]
    fn out_of_plan_illegible_and_unknown_documents() {
        let d = run(&[page("FACTURE D'ÉLECTRICITÉ", "Consommation kWh abonnement montant TTC")]);
        assert_eq!(d[0].rejection, Some(ReasonCode::HorsPerimetreReglementaire));
        let dark = PageFeatures { layout: PageLayout { unreadable: true, ..PageLayout::default() }, ..PageFeatures::default() };
        assert_eq!(run(&[dark])[0].rejection, Some(ReasonCode::PieceIllisible));
        let foreign = run(&[page("THE QUICK BROWN FOX", "jumps over the lazy dog near the river bank")]);
        assert_eq!((foreign[0].categorie.as_ref(), foreign[0].rejection), (None, None));
        assert_eq!(foreign[0].confidence, 0.0);
    }

    #[test]
    fn a_livret_s_inside_pages_are_a_livret_not_the_acts_they_extract() {
        // The couple's page: two birth extracts and the marriage, under the booklet's headings,
        // as Tesseract reads a scan of one.
        let couple = PageFeatures {
            text: Some("Époux ou Père Né le 15 février 1986 à Paris Fils de\nExtrait délivré conforme à l'acte de naissance n°\nMentions marginales L'officier de l'état civil\nMariage célébré à NANTES le\nExtrait délivré conforme à l'acte de mariage n°\nÉpouse ou Mère Prénoms Née le 20 août 1986\nExtrait délivré conforme à l'acte de naissance n°".into()),
            ..PageFeatures::default()
        };
        let d = &run(std::slice::from_ref(&couple))[0];
        assert_eq!(d.type_code.as_deref(), Some("LIVRET_FAMILLE"), "{:?}", d.evidence);
        // A child's page: a birth and the death boxes the booklet prints beside it.
        let child = PageFeatures {
            text: Some("PREMIER ENFANT Extrait de l'acte de naissance n° Délivré conforme aux registres, le Mentions marginales L'officier de l'état civil Sceau Extrait de l'acte de décès n° Délivré conforme aux registres, le".into()),
            ..PageFeatures::default()
        };
        let d = &run(std::slice::from_ref(&child))[0];
        assert_eq!(d.type_code.as_deref(), Some("LIVRET_FAMILLE"), "{:?}", d.evidence);
        // Scanned one after the other, the booklet's pages are one piece; a pay slip after them
        // is another.
        let slip = page("BULLETIN DE SALAIRE", "Salaire de base Net à payer Cotisations");
        let drafts = run(&[couple, child, slip]);
        assert_eq!(drafts.iter().map(|d| d.pages.len()).collect::<Vec<_>>(), vec![2, 1], "{:?}", drafts.iter().map(|d| &d.type_code).collect::<Vec<_>>());
        // Headings not read (beside redaction boxes, or too faint), the formulas alone: one page
        // could be an extract and goes to review; pages of them in a row are the booklet, even
        // when a photo box on one is taken for a card.
        let formulas =
            |text: &str, cards: u8| PageFeatures { text: Some(text.into()), layout: PageLayout { cards, ..PageLayout::default() }, ..PageFeatures::default() };
        let inside = formulas(
            "Extrait délivré conforme à l'acte de naissance n°\nMariage célébré à LYON le\nIl a été déclaré qu'il n'a pas été fait de contrat de mariage",
            0,
        );
        let next = formulas("Extrait de l'acte de naissance n°\nDélivré conforme aux registres, le\nExtrait de l'acte de décès n°", 1);
        let alone = &run(std::slice::from_ref(&inside))[0];
        assert!(alone.confidence < 0.8, "{} {:?}", alone.confidence, alone.evidence);
        let both = run(&[inside, next]);
        assert_eq!(both.len(), 1, "{:?}", both.iter().map(|d| &d.evidence).collect::<Vec<_>>());
        assert_eq!(both[0].type_code.as_deref(), Some("LIVRET_FAMILLE"));
        assert!(
            both[0].confidence >= 0.8 && both[0].evidence.iter().any(|e| e.contains("2 pages of one booklet")),
            "{} {:?}",
            both[0].confidence,
            both[0].evidence
        );
        // A birth certificate on its own stays one.
        let d = &run(&[page("EXTRAIT D'ACTE DE NAISSANCE", "avec filiation est né le 3 mars 1990 de sexe masculin Mentions marginales")])[0];
        assert_eq!(d.type_code.as_deref(), Some("ACTE_NAISSANCE"), "{:?}", d.evidence);
    }

    #[test]
    fn a_booklet_whose_headings_were_not_read_is_not_taken_for_a_death_extract() {
        // A livret scanned sideways and highlighted: the couple's page, its headings lost, then
        // two children's pages whose birth and death boxes are read but not their headings.
        let couple = PageFeatures {
            text: Some("Époux\nNé le 3 mars 1988\nExtrait délivré conforme à l'acte de naissance n°\nMariage célébré à Lyon le 5 juin 2015\nIl a été déclaré qu'il n'a pas été fait de contrat de mariage\nExtrait délivré conforme à l'acte de mariage n°".into()),
            ..PageFeatures::default()
        };
        let child = PageFeatures {
            text: Some("Extrait de l'acte de décès n°\nDélivré conforme aux registres, le\nMentions marginales L'officier de l'état civil\nExtrait de l'acte de décès n°\nDélivré conforme aux registres, le\n(2) Écrire selon le cas « Décédé(e) le »\nENFANT\nExtrait de l'acte de naissance n°\nDélivré conforme aux registres, le".into()),
            ..PageFeatures::default()
        };
        let drafts = run(&[couple, child.clone(), child]);
        assert_eq!(drafts.len(), 1, "{:?}", drafts.iter().map(|d| (&d.pages, &d.evidence)).collect::<Vec<_>>());
        let d = &drafts[0];
        assert_eq!(d.type_code.as_deref(), Some("LIVRET_FAMILLE"), "{:?}", d.evidence);
        // The marriage and the couple's births are the booklet's formulas, not a death act's.
        assert!(d.confidence >= 0.8, "{} {:?}", d.confidence, d.evidence);
    }

    #[test]
    fn a_livret_s_empty_death_boxes_and_photo_box_do_not_cut_out_a_death_extract() {
        // A livret photographed page by page: the couple's page (its photo box taken for a
        // card), then a child's page whose heading was not read and whose empty death boxes
        // ("Extrait de l'acte de décès n°") Tesseract read with a letter or two lost, then the
        // next child's page.
        let couple = PageFeatures {
            text: Some(
                "Époux ou Père\nExtrait délivré conforme à l'acte de naissance n°\nMariage célébré à Paris le\nExtrait délivré conforme à l'acte de mariage n°"
                    .into(),
            ),
            layout: PageLayout { cards: 1, ..PageLayout::default() },
            ..PageFeatures::default()
        };
        let child = PageFeatures {
            title: Some("a reconnue)".into()),
            text: Some("Extrai\ntrait de | acte de décés n°\nlivré conforme aux registres le\nMentions marginales\ntrait de l'acte de décès n°\nL'officier de l'état civil Sceau\nExtrait de l'acte de décès n°".into()),
            ..PageFeatures::default()
        };
        let next = PageFeatures {
            text: Some("DEUXIÈME ENFANT\nExtrait de l'acte de naissance n°\nDélivré conforme aux registres, le\nExtrait de l'acte de décès n°".into()),
            ..PageFeatures::default()
        };
        let drafts = run(&[couple, child, next]);
        assert!(
            drafts.iter().all(|d| d.type_code.as_deref() != Some("ACTE_DECES")),
            "a death box is no death extract: {:?}",
            drafts.iter().map(|d| (&d.pages, &d.evidence)).collect::<Vec<_>>()
        );
        assert_eq!(drafts.len(), 1, "{:?}", drafts.iter().map(|d| (&d.pages, &d.evidence)).collect::<Vec<_>>());
        assert_eq!(drafts[0].type_code.as_deref(), Some("LIVRET_FAMILLE"));
        // A title followed by its number still stands alone.
        assert!(!form_field(&normalise("CARTE NATIONALE D'IDENTITÉ N° 880692310285")));
        assert!(form_field(&normalise("Extrait de l'acte de décès n°")));
    }

    #[test]
    fn a_tinted_box_taken_for_a_card_does_not_cut_a_bill_from_its_next_page() {
        // A bill's detail page whose tinted table was taken for a card, then its last page,
        // with no title of its own.
        let detail = PageFeatures {
            title: Some("Détail de vos communications\nFacture n° 2071830455".into()),
            text: Some(
                "Détail de vos communications\nFacture n° 2071830455\nDétail de vos appels depuis la ligne\nN° Date Heure Numéro appelé Destination Durée"
                    .into(),
            ),
            layout: PageLayout { cards: 2, ..PageLayout::default() },
            ..PageFeatures::default()
        };
        let last = PageFeatures {
            title: Some("Détail de vos communications".into()),
            text: Some(
                "Détail de vos communications\nVos appels Numéros non géographiques fixes\nN° Date Heure Numéro appelé Destination\nTotal de vos appels".into(),
            ),
            ..PageFeatures::default()
        };
        let drafts = run(&[detail.clone(), last]);
        assert_eq!(drafts.len(), 1, "{:?}", drafts.iter().map(|d| (&d.pages, &d.evidence)).collect::<Vec<_>>());
        assert_eq!(drafts[0].rejection, Some(ReasonCode::HorsPerimetreReglementaire), "{:?}", drafts[0].evidence);
        // An identity card copied on a sheet is still cut from the letter after it.
        let cni = card("RÉPUBLIQUE FRANÇAISE CARTE NATIONALE D'IDENTITÉ Nom : PAYET Prénoms : SOPHIE Née le 02.05.1985");
        let letter = PageFeatures { text: Some("Madame, je vous prie de trouver ci-joint les pièces de mon dossier".into()), ..PageFeatures::default() };
        assert_eq!(run(&[cni, letter]).len(), 2);
    }

    #[test]
    fn a_bill_s_pages_that_print_its_number_are_one_document_and_the_next_bill_is_another() {
        let bill = |title: &str, text: &str| PageFeatures { title: Some(title.into()), text: Some(format!("{title}\n{text}")), ..PageFeatures::default() };
        let first = bill("Facture du 14/09/2026", "Vos informations\nN° de Facture : 7300125584\nVotre référence client : 2-K4P\nMontant de cette facture");
        let annex = bill("Annexe de votre facture\nFacture n° 7300125584", "Vos abonnements et options\nTotal de l'annexe");
        let detail = bill("Détail de vos communications", "Facture du 14/09/2026 n° 7300125584\nDétail de vos appels depuis la ligne n° 04 00 00 00 00");
        let next = bill("Facture du 14/10/2026", "Vos informations\nN° de Facture : 7300131017\nMontant de cette facture");
        let drafts = run(&[first.clone(), annex, detail, next.clone()]);
        let pages: Vec<usize> = drafts.iter().map(|d| d.pages.len()).collect();
        assert_eq!(pages, [3, 1], "{:?}", drafts.iter().map(|d| (&d.pages, &d.evidence)).collect::<Vec<_>>());
        assert!(drafts[0].evidence.iter().any(|e| e.contains("number 7300125584 on 3 pages")), "{:?}", drafts[0].evidence);
        // Without its number, the annex's heading starts a document of its own, as before.
        let unnumbered = bill("Annexe de votre facture", "Vos abonnements et options\nTotal de l'annexe");
        assert_eq!(run(&[first.clone(), unnumbered, next.clone()]).len(), 3);
        // A bill's detail page under its own heading goes on with it, number read or not (the
        // first page's number can be out of sight), and the next bill is another.
        let detail_unnumbered = bill("KEOLIO\nDétail de votre facture du 14/09/2026", "Evolution de la consommation facturée en kWh");
        let pages: Vec<usize> = run(&[first.clone(), detail_unnumbered, next.clone()]).iter().map(|d| d.pages.len()).collect();
        assert_eq!(pages, [2, 1]);
        // A detail page printing another bill's number is that bill's, and a next bill whose
        // first page says "le détail de votre facture" in a sentence, in a box taken for a
        // card (whose whole text counts as its title), is another bill.
        let other_detail = bill("Détail de votre facture du 14/10/2026 n° 7300131017", "Evolution de la consommation facturée en kWh");
        assert_eq!(run(&[first.clone(), other_detail]).len(), 2);
        let boxed_next = PageFeatures {
            layout: PageLayout { cards: 1, ..PageLayout::default() },
            ..bill("Facture du 14/10/2026", "Retrouvez le détail de votre facture au verso\nMontant de cette facture")
        };
        assert_eq!(run(&[first, boxed_next]).len(), 2);
        // A number that does not follow "n°" (a telephone, an amount) is no reference.
        let references = |raw: &str| references(&raw.lines().map(normalise).collect::<Vec<_>>(), &["facture".into()]);
        assert!(references("Votre facture 0612345678\nFacture du 14/09/2026 total 12345678").is_empty());
        assert_eq!(references("N° de facture : FA-2026-88412"), Vec::<String>::new(), "fewer than six digits in a word");
        assert_eq!(references("Facture n° 2026088412"), ["2026088412"]);
        assert_eq!(references("Facturen° 2026088412"), ["2026088412"], "a text layer that lost the space");
    }

    /// The DGFiP specimen's first page of an avis de situation déclarative as it was read: its
    /// heading in the body text, "valant avis d'impôt" and "impôt sur les revenus" in the title
    /// lines.
    fn situation_declarative_first_page() -> PageFeatures {
        PageFeatures {
            title: Some("RÉPUBLIQUE FRANÇAISE IMPÔT SUR LES REVENUS de l'année\nVALANT AVIS D'IMPÔT\nMONTANT DE VOTRE IMPÔT\nNuméro fiscal :".into()),
            text: Some("DIRECTION GÉNÉRALE DES FINANCES PUBLIQUES\nx L AVIS DE SITUATION DÉCLARATIVE À L'IMPÔT SUR LE REVENU\nPour vos démarches, pas besoin d'original\nVos références Votre situation\nPour accéder à votre espace particulier\nNuméro fiscal : Revenu fiscal de référence :\nCe document ne constitue pas un avis d'impôt".into()),
            ..PageFeatures::default()
        }
    }

    #[test]
    fn an_avis_de_situation_declarative_valant_avis_d_impot_is_not_an_avis_d_impot() {
        let d = &run(&[situation_declarative_first_page()])[0];
        assert_eq!(d.type_code.as_deref(), Some("AVIS_SITUATION_DECLARATIVE"), "{:?}", d.evidence);
        assert!(d.confidence >= 0.8, "{} {:?}", d.confidence, d.evidence);
        // An avis d'impôt that names no situation déclarative stays one.
        let avis = page(
            "AVIS D'IMPÔT 2025\nIMPÔT SUR LES REVENUS de l'année 2024",
            "Numéro fiscal Revenu fiscal de référence Nombre de parts Montant restant à payer",
        );
        assert_eq!(run(&[avis])[0].type_code.as_deref(), Some("AVIS_IMPOSITION"));
    }

    #[test]
    fn a_tax_notice_s_detail_page_under_its_title_goes_on_with_it_and_the_next_notice_does_not() {
        // The DGFiP specimen's two pages as they were read: its title in the body of the first,
        // and again over "Détail des revenus" on the second.
        let first = situation_declarative_first_page();
        let detail = page(
            "AVIS DE SITUATION DÉCLARATIVE À L'IMPÔT SUR LE REVENU\nDétail des revenus\nREDUCTIONS D'IMPOT !",
            "Salaires Revenu brut global Revenu imposable",
        );
        let drafts = run(&[first.clone(), detail.clone(), first.clone()]);
        let cut: Vec<usize> = drafts.iter().map(|d| d.pages.len()).collect();
        assert_eq!(cut, [2, 1], "{:?}", drafts.iter().map(|d| (&d.pages, &d.evidence)).collect::<Vec<_>>());
        assert_eq!(drafts[0].type_code.as_deref(), Some("AVIS_SITUATION_DECLARATIVE"));
        assert!(drafts[0].evidence.iter().any(|e| e.contains("page 2 headed \"detail des revenus\" under its title")), "{:?}", drafts[0].evidence);
        // Two notices of two pages one after the other stay two.
        let pages = |drafts: Vec<PieceDraft>| drafts.iter().map(|d| d.pages.len()).collect::<Vec<_>>();
        assert_eq!(pages(run(&[first.clone(), detail.clone(), first.clone(), detail.clone()])), [2, 2]);
        // The heading after another kind of document (a pay slip) still starts a document, and
        // an avis d'impôt's detail page does not go on with an avis de situation déclarative
        // (its `not` says the latter is no avis d'impôt).
        let slip = page("BULLETIN DE PAIE", "Salaire de base Net à payer Cotisations");
        assert_eq!(run(&[slip, detail]).len(), 2);
        let avis_detail = page("AVIS D'IMPÔT 2025\nIMPÔT SUR LES REVENUS\nDétail des revenus", "Salaires Revenu brut global");
        assert_eq!(run(&[first, avis_detail]).len(), 2);
    }

    #[test]
    fn a_child_s_page_read_nearly_as_a_death_extract_goes_on_the_booklet_but_a_titled_extract_does_not() {
        // A sideways scan: the couple's page, then a child's page whose heading was lost and
        // whose death boxes read as well as the booklet's formulas.
        let couple = PageFeatures {
            text: Some("Extrait délivré conforme à l'acte de naissance n°\nMariage célébré à Pantin le\nLes futurs époux ont déclaré".into()),
            ..PageFeatures::default()
        };
        let child = PageFeatures {
            text: Some("Extrait de l'acte de décès n°\nDélivré conforme aux registres, le\nMentions marginales\nExtrait de l'acte de décès n°\nDélivré conforme aux registres, le".into()),
            ..PageFeatures::default()
        };
        let drafts = run(&[couple.clone(), child]);
        assert_eq!(drafts.len(), 1, "{:?}", drafts.iter().map(|d| (&d.pages, &d.evidence)).collect::<Vec<_>>());
        assert_eq!(drafts[0].type_code.as_deref(), Some("LIVRET_FAMILLE"), "{:?}", drafts[0].evidence);
        // A death extract under its own title, after the booklet, is a piece of its own.
        let extract = page("EXTRAIT D'ACTE DE DÉCÈS", "Le 5 septembre 1970 est décédé Eugène DURAND, fils de ... Délivré conforme aux registres");
        let drafts = run(&[couple, extract]);
        assert_eq!(drafts.iter().map(|d| d.type_code.as_deref()).collect::<Vec<_>>(), vec![Some("LIVRET_FAMILLE"), Some("ACTE_DECES")]);
    }

    #[test]
    fn documents_known_to_be_outside_the_plan_are_refused_with_what_proved_it() {
        for (title, text, label) in [
            ("INVOICE", "Bill to Jiro Doi Invoice Number: 14 Invoice Date: 2018-09-25 Payment Due: Upon receipt Amount Due", "facture"),
            ("ATTESTATION TITULAIRE DE CONTRAT", "EDF N°client : 6013357693 Lieu de consommation 9 RUE MAYET 75006 PARIS", "attestation de contrat d energie"),
            ("Relevé d'identité", "Caisse d'Epargne Domiciliation Code banque Code guichet Clé RIB IBAN titulaire du compte", "releve bancaire"),
            ("Payment Receipt", "Food And Drink 10,20 20% VAT 1.70 Card Payment £10.20 Receipt no. 54/7500 Thank you for visiting", "ticket de caisse"),
            ("Vitale", "carte d'assurance maladie SPECIMEN", "carte vitale"),
            (
                "",
                "Certificat d'immatriculation\nA. AB-125-CD C.1 DUPONT YVES EST LE PROPRIETAIRE DU VEHICULE X1 VISITE AVANT LE 06/07/2011",
                "certificat d immatriculation",
            ),
            ("Solde précédent au 31 janvier", "N° de compte 01/02 Virement salaire 03/02 Débit Carte 16/02 Prélèvement Débit Crédit", "releve bancaire"),
            // English is no French acronym: "are" is not France Travail's ARE.
            (
                "Your Electric Usage Profile Billing Summary",
                "Meter readings are actual unless otherwise noted. 32 Days kWh Billed 1429 Total Charges $191.69 Amount Due By Jul 27",
                "facture",
            ),
            (
                "Main Street Restaurant",
                "Merchant ID: 9hqjxvufdr Terminal ID: 11111 Type: CREDIT PURCHASE Approval Code: 819543 Sub Total USD$ 25.23",
                "ticket de caisse",
            ),
            ("PERMIS DE CONDUIRE", "RÉPUBLIQUE FRANÇAISE 1. MARTIN 2. Marie 4c. Préfecture", "permis de conduire"),
        ] {
            let d = &run(&[page(title, text)])[0];
            assert_eq!(d.rejection, Some(ReasonCode::HorsPerimetreReglementaire), "{title}: {:?}", d.evidence);
            assert!(d.evidence.iter().any(|e| e.contains(&format!("outside the plan ({label})"))), "{title}: {:?}", d.evidence);
        }
    }

    #[test]
    fn a_driving_licence_s_checked_line_proves_it_outside_the_plan_unless_an_identity_document_is_read_beside_it() {
        let line = crate::mrz::tests::licence_line("FRA", "12AB34567", "331231", "LEGRAND");
        // A photographed licence: its heading lost in the guilloches, its line read.
        let licence = card(&format!("5. 12AB34567\n{line}"));
        let d = &run(std::slice::from_ref(&licence))[0];
        assert_eq!(d.rejection, Some(ReasonCode::HorsPerimetreReglementaire), "{:?}", d.evidence);
        assert!(d.evidence.iter().any(|e| e.contains("permis de conduire") && e.contains("check digits valid")), "{:?}", d.evidence);
        // One digit misread: no proof, no refusal.
        let misread = PageFeatures { text: Some(format!("5. 12AB34567\n{}", line.replacen("331231", "331281", 1))), ..licence.clone() };
        assert_eq!(run(&[misread])[0].rejection, None);
        // The licence copied beside the applicant's identity card: the card is what is filed.
        let d = &run(&[card(&format!("CARTE NATIONALE D'IDENTITÉ Nom : LEGRAND Prénom(s) : MARIE\n{line}"))])[0];
        assert_eq!((d.rejection, d.type_code.as_deref()), (None, Some("CNI")), "{:?}", d.evidence);
    }

    #[test]
    fn a_pay_slip_without_its_heading_is_proposed_for_review_by_its_mentions() {
        let d = &run(&[page("", "Convention collective : Syntec Code APE 6201Z Salaire brut 2 400,00 Net imposable 1 890,12")])[0];
        assert_eq!(d.type_code.as_deref(), Some("BULLETIN_SALAIRE"), "{:?}", d.evidence);
        // An employer's attestation carries its SIRET and says "employé(e)": no pay-slip mention.
        let d = &run(&[page(
            "ATTESTATION EMPLOYEUR",
            "SIRET 123 456 789 00012 Je soussigné atteste que Marie DUPONT est employé(e) dans notre entreprise en contrat à durée indéterminée",
        )])[0];
        assert_eq!(d.type_code.as_deref(), Some("ATTESTATION_EMPLOYEUR"), "{:?}", d.evidence);
        assert!(d.evidence.iter().all(|e| !e.contains("next BULLETIN_SALAIRE")), "{:?}", d.evidence);
    }

    #[test]
    fn the_old_identity_card_s_verso_is_proposed_as_the_card_for_review_and_not_refused() {
        // As read on a real phone photo of the specimen's verso: no title, no name, no zone.
        let verso = "Adrese: 104 RUE DES FLEURS\n92100 BOULOGNE - BILLANCOURT\nCarte valable jusqu'au : 15 C9 2004\ndétvrée ie: 16 09 1994\npar: SOUS PRÉFECTURE DE BOULOGNE BILLANCOURT";
        let d = &run(&[page("", verso)])[0];
        assert_eq!(d.type_code.as_deref(), Some("CNI"), "{:?}", d.evidence);
        assert!(d.rejection.is_none() && d.confidence < 0.8, "{} {:?}", d.confidence, d.evidence);
        // A student card valid until a date is still a student card.
        let d = &run(&[card("CARTE D'ÉTUDIANT Université de Lille Carte valable jusqu'au 31/08/2026 INE 123456789AB")])[0];
        assert_eq!(d.type_code.as_deref(), Some("CARTE_ETUDIANT"), "{:?}", d.evidence);
    }

    #[test]
    fn a_weak_or_ambiguous_reading_gets_a_low_confidence() {
        // Only body words, no title: it may be a tax notice, but not surely.
        let d = &run(&[PageFeatures { text: Some("nombre de parts".into()), ..PageFeatures::default() }])[0];
        assert!(d.confidence < 0.8, "{}", d.confidence);
    }
}
