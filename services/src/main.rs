//! `scanbureau`: the bureau's worker software. See the README for the commands.

use clap::{Parser, Subcommand};
use std::io::IsTerminal;

use scanbureau::process::{ProcessArgs, ProcessError, exit, run, summary};
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
}

fn main() {
    // Tesseract's OpenMP reads its thread limit when the library loads: restart with it set.
    if let Err(e) = scanbureau_classifier::ocr::ensure_single_thread_ocr() {
        eprintln!("warning: could not restart with OMP_THREAD_LIMIT=1 ({e}); OCR will cost more CPU");
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    // A panic inside a page's work is caught and accounted for; say it once in the log.
    std::panic::set_hook(Box::new(|info| tracing::warn!(panic = %info, "caught a panic")));
    let cli = Cli::parse();
    let code = match cli.command {
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
