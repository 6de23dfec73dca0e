//! Ingest options over the sample exports: a dry run changes nothing; earlier versions stay readable by query and
//! SQL. Expected counts come from the raw files and the generator's fixtures.

use crate::support::{cli, csv_rows, fixture, project_copy, query};
use std::path::Path;
use std::process::ExitCode;

/// Data lines of a sample export, counted from its raw bytes (each person line starts with its number).
fn person_lines(dir: &Path, month: &str) -> usize {
    let raw = std::fs::read(dir.join(format!("sample-data/auslaenderbehoerde/neuzugewanderte_{month}.csv"))).unwrap();
    raw.split(|&b| b == b'\n').filter(|l| l.starts_with(b"ABH-")).count()
}

#[test]
fn a_dry_run_shows_facts_and_rejects_but_changes_nothing() {
    let dir = project_copy();
    let file = dir.path().join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-06.csv");
    let out = cli(dir.path(), &["ingest", "abh_newcomers", &file.display().to_string(), "--dry-run"]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let broken = fixture("quarantine.csv").into_iter().filter(|r| r[0] == "neuzugewanderte_2024-06.csv").count();
    assert!(out.stdout.contains("first 10 facts:"), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("{broken} rejected line(s)")), "{}", out.stdout);
    let quarantine = cli(dir.path(), &["quarantine"]);
    assert_eq!(quarantine.stdout, "0 line(s) in quarantine\n");
    let query = cli(dir.path(), &["query", "newcomers", "-m", "records"]);
    assert_eq!(query.code, ExitCode::from(2), "nothing was committed: {}", query.stdout);
}

#[test]
fn sql_and_query_read_earlier_versions() {
    let dir = project_copy();
    let abh = dir.path().join("sample-data/auslaenderbehoerde");
    for month in ["2023-01", "2023-02"] {
        let file = abh.join(format!("neuzugewanderte_{month}.csv"));
        assert_eq!(cli(dir.path(), &["ingest", "abh_newcomers", &file.display().to_string()]).code, ExitCode::SUCCESS);
    }
    let (first, both) = (person_lines(dir.path(), "2023-01"), person_lines(dir.path(), "2023-01") + person_lines(dir.path(), "2023-02"));
    let sql = |extra: &[&str]| -> String {
        let mut args = vec!["sql", "SELECT count(*) AS records FROM newcomers", "-f", "csv"];
        args.extend_from_slice(extra);
        let out = cli(dir.path(), &args);
        assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
        csv_rows(&out.stdout)[0][0].clone()
    };
    assert_eq!(sql(&[]), both.to_string());
    assert_eq!(sql(&["--as-of", "newcomers=0"]), first.to_string());
    assert_eq!(query(dir.path(), &["newcomers", "-m", "records", "--as-of", "0"])[0][0], first.to_string());
    let bad = cli(dir.path(), &["sql", "SELECT 1", "--as-of", "newcomers=9"]);
    assert_eq!(bad.code, ExitCode::from(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("no version 9 (latest is 1)"), "{}", bad.stderr);
}
