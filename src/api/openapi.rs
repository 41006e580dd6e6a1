//! The API's OpenAPI 3.1 document, generated from the code (utoipa): each handler's
//! `#[utoipa::path]` names its route, parameters and statuses, and the answers' schemas are
//! derived from the very types the handlers serialise. Served at `GET /api/v1/openapi.json`;
//! CI lints it and fuzzes a live server against it (`scripts/contract/run.sh`).
//!
//! What lives here: the document's assembly, the bearer scheme, the error codes' list, and the failures every authenticated operation can meet
//! (added to each operation by [`CommonFailures`], so no handler has to repeat them).

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{RefOr, Response as DocResponse, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::schema::{ErrorBody, ErrorDetail, OperationOutcome};
use crate::service::error::Code;
use crate::service::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(document))
}

/// `GET /api/v1/openapi.json`: the document (built once).
async fn document() -> Response {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text.clone(),
    )
        .into_response()
}

/// The document as a value (tests and `rrct` itself).
pub fn document_json() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}

/// The API as documented.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "rrct",
        description = "Registry-based randomised trials: enrolment, follow-up events, blinded and unblinded reads, lifecycle. Every failure is `{\"error\": {\"code\", \"message\"}}` with a stable code.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::healthz,
        super::readyz,
        super::enrolments::create,
        super::enrolments::show,
        super::enrolments::mark_error,
        super::participation::withdraw,
        super::participation::confirm_consent,
        super::participation::add_objection,
        super::participation::list_objections,
        super::participation::remove_objection,
        super::events::receive,
        super::cloudevents::receive,
        super::trials::report_screening,
        super::trials::summary,
        super::trials::analysis,
        super::lifecycle::status,
        super::lifecycle::pause,
        super::lifecycle::resume,
        super::lifecycle::close,
        super::lifecycle::site_close,
        super::lifecycle::site_open,
        super::lifecycle::reveal_seed,
        super::lifecycle::unblind,
        super::lifecycle::unblindings,
        super::tokens::revoke,
        super::metrics::scrape,
        super::fhir::metadata,
        super::fhir::research_study,
        super::fhir::search_subjects,
        super::fhir::research_subject,
    ),
    components(schemas(ErrorBody, ErrorDetail, OperationOutcome)),
    modifiers(&BearerAuth, &CommonFailures, &ErrorCodes),
    tags(
        (name = "enrolment", description = "Randomising patients and reading their allocations"),
        (name = "events", description = "Follow-up events from the registers"),
        (name = "reads", description = "Blinded summary and unblinded analysis"),
        (name = "lifecycle", description = "Pausing, closing, sites, the seed's reveal, emergency unblinding"),
        (name = "tokens", description = "Token administration"),
        (name = "health", description = "Liveness and metrics"),
        (name = "fhir", description = "FHIR R4, read-only: ResearchStudy, ResearchSubject, CapabilityStatement; failures as OperationOutcome"),
    ),
)]
pub struct ApiDoc;

/// Bearer tokens (made by `rrct token create`) on every operation but the health check.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// The error body's `code` as the closed list of the one error table ([`Code::ALL`]).
struct ErrorCodes;

impl Modify for ErrorCodes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        if let Some(RefOr::T(Schema::Object(detail))) = components.schemas.get_mut("ErrorDetail") {
            let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
            detail.properties.insert(
                "code".to_string(),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("The stable error code"))
                    .enum_values(Some(codes))
                    .into(),
            );
        }
    }
}

/// The failures any operation can meet whatever it does, added to each operation that does
/// not describe them itself: an unknown or missing token (401, or 429 after too many), a
/// request that takes too long (408), and the engine's own faults (500, 503).
struct CommonFailures;

/// A failure's response: the error body, or an `OperationOutcome` on the FHIR paths.
fn error_response(description: &str, fhir: bool) -> RefOr<DocResponse> {
    let (content_type, schema) = if fhir {
        ("application/fhir+json", "OperationOutcome")
    } else {
        ("application/json", "ErrorBody")
    };
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                content_type,
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        schema,
                    ))))
                    .build(),
            )
            .build(),
    )
}

fn add_failures(operation: &mut Operation, authenticated: bool, fhir: bool) {
    let mut common = vec![
        (
            "408",
            "The request took longer than the server allows (`request_timeout`)",
        ),
        (
            "500",
            "A fault of the engine (`internal`); details are in the server log",
        ),
        ("503", "The database cannot be reached (`unavailable`)"),
    ];
    if authenticated {
        common.push((
            "401",
            "No token, or an unknown, revoked or expired one (`unauthenticated`)",
        ));
        common.push((
            "429",
            "Too many failed authentications from this address (`too_many_requests`)",
        ));
    }
    for (status, description) in common {
        // The request timeout is answered before any handler, in the API's error body.
        let fhir = fhir && status != "408";
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(description, fhir));
    }
}

impl Modify for CommonFailures {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let authenticated = !matches!(path.as_str(), "/healthz" | "/readyz" | "/fhir/metadata");
            let fhir = path.starts_with("/fhir/");
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_failures(operation, authenticated, fhir);
            }
        }
    }
}
