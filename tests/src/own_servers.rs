//! A PostgreSQL and a RabbitMQ of the test's own, for the fault tests that stop a server for
//! minutes: the machine's servers serve every other test and are not ours to stop.
//!
//! Each runs from a temporary directory of its own on a free loopback port, as the servers'
//! own system user when the tests run as root (PostgreSQL refuses to run as root; Debian's
//! `rabbitmq-server` switches to its user), and is stopped and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::stack::{answers, free_port, wait_port};

/// Waits until nothing answers on `port` any more, for `timeout` at most.
fn wait_port_closed(port: u16, timeout: Duration) {
    let start = std::time::Instant::now();
    while answers(port) && start.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// `program args` as `user` when running as root, else as ourselves.
fn as_user(user: &str, program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", user, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A private directory the server's user owns.
fn server_dir(prefix: &str, user: &str) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
    if is_root() {
        let ok = Command::new("chown").args(["-R", &format!("{user}:")]).arg(dir.path()).status()?.success();
        if !ok {
            bail!("could not give {} to the {user} user", dir.path().display());
        }
    }
    Ok(dir)
}

fn run(mut c: Command, what: &str) -> Result<()> {
    let out = c.stdin(Stdio::null()).output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A PostgreSQL cluster of the test's own, trust auth on 127.0.0.1.
pub struct OwnPostgres {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    running: bool,
}

impl OwnPostgres {
    /// Makes the cluster (initdb) and starts it.
    pub fn start_new() -> Result<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL's programs (/usr/lib/postgresql; scripts/stack.sh installs them)")?
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .max()
            .context("no initdb under /usr/lib/postgresql")?;
        let dir = server_dir("scanbureau-pg", "postgres")?;
        let mut init = as_user("postgres", &bin.join("initdb"));
        init.arg("-D").arg(dir.path().join("data")).args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]);
        run(init, "initdb")?;
        let mut pg = Self { port: free_port(), bin, dir, running: false };
        pg.start()?;
        Ok(pg)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn start(&mut self) -> Result<()> {
        let d = self.dir.path();
        let mut c = as_user("postgres", &self.bin.join("pg_ctl"));
        c.arg("-D").arg(d.join("data")).arg("-l").arg(d.join("log")).arg("-w").arg("-t").arg("60");
        c.arg("-o").arg(format!("-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off", self.port, d.display()));
        c.arg("start");
        run(c, "pg_ctl start")?;
        self.running = true;
        wait_port(self.port, "the test's PostgreSQL", Duration::from_secs(30))
    }

    /// Stops the server at once, as a crash would (`immediate`: no checkpoint, connections cut).
    pub fn stop(&mut self) -> Result<()> {
        let mut c = as_user("postgres", &self.bin.join("pg_ctl"));
        c.arg("-D").arg(self.dir.path().join("data")).args(["-m", "immediate", "-w", "stop"]);
        run(c, "pg_ctl stop")?;
        self.running = false;
        Ok(())
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop();
        }
    }
}

/// A RabbitMQ node of the test's own (its own name, ports and data) on 127.0.0.1.
pub struct OwnRabbit {
    pub port: u16,
    pub node: String,
    dir: tempfile::TempDir,
    running: bool,
}

impl OwnRabbit {
    pub fn start_new() -> Result<Self> {
        let dir = server_dir("scanbureau-rabbit", "rabbitmq")?;
        let port = free_port();
        let node = format!("sbtest{port}@localhost");
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n")?;
        std::fs::write(dir.path().join("rabbitmq.conf"), format!("listeners.tcp.local = 127.0.0.1:{port}\nloopback_users.guest = true\n"))?;
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
        }
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "rabbitmq:"]).arg(dir.path());
                    c
                },
                "chown",
            )?;
        }
        let mut r = Self { port, node, dir, running: false };
        r.start()?;
        Ok(r)
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Starts the node (the same data each time: queues and messages survive a restart).
    pub fn start(&mut self) -> Result<()> {
        let d = self.dir.path();
        let dist = self.port.checked_add(10000).filter(|p| *p < 65000).unwrap_or(self.port - 10000);
        let mut c = Command::new("rabbitmq-server");
        c.arg("-detached")
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .current_dir(d);
        run(c, "rabbitmq-server -detached")?;
        self.running = true;
        wait_port(self.port, "the test's RabbitMQ node", Duration::from_secs(120))
    }

    pub fn stop(&mut self) -> Result<()> {
        let mut c = Command::new("timeout");
        c.args(["60", "rabbitmqctl", "-n", &self.node, "stop"]);
        run(c, "rabbitmqctl stop")?;
        self.running = false;
        wait_port_closed(self.port, Duration::from_secs(30));
        Ok(())
    }
}

impl Drop for OwnRabbit {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop();
        }
    }
}

/// A program of Debian's /usr/sbin (not on a non-root user's PATH).
fn sbin(name: &str) -> PathBuf {
    let p = Path::new("/usr/sbin").join(name);
    if p.exists() { p } else { PathBuf::from(name) }
}

/// A Dovecot of the test's own, on a free loopback port: the configuration, certificate and
/// account of the one `scripts/stack.sh` runs, with its own directories and mail.
pub struct OwnDovecot {
    pub port: u16,
    conf: PathBuf,
    _dir: tempfile::TempDir,
    running: bool,
}

impl OwnDovecot {
    pub fn start_new() -> Result<Self> {
        let stack_conf = crate::stack::workspace_root().join(".stack/dovecot/dovecot.conf");
        let text = std::fs::read_to_string(&stack_conf).with_context(|| format!("reading {} (scripts/stack.sh writes it)", stack_conf.display()))?;
        // The user Dovecot keeps mail as, when it runs as root.
        let dir = server_dir("scanbureau-imap", "dovecot")?;
        let d = dir.path();
        let port = free_port();
        let setting = |line: &str, key: &str| line.trim_start().starts_with(key);
        // The IMAPS listener gets the test's port; the STARTTLS one is closed (port 0).
        let mut imaps = false;
        let own: Vec<String> = text
            .lines()
            .map(|line| {
                if setting(line, "inet_listener") {
                    imaps = line.contains("imaps");
                }
                if setting(line, "base_dir =") {
                    format!("base_dir = {}", d.join("run").display())
                } else if setting(line, "state_dir =") {
                    format!("state_dir = {}", d.join("state").display())
                } else if setting(line, "instance_name =") {
                    format!("instance_name = scanbureau-test-{port}")
                } else if setting(line, "log_path =") {
                    format!("log_path = {}", d.join("dovecot.log").display())
                } else if setting(line, "port =") {
                    format!("    port = {}", if imaps { port } else { 0 })
                } else if setting(line, "args = uid=") {
                    let (head, _) = line.split_once("home=").unwrap_or((line, ""));
                    format!("{head}home={}/mail/%u", d.display())
                } else {
                    line.to_string()
                }
            })
            .collect();
        let conf = d.join("dovecot.conf");
        std::fs::write(&conf, own.join("\n") + "\n")?;
        let mut me = Self { port, conf, _dir: dir, running: false };
        me.start()?;
        Ok(me)
    }

    pub fn start(&mut self) -> Result<()> {
        // Dovecot's processes outlive the command and keep what they inherit open: its output
        // goes to a file, not to a pipe nobody would ever see closed.
        let errors = self.conf.with_file_name("start.err");
        let status = Command::new(sbin("dovecot"))
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errors)?)
            .status()?;
        if !status.success() {
            bail!("dovecot failed: {}", std::fs::read_to_string(&errors).unwrap_or_default());
        }
        self.running = true;
        wait_port(self.port, "the test's Dovecot", Duration::from_secs(30))
    }

    /// Stops the server; its connections are cut.
    pub fn stop(&mut self) -> Result<()> {
        let mut c = Command::new(sbin("doveadm"));
        c.arg("-c").arg(&self.conf).arg("stop");
        run(c, "doveadm stop")?;
        self.running = false;
        wait_port_closed(self.port, Duration::from_secs(30));
        Ok(())
    }
}

impl Drop for OwnDovecot {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop();
        }
    }
}

/// A DNS server of the test's own (dnsmasq from Debian) on a free loopback port: it answers the
/// TXT records it is given, and "no such name" for every other name under `.example`, the
/// domain of the tests' addresses.
pub struct OwnDns {
    pub port: u16,
    _server: crate::stack::Owned,
}

impl OwnDns {
    /// `records`: (name, text) pairs, each text one string without commas.
    pub fn start(records: &[(&str, &str)]) -> Result<Self> {
        Self::start_on(free_port(), records)
    }

    /// The same on a given port (a server started again where its clients expect it).
    pub fn start_on(port: u16, records: &[(&str, &str)]) -> Result<Self> {
        let mut c = Command::new(sbin("dnsmasq"));
        c.args([
            "--keep-in-foreground",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--local=/example/",
            "--pid-file=",
        ]);
        c.arg(format!("--port={port}"));
        for (name, text) in records {
            c.arg(format!("--txt-record={name},{text}"));
        }
        let server = crate::stack::Owned(
            c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().context("starting dnsmasq (scripts/stack.sh installs it)")?,
        );
        wait_port(port, "the test's dnsmasq", Duration::from_secs(10))?;
        Ok(Self { port, _server: server })
    }
}
