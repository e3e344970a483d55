//! The bureau as a service, on the real stack: PostgreSQL and RabbitMQ of the machine,
//! SeaweedFS for S3, aiosmtpd as the SMTP sink. Each test has a fresh database, its own queue
//! prefix, bucket and mail sink. Nothing sleeps for a fixed time: tests wait for a state of the
//! database, with a deadline.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use scanbureau::broker::{Broker, Stage};
use scanbureau::bureau::{Bureau, Intake};
use scanbureau::serve::{Role, run_roles};
use scanbureau::store;
use scanbureau_tests::imap::TestMailbox;
use scanbureau_tests::own_servers::{OwnDns, OwnDovecot, OwnPostgres, OwnRabbit};
use scanbureau_tests::stack::{OwnS3, Owned, TestStack, scanbureau_bin, wait_until, workspace_root};

const LONG: Duration = Duration::from_secs(240);

struct Running {
    bureau: Arc<Bureau>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Running {
    async fn start(stack: &TestStack, roles: &[Role]) -> Result<Self> {
        let (stop, shutdown) = watch::channel(false);
        let bureau = Bureau::start(stack.config()?, "test", shutdown).await?;
        let (b, s, r) = (bureau.clone(), stop.clone(), roles.to_vec());
        let task = tokio::spawn(async move { run_roles(b, &r, s).await });
        Ok(Self { bureau, stop, task })
    }

    /// Graceful shutdown: the roles finish what they hold and stop; then the test's queues are
    /// deleted (a broker that keeps hundreds of idle quorum queues gets slow).
    async fn stop(self) -> Result<()> {
        let config = self.bureau.config.broker.clone();
        self.shutdown().await?;
        let broker = Broker::connect(&config, "test cleanup").await?;
        broker.delete_topology().await?;
        broker.close().await;
        Ok(())
    }

    /// Graceful shutdown, leaving the queues as they are.
    async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(60), self.task).await.context("roles did not stop within 60 s")??
    }

    fn pool(&self) -> &PgPool {
        &self.bureau.pool
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap_or(-1)
}

/// A minimal HTTP/1.1 client: one request, the status and body of the answer.
async fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Result<(u16, serde_json::Value)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if !body.is_empty() {
        head.push_str("Content-Type: application/pdf\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await?;
    // A refused upload may be answered before the body is all sent.
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let status: u16 = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).context("no HTTP status")?;
    let payload = text.split("\r\n\r\n").nth(1).unwrap_or("");
    let json = serde_json::from_str(payload.trim()).unwrap_or(serde_json::Value::String(payload.to_string()));
    Ok((status, json))
}

/// A portal deposit of one PDF received as the API would, its notices to the counter's agent.
async fn receive_deposit(b: &Bureau, name: &str, path: std::path::PathBuf) -> Result<String> {
    let files = vec![(name.to_string(), path)];
    let intake = Intake {
        channel: "portal",
        source: "test",
        files: &files,
        numero_unique: None,
        notify: Some("agent@bailleur-093.example".into()),
        portal_user: None,
        counter: None,
    };
    Ok(b.receive(intake).await?.0)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        std::fs::copy(e.path(), to.join(e.file_name()))?;
    }
    Ok(())
}

fn sample(name: &str) -> std::path::PathBuf {
    workspace_root().join("scans-samples").join(name)
}

/// Drops a scanner batch the way a scanner does: written under a hidden name, then renamed,
/// then marked complete.
fn drop_batch(hot: &Path, name: &str) -> Result<()> {
    std::fs::create_dir_all(hot)?;
    let staging = hot.join(format!(".{name}"));
    copy_dir(&sample("counter-mailing"), &staging)?;
    std::fs::rename(&staging, hot.join(name))?;
    std::fs::write(hot.join(name).join(".done"), b"")?;
    Ok(())
}

fn deliver_mail(maildir: &Path, name: &str) -> Result<()> {
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub))?;
    }
    std::fs::copy(sample("mail-deposit.eml"), maildir.join("tmp").join(name))?;
    std::fs::rename(maildir.join("tmp").join(name), maildir.join("new").join(name))?;
    Ok(())
}

/// Every piece of every done mailing is in the database once, with its PDF in S3 when filed;
/// every page of the report has one fate.
async fn check_filed(b: &Bureau) -> Result<()> {
    let reports: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT report FROM mailings WHERE status = 'done' AND report IS NOT NULL").fetch_all(&b.pool).await?;
    let mut expected = 0;
    for r in &reports {
        let report: scanbureau_pipeline::report::Report = serde_json::from_value(r.clone())?;
        report.check_accounting().map_err(anyhow::Error::msg)?;
        expected += report.requests.iter().map(|q| q.pieces.len()).sum::<usize>();
    }
    assert_eq!(count(&b.pool, "SELECT count(*) FROM pieces").await, expected as i64, "one row per piece of the reports");
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM pieces WHERE key IS NOT NULL").fetch_all(&b.pool).await?;
    let stored = b.blobs.list("pieces/").await?;
    for k in &keys {
        assert!(stored.contains(k), "piece {k} is in S3");
    }
    assert_eq!(stored.len(), keys.len(), "no stray piece objects");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailing_from_each_channel_ends_as_pieces_rows_and_notices() -> Result<()> {
    let stack = TestStack::new("channels", true).await?;
    let run = Running::start(&stack, &Role::ALL).await?;
    let token = "t0ken-for-the-test-counter";
    store::create_portal_user(run.pool(), "G3533", "agent@bailleur-093.example", token, "test").await?;

    drop_batch(&stack.hot_folder, "lot-0001")?;
    deliver_mail(&stack.maildir, "1700000000.M1P1.bureau")?;
    let pdf = std::fs::read(sample("portal-deposit.pdf"))?;
    let (status, answer) = http(stack.http_port, "POST", "/api/deposits", Some(token), &pdf).await?;
    assert_eq!(status, 202, "{answer}");
    let deposit = answer["deposit"].as_str().context("deposit id")?.to_string();

    wait_until(run.pool(), "SELECT count(*) = 3 FROM mailings WHERE status = 'done'", "three mailings done", LONG).await?;
    wait_until(run.pool(), "SELECT count(*) > 0 AND bool_and(status = 'sent') FROM notices", "every notice sent", LONG).await?;

    let channels: Vec<String> = sqlx::query_scalar("SELECT channel FROM mailings ORDER BY channel").fetch_all(run.pool()).await?;
    assert_eq!(channels, ["mail", "paper", "portal"]);
    check_filed(&run.bureau).await?;
    // The service does what the one-shot job does on the same batch: same fate for every page,
    // same pieces.
    let service: scanbureau_pipeline::report::Report =
        serde_json::from_value(sqlx::query_scalar("SELECT report FROM mailings WHERE channel = 'paper'").fetch_one(run.pool()).await?)?;
    let out = stack.dir.path().join("one-shot");
    let one_shot = scanbureau_tests::process(&scanbureau_tests::args(
        vec![sample("counter-mailing")],
        &out,
        Some("sample".into()),
        scanbureau::process::ChannelArg::Paper,
    ));
    let roles = |r: &scanbureau_pipeline::report::Report| r.pages.iter().map(|p| (p.role, p.piece.is_some(), p.reason)).collect::<Vec<_>>();
    assert_eq!(roles(&service), roles(&one_shot), "page fates");
    let pieces = |r: &scanbureau_pipeline::report::Report| {
        r.requests.iter().flat_map(|q| q.pieces.iter().map(|p| (p.pages.clone(), p.type_code.clone(), p.status, p.reason))).collect::<Vec<_>>()
    };
    assert_eq!(pieces(&service), pieces(&one_shot), "pieces");
    // Each notice reached the sink exactly once.
    let sent = count(run.pool(), "SELECT count(*) FROM notices WHERE status = 'sent'").await;
    let received = stack.smtp.messages();
    assert_eq!(received.len() as i64, sent, "one delivered message per notice");
    let subjects: Vec<String> =
        received.iter().filter_map(|m| mail_parser::MessageParser::default().parse(m).and_then(|p| p.subject().map(str::to_string))).collect();
    assert!(subjects.iter().any(|s| s.starts_with("Demande ")), "{subjects:?}");

    // The inputs were filed away once stored.
    assert!(!stack.hot_folder.join("lot-0001").exists());
    assert_eq!(std::fs::read_dir(stack.hot_folder.join(".stored"))?.count(), 1);
    assert_eq!(std::fs::read_dir(stack.maildir.join(".processed/cur"))?.count(), 1);
    assert_eq!(std::fs::read_dir(stack.maildir.join("new"))?.count(), 0);

    // The portal user sees the deposit, its pieces and notices; a stranger does not.
    let (status, view) = http(stack.http_port, "GET", &format!("/api/deposits/{deposit}"), Some(token), b"").await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "done");
    assert!(view["pieces"].as_array().is_some_and(|p| !p.is_empty()), "{view}");
    assert!(view["notices"].as_array().is_some_and(|n| n.iter().all(|n| n["status"] == "sent")), "{view}");
    let (status, _) = http(stack.http_port, "GET", &format!("/api/deposits/{deposit}"), Some("wrong"), b"").await?;
    assert_eq!(status, 401);
    store::create_portal_user(run.pool(), "G4709", "agent@bailleur-059.example", "other-counter", "test").await?;
    let (status, _) = http(stack.http_port, "GET", &format!("/api/deposits/{deposit}"), Some("other-counter"), b"").await?;
    assert_eq!(status, 404, "another counter's deposit is not shown");

    // Every state change is audited.
    for action in ["received", "processing", "done", "notice_sent"] {
        assert!(count(run.pool(), &format!("SELECT count(*) FROM audit_events WHERE action = '{action}'")).await >= 1, "audit {action}");
    }
    // Metrics and readiness answer.
    let (status, ready) = http(stack.http_port, "GET", "/ready", None, b"").await?;
    assert_eq!(status, 200, "{ready}");
    let (_, metrics) = http(stack.http_port, "GET", "/metrics", None, b"").await?;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(metrics.contains("scanbureau_mailings{status=\"done\"} 3"), "{metrics}");
    assert!(metrics.contains(&format!("scanbureau_queue_depth{{queue=\"{}.process\"}} 0", stack.name)), "{metrics}");
    // The latency histograms saw the three mailings, their S3 puts and their notices' SMTP sends.
    for count in [
        "scanbureau_mailing_seconds_count 3\n",
        "scanbureau_reception_to_done_seconds_count 3\n",
        "scanbureau_mailing_pages_per_second_count 3\n",
        "scanbureau_call_seconds_count{server=\"smtp\",operation=\"send\",outcome=\"ok\"}",
        "scanbureau_call_seconds_count{server=\"s3\",operation=\"put\",outcome=\"ok\"}",
    ] {
        assert!(metrics.contains(count), "{count:?} not in {metrics}");
    }
    // What a proxy forwards from outside does not see them.
    for path in ["/ready", "/metrics"] {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", stack.http_port)).await?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: bureau.example\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n").as_bytes()).await?;
        let mut raw = String::new();
        s.read_to_string(&mut raw).await?;
        assert!(raw.starts_with("HTTP/1.1 404"), "{path}: {raw}");
    }
    run.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_states_and_counters_no_code_writes() -> Result<()> {
    let stack = TestStack::new("integrity", true).await?;
    let pool = store::connect(&stack.database_url, 2, Duration::from_secs(30)).await?;
    sqlx::query("INSERT INTO guichets (numero, departement, email_referent) VALUES ('G0042', '074', 'pj@bailleur.example')").execute(&pool).await?;
    let mailing = |id: &str, guichet: &str| {
        format!(
            "INSERT INTO mailings (id, channel, source, received_at, due_at, files, guichet) VALUES ('{id}', 'paper', 'test', now(), now(), '[]', {guichet})"
        )
    };
    sqlx::query(&mailing("m-known", "'G0042'")).execute(&pool).await?;
    let refused = |sql: String, what: &'static str| {
        let pool = pool.clone();
        async move {
            let e = sqlx::query(&sql).execute(&pool).await.err().with_context(|| format!("{what} was accepted"))?;
            let constraint = e.as_database_error().and_then(|d| d.constraint()).map(str::to_string);
            anyhow::Ok(constraint.with_context(|| format!("{what}: {e}"))?)
        }
    };
    assert_eq!(refused(mailing("m-unknown", "'G9999'"), "a counter the registry does not know").await?, "mailings_guichet_known");
    let piece = |status: &str| {
        format!(
            "INSERT INTO pieces (id, mailing_id, confidence, sensible, status, plan_version, evidence) VALUES ('p-{status}', 'm-known', 1, false, '{status}', 'v', '[]')"
        )
    };
    sqlx::query(&piece("review")).execute(&pool).await?;
    assert_eq!(refused(piece("lost"), "a piece state no code writes").await?, "pieces_status_known");
    assert_eq!(
        refused("INSERT INTO pages (mailing_id, index, source, role) VALUES ('m-known', 0, 'f', 'cover')".into(), "a page role").await?,
        "pages_role_known"
    );
    assert_eq!(
        refused("INSERT INTO requests (mailing_id, ordinal, status) VALUES ('m-known', 0, 'maybe')".into(), "a request state").await?,
        "requests_status_known"
    );
    let indexed: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 'pieces_by_mailing')").fetch_one(&pool).await?;
    assert!(indexed, "a mailing's pieces are found by index");
    pool.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_file_delivered_twice_is_one_mailing_with_one_set_of_notices() -> Result<()> {
    let stack = TestStack::new("twice", true).await?;
    let run = Running::start(&stack, &Role::ALL).await?;
    let token = "twice-token";
    store::create_portal_user(run.pool(), "G3533", "agent@bailleur-093.example", token, "test").await?;
    let pdf = std::fs::read(sample("portal-deposit.pdf"))?;
    let (s1, a1) = http(stack.http_port, "POST", "/api/deposits", Some(token), &pdf).await?;
    let (s2, a2) = http(stack.http_port, "POST", "/api/deposits", Some(token), &pdf).await?;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(a1["deposit"], a2["deposit"], "one deposit id for one content");
    assert_eq!(a2["duplicate"], true);
    wait_until(run.pool(), "SELECT count(*) = 1 FROM mailings WHERE status = 'done'", "the mailing done", LONG).await?;
    wait_until(run.pool(), "SELECT count(*) > 0 AND bool_and(status = 'sent') FROM notices", "notices sent", LONG).await?;
    let notices = count(run.pool(), "SELECT count(*) FROM notices").await;
    // Once done, the same file again (and the hot-folder path too) changes nothing.
    let (s3, a3) = http(stack.http_port, "POST", "/api/deposits", Some(token), &pdf).await?;
    assert_eq!((s3, &a3["duplicate"]), (202, &serde_json::Value::Bool(true)));
    drop_batch(&stack.hot_folder, "lot-a")?;
    wait_until(run.pool(), "SELECT count(*) = 2 FROM mailings WHERE status = 'done'", "the batch done", LONG).await?;
    let after_first_batch = count(run.pool(), "SELECT count(*) FROM pieces").await;
    drop_batch(&stack.hot_folder, "lot-b")?;
    wait_until(run.pool(), "SELECT count(*) = 2 FROM audit_events WHERE action = 'duplicate_received'", "second copies seen", LONG).await?;
    wait_until(run.pool(), "SELECT bool_and(status = 'sent') FROM notices", "notices sent", LONG).await?;
    assert_eq!(count(run.pool(), "SELECT count(*) FROM mailings").await, 2);
    assert_eq!(count(run.pool(), "SELECT count(*) FROM pieces").await, after_first_batch, "no second piece");
    let total_notices = count(run.pool(), "SELECT count(*) FROM notices").await;
    assert!(total_notices > notices);
    assert_eq!(stack.smtp.messages().len() as i64, total_notices, "no second notice");
    check_filed(&run.bureau).await?;
    run.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_with_their_reason() -> Result<()> {
    let stack = TestStack::new("poison", true).await?;
    let run = Running::start(&stack, &[Role::Process, Role::Notify]).await?;
    let broker = Broker::connect(&stack.config()?.broker, "test publisher").await?;
    broker.publish(Stage::Process, b"this is not json").await?;
    broker.publish(Stage::Process, br#"{"mailing": "m-does-not-exist"}"#).await?;
    broker.publish(Stage::Notify, br#"{"notice": 424242}"#).await?;
    // A mailing whose stored file list no code wrote: failed at once and said, not processed
    // as a mailing of no file.
    sqlx::query("INSERT INTO mailings (id, channel, source, received_at, due_at, files) VALUES ('m-corrupt', 'portal', 'test', now(), now() + interval '2 days', '{\"not\": \"a list\"}')")
        .execute(run.pool())
        .await?;
    broker.publish(Stage::Process, br#"{"mailing": "m-corrupt"}"#).await?;
    wait_until(run.pool(), "SELECT count(*) = 4 FROM dead_letters", "four dead letters", Duration::from_secs(60)).await?;
    let reasons: Vec<(String, String)> = sqlx::query_as("SELECT stage, reason FROM dead_letters ORDER BY id").fetch_all(run.pool()).await?;
    assert!(reasons.iter().any(|(s, r)| s == "process" && r.starts_with("unreadable message")), "{reasons:?}");
    assert!(reasons.iter().any(|(s, r)| s == "process" && r.contains("unknown mailing m-does-not-exist")), "{reasons:?}");
    assert!(reasons.iter().any(|(s, r)| s == "notify" && r.contains("unknown notice 424242")), "{reasons:?}");
    assert!(reasons.iter().any(|(s, r)| s == "process" && r.contains("stored file list of mailing m-corrupt is unreadable")), "{reasons:?}");
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, last_error FROM mailings WHERE id = 'm-corrupt'").fetch_one(run.pool()).await?;
    assert_eq!(status, "failed");
    assert!(error.is_some_and(|e| e.contains("unreadable")));
    // They are in the dead-letter queue too, and the work queues are empty: the stages go on.
    let start = Instant::now();
    while broker.depth(&broker.topology.dead_queue()).await? < 4 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(broker.depth(&broker.topology.dead_queue()).await?, 4);
    assert_eq!(broker.depth(&broker.topology.queue(Stage::Process)).await?, 0);
    broker.close().await;
    run.stop().await
}

/// A `worker process` of its own, on the test's stack, with `extra` variables.
fn processing_worker(stack: &TestStack, extra: &[(&str, &str)]) -> Result<Owned> {
    worker(stack, "process", extra)
}

/// A `worker ROLE` process of its own, on the test's stack, with `extra` variables.
fn worker(stack: &TestStack, role: &str, extra: &[(&str, &str)]) -> Result<Owned> {
    let mut cmd = std::process::Command::new(scanbureau_bin()?);
    cmd.args(["worker", role]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    cmd.envs(stack.env.iter().cloned());
    cmd.env("SCANBUREAU__HTTP__BIND", format!("127.0.0.1:{}", scanbureau_tests::stack::free_port()));
    cmd.envs(extra.iter().copied());
    Ok(Owned(cmd.spawn()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_mailing_leaves_it_to_the_next_one_without_duplicates() -> Result<()> {
    let stack = TestStack::new("killed", true).await?;
    // This process takes the mailing in and sends notices; the processing is a separate worker
    // process, killed while it works.
    let run = Running::start(&stack, &[Role::Intake, Role::Notify]).await?;
    let spawn_worker = || processing_worker(&stack, &[]);
    let mut worker = spawn_worker()?;
    drop_batch(&stack.hot_folder, "lot-kill")?;
    wait_until(run.pool(), "SELECT count(*) = 1 FROM mailings WHERE status = 'processing'", "the worker took the mailing", LONG).await?;
    worker.0.kill()?;
    worker.0.wait()?;
    assert_eq!(count(run.pool(), "SELECT count(*) FROM mailings WHERE status = 'done'").await, 0, "killed before the end");
    let _worker = spawn_worker()?;
    wait_until(run.pool(), "SELECT count(*) = 1 FROM mailings WHERE status = 'done'", "the mailing done after restart", LONG).await?;
    wait_until(run.pool(), "SELECT count(*) > 0 AND bool_and(status = 'sent') FROM notices", "notices sent", LONG).await?;
    assert_eq!(count(run.pool(), "SELECT attempts::int8 FROM mailings").await, 2, "taken twice");
    check_filed(&run.bureau).await?;
    let notices = count(run.pool(), "SELECT count(*) FROM notices").await;
    assert_eq!(stack.smtp.messages().len() as i64, notices, "each notice sent once");
    run.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_wait_for_the_smtp_server_and_are_sent_once_it_is_back() -> Result<()> {
    let mut stack = TestStack::new("smtpdown", false).await?;
    let run = Running::start(&stack, &Role::ALL).await?;
    deliver_mail(&stack.maildir, "1700000001.M2P2.bureau")?;
    wait_until(run.pool(), "SELECT count(*) = 1 FROM mailings WHERE status = 'done'", "the mailing done", LONG).await?;
    wait_until(run.pool(), "SELECT count(*) > 0 FROM notices WHERE attempts >= 2 AND status = 'pending'", "failed sends", Duration::from_secs(60)).await?;
    assert!(stack.smtp.messages().is_empty());
    stack.smtp.start()?;
    wait_until(run.pool(), "SELECT bool_and(status = 'sent') FROM notices", "notices sent after the server came back", Duration::from_secs(120)).await?;
    let notices = count(run.pool(), "SELECT count(*) FROM notices").await;
    assert_eq!(stack.smtp.messages().len() as i64, notices, "each notice once");
    assert!(count(run.pool(), "SELECT count(*) FROM audit_events WHERE action = 'notice_attempt_failed'").await >= 1);
    run.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_retries_while_s3_is_down_then_completes() -> Result<()> {
    let mut stack = TestStack::new("s3down", true).await?;
    let (mut s3, id, run) = stored_then_s3_down(&mut stack, &[Role::Process, Role::Notify]).await?;
    wait_until(
        run.pool(),
        "SELECT count(*) >= 2 FROM audit_events WHERE action = 'attempt_failed'",
        "failed attempts while S3 is down",
        Duration::from_secs(60),
    )
    .await?;
    s3.start()?;
    wait_until(run.pool(), &format!("SELECT status = 'done' FROM mailings WHERE id = '{id}'"), "done after S3 came back", Duration::from_secs(120)).await?;
    let error: Option<String> =
        sqlx::query_scalar("SELECT detail->>'error' FROM audit_events WHERE action = 'attempt_failed' LIMIT 1").fetch_one(run.pool()).await?;
    assert!(error.unwrap_or_default().contains("object storage"), "the failure says what was down");
    check_filed(&run.bureau).await?;
    run.stop().await
}

/// A portal deposit stored while the test's own S3 server is up; then that server stopped and a
/// bureau with `roles` started (the bucket exists already).
async fn stored_then_s3_down(stack: &mut TestStack, roles: &[Role]) -> Result<(OwnS3, String, Running)> {
    let mut s3 = OwnS3::new(stack.dir.path());
    s3.start()?;
    stack.set("SCANBUREAU__STORAGE__ENDPOINT", &format!("http://127.0.0.1:{}", s3.port));
    let intake = Running::start(stack, &[Role::Portal]).await?;
    let id = receive_deposit(&intake.bureau, "depot.pdf", sample("portal-deposit.pdf")).await?;
    intake.shutdown().await?;
    s3.stop();
    let run = Running::start_without_bucket_check(stack, roles).await?;
    Ok((s3, id, run))
}

impl Running {
    /// Like `start`, for a bureau whose S3 server is down at start-up: the bucket exists already,
    /// so its check is skipped.
    async fn start_without_bucket_check(stack: &TestStack, roles: &[Role]) -> Result<Self> {
        let (stop, shutdown) = watch::channel(false);
        let bureau = Bureau::start_with(stack.config()?, "test", shutdown, false).await?;
        let (b, s, r) = (bureau.clone(), stop.clone(), roles.to_vec());
        let task = tokio::spawn(async move { run_roles(b, &r, s).await });
        Ok(Self { bureau, stop, task })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_reconnect_after_the_broker_drops_their_connection() -> Result<()> {
    let stack = TestStack::new("brokerdrop", true).await?;
    let run = Running::start(&stack, &Role::ALL).await?;
    // Wait until the stages consume, then have RabbitMQ close this process's connections.
    wait_until(run.pool(), "SELECT true", "database", Duration::from_secs(5)).await?;
    let conn_name = format!("scanbureau test {}", std::process::id());
    let closed = close_connections(&conn_name)?;
    assert!(closed >= 1, "the broker closed our connection");
    drop_batch(&stack.hot_folder, "lot-after-drop")?;
    wait_until(run.pool(), "SELECT count(*) = 1 FROM mailings WHERE status = 'done'", "the mailing done after the drop", LONG).await?;
    wait_until(run.pool(), "SELECT count(*) > 0 AND bool_and(status = 'sent') FROM notices", "notices sent", LONG).await?;
    check_filed(&run.bureau).await?;
    run.stop().await
}

/// Closes, on the RabbitMQ server, every connection with this name; returns how many.
/// (`scripts/stack.sh` says which node serves the tests in SCANBUREAU_RABBITMQ_NODE.)
fn close_connections(name: &str) -> Result<usize> {
    let node = std::env::var("SCANBUREAU_RABBITMQ_NODE").unwrap_or_else(|_| "rabbit@localhost".into());
    let ctl = |args: &[&str]| std::process::Command::new("timeout").args(["60", "rabbitmqctl", "-n", &node]).args(args).output();
    let out = ctl(&["list_connections", "-q", "--no-table-headers", "pid", "client_properties"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut n = 0;
    for line in text.lines().filter(|l| l.contains(name)) {
        let pid = line.split_whitespace().next().unwrap_or_default();
        let status = ctl(&["close_connection", pid, "closed by the broker-drop test"])?;
        if status.status.success() {
            n += 1;
        }
    }
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applicant_s_e_mail_naming_their_request_is_a_deposit_for_it() -> Result<()> {
    use rand::SeedableRng;
    use scanbureau_fixtures::docs::{DocKind, draw_document};
    use scanbureau_fixtures::write::{eml_bytes, jpeg_bytes};
    let stack = TestStack::new("applicant", true).await?;
    let run = Running::start(&stack, &[Role::Intake, Role::Process, Role::Notify]).await?;
    // The applicant of 0930325091042G3533 (sample registry) sends a photo of a rent receipt
    // with the numéro in the subject; then one naming another applicant's request.
    let (applicant, own, other) = ("clement.francois@example.org", "0930325091042G3533", "0590320272540G4709");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    let person = scanbureau_fixtures::people::person(&mut rng, "093", "G3533");
    let photo = jpeg_bytes(&draw_document(DocKind::QuittanceLoyer, 0, &person, 200.0, 236, &mut rng), 85);
    for (name, subject) in [("1700000010.M1P1.bureau", format!("Demande {own} : ma quittance")), ("1700000011.M1P1.bureau", format!("Pour la demande {other}"))]
    {
        let message = eml_bytes(applicant, &subject, &[("image/jpeg", "quittance.jpg", photo.clone())]);
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(stack.maildir.join(sub))?;
        }
        std::fs::write(stack.maildir.join("tmp").join(name), message)?;
        std::fs::rename(stack.maildir.join("tmp").join(name), stack.maildir.join("new").join(name))?;
    }
    wait_until(run.pool(), "SELECT count(*) = 2 FROM mailings WHERE status = 'done'", "both messages processed", LONG).await?;
    let numeros: Vec<Option<String>> =
        sqlx::query_scalar("SELECT numero_unique FROM mailings WHERE channel = 'mail' ORDER BY numero_unique NULLS LAST").fetch_all(run.pool()).await?;
    assert_eq!(numeros, [Some(own.to_string()), None], "their own request is taken, someone else's never");
    let mailing: String = sqlx::query_scalar("SELECT id FROM mailings WHERE numero_unique = $1").bind(own).fetch_one(run.pool()).await?;
    let requests: Vec<Option<String>> =
        sqlx::query_scalar("SELECT numero_unique FROM requests WHERE mailing_id = $1").bind(&mailing).fetch_all(run.pool()).await?;
    assert_eq!(requests, [Some(own.to_string())], "filed to the request it names");
    let pieces: Vec<(Option<String>, String)> =
        sqlx::query_as("SELECT numero_unique, status FROM pieces WHERE mailing_id = $1").bind(&mailing).fetch_all(run.pool()).await?;
    assert!(!pieces.is_empty() && pieces.iter().all(|(n, st)| n.as_deref() == Some(own) && st != "rejected"), "{pieces:?}");
    wait_until(run.pool(), &format!("SELECT count(*) > 0 AND bool_and(status = 'sent') FROM notices WHERE mailing_id = '{mailing}'"), "the notice sent", LONG)
        .await?;
    let to: Vec<Vec<String>> = sqlx::query_scalar("SELECT recipients FROM notices WHERE mailing_id = $1").bind(&mailing).fetch_all(run.pool()).await?;
    assert!(to.iter().all(|r| r == &[applicant.to_string()]), "the notice goes to the applicant: {to:?}");
    run.stop().await
}

/// Secure e-mail on the real IMAP server (Dovecot over TLS): a counter's message and a
/// stranger's, the intake killed (SIGKILL) after storing the first and before moving it, at
/// `hold` ("stored": not yet recorded as taken; "recorded": not yet moved). Restarted, it moves
/// that one without taking it again and takes the other: two mailings, the stranger answered
/// once, each message in its folder.
async fn imap_intake_killed_between_store_and_move(tag: &str, hold: &str) -> Result<()> {
    let mut stack = TestStack::new(tag, true).await?;
    let mailbox = TestMailbox::new(&mut stack).await?;
    let run = Running::start(&stack, &[Role::Process, Role::Notify]).await?;
    mailbox.deliver(&std::fs::read(sample("mail-deposit.eml"))?).await?;
    let stranger = "inconnu@ailleurs.example";
    let refused =
        scanbureau_fixtures::write::eml_bytes(stranger, "Mes papiers", &[("application/pdf", "papiers.pdf", std::fs::read(sample("portal-deposit.pdf"))?)]);
    mailbox.deliver(&refused).await?;

    let mut intake = worker(&stack, "intake", &[("SCANBUREAU__INTAKE__IMAP__HOLD", hold)])?;
    wait_until(run.pool(), "SELECT count(*) = 1 FROM mailings", "the first message stored", LONG).await?;
    let recorded = i64::from(hold == "recorded");
    wait_until(run.pool(), &format!("SELECT count(*) = {recorded} FROM imap_messages"), "the intake at its hold", LONG).await?;
    intake.0.kill()?;
    intake.0.wait()?;
    assert_eq!(mailbox.counts().await?, [2, 0, 0], "nothing left the mailbox");
    assert_eq!(count(run.pool(), "SELECT count(*) FROM imap_messages WHERE moved_at IS NULL").await, recorded);

    let _intake = worker(&stack, "intake", &[])?;
    wait_until(run.pool(), "SELECT count(*) = 2 FROM imap_messages WHERE moved_at IS NOT NULL", "both messages taken and moved", LONG).await?;
    assert_eq!(mailbox.counts().await?, [0, 1, 1], "one processed, one refused, none left");
    assert_eq!(count(run.pool(), "SELECT count(*) FROM mailings").await, 2, "the first message was not taken twice");
    assert_eq!(count(run.pool(), "SELECT count(*) FROM mailings WHERE outcome = 'rejected'").await, 1, "the stranger's");
    wait_until(run.pool(), "SELECT count(*) = 2 FROM mailings WHERE status = 'done'", "the counter's mailing done", LONG).await?;
    wait_until(run.pool(), "SELECT count(*) > 0 AND bool_and(status = 'sent') FROM notices", "every notice sent", LONG).await?;
    check_filed(&run.bureau).await?;
    let answered = stack.smtp.messages().iter().filter(|m| String::from_utf8_lossy(m).contains(stranger)).count();
    assert_eq!(answered, 1, "the stranger is answered once");
    let folders: Vec<String> = sqlx::query_scalar("SELECT folder FROM imap_messages ORDER BY uid").fetch_all(run.pool()).await?;
    assert_eq!(folders, [mailbox.imap.processed.clone(), mailbox.imap.failed.clone()]);
    run.stop().await
}

/// Killed stored but not recorded as taken: taken again, its content makes it the same mailing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_mail_is_taken_exactly_once_across_a_kill_9_after_its_store() -> Result<()> {
    imap_intake_killed_between_store_and_move("imapkill", "stored").await
}

/// Killed recorded as taken but not moved: only moved on the next round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_mail_is_taken_exactly_once_across_a_kill_9_before_its_move() -> Result<()> {
    imap_intake_killed_between_store_and_move("imapkill2", "recorded").await
}

/// New mail is taken while the intake waits with IDLE: with polling set to ten minutes, only the
/// server's word can bring it in within the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_mail_arriving_while_the_intake_waits_is_taken_at_once() -> Result<()> {
    let mut stack = TestStack::new("imapidle", true).await?;
    let mailbox = TestMailbox::new(&mut stack).await?;
    stack.set("SCANBUREAU__INTAKE__POLL_MS", "600000");
    let run = Running::start(&stack, &[Role::Intake]).await?;
    mailbox.deliver(&std::fs::read(sample("mail-deposit.eml"))?).await?;
    wait_until(run.pool(), "SELECT count(*) = 1 FROM imap_messages WHERE moved_at IS NOT NULL", "the first message taken", LONG).await?;
    // The intake now waits; this one arrives meanwhile.
    let stranger =
        scanbureau_fixtures::write::eml_bytes("inconnu@ailleurs.example", "Mes papiers", &[("application/pdf", "papiers.pdf", b"%PDF-1.4\n".to_vec())]);
    mailbox.deliver(&stranger).await?;
    wait_until(run.pool(), "SELECT count(*) = 2 FROM imap_messages WHERE moved_at IS NOT NULL", "the second message taken", Duration::from_secs(30)).await?;
    assert_eq!(mailbox.counts().await?, [0, 1, 1]);
    assert_eq!(count(run.pool(), "SELECT count(*) FROM mailings WHERE channel = 'mail'").await, 2);
    assert_eq!(imap_failures(&run.bureau), 0, "taken on one connection, not after a reconnect");
    run.stop().await
}

/// A message that cannot be judged now (its domain's DNS does not answer) stays in the IMAP
/// mailbox and is tried again every poll, not in a loop, while the message after it is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_a_message_that_cannot_be_taken_now_waits_without_holding_up_the_next() -> Result<()> {
    let mut stack = TestStack::new("imapstuck", true).await?;
    let mailbox = TestMailbox::new(&mut stack).await?;
    // The test's DNS knows `.example` (it has nothing there) and has no answer for `.test`.
    let dns = OwnDns::start(&[])?;
    stack.set("SCANBUREAU__INTAKE__MAIL_AUTH__CHECK", "true");
    stack.set("SCANBUREAU__INTAKE__MAIL_AUTH__RESOLVER", &format!("127.0.0.1:{}", dns.port));
    stack.set("SCANBUREAU__INTAKE__POLL_MS", "1000");
    let run = Running::start(&stack, &[Role::Intake]).await?;
    let unanswerable = scanbureau_fixtures::write::eml_bytes("quelqu.un@ailleurs.test", "Pieces", &[("application/pdf", "p.pdf", b"%PDF-1.4\n".to_vec())]);
    mailbox.deliver(&unanswerable).await?;
    mailbox.deliver(&std::fs::read(sample("mail-deposit.eml"))?).await?;
    wait_until(run.pool(), "SELECT count(*) = 1 FROM imap_messages WHERE moved_at IS NOT NULL", "the second message taken", LONG).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let tries = intake_failures(&run.bureau, "imap message");
    assert!((1..=10).contains(&tries), "the first message tried about once a second, not in a loop: {tries} tries");
    assert_eq!(imap_failures(&run.bureau), 0, "the connection was never lost for it");
    // The counter's unsigned message is answered that it could not be authenticated.
    assert_eq!(mailbox.counts().await?, [1, 0, 1]);
    run.stop().await
}

/// A server whose IMAP port must be secured with STARTTLS before any login is read the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_over_starttls_is_read_too() -> Result<()> {
    let mut stack = TestStack::new("imapstarttls", true).await?;
    let mailbox = TestMailbox::with_starttls(&mut stack).await?;
    let run = Running::start(&stack, &[Role::Intake]).await?;
    mailbox.deliver(&std::fs::read(sample("mail-deposit.eml"))?).await?;
    wait_until(run.pool(), "SELECT count(*) = 1 FROM imap_messages WHERE moved_at IS NOT NULL", "the message taken", LONG).await?;
    assert_eq!(mailbox.counts().await?, [0, 1, 0]);
    assert_eq!(imap_failures(&run.bureau), 0);
    run.stop().await
}

/// How many times this process's intake failed for `reason`, from its metrics.
fn intake_failures(b: &Bureau, reason: &str) -> u64 {
    let text = b.metrics.render(None, &[], false);
    text.lines()
        .filter(|l| l.starts_with("scanbureau_failures_total{") && l.contains("stage=\"intake\"") && l.contains(&format!("reason=\"{reason}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// How many times this process's IMAP intake lost its server.
fn imap_failures(b: &Bureau) -> u64 {
    intake_failures(b, "imap")
}

/// The IMAP server stopped for two minutes: the intake keeps trying, every failure counted,
/// and takes the mail once the server is back, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_the_imap_intake_waits_out_a_two_minute_outage_and_reads_the_mail_after() -> Result<()> {
    let mut stack = TestStack::new("imapdown", true).await?;
    let mut dovecot = OwnDovecot::start_new()?;
    let mailbox = TestMailbox::at(&mut stack, dovecot.port).await?;
    let run = Running::start(&stack, &[Role::Intake]).await?;
    mailbox.deliver(&std::fs::read(sample("mail-deposit.eml"))?).await?;
    wait_until(run.pool(), "SELECT count(*) = 1 FROM imap_messages WHERE moved_at IS NOT NULL", "the first message taken", LONG).await?;
    assert_eq!(imap_failures(&run.bureau), 0);

    dovecot.stop()?;
    tokio::time::sleep(Duration::from_secs(120)).await;
    let failures = imap_failures(&run.bureau);
    // Tried again every 2 s at most (intake.imap.retry_max_s in the tests) for two minutes.
    assert!(failures >= 20, "the intake kept trying: {failures} failures counted");
    assert!(!run.task.is_finished(), "the intake role is still running");

    dovecot.start()?;
    let stranger =
        scanbureau_fixtures::write::eml_bytes("inconnu@ailleurs.example", "Mes papiers", &[("application/pdf", "papiers.pdf", b"%PDF-1.4\n".to_vec())]);
    mailbox.deliver(&stranger).await?;
    wait_until(run.pool(), "SELECT count(*) = 2 FROM imap_messages WHERE moved_at IS NOT NULL", "the message after the outage taken", LONG).await?;
    assert_eq!(mailbox.counts().await?, [0, 1, 1]);
    assert_eq!(count(run.pool(), "SELECT count(*) FROM mailings").await, 2);
    run.stop().await
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]) } else { '=' });
        }
    }
    out
}

/// Counters' e-mail authenticated against a DNS of the test's own (dnsmasq) that publishes the
/// counter's DKIM key, SPF and a DMARC "reject" policy; the bureau's own server's trace says
/// which client handed each message over. Signed by its domain and sent from its server, the
/// message is taken; the same message altered after signing and sent from elsewhere is refused
/// as forged, audited, and nobody is answered; a counter whose domain neither signs nor
/// publishes anything is told that its message could not be authenticated. Every verdict is
/// recorded. With the DNS down, a message waits in the mailbox until it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_mail_is_taken_only_when_its_domain_signs_it_and_forged_mail_is_never_answered() -> Result<()> {
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::headers::HeaderWriter;
    use mail_auth::dkim::DkimSigner;
    let mut stack = TestStack::new("mailauth", true).await?;
    let pkcs8 = Ed25519Key::generate_pkcs8()?;
    let public = base64(&Ed25519Key::from_pkcs8_der(&pkcs8)?.public_key());
    let dkim_record = format!("v=DKIM1; k=ed25519; p={public}");
    let records = [
        ("sel._domainkey.bailleur-974.example", dkim_record.as_str()),
        ("_dmarc.bailleur-974.example", "v=DMARC1; p=reject"),
        ("bailleur-974.example", "v=spf1 ip4:192.0.2.7 -all"),
    ];
    let dns = OwnDns::start(&records)?;
    stack.set("SCANBUREAU__INTAKE__MAIL_AUTH__CHECK", "true");
    stack.set("SCANBUREAU__INTAKE__MAIL_AUTH__RESOLVER", &format!("127.0.0.1:{}", dns.port));
    let run = Running::start(&stack, &[Role::Intake, Role::Notify]).await?;
    let other_counter = "agent@bailleur-093.example";
    store::create_portal_user(run.pool(), "G3533", other_counter, "mailauth-token", "test").await?;

    let deposit = std::fs::read(sample("mail-deposit.eml"))?;
    let signature = DkimSigner::from_key(Ed25519Key::from_pkcs8_der(&pkcs8)?)
        .domain("bailleur-974.example")
        .selector("sel")
        .headers(["From", "To", "Subject", "Message-ID", "Date"])
        .sign(&deposit)?;
    // What the bureau's server writes on top of each message it accepts.
    let trace = |client: &str, sender: &str| {
        format!(
            "Return-Path: <{sender}>\r\nReceived: from mail.example ({client} [{client}])\r\n\tby mx.bureau.example (Postfix) with ESMTPS; Sat, 5 Dec 2026 10:00:00 +0100\r\n"
        )
    };
    let signed = [signature.to_header().as_bytes(), &deposit].concat();
    let text = String::from_utf8(signed.clone())?;
    assert!(text.contains("Cordialement"));
    let altered = text.replacen("Cordialement", "Cordialement, et voici un autre compte bancaire", 1);
    let counter = "pj.g3471@bailleur-974.example";
    let signed = [trace("192.0.2.7", counter).as_bytes(), &signed].concat();
    let altered = [trace("198.51.100.9", counter).as_bytes(), altered.as_bytes()].concat();
    let unsigned = scanbureau_fixtures::write::eml_bytes(other_counter, "Pieces", &[("application/pdf", "pieces.pdf", b"%PDF-1.4\n".to_vec())]);
    let unsigned = [trace("203.0.113.5", other_counter).as_bytes(), &unsigned].concat();
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(stack.maildir.join(sub))?;
    }
    for (name, message) in [("1700000020.M1P1.bureau", &signed), ("1700000021.M1P1.bureau", &altered), ("1700000022.M1P1.bureau", &unsigned)] {
        std::fs::write(stack.maildir.join("tmp").join(name), message)?;
        std::fs::rename(stack.maildir.join("tmp").join(name), stack.maildir.join("new").join(name))?;
    }
    wait_until(run.pool(), "SELECT count(*) = 3 FROM mailings", "the three messages taken", LONG).await?;
    wait_until(run.pool(), "SELECT count(*) = 3 FROM audit_events WHERE action = 'mail_authentication'", "three verdicts recorded", LONG).await?;
    let mut verdicts: Vec<String> =
        sqlx::query_scalar("SELECT detail->>'verdict' FROM audit_events WHERE action = 'mail_authentication'").fetch_all(run.pool()).await?;
    verdicts.sort();
    assert_eq!(verdicts.len(), 3);
    assert_eq!(verdicts[0], "authentic");
    assert!(verdicts[1].starts_with("forged: DMARC fails for bailleur-974.example") && verdicts[1].contains("198.51.100.9"), "{verdicts:?}");
    assert_eq!(verdicts[2], "unproven");
    // What a mailing's page says of each, read from the same records.
    let checks: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT detail FROM audit_events WHERE action = 'mail_authentication'").fetch_all(run.pool()).await?;
    let mut said: Vec<String> = checks.iter().filter_map(|d| scanbureau::web::portal::mail_origin(d).map(|(verdict, _)| verdict)).collect();
    said.sort();
    assert_eq!(said.len(), 3, "{said:?}");
    assert!(said[0].starts_with("authentique : bailleur-974.example"), "{said:?}");
    assert!(said[1].starts_with("falsifiée") && said[1].contains("198.51.100.9"), "{said:?}");
    assert!(said[2].starts_with("non prouvée : rien ne prouve que bailleur-093.example"), "{said:?}");
    let taken: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT status, outcome FROM mailings WHERE outcome IS DISTINCT FROM 'rejected'").fetch_all(run.pool()).await?;
    assert_eq!(taken.len(), 1, "only the signed message is a mailing to process: {taken:?}");
    let forged: Vec<serde_json::Value> = sqlx::query_scalar("SELECT detail FROM audit_events WHERE action = 'mail_forged'").fetch_all(run.pool()).await?;
    assert_eq!(forged.len(), 1, "{forged:?}");
    assert_eq!(forged[0]["from"], counter);
    wait_until(run.pool(), "SELECT count(*) = 1 AND bool_and(status = 'sent') FROM notices", "the one reply sent", LONG).await?;
    let to: Vec<Vec<String>> = sqlx::query_scalar("SELECT recipients FROM notices").fetch_all(run.pool()).await?;
    assert_eq!(to, [vec![other_counter.to_string()]], "the unauthenticated counter is told; the forged address never");
    let replies = stack.smtp.messages();
    assert_eq!(replies.len(), 1);
    assert!(String::from_utf8_lossy(&replies[0]).contains("authentifi"), "the reply says why");
    assert_eq!(std::fs::read_dir(stack.maildir.join(".processed/cur"))?.count(), 1);
    assert_eq!(std::fs::read_dir(stack.maildir.join(".failed/cur"))?.count(), 2);

    // The DNS down: a new message is not judged on silence; it waits, and each try is counted.
    let port = dns.port;
    drop(dns);
    let later = scanbureau_fixtures::write::eml_bytes(other_counter, "Pieces, suite", &[("application/pdf", "suite.pdf", b"%PDF-1.4\n%2\n".to_vec())]);
    let later = [trace("203.0.113.5", other_counter).as_bytes(), &later].concat();
    std::fs::write(stack.maildir.join("tmp").join("1700000023.M1P1.bureau"), &later)?;
    std::fs::rename(stack.maildir.join("tmp").join("1700000023.M1P1.bureau"), stack.maildir.join("new").join("1700000023.M1P1.bureau"))?;
    let start = std::time::Instant::now();
    while intake_failures(&run.bureau, "mail authentication") < 2 && start.elapsed() < LONG {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(intake_failures(&run.bureau, "mail authentication") >= 2, "tried and counted while the DNS is down");
    assert_eq!(count(run.pool(), "SELECT count(*) FROM mailings").await, 3, "nothing taken on silence");
    assert!(stack.maildir.join("new/1700000023.M1P1.bureau").exists(), "the message waits in the mailbox");
    let _dns = OwnDns::start_on(port, &records)?;
    wait_until(run.pool(), "SELECT count(*) = 4 FROM mailings", "the message taken once the DNS is back", LONG).await?;
    run.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_refuses_bad_uploads_with_a_clear_answer() -> Result<()> {
    let mut stack = TestStack::new("portal", true).await?;
    stack.set("SCANBUREAU__PORTAL__MAX_UPLOAD_BYTES", "100000");
    let run = Running::start(&stack, &[Role::Portal]).await?;
    let token = "portal-token";
    store::create_portal_user(run.pool(), "G3533", "agent@bailleur-093.example", token, "test").await?;
    let port = stack.http_port;
    let (status, answer) = http(port, "POST", "/api/deposits", None, b"%PDF-1.4").await?;
    assert_eq!(status, 401, "{answer}");
    let mut big = b"%PDF-1.4\n".to_vec();
    big.resize(150_000, b' ');
    let (status, answer) = http(port, "POST", "/api/deposits", Some(token), &big).await?;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"].as_str().unwrap_or_default().contains("limit"), "{answer}");
    let (status, answer) = http(port, "POST", "/api/deposits", Some(token), b"GIF89a not a pdf").await?;
    assert_eq!(status, 415, "{answer}");
    let (status, answer) = http(port, "POST", "/api/deposits?numero_unique=123", Some(token), b"%PDF-1.4").await?;
    assert_eq!(status, 422, "{answer}");
    let (status, _) = http(port, "GET", "/api/deposits/m-unknown", Some(token), b"").await?;
    assert_eq!(status, 404);
    // Nothing was recorded for any of them.
    assert_eq!(count(run.pool(), "SELECT count(*) FROM mailings").await, 0);
    // The same file from two counters is two deposits; again from the first, the first one.
    store::create_portal_user(run.pool(), "G4709", "agent@bailleur-059.example", "other-token", "test").await?;
    let pdf = b"%PDF-1.4\n% a small deposit\n".to_vec();
    let (_, first) = http(port, "POST", "/api/deposits", Some(token), &pdf).await?;
    let (_, other) = http(port, "POST", "/api/deposits", Some("other-token"), &pdf).await?;
    let (_, again) = http(port, "POST", "/api/deposits", Some(token), &pdf).await?;
    assert_ne!(first["deposit"], other["deposit"]);
    assert_eq!((&first["deposit"], &again["duplicate"]), (&again["deposit"], &serde_json::Value::Bool(true)));
    assert_eq!(other["duplicate"], false);
    let (empty, _) = http(port, "POST", "/api/deposits", Some(token), b"").await?;
    assert_eq!(empty, 400);
    let (shown, status) = http(port, "GET", &format!("/api/deposits/{}", first["deposit"].as_str().unwrap_or_default()), Some(token), b"").await?;
    assert_eq!(shown, 200, "{status}");

    // The API answers as its published description (OpenAPI 3.1) says: it describes exactly the
    // routes served, every status seen above is one it gives for its route, and the answers
    // carry every field their schema requires.
    let (code, spec) = http(port, "GET", "/api/openapi.json", None, b"").await?;
    assert_eq!(code, 200);
    assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{spec}");
    let paths: Vec<&String> = spec["paths"].as_object().context("paths")?.keys().collect();
    assert_eq!(paths, ["/api/deposits", "/api/deposits/{id}"], "the described routes are the API's");
    let seen = [
        ("post", "/api/deposits", 401),
        ("post", "/api/deposits", 413),
        ("post", "/api/deposits", 415),
        ("post", "/api/deposits", 422),
        ("post", "/api/deposits", 202),
        ("post", "/api/deposits", 400),
        ("get", "/api/deposits/{id}", 404),
        ("get", "/api/deposits/{id}", 200),
    ];
    for (method, path, code) in seen {
        assert!(spec["paths"][path][method]["responses"][code.to_string()].is_object(), "{method} {path} {code} is not described");
    }
    assert!(spec["components"]["securitySchemes"]["jeton"]["scheme"] == "bearer", "the token is described");
    for (schema, answer) in [("DepositAccepted", &first), ("DepositStatus", &status)] {
        let required = spec["components"]["schemas"][schema]["required"].as_array().with_context(|| format!("{schema} has required fields"))?;
        assert!(!required.is_empty());
        for field in required {
            let field = field.as_str().context("a field name")?;
            assert!(answer.get(field).is_some(), "{schema}: the answer lacks {field}: {answer}");
        }
    }
    run.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_mailing_in_hand() -> Result<()> {
    let stack = TestStack::new("drain", true).await?;
    let run = Running::start(&stack, &[Role::Intake, Role::Process]).await?;
    drop_batch(&stack.hot_folder, "lot-drain")?;
    wait_until(run.pool(), "SELECT count(*) = 1 FROM mailings WHERE status = 'processing'", "processing started", LONG).await?;
    let pool = run.pool().clone();
    run.stop().await?;
    let status: String = sqlx::query_scalar("SELECT status FROM mailings").fetch_one(&pool).await?;
    assert_eq!(status, "done", "the mailing in hand was finished before the process stopped");
    Ok(())
}

// ---------------------------------------------------------------- fault injection
// `cargo test -p scanbureau-tests --test service fault_` runs these alone; the outages last
// FAULT_SMTP_OUTAGE_S (75 s by default: longer than the old budget of five attempts; set 600
// for the ten-minute run).

fn outage_of(var: &str, default_s: u64) -> Duration {
    Duration::from_secs(std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default_s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_notices_wait_through_a_long_smtp_outage_and_are_sent_once() -> Result<()> {
    let outage = outage_of("FAULT_SMTP_OUTAGE_S", 75);
    let mut stack = TestStack::new("smtplong", false).await?;
    let run = Running::start(&stack, &Role::ALL).await?;
    deliver_mail(&stack.maildir, "1700000003.M3P3.bureau")?;
    wait_until(run.pool(), "SELECT count(*) = 1 FROM mailings WHERE status = 'done'", "the mailing done", LONG).await?;
    let down = Instant::now();
    while down.elapsed() < outage {
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(count(run.pool(), "SELECT count(*) FROM notices WHERE status <> 'pending'").await, 0, "no notice given up after {:?}", down.elapsed());
        assert_eq!(count(run.pool(), "SELECT count(*) FROM dead_letters").await, 0);
    }
    let tries = count(run.pool(), "SELECT min(attempts)::int8 FROM notices").await;
    assert!(tries >= 5, "still trying after {outage:?}: {tries} attempts");
    stack.smtp.start()?;
    wait_until(run.pool(), "SELECT bool_and(status = 'sent') FROM notices", "notices sent after the outage", Duration::from_secs(60)).await?;
    let notices = count(run.pool(), "SELECT count(*) FROM notices").await;
    assert_eq!(stack.smtp.messages().len() as i64, notices, "each notice once");
    run.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_mailing_that_kills_its_worker_every_time_is_given_up_visibly() -> Result<()> {
    let mut stack = TestStack::new("crashloop", true).await?;
    let work = stack.dir.path().join("work");
    stack.set("SCANBUREAU__JOB__WORK_DIR", &work.display().to_string());
    stack.set("SCANBUREAU__BROKER__DELIVERY_LIMIT", "2");
    // This process stores the mailing and watches the dead letters; the processing workers are
    // separate processes, restarted each time they die, as a service manager would.
    let run = Running::start(&stack, &[Role::Sweeper]).await?;
    let id = receive_deposit(&run.bureau, "depot.pdf", sample("portal-deposit.pdf")).await?;
    let crash_on = [("SCANBUREAU__JOB__CRASH_ON_MAILING", id.as_str())];
    let spawn_worker = |crash: bool| {
        let extra: &[(&str, &str)] = if crash { &crash_on } else { &[] };
        processing_worker(&stack, extra)
    };
    let mut crashes = 0;
    let deadline = Instant::now() + LONG;
    while count(run.pool(), &format!("SELECT count(*) FROM mailings WHERE id = '{id}' AND status = 'failed'")).await == 0 {
        assert!(Instant::now() < deadline && crashes < 10, "the mailing is still not given up after {crashes} crashes");
        let mut w = spawn_worker(true)?;
        // Dies on the mailing, or lives on when the broker gave the message up.
        match exit_within(&mut w, Duration::from_secs(60)).await {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                let status = status?;
                assert_eq!(status.signal(), Some(6), "the worker aborted on the mailing: {status}");
                crashes += 1;
            }
            Err(_) => {
                w.0.kill()?;
                w.0.wait()?;
            }
        }
    }
    assert!(crashes >= 2, "given up after {crashes} crashes");
    let (stage, reason): (String, String) = sqlx::query_as("SELECT stage, reason FROM dead_letters WHERE subject = $1").bind(&id).fetch_one(run.pool()).await?;
    assert_eq!(stage, "process");
    assert!(reason.contains("crash"), "the reason says what happened: {reason}");
    let last_error: Option<String> = sqlx::query_scalar("SELECT last_error FROM mailings WHERE id = $1").bind(&id).fetch_one(run.pool()).await?;
    assert!(last_error.is_some_and(|e| e.contains("crash")), "the console shows why");
    // The killed workers' folders, with the raw scans, are gone once a worker starts again.
    let _healthy = spawn_worker(false)?;
    let start = Instant::now();
    loop {
        let left: Vec<_> = std::fs::read_dir(&work)?.flatten().map(|e| e.file_name()).collect();
        if left.is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "work folders left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    run.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_processing_waits_through_a_long_s3_outage_and_files_once() -> Result<()> {
    let outage = outage_of("FAULT_S3_OUTAGE_S", 75);
    let mut stack = TestStack::new("s3long", true).await?;
    let (mut s3, id, run) = stored_then_s3_down(&mut stack, &[Role::Process, Role::Notify, Role::Sweeper]).await?;
    let down = Instant::now();
    while down.elapsed() < outage {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let status: String = sqlx::query_scalar("SELECT status FROM mailings WHERE id = $1").bind(&id).fetch_one(run.pool()).await?;
        assert_ne!(status, "failed", "given up after {:?} of outage", down.elapsed());
        assert_eq!(count(run.pool(), "SELECT count(*) FROM dead_letters").await, 0);
    }
    let tries = count(run.pool(), "SELECT count(*) FROM audit_events WHERE action = 'attempt_failed'").await;
    assert!(tries >= 5, "still trying after {outage:?}: {tries} failed attempts");
    // What waits, and on which server, is in the metrics.
    let (_, metrics) = http(stack.http_port, "GET", "/metrics", None, b"").await?;
    let text = metrics.as_str().unwrap_or_default().to_string();
    assert!(text.contains(r#"scanbureau_waiting_on_retry{kind="mailing",server="s3"} 1"#), "{text}");
    s3.start()?;
    wait_until(run.pool(), &format!("SELECT status = 'done' FROM mailings WHERE id = '{id}'"), "done after S3 came back", Duration::from_secs(120)).await?;
    check_filed(&run.bureau).await?;
    run.stop().await
}

/// The exit status of a worker process, if it ends within `limit`.
async fn exit_within(w: &mut Owned, limit: Duration) -> Result<Result<std::process::ExitStatus>, tokio::time::error::Elapsed> {
    tokio::time::timeout(limit, async {
        loop {
            if let Some(status) = w.0.try_wait()? {
                return Ok::<_, anyhow::Error>(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

/// The Message-ID header of a raw message.
fn message_id(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().replace("\r\n", "\n");
    head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("message-id")).map(|(_, v)| v.trim().to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_notify_worker_killed_after_the_smtp_server_accepted_sends_once_more_under_the_same_message_id() -> Result<()> {
    let stack = TestStack::new("notifykill", true).await?;
    // This process takes the mailing in and processes it; the notices are sent by separate
    // notify workers, the first of which dies right after the SMTP server accepted a notice.
    let run = Running::start(&stack, &[Role::Intake, Role::Process]).await?;
    deliver_mail(&stack.maildir, "1700000004.M4P4.bureau")?;
    wait_until(run.pool(), "SELECT count(*) = 1 FROM mailings WHERE status = 'done'", "the mailing done", LONG).await?;
    let notices = count(run.pool(), "SELECT count(*) FROM notices").await;
    assert!(notices >= 1, "the mailing has notices to send");
    let mut dying = worker(&stack, "notify", &[("SCANBUREAU__JOB__CRASH_AFTER_SMTP_ACCEPT", "true")])?;
    let status = exit_within(&mut dying, Duration::from_secs(60)).await.context("the notify worker did not die")??;
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(6), "aborted after the SMTP acceptance: {status}");
    assert_eq!(stack.smtp.messages().len(), 1, "the SMTP server accepted one notice");
    assert_eq!(count(run.pool(), "SELECT count(*) FROM notices WHERE status = 'sent'").await, 0, "none recorded as sent");
    let _healthy = worker(&stack, "notify", &[])?;
    wait_until(run.pool(), "SELECT bool_and(status = 'sent') FROM notices", "every notice sent", LONG).await?;
    let ids: Vec<String> = stack.smtp.messages().iter().map(|m| message_id(m).unwrap_or_default()).collect();
    assert_eq!(ids.len() as i64, notices + 1, "every notice once, and the interrupted one a second time: {ids:?}");
    let distinct: std::collections::BTreeSet<&String> = ids.iter().filter(|i| !i.is_empty()).collect();
    assert_eq!(distinct.len() as i64, notices, "the second copy has the first one's Message-ID: {ids:?}");
    run.stop().await
}

/// `n` portal deposits of the sample file, each a different file (a comment appended after the
/// end of the PDF), so `n` mailings.
async fn deposit_copies(b: &Bureau, dir: &Path, tag: &str, n: usize) -> Result<Vec<String>> {
    let pdf = std::fs::read(sample("portal-deposit.pdf"))?;
    let mut ids = Vec::new();
    for i in 0..n {
        let path = dir.join(format!("depot-{tag}-{i}.pdf"));
        let mut bytes = pdf.clone();
        bytes.extend_from_slice(format!("\n% copy {tag} {i}\n").as_bytes());
        std::fs::write(&path, bytes)?;
        ids.push(receive_deposit(b, &format!("depot-{tag}-{i}.pdf"), path).await?);
    }
    Ok(ids)
}

/// After a fault: every mailing done (none failed, no dead letter), every page of every report
/// accounted for, every piece once in the database and in S3, every notice sent exactly once.
async fn nothing_lost_nor_doubled(run: &Running, stack: &TestStack, mailings: i64) -> Result<()> {
    wait_until(run.pool(), &format!("SELECT count(*) = {mailings} FROM mailings WHERE status = 'done'"), "every mailing done", LONG).await?;
    wait_until(run.pool(), "SELECT count(*) > 0 AND bool_and(status = 'sent') FROM notices", "every notice sent", LONG).await?;
    assert_eq!(count(run.pool(), "SELECT count(*) FROM dead_letters").await, 0, "nothing given up");
    check_filed(&run.bureau).await?;
    let notices = count(run.pool(), "SELECT count(*) FROM notices").await;
    assert_eq!(stack.smtp.messages().len() as i64, notices, "each notice sent once");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_five_processing_workers_killed_during_ten_mailings_lose_and_double_nothing() -> Result<()> {
    let mut stack = TestStack::new("kills", true).await?;
    stack.set("SCANBUREAU__JOB__THREADS", "1");
    // This process stores the deposits and sends the notices; processing is done by separate
    // worker processes, five of which are killed in the middle of a mailing.
    let run = Running::start(&stack, &[Role::Notify, Role::Sweeper]).await?;
    let ids = deposit_copies(&run.bureau, stack.dir.path(), "kills", 10).await?;
    let mut killed: Vec<String> = Vec::new();
    let mut rng_state = 0x9e37_79b9_u32;
    while killed.len() < 5 {
        let mut w = processing_worker(&stack, &[])?;
        // Kill it in the middle of a mailing it has not been killed on yet (a message killed
        // on every delivery is given up: that is another test).
        let deadline = Instant::now() + LONG;
        let victim = loop {
            assert!(Instant::now() < deadline, "no new mailing taken after {} kills", killed.len());
            let taken: Option<String> = sqlx::query_scalar("SELECT id FROM mailings WHERE status = 'processing' LIMIT 1").fetch_optional(run.pool()).await?;
            if let Some(id) = taken.filter(|id| !killed.contains(id)) {
                break id;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 17;
        rng_state ^= rng_state << 5;
        tokio::time::sleep(Duration::from_millis(200 + u64::from(rng_state % 2500))).await;
        w.0.kill()?;
        w.0.wait()?;
        killed.push(victim);
    }
    let _healthy = processing_worker(&stack, &[])?;
    nothing_lost_nor_doubled(&run, &stack, ids.len() as i64).await?;
    let retaken = count(run.pool(), "SELECT count(*) FROM mailings WHERE attempts >= 2").await;
    assert!(retaken >= 1, "killed mailings were taken again");
    run.stop().await
}

/// A scanner batch, an e-mail (`mail` names it in the Maildir) and a portal deposit taken in,
/// once processing has started; the deposit's id.
async fn one_of_each_channel_processing(run: &Running, stack: &TestStack, mail: &str) -> Result<Vec<String>> {
    drop_batch(&stack.hot_folder, "lot")?;
    deliver_mail(&stack.maildir, mail)?;
    let ids = deposit_copies(&run.bureau, stack.dir.path(), "before", 1).await?;
    wait_until(run.pool(), "SELECT count(*) >= 1 FROM mailings WHERE status = 'processing'", "processing started", LONG).await?;
    Ok(ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_database_restart_in_the_middle_of_the_work_loses_and_doubles_nothing() -> Result<()> {
    let outage = outage_of("FAULT_DB_OUTAGE_S", 30);
    // A PostgreSQL of the test's own: the machine's serves every other test.
    let mut pg = OwnPostgres::start_new()?;
    let mut stack = TestStack::new("dbrestart", true).await?;
    stack.set("SCANBUREAU__DATABASE__URL", &pg.url("postgres"));
    let run = Running::start(&stack, &Role::ALL).await?;
    let ids = one_of_each_channel_processing(&run, &stack, "1700000005.M5P5.bureau").await?;
    pg.stop()?;
    tokio::time::sleep(outage / 2).await;
    // While the database is down, a scan still comes in: it waits in the hot folder.
    let staging = stack.hot_folder.join(".scan-during.tif");
    std::fs::copy(sample("applicant-mailing.tif"), &staging)?;
    std::fs::rename(&staging, stack.hot_folder.join("scan-during.tif"))?;
    tokio::time::sleep(outage / 2).await;
    pg.start()?;
    nothing_lost_nor_doubled(&run, &stack, 3 + ids.len() as i64).await?;
    run.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_a_broker_restart_in_the_middle_of_the_work_loses_and_doubles_nothing() -> Result<()> {
    let outage = outage_of("FAULT_BROKER_OUTAGE_S", 30);
    // A RabbitMQ node of the test's own: the machine's serves every other test.
    let mut rabbit = OwnRabbit::start_new()?;
    let mut stack = TestStack::new("brokerrestart", true).await?;
    stack.set("SCANBUREAU__BROKER__URL", &rabbit.url());
    let run = Running::start(&stack, &Role::ALL).await?;
    one_of_each_channel_processing(&run, &stack, "1700000006.M6P6.bureau").await?;
    rabbit.stop()?;
    tokio::time::sleep(outage / 2).await;
    // While the broker is down, a deposit is still taken: stored, and queued once it is back.
    let during_dir = stack.dir.path().join("during");
    std::fs::create_dir_all(&during_dir)?;
    let b = run.bureau.clone();
    let during = tokio::spawn(async move { deposit_copies(&b, &during_dir, "during", 1).await });
    tokio::time::sleep(outage / 2).await;
    rabbit.start()?;
    let during = during.await??;
    nothing_lost_nor_doubled(&run, &stack, 3 + during.len() as i64).await?;
    run.stop().await
}

/// The alert e-mails received so far: (recipients, subject, body).
fn alert_mails(stack: &TestStack) -> Vec<(String, String, String)> {
    stack
        .smtp
        .messages()
        .iter()
        .filter_map(|raw| {
            let m = mail_parser::MessageParser::default().parse(raw)?;
            let to = m.to()?.iter().filter_map(|a| a.address()).collect::<Vec<_>>().join(",");
            Some((to, m.subject()?.to_string(), m.body_text(0)?.into_owned()))
        })
        .collect()
}

/// Supervisors hear once of each mailing that becomes at risk, then once more when it is late;
/// operators hear of each incident a counter opens; an alert waits through an SMTP outage, goes
/// once the server is back, and one the server never takes is given up where the dashboard
/// shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_tell_supervisors_once_per_mailing_and_state_and_operators_of_each_incident() -> Result<()> {
    use chrono::Utc;
    use scanbureau::accounts::{Account, Role as AccountRole};
    use scanbureau::alerts;
    use scanbureau::store::people::{self, NewAccount, NewIncident};

    let mut stack = TestStack::new("alerts", true).await?;
    stack.set("SCANBUREAU__WEB__PUBLIC_URL", "https://bureau.example");
    let run = Running::start(&stack, &[]).await?;
    let b = run.bureau.clone();
    let account = |email: &'static str, role, guichet| NewAccount { email, display_name: email, role, guichet, sensitive: false, password_hash: None };
    people::create_account(&b.pool, &account("chef@bureau.example", AccountRole::Supervisor, None), "test").await?;
    people::create_account(&b.pool, &account("op@bureau.example", AccountRole::Operator, None), "test").await?;
    let agent_id = people::create_account(&b.pool, &account("agent@bailleur-093.example", AccountRole::Counter, Some("G3533")), "test").await?;
    let agent = Account {
        id: agent_id,
        email: "agent@bailleur-093.example".into(),
        display_name: String::new(),
        role: AccountRole::Counter,
        guichet: Some("G3533".into()),
        sensitive: false,
    };
    let sweep = || async { alerts::raise(&b, Utc::now()).await.and(alerts::send_pending(&b, Utc::now()).await) };
    let set_due = |id: String, interval: &'static str| {
        let pool = b.pool.clone();
        async move { sqlx::query(&format!("UPDATE mailings SET due_at = now() + interval '{interval}' WHERE id = $1")).bind(id).execute(&pool).await }
    };

    // Two mailings received now are two working days from their due date: nothing to say.
    let late = receive_deposit(&b, "lot-retard.pdf", sample("portal-deposit.pdf")).await?;
    let risky = receive_deposit(&b, "lot-risque.tif", sample("applicant-mailing.tif")).await?;
    sweep().await?;
    assert!(alert_mails(&stack).is_empty());
    // One past its due date, one due in half an hour (within the two hours' margin).
    set_due(late.clone(), "-1 hour").await?;
    set_due(risky.clone(), "30 minutes").await?;
    sweep().await?;
    let mails = alert_mails(&stack);
    assert_eq!(mails.len(), 1, "{mails:?}");
    let (to, subject, body) = &mails[0];
    assert_eq!((to.as_str(), subject.as_str()), ("chef@bureau.example", "Échéances : 1 pli en retard, 1 pli à risque"));
    assert!(body.contains(&format!("https://bureau.example/mailings/{late}")) && body.contains(&format!("https://bureau.example/mailings/{risky}")), "{body}");
    assert!(body.contains("« lot-retard.pdf »"), "{body}");
    // Nothing new: nothing sent.
    sweep().await?;
    assert_eq!(alert_mails(&stack).len(), 1);
    // The one at risk becomes late: told once more, of it alone.
    set_due(risky.clone(), "-1 minute").await?;
    sweep().await?;
    let mails = alert_mails(&stack);
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(mails[1].1, "Échéances : 1 pli en retard");
    assert!(mails[1].2.contains(&risky) && !mails[1].2.contains(&late), "{}", mails[1].2);

    // A counter opens an incident: the operators hear of it.
    let incident = NewIncident { kind: "deadline_missed", mailing_id: None, numero_unique: None, description: "Toujours rien reçu" };
    people::open_incident(&b.pool, &agent, &incident).await?.context("incident opened")?;
    sweep().await?;
    let mails = alert_mails(&stack);
    assert_eq!(mails.len(), 3, "{mails:?}");
    assert_eq!(mails[2].0, "op@bureau.example");
    assert!(mails[2].1.contains("G3533"), "{}", mails[2].1);
    assert!(!mails[2].2.contains("Toujours rien reçu"), "the incident's text stays on the page");

    // The SMTP server is down: the next alert waits, visibly, and goes once it is back.
    stack.smtp.stop();
    people::open_incident(&b.pool, &agent, &incident).await?.context("incident opened")?;
    sweep().await?;
    sweep().await?;
    let waiting: (String, i32, Option<String>) =
        sqlx::query_as("SELECT status, attempts, last_error FROM alerts ORDER BY id DESC LIMIT 1").fetch_one(&b.pool).await?;
    assert_eq!((waiting.0.as_str(), waiting.1), ("pending", 2), "{waiting:?}");
    assert!(waiting.2.is_some());
    let waits = store::waiting(&b.pool).await?;
    assert!(waits.iter().any(|w| (w.kind, w.server, w.count) == ("alert", "smtp", 1) && w.since.is_some()), "the dashboard says it waits: {waits:?}");
    stack.smtp.start()?;
    sweep().await?;
    sweep().await?;
    assert_eq!(alert_mails(&stack).len(), 4, "sent once the server is back, and once only");
    assert!(store::waiting(&b.pool).await?.is_empty());

    // Down for a day: given up, and the dashboard counts it.
    stack.smtp.stop();
    people::open_incident(&b.pool, &agent, &incident).await?.context("incident opened")?;
    alerts::raise(&b, Utc::now()).await?;
    sqlx::query("UPDATE alerts SET created_at = now() - interval '25 hours' WHERE status = 'pending'").execute(&b.pool).await?;
    alerts::send_pending(&b, Utc::now()).await?;
    assert_eq!(count(&b.pool, "SELECT count(*) FROM alerts WHERE status = 'failed'").await, 1);
    assert_eq!(store::desk::dashboard(&b.pool).await?.alerts_failed, 1);
    assert!(count(&b.pool, "SELECT count(*) FROM audit_events WHERE action = 'alert_failed'").await == 1);
    run.stop().await
}
