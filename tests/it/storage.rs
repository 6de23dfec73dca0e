//! A warehouse in S3-compatible object storage: the same answers, quarantine and rollups as a warehouse on a disk,
//! credentials never printed, and the commits of two writers on two machines (two project folders, each with its
//! own work folder and locks) both landing. The bucket is served by s3s-fs in a process of its own
//! (`tests/s3-server`), spoken to over HTTP by the same S3 client kubus uses for any S3-compatible store.

use crate::support::{cli, project_copy, query, repo};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::OnceLock;

pub(crate) const ACCESS_KEY: &str = "kubus-test";
pub(crate) const SECRET_KEY: &str = "kubus-test-secret-never-printed";

/// The tests' S3 server: serves the folders under its root as buckets on a loopback port; ends with the test.
pub(crate) struct S3 {
    child: std::process::Child,
    endpoint: String,
    root: tempfile::TempDir,
}

impl S3 {
    /// A server with the (empty) buckets `buckets`.
    pub(crate) fn start(buckets: &[&str]) -> S3 {
        let root = tempfile::tempdir().unwrap();
        for bucket in buckets {
            std::fs::create_dir(root.path().join(bucket)).unwrap();
        }
        let mut child = Command::new(server_binary())
            .arg(root.path())
            .args([ACCESS_KEY, SECRET_KEY])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut endpoint = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut endpoint).unwrap();
        assert!(endpoint.starts_with("http://127.0.0.1:"), "the S3 server said {endpoint:?}");
        S3 { child, endpoint: endpoint.trim().to_owned(), root }
    }

    /// A copy of the sample project whose warehouse is `s3://kubus/{prefix}` on this server, reached with
    /// `secret` as the secret key.
    pub(crate) fn project(&self, prefix: &str, secret: &str) -> tempfile::TempDir {
        let dir = project_copy();
        let path = dir.path().join("kubus.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("warehouse = \"warehouse\"\n"), "the sample project names its warehouse");
        let text = text.replacen("warehouse = \"warehouse\"\n", &format!("warehouse = \"s3://kubus/{prefix}\"\n"), 1);
        std::fs::write(&path, text + &self.storage_with(secret)).unwrap();
        dir
    }

    /// The `[storage]` table of a project whose warehouse is on this server.
    pub(crate) fn storage(&self) -> String {
        self.storage_with(SECRET_KEY)
    }

    fn storage_with(&self, secret: &str) -> String {
        format!(
            "\n[storage]\nendpoint = \"{}\"\nregion = \"eu-central-1\"\nallow_http = true\naccess_key_id = \
             \"{ACCESS_KEY}\"\nsecret_access_key = \"{secret}\"\n",
            self.endpoint
        )
    }

    /// The folder that holds `s3://kubus/{prefix}`.
    pub(crate) fn folder(&self, prefix: &str) -> PathBuf {
        self.root.path().join("kubus").join(prefix)
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server's binary, built once per test run (its own workspace: see tests/s3-server/Cargo.toml).
fn server_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = repo().join("target/s3-server");
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "--locked", "--quiet", "--manifest-path"])
                .arg(repo().join("tests/s3-server/Cargo.toml"))
                .arg("--target-dir")
                .arg(&target)
                .status()
                .unwrap();
            assert!(status.success(), "building the tests' S3 server failed");
            target.join("debug/kubus-test-s3")
        })
        .clone()
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.file_type().unwrap().is_dir() {
                true => pending.push(entry.path()),
                false => found.push(entry.path().strip_prefix(dir).unwrap().display().to_string()),
            }
        }
    }
    found.sort();
    found
}

/// The questions both warehouses are asked: through rollups and from the facts, at an earlier version, with
/// distinct persons, across cubes.
const QUESTIONS: &[&[&str]] = &[
    &["newcomers", "-m", "persons", "-d", "district", "-c", "month=2024-06"],
    &["newcomers", "-m", "persons", "-d", "district.area", "-d", "year", "--totals"],
    &["newcomers", "-m", "persons", "-d", "district.area", "-d", "year", "--no-rollups"],
    &["newcomers", "-m", "persons", "-d", "month", "-c", "year=2023", "--as-of", "0"],
    &["newcomers", "-m", "persons", "-d", "language_level", "-c", "district.area=O", "--no-rollups"],
    &["course_offers", "-m", "seats", "-d", "provider"],
];

/// The rejected lines of every source, as the data stewards read them.
fn quarantine(dir: &Path) -> String {
    let out = cli(dir, &["--role", "datenpflege", "quarantine", "-f", "csv"]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    out.stdout
}

#[test]
fn a_warehouse_in_a_bucket_answers_as_one_on_a_disk() {
    let s3 = S3::start(&["kubus"]);
    let bucket = s3.project("city", SECRET_KEY);
    let disk = project_copy();
    let (in_bucket, on_disk) = (cli(bucket.path(), &["demo"]), cli(disk.path(), &["demo"]));
    assert_eq!(in_bucket.code, ExitCode::SUCCESS, "{}", in_bucket.stderr);
    assert_eq!(on_disk.code, ExitCode::SUCCESS, "{}", on_disk.stderr);
    assert!(
        in_bucket.stdout.starts_with("kubus demo: rebuilt the warehouse at s3://kubus/city/;"),
        "{}",
        in_bucket.stdout
    );
    // The same accounting of every line, the same quarantine, the same (perturbed) answers: only where the
    // warehouse is differs.
    let disk_warehouse = format!("{}/", disk.path().canonicalize().unwrap().join("warehouse").display());
    let same = |text: &str| {
        let text = text.replace(&disk_warehouse, "WAREHOUSE/").replace("s3://kubus/city/", "WAREHOUSE/");
        text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(same(&in_bucket.stdout), same(&on_disk.stdout));
    for question in QUESTIONS {
        assert_eq!(query(bucket.path(), question), query(disk.path(), question), "kubus query {question:?}");
    }
    assert_eq!(quarantine(bucket.path()), quarantine(disk.path()));
    assert!(!quarantine(bucket.path()).is_empty());

    // Everything is in the bucket: the Delta log and files of the facts, rollups, quarantine, the protection
    // record; on this machine nothing but the work folder.
    let stored = files_under(&s3.folder("city"));
    for wanted in
        ["facts/newcomers/_delta_log/00000000000000000000.json", "quarantine/abh_newcomers.csv", "protection.json"]
    {
        assert!(stored.iter().any(|f| f.starts_with(wanted)), "{wanted} not in the bucket: {stored:?}");
    }
    assert!(stored.iter().any(|f| f.starts_with("facts/newcomers/part-") && f.ends_with(".parquet")), "{stored:?}");
    assert!(stored.iter().any(|f| f.starts_with("rollups/newcomers/") && f.ends_with(".parquet")), "{stored:?}");
    assert!(!bucket.path().join("warehouse").exists());
    let mut local: Vec<String> = files_under(&bucket.path().join(".kubus"));
    local.retain(|f| !f.starts_with("locks/"));
    assert_eq!(local, Vec::<String>::new(), "only locks stay on this machine");

    // A file delivered again is recognised from the bucket's table.
    let again = cli(
        bucket.path(),
        &["ingest", "--demo-key", "abh_newcomers", "sample-data/auslaenderbehoerde/neuzugewanderte_2024-06.csv"],
    );
    assert_eq!(again.code, ExitCode::SUCCESS, "{}", again.stderr);
    assert!(again.stdout.contains("already ingested"), "{}", again.stdout);
}

#[test]
fn a_wrong_secret_is_a_clear_error_that_never_shows_a_secret() {
    let s3 = S3::start(&["kubus"]);
    let wrong = "not-the-secret-either-never-printed";
    let dir = s3.project("city", wrong);
    for args in [&["demo"][..], &["--role", "statistik", "query", "newcomers", "-m", "persons", "-d", "district"]] {
        let out = cli(dir.path(), args);
        assert_ne!(out.code, ExitCode::SUCCESS, "{args:?} answered with a wrong secret: {}", out.stdout);
        for secret in [wrong, SECRET_KEY] {
            assert!(
                !out.stderr.contains(secret) && !out.stdout.contains(secret),
                "{args:?} printed a secret: {}",
                out.stderr
            );
        }
        assert!(out.stderr.contains("s3://kubus/city"), "{args:?} must say which warehouse failed: {}", out.stderr);
    }
}

#[test]
fn two_writers_of_one_bucket_both_land() {
    let s3 = S3::start(&["kubus"]);
    // Two machines: two project folders (two work folders, two sets of locks) over one warehouse.
    let (one, two) = (s3.project("shared", SECRET_KEY), s3.project("shared", SECRET_KEY));
    let disk = project_copy();
    let months = |year: &str| -> Vec<String> {
        (1..=12).map(|m| format!("sample-data/auslaenderbehoerde/neuzugewanderte_{year}-{m:02}.csv")).collect()
    };
    let ingest = |dir: &Path, files: &[String]| {
        let mut args = vec!["ingest", "--demo-key", "abh_newcomers"];
        args.extend(files.iter().map(String::as_str));
        let out = cli(dir, &args);
        assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    };
    // Both writers at once into the empty warehouse (one creates the table, the other appends to it), then both
    // at once again (two appends to one version).
    for half in [0..6, 6..12] {
        let start = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                start.wait();
                ingest(one.path(), &months("2023")[half.clone()]);
            });
            scope.spawn(|| {
                start.wait();
                ingest(two.path(), &months("2024")[half.clone()]);
            });
        });
    }
    ingest(disk.path(), &[months("2023"), months("2024")].concat());
    for question in [
        &["newcomers", "-m", "persons", "-d", "month", "--no-rollups"][..],
        &["newcomers", "-m", "persons", "-d", "district.area", "-d", "year"],
    ] {
        for writer in [&one, &two] {
            assert_eq!(query(writer.path(), question), query(disk.path(), question), "kubus query {question:?}");
        }
    }
    // Both writers' rejected lines are kept: neither rewrote the quarantine file over the other's.
    assert_eq!(quarantine(one.path()), quarantine(disk.path()));
    // Four commits, each its own version: none overwrote another.
    let log = s3.folder("shared").join("facts/newcomers/_delta_log");
    let commits: Vec<String> = files_under(&log).into_iter().filter(|f| f.ends_with(".json")).collect();
    assert_eq!(commits.len(), 4, "{commits:?}");
}

#[test]
fn writers_of_one_quarantine_file_keep_each_others_lines() {
    use kubus_warehouse::{QuarantineRow, Warehouse};
    let s3 = S3::start(&["kubus"]);
    let options: std::collections::BTreeMap<String, String> = [
        ("endpoint", s3.endpoint.as_str()),
        ("region", "eu-central-1"),
        ("allow_http", "true"),
        ("access_key_id", ACCESS_KEY),
        ("secret_access_key", SECRET_KEY),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    // Eight machines rewrite one source's quarantine file at once, each for files of its own, five times over.
    let (machines, rounds) = (8, 5);
    let work = tempfile::tempdir().unwrap();
    std::thread::scope(|scope| {
        for machine in 0..machines {
            let warehouse =
                Warehouse::open_bucket("s3://kubus/q", &options, &work.path().join(machine.to_string())).unwrap();
            scope.spawn(move || {
                for round in 0..rounds {
                    let file = format!("export_{machine}_{round}.csv");
                    let row = QuarantineRow {
                        file: file.clone(),
                        line: round + 2,
                        column: "age".into(),
                        value: "x".into(),
                        problem: "not a number".into(),
                        reason: "age must be a whole number".into(),
                    };
                    warehouse.write_quarantine("abh_newcomers", &[file].into(), &[row]).unwrap();
                }
            });
        }
    });
    let warehouse = Warehouse::open_bucket("s3://kubus/q", &options, work.path()).unwrap();
    let files: Vec<String> = warehouse.read_quarantine("abh_newcomers").unwrap().into_iter().map(|r| r.file).collect();
    let mut expected: Vec<String> =
        (0..machines).flat_map(|m| (0..rounds).map(move |r| format!("export_{m}_{r}.csv"))).collect();
    expected.sort();
    assert_eq!(files, expected, "every machine's rejected lines are kept");
}

#[test]
fn a_warehouse_location_or_storage_setting_kubus_cannot_use_is_named() {
    let cases = [
        ("gs://kubus/city", "", "gs://kubus/city: a warehouse is a directory or s3://bucket/prefix"),
        (
            "s3://kubus/city",
            "endpont = \"http://127.0.0.1:9\"\n",
            "[storage] endpont is not a setting of the S3 client",
        ),
        ("s3://kubus/city", "endpoint = [\"http://127.0.0.1:9\"]\n", "storage.endpoint"),
    ];
    for (warehouse, storage, expected) in cases {
        let dir = project_copy();
        let path = dir.path().join("kubus.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replacen("warehouse = \"warehouse\"\n", &format!("warehouse = \"{warehouse}\"\n"), 1);
        std::fs::write(&path, format!("{text}\n[storage]\n{storage}")).unwrap();
        let out = cli(dir.path(), &["query", "newcomers", "-m", "persons", "-d", "district"]);
        assert_ne!(out.code, ExitCode::SUCCESS, "{warehouse} {storage}");
        assert!(out.stderr.contains(expected), "expected {expected:?} in {}", out.stderr);
    }
}
