//! rrct: the engine behind registry-based randomised trials.
//!
//! A quality register posts an enrolment at the moment a clinician registers a patient; rrct
//! checks eligibility, randomises within the patient's stratum and returns the allocation in
//! the same HTTP call, having committed allocation, screening-log row and audit entry together.
//!
//! # Layout
//! Layers, each importing only from the layers below it:
//! - core (pure, no I/O): [`protocol`] (parse and validate protocol files, enrolment fields,
//!   eligibility, strata), [`randomise`] (allocation procedures and seeded streams),
//!   [`endpoints`] (per-subject outcomes from register events as of a data cut-off);
//!   [`stats`] (Kaplan–Meier, log-rank, Cox, RMST, subgroups, 2×2: R `survival`'s numbers);
//!   [`design`] (group-sequential boundaries, conditional power, sample sizes: `rpact`'s numbers);
//! - store: [`store`] (sqlx on SQLite or PostgreSQL: migrations, transactions, audit chain);
//! - services: [`service`] (enrol, load trials, tokens), [`sim`] (design simulation through
//!   the core's own code);
//! - interfaces: [`api`] (axum routes and the error code table), [`dashboard`] (HTML pages
//!   per role with SVG charts, and the closed report), [`cli`] (clap commands),
//!   [`demo`] (the newcomer's end-to-end run);
//!   `main.rs` only calls [`cli::main`].
#![forbid(unsafe_code)]

pub mod analysis;
pub mod api;
pub mod cli;
pub mod dashboard;
pub mod demo;
pub mod design;
pub mod endpoints;
pub mod protocol;
pub mod randomise;
pub mod service;
pub mod sim;
pub mod stats;
pub mod store;
