//! The operators' console: feed scanner batches and watch them, decide on the pieces the
//! classifier was unsure of (accept, reclassify, refuse as illegible, split, join, file an
//! original as a stamped copy), deal with work the stages gave up on, answer incidents, keep
//! the register of originals and post them back.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use maud::{Markup, html};

use scanbureau_pipeline::ReasonCode;
use scanbureau_pipeline::input::{FileKind, sniff};
use scanbureau_pipeline::plan::FilingPlan;
use scanbureau_pipeline::slip_print::{RETURN_SLIP_LINES, ReturnSlip, ReturnedOriginal, return_slip_pdf, separator_pdf};

use super::access::{CheckedForm, SignedIn, Staff, Uploader};
use super::evidence;
use super::lists::{ListQuery, mailing_list};
use super::page::{url, when};
use super::portal::{incidents_table, piece_label, upload_form};
use super::{Answer, Fields, WebError, field, interrupted, no_room, pdf_answer, receive_upload, take_upload};
use crate::bureau::{Bureau, Intake};
use crate::decisions::{self, Cut, CutOutcome, MailingRefusal, OriginalOutcome};
use crate::store::desk::{self, Decision};
use crate::store::originals::{self, OriginalState};
use crate::store::{self, people};

pub fn routes() -> Router<Arc<Bureau>> {
    Router::new()
        .route("/console", get(batches))
        .route("/console/batches", post(feed).layer(DefaultBodyLimit::disable()))
        .route("/console/batches/folder", post(feed_folder).layer(DefaultBodyLimit::disable()))
        .route("/console/review", get(review))
        .route("/console/review/{piece}", get(station).post(decide))
        .route("/console/failed", get(failed))
        .route("/console/dead/{id}/retry", post(retry_dead))
        .route("/console/mailings/{id}/reject", post(reject_mailing))
        .route("/console/incidents", get(incidents))
        .route("/console/incidents/{id}", post(answer_incident))
        .route("/console/originaux", get(originals_register).post(post_originals))
        .route("/console/originaux/bordereau", get(return_slip))
        .route("/console/originaux/intercalaire.pdf", get(separator_sheet))
        .route("/console/originaux/{piece}/emplacement", post(move_original))
}

/// Largest batch the console takes (a few hundred pages), and most files in one.
const MAX_BATCH_BYTES: u64 = 500_000_000;
const MAX_BATCH_FILES: usize = 5000;

async fn batches(State(b): State<Arc<Bureau>>, s: SignedIn<Staff>, Query(q): Query<Fields>) -> Answer {
    let list = ListQuery::from_fields(&q);
    let search = list.search(None, &b.site.calendar());
    let (rows, waiting) = tokio::try_join!(desk::mailing_list(&b.pool, &search), desk::open_count(&b.pool))?;
    let body = html! {
        h2 { "Charger un lot numérisé" }
        p {
            "Un fichier du scanner (PDF, TIFF multipage), ou les images d'un lot (JPEG, PNG, TIFF : plusieurs fichiers ou le dossier du scanner, "
            "pris dans l'ordre de leurs noms) : le lot suit le même chemin qu'un lot déposé dans le dossier d'entrée."
        }
        p.muted {
            "Un document original reçu par erreur ? Placez l'" a href="/console/originaux/intercalaire.pdf" target="_blank" rel="noopener" { "intercalaire « original »" }
            " juste avant lui dans le lot : il sera classé comme original (copie tamponnée au dossier, original au registre)."
        }
        (upload_form(
            &s,
            "/console/batches",
            "application/pdf,image/tiff,image/jpeg,image/png,.pdf,.tif,.tiff,.jpg,.jpeg,.png",
            MAX_BATCH_BYTES,
            html! {},
            "Charger le lot",
            true,
        ))
        h2 #plis { "Derniers lots et dépôts" }
        p { (waiting) " en attente ou en traitement." }
        (mailing_list(&b, "/console", &list, &rows, true))
    };
    Ok(s.page("Lots", body))
}

/// `POST /console/batches?name=F`: one scanner file as the body, the CSRF token in a header.
async fn feed(State(b): State<Arc<Bureau>>, Uploader(s): Uploader<Staff>, headers: HeaderMap, Query(q): Query<Fields>, body: Body) -> Answer {
    let refuse = |code: StatusCode, message: String| -> Answer { Err(WebError::json(code, message)) };
    let name = field(&q, "name").unwrap_or("lot.pdf").to_string();
    let upload = take_upload(&crate::workdir::root(&b.config), &headers, body, MAX_BATCH_BYTES, &name).await?;
    if matches!(sniff(&name, &upload.head), FileKind::Unknown | FileKind::Eml) {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Format non reconnu : PDF, TIFF, JPEG ou PNG attendu.".into());
    }
    let files = vec![(crate::blobs::keys::safe_name(&name), upload.path.clone())];
    let source = format!("console:{}", s.account.email);
    let intake = Intake { channel: "paper", source: &source, files: &files, numero_unique: None, notify: None, portal_user: None, counter: None };
    receive_upload(&b, intake, upload.bytes, "console batch").await
}

/// `POST /console/batches/folder` (multipart): the files of one batch, in the order of their
/// names, the CSRF token in a header. Hidden files and `Thumbs.db` are left out.
async fn feed_folder(State(b): State<Arc<Bureau>>, Uploader(s): Uploader<Staff>, mut parts: Multipart) -> Answer {
    let dir = crate::workdir::folder(&crate::workdir::root(&b.config)).map_err(|e| no_room(&e))?;
    let interrupted = |e: axum::extract::multipart::MultipartError| Err(interrupted(&e).into());
    let too_big = || Err(WebError::json(StatusCode::PAYLOAD_TOO_LARGE, format!("Le lot dépasse la limite de {} Mo.", MAX_BATCH_BYTES / 1_000_000)));
    let (mut files, mut total) = (Vec::new(), 0u64);
    loop {
        let mut part = match parts.next_field().await {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => return interrupted(e),
        };
        let Some(sent) = part.file_name().map(str::to_string) else { continue };
        let name = sent.rsplit(['/', '\\']).next().unwrap_or_default().to_string();
        if name.is_empty() || name.starts_with('.') || name.eq_ignore_ascii_case("Thumbs.db") {
            continue;
        }
        if files.len() == MAX_BATCH_FILES {
            return Err(WebError::json(StatusCode::PAYLOAD_TOO_LARGE, format!("Un lot compte au plus {MAX_BATCH_FILES} fichiers.")));
        }
        let path = dir.path().join(format!("{:05}", files.len()));
        let mut out = tokio::fs::File::create(&path).await.map_err(|e| no_room(&e))?;
        let mut head = Vec::new();
        loop {
            let chunk = match part.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => return interrupted(e),
            };
            total += chunk.len() as u64;
            if total > MAX_BATCH_BYTES {
                return too_big();
            }
            if head.len() < 1024 {
                head.extend_from_slice(&chunk[..chunk.len().min(1024 - head.len())]);
            }
            tokio::io::AsyncWriteExt::write_all(&mut out, &chunk).await.map_err(|e| no_room(&e))?;
        }
        if matches!(sniff(&name, &head), FileKind::Unknown | FileKind::Eml) {
            return Err(WebError::json(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("{name} : format non reconnu (PDF, TIFF, JPEG ou PNG attendu).")));
        }
        files.push((crate::blobs::keys::safe_name(&name), path));
    }
    if files.is_empty() {
        return Err(WebError::json(StatusCode::BAD_REQUEST, "Le lot est vide."));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let source = format!("console:{}", s.account.email);
    let intake = Intake { channel: "paper", source: &source, files: &files, numero_unique: None, notify: None, portal_user: None, counter: None };
    receive_upload(&b, intake, total, "console batch").await
}

// ---------------------------------------------------------------- review

/// The plan's types, grouped by category, with the proposed one chosen; without a proposal
/// nothing is chosen, so a type has to be picked (never the plan's first by default).
fn type_options(plan: &FilingPlan, current: Option<(&str, &str)>) -> Markup {
    html! {
        @if current.is_none() { option value="" selected disabled { "— choisir le type —" } }
        @for c in &plan.categories {
            optgroup label=(c.libelle) {
                @for t in &c.types {
                    option value={ (c.code) "/" (t.code) } selected[current == Some((c.code.as_str(), t.code.as_str()))] { (t.libelle) }
                }
            }
        }
    }
}

async fn review(State(b): State<Arc<Bureau>>, s: SignedIn<Staff>) -> Answer {
    let (queue, plan) = tokio::try_join!(desk::review_queue(&b.pool, 50), store::current_plan(&b.pool))?;
    let body = html! {
        @if queue.is_empty() { p.muted { "Aucune pièce n'attend de vérification." } }
        @for pc in &queue { (review_card(&s, pc, &queue, &plan)) }
    };
    Ok(s.page("Pièces à vérifier", body))
}

/// One piece waiting for an operator: its pages, what the classifier proposes and why, and the
/// decisions.
fn review_card(s: &super::Signed, pc: &desk::PieceView, queue: &[desk::PieceView], plan: &FilingPlan) -> Markup {
    html! {
        section.card.review data-piece=(pc.id) {
            h2 { "Pièce " (pc.id) " " a.small href=(station_url(&pc.id)) { "vérifier au poste" } }
            (piece_facts(pc))
            div.thumbs {
                @if pc.sensible && !s.account.sensitive {
                    p.muted { "Pièce confidentielle : aperçu réservé au profil sensible." }
                } @else {
                    @for n in 0..pc.pages.clamp(1, 4) {
                        img.thumb src={ "/pieces/" (url(&pc.id)) "/pages/" (n) } alt={ "page " (n + 1) " de la pièce" } loading="lazy";
                    }
                }
            }
            (proposal(s, pc, plan))
            (original_warning(pc))
            details { summary { "Indices relevés" } (evidence_list(pc, plan)) }
            (decision_forms(s, pc, queue, plan, None))
        }
    }
}

fn station_url(piece: &str) -> String {
    format!("/console/review/{}", url(piece))
}

/// Mailing, request, pages and confidence of a piece in review.
fn piece_facts(pc: &desk::PieceView) -> Markup {
    html! {
        p {
            "Pli " a href={ "/mailings/" (url(&pc.mailing_id)) } { (pc.mailing_id) }
            " · demande " (pc.numero_unique.as_deref().unwrap_or("—")) " · " (pc.pages) " page(s) · confiance " (format!("{:.0}", pc.confidence * 100.0)) " %"
        }
    }
}

/// The evidence of a piece in plain French, the classifier's own words in each line's tooltip.
fn evidence_list(pc: &desk::PieceView, plan: &FilingPlan) -> Markup {
    html! { ul.evidence { @for e in &pc.evidence { li title=(e) { (evidence::en_clair(e, Some(plan))) } } } }
}

/// A piece the job suspects to be an original sent by mistake: the operator confirms it (the
/// paper is then kept and sent back) or accepts the piece as the copy it is.
fn original_warning(pc: &desk::PieceView) -> Markup {
    html! {
        @if pc.evidence.iter().any(|e| e.starts_with("original ?")) {
            p.suspicion role="note" { strong { "Original possible" } " : s'il s'agit bien du document original, classez une copie tamponnée et rangez l'original ; sinon, acceptez la pièce." }
        }
    }
}

/// What the classifier proposes, and the piece's PDF one click away.
fn proposal(s: &super::Signed, pc: &desk::PieceView, plan: &FilingPlan) -> Markup {
    let proposed = pc.categorie.is_some() && pc.type_code.is_some();
    let label = if proposed { piece_label(&desk::PieceView { sensible: false, ..pc.clone() }, Some(plan)) } else { "aucune".into() };
    html! {
        p {
            "Catégorie proposée : " strong { (label) }
            @if pc.key.is_some() && (!pc.sensible || s.account.sensitive) {
                " · " a href={ "/pieces/" (url(&pc.id)) "/pdf" } target="_blank" rel="noopener" data-key="o" { "ouvrir le PDF" }
            }
        }
    }
}

/// The decisions on a piece. At the review station, `next` is the piece to show once this one
/// is decided (empty: back to the list) and the buttons carry their keyboard shortcut.
fn decision_forms(s: &super::Signed, pc: &desk::PieceView, queue: &[desk::PieceView], plan: &FilingPlan, next: Option<&str>) -> Markup {
    let proposed = pc.categorie.as_deref().zip(pc.type_code.as_deref());
    let action = station_url(&pc.id);
    let hidden = |what: &str| {
        html! {
            (s.csrf_field()) input type="hidden" name="action" value=(what);
            @if let Some(n) = next { input type="hidden" name="next" value=(n); }
        }
    };
    html! {
        // Nothing to accept without a proposal: the operator chooses the type with « Reclasser ».
        @if proposed.is_some() {
            form.inline method="post" action=(action) { (hidden("accept")) button type="submit" data-key="a" { "Accepter" } }
        }
        form.inline method="post" action=(action) {
            (hidden("reclassify"))
            select name="type" aria-label="nouvelle catégorie" required data-key="r" { (type_options(plan, proposed)) }
            button type="submit" { "Reclasser" }
        }
        form.inline.original method="post" action=(action) {
            (hidden("original"))
            select name="original_type" aria-label="type de l'original" required { (type_options(plan, proposed)) }
            input type="text" name="emplacement" required maxlength="60" placeholder="bac ou boîte" aria-label="où l'original est rangé" data-key="g";
            button type="submit" { "Original : classer une copie tamponnée" }
        }
        form.inline method="post" action=(action) {
            (hidden("illegible"))
            button type="submit" data-confirm="Refuser cette pièce comme illisible ?" data-key="i" { "Illisible" }
        }
        (cut_forms(s, pc, queue, &action, next))
    }
}

/// The review station: one piece at a time, its pages large (a click opens a page at full
/// size), the decision beside them, keyboard shortcuts, and the next piece as soon as this one
/// is decided.
async fn station(State(b): State<Arc<Bureau>>, s: SignedIn<Staff>, Path(piece): Path<String>) -> Answer {
    let (queue, plan) = tokio::try_join!(desk::review_queue(&b.pool, STATION_QUEUE), store::current_plan(&b.pool))?;
    let Some(at) = queue.iter().position(|p| p.id == piece) else {
        // Decided meanwhile (or never in review): the first piece still waiting, or the list.
        return Ok(Redirect::to(&queue.first().map(|p| station_url(&p.id)).unwrap_or_else(|| "/console/review".into())).into_response());
    };
    let pc = &queue[at];
    let prev = at.checked_sub(1).map(|i| &queue[i]);
    // After the last piece, the first one still waiting; none when this is the only one.
    let next = queue.get(at + 1).or_else(|| queue.first().filter(|p| p.id != pc.id));
    let closed = pc.sensible && !s.account.sensitive;
    let body = html! {
        section.station data-station data-piece=(pc.id) {
            nav.paging aria-label="pièces à vérifier" {
                @if let Some(p) = prev { a rel="prev" href=(station_url(&p.id)) data-key="k" { "← précédente (k)" } }
                span { "pièce " (at + 1) " sur " (queue.len()) }
                @if let Some(n) = next { a rel="next" href=(station_url(&n.id)) data-key="j" { "suivante (j) →" } }
                a href="/console/review" { "la liste" }
            }
            div.station-body {
                div.station-pages {
                    @if closed {
                        p.muted { "Pièce confidentielle : aperçu et décision réservés au profil sensible." }
                    } @else {
                        @for n in 0..pc.pages.max(1) {
                            a href={ "/pieces/" (url(&pc.id)) "/pages/" (n) "?largeur=2000" } target="_blank" rel="noopener" title="ouvrir la page en grand" {
                                img.page src={ "/pieces/" (url(&pc.id)) "/pages/" (n) "?largeur=1100" } alt={ "page " (n + 1) " de la pièce" } loading="lazy";
                            }
                        }
                    }
                }
                aside.station-panel {
                    h2 { "Pièce " (pc.id) }
                    (piece_facts(pc))
                    (proposal(&s, pc, &plan))
                    (original_warning(pc))
                    details open { summary { "Indices relevés" } (evidence_list(pc, &plan)) }
                    @if !closed { (decision_forms(&s, pc, &queue, &plan, Some(next.map(|n| n.id.as_str()).unwrap_or("")))) }
                    p.muted.small {
                        "Raccourcis : " kbd { "a" } " accepter · " kbd { "r" } " choisir un autre type · " kbd { "g" } " original · " kbd { "i" } " illisible · "
                        kbd { "o" } " ouvrir le PDF · " kbd { "j" } " / " kbd { "k" } " pièce suivante / précédente"
                    }
                }
            }
        }
    };
    Ok(s.page(&format!("Vérification · pièce {} sur {}", at + 1, queue.len()), body))
}

/// Pieces the station walks through (the review list shows the first fifty).
const STATION_QUEUE: i64 = 500;

/// Where a decision leads: the station's next piece, or the review list.
fn after_decision(form: &Fields) -> String {
    match field(form, "next") {
        Some(n) if n.chars().all(|c| c.is_ascii_alphanumeric() || "-+_".contains(c)) => station_url(n),
        _ => "/console/review".into(),
    }
}

/// Forms to change the cut: split a piece of several pages, join it with another piece of the
/// same request that waits in review.
fn cut_forms(s: &super::Signed, pc: &desk::PieceView, queue: &[desk::PieceView], action: &str, next: Option<&str>) -> Markup {
    let partners: Vec<&desk::PieceView> =
        queue.iter().filter(|o| o.id != pc.id && o.mailing_id == pc.mailing_id && o.numero_unique == pc.numero_unique).collect();
    let next_field = html! { @if let Some(n) = next { input type="hidden" name="next" value=(n); } };
    html! {
        @if pc.pages > 1 {
            form.inline method="post" action=(action) {
                (s.csrf_field()) input type="hidden" name="action" value="split"; (next_field)
                label { "Couper après la page " input type="number" name="after" min="1" max=(pc.pages - 1) value="1"; }
                button type="submit" { "Couper" }
            }
        }
        @if !partners.is_empty() {
            form.inline method="post" action=(action) {
                (s.csrf_field()) input type="hidden" name="action" value="join"; (next_field)
                label { "Joindre à la suite la pièce " select name="with" { @for o in &partners { option value=(o.id) { (o.id) } } } }
                button type="submit" { "Joindre" }
            }
        }
    }
}

async fn decide(State(b): State<Arc<Bureau>>, Path(piece): Path<String>, CheckedForm { signed: s, fields: form }: CheckedForm<Staff>) -> Answer {
    let plan = store::current_plan(&b.pool).await?;
    // Nobody changes a sensitive piece they may not see.
    let current = match desk::piece(&b.pool, &piece).await? {
        Some(p) if p.sensible && !s.account.sensitive => {
            return Err(s.error(StatusCode::FORBIDDEN, "Pièce confidentielle : décision réservée au profil sensible."));
        }
        Some(p) => p,
        None => return Err(s.error(StatusCode::NOT_FOUND, "Cette pièce n'existe pas.")),
    };
    let already = || s.error(StatusCode::CONFLICT, "Cette pièce a déjà été traitée (par vous ou un autre opérateur).");
    let cut = match field(&form, "action") {
        Some("split") => match field(&form, "after").and_then(|a| a.parse::<u32>().ok()) {
            Some(after) => Some(Cut::Split { after }),
            None => return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, "Indiquez après quelle page couper.")),
        },
        Some("join") => match field(&form, "with") {
            Some(with) => Some(Cut::Join { with: with.to_string() }),
            None => return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, "Choisissez la pièce à joindre.")),
        },
        _ => None,
    };
    if let Some(cut) = cut {
        if current.status != "review" {
            return Err(already());
        }
        return match decisions::change_cut(&b, &current, &cut, &s.account.actor(), s.account.sensitive).await? {
            CutOutcome::Done => Ok(Redirect::to(&after_decision(&form)).into_response()),
            CutOutcome::Changed => {
                Err(s.error(StatusCode::CONFLICT, "Ces pièces ont changé entre-temps (décidées par un autre opérateur ?) : rien n'a été modifié."))
            }
            CutOutcome::NotPossible(why) => Err(s.error(StatusCode::CONFLICT, &why)),
            CutOutcome::Refused(why) => Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, &why)),
        };
    }
    if field(&form, "action") == Some("original") {
        if current.status != "review" {
            return Err(already());
        }
        let Some((c, t)) = field(&form, "original_type").and_then(|v| v.split_once('/')) else {
            return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, "Choisissez le type du document original."));
        };
        let Some(ty) = plan.piece_type(c, t) else {
            return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, "Cette catégorie n'est pas dans le plan de classement."));
        };
        let Some(location) = field(&form, "emplacement") else {
            return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, "Indiquez où l'original est rangé (bac ou boîte)."));
        };
        let location: String = location.chars().take(60).collect();
        return match decisions::confirm_original(&b, &current, (c, t, ty.sensible), &location, &s.account.actor(), &plan).await? {
            OriginalOutcome::Filed(_) => Ok(Redirect::to(&after_decision(&form)).into_response()),
            OriginalOutcome::NotInReview => Err(already()),
            OriginalOutcome::Refused(why) => Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, &why)),
        };
    }
    let decision = match field(&form, "action") {
        Some("accept") if current.categorie.is_none() => {
            return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, "Aucune catégorie n'est proposée pour cette pièce : choisissez-la avec « Reclasser »."));
        }
        Some("accept") => Decision::Accept,
        Some("illegible") => Decision::Illegible,
        Some("reclassify") => {
            let Some((c, t)) = field(&form, "type").and_then(|v| v.split_once('/')) else {
                return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, "Choisissez la nouvelle catégorie."));
            };
            let Some(ty) = plan.piece_type(c, t) else {
                return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, "Cette catégorie n'est pas dans le plan de classement."));
            };
            Decision::Reclassify { categorie: c.to_string(), type_code: t.to_string(), sensible: ty.sensible }
        }
        _ => return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, "Décision inconnue.")),
    };
    match decisions::decide_piece(&b, &piece, &decision, &s.account.actor(), &plan).await? {
        Some(_) => Ok(Redirect::to(&after_decision(&form)).into_response()),
        None => Err(already()),
    }
}

// ---------------------------------------------------------------- given-up work

async fn failed(State(b): State<Arc<Bureau>>, s: SignedIn<Staff>) -> Answer {
    let (dead, open) = tokio::try_join!(desk::dead_letters(&b.pool, 200), desk::open_mailings(&b.pool))?;
    let failed: Vec<_> = open.iter().filter(|m| m.status == "failed").collect();
    let reasons = [ReasonCode::FichierCorrompu, ReasonCode::FormatNonSupporte, ReasonCode::FichierTropVolumineux, ReasonCode::PliSansBordereau];
    let body = html! {
        h2 { "Plis en échec" }
        @if failed.is_empty() { p.muted { "Aucun pli en échec." } }
        @for m in failed {
            section.card data-failed=(m.id) {
                p { "Pli " a href={ "/mailings/" (url(&m.id)) } { (m.id) } " (" (m.source) ") : " (m.last_error.as_deref().unwrap_or("cause inconnue")) }
                form.inline method="post" action={ "/console/mailings/" (url(&m.id)) "/reject" } {
                    (s.csrf_field())
                    select name="reason" { @for r in reasons { option value=(r.code()) { (r.libelle()) } } }
                    button type="submit" data-confirm="Refuser ce pli et en avertir l'expéditeur ?" { "Refuser avec un avis" }
                }
            }
        }
        h2 { "Messages abandonnés par les étapes" }
        @if dead.is_empty() {
            p.muted { "Aucun." }
        } @else {
            table {
                thead { tr { th { "Quand" } th { "Étape" } th { "Sujet" } th { "Essais" } th { "Motif" } th {} } }
                tbody {
                    @for d in &dead {
                        tr {
                            td { (when(&d.at, &b.site)) }
                            td { (d.stage) }
                            td { (d.subject.as_deref().unwrap_or("—")) }
                            td { (d.attempts) }
                            td { (d.reason) }
                            td {
                                @match &d.resolution {
                                    Some(r) => { (r) " par " (d.resolved_by.as_deref().unwrap_or("?")) },
                                    None => form.inline method="post" action={ "/console/dead/" (d.id) "/retry" } {
                                        (s.csrf_field()) button type="submit" { "Relancer" }
                                    },
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(s.page("Échecs", body))
}

async fn retry_dead(State(b): State<Arc<Bureau>>, Path(id): Path<i64>, CheckedForm { signed: s, .. }: CheckedForm<Staff>) -> Answer {
    if !decisions::retry_dead_letter(&b, id, &s.account.actor()).await? {
        return Err(s.error(StatusCode::CONFLICT, "Ce message a déjà été traité."));
    }
    Ok(Redirect::to("/console/failed").into_response())
}

async fn reject_mailing(State(b): State<Arc<Bureau>>, Path(id): Path<String>, CheckedForm { signed: s, fields: form }: CheckedForm<Staff>) -> Answer {
    let reason = field(&form, "reason").and_then(ReasonCode::from_code).unwrap_or(ReasonCode::FichierCorrompu);
    match decisions::refuse_failed_mailing(&b, &id, reason, &s.account.actor()).await? {
        MailingRefusal::Refused { .. } => Ok(Redirect::to("/console/failed").into_response()),
        MailingRefusal::Missing => Err(s.error(StatusCode::NOT_FOUND, "Ce pli n'existe pas.")),
        MailingRefusal::NotFailed => Err(s.error(StatusCode::CONFLICT, "Ce pli n'est plus en échec.")),
    }
}

// ---------------------------------------------------------------- incidents

async fn incidents(State(b): State<Arc<Bureau>>, s: SignedIn<Staff>) -> Answer {
    let rows = people::incidents(&b.pool, &s.account, false).await?;
    Ok(s.page("Fiches incident", incidents_table(&b, &s, &rows, true)))
}

async fn answer_incident(State(b): State<Arc<Bureau>>, Path(id): Path<i64>, CheckedForm { signed: s, fields: form }: CheckedForm<Staff>) -> Answer {
    let status = field(&form, "status").unwrap_or_default();
    if !people::INCIDENT_STATUSES.iter().any(|(k, _)| *k == status) {
        return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, "État inconnu."));
    }
    let answer: String = form.get("answer").map(|a| a.trim().chars().take(2000).collect()).unwrap_or_default();
    match people::update_incident(&b.pool, id, status, &answer, &s.account.actor()).await {
        Ok(true) => Ok(Redirect::to("/console/incidents").into_response()),
        Ok(false) => Err(s.error(StatusCode::NOT_FOUND, "Cette fiche n'existe pas.")),
        Err(e) => Err(WebError::unavailable(e)),
    }
}

// ---------------------------------------------------------------- originals

/// The register of originals: those kept, the one to leave soonest first, with where they are
/// and the day they must leave; a posting back to the GIP SNE is recorded by ticking them, with
/// its date and tracking number; those returned after, with their return slip.
async fn originals_register(State(b): State<Arc<Bureau>>, s: SignedIn<Staff>) -> Answer {
    let (rows, plan) = tokio::try_join!(originals::register(&b.pool, 500), store::current_plan(&b.pool))?;
    let now = chrono::Utc::now();
    let today = b.site.calendar().localise(now.fixed_offset()).date_naive();
    let label = |code: &Option<String>| code.as_deref().map(|c| evidence::type_label(Some(&plan), c)).unwrap_or_else(|| "—".into());
    let (kept, returned): (Vec<_>, Vec<_>) = rows.iter().partition(|o| o.kept());
    let body = html! {
        p.muted {
            "Un original reçu par erreur est gardé au plus un mois après sa réception, puis renvoyé au GIP SNE, qui le rend à son titulaire. "
            "La pièce déposée au dossier est la copie tamponnée « COPIE » du bureau. "
            "En préparant un lot, placez l'" a href="/console/originaux/intercalaire.pdf" target="_blank" rel="noopener" { "intercalaire « original »" }
            " juste avant un original : il est alors classé ainsi sans vérification."
        }
        h2 { "Gardés au bureau (" (kept.len()) ")" }
        @if kept.is_empty() { p.muted { "Aucun original n'est gardé." } } @else {
            form method="post" action="/console/originaux" {
                (s.csrf_field())
                table {
                    thead { tr { th { "Envoyer" } th { "Demande" } th { "Document" } th { "Rangé en" } th { "Reçu le" } th { "À renvoyer avant le" } th { "Pli" } } }
                    tbody {
                        @for o in &kept {
                            @let late = o.due_at < now;
                            tr.late[late] {
                                td { input type="checkbox" name={ "piece-" (o.piece_id) } aria-label={ "envoyer l'original de la pièce " (o.piece_id) }; }
                                td { (o.numero_unique.as_deref().unwrap_or("—")) }
                                td { (label(&o.type_code)) }
                                td {
                                    // Its own form, outside the posting's (forms do not nest).
                                    input type="text" name="emplacement" value=(o.location) required maxlength="60" form={ "ranger-" (o.piece_id) }
                                        aria-label={ "où est l'original de la pièce " (o.piece_id) };
                                    " " button type="submit" form={ "ranger-" (o.piece_id) } { "Ranger" }
                                }
                                td { (when(&o.received_at, &b.site)) }
                                td { (when(&o.due_at, &b.site)) @if late { " " strong { "dépassé" } } }
                                td { a href={ "/mailings/" (url(&o.mailing_id)) } { (o.mailing_id) } }
                            }
                        }
                    }
                }
                p {
                    label { "Envoyés le " input type="date" name="envoi" required value=(today.format("%Y-%m-%d")); }
                    " "
                    label { "n° de suivi " input type="text" name="suivi" required maxlength="40"; }
                    " "
                    button type="submit" { "Enregistrer l'envoi au GIP SNE" }
                }
                p.muted.small { "Au plus " (RETURN_SLIP_LINES) " originaux par envoi : un bordereau de restitution est imprimé pour chaque envoi." }
            }
            @for o in &kept {
                form id={ "ranger-" (o.piece_id) } method="post" action={ "/console/originaux/" (url(&o.piece_id)) "/emplacement" } { (s.csrf_field()) }
            }
        }
        h2 { "Renvoyés au GIP SNE (" (returned.len()) ")" }
        @if returned.is_empty() { p.muted { "Aucun original n'a encore été renvoyé." } } @else {
            table {
                thead { tr { th { "Demande" } th { "Document" } th { "Reçu le" } th { "Envoyé le" } th { "N° de suivi" } } }
                tbody {
                    @for o in &returned {
                        tr {
                            td { (o.numero_unique.as_deref().unwrap_or("—")) }
                            td { (label(&o.type_code)) }
                            td { (when(&o.received_at, &b.site)) }
                            @if let OriginalState::Returned { on, tracking } = &o.state {
                                td { (on.format("%d/%m/%Y")) }
                                td { a href={ "/console/originaux/bordereau?suivi=" (url(tracking)) } target="_blank" rel="noopener" { (tracking) " · bordereau" } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(s.page("Registre des originaux", body))
}

/// Records where an original still kept has been put.
async fn move_original(State(b): State<Arc<Bureau>>, Path(piece): Path<String>, CheckedForm { signed: s, fields: form }: CheckedForm<Staff>) -> Answer {
    let Some(location) = field(&form, "emplacement") else {
        return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, "Indiquez où l'original est rangé (bac ou boîte)."));
    };
    let location: String = location.chars().take(60).collect();
    if !originals::move_to(&b.pool, &piece, &location, &s.account.actor()).await? {
        return Err(s.error(StatusCode::CONFLICT, "Cet original n'est plus gardé au bureau (renvoyé entre-temps ?)."));
    }
    Ok(Redirect::to("/console/originaux").into_response())
}

/// Records a posting of originals back to the GIP SNE, then shows its return slip.
async fn post_originals(State(b): State<Arc<Bureau>>, CheckedForm { signed: s, fields: form }: CheckedForm<Staff>) -> Answer {
    let mut pieces: Vec<String> = form.keys().filter_map(|k| k.strip_prefix("piece-")).map(str::to_string).collect();
    pieces.sort();
    if pieces.is_empty() {
        return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, "Cochez les originaux mis dans l'envoi."));
    }
    if pieces.len() > RETURN_SLIP_LINES {
        return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, &format!("Au plus {RETURN_SLIP_LINES} originaux par envoi : faites-en plusieurs.")));
    }
    let Some(posted_on) = field(&form, "envoi").and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()) else {
        return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, "Indiquez la date de l'envoi."));
    };
    let Some(tracking) = field(&form, "suivi").filter(|t| t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')) else {
        return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, "Indiquez le numéro de suivi de l'envoi (lettres et chiffres)."));
    };
    let returned = originals::record_return(&b.pool, &pieces, posted_on, tracking, &s.account.actor()).await?;
    if returned.len() < pieces.len() {
        return Err(s.error(StatusCode::CONFLICT, "Certains de ces originaux ont déjà été renvoyés (par un autre opérateur ?) : les autres sont enregistrés."));
    }
    Ok(Redirect::to("/console/originaux").into_response())
}

/// The return slip of one posting (by its tracking number), to print and put in the envelope.
async fn return_slip(State(b): State<Arc<Bureau>>, s: SignedIn<Staff>, Query(q): Query<Fields>) -> Answer {
    let Some(tracking) = field(&q, "suivi") else {
        return Err(s.error(StatusCode::NOT_FOUND, "Indiquez le numéro de suivi de l'envoi."));
    };
    let (sent, plan) = tokio::try_join!(originals::posting(&b.pool, tracking), store::current_plan(&b.pool))?;
    let Some(posted_on) = sent.iter().find_map(|o| match o.state {
        OriginalState::Returned { on, .. } => Some(on),
        OriginalState::Kept => None,
    }) else {
        return Err(s.error(StatusCode::NOT_FOUND, "Aucun envoi n'a ce numéro de suivi."));
    };
    let calendar = b.site.calendar();
    let slip = ReturnSlip {
        bureau: b.site.site.name.clone(),
        posted_on,
        tracking: tracking.to_string(),
        originals: sent
            .iter()
            .map(|o| ReturnedOriginal {
                numero_unique: o.numero_unique.clone().unwrap_or_else(|| "—".into()),
                document: o.type_code.as_deref().map(|c| evidence::type_label(Some(&plan), c)).unwrap_or_else(|| "—".into()),
                received_on: calendar.localise(o.received_at.fixed_offset()).date_naive(),
                location: o.location.clone(),
            })
            .collect(),
    };
    match return_slip_pdf(&slip) {
        Ok(pdf) => pdf_answer("inline", &format!("restitution-{tracking}.pdf"), pdf),
        Err(e) => Err(s.error(StatusCode::INTERNAL_SERVER_ERROR, &format!("Le bordereau n'a pas pu être écrit : {e}."))),
    }
}

/// The separator sheet an operator prints once and puts before each original in a batch.
async fn separator_sheet(s: SignedIn<Staff>) -> Answer {
    match separator_pdf() {
        Ok(pdf) => pdf_answer("inline", "intercalaire-original.pdf", pdf),
        Err(e) => Err(s.error(StatusCode::INTERNAL_SERVER_ERROR, &format!("L'intercalaire n'a pas pu être écrit ({e}) ; réessayez."))),
    }
}
