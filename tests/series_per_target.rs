//! The series each kind of target costs, measured on a live exporter and held to the table
//! in docs/metrics.md, so that the series budget a fleet plans with is the one it gets: a
//! change that adds series per target fails here until the table says so.

mod common;

use common::db::{Db, Engine, WAIT, target};
use common::sshd::Bastion;
use common::{TestExporter, eventually, tempdir};

/// The rows of the "Series per target" table: (the test's target, series, phase-histogram
/// lines).
fn documented() -> Vec<(String, usize, usize)> {
    let doc = std::fs::read_to_string("docs/metrics.md").unwrap();
    let section = doc
        .split("## Series per target")
        .nth(1)
        .expect("docs/metrics.md has a \"Series per target\" section");
    section
        .lines()
        .skip_while(|l| !l.starts_with("| kind"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let number = |i: usize| cells[i].replace(',', "").parse::<usize>().unwrap();
            // The first cell starts with the test target's name in backquotes.
            let name = cells[1].split('`').nth(1).unwrap_or(cells[1]);
            (name.to_owned(), number(2), number(3))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_costs_the_series_the_docs_say() {
    let Some(pg) = Db::start(Engine::Postgres) else {
        return;
    };
    let Some(my) = Db::start(Engine::MariaDb) else {
        return;
    };
    let Some(bastion) = Bastion::start(&[pg.port()]) else {
        return;
    };
    let behind_bastion = format!(
        "    ssh:\n      host: 127.0.0.1\n      port: {}\n      user: {}\n      identity_file: {}\n      known_hosts: {}\n",
        bastion.port(),
        bastion.user(),
        bastion.client_key().display(),
        bastion.known_hosts().display()
    );
    let dir = tempdir();
    let yaml = format!(
        "targets:\n  - {{name: sqlite, kind: sqlite, path: s.db, create: true, interval: 200ms}}\n\
         \x20 - {{name: tcp, kind: tcp, host: 127.0.0.1, port: {}, interval: 200ms}}\n{}{}{}{}",
        pg.port(),
        target("postgres", &pg, "200ms", ""),
        target("mysql", &my, "200ms", ""),
        target(
            "postgres-detailed",
            &pg,
            "200ms",
            "    phase_buckets: detailed\n"
        ),
        target("postgres-bastion", &pg, "500ms", &behind_bastion),
    );
    let e = TestExporter::start(dir.path(), &yaml).await;
    let kinds = [
        "sqlite",
        "tcp",
        "postgres",
        "mysql",
        "postgres-detailed",
        "postgres-bastion",
    ];
    // Every phase has run (a histogram appears with its phase's first run) and each
    // database has said who it is.
    let m = eventually(WAIT, "a few probes of every target", || async {
        let m = e.metrics().await;
        let settled = kinds.iter().all(|k| {
            m.get("dbvigil_probes_total", &[("target", k)])
                .is_some_and(|n| n >= 3.0)
                && m.get("dbvigil_up", &[("target", k)]) == Some(1.0)
        }) && [
            "sqlite",
            "postgres",
            "mysql",
            "postgres-detailed",
            "postgres-bastion",
        ]
        .iter()
        .all(|k| m.get("dbvigil_server_info", &[("target", k)]).is_some());
        settled.then_some(m)
    })
    .await;
    let measured: Vec<(String, usize, usize)> = kinds
        .iter()
        .map(|k| {
            let of_target: Vec<_> = m
                .samples
                .iter()
                .filter(|(_, labels, _)| labels.iter().any(|(l, v)| l == "target" && v == k))
                .collect();
            let buckets = of_target
                .iter()
                .filter(|(n, _, _)| n.starts_with("dbvigil_phase_duration_seconds"))
                .count();
            (k.to_string(), of_target.len(), buckets)
        })
        .collect();
    eprintln!("measured (kind, series, phase-histogram lines): {measured:?}");
    assert_eq!(
        measured,
        documented(),
        "series per target by kind, live against docs/metrics.md's table: update the table (and the budget it implies) with the change"
    );
    e.stop().await;
}
