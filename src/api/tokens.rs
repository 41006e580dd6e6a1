//! `POST /api/v1/tokens/{token_id}/revoke`: an administrator revokes a token; it stops working
//! on this server at once and on the others within the authenticator's cache period.

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};

use super::auth::Authenticated;
use super::error::ApiError;
use crate::service::tokens::TokenRecord;
use crate::service::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/tokens/{token_id}/revoke", post(revoke))
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens/{token_id}/revoke",
    tag = "tokens",
    summary = "Revoke a token (admins)",
    params(("token_id" = String, Path, description = "The token's public id (12 hex digits)")),
    responses(
        (status = 200, description = "Revoked", body = crate::service::tokens::TokenRecord),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such token (`not_found`)", body = crate::api::schema::ErrorBody),
        (status = 409, description = "Revoked before (`already_revoked`)", body = crate::api::schema::ErrorBody),
    )
)]
async fn revoke(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(token_id): Path<String>,
) -> Result<Json<TokenRecord>, ApiError> {
    Ok(Json(state.auth.revoke(&principal, &token_id).await?))
}
