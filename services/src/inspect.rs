//! `scanbureau inspect`: what the job makes of each page of some files, without filing
//! anything. For an operator puzzled by a piece sent to review, or a developer tuning the
//! reader: how the page was straightened, its layout, each reading pass and its cost, the
//! machine-readable zone, and the text read.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use sha2::Sha256;

use scanbureau_pipeline::analysis::AnalysisParams;
use scanbureau_pipeline::config::{DEFAULT_PLAN, SiteConfig};
use scanbureau_pipeline::job::PageOutcome;
use scanbureau_pipeline::plan::FilingPlan;
use scanbureau_pipeline::raster::Limits;

use crate::process::{analyse_pages, classifier_for, list_inputs, read_pages};

/// Shows how each page of the inputs is straightened and read (nothing is filed).
#[derive(Debug, Args, Clone)]
pub struct InspectArgs {
    /// Files or folders, as for `process`.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Print the whole text read on each page (default: its first 600 characters).
    #[arg(long)]
    pub full_text: bool,
}

pub fn run(args: &InspectArgs) -> Result<()> {
    let site = SiteConfig::embedded_default();
    let plan = FilingPlan::from_toml(DEFAULT_PLAN).context("the bundled filing plan")?;
    let classifier = classifier_for(&site, &plan).map_err(|e| anyhow::anyhow!("{e}"))?;
    let files = list_inputs(&args.inputs)?;
    let limits = Limits::default();
    let (pages, _) = read_pages(&files, &limits, &mut Sha256::default())?;
    let records = analyse_pages(pages, None, &limits, &AnalysisParams::default(), &classifier, &|| {});
    for (i, r) in records.iter().enumerate() {
        println!("page {i} ({})", r.source);
        match &r.outcome {
            PageOutcome::Unreadable { reason, detail } => println!("  unreadable: {} ({detail})", reason.code()),
            PageOutcome::Read { analysis, features } => {
                let kind = if analysis.slip.is_some() {
                    "slip"
                } else if analysis.blank {
                    "blank"
                } else {
                    "content"
                };
                println!(
                    "  {kind}, {:?}, stored as {:?}",
                    analysis.orientation,
                    analysis.encoded.as_ref().map(|e| (e.codec, e.width, e.height, e.bytes(), &e.choice))
                );
                for line in &features.reading {
                    println!("  {line}");
                }
                if let Some(zone) = &features.mrz {
                    println!("  machine-readable zone read: {}", zone.replace('\n', " / "));
                }
                for code in &features.other_qr {
                    println!("  QR code: {code}");
                }
                for code in &features.datamatrix {
                    println!("  DataMatrix: {}", code.replace('\x1d', "<GS>").replace('\x1e', "<RS>").replace('\x1f', "<US>"));
                }
                if let Some(t) = &features.title {
                    println!("  title: {}", t.trim().replace('\n', " / "));
                }
                if let Some(t) = &features.text {
                    let t = t.trim().replace('\n', " / ");
                    let shown: String = if args.full_text { t } else { t.chars().take(600).collect() };
                    println!("  text: {shown}");
                }
            }
        }
    }
    Ok(())
}
