//! The sign-in page: inputs labelled Email and Password, a button Sign in, in the
//! language the browser asks for (the user is not known yet).

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use crate::web::i18n::Lang;

/// `GET /sign-in`.
pub async fn page(headers: HeaderMap) -> Response {
    form(Lang::of_browser(&headers), "", None).into_response()
}

/// The form, with the address typed before and an error, if any.
pub fn form(lang: Lang, email: &str, error: Option<&str>) -> Markup {
    super::document(
        lang,
        lang.t("sign_in.title"),
        html! {
            main.sign-in {
                h1 { "inboxgate" }
                form method="post" action="/sign-in" {
                    @if let Some(error) = error {
                        p.error role="alert" { (error) }
                    }
                    label for="email" { (lang.t("sign_in.email")) }
                    input #email type="email" name="email" value=(email) autocomplete="username" required autofocus;
                    label for="password" { (lang.t("sign_in.password")) }
                    input #password type="password" name="password" autocomplete="current-password" required;
                    button type="submit" { (lang.t("sign_in.button")) }
                }
            }
        },
    )
}
