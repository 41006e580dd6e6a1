//! Web dashboards and the closed HTML report: server-rendered pages (askama templates in
//! `templates/dashboard/`) with server-side SVG charts (plotters), no JavaScript and nothing
//! loaded from elsewhere.
//!
//! Routes: `GET /` (sign in), `POST /login`, `POST /logout`, `GET /auth/sign-in` and
//! `GET /auth/callback` (OpenID Connect, see [`session`]), the page actions of [`actions`]
//! (`POST /trials/{trial}/lifecycle|randomised-in-error|unblind`), `GET /trials` and
//! `GET /trials/{trial}[?cutoff=YYYY-MM-DD][&page=N]`, which shows each role its own page:
//! - sponsor, register host, admin: [`blinded::BlindedPage`] (a site-scoped register host
//!   sees its own site only);
//! - statistician and DSMB: [`unblinded::UnblindedPage`], also written by
//!   `rrct analyse --format html` as the DSMB's closed report;
//! - auditor: [`audit::AuditPage`].
//!
//! This module owns presentation only. It must never decide blinding by hiding markup: which
//! figures a role may see is settled by the data each page is built from.

pub mod actions;
pub mod audit;
pub mod blinded;
pub mod cache;
pub mod charts;
pub mod page;
pub mod representativeness;
pub mod session;
pub mod simulation;
pub mod suppress;
pub mod unblinded;

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::service::auth::{self, PageKind};
use crate::service::error::{Code, CodedError};
use crate::service::trial_view::{Ask, PreparedTrial, Reader, TrialView, ViewRequest};
use crate::service::{audit_trail, lifecycle, unblinding, AppState, Principal, Role};
use cache::{PageCache, PageKey};
use page::Chrome;
use session::SignedIn;

/// What the pages reach: the engine, and the pages rendered recently.
#[derive(Clone)]
pub struct Dashboard {
    pub app: AppState,
    pub pages: Arc<PageCache>,
}

/// The pages' routes, with their own state.
pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/", get(session::sign_in_page))
        .route("/login", post(session::sign_in))
        .route("/logout", post(session::sign_out))
        .route("/auth/sign-in", get(session::begin_oidc))
        .route("/auth/callback", get(session::oidc_callback))
        .route("/trials", get(trial_list))
        .route("/trials/{trial}", get(trial_page))
        .route("/trials/{trial}/lifecycle", post(actions::lifecycle_change))
        .route(
            "/trials/{trial}/randomised-in-error",
            post(actions::mark_in_error),
        )
        .route("/trials/{trial}/unblind", post(actions::unblind))
        .layer(middleware::map_response(page_headers))
        .with_state(Dashboard {
            app,
            pages: Arc::default(),
        })
}

/// Pages are per reader and never cached; they run no script and load nothing from elsewhere.
async fn page_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        // Same-origin: browsers then send this server's origin with its own form posts (with
        // `no-referrer` they send `Origin: null`), which the cross-site check reads.
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// A rendered template, or a plain 500 when rendering fails.
pub(crate) fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "page rendering failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/message.html")]
pub(crate) struct MessagePage {
    heading: String,
    message: String,
    links: Vec<(String, String)>,
    signed_in: bool,
}

fn message(status: StatusCode, heading: &str, message: String) -> Response {
    html(
        status,
        &MessagePage {
            heading: heading.into(),
            message,
            links: vec![("/trials".into(), "Your trials".into())],
            signed_in: true,
        },
    )
}

fn role_name(p: &Principal) -> String {
    match p.role {
        Role::Register => "Register host".into(),
        Role::Dsmb => "DSMB".into(),
        r => {
            let s = r.as_str();
            s[..1].to_uppercase() + &s[1..]
        }
    }
}

/// `GET /trials`: the trials this reader may open (straight to the only one).
async fn trial_list(State(state): State<Dashboard>, SignedIn(session): SignedIn) -> Response {
    let p = session.principal;
    let trials: Vec<&str> = state
        .app
        .trials
        .ids()
        .filter(|t| p.may_access_trial(t))
        .collect();
    if let [only] = trials.as_slice() {
        return Redirect::to(&format!("/trials/{only}")).into_response();
    }
    html(
        StatusCode::OK,
        &MessagePage {
            heading: "Your trials".into(),
            message: if trials.is_empty() {
                "This sign-in opens no trial served here.".into()
            } else {
                format!("Signed in as {}.", role_name(&p))
            },
            links: trials
                .iter()
                .map(|t| {
                    let title = state
                        .app
                        .trials
                        .get(t)
                        .map(|r| r.protocol.title.clone())
                        .unwrap_or_default();
                    (format!("/trials/{t}"), format!("{t}: {title}"))
                })
                .collect(),
            signed_in: true,
        },
    )
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    cutoff: Option<String>,
    page: Option<String>,
}

/// `GET /trials/{trial}`: the page for the reader's role. The trial view decides whether the
/// reader may open the trial and what of it they get; this only words the refusals.
async fn trial_page(
    State(state): State<Dashboard>,
    SignedIn(session): SignedIn,
    Path(trial): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let app = &state.app;
    let p = session.principal.clone();
    let runtime = match auth::served_trial(&app.trials, &p, &trial) {
        Ok(runtime) => runtime,
        Err(e) => return refused(&e, &trial),
    };
    // An emptied cut-off field means "today", as no cut-off does.
    let asked = q.cutoff.as_deref().filter(|s| !s.is_empty());
    let protocol = &runtime.protocol;
    let chrome = |cutoff: String, lifecycle: Option<page::LifecyclePanel>| Chrome {
        trial_id: trial.clone(),
        title: protocol.title.clone(),
        protocol_version: protocol.version.clone(),
        role: role_name(&p),
        scope: p
            .site_code
            .as_ref()
            .map_or_else(|| "all sites".to_string(), |s| format!("site {s}")),
        cutoff,
        interactive: true,
        lifecycle,
    };
    if p.page() == PageKind::AuditTrail {
        if let Err(e) = app.clock.cutoff(asked) {
            return refused(&e, &trial);
        }
        let page = q.page.as_deref().and_then(|s| s.parse().ok()).unwrap_or(1);
        let trail = match audit_trail::page(app, &p, &trial, page).await {
            Ok(trail) => trail,
            Err(e) => return refused(&e, &trial),
        };
        let panel = match lifecycle_panel(app, &p, &trial).await {
            Ok(panel) => panel,
            Err(e) => return refused(&e, &trial),
        };
        return html(
            StatusCode::OK,
            &audit::AuditPage::build(trail, chrome(String::new(), Some(panel))),
        );
    }
    let opened = match app
        .views
        .open(
            &app.store,
            ViewRequest {
                trial: &trial,
                cutoff: app.clock.cutoff(asked),
                reader: Reader::Token {
                    principal: &p,
                    served: &app.trials,
                },
                ask: Ask::ForRole,
            },
        )
        .await
    {
        Ok(opened) => opened,
        Err(e) => return refused(&e, &trial),
    };
    // Read after the view's head, so the page cached under that head is never older than it.
    let panel = match lifecycle_panel(app, &p, &trial).await {
        Ok(panel) => panel,
        Err(e) => return refused(&e, &trial),
    };
    // Who opened an unblinded page is logged before it is shown; no log, no page.
    if matches!(opened.view, TrialView::Unblinded(_)) {
        let cutoff = opened.cutoff.0.to_string();
        if let Err(e) = app
            .sessions
            .log_unblinded_read(&session, &trial, &cutoff)
            .await
        {
            return session::outage(&e);
        }
    }
    let chrome = chrome(opened.cutoff.0.to_string(), Some(panel));
    let key = PageKey {
        trial: trial.clone(),
        cutoff: opened.cutoff,
        role: chrome.role.clone(),
        site: p.site_code.clone(),
        head: opened.head,
    };
    let page = state
        .pages
        .page(key, move || match opened.view {
            TrialView::Unblinded(prepared) => {
                unblinded::UnblindedPage::build(&prepared, chrome).render()
            }
            TrialView::Blinded(b) => {
                blinded::BlindedPage::build(&b.release(), b.protocol(), b.site(), chrome).render()
            }
        })
        .await;
    match page {
        Ok(body) => Html(body.as_str().to_owned()).into_response(),
        Err(e) => unavailable(&e),
    }
}

/// The trial's lifecycle, history and unblindings as this reader sees them: the list of
/// unblindings only for the statistician, the DSMB and the auditor; their number for everyone.
async fn lifecycle_panel(
    app: &AppState,
    p: &Principal,
    trial: &str,
) -> Result<page::LifecyclePanel, lifecycle::LifecycleError> {
    let overview = lifecycle::overview(&app.store, trial).await?;
    let unblinding_list = if p.may_list_unblindings(trial) {
        let rows = unblinding::of_trial(&app.store, trial).await?;
        Some(
            rows.into_iter()
                .rev()
                .map(|u| {
                    [
                        u.unblinded_at,
                        u.record_id,
                        u.randomisation_number.to_string(),
                        u.person,
                        u.reason,
                        u.actor,
                    ]
                })
                .collect(),
        )
    } else {
        None
    };
    Ok(page::LifecyclePanel {
        status: overview.lifecycle,
        closed_sites: overview.closed_sites.join(", "),
        history: overview
            .history
            .into_iter()
            .rev()
            .map(|h| {
                [
                    h.changed_at,
                    h.change.replace('_', " "),
                    h.site_code.unwrap_or_default(),
                    h.reason,
                    h.actor,
                ]
            })
            .collect(),
        unblindings: overview.unblindings,
        unblinding_list,
        may_change: p.may_administer(trial),
        may_unblind: p.may_unblind(trial),
    })
}

/// A refusal or failure of the trial view, worded for a reader of pages.
fn refused(e: &dyn CodedError, trial: &str) -> Response {
    match e.code() {
        Code::TrialNotFound => message(
            StatusCode::NOT_FOUND,
            "No such trial",
            format!("No trial `{trial}` is served here."),
        ),
        Code::Forbidden => message(
            StatusCode::FORBIDDEN,
            "Not for this sign-in",
            format!("Your sign-in is not valid for trial `{trial}`."),
        ),
        Code::InvalidQuery => message(
            StatusCode::BAD_REQUEST,
            "Cut-off not accepted",
            sentence(&e.public_message().replacen("cutoff", "The cut-off", 1)),
        ),
        Code::Unavailable => session::outage(&e.public_message()),
        _ => unavailable(&e.to_string()),
    }
}

/// A message as a sentence: ending with a full stop.
fn sentence(text: &str) -> String {
    if text.ends_with('.') {
        text.to_string()
    } else {
        format!("{text}.")
    }
}

fn unavailable(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "dashboard page failed");
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The page could not be built",
        "See the server log for the cause.".into(),
    )
}

/// The unblinded report as one self-contained HTML file (inline CSS and SVG): the DSMB's
/// closed report, as `rrct analyse --format html` writes it.
pub fn closed_report(prepared: &PreparedTrial) -> Result<String, askama::Error> {
    let protocol = &prepared.data.protocol;
    unblinded::UnblindedPage::build(
        prepared,
        Chrome {
            trial_id: protocol.trial_id.clone(),
            title: protocol.title.clone(),
            protocol_version: protocol.version.clone(),
            role: "Closed report for the DSMB".into(),
            scope: "all sites".into(),
            cutoff: prepared.cutoff.0.to_string(),
            interactive: false,
            lifecycle: None,
        },
    )
    .render()
}
