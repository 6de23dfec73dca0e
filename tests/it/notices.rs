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
    assert!(expected.iter().any(|r| r[1] == "cover" && r[6] == "2"), "a header wraps its names over two lines");
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

    // Days from arrival to allocation: the mean and the median per month of allocation, against the generator's
    // sums and medians.
    let days = ["-m", "allocations", "-m", "avg_days_to_allocation", "-m", "median_days_to_allocation", "-d", "month"];
    let rows = query(dir.path(), &[&["zuweisungen"], &days[..]].concat());
    let want = fixture("zuweisungen_days_by_month.csv");
    assert_eq!(rows.len(), want.len());
    for (row, want) in rows.iter().zip(&want) {
        assert_eq!([&row[0], &row[2]], [&want[0], &want[1]]);
        let mean = want[2].parse::<f64>().unwrap() / want[1].parse::<f64>().unwrap();
        let got: f64 = row[3].parse().unwrap();
        assert!((got - mean).abs() < 0.01, "{}: mean {got}, generator {mean}", row[0]);
        assert_eq!(row[4].parse::<f64>().unwrap(), want[3].parse::<f64>().unwrap(), "{}: median", row[0]);
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
    // Nor the religion the landscape notices list (a special category, mapped by no purpose: dropped) — which they
    // do: without the mapping's `drop`, the column is refused.
    for religion in ["islamisch", "christlich", "jesidisch", "orthodox"] {
        assert!(!stored.contains(religion), "the religion '{religion}' is stored in the warehouse");
    }
    let landscape = &expected.iter().find(|r| r[1] == "landscape").expect("a landscape notice")[0];
    let mapping = dir.path().join("cube-schemas/sources/add_zuweisungen.toml");
    let text = std::fs::read_to_string(&mapping).unwrap();
    std::fs::write(&mapping, text.replacen(", \"Religion\"]", "]", 1)).unwrap();
    let kept = cli(
        dir.path(),
        &["ingest", "--demo-key", "--dry-run", "add_zuweisungen", &notices.join(landscape).display().to_string()],
    );
    assert_ne!(kept.code, ExitCode::SUCCESS);
    assert!(kept.stderr.contains("column 'Religion' is neither mapped nor dropped"), "{}", kept.stderr);

    // Mapped, it needs a stated purpose; with one, it is read like any column (a copy's cube gets one for it).
    let cube = dir.path().join("cube-schemas/cubes/zuweisungen.toml");
    let column = "\n[[columns]]\nname = \"religion\"\ntype = \"string\"\n";
    std::fs::write(&cube, std::fs::read_to_string(&cube).unwrap() + column).unwrap();
    let mapped = std::fs::read_to_string(&mapping).unwrap() + "\n[fields.religion]\ntext = \"Religion\"\n";
    std::fs::write(&mapping, &mapped).unwrap();
    let check = cli(dir.path(), &["check"]);
    assert_ne!(check.code, ExitCode::SUCCESS);
    assert!(check.stderr.contains("map it only with `special_category"), "{}", check.stderr);
    let purpose = "special_category = \"Seelsorge-Angebote planen (Ratsbeschluss 2025/17)\"\n";
    std::fs::write(&mapping, mapped + purpose).unwrap();
    let args = ["ingest", "--demo-key", "--dry-run", "add_zuweisungen", &notices.join(landscape).display().to_string()];
    let read = cli(dir.path(), &args);
    assert_eq!(read.code, ExitCode::SUCCESS, "{}{}", read.stdout, read.stderr);
    assert!(read.stdout.contains("religion"), "{}", read.stdout);
    assert!(
        ["islamisch", "christlich", "jesidisch", "orthodox"].iter().any(|r| read.stdout.contains(r)),
        "{}",
        read.stdout
    );
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

/// The generator's persons per month of allocation (its records summed over sex and region), in month order.
fn persons_by_month() -> Vec<(String, f64)> {
    let mut by_month: BTreeMap<String, f64> = BTreeMap::new();
    for r in fixture("zuweisungen_by_month_sex_region.csv") {
        *by_month.entry(r[0].clone()).or_default() += r[3].parse::<f64>().unwrap();
    }
    by_month.into_iter().collect()
}

#[test]
fn a_forecast_continues_the_observed_months_in_rows_of_its_own() {
    let dir = crate::support::demo_project();
    // The question of the issue, as the statistics office (exact numbers, which the generator's records give).
    let args =
        ["zuweisungen", "-m", "persons", "-m", "persons_forecast", "-d", "month", "-c", "month=2024-01..2025-06"];
    let rows = query(dir, &args);
    let observed = persons_by_month();
    assert_eq!(observed.len(), 18, "the generator writes 18 months");
    assert_eq!(rows.len(), 18 + 6, "18 observed months, then the six forecast ones");
    // Columns: month, month_label, persons, persons_forecast, _lower, _upper, _forecast.
    for (row, (month, persons)) in rows.iter().zip(&observed) {
        assert_eq!((&row[0], row[2].parse::<f64>().unwrap()), (month, *persons), "{row:?}");
        assert!(row[3..=6].iter().all(String::is_empty), "an observed month has no forecast: {row:?}");
    }
    // The forecast, fitted here on the generator's counts with the same well-kept library (augurs' AutoETS over
    // additive-error models, 95 %):
    // kubus hands it the published series and rounds, clamps and places what comes back.
    use augurs_core::{Fit, Predict};
    let y: Vec<f64> = observed.iter().map(|(_, p)| *p).collect();
    let fitted = augurs_ets::AutoETS::new(1, "AZN").unwrap().fit(&y).unwrap().predict(6, 0.95).unwrap();
    let intervals = fitted.intervals.unwrap();
    let months = ["2025-07", "2025-08", "2025-09", "2025-10", "2025-11", "2025-12"];
    for (i, row) in rows[18..].iter().enumerate() {
        assert_eq!(row[0], months[i]);
        assert!(row[1].ends_with("2025"), "{row:?}");
        assert_eq!(row[2], "", "a forecast month has no observed value");
        let want = [fitted.point[i], intervals.lower[i], intervals.upper[i]].map(|v| v.max(0.0).round() as i64);
        let got = [3, 4, 5].map(|c| row[c].parse::<i64>().unwrap());
        assert_eq!(got, want, "{}", months[i]);
        assert!(got[1] <= got[0] && got[0] <= got[2], "the interval holds the forecast: {row:?}");
        assert_eq!(row[6], "P", "marked as forecast");
    }

    // JSON-stat: the forecast values carry the status P, the unobserved months' persons the status "…".
    let out = cli(dir, &[&["--role", "statistik", "query"], &args[..], &["-f", "json-stat"]].concat());
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let stat: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let measures = stat["size"][1].as_u64().unwrap() as usize;
    assert_eq!(measures, 4, "persons, the forecast and its two bounds");
    let july = stat["dimension"]["month"]["category"]["index"]["2025-07"].as_u64().unwrap() as usize * measures;
    assert_eq!(stat["status"][july.to_string()], "…");
    assert_eq!(stat["status"][(july + 1).to_string()], "P");
    let june = stat["dimension"]["month"]["category"]["index"]["2025-06"].as_u64().unwrap() as usize * measures;
    assert!(stat["status"].get(june.to_string()).is_none(), "an observed value has no status");
    assert!(stat["note"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().starts_with("P = Prognose")));

    // XLSX: the symbol in the forecast rows' column "Prognose", and the note on the sheet of notes.
    use calamine::Reader;
    let file = tempfile::tempdir().unwrap();
    let path = file.path().join("prognose.xlsx");
    let out = cli(
        dir,
        &[&["--role", "statistik", "query"], &args[..], &["-f", "xlsx", "-o", path.to_str().unwrap()]].concat(),
    );
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(&path).unwrap();
    let sheet = book.worksheet_range(&book.sheet_names()[0]).unwrap();
    let cells: Vec<Vec<String>> = sheet.rows().map(|r| r.iter().map(ToString::to_string).collect()).collect();
    assert_eq!(cells[0].last().unwrap(), "Prognose");
    assert_eq!(cells.iter().filter(|r| r.last().unwrap() == "P").count(), 6);
    let notes = book.worksheet_range("Hinweise").unwrap();
    assert!(notes.rows().any(|r| r[0].to_string().starts_with("Prognose (P) Personen (Prognose)")));
}

#[test]
fn a_forecast_needs_time_order_and_enough_published_months() {
    let dir = crate::support::demo_project();
    let refused = |args: &[&str], reason: &str| {
        let out =
            cli(dir, &[&["--role", "statistik", "query", "zuweisungen", "-m", "persons_forecast"], args].concat());
        assert_ne!(out.code, ExitCode::SUCCESS);
        assert!(out.stderr.contains(reason), "{}", out.stderr);
    };
    refused(&["-d", "sex"], "cannot forecast persons_forecast: it continues a series over time: drill down by month");
    refused(&["-d", "month", "--limit", "3"], "a forecast answer is in time order");
    // Six months are too few to fit a trend: the answer says so instead of guessing.
    let short = ["query", "zuweisungen", "-m", "persons_forecast", "-d", "month", "-c", "month=2024-01..2024-06"];
    let out = cli(dir, &short);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    assert!(out.stdout.contains("keine Prognose für 1 Reihe(n) mit weniger als 9 Perioden"), "{}", out.stdout);
    assert_eq!(csv_rows(&cli(dir, &[&short[..], &["-f", "csv"]].concat()).stdout).len(), 6, "no forecast rows");
    // A forecast per series: by sex, each sex's months go on, after its own observed ones.
    let rows = query(dir, &["zuweisungen", "-m", "persons_forecast", "-d", "sex", "-d", "month"]);
    for sex in ["m", "w"] {
        let theirs: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == sex).collect();
        assert_eq!(theirs.iter().filter(|r| r.last().unwrap() == "P").count(), 6, "{sex}");
        assert_eq!(theirs.last().unwrap()[2], "2025-12", "{sex}: the forecast months come last");
    }
}

#[test]
fn the_allocations_report_draws_the_forecast_dashed_with_its_interval() {
    let dir = crate::support::demo_project();
    let out = tempfile::tempdir().unwrap();
    let r = cli(
        dir,
        &["report", "run", "zuweisungen_monthly", "--period", "2025-06", "--out", out.path().to_str().unwrap()],
    );
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.stderr);
    let folder = out.path().join("zuweisungen_monthly_2025-06");
    let html = std::fs::read_to_string(folder.join("zuweisungen_monthly_2025-06.html")).unwrap();
    assert!(html.contains("class=\"forecast\"") && html.contains("stroke-dasharray"), "a dashed forecast line");
    assert!(html.contains("class=\"forecast-interval\""), "its interval as a band");
    assert!(html.contains("Prognose (P) Personen (Prognose): die nächsten 6 Perioden (Ebene Monat)"), "its note");
    let csv =
        std::fs::read_to_string(folder.join("tables/01_zugewiesene-personen-der-letzten-18-monate-und-prognose.csv"))
            .unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 24);
    assert!(rows[18..].iter().all(|l| l.ends_with(";P")), "{csv}");
}
