//! Outbound over real SMTP (SPEC E1–E9, A4, B10): agents reply and compose with the
//! real CLI, the daemon's queue worker delivers to a real receiver (python3-aiosmtpd,
//! `smtp_sink.py`) that records what arrives and can be told to answer 4xx/5xx, and
//! the customer's answer comes back over SMTP into the daemon.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

const SUPPORT: &str = "support@demo.hs-inbox.com";
const HELPDESK: &str = "helpdesk@demo.hs-inbox.com";
const ALICE: &str = "alice@demo.example";

/// A recording SMTP receiver (see `smtp_sink.py`).
pub struct Sink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

/// One message the sink received.
#[derive(Debug)]
pub struct Received {
    pub raw: String,
    pub meta: Value,
}

impl Received {
    /// The value of the first header `name` (unfolded), if any.
    pub fn header(&self, name: &str) -> Option<String> {
        headers(&self.raw)
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn count(&self, name: &str) -> usize {
        headers(&self.raw)
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(self.raw.as_bytes())
            .expect("a parsable message")
    }
}

/// Unfolded header fields of a message.
fn headers(raw: &str) -> Vec<(String, String)> {
    let head = raw.split("\r\n\r\n").next().unwrap_or_default();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.to_string(), value.trim().to_string()));
        }
    }
    out
}

impl Sink {
    pub fn start(options: Value) -> Sink {
        require_python_module("aiosmtpd", "apt-get install python3-aiosmtpd");
        let dir = tempfile::tempdir().expect("sink dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/smtp_sink.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(dir.path())
            .arg(options.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start /usr/bin/python3 smtp_sink.py (python3-aiosmtpd)");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("sink stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("sink port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("sink port: {line:?}"));
        Sink { port, dir, child }
    }

    pub fn plain() -> Sink {
        Sink::start(json!({}))
    }

    /// Scripts the sink's replies (see `smtp_sink.py`).
    pub fn rules(&self, rules: Value) {
        let path = self.dir.path().join("rules.json");
        std::fs::write(path, rules.to_string()).expect("write rules");
    }

    pub fn messages(&self) -> Vec<Received> {
        let mut list = Vec::new();
        for n in 1.. {
            let base = self.dir.path().join(format!("msg-{n}"));
            let Ok(meta) = std::fs::read_to_string(base.with_extension("json")) else {
                break;
            };
            let raw = std::fs::read(base.with_extension("eml")).expect("eml beside json");
            list.push(Received {
                raw: String::from_utf8_lossy(&raw).into_owned(),
                meta: serde_json::from_str(&meta).expect("sink json"),
            });
        }
        list
    }

    /// Waits until at least `n` messages arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..200 {
            let list = self.messages();
            if list.len() >= n {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "sink got {} message(s), expected {n}",
            self.messages().len()
        );
    }

    /// `[outbound]` relaying everything to this sink in plain text.
    pub fn relay_config(&self) -> String {
        format!(
            "\n[outbound]\nrelay = {{ host = \"127.0.0.1\", port = {}, tls = \"none\" }}\n",
            self.port
        )
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Support channel gets a signature with every token.
fn with_signature(text: String) -> String {
    text.replace(
        "company = \"Demo Support\" }",
        "company = \"Demo Support\" }\n  signature = \"-- \\n{{full_name}} ({{first_name}} / {{last_name}})\\nDemo Inc\"",
    )
}

async fn daemon_relaying_to(sink: &Sink) -> Daemon {
    let relay = sink.relay_config();
    Daemon::start_edited(move |text, _| with_signature(text) + &relay).await
}

fn write_file(d: &Daemon, name: &str, text: &str) -> PathBuf {
    let path = d.config_path.with_file_name(name);
    std::fs::write(&path, text).expect("write file");
    path
}

fn inbound(id: &str, from: &str, to: &str, subject: &str, extra: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{id}>\r\nFrom: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\
         Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n{extra}MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nHello there\r\n"
    )
    .into_bytes()
}

fn conversation_with(d: &Daemon, message_id: &str) -> Value {
    for c in d.list(&[]) {
        let shown = d.show(c["id"].as_i64().unwrap());
        let has = shown["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["message_id"] == message_id);
        if has {
            return shown;
        }
    }
    panic!("no conversation holds {message_id}");
}

/// The outbound message `row` as `show` has it now.
fn message_now(d: &Daemon, conversation: i64, row: i64) -> Value {
    d.show(conversation)["messages"]
        .as_array()
        .and_then(|all| all.iter().find(|m| m["id"] == row).cloned())
        .unwrap_or_else(|| panic!("message {row} not in conversation {conversation}"))
}

/// Polls `show` until the outbound message `row` reaches `status`.
async fn wait_delivery(d: &Daemon, conversation: i64, row: i64, status: &str) -> Value {
    wait_attempt(d, conversation, row, status, 1..=99).await
}

/// Polls `show` until the outbound message `row` reaches `status` with a number of
/// attempts in `attempts`.
async fn wait_attempt(
    d: &Daemon,
    conversation: i64,
    row: i64,
    status: &str,
    attempts: std::ops::RangeInclusive<i64>,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let shown = d.show(conversation);
        if let Some(m) = shown["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == row)
        {
            let tries = m["delivery"]["attempts"].as_i64().unwrap_or_default();
            if m["delivery"]["status"] == status && attempts.contains(&tries) {
                return m.clone();
            }
            last = m.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("message {row} never reached {status} after {attempts:?} attempts: {last:#}");
}

fn ids(list: &[Value]) -> Vec<i64> {
    list.iter().map(|c| c["id"].as_i64().unwrap()).collect()
}

fn compose(d: &Daemon, from: &str, to: &str, subject: &str, body: &str) -> Value {
    let body = write_file(d, "compose.txt", body);
    let out = d.cli(&[
        "compose",
        "--as",
        ALICE,
        "--from",
        from,
        "--to",
        to,
        "--subject",
        subject,
        "--body-file",
        body.to_str().unwrap(),
        "--json",
    ]);
    serde_json::from_str(&out).expect("compose prints the message as JSON")
}

fn reply(d: &Daemon, conversation: i64, extra: &[&str]) -> Value {
    let body = write_file(d, "reply.txt", "Thanks, it ships today.");
    let id = conversation.to_string();
    let mut args = vec![
        "conversations",
        "reply",
        &id,
        "--as",
        ALICE,
        "--body-file",
        body.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&d.cli(&args)).expect("reply prints the message as JSON")
}

#[tokio::test]
async fn composed_mail_sits_in_sent_until_the_customer_replies_then_moves_to_open() {
    let sink = Sink::plain();
    let d = daemon_relaying_to(&sink).await;
    let m = compose(
        &d,
        SUPPORT,
        "Jan@Klant.example",
        "Your quote",
        "Here is the quote.",
    );
    assert_eq!(m["direction"], "out");
    assert_eq!(m["delivery"]["status"], "queued");
    let sent = d.list(&["--view", "sent"]);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let conversation = sent[0]["id"].as_i64().unwrap();
    assert_eq!(sent[0]["contact"]["email"], "jan@klant.example");
    assert!(d.list(&["--view", "all_open"]).is_empty());

    let got = sink.wait_for(1).await;
    let msg = &got[0];
    assert_eq!(msg.meta["mail_from"], SUPPORT);
    assert_eq!(msg.meta["rcpt_tos"], json!(["jan@klant.example"]));
    assert_eq!(
        msg.header("From").unwrap(),
        format!("\"Alice Smith from Demo Support\" <{SUPPORT}>")
    );
    let our_id = m["message_id"].as_str().unwrap().to_string();
    assert!(our_id.ends_with("@mx.test.example"), "{our_id}");
    assert_eq!(msg.header("Message-ID").unwrap(), format!("<{our_id}>"));
    assert!(msg.header("Thread-Index").is_some());
    assert!(msg.header("In-Reply-To").is_none());
    let text = msg.parsed().body_text(0).unwrap().into_owned();
    assert!(
        text.contains("Here is the quote.") && text.contains("Alice Smith (Alice / Smith)"),
        "{text}"
    );
    let row = m["id"].as_i64().unwrap();
    let delivered = wait_delivery(&d, conversation, row, "sent").await;
    assert_eq!(delivered["delivery"]["attempts"], 1);
    assert!(
        delivered["delivery"]["last_reply"]
            .as_str()
            .unwrap()
            .starts_with("250"),
        "{delivered:#}"
    );

    // The customer answers with the headers their client builds from ours.
    let answer = inbound(
        "answer@klant.example",
        "Jan <jan@klant.example>",
        SUPPORT,
        "Re: Your quote",
        &format!("In-Reply-To: <{our_id}>\r\nReferences: <{our_id}>\r\n"),
    );
    let reply = d.send("jan@klant.example", &[SUPPORT], &answer).await;
    assert!(reply.starts_with("250"), "{reply}");
    let shown = d.show(conversation);
    assert_eq!(shown["message_count"], 2, "{shown:#}");
    assert!(d.list(&["--view", "sent"]).is_empty());
    assert_eq!(ids(&d.list(&["--view", "all_open"])), [conversation]);
    assert_eq!(ids(&d.list(&["--view", "unassigned"])), [conversation]);
    d.stop().await;
}

#[tokio::test]
async fn reply_carries_threading_headers_from_name_and_signature() {
    let sink = Sink::plain();
    let d = daemon_relaying_to(&sink).await;
    let refs: String = (1..=12).map(|i| format!("<r{i}@klant.example> ")).collect();
    let m = inbound(
        "q2@klant.example",
        "\"Jan de Vries\" <jan@klant.example>",
        HELPDESK,
        "Re: Order 12 late",
        &format!("In-Reply-To: <r12@klant.example>\r\nReferences: {refs}\r\n"),
    );
    assert!(d
        .send("jan@klant.example", &[HELPDESK], &m)
        .await
        .starts_with("250"));
    let conversation = d.list(&[])[0]["id"].as_i64().unwrap();
    let sent = reply(&d, conversation, &["--cc", "boss@klant.example"]);
    assert_eq!(sent["to"], json!(["jan@klant.example"]));
    assert_eq!(sent["subject"], "Re: Order 12 late");
    let got = sink.wait_for(1).await;
    let msg = &got[0];
    assert_eq!(
        msg.header("From").unwrap(),
        format!("\"Demo Helpdesk\" <{HELPDESK}>")
    );
    assert_eq!(msg.header("Subject").unwrap(), "Re: Order 12 late");
    assert_eq!(msg.header("In-Reply-To").unwrap(), "<q2@klant.example>");
    let references: Vec<String> = msg
        .header("References")
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(references.len(), 10, "{references:?}");
    assert_eq!(references[0], "<r1@klant.example>");
    assert_eq!(references[9], "<q2@klant.example>");
    assert_eq!(msg.header("Cc").unwrap(), "<boss@klant.example>");
    assert_eq!(
        msg.meta["rcpt_tos"],
        json!(["jan@klant.example", "boss@klant.example"])
    );
    // The helpdesk channel has no signature: only the body.
    let text = msg.parsed().body_text(0).unwrap().into_owned();
    assert_eq!(text.trim(), "Thanks, it ships today.");
    d.stop().await;
}

#[tokio::test]
async fn header_injection_through_subject_name_or_address_is_impossible() {
    let sink = Sink::plain();
    let d = daemon_relaying_to(&sink).await;
    let m = compose(
        &d,
        SUPPORT,
        "jan@klant.example",
        "Quote\r\nBcc: spy@evil.example\r\nX-Injected: yes",
        "body",
    );
    assert_eq!(m["subject"], "Quote Bcc: spy@evil.example X-Injected: yes");
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].count("Bcc"), 0, "{}", got[0].raw);
    assert_eq!(got[0].count("X-Injected"), 0, "{}", got[0].raw);
    assert_eq!(got[0].count("Subject"), 1);
    assert_eq!(got[0].meta["rcpt_tos"], json!(["jan@klant.example"]));

    let body = write_file(&d, "b.txt", "x");
    let out = d.cli_output(&[
        "compose",
        "--as",
        ALICE,
        "--from",
        SUPPORT,
        "--to",
        "jan@klant.example\r\nBcc: spy@evil.example",
        "--subject",
        "s",
        "--body-file",
        body.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid email address"));
    assert_eq!(
        d.cli(&["outbound", "list", "--json"])
            .matches("\"id\"")
            .count(),
        1
    );
    d.stop().await;
}

#[tokio::test]
async fn switched_off_channel_or_agent_without_access_queues_nothing() {
    let sink = Sink::plain();
    let d = daemon_relaying_to(&sink).await;
    let body = write_file(&d, "b.txt", "x");
    let try_compose = |agent: &str, from: &str| {
        d.cli_output(&[
            "compose",
            "--as",
            agent,
            "--from",
            from,
            "--to",
            "jan@klant.example",
            "--subject",
            "s",
            "--body-file",
            body.to_str().unwrap(),
        ])
    };
    let off = try_compose("bob@demo.example", "old-sales@demo.hs-inbox.com");
    assert!(!off.status.success());
    assert!(
        String::from_utf8_lossy(&off.stderr).contains("switched off"),
        "{}",
        String::from_utf8_lossy(&off.stderr)
    );
    let stranger = try_compose(ALICE, "sales@demo.hs-inbox.com");
    assert!(!stranger.status.success());
    assert!(String::from_utf8_lossy(&stranger.stderr).contains("no access"));
    let unknown_from = try_compose(ALICE, "someone@else.example");
    assert!(!unknown_from.status.success());
    assert_eq!(d.cli(&["outbound", "list", "--json"]).trim(), "[]");
    assert!(d.list(&[]).is_empty());
    d.outbound_worker_pass().await;
    assert!(sink.messages().is_empty());
    d.stop().await;
}

#[tokio::test]
async fn our_own_copy_coming_back_by_bcc_is_not_a_new_conversation() {
    let sink = Sink::plain();
    let d = daemon_relaying_to(&sink).await;
    let m = compose(&d, SUPPORT, "jan@klant.example", "Copy test", "body");
    let got = sink.wait_for(1).await;
    // The copy our relay would hand back to the team address, byte for byte.
    let reply = d.send(SUPPORT, &[SUPPORT], got[0].raw.as_bytes()).await;
    assert!(reply.starts_with("250"), "{reply}");
    let all = d.list(&[]);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["message_count"], 1);
    assert_eq!(
        d.show(all[0]["id"].as_i64().unwrap())["messages"][0]["id"],
        m["id"]
    );
    d.stop().await;
}

#[tokio::test]
async fn a_4xx_is_retried_with_backoff_until_it_succeeds() {
    let sink = Sink::plain();
    sink.rules(json!({"data": ["451 4.3.0 Try again later"]}));
    let d = daemon_relaying_to(&sink).await;
    let m = compose(&d, SUPPORT, "jan@klant.example", "Retry", "body");
    let conversation = conversation_with(&d, m["message_id"].as_str().unwrap())["id"]
        .as_i64()
        .unwrap();
    let row = m["id"].as_i64().unwrap();
    let deferred = wait_delivery(&d, conversation, row, "deferred").await;
    assert_eq!(deferred["delivery"]["attempts"], 1);
    assert_eq!(
        deferred["delivery"]["last_reply"],
        "451 4.3.0 Try again later"
    );
    let next = deferred["recipients"][0]["next_attempt_at"]
        .as_str()
        .unwrap();
    let expected = time::OffsetDateTime::from_unix_timestamp(d.now() + 300)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(next, expected);
    // Not before the backoff has passed: a whole pass of the worker leaves it deferred…
    d.outbound_worker_pass().await;
    let waiting = message_now(&d, conversation, row);
    assert_eq!(waiting["delivery"]["status"], "deferred", "{waiting:#}");
    assert_eq!(waiting["delivery"]["attempts"], 1);
    assert_eq!(sink.messages().len(), 1);
    // …then once it has.
    d.clock.advance(300);
    let sent = wait_delivery(&d, conversation, row, "sent").await;
    assert_eq!(sent["delivery"]["attempts"], 2);
    assert_eq!(sink.messages().len(), 2);
    d.stop().await;
}

#[tokio::test]
async fn a_5xx_fails_at_once_and_is_visible_on_the_message() {
    let sink = Sink::plain();
    sink.rules(json!({"rcpt": {"gone@klant.example": "550 5.1.1 No such user"}}));
    let d = daemon_relaying_to(&sink).await;
    let body = write_file(&d, "b.txt", "x");
    let out = d.cli(&[
        "compose",
        "--as",
        ALICE,
        "--from",
        SUPPORT,
        "--to",
        "gone@klant.example",
        "--to",
        "jan@klant.example",
        "--subject",
        "Two",
        "--body-file",
        body.to_str().unwrap(),
        "--json",
    ]);
    let m: Value = serde_json::from_str(&out).unwrap();
    let conversation = conversation_with(&d, m["message_id"].as_str().unwrap())["id"]
        .as_i64()
        .unwrap();
    let failed = wait_delivery(&d, conversation, m["id"].as_i64().unwrap(), "failed").await;
    assert_eq!(failed["delivery"]["attempts"], 1);
    let recipients = failed["recipients"].as_array().unwrap();
    assert_eq!(recipients[0]["address"], "gone@klant.example");
    assert_eq!(recipients[0]["status"], "failed");
    assert_eq!(recipients[0]["last_reply"], "550 5.1.1 No such user");
    assert_eq!(recipients[1]["status"], "sent");
    assert_eq!(
        sink.messages()[0].meta["rcpt_tos"],
        json!(["jan@klant.example"])
    );
    // `outbound retry` sends it again (the sink now accepts the address).
    sink.rules(json!({}));
    let id = m["id"].as_i64().unwrap().to_string();
    assert!(d.cli(&["outbound", "retry", &id]).contains("1 delivery"));
    wait_delivery(&d, conversation, m["id"].as_i64().unwrap(), "sent").await;
    assert_eq!(
        sink.wait_for(2).await[1].meta["rcpt_tos"],
        json!(["gone@klant.example"])
    );
    d.stop().await;
}

#[tokio::test]
async fn undeliverable_mail_expires_after_its_lifetime() {
    let sink = Sink::plain();
    sink.rules(json!({"data": ["421 4.3.2 down", "421 4.3.2 down", "421 4.3.2 down"]}));
    let relay = sink.relay_config() + "lifetime = 900\n";
    let d = Daemon::start_edited(move |text, _| text + &relay).await;
    let m = compose(&d, SUPPORT, "jan@klant.example", "Expiry", "body");
    let conversation = conversation_with(&d, m["message_id"].as_str().unwrap())["id"]
        .as_i64()
        .unwrap();
    let row = m["id"].as_i64().unwrap();
    wait_delivery(&d, conversation, row, "deferred").await;
    d.clock.advance(300);
    let second = wait_attempt(&d, conversation, row, "deferred", 2..=2).await;
    // Attempt 2 waits 600 s, which would pass the 900 s lifetime: attempt 3 is the last.
    assert_eq!(second["delivery"]["attempts"], 2);
    d.clock.advance(600);
    let failed = wait_delivery(&d, conversation, row, "failed").await;
    assert_eq!(failed["delivery"]["attempts"], 3);
    let reply = failed["delivery"]["last_reply"].as_str().unwrap();
    assert!(
        reply.starts_with("expired after 3 attempts: 421"),
        "{reply}"
    );
    d.stop().await;
}

#[tokio::test]
async fn relay_with_starttls_and_auth() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let sink = Sink::start(json!({
        "cert": cert, "key": key, "auth": ["relayuser", "s3cret pass"]
    }));
    let port = sink.port;
    let d = Daemon::start_edited(move |text, tmp| {
        let pw = tmp.join("relay.pw");
        std::fs::write(&pw, "s3cret pass\n").unwrap();
        format!(
            "{text}\n[outbound]\ntls_ca_file = \"{}\"\nrelay = {{ host = \"localhost\", port = {port}, tls = \"starttls\", username = \"relayuser\", password_file = \"{}\" }}\n",
            ca.display(),
            pw.display()
        )
    })
    .await;
    let m = compose(&d, SUPPORT, "jan@klant.example", "Over TLS", "body");
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].meta["tls"], true);
    assert_eq!(got[0].meta["login"], "relayuser");
    let conversation = conversation_with(&d, m["message_id"].as_str().unwrap())["id"]
        .as_i64()
        .unwrap();
    wait_delivery(&d, conversation, m["id"].as_i64().unwrap(), "sent").await;
    let out = d.cli(&["outbound", "list", "--json"]);
    assert!(!out.contains("s3cret"), "the relay password never shows");
    d.stop().await;
}

#[tokio::test]
async fn relay_with_an_untrusted_certificate_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let (_ca, cert, key) = certificates(dir.path());
    let sink = Sink::start(json!({"cert": cert, "key": key}));
    let port = sink.port;
    let d = Daemon::start_edited(move |text, _| {
        format!("{text}\n[outbound]\nrelay = {{ host = \"localhost\", port = {port}, tls = \"starttls\" }}\n")
    })
    .await;
    let m = compose(&d, SUPPORT, "jan@klant.example", "Untrusted", "body");
    let conversation = conversation_with(&d, m["message_id"].as_str().unwrap())["id"]
        .as_i64()
        .unwrap();
    let deferred = wait_delivery(&d, conversation, m["id"].as_i64().unwrap(), "deferred").await;
    let reply = deferred["delivery"]["last_reply"].as_str().unwrap();
    assert!(
        reply.contains("TLS") || reply.contains("certificate"),
        "{reply}"
    );
    assert!(sink.messages().is_empty());
    d.stop().await;
}

/// A CA and a `localhost` certificate it signed: (ca.pem, cert.pem, key.pem).
fn certificates(dir: &Path) -> (PathBuf, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "inboxgate test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let ca_path = dir.join("ca.pem");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(&cert_path, leaf.pem()).unwrap();
    std::fs::write(&key_path, leaf_key.serialize_pem()).unwrap();
    (
        ca_path,
        cert_path.display().to_string(),
        key_path.display().to_string(),
    )
}

#[tokio::test]
async fn a_crash_while_sending_means_at_most_one_duplicate() {
    let sink = Sink::plain();
    // The sink records the message, then keeps the client waiting for its 250.
    sink.rules(json!({"data_delay": 30}));
    let d = daemon_relaying_to(&sink).await;
    let m = compose(&d, SUPPORT, "jan@klant.example", "Crash", "body");
    sink.wait_for(1).await;
    // Stop while the transaction is open: the delivery is still `sending`.
    sink.rules(json!({}));
    let d = d.restart().await;
    let conversation = conversation_with(&d, m["message_id"].as_str().unwrap())["id"]
        .as_i64()
        .unwrap();
    let row = m["id"].as_i64().unwrap();
    wait_delivery(&d, conversation, row, "sent").await;
    // A whole pass of the worker later it is still sent once more, not claimed again.
    d.outbound_worker_pass().await;
    let again = message_now(&d, conversation, row);
    assert_eq!(again["delivery"]["status"], "sent", "{again:#}");
    let got = sink.messages();
    assert_eq!(got.len(), 2, "the first copy and exactly one re-send");
    assert_eq!(got[0].header("Message-ID"), got[1].header("Message-ID"));
    d.stop().await;
}

/// Two MX sinks on 127.0.0.2 and 127.0.0.3, same port, and a daemon delivering direct
/// to MX with dnsmasq as its resolver.
async fn mx_setup(records: &[&str]) -> (Sink, Sink, Dns, Daemon) {
    let first = Sink::start(json!({"host": "127.0.0.2"}));
    let second = Sink::start(json!({"host": "127.0.0.3", "port": first.port}));
    let mut all: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    all.extend([
        "--host-record=mx1.mail.test,127.0.0.2".to_string(),
        "--host-record=mx2.mail.test,127.0.0.3".to_string(),
        "--host-record=dead.mail.test,127.0.0.4".to_string(),
    ]);
    let dns = Dns::start(&all);
    let (dns_port, mx_port) = (dns.port, first.port);
    let d = Daemon::start_edited(move |text, _| {
        format!(
            "{text}\n[outbound]\nnameservers = [\"127.0.0.1:{dns_port}\"]\nmx_port = {mx_port}\n"
        )
    })
    .await;
    (first, second, dns, d)
}

async fn compose_and_wait(d: &Daemon, to: &str, status: &str) -> Value {
    let m = compose(d, SUPPORT, to, "MX", "body");
    let conversation = conversation_with(d, m["message_id"].as_str().unwrap())["id"]
        .as_i64()
        .unwrap();
    wait_delivery(d, conversation, m["id"].as_i64().unwrap(), status).await
}

#[tokio::test]
async fn mx_delivery_follows_preference() {
    let (first, second, _dns, d) = mx_setup(&[
        "--mx-host=pref.test,mx2.mail.test,20",
        "--mx-host=pref.test,mx1.mail.test,10",
    ])
    .await;
    compose_and_wait(&d, "jan@pref.test", "sent").await;
    assert_eq!(first.messages().len(), 1);
    assert!(second.messages().is_empty());
    d.stop().await;
}

#[tokio::test]
async fn mx_falls_back_on_connection_failure_and_on_4xx() {
    let (first, second, _dns, d) = mx_setup(&[
        "--mx-host=down.test,dead.mail.test,10",
        "--mx-host=down.test,mx2.mail.test,20",
        "--mx-host=grey.test,mx1.mail.test,10",
        "--mx-host=grey.test,mx2.mail.test,20",
    ])
    .await;
    first.rules(json!({"rcpt": {"jan@grey.test": "451 4.7.1 Greylisted"}}));
    compose_and_wait(&d, "jan@down.test", "sent").await;
    compose_and_wait(&d, "jan@grey.test", "sent").await;
    assert!(first.messages().is_empty());
    let got: Vec<Value> = second
        .messages()
        .iter()
        .map(|m| m.meta["rcpt_tos"].clone())
        .collect();
    assert_eq!(got, [json!(["jan@down.test"]), json!(["jan@grey.test"])]);
    d.stop().await;
}

#[tokio::test]
async fn implicit_mx_null_mx_and_missing_domain() {
    let (first, second, _dns, d) = mx_setup(&[
        "--host-record=implicit.test,127.0.0.2",
        "--mx-host=nullmx.test,.,0",
        // MX records exist, so the domain's own A record (the second sink) is never used.
        "--mx-host=withmx.test,dead.mail.test,10",
        "--host-record=withmx.test,127.0.0.3",
    ])
    .await;
    compose_and_wait(&d, "jan@implicit.test", "sent").await;
    assert_eq!(first.messages().len(), 1);
    let null = compose_and_wait(&d, "jan@nullmx.test", "failed").await;
    assert!(
        null["delivery"]["last_reply"]
            .as_str()
            .unwrap()
            .contains("null MX"),
        "{null:#}"
    );
    let missing = compose_and_wait(&d, "jan@nosuch.test", "failed").await;
    assert!(
        missing["delivery"]["last_reply"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{missing:#}"
    );
    compose_and_wait(&d, "jan@withmx.test", "deferred").await;
    assert!(second.messages().is_empty());
    d.stop().await;
}

#[tokio::test]
async fn dkim_signature_verifies_with_an_independent_verifier() {
    require("openssl", "apt-get install openssl");
    require_python_module("dkim", "apt-get install python3-dkim");
    let sink = Sink::plain();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("dkim.pem");
    let public_key = |path: &Path| {
        let made = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(made.success());
        let public = Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(path)
            .output()
            .expect("openssl pkey");
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&public.stdout)
    };
    let p = public_key(&key);
    let other = public_key(&keys.path().join("other.pem"));
    let relay = sink.relay_config();
    let key_path = key.display().to_string();
    let d = Daemon::start_edited(move |text, _| {
        format!(
            "{}{relay}dkim = {{ domain = \"demo.hs-inbox.com\", selector = \"ig1\", key_file = \"{key_path}\" }}\n",
            with_signature(text)
        )
    })
    .await;
    compose(
        &d,
        SUPPORT,
        "jan@klant.example",
        "Signed — ünïcode",
        "Body\n\nwith  spaces \n",
    );
    let got = sink.wait_for(1).await;
    assert!(got[0].raw.starts_with(
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=demo.hs-inbox.com; s=ig1;"
    ));
    let eml = keys.path().join("signed.eml");
    std::fs::write(&eml, &got[0].raw).unwrap();
    let verify = |record: &str| {
        let script = format!(
            "import dkim,sys\nrec=b'{record}'\n\
             def dns(name, timeout=5):\n    return rec if name == b'ig1._domainkey.demo.hs-inbox.com.' else None\n\
             print(dkim.verify(open(sys.argv[1],'rb').read(), dnsfunc=dns))"
        );
        let out = Command::new("/usr/bin/python3")
            .args(["-c", &script])
            .arg(&eml)
            .output()
            .expect("python3-dkim");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(verify(&format!("v=DKIM1; k=rsa; p={p}")), "True");
    // The same check fails with another key: the test can tell a bad signature.
    assert_eq!(verify(&format!("v=DKIM1; k=rsa; p={other}")), "False");
    d.stop().await;
}

#[tokio::test]
async fn custom_from_address_needs_the_mailed_code_and_forward_sends_the_thread() {
    let sink = Sink::plain();
    let d = daemon_relaying_to(&sink).await;
    let m = inbound(
        "f1@klant.example",
        "jan@klant.example",
        SUPPORT,
        "Broken part",
        "",
    );
    assert!(d
        .send("jan@klant.example", &[SUPPORT], &m)
        .await
        .starts_with("250"));
    let conversation = d.list(&[])[0]["id"].as_i64().unwrap();
    let id = conversation.to_string();
    let body = write_file(&d, "r.txt", "From our own domain");
    let reply_from = |from: &str| {
        d.cli_output(&[
            "conversations",
            "reply",
            &id,
            "--as",
            ALICE,
            "--body-file",
            body.to_str().unwrap(),
            "--from",
            from,
        ])
    };
    let refused = reply_from("team@acme.example");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("verified From"));

    d.cli(&["channels", "verify-from", SUPPORT, "team@acme.example"]);
    let mail = &sink.wait_for(1).await[0];
    assert_eq!(mail.meta["rcpt_tos"], json!(["team@acme.example"]));
    let text = mail.parsed().body_text(0).unwrap().into_owned();
    let code = text
        .split_whitespace()
        .skip_while(|w| *w != "confirm-from")
        .nth(2)
        .expect("the code is in the mail")
        .to_string();
    let wrong = d.cli_output(&["channels", "confirm-from", SUPPORT, "00000000"]);
    assert!(!wrong.status.success());
    assert!(d
        .cli(&["channels", "confirm-from", SUPPORT, &code])
        .contains("team@acme.example confirmed"));
    assert!(reply_from("team@acme.example").status.success());
    let sent = &sink.wait_for(2).await[1];
    assert_eq!(
        sent.header("From").unwrap(),
        "\"Alice Smith from Demo Support\" <team@acme.example>"
    );

    let note = write_file(&d, "note.txt", "Can you look at this?");
    d.cli(&[
        "conversations",
        "forward",
        &id,
        "--to",
        "engineer@partner.example",
        "--as",
        ALICE,
        "--note-file",
        note.to_str().unwrap(),
    ]);
    let forwarded = &sink.wait_for(3).await[2];
    assert_eq!(
        forwarded.meta["rcpt_tos"],
        json!(["engineer@partner.example"])
    );
    assert_eq!(forwarded.header("Subject").unwrap(), "Fwd: Broken part");
    let text = forwarded.parsed().body_text(0).unwrap().into_owned();
    assert!(text.starts_with("Can you look at this?"), "{text}");
    assert!(
        text.contains("Forwarded message") && text.contains("Hello there"),
        "{text}"
    );
    assert_eq!(d.show(conversation)["message_count"], 3);
    d.stop().await;
}

/// A delivery status notification in the shape Postfix writes one: null sender,
/// `multipart/report`, a `message/delivery-status` part with one failed recipient, and
/// the returned message's headers.
fn postfix_dsn(returned_id: &str, failed: &str, diagnostic: &str) -> Vec<u8> {
    format!(
        "Return-Path: <>\r\n\
Received: by mx.klant.example (Postfix) id 4Q1; Sat, 21 Nov 2026 10:05:00 +0000\r\n\
Date: Sat, 21 Nov 2026 10:05:00 +0000\r\n\
From: MAILER-DAEMON@mx.klant.example (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
To: {SUPPORT}\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\
\tboundary=\"4Q1.1763719500/mx.klant.example\"\r\n\
Content-Transfer-Encoding: 8bit\r\n\
Message-Id: <dsn.{returned_id}>\r\n\
\r\n\
This is a MIME-encapsulated message.\r\n\
\r\n\
--4Q1.1763719500/mx.klant.example\r\n\
Content-Description: Notification\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
This is the mail system at host mx.klant.example.\r\n\
\r\n\
I'm sorry to have to inform you that your message could not\r\n\
be delivered to one or more recipients. It's attached below.\r\n\
\r\n\
<{failed}>: {diagnostic}\r\n\
\r\n\
--4Q1.1763719500/mx.klant.example\r\n\
Content-Description: Delivery report\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.klant.example\r\n\
X-Postfix-Queue-ID: 4Q1\r\n\
X-Postfix-Sender: rfc822; {SUPPORT}\r\n\
Arrival-Date: Sat, 21 Nov 2026 10:04:58 +0000\r\n\
\r\n\
Final-Recipient: rfc822; {failed}\r\n\
Original-Recipient: rfc822;{failed}\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Diagnostic-Code: x-unix; {diagnostic}\r\n\
\r\n\
--4Q1.1763719500/mx.klant.example\r\n\
Content-Description: Undelivered Message Headers\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
Return-Path: <{SUPPORT}>\r\n\
From: Support <{SUPPORT}>\r\n\
To: {failed}\r\n\
Subject: Re: Where is my order?\r\n\
Message-ID: <{returned_id}>\r\n\
\r\n\
--4Q1.1763719500/mx.klant.example--\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn our_own_reply_coming_back_in_is_never_a_new_conversation() {
    let sink = Sink::plain();
    let d = daemon_relaying_to(&sink).await;
    let first = inbound(
        "loop-q@klant.example",
        "Jan <jan@klant.example>",
        SUPPORT,
        "Loop?",
        "",
    );
    assert!(d
        .send("jan@klant.example", &[SUPPORT], &first)
        .await
        .starts_with("250"));
    let conversation = conversation_with(&d, "loop-q@klant.example")["id"]
        .as_i64()
        .unwrap();
    reply(&d, conversation, &[]);
    let sent = sink.wait_for(1).await;
    let before = d.list(&[]).len();
    // The reply arrives at our own inboxes: CC'd to Sales, and looped back to Support.
    for inbox in ["sales@demo.hs-inbox.com", SUPPORT] {
        let answer = d.send("", &[inbox], sent[0].raw.as_bytes()).await;
        assert!(answer.starts_with("250"), "{answer}");
    }
    assert_eq!(d.list(&[]).len(), before, "no new conversation");
    let shown = d.show(conversation);
    let inbound_count = shown["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "in")
        .count();
    assert_eq!(inbound_count, 1, "the reply is not filed again as inbound");
    d.stop().await;
}

/// Jan writes in (Message-ID `message_id`); an agent's reply to him, cc boss, goes out.
/// Returns the conversation, the reply's row and its Message-ID.
async fn replied_to_jan_and_boss(d: &Daemon, message_id: &str) -> (i64, i64, String) {
    let first = inbound(
        message_id,
        "Jan <jan@klant.example>",
        SUPPORT,
        "Where is my order?",
        "",
    );
    assert!(d
        .send("jan@klant.example", &[SUPPORT], &first)
        .await
        .starts_with("250"));
    let conversation = conversation_with(d, message_id)["id"].as_i64().unwrap();
    let sent = reply(d, conversation, &["--cc", "boss@klant.example"]);
    let row = sent["id"].as_i64().unwrap();
    wait_delivery(d, conversation, row, "sent").await;
    let our_id = sent["message_id"].as_str().unwrap().to_string();
    (conversation, row, our_id)
}

#[tokio::test]
async fn a_bounce_for_our_message_fails_that_recipient_and_is_kept() {
    let sink = Sink::plain();
    let d = daemon_relaying_to(&sink).await;
    let (conversation, row, our_id) = replied_to_jan_and_boss(&d, "order-q@klant.example").await;
    let our_id = our_id.as_str();

    // A DSN for an id that is not ours changes nothing (and is still stored).
    let stray = postfix_dsn("elsewhere@other.example", "jan@klant.example", "gone");
    assert!(d.send("", &[SUPPORT], &stray).await.starts_with("250"));
    let m = wait_delivery(&d, conversation, row, "sent").await;
    assert!(m["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] == "sent"));

    let diagnostic = "procmail: Couldn't create \"/var/mail/jan\": No such user";
    let dsn = postfix_dsn(our_id, "jan@klant.example", diagnostic);
    assert!(d.send("", &[SUPPORT], &dsn).await.starts_with("250"));
    let failed = wait_delivery(&d, conversation, row, "failed").await;
    let recipients = failed["recipients"].as_array().unwrap();
    let jan = recipients
        .iter()
        .find(|r| r["address"] == "jan@klant.example")
        .expect("jan is a recipient");
    assert_eq!(jan["status"], "failed");
    assert_eq!(
        jan["last_reply"],
        format!("5.1.1 x-unix; {diagnostic}"),
        "{failed:#}"
    );
    let boss = recipients
        .iter()
        .find(|r| r["address"] == "boss@klant.example")
        .expect("boss is a recipient");
    assert_eq!(boss["status"], "sent", "only the bounced recipient failed");
    // Both bounces are kept (threading treats MAILER-DAEMON as a stranger, so each
    // opens a conversation of its own).
    let shown = conversation_with(&d, &format!("dsn.{our_id}"));
    assert_eq!(
        shown["messages"][0]["from"],
        "mailer-daemon@mx.klant.example"
    );
    // It is flagged a bounce and linked to the message it returned (C5); the stray one
    // is flagged but linked to nothing.
    assert_eq!(shown["messages"][0]["classification"]["verdict"], "bounce");
    assert_eq!(shown["messages"][0]["bounce_of"], row, "{shown:#}");
    // The web inbox links the bounce to the message it returned, in its conversation.
    let web = crate::web::Web::signed_in(&d, "alice@demo.example").await;
    let page = web.get(&format!("/conversations/{}", shown["id"])).await;
    let link = format!("/messages/{row}");
    assert!(page.body.contains(&link), "{}", page.body);
    let followed = web.get(&link).await;
    assert_eq!(followed.status, 303);
    assert_eq!(
        followed.location(),
        format!("/conversations/{conversation}#m{row}")
    );
    let stray = conversation_with(&d, "dsn.elsewhere@other.example");
    assert_eq!(stray["messages"][0]["classification"]["verdict"], "bounce");
    assert_eq!(stray["messages"][0]["bounce_of"], Value::Null);
    d.stop().await;
}

/// A reload that changes `[outbound]` (here the relay) applies to the next delivery:
/// the worker used to keep the relay it started with until a restart.
#[tokio::test]
async fn a_relay_changed_by_reload_gets_the_next_mail() {
    let old_relay = Sink::plain();
    let new_relay = Sink::plain();
    let d = daemon_relaying_to(&old_relay).await;
    let text = d.config_text();
    let old_table = old_relay.relay_config();
    assert!(text.contains(old_table.trim()), "{text}");
    d.reload(&text.replace(old_table.trim(), new_relay.relay_config().trim()));

    compose(&d, SUPPORT, "jan@klant.example", "After the reload", "x");
    let got = new_relay.wait_for(1).await;
    assert_eq!(got[0].header("Subject").unwrap(), "After the reload");
    assert!(
        old_relay.messages().is_empty(),
        "nothing went to the old relay"
    );
}

/// Issue 12, finding 5: a plain-text bounce (qmail: no report part, only the notice and
/// a copy of the message) of our reply fails the recipient it names, leaves the other
/// one sent, is linked to the reply it returns, and is neither assigned nor ticketed.
#[tokio::test]
async fn qmail_plain_text_bounce_fails_the_recipient_it_names() {
    let sink = Sink::plain();
    let d = daemon_relaying_to(&sink).await;
    let (conversation, row, our_id) = replied_to_jan_and_boss(&d, "plain-q@klant.example").await;
    let our_id = our_id.as_str();

    let template = String::from_utf8(fixture("autoflags/bounce-qmail.eml")).unwrap();
    let bounce = template.replace("out-qmail-1@demo.hs-inbox.com", our_id);
    assert!(d
        .send("", &[SUPPORT], bounce.as_bytes())
        .await
        .starts_with("250"));
    let failed = wait_delivery(&d, conversation, row, "failed").await;
    let recipients = failed["recipients"].as_array().unwrap();
    let status = |address: &str| {
        recipients
            .iter()
            .find(|r| r["address"] == address)
            .unwrap_or_else(|| panic!("{address} is a recipient: {failed:#}"))
            .clone()
    };
    assert_eq!(status("jan@klant.example")["status"], "failed");
    assert_eq!(
        status("jan@klant.example")["last_reply"],
        "Sorry, no mailbox here by that name. (#5.1.1)"
    );
    assert_eq!(status("boss@klant.example")["status"], "sent");
    let shown = conversation_with(&d, "20261123081402.4711.qmail@mx2.klant.example");
    let message = &shown["messages"][0];
    assert_eq!(message["classification"]["verdict"], "bounce", "{shown:#}");
    assert_eq!(message["bounce_of"], row, "{shown:#}");
    assert_eq!(shown["assignee"], Value::Null);
    assert_eq!(shown["ticket"], Value::Null);
    d.stop().await;
}
