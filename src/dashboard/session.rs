//! Signing in to the dashboards: a form posts a role token, the server verifies it with the
//! same [`Authenticator`](crate::service::auth::Authenticator) as the API and keeps it in an
//! `HttpOnly`, `SameSite=Strict` cookie.
//!
//! The cookie holds the token itself rather than a server-side session id: every `rrct serve`
//! instance sharing a database can then verify it with no session table, revoking the token
//! ends the session (within the authenticator's cache lifetime), and scripts cannot read it.
//! `SameSite=Strict` keeps other sites from making the browser send it (no cross-site form
//! posts), and `Secure` is added when a TLS-terminating proxy says the request was HTTPS.

use askama::Template;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{html, Dashboard};
use crate::service::Principal;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "rrct_session";

#[derive(Template)]
#[template(path = "dashboard/sign_in.html")]
pub struct SignInPage {
    pub error: Option<String>,
}

/// A reader signed in through the cookie; anyone else is sent to the sign-in page.
pub struct SignedIn(pub Principal);

/// The session token in the request's cookies, if any.
fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

async fn principal(headers: &HeaderMap, state: &Dashboard) -> Option<Principal> {
    let token = session_token(headers)?;
    match state.app.auth.authenticate(token).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "cannot verify a session token");
            None
        }
    }
}

impl FromRequestParts<Dashboard> for SignedIn {
    type Rejection = Redirect;

    async fn from_request_parts(parts: &mut Parts, state: &Dashboard) -> Result<Self, Redirect> {
        principal(&parts.headers, state)
            .await
            .map(SignedIn)
            .ok_or_else(|| Redirect::to("/"))
    }
}

fn cookie(headers: &HeaderMap, value: &str, max_age: Option<u32>) -> HeaderValue {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let mut c = format!("{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    // Tokens are `rrct_` and hex; anything else never reaches here (it fails verification).
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("rrct_session=; Path=/"))
}

/// `GET /`: the sign-in form, or straight on for a reader already signed in.
pub async fn sign_in_page(State(state): State<Dashboard>, headers: HeaderMap) -> Response {
    if principal(&headers, &state).await.is_some() {
        return Redirect::to("/trials").into_response();
    }
    html(StatusCode::OK, &SignInPage { error: None })
}

#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
}

/// `POST /login`.
pub async fn sign_in(
    State(state): State<Dashboard>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let token = form.token.trim();
    let found = if token.is_empty() {
        Ok(None)
    } else {
        state.app.auth.authenticate(token).await
    };
    match found {
        Ok(Some(p)) => {
            let to = match &p.trial_id {
                Some(trial) => format!("/trials/{trial}"),
                None => "/trials".to_string(),
            };
            let mut r = Redirect::to(&to).into_response();
            r.headers_mut()
                .insert(SET_COOKIE, cookie(&headers, token, None));
            r
        }
        Ok(None) => html(
            StatusCode::UNAUTHORIZED,
            &SignInPage {
                error: Some("Unknown or revoked token.".into()),
            },
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot verify a token at sign-in");
            html(
                StatusCode::SERVICE_UNAVAILABLE,
                &SignInPage {
                    error: Some("The database is unreachable; try again shortly.".into()),
                },
            )
        }
    }
}

/// `POST /logout`: forget the cookie.
pub async fn sign_out(headers: HeaderMap) -> Response {
    let mut r = Redirect::to("/").into_response();
    r.headers_mut()
        .insert(SET_COOKIE, cookie(&headers, "", Some(0)));
    r
}
