//! A private PostgreSQL cluster for the integration tests (`INBOXGATE_TEST_BACKEND=postgres`).
//!
//! One cluster per test process, started on first use ([`cluster`]): Debian's
//! PostgreSQL server binaries, `initdb` as the `postgres` user in a fresh temporary
//! folder (the data in `data`, or in a directory the test gives, e.g. a small tmpfs:
//! [`Cluster::start_in`]; the write-ahead log in `wal`), a free loopback port. Each
//! test installation gets its own database ([`Cluster::create_database`]), owned by the role `inboxgate_test`, whose password
//! is in a file the configurations name (`store.password_file`): connections over TCP
//! must give it (scram-sha-256); the Unix socket in the folder trusts the superuser
//! `postgres`, for [`Cluster::psql`].
//!
//! A watchdog (`sh` as `postgres`) holds the read end of a pipe whose write end only
//! this process has: when the process ends, however it ends, the read sees end of file
//! and the watchdog stops the cluster and removes its folder. (`kill -0` on our pid
//! cannot work from the `postgres` user: it is refused for a root process.)

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// The role every test database belongs to; the daemon connects as it.
pub const ROLE: &str = "inboxgate_test";

static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The test process's cluster, started by the first caller.
#[track_caller]
pub fn cluster() -> &'static Cluster {
    match SHARED.get_or_init(Cluster::start_new) {
        Ok(cluster) => cluster,
        Err(why) => panic!("{why}"),
    }
}

/// A running cluster: its port, its folder (data, socket, password file, log).
pub struct Cluster {
    pub port: u16,
    bin: PathBuf,
    root: PathBuf,
    /// The data directory: `root/data`, or one the caller gave ([`Cluster::start_in`]).
    data: PathBuf,
    password: String,
    /// Its stdin is the pipe that keeps the watchdog waiting; dropping it stops all.
    watchdog: Mutex<Option<Child>>,
    databases: AtomicUsize,
}

impl Cluster {
    /// Starts another cluster of its own (most tests share [`cluster`]; a test that
    /// stops the database must not stop everyone's). It ends when dropped.
    pub fn start_new() -> Result<Cluster, String> {
        Cluster::launch(None)
    }

    /// [`Cluster::start_new`] with the data directory at `data`, an empty directory
    /// (e.g. a small filesystem's mount point) that the `postgres` user can reach: it
    /// is given to that user. The write-ahead log stays in the cluster's own folder, as
    /// on a server whose `pg_wal` has a volume of its own. Left in place when dropped.
    pub fn start_in(data: &Path) -> Result<Cluster, String> {
        Cluster::launch(Some(data))
    }

    fn launch(data: Option<&Path>) -> Result<Cluster, String> {
        let began = Instant::now();
        let bin = server_binaries()?;
        let root = private_folder()?;
        let data = match data {
            Some(data) => {
                give_to_postgres(data)?;
                data.to_path_buf()
            }
            None => root.join("data"),
        };
        let watchdog = spawn_watchdog(&bin, &root, &data)?;
        let cluster = Cluster {
            port: free_port()?,
            bin,
            root,
            data,
            password: random_password()?,
            watchdog: Mutex::new(Some(watchdog)),
            databases: AtomicUsize::new(0),
        };
        cluster.init()?;
        let initialized = began.elapsed();
        cluster.try_start()?;
        cluster.create_role()?;
        eprintln!(
            "postgres test cluster on 127.0.0.1:{} in {}: ready in {:.2?} (initdb {:.2?})",
            cluster.port,
            cluster.root.display(),
            began.elapsed(),
            initialized
        );
        Ok(cluster)
    }

    /// The file holding the password of [`ROLE`] (one line), for `store.password_file`.
    pub fn password_file(&self) -> PathBuf {
        self.root.join("inboxgate_test.pw")
    }

    /// A URL for `database` as [`ROLE`], without the password, for `store.url`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{database}", self.port)
    }

    /// A new empty database owned by [`ROLE`]: `ig_<pid>_<n>`.
    pub fn create_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::SeqCst);
        let name = format!("ig_{}_{n}", std::process::id());
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {name} OWNER {ROLE} ENCODING 'UTF8'"),
        );
        name
    }

    /// The `[store]` section of a configuration on a new database of this cluster.
    pub fn store_section(&self) -> String {
        let database = self.create_database();
        format!(
            "[store]\nbackend = \"postgres\"\nurl = \"{}\"\npassword_file = \"{}\"\n",
            self.url(&database),
            self.password_file().display()
        )
    }

    /// Runs `sql` in `database` as the superuser over the Unix socket; returns the rows
    /// unaligned (`|` between columns, one row a line), without the final newline.
    /// Fails the test when psql fails.
    #[track_caller]
    pub fn psql(&self, database: &str, sql: &str) -> String {
        match self.try_psql(database, sql) {
            Ok(rows) => rows,
            Err(why) => panic!("psql on {database}: {sql}: {why}"),
        }
    }

    /// [`Cluster::psql`], with its error (e.g. while the cluster is stopped).
    pub fn try_psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let output = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
            ])
            .arg("-h")
            .arg(&self.root)
            .args(["-p", &self.port.to_string(), "-d", database, "-c", sql])
            .env_remove("PGPASSWORD")
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        let rows = outcome("psql", &output)?;
        Ok(rows.trim_end_matches('\n').to_string())
    }

    /// Runs `sql` as the daemon connects: over TCP to `url` (a `store.url`), with
    /// `password`; returns the rows as [`Cluster::psql`] does, or psql's error.
    pub fn psql_url(&self, url: &str, password: &str, sql: &str) -> Result<String, String> {
        let output = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-w"])
            .args(["-d", url, "-c", sql])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        let rows = outcome("psql", &output)?;
        Ok(rows.trim_end_matches('\n').to_string())
    }

    /// The cluster's folder: data, socket, password file, server log.
    pub fn folder(&self) -> &Path {
        &self.root
    }

    /// `pg_dump` of `database`'s rows: everything the store keeps, as text.
    #[track_caller]
    pub fn dump(&self, database: &str) -> Vec<u8> {
        let output = Command::new(self.bin.join("pg_dump"))
            .args(["--data-only", "-U", "postgres", "-h"])
            .arg(&self.root)
            .args(["-p", &self.port.to_string(), database])
            .output()
            .expect("run pg_dump");
        if let Err(why) = outcome("pg_dump", &output) {
            panic!("{why}");
        }
        output.stdout
    }

    /// Stops the cluster (fast shutdown: connections are ended). Fails the test on error.
    #[track_caller]
    pub fn stop(&self) {
        let data = self.data();
        let output = self
            .as_postgres(&self.bin.join("pg_ctl"))
            .args(["stop", "-w", "-m", "fast", "-D"])
            .arg(&data)
            .output()
            .expect("run pg_ctl stop");
        if let Err(why) = outcome("pg_ctl stop", &output) {
            panic!("{why}");
        }
    }

    /// Starts the cluster again on the same port and data. Fails the test on error.
    #[track_caller]
    pub fn start(&self) {
        if let Err(why) = self.try_start() {
            panic!("{why}");
        }
    }

    fn data(&self) -> PathBuf {
        self.data.clone()
    }

    /// A command run as the `postgres` user, in the cluster's folder (the caller's
    /// working directory may be closed to that user).
    fn as_postgres(&self, program: &Path) -> Command {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(program)
            .current_dir(&self.root)
            .stdin(Stdio::null());
        command
    }

    /// `initdb`: UTF-8 with the C.UTF-8 locale (a build machine's `LANG` must not
    /// decide the encoding), the socket trusted, TCP by password.
    fn init(&self) -> Result<(), String> {
        let output = self
            .as_postgres(&self.bin.join("initdb"))
            .arg("-D")
            .arg(self.data())
            .arg("--waldir")
            .arg(self.root.join("wal"))
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ])
            .output()
            .map_err(|e| format!("cannot run initdb as postgres: {e}"))?;
        outcome("initdb", &output).map(drop)
    }

    /// `pg_ctl start`, waiting until it takes connections. `fsync=off` is for this
    /// throwaway test cluster only (nothing in it must survive a machine crash); commits
    /// still wait for the server (`synchronous_commit` stays on).
    fn try_start(&self) -> Result<(), String> {
        let settings = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories='{}' \
             -c fsync=off -c max_connections=400",
            self.port,
            self.root.display()
        );
        let output = self
            .as_postgres(&self.bin.join("pg_ctl"))
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(self.root.join("postgres.log"))
            .args(["-o", &settings])
            .output()
            .map_err(|e| format!("cannot run pg_ctl start: {e}"))?;
        outcome("pg_ctl start", &output).map_err(|why| {
            let log = std::fs::read_to_string(self.root.join("postgres.log")).unwrap_or_default();
            format!("{why}\nserver log:\n{log}")
        })?;
        Ok(())
    }

    /// The role the daemon connects as, with its password, and the file holding it.
    fn create_role(&self) -> Result<(), String> {
        let sql = format!("CREATE ROLE {ROLE} LOGIN PASSWORD '{}'", self.password);
        self.try_psql("postgres", &sql)?;
        std::fs::write(self.password_file(), format!("{}\n", self.password))
            .map_err(|e| format!("write {}: {e}", self.password_file().display()))
    }
}

impl Drop for Cluster {
    /// Closes the watchdog's pipe and waits while it stops the cluster and removes the
    /// folder. (The shared cluster is never dropped: process exit closes the pipe.)
    fn drop(&mut self) {
        let watchdog = match self.watchdog.get_mut() {
            Ok(watchdog) => watchdog.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(mut watchdog) = watchdog {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

/// The server binaries: `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin.
fn server_binaries() -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        if output.status.success() {
            let dir = String::from_utf8_lossy(&output.stdout).trim().to_string();
            candidates.push(PathBuf::from(dir));
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| dirs.flatten().map(|d| d.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    candidates.extend(versions.into_iter().rev());
    candidates
        .into_iter()
        .find(|dir| {
            ["initdb", "pg_ctl", "psql"]
                .iter()
                .all(|b| dir.join(b).is_file())
        })
        .ok_or_else(|| {
            "PostgreSQL server binaries (initdb, pg_ctl) not found in `pg_config --bindir` \
             or /usr/lib/postgresql/*/bin: install postgresql (apt-get install postgresql), \
             as scripts/test does"
                .to_string()
        })
}

/// A new folder in the temporary directory, owned by `postgres` (initdb wants its data
/// folder owned by the server's user; the watchdog removes it as that user).
fn private_folder() -> Result<PathBuf, String> {
    let root_only = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root_only {
        return Err(
            "not root: the PostgreSQL test cluster runs initdb as the postgres user \
                    through runuser, which needs root; run the tests as root, as CI does"
                .into(),
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("inboxgate-pg-")
        .tempdir()
        .map_err(|e| format!("temporary folder: {e}"))?
        .keep();
    give_to_postgres(&dir)?;
    Ok(dir)
}

/// Makes the `postgres` user the owner of `dir`.
fn give_to_postgres(dir: &Path) -> Result<(), String> {
    let status = Command::new("chown")
        .arg("postgres:postgres")
        .arg(dir)
        .status()
        .map_err(|e| format!("cannot run chown: {e}"))?;
    if !status.success() {
        return Err(format!(
            "chown postgres {} failed: is there a postgres user (install postgresql)?",
            dir.display()
        ));
    }
    Ok(())
}

/// `sh` as `postgres`, in its own process group (a Ctrl-C on the tests must not stop
/// it before it has cleaned up), waiting for end of file on its stdin.
fn spawn_watchdog(bin: &Path, root: &Path, data: &Path) -> Result<Child, String> {
    use std::os::unix::process::CommandExt;
    const SCRIPT: &str = "trap '' INT HUP TERM
cat >/dev/null
\"$1\" stop -D \"$3\" -m immediate >/dev/null 2>&1
rm -rf \"$2\"";
    Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            "sh",
            "-c",
            SCRIPT,
            "inboxgate-pg-watchdog",
        ])
        .arg(bin.join("pg_ctl"))
        .arg(root)
        .arg(data)
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the cluster's watchdog with runuser: {e}"))
}

/// A loopback port nobody listens on now.
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// 32 hex digits from the kernel's random source.
fn random_password() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The command's stdout when it succeeded, else what it said.
fn outcome(what: &str, output: &Output) -> Result<String, String> {
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    Err(format!(
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::config_text_on;
    use inboxgate::config::{self, StoreTarget};

    /// The URL and password a configuration with `store_section` gives the store.
    fn target(store_section: &str) -> (String, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = config_text_on(&dir.path().join("data"), "", store_section);
        let config = config::parse(&text).expect("the test config is valid on postgres");
        match config.store_target() {
            StoreTarget::Postgres {
                url,
                password: Some(password),
                ..
            } => (url, password),
            other => panic!("not postgres with a password: {other:?}"),
        }
    }

    #[test]
    fn support_pg_cluster_starts_and_gives_each_daemon_its_own_database() {
        let began = Instant::now();
        let cluster = cluster();
        eprintln!(
            "support::pg::cluster() returned after {:.2?}",
            began.elapsed()
        );
        let (first_url, password) = target(&cluster.store_section());
        let (second_url, second_password) = target(&cluster.store_section());
        assert_ne!(first_url, second_url);
        assert_eq!(password, second_password);
        let written = std::fs::read_to_string(cluster.password_file()).expect("password file");
        assert_eq!(written, format!("{password}\n"));
        let mut databases = Vec::new();
        for url in [&first_url, &second_url] {
            let row = cluster
                .psql_url(url, &password, "SELECT current_database(), current_user")
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            let (database, user) = row.split_once('|').expect("two columns");
            assert_eq!(user, ROLE);
            assert!(url.ends_with(&format!("/{database}")), "{url} {database}");
            let tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'";
            assert_eq!(
                cluster.psql(database, tables),
                "0",
                "a new database is empty"
            );
            // The role owns it: it can create what a migration creates.
            cluster
                .psql_url(url, &password, "CREATE TABLE probe (id bigint PRIMARY KEY)")
                .expect("the role creates a table");
            assert_eq!(cluster.psql(database, "SELECT 1"), "1");
            databases.push(database.to_string());
        }
        assert_ne!(databases[0], databases[1]);
        let refused = cluster
            .psql_url(&first_url, "not-the-password", "SELECT 1")
            .expect_err("a wrong password is refused");
        assert!(
            refused.contains("password authentication failed"),
            "{refused}"
        );
        eprintln!(
            "two databases made and checked after {:.2?}",
            began.elapsed()
        );
    }

    #[test]
    fn support_pg_cluster_stops_and_starts_on_the_same_port_with_its_data() {
        let began = Instant::now();
        let cluster = Cluster::start_new().unwrap_or_else(|why| panic!("{why}"));
        let started = began.elapsed();
        let database = cluster.create_database();
        cluster.psql(
            &database,
            "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)",
        );
        let port = cluster.port;
        let stopping = Instant::now();
        cluster.stop();
        let stopped = stopping.elapsed();
        let down = cluster
            .try_psql(&database, "SELECT 1")
            .expect_err("a stopped cluster answers nothing");
        assert!(
            down.contains("No such file") || down.contains("connect"),
            "{down}"
        );
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        let starting = Instant::now();
        cluster.start();
        let restarted = starting.elapsed();
        assert_eq!(cluster.port, port);
        assert_eq!(cluster.psql(&database, "SELECT n FROM kept"), "7");
        let (url, password) = target(&cluster.store_section());
        cluster
            .psql_url(&url, &password, "SELECT 1")
            .expect("TCP on the same port after the restart");
        let folder = cluster.folder().to_path_buf();
        drop(cluster);
        assert!(
            !folder.exists(),
            "the watchdog removed {}",
            folder.display()
        );
        eprintln!(
            "private cluster: started in {started:.2?}, stopped in {stopped:.2?}, \
             started again in {restarted:.2?}"
        );
    }
}
