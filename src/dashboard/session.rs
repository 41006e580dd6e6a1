//! Signing in to the dashboards: a form posts a role token, the server verifies it with the
//! same [`Authenticator`](crate::service::tokens::Authenticator) as the API and keeps it in an
//! `HttpOnly`, `SameSite=Strict` cookie.
//!
//! The cookie holds the token itself rather than a server-side session id: every `rrct serve`
//! instance sharing a database can then verify it with no session table, revoking the token
//! ends the session (within the authenticator's cache lifetime), and scripts cannot read it.
//! `SameSite=Strict` keeps other sites from making the browser send it (no cross-site form
//! posts), and `Secure` is added when a TLS-terminating proxy says the request was HTTPS.

use askama::Template;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, State};
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

/// The reader the session cookie names; `Err` when that cannot be told (the database is
/// unreachable), which is not the same as not being signed in.
async fn principal(headers: &HeaderMap, state: &Dashboard) -> Result<Option<Principal>, String> {
    let Some(token) = session_token(headers) else {
        return Ok(None);
    };
    state
        .app
        .auth
        .authenticate(token)
        .await
        .map_err(|e| e.to_string())
}

impl FromRequestParts<Dashboard> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Dashboard) -> Result<Self, Response> {
        match principal(&parts.headers, state).await {
            Ok(Some(p)) => Ok(SignedIn(p)),
            Ok(None) => Err(Redirect::to("/").into_response()),
            Err(e) => Err(outage(&e)),
        }
    }
}

/// The page for a database that cannot be reached: the reader is still signed in.
pub(super) fn outage(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "the database is unreachable");
    let mut r = html(
        StatusCode::SERVICE_UNAVAILABLE,
        &SignInPage {
            error: Some(
                "The database is unreachable; the page will be back once it is. Try again shortly."
                    .into(),
            ),
        },
    );
    r.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        HeaderValue::from_static("5"),
    );
    r
}

/// The client's address, when the server recorded it.
fn client_of(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The address a form was posted from.
pub struct Client(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Client(client_of(parts)))
    }
}

/// Whether a form post comes from another site: its `Sec-Fetch-Site` (which no page can
/// forge) says so, or, from a browser that does not send it, its `Origin` is not this
/// server's. A post with neither header (no browser sends neither on a cross-site post) is let
/// through.
pub(super) fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return !matches!(site.to_ascii_lowercase().as_str(), "same-origin" | "none");
    }
    match text("origin") {
        None => false,
        Some(origin) => {
            let host = text("host").unwrap_or("");
            let origin_host = origin
                .split_once("://")
                .map_or("", |(_, rest)| rest.trim_end_matches('/'));
            origin_host.is_empty() || !origin_host.eq_ignore_ascii_case(host)
        }
    }
}

fn refuse_cross_site() -> Response {
    tracing::warn!("a cross-site form post was refused");
    html(
        StatusCode::FORBIDDEN,
        &SignInPage {
            error: Some("This form was sent from another site and was refused.".into()),
        },
    )
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
    match principal(&headers, &state).await {
        Ok(Some(_)) => Redirect::to("/trials").into_response(),
        Ok(None) => html(StatusCode::OK, &SignInPage { error: None }),
        Err(e) => outage(&e),
    }
}

#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
}

/// `POST /login`.
pub async fn sign_in(
    State(state): State<Dashboard>,
    Client(client): Client,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    if cross_site(&headers) {
        return refuse_cross_site();
    }
    let failures = &state.app.auth_failures;
    if let Some(wait) = failures.blocked(client) {
        return html(
            StatusCode::TOO_MANY_REQUESTS,
            &SignInPage {
                error: Some(format!(
                    "Too many failed sign-ins from this address; try again in {} s.",
                    wait.as_secs().max(1)
                )),
            },
        );
    }
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
        Ok(None) => {
            failures.record(client, "sign-in with an unknown, revoked or expired token");
            html(
                StatusCode::UNAUTHORIZED,
                &SignInPage {
                    error: Some("Unknown, revoked or expired token.".into()),
                },
            )
        }
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
    if cross_site(&headers) {
        return refuse_cross_site();
    }
    let mut r = Redirect::to("/").into_response();
    r.headers_mut()
        .insert(SET_COOKIE, cookie(&headers, "", Some(0)));
    r
}
