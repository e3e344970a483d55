//! Tesseract, one engine per worker thread, created on first use and reused for every page the
//! thread reads (initialising the French model costs ~100 ms; a line of text a few ms).
//!
//! Debian's libtesseract runs OpenMP: the process must start with `OMP_THREAD_LIMIT=1` in its
//! environment or each recognition spreads over every core and burns several times the CPU.
//! The `scanbureau` binary re-executes itself with it; [`omp_limited`] tells whether it is set.

use std::cell::RefCell;
use std::ffi::CString;
use std::time::Instant;

use image::GrayImage;
use tesseract::PageSegMode;
use tesseract::plumbing::TessBaseApi;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum OcrError {
    #[error("Tesseract could not load its '{lang}' model (install tesseract-ocr-{lang}; scripts/setup.sh does)")]
    Init { lang: String },
    #[error("image refused by Tesseract: {0}")]
    Image(String),
    #[error("Tesseract failed while recognising")]
    Recognise,
}

/// Which language model and where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcrConfig {
    pub lang: String,
    /// Tesseract's data folder; None = the library's default (or `TESSDATA_PREFIX`).
    pub datapath: Option<String>,
}

impl Default for OcrConfig {
    fn default() -> Self {
        Self { lang: "fra".into(), datapath: None }
    }
}

/// How Tesseract should see the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segmentation {
    /// Lines stacked one under the other (the reader's own crops).
    Block,
    /// A whole region whose layout Tesseract must find.
    Auto,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OcrText {
    pub text: String,
    /// Tesseract's mean word confidence, 0-100.
    pub confidence: i32,
    pub millis: f32,
}

struct Engine {
    api: TessBaseApi,
    config: OcrConfig,
}

thread_local! {
    static ENGINE: RefCell<Option<Result<Engine, OcrError>>> = const { RefCell::new(None) };
}

fn create(config: &OcrConfig) -> Result<Engine, OcrError> {
    let init = || OcrError::Init { lang: config.lang.clone() };
    let lang = CString::new(config.lang.as_str()).map_err(|_| init())?;
    let datapath = config.datapath.as_deref().map(CString::new).transpose().map_err(|_| init())?;
    let mut api = TessBaseApi::create();
    api.init_2(datapath.as_deref(), Some(&lang)).map_err(|_| init())?;
    // Keep Tesseract's own chatter (resolution guesses, empty pages) out of the logs.
    if let Ok(null) = CString::new("/dev/null") {
        let _ = api.set_variable(c"debug_file", &null);
    }
    Ok(Engine { api, config: config.clone() })
}

/// The characters of a machine-readable zone.
pub const MRZ_CHARSET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<";

/// Reads the text of `image` (8-bit grey) printed at `dpi`, with this thread's engine.
pub fn read(config: &OcrConfig, image: &GrayImage, dpi: u32, mode: Segmentation) -> Result<OcrText, OcrError> {
    read_with(config, image, dpi, mode, None)
}

/// As [`read`], recognising only the characters of `charset` when given (the engine is left
/// as it was found: the next read sees every character again).
pub fn read_with(config: &OcrConfig, image: &GrayImage, dpi: u32, mode: Segmentation, charset: Option<&str>) -> Result<OcrText, OcrError> {
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let stale = match slot.as_ref() {
            Some(Ok(e)) => e.config != *config,
            Some(Err(_)) => false,
            None => true,
        };
        if stale {
            *slot = Some(create(config));
        }
        let engine = match slot.as_mut() {
            Some(Ok(e)) => e,
            Some(Err(e)) => return Err(e.clone()),
            None => return Err(OcrError::Init { lang: config.lang.clone() }),
        };
        let started = Instant::now();
        let (w, h) = image.dimensions();
        engine.api.set_image(image.as_raw(), w as i32, h as i32, 1, w as i32).map_err(|e| OcrError::Image(format!("{e:?}")))?;
        engine.api.set_source_resolution(dpi as i32);
        let psm = match mode {
            Segmentation::Block => PageSegMode::PsmSingleBlock,
            Segmentation::Auto => PageSegMode::PsmAuto,
        };
        engine.api.set_page_seg_mode(psm.as_tess_page_seg_mode());
        let whitelist = CString::new(charset.unwrap_or("")).map_err(|_| OcrError::Image("character set with a NUL".into()))?;
        if charset.is_some() {
            engine.api.set_variable(c"tessedit_char_whitelist", &whitelist).map_err(|_| OcrError::Recognise)?;
        }
        let recognised = engine.api.recognize().map_err(|_| OcrError::Recognise);
        let text = recognised.and_then(|()| engine.api.get_utf8_text().map_err(|_| OcrError::Recognise));
        if charset.is_some() {
            engine.api.set_variable(c"tessedit_char_whitelist", c"").map_err(|_| OcrError::Recognise)?;
        }
        let text = text?.as_ref().to_string_lossy().into_owned();
        let confidence = engine.api.mean_text_conf();
        Ok(OcrText { text, confidence, millis: started.elapsed().as_secs_f32() * 1000.0 })
    })
}

/// Whether OpenMP was limited to one thread when the process started.
pub fn omp_limited() -> bool {
    std::env::var("OMP_THREAD_LIMIT").is_ok_and(|v| v.trim() == "1")
}

/// Makes sure Tesseract runs one OpenMP thread: when `OMP_THREAD_LIMIT` is not in the
/// environment, replaces the running program with itself, same arguments, the variable set.
/// (OpenMP reads it once, when the library loads: setting it later has no effect.)
/// Returns only when nothing had to be done, or with the error that prevented the re-execution.
pub fn ensure_single_thread_ocr() -> std::io::Result<()> {
    if std::env::var_os("OMP_THREAD_LIMIT").is_some() {
        return Ok(());
    }
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let err = std::process::Command::new(exe).args(std::env::args_os().skip(1)).env("OMP_THREAD_LIMIT", "1").exec();
    Err(err)
}
