//! The classifier's evidence, said in plain French for the operator. The report and the
//! database keep the evidence as the classifier wrote it (its tests and the audit read it); the
//! pages translate the sentences they know and show any other as it is, the original always in
//! the line's tooltip.

use scanbureau_pipeline::plan::FilingPlan;

use super::portal::reason_label;

/// The plan's label of a type code, else the code.
pub(super) fn type_label(plan: Option<&FilingPlan>, code: &str) -> String {
    plan.and_then(|p| p.categories.iter().flat_map(|c| &c.types).find(|t| t.code == code)).map(|t| t.libelle.clone()).unwrap_or_else(|| code.to_string())
}

/// `text` between `start` and `end`, when it begins and ends so.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    text.strip_prefix(start)?.strip_suffix(end)
}

/// One line of evidence in plain French.
pub fn en_clair(line: &str, plan: Option<&FilingPlan>) -> String {
    let l = line.trim();
    if let Some(rest) = l.strip_prefix("segment: ") {
        // ", the document's number N on K pages", once per number the pages share.
        let numbers: Vec<String> = rest
            .split(", the document's number ")
            .skip(1)
            .filter_map(|n| n.split_once(" on ").map(|(number, on)| format!("le même n° {number} sur {} pages", on.trim_end_matches(" pages"))))
            .collect();
        let why = if numbers.is_empty() { String::new() } else { format!(" ({})", numbers.join(", ")) };
        return match rest.split(' ').next().unwrap_or("?") {
            "1" => "Découpage : une page seule.".into(),
            pages => format!("Découpage : {pages} pages prises ensemble{why}."),
        };
    }
    match l {
        "image: too dark or too faint to read" => return "Image trop sombre ou trop pâle pour être lue.".into(),
        "nothing legible was read: an operator decides" => return "Rien de lisible n'a été lu : à l'opérateur de décider.".into(),
        "identity: no household name read" => return "Identité : aucun nom du foyer n'a été lu.".into(),
        _ => {}
    }
    if let Some(words) = between(l, "", " words read, none of a known document") {
        return format!("{words} mots lus, d'aucun document connu.");
    }
    if let Some(d) = l.strip_prefix("outside the plan: a signed 2D-Doc says it is a ") {
        return format!("Hors du plan de classement : un 2D-Doc signé le présente comme « {d} ».");
    }
    if let Some(rest) = l.strip_prefix("outside the plan (") {
        let label = rest.split_once("):").map(|(a, _)| a).unwrap_or(rest);
        return format!("Hors du plan de classement : ressemble à « {label} ».");
    }
    if let Some(why) = l.strip_prefix("original ? ") {
        return original_fr(why);
    }
    if let Some(form) = between(l, "a form an operator verifies: '", "' is read, which proves less than the document itself") {
        return format!("À vérifier : « {form} » est lu, une forme du document qui prouve moins que le document lui-même.");
    }
    if let Some(why) = l.strip_prefix("for an operator: ") {
        return format!("À vérifier : {why}.");
    }
    if let Some(read) = between(l, "identity: '", "' read, not in the household, without proof: an operator checks") {
        return format!("Identité : « {read} » a été lu, hors du foyer, sans preuve : à vérifier.");
    }
    if let Some((read, proof)) = l.strip_prefix("identity: '").and_then(|r| r.split_once("' is not in the household (proof: ")) {
        return format!("Identité : « {read} » n'est pas du foyer (preuve : {}).", proof.trim_end_matches(')'));
    }
    if let Some(rest) = l.strip_prefix("identity: ")
        && let Some((name, _)) = rest.rsplit_once(" (")
    {
        return format!("Identité : {name}.");
    }
    if let Some(read) = between(l, "addressed to '", "', who is not in the household: an operator checks") {
        return format!("Adressé à « {read} », hors du foyer : à vérifier.");
    }
    if let Some(name) = l.strip_prefix("addressed to ") {
        return format!("Adressé à {name}.");
    }
    if let Some((code, cat)) = l.strip_prefix("the plan has no ").and_then(|r| r.split_once(" under ")) {
        return format!("Le plan de classement n'a pas « {} » dans la catégorie {cat}.", type_label(plan, code));
    }
    if let Some(code) = between(l, "would be refused (", ") but held first") {
        return format!("Serait refusée ({}), mais gardée pour vérification.", reason_label(code));
    }
    if let Some(why) = between(l, "held for an operator: ", "; a slip may not have been read") {
        return format!("Gardée pour un opérateur : {why} ; une fiche n'a peut-être pas été lue.");
    }
    if let Some((_, was)) = l.split_once(": to classify (was proposed as ") {
        let was = was.trim_end_matches(')');
        let before = if was == "nothing" { "rien".to_string() } else { format!("« {} »", type_label(plan, was)) };
        return format!("Pièce recoupée par un opérateur : à classer (proposée avant : {before}).");
    }
    // "MRZ FrenchId ID FRA: SURNAME GIVEN, born 01/02/1980, check digits valid".
    if let Some((_, zone)) = l.strip_prefix("MRZ ").and_then(|r| r.split_once(": ")) {
        let zone = zone
            .replace("check digits FAILED:", "chiffres de contrôle faux :")
            .replace("check digits valid after", "chiffres de contrôle justes après")
            .replace("guessed character(s)", "caractère(s) devinés")
            .replace("check digits valid", "chiffres de contrôle justes")
            .replace(", born ", ", né(e) le ")
            .replace("birth date", "date de naissance")
            .replace("composite", "ensemble");
        return format!("Zone lisible par machine : {}.", zone.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    // "CODE 7.5 (title:…, word:…); next OTHER 2.0": the best type, why, and the runner-up.
    if let Some((head, next)) = l.split_once("; next ")
        && let Some((code, rest)) = head.split_once(' ')
        && code.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        let matched = rest.split_once(" (").map(|(_, m)| m.trim_end_matches(')')).unwrap_or("");
        let clues: Vec<String> = matched.split(", ").filter(|c| !c.is_empty()).take(4).map(clue).collect();
        let clues = if clues.is_empty() { String::new() } else { format!(" : {}", clues.join(", ")) };
        let mut runner = next.split(' ');
        let (other, score) = (runner.next().unwrap_or(""), runner.next().and_then(|v| v.parse::<f32>().ok()).unwrap_or(0.0));
        let then = if score > 0.0 { format!(" ; ensuite « {} », moins sûr", type_label(plan, other)) } else { String::new() };
        return format!("Reconnue comme « {} »{clues}{then}.", type_label(plan, code));
    }
    l.to_string()
}

/// Why the job takes a page for an original sent by mistake (see `originals::suspicion`).
fn original_fr(why: &str) -> String {
    let size = |what: &str| {
        why.split_once(" size (")
            .and_then(|(_, r)| r.split_once(')'))
            .map(|(mm, _)| format!("Original ? La page a été numérisée au format {what} ({mm}), et non photocopiée sur une feuille."))
    };
    if why.contains("a card's size") {
        return size("d'une carte").unwrap_or_else(|| why.to_string());
    }
    if why.contains("a passport's size") {
        return size("d'une page de passeport").unwrap_or_else(|| why.to_string());
    }
    if why.contains("booklet size") {
        return size("du livret").unwrap_or_else(|| why.to_string());
    }
    if let Some(share) = between(why, "a stamp or signature in blue or violet ink (", " of the page), which a black-and-white copy does not have") {
        return format!(
            "Original ? Un cachet ou une signature à l'encre bleue ou violette ({share} de la page), qu'une photocopie en noir et blanc n'aurait pas."
        );
    }
    format!("Original ? {why}")
}

/// One clue the classifier matched, as people read it.
fn clue(c: &str) -> String {
    match c.split_once(':') {
        Some(("title", t)) => format!("titre « {t} »"),
        Some(("word", w)) => format!("« {w} »"),
        Some(("layout", "card")) => "format carte".into(),
        Some(("mrz", _)) => "zone lisible par machine".into(),
        _ => c.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classifier_s_sentences_read_in_french_and_others_stay_as_they_are() {
        let plan = FilingPlan::from_toml(scanbureau_pipeline::config::DEFAULT_PLAN).ok();
        let cases = [
            ("segment: 2 pages, page marks [- -]", "Découpage : 2 pages prises ensemble."),
            ("segment: 1 pages, page marks [-]", "Découpage : une page seule."),
            (
                "segment: 3 pages, page marks [- - -], the document's number 7300125584 on 3 pages",
                "Découpage : 3 pages prises ensemble (le même n° 7300125584 sur 3 pages).",
            ),
            ("4 words read, none of a known document", "4 mots lus, d'aucun document connu."),
            ("nothing legible was read: an operator decides", "Rien de lisible n'a été lu : à l'opérateur de décider."),
            ("identity: 'JEAN MARTIN' is not in the household (proof: checked MRZ)", "Identité : « JEAN MARTIN » n'est pas du foyer (preuve : checked MRZ)."),
            (
                "identity: 'JEAN MARTIN' read, not in the household, without proof: an operator checks",
                "Identité : « JEAN MARTIN » a été lu, hors du foyer, sans preuve : à vérifier.",
            ),
            ("identity: DUPONT MARIE (Demandeur, name score 3)", "Identité : DUPONT MARIE."),
            ("addressed to DUPONT MARIE", "Adressé à DUPONT MARIE."),
            (
                "a form an operator verifies: 'justificatif d identite a usage unique' is read, which proves less than the document itself",
                "À vérifier : « justificatif d identite a usage unique » est lu, une forme du document qui prouve moins que le document lui-même.",
            ),
            ("would be refused (PIECE_ILLISIBLE) but held first", "Serait refusée (pièce illisible), mais gardée pour vérification."),
            ("outside the plan (facture): facture, edf [6.0 vs 1.0 for QUITTANCE_LOYER]", "Hors du plan de classement : ressemble à « facture »."),
            ("something new the classifier says", "something new the classifier says"),
            (
                "original ? the page was scanned at a card's size (86 × 54 mm), not copied on a sheet",
                "Original ? La page a été numérisée au format d'une carte (86 × 54 mm), et non photocopiée sur une feuille.",
            ),
            (
                "original ? the page was scanned at the livret's booklet size (150 × 105 mm), not copied on a sheet",
                "Original ? La page a été numérisée au format du livret (150 × 105 mm), et non photocopiée sur une feuille.",
            ),
            (
                "original ? a stamp or signature in blue or violet ink (0.4 % of the page), which a black-and-white copy does not have",
                "Original ? Un cachet ou une signature à l'encre bleue ou violette (0.4 % de la page), qu'une photocopie en noir et blanc n'aurait pas.",
            ),
        ];
        for (raw, fr) in cases {
            let said = en_clair(raw, plan.as_ref());
            if raw.starts_with("would be refused") {
                assert!(said.starts_with("Serait refusée (") && said.ends_with("mais gardée pour vérification."), "{said}");
            } else {
                assert_eq!(said, fr, "{raw}");
            }
        }
        // The best type and the runner-up, by their labels in the plan.
        let said = en_clair("QUITTANCE_LOYER 11.5 (title:quittance de loyer, word:donne quittance, layout:card); next AVIS_IMPOSITION 1.0", plan.as_ref());
        assert!(said.starts_with("Reconnue comme « ") && !said.contains("QUITTANCE_LOYER"), "{said}");
        assert!(said.contains(" : titre « quittance de loyer », « donne quittance », format carte ; ensuite « "), "{said}");
        let alone = en_clair("BULLETIN_SALAIRE 6.0 (title:bulletin de paie); next CNI 0.0", plan.as_ref());
        assert!(!alone.contains("ensuite"), "a runner-up at 0 is no runner-up: {alone}");
        assert_eq!(
            en_clair("MRZ FrenchId ID FRA: PETIT  AICHA , born <<<<<<, check digits FAILED: birth date, composite", plan.as_ref()),
            "Zone lisible par machine : PETIT AICHA , né(e) le <<<<<<, chiffres de contrôle faux : date de naissance, ensemble."
        );
    }
}
