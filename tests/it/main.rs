//! Integration tests: the real service over real sockets on SQLite and, when
//! `RRCT_TEST_POSTGRES_URL` is set, PostgreSQL (each test in its own fresh database).
//! One test binary, so the crate links once.

mod support;

mod amendments;
mod analyse_cli;
mod anchors;
mod audit_cli;
mod browser;
mod bus;
mod cloudevents;
mod concurrency;
mod crash;
mod dashboard;
mod demo;
mod events;
mod flow;
mod held_data;
mod http_enrolment;
mod interop;
mod lifecycle;
mod live_procedures;
mod oidc;
mod participation;
mod pseudonymise;
mod randomised_in_error;
mod replay;
mod reproducibility;
mod schema;
mod serve;
mod sources;
mod trust;
mod trust_ops;
mod trust_properties;
mod webhooks;
