//! The HTTP API against hostile callers: the failed-token limit cannot lock out valid
//! tokens or a whole office behind a proxy, every error under `/api/v1` is JSON, and
//! tokens can be listed and revoked (a revoked token is refused at once).

use serde_json::Value;

use crate::support::*;

const BOB: &str = "bob@demo.example";
const ALICE: &str = "alice@demo.example";
const ROOT: &str = "root@demo.example";

/// A daemon whose `[api]` trusts `proxies` for `X-Forwarded-For`.
async fn daemon_trusting(proxies: &str) -> Daemon {
    Daemon::start_edited(|text, _| {
        text.replacen(
            "[api]\nlisten = \"127.0.0.1:0\"\n",
            &format!("[api]\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [{proxies}]\n"),
            1,
        )
    })
    .await
}

/// `token` with its last character changed: the same id, a wrong secret.
fn forged(token: &str) -> String {
    let last = if token.ends_with('0') { '1' } else { '0' };
    format!("{}{last}", &token[..token.len() - 1])
}

/// `GET /api/v1/me` with `token`, as if forwarded for `client` (none: no header).
async fn me_from(api: &Api, token: &str, client: Option<&str>) -> (u16, Value) {
    let mut request = api
        .http
        .get(format!("{}/api/v1/me", api.base))
        .bearer_auth(token);
    if let Some(client) = client {
        request = request.header("X-Forwarded-For", client);
    }
    let response = request.send().await.expect("http request");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn fail_ten_times(api: &Api, token: &str, client: Option<&str>) {
    for attempt in 0..10 {
        let (status, body) = me_from(api, token, client).await;
        assert_eq!(status, 401, "attempt {attempt}: {body}");
    }
}

#[tokio::test]
async fn valid_token_is_never_rate_limited_after_failures_from_its_address() {
    let d = Daemon::start().await;
    let api = d.api();
    let bob = d.token(BOB);
    let alice = d.token(ALICE);
    fail_ten_times(&api, &forged(&bob), None).await;
    fail_ten_times(&api, "not-a-token", None).await;
    let (status, body) = me_from(&api, &forged(&bob), None).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")));
    let (status, body) = me_from(&api, "not-a-token", None).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")));
    // The real holder of the guessed token, and everyone else at the address, get in.
    assert_eq!(me_from(&api, &bob, None).await.1["email"], BOB);
    assert_eq!(me_from(&api, &alice, None).await.1["email"], ALICE);
    // Guesses at another token id are counted apart from token 1's.
    let (status, _) = me_from(&api, &forged(&alice), None).await;
    assert_eq!(status, 401);
    d.stop().await;
}

#[tokio::test]
async fn failures_behind_a_trusted_proxy_are_counted_per_forwarded_client() {
    let d = daemon_trusting("\"127.0.0.1\", \"10.0.0.2\"").await;
    let api = d.api();
    let bob = d.token(BOB);
    fail_ten_times(&api, "not-a-token", Some("203.0.113.5")).await;
    let (status, _) = me_from(&api, "not-a-token", Some("203.0.113.5")).await;
    assert_eq!(status, 429, "the guessing client is held back");
    // Through a second trusted proxy the client is still the right-most untrusted hop.
    let (status, _) = me_from(
        &api,
        "not-a-token",
        Some("198.51.100.1, 203.0.113.5, 10.0.0.2"),
    )
    .await;
    assert_eq!(status, 429, "the same client through two proxies");
    let (status, _) = me_from(&api, "not-a-token", Some("203.0.113.6")).await;
    assert_eq!(status, 401, "another client behind the same proxy is not");
    let (status, _) = me_from(&api, "not-a-token", None).await;
    assert_eq!(status, 401, "nor the proxy itself");
    assert_eq!(
        me_from(&api, &bob, Some("203.0.113.5")).await.1["email"],
        BOB
    );
    d.stop().await;
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    // Loopback (the test's peer) is not trusted; only a distant proxy is.
    let d = daemon_trusting("\"192.0.2.1\"").await;
    let api = d.api();
    let bob = d.token(BOB);
    for attempt in 0..10 {
        let claimed = format!("203.0.113.{attempt}");
        let (status, _) = me_from(&api, "not-a-token", Some(&claimed)).await;
        assert_eq!(status, 401, "attempt {attempt}");
    }
    let (status, body) = me_from(&api, "not-a-token", Some("203.0.113.99")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("rate_limited")),
        "a made-up X-Forwarded-For does not escape the count of the real peer"
    );
    assert_eq!(me_from(&api, &bob, None).await.1["email"], BOB);
    d.stop().await;
}

/// One hostile request and the error it must get.
struct ErrorCase {
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn error_case(
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: &[u8],
    (status, code): (u16, &'static str),
) -> ErrorCase {
    ErrorCase {
        method,
        path,
        content_type,
        body: body.to_vec(),
        status,
        code,
    }
}

#[tokio::test]
async fn every_api_error_is_json() {
    let d = Daemon::start().await;
    let api = d.api();
    let token = d.token(BOB);
    let json = Some("application/json");
    let huge = vec![b' '; 3 * 1024 * 1024];
    let cases = [
        error_case("GET", "/api/v1/contacts/%FF", None, b"", (400, "invalid")),
        error_case(
            "GET",
            "/api/v1/messages/%FF/attachments/%FE",
            None,
            b"",
            (400, "invalid"),
        ),
        error_case("POST", "/api/v1/compose", json, &huge, (413, "too_large")),
        error_case(
            "POST",
            "/api/v1/compose",
            json,
            b"{not json",
            (400, "invalid"),
        ),
        error_case(
            "POST",
            "/api/v1/compose",
            Some("text/plain"),
            b"{}",
            (415, "unsupported_media_type"),
        ),
        error_case(
            "POST",
            "/api/v1/conversations/1/close",
            Some("application/x-www-form-urlencoded"),
            b"a=b",
            (415, "unsupported_media_type"),
        ),
        error_case(
            "GET",
            "/api/v1/conversations?limit=many",
            None,
            b"",
            (400, "invalid"),
        ),
        error_case(
            "GET",
            "/api/v1/conversations?%FF=%FF",
            None,
            b"",
            (400, "invalid"),
        ),
        error_case("GET", "/api/v1/nowhere", None, b"", (404, "not_found")),
        error_case(
            "PATCH",
            "/api/v1/me",
            None,
            b"",
            (405, "method_not_allowed"),
        ),
        error_case(
            "DELETE",
            "/api/v1/inboxes",
            None,
            b"",
            (405, "method_not_allowed"),
        ),
    ];
    for case in cases {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).expect("method");
        let mut request = api
            .http
            .request(method, format!("{}{}", api.base, case.path))
            .bearer_auth(&token)
            .body(case.body.clone());
        if let Some(content_type) = case.content_type {
            request = request.header("Content-Type", content_type);
        }
        let what = format!("{} {}", case.method, case.path);
        let response = request.send().await.expect("http request");
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").cloned();
        let body: Value =
            serde_json::from_slice(&response.bytes().await.expect("body")).unwrap_or(Value::Null);
        assert_eq!(status, case.status, "{what}: {body}");
        assert_eq!(
            content_type.as_ref().and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{what}"
        );
        assert_eq!(body["code"], case.code, "{what}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
    }
    d.stop().await;
}

/// The id a token names (`igt_<id>_<secret>`).
fn token_id(token: &str) -> i64 {
    inboxgate::inbox::token::split(token).expect("our token").0
}

#[tokio::test]
async fn revoked_token_is_refused_at_once() {
    let d = Daemon::start().await;
    let api = d.api();
    let bob = d.token(BOB);
    let alice = d.token(ALICE);
    assert_eq!(api.ok("/api/v1/me", &bob).await["email"], BOB);
    let id = token_id(&bob).to_string();
    let said = d.cli(&["users", "token", "revoke", &id]);
    assert!(said.contains("revoked"), "{said}");
    let (status, body) = api.get("/api/v1/me", &bob).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    assert_eq!(api.ok("/api/v1/me", &alice).await["email"], ALICE);
    let again = d.cli_output(&["users", "token", "revoke", &id]);
    assert!(
        !again.status.success(),
        "a token revoked twice is not found"
    );
    d.stop().await;
}

/// `users token list --json` from the real CLI.
fn token_list(d: &Daemon, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["users", "token", "list", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str::<Value>(&d.cli(&all))
        .expect("json")
        .as_array()
        .expect("array")
        .clone()
}

#[tokio::test]
async fn token_list_shows_last_use() {
    let d = Daemon::start().await;
    let api = d.api();
    let bob = d.token(BOB);
    let _alice = d.token(ALICE);
    let listed = token_list(&d, &[BOB]);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], token_id(&bob));
    assert_eq!(listed[0]["user"], BOB);
    assert!(listed[0]["created_at"].is_string());
    assert!(listed[0]["last_used_at"].is_null(), "never used yet");
    assert_eq!(token_list(&d, &[]).len(), 2);
    api.ok("/api/v1/me", &bob).await;
    let used_at = inboxgate::inbox::json::rfc3339(d.now());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while token_list(&d, &[BOB])[0]["last_used_at"] != used_at.as_str() {
        assert!(
            std::time::Instant::now() < deadline,
            "last use never recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let table = d.cli(&["users", "token", "list"]);
    let secret = bob.rsplit('_').next().expect("secret");
    assert!(table.contains(BOB) && table.contains(&used_at), "{table}");
    assert!(!table.contains(secret), "the secret is never listed");
    d.stop().await;
}

#[tokio::test]
async fn tokens_api_lists_and_revokes_by_access_rules() {
    let d = Daemon::start().await;
    let api = d.api();
    let bob = d.token(BOB);
    let alice = d.token(ALICE);
    let root = d.token(ROOT);
    let (status, own) = api.get("/api/v1/tokens", &bob).await;
    assert_eq!(status, 200, "{own}");
    let own = own.as_array().expect("array").clone();
    assert_eq!(own.len(), 1, "an agent sees only their own: {own:?}");
    assert_eq!(own[0]["id"], token_id(&bob));
    assert!(own[0].get("hash").is_none() && !own[0].to_string().contains(bob.as_str()));
    let all = api.ok("/api/v1/tokens", &root).await;
    assert_eq!(
        all.as_array().map(Vec::len),
        Some(3),
        "a super admin sees all: {all}"
    );
    let path = |token: &str| format!("/api/v1/tokens/{}", token_id(token));
    let (status, body) = api.call("DELETE", &path(&alice), Some(&bob), None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "another's token"
    );
    assert_eq!(api.ok("/api/v1/me", &alice).await["email"], ALICE);
    let (status, body) = api.call("DELETE", &path(&alice), Some(&alice), None).await;
    assert_eq!(
        (status, body["revoked"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    assert_eq!(api.get("/api/v1/me", &alice).await.0, 401);
    let (status, _) = api.call("DELETE", &path(&bob), Some(&root), None).await;
    assert_eq!(status, 200, "a super admin revokes any");
    assert_eq!(api.get("/api/v1/me", &bob).await.0, 401);
    let (status, _) = api
        .call("DELETE", "/api/v1/tokens/9999", Some(&root), None)
        .await;
    assert_eq!(status, 404);
    d.stop().await;
}
