//! rrct: the engine behind registry-based randomised trials.
//!
//! A quality register posts an enrolment at the moment a clinician registers a patient; rrct
//! checks eligibility, randomises within the patient's stratum and returns the allocation in
//! the same HTTP call, having committed allocation, screening-log row and audit entry together.
//!
//! # Layout
//! Layers, each importing only from the layers below it (`scripts/check_layers.py` checks that
//! no files import each other in a circle and that the interfaces never name the store):
//! - core (pure, no I/O): [`identity`] (the one canonical form of every id, and personal
//!   identity numbers refused), [`pseudonym`] (the key holder's keyed pseudonyms of personal
//!   identity numbers, made before data reach rrct), [`protocol`] (parse and validate protocol
//!   files, enrolment fields, eligibility, strata, versions, personal identity numbers' forms),
//!   [`randomise`] (allocation procedures, seeded streams, the allocation record, one
//!   enrolment's decision as the engine and the replay of an exported log both make it),
//!   [`endpoints`] (per-subject outcomes from register events as of a data
//!   cut-off, and the cut-off itself), [`analysis`] (a trial's data analysed: comparisons,
//!   interim looks, subgroups, the blinded release and its disclosure control, ADTTE/ADSL);
//!   [`stats`] (Kaplan–Meier, log-rank, Cox, RMST, subgroups, 2×2, the normal distribution:
//!   R `survival`'s numbers); [`design`] (group-sequential boundaries, conditional power,
//!   sample sizes: `rpact`'s numbers);
//! - store: [`store`] (sqlx on SQLite or PostgreSQL: migrations, transactions, audit chain);
//! - services: [`service`] (the engine's state and clock, the access policy, tokens, the
//!   sealed seeds and the error codes;
//!   enrolment, screening, events, randomised-in-error marks; the trial view every interface
//!   reads an analysed trial through; the audit trail, health, tokens, protocols) and [`sim`]
//!   (design simulation through the core's own code, which depends on the core only);
//! - interfaces: [`api`] (axum routes, the HTTP statuses of the error codes, and the one
//!   application builder), [`dashboard`] (HTML pages per role with SVG charts, the rendered-page
//!   cache and the closed report), [`cli`] (clap commands), [`demo`] (the newcomer's end-to-end
//!   run); `main.rs` only calls [`cli::main`].
#![forbid(unsafe_code)]

/// The memory allocator of every program built on this library (the `rrct` binary, the
/// benchmarks and the tests alike, so they measure what ships): mimalloc, which with its
/// `override` feature also serves the bundled SQLite's C code. Under load rrct makes and frees
/// many small values on several threads at once (requests, batches, rows, replies), where the
/// system allocator spent a tenth of the CPU and made enrolments wait on its arena locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod analysis;
pub mod api;
pub mod bus;
pub mod cli;
pub mod dashboard;
pub mod demo;
pub mod design;
pub mod endpoints;
pub mod identity;
pub mod inbound;
pub mod outbound;
pub mod protocol;
pub mod pseudonym;
pub mod randomise;
pub mod service;
pub mod sim;
pub mod stats;
pub mod store;
