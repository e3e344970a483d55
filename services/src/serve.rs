//! `scanbureau serve` (every role in one process, for small sites) and `scanbureau worker ROLE`
//! (one role per process, to scale out), plus the administration commands they need.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use tokio::sync::watch;

use crate::bureau::Bureau;
use crate::settings::ServiceConfig;
use crate::{http, intake, stages, store};

/// A role a process can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// The scanners' hot folder, the secure-mail Maildir and IMAP mailbox (those configured).
    Intake,
    /// The portal API (and health, readiness, metrics).
    Portal,
    /// Cuts, classifies and files stored mailings.
    Process,
    /// Sends the outbox's notices.
    Notify,
    /// Re-queues lost work and deletes raw mailings past their retention.
    Sweeper,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Intake, Role::Portal, Role::Process, Role::Notify, Role::Sweeper];
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Intake => "intake",
            Role::Portal => "portal",
            Role::Process => "process",
            Role::Notify => "notify",
            Role::Sweeper => "sweeper",
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct ServiceArgs {
    /// Configuration file (TOML, layout of services/data/service.toml); SCANBUREAU__... variables override it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand, Clone)]
pub enum AdminCommand {
    /// Creates a portal user for a counter and prints its API token (shown only once).
    AddUser {
        #[arg(long)]
        guichet: String,
        #[arg(long)]
        email: String,
    },
    /// Creates a browser account, or resets one (new password, role, counter). The password
    /// is read from standard input (one line), never from the command line.
    AddAccount {
        #[arg(long)]
        email: String,
        /// counter, operator, supervisor or admin (who manages the accounts in the browser).
        #[arg(long, value_parser = ["counter", "operator", "supervisor", "admin"])]
        role: String,
        /// The counter of a counter's agent (required for role counter).
        #[arg(long)]
        guichet: Option<String>,
        /// The name shown in the pages.
        #[arg(long, default_value = "")]
        name: String,
        /// May open pieces the filing plan marks sensitive.
        #[arg(long)]
        sensitive: bool,
    },
    /// Loads a registry snapshot (JSON of the report contract) into the database.
    LoadRegistry { file: PathBuf },
}

/// Loads the configuration, or says what is wrong with it.
pub fn load_config(args: &ServiceArgs) -> Result<ServiceConfig> {
    let config = ServiceConfig::from_env(args.config.as_deref())?;
    tracing::debug!(?config, "configuration");
    Ok(config)
}

/// Turns SIGINT/SIGTERM into the shutdown signal.
pub fn shutdown_on_signals() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(false);
    let sender = tx.clone();
    tokio::spawn(async move {
        let term = async {
            #[cfg(unix)]
            if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                s.recv().await;
                return;
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        tracing::info!("shutting down: finishing the work in hand");
        let _ = sender.send(true);
    });
    (tx, rx)
}

/// Runs the given roles until shutdown; returns the first role's failure, if any.
pub async fn run_roles(bureau: Arc<Bureau>, roles: &[Role], stop: watch::Sender<bool>) -> Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    let http_roles = roles.contains(&Role::Portal);
    // Every process answers health, readiness and metrics; the portal role adds the API.
    let listener = tokio::net::TcpListener::bind(bureau.config.http_addr()).await.with_context(|| format!("listening on {}", bureau.config.http.bind))?;
    tracing::info!(addr = %listener.local_addr()?, "HTTP listening");
    {
        let b = bureau.clone();
        let mut shutdown = bureau.shutdown.clone();
        tasks.spawn(async move {
            axum::serve(listener, http::router(b, http_roles).into_make_service_with_connect_info::<std::net::SocketAddr>())
                .with_graceful_shutdown(async move {
                    let _ = shutdown.wait_for(|s| *s).await;
                })
                .await
                .context("HTTP server")
                .map(|_| "http")
        });
    }
    for role in roles {
        let b = bureau.clone();
        match role {
            Role::Portal => {}
            Role::Intake => {
                if b.config.intake.hot_folder.is_empty() && b.config.intake.maildir.is_empty() && !b.config.intake.imap.enabled() {
                    tracing::warn!("intake role without intake.hot_folder, intake.maildir nor intake.imap.host: nothing to watch");
                }
                if b.config.intake.imap.enabled() {
                    let b = b.clone();
                    tasks.spawn(async move { crate::imap_intake::run_imap(b).await.map(|_| "imap") });
                }
                if !b.config.intake.hot_folder.is_empty() {
                    let b = b.clone();
                    tasks.spawn(async move { intake::run_hot_folder(b).await.map(|_| "hot folder") });
                }
                if !b.config.intake.maildir.is_empty() {
                    tasks.spawn(async move { intake::run_maildir(b).await.map(|_| "maildir") });
                }
            }
            Role::Process => {
                tasks.spawn(async move { stages::run_process_stage(b).await.map(|_| "process") });
            }
            Role::Notify => {
                tasks.spawn(async move { stages::run_notify_stage(b).await.map(|_| "notify") });
            }
            Role::Sweeper => {
                let watcher = b.clone();
                tasks.spawn(async move { stages::run_sweeper(b).await.map(|_| "sweeper") });
                tasks.spawn(async move {
                    crate::broker::watch_dead_letters(&watcher.broker, watcher.shutdown.clone(), stages::dead_letter_hook(watcher.clone())).await;
                    Ok("dead letters")
                });
            }
        }
    }
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(name)) => tracing::info!(role = name, "stopped"),
            Ok(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "a role failed; stopping the process");
                first_error.get_or_insert(e);
                let _ = stop.send(true);
            }
            Err(e) => {
                tracing::error!(error = %e, "a role panicked; stopping the process");
                first_error.get_or_insert(anyhow::anyhow!("a role panicked: {e}"));
                let _ = stop.send(true);
            }
        }
    }
    bureau.broker.close().await;
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `serve` and `worker ROLE`.
pub async fn serve(args: &ServiceArgs, roles: &[Role]) -> Result<()> {
    let config = load_config(args)?;
    let (stop, shutdown) = shutdown_on_signals();
    let name = if roles.len() == Role::ALL.len() { "serve".to_string() } else { roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join("+") };
    let bureau = Bureau::start(config, &name, shutdown).await?;
    tracing::info!(roles = %name, "bureau started");
    run_roles(bureau, roles, stop).await
}

pub async fn admin(args: &ServiceArgs, cmd: &AdminCommand) -> Result<()> {
    let config = load_config(args)?;
    let pool = store::connect(config.database.url.expose(), 2, Duration::from_secs(config.broker.connect_timeout_s)).await?;
    match cmd {
        AdminCommand::AddUser { guichet, email } => {
            let mut raw = [0u8; 24];
            std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?, &mut raw).context("reading /dev/urandom")?;
            let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            store::create_portal_user(&pool, guichet, email, &token, "admin:cli")
                .await
                .with_context(|| format!("creating the user (is counter {guichet} in the registry?)"))?;
            println!("{token}");
            eprintln!("portal user {email} created for counter {guichet}; the token above is shown only once");
        }
        AdminCommand::AddAccount { email, role, guichet, name, sensitive } => {
            let role = crate::accounts::Role::parse(role).context("role: counter, operator, supervisor or admin")?;
            if role == crate::accounts::Role::Counter && guichet.is_none() {
                anyhow::bail!("a counter's account needs --guichet");
            }
            let mut password = String::new();
            std::io::stdin().read_line(&mut password).context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']).to_string();
            let hash = crate::accounts::hash_password(&password)?;
            let new = crate::store::people::NewAccount {
                email,
                display_name: name,
                role,
                guichet: guichet.as_deref(),
                sensitive: *sensitive,
                password_hash: Some(&hash),
            };
            let id = crate::store::people::create_account(&pool, &new, "admin:cli").await.with_context(|| match guichet {
                Some(g) => format!("saving the account (is counter {g} in the registry?)"),
                None => "saving the account".to_string(),
            })?;
            println!("account {id}: {email} ({}){}", role.as_str(), if *sensitive { ", sensitive profile" } else { "" });
        }
        AdminCommand::LoadRegistry { file } => {
            let json = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let (g, d) = store::load_registry_snapshot(&pool, &json, "admin:cli").await?;
            println!("loaded {g} counters and {d} requests");
        }
    }
    Ok(())
}
