//! The `scanbureau` program: the effects around the pure pipeline.
//!
//! - [`process`]: the one-shot job (files in, report, pieces and notices out);
//! - the service around the same job: [`settings`], [`store`] (PostgreSQL), [`blobs`] (S3),
//!   [`broker`] (RabbitMQ), [`mailer`] (SMTP), shared by the roles through [`bureau`];
//!   the intake channels in [`intake`] and [`http`], the queue stages in [`stages`], and the
//!   `serve` / `worker ROLE` commands in [`serve`];
//! - the people's side in the browser, [`web`] (counters' portal, operators' console,
//!   supervisors' dashboard), over the accounts of [`accounts`]; what their decisions do is
//!   in [`decisions`].

pub mod accounts;
pub mod alerts;
pub mod blobs;
pub mod broker;
pub mod bureau;
pub mod decisions;
pub mod http;
pub mod imap_intake;
pub mod inspect;
pub mod intake;
pub mod logging;
pub mod mail_auth;
pub mod mailer;
pub mod metrics;
pub mod outdir;
pub mod process;
pub mod serve;
pub mod settings;
pub mod stages;
pub mod store;
pub mod web;
pub mod workdir;
