//! The `scanbureau` program: the effects around the pure pipeline.
//!
//! [`process`] is the one-shot job (files in, report/pieces/notices out). The queue-driven
//! workers will live beside it.

pub mod outdir;
pub mod process;
