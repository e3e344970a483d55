//! The notices: one French e-mail per request (what was filed, what was refused and why, what to
//! do next), and one for a non-conforming mailing. A sensitive piece is named only as
//! "pièce confidentielle": no notice carries a sensitive piece's type or content.

use chrono::{DateTime, FixedOffset};
use mail_builder::MessageBuilder;

use crate::reason::ReasonCode;
use crate::report::PieceStatus;

/// What every notice of a batch shares.
#[derive(Debug, Clone)]
pub struct NoticeContext<'a> {
    pub bureau_email: &'a str,
    pub site_name: &'a str,
    pub batch_id: &'a str,
    pub received_at: DateTime<FixedOffset>,
    pub due_at: DateTime<FixedOffset>,
    /// When the notice is written (its Date header).
    pub now: DateTime<FixedOffset>,
}

/// One piece as a notice tells it.
#[derive(Debug, Clone)]
pub struct NoticePiece {
    /// The type's label, or None when sensitive or not classified yet.
    pub libelle: Option<String>,
    pub sensible: bool,
    pub pages: usize,
    pub status: PieceStatus,
    pub reason: Option<ReasonCode>,
    /// An original sent by mistake, filed as the bureau's stamped copy.
    pub original: bool,
}

#[derive(Debug, Clone)]
pub struct RequestNotice<'a> {
    pub to: &'a str,
    pub numero: Option<&'a str>,
    /// The whole request was refused.
    pub reason: Option<ReasonCode>,
    pub pieces: Vec<NoticePiece>,
    pub pages: usize,
}

fn date_fr(d: &DateTime<FixedOffset>) -> String {
    d.format("%d/%m/%Y à %Hh%M").to_string()
}

fn build(ctx: &NoticeContext<'_>, to: &str, subject: String, body: String, key: &str) -> Vec<u8> {
    MessageBuilder::new()
        .from((ctx.site_name, ctx.bureau_email))
        .to(to)
        .subject(subject)
        .message_id(format!("{}.{}@scanbureau", ctx.batch_id, key))
        .date(ctx.now.timestamp())
        .header("X-Scanbureau-Batch", mail_builder::headers::raw::Raw::new(ctx.batch_id))
        .text_body(body)
        .write_to_vec()
        .unwrap_or_default()
}

fn piece_line(p: &NoticePiece) -> String {
    let what = if p.sensible { "Pièce confidentielle".to_string() } else { p.libelle.clone().unwrap_or_else(|| "Pièce en cours de qualification".into()) };
    let pages = if p.pages > 1 { format!("{} pages", p.pages) } else { "1 page".into() };
    match (p.status, p.reason) {
        (PieceStatus::Uploaded, _) => format!("  - {what} ({pages}) : déposée dans le dossier"),
        (PieceStatus::Review, _) => format!("  - {what} ({pages}) : en cours de vérification par un opérateur"),
        (PieceStatus::Rejected, Some(r)) => format!("  - {what} ({pages}) : refusée, {}", r.libelle()),
        (PieceStatus::Rejected, None) => format!("  - {what} ({pages}) : refusée"),
    }
}

/// The notice of one request.
pub fn request_notice(ctx: &NoticeContext<'_>, n: &RequestNotice<'_>) -> Vec<u8> {
    let numero = n.numero.unwrap_or("(numéro illisible)");
    let mut body = format!(
        "Bonjour,\n\nLe bureau de numérisation a reçu le {} des pièces pour la demande de logement social n° {}.\n\n",
        date_fr(&ctx.received_at),
        numero
    );
    let subject;
    if let Some(reason) = n.reason {
        subject = format!("Demande {numero} : pièces non traitées");
        body.push_str(&format!("Ces pièces ({} pages) n'ont pas pu être ajoutées au dossier : {}.\n\n", n.pages, reason.libelle()));
        body.push_str(next_step(reason));
    } else {
        let filed = n.pieces.iter().filter(|p| p.status == PieceStatus::Uploaded).count();
        let refused = n.pieces.iter().filter(|p| p.status == PieceStatus::Rejected).count();
        let review = n.pieces.iter().filter(|p| p.status == PieceStatus::Review).count();
        subject = format!("Demande {numero} : {filed} pièce(s) déposée(s), {review} en vérification, {refused} refusée(s)");
        body.push_str("Traitement des pièces reçues :\n");
        for p in &n.pieces {
            body.push_str(&piece_line(p));
            body.push('\n');
        }
        body.push('\n');
        if n.pieces.iter().any(|p| p.original) {
            body.push_str(
                "Un document original nous a été transmis par erreur ; il vous sera restitué par le GIP SNE. \
                 Une copie tamponnée « COPIE » par le bureau a été déposée dans le dossier à sa place.\n\n",
            );
        }
        if review > 0 {
            body.push_str("Les pièces en vérification seront traitées au plus tard le ");
            body.push_str(&date_fr(&ctx.due_at));
            body.push_str(". Vous recevrez un nouvel avis.\n\n");
        }
        if let Some(r) = n.pieces.iter().find_map(|p| p.reason) {
            body.push_str(next_step(r));
        }
    }
    body.push_str("\nCet avis ne reproduit pas le contenu des pièces.\n\nLe bureau de numérisation des pièces justificatives\n");
    build(ctx, n.to, subject, body, n.numero.unwrap_or("demande"))
}

/// The notice of a non-conforming mailing (no bordereau, nothing processed).
pub fn mailing_notice(ctx: &NoticeContext<'_>, to: &str, reason: ReasonCode, pages: usize, numeros: &[String]) -> Vec<u8> {
    let mut body = format!(
        "Bonjour,\n\nLe bureau de numérisation a reçu le {} un pli de {} pages qui n'a pas pu être traité : {}.\n\n",
        date_fr(&ctx.received_at),
        pages,
        reason.libelle()
    );
    if !numeros.is_empty() {
        body.push_str("Demandes concernées :\n");
        for n in numeros {
            body.push_str(&format!("  - {n}\n"));
        }
        body.push('\n');
    }
    body.push_str(next_step(reason));
    body.push_str("\nLe bureau de numérisation des pièces justificatives\n");
    build(ctx, to, format!("Pli non conforme reçu le {}", ctx.received_at.format("%d/%m/%Y")), body, "pli")
}

fn next_step(reason: ReasonCode) -> &'static str {
    use ReasonCode::*;
    match reason {
        PliSansBordereau => "Merci de renvoyer les pièces accompagnées du bordereau de transmission édité depuis le système national d'enregistrement.\n",
        DemandeSansFiche | FicheIllisible => "Merci de renvoyer ces pièces précédées de la fiche récapitulative de la demande.\n",
        NumeroInvalide | NumeroInconnu => "Merci de vérifier le numéro unique de la demande et de renvoyer les pièces avec la fiche récapitulative à jour.\n",
        NumeroHorsSne => "Ce territoire gère ses demandes hors du SNE : merci de vous adresser au service local d'enregistrement.\n",
        DemandeRadiee => "La demande est radiée : une nouvelle demande doit être déposée avant tout envoi de pièces.\n",
        IncoherenceIdentite => "Merci de vérifier que les pièces et la fiche récapitulative concernent bien le demandeur.\n",
        PieceIllisible | PiecePartielle => "Merci de renvoyer une copie lisible et complète des pièces refusées.\n",
        CategoriePleine => {
            "Le dossier contient déjà le nombre maximal de pièces de cette catégorie : mettez à jour le dossier avant d'en envoyer une nouvelle.\n"
        }
        FichierTropVolumineux | FormatNonSupporte | FichierCorrompu => {
            "Merci de renvoyer les fichiers concernés au format PDF ou image, non protégés et de taille raisonnable.\n"
        }
        HorsPerimetreReglementaire => "Seules les pièces de la liste réglementaire sont versées au dossier.\n",
        Doublon => "Cette pièce figure déjà au dossier : aucun nouvel envoi n'est nécessaire.\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> NoticeContext<'static> {
        let t = DateTime::parse_from_rfc3339("2026-11-18T09:12:00+01:00").expect("t");
        NoticeContext { bureau_email: "numerisation@bureau.example", site_name: "Bureau", batch_id: "b-1", received_at: t, due_at: t, now: t }
    }

    #[test]
    fn sensitive_pieces_are_never_named() {
        let n = RequestNotice {
            to: "pj@bailleur.fr",
            numero: Some("0740126000123G0042"),
            reason: None,
            pages: 3,
            pieces: vec![
                NoticePiece {
                    libelle: Some("Certificat médical".into()),
                    sensible: true,
                    pages: 1,
                    status: PieceStatus::Uploaded,
                    reason: None,
                    original: false,
                },
                NoticePiece {
                    libelle: Some("Avis d'impôt sur le revenu".into()),
                    sensible: false,
                    pages: 2,
                    status: PieceStatus::Rejected,
                    reason: Some(ReasonCode::CategoriePleine),
                    original: false,
                },
            ],
        };
        let eml = request_notice(&ctx(), &n);
        let msg = mail_parser::MessageParser::default().parse(&eml).expect("parses");
        let body = msg.body_text(0).expect("body").to_string();
        assert!(!body.contains("médical"), "{body}");
        assert!(body.contains("Pièce confidentielle"));
        assert!(body.contains("nombre maximal"));
        assert_eq!(msg.to().and_then(|a| a.first()).and_then(|a| a.address()), Some("pj@bailleur.fr"));
        assert_eq!(eml, request_notice(&ctx(), &n), "deterministic");
    }

    #[test]
    fn an_original_sent_by_mistake_is_said_to_come_back_through_the_gip_sne() {
        let piece = |original| NoticePiece {
            libelle: Some("Carte nationale d'identité".into()),
            sensible: false,
            pages: 2,
            status: PieceStatus::Uploaded,
            reason: None,
            original,
        };
        let body = |original| {
            let n = RequestNotice { to: "a@b.fr", numero: Some("0740126000123G0042"), reason: None, pages: 2, pieces: vec![piece(original)] };
            let eml = request_notice(&ctx(), &n);
            mail_parser::MessageParser::default().parse(&eml).expect("parses").body_text(0).expect("body").to_string()
        };
        let said = body(true);
        assert!(said.contains("Un document original nous a été transmis par erreur ; il vous sera restitué par le GIP SNE."), "{said}");
        assert!(!body(false).contains("original"));
    }

    #[test]
    fn mailing_notice_says_why_and_what_next() {
        let eml = mailing_notice(&ctx(), "pj@bailleur.fr", ReasonCode::PliSansBordereau, 5, &["0740126000123G0042".into()]);
        let msg = mail_parser::MessageParser::default().parse(&eml).expect("parses");
        let body = msg.body_text(0).expect("body").to_string();
        assert!(body.contains("sans bordereau") && body.contains("0740126000123G0042"));
    }
}

/// Why an e-mail was not taken as a mailing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailRefusal {
    /// The sender is neither a known counter nor an applicant of the registry.
    UnknownSender,
    /// No PDF or image attached.
    NoAttachment,
    /// An attachment is over the size limit.
    AttachmentTooLarge { name: String, bytes: u64, limit: u64 },
    /// A counter's message that neither DKIM nor SPF authenticates for its own domain (no proof
    /// of forgery either: the reply goes to the counter's known address, saying what to fix).
    Unauthenticated { domain: String },
}

/// The reply to an e-mail that was not taken as a mailing.
pub fn mail_refusal_notice(ctx: &NoticeContext<'_>, to: &str, subject: &str, why: &MailRefusal) -> Vec<u8> {
    let reason = match why {
        MailRefusal::UnknownSender => "votre adresse n'est pas celle d'un guichet enregistreur connu ni d'un demandeur enregistré. \
             Merci de passer par votre guichet ou par le portail professionnel."
            .to_string(),
        MailRefusal::NoAttachment => "le message ne contient aucune pièce jointe au format PDF ou image.".to_string(),
        MailRefusal::AttachmentTooLarge { name, bytes, limit } => format!(
            "la pièce jointe « {name} » pèse {:.1} Mo, au-delà de la limite de {:.0} Mo. Merci de la scinder ou de la compresser.",
            *bytes as f64 / 1e6,
            *limit as f64 / 1e6
        ),
        MailRefusal::Unauthenticated { domain } => format!(
            "rien n'a permis de l'authentifier, car ni une signature DKIM ni l'enregistrement SPF du domaine « {domain} » \
             n'établissent qu'il vient de votre messagerie. Merci de l'envoyer depuis votre messagerie sécurisée, \
             ou de demander à votre service informatique de signer le courrier du domaine (DKIM)."
        ),
    };
    let body = format!(
        "Bonjour,\n\nLe bureau de numérisation a reçu le {} votre message « {subject} », qui n'a pas pu être traité : {reason}\n\n\
         Aucune pièce n'a été déposée.\n\nLe bureau de numérisation des pièces justificatives\n",
        date_fr(&ctx.received_at)
    );
    build(ctx, to, format!("Message non traité reçu le {}", ctx.received_at.format("%d/%m/%Y")), body, "courriel")
}
