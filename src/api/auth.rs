//! The bearer-token extractor: a client that presented too many unknown tokens is refused
//! before its token is looked up, and every failure is counted and logged by client address
//! (never with the token).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::service::error::Code;
use crate::service::{AppState, Principal};

/// The caller, authenticated by `Authorization: Bearer <token>`.
pub struct Authenticated(pub Principal);

/// The client's address, when the server recorded it.
pub fn client_of(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The refusal of a client that failed too often.
pub fn too_many(retry_after: std::time::Duration) -> ApiError {
    ApiError::new(
        Code::TooManyRequests,
        format!(
            "too many failed authentications from this address; try again in {} s",
            retry_after.as_secs().max(1)
        ),
    )
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let client = client_of(parts);
        if let Some(wait) = state.auth_failures.blocked(client) {
            return Err(too_many(wait));
        }
        let fail = |why: &'static str, message: &'static str| {
            state.auth_failures.record(client, why);
            ApiError::new(Code::Unauthenticated, message)
        };
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
            .map_err(|_| fail("unreadable header", "unreadable Authorization header"))?;
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                fail(
                    "not a bearer token",
                    "the Authorization header must be `Bearer <token>`",
                )
            })?;
        match state.auth.authenticate(token).await? {
            Some(principal) => Ok(Authenticated(principal)),
            None => Err(fail(
                "unknown, revoked or expired token",
                "unknown, revoked or expired token",
            )),
        }
    }
}
