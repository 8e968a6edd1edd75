//! Session behaviour as a sending MTA sees it: raw SMTP over an in-memory duplex against
//! [`session::run`](super::session::run), with a recording sink behind it.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::testkit::{
    context, start, start_ehlo, test_config, SinkMode, TestClient, TestSession, PEER,
};

const SUPPORT: &str = "support@acme.hs-inbox.test";
const SALES: &str = "sales@acme.hs-inbox.test";

/// MAIL, the RCPTs (all expected to be accepted) and DATA with `body` (which must end
/// with the terminator); returns the reply to the end of DATA.
async fn send_mail(
    client: &mut TestClient<tokio::io::DuplexStream>,
    rcpts: &[&str],
    body: &[u8],
) -> String {
    client
        .cmd("MAIL FROM:<alice@customer.example>", "250 2.1.0")
        .await;
    for rcpt in rcpts {
        client.cmd(&format!("RCPT TO:<{rcpt}>"), "250 2.1.5").await;
    }
    client.cmd("DATA", "354 ").await;
    client.send(body).await;
    client.reply().await
}

const BODY: &[u8] = b"Subject: hi\r\n\r\nhello\r\n.\r\n";

#[tokio::test]
async fn ehlo_advertises_extensions_without_starttls_when_unconfigured() {
    let mut s = start(context(test_config())).await;
    let reply = s.client.cmd("EHLO client.example", "250 ").await;
    assert_eq!(
        reply,
        "250-mx.acme.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-ENHANCEDSTATUSCODES\r\n\
         250-8BITMIME\r\n250 SMTPUTF8\r\n"
    );
    s.client
        .cmd("HELO client.example", "250 mx.acme.test")
        .await;
    s.client.cmd("EHLO", "501 5.5.4").await;
}

#[tokio::test]
async fn accepted_message_reaches_the_sink_with_its_envelope() {
    let mut s = start_ehlo().await;
    let reply = send_mail(&mut s.client, &[SUPPORT], BODY).await;
    assert_eq!(reply, "250 2.0.0 Ok: queued as Q1\r\n");
    let deliveries = s.ctx.sink.deliveries();
    assert_eq!(deliveries.len(), 1);
    let d = &deliveries[0];
    assert_eq!(d.envelope.mail_from, "alice@customer.example");
    assert_eq!(d.envelope.recipients, vec![SUPPORT.to_string()]);
    assert_eq!(d.envelope.helo, "client.example");
    assert_eq!(d.envelope.peer, Some(PEER));
    assert_eq!(d.envelope.protocol, "ESMTP");
    assert_eq!(d.targets.len(), 1);
    assert_eq!(
        (d.targets[0].inbox.as_str(), d.targets[0].channel.as_str()),
        ("Support", SUPPORT)
    );
    assert_eq!(d.message, b"Subject: hi\r\n\r\nhello\r\n");
}

#[tokio::test]
async fn null_sender_and_helo_are_recorded() {
    let mut s = start(context(test_config())).await;
    s.client.cmd("HELO old.example", "250 ").await;
    s.client.cmd("MAIL FROM:<>", "250 2.1.0").await;
    s.client
        .cmd(&format!("RCPT TO:<{SALES}>"), "250 2.1.5")
        .await;
    s.client.cmd("DATA", "354").await;
    s.client.send(b"bounce\r\n.\r\n").await;
    s.client.expect("250 2.0.0").await;
    let d = &s.ctx.sink.deliveries()[0];
    assert_eq!(
        (d.envelope.mail_from.as_str(), d.envelope.protocol.as_str()),
        ("", "SMTP")
    );
}

#[tokio::test]
async fn postmaster_subaddress_and_case_route_to_their_inboxes() {
    let mut s = start_ehlo().await;
    send_mail(&mut s.client, &["PostMaster@Acme.Example"], BODY).await;
    send_mail(&mut s.client, &["Support+Billing@ACME.hs-inbox.test"], BODY).await;
    let deliveries = s.ctx.sink.deliveries();
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0].targets[0].inbox, "Sales");
    assert_eq!(deliveries[0].targets[0].channel, SALES);
    assert_eq!(deliveries[1].targets[0].inbox, "Support");
    assert_eq!(deliveries[1].targets[0].channel, SUPPORT);
    // The envelope keeps the address as the client gave it.
    assert_eq!(
        deliveries[1].envelope.recipients,
        vec!["Support+Billing@ACME.hs-inbox.test"]
    );
}

#[tokio::test]
async fn recipients_that_are_not_ours_are_refused_in_session() {
    let mut s = start_ehlo().await;
    s.client.cmd("MAIL FROM:<a@b.example>", "250 2.1.0").await;
    s.client
        .cmd("RCPT TO:<old@acme.example>", "550 5.2.1")
        .await;
    s.client
        .cmd("RCPT TO:<nobody@acme.example>", "550 5.1.1")
        .await;
    s.client
        .cmd("RCPT TO:<someone@gmail.example>", "550 5.7.1")
        .await;
    s.client
        .cmd("RCPT TO:<@acme.example:someone@gmail.example>", "550 5.7.1")
        .await;
    s.client
        .cmd("RCPT TO:<someone%gmail.example@acme.example>", "550 5.7.1")
        .await;
    s.client
        .cmd("RCPT TO:<x@acme.example> NOTIFY=NEVER", "555 5.5.4")
        .await;
    s.client
        .send(b"RCPT TO:<sup\xffport@acme.example>\r\n")
        .await;
    s.client.expect("501 5.1.3").await;
    s.client.cmd("DATA", "554 5.5.1").await;
    assert!(s.ctx.sink.deliveries().is_empty());
}

#[tokio::test]
async fn two_inboxes_get_one_target_each() {
    let mut s = start_ehlo().await;
    let reply = send_mail(&mut s.client, &[SUPPORT, SALES, "help@acme.example"], BODY).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let d = &s.ctx.sink.deliveries()[0];
    let inboxes: Vec<&str> = d.targets.iter().map(|t| t.inbox.as_str()).collect();
    assert_eq!(inboxes, ["Support", "Sales"]);
    assert_eq!(d.envelope.recipients.len(), 3);
}

#[tokio::test]
async fn two_addresses_of_one_inbox_make_one_target() {
    let mut s = start_ehlo().await;
    send_mail(
        &mut s.client,
        &[SUPPORT, "help@acme.example", "support+x@acme.hs-inbox.test"],
        BODY,
    )
    .await;
    let d = &s.ctx.sink.deliveries()[0];
    assert_eq!(d.targets.len(), 1);
    assert_eq!(d.targets[0].channel, SUPPORT);
}

#[tokio::test]
async fn declared_size_over_the_limit_is_refused_at_mail() {
    let mut s = start_ehlo().await;
    s.client
        .cmd("MAIL FROM:<a@b.example> SIZE=10001", "552 5.3.4")
        .await;
    s.client
        .cmd(&format!("RCPT TO:<{SUPPORT}>"), "503 5.5.1")
        .await;
    s.client
        .cmd(
            "MAIL FROM:<a@b.example> SIZE=10000 BODY=8BITMIME SMTPUTF8",
            "250 2.1.0",
        )
        .await;
}

#[tokio::test]
async fn oversize_body_is_drained_then_refused() {
    let mut s = start_ehlo().await;
    let mut body = Vec::new();
    for _ in 0..2000 {
        body.extend_from_slice(b"0123456789012345678901234567890123456789\r\n");
    }
    body.extend_from_slice(b".\r\nNOOP\r\n");
    let reply = send_mail(&mut s.client, &[SUPPORT], &body).await;
    assert!(reply.starts_with("552 5.3.4"), "{reply}");
    // The rest of the body was not read as commands: the next reply is the NOOP's.
    s.client.expect("250 2.0.0 Ok").await;
    assert!(s.ctx.sink.deliveries().is_empty());
    // The session is usable afterwards.
    assert!(send_mail(&mut s.client, &[SUPPORT], BODY)
        .await
        .starts_with("250 2.0.0"));
}

#[tokio::test]
async fn recipients_beyond_the_maximum_get_452() {
    let mut s = start_ehlo().await;
    s.client.cmd("MAIL FROM:<a@b.example>", "250").await;
    for rcpt in [SUPPORT, SALES, "help@acme.example"] {
        s.client
            .cmd(&format!("RCPT TO:<{rcpt}>"), "250 2.1.5")
            .await;
    }
    s.client
        .cmd("RCPT TO:<support+4@acme.hs-inbox.test>", "452 4.5.3")
        .await;
    s.client.cmd("DATA", "354").await;
    s.client.send(BODY).await;
    s.client.expect("250 2.0.0").await;
    assert_eq!(s.ctx.sink.deliveries()[0].envelope.recipients.len(), 3);
}

#[tokio::test]
async fn over_long_command_line_is_refused_and_skipped() {
    let mut s = start_ehlo().await;
    let long = format!("NOOP {}\r\nNOOP\r\n", "x".repeat(600));
    s.client.send(long.as_bytes()).await;
    s.client.expect("500 5.5.2").await;
    s.client.expect("250 2.0.0").await;
    // Exactly at the limit (512 bytes with CRLF) is fine.
    let exact = format!("NOOP {}", "x".repeat(512 - 7));
    s.client.cmd(&exact, "250 2.0.0").await;
}

#[tokio::test]
async fn bare_line_endings_in_commands_are_refused() {
    let mut s = start_ehlo().await;
    s.client.send(b"NOOP\n").await;
    s.client.expect("500 5.5.2").await;
    s.client
        .send(b"MAIL FROM:<a@b.example>\rRCPT TO:<x@y>\r\n")
        .await;
    s.client.expect("500 5.5.2").await;
    // Neither line was executed: there is no transaction.
    s.client
        .cmd(&format!("RCPT TO:<{SUPPORT}>"), "503 5.5.1")
        .await;
}

/// A session whose command lines may be long enough to carry over-long paths.
async fn start_with_long_lines() -> TestSession {
    let mut config = test_config();
    config.smtp.max_line_length = 2048;
    let mut s = start(context(config)).await;
    s.client.cmd("EHLO client.example", "250 ").await;
    s
}

/// A domain of exactly `octets` octets (labels of at most 49 letters).
fn domain_of(octets: usize) -> String {
    let mut domain = "example".to_string();
    while domain.len() < octets {
        let label = (octets - domain.len() - 1).min(49);
        domain = format!("{}.{domain}", "d".repeat(label.max(1)));
    }
    assert_eq!(domain.len(), octets, "domain_of({octets})");
    domain
}

/// The `bad_address` refusals counted so far.
fn bad_address_refusals(s: &TestSession) -> u64 {
    let text = s.ctx.metrics.render(&Default::default());
    let line = text
        .lines()
        .find(|l| l.starts_with("inboxgate_smtp_refusals_total{reason=\"bad_address\""))
        .expect("bad_address sample");
    line.rsplit_once(' ')
        .and_then(|(_, n)| n.parse().ok())
        .expect("a count")
}

#[tokio::test]
async fn over_long_mail_from_paths_are_refused_501_and_the_session_is_kept() {
    let mut s = start_with_long_lines().await;
    let from = format!("MAIL FROM:<{}@client.test>", "a".repeat(1100));
    s.client.cmd(&from, "501 5.1.3").await;
    // Local part: 64 octets are fine, 65 are not.
    let local = |n: usize| format!("MAIL FROM:<{}@client.test>", "l".repeat(n));
    s.client.cmd(&local(65), "501 5.1.3").await;
    s.client.cmd(&local(64), "250 2.1.0").await;
    s.client.cmd("RSET", "250").await;
    // Path: 256 octets with its brackets are fine (254 between them), 257 are not.
    let path = |n: usize| format!("MAIL FROM:<{}@{}>", "p".repeat(64), domain_of(n - 65));
    s.client.cmd(&path(255), "501 5.1.3").await;
    s.client.cmd(&path(254), "250 2.1.0").await;
    s.client.cmd("RSET", "250").await;
    // A source route counts towards the path, and octets are bytes, not characters.
    let routed = format!("MAIL FROM:<@{}:a@b.example>", domain_of(250));
    s.client.cmd(&routed, "501 5.1.3").await;
    let utf8 = format!("MAIL FROM:<{}@b.example> SMTPUTF8", "é".repeat(33));
    s.client.cmd(&utf8, "501 5.1.3").await;
    assert_eq!(bad_address_refusals(&s), 5);
    let reply = send_mail(&mut s.client, &[SUPPORT], BODY).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
}

#[tokio::test]
async fn over_long_rcpt_to_paths_are_refused_501_and_the_transaction_is_kept() {
    let mut s = start_with_long_lines().await;
    s.client.cmd("MAIL FROM:<a@b.example>", "250 2.1.0").await;
    // `support+` and a tag: 65 octets of local part are refused, 64 reach the channel.
    let tagged = |n: usize| format!("RCPT TO:<support+{}@acme.hs-inbox.test>", "t".repeat(n));
    s.client.cmd(&tagged(57), "501 5.1.3").await;
    let long_path = format!("RCPT TO:<@{}:support@acme.hs-inbox.test>", domain_of(240));
    s.client.cmd(&long_path, "501 5.1.3").await;
    let huge = format!("RCPT TO:<{}@acme.hs-inbox.test>", "x".repeat(1100));
    s.client.cmd(&huge, "501 5.1.3").await;
    s.client.cmd(&tagged(56), "250 2.1.5").await;
    assert_eq!(bad_address_refusals(&s), 3);
    s.client
        .cmd(&format!("RCPT TO:<{SALES}>"), "250 2.1.5")
        .await;
    s.client.cmd("DATA", "354").await;
    s.client.send(BODY).await;
    s.client.expect("250 2.0.0").await;
    assert_eq!(s.ctx.sink.deliveries()[0].envelope.recipients.len(), 2);
}

/// Each smuggling sequence stays inside the message: one delivery, whose content holds
/// the would-be second message, ending only at the real CRLF.CRLF.
#[tokio::test]
async fn smuggling_sequences_do_not_end_data() {
    for fake in [
        &b"\n.\n"[..],
        b"\r.\r",
        b"\n.\r\n",
        b"\r.\r\n",
        b"\r\n\x00.\r\n",
    ] {
        let mut s = start_ehlo().await;
        let mut body = b"Subject: real\r\n\r\nhello".to_vec();
        body.extend_from_slice(fake);
        body.extend_from_slice(
            b"MAIL FROM:<ceo@bank.example>\r\nRCPT TO:<sales@acme.hs-inbox.test>\r\n",
        );
        body.extend_from_slice(b"DATA\r\nSubject: smuggled\r\n\r\nsend money\r\n.\r\nNOOP\r\n");
        let reply = send_mail(&mut s.client, &[SUPPORT], &body).await;
        assert!(
            reply.starts_with("250 2.0.0 Ok: queued as Q1"),
            "{fake:?}: {reply}"
        );
        // The next reply answers the NOOP after the real end, not a smuggled command.
        s.client.expect("250 2.0.0 Ok").await;
        let deliveries = s.ctx.sink.deliveries();
        assert_eq!(deliveries.len(), 1, "{fake:?}");
        let message = String::from_utf8_lossy(&deliveries[0].message).into_owned();
        assert!(
            message.starts_with("Subject: real\r\n\r\nhello\r\n"),
            "{fake:?}: {message:?}"
        );
        assert!(message.ends_with("MAIL FROM:<ceo@bank.example>\r\nRCPT TO:<sales@acme.hs-inbox.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsend money\r\n"), "{fake:?}: {message:?}");
        let bare = message.replace("\r\n", "");
        assert!(
            !bare.contains(['\r', '\n']),
            "bare line ending kept: {message:?}"
        );
        assert_eq!(deliveries[0].targets.len(), 1);
    }
}

#[tokio::test]
async fn dot_stuffing_is_undone() {
    let mut s = start_ehlo().await;
    send_mail(
        &mut s.client,
        &[SUPPORT],
        b"..hidden dot\r\n\r\n...\r\nend\r\n.\r\n",
    )
    .await;
    assert_eq!(
        s.ctx.sink.deliveries()[0].message,
        b".hidden dot\r\n\r\n..\r\nend\r\n"
    );
}

#[tokio::test]
async fn pipelined_commands_get_all_replies_in_order() {
    let mut s = start(context(test_config())).await;
    s.client
        .send(
            b"EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<support@acme.hs-inbox.test>\r\n\
              RCPT TO:<nobody@acme.hs-inbox.test>\r\nRCPT TO:<sales@acme.hs-inbox.test>\r\nDATA\r\n",
        )
        .await;
    s.client.expect("250 SMTPUTF8").await;
    s.client.expect("250 2.1.0").await;
    s.client.expect("250 2.1.5").await;
    s.client.expect("550 5.1.1").await;
    s.client.expect("250 2.1.5").await;
    s.client.expect("354 ").await;
    s.client
        .send(b"one\r\n.\r\nMAIL FROM:<c@d.example>\r\nRCPT TO:<help@acme.example>\r\nDATA\r\n")
        .await;
    s.client.expect("250 2.0.0 Ok: queued as Q1").await;
    s.client.expect("250 2.1.0").await;
    s.client.expect("250 2.1.5").await;
    s.client.expect("354 ").await;
    s.client.send(b"two\r\n.\r\nQUIT\r\n").await;
    s.client.expect("250 2.0.0 Ok: queued as Q2").await;
    s.client.expect("221 2.0.0").await;
    assert!(s.client.is_closed().await);
    let deliveries = s.ctx.sink.deliveries();
    assert_eq!(deliveries[0].targets.len(), 2);
    assert_eq!(deliveries[1].message, b"two\r\n");
}

#[tokio::test]
async fn commands_out_of_sequence_get_503() {
    let mut s = start(context(test_config())).await;
    s.client.cmd("MAIL FROM:<a@b.example>", "503 5.5.1").await;
    s.client
        .cmd(&format!("RCPT TO:<{SUPPORT}>"), "503 5.5.1")
        .await;
    s.client.cmd("DATA", "503 5.5.1").await;
    s.client.cmd("EHLO client.example", "250 ").await;
    s.client.cmd("DATA", "503 5.5.1").await;
    s.client.cmd("MAIL FROM:a@b.example", "501 5.5.4").await;
    s.client.cmd("MAIL FROM:<a@b.example>", "250 2.1.0").await;
    s.client.cmd("MAIL FROM:<a@b.example>", "503 5.5.1").await;
    s.client.cmd("DATA", "503 5.5.1").await;
    s.client
        .cmd("RCPT TO:<x@y.example> FOO=1", "555 5.5.4")
        .await;
    s.client.cmd("RSET extra", "501 5.5.4").await;
    s.client.cmd("DATA now", "501 5.5.4").await;
}

#[tokio::test]
async fn rset_and_ehlo_end_the_transaction() {
    let mut s = start_ehlo().await;
    s.client.cmd("MAIL FROM:<a@b.example>", "250").await;
    s.client
        .cmd(&format!("RCPT TO:<{SUPPORT}>"), "250 2.1.5")
        .await;
    s.client.cmd("RSET", "250 2.0.0").await;
    s.client
        .cmd(&format!("RCPT TO:<{SUPPORT}>"), "503 5.5.1")
        .await;
    s.client.cmd("MAIL FROM:<a@b.example>", "250").await;
    s.client.cmd("EHLO again.example", "250 ").await;
    s.client.cmd("DATA", "503 5.5.1").await;
}

#[tokio::test]
async fn vrfy_help_noop_unknown_and_quit() {
    let mut s = start_ehlo().await;
    s.client.cmd("VRFY support", "252 2.5.0").await;
    s.client.cmd("VRFY", "501 5.5.4").await;
    s.client.cmd("HELP", "214 2.0.0").await;
    s.client.cmd("noop", "250 2.0.0").await;
    s.client.cmd("EXPN staff", "500 5.5.1").await;
    s.client.cmd("GET / HTTP/1.1", "500 5.5.1").await;
    s.client.send(b"\xff\xfe\r\n").await;
    s.client.expect("500 5.5.1").await;
    s.client.cmd("QUIT", "221 2.0.0").await;
    assert!(s.client.is_closed().await);
    s.task.await.expect("session ends cleanly");
}

#[tokio::test]
async fn storage_failures_are_temporary_errors_never_250() {
    for (mode, expected) in [
        (
            SinkMode::StorageFull,
            "452 4.3.1 Insufficient system storage",
        ),
        (SinkMode::Unavailable, "451 4.3.0"),
    ] {
        let mut s = start_ehlo().await;
        s.ctx.sink.set_mode(mode);
        let reply = send_mail(&mut s.client, &[SUPPORT], BODY).await;
        assert!(reply.starts_with(expected), "{mode:?}: {reply}");
        // The transaction is over; the client may retry from MAIL.
        s.client.cmd("DATA", "503 5.5.1").await;
        s.ctx.sink.set_mode(SinkMode::Store);
        assert!(send_mail(&mut s.client, &[SUPPORT], BODY)
            .await
            .starts_with("250 2.0.0"));
    }
}

#[tokio::test(start_paused = true)]
async fn idle_client_is_timed_out() {
    let mut s = start_ehlo().await;
    let started = Instant::now();
    s.client
        .expect("421 4.4.2 mx.acme.test Error: timeout exceeded")
        .await;
    assert_eq!(started.elapsed().as_secs(), 60);
    assert!(s.client.is_closed().await);
}

#[tokio::test(start_paused = true)]
async fn idle_client_in_data_is_timed_out() {
    let mut s = start_ehlo().await;
    s.client.cmd("MAIL FROM:<a@b.example>", "250").await;
    s.client.cmd(&format!("RCPT TO:<{SUPPORT}>"), "250").await;
    s.client.cmd("DATA", "354").await;
    s.client.send(b"partial body").await;
    s.client.expect("421 4.4.2").await;
    assert!(s.ctx.sink.deliveries().is_empty());
}

#[tokio::test(start_paused = true)]
async fn busy_client_hits_the_session_deadline() {
    let mut config = test_config();
    config.smtp.session_timeout = Duration::from_secs(100);
    let mut s = start(context(config)).await;
    let started = Instant::now();
    // Each wait is under the 60 s idle timeout; the session as a whole is not.
    for _ in 0..2 {
        s.client.cmd("NOOP", "250 2.0.0").await;
        tokio::time::sleep(Duration::from_secs(45)).await;
    }
    s.client.cmd("NOOP", "250 2.0.0").await;
    s.client.expect("421 4.4.2").await;
    assert_eq!(started.elapsed().as_secs(), 100);
}

#[tokio::test]
async fn shutdown_closes_an_idle_session_with_421() {
    let mut s = start_ehlo().await;
    s.shutdown.send(true).expect("session listens");
    s.client
        .expect("421 4.3.0 mx.acme.test Service shutting down")
        .await;
    assert!(s.client.is_closed().await);
}

#[tokio::test]
async fn shutdown_lets_a_transaction_in_progress_finish() {
    let mut s = start_ehlo().await;
    s.client.cmd("MAIL FROM:<a@b.example>", "250").await;
    s.shutdown.send(true).expect("session listens");
    s.client
        .cmd(&format!("RCPT TO:<{SUPPORT}>"), "250 2.1.5")
        .await;
    s.client.cmd("DATA", "354").await;
    s.client.send(BODY).await;
    s.client.expect("250 2.0.0 Ok: queued as Q1").await;
    s.client.expect("421 4.3.0").await;
    assert_eq!(s.ctx.sink.deliveries().len(), 1);
}

mod tls {
    use super::*;
    use crate::config::TlsFiles;
    use crate::smtp::listener::tls_acceptor;
    use crate::smtp::testkit::RecordingSink;
    use crate::smtp::SmtpContext;
    use rustls_pki_types::ServerName;
    use tokio_rustls::TlsConnector;

    /// A context with STARTTLS from a fresh self-signed certificate, and a connector
    /// that trusts it.
    fn tls_context() -> (Arc<SmtpContext<RecordingSink>>, TlsConnector) {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        std::fs::write(&files.cert, certified.cert.pem()).expect("write cert");
        std::fs::write(&files.key, certified.signing_key.serialize_pem()).expect("write key");
        let acceptor = tls_acceptor(&files).expect("acceptor from PEM files");

        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(certified.cert.der().clone())
            .expect("trust anchor");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let ctx = Arc::new(SmtpContext {
            config: Arc::new(crate::config::LiveConfig::new(test_config())),
            sink: RecordingSink::new(),
            tls: Some(acceptor),
            metrics: Arc::default(),
        });
        (ctx, TlsConnector::from(Arc::new(client)))
    }

    async fn upgrade(
        s: TestSession,
        connector: &TlsConnector,
    ) -> TestClient<tokio_rustls::client::TlsStream<tokio::io::DuplexStream>> {
        let name = ServerName::try_from("localhost").expect("server name");
        let io = s.client.into_inner();
        let tls = connector.connect(name, io).await.expect("TLS handshake");
        TestClient::new(tls)
    }

    #[tokio::test]
    async fn starttls_upgrades_and_resets_the_session() {
        let (ctx, connector) = tls_context();
        let mut s = start(ctx.clone()).await;
        let ehlo = s.client.cmd("EHLO client.example", "250 ").await;
        assert!(ehlo.contains("250-STARTTLS\r\n"), "{ehlo}");
        s.client.cmd("MAIL FROM:<a@b.example>", "250").await;
        s.client.cmd("STARTTLS", "503 5.5.1").await;
        s.client.cmd("RSET", "250").await;
        s.client.cmd("STARTTLS", "220 2.0.0").await;
        let mut client = upgrade(s, &connector).await;
        // Fresh state: EHLO is needed again, and STARTTLS is no longer offered.
        client.cmd("MAIL FROM:<a@b.example>", "503 5.5.1").await;
        let ehlo = client.cmd("EHLO client.example", "250 ").await;
        assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
        client.cmd("STARTTLS", "503 5.5.1").await;
        client.cmd("MAIL FROM:<a@b.example>", "250 2.1.0").await;
        client
            .cmd(&format!("RCPT TO:<{SUPPORT}>"), "250 2.1.5")
            .await;
        client.cmd("DATA", "354").await;
        client.send(BODY).await;
        client.expect("250 2.0.0").await;
        assert_eq!(ctx.sink.deliveries()[0].envelope.protocol, "ESMTPS");
    }

    /// CVE-2011-0411: commands sent with STARTTLS in one packet must be thrown away,
    /// not executed inside the TLS session.
    #[tokio::test]
    async fn plaintext_injected_after_starttls_is_discarded() {
        let (ctx, connector) = tls_context();
        let mut s = start(ctx).await;
        s.client.cmd("EHLO client.example", "250 ").await;
        s.client.send(b"STARTTLS\r\nRSET\r\n").await;
        s.client.expect("220 2.0.0").await;
        let mut client = upgrade(s, &connector).await;
        let first = client.cmd("EHLO client.example", "250 ").await;
        assert!(
            first.starts_with("250-mx.acme.test\r\n"),
            "RSET was answered: {first:?}"
        );
    }

    #[tokio::test]
    async fn starttls_without_tls_configured_is_not_implemented() {
        let mut s = start_ehlo().await;
        s.client.cmd("STARTTLS", "502 5.5.1").await;
        s.client.cmd("NOOP", "250").await;
    }

    #[tokio::test]
    async fn failed_handshake_ends_the_session_quietly() {
        let (ctx, _) = tls_context();
        let mut s = start(ctx).await;
        s.client.cmd("STARTTLS", "220 2.0.0").await;
        s.client.send(b"this is not a TLS ClientHello\r\n").await;
        // Whatever rustls answers (an alert), the server then closes; no SMTP reply.
        let rest = s.client.read_to_close().await;
        assert!(
            !rest.windows(3).any(|w| w == b"250" || w == b"421"),
            "{rest:?}"
        );
        s.task.await.expect("no panic");
    }

    #[test]
    fn tls_acceptor_reports_missing_files() {
        let files = TlsFiles {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        };
        let error = tls_acceptor(&files).err().expect("missing files fail");
        assert!(
            format!("{error:#}").contains("/nonexistent/cert.pem"),
            "{error:#}"
        );
    }

    #[test]
    fn tls_acceptor_refuses_a_file_without_certificates() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        std::fs::write(&files.cert, "not a pem").expect("write");
        std::fs::write(&files.key, "not a pem").expect("write");
        assert!(tls_acceptor(&files).is_err());
    }
}

/// A small deterministic generator (xorshift) for the garbage-input test.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Bytes mixing SMTP fragments, line endings, dots, quotes and random bytes.
    fn input(&mut self, pieces: usize) -> Vec<u8> {
        const FRAGMENTS: &[&[u8]] = &[
            b"EHLO x\r\n",
            b"MAIL FROM:<",
            b"RCPT TO:<",
            b"support@acme.hs-inbox.test",
            b">",
            b"DATA\r\n",
            b"\r\n.\r\n",
            b"\r\n",
            b"\n",
            b"\r",
            b".",
            b"\"",
            b"@",
            b"%",
            b"!",
            b"[",
            b" SIZE=",
            b"99999999999999999999999",
            b"STARTTLS\r\n",
            b"RSET\r\n",
            b"\xff",
            b"\xc3",
            b"\x00",
            b"+",
            b":",
            b",",
            b" ",
        ];
        let mut out = Vec::new();
        for _ in 0..pieces {
            let n = self.next();
            if n.is_multiple_of(4) {
                out.push((n >> 8) as u8);
            } else {
                out.extend_from_slice(FRAGMENTS[(n >> 8) as usize % FRAGMENTS.len()]);
            }
        }
        out
    }
}

/// No input makes the session (or the recipient parser) panic.
#[tokio::test]
async fn garbage_input_never_panics() {
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let config = test_config();
    for _ in 0..300 {
        let input = noise.input(40);
        let text = String::from_utf8_lossy(&input);
        let _ = super::recipient::resolve(&config, &text);
        let _ = super::recipient::parse_mail_from(&input);
        let _ = super::recipient::parse_rcpt_to(&input);

        let mut s = start(context(test_config())).await;
        s.client.send(&input).await;
        s.client.send(b"\r\n.\r\nQUIT\r\n").await;
        let _ = s.client.read_to_close().await;
        s.task.await.expect("session must not panic");
    }
}
