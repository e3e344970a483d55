//! Machine-readable zones of identity documents (ICAO 9303): TD1 (3 × 30: identity cards and
//! residence permits), TD2 (2 × 36), TD3 (2 × 44: passports) and the French identity card of
//! 1988-2021 (2 × 36, its own layout).
//!
//! OCR of an MRZ is noisy in known ways (`<` read as `K` or `«`, `0` as `O`, a filler dropped):
//! [`find`] takes the lines read on a document, fits them to each format, repairs characters
//! by what each field may hold and checks every check digit. A zone whose check digits all hold
//! is proof of what the document is and whose: [`Mrz::checked`].

use chrono::NaiveDate;

/// The layouts a zone can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MrzFormat {
    Td1,
    Td2,
    Td3,
    /// The French identity card issued from 1988 to 2021.
    FrenchId,
}

/// What the document is, from its document code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MrzDocument {
    Passport,
    IdentityCard,
    ResidencePermit,
    /// A visa or another travel document.
    Other,
}

/// A zone read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Mrz {
    pub format: MrzFormat,
    pub document: MrzDocument,
    /// The two-letter document code (`P<`, `ID`, `IR`...).
    pub code: String,
    pub issuer: String,
    pub number: String,
    pub surname: String,
    pub given_names: Vec<String>,
    /// YYMMDD as printed.
    pub birth: String,
    pub birth_date: Option<NaiveDate>,
    pub expiry_date: Option<NaiveDate>,
    pub sex: char,
    /// Names of the check digits that do not hold.
    pub failed: Vec<&'static str>,
    /// Characters changed to make the fields fit their kind (O → 0 in a date...).
    pub repairs: usize,
    /// Characters of alphanumeric fields changed only because the check digit then holds (a
    /// guess: such a zone is not proof).
    pub guesses: usize,
}

impl Mrz {
    /// Every check digit holds, no character guessed: the zone is read exactly.
    pub fn checked(&self) -> bool {
        self.failed.is_empty() && self.guesses == 0
    }

    /// One line for a piece's evidence.
    pub fn describe(&self) -> String {
        let status = if self.checked() {
            "check digits valid".to_string()
        } else if self.failed.is_empty() {
            format!("check digits valid after {} guessed character(s)", self.guesses)
        } else {
            format!("check digits FAILED: {}", self.failed.join(", "))
        };
        format!(
            "MRZ {:?} {} {}: {} {}, born {}, {}",
            self.format,
            self.code.trim_end_matches('<'),
            self.issuer,
            self.surname,
            self.given_names.join(" "),
            self.birth_date.map(|d| d.format("%d/%m/%Y").to_string()).unwrap_or_else(|| self.birth.clone()),
            status
        )
    }
}

/// ICAO 9303 check digit: weights 7, 3, 1; digits as themselves, A-Z as 10-35, `<` as 0.
pub fn check_digit(field: &str) -> u32 {
    field
        .bytes()
        .zip([7u32, 3, 1].iter().cycle())
        .map(|(c, w)| {
            let v = match c {
                b'0'..=b'9' => (c - b'0') as u32,
                b'A'..=b'Z' => (c - b'A') as u32 + 10,
                _ => 0,
            };
            v * w
        })
        .sum::<u32>()
        % 10
}

fn digit_ok(field: &str, digit: u8) -> bool {
    digit.is_ascii_digit() && check_digit(field) == (digit - b'0') as u32
}

/// A line as OCR gives it, reduced to the MRZ alphabet. Tesseract reads the filler as `<`,
/// `«`, `‹`, `(`, `K`, or (without the zone's own alphabet) as a lower-case `c` or `e`: a zone
/// has no lower case, so those are fillers.
pub fn clean_line(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '«' | '‹' | '(' | '[' | '{' | '≤' | '‚' | ',' | 'c' | 'e' | 'é' | 'è' | 'k' | 'x' => '<',
            c => c.to_ascii_uppercase(),
        })
        .filter(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '<')
        .collect();
    // "K" inside a run of fillers is a filler ("<<K<<" or a trailing "KKK<").
    let b: Vec<u8> = s.bytes().collect();
    let mut out = b.clone();
    for i in 0..b.len() {
        if b[i] == b'K' {
            let left = i > 0 && b[i - 1] == b'<';
            let right = i + 1 < b.len() && (b[i + 1] == b'<' || b[i + 1] == b'K');
            let right2 = i + 1 < b.len() && b[i + 1] == b'<';
            if (left && right) || (right2 && i + 2 < b.len() && b[i + 2] == b'<') {
                out[i] = b'<';
            }
        }
    }
    // Long runs of fillers come back as runs of L, E, K or C: once a run of fillers has begun
    // ("<<<"), a token of those letters alone between fillers is fillers too. (A name is never
    // after such a run; an office code such as "0CHE02" has other characters.)
    if let Some(start) = find_bytes(&out, b"<<<") {
        let mut i = start;
        while i < out.len() {
            if out[i] == b'<' {
                i += 1;
                continue;
            }
            let end = (i..out.len()).find(|&j| out[j] == b'<').unwrap_or(out.len());
            if out[i..end].iter().all(|c| matches!(c, b'L' | b'E' | b'K' | b'C')) {
                out[i..end].iter_mut().for_each(|c| *c = b'<');
            }
            i = end;
        }
    }
    s = String::from_utf8(out).unwrap_or_default();
    s
}

fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether a cleaned line looks like part of a zone (long, with fillers).
fn mrz_like(line: &str) -> bool {
    line.len() >= 26 && (line.contains("<<") || line.bytes().filter(u8::is_ascii_digit).count() >= 12)
}

/// Brings a line to `len` characters by adding or taking fillers in its longest run of fillers
/// (OCR drops or doubles them), or at its end. A long run of fillers often comes back much
/// shorter: a line that ends in fillers may be short by up to a third. It also comes back
/// longer, by about one filler in six (a photographed passport's 33 fillers read as 38).
fn fit(line: &str, len: usize) -> Option<String> {
    let short_ok = if line.ends_with("<<") { len / 3 } else { 4 };
    let long_ok = 4.max(longest_filler_run(line).map_or(0, |(_, n)| n) / 6);
    if line.len() > len + long_ok || line.len() + short_ok < len {
        return None;
    }
    let mut s = line.to_string();
    while s.len() != len {
        let best = longest_filler_run(&s);
        if s.len() < len {
            match best {
                Some((at, _)) => s.insert(at, '<'),
                None => s.push('<'),
            }
        } else {
            match best {
                Some((at, n)) if n >= 2 => {
                    s.remove(at);
                }
                _ => return None,
            }
        }
    }
    Some(s)
}

/// As [`fit`]; and when the line is one character too long, also each reading with a filler
/// taken from another run of fillers than the longest: a filler doubled inside a field shifts
/// every field after it, and the check digits tell which reading is right.
fn fits(line: &str, len: usize) -> Vec<String> {
    let mut out: Vec<String> = fit(line, len).into_iter().collect();
    if line.len() == len + 1 {
        for (at, _) in filler_runs(line).filter(|&(_, n)| n >= 2) {
            let mut other = line.to_string();
            other.remove(at);
            if !out.contains(&other) {
                out.push(other);
            }
        }
    }
    out
}

/// The runs of fillers of a line, as (start, length), left to right.
fn filler_runs(line: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let b = line.as_bytes();
    (0..b.len()).filter(move |&i| b[i] == b'<' && (i == 0 || b[i - 1] != b'<')).map(move |i| (i, b[i..].iter().take_while(|&&c| c == b'<').count()))
}

/// The longest run of fillers of a line (the first of the longest), as (start, length).
fn longest_filler_run(line: &str) -> Option<(usize, usize)> {
    filler_runs(line).fold(None, |best: Option<(usize, usize)>, run| if best.is_none_or(|b| run.1 > b.1) { Some(run) } else { best })
}

/// What a field may hold.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Digits,
    Letters,
}

fn to_digit(c: u8) -> u8 {
    match c {
        b'O' | b'Q' | b'D' | b'U' => b'0',
        b'I' | b'L' | b'J' => b'1',
        b'Z' => b'2',
        b'S' => b'5',
        b'G' => b'6',
        b'T' => b'7',
        b'B' => b'8',
        b'A' => b'4',
        c => c,
    }
}

/// What OCR may have read `c` for, in an alphanumeric field.
fn alternatives(c: u8) -> &'static [u8] {
    match c {
        b'0' => b"OQD",
        b'1' => b"IJL",
        b'2' => b"Z",
        b'4' => b"A",
        b'5' => b"S",
        b'6' => b"G",
        b'7' => b"T",
        b'8' => b"B",
        b'O' | b'Q' | b'D' | b'U' => b"0",
        b'I' | b'J' | b'L' => b"1",
        b'Z' => b"2",
        b'A' => b"4",
        b'S' => b"5",
        b'G' => b"6",
        b'T' => b"7",
        b'B' => b"8",
        _ => b"",
    }
}

fn to_letter(c: u8) -> u8 {
    match c {
        b'0' => b'O',
        b'1' => b'I',
        b'2' => b'Z',
        b'4' => b'A',
        b'5' => b'S',
        b'6' => b'G',
        b'7' => b'T',
        b'8' => b'B',
        c => c,
    }
}

/// A zone's characters being repaired field by field.
struct Fields {
    bytes: Vec<u8>,
    repairs: usize,
    guesses: usize,
}

impl Fields {
    /// The zone's characters; the document code's first letter is a letter in every format.
    fn new(lines: &[String]) -> Self {
        let mut f = Self { bytes: lines.concat().into_bytes(), repairs: 0, guesses: 0 };
        f.shape(0..1, Kind::Letters);
        f
    }

    /// Forces the characters of `range` to their kind (`<` stays: a filler is allowed anywhere
    /// but in a date, where it would be a misread digit... which we cannot guess).
    fn shape(&mut self, range: std::ops::Range<usize>, kind: Kind) {
        for c in &mut self.bytes[range] {
            let new = match kind {
                Kind::Digits if *c != b'<' => to_digit(*c),
                Kind::Letters => to_letter(*c),
                Kind::Digits => *c,
            };
            if new != *c {
                *c = new;
                self.repairs += 1;
            }
        }
    }

    fn text(&self, range: std::ops::Range<usize>) -> String {
        String::from_utf8_lossy(&self.bytes[range]).into_owned()
    }

    /// Checks `field` against the digit at `digit`. On failure, for an alphanumeric field
    /// (`guess`), tries the one change of an ambiguous character that makes it hold (a document
    /// number read `O` for `0`), and counts it as a guess.
    fn check(&mut self, field: std::ops::Range<usize>, digit: usize, name: &'static str, guess: bool, failed: &mut Vec<&'static str>) {
        let d = self.bytes[digit];
        let d = to_digit(d);
        self.bytes[digit] = d;
        if digit_ok(&self.text(field.clone()), d) {
            return;
        }
        if !guess {
            failed.push(name);
            return;
        }
        for i in field.clone() {
            let c = self.bytes[i];
            for &alt in alternatives(c) {
                self.bytes[i] = alt;
                if digit_ok(&self.text(field.clone()), d) {
                    self.guesses += 1;
                    return;
                }
            }
            self.bytes[i] = c;
        }
        failed.push(name);
    }
}

/// `SURNAME<<GIVEN<NAMES<<<...`: the given names end at the next double filler (what OCR
/// makes of the fillers after it is not a name).
fn names(field: &str) -> (String, Vec<String>) {
    let mut parts = field.trim_end_matches('<').splitn(2, "<<");
    let surname = parts.next().unwrap_or("").replace('<', " ").trim().to_string();
    let rest = parts.next().unwrap_or("");
    let given = rest.split("<<").next().unwrap_or("").split('<').filter(|s| !s.is_empty()).map(str::to_string).collect();
    (surname, given)
}

fn date(yymmdd: &str, century: impl Fn(u32) -> i32) -> Option<NaiveDate> {
    if yymmdd.len() != 6 || !yymmdd.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let yy: u32 = yymmdd[0..2].parse().ok()?;
    let mm: u32 = yymmdd[2..4].parse().ok()?;
    let dd: u32 = yymmdd[4..6].parse().ok()?;
    NaiveDate::from_ymd_opt(century(yy) + yy as i32, mm, dd)
}

fn document_of(code: &str) -> MrzDocument {
    let b = code.as_bytes();
    match (b.first(), b.get(1)) {
        (Some(b'P'), _) => MrzDocument::Passport,
        (Some(b'V'), _) => MrzDocument::Other,
        _ if matches!(code, "IR" | "AR" | "RP" | "RT" | "IT" | "RF" | "CR") => MrzDocument::ResidencePermit,
        (Some(b'I' | b'A' | b'C'), _) => MrzDocument::IdentityCard,
        _ => MrzDocument::Other,
    }
}

/// Births up to `expiry - 5 years`... in practice: a two-digit year later than the document's
/// expiry (or issue) is of the last century.
fn birth_century(limit_year: i32) -> impl Fn(u32) -> i32 {
    move |yy| if 2000 + yy as i32 > limit_year { 1900 } else { 2000 }
}

fn td3(l: &[String]) -> Mrz {
    let mut f = Fields::new(l);
    let mut failed = Vec::new();
    // Line 2 starts at 44.
    f.shape(2..5, Kind::Letters);
    f.shape(5..44, Kind::Letters);
    f.shape(44 + 13..44 + 19, Kind::Digits);
    f.shape(44 + 21..44 + 27, Kind::Digits);
    f.shape(44 + 10..44 + 13, Kind::Letters);
    f.check(44..53, 53, "document number", true, &mut failed);
    f.check(57..63, 63, "birth date", false, &mut failed);
    f.check(65..71, 71, "expiry date", false, &mut failed);
    // The personal number's check digit may be `<` when the field is empty.
    if f.bytes[86] != b'<' || f.bytes[72..86].iter().any(|&c| c != b'<') {
        f.check(72..86, 86, "personal number", false, &mut failed);
    }
    let composite = format!("{}{}{}", f.text(44..54), f.text(57..64), f.text(65..87));
    let cd = to_digit(f.bytes[87]);
    if !digit_ok(&composite, cd) {
        failed.push("composite");
    }
    let expiry = date(&f.text(65..71), |_| 2000);
    let (surname, given_names) = names(&f.text(5..44));
    let code = f.text(0..2);
    Mrz {
        format: MrzFormat::Td3,
        document: document_of(&code),
        code,
        issuer: f.text(2..5),
        number: f.text(44..53).trim_end_matches('<').to_string(),
        surname,
        given_names,
        birth: f.text(57..63),
        birth_date: date(&f.text(57..63), birth_century(expiry.map(|d| chrono::Datelike::year(&d)).unwrap_or(2030))),
        expiry_date: expiry,
        sex: f.bytes[64] as char,
        failed,
        repairs: f.repairs,
        guesses: f.guesses,
    }
}

fn td2(l: &[String]) -> Mrz {
    let mut f = Fields::new(l);
    let mut failed = Vec::new();
    f.shape(2..5, Kind::Letters);
    f.shape(5..36, Kind::Letters);
    f.shape(36 + 13..36 + 19, Kind::Digits);
    f.shape(36 + 21..36 + 27, Kind::Digits);
    f.check(36..45, 45, "document number", true, &mut failed);
    f.check(49..55, 55, "birth date", false, &mut failed);
    f.check(57..63, 63, "expiry date", false, &mut failed);
    let composite = format!("{}{}{}", f.text(36..46), f.text(49..56), f.text(57..71));
    if !digit_ok(&composite, to_digit(f.bytes[71])) {
        failed.push("composite");
    }
    let expiry = date(&f.text(57..63), |_| 2000);
    let (surname, given_names) = names(&f.text(5..36));
    let code = f.text(0..2);
    Mrz {
        format: MrzFormat::Td2,
        document: document_of(&code),
        code,
        issuer: f.text(2..5),
        number: f.text(36..45).trim_end_matches('<').to_string(),
        surname,
        given_names,
        birth: f.text(49..55),
        birth_date: date(&f.text(49..55), birth_century(expiry.map(|d| chrono::Datelike::year(&d)).unwrap_or(2030))),
        expiry_date: expiry,
        sex: f.bytes[56] as char,
        failed,
        repairs: f.repairs,
        guesses: f.guesses,
    }
}

fn td1(l: &[String]) -> Mrz {
    let mut f = Fields::new(l);
    let mut failed = Vec::new();
    f.shape(2..5, Kind::Letters);
    f.shape(30..36, Kind::Digits);
    f.shape(38..44, Kind::Digits);
    f.shape(45..48, Kind::Letters);
    f.shape(60..90, Kind::Letters);
    // A document number longer than 9 characters runs on into the optional data, its check
    // digit after it; `<` at 14 says so.
    let (num_end, num_cd) = if f.bytes[14] == b'<' {
        let end = (15..30).find(|&i| f.bytes[i] == b'<').unwrap_or(30);
        (end.saturating_sub(1).max(15), end.saturating_sub(1).max(15))
    } else {
        (14, 14)
    };
    if num_end == 14 {
        f.check(5..14, 14, "document number", true, &mut failed);
    } else {
        let mut number = f.text(5..14);
        number.push_str(&f.text(15..num_end));
        if !digit_ok(&number, to_digit(f.bytes[num_cd])) {
            failed.push("document number");
        }
    }
    f.check(30..36, 36, "birth date", false, &mut failed);
    f.check(38..44, 44, "expiry date", false, &mut failed);
    let composite = format!("{}{}{}{}", f.text(5..30), f.text(30..37), f.text(38..45), f.text(48..59));
    if !digit_ok(&composite, to_digit(f.bytes[59])) {
        failed.push("composite");
    }
    let expiry = date(&f.text(38..44), |_| 2000);
    let (surname, given_names) = names(&f.text(60..90));
    let code = f.text(0..2);
    let number = if num_end == 14 { f.text(5..14) } else { format!("{}{}", f.text(5..14), f.text(15..num_end)) };
    Mrz {
        format: MrzFormat::Td1,
        document: document_of(&code),
        code,
        issuer: f.text(2..5),
        number: number.trim_end_matches('<').to_string(),
        surname,
        given_names,
        birth: f.text(30..36),
        birth_date: date(&f.text(30..36), birth_century(expiry.map(|d| chrono::Datelike::year(&d)).unwrap_or(2030))),
        expiry_date: expiry,
        sex: f.bytes[37] as char,
        failed,
        repairs: f.repairs,
        guesses: f.guesses,
    }
}

/// The French card of 1988-2021. Line 1: `IDFRA`, surname (25), office (6). Line 2: card number
/// (12, its first four digits the year and month of issue), check, given names (14), birth date,
/// check, sex, check of both lines. No expiry is printed: it is 10 or 15 years after issue.
fn french_id(l: &[String]) -> Mrz {
    let mut f = Fields::new(l);
    let mut failed = Vec::new();
    f.shape(5..30, Kind::Letters);
    f.shape(36..40, Kind::Digits);
    f.shape(36 + 13..36 + 27, Kind::Letters);
    f.shape(36 + 27..36 + 33, Kind::Digits);
    f.check(36..48, 48, "document number", true, &mut failed);
    f.check(63..69, 69, "birth date", false, &mut failed);
    let composite = format!("{}{}", f.text(0..36), f.text(36..71));
    if !digit_ok(&composite, to_digit(f.bytes[71])) {
        failed.push("composite");
    }
    let issued_yy: i32 = f.text(36..38).parse().unwrap_or(0);
    let issued = if issued_yy >= 88 { 1900 + issued_yy } else { 2000 + issued_yy };
    let surname = f.text(5..30).trim_end_matches('<').replace('<', " ");
    let given_names: Vec<String> =
        f.text(49..63).trim_end_matches('<').split("<<").map(|s| s.replace('<', " ").trim().to_string()).filter(|s| !s.is_empty()).collect();
    let code = f.text(0..2);
    Mrz {
        format: MrzFormat::FrenchId,
        document: MrzDocument::IdentityCard,
        code,
        issuer: f.text(2..5),
        number: f.text(36..48),
        surname,
        given_names,
        birth: f.text(63..69),
        birth_date: date(&f.text(63..69), birth_century(issued)),
        expiry_date: None,
        sex: f.bytes[70] as char,
        failed,
        repairs: f.repairs,
        guesses: f.guesses,
    }
}

/// Finds a zone in OCR'd lines (any order of other text around it) and reads it. The best
/// reading wins: all check digits holding, then the fewest failures and repairs.
pub fn find(text: &str) -> Option<Mrz> {
    let mut best: Option<Mrz> = None;
    for lines in readings(text) {
        find_in(&lines, &mut best);
    }
    // A zone read with most check digits failing is noise, not a zone.
    best.filter(|m| m.failed.len() <= 2 && !m.surname.is_empty())
}

/// The one machine-readable line of the European driving licence (French licences since 2013):
/// `D1`, issuing state, licence number (9), its check digit, expiry (YYMMDD), the surname cut to
/// 8 characters, a check digit over the whole line. It is no ICAO zone and names no birth date:
/// it says what the document is, never whose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenceLine {
    pub issuer: String,
    pub expiry: NaiveDate,
}

impl LicenceLine {
    /// One line for a piece's evidence (no name, no number: the proof is in the check digits).
    pub fn describe(&self) -> String {
        format!("a driving licence's machine-readable line (issued by {}, valid to {}), both check digits valid", self.issuer, self.expiry.format("%d/%m/%Y"))
    }
}

/// Finds a driving licence's line whose two check digits hold as read: OCR noise is repaired by
/// what each field may hold, never by guessing a character to make a digit hold.
pub fn find_licence_line(text: &str) -> Option<LicenceLine> {
    readings(text).iter().flatten().flat_map(|l| fits(l, 30)).find_map(|line| {
        let mut f = Fields::new(&[line]);
        if f.bytes[0] != b'D' {
            return None;
        }
        f.shape(1..2, Kind::Digits);
        f.shape(2..5, Kind::Letters);
        f.shape(15..21, Kind::Digits);
        f.shape(21..29, Kind::Letters);
        let mut failed = Vec::new();
        f.check(0..14, 14, "licence number", false, &mut failed);
        f.check(0..29, 29, "line", false, &mut failed);
        let issuer = f.text(2..5);
        let known = f.bytes[1].is_ascii_digit() && issuer.bytes().all(|b| b.is_ascii_uppercase());
        (failed.is_empty() && known).then_some(())?;
        Some(LicenceLine { issuer, expiry: date(&f.text(15..21), |_| 2000)? })
    })
}

/// The zone's lines as OCR gave them, cleaned; and, when OCR read marks around a line ("N
/// IDFRA…<<< |", a border or a hologram read as letters), the same with each line reduced to its
/// longest word, the zone itself.
fn readings(text: &str) -> Vec<Vec<String>> {
    let (mut whole, mut cores) = (Vec::new(), Vec::new());
    for raw in text.lines() {
        let line = clean_line(raw);
        if !mrz_like(&line) {
            continue;
        }
        let core = raw.split_whitespace().max_by_key(|w| w.len()).map(clean_line).filter(|c| mrz_like(c));
        cores.push(core.unwrap_or_else(|| line.clone()));
        whole.push(line);
    }
    if cores != whole { vec![whole, cores] } else { vec![whole] }
}

fn find_in(lines: &[String], best: &mut Option<Mrz>) {
    let mut consider = |m: Mrz| {
        let key = |m: &Mrz| (m.surname.is_empty(), m.failed.len(), m.document == MrzDocument::Other, m.guesses, m.repairs);
        if best.as_ref().is_none_or(|b| key(&m) < key(b)) {
            *best = Some(m);
        }
    };
    // Each line's readings at each format's length, made once: a line is the first, second or
    // third of several candidate zones.
    let fitted = |len: usize| lines.iter().map(|l| fits(l, len)).collect::<Vec<_>>();
    let (by30, by36, by44) = (fitted(30), fitted(36), fitted(44));
    for i in 0..lines.len().saturating_sub(1) {
        if let Some(third) = by30.get(i + 2) {
            for (a, b) in pairs(&by30[i], &by30[i + 1]) {
                for c in third {
                    consider(td1(&[a.clone(), b.clone(), c.clone()]));
                }
            }
        }
        let a = &lines[i];
        for (a44, b44) in pairs(&by44[i], &by44[i + 1]) {
            if !a44.starts_with('P') {
                continue;
            }
            if a44.as_bytes()[5] == b'<' {
                // No surname where one must be: OCR dropped the issuing state ("P<DOE<<…").
                // The holder's nationality, from the second line, put back: a guess.
                if let Some(restored) = fit(&format!("{}{}{}", &a[..2], &b44[10..13], &a[2..]), 44) {
                    let mut m = td3(&[restored, b44]);
                    m.guesses += 3;
                    consider(m);
                }
            } else {
                consider(td3(&[a44, b44]));
            }
        }
        for (a, b) in pairs(&by36[i], &by36[i + 1]) {
            if (a.starts_with("ID") || a.starts_with("1D")) && a.get(2..5).is_some_and(|c| c.bytes().map(to_letter).eq(*b"FRA")) {
                let mut a = a.clone();
                a.replace_range(0..5, "IDFRA");
                consider(french_id(&[a.clone(), b.clone()]));
            }
            consider(td2(&[a, b]));
        }
    }
}

/// Every pair of readings of two lines (see [`fits`]).
fn pairs(first: &[String], second: &[String]) -> Vec<(String, String)> {
    first.iter().flat_map(|a| second.iter().map(move |b| (a.clone(), b.clone()))).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A driving licence's line with its check digits computed.
    pub(crate) fn licence_line(issuer: &str, number: &str, expiry: &str, surname: &str) -> String {
        let cd = |s: &str| char::from(b'0' + check_digit(s) as u8);
        let head = format!("D1{issuer}{number}");
        let line = format!("{head}{}{expiry}{:<<8}", cd(&head), &surname[..surname.len().min(8)]);
        format!("{line}{}", cd(&line))
    }

    #[test]
    fn a_driving_licence_s_line_is_read_through_ocr_noise_and_proves_only_with_both_digits() {
        let line = licence_line("FRA", "13AA00002", "181231", "MARTIN");
        // The public specimen's line, as printed on it.
        assert_eq!(line, "D1FRA13AA000026181231MARTIN<<9");
        let found = find_licence_line(&format!("PERMIS DE\n5. 13AA00001\n{line}")).expect("read");
        assert_eq!((found.issuer.as_str(), found.expiry), ("FRA", NaiveDate::from_ymd_opt(2018, 12, 31).expect("date")));
        // O for 0 in the date, a filler read as «: repaired by what the fields hold.
        assert!(find_licence_line("D1FRA13AA0000261812O1MARTIN<«9").is_none(), "the date is 181231, not 181201");
        assert_eq!(find_licence_line("D1FRA13AA00002618123IMARTIN<«9"), Some(found.clone()));
        // A digit misread: no check holds, nothing is proven.
        assert_eq!(find_licence_line("D1FRA13AA000026181230MARTIN<<9"), None);
        // A passport's or a card's zone is no licence line.
        assert_eq!(find_licence_line("DUPONT<<JEAN<<<<<<<<<<<<<<<<<<\nIDFRA12AB34567<<<<<<<<<<<<<<<<"), None);
    }

    #[test]
    fn check_digits_of_the_icao_specimen() {
        assert_eq!(check_digit("L898902C3"), 6);
        assert_eq!(check_digit("740812"), 2);
        assert_eq!(check_digit("120415"), 9);
    }

    #[test]
    fn the_icao_passport_specimen_reads_and_checks() {
        let text = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10";
        let m = find(text).expect("read");
        assert_eq!((m.format, m.document), (MrzFormat::Td3, MrzDocument::Passport));
        assert_eq!(m.surname, "ERIKSSON");
        assert_eq!(m.given_names, vec!["ANNA", "MARIA"]);
        assert_eq!(m.birth_date, NaiveDate::from_ymd_opt(1974, 8, 12));
        assert!(m.checked(), "{:?}", m.failed);
    }

    #[test]
    fn ocr_noise_is_repaired_by_field_and_check_digit() {
        // Fillers read as K and «, a dropped filler, O for 0 in the dates.
        let text = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<K<<<<<<<<<«<\nL898902C36UTO74O8122F12O4159ZE184226B<<<<<1O";
        let m = find(text).expect("read");
        assert!(m.checked(), "{:?}", m.failed);
        assert!(m.repairs >= 2);
        assert_eq!(m.birth, "740812");
    }

    #[test]
    fn a_long_run_of_fillers_read_longer_is_brought_back_to_the_line_s_length() {
        // A photographed passport's zone as the whole-page pass read it: line 1 five fillers
        // too long (some read as L), line 2 one character too long.
        let text = "P<LUXMAUS<<KETTY<<<<<<<<<<<<<<<<<L<LLLL<L<L<L<<<<\nS9798527<<4LUX7806201F110808403060021041<<<96";
        let m = find(text).expect("read");
        assert_eq!((m.format, m.document), (MrzFormat::Td3, MrzDocument::Passport));
        assert_eq!((m.surname.as_str(), m.given_names.as_slice()), ("MAUS", ["KETTY".to_string()].as_slice()));
        assert_eq!(m.birth_date, NaiveDate::from_ymd_opt(1978, 6, 20));
        // A line of ordinary length with letters to spare is still no zone line.
        assert_eq!(fit("P<LUXMAUS<<KETTY<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<", 44), None);
    }

    #[test]
    fn long_runs_of_fillers_read_as_letters_are_fillers() {
        let text = "P<LUXMAUS<<KETTY<<<<<<<<<<<<<LLLLLLLLLLLL<<<<\nS998527<<4LUX7806201F110808403060021041<<<96";
        let m = find(text).expect("read");
        assert_eq!((m.surname.as_str(), m.given_names.as_slice()), ("MAUS", ["KETTY".to_string()].as_slice()));
        // Letters before any run of fillers are a name.
        assert_eq!(clean_line("P<UTOMICHELLE<<ELLE<<<<<<"), "P<UTOMICHELLE<<ELLE<<<<<<");
    }

    #[test]
    fn marks_read_around_the_zone_s_lines_are_left_out() {
        // As Tesseract read the 2021 identity card's specimen: a border and a hologram beside
        // the lines.
        let m = find("N IDFRAX4RTBPFW46<<<<<<<<<<<<<<< |\n9007138F3002119FRA<<<<<<<<<<<6 bi\n. MARTIN<<MAELYS<GAELLE<MARIE<<< |.").expect("read");
        assert_eq!((m.format, m.surname.as_str(), m.number.as_str()), (MrzFormat::Td1, "MARTIN", "X4RTBPFW4"));
        assert!(m.checked(), "{:?}", m.failed);
        // Its check digit misread too: still an identity card's zone, not a code "NI".
        let m = find("N IDFRAX4RTBPFW4O<<<<<<<<<<<<<<< |\n9007138F3002119FRA<<<<<<<<<<<6 bi\n. MARTIN<<MAELYS<GAELLE<MARIE<<< |.").expect("read");
        assert_eq!((m.document, m.code.as_str(), m.failed.len()), (MrzDocument::IdentityCard, "ID", 2));
    }

    #[test]
    fn a_first_line_that_lost_its_issuing_state_reads_with_the_nationality_put_back() {
        // As Tesseract read an Indian passport's scan: "IND" gone from the first line.
        let m = find("P<DOE<<JOCELYN<MICHELLE<<<<<<<<<c<<<<cccccce\nJ8369854<4IND5909234F2110101<<<<<<<c<<<ccccc8").expect("read");
        assert_eq!(
            (m.issuer.as_str(), m.surname.as_str(), m.given_names.as_slice()),
            ("IND", "DOE", ["JOCELYN".to_string(), "MICHELLE".to_string()].as_slice())
        );
        assert!(m.failed.is_empty(), "{:?}", m.failed);
        assert!(!m.checked(), "a state put back is a guess, not proof");
        // A complete first line is read as it is.
        let m = find("P<INDDOE<<JOCELYN<MICHELLE<<<<<<<<<<<<<<<<<<<\nJ8369854<4IND5909234F2110101<<<<<<<<<<<<<<8").expect("read");
        assert!(m.checked(), "{:?}", m.failed);
    }

    #[test]
    fn a_zone_whose_fillers_ocr_cut_short_still_reads() {
        // As Tesseract read an Indian passport's specimen: fillers dropped, J read as 1.
        let m = find("P<INDDOE<<JOCELYN<MICHELLE<<<<<<<<<<\n18369854<4IND5909234F2110101<<<<<<<<<<<<8").expect("read");
        assert_eq!((m.surname.as_str(), m.birth.as_str()), ("DOE", "590923"));
        assert!(m.failed.is_empty(), "{:?}", m.failed);
        assert_eq!(m.number, "J8369854");
        assert!(!m.checked(), "a guessed character is not proof");
    }

    #[test]
    fn a_wrong_digit_fails_its_check() {
        let text = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408132F1204159ZE184226B<<<<<10";
        let m = find(text).expect("read");
        assert!(!m.checked());
        assert!(m.failed.contains(&"birth date"));
    }

    #[test]
    fn the_icao_td1_specimen_reads() {
        let text = "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<";
        let m = find(text).expect("read");
        assert_eq!((m.format, m.document), (MrzFormat::Td1, MrzDocument::IdentityCard));
        assert_eq!(m.number, "D23145890");
        assert!(m.checked(), "{:?}", m.failed);
    }

    #[test]
    fn the_icao_td2_specimen_reads() {
        let text = "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nD231458907UTO7408122F1204159<<<<<<<6";
        let m = find(text).expect("read");
        assert_eq!(m.format, MrzFormat::Td2);
        assert!(m.checked(), "{:?}", m.failed);
    }

    #[test]
    fn noise_is_not_a_zone() {
        assert!(find("RÉPUBLIQUE FRANÇAISE\nCARTE NATIONALE D'IDENTITÉ").is_none());
        assert!(find("<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<\n<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<").is_none());
    }

    #[test]
    fn french_cards_of_both_models_read() {
        // The ANTS specimen of the 1988-2021 card, and two more from public test suites.
        for (zone, surname, given, born) in [
            ("IDFRABERTHIER<<<<<<<<<<<<<<<<<<<<<<<\n9409923102854CORINNE<<<<<<<6512068F4", "BERTHIER", vec!["CORINNE"], (1965, 12, 6)),
            ("IDFRABERTHIER<<<<<<<<<<<<<<<<<<<<<<<\n8806923102858CORINNE<<<<<<<6512068F6", "BERTHIER", vec!["CORINNE"], (1965, 12, 6)),
            ("IDFRALOISEAU<<<<<<<<<<<<<<<<<<<<<<<<\n970675K002774HERVE<<DJAMEL<7303216M4", "LOISEAU", vec!["HERVE", "DJAMEL"], (1973, 3, 21)),
        ] {
            let m = find(zone).expect("read");
            assert_eq!((m.format, m.document), (MrzFormat::FrenchId, MrzDocument::IdentityCard), "{zone}");
            assert_eq!((m.surname.as_str(), &m.given_names), (surname, &given.iter().map(|s| s.to_string()).collect::<Vec<_>>()));
            assert_eq!(m.birth_date, NaiveDate::from_ymd_opt(born.0, born.1, born.2));
            assert!(m.checked(), "{zone}: {:?}", m.failed);
        }
        // The card of 2021: plain TD1.
        let m = find("IDFRAX4RTBPFW46<<<<<<<<<<<<<<<\n9007138F3002119FRA<<<<<<<<<<<6\nMARTIN<<MAELYS<GAELLE<MARIE<<<").expect("read");
        assert_eq!((m.format, m.number.as_str(), m.surname.as_str()), (MrzFormat::Td1, "X4RTBPFW4", "MARTIN"));
        assert_eq!(m.expiry_date, NaiveDate::from_ymd_opt(2030, 2, 11));
        assert!(m.checked());
    }

    #[test]
    fn an_old_card_misread_all_over_is_repaired_by_field_kinds() {
        let m = find("1DFRATE5T<NAME<<<<<<<<<<<<<<<<0CHE02\nI7I0GVA123451RO8ERTA<<<<<<<9IIZ3IIF2").expect("read");
        assert_eq!(m.format, MrzFormat::FrenchId);
        assert_eq!((m.surname.as_str(), m.given_names.as_slice()), ("TEST NAME", ["ROBERTA".to_string()].as_slice()));
        assert_eq!(m.birth, "911231");
        assert!(m.failed.is_empty(), "{:?}", m.failed);
    }

    #[test]
    fn other_layouts_from_public_test_suites() {
        // A Swiss card starts with ID but is TD2, not the French layout.
        let m = find("IDCHEMUSTER<<HANS<PETER<<<<<<<<<<<<<\nS1234567<2CHE8501019M3001019<<<<<<<8").expect("read");
        assert_eq!((m.format, m.issuer.as_str()), (MrzFormat::Td2, "CHE"));
        assert!(m.checked(), "{:?}", m.failed);
        // A Portuguese card whose number runs on into the optional data.
        let m = find("I<PRT007666667<ZZ00<<<<<<<<<<<\n8303143M3405293PRT<<<<<<<<<<<4\nCACADOR<DE<ARAUJO<<ANDRE<ESTEV").expect("read");
        assert_eq!(m.format, MrzFormat::Td1);
        assert!(m.failed.is_empty(), "{:?}", m.failed);
        // The French passport of the 2D-Doc specification's example.
        let m = find("P<FRASPECIMEN<<NATACHA<<<<<<<<<<<<<<<<<<<<<<\n07CD123044FRA7307122F1603062<<<<<<<<<<<<<<04").expect("read");
        assert_eq!((m.document, m.surname.as_str()), (MrzDocument::Passport, "SPECIMEN"));
        assert!(m.checked(), "{:?}", m.failed);
    }
}
