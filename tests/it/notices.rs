//! The Land's allocation notices (PDF) through `add_zuweisungen`: every generated layout ingests with the line
//! accounting the generator wrote for it, the facts match the generator's own counts, a scan and a damaged file
//! are refused without a trace, and no name or date of birth reaches the warehouse. Expected figures come from
//! `sample-data/generate_notices.py`'s records, never from kubus.

use crate::support::{cli, csv_rows, fixture, project_copy, query, repo};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

/// The skip reasons of the generator's accounting, in its file's column order.
const REASONS: [&str; 7] =
    ["footer", "header", "header (repeated)", "page footer", "page header", "page without the table", "title"];

/// The accounting line the CLI prints for one file: lines, accepted, rejected, and skipped lines by reason.
fn accounting(stdout: &str, file: &str) -> (usize, usize, usize, BTreeMap<String, usize>) {
    let line = stdout
        .lines()
        .find(|l| l.contains(&format!("{file} (PDF): lines ")))
        .unwrap_or_else(|| panic!("no accounting for {file} in\n{stdout}"));
    let number = |after: &str| -> usize {
        let rest = &line[line.find(after).unwrap_or_else(|| panic!("{after} in {line}")) + after.len()..];
        rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    let mut skipped = BTreeMap::new();
    if let (Some(open), Some(close)) = (line.find(" ("), line.rfind(')')) {
        let inner = &line[line[open + 2..].find('(').map_or(open + 2, |i| open + 2 + i + 1)..close];
        for part in inner.split(", ") {
            let (reason, n) = part.rsplit_once(' ').unwrap();
            skipped.insert(reason.to_owned(), n.parse().unwrap());
        }
    }
    (number("lines "), number("accepted "), number("rejected "), skipped)
}

#[test]
fn every_generated_notice_ingests_with_exact_line_accounting() {
    let dir = project_copy();
    let notices = dir.path().join("sample-data/zuweisungen");
    let out = cli(dir.path(), &["ingest", "--demo-key", "add_zuweisungen", &notices.display().to_string()]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}{}", out.stdout, out.stderr);
    let expected = fixture("zuweisungen_lines.csv");
    let layouts: std::collections::BTreeSet<&str> = expected.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(layouts.len(), 3, "the generator writes portrait, landscape and cover-letter notices");
    assert!(expected.iter().any(|r| r[1] == "portrait" && r[7] != "0"), "a portrait table runs over pages");
    for row in &expected {
        let (lines, accepted, rejected, skipped) = accounting(&out.stdout, &row[0]);
        let number = |i: usize| row[i].parse::<usize>().unwrap();
        assert_eq!((lines, accepted, rejected), (number(2), number(3), number(4)), "{}", row[0]);
        let want: BTreeMap<String, usize> =
            REASONS.iter().enumerate().map(|(i, r)| ((*r).to_owned(), number(5 + i))).filter(|(_, n)| *n > 0).collect();
        assert_eq!(skipped, want, "{}: skipped lines by reason", row[0]);
    }

    // Persons by month of allocation, sex and region of origin: the generator's own counts.
    let rows =
        query(dir.path(), &["zuweisungen", "-m", "persons", "-d", "month", "-d", "sex", "-d", "origin.continent"]);
    let mut got: Vec<[String; 4]> =
        rows.into_iter().map(|r| [r[0].clone(), r[2].clone(), r[4].clone(), r[6].clone()]).collect();
    got.sort();
    let want: Vec<[String; 4]> = fixture("zuweisungen_by_month_sex_region.csv")
        .into_iter()
        .map(|r| [r[0].clone(), r[1].clone(), r[2].clone(), r[3].clone()])
        .collect();
    assert_eq!(got, want);

    // Days from arrival to allocation: the mean per month of allocation, against the generator's sums.
    let rows = query(dir.path(), &["zuweisungen", "-m", "allocations", "-m", "avg_days_to_allocation", "-d", "month"]);
    let days = fixture("zuweisungen_days_by_month.csv");
    assert_eq!(rows.len(), days.len());
    for (row, want) in rows.iter().zip(&days) {
        assert_eq!([&row[0], &row[2]], [&want[0], &want[1]]);
        let mean = want[2].parse::<f64>().unwrap() / want[1].parse::<f64>().unwrap();
        let got: f64 = row[3].parse().unwrap();
        assert!((got - mean).abs() < 0.01, "{}: mean {got}, generator {mean}", row[0]);
    }

    // The wrong lines are in quarantine with their page and line; a value that identifies a person (a date of
    // birth feeds the pseudonym) is withheld there too.
    let quarantine = cli(dir.path(), &["--role", "datenpflege", "quarantine", "-f", "csv"]);
    assert_eq!(quarantine.code, ExitCode::SUCCESS, "{}", quarantine.stderr);
    let held = csv_rows(&quarantine.stdout);
    let bad = fixture("zuweisungen_quarantine.csv");
    assert_eq!(held.len(), bad.len(), "{}", quarantine.stdout);
    for b in &bad {
        let (file, column, value) = (&b[0], &b[1], &b[2]);
        let identifying = column == "Geburtsdatum";
        let shown = if identifying { "withheld" } else { value.as_str() };
        assert!(
            held.iter().any(|h| h.contains(file)
                && h.iter().any(|c| c.contains(shown))
                && h.iter().any(|c| c.contains("page "))),
            "{b:?} in quarantine with its page:\n{}",
            quarantine.stdout
        );
        assert!(!identifying || !quarantine.stdout.contains(value.as_str()), "{value} is kept in quarantine");
    }

    // No name and no date of birth anywhere in the warehouse: its Parquet files read back as text, every other
    // file (Delta's log, the audit log) as it is.
    let mut stored = String::new();
    warehouse_text(&dir.path().join("warehouse"), &mut stored);
    assert!(stored.contains("zuweisungen"), "the warehouse holds the notices' facts");
    for row in fixture("zuweisungen_names.csv") {
        let (day, month, year) = (&row[2][..2], &row[2][3..5], &row[2][6..]);
        let iso = format!("{year}-{month}-{day}");
        for identifying in [&row[0], &row[1], &row[2], &iso] {
            assert!(!stored.contains(identifying.as_str()), "'{identifying}' is stored in the warehouse");
        }
    }
}

/// The text of every file below `dir`: Parquet files as their rows (every column cast to text), others as their
/// bytes.
fn warehouse_text(dir: &Path, out: &mut String) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ctx = datafusion::prelude::SessionContext::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let batches = runtime
                    .block_on(async {
                        ctx.read_parquet(path.display().to_string(), Default::default()).await?.collect().await
                    })
                    .unwrap();
                let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap();
                out.push_str(&text.to_string());
            } else {
                out.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
            }
        }
    }
}

#[test]
fn a_scanned_or_damaged_notice_is_refused_and_changes_nothing() {
    let dir = project_copy();
    let scan = repo().join("sample-data/zuweisungen-scan/verteilung_2024-03_scan.pdf");
    let good = dir.path().join("sample-data/zuweisungen/verteilung_2024-01_1.pdf");
    let (good_arg, scan_arg) = (good.display().to_string(), scan.display().to_string());
    let out = cli(dir.path(), &["ingest", "--demo-key", "add_zuweisungen", &good_arg, &scan_arg]);
    assert_ne!(out.code, ExitCode::SUCCESS, "{}", out.stdout);
    assert!(out.stderr.contains("without a text layer"), "{}", out.stderr);

    let bytes = std::fs::read(&good).unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 10, 100] {
        let damaged = dir.path().join("damaged.pdf");
        std::fs::write(&damaged, &bytes[..cut]).unwrap();
        let out = cli(dir.path(), &["ingest", "--demo-key", "add_zuweisungen", &damaged.display().to_string()]);
        assert_ne!(out.code, ExitCode::SUCCESS, "{}", out.stdout);
        assert!(out.stderr.contains("the PDF cannot be read"), "{}", out.stderr);
    }
    let asked = cli(dir.path(), &["--role", "statistik", "query", "zuweisungen", "-m", "allocations"]);
    assert_ne!(asked.code, ExitCode::SUCCESS, "nothing was committed: {}", asked.stdout);
}
