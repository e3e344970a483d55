//! The people's side on the real stack: the bureau runs as a real process (`scanbureau worker
//! portal process notify`), accounts are made with `scanbureau admin add-account`.
//!
//! - The security test sends what a browser would not (no CSRF token, another counter's URLs,
//!   oversized bodies) with a small cookie-keeping HTTP client.
//! - The browser test drives Debian's Chromium with playwright-core (`tests/browser/journey.mjs`)
//!   through a counter's, an operator's and a supervisor's work.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::watch;

use scanbureau::blobs::keys;
use scanbureau::broker::Broker;
use scanbureau::bureau::Bureau;
use scanbureau::store::{self, NewMailing, StoredFile};
use scanbureau::web::page::esc;
use scanbureau_tests::stack::{TestStack, wait_until, workspace_root};
use scanbureau_tests::web::{Client, Server, add_account, sensitive_deposit};

const LONG: Duration = Duration::from_secs(300);

/// The name a counter's PDF is deposited under.
const FILE_NAME: &str = "Dossier Dupont été.pdf";

/// An operator's answer to an incident, with markup in it.
const ANSWER: &str = "Avis renvoyé au référent <b>ce matin</b> & \"en recommandé\".";

fn sample(name: &str) -> std::path::PathBuf {
    workspace_root().join("scans-samples").join(name)
}

/// Deletes the test's queues once its server is gone.
async fn drop_queues(stack: &TestStack) -> Result<()> {
    let broker = Broker::connect(&stack.config()?.broker, "test cleanup").await?;
    broker.delete_topology().await?;
    broker.close().await;
    Ok(())
}

const A: (&str, &str) = ("agent@bailleur-093.example", "guichet-A: mot de passe long 1");
const B: (&str, &str) = ("agent@bailleur-059.example", "guichet-B: mot de passe long 2");
const SENSITIVE: (&str, &str) = ("referente@bailleur-093.example", "profil sensible: mot de passe 3");
const OPERATOR: (&str, &str) = ("operateur@bureau.example", "operateur: mot de passe long 4");
const SUPERVISOR: (&str, &str) = ("superviseur@bureau.example", "superviseur: mot de passe 5");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_kept_apart_sensitive_pieces_stay_closed_and_forged_posts_are_refused() -> Result<()> {
    let mut stack = TestStack::new("websec", true).await?;
    let (deposit, registry, mine, theirs) = sensitive_deposit(stack.dir.path())?;
    // A limit just above the deposit's size.
    let limit = std::fs::metadata(&deposit)?.len() as usize + 100_000;
    stack.set("SCANBUREAU__PORTAL__MAX_UPLOAD_BYTES", &limit.to_string());
    stack.set("SCANBUREAU__JOB__REGISTRY", &registry.display().to_string());
    // Logs as a collector takes them: one JSON object a line, with its spans.
    let server = Server::start(&stack, &["portal", "process", "notify"], &[("SCANBUREAU__LOG__FORMAT", "json")])?;
    let pool = PgPool::connect(&stack.database_url).await?;
    add_account(&stack, A.0, A.1, "counter", Some(&mine), false)?;
    add_account(&stack, B.0, B.1, "counter", Some(&theirs), false)?;
    add_account(&stack, SENSITIVE.0, SENSITIVE.1, "counter", Some(&mine), true)?;
    add_account(&stack, OPERATOR.0, OPERATOR.1, "operator", None, false)?;

    // Sign-in needs the login page's own token.
    let mut a = Client::new(server.port);
    let forged = a.post_form("/login", &[("email", A.0), ("password", A.1)]).await?;
    assert_eq!(forged.status, 403, "a sign-in without the login page's token");
    let signed = a.login(A.0, A.1).await?;
    assert_eq!((signed.status, signed.header("location")), (303, Some("/portal")), "{}", signed.text());
    let cookie = signed
        .headers
        .iter()
        .find(|(k, v)| k.eq_ignore_ascii_case("set-cookie") && v.starts_with("__Host-sb_session="))
        .map(|(_, v)| v.clone())
        .context("session cookie")?;
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "session cookie {cookie:?} lacks {flag}");
    }
    let portal = a.get("/portal").await?;
    assert_eq!(portal.status, 200);
    assert!(portal.header("content-security-policy").is_some_and(|c| c.contains("frame-ancestors 'none'")));

    // Uploads: the session's token in a header, size and type checked by the server.
    let pdf = std::fs::read(&deposit)?;
    let no_token = a.request("POST", "/portal/deposits", &[("Content-Type", "application/pdf")], &pdf).await?;
    assert_eq!(no_token.status, 403, "an upload without the CSRF token");
    let csrf = a.session_csrf("/portal").await?;
    let mut big = b"%PDF-1.4\n".to_vec();
    big.resize(limit + 1, b' ');
    let oversized = a.request("POST", "/portal/deposits", &[("Content-Type", "application/pdf"), ("X-CSRF-Token", &csrf)], &big).await?;
    assert_eq!(oversized.status, 413, "{}", oversized.text());
    assert!(oversized.text().contains("Mo"), "the refusal says the limit: {}", oversized.text());
    let not_pdf = a.request("POST", "/portal/deposits", &[("Content-Type", "image/gif"), ("X-CSRF-Token", &csrf)], b"GIF89a....").await?;
    assert_eq!(not_pdf.status, 415, "{}", not_pdf.text());
    // What the page's script shows is said in French.
    let empty = a.request("POST", "/portal/deposits", &[("Content-Type", "application/pdf"), ("X-CSRF-Token", &csrf)], b"").await?;
    assert_eq!((empty.status, empty.text()), (400, r#"{"error":"Le fichier envoyé est vide."}"#.to_string()));
    let short = a.request("POST", "/portal/deposits?numero_unique=12345", &[("Content-Type", "application/pdf"), ("X-CSRF-Token", &csrf)], &pdf).await?;
    assert_eq!(short.status, 422);
    assert!(short.text().contains("n'est pas valide : il compte 18 caractères") && !short.text().contains("must have"), "{}", short.text());
    assert_eq!(sqlx::query_scalar::<_, i64>("SELECT count(*) FROM mailings").fetch_one(&pool).await?, 0, "nothing kept of refused uploads");
    let deposited = a
        .request(
            "POST",
            &format!("/portal/deposits?name={}", scanbureau::web::page::url(FILE_NAME)),
            &[("Content-Type", "application/pdf"), ("X-CSRF-Token", &csrf)],
            &pdf,
        )
        .await?;
    assert_eq!(deposited.status, 202, "{}", deposited.text());
    let answer: serde_json::Value = serde_json::from_slice(&deposited.body)?;
    let id = answer["deposit"].as_str().context("deposit id")?.to_string();
    wait_until(&pool, "SELECT count(*) = 1 FROM mailings WHERE status = 'done'", "the deposit processed", LONG).await?;
    wait_until(&pool, "SELECT count(*) > 0 AND bool_and(status = 'sent') FROM notices", "its notices sent", LONG).await?;

    let own_page = a.get(&format!("/mailings/{id}")).await?;
    assert_eq!(own_page.status, 200);
    assert!(own_page.text().contains(r#"data-status="done""#));
    let piece: String = sqlx::query_scalar("SELECT id FROM pieces WHERE NOT sensible AND key IS NOT NULL ORDER BY id LIMIT 1").fetch_one(&pool).await?;
    let sensitive: String = sqlx::query_scalar("SELECT id FROM pieces WHERE sensible AND key IS NOT NULL ORDER BY id LIMIT 1")
        .fetch_optional(&pool)
        .await?
        .context("the deposit's ordonnance de protection is filed as a sensitive piece")?;
    let notice: i64 = sqlx::query_scalar("SELECT min(id) FROM notices").fetch_one(&pool).await?;
    let own = a.get(&format!("/pieces/{piece}/pdf")).await?;
    assert_eq!(own.status, 200);
    assert!(own.body.starts_with(b"%PDF"));
    // Listed, but not opened, for a profile that is not sensitive.
    assert!(own_page.text().contains("contenu réservé au profil sensible"));
    assert!(!own_page.text().contains(&format!("/pieces/{sensitive}/pdf")));
    assert_eq!(a.get(&format!("/pieces/{sensitive}/pdf")).await?.status, 403);
    assert_eq!(a.get(&format!("/pieces/{sensitive}/pages/0")).await?.status, 403);
    let mut s = Client::new(server.port);
    assert_eq!(s.login(SENSITIVE.0, SENSITIVE.1).await?.status, 303);
    let opened = s.get(&format!("/pieces/{sensitive}/pdf")).await?;
    assert_eq!(opened.status, 200, "the sensitive profile opens it");
    assert!(opened.body.starts_with(b"%PDF"));
    let mut op = Client::new(server.port);
    assert_eq!(op.login(OPERATOR.0, OPERATOR.1).await?.status, 303);
    assert_eq!(op.get(&format!("/pieces/{sensitive}/pdf")).await?.status, 403, "staff without the sensitive profile neither");
    assert_eq!(op.get(&format!("/mailings/{id}")).await?.status, 200, "staff see every counter's mailings");
    let op_csrf = op.session_csrf("/console").await?;
    let prioritised = op.post_form(&format!("/dashboard/prioritise/{id}"), &[("csrf", &op_csrf)]).await?;
    assert_eq!(prioritised.status, 403, "only a supervisor prioritises");
    let nobody = Client::new(server.port).get("/console").await?;
    assert_eq!((nobody.status, nobody.header("location")), (303, Some("/login")), "nobody signed in is sent to sign in");

    // Another counter sees nothing of it, by any URL.
    let mut b = Client::new(server.port);
    assert_eq!(b.login(B.0, B.1).await?.status, 303);
    let b_csrf = b.session_csrf("/portal").await?;
    assert!(!b.get("/portal").await?.text().contains(&id), "not in the other counter's list");
    assert_eq!(b.get(&format!("/mailings/{id}")).await?.status, 404);
    assert_eq!(b.get(&format!("/pieces/{piece}/pdf")).await?.status, 404);
    assert_eq!(b.get(&format!("/pieces/{piece}/pages/0")).await?.status, 404);
    assert_eq!(b.post_form(&format!("/notices/{notice}/resend"), &[("csrf", &b_csrf)]).await?.status, 404);
    let stolen = b.post_form("/portal/incidents", &[("csrf", &b_csrf), ("kind", "misfiled_piece"), ("mailing", &id), ("description", "x")]).await?;
    assert_eq!(stolen.status, 404, "an incident on another counter's mailing");
    assert_eq!(b.get("/console").await?.status, 403, "a counter is not an operator");

    // The lists: the deposit is titled by its file's name and found by a numéro (or its start),
    // the applicant's name (or its start), part of the file name or its day, by its counter only.
    let numero: String = sqlx::query_scalar("SELECT numero_unique FROM requests WHERE mailing_id = $1 AND numero_unique IS NOT NULL ORDER BY ordinal LIMIT 1")
        .bind(&id)
        .fetch_one(&pool)
        .await?;
    let nom: String = sqlx::query_scalar("SELECT record->>'nom' FROM registry_demandes WHERE numero_unique = $1").bind(&numero).fetch_one(&pool).await?;
    let listed = a.get("/portal").await?.text();
    assert!(listed.contains(&esc(FILE_NAME)) && listed.contains(&numero), "titled by its file and numéros: {listed}");
    let site_calendar = scanbureau_pipeline::calendar::WorkingCalendar::new(scanbureau_pipeline::calendar::Subdivision::Metropole);
    let today = site_calendar.localise(Utc::now().fixed_offset()).date_naive();
    let found = format!(r#"data-mailing="{id}""#);
    for q in [numero.clone(), numero[..9].to_lowercase(), nom.to_lowercase(), "dupont été".to_string(), format!("&jour={today}")] {
        let query = if q.starts_with('&') { format!("/portal?q={q}") } else { format!("/portal?q={}", scanbureau::web::page::url(&q)) };
        assert!(a.get(&query).await?.text().contains(&found), "{query} finds the deposit");
        assert!(op.get(&query.replace("/portal", "/console")).await?.text().contains(&found), "{query} on the console");
    }
    for q in ["ZZZZ9999", "%25", "_", "&jour=2001-01-01"] {
        let page = a.get(&format!("/portal?q={q}")).await?.text();
        assert!(!page.contains(&found) && page.contains("Aucun pli ne correspond"), "{q} finds nothing");
    }
    assert!(a.get("/portal?jour=hier").await?.text().contains(&esc("« hier » n'est pas une date")));
    assert!(!b.get(&format!("/portal?q={numero}")).await?.text().contains(&found), "nor by a search of the other counter");
    assert_eq!(b.get("/dashboard").await?.status, 403);

    // Changes without the session's token are refused; with it, they are made.
    let incident = [("kind", "notice_not_received"), ("mailing", id.as_str()), ("description", "avis jamais reçu")];
    assert_eq!(a.post_form("/portal/incidents", &incident).await?.status, 403);
    let mut wrong = vec![("csrf", "0000")];
    wrong.extend_from_slice(&incident);
    assert_eq!(a.post_form("/portal/incidents", &wrong).await?.status, 403);
    assert_eq!(a.post_form(&format!("/notices/{notice}/resend"), &[]).await?.status, 403);
    assert_eq!(sqlx::query_scalar::<_, i64>("SELECT count(*) FROM incidents").fetch_one(&pool).await?, 0);
    let mut right = vec![("csrf", csrf.as_str())];
    right.extend_from_slice(&incident);
    assert_eq!(a.post_form("/portal/incidents", &right).await?.status, 303);
    assert_eq!(sqlx::query_scalar::<_, i64>("SELECT count(*) FROM incidents WHERE guichet = $1").bind(&mine).fetch_one(&pool).await?, 1);

    // The bureau answers the incident; the counter sees the answer.
    let incident_id: i64 = sqlx::query_scalar("SELECT id FROM incidents").fetch_one(&pool).await?;
    let op_csrf = op.session_csrf("/console/incidents").await?;
    let answered = op.post_form(&format!("/console/incidents/{incident_id}"), &[("csrf", &op_csrf), ("status", "resolved"), ("answer", ANSWER)]).await?;
    assert_eq!(answered.status, 303);
    let list = a.get("/portal/incidents").await?.text();
    assert!(list.contains("résolu") && list.contains(&esc(ANSWER)), "the counter sees the answer");
    // What people type is shown as text, in a page and in a form field's value, never as markup.
    let console = op.get("/console/incidents").await?.text();
    assert!(console.contains(&format!("value=\"{}\"", esc(ANSWER))), "{console}");
    assert!(!list.contains("<b>ce matin") && !console.contains("<b>ce matin"));
    assert_eq!(
        b.post_form(&format!("/console/incidents/{incident_id}"), &[("csrf", &b_csrf), ("status", "open")]).await?.status,
        403,
        "counters do not answer incidents"
    );

    // A notice sent again on the counter's request reaches the sink a second time.
    let before = stack.smtp.messages().len();
    let resent = a.post_form(&format!("/notices/{notice}/resend"), &[("csrf", &csrf)]).await?;
    assert_eq!(resent.status, 303);
    let deadline = std::time::Instant::now() + LONG;
    while stack.smtp.messages().len() == before {
        assert!(std::time::Instant::now() < deadline, "the resent notice never arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(sqlx::query_scalar::<_, String>("SELECT status FROM notices WHERE id = $1").bind(notice).fetch_one(&pool).await?, "sent");
    // Sent again at most three times a day: a button pressed in a loop sends nothing more.
    for _ in 0..2 {
        let before = stack.smtp.messages().len();
        assert_eq!(a.post_form(&format!("/notices/{notice}/resend"), &[("csrf", &csrf)]).await?.status, 303);
        while stack.smtp.messages().len() == before {
            assert!(std::time::Instant::now() < deadline, "the resent notice never arrived");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let fourth = a.post_form(&format!("/notices/{notice}/resend"), &[("csrf", &csrf)]).await?;
    assert_eq!(fourth.status, 429, "{}", fourth.text());
    assert!(fourth.text().contains("déjà été renvoyé 3 fois"));

    // The registry fills a slip for a request of the counter's territory only, and each
    // look-up is audited.
    let numero: String = sqlx::query_scalar("SELECT numero_unique FROM requests WHERE numero_unique IS NOT NULL LIMIT 1").fetch_one(&pool).await?;
    let nom: String = sqlx::query_scalar("SELECT record->>'nom' FROM registry_demandes WHERE numero_unique = $1").bind(&numero).fetch_one(&pool).await?;
    let filled = a.get(&format!("/portal/slips?numero_unique={numero}")).await?.text();
    assert!(filled.contains(&esc(&nom)), "the applicant's name is filled in");
    let elsewhere = format!("974{}", &numero[3..]);
    let refused = a.get(&format!("/portal/slips?numero_unique={elsewhere}")).await?.text();
    assert!(refused.contains("autre territoire") && !refused.contains(&esc(&nom)), "another territory's request is not shown");
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'registry_lookup'").fetch_one(&pool).await?;
    assert_eq!(audited, 2, "both look-ups audited");

    // A printed fiche carries a QR code the bureau's own reader decodes to the same facts.
    let fiche = [
        ("csrf", csrf.as_str()),
        ("numero_unique", numero.as_str()),
        ("nom", "Lefèvre-d'Arc"),
        ("prenoms", "Marie  Anne"),
        ("date_naissance", "1980-02-14"),
        ("nb_documents", "2"),
        ("nb_pages", "4"),
        ("date_remplissage", "2026-12-02"),
    ];
    let printed = a.post_form("/portal/slips/fiche", &fiche).await?;
    assert_eq!((printed.status, printed.header("content-type")), (200, Some("application/pdf")));
    let payload = read_qr(&printed.body)?;
    assert_eq!(payload, format!("SNE-FR|1|{numero}|LEFÈVRE-D'ARC|MARIE ANNE|1980-02-14|2|4|2026-12-02"));
    let bordereau =
        a.post_form("/portal/slips/bordereau", &[("csrf", &csrf), ("nb_dossiers", "3"), ("nb_pages_total", "17"), ("date_transmission", "2026-12-02")]).await?;
    assert_eq!(bordereau.status, 200);
    let dep: String = sqlx::query_scalar("SELECT departement FROM guichets WHERE numero = $1").bind(&mine).fetch_one(&pool).await?;
    assert_eq!(read_qr(&bordereau.body)?, format!("SNE-BT|1|{mine}|{dep}|3|17|2026-12-02"));
    let mut bad = fiche.to_vec();
    bad[1] = ("numero_unique", "12345");
    let refused = a.post_form("/portal/slips/fiche", &bad).await?;
    assert_eq!(refused.status, 422);
    assert!(refused.text().contains("Numéro unique"), "the form says what is wrong");
    assert!(refused.text().contains(&esc("« 12345 » n'est pas valide")), "in French: {}", refused.text());

    // Lock-out after five failures from one client: even the right password is refused then.
    // An address nobody has gets the very same answers, so the lock tells nobody who has an
    // account.
    let mut answers = Vec::new();
    for email in [B.0, "personne@nulle-part.example"] {
        let mut guess = Client::new(server.port);
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(guess.login(email, "not the password at all").await?.status);
        }
        assert_eq!(statuses, vec![401, 401, 401, 401, 403], "{email}: the fifth failure locks the address");
        let locked = guess.login(email, if email == B.0 { B.1 } else { "not the password at all" }).await?;
        assert_eq!(locked.status, 403, "{}", locked.text());
        let text = locked.text();
        answers.push(text.split(r#"role="alert">"#).nth(1).and_then(|r| r.split("</p>").next()).unwrap_or_default().to_string());
    }
    assert!(answers[0].contains(&esc("Trop d'essais manqués pour cette adresse")), "{}", answers[0]);
    assert_eq!(answers[0], answers[1], "a locked account and an unknown address answer alike");

    // A password change needs the current one, and closes the account's other sessions.
    let mut elsewhere = Client::new(server.port);
    assert_eq!(elsewhere.login(A.0, A.1).await?.status, 303);
    let renewed = "guichet-A: un nouveau mot de passe";
    let change = |current: &'static str, new: &'static str, confirm: &'static str| [("current", current), ("new", new), ("confirm", confirm)];
    let mut mismatch = vec![("csrf", csrf.as_str())];
    mismatch.extend_from_slice(&change(A.1, renewed, "autre chose que le nouveau"));
    assert_eq!(a.post_form("/account", &mismatch).await?.status, 422);
    let mut simple = vec![("csrf", csrf.as_str())];
    simple.extend_from_slice(&change(A.1, "aaaaaaaaaaaa", "aaaaaaaaaaaa"));
    assert_eq!(a.post_form("/account", &simple).await?.status, 422, "twelve times the same letter is no password");
    let mut wrong_current = vec![("csrf", csrf.as_str())];
    wrong_current.extend_from_slice(&change("pas le mot de passe", renewed, renewed));
    assert_eq!(a.post_form("/account", &wrong_current).await?.status, 403);
    assert_eq!(a.post_form("/account", &change(A.1, renewed, renewed)).await?.status, 403, "no change without the CSRF token");
    let mut good = vec![("csrf", csrf.as_str())];
    good.extend_from_slice(&change(A.1, renewed, renewed));
    let changed = a.post_form("/account", &good).await?;
    assert_eq!(changed.status, 200, "{}", changed.text());
    assert_eq!(elsewhere.get("/portal").await?.status, 303, "the other session is closed");
    assert_eq!(a.get("/portal").await?.status, 200, "this one stays open");
    assert_eq!(Client::new(server.port).login(A.0, A.1).await?.status, 401, "the old password no longer works");
    assert_eq!(Client::new(server.port).login(A.0, renewed).await?.status, 303);

    // Signing out ends the session on the server.
    let out = a.post_form("/logout", &[("csrf", &csrf)]).await?;
    assert_eq!(out.status, 303);
    let after = a.get("/portal").await?;
    assert_eq!((after.status, after.header("location")), (303, Some("/login")));

    // No password, in the log or the database.
    let log = server.log_text();
    assert!(log.contains("signed in"), "the log is the server's");
    // One mailing's life is one thread of JSON lines: its processing names the delivery's stage
    // and attempt and the mailing; an answered page names its request; no numéro unique shows.
    let lines: Vec<serde_json::Value> = log.lines().map(serde_json::from_str).collect::<Result<_, _>>().context("every log line is JSON")?;
    let span_of = |l: &serde_json::Value, name: &str| l["spans"].as_array().and_then(|s| s.iter().find(|s| s["name"] == name).cloned());
    let done = lines.iter().find(|l| l["message"] == "mailing done").context("the mailing's end is logged")?;
    assert_eq!(span_of(done, "mailing").context("in its mailing's span")?["mailing"], id.as_str());
    let delivery = span_of(done, "delivery").context("in its delivery's span")?;
    assert_eq!((delivery["stage"].as_str(), delivery["attempt"].as_i64()), (Some("process"), Some(1)));
    assert!(lines.iter().any(|l| span_of(l, "http").is_some_and(|h| h["path"] == "/portal/deposits")), "an HTTP request's span");
    assert!(lines.iter().any(|l| span_of(l, "notice").is_some()), "a notice's span");
    let numeros: Vec<String> = sqlx::query_scalar("SELECT numero_unique FROM requests WHERE numero_unique IS NOT NULL").fetch_all(&pool).await?;
    assert!(!numeros.is_empty());
    for n in &numeros {
        assert!(!log.contains(n.as_str()), "a numéro unique is in the server's log");
    }
    let audit: Vec<String> = sqlx::query_scalar("SELECT detail::text FROM audit_events").fetch_all(&pool).await?;
    let hashes: Vec<String> = sqlx::query_scalar("SELECT password_hash FROM portal_users WHERE password_hash IS NOT NULL").fetch_all(&pool).await?;
    for pw in [A.1, B.1, SENSITIVE.1, OPERATOR.1, "not the password at all", "guichet-A: un nouveau mot de passe"] {
        assert!(!log.contains(pw), "a password is in the server's log");
        assert!(!audit.iter().any(|d| d.contains(pw)), "a password is in the audit trail");
        assert!(!hashes.iter().any(|h| h.contains(pw)));
    }

    // Fifty mailings a page, then the next ones.
    sqlx::query(
        "INSERT INTO mailings (id, channel, source, received_at, due_at, status, guichet, files, pages, outcome, started_at, done_at)
         SELECT 'm-page-' || g, 'paper', 'test', now() - g * interval '1 minute', now() + interval '2 days', 'done', $1,
                '[{\"name\": \"lot.pdf\", \"key\": \"raw/x\", \"bytes\": 1}]'::jsonb, 1, 'accepted', now(), now()
         FROM generate_series(1, 55) g",
    )
    .bind(&theirs)
    .execute(&pool)
    .await?;
    let first = b.get("/portal").await?.text();
    assert_eq!(first.matches("data-mailing=").count(), 50, "a page of fifty");
    assert!(first.contains(r#"rel="next" href="/portal?page=2""#), "a link to the next page");
    let second = b.get("/portal?page=2").await?.text();
    assert_eq!(second.matches("data-mailing=").count(), 5);
    assert!(second.contains(r#"rel="prev""#) && !second.contains(r#"rel="next""#));
    drop(server);
    drop_queues(&stack).await
}

/// The payload of the one QR code of a one-page PDF, as the processing job reads it.
fn read_qr(pdf: &[u8]) -> Result<String> {
    use scanbureau_pipeline::raster::{Limits, decode_page};
    let pages = scanbureau_pipeline::input::split_pdf("slip.pdf", pdf, &Limits::default());
    let page = pages.first().context("a page")?;
    let raster = decode_page(&page.blob, &Limits::default()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let hits = scanbureau_pipeline::qr::find_qr_codes(&raster.gray, &scanbureau_pipeline::qr::QrSearch::default());
    let hit = hits.first().context("a QR code in a corner")?;
    Ok(String::from_utf8(hit.payload.clone())?)
}

/// Records a paper mailing of one scanned file as the hot folder would, received at
/// `received_at`; its file is stored only if `stored` (a store that lost it otherwise). Not queued.
async fn record_mailing(bureau: &Bureau, id: &str, received_at: chrono::DateTime<Utc>, stored: bool, notify: Option<&str>) -> Result<()> {
    let name = "applicant-mailing.tif";
    let key = keys::raw(id, 0, name);
    let path = sample(name);
    if stored {
        bureau.blobs.put_file(&key, &path, "image/tiff").await?;
    }
    let m = NewMailing {
        id: id.to_string(),
        channel: "paper",
        source: format!("hot-folder:{id}"),
        received_at,
        due_at: bureau.due_at(received_at),
        numero_unique: None,
        notify: notify.map(str::to_string),
        portal_user: None,
        guichet: None,
        files: vec![StoredFile { name: name.into(), key, bytes: std::fs::metadata(&path)?.len() }],
    };
    store::insert_mailing(&bureau.pool, &m, "test").await?;
    Ok(())
}

async fn setup_bureau(stack: &TestStack) -> Result<(std::sync::Arc<Bureau>, watch::Sender<bool>)> {
    let (stop, shutdown) = watch::channel(false);
    Ok((Bureau::start(stack.config()?, "test-setup", shutdown).await?, stop))
}

/// A bureau an operator works in through the pages: the real server with `roles`, its
/// database, the operator's account, and a bureau of the test's own to seed the work.
struct OperatorDesk {
    stack: TestStack,
    server: Server,
    pool: PgPool,
    bureau: std::sync::Arc<Bureau>,
    _stop: watch::Sender<bool>,
}

async fn operator_desk(tag: &str, roles: &[&str]) -> Result<OperatorDesk> {
    let stack = TestStack::new(tag, true).await?;
    let server = Server::start(&stack, roles, &[])?;
    let pool = PgPool::connect(&stack.database_url).await?;
    add_account(&stack, OPERATOR.0, OPERATOR.1, "operator", None, false)?;
    let (bureau, _stop) = setup_bureau(&stack).await?;
    Ok(OperatorDesk { stack, server, pool, bureau, _stop })
}

/// Where a browser test's screenshots go: SCANBUREAU_SCREENSHOTS, else the test's own folder.
fn shots_dir(stack: &TestStack) -> Result<std::path::PathBuf> {
    let shots = std::env::var_os("SCANBUREAU_SCREENSHOTS").map(std::path::PathBuf::from).unwrap_or_else(|| stack.dir.path().join("screenshots"));
    std::fs::create_dir_all(&shots)?;
    Ok(shots)
}

/// An account's e-mail and password, as the browser scripts take them.
fn sign_in((email, password): (&str, &str)) -> String {
    format!("{email}\n{password}")
}

/// Runs a script of `tests/browser` (Node.js and playwright-core driving Debian's Chromium)
/// against the server, its screenshots into `shots`: what it printed, and whether it succeeded.
async fn run_browser(script: &str, server: &Server, shots: &std::path::Path, env: &[(&str, String)]) -> Result<(bool, String)> {
    let mut node = std::process::Command::new("node");
    node.arg(workspace_root().join("tests/browser").join(script))
        .env("BASE_URL", server.base_url())
        .env("SHOTS", shots)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(workspace_root().join("tests/browser"));
    let out =
        tokio::task::spawn_blocking(move || node.output()).await?.context("running node (scripts/setup.sh installs Node.js, Chromium and playwright-core)")?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{said}");
    Ok((out.status.success(), said))
}

/// Pieces decided at the review station in the browser test: a day's stretch of work.
const STATION_PIECES: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_decides_fifty_pieces_at_the_review_station_with_the_keyboard() -> Result<()> {
    let OperatorDesk { stack, server, pool, bureau, _stop } = operator_desk("webstation", &["portal"]).await?;
    // One mailing whose pieces all wait for an operator, each a one-page PDF with a proposal.
    let mailing = format!("m-station-{}", stack.name);
    record_mailing(&bureau, &mailing, Utc::now(), false, None).await?;
    // A scanned PDF stands for each piece (the station shows its first page).
    let key = format!("pieces/station/{mailing}.pdf");
    bureau.blobs.put_file(&key, &sample("portal-deposit.pdf"), "application/pdf").await?;
    sqlx::query(
        "INSERT INTO pieces (id, mailing_id, numero_unique, categorie, type_code, confidence, sensible, status, key, bytes, plan_version, evidence, pages)
         SELECT 'p-station-' || lpad(g::text, 3, '0'), $1, '0930325091042G3533', 'LOG', 'QUITTANCE_LOYER', 0.6, false, 'review', $2, 1000, 'test',
                $4, 1
         FROM generate_series(1, $3) g",
    )
    .bind(&mailing)
    .bind(&key)
    .bind(STATION_PIECES as i32)
    .bind(serde_json::json!([
        "segment: 1 pages, page marks [-]",
        "QUITTANCE_LOYER 6.5 (title:quittance, word:au titre du loyer); next TAXE_FONCIERE 1.0",
        "for an operator: the amounts are not read",
        "addressed to CLÉMENT INÈS FRANÇOIS"
    ]))
    .execute(&pool)
    .await?;

    let env = [("OPERATOR", sign_in(OPERATOR)), ("FIRST_PIECE", "p-station-001".into()), ("COUNT", STATION_PIECES.to_string())];
    let (ok, said) = run_browser("station.mjs", &server, &shots_dir(&stack)?, &env).await?;
    anyhow::ensure!(ok, "the review station run failed:\n{said}");
    assert!(said.contains("decisions per minute"), "the pace is printed");

    let decided: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT status, decided_by FROM pieces WHERE mailing_id = $1").bind(&mailing).fetch_all(&pool).await?;
    assert_eq!(decided.len(), STATION_PIECES);
    let actor = format!("operator:{}", OPERATOR.0);
    assert!(
        decided.iter().all(|(status, by)| status == "uploaded" && by.as_deref() == Some(actor.as_str())),
        "every piece accepted by the operator: {decided:?}"
    );
    drop(server);
    drop_queues(&stack).await
}

/// The request the originals' tests file pieces for.
const ORIGINAL_NUMERO: &str = "0930325091042G3533";

/// A paper mailing received forty days ago (its original should have left already) whose one
/// piece, of `kind` with `evidence`, waits in review as a suspected original, its PDF stored.
/// Returns the mailing, the piece and its object's key.
async fn suspected_original(
    bureau: &Bureau,
    pool: &PgPool,
    tag: &str,
    (categorie, type_code): (&str, &str),
    evidence: &[&str],
    notify: Option<&str>,
) -> Result<(String, String, String)> {
    let mailing = format!("m-{tag}");
    record_mailing(bureau, &mailing, Utc::now() - chrono::Duration::days(40), false, notify).await?;
    let piece = format!("p-{tag}");
    let key = format!("pieces/{ORIGINAL_NUMERO}/{piece}.pdf");
    bureau.blobs.put_file(&key, &sample("portal-deposit.pdf"), "application/pdf").await?;
    sqlx::query(
        "INSERT INTO pieces (id, mailing_id, numero_unique, categorie, type_code, confidence, sensible, status, key, bytes, plan_version, evidence, pages)
         VALUES ($1, $2, $3, $4, $5, 0.97, false, 'review', $6, 1000, 'test', $7, 1)",
    )
    .bind(&piece)
    .bind(&mailing)
    .bind(ORIGINAL_NUMERO)
    .bind(categorie)
    .bind(type_code)
    .bind(&key)
    .bind(serde_json::json!(evidence))
    .execute(pool)
    .await?;
    Ok((mailing, piece, key))
}

/// An original sent by mistake, from the job's suspicion to its posting back: the operator
/// confirms it at the station (its PDF is stamped "COPIE" and filed, the paper entered in the
/// register with its place and the day it must leave, the applicant told), then records the
/// posting to the GIP SNE and prints its return slip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_files_an_original_as_a_stamped_copy_and_posts_the_paper_back() -> Result<()> {
    let OperatorDesk { stack, server, pool, bureau, _stop } = operator_desk("weboriginal", &["portal"]).await?;
    let numero = ORIGINAL_NUMERO;
    let (mailing, piece, key) = suspected_original(
        &bureau,
        &pool,
        &format!("original-{}", stack.name),
        ("IDD", "CNI"),
        &[
            "segment: 1 pages, page marks [-]",
            "CNI 9.5 (title:carte nationale d identite, layout:card); next TITRE_SEJOUR 1.0",
            "original ? the page was scanned at a card's size (86 × 54 mm), not copied on a sheet",
        ],
        Some("referent@bailleur-093.example"),
    )
    .await?;
    let piece = piece.as_str();

    let mut op = Client::new(server.port);
    assert_eq!(op.login(OPERATOR.0, OPERATOR.1).await?.status, 303);
    let station = op.get(&format!("/console/review/{piece}")).await?.text();
    let shots = std::env::var_os("SCANBUREAU_SCREENSHOTS").map(std::path::PathBuf::from);
    if let Some(shots) = &shots {
        std::fs::write(shots.join("station-original.html"), &station)?;
    }
    assert!(station.contains("Original possible") && station.contains("une carte (86 × 54 mm), et non photocopiée"), "{station}");
    assert!(station.contains("Original : classer une copie tamponnée"));
    let csrf = station.split(r#"name="csrf" value=""#).nth(1).and_then(|r| r.split('"').next()).context("csrf")?.to_string();
    let action = format!("/console/review/{piece}");
    let nowhere = op.post_form(&action, &[("csrf", &csrf), ("action", "original"), ("original_type", "IDD/CNI"), ("emplacement", " ")]).await?;
    assert_eq!(nowhere.status, 422, "the paper's place is asked for");
    assert!(nowhere.text().contains("original est rangé (bac ou boîte)"), "{}", nowhere.text());
    let filed = op.post_form(&action, &[("csrf", &csrf), ("action", "original"), ("original_type", "IDD/CNI"), ("emplacement", "bac B3")]).await?;
    assert_eq!(filed.status, 303, "{}", filed.text());

    // Filed as the bureau's stamped copy; the unstamped object is gone.
    let (status, original, copy_key): (String, bool, Option<String>) =
        sqlx::query_as("SELECT status, original, key FROM pieces WHERE id = $1").bind(piece).fetch_one(&pool).await?;
    assert_eq!((status.as_str(), original), ("uploaded", true));
    let copy_key = copy_key.context("the copy's object")?;
    assert_ne!(copy_key, key);
    assert!(!bureau.blobs.exists(&key).await?, "the unstamped PDF is deleted");
    let copy_pdf = bureau.blobs.get_bytes(&copy_key).await?;
    if let Some(shots) = &shots {
        std::fs::write(shots.join("original-copie.pdf"), &copy_pdf)?;
    }
    let copy = lopdf::Document::load_mem(&copy_pdf)?;
    let pages: Vec<u32> = copy.get_pages().keys().copied().collect();
    assert!(copy.extract_text(&pages)?.contains("COPIE"), "stamped");
    // The register: where the paper is, and the day it must leave (a month after reception).
    let (location, state, late): (String, String, bool) = sqlx::query_as(
        "SELECT o.location, o.state, o.due_at = m.received_at + interval '1 month' AND o.due_at < now()
         FROM originals o JOIN mailings m ON m.id = o.mailing_id WHERE o.piece_id = $1",
    )
    .bind(piece)
    .fetch_one(&pool)
    .await?;
    assert_eq!((location.as_str(), state.as_str(), late), ("bac B3", "kept", true));
    // The applicant's notice says the original comes back.
    let notices: Vec<Vec<u8>> = sqlx::query_scalar("SELECT message FROM notices WHERE mailing_id = $1").bind(&mailing).fetch_all(&pool).await?;
    let told = notices
        .iter()
        .filter_map(|m| mail_parser::MessageParser::default().parse(m))
        .any(|m| m.body_text(0).is_some_and(|t| t.contains("Un document original nous a été transmis par erreur ; il vous sera restitué par le GIP SNE.")));
    assert!(told, "the follow-up notice tells of the original");

    let register = op.get("/console/originaux").await?.text();
    if let Some(shots) = &shots {
        std::fs::write(shots.join("originals-register.html"), &register)?;
    }
    let dashboard = op.get("/dashboard").await?.text();
    let tile = dashboard.split(r#"id="originals-due""#).nth(1).and_then(|t| t.split("</div>").next()).context("a tile of originals due")?;
    assert!(tile.contains(">1<") && tile.contains("/console/originaux"), "{tile}");
    let kept = register.split("Gardés au bureau").nth(1).and_then(|r| r.split("Renvoyés au GIP SNE").next()).context("the kept originals")?;
    assert!(kept.contains(numero) && kept.contains("bac B3") && kept.contains("dépassé"), "{kept}");
    let tracking = "8R0123456789";
    let field = format!("piece-{piece}");
    let posted = op.post_form("/console/originaux", &[("csrf", &csrf), (&field, "on"), ("envoi", "2026-12-05"), ("suivi", tracking)]).await?;
    assert_eq!(posted.status, 303, "{}", posted.text());
    let again = op.post_form("/console/originaux", &[("csrf", &csrf), (&field, "on"), ("envoi", "2026-12-05"), ("suivi", tracking)]).await?;
    assert_eq!(again.status, 409, "posted once");
    let returned = op.get("/console/originaux").await?.text();
    if let Some(shots) = &shots {
        std::fs::write(shots.join("originals-returned.html"), &returned)?;
    }
    assert!(returned.split("Renvoyés au GIP SNE").nth(1).is_some_and(|r| r.contains(tracking) && r.contains("05/12/2026")));
    assert!(!op.get("/dashboard").await?.text().contains("originals-due"), "nothing left to post");
    let slip = op.get(&format!("/console/originaux/bordereau?suivi={tracking}")).await?;
    assert_eq!((slip.status, slip.header("content-type")), (200, Some("application/pdf")));
    if let Some(shots) = &shots {
        std::fs::write(shots.join("return-slip.pdf"), &slip.body)?;
    }
    let text = lopdf::Document::load_mem(&slip.body)?.extract_text(&[1])?;
    assert!(text.contains(numero) && text.contains("bac B3") && text.contains(tracking), "{text}");
    assert_eq!(op.get("/console/originaux/bordereau?suivi=NOPE").await?.status, 404);
    for action in ["review_original", "original_returned"] {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = $1 AND actor = $2")
            .bind(action)
            .bind(format!("operator:{}", OPERATOR.0))
            .fetch_one(&pool)
            .await?;
        assert_eq!(n, 1, "{action} audited under the operator's name");
    }
    drop(server);
    bureau.blobs.delete(&copy_key).await?;
    drop_queues(&stack).await
}

/// The same in Chromium: the suspicion seen at the station, the original filed with the keyboard
/// ("g", its place, Enter), then posted back from the register and its return slip opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_files_an_original_and_posts_it_back_in_chromium() -> Result<()> {
    let OperatorDesk { stack, server, pool, bureau, _stop } = operator_desk("weborigbrowser", &["portal"]).await?;
    let (_, piece, _) = suspected_original(
        &bureau,
        &pool,
        &format!("origbrowser-{}", stack.name),
        ("IDP", "ACTE_NAISSANCE"),
        &[
            "ACTE_NAISSANCE 11.5 (title:acte de naissance); next ACTE_DECES 3.0",
            "original ? a stamp or signature in blue or violet ink (0.4 % of the page), which a black-and-white copy does not have",
        ],
        None,
    )
    .await?;
    let piece = piece.as_str();
    let (ok, said) = run_browser("originals.mjs", &server, &shots_dir(&stack)?, &[("OPERATOR", sign_in(OPERATOR)), ("PIECE", piece.into())]).await?;
    anyhow::ensure!(ok, "the originals run failed:\n{said}");
    let (original, location, state, tracking): (bool, String, String, Option<String>) =
        sqlx::query_as("SELECT p.original, o.location, o.state, o.tracking FROM pieces p JOIN originals o ON o.piece_id = p.id WHERE p.id = $1")
            .bind(piece)
            .fetch_one(&pool)
            .await?;
    assert_eq!((original, location.as_str(), state.as_str(), tracking.as_deref()), (true, "bac B3", "returned", Some("8R0123456789")));
    let copy_key: String = sqlx::query_scalar("SELECT key FROM pieces WHERE id = $1").bind(piece).fetch_one(&pool).await?;
    drop(server);
    bureau.blobs.delete(&copy_key).await?;
    drop_queues(&stack).await
}

/// An original an operator marked with the separator sheet comes out of the job as such
/// (`original: true` in the report): recording the mailing enters it in the register, once
/// however often the mailing is recorded, audited, and the register lists it in its batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_original_marked_in_a_batch_enters_the_register_once() -> Result<()> {
    let OperatorDesk { stack, server, pool, bureau, _stop } = operator_desk("webmarked", &["portal"]).await?;
    let mailing = format!("m-marked-{}", stack.name);
    record_mailing(&bureau, &mailing, Utc::now(), false, None).await?;
    let report: scanbureau_pipeline::report::Report = serde_json::from_value(serde_json::json!({
        "batch": {"id": mailing, "channel": "paper", "sender": {"kind": "guichet", "id": "G3533"}, "received_at": "2026-12-05T09:00:00+01:00",
                  "due_at": "2026-12-08T23:59:59+01:00", "pages": 2, "status": "accepted", "anomalies": [], "plan_version": "test",
                  "duplex": [false], "counts": {"slip": 1, "piece": 1, "blank": 0, "rejected": 0, "pieces_uploaded": 1, "pieces_review": 0, "pieces_rejected": 0}},
        "slips": [],
        "requests": [{"numero_unique": "0930325091042G3533", "slip_page": null, "status": "accepted", "reason": null, "notice": null,
                      "pieces": [{"id": "p-marked-1", "pages": [1], "categorie": "IDP", "type": "LIVRET_FAMILLE", "confidence": 0.95, "sensible": false,
                                  "status": "uploaded", "reason": null, "file": null, "bytes": null, "plan_version": "test",
                                  "evidence": ["original: marked by the operator's separator sheet before page 1; filed as the bureau's copy stamped COPIE"],
                                  "original": true}]}],
        "pages": [{"index": 0, "source": "scan-0001.jpg", "role": "slip", "piece": null, "reason": null},
                  {"index": 1, "source": "scan-0002.jpg", "role": "piece", "piece": "p-marked-1", "reason": null}]
    }))?;
    for _ in 0..2 {
        store::record_done(&bureau.pool, &mailing, &report, &[], &[], 30, "worker:test").await?;
    }
    let (original, location, state): (bool, String, String) =
        sqlx::query_as("SELECT p.original, o.location, o.state FROM pieces p JOIN originals o ON o.piece_id = p.id WHERE p.id = 'p-marked-1'")
            .fetch_one(&pool)
            .await?;
    assert_eq!((original, location.as_str(), state.as_str()), (true, store::ORIGINAL_IN_BATCH, "kept"));
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'original_registered' AND subject = $1").bind(&mailing).fetch_one(&pool).await?;
    assert_eq!(audited, 1, "registered once");
    let mut op = Client::new(server.port);
    assert_eq!(op.login(OPERATOR.0, OPERATOR.1).await?.status, 303);
    let register = op.get("/console/originaux").await?.text();
    assert!(register.contains("0930325091042G3533") && register.contains(store::ORIGINAL_IN_BATCH), "{register}");
    // Put away: the register says where, and who moved it.
    let csrf = register.split(r#"name="csrf" value=""#).nth(1).and_then(|r| r.split('"').next()).context("csrf")?.to_string();
    let moved = op.post_form("/console/originaux/p-marked-1/emplacement", &[("csrf", &csrf), ("emplacement", "boîte 12")]).await?;
    assert_eq!(moved.status, 303, "{}", moved.text());
    let location: String = sqlx::query_scalar("SELECT location FROM originals WHERE piece_id = 'p-marked-1'").fetch_one(&pool).await?;
    assert_eq!(location, "boîte 12");
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'original_moved' AND detail->>'from' = $1 AND detail->>'to' = 'boîte 12'")
            .bind(store::ORIGINAL_IN_BATCH)
            .fetch_one(&pool)
            .await?;
    assert_eq!(audited, 1);
    let empty = op.post_form("/console/originaux/p-marked-1/emplacement", &[("csrf", &csrf), ("emplacement", "")]).await?;
    assert_eq!(empty.status, 422);
    let unknown = op.post_form("/console/originaux/p-nobody/emplacement", &[("csrf", &csrf), ("emplacement", "bac 1")]).await?;
    assert_eq!(unknown.status, 409);
    let sheet = op.get("/console/originaux/intercalaire.pdf").await?;
    assert_eq!((sheet.status, sheet.header("content-type")), (200, Some("application/pdf")));
    if let Some(shots) = std::env::var_os("SCANBUREAU_SCREENSHOTS") {
        std::fs::write(std::path::Path::new(&shots).join("intercalaire-original.pdf"), &sheet.body)?;
    }
    drop(server);
    drop_queues(&stack).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_retries_one_given_up_mailing_and_refuses_another_with_a_notice() -> Result<()> {
    let OperatorDesk { stack, server, pool, bureau, _stop } = operator_desk("webfail", &["portal", "process", "notify"]).await?;
    // Two mailings whose files never reached the store: processing gives up on both.
    let (first, second) = (format!("m-lost-a-{}", stack.name), format!("m-lost-b-{}", stack.name));
    for id in [&first, &second] {
        record_mailing(&bureau, id, Utc::now(), false, Some("referent@bailleur-093.example")).await?;
        bureau.broker.publish(scanbureau::broker::Stage::Process, &scanbureau::bureau::job_message(id)).await?;
    }
    wait_until(&pool, "SELECT count(*) = 2 FROM mailings WHERE status = 'failed'", "both mailings given up", LONG).await?;
    wait_until(&pool, "SELECT count(*) = 2 FROM dead_letters", "both dead-lettered", LONG).await?;

    let mut op = Client::new(server.port);
    assert_eq!(op.login(OPERATOR.0, OPERATOR.1).await?.status, 303);
    let page = op.get("/console/failed").await?.text();
    assert!(page.contains(&first) && page.contains(&second), "the console lists both");
    let csrf = page.split(r#"name="csrf" value=""#).nth(1).and_then(|r| r.split('"').next()).context("csrf")?.to_string();

    // The first one's file turns up: retried, it is processed.
    let name = "applicant-mailing.tif";
    bureau.blobs.put_file(&keys::raw(&first, 0, name), &sample(name), "image/tiff").await?;
    let dead: i64 = sqlx::query_scalar("SELECT id FROM dead_letters WHERE subject = $1").bind(&first).fetch_one(&pool).await?;
    assert_eq!(op.post_form(&format!("/console/dead/{dead}/retry"), &[("csrf", &csrf)]).await?.status, 303);
    wait_until(&pool, &format!("SELECT status = 'done' FROM mailings WHERE id = '{first}'"), "the retried mailing done", LONG).await?;
    assert_eq!(op.post_form(&format!("/console/dead/{dead}/retry"), &[("csrf", &csrf)]).await?.status, 409, "retried once");

    // The second one is refused: done as rejected, and its sender told.
    let refused = op.post_form(&format!("/console/mailings/{second}/reject"), &[("csrf", &csrf), ("reason", "FICHIER_CORROMPU")]).await?;
    assert_eq!(refused.status, 303, "{}", refused.text());
    let outcome: (String, Option<String>) = sqlx::query_as("SELECT status, outcome FROM mailings WHERE id = $1").bind(&second).fetch_one(&pool).await?;
    assert_eq!(outcome, ("done".to_string(), Some("rejected".to_string())));
    let resolution: Option<String> = sqlx::query_scalar("SELECT resolution FROM dead_letters WHERE subject = $1").bind(&second).fetch_one(&pool).await?;
    assert_eq!(resolution.as_deref(), Some("rejected"), "its dead letter is dealt with");
    wait_until(&pool, &format!("SELECT count(*) = 1 FROM notices WHERE mailing_id = '{second}' AND status = 'sent'"), "the refusal notice sent", LONG).await?;
    let told = stack
        .smtp
        .messages()
        .iter()
        .filter_map(|m| mail_parser::MessageParser::default().parse(m).map(|p| p.body_text(0).map(|t| t.to_string()).unwrap_or_default()))
        .any(|t| t.contains("corrompu") || t.contains("endommag"));
    assert!(told, "the refusal notice gives the reason");
    assert_eq!(
        op.post_form(&format!("/console/mailings/{second}/reject"), &[("csrf", &csrf), ("reason", "FICHIER_CORROMPU")]).await?.status,
        409,
        "refused once"
    );
    for action in ["dead_letter_retried", "rejected_by_operator"] {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = $1 AND actor = $2")
            .bind(action)
            .bind(format!("operator:{}", OPERATOR.0))
            .fetch_one(&pool)
            .await?;
        assert_eq!(n, 1, "{action} audited under the operator's name");
    }
    drop(server);
    drop_queues(&stack).await
}

/// An e-mail refused as forged is still a mailing of the record; its page tells an operator why
/// in French, with the checks it rests on, and says nothing of it for a paper mailing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailing_s_page_says_how_its_e_mail_s_origin_was_checked() -> Result<()> {
    use scanbureau::mail_auth::{AuthFacts, Authenticity, DomainPolicy, Outcome, judge};
    let OperatorDesk { stack, server, pool, bureau, _stop } = operator_desk("weborigin", &["portal"]).await?;
    let (mailed, paper) = (format!("m-mail-{}", stack.name), format!("m-paper-{}", stack.name));
    record_mailing(&bureau, &paper, Utc::now(), true, None).await?;
    let message = sample("mail-deposit.eml");
    let key = keys::raw(&mailed, 0, "message.eml");
    bureau.blobs.put_file(&key, &message, "message/rfc822").await?;
    let m = NewMailing {
        id: mailed.clone(),
        channel: "mail",
        source: "maildir:forged@bureau".into(),
        received_at: Utc::now(),
        due_at: bureau.due_at(Utc::now()),
        numero_unique: None,
        notify: None,
        portal_user: None,
        guichet: None,
        files: vec![StoredFile { name: "message.eml".into(), key, bytes: std::fs::metadata(&message)?.len() }],
    };
    store::insert_mailing(&pool, &m, "test").await?;
    let facts = AuthFacts {
        from_domain: "bailleur-974.example".into(),
        dmarc: Outcome::Fail,
        policy: DomainPolicy::Reject,
        dkim: vec![("bailleur-974.example".into(), Outcome::Fail)],
        spf: Outcome::Fail,
        spf_domain: "bailleur-974.example".into(),
        client: Some("198.51.100.9".parse()?),
        trusted_relay: false,
    };
    let Authenticity::Forged(proof) = judge(&facts) else { bail!("these checks prove a forgery") };
    store::record_mail_authentication(&pool, &mailed, serde_json::to_value(&facts)?, &format!("forged: {proof}"), "test").await?;
    // As the intake leaves a forged message: done, refused, nobody told.
    sqlx::query("UPDATE mailings SET status = 'done', outcome = 'rejected', done_at = now() WHERE id = $1").bind(&mailed).execute(&pool).await?;

    let mut op = Client::new(server.port);
    assert_eq!(op.login(OPERATOR.0, OPERATOR.1).await?.status, 303);
    let page = op.get(&format!("/mailings/{mailed}")).await?.text();
    assert!(page.contains("Origine du courriel"), "{page}");
    assert!(page.contains(&esc("falsifiée : aucune signature DKIM de bailleur-974.example")) && page.contains("198.51.100.9"), "{page}");
    assert!(page.contains(&esc("SPF (bailleur-974.example) : échec")), "the checks are shown: {page}");
    assert!(!page.contains("pas encore comptées"), "a refused message's pages are not awaited: {page}");
    let page = op.get(&format!("/mailings/{paper}")).await?.text();
    assert!(page.contains("Canal") && !page.contains("Origine du courriel"), "a paper mailing has no e-mail origin");

    let shots = shots_dir(&stack)?;
    let (ok, said) = run_browser("mailing.mjs", &server, &shots, &[("OPERATOR", sign_in(OPERATOR)), ("MAILING", mailed.clone())]).await?;
    assert!(ok, "the browser shows the origin: {said}");
    drop(server);
    drop_queues(&stack).await
}

/// An alert the SMTP server did not take yet waits on it like a notice; one given up is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_alerts_waiting_on_the_smtp_server_and_those_given_up() -> Result<()> {
    let stack = TestStack::new("webalerts", false).await?;
    let server = Server::start(&stack, &["portal"], &[])?;
    let pool = PgPool::connect(&stack.database_url).await?;
    add_account(&stack, SUPERVISOR.0, SUPERVISOR.1, "supervisor", None, false)?;
    let mut sup = Client::new(server.port);
    assert_eq!(sup.login(SUPERVISOR.0, SUPERVISOR.1).await?.status, 303);
    let page = sup.get("/dashboard").await?.text();
    assert!(!page.contains("alertes non envoyées") && !page.contains(r#"id="waiting""#), "nothing to say yet");
    // As the sweeper leaves them: one tried while the server was down, one given up after a day.
    for (status, error) in [("pending", "SMTP: Connection refused (os error 111)"), ("failed", "SMTP: Connection refused (os error 111)")] {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO alerts (kind, recipients, sender, message, status, attempts, last_error) VALUES ('mailings', $1, 'bureau@example.fr', 'x', $2, 3, $3) RETURNING id",
        )
        .bind(vec![SUPERVISOR.0.to_string()])
        .bind(status)
        .bind(error)
        .fetch_one(&pool)
        .await?;
        sqlx::query("INSERT INTO audit_events (actor, subject, action, detail) VALUES ('worker:sweeper', $1, 'alert_attempt_failed', '{}')")
            .bind(format!("alert:{id}"))
            .execute(&pool)
            .await?;
    }
    let page = sup.get("/dashboard").await?.text();
    if let Some(shots) = std::env::var_os("SCANBUREAU_SCREENSHOTS") {
        std::fs::write(std::path::Path::new(&shots).join("dashboard-alerts.html"), &page)?;
    }
    let section = page.split(r#"id="waiting""#).nth(1).and_then(|s| s.split("</section>").next()).context("the dashboard has a section of what waits")?;
    assert!(section.contains(r#"data-server="smtp" data-kind="alert""#) && section.contains("1 alerte"), "{section}");
    let tile = page.split(r#"id="alerts-failed""#).nth(1).and_then(|s| s.split("</div>").next()).context("a tile of alerts given up")?;
    assert!(tile.contains(">1<") && tile.contains("alertes non envoyées"), "{tile}");
    drop(server);
    drop_queues(&stack).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_an_operator_and_a_supervisor_do_their_work_in_chromium() -> Result<()> {
    let mut stack = TestStack::new("browser", true).await?;
    // Operators check every piece here (a new site's first weeks), so the review queue has work.
    let site = stack.dir.path().join("site.toml");
    let text = scanbureau_pipeline::config::DEFAULT_SITE.replace("review_threshold = 0.80", "review_threshold = 1.0");
    assert!(text.contains("review_threshold = 1.0"), "the embedded site configuration names its threshold");
    std::fs::write(&site, text)?;
    stack.set("SCANBUREAU__JOB__SITE", &site.display().to_string());
    // No sweeper: the forgotten mailing waits until a supervisor prioritises it.
    let server = Server::start(&stack, &["portal", "process", "notify"], &[])?;
    let pool = PgPool::connect(&stack.database_url).await?;
    add_account(&stack, A.0, A.1, "counter", Some("G3533"), false)?;
    add_account(&stack, OPERATOR.0, OPERATOR.1, "operator", None, false)?;
    add_account(&stack, SUPERVISOR.0, SUPERVISOR.1, "supervisor", None, false)?;
    // A mailing received a week ago and never queued (lost in an outage): late, waiting.
    let (bureau, _stop) = setup_bureau(&stack).await?;
    let late = format!("m-forgotten-{}", stack.name);
    record_mailing(&bureau, &late, Utc::now() - chrono::Duration::days(7), true, None).await?;

    // Screenshots of each person's page: kept where SCANBUREAU_SCREENSHOTS says, else dropped.
    let env = [
        ("COUNTER", sign_in(A)),
        ("OPERATOR", sign_in(OPERATOR)),
        ("SUPERVISOR", sign_in(SUPERVISOR)),
        ("DEPOSIT_PDF", sample("portal-deposit.pdf").display().to_string()),
        ("LATE_MAILING", late.clone()),
        ("BATCH_FOLDER", sample("counter-mailing").display().to_string()),
    ];
    let (ok, said) = run_browser("journey.mjs", &server, &shots_dir(&stack)?, &env).await?;
    if !ok {
        let log = server.log_text();
        bail!("the browser journey failed:\n{said}\nserver log (end):\n{}", &log[log.len().saturating_sub(3000)..]);
    }

    // What the clicks did, as the database records it.
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM incidents WHERE kind = 'notice_not_received' AND guichet = 'G3533'").fetch_one(&pool).await?,
        1
    );
    let batch: (String, Option<String>, serde_json::Value) =
        sqlx::query_as("SELECT status, guichet, files FROM mailings WHERE source = $1").bind(format!("console:{}", OPERATOR.0)).fetch_one(&pool).await?;
    assert_eq!(batch.0, "done");
    assert!(batch.1.is_some(), "the batch is its counter's once the bordereau is read");
    let sent = std::fs::read_dir(sample("counter-mailing"))?.count();
    assert_eq!(batch.2.as_array().map(Vec::len), Some(sent), "every file of the folder is in the one batch");
    let decided: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action LIKE 'review_%' AND actor = $1")
        .bind(format!("operator:{}", OPERATOR.0))
        .fetch_one(&pool)
        .await?;
    assert_eq!(decided, 1, "one review decision, audited under the operator's name");
    assert!(sqlx::query_scalar::<_, bool>("SELECT priority > 0 FROM mailings WHERE id = $1").bind(&late).fetch_one(&pool).await?);
    wait_until(&pool, &format!("SELECT status = 'done' FROM mailings WHERE id = '{late}'"), "the prioritised mailing processed", LONG).await?;

    // Two requests with two pieces or more in review: the first to be decided in full, the
    // second to have two of its pieces joined then cut again.
    let requests: Vec<(String, String)> = sqlx::query_as(
        "SELECT mailing_id, numero_unique FROM pieces WHERE status = 'review' AND numero_unique IS NOT NULL
         GROUP BY 1, 2 HAVING count(*) >= 2 ORDER BY 1, 2 LIMIT 2",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(requests.len(), 2, "two requests with pieces in review: {requests:?}");
    let (mailing, numero) = requests[0].clone();
    let waiting: Vec<String> = sqlx::query_scalar("SELECT id FROM pieces WHERE mailing_id = $1 AND numero_unique = $2 AND status = 'review' ORDER BY id")
        .bind(&mailing)
        .bind(&numero)
        .fetch_all(&pool)
        .await?;
    let mut op = Client::new(server.port);
    assert_eq!(op.login(OPERATOR.0, OPERATOR.1).await?.status, 303);
    let csrf = op.session_csrf("/console/review").await?;

    // Two pieces of the second request: joined into one, then cut again after its first page.
    let two: Vec<(String, Option<String>, i32)> =
        sqlx::query_as("SELECT id, key, pages FROM pieces WHERE status = 'review' AND mailing_id = $1 AND numero_unique = $2 ORDER BY id LIMIT 2")
            .bind(&requests[1].0)
            .bind(&requests[1].1)
            .fetch_all(&pool)
            .await?;
    assert_eq!(two.len(), 2, "another request with two pieces in review");
    let total = two[0].2 + two[1].2;
    let joined = op.post_form(&format!("/console/review/{}", two[0].0), &[("csrf", &csrf), ("action", "join"), ("with", &two[1].0)]).await?;
    assert_eq!(joined.status, 303, "{}", joined.text());
    let (joined_id, joined_pages): (String, i32) =
        sqlx::query_as("SELECT id, pages FROM pieces WHERE id LIKE $1 || '+%'").bind(&two[0].0).fetch_one(&pool).await?;
    assert_eq!(joined_pages, total);
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pages WHERE piece_id = $1").bind(&joined_id).fetch_one(&pool).await?,
        total as i64,
        "every page now belongs to the joined piece"
    );
    for (_, key, _) in &two {
        assert!(!bureau.blobs.exists(key.as_deref().context("key")?).await?, "the joined pieces' objects are gone");
    }
    let cut = op.post_form(&format!("/console/review/{joined_id}"), &[("csrf", &csrf), ("action", "split"), ("after", "1")]).await?;
    assert_eq!(cut.status, 303, "{}", cut.text());
    let parts: Vec<(String, i32, String)> =
        sqlx::query_as("SELECT id, pages, key FROM pieces WHERE id IN ($1 || '-1', $1 || '-2') AND status = 'review' ORDER BY id")
            .bind(&joined_id)
            .fetch_all(&pool)
            .await?;
    assert_eq!(parts.iter().map(|p| p.1).collect::<Vec<_>>(), [1, total - 1]);
    for (id, pages, _) in &parts {
        let attributed: i64 = sqlx::query_scalar("SELECT count(*) FROM pages WHERE piece_id = $1").bind(id).fetch_one(&pool).await?;
        assert_eq!(attributed, *pages as i64, "{id}'s pages are attributed to it");
    }
    for (id, _, key) in &parts {
        assert!(bureau.blobs.exists(key).await?);
        let preview = op.get(&format!("/pieces/{id}/pages/0")).await?;
        assert_eq!((preview.status, preview.header("content-type")), (200, Some("image/png")), "each part renders");
    }
    // The parts of a cut are not what was classified: no type is proposed for them, they cannot
    // be accepted as they are, only classified.
    let proposed: Vec<Option<String>> =
        sqlx::query_scalar("SELECT type_code FROM pieces WHERE id IN ($1 || '-1', $1 || '-2')").bind(&joined_id).fetch_all(&pool).await?;
    assert_eq!(proposed, vec![None, None], "no type carried over to the parts");
    let blind = op.post_form(&format!("/console/review/{}", parts[0].0), &[("csrf", &csrf), ("action", "accept")]).await?;
    assert_eq!(blind.status, 422, "{}", blind.text());
    let classified =
        op.post_form(&format!("/console/review/{}", parts[0].0), &[("csrf", &csrf), ("action", "reclassify"), ("type", "RMS/ATTESTATION_CAF")]).await?;
    assert_eq!(classified.status, 303, "{}", classified.text());
    for action in ["review_joined", "review_split"] {
        assert_eq!(
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_events WHERE action = $1").bind(action).fetch_one(&pool).await?,
            1,
            "{action} audited"
        );
    }

    for (i, piece) in waiting.iter().enumerate() {
        let action = if i == 0 { "illegible" } else { "accept" };
        let r = op.post_form(&format!("/console/review/{piece}"), &[("csrf", &csrf), ("action", action)]).await?;
        assert_eq!(r.status, 303, "{}", r.text());
    }
    let again =
        op.post_form(&format!("/console/review/{}", waiting.first().context("pieces left to decide")?), &[("csrf", &csrf), ("action", "accept")]).await?;
    assert_eq!(again.status, 409, "a piece is decided once");
    let name = format!("verification-{numero}.eml");
    wait_until(&pool, &format!("SELECT count(*) = 1 FROM notices WHERE name = '{name}' AND status = 'sent'"), "the follow-up notice sent", LONG).await?;
    let message: Vec<u8> = sqlx::query_scalar("SELECT message FROM notices WHERE name = $1").bind(&name).fetch_one(&pool).await?;
    let parsed = mail_parser::MessageParser::default().parse(&message).context("the follow-up is an e-mail")?;
    let subject = parsed.subject().unwrap_or_default();
    let refused: i64 = sqlx::query_scalar("SELECT count(*) FROM pieces WHERE mailing_id = $1 AND numero_unique = $2 AND status = 'rejected'")
        .bind(&mailing)
        .bind(&numero)
        .fetch_one(&pool)
        .await?;
    assert!(refused >= 1, "the piece refused as illegible counts");
    assert!(
        subject.contains("0 en vérification") && subject.contains(&format!("{refused} refusée")),
        "the follow-up says what became of each piece: {subject}"
    );
    let illegible: String = sqlx::query_scalar("SELECT status || '/' || reason FROM pieces WHERE id = $1").bind(&waiting[0]).fetch_one(&pool).await?;
    assert_eq!(illegible, "rejected/PIECE_ILLISIBLE");
    drop(server);
    drop_queues(&stack).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_says_what_waits_on_a_server_that_is_down() -> Result<()> {
    // The SMTP sink is not started: the mailing's notices wait for it.
    let mut stack = TestStack::new("webwait", false).await?;
    let server = Server::start(&stack, &["portal", "process", "notify"], &[])?;
    let pool = PgPool::connect(&stack.database_url).await?;
    add_account(&stack, SUPERVISOR.0, SUPERVISOR.1, "supervisor", None, false)?;
    let (bureau, _stop) = setup_bureau(&stack).await?;
    let id = format!("m-waiting-{}", stack.name);
    record_mailing(&bureau, &id, Utc::now(), true, Some("referent@bailleur-093.example")).await?;
    bureau.broker.publish(scanbureau::broker::Stage::Process, &scanbureau::bureau::job_message(&id)).await?;
    wait_until(&pool, "SELECT count(*) > 0 FROM notices WHERE status = 'pending' AND last_error IS NOT NULL", "a notice failed on the SMTP server", LONG)
        .await?;

    let mut sup = Client::new(server.port);
    assert_eq!(sup.login(SUPERVISOR.0, SUPERVISOR.1).await?.status, 303);
    let page = sup.get("/dashboard").await?.text();
    if let Some(shots) = std::env::var_os("SCANBUREAU_SCREENSHOTS") {
        std::fs::write(std::path::Path::new(&shots).join("dashboard-waiting.html"), &page)?;
    }
    let section = page.split(r#"id="waiting""#).nth(1).and_then(|s| s.split("</section>").next()).context("the dashboard has a section of what waits")?;
    assert!(section.contains(r#"data-server="smtp" data-kind="notice""#), "{section}");
    assert!(section.contains("Serveur de messagerie (SMTP)") && (section.contains("il y a") || section.contains("à l'instant")), "{section}");
    assert!(!section.contains(r#"data-kind="mailing""#), "the mailing itself is done: {section}");

    stack.smtp.start()?;
    wait_until(&pool, "SELECT bool_and(status = 'sent') FROM notices", "the notices sent once the server is back", LONG).await?;
    let page = sup.get("/dashboard").await?.text();
    assert!(!page.contains(r#"id="waiting""#), "nothing waits once the server is back");
    drop(server);
    drop_queues(&stack).await
}

/// The administrator of the accounts test, and the address of the account they create.
const ADMIN: (&str, &str) = ("admin@bureau.example", "administrateur: mot de passe 6");
const NEWCOMER: &str = "nouvelle.operatrice@bureau.example";
/// Where the bureau's pages are, as the e-mailed links give it.
const PUBLIC_URL: &str = "https://bureau.example";

/// The one-time links of the e-mails the SMTP sink received for `to`, as paths (with their
/// query) at the bureau's public address. In no particular order: the sink's file names do not
/// order two messages of the same second.
fn links_mailed_to(stack: &TestStack, to: &str) -> Vec<String> {
    stack
        .smtp
        .messages()
        .iter()
        .filter_map(|m| mail_parser::MessageParser::default().parse(m))
        .filter(|m| m.to().and_then(|a| a.first()).and_then(|a| a.address()).is_some_and(|a| a == to))
        .filter_map(|m| m.body_text(0).map(|t| t.to_string()))
        .filter_map(|b| b.split_whitespace().find(|w| w.contains("/compte/mot-de-passe?jeton=")).and_then(|l| l.strip_prefix(PUBLIC_URL)).map(str::to_string))
        .collect()
}

/// The one link mailed to `to` that is none of `seen`, once `count` links were mailed.
fn new_link(stack: &TestStack, to: &str, count: usize, seen: &[&str]) -> Result<String> {
    let links = links_mailed_to(stack, to);
    anyhow::ensure!(links.len() == count, "{count} links mailed to {to}, found {links:?}");
    links.into_iter().find(|l| !seen.contains(&l.as_str())).context("a new link")
}

/// Chooses a password through a one-time link, as its person does.
async fn choose_password(port: u16, link: &str, password: &str) -> Result<scanbureau_tests::web::Answer> {
    let mut c = Client::new(port);
    c.post_form(link, &[("new", password), ("confirm", password)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_creates_disables_and_resets_accounts_and_only_their_person_knows_the_password() -> Result<()> {
    let mut stack = TestStack::new("webadmin", true).await?;
    stack.set("SCANBUREAU__WEB__PUBLIC_URL", PUBLIC_URL);
    let (_, registry, counter, _) = sensitive_deposit(stack.dir.path())?;
    stack.set("SCANBUREAU__JOB__REGISTRY", &registry.display().to_string());
    let server = Server::start(&stack, &["portal"], &[])?;
    let pool = PgPool::connect(&stack.database_url).await?;
    add_account(&stack, ADMIN.0, ADMIN.1, "admin", None, false)?;
    add_account(&stack, OPERATOR.0, OPERATOR.1, "operator", None, false)?;
    let shots = std::env::var_os("SCANBUREAU_SCREENSHOTS").map(std::path::PathBuf::from);

    // The accounts are the administrator's alone, and the administrator sees nothing else.
    let mut op = Client::new(server.port);
    op.login(OPERATOR.0, OPERATOR.1).await?;
    assert_eq!(op.get("/admin/comptes").await?.status, 403, "an operator does not manage accounts");
    let mut admin = Client::new(server.port);
    let signed = admin.login(ADMIN.0, ADMIN.1).await?;
    assert_eq!(signed.header("location"), Some("/admin/comptes"), "an administrator lands on the accounts");
    assert_eq!(admin.get("/console").await?.status, 403, "an administrator does not see the console");
    let csrf = admin.session_csrf("/admin/comptes").await?;
    let no_token = admin.post_form("/admin/comptes", &[("email", NEWCOMER), ("role", "operator")]).await?;
    assert_eq!(no_token.status, 403, "a creation without the session's token");

    // Creating: the form is checked, in French, and keeps what was typed.
    let unknown = admin.post_form("/admin/comptes", &[("csrf", &csrf), ("email", "agent@bailleur.example"), ("role", "counter"), ("guichet", "G999")]).await?;
    assert_eq!(unknown.status, 422);
    assert!(
        unknown.text().contains("Le guichet G999 n'est pas au registre.") && unknown.text().contains(r#"value="agent@bailleur.example""#),
        "{}",
        unknown.text()
    );
    let agent = admin.post_form("/admin/comptes", &[("csrf", &csrf), ("email", "agent@bailleur.example"), ("role", "counter"), ("guichet", &counter)]).await?;
    assert_eq!(agent.status, 303, "a counter's agent of a counter in the registry: {}", agent.text());
    let taken = admin.post_form("/admin/comptes", &[("csrf", &csrf), ("email", &OPERATOR.0.to_uppercase()), ("role", "operator")]).await?;
    assert_eq!(taken.status, 409, "an address already held, whatever its case: {}", taken.text());
    let created = admin.post_form("/admin/comptes", &[("csrf", &csrf), ("email", NEWCOMER), ("nom", "Nouvelle Opératrice"), ("role", "operator")]).await?;
    assert_eq!((created.status, created.header("location")), (303, Some("/admin/comptes?fait=cree")), "{}", created.text());
    let (id, hash): (i64, Option<String>) =
        sqlx::query_as("SELECT id, password_hash FROM portal_users WHERE email = $1").bind(NEWCOMER).fetch_one(&pool).await?;
    assert_eq!(hash, None, "nobody chose the new account's password yet");
    let list = admin.get("/admin/comptes?fait=cree").await?.text();
    let row = list.split(&format!(r#"data-account="{NEWCOMER}""#)).nth(1).and_then(|r| r.split("</tr>").next()).context("the new account's row")?;
    assert!(row.contains(r#"data-state="invited""#) && row.contains("opérateur"), "{row}");
    if let Some(shots) = &shots {
        std::fs::write(shots.join("accounts.html"), &list)?;
    }

    // Sent again before it was used: a new invitation, and the first link stops working.
    let first_link = new_link(&stack, NEWCOMER, 1, &[])?;
    let resent = admin.post_form(&format!("/admin/comptes/{id}/lien"), &[("csrf", &csrf)]).await?;
    assert_eq!(resent.header("location"), Some("/admin/comptes?fait=invitation"), "{}", resent.text());
    assert_eq!(Client::new(server.port).get(&first_link).await?.status, 410, "the first link was replaced");

    // The person chooses their password through the link e-mailed to them; it serves once.
    let link = new_link(&stack, NEWCOMER, 2, &[&first_link])?;
    let mut newcomer = Client::new(server.port);
    let form = newcomer.get(&link).await?;
    assert!(form.status == 200 && form.text().contains(NEWCOMER), "{}", form.text());
    if let Some(shots) = &shots {
        std::fs::write(shots.join("choose-password.html"), form.text())?;
    }
    let differ = newcomer.post_form(&link, &[("new", "premier mot de passe 7"), ("confirm", "premier mot de passe 8")]).await?;
    assert!(differ.status == 422 && differ.text().contains("Les deux saisies diffèrent."), "{}", differ.text());
    let short = choose_password(server.port, &link, "court").await?;
    assert!(short.status == 422 && short.text().contains("au moins 12 caractères"), "{}", short.text());
    let first = "premier mot de passe 7";
    assert_eq!(choose_password(server.port, &link, first).await?.status, 200);
    let again = choose_password(server.port, &link, "un autre mot de passe 9").await?;
    assert!(again.status == 410 && again.text().contains("Ce lien ne sert plus"), "a link serves once: {}", again.text());
    assert_eq!(newcomer.login(NEWCOMER, first).await?.header("location"), Some("/console"), "the newcomer signs in with the password they chose");
    assert_eq!(newcomer.get("/console").await?.status, 200);

    // Disabled: the session ends at once and the password no longer opens the account.
    let me = sqlx::query_scalar::<_, i64>("SELECT id FROM portal_users WHERE email = $1").bind(ADMIN.0).fetch_one(&pool).await?;
    let own = admin.post_form(&format!("/admin/comptes/{me}/desactiver"), &[("csrf", &csrf)]).await?;
    assert_eq!(own.status, 409, "an administrator cannot lock themself out");
    let disabled = admin.post_form(&format!("/admin/comptes/{id}/desactiver"), &[("csrf", &csrf)]).await?;
    assert_eq!(disabled.status, 303, "{}", disabled.text());
    assert_eq!(newcomer.get("/console").await?.header("location"), Some("/login"), "the disabled person's session is over");
    assert_eq!(Client::new(server.port).login(NEWCOMER, first).await?.status, 401);
    let refused = admin.post_form(&format!("/admin/comptes/{id}/lien"), &[("csrf", &csrf)]).await?;
    assert_eq!(refused.status, 409, "no link for a disabled account");

    // Re-opened and reset: the old password stops at once, a new link sets the new one.
    assert_eq!(admin.post_form(&format!("/admin/comptes/{id}/reactiver"), &[("csrf", &csrf)]).await?.status, 303);
    let mut again_in = Client::new(server.port);
    assert_eq!(again_in.login(NEWCOMER, first).await?.status, 303, "re-opened, the account keeps its password");
    let reset = admin.post_form(&format!("/admin/comptes/{id}/lien"), &[("csrf", &csrf)]).await?;
    assert_eq!(reset.header("location"), Some("/admin/comptes?fait=lien"), "{}", reset.text());
    assert_eq!(again_in.get("/console").await?.header("location"), Some("/login"), "a reset ends the sessions");
    assert_eq!(Client::new(server.port).login(NEWCOMER, first).await?.status, 401, "a reset password opens nothing");
    let second_link = new_link(&stack, NEWCOMER, 3, &[&first_link, &link])?;
    let second = "second mot de passe 10";
    assert_eq!(choose_password(server.port, &second_link, second).await?.status, 200);
    assert_eq!(Client::new(server.port).login(NEWCOMER, second).await?.status, 303);

    // A counter's software: its API token stops working when its account is disabled.
    let out = std::process::Command::new(scanbureau_tests::stack::scanbureau_bin()?)
        .args(["admin", "add-user", "--guichet", &counter, "--email", "logiciel@bailleur.example"])
        .envs(stack.env.iter().cloned())
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout)?.trim().to_string();
    let bearer = format!("Bearer {token}");
    let api = async || Client::new(server.port).request("GET", "/api/deposits/d-inconnu", &[("Authorization", bearer.as_str())], b"").await;
    assert_eq!(api().await?.status, 404, "the token is good: the deposit is just unknown");
    let list = admin.get("/admin/comptes").await?.text();
    let row = list.split(r#"data-account="logiciel@bailleur.example""#).nth(1).and_then(|r| r.split("</tr>").next()).context("the API user's row")?;
    assert!(row.contains(r#"data-state="api""#), "{row}");
    assert!(row.contains(r#"/jeton""#) && row.contains("Nouveau jeton d"), "the row offers a new token: {row}");
    assert!(
        row.contains("accès aux pages</button>") && !row.contains("Envoyer un lien"),
        "a software's row says what a link would do to it, not that it awaits one: {row}"
    );
    let software = sqlx::query_scalar::<_, i64>("SELECT id FROM portal_users WHERE email = 'logiciel@bailleur.example'").fetch_one(&pool).await?;

    // Its token renewed in the browser: shown once, the old one stops at once.
    let renewed = admin.post_form(&format!("/admin/comptes/{software}/jeton"), &[("csrf", &csrf)]).await?;
    assert_eq!(renewed.status, 200);
    let page = renewed.text();
    let new_token =
        page.split(r#"<code class="secret" data-token>"#).nth(1).and_then(|r| r.split('<').next()).context("the new token on the page")?.to_string();
    assert!(new_token.len() == 64 && new_token != token, "a new token of 32 random bytes: {new_token}");
    assert_eq!(api().await?.status, 401, "the old token opens nothing once renewed");
    let new_bearer = format!("Bearer {new_token}");
    let api = async || Client::new(server.port).request("GET", "/api/deposits/d-inconnu", &[("Authorization", new_bearer.as_str())], b"").await;
    assert_eq!(api().await?.status, 404, "the new token is good");
    let list = admin.get("/admin/comptes").await?.text();
    assert!(!list.contains(&new_token), "the token is shown once, never in the list");
    let mut operator_renews = Client::new(server.port);
    assert_eq!(operator_renews.login(OPERATOR.0, OPERATOR.1).await?.status, 303);
    let op_csrf = operator_renews.session_csrf("/account").await?;
    assert_eq!(
        operator_renews.post_form(&format!("/admin/comptes/{software}/jeton"), &[("csrf", &op_csrf)]).await?.status,
        403,
        "only an administrator renews a token"
    );
    assert_eq!(api().await?.status, 404, "the token is unchanged by a refused renewal");
    let renewals: Vec<(String, serde_json::Value)> =
        sqlx::query_as("SELECT actor, detail FROM audit_events WHERE subject = $1 AND action = 'api_token_renewed'")
            .bind(format!("account:{software}"))
            .fetch_all(&pool)
            .await?;
    assert_eq!(renewals.len(), 1, "{renewals:?}");
    assert_eq!(renewals[0].0, format!("admin:{}", ADMIN.0));
    assert!(!renewals[0].1.to_string().contains(&new_token), "the audit trail does not keep the token");

    assert_eq!(admin.post_form(&format!("/admin/comptes/{software}/desactiver"), &[("csrf", &csrf)]).await?.status, 303);
    assert_eq!(api().await?.status, 401, "a disabled account's token opens nothing");
    assert_eq!(admin.post_form(&format!("/admin/comptes/{software}/jeton"), &[("csrf", &csrf)]).await?.status, 409, "a disabled account gets no new token");
    // Enabled again, its software gets a new token through the button, in Chromium.
    assert_eq!(admin.post_form(&format!("/admin/comptes/{software}/reactiver"), &[("csrf", &csrf)]).await?.status, 303);
    assert_eq!(api().await?.status, 404, "enabled again, its token opens again");
    let shots = shots_dir(&stack)?;
    let (ok, said) = run_browser("accounts.mjs", &server, &shots, &[("ADMIN", sign_in(ADMIN)), ("SOFTWARE", "logiciel@bailleur.example".into())]).await?;
    assert!(ok, "the browser renews the token: {said}");
    assert_eq!(api().await?.status, 401, "the token renewed in the browser replaced the one before");
    let renewed: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE subject = $1 AND action = 'api_token_renewed'")
        .bind(format!("account:{software}"))
        .fetch_one(&pool)
        .await?;
    assert_eq!(renewed, 2);

    // Every step is in the audit trail, under who did it.
    let trail: Vec<(String, String)> =
        sqlx::query_as("SELECT actor, action FROM audit_events WHERE subject = $1 ORDER BY id").bind(format!("account:{id}")).fetch_all(&pool).await?;
    let by = |actor: &str, action: &str| trail.iter().any(|(a, x)| a == actor && x == action);
    let admin_actor = format!("admin:{}", ADMIN.0);
    let person = format!("operator:{NEWCOMER}");
    for action in ["account_created", "account_link_sent", "account_disabled", "account_enabled", "password_reset"] {
        assert!(by(&admin_actor, action), "{action} audited: {trail:?}");
    }
    assert_eq!(trail.iter().filter(|(_, x)| x == "account_link_sent").count(), 2, "the invitation, then again: {trail:?}");
    assert_eq!(trail.iter().filter(|(a, x)| *a == person && x == "password_set").count(), 2, "{trail:?}");
    // The secrets stay out of the database and the log: digests only.
    let links: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_sha256 FROM account_links WHERE account = $1").bind(id).fetch_all(&pool).await?;
    assert!(links.iter().all(|d| d.len() == 32), "links are kept as SHA-256 digests");
    let link_token = second_link.rsplit('=').next().unwrap_or_default();
    assert!(!link_token.is_empty() && !server.log_text().contains(link_token), "the link's token is never logged");
    assert!(!server.log_text().contains(&new_token), "an API token is never logged");
    Ok(())
}
