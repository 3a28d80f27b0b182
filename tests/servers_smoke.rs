//! Smoke tests of the throwaway-server harness in tests/common/servers/: real
//! PostgreSQL and MariaDB servers are started, queried, stopped, restarted, frozen and
//! thawed, and the effects are checked from the outside (TCP, wire protocol, /proc).
//! Then the production shape: TLS and password logins, PgBouncer in both pool modes
//! (common/topology.rs), a streaming standby, a MariaDB replica, and lost packets
//! (common/netfault.rs).

#[path = "common/netfault.rs"]
mod netfault;
#[path = "common/servers/mod.rs"]
mod servers;
#[path = "common/topology.rs"]
mod topology;

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread;
use std::time::{Duration, Instant};

use servers::{MariaDbServer, PgServer, ci, free_port, skip_or_fail};

const FROZEN_READ: Duration = Duration::from_millis(500);
const THAWED_READ: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Harness-independent helpers
// ---------------------------------------------------------------------------------------

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn connect(port: u16) -> TcpStream {
    TcpStream::connect_timeout(&addr(port), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("cannot connect to 127.0.0.1:{port}: {e}"))
}

fn assert_refused(port: u16) {
    match TcpStream::connect_timeout(&addr(port), Duration::from_secs(5)) {
        Ok(_) => panic!("127.0.0.1:{port} still accepts connections"),
        Err(e) => assert_eq!(
            e.kind(),
            ErrorKind::ConnectionRefused,
            "connect to {port}: {e}"
        ),
    }
}

/// Asserts that nothing arrives on `s` within FROZEN_READ.
fn assert_read_times_out(s: &mut TcpStream, what: &str) {
    s.set_read_timeout(Some(FROZEN_READ)).unwrap();
    let mut buf = [0u8; 1];
    match s.read(&mut buf) {
        Ok(n) => panic!("{what}: expected silence, read {n} byte(s) {:?}", &buf[..n]),
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{what}: expected a read timeout, got {e}"
        ),
    }
}

fn read_exact_timeout(s: &mut TcpStream, n: usize, timeout: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
    buf
}

fn eventually(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < within,
            "timed out after {within:?} waiting for: {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// (state, ppid) from /proc/PID/stat.
fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    Some((f.next()?.chars().next()?, f.next()?.parse().ok()?))
}

fn children_tree(root: i32) -> Vec<i32> {
    let all: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|p| proc_stat(p).map(|(_, ppid)| (p, ppid)))
        .collect();
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(parent) = todo.pop() {
        for &(p, ppid) in &all {
            if ppid == parent {
                out.push(p);
                todo.push(p);
            }
        }
    }
    out
}

fn timed(name: &str, started: Instant) {
    eprintln!("{name}: {:.2?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------
// A minimal PostgreSQL wire-protocol client (trust authentication only)
// ---------------------------------------------------------------------------------------

fn pg_message(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let head = read_exact_timeout(s, 5, THAWED_READ);
    let len = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
    (head[0], read_exact_timeout(s, len - 4, THAWED_READ))
}

/// Reads messages until ReadyForQuery; returns the first column of every DataRow.
fn pg_until_ready(s: &mut TcpStream) -> Vec<String> {
    let mut rows = Vec::new();
    loop {
        let (kind, body) = pg_message(s);
        match kind {
            b'E' => panic!("server error: {}", String::from_utf8_lossy(&body)),
            b'R' => assert_eq!(
                &body[..4],
                &[0, 0, 0, 0],
                "authentication other than trust requested"
            ),
            b'D' => {
                let len = i32::from_be_bytes(body[2..6].try_into().unwrap());
                rows.push(String::from_utf8_lossy(&body[6..6 + len as usize]).into_owned());
            }
            b'Z' => return rows,
            _ => {}
        }
    }
}

/// Logs in as `user` on database `postgres` over TCP and waits for ReadyForQuery.
fn pg_login(port: u16, user: &str) -> TcpStream {
    let mut s = connect(port);
    let mut body = 196608u32.to_be_bytes().to_vec(); // protocol 3.0
    for (k, v) in [("user", user), ("database", "postgres")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend(body);
    s.write_all(&msg).unwrap();
    pg_until_ready(&mut s);
    s
}

fn pg_query(s: &mut TcpStream, sql: &str) -> Vec<String> {
    let mut msg = vec![b'Q'];
    msg.extend(((sql.len() + 5) as u32).to_be_bytes());
    msg.extend_from_slice(sql.as_bytes());
    msg.push(0);
    s.write_all(&msg).unwrap();
    pg_until_ready(s)
}

/// Sends an SSLRequest, which the server answers with a single byte ('S' or 'N').
fn pg_ssl_request(port: u16) -> TcpStream {
    let mut s = connect(port);
    s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).unwrap();
    s
}

// ---------------------------------------------------------------------------------------
// A minimal MariaDB wire-protocol client (password-less users only)
// ---------------------------------------------------------------------------------------

fn my_packet(s: &mut TcpStream, timeout: Duration) -> (u8, Vec<u8>) {
    let head = read_exact_timeout(s, 4, timeout);
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
    (head[3], read_exact_timeout(s, len, timeout))
}

fn my_send(s: &mut TcpStream, seq: u8, payload: &[u8]) {
    let len = payload.len() as u32;
    let mut p = len.to_le_bytes()[..3].to_vec();
    p.push(seq);
    p.extend_from_slice(payload);
    s.write_all(&p).unwrap();
}

fn my_expect_ok(s: &mut TcpStream, what: &str) {
    let (_, reply) = my_packet(s, THAWED_READ);
    if reply[0] != 0 {
        panic!(
            "{what}: expected OK, got {:?}",
            String::from_utf8_lossy(&reply)
        );
    }
}

/// Logs in as a password-less `user` over TCP (mysql_native_password, empty response).
fn my_login(port: u16, user: &str) -> TcpStream {
    let mut s = connect(port);
    let (_, greeting) = my_packet(&mut s, THAWED_READ);
    assert_eq!(greeting[0], 10, "protocol version in the greeting");
    // LONG_PASSWORD | LONG_FLAG | PROTOCOL_41 | TRANSACTIONS | SECURE_CONNECTION | PLUGIN_AUTH
    let caps: u32 = 0x1 | 0x4 | 0x200 | 0x2000 | 0x8000 | 0x80000;
    let mut r = caps.to_le_bytes().to_vec();
    r.extend(0x0100_0000u32.to_le_bytes());
    r.push(33); // utf8_general_ci
    r.extend([0u8; 23]);
    r.extend_from_slice(user.as_bytes());
    r.push(0);
    r.push(0); // empty auth response
    r.extend_from_slice(b"mysql_native_password\0");
    my_send(&mut s, 1, &r);
    my_expect_ok(&mut s, "login");
    s
}

fn my_ping(s: &mut TcpStream) {
    my_send(s, 0, &[0x0e]);
    my_expect_ok(s, "COM_PING");
}

// ---------------------------------------------------------------------------------------
// Harness-wide
// ---------------------------------------------------------------------------------------

#[test]
fn free_port_hands_out_distinct_ports_across_threads() {
    let handles: Vec<_> = (0..8)
        .map(|_| thread::spawn(|| (0..25).map(|_| free_port()).collect::<Vec<_>>()))
        .collect();
    let ports: Vec<u16> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let unique: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(unique.len(), 200, "duplicate ports handed out");
    assert!(!unique.contains(&0));
    // Nothing listens on a port just handed out.
    assert_refused(free_port());
}

#[test]
fn skip_or_fail_skips_locally_and_fails_under_ci() {
    let result = catch_unwind(|| skip_or_fail("smoke test of skip_or_fail"));
    if ci() {
        assert!(result.is_err(), "under CI=true, skip_or_fail must panic");
    } else {
        assert!(result.unwrap(), "outside CI, skip_or_fail must say: skip");
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------

#[test]
fn pg_queries_tables_urls_and_connection_counts() {
    let t = Instant::now();
    let Some(pg) = PgServer::start() else { return };
    assert_ne!(pg.port(), 0);
    assert_eq!(pg.psql("select 1"), "1");
    assert!(pg.psql("select version()").starts_with("PostgreSQL "));
    assert_eq!(
        pg.psql("show listen_addresses; show fsync; show port"),
        format!("127.0.0.1\noff\n{}", pg.port())
    );
    // A script: CREATE DATABASE is not allowed in a multi-statement query string.
    pg.psql("create database other; create table t (id int, name text)");
    pg.psql("insert into t values (1, 'one'), (2, 'two')");
    assert_eq!(
        pg.psql("select id, name from t order by id"),
        "1|one\n2|two"
    );
    assert_eq!(
        pg.psql("select count(*) from pg_database where datname = 'other'"),
        "1"
    );

    let err = catch_unwind(AssertUnwindSafe(|| pg.psql("select * from no_such_table")));
    let msg = *err
        .expect_err("a failing statement must panic")
        .downcast::<String>()
        .unwrap();
    assert!(msg.contains("no_such_table"), "{msg}");

    let port = pg.port();
    assert_eq!(
        pg.url("alice", None, "postgres"),
        format!("postgres://alice@127.0.0.1:{port}/postgres")
    );
    assert_eq!(
        pg.url("alice", Some("p@ss:w/rd"), "db"),
        format!("postgres://alice:p%40ss%3Aw%2Frd@127.0.0.1:{port}/db")
    );

    // Over TCP, trust authentication, as a fresh role.
    pg.psql("create role alice login in role trusted");
    assert_eq!(pg.connection_count("alice"), 0);
    let mut a1 = pg_login(port, "alice");
    let a2 = pg_login(port, "alice");
    assert_eq!(pg_query(&mut a1, "select current_user"), ["alice"]);
    assert_eq!(pg.connection_count("alice"), 2);
    drop(a2);
    eventually(
        Duration::from_secs(5),
        "alice's second session to end",
        || pg.connection_count("alice") == 1,
    );
    timed("pg_queries_tables_urls_and_connection_counts", t);
}

#[test]
fn pg_stop_start_again_and_restart_keep_port_and_data() {
    let t = Instant::now();
    let Some(mut pg) = PgServer::start() else {
        return;
    };
    let port = pg.port();
    pg.psql("create table kept (v text); insert into kept values ('before stop')");
    let first_pid = pg.pid();

    pg.stop();
    assert_refused(port);
    assert!(
        proc_stat(first_pid).is_none(),
        "postmaster {first_pid} still exists after stop()"
    );

    pg.start_again();
    assert_eq!(pg.port(), port);
    assert_ne!(pg.pid(), first_pid);
    assert_eq!(pg.psql("select v from kept"), "before stop");
    pg.psql("insert into kept values ('before restart')");

    let second_pid = pg.pid();
    pg.restart();
    assert_ne!(pg.pid(), second_pid);
    assert_eq!(
        pg.psql("select string_agg(v, ',' order by v) from kept"),
        "before restart,before stop"
    );
    let mut s = pg_login(port, "postgres");
    assert_eq!(pg_query(&mut s, "select count(*) from kept"), ["2"]);
    timed("pg_stop_start_again_and_restart_keep_port_and_data", t);
}

#[test]
fn pg_freeze_stops_every_process_and_thaw_resumes_them() {
    let t = Instant::now();
    let Some(pg) = PgServer::start() else { return };
    let port = pg.port();
    pg.psql("create role alice login in role trusted");
    let mut session = pg_login(port, "alice");
    let backend: i32 = pg
        .psql("select pid from pg_stat_activity where usename = 'alice'")
        .parse()
        .unwrap();

    let postmaster = pg.pid();
    pg.freeze();
    let tree = children_tree(postmaster);
    assert!(
        tree.len() >= 4,
        "expected checkpointer, walwriter, ... under the postmaster, got {tree:?}"
    );
    assert!(
        tree.contains(&backend),
        "alice's backend {backend} is not a child of the postmaster"
    );
    // Zombies (backends that ended just before the freeze, not yet reaped) are fine.
    for pid in std::iter::once(postmaster).chain(tree.iter().copied()) {
        let state = proc_stat(pid).map(|(s, _)| s);
        assert!(
            matches!(state, Some('T' | 'Z')),
            "process {pid} is not stopped: {state:?}"
        );
    }
    assert_eq!(
        proc_stat(postmaster).map(|(s, _)| s),
        Some('T'),
        "postmaster"
    );
    assert_eq!(
        proc_stat(backend).map(|(s, _)| s),
        Some('T'),
        "alice's backend"
    );
    // The kernel still completes the TCP handshake, but nobody answers.
    let mut during = pg_ssl_request(port);
    assert_read_times_out(&mut during, "SSLRequest to a frozen postmaster");
    // Nor does the existing session's backend.
    session.write_all(b"Q\0\0\0\x0eselect 42\0").unwrap();
    assert_read_times_out(&mut session, "query on a frozen backend");

    pg.thaw();
    // `S`: TLS is on (the harness default), so the postmaster accepts the SSLRequest.
    assert_eq!(
        read_exact_timeout(&mut during, 1, THAWED_READ),
        b"S",
        "answer to the SSLRequest sent while frozen"
    );
    assert_eq!(
        pg_until_ready(&mut session),
        ["42"],
        "answer to the query sent while frozen"
    );
    assert_eq!(
        read_exact_timeout(&mut pg_ssl_request(port), 1, THAWED_READ),
        b"S"
    );
    assert_eq!(pg.psql("select 1"), "1");
    for pid in std::iter::once(postmaster).chain(tree.iter().copied()) {
        if let Some((state, _)) = proc_stat(pid) {
            assert_ne!(state, 'T', "process {pid} is still stopped after thaw");
        }
    }

    // Freezing twice and thawing once, and dropping while frozen, must work too.
    pg.freeze();
    pg.freeze();
    pg.thaw();
    assert_eq!(pg_query(&mut session, "select 7"), ["7"]);
    pg.freeze();
    let dropped = Instant::now();
    drop(pg);
    assert!(
        dropped.elapsed() < Duration::from_secs(5),
        "drop of a frozen server took {:?}",
        dropped.elapsed()
    );
    assert!(
        proc_stat(postmaster).is_none(),
        "postmaster {postmaster} survived drop"
    );
    assert!(
        tree.iter().all(|&p| proc_stat(p).is_none()),
        "children survived drop"
    );
    assert_refused(port);
    timed("pg_freeze_stops_every_process_and_thaw_resumes_them", t);
}

#[test]
fn pg_two_servers_at_once_are_independent() {
    let t = Instant::now();
    let a = thread::spawn(PgServer::start);
    let b = thread::spawn(PgServer::start);
    let (Some(a), Some(b)) = (a.join().unwrap(), b.join().unwrap()) else {
        return;
    };
    assert_ne!(a.port(), b.port());
    assert_ne!(a.pid(), b.pid());
    a.psql("create table only_a (x int)");
    assert_eq!(
        a.psql("select count(*) from pg_tables where tablename = 'only_a'"),
        "1"
    );
    assert_eq!(
        b.psql("select count(*) from pg_tables where tablename = 'only_a'"),
        "0"
    );
    assert_eq!(b.psql("show port"), b.port().to_string());
    // Freezing one leaves the other alone.
    a.freeze();
    assert_eq!(b.psql("select 2"), "2");
    a.thaw();
    assert_eq!(a.psql("select 1"), "1");
    timed("pg_two_servers_at_once_are_independent", t);
}

// ---------------------------------------------------------------------------------------
// MariaDB
// ---------------------------------------------------------------------------------------

#[test]
fn mariadb_queries_tables_urls_and_connection_counts() {
    let t = Instant::now();
    let Some(db) = MariaDbServer::start() else {
        return;
    };
    assert_ne!(db.port(), 0);
    assert_eq!(db.sql("select 1"), "1");
    assert!(db.sql("select version()").contains("MariaDB"));
    assert_eq!(
        db.sql("select @@port, @@bind_address"),
        format!("{}\t127.0.0.1", db.port())
    );
    db.sql("create database app; create table app.t (id int primary key, name text)");
    db.sql("insert into app.t values (1, 'one'), (2, 'two')");
    assert_eq!(
        db.sql("select id, name from app.t order by id"),
        "1\tone\n2\ttwo"
    );

    let err = catch_unwind(AssertUnwindSafe(|| {
        db.sql("select * from app.no_such_table")
    }));
    let msg = *err
        .expect_err("a failing statement must panic")
        .downcast::<String>()
        .unwrap();
    assert!(msg.contains("no_such_table"), "{msg}");

    let port = db.port();
    assert_eq!(
        db.url("bob", None, "app"),
        format!("mysql://bob@127.0.0.1:{port}/app")
    );
    assert_eq!(
        db.url("bob", Some("s3cr#t"), "app"),
        format!("mysql://bob:s3cr%23t@127.0.0.1:{port}/app")
    );

    // --skip-name-resolve: TCP logins match 'bob'@'127.0.0.1'.
    db.sql("create user 'bob'@'127.0.0.1'; create user 'bob'@'localhost'");
    assert_eq!(db.connection_count("bob"), 0);
    let mut b1 = my_login(port, "bob");
    let b2 = my_login(port, "bob");
    my_ping(&mut b1);
    assert_eq!(db.connection_count("bob"), 2);
    drop(b2);
    eventually(
        Duration::from_secs(5),
        "bob's second connection to end",
        || db.connection_count("bob") == 1,
    );
    timed("mariadb_queries_tables_urls_and_connection_counts", t);
}

#[test]
fn mariadb_stop_start_again_and_restart_keep_port_and_data() {
    let t = Instant::now();
    let Some(mut db) = MariaDbServer::start() else {
        return;
    };
    let port = db.port();
    db.sql("create database app; create table app.kept (v varchar(20)); insert into app.kept values ('before stop')");
    let first_pid = db.pid();

    db.stop();
    assert_refused(port);
    assert!(
        proc_stat(first_pid).is_none(),
        "mariadbd {first_pid} still exists after stop()"
    );

    db.start_again();
    assert_eq!(db.port(), port);
    assert_ne!(db.pid(), first_pid);
    assert_eq!(db.sql("select v from app.kept"), "before stop");
    db.sql("insert into app.kept values ('before restart')");

    let second_pid = db.pid();
    db.restart();
    assert_ne!(db.pid(), second_pid);
    assert_eq!(
        db.sql("select group_concat(v order by v) from app.kept"),
        "before restart,before stop"
    );
    timed("mariadb_stop_start_again_and_restart_keep_port_and_data", t);
}

#[test]
fn mariadb_freeze_silences_the_server_and_thaw_resumes_it() {
    let t = Instant::now();
    let Some(db) = MariaDbServer::start() else {
        return;
    };
    let port = db.port();
    db.sql("create user 'bob'@'127.0.0.1'");
    let mut session = my_login(port, "bob");
    let pid = db.pid();

    db.freeze();
    assert_eq!(proc_stat(pid).map(|(s, _)| s), Some('T'));
    // The kernel completes the handshake, but the greeting does not come.
    let mut during = connect(port);
    assert_read_times_out(&mut during, "greeting from a frozen server");
    my_send(&mut session, 0, &[0x0e]);
    assert_read_times_out(&mut session, "COM_PING to a frozen server");

    db.thaw();
    let (_, greeting) = my_packet(&mut during, THAWED_READ);
    assert_eq!(greeting[0], 10, "greeting after thaw");
    my_expect_ok(&mut session, "COM_PING sent while frozen");
    assert_eq!(db.sql("select 1"), "1");
    let mut after = my_login(port, "bob");
    my_ping(&mut after);

    db.freeze();
    let dropped = Instant::now();
    drop(db);
    assert!(
        dropped.elapsed() < Duration::from_secs(5),
        "drop of a frozen server took {:?}",
        dropped.elapsed()
    );
    assert!(proc_stat(pid).is_none(), "mariadbd {pid} survived drop");
    assert_refused(port);
    timed("mariadb_freeze_silences_the_server_and_thaw_resumes_it", t);
}

#[test]
fn mariadb_two_servers_at_once_are_independent() {
    let t = Instant::now();
    let a = thread::spawn(MariaDbServer::start);
    let b = thread::spawn(MariaDbServer::start);
    let (Some(a), Some(b)) = (a.join().unwrap(), b.join().unwrap()) else {
        return;
    };
    assert_ne!(a.port(), b.port());
    assert_ne!(a.pid(), b.pid());
    a.sql("create database only_a");
    assert_eq!(
        a.sql("select count(*) from information_schema.schemata where schema_name = 'only_a'"),
        "1"
    );
    assert_eq!(
        b.sql("select count(*) from information_schema.schemata where schema_name = 'only_a'"),
        "0"
    );
    assert_eq!(b.sql("select @@port"), b.port().to_string());
    a.freeze();
    assert_eq!(b.sql("select 2"), "2");
    a.thaw();
    assert_eq!(a.sql("select 1"), "1");
    timed("mariadb_two_servers_at_once_are_independent", t);
}

// ---------------------------------------------------------------------------------------
// Production shape: TLS, password logins, PgBouncer, standby, replica, lost packets
// ---------------------------------------------------------------------------------------

/// A libpq connection string to 127.0.0.1:`port`.
fn conninfo(port: u16, user: &str, sslmode: &str) -> String {
    format!(
        "host=127.0.0.1 port={port} user={user} dbname=postgres sslmode={sslmode} sslrootcert={}",
        servers::test_certs().ca_file.display()
    )
}

fn assert_err_contains(r: Result<String, String>, want: &str, what: &str) {
    match r {
        Ok(out) => panic!("{what}: expected a refusal containing {want:?}, got Ok({out:?})"),
        Err(e) => assert!(e.contains(want), "{what}: expected {want:?} in: {e}"),
    }
}

#[test]
fn pg_requires_tls_and_scram_for_password_roles() {
    let t = Instant::now();
    let Some(pg) = PgServer::start() else { return };
    assert_eq!(pg.psql("show ssl"), "on");
    pg.psql("create role carol login password 'carol-pw'");
    assert_eq!(
        pg.psql("select rolpassword like 'SCRAM-SHA-256$%' from pg_authid where rolname = 'carol'"),
        "t"
    );
    let port = pg.port();
    let ssl_query = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";
    // A plain login is refused by pg_hba.conf (hostssl only).
    assert_err_contains(
        pg.psql_conninfo(
            &conninfo(port, "carol", "disable"),
            Some("carol-pw"),
            ssl_query,
        ),
        "no encryption",
        "plain login",
    );
    // TLS with the certificate verified against the test CA (IP SAN 127.0.0.1).
    assert_eq!(
        pg.psql_conninfo(
            &conninfo(port, "carol", "verify-full"),
            Some("carol-pw"),
            ssl_query
        ),
        Ok("t".to_owned())
    );
    assert_err_contains(
        pg.psql_conninfo(
            &conninfo(port, "carol", "require"),
            Some("wrong-pw"),
            "select 1",
        ),
        "password authentication failed",
        "wrong password",
    );
    timed("pg_requires_tls_and_scram_for_password_roles", t);
}

#[test]
fn mariadb_offers_tls_and_require_ssl_users_need_it() {
    let t = Instant::now();
    let Some(db) = MariaDbServer::start() else {
        return;
    };
    assert_eq!(db.sql("select @@have_ssl"), "YES");
    db.sql("create user 'dave'@'127.0.0.1' identified by 'dave-pw' require ssl");
    let ca = format!("--ssl-ca={}", servers::test_certs().ca_file.display());
    let verified = ["--ssl", &ca, "--ssl-verify-server-cert"];
    assert_err_contains(
        db.client_tcp("dave", "dave-pw", &["--skip-ssl"], "select 1"),
        "Access denied",
        "plain login of a REQUIRE SSL user",
    );
    let cipher = db
        .client_tcp(
            "dave",
            "dave-pw",
            &verified,
            "show status like 'Ssl_version'",
        )
        .unwrap_or_else(|e| panic!("TLS login: {e}"));
    assert!(cipher.starts_with("Ssl_version\tTLSv1."), "{cipher}");
    assert_err_contains(
        db.client_tcp("dave", "wrong-pw", &verified, "select 1"),
        "Access denied",
        "wrong password",
    );
    timed("mariadb_offers_tls_and_require_ssl_users_need_it", t);
}

#[test]
fn pgbouncer_answers_over_tls_in_both_pool_modes() {
    let t = Instant::now();
    let Some(pg) = PgServer::start() else { return };
    pg.psql("create role app_user login password 'app-pw'");
    for mode in [topology::PoolMode::Session, topology::PoolMode::Transaction] {
        let Some(mut bouncer) = topology::PgBouncer::start(&pg, mode, &["app_user"]) else {
            return;
        };
        let port = bouncer.port();
        assert_ne!(port, pg.port());
        let want_mode = format!("{mode:?}").to_lowercase();
        assert!(
            bouncer
                .admin("SHOW CONFIG")
                .lines()
                .any(|l| l.starts_with(&format!("pool_mode|{want_mode}|"))),
            "{mode:?}: {}",
            bouncer.admin("SHOW CONFIG")
        );
        assert_eq!(
            pg.psql_conninfo(
                &conninfo(port, "app_user", "verify-full"),
                Some("app-pw"),
                "select 1"
            ),
            Ok("1".to_owned()),
            "{mode:?}: SELECT 1 through PgBouncer"
        );
        assert_err_contains(
            pg.psql_conninfo(
                &conninfo(port, "app_user", "disable"),
                Some("app-pw"),
                "select 1",
            ),
            "SSL required",
            "plain login to PgBouncer",
        );
        assert_err_contains(
            pg.psql_conninfo(
                &conninfo(port, "app_user", "require"),
                Some("wrong"),
                "select 1",
            ),
            "SASL authentication failed",
            "wrong password through PgBouncer",
        );
        // PgBouncer's own connection to PostgreSQL uses TLS too.
        assert_eq!(
            pg.psql(
                "select bool_and(s.ssl) and count(*) > 0 from pg_stat_activity a \
                 join pg_stat_ssl s using (pid) where a.usename = 'app_user'"
            ),
            "t",
            "{mode:?}: PgBouncer's server connections"
        );
        assert!(
            bouncer.admin("SHOW POOLS").contains("app_user"),
            "{mode:?}: {}",
            bouncer.admin("SHOW POOLS")
        );
        bouncer.stop();
        assert_refused(port);
    }
    timed("pgbouncer_answers_over_tls_in_both_pool_modes", t);
}

#[test]
fn pg_standby_streams_over_tls_and_promotes() {
    let t = Instant::now();
    let Some(primary) = PgServer::start() else {
        return;
    };
    let standby = PgServer::start_standby_of(&primary);
    assert_ne!(standby.port(), primary.port());
    assert!(standby.is_in_recovery());
    assert!(!primary.is_in_recovery());
    assert_eq!(
        primary.psql(
            "select r.state, s.ssl from pg_stat_replication r join pg_stat_ssl s using (pid)"
        ),
        "streaming|t"
    );
    primary.psql("create table t (v text); insert into t values ('from the primary')");
    standby.wait_replay_caught_up(&primary);
    assert_eq!(standby.replay_lag_bytes(&primary), 0);
    assert_eq!(standby.psql("select v from t"), "from the primary");
    let err = catch_unwind(AssertUnwindSafe(|| {
        standby.psql("insert into t values ('on the standby')")
    }));
    let msg = *err
        .expect_err("a write on a standby must fail")
        .downcast::<String>()
        .unwrap();
    assert!(msg.contains("read-only transaction"), "{msg}");

    standby.promote();
    assert!(!standby.is_in_recovery());
    standby.psql("insert into t values ('after promotion')");
    assert_eq!(
        standby.psql("select string_agg(v, ',' order by v) from t"),
        "after promotion,from the primary"
    );
    timed("pg_standby_streams_over_tls_and_promotes", t);
}

#[test]
fn mariadb_replica_replays_over_tls_and_is_read_only() {
    let t = Instant::now();
    let Some(primary) = MariaDbServer::start_primary() else {
        return;
    };
    let replica = MariaDbServer::start_replica_of(&primary);
    assert_eq!(replica.sql("select @@read_only"), "1");
    assert_ne!(
        replica.sql("select @@server_id"),
        primary.sql("select @@server_id")
    );
    primary.sql(
        "create database app; create table app.t (id int primary key, v text); \
         insert into app.t values (1, 'from the primary')",
    );
    replica.wait_caught_up(&primary);
    assert_eq!(replica.sql("select v from app.t"), "from the primary");
    assert_eq!(replica.seconds_behind_master(), Some(0));
    let status = replica.replica_status();
    let field = |k: &str| {
        status
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("Master_SSL_Allowed"), "Yes");
    assert_eq!(field("Master_SSL_Verify_Server_Cert"), "Yes");
    assert_eq!(field("Using_Gtid"), "Slave_Pos");
    // read_only refuses writes from a user without SUPER / READ ONLY ADMIN.
    replica.sql(
        "create user 'w'@'127.0.0.1' identified by 'w-pw'; grant all on app.* to 'w'@'127.0.0.1'",
    );
    assert_err_contains(
        replica.client_tcp("w", "w-pw", &["--ssl"], "insert into app.t values (2, 'x')"),
        "read-only",
        "a write on the replica",
    );
    timed("mariadb_replica_replays_over_tls_and_is_read_only", t);
}

#[test]
fn dropped_packets_make_connects_time_out_until_the_guard_goes() {
    let t = Instant::now();
    let Some(pg) = PgServer::start() else { return };
    let port = pg.port();
    let connect_fails_silently = || {
        let started = Instant::now();
        match TcpStream::connect_timeout(&addr(port), Duration::from_millis(500)) {
            Ok(_) => panic!("connect to {port} succeeded while its packets are dropped"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::TimedOut, "connect to {port}: {e}");
                assert!(started.elapsed() >= Duration::from_millis(450));
            }
        }
    };
    let mut session = connect(port);
    {
        let Some(guard) = netfault::DropPackets::start(port) else {
            return;
        };
        assert_eq!(guard.port(), port);
        assert_eq!(
            netfault::tagged_rules()
                .iter()
                .filter(|r| r.contains(guard.comment()))
                .count(),
            2
        );
        connect_fails_silently();
        // An open connection stalls: the SSLRequest gets no answer (nor a RST).
        session
            .write_all(&[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f])
            .unwrap();
        assert_read_times_out(&mut session, "SSLRequest while packets are dropped");
    }
    // The guard is gone: the stalled request is retransmitted and answered.
    assert_eq!(read_exact_timeout(&mut session, 1, THAWED_READ), b"S");
    connect(port);
    assert_eq!(
        pg.psql_conninfo(&conninfo(port, "postgres", "require"), None, "select 1"),
        Ok("1".to_owned())
    );

    // A test that panics with the guard alive must not leave the rules behind.
    let panicked = thread::spawn(move || {
        let _guard = netfault::DropPackets::start(port);
        panic!("test failure while packets are dropped");
    })
    .join();
    assert!(panicked.is_err());
    assert!(
        !netfault::tagged_rules()
            .iter()
            .any(|r| r.contains(&format!("-{port} "))),
        "rules left behind: {:?}",
        netfault::tagged_rules()
    );
    connect(port);
    timed(
        "dropped_packets_make_connects_time_out_until_the_guard_goes",
        t,
    );
}
