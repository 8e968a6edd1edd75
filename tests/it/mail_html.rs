//! Hostile mail HTML in a real browser (Debian's headless chromium) against a canary.
//!
//! Every fixture of tests/fixtures/xss points at `CANARY`, replaced by a loopback HTTP
//! server that records every connection. A small axum server serves each fixture as a
//! mail body — raw, sanitized only, or as the web inbox serves it (sanitized, with the
//! CSP headers, inside `<iframe sandbox>`) — in an outer page that embeds all of them;
//! chromium loads that page and exits when the page is idle (`--virtual-time-budget`).
//! The outer page marks each frame's load event in its DOM, which chromium dumps: the
//! test checks every frame loaded before it counts the canary's hits, and a sentinel
//! request to the canary after chromium exited proves every earlier connection was
//! counted.
//!
//! - With images blocked: zero hits, sanitized alone (no CSP, no sandbox, scripting on)
//!   and as served.
//! - With images shown: the `<img src>` images hit (the test can fail), only they, and
//!   never with a Referer (also without sandbox and headers); no script ever runs.
//! - Raw, unprotected: the fixtures do hit, so they test something.
//! - End to end in the web inbox: every fixture as mail over SMTP, opened by an agent in
//!   chromium over WebDriver: no hit until "Show images", then images only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use inboxgate::mail_html::{self, ImagePolicy, RemoteImages};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{conversation_with_subject, Daemon};
use crate::web::{require_browser, run_browser_script, set_password, ALICE, PASSWORD, SUPPORT};

/// A 1×1 transparent GIF: what the canary and the cid route answer.
const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

/// How a fixture is served to the browser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layer {
    /// The fixture as is, no CSP, no sandbox: the control.
    Raw,
    /// Sanitized, in `mail_document`, but no CSP, no headers, a frame without sandbox.
    SanitizedOnly(RemoteImages),
    /// As the web inbox serves it: sanitized, CSP, `<iframe sandbox>`.
    Served(RemoteImages),
}

/// One request (or bare connection) the canary saw.
#[derive(Clone, Debug)]
struct Hit {
    request_line: String,
    referer: Option<String>,
}

/// A loopback HTTP server that records every connection made to it.
struct Canary {
    address: std::net::SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Canary {
    async fn start() -> Canary {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind canary");
        let address = listener.local_addr().expect("canary address");
        let hits = Arc::new(Mutex::new(Vec::new()));
        let recorded = hits.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                // Counted at accept, in order: a connection alone is a hit.
                let index = {
                    let mut hits = recorded.lock().unwrap();
                    hits.push(Hit {
                        request_line: String::from("(connection without request)"),
                        referer: None,
                    });
                    hits.len() - 1
                };
                tokio::spawn(answer(stream, recorded.clone(), index));
            }
        });
        Canary { address, hits }
    }

    /// The fixture text with `CANARY` pointing here, under `/f/{fixture}`.
    fn substitute(&self, fixture: &str, html: &str) -> String {
        html.replace("CANARY", &format!("{}/f/{fixture}", self.address))
    }

    /// Every hit before a sentinel request made now: since the listener accepts in
    /// order, once the sentinel is recorded every earlier connection is too.
    async fn hits_so_far(&self) -> Vec<Hit> {
        let mut stream = TcpStream::connect(self.address)
            .await
            .expect("connect to canary");
        stream
            .write_all(b"GET /sentinel HTTP/1.1\r\nHost: canary\r\n\r\n")
            .await
            .expect("sentinel");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            {
                let hits = self.hits.lock().unwrap();
                if let Some(at) = hits
                    .iter()
                    .position(|hit| hit.request_line.starts_with("GET /sentinel "))
                {
                    return hits[..at].to_vec();
                }
            }
            assert!(
                Instant::now() < deadline,
                "the canary never recorded its sentinel request"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the hits include one whose request line contains each of `paths`.
    async fn wait_for(&self, paths: &[String]) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let hits = self.hits.lock().unwrap().clone();
            if paths.iter().all(|path| {
                hits.iter()
                    .any(|hit| hit.request_line.contains(path.as_str()))
            }) {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "the canary never saw {paths:?}; it saw {hits:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Reads a request head, records it at `index`, answers with the GIF.
async fn answer(mut stream: TcpStream, hits: Arc<Mutex<Vec<Hit>>>, index: usize) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buffer[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read_head).await;
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let referer = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("referer"))
        .map(|(_, value)| value.trim().to_owned());
    if !request_line.is_empty() {
        hits.lock().unwrap()[index] = Hit {
            request_line,
            referer,
        };
    }
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        GIF.len()
    )
    .into_bytes();
    response.extend_from_slice(GIF);
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}

/// The fixtures of tests/fixtures/xss, by name (file stem), with CANARY substituted.
fn fixtures(canary: &Canary) -> BTreeMap<String, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/xss");
    let mut fixtures = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("read tests/fixtures/xss") {
        let path = entry.expect("fixture entry").path();
        if path.extension().is_some_and(|ext| ext == "html") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let html = std::fs::read_to_string(&path).expect("read fixture");
            fixtures.insert(name.clone(), canary.substitute(&name, &html));
        }
    }
    assert!(
        fixtures.len() >= 20,
        "expected the XSS corpus in {}",
        dir.display()
    );
    fixtures
}

/// What the page server knows: the layer, the fixtures, and the cid requests it saw
/// (with whether the session cookie came along).
struct Pages {
    layer: Layer,
    fixtures: BTreeMap<String, String>,
    cid_requests: Mutex<Vec<(String, bool)>>,
}

/// Serves `/outer` (every fixture in a frame), `/body/{fixture}` and `/cid/{id}`.
async fn start_pages(pages: Arc<Pages>) -> std::net::SocketAddr {
    let router = Router::new()
        .route("/outer", get(outer_page))
        .route("/body/{fixture}", get(body))
        .route("/cid/{content_id}", get(cid_part))
        .with_state(pages);
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind page server");
    let address = listener.local_addr().expect("page server address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

async fn outer_page(State(pages): State<Arc<Pages>>) -> Response {
    let mut html = String::from(
        "<!DOCTYPE html><html><head><meta charset=utf-8><title>outer</title><script>\
         function loaded(name) { document.getElementById('log').textContent += ' loaded:' + name + ';'; }\
         </script></head><body><div id=log></div>",
    );
    for name in pages.fixtures.keys() {
        let src = format!("/body/{name}");
        let frame = match pages.layer {
            Layer::Served(_) => mail_html::iframe_tag(&src, name),
            Layer::Raw | Layer::SanitizedOnly(_) => format!("<iframe src=\"{src}\"></iframe>"),
        };
        html.push_str(&frame.replacen(
            "<iframe ",
            &format!("<iframe onload=\"loaded('{name}')\" "),
            1,
        ));
    }
    html.push_str("</body></html>");
    let cookie = "session=agent; Path=/; HttpOnly; SameSite=Lax";
    ([(header::SET_COOKIE, cookie)], Html(html)).into_response()
}

async fn body(State(pages): State<Arc<Pages>>, UrlPath(fixture): UrlPath<String>) -> Response {
    let Some(html) = pages.fixtures.get(&fixture) else {
        return (axum::http::StatusCode::NOT_FOUND, "no such fixture").into_response();
    };
    let cid_url = |content_id: &str| Some(format!("/cid/{content_id}"));
    match pages.layer {
        Layer::Raw => Html(html.clone()).into_response(),
        Layer::SanitizedOnly(images) => {
            let clean = mail_html::sanitize(html, &ImagePolicy::new(images, cid_url));
            Html(mail_html::mail_document(&clean)).into_response()
        }
        Layer::Served(images) => {
            let clean = mail_html::sanitize(html, &ImagePolicy::new(images, cid_url));
            mail_html::body_response(&clean, images)
        }
    }
}

async fn cid_part(
    State(pages): State<Arc<Pages>>,
    UrlPath(content_id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let with_cookie = headers.get(header::COOKIE).is_some();
    pages
        .cid_requests
        .lock()
        .unwrap()
        .push((content_id, with_cookie));
    ([(header::CONTENT_TYPE, "image/gif")], GIF).into_response()
}

/// Debian's chromium, or a failure saying how to install it: never a silent pass.
fn chromium() -> PathBuf {
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("chromium not found: apt-get install chromium (scripts/test installs it)");
}

/// Loads `url` in headless chromium until the page is idle; returns the dumped DOM.
fn load_in_chromium(url: &str) -> String {
    let profile = tempfile::tempdir().expect("chromium profile dir");
    let dump = profile.path().join("dom.html");
    let mut child = Command::new(chromium())
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--virtual-time-budget=5000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ))
        .args(["--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&dump).expect("dump file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            assert!(status.success(), "chromium failed: {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish loading {url} within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::read_to_string(&dump).expect("read chromium's DOM dump")
}

/// What one browser run showed.
struct Run {
    canary: Canary,
    pages: Arc<Pages>,
    dom: String,
}

impl Run {
    /// Every fixture served with `layer` in one outer page, loaded in chromium.
    async fn load(layer: Layer) -> Run {
        let canary = Canary::start().await;
        let pages = Arc::new(Pages {
            layer,
            fixtures: fixtures(&canary),
            cid_requests: Mutex::new(Vec::new()),
        });
        let address = start_pages(pages.clone()).await;
        let url = format!("http://{address}/outer");
        let dom = tokio::task::spawn_blocking(move || load_in_chromium(&url))
            .await
            .expect("chromium task");
        for name in pages.fixtures.keys() {
            assert!(
                dom.contains(&format!("loaded:{name};")),
                "the frame of {name} never loaded ({layer:?}):\n{dom}"
            );
        }
        Run { canary, pages, dom }
    }

    /// The fixtures (by the `/f/{fixture}/` in their path) that hit the canary.
    fn by_fixture(hits: &[Hit]) -> BTreeMap<String, Vec<String>> {
        let mut by_fixture: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for hit in hits {
            let fixture = hit
                .request_line
                .split_once("/f/")
                .and_then(|(_, rest)| rest.split(['/', ' ', '?']).next())
                .unwrap_or("(unknown)");
            by_fixture
                .entry(fixture.to_owned())
                .or_default()
                .push(hit.request_line.clone());
        }
        by_fixture
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_mail_html_fetches_nothing_and_runs_nothing_with_images_blocked() {
    let run = Run::load(Layer::Served(RemoteImages::Blocked)).await;
    let hits = run.canary.hits_so_far().await;
    assert!(
        hits.is_empty(),
        "the canary was hit with images blocked: {:#?}",
        Run::by_fixture(&hits)
    );
    // The frames rendered (not blocked by frame-ancestors): the cid image came from
    // the daemon's own route, which the CSP's 'self' allows in the sandboxed frame.
    let cid = run.pages.cid_requests.lock().unwrap().clone();
    eprintln!("cid requests (content id, session cookie sent): {cid:?}");
    assert!(
        cid.iter().any(|(id, _)| id == "logo@sender.example"),
        "no cid image loaded: {cid:?}\n{}",
        run.dom
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sanitizer_alone_stops_every_fixture_without_csp_or_sandbox() {
    let run = Run::load(Layer::SanitizedOnly(RemoteImages::Blocked)).await;
    let hits = run.canary.hits_so_far().await;
    assert!(
        hits.is_empty(),
        "sanitized mail hit the canary (no CSP, no sandbox): {:#?}",
        Run::by_fixture(&hits)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shown_images_load_without_referrer_and_scripts_still_never_run() {
    let run = Run::load(Layer::Served(RemoteImages::Shown)).await;
    let expected = [
        "/f/tracking-and-cid/img/tracker.gif",
        "/f/tracking-and-cid/img/second-tracker.gif",
        "/f/srcset/img/srcset-fallback.png",
        "/f/picture-source/img/picture-fallback.png",
    ]
    .map(String::from);
    run.canary.wait_for(&expected).await;
    let hits = run.canary.hits_so_far().await;
    assert_only_images_without_referer(&hits);
}

/// With images shown: every canary hit is an image request, and none carries a Referer.
fn assert_only_images_without_referer(hits: &[Hit]) {
    let not_images: Vec<&Hit> = hits
        .iter()
        .filter(|hit| !is_image_request(&hit.request_line))
        .collect();
    assert!(
        not_images.is_empty(),
        "with images shown, more than images hit the canary: {not_images:#?}"
    );
    let with_referer: Vec<&Hit> = hits.iter().filter(|hit| hit.referer.is_some()).collect();
    assert!(
        with_referer.is_empty(),
        "images were fetched with a Referer: {with_referer:#?}"
    );
}

/// Chromium sends no Referer from a sandboxed frame anyway; without the sandbox and the
/// header, the image's `referrerpolicy` and the document's `<meta name=referrer>` must.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shown_images_carry_no_referrer_even_without_sandbox_or_headers() {
    let run = Run::load(Layer::SanitizedOnly(RemoteImages::Shown)).await;
    let hits = run
        .canary
        .wait_for(&[String::from("/f/tracking-and-cid/img/tracker.gif")])
        .await;
    let with_referer: Vec<&Hit> = hits.iter().filter(|hit| hit.referer.is_some()).collect();
    assert!(
        with_referer.is_empty(),
        "images were fetched with a Referer: {with_referer:#?}"
    );
}

/// `GET /f/{fixture}/img/…`: an ordinary remote image of a fixture.
fn is_image_request(request_line: &str) -> bool {
    request_line.starts_with("GET /f/")
        && request_line
            .split(' ')
            .nth(1)
            .is_some_and(|path| path.split('/').nth(3) == Some("img"))
}

/// Fixtures that cannot fetch anything in today's chromium even unprotected (kept in
/// the corpus for older or other browsers): a click would be needed, or the vector is
/// obsolete.
const NOT_LIVE_IN_CHROMIUM: &[&str] = &[];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xss_corpus_hits_the_canary_when_served_unprotected() {
    let run = Run::load(Layer::Raw).await;
    let hits = run.canary.hits_so_far().await;
    let by_fixture = Run::by_fixture(&hits);
    let silent: BTreeSet<&String> = run
        .pages
        .fixtures
        .keys()
        .filter(|name| {
            !by_fixture.contains_key(*name) && !NOT_LIVE_IN_CHROMIUM.contains(&name.as_str())
        })
        .collect();
    eprintln!("raw hits by fixture: {by_fixture:#?}");
    assert!(
        silent.is_empty(),
        "fixtures that hit nothing even unprotected (dead tests): {silent:?}"
    );
    assert!(
        hits.iter()
            .any(|hit| hit.request_line.contains("/script-ran")),
        "no fixture's script ran unprotected: the browser check would not see a script"
    );
    assert!(
        hits.iter().any(|hit| hit.referer.is_some()),
        "no request carried a Referer unprotected: the referrer check could not fail"
    );
}

/// The path the browser script asks the canary for between its two phases.
const SHOW_IMAGES_MARKER: &str = "GET /marker/show-images ";

/// A customer's mail whose HTML part is `html` (base64, so any line length and byte
/// survives SMTP); with the fixtures' `cid:` logo as a related part when it names it.
fn hostile_mail(fixture: &str, html: &str) -> Vec<u8> {
    use base64::Engine as _;
    let encode = |bytes: &[u8]| {
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        let lines: Vec<&str> = text
            .as_bytes()
            .chunks(76)
            .map(|line| std::str::from_utf8(line).expect("base64 is ASCII"))
            .collect();
        lines.join("\r\n")
    };
    let html_part = format!(
        "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        encode(html.as_bytes())
    );
    let body = if html.contains("cid:logo@sender.example") {
        format!(
            "Content-Type: multipart/related; boundary=\"related\"\r\n\r\n--related\r\n{html_part}\
             --related\r\nContent-Type: image/gif\r\nContent-ID: <logo@sender.example>\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--related--\r\n",
            encode(GIF)
        )
    } else {
        html_part
    };
    format!(
        "Message-ID: <{fixture}@hostile.example>\r\nFrom: Mallory <mallory@hostile.example>\r\n\
         To: {SUPPORT}\r\nSubject: Hostile mail {fixture}\r\n\
         Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n{body}"
    )
    .into_bytes()
}

/// Sends every fixture as its own mail to Support over SMTP; returns each conversation
/// as `{"id", "fixture"}` for the browser script.
async fn mail_every_fixture(d: &Daemon, fixtures: &BTreeMap<String, String>) -> Vec<Value> {
    for (name, html) in fixtures {
        let reply = d
            .send(
                "mallory@hostile.example",
                &[SUPPORT],
                &hostile_mail(name, html),
            )
            .await;
        assert!(reply.starts_with("250"), "{name}: {reply}");
    }
    let list = d.list(&[]);
    fixtures
        .keys()
        .map(|name| {
            let id = conversation_with_subject(&list, &format!("Hostile mail {name}"));
            serde_json::json!({ "id": id, "fixture": name })
        })
        .collect()
}

/// The hits before the browser script's marker and those after it.
fn split_at_marker(hits: &[Hit]) -> (&[Hit], &[Hit]) {
    let at = hits
        .iter()
        .position(|hit| hit.request_line.starts_with(SHOW_IMAGES_MARKER))
        .unwrap_or_else(|| panic!("the script never marked the canary: {hits:#?}"));
    (&hits[..at], &hits[at + 1..])
}

/// Issue 13, end to end: every fixture arrives over SMTP and Alice opens it in the web
/// inbox in chromium (tests/browser/hostile_mail.py). Until she clicks "Show images"
/// nothing reaches the canary — not the page, not the frame; after she clicked it in
/// every message that offers it, only `<img>` images did (at least one, so the check can
/// fail), without a Referer, and no script left a mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_web_inbox_hostile_mail_hits_nothing_until_images_are_shown_and_then_only_images() {
    require_browser();
    let started = Instant::now();
    let canary = Canary::start().await;
    let fixtures = fixtures(&canary);
    let d = Daemon::start().await;
    let conversations = mail_every_fixture(&d, &fixtures).await;
    let out = set_password(&d, ALICE, PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let args = serde_json::json!({
        "base": format!("http://{}", d.api_addr),
        "user": { "email": ALICE, "password": PASSWORD },
        "conversations": conversations,
        "canary": format!("http://{}", canary.address),
    });
    let seen = run_browser_script("hostile_mail.py", args).await;
    eprintln!("the browser saw: {seen}");
    let hits = canary.hits_so_far().await;
    let (blocked, shown) = split_at_marker(&hits);
    assert!(
        blocked.is_empty(),
        "the canary was hit before images were shown: {:#?}",
        Run::by_fixture(blocked)
    );
    let opened: Vec<&str> = seen["opened"]
        .as_array()
        .expect("opened")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let names: Vec<&str> = fixtures.keys().map(String::as_str).collect();
    assert_eq!(opened, names, "every fixture's frame loaded in the inbox");
    assert_eq!(seen["side_effects"], serde_json::json!([]), "a script ran");
    assert!(
        seen["shown"]
            .as_array()
            .is_some_and(|shown| shown.iter().any(|f| f == "tracking-and-cid")),
        "Show images was not offered where remote images are: {seen}"
    );
    assert!(
        shown.iter().any(|hit| hit
            .request_line
            .contains("/f/tracking-and-cid/img/tracker.gif")),
        "no shown image reached the canary, so the checks prove nothing: {shown:#?}"
    );
    assert_only_images_without_referer(shown);
    eprintln!(
        "{} image requests after Show images; test took {:.1} s",
        shown.len(),
        started.elapsed().as_secs_f64()
    );
}
