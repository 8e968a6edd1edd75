//! The web inbox (issue 13) over real HTTP against the real daemon: sign-in (right and
//! wrong password, cookie flags, the failure limit, removed users), the CSRF check,
//! the access matrix, mail sent over SMTP in the list, and the form actions (reply to
//! a real SMTP receiver with from-name and signature, assign, comment, close), replies
//! with files (multipart, the size limit), forward, new email and presence; plus real
//! browsers (Debian's chromium over WebDriver) for live updates, screenshots and two
//! agents on one conversation.

use std::io::Write;
use std::process::{Command, Stdio};

use mail_parser::MimeHeaders;
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;

use crate::outbound::Sink;
use crate::support::*;

pub(crate) const ALICE: &str = "alice@demo.example"; // member of Support
pub(crate) const BOB: &str = "bob@demo.example"; // member of Support and Sales
const ROOT: &str = "root@demo.example"; // super admin: views Sales, may not act there
pub(crate) const SUPPORT: &str = "support@demo.hs-inbox.com";
const SALES: &str = "sales@demo.hs-inbox.com";
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// Sets `email`'s web password with the real CLI (password on standard input).
pub(crate) fn set_password(d: &Daemon, email: &str, password: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_inboxgate"))
        .arg("--config")
        .arg(&d.config_path)
        .args(["users", "password", "set", email])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run inboxgate");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{password}").expect("write password");
    drop(stdin);
    child.wait_with_output().expect("inboxgate ends")
}

/// A browser-like HTTP client: no automatic redirects, one session cookie.
pub(crate) struct Web {
    base: String,
    http: reqwest::Client,
    cookie: Option<String>,
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The CSRF token the page's forms carry.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.body));
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').expect("closing quote")].to_string()
    }
}

fn form_body(fields: &[(&str, &str)]) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Web {
    pub(crate) fn new(d: &Daemon) -> Web {
        Web {
            base: format!("http://{}", d.api_addr),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
            cookie: None,
        }
    }

    /// Signs in (password set first); panics unless it works.
    pub(crate) async fn signed_in(d: &Daemon, email: &str) -> Web {
        let out = set_password(d, email, PASSWORD);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut web = Web::new(d);
        let answer = web.sign_in(email, PASSWORD).await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        web
    }

    pub(crate) async fn sign_in(&mut self, email: &str, password: &str) -> Answer {
        let answer = self
            .post_raw(
                "/sign-in",
                form_body(&[("email", email), ("password", password)]),
            )
            .await;
        if let Some(cookie) = answer.headers.get(SET_COOKIE).and_then(|v| v.to_str().ok()) {
            self.cookie = cookie.split(';').next().map(str::to_string);
        }
        answer
    }

    async fn answer(&self, request: reqwest::RequestBuilder) -> Answer {
        let request = match &self.cookie {
            Some(cookie) => request.header(COOKIE, cookie),
            None => request,
        };
        let response = request.send().await.expect("http request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.expect("http body");
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Opens the event stream (`/events`, following `conversation`) with this session.
    pub(crate) async fn events_of(&self, conversation: Option<i64>) -> reqwest::Response {
        let query = conversation.map_or(String::new(), |id| format!("?conversation={id}"));
        let request = self.http.get(format!("{}/events{query}", self.base));
        let request = match &self.cookie {
            Some(cookie) => request.header(COOKIE, cookie),
            None => request,
        };
        let events = request.send().await.expect("event stream");
        assert_eq!(events.status(), 200);
        events
    }

    pub(crate) async fn get(&self, path: &str) -> Answer {
        self.answer(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post_raw(&self, path: &str, body: String) -> Answer {
        self.answer(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await
    }

    /// Posts a form of the page at `page` with its CSRF token.
    pub(crate) async fn submit(&self, page: &str, path: &str, fields: &[(&str, &str)]) -> Answer {
        let token = self.get(page).await.csrf();
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, form_body(&all)).await
    }
}

/// An event stream (`/events`) read into one text, to wait on what it says.
pub(crate) struct EventLog {
    events: reqwest::Response,
    seen: String,
}

impl EventLog {
    pub(crate) fn new(events: reqwest::Response) -> EventLog {
        EventLog {
            events,
            seen: String::new(),
        }
    }

    /// Reads until the stream has said `what` (anywhere in what it said so far);
    /// fails after 5 s.
    pub(crate) async fn until(&mut self, what: &str) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while !self.seen.contains(what) {
            let chunk = tokio::time::timeout_at(deadline, self.events.chunk())
                .await
                .unwrap_or_else(|_| panic!("{what} within 5 s; got {:?}", self.seen))
                .expect("stream chunk")
                .expect("stream open");
            self.seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// Fails the test unless Debian's chromium, its chromedriver and python3-selenium are
/// there: what the scripts of tests/browser need.
#[track_caller]
pub(crate) fn require_browser() {
    let install = "apt-get install chromium chromium-driver python3-selenium";
    require("chromium", install);
    require("chromedriver", install);
    require_python_module("selenium", install);
}

/// Runs tests/browser/`script` with `/usr/bin/python3` and `args` as its one JSON
/// argument; passes its log (standard error) on, fails the test unless it succeeds, and
/// returns the JSON line it printed.
pub(crate) async fn run_browser_script(script: &str, args: Value) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser")
        .join(script);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("/usr/bin/python3")
            .arg(path)
            .arg(args.to_string())
            .output()
    })
    .await
    .expect("browser script thread")
    .expect("run the browser script");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "browser script {script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = out
        .stdout
        .split(|b| *b == b'\n')
        .find(|l| l.starts_with(b"{"))
        .unwrap_or_else(|| panic!("{script} printed no JSON line"));
    serde_json::from_slice(line).expect("the script's JSON line")
}

fn mail(id: &str, to: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{id}>\r\nFrom: Jan Klant <jan@klant.example>\r\nTo: {to}\r\n\
         Subject: {subject}\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// Delivers a customer's mail over SMTP; returns its conversation id.
async fn customer_writes(d: &Daemon, id: &str, to: &str, subject: &str) -> i64 {
    let reply = d
        .send(
            "jan@klant.example",
            &[to],
            &mail(id, to, subject, "Where is my order?"),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    conversation_with_subject(&d.list(&[]), subject)
}

fn status_of(d: &Daemon, id: i64) -> Value {
    d.show(id)
}

#[tokio::test]
async fn sign_in_with_the_right_password_sets_an_http_only_session_and_a_wrong_one_sets_none() {
    let d = Daemon::start().await;
    let mut web = Web::new(&d);
    let first = web.get("/").await;
    assert_eq!(first.status, 303);
    assert_eq!(first.location(), "/sign-in");
    let form = web.get("/sign-in").await;
    for label in [">Email<", ">Password<", ">Sign in<"] {
        assert!(form.body.contains(label), "{label} missing: {}", form.body);
    }
    // Before the user is known, the page speaks the browser's language.
    let swedish = web
        .answer(
            web.http
                .get(format!("{}/sign-in", web.base))
                .header("accept-language", "sv-SE,sv;q=0.9,en;q=0.5"),
        )
        .await;
    for label in [">E-postadress<", ">Lösenord<", ">Logga in<", "lang=\"sv\""] {
        assert!(
            swedish.body.contains(label),
            "{label} missing: {}",
            swedish.body
        );
    }
    let dutch_wrong = web
        .answer(
            web.http
                .post(format!("{}/sign-in", web.base))
                .header("accept-language", "nl")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form_body(&[("email", ALICE), ("password", "x")])),
        )
        .await;
    assert_eq!(dutch_wrong.status, 401);
    assert!(
        dutch_wrong.body.contains(">Wachtwoord<"),
        "{}",
        dutch_wrong.body
    );
    let out = set_password(&d, ALICE, PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let wrong = web.sign_in(ALICE, "not the password").await;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.headers.get(SET_COOKIE).is_none(),
        "a wrong password sets no cookie"
    );
    assert!(
        wrong.body.contains("Wrong email or password"),
        "{}",
        wrong.body
    );
    assert_eq!(web.get("/").await.status, 303, "still signed out");

    let right = web.sign_in(ALICE, PASSWORD).await;
    assert_eq!(right.status, 303, "{}", right.body);
    assert_eq!(right.location(), "/");
    let cookie = right.headers[SET_COOKIE].to_str().expect("ascii");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP: no Secure flag: {cookie}"
    );
    let list = web.get("/").await;
    assert_eq!(list.status, 200);
    for view in [
        "Unassigned",
        "Assigned to me",
        "All open",
        "Email",
        "Closed",
        "Sent",
        "Spam",
        "Filtered",
        "Trash",
    ] {
        assert!(
            list.body.contains(&format!("<span>{view}</span>")),
            "{view} missing"
        );
    }
    assert!(list.body.contains("<label for=\"q\">Search</label>"));

    // Sessions live in the store: a restart keeps them.
    let d = d.restart().await;
    web.base = format!("http://{}", d.api_addr);
    assert_eq!(web.get("/").await.status, 200, "session survives a restart");
}

#[tokio::test]
async fn users_password_set_names_a_user_who_is_not_configured() {
    let d = Daemon::start().await;
    let out = set_password(&d, "nobody@demo.example", PASSWORD);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nobody@demo.example"), "{stderr}");
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_account_even_for_the_right_password_then() {
    let d = Daemon::start().await;
    assert!(set_password(&d, BOB, PASSWORD).status.success());
    let mut web = Web::new(&d);
    for _ in 0..10 {
        assert_eq!(web.sign_in(BOB, "guess").await.status, 401);
    }
    let held = web.sign_in(BOB, PASSWORD).await;
    assert_eq!(held.status, 429, "{}", held.body);
    assert!(held.headers.get(SET_COOKIE).is_none());
}

#[tokio::test]
async fn a_form_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let d = Daemon::start().await;
    let id = customer_writes(&d, "csrf@klant.example", SUPPORT, "Order 1").await;
    let web = Web::signed_in(&d, ALICE).await;
    let path = format!("/conversations/{id}/act");
    let none = web.post_raw(&path, form_body(&[("action", "close")])).await;
    assert_eq!(none.status, 403);
    let forged = web
        .post_raw(
            &path,
            form_body(&[("action", "close"), ("csrf", "0123abcd")]),
        )
        .await;
    assert_eq!(forged.status, 403);
    let empty = web.post_raw(&path, String::new()).await;
    assert_eq!(empty.status, 403);
    let comment = web
        .post_raw(
            &format!("/conversations/{id}/comment"),
            form_body(&[("text", "x")]),
        )
        .await;
    assert_eq!(comment.status, 403);
    let shown = status_of(&d, id);
    assert_eq!(shown["status"], "open", "nothing changed: {shown:#}");
    let page = format!("/conversations/{id}");
    let ok = web.submit(&page, &path, &[("action", "close")]).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(status_of(&d, id)["status"], "closed");
}

#[tokio::test]
async fn a_conversation_of_an_inbox_the_agent_may_not_see_is_404_and_a_super_admin_may_not_act() {
    let d = Daemon::start().await;
    let sales = customer_writes(&d, "sales@klant.example", SALES, "Offerte").await;
    let alice = Web::signed_in(&d, ALICE).await;
    assert_eq!(
        alice.get(&format!("/conversations/{sales}")).await.status,
        404
    );
    assert!(
        !alice.get("/").await.body.contains("Offerte"),
        "not in alice's list"
    );
    let bob = Web::signed_in(&d, BOB).await;
    let page = bob.get(&format!("/conversations/{sales}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Offerte"));

    let root = Web::signed_in(&d, ROOT).await;
    let seen = root.get(&format!("/conversations/{sales}")).await;
    assert_eq!(seen.status, 200, "a super admin views every inbox");
    assert!(
        !seen.body.contains(">Close<"),
        "no actions offered to a viewer"
    );
    let refused = root
        .submit(
            "/",
            &format!("/conversations/{sales}/act"),
            &[("action", "close")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(status_of(&d, sales)["status"], "open");
    // The frame and attachment routes follow the same rule, on a message that has both.
    let mime = "From: Jan Klant <jan@klant.example>\r\nTo: sales@demo.hs-inbox.com\r\n\
                Subject: Offerte bijlage\r\nMessage-ID: <offerte-2@klant.example>\r\n\
                MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
                --b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Zie <b>bijlage</b></p>\r\n\
                --b\r\nContent-Type: application/pdf\r\n\
                Content-Disposition: attachment; filename=offerte.pdf\r\n\r\n%PDF-1.4\r\n--b--\r\n";
    let reply = d.send("jan@klant.example", &[SALES], mime.as_bytes()).await;
    assert!(reply.starts_with("250"), "{reply}");
    let with_files = conversation_with_subject(&d.list(&[]), "Offerte bijlage");
    let message = d.show(with_files)["messages"][0]["id"]
        .as_i64()
        .expect("message id");
    let base = format!("/conversations/{with_files}/messages/{message}");
    for path in [format!("{base}/body"), format!("{base}/attachments/0")] {
        assert_eq!(bob.get(&path).await.status, 200, "a member gets {path}");
        assert_eq!(
            alice.get(&path).await.status,
            404,
            "alice may not get {path}"
        );
    }
}

#[tokio::test]
async fn a_mail_sent_over_smtp_shows_in_the_list_with_its_contact_and_links_by_subject() {
    let d = Daemon::start().await;
    let web = Web::signed_in(&d, ALICE).await;
    let id = customer_writes(&d, "list@klant.example", SUPPORT, "Broken <b>kettle</b>").await;
    let list = web.get("/?view=unassigned").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("Jan Klant"), "{}", list.body);
    assert!(
        list.body.contains(&format!(
            "<a href=\"/conversations/{id}\">Broken &lt;b&gt;kettle&lt;/b&gt;</a>"
        )),
        "subject escaped, as a link: {}",
        list.body
    );
    assert!(list.body.contains("Where is my order?"), "preview");
    assert!(list
        .body
        .contains("<span>Unassigned</span> <span class=\"count\">1</span>"));
    let found = web.get("/?q=kettle").await;
    assert!(found.body.contains(&format!("/conversations/{id}")));
    let missing = web.get("/?q=toaster").await;
    assert!(!missing.body.contains(&format!("/conversations/{id}")));
}

#[tokio::test]
async fn reply_assign_comment_and_close_by_form_reach_the_store_and_the_receiver() {
    let sink = Sink::plain();
    let relay = sink.relay_config();
    let d = Daemon::start_edited(move |text, _| {
        text.replace(
            "company = \"Demo Support\" }",
            "company = \"Demo Support\" }\n  signature = \"-- \\n{{full_name}}\\nDemo Inc support\"",
        ) + &relay
    })
    .await;
    let id = customer_writes(&d, "act@klant.example", SUPPORT, "Kettle").await;
    let web = Web::signed_in(&d, ALICE).await;
    let page = format!("/conversations/{id}");
    let shown = web.get(&page).await;
    assert!(
        shown
            .body
            .contains("Alice Smith from Demo Support &lt;support@demo.hs-inbox.com&gt;"),
        "from-name preview: {}",
        shown.body
    );
    assert!(shown.body.contains("Demo Inc support"), "signature preview");
    assert!(shown.body.contains("<label for=\"reply\">Reply</label>"));
    assert!(shown.body.contains(">Send</button>"));
    assert!(shown
        .body
        .contains("<label for=\"comment\">Comment</label>"));
    assert!(shown.body.contains(">Add comment</button>"));
    assert!(shown
        .body
        .contains("<label for=\"assignee\">Assignee</label>"));

    let sent = web
        .submit(
            &page,
            &format!("{page}/reply"),
            &[("text", "It ships today.")],
        )
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    let got = sink.wait_for(1).await;
    let reply = &got[0];
    assert_eq!(
        reply.header("From").as_deref(),
        Some("\"Alice Smith from Demo Support\" <support@demo.hs-inbox.com>")
    );
    assert_eq!(
        reply.header("In-Reply-To").as_deref(),
        Some("<act@klant.example>")
    );
    assert!(reply.raw.contains("It ships today."));
    let thread = web.get(&page).await.body;
    assert!(
        thread.contains("<details class=\"message in\" id=")
            && thread.contains("<details class=\"message out\" id="),
        "each message carries its direction in one class attribute: {thread}"
    );
    assert!(
        reply.raw.contains("Alice Smith\r\nDemo Inc support"),
        "{}",
        reply.raw
    );

    let assigned = web
        .submit(&page, &format!("{page}/assign"), &[("assignee", BOB)])
        .await;
    assert_eq!(assigned.status, 303, "{}", assigned.body);
    let commented = web
        .submit(
            &page,
            &format!("{page}/comment"),
            &[("text", "Called him, all good")],
        )
        .await;
    assert_eq!(commented.status, 303);
    let closed = web
        .submit(&page, &format!("{page}/act"), &[("action", "close")])
        .await;
    assert_eq!(closed.status, 303);
    let shown = d.show(id);
    assert_eq!(shown["assignee"], BOB);
    assert_eq!(shown["status"], "closed");
    let after = web.get(&page).await;
    assert!(
        after.body.contains("class=\"note\""),
        "comment shown as a note"
    );
    assert!(after.body.contains("Called him, all good"));
    assert!(after.body.contains(">Reopen<"));
}

#[tokio::test]
async fn bulk_close_from_the_list_closes_the_checked_conversations() {
    let d = Daemon::start().await;
    let one = customer_writes(&d, "b1@klant.example", SUPPORT, "First").await;
    let two = customer_writes(&d, "b2@klant.example", SUPPORT, "Second").await;
    let web = Web::signed_in(&d, ALICE).await;
    let (one_text, two_text) = (one.to_string(), two.to_string());
    let done = web
        .submit(
            "/",
            "/bulk",
            &[
                ("action", "close"),
                ("id", &one_text),
                ("id", &two_text),
                ("back", "/?view=all_open"),
            ],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(done.location(), "/?view=all_open&done=2&refused=0");
    assert_eq!(d.show(one)["status"], "closed");
    assert_eq!(d.show(two)["status"], "closed");
}

/// Reads `events` until the server ends it; panics after 5 s.
async fn stream_ends(mut events: reqwest::Response, what: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, events.chunk()).await {
            Err(_) => panic!("{what} still open after 5 s"),
            Ok(Ok(Some(_))) => continue,
            Ok(_) => return,
        }
    }
}

#[tokio::test]
async fn an_open_event_stream_ends_when_its_session_is_signed_out() {
    let d = Daemon::start().await;
    let web = Web::signed_in(&d, ALICE).await;
    let events = web.events_of(None).await;
    let out = web.submit("/", "/sign-out", &[]).await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(out.location(), "/sign-in");
    let cleared = out.headers.get(SET_COOKIE).and_then(|v| v.to_str().ok());
    assert!(
        cleared.is_some_and(|c| c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    let after = web.get("/").await;
    assert_eq!(after.status, 303, "the old cookie opens nothing");
    assert_eq!(after.location(), "/sign-in");
    stream_ends(events, "the signed-out session's event stream").await;
}

#[tokio::test]
async fn sessions_of_a_user_removed_from_the_config_end_at_reload() {
    let d = Daemon::start().await;
    let web = Web::signed_in(&d, ALICE).await;
    assert_eq!(web.get("/").await.status, 200);
    let events = web.events_of(None).await;
    let without_alice = d.config_text().replace(
        "[[users]]\nemail = \"alice@demo.example\"\nname = \"Alice Smith\"\n",
        "",
    );
    assert_ne!(without_alice, d.config_text());
    let with_alice = d.config_text();
    d.reload(&without_alice);
    let after = web.get("/").await;
    assert_eq!(after.status, 303);
    assert_eq!(after.location(), "/sign-in");
    stream_ends(events, "the removed user's open event stream").await;
    // Ended, not only refused: added back, alice signs in again.
    d.reload(&with_alice);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let again = web.get("/").await;
        if again.status == 303 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the removed user's session came back with them"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_interface_speaks_the_users_configured_language() {
    let d = Daemon::start_edited(|text, _| {
        text.replace(
            "name = \"Alice Smith\"\n",
            "name = \"Alice Smith\"\nlanguage = \"nl\"\n",
        )
    })
    .await;
    let web = Web::signed_in(&d, ALICE).await;
    let list = web.get("/").await;
    assert!(list.body.contains("lang=\"nl\""));
    assert!(list.body.contains("Niet toegewezen"), "{}", list.body);
    assert!(list.body.contains("Prullenbak"));
}

#[tokio::test]
async fn an_attachment_downloads_unsniffed_and_pages_refuse_foreign_frames() {
    let d = Daemon::start().await;
    let message = "Message-ID: <att@klant.example>\r\nFrom: jan@klant.example\r\n\
        To: support@demo.hs-inbox.com\r\nSubject: Invoice\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
        Content-Type: text/plain\r\n\r\nSee attached\r\n--b\r\n\
        Content-Type: text/html\r\n\r\n<p onclick=\"steal()\">See <b>attached</b><script>alert(2)</script></p>\r\n--b\r\n\
        Content-Type: text/html; name=\"x.html\"\r\nContent-Disposition: attachment; filename=\"x.html\"\r\n\r\n\
        <script>alert(1)</script>\r\n--b--\r\n";
    let reply = d
        .send("jan@klant.example", &[SUPPORT], message.as_bytes())
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let id = conversation_with_subject(&d.list(&[]), "Invoice");
    let row = d.show(id)["messages"][0]["id"]
        .as_i64()
        .expect("message id");
    let web = Web::signed_in(&d, ALICE).await;
    let page = web.get(&format!("/conversations/{id}")).await;
    let link = format!("/conversations/{id}/messages/{row}/attachments/0");
    assert!(page.body.contains(&link), "{}", page.body);
    let file = web.get(&link).await;
    assert_eq!(file.status, 200);
    let disposition = file.headers["content-disposition"].to_str().expect("ascii");
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert_eq!(file.headers["x-content-type-options"], "nosniff");
    let frame = web
        .get(&format!("/conversations/{id}/messages/{row}/body"))
        .await;
    assert_eq!(frame.status, 200);
    assert!(frame.body.contains("See <b>attached</b>"), "{}", frame.body);
    assert!(
        !frame.body.contains("<script") && !frame.body.contains("onclick"),
        "sanitized: {}",
        frame.body
    );
    assert!(frame.headers["content-security-policy"]
        .to_str()
        .expect("ascii")
        .contains("default-src 'none'"));
    assert_eq!(
        frame.headers["x-frame-options"], "SAMEORIGIN",
        "our page may frame it"
    );
    let policy = page.headers["content-security-policy"]
        .to_str()
        .expect("ascii");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(page.headers["x-frame-options"], "DENY");
}

#[tokio::test]
async fn in_a_real_browser_new_mail_appears_without_reload_and_a_reply_is_sent() {
    require_browser();
    let sink = Sink::plain();
    let relay = sink.relay_config();
    let d = Daemon::start_edited(move |text, _| {
        text.replace(
            "company = \"Demo Support\" }",
            "company = \"Demo Support\" }\n  signature = \"-- \\n{{full_name}}\\nDemo Inc support\"",
        )
        .replace("name = \"Bob Jansen\"\n", "name = \"Bob Jansen\"\nlanguage = \"nl\"\n")
        .replace(
            "[[inboxes]]\nname = \"Support\"",
            "[[users]]\nemail = \"sven@demo.example\"\nname = \"Sven Berg\"\nlanguage = \"sv\"\n\n\
             [[inboxes]]\nname = \"Support\"",
        ) + &relay
    })
    .await;
    customer_writes(&d, "older@klant.example", SUPPORT, "Descaling the kettle").await;
    let users: Vec<Value> = [(ALICE, "en"), (BOB, "nl"), ("sven@demo.example", "sv")]
        .iter()
        .map(|(email, lang)| {
            let out = set_password(&d, email, PASSWORD);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::json!({ "email": email, "password": PASSWORD, "lang": lang })
        })
        .collect();
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let args = serde_json::json!({
        "base": format!("http://{}", d.api_addr),
        "smtp_port": d.addr.port(),
        "support": SUPPORT,
        "users": users,
        "shots": shots,
    });
    let measured = run_browser_script("web_inbox.py", args).await;
    let after = measured["appeared_after_ms"].as_i64().expect("measured");
    assert!(after < 1500, "new mail took {after} ms to appear");
    let got = sink.wait_for(1).await;
    let reply = &got[0];
    assert!(reply.raw.contains("Enjoy your tea!"), "{}", reply.raw);
    assert_eq!(
        reply.header("From").as_deref(),
        Some("\"Alice Smith from Demo Support\" <support@demo.hs-inbox.com>")
    );
    assert!(
        reply.raw.contains("Alice Smith\r\nDemo Inc support"),
        "signature: {}",
        reply.raw
    );
    assert_eq!(
        reply.header("In-Reply-To").as_deref(),
        Some("<live-kettle@klant.example>")
    );
    assert!(
        reply
            .header("References")
            .is_some_and(|r| r.contains("<live-kettle@klant.example>")),
        "{}",
        reply.raw
    );
    for lang in ["en", "nl", "sv"] {
        for page in ["list", "conversation", "conversation-reply"] {
            assert!(
                shots.join(format!("{page}-{lang}.png")).is_file(),
                "{page}-{lang}.png"
            );
        }
    }
}

#[tokio::test]
async fn the_event_stream_says_change_when_mail_arrives_and_ends_when_the_daemon_stops() {
    let d = Daemon::start().await;
    let web = Web::signed_in(&d, ALICE).await;
    let events = web.events_of(None).await;
    assert!(events.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/event-stream"));
    let mut said = EventLog::new(events);
    said.until("event: ready").await;
    customer_writes(&d, "live@klant.example", SUPPORT, "Live").await;
    said.until("event: change").await;
    // An open stream must not hold the daemon's graceful shutdown.
    tokio::time::timeout(std::time::Duration::from_secs(10), d.stop())
        .await
        .expect("the daemon stops with an event stream open");
}

#[tokio::test]
async fn a_full_list_page_with_its_css_and_script_weighs_under_100_kb() {
    let d = Daemon::start().await;
    let mut smtp = d.client().await;
    for n in 0..60 {
        let subject = format!("Question number {n} about a rather long-winded order issue");
        let body =
            "Hello, I ordered a kettle three weeks ago and it has not arrived yet. ".repeat(4);
        let message = mail(&format!("w{n}@klant.example"), SUPPORT, &subject, &body);
        let reply = smtp.mail("jan@klant.example", &[SUPPORT], &message).await;
        assert!(reply.starts_with("250"), "{reply}");
    }
    let web = Web::signed_in(&d, ALICE).await;
    let html = web.get("/?view=all_open").await;
    // Rows carry their classes first (`<tr class="mine unseen" data-id=`).
    assert_eq!(html.body.matches(" data-id=\"").count(), 50, "a full page");
    let css = web.get("/assets/app.css").await;
    let js = web.get("/assets/app.js").await;
    let total = html.body.len() + css.body.len() + js.body.len();
    eprintln!(
        "list page weight: html {} + css {} + js {} = {total} bytes",
        html.body.len(),
        css.body.len(),
        js.body.len()
    );
    assert!(total < 100 * 1024, "{total} bytes");
}

#[tokio::test]
async fn a_reply_begun_before_new_mail_arrived_is_held_until_the_agent_has_seen_it() {
    let sink = Sink::plain();
    let relay = sink.relay_config();
    let d = Daemon::start_edited(move |text, _| text + &relay).await;
    let id = customer_writes(&d, "first@klant.example", SUPPORT, "Kettle").await;
    let web = Web::signed_in(&d, ALICE).await;
    let page = web.get(&format!("/conversations/{id}")).await;
    let seen = page
        .body
        .split("name=\"seen\" value=\"")
        .nth(1)
        .expect("seen field");
    let seen = seen[..seen.find('"').expect("quote")].to_string();
    // The customer writes again while the agent types.
    let follow_up = format!(
        "Message-ID: <second@klant.example>\r\nIn-Reply-To: <first@klant.example>\r\n\
         From: Jan Klant <jan@klant.example>\r\nTo: {SUPPORT}\r\nSubject: Re: Kettle\r\n\r\n\
         Never mind, it arrived!\r\n"
    );
    let reply = d
        .send("jan@klant.example", &[SUPPORT], follow_up.as_bytes())
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(d.show(id)["message_count"], 2, "threaded");
    let csrf = page.csrf();
    let path = format!("/conversations/{id}/reply");
    let fields = [
        ("csrf", csrf.as_str()),
        ("seen", seen.as_str()),
        ("text", "It ships today."),
    ];
    let held = web.post_raw(&path, form_body(&fields)).await;
    assert_eq!(held.status, 409, "{}", held.body);
    assert!(held.body.contains("A new message arrived"), "{}", held.body);
    assert!(held.body.contains("Never mind, it arrived!"));
    assert!(
        held.body.contains(">It ships today.</textarea>"),
        "the draft is kept"
    );
    assert_eq!(d.show(id)["message_count"], 2, "nothing sent yet");
    let mut confirmed = fields.to_vec();
    confirmed.push(("confirm", "1"));
    let sent = web.post_raw(&path, form_body(&confirmed)).await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert!(sink.wait_for(1).await[0].raw.contains("It ships today."));
}

#[tokio::test]
async fn the_availability_select_sets_the_agent_away() {
    let d = Daemon::start().await;
    let web = Web::signed_in(&d, ALICE).await;
    let list = web.get("/").await;
    assert!(list
        .body
        .contains("<label for=\"availability\">Availability</label>"));
    let set = web
        .submit("/", "/availability", &[("available", "false")])
        .await;
    assert_eq!(set.status, 303);
    let shown: Value =
        serde_json::from_str(&d.cli(&["users", "availability", ALICE])).expect("JSON");
    assert_eq!(shown["available"], false);
}

#[tokio::test]
async fn search_filters_narrow_the_list_and_a_bad_date_is_an_error() {
    let d = Daemon::start().await;
    let open = customer_writes(&d, "f1@klant.example", SUPPORT, "Still open").await;
    let closed = customer_writes(&d, "f2@klant.example", SUPPORT, "Done already").await;
    let web = Web::signed_in(&d, ALICE).await;
    let page = format!("/conversations/{closed}");
    let done = web
        .submit(&page, &format!("{page}/act"), &[("action", "close")])
        .await;
    assert_eq!(done.status, 303);
    let list = web
        .get("/?q=&status=closed&assignee=none&hide_trash=on")
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains(&format!("/conversations/{closed}\"")));
    assert!(!list.body.contains(&format!("/conversations/{open}\"")));
    assert!(list.body.contains("Leave search"));
    let bad = web.get("/?since=yesterday-ish").await;
    assert_eq!(bad.status, 400, "a bad date is an error, not everything");
}

/// One HTTP/1.1 exchange over TLS (trusting `cert` for `localhost`); the raw answer.
async fn https_exchange(
    addr: std::net::SocketAddr,
    cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
    request: &str,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert.cert.der().clone())
        .expect("trust the certificate");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn over_tls_the_listener_speaks_https_and_the_session_cookie_is_secure() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let d = Daemon::start_edited(move |text, dir| {
        let (cert, key) = (dir.join("web.pem"), dir.join("web.key"));
        std::fs::write(&cert, cert_pem).expect("write cert");
        std::fs::write(&key, key_pem).expect("write key");
        text.replace(
            "[api]\nlisten = \"127.0.0.1:0\"\n",
            &format!(
                "[api]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
                cert.display(),
                key.display()
            ),
        )
    })
    .await;
    assert!(set_password(&d, ALICE, PASSWORD).status.success());
    let form = form_body(&[("email", ALICE), ("password", PASSWORD)]);
    let request = format!(
        "POST /sign-in HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    let answer = https_exchange(d.api_addr, &cert, &request).await;
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    let cookie = answer
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    // The API answers over the same HTTPS listener.
    let api = https_exchange(
        d.api_addr,
        &cert,
        "GET /api/v1/me HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(api.starts_with("HTTP/1.1 401"), "{api}");
}

#[tokio::test]
async fn why_a_message_joined_its_thread_is_shown_on_the_page_and_in_the_json() {
    let d = Daemon::start().await;
    let id = customer_writes(&d, "first@klant.example", SUPPORT, "Kettle").await;
    let reply = "Message-ID: <second@klant.example>\r\nIn-Reply-To: <first@klant.example>\r\n\
        From: Jan Klant <jan@klant.example>\r\nTo: support@demo.hs-inbox.com\r\n\
        Subject: Re: Kettle\r\n\r\nStill broken.\r\n";
    let sent = d
        .send("jan@klant.example", &[SUPPORT], reply.as_bytes())
        .await;
    assert!(sent.starts_with("250"), "{sent}");
    let shown = d.show(id);
    assert_eq!(shown["messages"][0]["threading"], "new", "{shown:#}");
    assert_eq!(
        shown["messages"][1]["threading"], "in_reply_to",
        "{shown:#}"
    );
    let web = Web::signed_in(&d, ALICE).await;
    let page = web.get(&format!("/conversations/{id}")).await;
    assert!(page.body.contains(">Why here?<"), "{}", page.body);
    assert!(
        page.body
            .contains("Joined this conversation: it replies to a message in it (In-Reply-To)."),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Started this conversation"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_message_over_100_kb_is_cut_on_the_page_until_the_agent_asks_for_all_of_it() {
    let d = Daemon::start().await;
    let line = format!("{}\r\n", "word ".repeat(15));
    let body = format!("{}THE-LAST-LINE\r\n", line.repeat(1_600));
    let sent = d
        .send(
            "jan@klant.example",
            &[SUPPORT],
            &mail("long@klant.example", SUPPORT, "Long story", &body),
        )
        .await;
    assert!(sent.starts_with("250"), "{sent}");
    let id = conversation_with_subject(&d.list(&[]), "Long story");
    let row = d.show(id)["messages"][0]["id"]
        .as_i64()
        .expect("message id");
    let web = Web::signed_in(&d, ALICE).await;
    let page = web.get(&format!("/conversations/{id}")).await;
    assert!(
        page.body.contains("only its first 100 KB are shown"),
        "{}",
        &page.body[..2000]
    );
    assert!(!page.body.contains("THE-LAST-LINE"));
    let whole_link = format!("/conversations/{id}?whole={row}#m{row}");
    assert!(page.body.contains(&whole_link.replace('&', "&amp;")));
    let whole = web.get(&format!("/conversations/{id}?whole={row}")).await;
    assert_eq!(whole.status, 200);
    assert!(whole.body.contains("THE-LAST-LINE"));
    assert!(!whole.body.contains("only its first 100 KB are shown"));
}

/// An operator sets the agents' passwords before the daemon first starts: the command
/// used to refuse ("no database …") on a new data directory.
#[test]
fn users_password_set_before_the_first_start_creates_the_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("inboxgate.toml");
    let data = dir.path().join("data");
    std::fs::write(&config, crate::support::config_text(&data, "")).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_inboxgate"))
        .arg("--config")
        .arg(&config)
        .args(["users", "password", "set", ALICE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run inboxgate");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{PASSWORD}").expect("write password");
    drop(stdin);
    let out = child.wait_with_output().expect("inboxgate ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if !sqlite_only("the SQLite store is a file in data_dir; the rest runs on both") {
        assert!(data.join("inboxgate.db").exists());
    }
    let listed = Command::new(env!("CARGO_BIN_EXE_inboxgate"))
        .arg("--config")
        .arg(&config)
        .args(["conversations", "list", "--json"])
        .output()
        .expect("run inboxgate");
    assert!(listed.status.success(), "the store is usable afterwards");
}

#[tokio::test]
async fn the_sidebar_shows_the_contacts_owner_and_other_conversations() {
    let d = Daemon::start().await;
    let first = customer_writes(&d, "one@klant.example", SUPPORT, "Kettle").await;
    let second = customer_writes(&d, "two@klant.example", SUPPORT, "Toaster").await;
    let hidden = customer_writes(&d, "three@klant.example", SALES, "Quote").await;
    d.cli(&["contacts", "owner", "jan@klant.example", BOB]);
    let web = Web::signed_in(&d, ALICE).await;
    let page = web.get(&format!("/conversations/{first}")).await;
    assert!(page.body.contains("Owner: Bob Jansen"), "{}", page.body);
    assert!(page.body.contains(">Other conversations<"), "{}", page.body);
    assert!(
        page.body
            .contains(&format!("<a href=\"/conversations/{second}\">Toaster</a>")),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains(&format!("/conversations/{hidden}\"")),
        "a conversation of an inbox Alice may not see is not listed"
    );
    assert!(
        !page
            .body
            .contains(&format!("<a href=\"/conversations/{first}\">Kettle</a>")),
        "the open conversation is not listed as another"
    );
}

#[tokio::test]
async fn a_conversation_is_bold_in_the_list_until_the_agent_opens_it_and_again_after_new_mail() {
    let d = Daemon::start().await;
    let id = customer_writes(&d, "bold@klant.example", SUPPORT, "Kettle").await;
    let alice = Web::signed_in(&d, ALICE).await;
    let bob = Web::signed_in(&d, BOB).await;
    let row_of = |body: &str| -> String {
        let start = body
            .find(&format!("data-id=\"{id}\""))
            .expect("the conversation is listed");
        let tag_start = body[..start].rfind("<tr").expect("its row");
        body[tag_start..start + 40].to_string()
    };
    let list = alice.get("/?view=unassigned").await;
    assert!(
        row_of(&list.body).contains("unseen"),
        "{}",
        row_of(&list.body)
    );
    assert_eq!(alice.get(&format!("/conversations/{id}")).await.status, 200);
    let list = alice.get("/?view=unassigned").await;
    assert!(
        !row_of(&list.body).contains("unseen"),
        "{}",
        row_of(&list.body)
    );
    let list = bob.get("/?view=unassigned").await;
    assert!(
        row_of(&list.body).contains("unseen"),
        "seen is per agent: {}",
        row_of(&list.body)
    );
    d.clock.advance(60);
    let reply = "Message-ID: <bold2@klant.example>\r\nIn-Reply-To: <bold@klant.example>\r\n\
        From: Jan Klant <jan@klant.example>\r\nTo: support@demo.hs-inbox.com\r\n\
        Subject: Re: Kettle\r\n\r\nAnd another thing.\r\n";
    let sent = d
        .send("jan@klant.example", &[SUPPORT], reply.as_bytes())
        .await;
    assert!(sent.starts_with("250"), "{sent}");
    let list = alice.get("/?view=unassigned").await;
    assert!(
        row_of(&list.body).contains("unseen"),
        "new mail makes it new again: {}",
        row_of(&list.body)
    );
}

/// Jan's mail answering `parent` (In-Reply-To and References).
fn answer(id: &str, parent: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{id}>\r\nIn-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n\
         From: Jan Klant <jan@klant.example>\r\nTo: {SUPPORT}\r\nSubject: {subject}\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

async fn jan_answers(d: &Daemon, id: &str, parent: &str, subject: &str) {
    let reply = d
        .send(
            "jan@klant.example",
            &[SUPPORT],
            &answer(id, parent, subject, "More"),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
}

/// The message ids of conversation `id`, oldest first.
fn message_ids_of(d: &Daemon, id: i64) -> Vec<String> {
    d.show(id)["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["message_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn row_of(d: &Daemon, id: i64, message_id: &str) -> String {
    d.show(id)["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["message_id"] == message_id)
        .and_then(|m| m["id"].as_i64())
        .expect("message row")
        .to_string()
}

#[tokio::test]
async fn split_and_merge_by_the_page_forms_move_the_messages_and_replies_follow_them() {
    let d = Daemon::start().await;
    let old = customer_writes(&d, "s1@klant.example", SUPPORT, "Kettle").await;
    let web = Web::signed_in(&d, ALICE).await;
    let page = format!("/conversations/{old}");
    assert!(
        !web.get(&page).await.body.contains(">Split</button>"),
        "one message: nothing to split"
    );
    jan_answers(&d, "s2@klant.example", "s1@klant.example", "Re: Kettle").await;
    let shown = web.get(&page).await;
    assert_eq!(
        shown.body.matches(">Split</button>").count(),
        2,
        "one per message"
    );
    let row = row_of(&d, old, "s2@klant.example");

    // Without the CSRF token nothing moves.
    let forged = web
        .post_raw(&format!("{page}/split"), form_body(&[("message", &row)]))
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(d.show(old)["message_count"], 2);

    let split = web
        .submit(&page, &format!("{page}/split"), &[("message", &row)])
        .await;
    assert_eq!(split.status, 303, "{}", split.body);
    let new: i64 = split
        .location()
        .strip_prefix("/conversations/")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("on to the new conversation: {}", split.location()));
    assert_ne!(new, old);
    let new_page = web.get(&format!("/conversations/{new}")).await;
    assert!(
        new_page
            .body
            .contains(&format!("<a href=\"/conversations/{old}\">#{old}</a>")),
        "the timeline links the source: {}",
        new_page.body
    );
    jan_answers(&d, "s3@klant.example", "s2@klant.example", "Re: Kettle").await;
    assert_eq!(
        message_ids_of(&d, new),
        ["s2@klant.example", "s3@klant.example"]
    );
    assert_eq!(message_ids_of(&d, old), ["s1@klant.example"]);

    // The merge box suggests the contact's other conversations.
    assert!(
        new_page
            .body
            .contains(&format!("<option value=\"{old}\">#{old} Kettle</option>")),
        "{}",
        new_page.body
    );
    // Merge asks first, naming the target; the confirmed form merges.
    let merge = format!("/conversations/{new}/merge");
    let old_text = old.to_string();
    let asked = web
        .submit(
            &format!("/conversations/{new}"),
            &merge,
            &[("into", &old_text)],
        )
        .await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(asked
        .body
        .contains("Merge this conversation into the one below?"));
    assert!(
        asked.body.contains(&format!("#{old} Kettle")),
        "{}",
        asked.body
    );
    assert_eq!(
        d.show(new)["message_count"],
        2,
        "nothing merged before confirming"
    );
    let merged = web
        .submit(
            &format!("/conversations/{new}"),
            &merge,
            &[("into", &old_text), ("confirmed", "1")],
        )
        .await;
    assert_eq!(merged.status, 303, "{}", merged.body);
    assert_eq!(merged.location(), page);
    let stale = web.get(&format!("/conversations/{new}")).await;
    assert_eq!(
        (stale.status, stale.location()),
        (303, page.as_str()),
        "a stale link leads on"
    );
    jan_answers(&d, "s4@klant.example", "s3@klant.example", "Re: Kettle").await;
    assert_eq!(
        message_ids_of(&d, old),
        [
            "s1@klant.example",
            "s2@klant.example",
            "s3@klant.example",
            "s4@klant.example"
        ]
    );
}

#[tokio::test]
async fn split_and_merge_forms_are_refused_to_viewers_and_outsiders() {
    let d = Daemon::start().await;
    let sales = customer_writes(&d, "q1@klant.example", SALES, "Quote").await;
    let reply = d
        .send(
            "jan@klant.example",
            &[SALES],
            &answer(
                "q2@klant.example",
                "q1@klant.example",
                "Re: Quote",
                "Hello?",
            ),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let support = customer_writes(&d, "h1@klant.example", SUPPORT, "Broken").await;
    let row = row_of(&d, sales, "q2@klant.example");
    let root = Web::signed_in(&d, ROOT).await;
    let seen = root.get(&format!("/conversations/{sales}")).await;
    assert_eq!(seen.status, 200);
    assert!(
        !seen.body.contains(">Split</button>"),
        "no split for a viewer"
    );
    assert!(!seen.body.contains(">Merge</button>"));
    let refused = root
        .submit(
            "/",
            &format!("/conversations/{sales}/split"),
            &[("message", &row)],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let alice = Web::signed_in(&d, ALICE).await;
    let sales_text = sales.to_string();
    for confirmed in ["0", "1"] {
        let hidden = alice
            .submit(
                "/",
                &format!("/conversations/{support}/merge"),
                &[("into", &sales_text), ("confirmed", confirmed)],
            )
            .await;
        assert_eq!(hidden.status, 404, "{}", hidden.body);
    }
    assert_eq!(d.show(sales)["message_count"], 2);
    assert_eq!(d.show(support)["message_count"], 1);
}

#[tokio::test]
async fn move_from_the_more_menu_lists_only_inboxes_the_agent_works_in() {
    let d = Daemon::start().await;
    let id = customer_writes(&d, "mv@klant.example", SUPPORT, "Wrong desk").await;
    let page = format!("/conversations/{id}");
    let alice = Web::signed_in(&d, ALICE).await;
    assert!(
        !alice.get(&page).await.body.contains("Move to inbox"),
        "alice works in Support only"
    );
    let bob = Web::signed_in(&d, BOB).await;
    let shown = bob.get(&page).await;
    assert!(shown
        .body
        .contains("<label for=\"move-to\">Move to inbox</label>"));
    assert!(shown
        .body
        .contains("<option value=\"Sales\">Sales</option>"));
    assert!(
        !shown.body.contains("<option value=\"Support\">"),
        "not where it is"
    );
    let moved = bob
        .submit(&page, &format!("{page}/move"), &[("inbox", "Sales")])
        .await;
    assert_eq!(moved.status, 303, "{}", moved.body);
    assert_eq!(d.show(id)["inbox"], "Sales");
    assert_eq!(
        alice.get(&page).await.status,
        404,
        "out of alice's sight now"
    );
}

#[tokio::test]
async fn block_sender_asks_once_then_filters_the_conversation() {
    let d = Daemon::start().await;
    let id = customer_writes(&d, "bl@klant.example", SUPPORT, "Buy now").await;
    let web = Web::signed_in(&d, ALICE).await;
    let page = format!("/conversations/{id}");
    let act = format!("{page}/act");
    assert!(web.get(&page).await.body.contains(">Block sender</button>"));
    let asked = web.submit(&page, &act, &[("action", "block_sender")]).await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(asked.body.contains("Block this sender?"));
    assert!(asked.body.contains("jan@klant.example"));
    assert_eq!(d.show(id)["filtered"], false, "not before confirming");
    let blocked = web
        .submit(
            &page,
            &act,
            &[("action", "block_sender"), ("confirmed", "1")],
        )
        .await;
    assert_eq!(blocked.status, 303, "{}", blocked.body);
    assert_eq!(d.show(id)["filtered"], true);
    let senders = d.cli(&["senders", "list"]);
    assert!(senders.contains("jan@klant.example"), "{senders}");
}

#[tokio::test]
async fn delete_forever_is_offered_in_trash_and_asks_once() {
    let d = Daemon::start().await;
    let id = customer_writes(&d, "del@klant.example", SUPPORT, "Old stuff").await;
    let web = Web::signed_in(&d, ALICE).await;
    let page = format!("/conversations/{id}");
    let act = format!("{page}/act");
    assert!(
        !web.get(&page).await.body.contains("Delete forever"),
        "not outside trash"
    );
    assert_eq!(
        web.submit(&page, &act, &[("action", "trash")]).await.status,
        303
    );
    let trashed = web.get(&page).await;
    assert!(
        trashed.body.contains(">Delete forever</button>"),
        "{}",
        trashed.body
    );
    let asked = web.submit(&page, &act, &[("action", "delete")]).await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(asked.body.contains("Delete this conversation forever?"));
    assert!(asked
        .body
        .contains(&format!("<a href=\"{page}\">Cancel</a>")));
    assert_eq!(d.list(&["--view", "trash"]).len(), 1, "still in trash");
    let deleted = web
        .submit(&page, &act, &[("action", "delete"), ("confirmed", "1")])
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    assert_eq!(deleted.location(), "/?view=trash");
    assert!(d.list(&["--view", "trash"]).is_empty());
    assert_eq!(web.get(&page).await.status, 404);
}

#[tokio::test]
async fn close_with_ticket_is_offered_when_the_conversation_has_an_open_ticket() {
    let d = Daemon::start_edited(|text, _| {
        text.replacen(
            "from_name = { mode = \"agent_and_company\", company = \"Demo Support\" }",
            "from_name = { mode = \"agent_and_company\", company = \"Demo Support\" }\n  \
             tickets = { auto_create = true, pipeline = \"Support\", stage = \"New\" }",
            1,
        )
    })
    .await;
    let id = customer_writes(&d, "tk@klant.example", SUPPORT, "Ticketed").await;
    assert_eq!(d.show(id)["ticket"]["status"], "open", "{:#}", d.show(id));
    let plain = customer_writes(
        &d,
        "nt@klant.example",
        "helpdesk@demo.hs-inbox.com",
        "No ticket",
    )
    .await;
    let web = Web::signed_in(&d, ALICE).await;
    assert!(!web
        .get(&format!("/conversations/{plain}"))
        .await
        .body
        .contains("Close with ticket"));
    let page = format!("/conversations/{id}");
    assert!(web
        .get(&page)
        .await
        .body
        .contains(">Close with ticket</button>"));
    let closed = web
        .submit(
            &page,
            &format!("{page}/act"),
            &[("action", "close_with_ticket")],
        )
        .await;
    assert_eq!(closed.status, 303, "{}", closed.body);
    let shown = d.show(id);
    assert_eq!(shown["status"], "closed");
    assert_eq!(shown["ticket"]["status"], "closed");
}

#[tokio::test]
async fn the_more_actions_and_their_questions_speak_dutch_and_swedish() {
    let d = Daemon::start_edited(|text, _| {
        text.replace(
            "name = \"Alice Smith\"\n",
            "name = \"Alice Smith\"\nlanguage = \"nl\"\n",
        )
        .replace(
            "name = \"Bob Jansen\"\n",
            "name = \"Bob Jansen\"\nlanguage = \"sv\"\n",
        )
    })
    .await;
    let id = customer_writes(&d, "lang@klant.example", SUPPORT, "Taal").await;
    let page = format!("/conversations/{id}");
    let alice = Web::signed_in(&d, ALICE).await;
    let nl = alice.get(&page).await.body;
    for text in [
        "Afzender blokkeren",
        "Samenvoegen met gesprek",
        "Samenvoegen",
    ] {
        assert!(nl.contains(text), "{text} missing in Dutch");
    }
    let asked = alice
        .submit(&page, &format!("{page}/act"), &[("action", "block_sender")])
        .await;
    assert!(
        asked.body.contains("Deze afzender blokkeren?"),
        "{}",
        asked.body
    );
    assert!(asked.body.contains(">Annuleren</a>"));
    let bob = Web::signed_in(&d, BOB).await;
    let sv = bob.get(&page).await.body;
    for text in ["Blockera avsändare", "Flytta till inkorg", "Slå ihop"] {
        assert!(sv.contains(text), "{text} missing in Swedish");
    }
}

/// A `multipart/form-data` body of `fields` and `files` (name, filename, bytes), as a
/// browser posts a form with file inputs; returns (content type, body).
fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----inboxgate-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (name, filename, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl Web {
    async fn post_multipart(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &[u8])],
    ) -> Answer {
        let (content_type, body) = multipart(fields, files);
        self.answer(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }
}

/// The outbound messages of a conversation, from the real CLI's `show`.
fn outbound_count(d: &Daemon, id: i64) -> usize {
    d.show(id)["messages"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["direction"] == "out").count())
}

#[tokio::test]
async fn a_reply_with_files_goes_out_with_them_and_one_over_the_message_limit_is_refused() {
    let sink = Sink::plain();
    let relay = sink.relay_config();
    let d = Daemon::start_edited(move |text, _| {
        text.replace("[smtp]\n", "[smtp]\nmax_message_size = 16384\n") + &relay
    })
    .await;
    let id = customer_writes(&d, "files@klant.example", SUPPORT, "Invoice").await;
    let web = Web::signed_in(&d, ALICE).await;
    let page = web.get(&format!("/conversations/{id}")).await;
    assert!(
        page.body.contains("enctype=\"multipart/form-data\""),
        "the reply form carries files"
    );
    assert!(page
        .body
        .contains("<label for=\"reply-files\">Attach files</label>"));
    assert!(page.body.contains("type=\"file\" multiple"));
    let csrf = page.csrf();
    let path = format!("/conversations/{id}/reply");

    let without_token = web
        .post_multipart(&path, &[("text", "No token")], &[("files", "a.txt", b"x")])
        .await;
    assert_eq!(
        without_token.status, 403,
        "CSRF checked on multipart posts too"
    );

    let sent = web
        .post_multipart(
            &path,
            &[("csrf", &csrf), ("text", "Your invoice and the manual.")],
            &[
                ("files", "invoice.pdf", b"%PDF-1.4 invoice"),
                ("files", "manual.txt", b"Descale monthly."),
                // A file input left empty.
                ("files", "", b""),
            ],
        )
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    let got = sink.wait_for(1).await;
    let parsed = got[0].parsed();
    let names: Vec<String> = parsed
        .attachments()
        .filter_map(|a| a.attachment_name().map(str::to_string))
        .collect();
    assert_eq!(names, ["invoice.pdf", "manual.txt"]);
    assert!(got[0].raw.contains("Your invoice and the manual."));
    assert_eq!(outbound_count(&d, id), 1);

    let big = vec![b'a'; 20_000];
    let refused = web
        .post_multipart(
            &path,
            &[("csrf", &csrf), ("text", "Too big")],
            &[("files", "big.bin", &big)],
        )
        .await;
    assert_eq!(refused.status, 413, "{}", refused.body);
    assert!(refused.body.contains("Too large"), "{}", refused.body);
    assert!(
        refused.body.contains("smtp.max_message_size"),
        "{}",
        refused.body
    );
    assert_eq!(outbound_count(&d, id), 1, "nothing queued");

    // Without files the plain urlencoded form still works (no script, old pages).
    let plain = web
        .submit(
            &format!("/conversations/{id}"),
            &path,
            &[("text", "Plain.")],
        )
        .await;
    assert_eq!(plain.status, 303, "{}", plain.body);
    assert_eq!(outbound_count(&d, id), 2);
}

#[tokio::test]
async fn files_of_a_reply_held_for_new_mail_are_carried_to_the_confirmation() {
    let sink = Sink::plain();
    let relay = sink.relay_config();
    let d = Daemon::start_edited(move |text, _| text + &relay).await;
    let id = customer_writes(&d, "carry@klant.example", SUPPORT, "Kettle").await;
    let web = Web::signed_in(&d, ALICE).await;
    let page = web.get(&format!("/conversations/{id}")).await;
    let seen = page
        .body
        .split("name=\"seen\" value=\"")
        .nth(1)
        .expect("seen");
    let seen = seen[..seen.find('"').expect("quote")].to_string();
    let follow_up = format!(
        "Message-ID: <carry2@klant.example>\r\nIn-Reply-To: <carry@klant.example>\r\n\
         From: Jan Klant <jan@klant.example>\r\nTo: {SUPPORT}\r\nSubject: Re: Kettle\r\n\r\nAlso the lid.\r\n"
    );
    let reply = d
        .send("jan@klant.example", &[SUPPORT], follow_up.as_bytes())
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let csrf = page.csrf();
    let path = format!("/conversations/{id}/reply");
    let held = web
        .post_multipart(
            &path,
            &[("csrf", &csrf), ("seen", &seen), ("text", "See the photo.")],
            &[("files", "photo.jpg", b"\xff\xd8\xff photo")],
        )
        .await;
    assert_eq!(held.status, 409, "{}", held.body);
    assert!(held.body.contains("Attached: photo.jpg"), "{}", held.body);
    assert_eq!(outbound_count(&d, id), 0, "nothing sent before confirming");
    let carried = held
        .body
        .split("name=\"carried\" value=\"")
        .nth(1)
        .expect("carried");
    let carried = &carried[..carried.find('"').expect("quote")];
    let sent = web
        .post_multipart(
            &path,
            &[
                ("csrf", &csrf),
                ("confirm", "1"),
                ("text", "See the photo."),
                ("carried", carried),
            ],
            &[],
        )
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    let got = sink.wait_for(1).await;
    let parsed = got[0].parsed();
    let photo = parsed.attachments().next().expect("the photo went along");
    assert_eq!(photo.attachment_name(), Some("photo.jpg"));
    assert_eq!(photo.contents(), b"\xff\xd8\xff photo");
}

#[tokio::test]
async fn forward_and_new_email_by_form_reach_the_receiver_from_member_inboxes_only() {
    let sink = Sink::plain();
    let relay = sink.relay_config();
    let d = Daemon::start_edited(move |text, _| text + &relay).await;
    let id = customer_writes(&d, "fwd@klant.example", SUPPORT, "Broken lid").await;
    let web = Web::signed_in(&d, ALICE).await;
    let page = web.get(&format!("/conversations/{id}")).await;
    assert!(
        page.body
            .contains(&format!("href=\"/conversations/{id}/forward\">Forward</a>")),
        "{}",
        page.body
    );
    assert!(page.body.contains("href=\"/compose\">New email</a>"));
    let forward_page = format!("/conversations/{id}/forward");
    let form = web.get(&forward_page).await;
    assert_eq!(form.status, 200);
    assert!(form
        .body
        .contains("<label for=\"forward-note\">Note</label>"));
    let forwarded = web
        .submit(
            &forward_page,
            &forward_page,
            &[
                ("to", "workshop@partner.example"),
                ("note", "Can you fix this lid?"),
            ],
        )
        .await;
    assert_eq!(forwarded.status, 303, "{}", forwarded.body);
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].meta["rcpt_tos"][0], "workshop@partner.example");
    assert!(got[0].raw.contains("Can you fix this lid?"));
    assert!(
        got[0]
            .raw
            .contains("---------- Forwarded message ----------"),
        "the original quoted inline: {}",
        got[0].raw
    );
    assert!(got[0].raw.contains("Where is my order?"));

    let compose = web.get("/compose").await;
    assert_eq!(compose.status, 200);
    assert!(
        compose
            .body
            .contains(&format!("<option value=\"{SUPPORT}\">")),
        "{}",
        compose.body
    );
    assert!(
        !compose.body.contains(SALES),
        "Alice is no member of Sales: {}",
        compose.body
    );
    let csrf = compose.csrf();
    let created = web
        .post_multipart(
            "/compose",
            &[
                ("csrf", &csrf),
                ("from", SUPPORT),
                ("to", "new@klant.example"),
                ("cc", "boss@klant.example"),
                ("bcc", "archive@demo.example"),
                ("subject", "Your new kettle"),
                ("text", "It ships Monday."),
            ],
            &[("files", "receipt.txt", b"paid")],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let new_id: i64 = created
        .location()
        .strip_prefix("/conversations/")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("to the new conversation: {}", created.location()));
    assert_ne!(new_id, id);
    let got = sink.wait_for(2).await;
    let sent = &got[1];
    assert_eq!(sent.header("Subject").as_deref(), Some("Your new kettle"));
    assert_eq!(sent.header("To").as_deref(), Some("<new@klant.example>"));
    assert_eq!(sent.header("Cc").as_deref(), Some("<boss@klant.example>"));
    assert!(sent.header("Bcc").is_none(), "Bcc stays off the message");
    let mut rcpts: Vec<&str> = sent.meta["rcpt_tos"]
        .as_array()
        .expect("rcpt list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    rcpts.sort_unstable();
    assert_eq!(
        rcpts,
        [
            "archive@demo.example",
            "boss@klant.example",
            "new@klant.example"
        ]
    );
    assert_eq!(d.show(new_id)["subject"], "Your new kettle");

    let refused = web
        .post_multipart(
            "/compose",
            &[
                ("csrf", &csrf),
                ("from", SALES),
                ("to", "new@klant.example"),
                ("subject", "Not mine"),
                ("text", "From Sales"),
            ],
            &[],
        )
        .await;
    assert!(
        refused.status == 403 || refused.status == 404,
        "{} {}",
        refused.status,
        refused.body
    );
    let no_token = web
        .post_multipart(
            "/compose",
            &[
                ("from", SUPPORT),
                ("to", "x@klant.example"),
                ("subject", "s"),
                ("text", "t"),
            ],
            &[],
        )
        .await;
    assert_eq!(no_token.status, 403);
    assert_eq!(sink.messages().len(), 2, "the refused ones queued nothing");
}

#[tokio::test]
async fn presence_reports_reach_the_other_viewers_stream_and_need_the_token_and_access() {
    let d = Daemon::start().await;
    let id = customer_writes(&d, "here@klant.example", SUPPORT, "Who is here").await;
    let sales = customer_writes(&d, "there@klant.example", SALES, "Sales only").await;
    let alice = Web::signed_in(&d, ALICE).await;
    let bob = Web::signed_in(&d, BOB).await;
    let events = bob
        .http
        .get(format!("{}/events?conversation={id}", bob.base))
        .header(COOKIE, bob.cookie.clone().expect("cookie"))
        .send()
        .await
        .expect("event stream");
    assert_eq!(events.status(), 200);
    let mut said = EventLog::new(events);
    said.until("event: presence\ndata: []").await;
    let page = format!("/conversations/{id}");
    let report = format!("{page}/presence");
    let viewing = alice.submit(&page, &report, &[("doing", "viewing")]).await;
    assert_eq!(viewing.status, 204, "{}", viewing.body);
    said.until("data: [{\"doing\":\"viewing\",\"name\":\"Alice Smith\"}]")
        .await;
    let replying = alice.submit(&page, &report, &[("doing", "replying")]).await;
    assert_eq!(replying.status, 204);
    said.until("data: [{\"doing\":\"replying\",\"name\":\"Alice Smith\"}]")
        .await;
    let shown = bob.get(&page).await;
    assert!(
        shown
            .body
            .contains("<li class=\"replying\">Alice Smith is replying</li>"),
        "server-rendered for a page opened later: {}",
        shown.body
    );
    let gone = alice.submit(&page, &report, &[("doing", "gone")]).await;
    assert_eq!(gone.status, 204);
    let after = bob.get(&page).await;
    assert!(
        !after.body.contains("Alice Smith is"),
        "left: {}",
        after.body
    );

    let no_token = alice
        .post_raw(&report, form_body(&[("doing", "viewing")]))
        .await;
    assert_eq!(no_token.status, 403);
    let foreign = alice
        .submit(
            &page,
            &format!("/conversations/{sales}/presence"),
            &[("doing", "viewing")],
        )
        .await;
    assert_eq!(foreign.status, 404, "Alice may not see Sales");
    let foreign_stream = alice.get(&format!("/events?conversation={sales}")).await;
    assert_eq!(foreign_stream.status, 404);
}

#[tokio::test]
async fn in_two_real_browsers_presence_shows_live_and_a_reply_waits_for_mail_that_came_in() {
    require_browser();
    let sink = Sink::plain();
    let relay = sink.relay_config();
    let d = Daemon::start_edited(move |text, _| text + &relay).await;
    let id = customer_writes(&d, "lid@klant.example", SUPPORT, "Broken lid").await;
    let mut agents = Vec::new();
    for (email, name) in [(ALICE, "Alice Smith"), (BOB, "Bob Jansen")] {
        let out = set_password(&d, email, PASSWORD);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        agents.push(serde_json::json!({ "email": email, "password": PASSWORD, "name": name }));
    }
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let args = serde_json::json!({
        "base": format!("http://{}", d.api_addr),
        "smtp_port": d.addr.port(),
        "support": SUPPORT,
        "conversation": id,
        "message_id": "<lid@klant.example>",
        "a": agents[0],
        "b": agents[1],
        "shots": shots,
    });
    let measured = run_browser_script("two_agents.py", args).await;
    eprintln!("measured: {measured}");
    assert_eq!(measured["outbound_before_confirm"], 0);
    // Once every outbound delivery of the conversation is done, the receiver holds
    // exactly the one confirmed reply: nothing went out before the confirmation.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let shown = d.show(id);
        let out: Vec<&Value> = shown["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter(|m| m["direction"] == "out")
            .collect();
        assert_eq!(out.len(), 1, "one reply stored: {shown}");
        if out[0]["delivery"]["status"] == "sent" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered: {shown}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let got = sink.messages();
    assert_eq!(got.len(), 1, "only the confirmed reply went out");
    assert!(got[0].raw.contains("The lid is on its way, no charge."));
    assert_eq!(
        got[0].header("In-Reply-To").as_deref(),
        Some("<again@klant.example>"),
        "it answers the message that came in"
    );
}

#[tokio::test]
async fn assigning_to_a_team_gives_it_to_the_member_with_the_fewest_open_conversations() {
    let d = Daemon::start_with_config(
        "\n[[teams]]\nname = \"support\"\nmembers = [\"alice@demo.example\", \"bob@demo.example\"]\n",
    )
    .await;
    let first = customer_writes(&d, "team-1@klant.example", SUPPORT, "Kettle one").await;
    let second = customer_writes(&d, "team-2@klant.example", SUPPORT, "Kettle two").await;
    let web = Web::signed_in(&d, ALICE).await;
    let page = format!("/conversations/{first}");
    let shown = web.get(&page).await;
    assert!(
        shown
            .body
            .contains("<option value=\"team:support\">support</option>"),
        "the Assignee select offers the team: {}",
        shown.body
    );
    let path = |id: i64| format!("/conversations/{id}/assign");
    let mine = web
        .submit(&page, &path(first), &[("assignee", ALICE)])
        .await;
    assert_eq!(mine.status, 303, "{}", mine.body);

    // Alice (first in the team) has one open conversation now, Bob none: Bob takes it.
    let page = format!("/conversations/{second}");
    let to_team = web
        .submit(&page, &path(second), &[("assignee", "team:support")])
        .await;
    assert_eq!(to_team.status, 303, "{}", to_team.body);
    assert_eq!(status_of(&d, second)["assignee"], BOB);

    let unknown = web
        .submit(&page, &path(second), &[("assignee", "team:nobody")])
        .await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    assert!(unknown.body.contains("no team named"), "{}", unknown.body);
    assert_eq!(status_of(&d, second)["assignee"], BOB, "unchanged");
}

#[tokio::test]
async fn bulk_assign_and_trash_from_a_search_come_back_to_that_search() {
    let d = Daemon::start().await;
    let one = customer_writes(&d, "bt1@klant.example", SUPPORT, "Kettle lid").await;
    let two = customer_writes(&d, "bt2@klant.example", SUPPORT, "Kettle spout").await;
    let web = Web::signed_in(&d, ALICE).await;
    let page = "/?view=all_open&status=open&q=kettle&sort=oldest";
    let list = web.get(page).await;
    assert!(
        list.body
            .contains("<input type=\"hidden\" name=\"status\" value=\"open\">"),
        "the sort form keeps the filters: {}",
        list.body
    );
    let back_field = "name=\"back\" value=\"";
    let at = list.body.find(back_field).expect("bulk form's back field") + back_field.len();
    let back = list.body[at..at + list.body[at..].find('"').expect("quote")].replace("&amp;", "&");
    assert_eq!(back, "/?view=all_open&status=open&q=kettle&sort=oldest");

    let (one_text, two_text) = (one.to_string(), two.to_string());
    let bulk = |action: &'static str, id: &str| {
        let mut fields = vec![("action", action), ("id", id), ("back", back.as_str())];
        if action == "assign" {
            fields.push(("assignee", BOB));
        }
        fields
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect::<Vec<_>>()
    };
    for (action, id) in [("assign", &one_text), ("trash", &two_text)] {
        let fields = bulk(action, id);
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let done = web.submit(page, "/bulk", &fields).await;
        assert_eq!(done.status, 303, "{}", done.body);
        assert_eq!(done.location(), format!("{back}&done=1&refused=0"));
    }
    assert_eq!(d.show(one)["assignee"], BOB);
    assert_eq!(d.show(two)["trashed"], true);
}

/// Signs `email` in for a browser script: the password set with the real CLI, and the
/// user as the scripts take it.
fn browser_user(d: &Daemon, email: &str, name: &str) -> Value {
    let out = set_password(d, email, PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::json!({ "email": email, "password": PASSWORD, "name": name })
}

#[tokio::test]
async fn in_a_real_browser_with_scripting_off_an_agent_reads_replies_assigns_and_closes() {
    require_browser();
    let sink = Sink::plain();
    let relay = sink.relay_config();
    let d = Daemon::start_edited(move |text, _| text + &relay).await;
    let id = customer_writes(
        &d,
        "noscript@klant.example",
        SUPPORT,
        "Kettle without script",
    )
    .await;
    assert_eq!(d.show(id)["assignee"], Value::Null);
    let args = serde_json::json!({
        "base": format!("http://{}", d.api_addr),
        "user": browser_user(&d, ALICE, "Alice Smith"),
        "subject": "Kettle without script",
        "reply": "Plain forms work too: the new lid is on its way.",
    });
    let seen = run_browser_script("no_script.py", args).await;
    assert_eq!(seen["noscript_button_shown"], true, "{seen}");
    let shown = d.show(id);
    assert_eq!(shown["assignee"], ALICE, "{shown}");
    assert_eq!(shown["status"], "closed", "{shown}");
    let got = sink.wait_for(1).await;
    assert!(
        got[0].raw.contains("Plain forms work too"),
        "{}",
        got[0].raw
    );
    assert_eq!(
        got[0].header("In-Reply-To").as_deref(),
        Some("<noscript@klant.example>")
    );
}

#[tokio::test]
async fn in_a_real_browser_assignment_and_status_changes_show_live_without_reload() {
    require_browser();
    let d = Daemon::start().await;
    let assign = customer_writes(&d, "live-assign@klant.example", SUPPORT, "Assign me").await;
    let close = customer_writes(&d, "live-close@klant.example", SUPPORT, "Close me").await;
    let args = serde_json::json!({
        "base": format!("http://{}", d.api_addr),
        "a": browser_user(&d, ALICE, "Alice Smith"),
        "b": browser_user(&d, BOB, "Bob Jansen"),
        "assign": assign,
        "close": close,
    });
    let measured = run_browser_script("live_changes.py", args).await;
    eprintln!("measured: {measured}");
    for what in ["assign_shown_ms", "close_shown_ms"] {
        let ms = measured[what].as_i64().expect("measured");
        assert!(ms < 1500, "{what}: {ms} ms");
    }
    assert_eq!(d.show(assign)["assignee"], BOB);
    assert_eq!(d.show(assign)["status"], "open");
    assert_eq!(d.show(close)["status"], "closed");
}
