//! Tidy checks over the repository: the crate dependency direction, one arrow, a `//!` line atop every file.

use crate::support::repo;

/// The kubus crates each crate may depend on (arrows point down only).
const ALLOWED: &[(&str, &[&str])] = &[
    ("kubus-model", &[]),
    ("kubus-ingest", &["kubus-model"]),
    ("kubus-warehouse", &["kubus-model"]),
    ("kubus-query", &["kubus-model"]),
    ("kubus-report", &[]),
    ("kubus", &["kubus-model", "kubus-ingest", "kubus-warehouse", "kubus-query", "kubus-report"]),
    ("kubus-server", &["kubus"]),
    ("kubus-cli", &["kubus", "kubus-server"]),
];

#[test]
fn crate_dependencies_point_down_only() {
    let crates = repo().join("crates");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let manifest: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap().parse().unwrap();
        assert_eq!(manifest["package"]["name"].as_str(), Some(name.as_str()), "folder name = package name");
        let allowed = ALLOWED
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("crate {name} is not in the tidy list"))
            .1;
        for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(deps) = manifest.get(section).and_then(|d| d.as_table()) else { continue };
            for dep in deps.keys().filter(|d| d.starts_with("kubus")) {
                assert!(allowed.contains(&dep.as_str()), "{name} must not depend on {dep} ({section})");
            }
        }
        if name == "kubus-report" {
            let deps = manifest["dependencies"].as_table().unwrap();
            assert!(!deps.contains_key("datafusion"), "the report crate takes results, not DataFusion");
        }
        seen.push(name);
    }
    assert_eq!(seen.len(), ALLOWED.len());
}

#[test]
fn one_arrow_in_the_lock_file() {
    let lock: toml::Table = std::fs::read_to_string(repo().join("Cargo.lock")).unwrap().parse().unwrap();
    let arrows: Vec<&str> = lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"].as_str() == Some("arrow"))
        .map(|p| p["version"].as_str().unwrap())
        .collect();
    assert_eq!(arrows.len(), 1, "arrow versions: {arrows:?}");
}

#[test]
fn every_rust_file_says_what_it_does() {
    let mut stack = vec![repo().join("crates"), repo().join("tests"), repo().join("benches")];
    let mut checked = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(text.starts_with("//!"), "{} must start with a //! line", path.display());
                checked += 1;
            }
        }
    }
    assert!(checked > 20);
}
