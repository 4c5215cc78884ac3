//! `/login` and `/logout`: the admin token, typed once, buys a session.

use super::csrf;
use super::render::{page, PageResult};
use super::session::{self, Authed};
use crate::http::error::AppError;
use crate::http::guard::{Locked, PeerAddr};
use crate::http::AppState;
use crate::service::ServiceError;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};

/// The login form; `next` (already checked by [`safe_next`]) rides along
/// in a hidden field so the login can return to the page asked for.
fn login_page(status: StatusCode, error: Option<&str>, next: &str) -> PageResult {
    let next = (next != "/").then_some(next);
    let data: Value =
        json!({"title": "Log in", "nav": "", "csrf": null, "error": error, "next": next});
    page(status, "login", &data)
}

#[derive(Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

pub async fn form(Query(query): Query<NextQuery>) -> PageResult {
    login_page(StatusCode::OK, None, safe_next(&query.next))
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    /// The page to return to after the login (`/` when absent or unsafe).
    #[serde(default)]
    next: String,
}

/// `next` when it is a path on this site, else `/`: it must start with one
/// `/` (not `//` or `/\`, which browsers read as another host), and hold
/// only visible ASCII without a backslash, so neither a scheme, nor a
/// control character or space a browser would strip (`/\t/evil.com`), nor
/// anything a `Location` header cannot carry gets through. Never an open
/// redirect.
pub(super) fn safe_next(next: &str) -> &str {
    let bytes = next.as_bytes();
    let same_origin_path = bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && bytes.len() <= 2048
        && bytes.iter().all(|b| b.is_ascii_graphic() && *b != b'\\');
    if same_origin_path {
        next
    } else {
        "/"
    }
}

/// Checks the token behind the failed-attempt limit (`guard`, shared with
/// the API's bearer check: the same secret).
pub async fn submit(
    State(state): State<AppState>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    Form(input): Form<LoginForm>,
) -> PageResult {
    let token = input.token.trim();
    let addr = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(p)| p.0);
    if let Err(locked) = state.auth_guard.check(addr) {
        return locked_out(locked, safe_next(&input.next));
    }
    if token.is_empty() || !state.admin_token.matches(token.as_bytes()) {
        // An empty form is not a guess: not counted.
        if !token.is_empty() {
            state.auth_guard.failed(addr, "login");
        }
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("That is not the admin token. It is INLET_ADMIN_TOKEN, or the one Inlet generated: in the data dir's admin_token file, or (on PostgreSQL) in the first node's log."),
            safe_next(&input.next),
        );
    }
    state.auth_guard.succeeded(addr);
    let id = state
        .sessions
        .start(state.services.config.session_minutes)
        .map_err(ServiceError::Store)?;
    let mut response = Redirect::to(safe_next(&input.next)).into_response();
    if let Some(cookie) = session::set_cookie(
        &id,
        state.services.config.session_minutes,
        super::is_https(&headers),
    ) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// 429 with `Retry-After` and a message a person can act on.
fn locked_out(locked: Locked, next: &str) -> PageResult {
    let secs = locked.retry_after_secs();
    let message = format!(
        "Too many wrong tokens. Wait {secs} seconds, then try again with INLET_ADMIN_TOKEN or the token Inlet generated (the data dir's admin_token file, or on PostgreSQL the first node's log)."
    );
    let mut response = login_page(StatusCode::TOO_MANY_REQUESTS, Some(&message), next)?;
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    Ok(response)
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    session: Authed,
    Form(input): Form<LogoutForm>,
) -> PageResult {
    csrf::check(&session, &input.csrf)?;
    state
        .sessions
        .end(&session.session_id)
        .map_err(ServiceError::Store)?;
    let mut response = Redirect::to("/login").into_response();
    let headers = response.headers_mut();
    headers.insert(header::SET_COOKIE, session::clear_cookie());
    // Drops this site's HTTP cache and, in Chromium, its back/forward cache
    // entries, so Back after logout reloads (and meets the login) instead of
    // showing a customer's page from memory. Browsers honour it only in a
    // secure context: https, or http on localhost/127.0.0.1. Elsewhere the
    // `pageshow` check in app.js still covers a restored page.
    headers.insert(
        HeaderName::from_static("clear-site-data"),
        HeaderValue::from_static("\"cache\""),
    );
    Ok(response)
}

/// `GET /session`: 204 while this browser's session is live, else 401
/// (503 when the store cannot say). A page restored from the back/forward
/// cache asks this (app.js) before it shows itself again.
pub async fn alive(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let live = match session::session_cookie(&headers) {
        Some(id) => state.sessions.csrf_or_unavailable(&id).map(|c| c.is_some()),
        None => Ok(false),
    };
    let status = match live {
        Ok(true) => StatusCode::NO_CONTENT,
        Ok(false) => StatusCode::UNAUTHORIZED,
        Err(e) => return AppError::Service(ServiceError::Store(e)).into_response(),
    };
    (status, [(header::CACHE_CONTROL, "no-store")]).into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_next;
    use proptest::prelude::*;
    use reqwest::Url;

    const SITE: &str = "http://inlet.example:8080/sources/x";

    /// Where a browser goes when it follows `Location: next` from our page.
    fn followed(next: &str) -> Option<Url> {
        Url::parse(SITE).ok()?.join(next).ok()
    }

    #[test]
    fn other_sites_and_odd_paths_go_home() {
        for next in [
            "//evil.com",
            "https://evil.com",
            "/\\evil.com",
            "\\/evil.com",
            "/\tevil",
            "/\t/evil.com",
            " /x",
            "javascript:alert(1)",
            "",
            "evil.com",
            "/a b",
            "/é",
        ] {
            assert_eq!(safe_next(next), "/", "{next:?}");
        }
        for next in ["/profiles/abc", "/events?status=failed&q=a%40b", "/"] {
            assert_eq!(safe_next(next), next);
        }
    }

    proptest! {
        /// Whatever is accepted stays on this site, and is kept as given.
        #[test]
        fn an_accepted_next_never_leaves_the_site(next in "\\PC{0,40}") {
            let kept = safe_next(&next);
            prop_assert!(kept == next || kept == "/");
            let url = followed(kept).expect("a path joins");
            prop_assert_eq!(url.host_str(), Some("inlet.example"));
            prop_assert_eq!(url.port(), Some(8080));
            prop_assert_eq!(url.scheme(), "http");
        }

        /// The same with strings built from the characters that make
        /// redirects open: slashes, backslashes, colons, controls, dots.
        #[test]
        fn tricky_prefixes_never_leave_the_site(next in "[/\\\\:.\t\n\r @a-z%]{0,12}") {
            let url = followed(safe_next(&next)).expect("a path joins");
            prop_assert_eq!(url.host_str(), Some("inlet.example"));
        }

        /// A plain path is kept.
        #[test]
        fn plain_paths_are_kept(path in "(/[a-z0-9_-]{1,8}){1,4}(\\?[a-z]=[0-9]{1,3})?") {
            prop_assert_eq!(safe_next(&path), path.as_str());
        }
    }
}
