//! TLS to the PostgreSQL store (issue 15): rustls, the configured CA trusted, an
//! unknown one refused, the password never in the output. Runs on PostgreSQL whatever
//! `INBOXGATE_TEST_BACKEND` says (it is about the PostgreSQL connection).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::postgres_cluster::Cluster;
use crate::support::*;

/// A CA and a certificate for 127.0.0.1 it signed: (ca.pem, cert.pem, key.pem).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "inboxgate database CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.crt"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, leaf.pem()).unwrap();
    std::fs::write(&paths.2, leaf_key.serialize_pem()).unwrap();
    paths
}

/// Turns TLS on in `cluster` with `cert`/`key` (copied where the server may read them).
fn enable_tls(cluster: &Cluster, cert: &Path, key: &Path) {
    let folder = cluster.folder();
    for (from, name) in [(cert, "server.crt"), (key, "server.key")] {
        let to = folder.join(name);
        std::fs::copy(from, &to).unwrap();
        let status = Command::new("chown")
            .arg("postgres")
            .arg(&to)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    // One statement per call: ALTER SYSTEM refuses to run in a transaction block.
    for setting in [
        "ssl = on".to_string(),
        format!("ssl_cert_file = '{}'", folder.join("server.crt").display()),
        format!("ssl_key_file = '{}'", folder.join("server.key").display()),
    ] {
        cluster.psql("postgres", &format!("ALTER SYSTEM SET {setting}"));
    }
    cluster.psql("postgres", "SELECT pg_reload_conf()");
}

fn store_section(cluster: &Cluster, database: &str, ca: Option<&Path>) -> String {
    let ca = ca.map_or(String::new(), |p| {
        format!("ca_file = \"{}\"\n", p.display())
    });
    format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{}?sslmode=require\"\npassword_file = \"{}\"\n{ca}",
        cluster.url(database),
        cluster.password_file().display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_connects_over_tls_trusting_its_ca_file_and_refuses_an_unknown_ca() {
    require("runuser", "util-linux");
    let cluster = Cluster::start_new().expect("a private PostgreSQL cluster");
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    enable_tls(&cluster, &cert, &key);
    let database = cluster.create_database();

    // Without the CA (system roots only) the certificate is not trusted: the store
    // cannot be opened, and the error says why without the password.
    let config = dir.path().join("untrusted.toml");
    let text = config_text_on(
        &dir.path().join("data"),
        "",
        &store_section(&cluster, &database, None),
    );
    std::fs::write(&config, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_inboxgate"))
        .arg("--config")
        .arg(&config)
        .args(["conversations", "list"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "an untrusted database certificate was accepted"
    );
    assert!(
        stderr.contains("certificate") || stderr.contains("Certificate"),
        "the refusal names the certificate: {stderr}"
    );
    let password = std::fs::read_to_string(cluster.password_file()).unwrap();
    assert!(
        !stderr.contains(password.trim()),
        "the password leaked: {stderr}"
    );

    // With the CA the daemon runs, over TLS, and mail is stored.
    let store = store_section(&cluster, &database, Some(&ca));
    let d = Daemon::start_edited(|text, _| {
        let data = text
            .lines()
            .find_map(|l| l.strip_prefix("data_dir = \""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("data_dir")
            .to_string();
        config_text_on(Path::new(&data), "", &store)
    })
    .await;
    let reply = d
        .send(
            "jan@klant.example",
            &["support@demo.hs-inbox.com"],
            b"From: jan@klant.example\r\nSubject: Over TLS\r\nMessage-ID: <tls-1@klant.example>\r\n\r\nHello\r\n",
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let tls_sessions = cluster.psql(
        &database,
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND s.ssl",
    );
    let plain_sessions = cluster.psql(
        &database,
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND NOT s.ssl",
    );
    assert!(tls_sessions.parse::<i64>().unwrap() >= 1, "no TLS session");
    assert_eq!(plain_sessions, "0", "a session without TLS");
    let stored = cluster.psql(&database, "SELECT subject FROM messages");
    assert_eq!(stored, "Over TLS");
    d.stop().await;
}
