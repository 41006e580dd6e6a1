//! Signing in to the dashboards, and the session cookie.
//!
//! Two ways in, one kind of session (`service::sessions`): a person signs in through the
//! configured OpenID Connect issuer (`GET /auth/sign-in`, back at `GET /auth/callback`), or
//! pastes a role token into the form (`POST /login`). Either way the browser gets only an
//! opaque random session id in an `HttpOnly; SameSite=Strict` cookie (`Secure` as configured),
//! never a token; every sign-in gets a new id, and `POST /logout` ends the session on the
//! server (then at the issuer too, when it offers RP-initiated logout).
//!
//! Forms that change state (sign-in, sign-out) are refused when another site posts them
//! ([`cross_site`]); the session cookie is `SameSite=Strict` besides. The OpenID Connect
//! callback is a cross-site navigation by nature (the issuer sends the browser back), so it is
//! guarded instead by the sign-in's own `state`, nonce and PKCE verifier, and by a
//! `SameSite=Lax` cookie binding the sign-in to the browser that started it. Because a browser
//! does not send a `Strict` cookie on a redirect chain that began on the issuer's site, the
//! callback answers with a page that moves on to `/trials` itself.

use askama::Template;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{html, Dashboard};
use crate::service::sessions::{CookieSecurity, Grant, PageSession};
use crate::service::sign_in::{SignInError, ATTEMPT_LIFETIME};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "rrct_session";

/// The cookie binding a sign-in through OpenID Connect to the browser that began it.
pub const SIGN_IN_COOKIE: &str = "rrct_sign_in";

#[derive(Template)]
#[template(path = "dashboard/sign_in.html")]
pub struct SignInPage {
    pub error: Option<String>,
    /// Whether people may sign in through an OpenID Connect issuer here.
    pub oidc: bool,
    pub idle: String,
    pub lifetime: String,
}

/// A page that sends the browser on to `to` by itself (and offers a link).
#[derive(Template)]
#[template(path = "dashboard/onward.html")]
struct OnwardPage {
    heading: String,
    message: String,
    to: String,
}

/// A duration as people say it: `30 min`, `12 h`, `45 s`.
fn spoken(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn sign_in_form(state: &Dashboard, status: StatusCode, error: Option<String>) -> Response {
    let settings = state.app.sessions.settings();
    html(
        status,
        &SignInPage {
            error,
            oidc: state.app.relying_party.is_some(),
            idle: spoken(settings.idle),
            lifetime: spoken(settings.absolute),
        },
    )
}

/// A reader with a live session; anyone else is sent to the sign-in page.
pub struct SignedIn(pub PageSession);

/// The value of the cookie `name` in the request, if any.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// The session the cookie names; `Err` when that cannot be told (the database is
/// unreachable), which is not the same as not being signed in.
async fn session(headers: &HeaderMap, state: &Dashboard) -> Result<Option<PageSession>, String> {
    let Some(id) = cookie_value(headers, COOKIE_NAME) else {
        return Ok(None);
    };
    state
        .app
        .sessions
        .resolve(&state.app.auth, id)
        .await
        .map_err(|e| e.to_string())
}

impl FromRequestParts<Dashboard> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Dashboard) -> Result<Self, Response> {
        match session(&parts.headers, state).await {
            Ok(Some(s)) => Ok(SignedIn(s)),
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
            oidc: false,
            idle: String::new(),
            lifetime: String::new(),
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

fn refuse_cross_site(state: &Dashboard) -> Response {
    tracing::warn!("a cross-site form post was refused");
    sign_in_form(
        state,
        StatusCode::FORBIDDEN,
        Some("This form was sent from another site and was refused.".into()),
    )
}

/// A `Set-Cookie` value. Values are hex (session ids, sign-in secrets) or empty; nothing else
/// reaches here.
fn cookie(
    state: &Dashboard,
    headers: &HeaderMap,
    name: &str,
    value: &str,
    attributes: &str,
) -> HeaderValue {
    let secure = match state.app.sessions.settings().secure_cookie {
        CookieSecurity::Always => true,
        CookieSecurity::Never => false,
        CookieSecurity::Auto => headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https")),
    };
    let mut c = format!("{name}={value}; HttpOnly; {attributes}");
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("rrct_session=; Path=/"))
}

fn session_cookie(state: &Dashboard, headers: &HeaderMap, id: &str) -> HeaderValue {
    cookie(state, headers, COOKIE_NAME, id, "Path=/; SameSite=Strict")
}

fn session_cookie_removed(state: &Dashboard, headers: &HeaderMap) -> HeaderValue {
    cookie(
        state,
        headers,
        COOKIE_NAME,
        "",
        "Path=/; SameSite=Strict; Max-Age=0",
    )
}

/// `GET /`: the sign-in form, or straight on for a reader already signed in.
pub async fn sign_in_page(State(state): State<Dashboard>, headers: HeaderMap) -> Response {
    match session(&headers, &state).await {
        Ok(Some(_)) => Redirect::to("/trials").into_response(),
        Ok(None) => sign_in_form(&state, StatusCode::OK, None),
        Err(e) => outage(&e),
    }
}

#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
}

fn too_many(state: &Dashboard, client: Option<IpAddr>) -> Option<Response> {
    let wait = state.app.auth_failures.blocked(client)?;
    Some(sign_in_form(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        Some(format!(
            "Too many failed sign-ins from this address; try again in {} s.",
            wait.as_secs().max(1)
        )),
    ))
}

/// `POST /login`: a pasted token, checked once, for a session.
pub async fn sign_in(
    State(state): State<Dashboard>,
    Client(client): Client,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    if cross_site(&headers) {
        return refuse_cross_site(&state);
    }
    if let Some(r) = too_many(&state, client) {
        return r;
    }
    let token = form.token.trim();
    let found = if token.is_empty() {
        Ok(None)
    } else {
        state.app.auth.authenticate(token).await
    };
    match found {
        Ok(Some(principal)) => {
            let to = match &principal.trial_id {
                Some(trial) => format!("/trials/{trial}"),
                None => "/trials".to_string(),
            };
            let started = state
                .app
                .sessions
                .start(
                    Grant::Token {
                        token: token.to_string(),
                        principal,
                    },
                    cookie_value(&headers, COOKIE_NAME),
                )
                .await;
            match started {
                Ok(id) => {
                    let mut r = Redirect::to(&to).into_response();
                    r.headers_mut()
                        .insert(SET_COOKIE, session_cookie(&state, &headers, &id.0));
                    r
                }
                Err(e) => unreachable_page(&state, &e),
            }
        }
        Ok(None) => {
            state
                .app
                .auth_failures
                .record(client, "sign-in with an unknown, revoked or expired token");
            sign_in_form(
                &state,
                StatusCode::UNAUTHORIZED,
                Some("Unknown, revoked or expired token.".into()),
            )
        }
        Err(e) => unreachable_page(&state, &e),
    }
}

fn unreachable_page(state: &Dashboard, e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "cannot sign in");
    sign_in_form(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        Some("The database is unreachable; try again shortly.".into()),
    )
}

/// `POST /logout`: end the session on the server and forget the cookie; then, for a person
/// signed in through an issuer that offers it, sign out there too.
pub async fn sign_out(State(state): State<Dashboard>, headers: HeaderMap) -> Response {
    if cross_site(&headers) {
        return refuse_cross_site(&state);
    }
    let ended = match cookie_value(&headers, COOKIE_NAME) {
        Some(id) => match state.app.sessions.end(id).await {
            Ok(ended) => ended,
            Err(e) => return outage(&e),
        },
        None => None,
    };
    let at_issuer = match (&state.app.relying_party, ended.and_then(|s| s.issuer)) {
        (Some(rp), Some(_)) => rp.logout_url().await,
        _ => None,
    };
    let mut r = match at_issuer {
        // A page rather than a redirect: the pages' policy lets forms go to this server only,
        // and a browser holds a redirect after a form post to that.
        Some(to) => html(
            StatusCode::OK,
            &OnwardPage {
                heading: "Signed out".into(),
                message: "You are signed out of rrct; signing you out at your identity provider."
                    .into(),
                to,
            },
        ),
        None => Redirect::to("/").into_response(),
    };
    r.headers_mut()
        .insert(SET_COOKIE, session_cookie_removed(&state, &headers));
    r
}

/// `GET /auth/sign-in`: send the browser to the issuer, bound to it by a sign-in cookie.
pub async fn begin_oidc(
    State(state): State<Dashboard>,
    Client(client): Client,
    headers: HeaderMap,
) -> Response {
    let Some(rp) = state.app.relying_party.clone() else {
        return sign_in_form(
            &state,
            StatusCode::NOT_FOUND,
            Some("Sign-in with e-ID is not configured here; use a token.".into()),
        );
    };
    if let Some(r) = too_many(&state, client) {
        return r;
    }
    match rp.begin(&state.app.store).await {
        Ok(begun) => {
            let mut r = Redirect::to(&begun.authorize_url).into_response();
            r.headers_mut().insert(
                SET_COOKIE,
                cookie(
                    &state,
                    &headers,
                    SIGN_IN_COOKIE,
                    &begun.browser_secret,
                    &format!(
                        "Path=/auth; SameSite=Lax; Max-Age={}",
                        ATTEMPT_LIFETIME.as_secs()
                    ),
                ),
            );
            r
        }
        Err(e) => sign_in_refused(&state, client, &e),
    }
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/callback`: the issuer's answer; a session for a person with a mapped role.
pub async fn oidc_callback(
    State(state): State<Dashboard>,
    Client(client): Client,
    headers: HeaderMap,
    Query(answer): Query<Callback>,
) -> Response {
    let Some(rp) = state.app.relying_party.clone() else {
        return Redirect::to("/").into_response();
    };
    let finished = match (&answer.error, &answer.code, &answer.state) {
        (Some(error), _, _) => Err(SignInError::Refused(
            error
                .chars()
                .filter(char::is_ascii_graphic)
                .take(64)
                .collect(),
        )),
        (None, Some(code), Some(st)) => {
            rp.finish(
                &state.app.store,
                st,
                code,
                cookie_value(&headers, SIGN_IN_COOKIE),
            )
            .await
        }
        _ => Err(SignInError::UnknownAttempt),
    };
    let signed_in = match finished {
        Ok(signed_in) => signed_in,
        Err(e) => return sign_in_refused(&state, client, &e),
    };
    let grant = signed_in.grant;
    let started = state
        .app
        .sessions
        .start(
            Grant::Person {
                person: signed_in.person.clone(),
                role: grant.role,
                trial_id: grant.trial_id.clone(),
                site_code: grant.site_code,
            },
            cookie_value(&headers, COOKIE_NAME),
        )
        .await;
    let id = match started {
        Ok(id) => id,
        Err(e) => return unreachable_page(&state, &e),
    };
    let to = match &grant.trial_id {
        Some(trial) => format!("/trials/{trial}"),
        None => "/trials".into(),
    };
    let mut r = html(
        StatusCode::OK,
        &OnwardPage {
            heading: "Signed in".into(),
            message: format!("Signed in as {}.", signed_in.person.name),
            to,
        },
    );
    let h = r.headers_mut();
    h.append(SET_COOKIE, session_cookie(&state, &headers, &id.0));
    h.append(
        SET_COOKIE,
        cookie(
            &state,
            &headers,
            SIGN_IN_COOKIE,
            "",
            "Path=/auth; SameSite=Lax; Max-Age=0",
        ),
    );
    r
}

/// A failed sign-in through the issuer, worded for the person.
fn sign_in_refused(state: &Dashboard, client: Option<IpAddr>, e: &SignInError) -> Response {
    let (status, message) = match e {
        SignInError::NoRole(person) => {
            tracing::warn!(subject = %person.subject, "a person without a mapped role was refused");
            return html(
                StatusCode::FORBIDDEN,
                &super::MessagePage {
                    heading: "No role in rrct".into(),
                    message: format!(
                        "You signed in at your identity provider as {} ({}), but none of your \
                         groups gives a role in rrct, so there is nothing here for you to open. \
                         Ask the trial's administrator for access if you need it.",
                        person.name, person.subject
                    ),
                    links: vec![("/".into(), "Back to sign-in".into())],
                    signed_in: false,
                },
            );
        }
        SignInError::Unreachable(_) | SignInError::Store(_) | SignInError::Entropy(_) => {
            tracing::error!(error = %e, "sign-in through the issuer failed");
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        _ => {
            state
                .app
                .auth_failures
                .record(client, "refused sign-in through OpenID Connect");
            tracing::warn!(error = %e, "sign-in through the issuer refused");
            (StatusCode::UNAUTHORIZED, e.to_string())
        }
    };
    let mut text = message;
    if let Some(first) = text.get(..1) {
        text = first.to_uppercase() + &text[1..];
    }
    if !text.ends_with('.') {
        text.push('.');
    }
    sign_in_form(state, status, Some(text))
}
