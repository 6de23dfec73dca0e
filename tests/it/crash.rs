//! An ingest killed halfway leaves the previous warehouse version readable and unchanged: the CLI, running in a
//! process of its own, is killed (SIGKILL) at several moments of a long ingest, and after each kill the facts
//! are either exactly the previous version's or — if the ingest had already committed — exactly the previous
//! plus the new file's.

use crate::support::{cli, csv_rows, project_copy};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

const CHILD_ARGS: &str = "KUBUS_CRASH_TEST_CLI_ARGS";
const THIS_TEST: &str = "crash::a_killed_ingest_leaves_the_previous_version_intact";

/// The CLI in a process of its own that can be killed: this test binary, re-run on this very test with the
/// CLI's arguments in the environment (see the top of the test), so no separately built binary is needed.
fn spawn_cli(args: &[&str]) -> std::process::Child {
    let args: Vec<String> = std::iter::once("kubus").chain(args.iter().copied()).map(str::to_owned).collect();
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", THIS_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ARGS, args.join("\u{1f}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The cube's record count (read through a query, so the version must be readable) and its version.
fn records(dir: &Path) -> (u64, Option<u64>) {
    let out = cli(dir, &["--role", "statistik", "query", "newcomers", "-m", "records", "-f", "csv"]);
    assert_eq!(out.code, ExitCode::SUCCESS, "the warehouse must stay readable: {}", out.stderr);
    let project = kubus::Project::open(dir).unwrap();
    let version = tokio::runtime::Runtime::new().unwrap().block_on(project.version("newcomers")).unwrap();
    (csv_rows(&out.stdout)[0][0].parse().unwrap(), version)
}

/// A large export in the authority's format: the sample months repeated with fresh person numbers.
fn large_export(dir: &Path) -> (PathBuf, u64) {
    let src = dir.join("sample-data/auslaenderbehoerde");
    let mut out: Vec<u8> = Vec::new();
    let mut data = 0u64;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&src).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for copy in 0..6u32 {
        for file in &files {
            for line in std::fs::read(file).unwrap().split(|&b| b == b'\n') {
                if line.starts_with(b"Personennummer") && out.is_empty() {
                    out.extend_from_slice(line);
                    out.push(b'\n');
                } else if line.starts_with(b"ABH-")
                    && !line.windows(10).any(|w| w == b"31.02.1991")
                    && !line.windows(16).any(|w| w == b"Innenstadt Mitte")
                {
                    out.extend_from_slice(format!("C{copy}-").as_bytes());
                    out.extend_from_slice(line);
                    out.push(b'\n');
                    data += 1;
                }
            }
        }
    }
    let path = dir.join("large.csv");
    std::fs::write(&path, out).unwrap();
    (path, data)
}

#[test]
fn a_killed_ingest_leaves_the_previous_version_intact() {
    if let Ok(args) = std::env::var(CHILD_ARGS) {
        // Child mode: act as the `kubus` binary and exit with its status.
        let code = kubus_cli::run(args.split('\u{1f}').map(str::to_owned), &mut std::io::sink(), &mut std::io::sink());
        std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
    }
    let dir = project_copy();
    let first = cli(
        dir.path(),
        &["ingest", "--demo-key", "abh_newcomers", "sample-data/auslaenderbehoerde/neuzugewanderte_2024-06.csv"],
    );
    assert_eq!(first.code, ExitCode::SUCCESS, "{}", first.stderr);
    let before = records(dir.path());
    let (large, large_rows) = large_export(dir.path());

    let mut killed_before_commit = 0;
    let mut committed = false;
    for delay_ms in [30u64, 150, 400, 800, 1500, 2500, 4000] {
        let mut child = spawn_cli(&[
            "-C",
            dir.path().to_str().unwrap(),
            "ingest",
            "--demo-key",
            "abh_newcomers",
            large.to_str().unwrap(),
        ]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        let now = records(dir.path());
        if now == before {
            killed_before_commit += usize::from(!finished);
            continue;
        }
        // The large export covers every month, June 2024 included, so it replaces the June facts ingested first.
        assert_eq!(now.0, large_rows, "after a kill at {delay_ms} ms the facts are all or nothing");
        assert_eq!(now.1, before.1.map(|v| v + 1), "one ingest is one commit");
        committed = true;
        break;
    }
    assert!(killed_before_commit > 0, "at least one kill must have hit the ingest before its commit");
    if !committed {
        // The same child process, left to finish, ingests the interrupted file whole.
        let status = spawn_cli(&[
            "-C",
            dir.path().to_str().unwrap(),
            "ingest",
            "--demo-key",
            "abh_newcomers",
            large.to_str().unwrap(),
        ])
        .wait()
        .unwrap();
        assert!(status.success(), "the child CLI process ingests successfully when not killed");
        assert_eq!(records(dir.path()).0, large_rows, "the interrupted file is ingested whole afterwards");
    }
}
