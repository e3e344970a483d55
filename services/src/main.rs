//! `scanbureau`: the bureau's worker software. See the README for the commands.

use clap::{Parser, Subcommand};
use std::io::IsTerminal;

use scanbureau::logging::LogFormat;
use scanbureau::process::{ProcessArgs, ProcessError, exit, run, summary};
use scanbureau::serve::{AdminCommand, Role, ServiceArgs, admin, serve};
use scanbureau_pipeline::report::Status;

#[derive(Debug, Parser)]
#[command(name = "scanbureau", version, about = "Scanning bureau for the social-housing registry's supporting documents")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Process(ProcessArgs),
    /// Shows how each page of some files is straightened and read (nothing is filed).
    Inspect(scanbureau::inspect::InspectArgs),
    /// Runs the whole bureau in one process: intake, portal API, processing, notices, sweeper.
    Serve(ServiceArgs),
    /// Runs one role, or a few (scale out by starting several processes).
    Worker {
        #[arg(required = true)]
        roles: Vec<Role>,
        #[command(flatten)]
        service: ServiceArgs,
    },
    /// Administration: portal users and browser accounts, registry snapshot.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
        #[command(flatten)]
        service: ServiceArgs,
    },
}

/// Runs an async command of the service on a runtime of its own.
fn service<F: std::future::Future<Output = anyhow::Result<()>>>(f: impl FnOnce() -> F) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return exit::FATAL;
        }
    };
    match rt.block_on(f()) {
        Ok(()) => exit::DONE,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<scanbureau::settings::SettingsError>().is_some() { exit::USAGE } else { exit::FATAL }
        }
    }
}

fn main() {
    // Tesseract's OpenMP reads its thread limit when the library loads: restart with it set.
    if let Err(e) = scanbureau_classifier::ocr::ensure_single_thread_ocr() {
        eprintln!("warning: could not restart with OMP_THREAD_LIMIT=1 ({e}); OCR will cost more CPU");
    }
    let cli = Cli::parse();
    // The one-shot job is quiet unless asked; a service logs what it does.
    let default_filter = || if matches!(cli.command, Command::Process(_) | Command::Inspect(_)) { "warn" } else { "info,lapin=warn,sqlx=warn,aws=warn" };
    // A service's log format is in its configuration; a configuration that does not load logs
    // in text here and is reported by the command itself.
    let format = match &cli.command {
        Command::Serve(a) | Command::Worker { service: a, .. } | Command::Admin { service: a, .. } => {
            scanbureau::serve::load_config(a).map(|c| c.log.format).unwrap_or_default()
        }
        Command::Process(_) | Command::Inspect(_) => LogFormat::Text,
    };
    scanbureau::logging::init(format, default_filter());
    // A panic inside a page's work is caught and accounted for; say it once in the log.
    std::panic::set_hook(Box::new(|info| tracing::warn!(panic = %info, "caught a panic")));
    let code = match cli.command {
        Command::Serve(args) => service(|| async move { serve(&args, &Role::ALL).await }),
        Command::Inspect(args) => match scanbureau::inspect::run(&args) {
            Ok(()) => exit::DONE,
            Err(e) => {
                eprintln!("error: {e:#}");
                exit::FATAL
            }
        },
        Command::Worker { roles, service: args } => service(|| async move { serve(&args, &roles).await }),
        Command::Admin { command, service: args } => service(|| async move { admin(&args, &command).await }),
        Command::Process(args) => match run(&args, std::io::stderr().is_terminal() && !args.json) {
            Ok(report) => {
                if args.json {
                    match serde_json::to_string_pretty(&report) {
                        Ok(s) => println!("{s}"),
                        Err(e) => eprintln!("error: cannot print the report: {e}"),
                    }
                } else {
                    print!("{}", summary(&report, &args.out));
                }
                if report.batch.status == Status::Rejected { exit::REJECTED } else { exit::DONE }
            }
            Err(ProcessError::Usage(msg)) => {
                eprintln!("error: {msg}");
                exit::USAGE
            }
            Err(ProcessError::Fatal(e)) => {
                eprintln!("error: {e:#}");
                exit::FATAL
            }
        },
    };
    std::process::exit(code);
}
