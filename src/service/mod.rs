//! Services: the use cases, composed from the pure core and the store.
//!
//! Each service takes typed input, makes the trial's decisions with the core modules and makes
//! them durable through the store in one transaction. Services know nothing of HTTP status
//! codes or the command line; the interfaces map their typed errors.

pub mod analyse;
pub mod auth;
pub mod disclosure;
pub mod enrol;
pub mod events;
pub mod export;
pub mod feasibility;
pub mod interim;
pub mod randomised_in_error;
pub mod release;
pub mod screening;
pub mod subgroups;
pub mod trials;

pub use auth::{Principal, Role};
pub use trials::{TrialRegistry, TrialRuntime};
