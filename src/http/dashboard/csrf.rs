//! CSRF protection for dashboard forms: every state-changing form carries the
//! session's random token in a hidden `csrf` field, and a POST whose token
//! does not match is refused. `SameSite=Strict` already keeps the cookie off
//! cross-site requests; the token is the second, browser-independent lock.

use super::render::PageError;
use super::session::Authed;
use subtle::ConstantTimeEq;

/// Accepts the request only if `presented` is this session's token
/// (compared in constant time so timing reveals nothing about it).
pub fn check(session: &Authed, presented: &str) -> Result<(), PageError> {
    let ok: bool = presented.as_bytes().ct_eq(session.csrf.as_bytes()).into();
    if ok && !presented.is_empty() {
        Ok(())
    } else {
        Err(PageError::Forbidden)
    }
}
