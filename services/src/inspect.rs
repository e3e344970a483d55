//! `scanbureau inspect`: what the job makes of each page of some files, without filing
//! anything. For an operator puzzled by a piece sent to review, or a developer tuning the
//! reader: how the page was straightened, its layout, each reading pass and its cost, the
//! machine-readable zone, the text read, and the pieces the qualifier would make of each file
//! (its pages taken as one request whose household is unknown: an identity document says that
//! no household name was read).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use sha2::Sha256;

use scanbureau_pipeline::analysis::AnalysisParams;
use scanbureau_pipeline::config::{DEFAULT_PLAN, SiteConfig};
use scanbureau_pipeline::job::{PageOutcome, PageRecord};
use scanbureau_pipeline::plan::FilingPlan;
use scanbureau_pipeline::qualify::{Household, PageFeatures, PieceDraft, Qualifier, QualifyInput};
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
                println!("  {kind}, {:?}", analysis.orientation);
                if let Some(e) = &analysis.encoded {
                    // A page kept as sent has no pixels of its own; its raster stays beside it.
                    let size = if e.vector.is_some() { String::new() } else { format!(" ({}×{} px)", e.width, e.height) };
                    println!("  {}{size}", e.describe());
                }
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
    for (file, pieces) in proposed_pieces(&records, &classifier, &plan) {
        println!("pieces of {file}");
        for p in pieces {
            let what = match (&p.rejection, &p.type_code) {
                (Some(r), _) => format!("refused {}", r.code()),
                (None, Some(t)) => format!("{}/{t}", p.categorie.as_deref().unwrap_or("-")),
                (None, None) => "no type".into(),
            };
            let pages: Vec<String> = p.pages.iter().map(|&i| records[i].source.clone()).collect();
            println!("  {what}, confidence {:.2}: {}", p.confidence, pages.join(", "));
            for e in &p.evidence {
                println!("    {e}");
            }
        }
    }
    Ok(())
}

/// Each input file's readable pages qualified as one request (slips are the job's business,
/// not a piece's): what the job would propose for that file deposited alone.
fn proposed_pieces(records: &[PageRecord], qualifier: &dyn Qualifier, plan: &FilingPlan) -> Vec<(String, Vec<PieceDraft>)> {
    let features: Vec<PageFeatures> = records.iter().map(PageRecord::features).collect();
    let mut groups: Vec<(usize, String, Vec<usize>)> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let PageOutcome::Read { analysis, .. } = &r.outcome else { continue };
        if analysis.slip.is_some() || analysis.blank {
            continue;
        }
        match groups.last_mut() {
            Some((g, _, pages)) if *g == r.group => pages.push(i),
            _ => groups.push((r.group, r.source.split('#').next().unwrap_or(&r.source).to_string(), vec![i])),
        }
    }
    let household = Household::default();
    groups
        .into_iter()
        .map(|(_, file, pages)| {
            let sheets: Vec<Vec<usize>> = pages.into_iter().map(|i| vec![i]).collect();
            let input = QualifyInput { numero: None, sheets: &sheets, features: &features, plan, household: &household };
            (file, qualifier.qualify(&input))
        })
        .collect()
}
