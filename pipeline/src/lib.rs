//! Pure core of scanbureau.
//!
//! Everything here takes bytes, images or values and returns values: no file system, no clock, no
//! network, no environment. The `scanbureau` binary and the (future) workers sit around it and
//! do the effects. Bad input is a value (a reason code), never a panic.
//!
//! The flow of one mailing, in the order the modules are used:
//! [`input`] splits files into page sources → [`raster`] decodes one page → [`analysis`] finds
//! slips ([`qr`], [`slip`]), blank pages and orientation → [`lightpdf`] encodes the page small →
//! [`mailing`] splits the page stream per request → [`qualify`] cuts pieces → [`registry`] and
//! [`plan`] check them → [`notice`] and [`report`] say what happened. [`job`] ties the pure steps
//! together.

pub mod analysis;
pub mod binarize;
pub mod calendar;
pub mod config;
pub mod geometry;
pub mod grid;
pub mod ids;
pub mod input;
pub mod jbig2;
pub mod job;
pub mod jpeg_huffman;
pub mod lightpdf;
pub mod mailing;
pub mod mixed;
pub mod notice;
pub mod originals;
pub mod pdftext;
pub mod piece_edit;
pub mod plan;
pub mod preview;
pub mod qr;
pub mod qualify;
pub mod raster;
pub mod reason;
pub mod registry;
pub mod report;
pub mod slip;
pub mod slip_print;
pub mod text;
pub mod vector_page;

pub use ids::{Departement, NumeroGuichet, NumeroUnique, PageIndex};
pub use reason::{AnomalyCode, ReasonCode};
