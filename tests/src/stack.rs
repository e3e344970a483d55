//! The real servers for the service's integration tests, each test isolated:
//! a fresh PostgreSQL database, its own queue prefix and bucket, its own SMTP sink (aiosmtpd on
//! a free port, writing to a Maildir the test reads), and, when a test needs to stop it, its own
//! SeaweedFS. PostgreSQL and RabbitMQ are the machine's (`scripts/stack.sh` makes sure they
//! run); the shared SeaweedFS is the one `scripts/stack.sh` starts, with the credentials it
//! writes to `.stack/env` (exported by `scripts/test.sh`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use scanbureau::settings::ServiceConfig;

/// A free loopback port (the OS picks) that this process has not handed out before. A port
/// picked and let go is free again to the OS until its server binds it, so two tests running
/// at once could draw the same one (suspected when a portal test and an IMAP test failed
/// together). A race with another process is still possible but rare.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> = std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0);
        let fresh = GIVEN.lock().map_or(true, |mut given| given.insert(port));
        if port == 0 || fresh {
            return port;
        }
    }
    0
}

/// A free base port whose next four ports (and their gRPC twins at +10000) look free too.
pub fn free_port_block() -> u16 {
    for _ in 0..50 {
        let p = free_port();
        if p > 1024 && p < 50000 && (0..5).all(|i| TcpListener::bind(("127.0.0.1", p + i)).is_ok() && TcpListener::bind(("127.0.0.1", p + i + 10000)).is_ok()) {
            return p;
        }
    }
    0
}

pub fn answers(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

pub fn wait_port(port: u16, what: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if answers(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{what} did not answer on 127.0.0.1:{port} within {timeout:?}")
}

/// A unique short name for this test's database, queues and bucket.
pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{tag}-{}-{:08x}", std::process::id(), nanos ^ (free_port() as u32) << 16)
}

/// A child process killed when dropped.
pub struct Owned(pub Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// aiosmtpd delivering every message it accepts into a Maildir.
pub struct SmtpSink {
    pub port: u16,
    pub maildir: PathBuf,
    child: Option<Owned>,
}

impl SmtpSink {
    /// A sink on `port` (0 = a free one), not started yet.
    pub fn new(dir: &Path, port: u16) -> Self {
        Self { port: if port == 0 { free_port() } else { port }, maildir: dir.join("sink"), child: None }
    }

    pub fn start(&mut self) -> Result<()> {
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(self.maildir.join(sub))?;
        }
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{}", self.port), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&self.maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting aiosmtpd (scripts/stack.sh installs it)")?;
        self.child = Some(Owned(child));
        wait_port(self.port, "SMTP sink", Duration::from_secs(20))
    }

    pub fn stop(&mut self) {
        self.child = None;
    }

    /// Every message delivered so far, as raw bytes, in the order they arrived.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut paths: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.maildir.join(sub)).ok())
            .flat_map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())))
            .collect();
        paths.sort_by_cached_key(|p| delivered_at(p));
        paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
    }
}

/// When a message reached the sink, from its Maildir name (`SECONDS.M<microseconds>P<pid>Q<n>.host`,
/// numbers not padded, so a plain sort of the names puts `M999` after `M1000` of the same second).
fn delivered_at(path: &Path) -> (u64, u64, String) {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut parts = name.splitn(3, '.');
    let seconds = parts.next().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
    let micros = parts.next().and_then(|u| u.strip_prefix('M')?.split('P').next()?.parse().ok()).unwrap_or(u64::MAX);
    (seconds, micros, name)
}

/// A SeaweedFS of the test's own (for the tests that stop it).
pub struct OwnS3 {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Owned>,
}

impl OwnS3 {
    pub fn new(dir: &Path) -> Self {
        Self { port: free_port_block(), dir: dir.join("s3"), child: None }
    }

    pub fn start(&mut self) -> Result<()> {
        let identities = std::env::var("SCANBUREAU_S3_IDENTITIES").context("SCANBUREAU_S3_IDENTITIES is not set: run the tests with scripts/test.sh")?;
        let script = workspace_root().join("scripts/s3-server.sh");
        let child = Command::new("bash")
            .arg(script)
            .arg(&self.dir)
            .arg(self.port.to_string())
            .arg(identities)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting SeaweedFS")?;
        self.child = Some(Owned(child));
        wait_port(self.port, "SeaweedFS", Duration::from_secs(60))?;
        Ok(())
    }

    pub fn stop(&mut self) {
        self.child = None;
        // The wrapper exec's weed, so the child is weed itself; wait for its port to close.
        let start = Instant::now();
        while answers(self.port) && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        // SeaweedFS puts its gRPC sockets in /tmp whatever its options say (the others and its
        // logs go to its own folder: scripts/s3-server.sh): this instance's, once it is gone.
        for (k, role) in ["s3", "master", "volume", "filer", "admin"].iter().enumerate() {
            let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{role}-grpc-{}.sock", u32::from(self.port) + 10_000 + k as u32));
        }
    }
}

impl Drop for OwnS3 {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The `scanbureau` binary next to this test binary (cargo builds it for the services crate's
/// own integration tests).
pub fn scanbureau_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(Path::parent).context("test binary location")?;
    let bin = dir.join("scanbureau");
    if !bin.exists() {
        bail!("{} is missing: run `cargo build -p scanbureau` (cargo test --workspace builds it)", bin.display());
    }
    Ok(bin)
}

/// One test's corner of the real stack.
pub struct TestStack {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub database_url: String,
    pub env: Vec<(String, String)>,
    pub smtp: SmtpSink,
    pub hot_folder: PathBuf,
    pub maildir: PathBuf,
    pub http_port: u16,
}

impl TestStack {
    /// A fresh database, queue prefix, bucket, SMTP sink (started unless `smtp_up` is false).
    pub async fn new(tag: &str, smtp_up: bool) -> Result<Self> {
        let name = unique(tag).replace('-', "_");
        let admin_url = "postgres://postgres@127.0.0.1:5432/postgres";
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(admin_url).await.context("PostgreSQL on 127.0.0.1:5432 (scripts/stack.sh starts it)")?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await?;
        conn.close().await?;
        let database_url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        let dir = tempfile::tempdir()?;
        let mut smtp = SmtpSink::new(dir.path(), 0);
        if smtp_up {
            smtp.start()?;
        }
        let hot_folder = dir.path().join("hot");
        let maildir = dir.path().join("Maildir");
        let http_port = free_port();
        let bucket = name.replace('_', "-");
        let env = vec![
            ("SCANBUREAU__DATABASE__URL".into(), database_url.clone()),
            ("SCANBUREAU__BROKER__PREFIX".into(), name.clone()),
            ("SCANBUREAU__BROKER__RETRY_BASE_MS".into(), "300".into()),
            // Outages in tests last seconds to minutes: retried every two seconds at most.
            ("SCANBUREAU__BROKER__RETRY_MAX_MS".into(), "2000".into()),
            ("SCANBUREAU__STORAGE__BUCKET".into(), bucket),
            ("SCANBUREAU__SMTP__PORT".into(), smtp.port.to_string()),
            ("SCANBUREAU__INTAKE__HOT_FOLDER".into(), hot_folder.display().to_string()),
            ("SCANBUREAU__INTAKE__MAILDIR".into(), maildir.display().to_string()),
            ("SCANBUREAU__INTAKE__POLL_MS".into(), "200".into()),
            ("SCANBUREAU__INTAKE__STABLE_S".into(), "1".into()),
            // E-mail is authenticated against a DNS of the test's own where a test is about it
            // (`own_servers::OwnDns`); the machine has no DNS to ask.
            ("SCANBUREAU__INTAKE__MAIL_AUTH__CHECK".into(), "false".into()),
            ("SCANBUREAU__HTTP__BIND".into(), format!("127.0.0.1:{http_port}")),
            ("SCANBUREAU__JOB__REGISTRY".into(), workspace_root().join("scans-samples/registry.json").display().to_string()),
            ("SCANBUREAU__JOB__SWEEP_S".into(), "2".into()),
            ("SCANBUREAU__JOB__THREADS".into(), "2".into()),
            // Work folders inside the test's own temporary directory, removed with it.
            ("SCANBUREAU__JOB__WORK_DIR".into(), dir.path().join("work").display().to_string()),
        ];
        Ok(Self { dir, name, database_url, env, smtp, hot_folder, maildir, http_port })
    }

    /// Sets (or replaces) one variable of the configuration.
    pub fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// The configuration: the process's environment (storage credentials from `.stack/env`)
    /// with this test's variables over it.
    pub fn config(&self) -> Result<ServiceConfig> {
        let mut vars: Vec<(String, String)> = std::env::vars().filter(|(k, _)| !self.env.iter().any(|(e, _)| e == k)).collect();
        vars.extend(self.env.iter().cloned());
        Ok(ServiceConfig::load(None, vars)?)
    }
}

/// A test leaves nothing behind, passed or failed: its database (connections still open are
/// ended), its bucket and its queues go when its stack does. Done on a thread of its own, which may block:
/// `drop` can run inside the test's runtime.
impl Drop for TestStack {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A test that runs an S3 server of its own keeps it in its temporary directory.
        let own_s3 = self.env.iter().any(|(k, _)| k == "SCANBUREAU__STORAGE__ENDPOINT");
        let config = self.config().ok();
        let blobs = if own_s3 { None } else { config.as_ref().map(|c| scanbureau::blobs::Blobs::new(&c.storage)) };
        let broker = config.map(|c| c.broker);
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres").await {
                    if let Err(e) = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut conn).await {
                        eprintln!("test database {name} not dropped: {e}");
                    }
                    let _ = conn.close().await;
                }
                if let Some(b) = blobs
                    && let Err(e) = b.remove_bucket().await
                {
                    eprintln!("test bucket of {name} not removed: {e}");
                }
                // Queues and exchanges too, when the test ended before removing them.
                if let Some(cfg) = broker
                    && let Ok(b) = scanbureau::broker::Broker::connect(&cfg, "test cleanup").await
                {
                    if let Err(e) = b.delete_topology().await {
                        eprintln!("test queues of {name} not removed: {e}");
                    }
                    b.close().await;
                }
            });
        });
        let _ = done.join();
    }
}

/// Waits until `sql` (a query returning one boolean) is true; on time-out, says where the
/// mailings and notices stand.
pub async fn wait_until(pool: &sqlx::PgPool, sql: &str, what: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        if sqlx::query_scalar::<_, bool>(sql).fetch_one(pool).await.unwrap_or(false) {
            return Ok(());
        }
        if start.elapsed() > timeout {
            let states: Vec<(String, String, Option<String>)> =
                sqlx::query_as("SELECT id, status, last_error FROM mailings").fetch_all(pool).await.unwrap_or_default();
            let notices: Vec<(i64, String, i32, Option<String>)> =
                sqlx::query_as("SELECT id, status, attempts, last_error FROM notices").fetch_all(pool).await.unwrap_or_default();
            bail!("timed out after {timeout:?} waiting for {what}; mailings {states:?}; notices {notices:?}");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}
