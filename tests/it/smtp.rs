//! The SMTP server end to end: real TCP against the whole daemon and its real store.
//! Every test checks both what a client sees (exact reply codes) and what got stored
//! (through the CLI). The state machine's internals are unit-tested in `src/smtp`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::*;

const SUPPORT: &str = "support@demo.hs-inbox.com";
const SALES: &str = "sales@demo.hs-inbox.com";
const HELPDESK: &str = "helpdesk@demo.hs-inbox.com";
const HOST: &str = "mx.test.example";

/// Fails unless `reply` starts with `expected` (code, enhanced code, maybe text).
#[track_caller]
fn assert_reply(reply: &str, expected: &str) {
    assert!(
        reply.starts_with(expected),
        "expected a reply starting {expected:?}, got {reply:?}"
    );
}

/// A small plain-text message with its own Message-ID.
fn message(id: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{id}>\r\nFrom: jan@klant.example\r\nTo: {SUPPORT}\r\n\
         Subject: {subject}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// What a client writes after the 354: the message on the wire and the final dot.
fn data_and_dot(message: &[u8]) -> Vec<u8> {
    let mut out = wire_format(message);
    out.extend_from_slice(b".\r\n");
    out
}

/// EHLO, then MAIL FROM from jan@klant.example, all expected to succeed.
async fn start_transaction(client: &mut SmtpClient) {
    assert_reply(
        &client.cmd("EHLO client.test").await,
        &format!("250-{HOST}"),
    );
    assert_reply(
        &client.cmd("MAIL FROM:<jan@klant.example>").await,
        "250 2.1.0",
    );
}

/// DATA, the message and the dot; returns the reply to the dot.
async fn send_data(client: &mut SmtpClient, message: &[u8]) -> String {
    assert_reply(&client.cmd("DATA").await, "354 ");
    client.write(&data_and_dot(message)).await;
    client.reply().await
}

fn subjects(list: &[Value]) -> Vec<&str> {
    let mut subjects: Vec<&str> = list.iter().filter_map(|c| c["subject"].as_str()).collect();
    subjects.sort();
    subjects
}

fn message_text(d: &Daemon, conversation: i64) -> String {
    let shown = d.show(conversation);
    shown["messages"][0]["text"]
        .as_str()
        .expect("message text")
        .to_string()
}

// ---------------------------------------------------------------------------------
// 1. Recipients

/// `RCPT TO:<address>` as raw bytes, and the reply it must get.
const RECIPIENTS: &[(&[u8], &str)] = &[
    (b"support@demo.hs-inbox.com", "250 2.1.5"),
    (b"Support+tag@DEMO.hs-inbox.com", "250 2.1.5"),
    (b"postmaster@demo.hs-inbox.com", "250 2.1.5"),
    (b"nobody@demo.hs-inbox.com", "550 5.1.1"),
    (b"support@foreign.example", "550 5.7.1"),
    (b"@demo.hs-inbox.com:x@foreign.example", "550 5.7.1"),
    (b"x%foreign.example@demo.hs-inbox.com", "550 5.7.1"),
    (b"foreign.example!x@demo.hs-inbox.com", "550 5.7.1"),
    (b"\"x@foreign.example\"@demo.hs-inbox.com", "550 5.7.1"),
    (b"x@foreign.example@demo.hs-inbox.com", "550 5.7.1"),
    (b"x@[127.0.0.1]", "550 5.7.1"),
    (b"old-sales@demo.hs-inbox.com", "550 5.2.1"),
    (b"sup\xffport@demo.hs-inbox.com", "501 5.1.3"),
];

async fn rcpt(client: &mut SmtpClient, address: &[u8]) -> String {
    let mut line = b"RCPT TO:<".to_vec();
    line.extend_from_slice(address);
    line.extend_from_slice(b">\r\n");
    client.write(&line).await;
    client.reply().await
}

#[tokio::test]
async fn recipients_are_accepted_or_refused_and_only_accepted_ones_store() {
    let d = Daemon::start().await;
    let mut client = d.client().await;
    let (accepted, refused): (Vec<_>, Vec<_>) = RECIPIENTS
        .iter()
        .partition(|(_, expected)| expected.starts_with("250"));

    // A transaction whose recipients were all refused cannot send data.
    start_transaction(&mut client).await;
    for (address, expected) in &refused {
        let reply = rcpt(&mut client, address).await;
        assert!(
            reply.starts_with(expected),
            "RCPT TO:<{}>: expected {expected:?}, got {reply:?}",
            String::from_utf8_lossy(address)
        );
    }
    assert_reply(&client.cmd("DATA").await, "554 5.5.1");
    assert_reply(&client.cmd("RSET").await, "250 2.0.0");
    assert!(d.list(&[]).is_empty(), "refused recipients stored mail");

    // The accepted forms all reach the Support inbox: one conversation, one message.
    assert_reply(
        &client.cmd("MAIL FROM:<jan@klant.example>").await,
        "250 2.1.0",
    );
    for (address, expected) in &accepted {
        let reply = rcpt(&mut client, address).await;
        assert!(
            reply.starts_with(expected),
            "RCPT TO:<{}>: expected {expected:?}, got {reply:?}",
            String::from_utf8_lossy(address)
        );
    }
    let m = message("rcpt@klant.example", "Recipient rules", "hi");
    assert_reply(&send_data(&mut client, &m).await, "250 2.0.0");
    client.quit().await;
    let list = d.list(&[]);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["inbox"], "Support");
    assert_eq!(list[0]["channel"], SUPPORT);
    assert_eq!(list[0]["subject"], "Recipient rules");
    assert_eq!(list[0]["message_count"], 1);
    d.stop().await;
}

// ---------------------------------------------------------------------------------
// 2. Limits from the configuration

#[tokio::test]
async fn an_oversize_message_is_refused_after_the_dot_and_the_session_goes_on() {
    let d = Daemon::start_with("max_message_size = 10240\n").await;
    let mut client = d.client().await;
    let ehlo = client.cmd("EHLO client.test").await;
    assert!(ehlo.contains("250-SIZE 10240\r\n"), "{ehlo}");

    // Declared too big: refused at MAIL; exactly the limit is fine.
    let reply = client.cmd("MAIL FROM:<jan@klant.example> SIZE=10241").await;
    assert_reply(&reply, "552 5.3.4");
    let reply = client.cmd("MAIL FROM:<jan@klant.example> SIZE=10240").await;
    assert_reply(&reply, "250 2.1.0");
    assert_reply(
        &client.cmd(&format!("RCPT TO:<{SUPPORT}>")).await,
        "250 2.1.5",
    );
    let big = message("big@klant.example", "Too big", &"0123456789\n".repeat(2000));
    assert_reply(&send_data(&mut client, &big).await, "552 5.3.4");

    // Same session, a small message: accepted and stored; the big one is not.
    assert_reply(
        &client.cmd("MAIL FROM:<jan@klant.example>").await,
        "250 2.1.0",
    );
    assert_reply(
        &client.cmd(&format!("RCPT TO:<{SUPPORT}>")).await,
        "250 2.1.5",
    );
    let small = message("small@klant.example", "Small enough", "hi");
    assert_reply(&send_data(&mut client, &small).await, "250 2.0.0");
    client.quit().await;
    let list = d.list(&[]);
    assert_eq!(subjects(&list), ["Small enough"], "{list:?}");
    d.stop().await;
}

const BAD_ADDRESS: &str = r#"inboxgate_smtp_refusals_total{reason="bad_address",code="501 5.1.3"}"#;

#[tokio::test]
async fn an_over_long_path_is_refused_501_5_1_3_and_the_session_goes_on() {
    let d = Daemon::start().await;
    let before = d.metric(BAD_ADDRESS).await;
    let mut client = d.client().await;
    assert_reply(&client.cmd("EHLO client.test").await, "250");
    let from = format!("MAIL FROM:<{}@client.test>", "a".repeat(1100));
    assert_reply(&client.cmd(&from).await, "501 5.1.3");
    assert_reply(
        &client.cmd("MAIL FROM:<jan@klant.example>").await,
        "250 2.1.0",
    );
    let rcpt = format!("RCPT TO:<support+{}@demo.hs-inbox.com>", "t".repeat(60));
    assert_reply(&client.cmd(&rcpt).await, "501 5.1.3");
    assert_reply(
        &client.cmd(&format!("RCPT TO:<{SUPPORT}>")).await,
        "250 2.1.5",
    );
    let reply = send_data(
        &mut client,
        &message("long-path@klant.example", "after a long path", "still here"),
    )
    .await;
    assert_reply(&reply, "250 2.0.0");
    client.quit().await;
    assert_eq!(d.metric(BAD_ADDRESS).await - before, 2.0);
    let list = d.list(&[]);
    assert_eq!(subjects(&list), ["after a long path"]);
    d.stop().await;
}

#[tokio::test]
async fn recipient_and_line_limits_come_from_the_config() {
    let d = Daemon::start_with("max_recipients = 3\nmax_line_length = 512\n").await;
    let mut client = d.client().await;
    start_transaction(&mut client).await;
    for to in [SUPPORT, HELPDESK, SALES] {
        assert_reply(&client.cmd(&format!("RCPT TO:<{to}>")).await, "250 2.1.5");
    }
    let reply = client.cmd("RCPT TO:<support+more@demo.hs-inbox.com>").await;
    assert_reply(&reply, "452 4.5.3");

    // The limit counts the CRLF: 510 characters fit in 512, 511 do not.
    let fits = format!("NOOP {}", "x".repeat(505));
    assert_reply(&client.cmd(&fits).await, "250 2.0.0");
    let too_long = format!("NOOP {}", "x".repeat(506));
    assert_reply(&client.cmd(&too_long).await, "500 5.5.2");
    let much_too_long = format!("NOOP {}", "x".repeat(20_000));
    assert_reply(&client.cmd(&much_too_long).await, "500 5.5.2");

    // The transaction survived both: its three recipients get the message.
    let m = message("limits@klant.example", "Three recipients", "hi");
    assert_reply(&send_data(&mut client, &m).await, "250 2.0.0");
    client.quit().await;
    let list = d.list(&[]);
    assert_eq!(list.len(), 2, "one per inbox: {list:?}");
    let mut inboxes: Vec<&str> = list.iter().map(|c| c["inbox"].as_str().unwrap()).collect();
    inboxes.sort();
    assert_eq!(inboxes, ["Sales", "Support"]);
    d.stop().await;
}

#[tokio::test]
async fn an_idle_client_is_timed_out_and_disconnected() {
    let d = Daemon::start_with("idle_timeout = 1\n").await;
    let mut client = d.client().await;
    assert_reply(
        &client.cmd("EHLO client.test").await,
        &format!("250-{HOST}"),
    );
    let started = Instant::now();
    let reply = tokio::time::timeout(Duration::from_secs(10), client.reply())
        .await
        .expect("the server times the client out");
    assert_eq!(
        reply,
        format!("421 4.4.2 {HOST} Error: timeout exceeded\r\n")
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "timed out after {:?}",
        started.elapsed()
    );
    assert_eq!(client.reply().await, "", "the connection is closed");
    d.stop().await;
}

#[tokio::test]
async fn connections_over_the_per_ip_limit_are_refused() {
    let d = Daemon::start_with("max_connections_per_ip = 2\n").await;
    let mut first = d.client().await;
    let mut second = d.client().await;
    assert_reply(&first.greeting, &format!("220 {HOST}"));
    assert_reply(&second.greeting, &format!("220 {HOST}"));
    let mut third = d.client().await;
    assert_reply(&third.greeting, &format!("421 4.7.0 {HOST}"));
    assert_eq!(third.reply().await, "", "the refused connection is closed");
    // The two admitted sessions are unaffected and can deliver.
    assert_reply(&second.cmd("NOOP").await, "250 2.0.0");
    start_transaction(&mut first).await;
    assert_reply(
        &first.cmd(&format!("RCPT TO:<{SUPPORT}>")).await,
        "250 2.1.5",
    );
    let m = message("perip@klant.example", "Admitted", "hi");
    assert_reply(&send_data(&mut first, &m).await, "250 2.0.0");
    first.quit().await;
    second.quit().await;
    assert_eq!(subjects(&d.list(&[])), ["Admitted"]);
    d.stop().await;
}

// ---------------------------------------------------------------------------------
// 3. SMTP smuggling

/// What an attacker hides after a fake end of data; its final CRLF.CRLF is the real
/// end of the message.
const SMUGGLED: &[u8] = b"MAIL FROM:<evil@x>\r\nRCPT TO:<support@demo.hs-inbox.com>\r\n\
DATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n";

#[tokio::test]
async fn fake_ends_of_data_cannot_smuggle_a_second_message() {
    let d = Daemon::start().await;
    let fakes: [&[u8]; 5] = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r.\r\n", b"\r\n\x00.\r\n"];
    for (i, fake) in fakes.iter().enumerate() {
        let subject = format!("Smuggling attempt {i}");
        let mut data = format!(
            "Message-ID: <smuggle{i}@klant.example>\r\nFrom: jan@klant.example\r\n\
             To: {SUPPORT}\r\nSubject: {subject}\r\n\r\nbefore"
        )
        .into_bytes();
        data.extend_from_slice(fake);
        data.extend_from_slice(SMUGGLED);

        let mut client = d.client().await;
        start_transaction(&mut client).await;
        assert_reply(
            &client.cmd(&format!("RCPT TO:<{SUPPORT}>")).await,
            "250 2.1.5",
        );
        assert_reply(&client.cmd("DATA").await, "354 ");
        client.write(&data).await;
        assert_reply(&client.reply().await, "250 2.0.0 Ok: queued as M");
        // The next reply is NOOP's: no smuggled MAIL/RCPT/DATA was answered.
        assert_eq!(
            client.cmd("NOOP").await,
            "250 2.0.0 Ok\r\n",
            "fake end {fake:?}"
        );
        client.quit().await;

        let list = d.list(&[]);
        assert_eq!(list.len(), i + 1, "fake end {fake:?}: {list:?}");
        assert!(
            list.iter().all(|c| c["message_count"] == 1),
            "fake end {fake:?}: {list:?}"
        );
        assert!(
            !subjects(&list).iter().any(|s| s.contains("smuggled")),
            "fake end {fake:?} smuggled a message: {list:?}"
        );
        let text = message_text(&d, conversation_with_subject(&list, &subject));
        assert!(
            text.contains("smuggled") && text.contains("evil"),
            "fake end {fake:?}: the smuggled part is not in the first message: {text:?}"
        );
    }
    d.stop().await;
}

// ---------------------------------------------------------------------------------
// 4. Pipelining

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let d = Daemon::start().await;
    let mut client = d.client().await;
    let ehlo = client.cmd("EHLO client.test").await;
    assert!(ehlo.contains("250-PIPELINING\r\n"), "{ehlo}");
    client
        .write(
            format!(
                "MAIL FROM:<jan@klant.example>\r\nRCPT TO:<{SUPPORT}>\r\n\
                 RCPT TO:<{SALES}>\r\nDATA\r\n"
            )
            .as_bytes(),
        )
        .await;
    for expected in ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354 "] {
        assert_reply(&client.reply().await, expected);
    }
    // The message, its dot and QUIT in one write too.
    let mut rest = data_and_dot(&message("pipe@klant.example", "Pipelined", "hi"));
    rest.extend_from_slice(b"QUIT\r\n");
    client.write(&rest).await;
    assert_reply(&client.reply().await, "250 2.0.0");
    assert_reply(&client.reply().await, "221 2.0.0");
    assert_eq!(client.reply().await, "");
    let list = d.list(&[]);
    assert_eq!(subjects(&list), ["Pipelined", "Pipelined"], "{list:?}");
    let mut inboxes: Vec<&str> = list.iter().map(|c| c["inbox"].as_str().unwrap()).collect();
    inboxes.sort();
    assert_eq!(inboxes, ["Sales", "Support"]);
    d.stop().await;
}

// ---------------------------------------------------------------------------------
// 5. STARTTLS

/// A line-oriented SMTP client over any stream (plain TCP before STARTTLS, TLS after).
struct Wire<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    fn new(stream: S) -> Wire<S> {
        Wire {
            io: BufReader::new(stream),
        }
    }

    /// One (possibly multi-line) reply; empty when the server closed.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.io.read_line(&mut line).await.unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        let stream = self.io.get_mut();
        stream.write_all(bytes).await.expect("write");
        stream.flush().await.expect("flush");
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.write(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// The stream, for the TLS handshake; the server must not have sent anything more.
    fn into_stream(self) -> S {
        assert!(
            self.io.buffer().is_empty(),
            "the server sent {:?} before the TLS handshake",
            String::from_utf8_lossy(self.io.buffer())
        );
        self.io.into_inner()
    }
}

/// A daemon with STARTTLS from a fresh self-signed certificate for `localhost`, and a
/// client TLS configuration that trusts only that certificate.
struct TlsSetup {
    daemon: Daemon,
    connector: tokio_rustls::TlsConnector,
    _dir: tempfile::TempDir,
}

async fn tls_daemon() -> TlsSetup {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let daemon = Daemon::start_with(&format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    ))
    .await;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(certified.cert.der().clone())
        .expect("trust the certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsSetup {
        daemon,
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        _dir: dir,
    }
}

impl TlsSetup {
    /// Connects, checks that EHLO offers STARTTLS, then sends `starttls` (the command,
    /// perhaps with more pipelined after it) and runs the handshake after its 220.
    async fn upgrade(&self, starttls: &[u8]) -> Wire<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.daemon.addr).await.expect("connect");
        let mut plain = Wire::new(tcp);
        assert_reply(&plain.reply().await, &format!("220 {HOST}"));
        let ehlo = plain.cmd("EHLO client.test").await;
        assert!(ehlo.contains("250-STARTTLS\r\n"), "{ehlo}");
        plain.write(starttls).await;
        assert_reply(&plain.reply().await, "220 2.0.0");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let tls = self
            .connector
            .connect(name, plain.into_stream())
            .await
            .expect("TLS handshake");
        Wire::new(tls)
    }
}

#[tokio::test]
async fn starttls_upgrades_the_session_and_the_message_is_stored() {
    let setup = tls_daemon().await;
    let d = &setup.daemon;
    let mut tls = setup.upgrade(b"STARTTLS\r\n").await;
    let ehlo = tls.cmd("EHLO client.test").await;
    assert_reply(&ehlo, &format!("250-{HOST}\r\n"));
    assert!(!ehlo.contains("STARTTLS"), "offered twice: {ehlo}");
    assert_reply(&tls.cmd("STARTTLS").await, "503 5.5.1");
    assert_reply(&tls.cmd("MAIL FROM:<jan@klant.example>").await, "250 2.1.0");
    assert_reply(&tls.cmd(&format!("RCPT TO:<{SUPPORT}>")).await, "250 2.1.5");
    assert_reply(&tls.cmd("DATA").await, "354 ");
    tls.write(&data_and_dot(&message(
        "tls@klant.example",
        "Over TLS",
        "secret",
    )))
    .await;
    assert_reply(&tls.reply().await, "250 2.0.0");
    assert_reply(&tls.cmd("QUIT").await, "221 2.0.0");

    let list = d.list(&[]);
    assert_eq!(subjects(&list), ["Over TLS"], "{list:?}");
    let shown = d.show(list[0]["id"].as_i64().unwrap());
    assert_eq!(
        shown["messages"][0]["text"].as_str().unwrap().trim(),
        "secret"
    );
    let message_id = shown["messages"][0]["id"].as_i64().unwrap();
    let raw = d.cli(&["messages", "raw", &message_id.to_string()]);
    assert!(
        raw.contains(&format!("by {HOST} (inboxgate) with ESMTPS")),
        "the trace header should record TLS: {raw}"
    );
    setup.daemon.stop().await;
}

#[tokio::test]
async fn commands_pipelined_after_starttls_are_discarded() {
    let setup = tls_daemon().await;
    // CVE-2011-0411: a NOOP injected in plaintext must not be answered inside TLS.
    let mut tls = setup.upgrade(b"STARTTLS\r\nNOOP\r\n").await;
    let first = tls.cmd("EHLO client.test").await;
    assert_reply(&first, &format!("250-{HOST}\r\n"));
    assert!(first.contains("250 SMTPUTF8\r\n"), "{first}");
    assert_reply(&tls.cmd("NOOP").await, "250 2.0.0 Ok");
    assert_reply(&tls.cmd("QUIT").await, "221 2.0.0");
    setup.daemon.stop().await;
}

// ---------------------------------------------------------------------------------
// 6. Graceful shutdown

/// The greeting of a client connecting while the daemon drains. The listener learns of
/// the shutdown at the same moment as the sessions; a connection accepted in that very
/// instant is greeted and then told 421 4.3.0 at once, so try again in that case.
async fn greeting_while_draining(d: &Daemon) -> String {
    for _ in 0..50 {
        let mut client = d.client().await;
        if !client.greeting.starts_with("220") {
            return client.greeting;
        }
        assert_reply(&client.reply().await, &format!("421 4.3.0 {HOST}"));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("new connections are still greeted 220 during shutdown");
}

#[tokio::test]
async fn shutdown_lets_an_open_transaction_finish_and_refuses_newcomers() {
    let mut d = Daemon::start().await;
    let mut idle = d.client().await;
    let mut busy = d.client().await;
    start_transaction(&mut busy).await;
    assert_reply(
        &busy.cmd(&format!("RCPT TO:<{SUPPORT}>")).await,
        "250 2.1.5",
    );

    let stopping = tokio::spawn(d.begin_stop());
    // A session between transactions is told at once.
    assert_eq!(
        idle.reply().await,
        format!("421 4.3.0 {HOST} Service shutting down\r\n")
    );
    assert_eq!(idle.reply().await, "", "closed after its 421");
    assert_reply(
        &greeting_while_draining(&d).await,
        &format!("421 4.3.0 {HOST}"),
    );

    // The transaction in progress still gets its message stored, then the session ends.
    let m = message("drain@klant.example", "During shutdown", "hi");
    assert_reply(&send_data(&mut busy, &m).await, "250 2.0.0");
    assert_reply(&busy.reply().await, &format!("421 4.3.0 {HOST}"));
    assert_eq!(busy.reply().await, "");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("stop returns once the last session has ended")
        .expect("stop does not panic");

    let list = d.list(&[]);
    assert_eq!(subjects(&list), ["During shutdown"], "{list:?}");
}

// ---------------------------------------------------------------------------------
// 7. Robustness over the MIME corpus

/// Every message file under `dir`, sorted; expectation files are skipped.
fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if !matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("json" | "xml" | "txt" | "md")
            ) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The ids in `250 2.0.0 Ok: queued as M12` (or `C3` for a duplicate).
fn queue_ids(reply: &str) -> Vec<String> {
    reply
        .trim_end()
        .split_once("queued as ")
        .map(|(_, ids)| ids.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_corpus_message_is_accepted_and_stored_or_recognised_as_duplicate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora/mime");
    assert!(
        dir.is_dir(),
        "the MIME corpus is missing: expected it at {} (CI provides it)",
        dir.display()
    );
    let files = corpus_files(&dir);
    assert!(!files.is_empty(), "no messages under {}", dir.display());

    let d = Daemon::start().await;
    let mut failures = Vec::new();
    let (mut stored, mut duplicates) = (0, 0);
    for chunk in files.chunks(100) {
        let mut client = d.client().await;
        assert_reply(
            &client.cmd("EHLO client.test").await,
            &format!("250-{HOST}"),
        );
        for file in chunk {
            let name = file
                .strip_prefix(&dir)
                .unwrap_or(file)
                .display()
                .to_string();
            let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mail = client.cmd("MAIL FROM:<corpus@test.example>").await;
            assert_reply(&mail, "250 2.1.0");
            assert_reply(
                &client.cmd(&format!("RCPT TO:<{SUPPORT}>")).await,
                "250 2.1.5",
            );
            let reply = send_data(&mut client, &bytes).await;
            if !reply.starts_with("250 ") {
                failures.push(format!("{name}: {reply:?}"));
                if reply.is_empty() {
                    client = d.client().await;
                    assert_reply(&client.cmd("EHLO client.test").await, "250-");
                }
                continue;
            }
            for id in queue_ids(&reply) {
                match id.as_bytes().first() {
                    Some(b'M') => stored += 1,
                    Some(b'C') => duplicates += 1,
                    _ => failures.push(format!("{name}: unexpected queue id in {reply:?}")),
                }
            }
        }
        client.quit().await;
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus files were not accepted:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    assert_eq!(stored + duplicates, files.len(), "one id per message sent");

    // Still answering, and the store holds exactly the messages reported stored.
    let mut client = d.client().await;
    assert_reply(&client.greeting, &format!("220 {HOST}"));
    assert_reply(&client.cmd("NOOP").await, "250 2.0.0");
    client.quit().await;
    let in_store: i64 = d
        .list(&[])
        .iter()
        .map(|c| c["message_count"].as_i64().expect("message_count"))
        .sum();
    assert_eq!(
        in_store, stored as i64,
        "{stored} stored and {duplicates} duplicates reported"
    );
    d.stop().await;
}
