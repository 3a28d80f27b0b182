//! Accuracy of the connect phase: what dbvigil reports as the time of a TLS + password
//! login must be what a login costs, not an artefact of its driver. The reference is each
//! engine's own C client library against the same server in the same run: libpq
//! (`PQconnectdb`) for PostgreSQL with TLS and SCRAM, MariaDB Connector/C
//! (`mysql_real_connect`) for MariaDB with TLS and a password, both through Python's
//! ctypes as bench/logins.py does, timed around the login call alone.
//!
//! A driver that lost `TCP_NODELAY` makes the TLS handshake and the authentication wait on
//! delayed ACKs: about 92 ms per PostgreSQL login against libpq's 8 ms. The bound here,
//! dbvigil's median ≤ 1.5 × the library's median + 5 ms, catches that by a wide margin
//! and leaves room for a debug build on two busy cores. dbvigil's MariaDB figure also
//! holds its `SELECT VERSION()` and `SET SESSION max_statement_time` (a `/probe` starts
//! from a new prober), two loopback round trips.
//!
//! The samples are interleaved (a batch of library logins, then a batch of `/probe`
//! calls, and again), after a warm-up of each, so that a burst of load on the machine
//! falls on both.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use common::db::{Db, Engine, block};
use common::servers::{find_program, skip_or_fail, test_certs};
use common::{Metrics, TestExporter, tempdir};

const WARM_UP: usize = 5;
const ROUNDS: usize = 8;
const PER_ROUND: usize = 5;

/// The two tests measure one at a time: each would be the other's noise.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Logins with the engine's C library, in a Python process that stays up between
/// batches: writes a count to its stdin, reads that many login times (seconds) back.
const LOGINS_PY: &str = r#"
import ctypes, ctypes.util, sys, time

kind = sys.argv[1]
if kind == "pg":
    lib = ctypes.CDLL(ctypes.util.find_library("pq") or "libpq.so.5")
    lib.PQconnectdb.restype = ctypes.c_void_p
    lib.PQconnectdb.argtypes = [ctypes.c_char_p]
    lib.PQstatus.argtypes = [ctypes.c_void_p]
    lib.PQsslInUse.argtypes = [ctypes.c_void_p]
    lib.PQerrorMessage.restype = ctypes.c_char_p
    lib.PQerrorMessage.argtypes = [ctypes.c_void_p]
    lib.PQfinish.argtypes = [ctypes.c_void_p]
    conninfo = sys.argv[2].encode()

    def login():
        start = time.perf_counter()
        conn = lib.PQconnectdb(conninfo)
        took = time.perf_counter() - start
        try:
            if lib.PQstatus(conn) != 0:
                sys.exit("libpq login failed: " + lib.PQerrorMessage(conn).decode())
            if not lib.PQsslInUse(conn):
                sys.exit("libpq logged in without TLS")
        finally:
            lib.PQfinish(conn)
        return took
else:
    lib = ctypes.CDLL(ctypes.util.find_library("mariadb") or "libmariadb.so.3")
    lib.mysql_init.restype = ctypes.c_void_p
    lib.mysql_init.argtypes = [ctypes.c_void_p]
    lib.mysql_ssl_set.argtypes = [ctypes.c_void_p] + [ctypes.c_char_p] * 5
    lib.mysql_real_connect.restype = ctypes.c_void_p
    lib.mysql_real_connect.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                       ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint,
                                       ctypes.c_char_p, ctypes.c_ulong]
    lib.mysql_get_ssl_cipher.restype = ctypes.c_char_p
    lib.mysql_get_ssl_cipher.argtypes = [ctypes.c_void_p]
    lib.mysql_error.restype = ctypes.c_char_p
    lib.mysql_error.argtypes = [ctypes.c_void_p]
    lib.mysql_close.argtypes = [ctypes.c_void_p]
    host, port, user, password, db, ca = sys.argv[2:8]

    def login():
        m = lib.mysql_init(None)
        lib.mysql_ssl_set(m, None, None, ca.encode(), None, None)
        try:
            start = time.perf_counter()
            ok = lib.mysql_real_connect(m, host.encode(), user.encode(), password.encode(),
                                        db.encode(), int(port), None, 0)
            took = time.perf_counter() - start
            if not ok:
                sys.exit("Connector/C login failed: " + lib.mysql_error(m).decode())
            if not lib.mysql_get_ssl_cipher(m):
                sys.exit("Connector/C logged in without TLS")
        finally:
            lib.mysql_close(m)
        return took

for line in sys.stdin:
    print(" ".join("%.6f" % login() for _ in range(int(line))), flush=True)
"#;

struct LibraryLogins {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl LibraryLogins {
    /// `None` (after `skip_or_fail`) without python3.
    fn start(args: &[String]) -> Option<LibraryLogins> {
        let Some(python) = find_program("python3") else {
            skip_or_fail("python3 not found: the reference logins run through ctypes");
            return None;
        };
        let mut cmd = Command::new(python);
        cmd.arg("-c")
            .arg(LOGINS_PY)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("PG") || k.starts_with("MYSQL") || k.starts_with("MARIADB") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd.spawn().expect("cannot start python3");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Some(LibraryLogins {
            child,
            stdin,
            stdout,
        })
    }

    /// `n` logins: their times in seconds.
    fn logins(&mut self, n: usize) -> Vec<f64> {
        writeln!(self.stdin, "{n}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let times: Vec<f64> = line
            .split_whitespace()
            .map(|t| t.parse().unwrap())
            .collect();
        assert_eq!(
            times.len(),
            n,
            "the reference login helper failed (its stderr is above): {line:?}"
        );
        times
    }
}

impl Drop for LibraryLogins {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `/probe` of `target`: its connect phase in seconds.
async fn probe_connect(e: &TestExporter, target: &str) -> f64 {
    let r = e.get(&format!("/probe?target={target}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let m = Metrics::parse(&r.body);
    assert_eq!(
        m.value("dbvigil_probe_success", &[("target", target)]),
        1.0,
        "{}",
        r.body
    );
    m.value(
        "dbvigil_probe_phase_duration_seconds",
        &[("target", target), ("phase", "connect")],
    )
}

fn quantile(samples: &[f64], q: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * q).round() as usize]
}

async fn connect_phase_matches_the_c_library(engine: Engine) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let t = Instant::now();
    let Some(db) = Db::start(engine) else { return };
    let ca = test_certs().ca_file.display().to_string();
    let (library, args) = match engine {
        Engine::Postgres => (
            "libpq",
            vec![
                "pg".to_owned(),
                format!(
                    "host=127.0.0.1 port={} user=probe password=probe-pw dbname=app \
                     sslmode=verify-full sslrootcert={ca} gssencmode=disable connect_timeout=10",
                    db.port()
                ),
            ],
        ),
        Engine::MariaDb => (
            "MariaDB Connector/C",
            [
                "maria",
                "127.0.0.1",
                &db.port().to_string(),
                "probe",
                "probe-pw",
                "app",
                &ca,
            ]
            .map(String::from)
            .to_vec(),
        ),
    };
    let Some(mut lib) = LibraryLogins::start(&args) else {
        return;
    };
    // Only the login is checked. The scheduled probes are kept out of the measurement
    // by a long interval: the first one runs at a point within it fixed by a hash of
    // the name, not at start.
    let yaml = format!(
        "targets:\n  - name: db\n{}    interval: 1h\n    timeout: 5s\n    checks: [connect]\n",
        db.probe_settings()
    );
    let dir = tempdir();
    let e = TestExporter::start(dir.path(), &yaml).await;

    block(|| lib.logins(WARM_UP));
    for _ in 0..WARM_UP {
        probe_connect(&e, "db").await;
    }
    let (mut theirs, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        theirs.extend(block(|| lib.logins(PER_ROUND)));
        for _ in 0..PER_ROUND {
            ours.push(probe_connect(&e, "db").await);
        }
    }
    let (their_median, our_median) = (quantile(&theirs, 0.5), quantile(&ours, 0.5));
    let report = format!(
        "{engine:?} TLS + password login over {} samples each: dbvigil connect phase median {:.2} ms (p90 {:.2} ms), {library} median {:.2} ms (p90 {:.2} ms)",
        ours.len(),
        our_median * 1e3,
        quantile(&ours, 0.9) * 1e3,
        their_median * 1e3,
        quantile(&theirs, 0.9) * 1e3,
    );
    eprintln!("{report}; test {:.1}s", t.elapsed().as_secs_f64());
    assert!(
        our_median <= 1.5 * their_median + 0.005,
        "dbvigil's connect phase is slower than 1.5 x {library}'s + 5 ms: {report}"
    );
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connect_phase_matches_libpq() {
    connect_phase_matches_the_c_library(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_connect_phase_matches_connector_c() {
    connect_phase_matches_the_c_library(Engine::MariaDb).await;
}
