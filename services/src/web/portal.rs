//! The counters' portal: deposit pieces (one request's, or a multi-request PDF), print slips,
//! follow mailings and their notices, file incidents. The mailing page is shared with the
//! bureau's staff.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use chrono::{NaiveDate, Utc};
use maud::{Markup, html};

use scanbureau_pipeline::slip::{Bordereau, Fiche, Slip};
use scanbureau_pipeline::slip_print::slip_pdf;
use scanbureau_pipeline::{Departement, NumeroGuichet, NumeroUnique};

use super::access::{CheckedForm, Counters, Everyone, SignedIn, Uploader};
use super::lists::{ListQuery, mailing_list};
use super::page::{alert, channel_label, mailing_status_label, piece_status_label, request_status_label, time_left, url, when};
use super::{Answer, Fields, Refused, Signed, WebError, field, pdf_answer, receive_upload, take_upload, upload_name};
use crate::accounts::Role;
use crate::bureau::{Bureau, Intake};
use crate::decisions;
use crate::mail_auth::{AuthFacts, Authenticity, DomainPolicy, Outcome};
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
pub fn upload_form(s: &Signed, action: &str, accept: &str, limit: u64, extra: Markup, button: &str, folder: bool) -> Markup {
    html! {
        form.card.upload method="post" action=(action) data-upload data-limit=(limit) data-accept=(accept) data-folder[folder] {
            (s.csrf_field())
            (extra)
            @if folder {
                label { "Fichiers " input type="file" name="file" accept=(accept) multiple; }
                label { "ou un dossier du scanner " input type="file" name="folder" webkitdirectory; }
            } @else {
                label { "Fichier " input type="file" name="file" accept=(accept) required; }
            }
            p.muted { "Taille maximale : " (limit / 1_000_000) " Mo en tout." }
            progress max="100" value="0" hidden {}
            " "
            span.progress-text aria-live="polite" {}
            p.error role="alert" hidden {}
            button type="submit" { (button) }
        }
    }
}

async fn home(State(b): State<Arc<Bureau>>, s: SignedIn<Counters>, Query(q): Query<Fields>) -> Answer {
    let list = ListQuery::from_fields(&q);
    let guichet = s.account.guichet.as_deref();
    let search = list.search(guichet, &b.site.calendar());
    let (rows, referent) = tokio::try_join!(desk::mailing_list(&b.pool, &search), desk::counter_contact(&b.pool, guichet.unwrap_or_default()))?;
    let referent = referent.map(|c| c.email_referent);
    let numero = html! {
        label { "Numéro unique (dépôt d'une seule demande) " input name="numero_unique" pattern="[0-9A-Za-z]{18}" maxlength="18" placeholder="0930325091042G3533"; }
    };
    let body = html! {
        p.muted {
            "Guichet " (guichet.unwrap_or("?")) " · référent : " (referent.as_deref().unwrap_or("non renseigné"))
            " (il reçoit les avis des plis papier ; ceux des dépôts du portail vont à la personne qui dépose)."
        }
        h2 { "Déposer des pièces" }
        p {
            "Un dépôt est soit les pièces d'une seule demande (indiquez son numéro unique), soit un PDF de plusieurs demandes, "
            "chacune précédée de sa fiche récapitulative (laissez le numéro vide)."
        }
        (upload_form(&s, "/portal/deposits", "application/pdf,.pdf", b.config.portal.max_upload_bytes, numero, "Déposer", false))
        h2 #plis { "Plis et dépôts" }
        (mailing_list(&b, "/portal", &list, &rows, false))
    };
    Ok(s.page("Mes plis et dépôts", body))
}

/// `POST /portal/deposits[?numero_unique=N]`: the PDF as the body, the CSRF token in a header.
async fn deposit(State(b): State<Arc<Bureau>>, Uploader(s): Uploader<Counters>, headers: HeaderMap, Query(q): Query<Fields>, body: Body) -> Answer {
    let refuse = |code: StatusCode, message: String| -> Answer { Err(WebError::json(code, message)) };
    let numero = match field(&q, "numero_unique") {
        Some(n) => match NumeroUnique::parse(n) {
            Ok(n) => Some(n.to_string()),
            Err(e) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, format!("Numéro unique : {}.", e.en_francais())),
        },
        None => None,
    };
    let name = upload_name(field(&q, "name"));
    let upload = match take_upload(&crate::workdir::root(&b.config), &headers, body, b.config.portal.max_upload_bytes, &name).await {
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
    let files = vec![(name, upload.path.clone())];
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
    let (requests, pieces, notices, origin) =
        tokio::try_join!(desk::requests(&b.pool, &id), desk::pieces(&b.pool, &id), desk::notices(&b.pool, &id), desk::mail_origin(&b.pool, &id))?;
    let origin = origin.as_ref().and_then(mail_origin);
    // Without a plan in the database, pieces show their codes; a database that fails is an error.
    let plan = match store::current_plan(&b.pool).await {
        Ok(p) => Some(p),
        Err(store::StoreError::NoPlan) => None,
        Err(e) => return Err(e.into()),
    };
    let now = Utc::now();
    let open = m.status != "done";
    let body = html! {
        dl.facts {
            dt { "État" }
            dd class={ "state state-" (m.status) } data-status=(m.status) {
                @if let ("done", Some(o)) = (m.status.as_str(), &m.outcome) { "traité : " (mailing_status_label(o)) } @else { (mailing_status_label(&m.status)) }
            }
            dt { "Canal" } dd { (channel_label(&m.channel)) }
            dt { "Reçu le" } dd { (when(&m.received_at, &b.site)) }
            dt { "Échéance" } dd { (when(&m.due_at, &b.site)) @if open { " (" (time_left(&m.due_at, &now)) ")" } }
            dt { "Pages" } dd { @match m.pages { Some(p) => (p), None if !open => "aucune", None => "pas encore comptées" } }
            @if let Some(g) = &m.guichet { dt { "Guichet" } dd { (g) } }
            @if let Some((verdict, checks)) = &origin {
                dt { "Origine du courriel" }
                dd.mail-origin { (verdict) br; span.muted { (checks) } }
            }
        }
        @if open {
            p.muted { "Cette page se met à jour d'elle-même pendant le traitement." }
            meta http-equiv="refresh" content="5";
        }
        @if !requests.is_empty() {
            h2 { "Demandes" }
            table {
                thead { tr { th { "Numéro unique" } th { "État" } th { "Motif" } } }
                tbody {
                    @for r in &requests {
                        tr {
                            td { (r.numero_unique.as_deref().unwrap_or("(illisible)")) }
                            td { (request_status_label(&r.status)) }
                            td { @if let Some(reason) = &r.reason { (reason_label(reason)) } }
                        }
                    }
                }
            }
        }
        @if !pieces.is_empty() {
            h2 { "Pièces" }
            table.pieces {
                thead { tr { th { "Demande" } th { "Pièce" } th { "Pages" } th { "État" } th { "Motif" } th {} } }
                tbody {
                    @for pc in &pieces {
                        tr data-piece=(pc.id) {
                            td { (pc.numero_unique.as_deref().unwrap_or("—")) }
                            td { (piece_label(pc, plan.as_ref())) }
                            td { (pc.pages) }
                            td { (piece_status_label(&pc.status)) }
                            td { @if let Some(reason) = &pc.reason { (reason_label(reason)) } }
                            td {
                                @if pc.key.is_some() {
                                    @if pc.sensible && !s.account.sensitive {
                                        span.muted { "contenu réservé au profil sensible" }
                                    } @else {
                                        a href={ "/pieces/" (url(&pc.id)) "/pdf" } { "ouvrir" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Avis envoyés" }
        @if notices.is_empty() { p.muted { "Aucun avis pour l'instant." } }
        @for n in &notices { (notice_details(&b, &s, n)) }
        @if s.account.role == Role::Counter {
            p { a href={ "/portal/incidents?mailing=" (url(&m.id)) } { "Signaler un incident sur ce pli" } }
        }
    };
    Ok(s.page(&format!("Pli {}", m.id), body))
}

/// An e-mail's origin as an operator reads it, from its recorded check (`mail_authentication`:
/// the verdict and the [`AuthFacts`] it rests on): what was concluded, in French, and the
/// results. None when the record is not one.
pub fn mail_origin(detail: &serde_json::Value) -> Option<(String, String)> {
    let verdict = Authenticity::from_label(detail["verdict"].as_str()?)?;
    let f: AuthFacts = serde_json::from_value(detail["checks"].clone()).ok()?;
    let domain = &f.from_domain;
    let client = f.client.map(|c| c.to_string());
    let result = |o: Outcome| match o {
        Outcome::Pass => "réussi",
        Outcome::Fail => "échec",
        Outcome::TempError => "DNS sans réponse",
        Outcome::PermError => "enregistrement invalide",
        Outcome::None => "aucun",
    };
    let policy = match f.policy {
        DomainPolicy::Reject => "rejeter",
        DomainPolicy::Quarantine => "mettre en quarantaine",
        DomainPolicy::None => "seulement observer",
        DomainPolicy::Absent => "aucune politique publiée",
    };
    let server = client.as_deref().unwrap_or("inconnu");
    let said = match verdict {
        Authenticity::Authentic if f.trusted_relay => format!("authentique : remis par un relais de confiance ({server})"),
        Authenticity::Authentic => format!("authentique : {domain} l'a signé ou envoyé (DMARC réussi)"),
        Authenticity::Unproven => format!("non prouvée : rien ne prouve que {domain} l'a envoyé, ni le contraire"),
        Authenticity::Forged(_) => format!(
            "falsifiée : aucune signature DKIM de {domain} ne se vérifie et SPF n'autorise pas le serveur {server} ; le domaine demande de {policy} un tel courriel. Le pli est refusé et l'adresse de l'expéditeur n'est pas prévenue."
        ),
        Authenticity::Unavailable(_) => format!("non vérifiée : le DNS n'a pas répondu pour {domain}"),
    };
    let signatures: Vec<String> = f.dkim.iter().map(|(d, o)| format!("{d} {}", result(*o))).collect();
    let dkim = if signatures.is_empty() { "aucune signature".to_string() } else { signatures.join(", ") };
    let spf_for = if f.spf_domain.is_empty() { String::new() } else { format!(" ({})", f.spf_domain) };
    let sent_by = client.map_or_else(|| "serveur d'envoi inconnu".to_string(), |c| format!("serveur d'envoi {c}"));
    let checks = format!("DKIM : {dkim} ; SPF{spf_for} : {} ; DMARC : {} (politique : {policy}) ; {sent_by}", result(f.spf), result(f.dmarc));
    Some((said, checks))
}

/// A notice as sent: its subject, recipients and state, its text folded, and a button to send
/// it again.
fn notice_details(b: &Bureau, s: &Signed, n: &desk::NoticeView) -> Markup {
    let parsed = mail_parser::MessageParser::default().parse(&n.message);
    let subject = parsed.as_ref().and_then(|m| m.subject().map(str::to_string)).unwrap_or_else(|| n.name.clone());
    let text = parsed.as_ref().and_then(|m| m.body_text(0).map(|t| t.to_string())).unwrap_or_default();
    let sent = match (&n.status[..], n.sent_at) {
        ("sent", Some(at)) => format!("envoyé le {}", when(&at, &b.site)),
        ("failed", _) => format!("échec d'envoi : {}", n.last_error.as_deref().unwrap_or("")),
        _ => "en cours d'envoi".into(),
    };
    html! {
        details.notice data-notice-status=(n.status) {
            summary { (subject) " — à " (n.recipients.join(", ")) " — " (sent) }
            pre { (text) }
            form.inline method="post" action={ "/notices/" (n.id) "/resend" } { (s.csrf_field()) button type="submit" { "Renvoyer cet avis" } }
        }
    }
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
    let mailing = match desk::notice_owner(&b.pool, id).await? {
        Some((m, g)) if s.account.sees_counter(g.as_deref()) => m,
        _ => return Err(s.error(StatusCode::NOT_FOUND, "Cet avis n'existe pas ou n'est pas l'un des vôtres.")),
    };
    match decisions::resend_notice(&b, id, &s.account.actor()).await? {
        desk::Resend::Queued => Ok(Redirect::to(&format!("/mailings/{}", url(&mailing))).into_response()),
        desk::Resend::AlreadyPending => Err(s.error(StatusCode::CONFLICT, "Cet avis est déjà en cours d'envoi : il partira dès que possible.")),
        desk::Resend::TooMany => Err(s.error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Cet avis a déjà été renvoyé {} fois aujourd'hui. Si le destinataire ne le reçoit pas, ouvrez un incident.", desk::RESENDS_PER_DAY),
        )),
        desk::Resend::Missing => Err(s.error(StatusCode::NOT_FOUND, "Cet avis n'existe plus.")),
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
    let v = |k: &str| q.get(k).or_else(|| known.get(k)).map(String::as_str).unwrap_or_default();
    let today = Utc::now().date_naive().format("%Y-%m-%d").to_string();
    let body = html! {
        @if let Some(e) = error.or(lookup_note) { (alert("error", e)) }
        div.columns {
            form.card method="post" action="/portal/slips/fiche" {
                h2 { "Fiche récapitulative" }
                (s.csrf_field())
                p.muted {
                    "Une par demande, en tête de ses pièces. "
                    a href={ "/portal/slips?numero_unique=" (url(q.get("numero_unique").map(String::as_str).unwrap_or_default())) } data-registry-fill {
                        "Remplir depuis le registre"
                    }
                    " après avoir saisi le numéro."
                }
                label { "Numéro unique " input name="numero_unique" required pattern="[0-9A-Za-z]{18}" maxlength="18" value=(v("numero_unique")); }
                label { "Nom " input name="nom" required value=(v("nom")); }
                label { "Prénoms " input name="prenoms" required value=(v("prenoms")); }
                label { "Date de naissance " input type="date" name="date_naissance" required value=(v("date_naissance")); }
                label { "Nombre de documents " input type="number" name="nb_documents" min="1" max="99" required value=(v("nb_documents")); }
                label { "Nombre de pages, fiche comprise " input type="number" name="nb_pages" min="2" max="999" required value=(v("nb_pages")); }
                label { "Date de remplissage " input type="date" name="date_remplissage" required value=(today); }
                button type="submit" { "Imprimer la fiche (PDF)" }
            }
            form.card method="post" action="/portal/slips/bordereau" {
                h2 { "Bordereau de transmission" }
                (s.csrf_field())
                p.muted { "Un par pli envoyé par courrier, en tête du pli. Guichet " (s.account.guichet.as_deref().unwrap_or("?")) "." }
                label { "Nombre de dossiers (fiches) " input type="number" name="nb_dossiers" min="1" max="999" required value=(v("nb_dossiers")); }
                label {
                    "Nombre total de pages, bordereau et fiches compris "
                    input type="number" name="nb_pages_total" min="2" max="9999" required value=(v("nb_pages_total"));
                }
                label { "Date de transmission " input type="date" name="date_transmission" required value=(today); }
                button type="submit" { "Imprimer le bordereau (PDF)" }
            }
        }
    };
    Ok(s.page_with(code, "Imprimer une fiche récapitulative ou un bordereau", body))
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
        numero: NumeroUnique::parse(numero).map_err(|e| format!("Numéro unique : {}.", e.en_francais()))?,
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
        Ok(pdf) => pdf_answer("attachment", &name, pdf),
        Err(e) => {
            tracing::warn!(error = %e, "a slip could not be printed");
            slips_page(&b, &s, &form, Some(&e.en_francais()), StatusCode::UNPROCESSABLE_ENTITY).await
        }
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
            guichet: NumeroGuichet::parse(&guichet).map_err(|e| format!("Guichet : {}.", e.en_francais()))?,
            departement: Departement::parse(departement.as_deref().unwrap_or_default())
                .map_err(|e| format!("Département du guichet : {}.", e.en_francais()))?,
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
        Ok(pdf) => pdf_answer("attachment", &name, pdf),
        Err(e) => {
            tracing::warn!(error = %e, "a slip could not be printed");
            slips_page(&b, &s, &form, Some(&e.en_francais()), StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

// ---------------------------------------------------------------- incidents

/// The incidents table; for the console, each row carries its answer form (`answer_forms`).
pub fn incidents_table(b: &Bureau, s: &Signed, rows: &[people::Incident], answer_forms: bool) -> Markup {
    if rows.is_empty() {
        return html! { p.muted { "Aucune fiche incident." } };
    }
    html! {
        table {
            thead { tr {
                th { "N°" } th { "Ouverte le" } th { "Guichet" } th { "Nature" } th { "Pli / demande" } th { "Description" } th { "État" } th { "Réponse" }
            } }
            tbody {
                @for i in rows {
                    tr data-incident=(i.id) {
                        td { (i.id) }
                        td { (when(&i.created_at, &b.site)) }
                        td { (i.guichet) }
                        td { (incident_kind_label(&i.kind)) }
                        td {
                            @match (&i.mailing_id, &i.numero_unique) {
                                (Some(m), n) => { a href={ "/mailings/" (url(m)) } { (m) } " " (n.as_deref().unwrap_or("")) },
                                (None, Some(n)) => (n),
                                (None, None) => "—",
                            }
                        }
                        td { (i.description) }
                        td.incident-status { (incident_status_label(&i.status)) }
                        td {
                            @if answer_forms {
                                form.inline method="post" action={ "/console/incidents/" (i.id) } {
                                    (s.csrf_field())
                                    select name="status" {
                                        @for (k, l) in people::INCIDENT_STATUSES { option value=(k) selected[*k == i.status] { (l) } }
                                    }
                                    input name="answer" value=(i.answer.as_deref().unwrap_or("")) placeholder="réponse";
                                    button type="submit" { "Enregistrer" }
                                }
                            } @else {
                                (i.answer.as_deref().unwrap_or(""))
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn incidents(State(b): State<Arc<Bureau>>, s: SignedIn<Counters>, Query(q): Query<Fields>) -> Answer {
    incidents_page(&b, &s, &q, None, StatusCode::OK).await
}

async fn incidents_page(b: &Bureau, s: &Signed, q: &Fields, error: Option<&str>, code: StatusCode) -> Answer {
    let recent = desk::MailingSearch { guichet: s.account.guichet.clone(), limit: 50, ..Default::default() };
    let (rows, mailings) = tokio::try_join!(people::incidents(&b.pool, &s.account, false), desk::mailing_list(&b.pool, &recent))?;
    let chosen = field(q, "mailing").unwrap_or_default();
    let body = html! {
        @if let Some(e) = error { (alert("error", e)) }
        form.card method="post" action="/portal/incidents" {
            h2 { "Signaler un incident" }
            (s.csrf_field())
            label { "Nature " select name="kind" required { @for (k, l) in INCIDENT_KINDS { option value=(k) { (l) } } } }
            label {
                "Pli concerné "
                select name="mailing" {
                    option value="" { "(aucun en particulier)" }
                    @for m in &mailings { option value=(m.id) selected[m.id == chosen] { (m.title) " — " (when(&m.received_at, &b.site)) " — " (m.id) } }
                }
            }
            label { "Numéro unique concerné " input name="numero_unique" maxlength="18" value=(field(q, "numero_unique").unwrap_or_default()); }
            label { "Description " textarea name="description" required maxlength="2000" rows="4" {} }
            button type="submit" { "Envoyer la fiche incident" }
        }
        h2 { "Vos fiches" }
        (incidents_table(b, s, &rows, false))
    };
    Ok(s.page_with(code, "Fiches incident", body))
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
        Err(e) => return incidents_page(&b, &s, &form, Some(&format!("Numéro unique : {}.", e.en_francais())), StatusCode::UNPROCESSABLE_ENTITY).await,
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::mail_origin;
    use crate::mail_auth::{AuthFacts, DomainPolicy, Outcome, judge};

    /// The record as the intake writes it: the verdict's label and the checks.
    fn recorded(facts: &AuthFacts, verdict: &str) -> serde_json::Value {
        json!({"verdict": verdict, "checks": serde_json::to_value(facts).expect("facts serialise")})
    }

    fn facts(dkim: Outcome, spf: Outcome, dmarc: Outcome, trusted_relay: bool) -> AuthFacts {
        AuthFacts {
            from_domain: "bailleur-974.example".into(),
            dmarc,
            policy: DomainPolicy::Reject,
            dkim: vec![("bailleur-974.example".into(), dkim)],
            spf,
            spf_domain: "bailleur-974.example".into(),
            client: Some("198.51.100.9".parse().expect("an address")),
            trusted_relay,
        }
    }

    #[test]
    fn an_e_mail_s_origin_reads_in_french_with_the_checks_it_rests_on() {
        let signed = facts(Outcome::Pass, Outcome::Pass, Outcome::Pass, false);
        let (said, checks) = mail_origin(&recorded(&signed, "authentic")).expect("shown");
        assert!(said.starts_with("authentique : bailleur-974.example"), "{said}");
        assert!(checks.contains("DKIM : bailleur-974.example réussi") && checks.contains("DMARC : réussi (politique : rejeter)"), "{checks}");

        let forged = facts(Outcome::Fail, Outcome::Fail, Outcome::Fail, false);
        let crate::mail_auth::Authenticity::Forged(proof) = judge(&forged) else { panic!("forged") };
        let (said, checks) = mail_origin(&recorded(&forged, &format!("forged: {proof}"))).expect("shown");
        assert!(said.starts_with("falsifiée") && said.contains("198.51.100.9") && said.contains("rejeter"), "{said}");
        assert!(checks.contains("SPF (bailleur-974.example) : échec"), "{checks}");

        let relayed = facts(Outcome::None, Outcome::None, Outcome::None, true);
        assert!(mail_origin(&recorded(&relayed, "authentic")).expect("shown").0.contains("relais de confiance (198.51.100.9)"));
        let unsigned = AuthFacts { dkim: Vec::new(), client: None, ..facts(Outcome::None, Outcome::None, Outcome::None, false) };
        let (said, checks) = mail_origin(&recorded(&unsigned, "unproven")).expect("shown");
        assert!(said.starts_with("non prouvée"), "{said}");
        assert!(checks.contains("DKIM : aucune signature") && checks.contains("serveur d'envoi inconnu"), "{checks}");
        assert!(mail_origin(&json!({"other": 1})).is_none(), "a record without a verdict is not shown");
    }
}
