//! Services: the use cases, composed from the pure core and the store.
//!
//! Each service takes typed input, makes the trial's decisions with the core modules and makes
//! them durable through the store in one transaction. Services know nothing of HTTP status
//! codes or the command line: each error names its stable [`error::Code`], and the interfaces
//! map the codes. Who may do what is decided in [`auth`], once, for every interface.
//!
//! # Layout
//! - [`state`]: what a running engine holds ([`AppState`]), and opening a database;
//! - [`auth`]: roles, tokens, and the access policy;
//! - [`error`]: the stable error codes and [`error::CodedError`];
//! - [`trials`]: protocols registered and served;
//! - [`enrol`], [`screening`], [`events`], [`randomised_in_error`], [`participation`] (consent,
//!   withdrawal, objection lists): the writes;
//! - [`lifecycle`] (pause, resume, close, sites, the seed's reveal), [`unblinding`] (one
//!   subject's emergency code-break), [`allocation_log`] (the randomisation log for replay) and
//!   [`anchor`] (the audit chain's head signed and checked);
//! - [`trial_view`]: the one way every interface reads an analysed trial;
//! - [`audit_trail`], [`health`], [`feasibility`]: the rest of what readers ask.
//! - [`webhooks`]: webhooks registered, and the worker that delivers the outbox to them.

pub mod alarms;
pub mod allocation_log;
pub mod anchor;
pub mod answer;
pub mod audit_trail;
pub mod auth;
pub mod auth_failures;
pub mod clock;
pub mod enrol;
pub mod error;
pub mod events;
pub mod feasibility;
pub mod health;
pub mod intake;
pub mod keeper;
pub mod lifecycle;
pub mod metrics;
pub mod outbox;
pub mod participation;
pub mod randomised_in_error;
pub mod screening;
pub mod seed_vault;
pub mod sessions;
pub mod sign_in;
pub mod state;
pub mod subjects;
pub mod tokens;
pub mod trial_view;
pub mod trials;
pub mod unblinding;
pub mod webhooks;

pub use auth::{Principal, Role};
pub use clock::Clock;
pub use state::{connect, connect_pooled, AppState, COMMAND_DB_TIMEOUT};
pub use trials::{TrialRegistry, TrialRuntime};
