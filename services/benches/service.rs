//! Throughput of the whole service on the real stack (PostgreSQL, RabbitMQ, SeaweedFS,
//! aiosmtpd; `scripts/stack.sh` starts them and `.stack/env` holds the S3 credentials):
//! a stream of generated counter mailings (300 dpi JPEG, OCR included) is dropped into the
//! hot folder at once; the bench waits until every mailing is filed and every notice accepted
//! by the SMTP sink, and prints pages/s, the latency from drop to last notice, memory, and the
//! hours one machine needs for the national load. Run once per number of processing workers.
//!
//!   source .stack/env && cargo bench -p scanbureau --bench service
//!
//! BENCH_PAGES (10000): pages in the stream; BENCH_DISTINCT (2000): pages actually generated
//! (the rest are copies, see `generate`); BENCH_WORKERS ("1,2"): worker processes to try;
//! BENCH_REQUESTS (10): requests per mailing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scanbureau::bureau::Bureau;
use scanbureau::serve::{Role, run_roles};
use scanbureau::settings::ServiceConfig;
use scanbureau_fixtures::mailing::{MailingKind, Scanning, generate_into, random_spec};
use scanbureau_fixtures::people::registry_json;
use scanbureau_fixtures::write::jpeg_bytes;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// Generates distinct mailings of about `distinct` pages in all (each a folder of JPEGs), then
/// copies them until `pages` pages: each copy differs from its original by a JPEG comment in
/// its first page, so it is a distinct mailing to the service (its own id, its own full
/// processing) while its pixels, and so its work, are the original's. Returns the folders and
/// the registry snapshot covering everyone in them.
fn generate(dir: &Path, pages: usize, distinct: usize, requests: usize) -> (Vec<(PathBuf, usize)>, PathBuf) {
    use rayon::prelude::*;
    let t0 = Instant::now();
    let per_mailing = requests * 9 + 1;
    let count = distinct.div_ceil(per_mailing).max(1);
    let made: Vec<_> = (0..count)
        .into_par_iter()
        .map(|k| {
            let spec = random_spec(1000 + k as u64, MailingKind::Guichet, requests, Scanning { upside_down_rate: 0.05, noise: 4.0, ..Scanning::default() });
            let folder = dir.join(format!("lot-{k:05}-0"));
            std::fs::create_dir_all(&folder).expect("mkdir");
            let (truth, people) = generate_into(&spec, &mut |i, page| {
                std::fs::write(folder.join(format!("scan-{:05}.jpg", i + 1)), jpeg_bytes(&page, 75)).expect("write page");
            });
            (folder, truth.pages.len(), people, spec.guichet.clone())
        })
        .collect();
    let mut people = Vec::new();
    let mut guichets: Vec<scanbureau_fixtures::people::Guichet> = Vec::new();
    let mut mailings = Vec::new();
    for (folder, n, p, g) in made {
        mailings.push((folder, n));
        people.extend(p);
        if !guichets.iter().any(|x| x.numero == g.numero) {
            guichets.push(g);
        }
    }
    let distinct_pages: usize = mailings.iter().map(|(_, n)| n).sum();
    let originals = mailings.clone();
    let mut total = distinct_pages;
    let mut copy = 1;
    'copies: loop {
        for (folder, n) in &originals {
            if total >= pages {
                break 'copies;
            }
            let name = folder.file_name().expect("name").to_string_lossy().replace("-0", &format!("-{copy}"));
            let target = dir.join(name);
            std::fs::create_dir_all(&target).expect("mkdir");
            let mut files: Vec<PathBuf> = std::fs::read_dir(folder).expect("ls").flatten().map(|e| e.path()).collect();
            files.sort();
            for (i, f) in files.iter().enumerate() {
                let to = target.join(f.file_name().expect("name"));
                if i == 0 {
                    // JPEG comment segment (FF FE) right after the start-of-image marker.
                    let bytes = std::fs::read(f).expect("read");
                    let note = format!("copy {copy}");
                    let mut out = bytes[..2].to_vec();
                    out.extend_from_slice(&[0xFF, 0xFE, 0, (note.len() + 2) as u8]);
                    out.extend_from_slice(note.as_bytes());
                    out.extend_from_slice(&bytes[2..]);
                    std::fs::write(&to, out).expect("write");
                } else {
                    std::fs::hard_link(f, &to).expect("link");
                }
            }
            mailings.push((target, *n));
            total += n;
        }
        copy += 1;
    }
    let registry = dir.join("registry.json");
    std::fs::write(&registry, registry_json(&people, &guichets)).expect("registry");
    println!(
        "generated {count} distinct mailings ({distinct_pages} pages) in {:.0} s; with copies, {} mailings and {total} pages",
        t0.elapsed().as_secs_f64(),
        mailings.len()
    );
    (mailings, registry)
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn peak_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok())))
        .unwrap_or(0)
}

async fn run(workers: usize, mailings: &[(PathBuf, usize)], registry: &Path, work: &Path) {
    let name = format!("bench_{}_{workers}", std::process::id());
    let mut admin = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres").await.expect("PostgreSQL on 127.0.0.1:5432 (scripts/stack.sh)");
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await.expect("create database");
    let hot = work.join(format!("hot-{workers}"));
    let smtp_dir = work.join(format!("mail-{workers}"));
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(smtp_dir.join(sub)).expect("mkdir");
    }
    let smtp_port = free_port();
    let _sink = Killed(
        Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{smtp_port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&smtp_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd (scripts/stack.sh installs it)"),
    );
    let env: Vec<(String, String)> = vec![
        ("SCANBUREAU__DATABASE__URL".into(), format!("postgres://postgres@127.0.0.1:5432/{name}")),
        ("SCANBUREAU__BROKER__PREFIX".into(), name.clone()),
        ("SCANBUREAU__STORAGE__BUCKET".into(), name.replace('_', "-")),
        ("SCANBUREAU__SMTP__PORT".into(), smtp_port.to_string()),
        ("SCANBUREAU__INTAKE__HOT_FOLDER".into(), hot.display().to_string()),
        ("SCANBUREAU__INTAKE__POLL_MS".into(), "500".into()),
        ("SCANBUREAU__HTTP__BIND".into(), format!("127.0.0.1:{}", free_port())),
        ("SCANBUREAU__JOB__REGISTRY".into(), registry.display().to_string()),
    ];
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.extend(env.iter().cloned());
    let config = ServiceConfig::load(None, vars).expect("configuration (source .stack/env first)");
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    // Intake, notices and sweeper in this process; processing in `workers` worker processes.
    let bureau: Arc<Bureau> = Bureau::start(config, "bench", shutdown).await.expect("bureau starts");
    let roles = tokio::spawn({
        let (b, s) = (bureau.clone(), stop.clone());
        async move { run_roles(b, &[Role::Intake, Role::Notify, Role::Sweeper], s).await }
    });
    let mut procs = Vec::new();
    for _ in 0..workers {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scanbureau"));
        cmd.args(["worker", "process"]).envs(env.iter().cloned()).env("SCANBUREAU__HTTP__BIND", format!("127.0.0.1:{}", free_port()));
        procs.push(Killed(cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("worker")));
    }
    let pages: usize = mailings.iter().map(|(_, p)| p).sum();
    std::fs::create_dir_all(&hot).expect("hot folder");
    let t0 = Instant::now();
    for (folder, _) in mailings {
        let target = hot.join(folder.file_name().expect("name"));
        // The same generated batches are used for each run: copy by hard links, then mark.
        std::fs::create_dir_all(&target).expect("mkdir");
        for e in std::fs::read_dir(folder).expect("ls").flatten() {
            std::fs::hard_link(e.path(), target.join(e.file_name())).expect("link");
        }
        std::fs::write(target.join(".done"), b"").expect("marker");
    }
    let mut peaks = vec![0u64; workers];
    let n = mailings.len() as i64;
    loop {
        for (i, p) in procs.iter().enumerate() {
            peaks[i] = peaks[i].max(peak_kb(p.0.id()));
        }
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM mailings WHERE status = 'done'").fetch_one(&bureau.pool).await.unwrap_or(0);
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM notices WHERE status <> 'sent'").fetch_one(&bureau.pool).await.unwrap_or(1);
        if done == n && pending == 0 {
            break;
        }
        if t0.elapsed() > Duration::from_secs(4 * 3600) {
            println!("  gave up after 4 h: {done}/{n} mailings done");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let latencies: Vec<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM max(n.sent_at) - m.received_at)::float8 FROM mailings m JOIN notices n ON n.mailing_id = m.id GROUP BY m.id ORDER BY 1",
    )
    .fetch_all(&bureau.pool)
    .await
    .unwrap_or_default();
    let pct = |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN);
    let stored_pages: i64 = sqlx::query_scalar("SELECT COALESCE(sum(pages), 0)::int8 FROM mailings").fetch_one(&bureau.pool).await.unwrap_or(0);
    let pieces: i64 = sqlx::query_scalar("SELECT count(*) FROM pieces").fetch_one(&bureau.pool).await.unwrap_or(0);
    let notices: i64 = sqlx::query_scalar("SELECT count(*) FROM notices WHERE status = 'sent'").fetch_one(&bureau.pool).await.unwrap_or(0);
    let rate = pages as f64 / secs;
    println!("== {workers} processing worker process(es), 2 cores: {} mailings, {pages} pages ({stored_pages} accounted in reports)", mailings.len());
    println!("  {secs:.0} s from first drop to last notice = {rate:.1} pages/s; {pieces} pieces filed, {notices} notices accepted by SMTP");
    println!("  drop-to-last-notice latency per mailing (all dropped at once): p50 {:.0} s, p95 {:.0} s, max {:.0} s", pct(0.5), pct(0.95), pct(1.0));
    println!(
        "  peak memory: workers {} MB; intake+notify process {} MB",
        peaks.iter().map(|k| format!("{:.0}", *k as f64 / 1024.0)).collect::<Vec<_>>().join(" + "),
        peak_kb(std::process::id()) / 1024
    );
    println!("  national load on this machine: 15,000 pages in {:.1} h, 30,000 pages in {:.1} h", 15000.0 / rate / 3600.0, 30000.0 / rate / 3600.0);
    let _ = stop.send(true);
    drop(procs);
    let _ = roles.await;
    // Leave no queues behind.
    if let Ok(broker) = scanbureau::broker::Broker::connect(&bureau.config.broker, "bench cleanup").await {
        let _ = broker.delete_topology().await;
        broker.close().await;
    }
}

use sqlx::Connection;

fn main() {
    let pages = env_usize("BENCH_PAGES", 10_000);
    let requests = env_usize("BENCH_REQUESTS", 10);
    let workers: Vec<usize> = std::env::var("BENCH_WORKERS").unwrap_or_else(|_| "1,2".into()).split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let dir = tempfile::tempdir().expect("tmp");
    let distinct = env_usize("BENCH_DISTINCT", 2_000).min(pages);
    let (mailings, registry) = generate(&dir.path().join("gen"), pages, distinct, requests);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    for w in workers {
        rt.block_on(run(w, &mailings, &registry, dir.path()));
    }
}
