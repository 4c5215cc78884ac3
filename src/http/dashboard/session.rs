//! Dashboard sessions: a random id in an `HttpOnly`, `SameSite=Strict`
//! cookie, the session itself kept server-side so logout and expiry take
//! effect at once and nothing a browser holds can be forged.

use crate::http::error::AppError;
use crate::http::AppState;
pub use crate::service::sessions::{Flash, Sessions};
use crate::service::ServiceError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};

/// The cookie's name.
pub const COOKIE: &str = "inlet_session";

/// A request from a logged-in browser. Handlers that take it are behind the
/// login; without a valid session the request is answered with a 303 to
/// `/login`.
pub struct Authed {
    pub session_id: String,
    /// This session's CSRF token, echoed into every state-changing form.
    pub csrf: String,
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(id) = session_cookie(&parts.headers) else {
            return Err(Redirect::to(&login_url(parts)).into_response());
        };
        match state.sessions.csrf_or_unavailable(&id) {
            Ok(Some(csrf)) => Ok(Authed {
                session_id: id,
                csrf,
            }),
            Ok(None) => Err(Redirect::to(&login_url(parts)).into_response()),
            // The database is away: 503 with Retry-After, not a login page
            // that could not log anyone in either.
            Err(e) => Err(AppError::Service(ServiceError::Store(e)).into_response()),
        }
    }
}

/// Where a request without a session is sent: the login page, remembering
/// a page that was asked for (a GET of anything but `/`) so the login can
/// return to it. `login::safe_next` checks it again on the way back.
fn login_url(parts: &Parts) -> String {
    let wanted = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    if parts.method != axum::http::Method::GET || wanted == "/" {
        return "/login".to_string();
    }
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("next", wanted)
        .finish();
    format!("/login?{query}")
}

/// The session id from the `Cookie` header(s), if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a new session. `Secure` is added when the request came
/// over https (as a reverse proxy reports it), so plain-http local use works.
pub fn set_cookie(id: &str, minutes: i64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    let max_age = minutes.max(1) * 60;
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .ok()
}

/// `Set-Cookie` that makes the browser forget the session.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("inlet_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; inlet_session=abc; b=2"),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("abc"));
    }
}
