//! Page rendering: one handlebars registry for the dashboard, built once.
//!
//! Strict mode makes a template that names a missing field fail loudly in
//! tests instead of rendering a silent blank; HTML escaping stays on (the
//! default escape function), because almost everything shown comes from
//! untrusted webhook payloads.

use crate::http::error::AppError;
use axum::http::{header, HeaderValue, StatusCode};
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
    ("profile_merge", include_str!("templates/profile_merge.hbs")),
    ("profile_erase", include_str!("templates/profile_erase.hbs")),
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
        let data = json!({"title": title, "message": message, "status": status.as_u16(), "nav": "", "csrf": null});
        match render("error", &data) {
            Ok(body) => with_headers((status, Html(body)).into_response()),
            Err(_) => (status, message).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        assert!(REGISTRY.is_ok(), "{:?}", REGISTRY.as_ref().err());
    }
}
