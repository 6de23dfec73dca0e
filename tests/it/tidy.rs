//! Tidy checks over the repository: the crate dependency direction, no import cycle between the files of a crate,
//! one arrow, a `//!` line atop every file.

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

/// The modules (files) of a crate's `src` that each file names through `crate::` paths.
fn module_imports(src: &std::path::Path) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let files: Vec<(String, String)> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    let modules: Vec<&str> = files.iter().map(|(m, _)| m.as_str()).filter(|m| !matches!(*m, "lib" | "main")).collect();
    let mut imports = std::collections::BTreeMap::new();
    for (module, text) in &files {
        let code: String =
            text.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
        let mut named = named_from_the_root(&code);
        named.retain(|n| n != module && modules.contains(&n.as_str()));
        imports.insert(module.clone(), named);
    }
    imports
}

/// The names `code` takes from its crate's root: the first name of each `crate::` path, and of each top-level item
/// of `use crate::{a, b::c, d::{e, f}}`.
fn named_from_the_root(code: &str) -> std::collections::BTreeSet<String> {
    let ident = |text: &str| -> String {
        text.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
    };
    let mut named = std::collections::BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            named.insert(ident(rest));
            continue;
        };
        let (mut depth, mut item_start) = (0, 0);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    named.insert(ident(&group[item_start..i]));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    named.insert(ident(&group[item_start..i]));
                    item_start = i + 1;
                }
                _ => {}
            }
        }
    }
    named
}

/// Files of one crate import one another in one direction: following `crate::` paths from any file never leads back
/// to it, so that each file can be read knowing only those below it.
#[test]
fn no_file_imports_a_file_that_imports_it() {
    let mut sources: Vec<std::path::PathBuf> =
        std::fs::read_dir(repo().join("crates")).unwrap().map(|e| e.unwrap().path().join("src")).collect();
    sources.push(repo().join("benches/src"));
    for src in sources {
        let imports = module_imports(&src);
        for start in imports.keys() {
            // Depth first from `start`, keeping the path, until it comes back to `start`.
            let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
            let mut seen = std::collections::BTreeSet::new();
            while let Some((module, path)) = stack.pop() {
                for next in &imports[&module] {
                    assert!(
                        next != start,
                        "{}: the files import one another: {} → {next}",
                        src.display(),
                        path.join(" → ")
                    );
                    if seen.insert(next.clone()) {
                        stack.push((next.clone(), [path.clone(), vec![next.clone()]].concat()));
                    }
                }
            }
        }
    }
}

/// No file takes from `lib.rs` what `lib.rs` itself defines (outside tests): the crate root puts the files
/// together, each file stands on those below it. Checked for the ingest crate, whose files once reached back
/// into its root for the line rules and the tally.
#[test]
fn no_file_takes_from_the_crate_root() {
    let src = repo().join("crates/kubus-ingest/src");
    let root = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let defined: Vec<String> = root
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix("pub(crate) ").or_else(|| l.strip_prefix("pub ")).unwrap_or(l);
            ["fn ", "struct ", "enum ", "const ", "type ", "static "].iter().find_map(|k| l.strip_prefix(k))
        })
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
        .collect();
    assert!(defined.contains(&"read_file_to".to_owned()), "{defined:?}");
    let test_only: Vec<&str> =
        root.split("#[cfg(test)]\nmod ").skip(1).filter_map(|rest| rest.split(';').next()).collect();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let module = path.file_stem().unwrap().to_string_lossy().into_owned();
        if module == "lib" || test_only.contains(&module.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let named = named_from_the_root(code);
        for name in &defined {
            assert!(!named.contains(name), "{}: takes `{name}` from lib.rs", path.display());
        }
    }
}

#[test]
fn every_kind_of_rejected_and_skipped_line_is_documented() {
    let guide = std::fs::read_to_string(repo().join("cube-schemas/sources/README.md")).unwrap();
    let section = guide.split("## Problems a line can have").nth(1).expect("the guide lists the problems");
    let section = section.split("\n## ").next().unwrap();
    for category in kubus_ingest::Category::ALL {
        assert!(section.contains(&format!("`{category}`")), "`{category}` is not in the mapping guide's list");
    }
    let skips = guide.split("## Reasons a line is skipped").nth(1).expect("the guide lists the reasons to skip");
    let skips = skips.split("\n## ").next().unwrap();
    for reason in kubus_ingest::Skip::FIXED {
        assert!(skips.contains(&format!("`{reason}`")), "`{reason}` is not in the mapping guide's reasons to skip");
    }
}
