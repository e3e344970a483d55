//! The counters' portal: deposit pieces (one request's, or a multi-request PDF), print slips,
//! follow mailings and their notices, file incidents. The mailing page is shared with the
//! bureau's staff.

use std::fmt::Write;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use chrono::{NaiveDate, Utc};

use scanbureau_pipeline::slip::{Bordereau, Fiche, Slip};
use scanbureau_pipeline::slip_print::slip_pdf;
use scanbureau_pipeline::{Departement, NumeroGuichet, NumeroUnique};

use super::access::{CheckedForm, Counters, Everyone, SignedIn, Uploader};
use super::page::{channel_label, esc, status_label, time_left, url, when};
use super::{Answer, Fields, Refused, Signed, WebError, field, receive_upload, take_upload};
use crate::accounts::Role;
use crate::broker::Stage;
use crate::bureau::{Bureau, Intake, notice_message};
use crate::store;
use crate::store::desk;
use crate::store::people::{self, INCIDENT_KINDS, incident_kind_label, incident_status_label};

/// Requests a counter's account may look up in the registry within an hour: enough to print a
/// day's slips, far too few to read the registry through the form.
const REGISTRY_LOOKUPS_PER_HOUR: i64 = 60;

pub fn routes() -> Router<Arc<Bureau>> {
    Router::new()
        .route("/portal", get(home))
        .route("/portal/deposits", post(deposit).layer(DefaultBodyLimit::disable()))
        .route("/portal/slips", get(slips))
        .route("/portal/slips/fiche", post(print_fiche))
        .route("/portal/slips/bordereau", post(print_bordereau))
        .route("/portal/incidents", get(incidents).post(open_incident))
        .route("/mailings/{id}", get(mailing))
        .route("/notices/{id}/resend", post(resend))
}

/// The upload form with its progress bar (see `app.js`), for the portal and the console. With
/// `folder`, several files or a whole folder make one batch (sent to `{action}/folder`).
pub fn upload_form(s: &Signed, action: &str, accept: &str, limit: u64, extra: &str, button: &str, folder: bool) -> String {
    let picker = if folder {
        format!(
            r#"<label>Fichiers <input type="file" name="file" accept="{accept}" multiple></label><label>ou un dossier du scanner <input type="file" name="folder" webkitdirectory></label>"#
        )
    } else {
        format!(r#"<label>Fichier <input type="file" name="file" accept="{accept}" required></label>"#)
    };
    format!(
        r#"<form class="card upload" method="post" action="{action}" data-upload data-limit="{limit}" data-accept="{accept}"{multi}>
<input type="hidden" name="csrf" value="{csrf}">{extra}
{picker}
<p class="muted">Taille maximale : {mb} Mo en tout.</p>
<progress max="100" value="0" hidden></progress> <span class="progress-text" aria-live="polite"></span>
<p class="error" role="alert" hidden></p>
<button type="submit">{button}</button></form>"#,
        csrf = esc(&s.csrf),
        mb = limit / 1_000_000,
        multi = if folder { " data-folder" } else { "" }
    )
}

/// The mailings table of a list page.
pub fn mailings_table(b: &Bureau, rows: &[desk::MailingView], staff: bool) -> String {
    if rows.is_empty() {
        return r#"<p class="muted">Aucun pli pour l'instant.</p>"#.into();
    }
    let now = Utc::now();
    let mut t = String::from("<table><thead><tr><th>Pli</th><th>Canal</th>");
    if staff {
        t.push_str("<th>Guichet</th>");
    }
    t.push_str("<th>Reçu le</th><th>État</th><th>Échéance</th><th>Temps restant</th><th>Pages</th></tr></thead><tbody>");
    for m in rows {
        let state = match (&m.status[..], &m.outcome) {
            ("done", Some(o)) => status_label(o).to_string(),
            (s, _) => status_label(s).to_string(),
        };
        let left = if m.status == "done" { "—".to_string() } else { time_left(&m.due_at, &now) };
        let late = m.status != "done" && m.due_at < now;
        let _ = write!(
            t,
            r#"<tr{}><td><a href="/mailings/{}">{}</a></td><td>{}</td>"#,
            if late { r#" class="late""# } else { "" },
            url(&m.id),
            esc(&m.id),
            channel_label(&m.channel)
        );
        if staff {
            let _ = write!(t, "<td>{}</td>", esc(m.guichet.as_deref().unwrap_or("—")));
        }
        let _ = write!(
            t,
            r#"<td>{}</td><td class="state state-{}">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            when(&m.received_at, &b.site),
            esc(&m.status),
            esc(&state),
            when(&m.due_at, &b.site),
            esc(&left),
            m.pages.map(|p| p.to_string()).unwrap_or_else(|| "—".into())
        );
    }
    t.push_str("</tbody></table>");
    t
}

async fn home(State(b): State<Arc<Bureau>>, s: SignedIn<Counters>) -> Answer {
    let rows = desk::mailings(&b.pool, s.account.guichet.as_deref(), 200).await?;
    let referent = match desk::counter_contact(&b.pool, s.account.guichet.as_deref().unwrap_or_default()).await {
        Ok(c) => c.map(|c| c.email_referent),
        Err(e) => return Err(WebError::unavailable(e)),
    };
    let mut p = s.page("Mes plis et dépôts");
    let _ = write!(
        p.body,
        r#"<p class="muted">Guichet {} · référent : {} (il reçoit les avis des plis papier ; ceux des dépôts du portail vont à la personne qui dépose).</p>"#,
        esc(s.account.guichet.as_deref().unwrap_or("?")),
        esc(referent.as_deref().unwrap_or("non renseigné"))
    );
    p.push("<h2>Déposer des pièces</h2><p>Un dépôt est soit les pièces d'une seule demande (indiquez son numéro unique), soit un PDF de plusieurs demandes, chacune précédée de sa fiche récapitulative (laissez le numéro vide).</p>");
    let numero = r#"<label>Numéro unique (dépôt d'une seule demande) <input name="numero_unique" pattern="[0-9A-Za-z]{18}" maxlength="18" placeholder="0930325091042G3533"></label>"#;
    p.push(&upload_form(&s, "/portal/deposits", "application/pdf,.pdf", b.config.portal.max_upload_bytes, numero, "Déposer", false));
    p.push("<h2>Plis et dépôts</h2>");
    p.push(&mailings_table(&b, &rows, false));
    Ok(p.into_response())
}

/// `POST /portal/deposits[?numero_unique=N]`: the PDF as the body, the CSRF token in a header.
async fn deposit(State(b): State<Arc<Bureau>>, Uploader(s): Uploader<Counters>, headers: HeaderMap, Query(q): Query<Fields>, body: Body) -> Answer {
    let refuse = |code: StatusCode, message: String| -> Answer { Err(WebError::json(code, message)) };
    let numero = match field(&q, "numero_unique") {
        Some(n) => match NumeroUnique::parse(n) {
            Ok(n) => Some(n.to_string()),
            Err(e) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, format!("Numéro unique : {e}")),
        },
        None => None,
    };
    let upload = match take_upload(&crate::workdir::root(&b.config), &headers, body, b.config.portal.max_upload_bytes, "depot.pdf").await {
        Ok(u) => u,
        Err(Refused(StatusCode::PAYLOAD_TOO_LARGE, _)) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Le fichier dépasse la limite du portail ({} Mo).", b.config.portal.max_upload_bytes / 1_000_000),
            );
        }
        Err(Refused(code, m)) => return refuse(code, m),
    };
    if !upload.head.starts_with(b"%PDF") {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Le portail n'accepte que des fichiers PDF.".into());
    }
    let Some(guichet) = s.account.guichet.clone() else {
        return refuse(StatusCode::FORBIDDEN, "Ce compte n'est rattaché à aucun guichet.".into());
    };
    let files = vec![("depot.pdf".to_string(), upload.path.clone())];
    let source = format!("portal:{}", s.account.email);
    let intake = Intake {
        channel: "portal",
        source: &source,
        files: &files,
        numero_unique: numero,
        notify: Some(s.account.email.clone()),
        portal_user: Some(s.account.id),
        counter: Some(guichet),
    };
    receive_upload(&b, intake, upload.bytes, "web deposit").await
}

/// One mailing: its state, requests, pieces and notices. Counters see their own only.
async fn mailing(State(b): State<Arc<Bureau>>, s: SignedIn<Everyone>, Path(id): Path<String>) -> Answer {
    let m = match desk::mailing(&b.pool, &id).await {
        Ok(Some(m)) if s.account.sees_counter(m.guichet.as_deref()) => m,
        Ok(_) => return Err(s.error(StatusCode::NOT_FOUND, "Ce pli n'existe pas ou n'est pas l'un des vôtres.")),
        Err(e) => return Err(WebError::unavailable(e)),
    };
    let (requests, pieces, notices) = tokio::try_join!(desk::requests(&b.pool, &id), desk::pieces(&b.pool, &id), desk::notices(&b.pool, &id))?;
    // Without a plan in the database, pieces show their codes; a database that fails is an error.
    let plan = match store::current_plan(&b.pool).await {
        Ok(p) => Some(p),
        Err(store::StoreError::NoPlan) => None,
        Err(e) => return Err(e.into()),
    };
    let mut p = s.page(&format!("Pli {}", m.id));
    let now = Utc::now();
    let state = match (&m.status[..], &m.outcome) {
        ("done", Some(o)) => format!("traité : {}", status_label(o)),
        (st, _) => status_label(st).to_string(),
    };
    let _ = write!(
        p.body,
        r#"<dl class="facts"><dt>État</dt><dd class="state state-{}" data-status="{}">{}</dd><dt>Canal</dt><dd>{}</dd><dt>Reçu le</dt><dd>{}</dd><dt>Échéance</dt><dd>{}{}</dd><dt>Pages</dt><dd>{}</dd>{}</dl>"#,
        esc(&m.status),
        esc(&m.status),
        esc(&state),
        channel_label(&m.channel),
        when(&m.received_at, &b.site),
        when(&m.due_at, &b.site),
        if m.status != "done" { format!(" ({})", esc(&time_left(&m.due_at, &now))) } else { String::new() },
        m.pages.map(|p| p.to_string()).unwrap_or_else(|| "pas encore comptées".into()),
        m.guichet.as_deref().map(|g| format!("<dt>Guichet</dt><dd>{}</dd>", esc(g))).unwrap_or_default()
    );
    if m.status != "done" {
        p.push(r#"<p class="muted">Cette page se met à jour d'elle-même pendant le traitement.</p><meta http-equiv="refresh" content="5">"#);
    }
    if !requests.is_empty() {
        p.push("<h2>Demandes</h2><table><thead><tr><th>Numéro unique</th><th>État</th><th>Motif</th></tr></thead><tbody>");
        for r in &requests {
            let reason = r.reason.as_deref().map(reason_label).unwrap_or_default();
            let _ = write!(
                p.body,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(r.numero_unique.as_deref().unwrap_or("(illisible)")),
                esc(status_label(&r.status)),
                esc(&reason)
            );
        }
        p.push("</tbody></table>");
    }
    if !pieces.is_empty() {
        p.push(r#"<h2>Pièces</h2><table class="pieces"><thead><tr><th>Demande</th><th>Pièce</th><th>Pages</th><th>État</th><th>Motif</th><th></th></tr></thead><tbody>"#);
        for pc in &pieces {
            let label = piece_label(pc, plan.as_ref());
            let open = if pc.key.is_none() {
                String::new()
            } else if pc.sensible && !s.account.sensitive {
                r#"<span class="muted">contenu réservé au profil sensible</span>"#.to_string()
            } else {
                format!(r#"<a href="/pieces/{}/pdf">ouvrir</a>"#, url(&pc.id))
            };
            let _ = write!(
                p.body,
                r#"<tr data-piece="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&pc.id),
                esc(pc.numero_unique.as_deref().unwrap_or("—")),
                esc(&label),
                pc.pages,
                esc(status_label(&pc.status)),
                esc(&pc.reason.as_deref().map(reason_label).unwrap_or_default()),
                open
            );
        }
        p.push("</tbody></table>");
    }
    p.push("<h2>Avis envoyés</h2>");
    if notices.is_empty() {
        p.push(r#"<p class="muted">Aucun avis pour l'instant.</p>"#);
    }
    for n in &notices {
        let parsed = mail_parser::MessageParser::default().parse(&n.message);
        let subject = parsed.as_ref().and_then(|m| m.subject().map(str::to_string)).unwrap_or_else(|| n.name.clone());
        let text = parsed.as_ref().and_then(|m| m.body_text(0).map(|t| t.to_string())).unwrap_or_default();
        let sent = match (&n.status[..], n.sent_at) {
            ("sent", Some(at)) => format!("envoyé le {}", when(&at, &b.site)),
            ("failed", _) => format!("échec d'envoi : {}", n.last_error.as_deref().unwrap_or("")),
            _ => "en cours d'envoi".into(),
        };
        let _ = write!(
            p.body,
            r#"<details class="notice" data-notice-status="{}"><summary>{} — à {} — {}</summary><pre>{}</pre>
<form method="post" action="/notices/{}/resend" class="inline">{}<button type="submit">Renvoyer cet avis</button></form></details>"#,
            esc(&n.status),
            esc(&subject),
            esc(&n.recipients.join(", ")),
            esc(&sent),
            esc(&text),
            n.id,
            p.csrf_field()
        );
    }
    if s.account.role == Role::Counter {
        let _ = write!(p.body, r#"<p><a href="/portal/incidents?mailing={}">Signaler un incident sur ce pli</a></p>"#, url(&m.id));
    }
    Ok(p.into_response())
}

/// A piece as people may read it: sensitive pieces are never named.
pub fn piece_label(p: &desk::PieceView, plan: Option<&scanbureau_pipeline::plan::FilingPlan>) -> String {
    if p.sensible {
        return "Pièce confidentielle".into();
    }
    let found = plan.zip(p.categorie.as_deref().zip(p.type_code.as_deref())).and_then(|(plan, (c, t))| plan.piece_type(c, t)).map(|t| t.libelle.clone());
    found.or_else(|| p.type_code.clone()).unwrap_or_else(|| "Pièce non classée".into())
}

pub fn reason_label(code: &str) -> String {
    scanbureau_pipeline::ReasonCode::from_code(code).map(|r| r.libelle().to_string()).unwrap_or_else(|| code.to_string())
}

async fn resend(State(b): State<Arc<Bureau>>, Path(id): Path<i64>, CheckedForm { signed: s, .. }: CheckedForm<Everyone>) -> Answer {
    let mailing = match desk::notice_owner(&b.pool, id).await {
        Ok(Some((m, g))) if s.account.sees_counter(g.as_deref()) => m,
        Ok(_) => return Err(s.error(StatusCode::NOT_FOUND, "Cet avis n'existe pas ou n'est pas l'un des vôtres.")),
        Err(e) => return Err(WebError::unavailable(e)),
    };
    match desk::resend_notice(&b.pool, id, &s.account.actor()).await {
        Ok(desk::Resend::Queued) => {
            if let Err(e) = b.broker.publish(Stage::Notify, &notice_message(id)).await {
                tracing::warn!(notice = id, error = %e, "resend recorded but not queued yet; the sweeper will queue it");
            }
            Ok(Redirect::to(&format!("/mailings/{}", url(&mailing))).into_response())
        }
        Ok(desk::Resend::AlreadyPending) => Err(s.error(StatusCode::CONFLICT, "Cet avis est déjà en cours d'envoi : il partira dès que possible.")),
        Ok(desk::Resend::TooMany) => Err(s.error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Cet avis a déjà été renvoyé {} fois aujourd'hui. Si le destinataire ne le reçoit pas, ouvrez un incident.", desk::RESENDS_PER_DAY),
        )),
        Ok(desk::Resend::Missing) => Err(s.error(StatusCode::NOT_FOUND, "Cet avis n'existe plus.")),
        Err(e) => Err(WebError::unavailable(e)),
    }
}

// ---------------------------------------------------------------- slips

async fn slips(State(b): State<Arc<Bureau>>, s: SignedIn<Counters>, Query(q): Query<Fields>) -> Answer {
    slips_page(&b, &s, &q, None, StatusCode::OK).await
}

async fn slips_page(b: &Bureau, s: &Signed, q: &Fields, error: Option<&str>, code: StatusCode) -> Answer {
    // A known request number fills in the applicant from the registry.
    let mut known = Fields::new();
    let mut lookup_note = None;
    if let Some(n) = field(q, "numero_unique").and_then(|n| NumeroUnique::parse(n).ok())
        && let Some(guichet) = s.account.guichet.as_deref()
    {
        match desk::registry_lookup(&b.pool, &n, &s.account.actor(), guichet, REGISTRY_LOOKUPS_PER_HOUR).await {
            Ok(desk::Lookup::Found(r)) => {
                for k in ["nom", "prenoms", "date_naissance"] {
                    if let Some(v) = r.get(k).and_then(|v| v.as_str()) {
                        known.insert(k.to_string(), v.to_string());
                    }
                }
            }
            Ok(desk::Lookup::NotFound) => lookup_note = Some("Ce numéro n'est pas dans le registre : vérifiez-le, ou remplissez la fiche à la main."),
            Ok(desk::Lookup::OutsideTerritory) => {
                lookup_note = Some("Ce numéro est celui d'une demande d'un autre territoire : le registre n'est consultable que pour le vôtre.")
            }
            Ok(desk::Lookup::Throttled) => {
                lookup_note = Some("Trop de consultations du registre en une heure : remplissez la fiche à la main ou réessayez plus tard.")
            }
            Err(e) => return Err(WebError::unavailable(e)),
        }
    }
    let v = |k: &str| esc(q.get(k).or_else(|| known.get(k)).map(String::as_str).unwrap_or_default());
    let today = Utc::now().date_naive().format("%Y-%m-%d").to_string();
    let mut p = s.page("Imprimer une fiche récapitulative ou un bordereau");
    if let Some(e) = error.or(lookup_note) {
        let _ = write!(p.body, r#"<p class="error" role="alert">{}</p>"#, esc(e));
    }
    let csrf = p.csrf_field();
    let _ = write!(
        p.body,
        r#"<div class="columns"><form method="post" action="/portal/slips/fiche" class="card"><h2>Fiche récapitulative</h2>{csrf}
<p class="muted">Une par demande, en tête de ses pièces. <a href="/portal/slips?numero_unique={nq}">Remplir depuis le registre</a> après avoir saisi le numéro.</p>
<label>Numéro unique <input name="numero_unique" required pattern="[0-9A-Za-z]{{18}}" maxlength="18" value="{n}"></label>
<label>Nom <input name="nom" required value="{nom}"></label>
<label>Prénoms <input name="prenoms" required value="{prenoms}"></label>
<label>Date de naissance <input type="date" name="date_naissance" required value="{dn}"></label>
<label>Nombre de documents <input type="number" name="nb_documents" min="1" max="99" required value="{nd}"></label>
<label>Nombre de pages, fiche comprise <input type="number" name="nb_pages" min="2" max="999" required value="{np}"></label>
<label>Date de remplissage <input type="date" name="date_remplissage" required value="{today}"></label>
<button type="submit">Imprimer la fiche (PDF)</button></form>
<form method="post" action="/portal/slips/bordereau" class="card"><h2>Bordereau de transmission</h2>{csrf}
<p class="muted">Un par pli envoyé par courrier, en tête du pli. Guichet {g}.</p>
<label>Nombre de dossiers (fiches) <input type="number" name="nb_dossiers" min="1" max="999" required value="{nb}"></label>
<label>Nombre total de pages, bordereau et fiches compris <input type="number" name="nb_pages_total" min="2" max="9999" required value="{npt}"></label>
<label>Date de transmission <input type="date" name="date_transmission" required value="{today}"></label>
<button type="submit">Imprimer le bordereau (PDF)</button></form></div>"#,
        nq = url(q.get("numero_unique").map(String::as_str).unwrap_or_default()),
        n = v("numero_unique"),
        nom = v("nom"),
        prenoms = v("prenoms"),
        dn = v("date_naissance"),
        nd = v("nb_documents"),
        np = v("nb_pages"),
        g = esc(s.account.guichet.as_deref().unwrap_or("?")),
        nb = v("nb_dossiers"),
        npt = v("nb_pages_total"),
    );
    let mut r = p.into_response();
    *r.status_mut() = code;
    Ok(r)
}

fn pdf_download(name: &str, bytes: Vec<u8>) -> Answer {
    Ok(([(header::CONTENT_TYPE, "application/pdf".to_string()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))], bytes)
        .into_response())
}

fn date_field(form: &Fields, name: &str, label: &str) -> Result<NaiveDate, String> {
    let raw = field(form, name).ok_or_else(|| format!("{label} : à remplir."))?;
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| format!("{label} : date attendue (AAAA-MM-JJ), reçu « {raw} »."))
}

fn count_field(form: &Fields, name: &str, label: &str, min: u32) -> Result<u32, String> {
    let raw = field(form, name).ok_or_else(|| format!("{label} : à remplir."))?;
    match raw.parse::<u32>() {
        Ok(n) if n >= min && n < 10_000 => Ok(n),
        _ => Err(format!("{label} : nombre entre {min} et 9999 attendu, reçu « {raw} ».")),
    }
}

/// A name as the slip contract writes it: upper case, letters, spaces, `-` and `'`.
fn slip_name(form: &Fields, name: &str, label: &str) -> Result<String, String> {
    let raw = field(form, name).ok_or_else(|| format!("{label} : à remplir."))?;
    let upper: String = raw.split_whitespace().collect::<Vec<_>>().join(" ").to_uppercase().replace('’', "'");
    if upper.chars().all(|c| c.is_alphabetic() || " -'".contains(c)) && upper.len() <= 60 {
        Ok(upper)
    } else {
        Err(format!("{label} : lettres, espaces, tirets et apostrophes seulement (« {raw} »)."))
    }
}

fn fiche_of(form: &Fields) -> Result<Fiche, String> {
    let numero = field(form, "numero_unique").ok_or("Numéro unique : à remplir.")?;
    Ok(Fiche {
        numero: NumeroUnique::parse(numero).map_err(|e| format!("Numéro unique : {e}."))?,
        nom: slip_name(form, "nom", "Nom")?,
        prenoms: slip_name(form, "prenoms", "Prénoms")?,
        date_naissance: date_field(form, "date_naissance", "Date de naissance")?,
        nb_documents: count_field(form, "nb_documents", "Nombre de documents", 1)?,
        nb_pages: count_field(form, "nb_pages", "Nombre de pages", 2)?,
        date_remplissage: date_field(form, "date_remplissage", "Date de remplissage")?,
    })
}

async fn print_fiche(State(b): State<Arc<Bureau>>, CheckedForm { signed: s, fields: form }: CheckedForm<Counters>) -> Answer {
    let fiche = match fiche_of(&form) {
        Ok(f) => f,
        Err(e) => return slips_page(&b, &s, &form, Some(&e), StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    let name = format!("fiche-{}.pdf", fiche.numero);
    match slip_pdf(&Slip::Fiche(fiche)) {
        Ok(pdf) => pdf_download(&name, pdf),
        Err(e) => slips_page(&b, &s, &form, Some(&e.to_string()), StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

async fn print_bordereau(State(b): State<Arc<Bureau>>, CheckedForm { signed: s, fields: form }: CheckedForm<Counters>) -> Answer {
    let Some(guichet) = s.account.guichet.clone() else {
        return Err(s.error(StatusCode::FORBIDDEN, "Ce compte n'est rattaché à aucun guichet."));
    };
    let departement = match desk::counter_contact(&b.pool, &guichet).await {
        Ok(c) => c.map(|c| c.departement),
        Err(e) => return Err(WebError::unavailable(e)),
    };
    let built = (|| -> Result<Bordereau, String> {
        Ok(Bordereau {
            guichet: NumeroGuichet::parse(&guichet).map_err(|e| format!("Guichet : {e}."))?,
            departement: Departement::parse(departement.as_deref().unwrap_or_default()).map_err(|e| format!("Département du guichet : {e}."))?,
            nb_dossiers: count_field(&form, "nb_dossiers", "Nombre de dossiers", 1)?,
            nb_pages_total: count_field(&form, "nb_pages_total", "Nombre total de pages", 2)?,
            date_transmission: date_field(&form, "date_transmission", "Date de transmission")?,
        })
    })();
    let bordereau = match built {
        Ok(bt) => bt,
        Err(e) => return slips_page(&b, &s, &form, Some(&e), StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    let name = format!("bordereau-{}-{}.pdf", bordereau.guichet, bordereau.date_transmission);
    match slip_pdf(&Slip::Bordereau(bordereau)) {
        Ok(pdf) => pdf_download(&name, pdf),
        Err(e) => slips_page(&b, &s, &form, Some(&e.to_string()), StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

// ---------------------------------------------------------------- incidents

/// The incidents table (the console adds its answer forms).
pub fn incidents_table(b: &Bureau, rows: &[people::Incident], answer_form: Option<&str>) -> String {
    if rows.is_empty() {
        return r#"<p class="muted">Aucune fiche incident.</p>"#.into();
    }
    let mut t = String::from(
        "<table><thead><tr><th>N°</th><th>Ouverte le</th><th>Guichet</th><th>Nature</th><th>Pli / demande</th><th>Description</th><th>État</th><th>Réponse</th></tr></thead><tbody>",
    );
    for i in rows {
        let subject = match (&i.mailing_id, &i.numero_unique) {
            (Some(m), n) => format!(r#"<a href="/mailings/{}">{}</a> {}"#, url(m), esc(m), esc(n.as_deref().unwrap_or(""))),
            (None, Some(n)) => esc(n),
            (None, None) => "—".into(),
        };
        let answer = match answer_form {
            Some(csrf) => format!(
                r#"<form method="post" action="/console/incidents/{}" class="inline">{csrf}<select name="status">{}</select><input name="answer" value="{}" placeholder="réponse"><button type="submit">Enregistrer</button></form>"#,
                i.id,
                people::INCIDENT_STATUSES
                    .iter()
                    .map(|(k, l)| format!(r#"<option value="{k}"{}>{l}</option>"#, if *k == i.status { " selected" } else { "" }))
                    .collect::<String>(),
                esc(i.answer.as_deref().unwrap_or(""))
            ),
            None => esc(i.answer.as_deref().unwrap_or("")),
        };
        let _ = write!(
            t,
            r#"<tr data-incident="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="incident-status">{}</td><td>{}</td></tr>"#,
            i.id,
            i.id,
            when(&i.created_at, &b.site),
            esc(&i.guichet),
            esc(incident_kind_label(&i.kind)),
            subject,
            esc(&i.description),
            esc(incident_status_label(&i.status)),
            answer
        );
    }
    t.push_str("</tbody></table>");
    t
}

async fn incidents(State(b): State<Arc<Bureau>>, s: SignedIn<Counters>, Query(q): Query<Fields>) -> Answer {
    incidents_page(&b, &s, &q, None, StatusCode::OK).await
}

async fn incidents_page(b: &Bureau, s: &Signed, q: &Fields, error: Option<&str>, code: StatusCode) -> Answer {
    let (rows, mailings) = tokio::try_join!(people::incidents(&b.pool, &s.account, false), desk::mailings(&b.pool, s.account.guichet.as_deref(), 50))?;
    let mut p = s.page("Fiches incident");
    if let Some(e) = error {
        let _ = write!(p.body, r#"<p class="error" role="alert">{}</p>"#, esc(e));
    }
    let chosen = field(q, "mailing").unwrap_or_default();
    let kinds: String = INCIDENT_KINDS.iter().map(|(k, l)| format!(r#"<option value="{k}">{l}</option>"#)).collect();
    let options: String = mailings
        .iter()
        .map(|m| {
            format!(
                r#"<option value="{}"{}>{} ({})</option>"#,
                esc(&m.id),
                if m.id == chosen { " selected" } else { "" },
                esc(&m.id),
                when(&m.received_at, &b.site)
            )
        })
        .collect();
    let _ = write!(
        p.body,
        r#"<form method="post" action="/portal/incidents" class="card"><h2>Signaler un incident</h2>{}
<label>Nature <select name="kind" required>{kinds}</select></label>
<label>Pli concerné <select name="mailing"><option value="">(aucun en particulier)</option>{options}</select></label>
<label>Numéro unique concerné <input name="numero_unique" maxlength="18" value="{}"></label>
<label>Description <textarea name="description" required maxlength="2000" rows="4"></textarea></label>
<button type="submit">Envoyer la fiche incident</button></form><h2>Vos fiches</h2>"#,
        p.csrf_field(),
        esc(field(q, "numero_unique").unwrap_or_default())
    );
    p.push(&incidents_table(b, &rows, None));
    let mut r = p.into_response();
    *r.status_mut() = code;
    Ok(r)
}

async fn open_incident(State(b): State<Arc<Bureau>>, CheckedForm { signed: s, fields: form }: CheckedForm<Counters>) -> Answer {
    let kind = field(&form, "kind").unwrap_or_default();
    if !INCIDENT_KINDS.iter().any(|(k, _)| *k == kind) {
        return incidents_page(&b, &s, &form, Some("Choisissez la nature de l'incident."), StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let Some(description) = field(&form, "description") else {
        return incidents_page(&b, &s, &form, Some("Décrivez l'incident."), StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    let numero = match field(&form, "numero_unique").map(NumeroUnique::parse).transpose() {
        Ok(n) => n.map(|n| n.to_string()),
        Err(e) => return incidents_page(&b, &s, &form, Some(&format!("Numéro unique : {e}.")), StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    let new = people::NewIncident {
        kind,
        mailing_id: field(&form, "mailing"),
        numero_unique: numero.as_deref(),
        description: &description.chars().take(2000).collect::<String>(),
    };
    match people::open_incident(&b.pool, &s.account, &new).await {
        Ok(Some(_)) => Ok(Redirect::to("/portal/incidents").into_response()),
        Ok(None) => Err(s.error(StatusCode::NOT_FOUND, "Ce pli n'existe pas ou n'est pas l'un des vôtres.")),
        Err(e) => Err(WebError::unavailable(e)),
    }
}
