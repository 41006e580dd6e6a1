//! The bearer-token extractor.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::service::error::Code;
use crate::service::{AppState, Principal};

/// The caller, authenticated by `Authorization: Bearer <token>`.
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::new(
                    Code::Unauthenticated,
                    "missing Authorization header: send `Authorization: Bearer <token>`",
                )
            })?
            .to_str()
            .map_err(|_| ApiError::new(Code::Unauthenticated, "unreadable Authorization header"))?;
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    Code::Unauthenticated,
                    "the Authorization header must be `Bearer <token>`",
                )
            })?;
        match state.auth.authenticate(token).await? {
            Some(principal) => Ok(Authenticated(principal)),
            None => Err(ApiError::new(
                Code::Unauthenticated,
                "unknown or revoked token",
            )),
        }
    }
}
