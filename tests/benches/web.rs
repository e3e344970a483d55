//! How fast the people's pages answer on a bureau with a month of history, on the real stack
//! (PostgreSQL, RabbitMQ, SeaweedFS; `scripts/stack.sh` starts them, `.stack/env` holds the S3
//! credentials):
//!
//!   source .stack/env && cargo bench -p scanbureau-tests --bench web
//!
//! A fresh database is filled with BENCH_MAILINGS (20000) mailings over 30 days, of which
//! BENCH_OPEN (2000) are still open (some late), 5 pieces and 20 pages each, 300 pieces in
//! review, 200 counters, 100 incidents; two requests a done mailing, their applicants in the
//! registry (what the lists' search looks through). The portal role serves the pages; each page is asked
//! BENCH_ROUNDS (40) times in a row by a signed-in person, then by 8 people at once, and the
//! bench prints the median, 95th percentile and worst time of each, and the pages per second.
//! Then the pure parts: a printed slip, a page preview, an argon2 hash.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;

use scanbureau::accounts::{Role as AccountRole, hash_password};
use scanbureau::bureau::Bureau;
use scanbureau::serve::{Role, run_roles};
use scanbureau::store::people::{NewAccount, create_account};
use scanbureau_tests::stack::TestStack;
use scanbureau_tests::web::Client;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn seed(pool: &sqlx::PgPool, mailings: usize, open: usize) -> Result<()> {
    let t0 = Instant::now();
    let q = |sql: &'static str| sqlx::query(sql);
    q("INSERT INTO guichets (numero, departement, email_referent)
       SELECT 'G' || lpad(g::text, 4, '0'), lpad((1 + g % 95)::text, 3, '0'), 'pj.g' || g || '@bailleur.example' FROM generate_series(0, 199) g
       ON CONFLICT DO NOTHING")
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO mailings (id, channel, source, received_at, due_at, status, guichet, files, pages, outcome, started_at, done_at)
         SELECT 'm-bench-' || g, (ARRAY['paper', 'portal', 'mail'])[1 + g % 3], 'bench', r, r + interval '2 days',
                CASE WHEN g <= $2 THEN (ARRAY['received', 'received', 'received', 'processing', 'failed'])[1 + g % 5] ELSE 'done' END,
                'G' || lpad((g % 200)::text, 4, '0'),
                '[{\"name\": \"lot.pdf\", \"key\": \"raw/x\", \"bytes\": 5000000}]'::jsonb,
                CASE WHEN g <= $2 THEN NULL ELSE 20 END,
                CASE WHEN g <= $2 THEN NULL ELSE (ARRAY['accepted', 'accepted', 'partial', 'rejected'])[1 + g % 4] END,
                CASE WHEN g <= $2 THEN NULL ELSE r + interval '50 minutes' END,
                CASE WHEN g <= $2 THEN NULL ELSE r + interval '1 hour' END
         FROM generate_series(1, $1) g, LATERAL (SELECT now() - ((g * 7919) % 43200) * interval '1 minute' AS r) t",
    )
    .bind(mailings as i32)
    .bind(open as i32)
    .execute(pool)
    .await?;
    q("INSERT INTO pieces (id, mailing_id, numero_unique, categorie, type_code, confidence, sensible, status, reason, key, bytes, plan_version, evidence, pages, created_at)
       SELECT 'p-' || m.id || '-' || k, m.id, '0930325091042G3533', 'LOG', 'QUITTANCE_LOYER', 0.95, false,
              CASE WHEN k = 5 AND m.pages IS NOT NULL AND random() < 0.2 THEN 'rejected' ELSE 'uploaded' END, NULL,
              'pieces/x/' || m.id || '-' || k, 40000, 'bench', '[\"bench\"]'::jsonb, 4, m.done_at
       FROM mailings m, generate_series(1, 5) k WHERE m.status = 'done'")
    .execute(pool)
    .await?;
    q("UPDATE pieces SET status = 'review' WHERE id IN (SELECT id FROM pieces WHERE status = 'uploaded' ORDER BY id LIMIT 300)").execute(pool).await?;
    q("INSERT INTO pages (mailing_id, index, source, role, piece_id, reason)
       SELECT m.id, i, 'lot.pdf#' || i, CASE WHEN i % 17 = 0 THEN 'rejected' ELSE 'piece' END, NULL,
              CASE WHEN i % 17 = 0 THEN (ARRAY['PIECE_ILLISIBLE', 'HORS_PERIMETRE_REGLEMENTAIRE', 'NUMERO_INCONNU'])[1 + i % 3] END
       FROM mailings m, generate_series(0, 19) i WHERE m.status = 'done'")
    .execute(pool)
    .await?;
    // Two requests a done mailing, each in the registry with its applicant's name: what the
    // lists' search looks through. Mailing `m-bench-G` holds numéros 0930325{2G,2G+1}G3533.
    q("INSERT INTO requests (mailing_id, ordinal, numero_unique, status)
       SELECT m.id, k, '0930325' || lpad((substr(m.id, 9)::int * 2 + k)::text, 6, '0') || 'G3533', 'accepted'
       FROM mailings m, generate_series(0, 1) k WHERE m.status = 'done'")
    .execute(pool)
    .await?;
    q("INSERT INTO registry_demandes (numero_unique, record)
       SELECT r.numero_unique, jsonb_build_object('numero_unique', r.numero_unique,
              'nom', (ARRAY['MARTIN', 'BERNARD', 'DUBOIS', 'THOMAS', 'ROBERT', 'RICHARD', 'PETIT', 'DURAND', 'LEROY', 'MOREAU'])[1 + abs(hashtext(r.numero_unique) % 10)],
              'prenoms', 'CAMILLE', 'date_naissance', '1980-01-01')
       FROM requests r ON CONFLICT DO NOTHING")
    .execute(pool)
    .await?;
    q("ANALYZE").execute(pool).await?;
    println!("seeded {mailings} mailings ({open} open), their pieces and pages in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}

struct Figures {
    times: Vec<Duration>,
}

impl Figures {
    fn line(&mut self, what: &str, bytes: usize) {
        self.times.sort();
        let at = |q: f64| self.times[((self.times.len() as f64 * q) as usize).min(self.times.len() - 1)];
        println!(
            "{what:<34} median {:>7.1} ms   p95 {:>7.1} ms   worst {:>7.1} ms   ({} KB)",
            at(0.5).as_secs_f64() * 1e3,
            at(0.95).as_secs_f64() * 1e3,
            at(1.0).as_secs_f64() * 1e3,
            bytes / 1000
        );
    }
}

async fn time_page(client: &mut Client, path: &str, rounds: usize) -> Result<(Figures, usize)> {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let a = client.get(path).await?;
        times.push(t.elapsed());
        anyhow::ensure!(a.status == 200, "{path}: {}", a.status);
        bytes = a.body.len();
    }
    Ok((Figures { times }, bytes))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let (mailings, open, rounds) = (env_usize("BENCH_MAILINGS", 20_000), env_usize("BENCH_OPEN", 2_000), env_usize("BENCH_ROUNDS", 40));
    let stack = TestStack::new("benchweb", true).await?;
    let (stop, shutdown) = watch::channel(false);
    let bureau = Bureau::start(stack.config()?, "bench", shutdown).await.context("the stack (scripts/stack.sh, source .stack/env)")?;
    let roles = tokio::spawn({
        let (b, s) = (bureau.clone(), stop.clone());
        async move { run_roles(b, &[Role::Portal], s).await }
    });
    seed(&bureau.pool, mailings, open).await?;
    let password = "bench: a long enough password";
    let hash = hash_password(password)?;
    for (email, role, guichet) in [("guichet@bench.example", AccountRole::Counter, Some("G0001")), ("superviseur@bench.example", AccountRole::Supervisor, None)]
    {
        create_account(&bureau.pool, &NewAccount { email, display_name: "", role, guichet, sensitive: false, password_hash: Some(&hash) }, "bench").await?;
    }
    scanbureau_tests::stack::wait_port(stack.http_port, "the portal", Duration::from_secs(60))?;
    let mut counter = Client::new(stack.http_port);
    let mut login_times = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        counter.cookies.clear();
        let a = counter.login("guichet@bench.example", password).await?;
        login_times.push(t.elapsed());
        anyhow::ensure!(a.status == 303, "login: {}", a.status);
    }
    let mut supervisor = Client::new(stack.http_port);
    anyhow::ensure!(supervisor.login("superviseur@bench.example", password).await?.status == 303);

    // A done mailing of the counter's (G0001 holds every 200th).
    let done_mailing = format!("/mailings/m-bench-{}", (open / 200 + 1) * 200 + 1);
    println!("\nOne person, {rounds} requests in a row:");
    Figures { times: login_times }.line("sign-in (argon2id verify)", 0);
    // Searches: a numéro of the counter's done mailing, a name, the start of a numéro, a day,
    // part of a file name, a later page.
    let done_n = (open / 200 + 1) * 200 + 1;
    let numero_search = format!("/portal?q=0930325{:06}G3533", done_n * 2);
    let day = (chrono::Utc::now() - chrono::Duration::days(3)).date_naive();
    let day_search = format!("/console?jour={day}");
    // The searches find what they look for (a figure for an empty answer would prove little).
    let own = counter.get(&numero_search).await?.text();
    anyhow::ensure!(own.contains(&format!("data-mailing=\"m-bench-{done_n}\"")), "{numero_search} does not find m-bench-{done_n}");
    let named = supervisor.get("/console?q=dubois").await?.text();
    anyhow::ensure!(named.matches("data-mailing=").count() == 50, "a common name fills a page");
    for (who, path) in [
        ("counter", "/portal"),
        ("counter", numero_search.as_str()),
        ("counter", "/portal?q=durand"),
        ("counter", "/portal?page=3"),
        ("counter", done_mailing.as_str()),
        ("supervisor", "/console?q=dubois"),
        ("supervisor", "/console?q=093032500"),
        ("supervisor", day_search.as_str()),
        ("supervisor", "/console?q=lot.p"),
        ("supervisor", "/console?q=introuvable"),
        ("supervisor", "/dashboard"),
        ("supervisor", "/console"),
        ("supervisor", "/console/review"),
        ("supervisor", "/dashboard/export.csv"),
    ] {
        let client = if who == "counter" { &mut counter } else { &mut supervisor };
        let (mut f, bytes) = time_page(client, path, rounds).await?;
        f.line(&format!("{who} {path}"), bytes);
    }

    println!("\n8 people at once, {rounds} requests each:");
    for path in ["/dashboard", "/portal"] {
        let cookies = if path == "/portal" { counter.cookies.clone() } else { supervisor.cookies.clone() };
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let mut c = Client { port: stack.http_port, cookies: cookies.clone() };
                tokio::spawn(async move { time_page(&mut c, path, rounds).await.map(|(f, _)| f.times) })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await??);
        }
        let wall = t0.elapsed().as_secs_f64();
        let n = all.len();
        Figures { times: all }.line(&format!("{path} ×8"), 0);
        println!("{:<34} {:.1} pages/s", "", n as f64 / wall);
    }

    println!("\nPure parts:");
    let slip = scanbureau_pipeline::slip::Slip::Fiche(scanbureau_pipeline::slip::Fiche {
        numero: scanbureau_pipeline::NumeroUnique::parse("0930325091042G3533")?,
        nom: "FRANÇOIS".into(),
        prenoms: "CLÉMENT INÈS".into(),
        date_naissance: chrono::NaiveDate::from_ymd_opt(1947, 4, 9).context("date")?,
        nb_documents: 4,
        nb_pages: 9,
        date_remplissage: chrono::NaiveDate::from_ymd_opt(2026, 12, 2).context("date")?,
    });
    let t = Instant::now();
    let mut pdf = Vec::new();
    for _ in 0..200 {
        pdf = scanbureau_pipeline::slip_print::slip_pdf(&slip)?;
    }
    println!("{:<34} {:.2} ms a slip, {} bytes", "printed fiche (PDF with QR)", t.elapsed().as_secs_f64() * 1e3 / 200.0, pdf.len());
    let piece = std::fs::read(scanbureau_tests::stack::workspace_root().join("scans-samples/portal-deposit.pdf"))?;
    let t = Instant::now();
    for _ in 0..5 {
        scanbureau_pipeline::preview::page_png(&piece, 1, 360).context("preview")?;
    }
    println!("{:<34} {:.1} ms a page", "review thumbnail (360 px PNG)", t.elapsed().as_secs_f64() * 1e3 / 5.0);
    let t = Instant::now();
    for _ in 0..10 {
        hash_password(password)?;
    }
    println!("{:<34} {:.1} ms", "argon2id hash (19 MiB, t=2)", t.elapsed().as_secs_f64() * 1e3 / 10.0);

    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), roles).await;
    let broker = scanbureau::broker::Broker::connect(&bureau.config.broker, "bench cleanup").await?;
    broker.delete_topology().await?;
    broker.close().await;
    Ok(())
}
