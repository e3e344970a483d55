//! `scanbureau process`: one mailing in, filed light PDFs, notices and a full report out.
//!
//! Files are read and cut into pages here; pages are decoded, analysed and encoded in parallel
//! (each worker thread holds one decoded page at a time); the pure pipeline assembles the
//! result; the outputs are written atomically, `report.json` last.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{DateTime, FixedOffset, Timelike, Utc};
use clap::{Args, ValueEnum};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use scanbureau_classifier::ocr::{self, OcrConfig};
use scanbureau_classifier::twoddoc::TrustList;
use scanbureau_classifier::{Classifier, ReaderConfig};
use scanbureau_pipeline::NumeroUnique;
use scanbureau_pipeline::analysis::{AnalysisParams, analyse_and_read};
use scanbureau_pipeline::config::{DEFAULT_PLAN, SAMPLE_REGISTRY, SiteConfig};
use scanbureau_pipeline::input::{MailEnvelope, PageSource, split_file_with_envelope};
use scanbureau_pipeline::job::{JobContext, JobOutput, PageOutcome, PageRecord, assemble};
use scanbureau_pipeline::mailing::Channel;
use scanbureau_pipeline::plan::FilingPlan;
use scanbureau_pipeline::qualify::{PageView, Qualifier};
use scanbureau_pipeline::raster::{Limits, decode_page};
use scanbureau_pipeline::reason::ReasonCode;
use scanbureau_pipeline::registry::Registry;
use scanbureau_pipeline::report::{PieceStatus, Report, Status};

use crate::outdir::write_atomic;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChannelArg {
    Paper,
    Portal,
    Mail,
}

impl From<ChannelArg> for Channel {
    fn from(c: ChannelArg) -> Self {
        match c {
            ChannelArg::Paper => Channel::Paper,
            ChannelArg::Portal => Channel::Portal,
            ChannelArg::Mail => Channel::Mail,
        }
    }
}

/// Process one mailing: find the slips, split per request, file light PDFs, write notices and
/// report.json.
#[derive(Debug, Args, Clone)]
pub struct ProcessArgs {
    /// Inputs in order: folders of page images (sorted by name = scanner order), PDFs, images,
    /// TIFF (multi-page), .eml messages.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output directory (report.json, pieces/, outbox/).
    #[arg(short, long, default_value = "out")]
    pub out: PathBuf,
    /// Intake channel of the mailing.
    #[arg(long, value_enum, default_value_t = ChannelArg::Paper)]
    pub channel: ChannelArg,
    /// Reception time, RFC 3339 (default: now). The two-working-day clock starts here.
    #[arg(long)]
    pub received_at: Option<String>,
    /// Request number of a single-request portal deposit without fiche.
    #[arg(long)]
    pub numero_unique: Option<String>,
    /// Registry snapshot (JSON, see report-contract.md); `sample` names the bundled sample
    /// registry of scans-samples/. Required: requests are checked against it.
    #[arg(long)]
    pub registry: Option<PathBuf>,
    /// Filing plan (TOML). Default: the bundled plan.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Site configuration (TOML). Default: the embedded one (see pipeline/data/site.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// E-mail of the portal user who uploaded: receives the notices.
    #[arg(long)]
    pub notify: Option<String>,
    /// Print report.json on standard output instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Worker threads for page work (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Read pages as duplex (front, back) or simplex, overriding the site's setting.
    #[arg(long, value_parser = ["auto", "duplex", "simplex"])]
    pub duplex: Option<String>,
}

/// What went wrong before a report could be written: bad usage, or an I/O failure.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Fatal(#[from] anyhow::Error),
}

/// Exit codes documented in the README.
pub mod exit {
    /// The job ran; the mailing was accepted or partly accepted.
    pub const DONE: i32 = 0;
    /// The job could not complete (I/O error, internal error).
    pub const FATAL: i32 = 1;
    /// Bad command line or configuration: nothing was processed.
    pub const USAGE: i32 = 2;
    /// The job ran and the whole mailing was rejected (see report.json).
    pub const REJECTED: i32 = 3;
}

/// Everything loaded before the pages are read.
pub struct Setup {
    pub site: SiteConfig,
    pub registry: Registry,
    pub plan: FilingPlan,
    pub received_at: DateTime<FixedOffset>,
    pub numero: Option<NumeroUnique>,
}

fn read_text(path: &Path, what: &str) -> Result<String, ProcessError> {
    fs::read_to_string(path).map_err(|e| ProcessError::Usage(format!("cannot read {what} {}: {e}", path.display())))
}

pub fn setup(args: &ProcessArgs) -> Result<Setup, ProcessError> {
    let mut site = match &args.config {
        Some(p) => SiteConfig::from_toml(&read_text(p, "site configuration")?).map_err(|e| ProcessError::Usage(format!("{}: {e}", p.display())))?,
        None => SiteConfig::embedded_default(),
    };
    if let Some(d) = &args.duplex {
        site.scan.duplex = match d.as_str() {
            "duplex" => scanbureau_pipeline::config::DuplexMode::Duplex,
            "simplex" => scanbureau_pipeline::config::DuplexMode::Simplex,
            _ => scanbureau_pipeline::config::DuplexMode::Auto,
        };
    }
    let registry = match &args.registry {
        // Named on purpose only: requests checked against the wrong registry would be
        // refused as unknown, or filed on someone else's record.
        Some(p) if p.as_os_str() == "sample" && !p.exists() => Registry::from_json(SAMPLE_REGISTRY).map_err(|e| ProcessError::Fatal(e.into()))?,
        Some(p) => Registry::from_json(&read_text(p, "registry snapshot")?).map_err(|e| ProcessError::Usage(format!("{}: {e}", p.display())))?,
        None => {
            return Err(ProcessError::Usage(
                "no registry snapshot: give --registry FILE (the registry's JSON export), or --registry sample for the bundled sample registry".into(),
            ));
        }
    };
    let plan = match &args.plan {
        Some(p) => FilingPlan::from_toml(&read_text(p, "filing plan")?).map_err(|e| ProcessError::Usage(format!("{}: {e}", p.display())))?,
        None => FilingPlan::from_toml(DEFAULT_PLAN).map_err(|e| ProcessError::Fatal(e.into()))?,
    };
    let received_at = match &args.received_at {
        Some(s) => {
            DateTime::parse_from_rfc3339(s).map_err(|e| ProcessError::Usage(format!("--received-at {s:?} is not RFC 3339 (2026-11-18T09:12:00+01:00): {e}")))?
        }
        None => Utc::now().with_nanosecond(0).unwrap_or_else(Utc::now).fixed_offset(),
    };
    let numero = match &args.numero_unique {
        Some(n) => Some(NumeroUnique::parse(n).map_err(|e| ProcessError::Usage(format!("--numero-unique: {e}")))?),
        None => None,
    };
    if numero.is_some() && args.channel != ChannelArg::Portal {
        return Err(ProcessError::Usage("--numero-unique is for single-request portal deposits: add --channel portal".into()));
    }
    for input in &args.inputs {
        if !input.exists() {
            return Err(ProcessError::Usage(format!("input {} does not exist", input.display())));
        }
    }
    Ok(Setup { site, registry, plan, received_at, numero })
}

/// Input files in order, each with the index of the input it came from: a folder (a scanner's
/// batch) contributes its files sorted by name, all in one group, so duplex pairing runs across
/// them.
pub fn list_inputs(inputs: &[PathBuf]) -> Result<Vec<(usize, PathBuf)>> {
    let mut files = Vec::new();
    for (group, input) in inputs.iter().enumerate() {
        if input.is_dir() {
            let mut entries: Vec<PathBuf> = fs::read_dir(input)
                .with_context(|| format!("listing {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
                .collect();
            entries.sort();
            files.extend(entries.into_iter().map(|e| (group, e)));
        } else {
            files.push((group, input.clone()));
        }
    }
    Ok(files)
}

/// The page sources of a mailing (each with its file's index) and its mail envelope, if any.
pub type ReadPages = (Vec<(usize, PageSource)>, Option<MailEnvelope>);

/// Reads files and cuts them into page sources, feeding their names and bytes to `hash` (the
/// batch id).
pub fn read_pages(files: &[(usize, PathBuf)], limits: &Limits, hash: &mut Sha256) -> Result<ReadPages> {
    let mut pages = Vec::new();
    let mut envelope = None;
    for (group, path) in files.iter().map(|(g, p)| (*g, p)) {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string());
        let size = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
        hash.update(name.as_bytes());
        // An enormous file is not even loaded: it is refused from its size.
        let (sources, env) = if size > limits.max_file_bytes {
            hash.update(size.to_le_bytes());
            let detail = format!("file of {size} bytes exceeds the limit of {} bytes", limits.max_file_bytes);
            (
                vec![PageSource {
                    source: name.clone(),
                    blob: scanbureau_pipeline::raster::PageBlob::Unreadable { reason: ReasonCode::FichierTropVolumineux, detail },
                }],
                None,
            )
        } else {
            let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            hash.update(&bytes);
            split_file_with_envelope(&name, bytes, limits)
        };
        if envelope.is_none() {
            envelope = env;
        }
        pages.extend(sources.into_iter().map(|s| (group, s)));
    }
    Ok((pages, envelope))
}

/// Decodes, analyses and encodes every page in parallel. A panic inside a page's work is caught
/// and accounted for as that page's failure: the rest of the mailing goes on. `before` is the
/// input of the page just before these (when the mailing's pages come in several lists): a
/// page opens its input when it is the first of it.
pub fn analyse_pages(
    pages: Vec<(usize, PageSource)>,
    before: Option<usize>,
    limits: &Limits,
    params: &AnalysisParams,
    qualifier: &dyn Qualifier,
    progress: &(dyn Fn() + Sync),
) -> Vec<PageRecord> {
    // Pages are read on the pool's threads: each logs in its caller's span (the mailing's).
    let span = tracing::Span::current();
    let previous: Vec<Option<usize>> = std::iter::once(before).chain(pages.iter().map(|(g, _)| Some(*g))).collect();
    pages
        .into_par_iter()
        .zip(previous)
        .map(|((group, src), previous)| {
            let _in = span.enter();
            let opens_input = previous != Some(group);
            let outcome = catch_unwind(AssertUnwindSafe(|| match decode_page(&src.blob, limits) {
                Err(e) => PageOutcome::Unreadable { reason: e.reason, detail: e.detail },
                Ok(raster) => {
                    let (analysis, features) = analyse_and_read(raster, params, &|view| qualifier.read_page(&PageView { opens_input, ..*view }));
                    PageOutcome::Read { analysis: Box::new(analysis), features }
                }
            }))
            .unwrap_or_else(|_| {
                tracing::error!(source = %src.source, "page work panicked; page rejected");
                PageOutcome::Unreadable { reason: ReasonCode::FichierCorrompu, detail: "internal error while reading this page".into() }
            });
            progress();
            PageRecord { source: src.source, group, outcome }
        })
        .collect()
}

/// How many input files are read before their pages are analysed.
const FILES_PER_CHUNK: usize = 32;

/// Builds the classifier for a site and a plan (its OCR engines are made per thread, lazily).
pub fn classifier_for(site: &SiteConfig, plan: &FilingPlan) -> Result<Classifier, ProcessError> {
    let reader = ReaderConfig {
        ocr: OcrConfig { lang: site.qualify.ocr_language.clone(), datapath: None },
        budget_mpx: site.qualify.ocr_page_budget_mpx,
        whole_page: site.qualify.ocr_whole_page,
        ..ReaderConfig::default()
    };
    let mut qualifier = Classifier::new(plan, reader).map_err(|e| ProcessError::Usage(e.to_string()))?;
    if let Some(path) = &site.qualify.twoddoc_trust {
        qualifier.trust = load_trust_list(Path::new(path))?;
    }
    if !ocr::omp_limited() {
        tracing::warn!("OMP_THREAD_LIMIT=1 is not set: Tesseract will spread each page over every core and cost several times the CPU");
    }
    Ok(qualifier)
}

/// Reads the 2D-Doc trust list: a file, or every file of a folder (hidden ones left out).
pub fn load_trust_list(path: &Path) -> Result<TrustList, ProcessError> {
    let usage = |e: String| ProcessError::Usage(format!("qualify.twoddoc_trust {}: {e}", path.display()));
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = fs::read_dir(path)
            .map_err(|e| usage(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let mut trust = TrustList { source: path.display().to_string(), ..TrustList::default() };
    for f in &files {
        let bytes = fs::read(f).map_err(|e| usage(format!("{}: {e}", f.display())))?;
        trust.add_file(&f.display().to_string(), &bytes).map_err(|e| usage(e.to_string()))?;
    }
    if trust.keys.is_empty() {
        return Err(usage("no certificate or key found".into()));
    }
    tracing::info!(keys = trust.keys.len(), source = %trust.source, "2D-Doc trust list loaded");
    Ok(trust)
}

/// One mailing to process: its files and what is known of it beforehand.
pub struct MailingJob<'a> {
    pub files: &'a [(usize, PathBuf)],
    pub channel: Channel,
    pub received_at: DateTime<FixedOffset>,
    pub numero: Option<NumeroUnique>,
    pub notify: Option<String>,
    pub site: &'a SiteConfig,
    pub registry: &'a Registry,
    pub plan: &'a FilingPlan,
}

/// Runs the whole job on files already on disk and returns its outputs, writing nothing.
/// `progress` is called once per page done.
pub fn execute(
    job: &MailingJob<'_>,
    qualifier: &Classifier,
    pool: &rayon::ThreadPool,
    on_pages: &(dyn Fn(u64) + Sync),
    progress: &(dyn Fn() + Sync),
) -> Result<JobOutput> {
    let limits = Limits::for_channel(job.channel);
    let mut params = AnalysisParams::default();
    params.qr.thorough = job.site.scan.thorough_qr;
    // Files are read a few at a time and their pages analysed before the next are read: the
    // input bytes of a large batch are never all in memory, nor any page's pixels for long.
    let mut hash = Sha256::new();
    let mut records = Vec::new();
    let mut envelope = None;
    for chunk in job.files.chunks(FILES_PER_CHUNK) {
        let (pages, env) = read_pages(chunk, &limits, &mut hash)?;
        envelope = envelope.or(env);
        on_pages(pages.len() as u64);
        let before = records.last().map(|r: &PageRecord| r.group);
        records.extend(pool.install(|| analyse_pages(pages, before, &limits, &params, qualifier, progress)));
    }
    let digest: String = hash.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect();
    let batch_id = format!("b-{digest}-{}", job.received_at.format("%Y%m%d%H%M"));
    tracing::info!(batch = %batch_id, files = job.files.len(), pages = records.len(), "mailing analysed");
    let ctx = JobContext {
        batch_id,
        channel: job.channel,
        received_at: job.received_at,
        now: Utc::now().with_nanosecond(0).unwrap_or_else(Utc::now).fixed_offset(),
        numero_unique: job.numero.clone(),
        envelope,
        notify: job.notify.clone(),
        registry: job.registry,
        plan: job.plan,
        site: job.site,
    };
    Ok(assemble(&ctx, &records, qualifier))
}

/// Runs the whole job and writes its outputs. Returns the report.
pub fn run(args: &ProcessArgs, progress_bar: bool) -> Result<Report, ProcessError> {
    let setup = setup(args)?;
    let started = Instant::now();
    let files = list_inputs(&args.inputs)?;
    if files.is_empty() {
        return Err(ProcessError::Usage("no input file found".into()));
    }
    let qualifier = classifier_for(&setup.site, &setup.plan)?;
    let bar = (progress_bar && files.len() >= 10).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} pages {pos}/{len} [{bar:40}] {per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let progress = || {
        if let Some(b) = &bar {
            b.inc(1);
        }
    };
    let on_pages = |n: u64| {
        if let Some(b) = &bar {
            b.inc_length(n);
        }
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.jobs.unwrap_or(0)).build().context("starting worker threads")?;
    let job = MailingJob {
        files: &files,
        channel: args.channel.into(),
        received_at: setup.received_at,
        numero: setup.numero.clone(),
        notify: args.notify.clone(),
        site: &setup.site,
        registry: &setup.registry,
        plan: &setup.plan,
    };
    let output = execute(&job, &qualifier, &pool, &on_pages, &progress)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    write_outputs(&args.out, &output)?;
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "mailing done");
    Ok(output.report)
}

/// Pieces and notices first, each atomically; `report.json` last, so a report on disk always
/// describes files that are there.
pub fn write_outputs(out: &Path, output: &JobOutput) -> Result<()> {
    fs::create_dir_all(out).with_context(|| format!("creating output directory {}", out.display()))?;
    for f in output.pieces.iter().chain(&output.notices) {
        write_atomic(out, &f.path, &f.bytes)?;
    }
    let json = serde_json::to_vec_pretty(&output.report).context("serialising the report")?;
    write_atomic(out, "report.json", &json)?;
    Ok(())
}

/// The summary an operator reads on the terminal.
pub fn summary(report: &Report, out: &Path) -> String {
    let b = &report.batch;
    let c = &b.counts;
    let mut s = format!(
        "batch {} ({}, {} pages): {}\n  received {}  due {}\n  pages: {} in pieces, {} slips, {} blank, {} rejected\n  pieces: {} filed, {} for review, {} rejected\n",
        b.id,
        b.channel,
        b.pages,
        match b.status {
            Status::Accepted => "ACCEPTED",
            Status::Partial => "PARTIAL",
            Status::Rejected => "REJECTED",
        },
        b.received_at,
        b.due_at,
        c.piece,
        c.slip,
        c.blank,
        c.rejected,
        c.pieces_uploaded,
        c.pieces_review,
        c.pieces_rejected
    );
    if let Some(r) = b.reason {
        s.push_str(&format!("  mailing refused: {} ({})\n", r.code(), r.libelle()));
    }
    for r in &report.requests {
        s.push_str(&format!(
            "  request {}: {:?}{}, {} piece(s){}\n",
            r.numero_unique.as_deref().unwrap_or("(unreadable)"),
            r.status,
            r.reason.map(|x| format!(" {x}")).unwrap_or_default(),
            r.pieces.len(),
            r.notice.as_deref().map(|n| format!(", notice {n}")).unwrap_or_default()
        ));
        // One line per piece: what it was taken for, how sure, and its fate.
        for p in &r.pieces {
            let what = match (&p.categorie, &p.type_code, p.reason) {
                (Some(c), Some(t), _) => format!("{c}/{t}"),
                (_, _, Some(ReasonCode::HorsPerimetreReglementaire)) => "outside the plan".to_string(),
                _ => "unclassified".to_string(),
            };
            let pages: Vec<String> = p.pages.iter().map(|i| i.to_string()).collect();
            let fate = match (p.status, p.reason) {
                (_, Some(reason)) => format!("rejected {}", reason.code()),
                (PieceStatus::Review, None) => "for review".to_string(),
                _ => "filed".to_string(),
            };
            s.push_str(&format!("    pages {:<12} {what:<36} {:>4.0} %  {fate}\n", pages.join(","), p.confidence * 100.0));
        }
    }
    for a in &b.anomalies {
        s.push_str(&format!("  anomaly {:?}: {}\n", a.code, a.detail));
    }
    s.push_str(&format!("  report: {}\n", out.join("report.json").display()));
    s
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use scanbureau_fixtures::page::Canvas;
    use scanbureau_pipeline::input::split_file;
    use scanbureau_pipeline::qualify::{PageFeatures, PieceDraft, QualifyInput};

    use super::*;

    /// Records, per page read, whether it opened its input.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(u32, bool)>>);

    impl Qualifier for Recorder {
        fn read_page(&self, page: &PageView<'_>) -> PageFeatures {
            self.0.lock().expect("lock").push((page.raster.gray.width(), page.opens_input));
            PageFeatures::default()
        }

        fn qualify(&self, _input: &QualifyInput<'_>) -> Vec<PieceDraft> {
            Vec::new()
        }
    }

    /// A printed page as a PNG file, told apart from the others by its width.
    fn page_file(width_mm: f32) -> Vec<u8> {
        let mut c = Canvas::new(100.0, 250, false);
        for k in 0..12 {
            c.text(10.0, 20.0 + k as f32 * 6.0, 11.0, "Une ligne de texte imprimé sur la page, assez longue pour compter.", false, [20, 20, 20]);
        }
        let gray = c.finish().to_gray();
        let keep = ((width_mm / 25.4) * 100.0) as u32;
        let cropped = image::imageops::crop_imm(&gray, 0, 0, keep.min(gray.width()), gray.height()).to_image();
        let mut png = Vec::new();
        image::DynamicImage::ImageLuma8(cropped).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).expect("png");
        png
    }

    #[test]
    fn a_page_opens_its_input_when_it_is_the_first_of_it_across_lists() {
        let limits = Limits::for_channel(Channel::Portal);
        let source = |width: f32| split_file(&format!("{width}.png"), page_file(width), &limits).remove(0);
        let reader = Recorder::default();
        let params = AnalysisParams::default();
        // Two pages of input 0, then one of input 1; then, in a second list, input 1 goes on
        // and input 2 begins.
        let first = vec![(0, source(180.0)), (0, source(181.0)), (1, source(182.0))];
        let second = vec![(1, source(183.0)), (2, source(184.0))];
        let mut records = analyse_pages(first, None, &limits, &params, &reader, &|| {});
        records.extend(analyse_pages(second, Some(1), &limits, &params, &reader, &|| {}));
        assert_eq!(records.len(), 5);
        let mut seen = reader.0.into_inner().expect("lock");
        seen.sort();
        let opens: Vec<bool> = seen.iter().map(|(_, o)| *o).collect();
        assert_eq!(opens, vec![true, false, true, false, true], "{seen:?}");
    }
}
