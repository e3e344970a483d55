//! What the browser-side tests need: the bureau as a real process (its log kept, to check what
//! it writes), and a small HTTP client that keeps cookies like a browser, for the security
//! tests that send what a browser would not.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::stack::{Owned, TestStack, scanbureau_bin, wait_port};

/// `scanbureau worker ROLES...` as a child process, logging at debug level to a file.
pub struct Server {
    pub child: Owned,
    pub log: PathBuf,
    pub port: u16,
}

impl Server {
    pub fn start(stack: &TestStack, roles: &[&str], extra_env: &[(&str, &str)]) -> Result<Self> {
        let log = stack.dir.path().join(format!("server-{}.log", roles.join("-")));
        let file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(scanbureau_bin()?);
        cmd.arg("worker").args(roles).stdout(Stdio::from(file.try_clone()?)).stderr(Stdio::from(file));
        cmd.envs(stack.env.iter().cloned()).env("RUST_LOG", "debug,hyper=info,h2=info,lapin=info,aws=info").env("NO_COLOR", "1");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = Owned(cmd.spawn().context("starting the scanbureau worker")?);
        let port = stack.http_port;
        if let Err(e) = wait_port(port, "the bureau's HTTP server", Duration::from_secs(180)) {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("{e}; its log:\n{}", &text[text.len().saturating_sub(4000)..]);
        }
        Ok(Self { child, log, port })
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Creates a browser account through the command line, the password on standard input.
pub fn add_account(stack: &TestStack, email: &str, password: &str, role: &str, guichet: Option<&str>, sensitive: bool) -> Result<()> {
    let mut cmd = Command::new(scanbureau_bin()?);
    cmd.args(["admin", "add-account", "--email", email, "--role", role, "--name", email.split('@').next().unwrap_or(email)]);
    if let Some(g) = guichet {
        cmd.args(["--guichet", g]);
    }
    if sensitive {
        cmd.arg("--sensitive");
    }
    cmd.envs(stack.env.iter().cloned()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().context("stdin")?;
        writeln!(stdin, "{password}")?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("add-account {email}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    /// The value of the first `name="csrf"` field of a page.
    pub fn csrf(&self) -> Option<String> {
        let text = self.text();
        let at = text.find(r#"name="csrf" value=""#)? + r#"name="csrf" value=""#.len();
        Some(text[at..].split('"').next()?.to_string())
    }
}

/// A cookie-keeping client of one server (one request per connection).
pub struct Client {
    pub port: u16,
    pub cookies: BTreeMap<String, String>,
}

/// Form encoding of `pairs`.
pub fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let enc = |s: &str| {
        s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect::<String>()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&").into_bytes()
}

impl Client {
    pub fn new(port: u16) -> Self {
        Self { port, cookies: BTreeMap::new() }
    }

    pub async fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Answer> {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n", self.port, body.len());
        if !self.cookies.is_empty() {
            let c: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            head.push_str(&format!("Cookie: {}\r\n", c.join("; ")));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await?;
        // A refused upload may be answered before the body is all sent.
        let _ = s.write_all(body).await;
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw).await;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no HTTP header end")?;
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).context("no HTTP status")?;
        let headers: Vec<(String, String)> = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
        let mut body = raw[split + 4..].to_vec();
        if headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")) {
            body = dechunk(&body);
        }
        for (_, v) in headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie")) {
            if let Some((name, rest)) = v.split(';').next().and_then(|kv| kv.split_once('=')).map(|(k, val)| (k.to_string(), val.to_string())) {
                if v.contains("Max-Age=0") || rest.is_empty() {
                    self.cookies.remove(&name);
                } else {
                    self.cookies.insert(name, rest);
                }
            }
        }
        Ok(Answer { status, headers, body })
    }

    pub async fn get(&mut self, path: &str) -> Result<Answer> {
        self.request("GET", path, &[], b"").await
    }

    pub async fn post_form(&mut self, path: &str, pairs: &[(&str, &str)]) -> Result<Answer> {
        self.request("POST", path, &[("Content-Type", "application/x-www-form-urlencoded")], &form(pairs)).await
    }

    /// Signs in through the login page, as a browser does.
    pub async fn login(&mut self, email: &str, password: &str) -> Result<Answer> {
        let page = self.get("/login").await?;
        let csrf = page.csrf().context("the login page has a CSRF field")?;
        self.post_form("/login", &[("csrf", &csrf), ("email", email), ("password", password)]).await
    }

    /// The CSRF token of the signed-in session (read off a page).
    pub async fn session_csrf(&mut self, page: &str) -> Result<String> {
        let a = self.get(page).await?;
        a.csrf().with_context(|| format!("{page} ({}) has a CSRF field", a.status))
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
    out
}

/// A portal deposit of one request whose pieces include a sensitive one (an ordonnance de
/// protection) and an ordinary one (a rent receipt), with its registry snapshot: written to
/// `dir`. Returns (the PDF, the registry, the request's counter, a second counter).
pub fn sensitive_deposit(dir: &std::path::Path) -> Result<(PathBuf, PathBuf, String, String)> {
    use rand::SeedableRng;
    use scanbureau_fixtures::catalogue::{PlanDoc, Subject};
    use scanbureau_fixtures::docs::DocKind;
    use scanbureau_fixtures::mailing::{MailingKind, Scanning, generate, random_spec};
    let scanning = Scanning { duplex: false, upside_down_rate: 0.0, faint_qr_rate: 0.0, holes_rate: 0.0, ..Scanning::default() };
    let mut spec = random_spec(2026, MailingKind::Portal, 1, scanning);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let ordonnance = PlanDoc::of_type("ORDONNANCE_PROTECTION", Subject::Demandeur, &mut rng).context("the catalogue has an ordonnance de protection")?;
    spec.requests[0].docs = vec![DocKind::Plan(ordonnance), DocKind::QuittanceLoyer];
    let g = generate(&spec);
    let pdf = dir.join("depot-sensible.pdf");
    std::fs::write(&pdf, scanbureau_fixtures::write::pdf_bytes(&g.pages, 80, false))?;
    let other = scanbureau_fixtures::people::guichet(&mut rng);
    let registry = dir.join("registry.json");
    std::fs::write(&registry, scanbureau_fixtures::people::registry_json(&g.registry_people, &[spec.guichet.clone(), other.clone()]))?;
    Ok((pdf, registry, spec.guichet.numero, other.numero))
}
