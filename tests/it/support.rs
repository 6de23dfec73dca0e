//! Test support: copies of the sample project, in-process CLI runs, and the independent fixtures.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

/// The repository root (the sample project).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lies in the repository").to_owned()
}

/// Copies a directory and everything in it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A fresh copy of the sample project without a warehouse.
pub fn project_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo().join("kubus.toml"), dir.path().join("kubus.toml")).unwrap();
    copy_dir(&repo().join("cube-schemas"), &dir.path().join("cube-schemas"));
    copy_dir(&repo().join("sample-data"), &dir.path().join("sample-data"));
    copy_dir(&repo().join("ptables"), &dir.path().join("ptables"));
    copy_dir(&repo().join("geo"), &dir.path().join("geo"));
    dir
}

/// A fresh copy of the sample project whose answers are protected by suppression instead of the cell key method.
pub fn suppression_copy() -> tempfile::TempDir {
    let dir = project_copy();
    let path = dir.path().join("kubus.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("method = \"cell_key\""), "the sample project chooses its method in [disclosure]");
    std::fs::write(&path, text.replacen("method = \"cell_key\"", "method = \"suppression\"", 1)).unwrap();
    dir
}

/// One shared copy of the sample project on which `kubus demo` has run; tests only read from it.
pub fn demo_project() -> &'static Path {
    static DEMO: OnceLock<tempfile::TempDir> = OnceLock::new();
    demo_once(&DEMO, project_copy)
}

/// The copy `copy` makes, on which `kubus demo` has run, once.
fn demo_once(cell: &'static OnceLock<tempfile::TempDir>, copy: fn() -> tempfile::TempDir) -> &'static Path {
    cell.get_or_init(|| {
        let dir = copy();
        let out = cli(dir.path(), &["demo"]);
        assert_eq!(out.code, ExitCode::SUCCESS, "demo failed: {}", out.stderr);
        dir
    })
    .path()
}

/// One shared copy of the sample project, protected by suppression, on which `kubus demo` has run.
pub fn suppression_project() -> &'static Path {
    static DEMO: OnceLock<tempfile::TempDir> = OnceLock::new();
    demo_once(&DEMO, suppression_copy)
}

/// What one CLI run printed.
pub struct Output {
    pub code: ExitCode,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the CLI in-process in project `dir`.
pub fn cli(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["kubus".to_owned(), "-C".to_owned(), dir.display().to_string()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let code = kubus_cli::run(all, &mut stdout, &mut stderr);
    Output { code, stdout: String::from_utf8(stdout).unwrap(), stderr: String::from_utf8(stderr).unwrap() }
}

/// Reads a fixture CSV of `sample-data/expected/` as rows of strings (header dropped).
pub fn fixture(name: &str) -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_path(repo().join("sample-data/expected").join(name)).unwrap();
    reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect()
}

/// Reads CSV text (with header) as rows of strings (header dropped).
pub fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect()
}

/// Runs a cube query through the CLI as the statistics office (unsuppressed numbers, so that they can be compared
/// with the generator's) and returns its CSV rows (header dropped). Disclosure control has tests of its own.
pub fn query(dir: &Path, args: &[&str]) -> Vec<Vec<String>> {
    let mut all = vec!["--role", "statistik", "query"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-f", "csv"]);
    let out = cli(dir, &all);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    csv_rows(&out.stdout)
}

/// A small deterministic generator (xorshift) for the property tests.
pub struct Rng(pub u64);

impl Rng {
    /// A number below `n`.
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next(items.len() as u64) as usize]
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next(100) < percent
    }
}
