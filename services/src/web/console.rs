//! The operators' console: feed scanner batches and watch them, decide on the pieces the
//! classifier was unsure of (accept, reclassify, refuse as illegible, split, join), deal with work the stages gave up on, answer incidents.

use std::fmt::Write;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use chrono::Utc;

use scanbureau_pipeline::ReasonCode;
use scanbureau_pipeline::input::{FileKind, sniff};
use scanbureau_pipeline::notice::{NoticeContext, NoticePiece, RequestNotice, mailing_notice, request_notice};
use scanbureau_pipeline::piece_edit;
use scanbureau_pipeline::plan::FilingPlan;
use scanbureau_pipeline::report::PieceStatus;

use super::access::{CheckedForm, SignedIn, Staff, Uploader};
use super::page::{esc, url};
use super::portal::{incidents_table, mailings_table, piece_label, upload_form};
use super::{Answer, Fields, WebError, field, receive_upload, take_upload};
use crate::broker::Stage;
use crate::bureau::{Bureau, Intake, notice_message};
use crate::store::desk::{self, Decision};
use crate::store::{self, people};

pub fn routes() -> Router<Arc<Bureau>> {
    Router::new()
        .route("/console", get(batches))
        .route("/console/batches", post(feed).layer(DefaultBodyLimit::disable()))
        .route("/console/batches/folder", post(feed_folder).layer(DefaultBodyLimit::disable()))
        .route("/console/review", get(review))
        .route("/console/review/{piece}", post(decide))
        .route("/console/failed", get(failed))
        .route("/console/dead/{id}/retry", post(retry_dead))
        .route("/console/mailings/{id}/reject", post(reject_mailing))
        .route("/console/incidents", get(incidents))
        .route("/console/incidents/{id}", post(answer_incident))
}

/// Largest batch the console takes (a few hundred pages), and most files in one.
const MAX_BATCH_BYTES: u64 = 500_000_000;
const MAX_BATCH_FILES: usize = 5000;

async fn batches(State(b): State<Arc<Bureau>>, s: SignedIn<Staff>) -> Answer {
    let rows = desk::mailings(&b.pool, None, 200).await?;
    let mut p = s.page("Lots");
    p.push("<h2>Charger un lot numérisé</h2><p>Un fichier du scanner (PDF, TIFF multipage), ou les images d'un lot (JPEG, PNG, TIFF : plusieurs fichiers ou le dossier du scanner, pris dans l'ordre de leurs noms) : le lot suit le même chemin qu'un lot déposé dans le dossier d'entrée.</p>");
    p.push(&upload_form(
        &s,
        "/console/batches",
        "application/pdf,image/tiff,image/jpeg,image/png,.pdf,.tif,.tiff,.jpg,.jpeg,.png",
        MAX_BATCH_BYTES,
        "",
        "Charger le lot",
        true,
    ));
    let waiting = rows.iter().filter(|m| m.status != "done").count();
    let _ = write!(p.body, "<h2>Derniers lots et dépôts</h2><p>{waiting} en attente ou en traitement.</p>");
    p.push(&mailings_table(&b, &rows, true));
    Ok(p.into_response())
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
    let dir = match crate::workdir::folder(&crate::workdir::root(&b.config)) {
        Ok(d) => d,
        Err(e) => return Err(WebError::json(StatusCode::INTERNAL_SERVER_ERROR, format!("no room for the upload: {e}"))),
    };
    let interrupted = |e: axum::extract::multipart::MultipartError| Err(WebError::json(StatusCode::BAD_REQUEST, format!("l'envoi a été interrompu : {e}")));
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
        let mut out = match tokio::fs::File::create(&path).await {
            Ok(f) => f,
            Err(e) => return Err(WebError::json(StatusCode::INTERNAL_SERVER_ERROR, format!("no room for the upload: {e}"))),
        };
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
            if let Err(e) = tokio::io::AsyncWriteExt::write_all(&mut out, &chunk).await {
                return Err(WebError::json(StatusCode::INTERNAL_SERVER_ERROR, format!("could not keep the upload: {e}")));
            }
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

fn type_options(plan: &FilingPlan, current: Option<(&str, &str)>) -> String {
    let mut o = String::new();
    for c in &plan.categories {
        let _ = write!(o, r#"<optgroup label="{}">"#, esc(&c.libelle));
        for t in &c.types {
            let selected = current == Some((c.code.as_str(), t.code.as_str()));
            let _ = write!(o, r#"<option value="{}/{}"{}>{}</option>"#, esc(&c.code), esc(&t.code), if selected { " selected" } else { "" }, esc(&t.libelle));
        }
        o.push_str("</optgroup>");
    }
    o
}

async fn review(State(b): State<Arc<Bureau>>, s: SignedIn<Staff>) -> Answer {
    let (queue, plan) = tokio::try_join!(desk::review_queue(&b.pool, 50), store::current_plan(&b.pool))?;
    let mut p = s.page("Pièces à vérifier");
    if queue.is_empty() {
        p.push(r#"<p class="muted">Aucune pièce n'attend de vérification.</p>"#);
    }
    let csrf = p.csrf_field();
    for pc in &queue {
        let proposed = pc.categorie.as_deref().zip(pc.type_code.as_deref());
        let label = if proposed.is_some() { piece_label(&desk::PieceView { sensible: false, ..pc.clone() }, Some(&plan)) } else { "aucune".into() };
        let thumbs = if pc.sensible && !s.account.sensitive {
            r#"<p class="muted">Pièce confidentielle : aperçu réservé au profil sensible.</p>"#.to_string()
        } else {
            (0..pc.pages.clamp(1, 4))
                .map(|n| format!(r#"<img class="thumb" src="/pieces/{}/pages/{n}" alt="page {} de la pièce" loading="lazy">"#, url(&pc.id), n + 1))
                .collect()
        };
        let evidence: String = pc.evidence.iter().map(|e| format!("<li>{}</li>", esc(e))).collect();
        let _ = write!(
            p.body,
            r#"<section class="card review" data-piece="{id}"><h2>Pièce {id}</h2>
<p>Pli <a href="/mailings/{mu}">{m}</a> · demande {n} · {pages} page(s) · confiance {conf:.0} %</p>
<div class="thumbs">{thumbs}</div>
<p>Catégorie proposée : <strong>{label}</strong></p><details><summary>Indices relevés</summary><ul>{evidence}</ul></details>
<form method="post" action="/console/review/{idu}" class="inline">{csrf}<input type="hidden" name="action" value="accept"><button type="submit">Accepter</button></form>
<form method="post" action="/console/review/{idu}" class="inline">{csrf}<input type="hidden" name="action" value="reclassify"><select name="type" aria-label="nouvelle catégorie">{options}</select><button type="submit">Reclasser</button></form>
<form method="post" action="/console/review/{idu}" class="inline">{csrf}<input type="hidden" name="action" value="illegible"><button type="submit" data-confirm="Refuser cette pièce comme illisible ?">Illisible</button></form>
{cut}</section>"#,
            id = esc(&pc.id),
            idu = url(&pc.id),
            mu = url(&pc.mailing_id),
            m = esc(&pc.mailing_id),
            n = esc(pc.numero_unique.as_deref().unwrap_or("—")),
            pages = pc.pages,
            conf = pc.confidence * 100.0,
            label = esc(&label),
            options = type_options(&plan, proposed),
            cut = cut_forms(pc, &queue, &csrf),
        );
    }
    Ok(p.into_response())
}

/// Forms to change the cut: split a piece of several pages, join it with another piece of the
/// same request that waits in review.
fn cut_forms(pc: &desk::PieceView, queue: &[desk::PieceView], csrf: &str) -> String {
    let mut f = String::new();
    let idu = url(&pc.id);
    if pc.pages > 1 {
        let _ = write!(
            f,
            r#"<form method="post" action="/console/review/{idu}" class="inline">{csrf}<input type="hidden" name="action" value="split"><label>Couper après la page <input type="number" name="after" min="1" max="{}" value="1"></label><button type="submit">Couper</button></form>"#,
            pc.pages - 1
        );
    }
    let partners: String = queue
        .iter()
        .filter(|o| o.id != pc.id && o.mailing_id == pc.mailing_id && o.numero_unique == pc.numero_unique)
        .map(|o| format!(r#"<option value="{}">{}</option>"#, esc(&o.id), esc(&o.id)))
        .collect();
    if !partners.is_empty() {
        let _ = write!(
            f,
            r#"<form method="post" action="/console/review/{idu}" class="inline">{csrf}<input type="hidden" name="action" value="join"><label>Joindre à la suite la pièce <select name="with">{partners}</select></label><button type="submit">Joindre</button></form>"#
        );
    }
    f
}

/// Splits or joins pieces: the new PDFs are stored first, then the database changes, then the
/// old objects go (a failure in between leaves an unreferenced object, never a missing one).
async fn change_cut(b: &Bureau, s: &super::Signed, piece: &desk::PieceView, form: &Fields) -> Answer {
    let actor = s.account.actor();
    let Some(key) = piece.key.clone() else { return Err(s.error(StatusCode::CONFLICT, "Cette pièce n'a pas de fichier.")) };
    let pdf = b.blobs.get_bytes(&key).await?;
    let part_key = |id: &str| crate::blobs::keys::piece(piece.numero_unique.as_deref(), id);
    let (stored, outcome) = if field(form, "action") == Some("split") {
        let Some(after) = field(form, "after").and_then(|a| a.parse::<u32>().ok()) else {
            return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, "Indiquez après quelle page couper."));
        };
        let cut = tokio::task::spawn_blocking(move || piece_edit::split_after(&pdf, after)).await;
        let (head, tail) = match cut {
            Ok(Ok(parts)) => parts,
            Ok(Err(e)) => return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string())),
            Err(e) => return Err(WebError::unavailable(e)),
        };
        let parts = [
            desk::NewPart { id: format!("{}-1", piece.id), key: part_key(&format!("{}-1", piece.id)), bytes: head.len() as i64, pages: after as i32 },
            desk::NewPart {
                id: format!("{}-2", piece.id),
                key: part_key(&format!("{}-2", piece.id)),
                bytes: tail.len() as i64,
                pages: piece.pages - after as i32,
            },
        ];
        for (part, bytes) in parts.iter().zip([head, tail]) {
            b.blobs.put_bytes(&part.key, bytes, "application/pdf").await?;
        }
        let keys: Vec<String> = parts.iter().map(|p| p.key.clone()).collect();
        (
            keys,
            desk::split_piece(&b.pool, &piece.id, after as usize, [&parts[0], &parts[1]], &actor).await.map(|o| o.map(|k| k.into_iter().collect::<Vec<_>>())),
        )
    } else {
        let Some(other) = field(form, "with") else { return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, "Choisissez la pièce à joindre.")) };
        let other = match desk::piece(&b.pool, other).await {
            Ok(Some(o)) if o.mailing_id == piece.mailing_id && o.status == "review" && (!o.sensible || s.account.sensitive) => o,
            Ok(_) => return Err(s.error(StatusCode::CONFLICT, "Seules deux pièces de la même demande, toutes deux à vérifier, peuvent être jointes.")),
            Err(e) => return Err(WebError::unavailable(e)),
        };
        let Some(other_key) = other.key.clone() else { return Err(s.error(StatusCode::CONFLICT, "L'autre pièce n'a pas de fichier.")) };
        let second = b.blobs.get_bytes(&other_key).await?;
        let joined = match tokio::task::spawn_blocking(move || piece_edit::join(&[&pdf, &second])).await {
            Ok(Ok(j)) => j,
            Ok(Err(e)) => return Err(s.error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string())),
            Err(e) => return Err(WebError::unavailable(e)),
        };
        let id = format!("{}+{}", piece.id, other.id.trim_start_matches("p-"));
        let part = desk::NewPart { key: part_key(&id), id, bytes: joined.len() as i64, pages: piece.pages + other.pages };
        b.blobs.put_bytes(&part.key, joined, "application/pdf").await?;
        (vec![part.key.clone()], desk::join_pieces(&b.pool, &piece.id, &other.id, &part, &actor).await)
    };
    match outcome {
        Ok(Some(old_keys)) => {
            for k in old_keys {
                if let Err(e) = b.blobs.delete(&k).await {
                    tracing::warn!(key = %k, error = %e, "replaced piece object not deleted; it is no longer referenced");
                }
            }
            Ok(Redirect::to("/console/review").into_response())
        }
        Ok(None) => {
            for k in stored {
                if let Err(e) = b.blobs.delete(&k).await {
                    tracing::warn!(key = %k, error = %e, "object of a cut that did not happen not deleted; it is not referenced");
                }
            }
            Err(s.error(StatusCode::CONFLICT, "Ces pièces ont changé entre-temps (décidées par un autre opérateur ?) : rien n'a été modifié."))
        }
        Err(e) => Err(WebError::unavailable(e)),
    }
}

async fn decide(State(b): State<Arc<Bureau>>, Path(piece): Path<String>, CheckedForm { signed: s, fields: form }: CheckedForm<Staff>) -> Answer {
    let plan = store::current_plan(&b.pool).await?;
    // Nobody changes a sensitive piece they may not see.
    let current = match desk::piece(&b.pool, &piece).await {
        Ok(Some(p)) if p.sensible && !s.account.sensitive => {
            return Err(s.error(StatusCode::FORBIDDEN, "Pièce confidentielle : décision réservée au profil sensible."));
        }
        Ok(Some(p)) => p,
        Ok(None) => return Err(s.error(StatusCode::NOT_FOUND, "Cette pièce n'existe pas.")),
        Err(e) => return Err(WebError::unavailable(e)),
    };
    if matches!(field(&form, "action"), Some("split" | "join")) {
        if current.status != "review" {
            return Err(s.error(StatusCode::CONFLICT, "Cette pièce a déjà été traitée (par vous ou un autre opérateur)."));
        }
        return change_cut(&b, &s, &current, &form).await;
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
    let actor = s.account.actor();
    let decided = match desk::decide(&b.pool, &piece, &decision, &actor, |settled| follow_up_notice(&b, settled, &plan)).await {
        Ok(Some(d)) => d,
        Ok(None) => return Err(s.error(StatusCode::CONFLICT, "Cette pièce a déjà été traitée (par vous ou un autre opérateur).")),
        Err(e) => return Err(WebError::unavailable(e)),
    };
    if let Some(key) = &decided.dropped_key
        && let Err(e) = b.blobs.delete(key).await
    {
        tracing::warn!(piece = %piece, error = %e, "refused piece's object not deleted; it is no longer referenced");
    }
    tracing::info!(piece = %piece, action = ?decision, "review decision");
    if let Some(id) = decided.follow_up {
        queue_notice(&b, id).await;
    }
    Ok(Redirect::to("/console/review").into_response())
}

/// Once no piece of a request waits for an operator, its people get a new notice saying
/// what became of every piece (written in the decision's transaction).
fn follow_up_notice(b: &Bureau, settled: &desk::Settled<'_>, plan: &FilingPlan) -> Option<crate::store::OutgoingNotice> {
    let Some(to) = settled.recipients.first() else {
        tracing::info!(mailing = %settled.mailing.id, "no one to tell about the review decisions");
        return None;
    };
    let numero = settled.pieces.first().and_then(|p| p.numero_unique.clone());
    let notice_pieces: Vec<NoticePiece> = settled
        .pieces
        .iter()
        .map(|p| NoticePiece {
            libelle: p.categorie.as_deref().zip(p.type_code.as_deref()).and_then(|(c, t)| plan.piece_type(c, t)).map(|t| t.libelle.clone()),
            sensible: p.sensible,
            pages: p.pages.max(1) as usize,
            status: match p.status.as_str() {
                "uploaded" => PieceStatus::Uploaded,
                "review" => PieceStatus::Review,
                _ => PieceStatus::Rejected,
            },
            reason: p.reason.as_deref().and_then(ReasonCode::from_code),
        })
        .collect();
    let ctx = notice_context(b, settled.mailing);
    let total_pages = notice_pieces.iter().map(|p| p.pages).sum();
    let notice = RequestNotice { to, numero: numero.as_deref(), reason: None, pieces: notice_pieces, pages: total_pages };
    Some(crate::store::OutgoingNotice {
        name: format!("verification-{}.eml", numero.as_deref().unwrap_or("sans-numero")),
        recipients: settled.recipients.to_vec(),
        sender: b.site.site.bureau_email.clone(),
        message: request_notice(&ctx, &notice),
    })
}

/// What every notice about a mailing shares, written now.
fn notice_context<'a>(b: &'a Bureau, m: &'a desk::MailingView) -> NoticeContext<'a> {
    let calendar = b.site.calendar();
    NoticeContext {
        bureau_email: &b.site.site.bureau_email,
        site_name: &b.site.site.name,
        batch_id: &m.id,
        received_at: calendar.localise(m.received_at.fixed_offset()),
        due_at: calendar.localise(m.due_at.fixed_offset()),
        now: calendar.localise(Utc::now().fixed_offset()),
    }
}

/// Puts a notice in the outbox and queues it. A notice of that name already there is left as it is.
async fn send_notice(b: &Bureau, mailing: &str, name: &str, recipients: &[String], message: &[u8], actor: &str) -> crate::store::Result<()> {
    let notice = crate::store::OutgoingNotice {
        name: name.to_string(),
        recipients: recipients.to_vec(),
        sender: b.site.site.bureau_email.clone(),
        message: message.to_vec(),
    };
    if let Some(id) = desk::add_notice(&b.pool, mailing, &notice, actor).await? {
        queue_notice(b, id).await;
    }
    Ok(())
}

/// Queues a notice of the outbox (if the broker is away, the sweeper queues it).
async fn queue_notice(b: &Bureau, id: i64) {
    if let Err(e) = b.broker.publish(Stage::Notify, &notice_message(id)).await {
        tracing::warn!(notice = id, error = %e, "notice recorded but not queued yet; the sweeper will queue it");
    }
}

// ---------------------------------------------------------------- given-up work

async fn failed(State(b): State<Arc<Bureau>>, s: SignedIn<Staff>) -> Answer {
    let (dead, open) = tokio::try_join!(desk::dead_letters(&b.pool, 200), desk::open_mailings(&b.pool))?;
    let mut p = s.page("Échecs");
    let csrf = p.csrf_field();
    p.push("<h2>Plis en échec</h2>");
    let failed: Vec<_> = open.iter().filter(|m| m.status == "failed").collect();
    if failed.is_empty() {
        p.push(r#"<p class="muted">Aucun pli en échec.</p>"#);
    }
    let reasons: String = [ReasonCode::FichierCorrompu, ReasonCode::FormatNonSupporte, ReasonCode::FichierTropVolumineux, ReasonCode::PliSansBordereau]
        .iter()
        .map(|r| format!(r#"<option value="{}">{}</option>"#, r.code(), esc(r.libelle())))
        .collect();
    for m in failed {
        let _ = write!(
            p.body,
            r#"<section class="card" data-failed="{id}"><p>Pli <a href="/mailings/{idu}">{id}</a> ({}) : {}</p>
<form method="post" action="/console/mailings/{idu}/reject" class="inline">{csrf}<select name="reason">{reasons}</select><button type="submit" data-confirm="Refuser ce pli et en avertir l'expéditeur ?">Refuser avec un avis</button></form></section>"#,
            esc(&m.source),
            esc(m.last_error.as_deref().unwrap_or("cause inconnue")),
            id = esc(&m.id),
            idu = url(&m.id),
        );
    }
    p.push("<h2>Messages abandonnés par les étapes</h2>");
    if dead.is_empty() {
        p.push(r#"<p class="muted">Aucun.</p>"#);
    } else {
        p.push("<table><thead><tr><th>Quand</th><th>Étape</th><th>Sujet</th><th>Essais</th><th>Motif</th><th></th></tr></thead><tbody>");
        for d in &dead {
            let action = match &d.resolution {
                Some(r) => format!("{} par {}", esc(r), esc(d.resolved_by.as_deref().unwrap_or("?"))),
                None => {
                    format!(r#"<form method="post" action="/console/dead/{}/retry" class="inline">{csrf}<button type="submit">Relancer</button></form>"#, d.id)
                }
            };
            let _ = write!(
                p.body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
                super::page::when(&d.at, &b.site),
                esc(&d.stage),
                esc(d.subject.as_deref().unwrap_or("—")),
                d.attempts,
                esc(&d.reason)
            );
        }
        p.push("</tbody></table>");
    }
    Ok(p.into_response())
}

async fn retry_dead(State(b): State<Arc<Bureau>>, Path(id): Path<i64>, CheckedForm { signed: s, .. }: CheckedForm<Staff>) -> Answer {
    let d = match desk::resolve_dead_letter(&b.pool, id, "retried", &s.account.actor()).await {
        Ok(Some(d)) => d,
        Ok(None) => return Err(s.error(StatusCode::CONFLICT, "Ce message a déjà été traité.")),
        Err(e) => return Err(WebError::unavailable(e)),
    };
    let stage = if d.stage == Stage::Notify.as_str() { Stage::Notify } else { Stage::Process };
    if let Err(e) = b.broker.publish(stage, &d.payload).await {
        tracing::warn!(dead_letter = id, error = %e, "retry recorded but not queued; the sweeper queues received mailings again");
    }
    Ok(Redirect::to("/console/failed").into_response())
}

async fn reject_mailing(State(b): State<Arc<Bureau>>, Path(id): Path<String>, CheckedForm { signed: s, fields: form }: CheckedForm<Staff>) -> Answer {
    let reason = field(&form, "reason").and_then(ReasonCode::from_code).unwrap_or(ReasonCode::FichierCorrompu);
    let m = match desk::mailing(&b.pool, &id).await {
        Ok(Some(m)) => m,
        Ok(None) => return Err(s.error(StatusCode::NOT_FOUND, "Ce pli n'existe pas.")),
        Err(e) => return Err(WebError::unavailable(e)),
    };
    let actor = s.account.actor();
    match desk::reject_failed_mailing(&b.pool, &id, reason.code(), &actor).await {
        Ok(true) => {}
        Ok(false) => return Err(s.error(StatusCode::CONFLICT, "Ce pli n'est plus en échec.")),
        Err(e) => return Err(WebError::unavailable(e)),
    }
    let referent = match m.guichet.as_deref() {
        Some(g) => match desk::counter_contact(&b.pool, g).await {
            Ok(c) => c.map(|c| c.email_referent),
            Err(e) => return Err(WebError::unavailable(e)),
        },
        None => None,
    };
    match m.notify.clone().or(referent) {
        Some(to) => {
            let message = mailing_notice(&notice_context(&b, &m), &to, reason, m.pages.unwrap_or(0).max(0) as usize, &[]);
            send_notice(&b, &id, "refus-operateur.eml", std::slice::from_ref(&to), &message, &actor).await?;
        }
        None => tracing::info!(mailing = %id, "refused mailing without a known sender; no notice"),
    }
    Ok(Redirect::to("/console/failed").into_response())
}

// ---------------------------------------------------------------- incidents

async fn incidents(State(b): State<Arc<Bureau>>, s: SignedIn<Staff>) -> Answer {
    let rows = people::incidents(&b.pool, &s.account, false).await?;
    let mut p = s.page("Fiches incident");
    let csrf = p.csrf_field();
    p.push(&incidents_table(&b, &rows, Some(&csrf)));
    Ok(p.into_response())
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
