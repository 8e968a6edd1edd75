//! The CSRF check: every form post carries the session's token in a hidden `csrf`
//! field; a post without it, or with another session's, changes nothing (403). The
//! token is random per session and compared in constant time.

use axum::extract::rejection::FormRejection;
use axum::Form;
use maud::{html, Markup};

use super::session::SignedIn;
use super::WebError;

/// The name of the hidden field.
pub const FIELD: &str = "csrf";

/// A posted form's fields, in order (a name may repeat: the bulk form's ids).
#[derive(Debug, Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The form as posted; a body that is no form reads as empty (and so fails the
    /// CSRF check).
    pub fn from_form(form: Result<Form<Vec<(String, String)>>, FormRejection>) -> Fields {
        Fields(form.map(|Form(fields)| fields).unwrap_or_default())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl From<Vec<(String, String)>> for Fields {
    fn from(fields: Vec<(String, String)>) -> Fields {
        Fields(fields)
    }
}

/// Passes when `fields` carries `me`'s session token.
pub fn check(me: &SignedIn, fields: &Fields) -> Result<(), WebError> {
    let presented = fields.get(FIELD).unwrap_or_default();
    if same(presented.as_bytes(), me.session.csrf.as_bytes()) {
        Ok(())
    } else {
        tracing::info!(user = %me.session.email, "web: form post without a valid CSRF token");
        Err(WebError::Csrf)
    }
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The hidden field every form of a signed-in page includes.
pub fn field(me: &SignedIn) -> Markup {
    html! { input type="hidden" name=(FIELD) value=(me.session.csrf); }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_token_passes() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"", b"abc"));
    }
}
