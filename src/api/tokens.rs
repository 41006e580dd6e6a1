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

async fn revoke(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(token_id): Path<String>,
) -> Result<Json<TokenRecord>, ApiError> {
    Ok(Json(state.auth.revoke(&principal, &token_id).await?))
}
