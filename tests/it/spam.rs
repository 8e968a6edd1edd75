//! Learning spam (SPEC C4) through real SMTP: agents' spam / not-spam marks train the
//! token model, a changed mind untrains, and `inboxgate spam train` learns from folders;
//! the next similar message is judged by what was learned, with a `bayes:` reason.

use serde_json::Value;

use crate::support::*;

const SUPPORT: &str = "support@demo.hs-inbox.com";
const AGENT: &str = "alice@demo.example";
/// The model is used once it knows this many messages of each class.
const ENOUGH: usize = 20;

const ADVERT_WORDS: &[&str] = &[
    "replica", "watches", "discount", "luxury", "cheap", "rolex", "shipping",
];
const QUESTION_WORDS: &[&str] = &[
    "order", "arrived", "invoice", "delivery", "parcel", "refund", "tracking",
];

/// A message whose body draws on `words` (varied by `n`), from its own sender.
fn message(n: usize, kind: &str, words: &[&str]) -> (Vec<u8>, String) {
    let subject = format!("{kind} number {n}");
    let body: Vec<&str> = (0..12).map(|i| words[(n + i * 3) % words.len()]).collect();
    let raw = format!(
        "Message-ID: <{kind}{n}@x.example>\r\nFrom: Person {n} <{kind}{n}@mail{n}.example>\r\n\
         To: {SUPPORT}\r\nSubject: {subject}\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
        body.join(" ")
    );
    (raw.into_bytes(), subject)
}

/// Delivers a message; returns its conversation id.
async fn deliver(d: &Daemon, raw: &[u8], subject: &str) -> String {
    let reply = d.send("sender@mail.example", &[SUPPORT], raw).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let mut listed = d.list(&["--view", "all_open"]);
    listed.extend(d.list(&["--view", "spam"]));
    conversation_with_subject(&listed, subject).to_string()
}

fn classification_of_first_message(d: &Daemon, id: &str) -> Value {
    d.show(id.parse().expect("id"))["messages"][0]["classification"].clone()
}

fn has_bayes_reason(classification: &Value) -> bool {
    classification["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .any(|r| r.as_str().is_some_and(|r| r.starts_with("bayes:")))
}

/// Delivers an advert the model has not seen; asserts it went to Spam on the model's
/// word. Returns its conversation id.
async fn a_new_advert_is_spam_by_the_model(d: &Daemon) -> String {
    let (raw, subject) = message(100, "advert", ADVERT_WORDS);
    let id = deliver(d, &raw, &subject).await;
    let c = classification_of_first_message(d, &id);
    assert_eq!(c["verdict"], "spam", "{c}");
    assert!(has_bayes_reason(&c), "{c}");
    id
}

/// Waits until the classifier scores with the store's newest token model. It asks the
/// store for a newer one at most once a second, when a message comes in, so this sends
/// plain probe messages until the generation it uses (in `/metrics`) is the store's.
async fn let_the_model_reload(d: &Daemon) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for n in 0.. {
        let stored = d.metric("inboxgate_bayes_generation").await;
        if d.metric("inboxgate_classifier_model_generation").await == stored {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the classifier never loaded model generation {stored}"
        );
        let probe = format!(
            "Message-ID: <probe{n}@x.example>\r\nFrom: prober@probe.example\r\nTo: {SUPPORT}\r\n\
             Subject: probe {n}\r\n\r\nJust checking.\r\n"
        );
        let reply = d
            .send("prober@probe.example", &[SUPPORT], probe.as_bytes())
            .await;
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn marks_train_the_model_and_a_changed_mind_untrains() {
    let d = Daemon::start().await;
    let mut adverts = Vec::new();
    let mut questions = Vec::new();
    for n in 0..ENOUGH {
        let (raw, subject) = message(n, "advert", ADVERT_WORDS);
        adverts.push(deliver(&d, &raw, &subject).await);
        let (raw, subject) = message(n, "question", QUESTION_WORDS);
        questions.push(deliver(&d, &raw, &subject).await);
    }
    // Untrained, the adverts are not spam: nothing about them stands out yet.
    assert_eq!(
        classification_of_first_message(&d, &adverts[0])["verdict"],
        "clean"
    );
    for id in &questions {
        d.cli(&["conversations", "not-spam", id, "--as", AGENT]);
    }
    for id in &adverts {
        // A slip of the hand, put right at once: the spam mark must untrain the ham.
        d.cli(&["conversations", "not-spam", id, "--as", AGENT]);
        d.cli(&["conversations", "spam", id, "--as", AGENT]);
    }
    let_the_model_reload(&d).await;

    let id = a_new_advert_is_spam_by_the_model(&d).await;
    assert!(d.show(id.parse().expect("id"))["spam"] == true);

    // Had the slip stayed trained, advert words would be as much ham as spam, and the
    // advert above would have passed.
    let (raw, subject) = message(100, "question", QUESTION_WORDS);
    let id = deliver(&d, &raw, &subject).await;
    let c = classification_of_first_message(&d, &id);
    assert_eq!(c["verdict"], "clean", "{c}");
    // Trained, the score is 10 × the model's probability: certain ham is near 0.
    assert!(c["score"].as_f64().expect("score") < 1.0, "{c}");
    assert!(c["tokens"].as_array().is_some_and(|t| !t.is_empty()), "{c}");
    d.stop().await;
}

#[tokio::test]
async fn marks_teach_nothing_when_learning_is_off() {
    let d = Daemon::start_with_classification("learn_from_marks = false").await;
    for n in 0..ENOUGH {
        let (raw, subject) = message(n, "advert", ADVERT_WORDS);
        let id = deliver(&d, &raw, &subject).await;
        d.cli(&["conversations", "spam", &id, "--as", AGENT]);
        let (raw, subject) = message(n, "question", QUESTION_WORDS);
        let id = deliver(&d, &raw, &subject).await;
        d.cli(&["conversations", "not-spam", &id, "--as", AGENT]);
    }
    // Nothing was trained: the store's model is where it started.
    assert_eq!(d.metric("inboxgate_bayes_generation").await, 0.0);
    let_the_model_reload(&d).await;
    let (raw, subject) = message(100, "advert", ADVERT_WORDS);
    let id = deliver(&d, &raw, &subject).await;
    let c = classification_of_first_message(&d, &id);
    assert_eq!(c["verdict"], "clean", "{c}");
    assert!(!has_bayes_reason(&c), "{c}");
    d.stop().await;
}

#[tokio::test]
async fn spam_train_learns_from_folders_of_messages() {
    let d = Daemon::start().await;
    let folders = tempfile::tempdir().expect("tempdir");
    let spam_dir = folders.path().join("spam");
    let ham_dir = folders.path().join("ham").join("cur");
    std::fs::create_dir_all(&spam_dir).expect("mkdir");
    std::fs::create_dir_all(&ham_dir).expect("mkdir");
    for n in 0..ENOUGH {
        let (raw, _) = message(n, "advert", ADVERT_WORDS);
        std::fs::write(spam_dir.join(format!("{n}.eml")), raw).expect("write");
        let (raw, _) = message(n, "question", QUESTION_WORDS);
        std::fs::write(ham_dir.join(format!("{n}:2,S")), raw).expect("write");
    }
    let out = d.cli(&[
        "spam",
        "train",
        "--spam",
        spam_dir.to_str().expect("utf-8 path"),
        "--ham",
        folders.path().join("ham").to_str().expect("utf-8 path"),
    ]);
    assert_eq!(
        out.trim(),
        format!("trained {ENOUGH} spam and {ENOUGH} ham messages")
    );
    let_the_model_reload(&d).await;

    a_new_advert_is_spam_by_the_model(&d).await;

    let missing = folders.path().join("nowhere");
    let out = d.cli_output(&[
        "spam",
        "train",
        "--spam",
        missing.to_str().expect("utf-8 path"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nowhere"), "{err}");
    let out = d.cli_output(&["spam", "train"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--spam DIR"));
    d.stop().await;
}

/// SpamAssassin's spamd on a free loopback port, local tests only, for one test.
struct Spamd {
    port: u16,
    child: std::process::Child,
    _pid_dir: tempfile::TempDir,
}

impl Spamd {
    async fn start() -> Spamd {
        require("spamd", "apt-get install spamassassin");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let pid_dir = tempfile::tempdir().expect("tempdir");
        let child = std::process::Command::new("spamd")
            .args([
                "-L",
                "-x",
                "-i",
                "127.0.0.1",
                "-u",
                "nobody",
                "--max-children",
                "1",
            ])
            .args(["-p", &port.to_string()])
            .arg(format!(
                "--pidfile={}",
                pid_dir.path().join("spamd.pid").display()
            ))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start spamd (Debian spamassassin)");
        // Owned at once, so a failed start is still killed and reaped.
        let spamd = Spamd {
            port,
            child,
            _pid_dir: pid_dir,
        };
        // Loading the rules takes seconds.
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return spamd;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("spamd did not listen on port {port} within 60 s");
    }
}

impl Drop for Spamd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SpamAssassin's test pattern (GTUBE): any spamd scores it 1000.
const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

fn plain(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{}@x.example>\r\nFrom: Jan <jan@klant.example>\r\nTo: {SUPPORT}\r\n\
         Subject: {subject}\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n",
        subject.replace(' ', ".")
    )
    .into_bytes()
}

async fn daemon_with_spamd(address: &str, timeout: u32) -> Daemon {
    Daemon::start_with_classification(&format!(
        "spamd = {{ address = \"{address}\", timeout = {timeout} }}"
    ))
    .await
}

#[tokio::test]
async fn spamd_judges_mail_and_its_rules_are_the_reasons() {
    let spamd = Spamd::start().await;
    let d = daemon_with_spamd(&format!("127.0.0.1:{}", spamd.port), 20).await;
    let id = deliver(&d, &plain("Test pattern", GTUBE), "Test pattern").await;
    let c = classification_of_first_message(&d, &id);
    assert_eq!(c["verdict"], "spam", "{c}");
    let reasons: Vec<&str> = c["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("spamd:1000")),
        "{reasons:?}"
    );
    assert!(reasons.contains(&"spamd:GTUBE"), "{reasons:?}");

    let id = deliver(
        &d,
        &plain("Plain question", "Where is my parcel?"),
        "Plain question",
    )
    .await;
    assert_eq!(classification_of_first_message(&d, &id)["verdict"], "clean");
    d.stop().await;
}

#[tokio::test]
async fn a_scanner_that_is_down_or_silent_never_holds_mail_back() {
    // Nothing listens here: refused at once.
    let refused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let refused_addr = refused.local_addr().expect("addr");
    drop(refused);
    let d = daemon_with_spamd(&refused_addr.to_string(), 1).await;
    let id = deliver(&d, &plain("Scanner down", GTUBE), "Scanner down").await;
    assert_eq!(classification_of_first_message(&d, &id)["verdict"], "clean");
    d.stop().await;

    // Accepts connections and never answers: the 1 s timeout ends the wait.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let d = daemon_with_spamd(&silent_addr.to_string(), 1).await;
    let started = std::time::Instant::now();
    let id = deliver(&d, &plain("Scanner silent", GTUBE), "Scanner silent").await;
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(900),
        "answered too soon to have asked: {took:?}"
    );
    assert!(took < std::time::Duration::from_secs(4), "took {took:?}");
    assert_eq!(classification_of_first_message(&d, &id)["verdict"], "clean");
    held.abort();
    d.stop().await;
}

#[tokio::test]
async fn spam_stats_counts_marks_and_a_stale_model_is_retrained_from_them() {
    let d = Daemon::start().await;
    for n in 0..ENOUGH {
        let (raw, subject) = message(n, "advert", ADVERT_WORDS);
        let id = deliver(&d, &raw, &subject).await;
        d.cli(&["conversations", "spam", &id, "--as", AGENT]);
    }
    let stats: Value =
        serde_json::from_str(&d.cli(&["spam", "stats", "--json"])).expect("stats json");
    assert_eq!(stats["spam"], ENOUGH, "{stats}");
    assert_eq!(stats["marked_spam"], ENOUGH, "{stats}");
    assert_eq!(stats["ham"], 0, "{stats}");
    assert_eq!(stats["stale"], false, "{stats}");
    assert!(stats["tokens"].as_i64().expect("tokens") > 0, "{stats}");
    assert!(stats["trained_at"].is_string(), "{stats}");

    // A model made by an older tokenizer (as after an upgrade) is stale …
    d.execute_sql("UPDATE bayes_totals SET tokenizer = 1");
    let stats: Value =
        serde_json::from_str(&d.cli(&["spam", "stats", "--json"])).expect("stats json");
    assert_eq!(stats["stale"], true, "{stats}");

    // … and the next training resets it and retrains the marked messages.
    let folder = tempfile::tempdir().expect("tempdir");
    let (raw, _) = message(99, "question", QUESTION_WORDS);
    std::fs::write(folder.path().join("1.eml"), raw).expect("write");
    let out = d.cli(&[
        "spam",
        "train",
        "--ham",
        folder.path().to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.contains(&format!(
            "counts were reset and {ENOUGH} marked message(s) retrained"
        )),
        "{out}"
    );
    let stats: Value =
        serde_json::from_str(&d.cli(&["spam", "stats", "--json"])).expect("stats json");
    assert_eq!(stats["stale"], false, "{stats}");
    assert_eq!(
        (stats["spam"].clone(), stats["ham"].clone()),
        (ENOUGH.into(), 1.into())
    );
    d.stop().await;
}
