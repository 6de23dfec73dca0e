//! The demo end to end: sample exports in, the independent fixtures out — persons per district, the
//! quarantine, course seats — through every output format, and idempotent re-ingest.

use crate::support::{cli, csv_rows, demo_project, fixture, project_copy};
use std::process::ExitCode;

#[test]
fn demo_prints_the_fixture_persons_per_district() {
    let dir = project_copy();
    let out = cli(dir.path(), &["demo"]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    assert!(out.stderr.contains("DEMO key"), "the demo key must be announced: {}", out.stderr);
    // Every line of the 24 exports is accounted for: the counts come from the raw files and the generator's
    // lists of broken and skipped lines, not from kubus.
    let dir_abh = crate::support::repo().join("sample-data/auslaenderbehoerde");
    let (mut lines, mut files) = (0, 0);
    for entry in std::fs::read_dir(dir_abh).unwrap() {
        lines += std::fs::read(entry.unwrap().path()).unwrap().iter().filter(|&&b| b == b'\n').count();
        files += 1;
    }
    let rejected = fixture("quarantine.csv").len();
    let skipped = fixture("skipped.csv");
    let count = |reason: &str| skipped.iter().filter(|r| r[2] == reason).count();
    let (totals, empty) = (count("total line"), count("empty line"));
    let accepted = lines - files - rejected - totals - empty;
    let expected = format!(
        "lines {lines} = accepted {accepted} + rejected {rejected} + skipped {} (header {files}, total line {totals}, empty line {empty}) → {accepted} facts",
        files + totals + empty
    );
    assert!(out.stdout.contains(&expected), "expected {expected} in\n{}", out.stdout);
    // The demo asks as anyone would, so its counts carry the cell key method's noise: at most ±3 from the
    // generator's, never 1 or 2, and the answer says so.
    assert!(out.stdout.contains("Geheimhaltung newcomers: Cell-Key-Verfahren"), "{}", out.stdout);
    let mut changed = 0;
    for row in fixture("persons_by_district_2024-06.csv") {
        let (key, persons) = (&row[0], row[1].parse::<i64>().unwrap());
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("│ {key} ")))
            .unwrap_or_else(|| panic!("district {key} missing from the demo output:\n{}", out.stdout));
        let cells: Vec<&str> =
            line.split('┆').map(|c| c.trim_matches(|c: char| c.is_whitespace() || c == '│')).collect();
        let shown: i64 = cells[2].parse().unwrap();
        assert!((shown - persons).abs() <= 3 && !(1..=2).contains(&shown), "district {key}: {line} against {persons}");
        changed += usize::from(shown != persons);
    }
    assert!(changed > 0, "the noise changes some of the districts' counts");
}

#[test]
fn query_csv_and_json_give_the_fixture_counts() {
    let dir = demo_project();
    let expected: Vec<(String, u64)> =
        fixture("persons_by_district_2024-06.csv").into_iter().map(|r| (r[0].clone(), r[1].parse().unwrap())).collect();
    let out = cli(
        dir,
        &[
            "--role",
            "statistik",
            "query",
            "newcomers",
            "-m",
            "persons",
            "-d",
            "district",
            "-c",
            "month=2024-06",
            "--format",
            "csv",
        ],
    );
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    assert!(out.stdout.starts_with("district,district_label,persons\n"), "{}", out.stdout);
    let got: Vec<(String, u64)> =
        csv_rows(&out.stdout).into_iter().map(|r| (r[0].clone(), r[2].parse().unwrap())).collect();
    assert_eq!(got, expected);

    let out = cli(
        dir,
        &[
            "--role",
            "statistik",
            "query",
            "newcomers",
            "-m",
            "persons",
            "-d",
            "district",
            "-c",
            "month=Juni 2024",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    let got: Vec<(String, u64)> =
        rows.iter().map(|r| (r["district"].as_str().unwrap().to_owned(), r["persons"].as_u64().unwrap())).collect();
    assert_eq!(got, expected);
}

#[test]
fn quarantine_holds_exactly_the_broken_lines_with_reasons() {
    let dir = demo_project();
    let text = std::fs::read_to_string(dir.join("warehouse/quarantine/abh_newcomers.csv")).unwrap();
    let got: Vec<Vec<String>> =
        csv_rows(&text).into_iter().map(|r| vec![r[0].clone(), r[1].clone(), r[2].clone(), r[4].clone()]).collect();
    let mut expected = fixture("quarantine.csv");
    expected.sort_by_key(|r| (r[0].clone(), r[1].parse::<usize>().unwrap()));
    assert_eq!(got, expected);
    for row in csv_rows(&text) {
        assert!(!row[5].is_empty(), "every quarantined line has a reason: {row:?}");
    }
    assert!(text.contains("Innenstadt Mitte") && text.contains("closest"), "unknown members name the closest: {text}");
}

#[test]
fn course_seats_by_level_match_the_workbook() {
    let out = cli(
        demo_project(),
        &[
            "query",
            "course_offers",
            "-m",
            "offers",
            "-m",
            "seats",
            "-d",
            "language_level",
            "-c",
            "year=2024",
            "-f",
            "csv",
        ],
    );
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let got: Vec<Vec<String>> =
        csv_rows(&out.stdout).into_iter().map(|r| vec![r[0].clone(), r[2].clone(), r[3].clone()]).collect();
    assert_eq!(got, fixture("seats_by_level_2024.csv"));
}

#[test]
fn totals_add_up_and_are_marked() {
    let out = cli(
        demo_project(),
        &[
            "--role",
            "statistik",
            "query",
            "newcomers",
            "-m",
            "records",
            "-d",
            "district.area",
            "-c",
            "month=2024-06",
            "--totals",
            "-f",
            "json",
        ],
    );
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[2]["_total"], true);
    assert_eq!(rows[2]["area_label"], "Insgesamt");
    let parts: u64 = rows[..2].iter().map(|r| r["records"].as_u64().unwrap()).sum();
    assert_eq!(parts, rows[2]["records"].as_u64().unwrap());
    // Records of June 2024 = data lines of that month's file that were accepted (a count from the raw file).
    let raw = std::fs::read(crate::support::repo().join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-06.csv"))
        .unwrap();
    let data_lines = raw.split(|&b| b == b'\n').filter(|l| l.starts_with(b"ABH-") || l.starts_with(b";")).count();
    // Three of those lines were rejected (invalid date, unknown district, missing person number).
    assert_eq!(rows[2]["records"].as_u64().unwrap(), data_lines as u64 - 3);
}

#[test]
fn cuts_by_label_alias_set_range_and_negation() {
    let dir = demo_project();
    let count = |cut: &str| -> u64 {
        let out = cli(
            dir,
            &[
                "--role",
                "statistik",
                "query",
                "newcomers",
                "-m",
                "records",
                "-c",
                "month=2024-06",
                "-c",
                cut,
                "-f",
                "csv",
            ],
        );
        assert_eq!(out.code, ExitCode::SUCCESS, "{cut}: {}", out.stderr);
        csv_rows(&out.stdout)[0][0].parse().unwrap()
    };
    let all = count("district=KL");
    assert_eq!(count("district=Betzenberg"), count("district=06"));
    assert_eq!(count("district=betze"), count("district=06"), "aliases resolve case-insensitively");
    assert_eq!(count("district=06,09"), count("district=06") + count("district=KL-West"));
    assert_eq!(count("district=Kernstadt") + count("area=O"), all);
    assert_eq!(count("district!=06") + count("district=06"), all);
    assert_eq!(count("age=0..17") + count("age=18..110"), all);
    assert_eq!(count("age_band=18-24"), count("age=18..24"));
}

#[test]
fn sql_reads_views_with_labels() {
    let out = cli(
        demo_project(),
        &[
            "--role",
            "statistik",
            "sql",
            "SELECT district_area_label AS area, count(DISTINCT person_key) AS persons FROM newcomers WHERE month = '2024-06' GROUP BY 1 ORDER BY 1",
            "-f",
            "csv",
        ],
    );
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let rows = csv_rows(&out.stdout);
    assert_eq!(rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), ["Kernstadt", "Ortsbezirke"]);
    let refused = cli(demo_project(), &["--role", "statistik", "sql", "DROP TABLE newcomers"]);
    assert_eq!(refused.code, ExitCode::from(2), "{}", refused.stderr);
}

#[test]
fn ingesting_the_same_file_again_changes_nothing() {
    let dir = project_copy();
    let file = "sample-data/auslaenderbehoerde/neuzugewanderte_2024-06.csv";
    let first = cli(dir.path(), &["ingest", "--demo-key", "abh_newcomers", file]);
    assert_eq!(first.code, ExitCode::SUCCESS, "{}", first.stderr);
    assert!(first.stdout.contains("cube newcomers is at version 0"), "{}", first.stdout);
    let again = cli(dir.path(), &["ingest", "--demo-key", "abh_newcomers", file]);
    assert_eq!(again.code, ExitCode::SUCCESS, "{}", again.stderr);
    assert!(again.stdout.contains("already ingested"), "{}", again.stdout);
    assert!(again.stdout.contains("cube newcomers is at version 0"), "{}", again.stdout);
}

#[test]
fn no_identifying_value_reaches_the_warehouse() {
    let dir = demo_project();
    let raw = std::fs::read(dir.join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-06.csv")).unwrap();
    let text: String = raw.iter().map(|&b| b as char).collect();
    let line = text.lines().nth(1).unwrap();
    let fields: Vec<&str> = line.split(';').collect();
    // Person number, family name, street: none may appear in any warehouse file (Parquet or Delta log).
    let secrets = [fields[0], fields[1], fields[6], "kubus-demo-key-NOT-FOR-REAL-DATA"];
    let mut checked = 0;
    let mut stack = vec![dir.join("warehouse/facts")];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            for secret in secrets {
                let needle: Vec<u8> = secret.chars().map(|c| c as u8).collect();
                assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{secret} found in {}", path.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "the warehouse has files to check");
}

#[test]
fn the_library_answers_json_queries_with_arrow_batches() {
    let project = kubus::Project::open(demo_project()).unwrap();
    let query: kubus::Query = serde_json::from_str(
        r#"{"cube":"newcomers","measures":["persons","records"],"drilldowns":["sex"],"cuts":["month=2024-06"],"order":["-persons"],"limit":2}"#,
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let statistik = kubus::QueryOptions { role: Some("statistik".into()), ..Default::default() };
    let answer = runtime.block_on(project.query(&query, &statistik)).unwrap();
    assert_eq!(answer.result.num_rows(), 2);
    let names: Vec<&str> = answer.result.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["sex", "sex_label", "persons", "records"]);
    let batch = &answer.result.batches[0];
    let persons =
        datafusion::arrow::compute::cast(batch.column(2), &datafusion::arrow::datatypes::DataType::Int64).unwrap();
    let persons = persons.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().unwrap();
    assert!(persons.value(0) >= persons.value(1), "ordered by persons, descending");
    let total: u64 = fixture("persons_by_district_2024-06.csv").iter().map(|r| r[1].parse::<u64>().unwrap()).sum();
    // Each person lives in one district in a month, so the districts' persons add up to the month's persons.
    let all = kubus::Query { drilldowns: vec![], order: vec![], limit: None, ..query };
    let answer = runtime.block_on(project.query(&all, &statistik)).unwrap();
    let persons = datafusion::arrow::compute::cast(
        answer.result.batches[0].column(0),
        &datafusion::arrow::datatypes::DataType::Int64,
    )
    .unwrap();
    assert_eq!(persons.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().unwrap().value(0) as u64, total);
}

#[test]
fn a_project_handed_its_schemas_as_text_answers_from_the_same_warehouse() {
    // What an embedding tool does without schema files of its own: the configuration and every schema as text.
    let root = demo_project();
    let text = std::fs::read_to_string(root.join("kubus.toml")).unwrap();
    let mut schemas = Vec::new();
    let kinds = [("dimensions", kubus::SchemaKind::Dimension), ("cubes", kubus::SchemaKind::Cube)];
    for (sub, kind) in kinds.into_iter().chain([("sources", kubus::SchemaKind::Source)]) {
        for entry in std::fs::read_dir(root.join("cube-schemas").join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                schemas.push(kubus::SchemaFile { origin: path.display().to_string(), text, kind });
            }
        }
    }
    let config = kubus::ProjectConfig::parse("kubus.toml", &text).unwrap();
    let project = kubus::Project::new(root, config, kubus::load_model(&schemas).unwrap()).unwrap();
    let query: kubus::Query =
        serde_json::from_str(r#"{"cube":"newcomers","measures":["persons"],"cuts":["month=2024-06"]}"#).unwrap();
    let statistik = kubus::QueryOptions { role: Some("statistik".into()), ..Default::default() };
    let answer = tokio::runtime::Runtime::new().unwrap().block_on(project.query(&query, &statistik)).unwrap();
    let persons = datafusion::arrow::compute::cast(
        answer.result.batches[0].column(0),
        &datafusion::arrow::datatypes::DataType::Int64,
    )
    .unwrap();
    let total: u64 = fixture("persons_by_district_2024-06.csv").iter().map(|r| r[1].parse::<u64>().unwrap()).sum();
    assert_eq!(persons.as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().unwrap().value(0) as u64, total);

    // A configuration in memory cannot protect the warehouse less than it records, no more than a file can.
    let weaker = kubus::ProjectConfig::parse("kubus.toml", &text.replace("threshold = 2 ", "threshold = 1 ")).unwrap();
    let Err(refused) = kubus::Project::new(root, weaker, kubus::load_model(&schemas).unwrap()) else {
        panic!("a weaker configuration in memory was taken");
    };
    assert!(matches!(refused, kubus::Error::WeakerProtection { .. }), "{refused}");
}
