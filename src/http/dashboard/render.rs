//! Page rendering: one handlebars registry for the dashboard, built once.
//!
//! Strict mode makes a template that names a missing field fail loudly in
//! tests instead of rendering a silent blank; HTML escaping stays on (the
//! default escape function), because almost everything shown comes from
//! untrusted webhook payloads.

use super::session::session_cookie;
use crate::http::error::AppError;
use crate::http::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use handlebars::Handlebars;
use serde_json::{json, Value};
use std::sync::LazyLock;

/// Templates and partials, embedded in the binary so a deploy is one file.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout", include_str!("templates/layout.hbs")),
    ("login", include_str!("templates/login.hbs")),
    ("events", include_str!("templates/events.hbs")),
    ("event_row", include_str!("templates/event_row.hbs")),
    ("event", include_str!("templates/event.hbs")),
    ("errors", include_str!("templates/errors.hbs")),
    ("sources", include_str!("templates/sources.hbs")),
    ("source", include_str!("templates/source.hbs")),
    (
        "mapping_section",
        include_str!("templates/mapping_section.hbs"),
    ),
    ("profiles", include_str!("templates/profiles.hbs")),
    ("profile", include_str!("templates/profile.hbs")),
    ("error", include_str!("templates/error.hbs")),
    (
        "replay_confirm",
        include_str!("templates/replay_confirm.hbs"),
    ),
    ("home", include_str!("templates/home.hbs")),
    ("profile_merge", include_str!("templates/profile_merge.hbs")),
    ("profile_erase", include_str!("templates/profile_erase.hbs")),
    ("profile_graph", include_str!("templates/profile_graph.hbs")),
    ("kinds", include_str!("templates/kinds.hbs")),
    ("profile_split", include_str!("templates/profile_split.hbs")),
    (
        "profile_split_done",
        include_str!("templates/profile_split_done.hbs"),
    ),
    ("never_merge", include_str!("templates/never_merge.hbs")),
];

static REGISTRY: LazyLock<Result<Handlebars<'static>, String>> = LazyLock::new(build);

fn build() -> Result<Handlebars<'static>, String> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    for (name, source) in TEMPLATES {
        registry
            .register_template_string(name, source)
            .map_err(|e| format!("template {name}: {e}"))?;
    }
    Ok(registry)
}

/// Renders a template to a string (also used for SSE rows).
pub fn render(name: &str, data: &Value) -> Result<String, PageError> {
    let registry = REGISTRY
        .as_ref()
        .map_err(|e| PageError::Internal(e.clone()))?;
    registry
        .render(name, data)
        .map_err(|e| PageError::Internal(format!("rendering {name}: {e}")))
}

/// A full page with the dashboard's security headers.
pub fn page(status: StatusCode, name: &str, data: &Value) -> Result<Response, PageError> {
    let body = render(name, data)?;
    Ok(with_headers((status, Html(body)).into_response()))
}

/// Pages allow only their own script and stylesheet, cannot be framed, and
/// never leak their URL to other sites.
fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Why a page could not be shown; answered as an HTML page, never JSON.
#[derive(Debug)]
pub enum PageError {
    /// A form without this session's CSRF token.
    Forbidden,
    App(AppError),
    Internal(String),
}

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        PageError::App(e)
    }
}

impl From<crate::service::ServiceError> for PageError {
    fn from(e: crate::service::ServiceError) -> Self {
        PageError::App(AppError::from(e))
    }
}

pub type PageResult = Result<Response, PageError>;

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            PageError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form did not carry a valid security token (it may be from an old page \
                 or another site). Go back, reload the page and try again."
                    .to_string(),
            ),
            PageError::App(e) => {
                if e.status().is_server_error() {
                    tracing::error!(error = %e, "dashboard page failed");
                }
                let message = e.body()["error"].as_str().unwrap_or("error").to_string();
                (e.status(), "Something went wrong", message)
            }
            PageError::Internal(e) => {
                tracing::error!(error = %e, "dashboard page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "internal error; the server log has details".to_string(),
                )
            }
        };
        ErrorPage {
            status,
            title,
            message,
        }
        .into_marked_response()
    }
}

/// An error page as first rendered: without the navigation, because a
/// `PageError` does not know the session. The page is kept in the
/// response's extensions so [`error_pages_keep_the_nav`] can render it
/// again with the nav for a logged-in browser.
#[derive(Clone, Debug)]
struct ErrorPage {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl ErrorPage {
    /// The page; `csrf` is the session's token when logged in (the layout
    /// shows the nav and the logout form), else the page links to the login.
    fn render(&self, csrf: Option<&str>) -> Response {
        let data = json!({
            "title": self.title, "message": self.message, "status": self.status.as_u16(),
            "nav": "", "csrf": csrf,
        });
        match render("error", &data) {
            Ok(body) => with_headers((self.status, Html(body)).into_response()),
            Err(_) => (self.status, self.message.clone()).into_response(),
        }
    }

    fn into_marked_response(self) -> Response {
        let mut response = self.render(None);
        response.extensions_mut().insert(self);
        response
    }
}

/// A layer on the dashboard's routes: an error page answered to a
/// logged-in browser is rendered again with the navigation, so a 404 or a
/// refused form is not a dead end.
pub async fn error_pages_keep_the_nav(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let session = session_cookie(req.headers());
    let response = next.run(req).await;
    let Some(page) = response.extensions().get::<ErrorPage>() else {
        return response;
    };
    match session.and_then(|id| state.sessions.csrf_of(&id)) {
        Some(csrf) => page.render(Some(&csrf)),
        None => response,
    }
}

/// The 404 page for a path no route serves (the app's fallback, for
/// browsers): with the navigation when `headers` carry a live session,
/// else a plain page with a link to the login.
pub fn not_found_page(state: &AppState, headers: &HeaderMap) -> Response {
    let csrf = session_cookie(headers).and_then(|id| state.sessions.csrf_of(&id));
    ErrorPage {
        status: StatusCode::NOT_FOUND,
        title: "Page not found",
        message: "There is no page at this address. It may have been mistyped, or what it \
                  showed was deleted."
            .to_string(),
    }
    .render(csrf.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        assert!(REGISTRY.is_ok(), "{:?}", REGISTRY.as_ref().err());
    }
}
