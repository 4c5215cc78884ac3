//! Dashboard sessions: a random id in an `HttpOnly`, `SameSite=Strict`
//! cookie, the session itself kept server-side so logout and expiry take
//! effect at once and nothing a browser holds can be forged.

use crate::domain::source::{new_token, SecretHash};
use crate::http::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration, Utc};
use dashmap::DashMap;

/// The cookie's name.
pub const COOKIE: &str = "inlet_session";

/// One logged-in browser.
#[derive(Clone, Debug)]
struct Session {
    csrf: String,
    expires: DateTime<Utc>,
    /// At most one value waiting to be shown once (post/redirect/get).
    flash: Option<Flash>,
}

/// A one-time value an action made, kept server-side in the session until
/// the page the action redirects to shows it. Never in a cookie or the URL:
/// a webhook URL *is* the source's secret. One slot per session, so a
/// session holds at most one such value however many actions it takes.
#[derive(Clone, Debug, PartialEq)]
pub enum Flash {
    /// The webhook URL a create or rotate just made, for that source's page.
    WebhookUrl { source_id: String, url: String },
}

/// Every live session, keyed by the SHA-256 of its id: a lookup then never
/// compares the secret itself, so its timing tells nothing about valid ids.
#[derive(Default)]
pub struct Sessions {
    by_hash: DashMap<String, Session>,
}

impl Sessions {
    /// Starts a session lasting `minutes`; returns the id for the cookie.
    pub fn start(&self, minutes: i64) -> String {
        self.prune();
        let id = new_token();
        let session = Session {
            csrf: new_token(),
            expires: Utc::now() + Duration::minutes(minutes.max(1)),
            flash: None,
        };
        self.by_hash
            .insert(SecretHash::of(id.as_bytes()).0, session);
        id
    }

    /// The CSRF token of a live session, or `None` when unknown or expired.
    pub(super) fn csrf_of(&self, id: &str) -> Option<String> {
        let key = SecretHash::of(id.as_bytes()).0;
        let session = self.by_hash.get(&key).map(|s| s.clone())?;
        if session.expires <= Utc::now() {
            self.by_hash.remove(&key);
            return None;
        }
        Some(session.csrf)
    }

    /// Whether `id` is a live session (not ended, not expired). Long-lived
    /// responses (the live tail) ask this again as they go.
    pub fn is_live(&self, id: &str) -> bool {
        self.csrf_of(id).is_some()
    }

    /// Keeps `flash` for the next page of session `id` (replacing any
    /// earlier one not yet shown).
    pub fn set_flash(&self, id: &str, flash: Flash) {
        if let Some(mut session) = self.by_hash.get_mut(&SecretHash::of(id.as_bytes()).0) {
            session.flash = Some(flash);
        }
    }

    /// The webhook URL waiting for `source_id`'s page, removed as it is
    /// read: a reload of that page no longer shows it. A flash for another
    /// source stays where it is.
    pub fn take_webhook_url(&self, id: &str, source_id: &str) -> Option<String> {
        let mut session = self.by_hash.get_mut(&SecretHash::of(id.as_bytes()).0)?;
        match session.flash.take() {
            Some(Flash::WebhookUrl { source_id: s, url }) if s == source_id => Some(url),
            other => {
                session.flash = other;
                None
            }
        }
    }

    pub fn end(&self, id: &str) {
        self.by_hash.remove(&SecretHash::of(id.as_bytes()).0);
    }

    /// Drops expired sessions so abandoned logins cannot pile up.
    fn prune(&self) {
        let now = Utc::now();
        self.by_hash.retain(|_, s| s.expires > now);
    }
}

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
        let found = session_cookie(&parts.headers).and_then(|id| {
            state.sessions.csrf_of(&id).map(|csrf| Authed {
                session_id: id,
                csrf,
            })
        });
        found.ok_or_else(|| Redirect::to(&login_url(parts)).into_response())
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
    fn sessions_start_check_and_end() {
        let sessions = Sessions::default();
        let id = sessions.start(5);
        assert!(id.len() >= 43, "256-bit id");
        assert!(sessions.csrf_of(&id).is_some());
        assert!(sessions.csrf_of("forged").is_none());
        sessions.end(&id);
        assert!(sessions.csrf_of(&id).is_none());
    }

    #[test]
    fn a_flash_is_shown_once_and_only_on_its_sources_page() {
        let sessions = Sessions::default();
        let id = sessions.start(5);
        let flash = Flash::WebhookUrl {
            source_id: "a".into(),
            url: "http://x/hooks/t".into(),
        };
        sessions.set_flash(&id, flash);
        assert_eq!(sessions.take_webhook_url(&id, "b"), None);
        assert_eq!(
            sessions.take_webhook_url(&id, "a").as_deref(),
            Some("http://x/hooks/t")
        );
        assert_eq!(sessions.take_webhook_url(&id, "a"), None, "once");
    }

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
