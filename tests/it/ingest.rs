//! Ingest over the sample exports: a dry run changes nothing; earlier versions stay readable by query and SQL; a
//! corrected export replaces its month; xlsx, xls and ods give the same facts. Expected counts come from the raw
//! files and the generator's fixtures.

use crate::support::{cli, csv_rows, fixture, project_copy, query};
use std::path::Path;
use std::process::ExitCode;

/// Data lines of a sample export, counted from its raw bytes: each starts with the person number, or with the
/// delimiter where the number is missing.
fn person_lines(dir: &Path, month: &str) -> usize {
    let raw = std::fs::read(dir.join(format!("sample-data/auslaenderbehoerde/neuzugewanderte_{month}.csv"))).unwrap();
    raw.split(|&b| b == b'\n').filter(|l| l.starts_with(b"ABH-") || l.starts_with(b";")).count()
}

#[test]
fn a_dry_run_shows_facts_and_rejects_but_changes_nothing() {
    let dir = project_copy();
    let file = dir.path().join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-06.csv");
    let out = cli(dir.path(), &["ingest", "--demo-key", "abh_newcomers", &file.display().to_string(), "--dry-run"]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let broken = fixture("quarantine.csv").into_iter().filter(|r| r[0] == "neuzugewanderte_2024-06.csv").count();
    assert!(out.stdout.contains("first 10 facts:"), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("{broken} rejected line(s)")), "{}", out.stdout);
    let quarantine = cli(dir.path(), &["--role", "datenpflege", "quarantine"]);
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
        assert_eq!(
            cli(dir.path(), &["ingest", "--demo-key", "abh_newcomers", &file.display().to_string()]).code,
            ExitCode::SUCCESS
        );
    }
    let (first, both) = (
        person_lines(dir.path(), "2023-01"),
        person_lines(dir.path(), "2023-01") + person_lines(dir.path(), "2023-02"),
    );
    let sql = |extra: &[&str]| -> String {
        let mut args = vec!["--role", "statistik", "sql", "SELECT count(*) AS records FROM newcomers", "-f", "csv"];
        args.extend_from_slice(extra);
        let out = cli(dir.path(), &args);
        assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
        csv_rows(&out.stdout)[0][0].clone()
    };
    assert_eq!(sql(&[]), both.to_string());
    assert_eq!(sql(&["--as-of", "newcomers=0"]), first.to_string());
    assert_eq!(query(dir.path(), &["newcomers", "-m", "records", "--as-of", "0"])[0][0], first.to_string());
    let bad = cli(dir.path(), &["--role", "statistik", "sql", "SELECT 1", "--as-of", "newcomers=9"]);
    assert_eq!(bad.code, ExitCode::from(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("no version 9 (latest is 1)"), "{}", bad.stderr);
}

/// The June export with its three broken lines corrected, as the office would send it again.
fn corrected_june(dir: &Path) -> std::path::PathBuf {
    let original = dir.join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-06.csv");
    let text: String = std::fs::read(&original).unwrap().iter().map(|&b| b as char).collect();
    let mut lines: Vec<String> = text.split("\r\n").map(str::to_owned).collect();
    let header: Vec<String> = lines[0].split(';').map(str::to_owned).collect();
    for row in fixture("quarantine.csv").into_iter().filter(|r| r[0] == "neuzugewanderte_2024-06.csv") {
        let (line, column): (usize, &str) = (row[1].parse().unwrap(), &row[2]);
        let fixed = match column {
            "Geburtsdatum" => "28.02.1991",
            "Stadtteil" => "Betzenberg",
            "Personennummer" => "ABH-999999",
            other => panic!("no correction for {other}"),
        };
        let mut cells: Vec<String> = lines[line - 1].split(';').map(str::to_owned).collect();
        cells[header.iter().position(|h| h == column).unwrap()] = fixed.to_owned();
        lines[line - 1] = cells.join(";");
    }
    let fixed_dir = dir.join("corrected");
    std::fs::create_dir_all(&fixed_dir).unwrap();
    let path = fixed_dir.join("neuzugewanderte_2024-06.csv");
    std::fs::write(&path, lines.join("\r\n").chars().map(|c| c as u8).collect::<Vec<u8>>()).unwrap();
    path
}

#[test]
fn a_corrected_export_replaces_its_month_and_leaves_quarantine() {
    let dir = project_copy();
    let abh = dir.path().join("sample-data/auslaenderbehoerde");
    let files: Vec<String> = ["2024-05", "2024-06"]
        .iter()
        .map(|m| abh.join(format!("neuzugewanderte_{m}.csv")).display().to_string())
        .collect();
    let out = cli(dir.path(), &["ingest", "--demo-key", "abh_newcomers", &files[0], &files[1]]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let june = person_lines(dir.path(), "2024-06");
    let broken = fixture("quarantine.csv").into_iter().filter(|r| r[0] == "neuzugewanderte_2024-06.csv").count();
    assert!(
        cli(dir.path(), &["--role", "datenpflege", "quarantine"])
            .stdout
            .starts_with(&format!("{broken} line(s) in quarantine"))
    );

    let corrected = corrected_june(dir.path());
    let out = cli(dir.path(), &["ingest", "--demo-key", "abh_newcomers", &corrected.display().to_string()]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!("replaced {} facts of neuzugewanderte_2024-06.csv (all of them", june - broken)),
        "{}",
        out.stdout
    );
    assert_eq!(cli(dir.path(), &["--role", "datenpflege", "quarantine"]).stdout, "0 line(s) in quarantine\n");
    let records = |extra: &[&str]| -> Vec<Vec<String>> {
        let mut args = vec!["newcomers", "-m", "records", "-d", "month"];
        args.extend_from_slice(extra);
        query(dir.path(), &args)
    };
    let may = person_lines(dir.path(), "2024-05").to_string();
    assert_eq!(
        records(&[]),
        [
            vec!["2024-05".to_owned(), "Mai 2024".into(), may.clone()],
            vec!["2024-06".into(), "Juni 2024".into(), june.to_string()]
        ]
    );
    // The replaced facts are still there in the version before.
    assert_eq!(records(&["--as-of", "0"])[1][2], (june - broken).to_string());
}

#[test]
fn two_exports_for_one_month_in_one_ingest_are_refused() {
    let dir = project_copy();
    let original = dir.path().join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-06.csv");
    let corrected = corrected_june(dir.path());
    let copy = dir.path().join("corrected/neuzugewanderte_2024-06_korrigiert.csv");
    std::fs::copy(&corrected, &copy).unwrap();
    let out = cli(
        dir.path(),
        &["ingest", "--demo-key", "abh_newcomers", &original.display().to_string(), &copy.display().to_string()],
    );
    assert_eq!(out.code, ExitCode::from(2), "{}", out.stdout);
    assert!(out.stderr.contains("both hold facts for month=2024-06"), "{}", out.stderr);
    assert_eq!(
        cli(dir.path(), &["query", "newcomers", "-m", "records"]).code,
        ExitCode::from(2),
        "nothing was committed"
    );
}

#[test]
fn legacy_xls_and_ods_workbooks_give_the_same_facts_as_xlsx() {
    let expected: Vec<(String, String)> =
        fixture("seats_by_level_2024.csv").into_iter().map(|r| (r[0].clone(), r[2].clone())).collect();
    for ext in ["xlsx", "xls", "ods"] {
        let dir = project_copy();
        let file = dir.path().join(format!("sample-data/kurstraeger/sprachkursangebote_2023_2024.{ext}"));
        let out = cli(dir.path(), &["ingest", "provider_offers", &file.display().to_string()]);
        assert_eq!(out.code, ExitCode::SUCCESS, "{ext}: {}", out.stderr);
        assert!(
            out.stdout
                .contains(&format!("({ext}): lines 183 = accepted 180 + rejected 0 + skipped 3 (title 2, header 1)")),
            "{ext}: {}",
            out.stdout
        );
        let seats: Vec<(String, String)> =
            query(dir.path(), &["course_offers", "-m", "seats", "-d", "language_level", "-c", "start_month.year=2024"])
                .into_iter()
                .map(|r| (r[0].clone(), r[2].clone()))
                .collect();
        assert_eq!(seats, expected, "{ext}");
    }
}

#[test]
fn a_file_that_is_no_workbook_is_refused_without_a_trace() {
    let dir = project_copy();
    let file = dir.path().join("offers.xlsx");
    std::fs::write(&file, b"PK\x03\x04 this is not really a workbook").unwrap();
    let out = cli(dir.path(), &["ingest", "provider_offers", &file.display().to_string()]);
    assert_eq!(out.code, ExitCode::from(2), "{}", out.stdout);
    assert!(out.stderr.contains("offers.xlsx: cannot read workbook"), "{}", out.stderr);
    assert_eq!(cli(dir.path(), &["--role", "datenpflege", "quarantine"]).stdout, "0 line(s) in quarantine\n");
}

/// An ingest of several months (a backfill) writes its facts sorted by month, so that a query cut on a month reads
/// only that month's row groups; here the later month's export comes first.
#[test]
fn facts_of_several_months_are_written_in_month_order() {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::DataType;
    let dir = project_copy();
    let abh = dir.path().join("sample-data/auslaenderbehoerde");
    let files: Vec<String> = ["2024-02", "2024-01"]
        .iter()
        .map(|m| abh.join(format!("neuzugewanderte_{m}.csv")).display().to_string())
        .collect();
    let out = cli(dir.path(), &["ingest", "--demo-key", "abh_newcomers", &files[0], &files[1]]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let table = dir.path().join("warehouse/facts/newcomers");
    let parquet: Vec<_> = std::fs::read_dir(&table)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    let ctx = datafusion::prelude::SessionContext::new_with_config(
        datafusion::prelude::SessionConfig::new().with_target_partitions(1),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for file in parquet {
        let batches = runtime
            .block_on(async {
                ctx.read_parquet(file.display().to_string(), Default::default())
                    .await?
                    .select_columns(&["month"])?
                    .collect()
                    .await
            })
            .unwrap();
        let mut months: Vec<String> = Vec::new();
        for b in batches {
            let month = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
            months.extend(month.as_string::<i32>().iter().map(|m| m.unwrap().to_owned()));
        }
        let changes: Vec<_> = months
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0] != w[1])
            .map(|(i, w)| (i, w[0].clone(), w[1].clone()))
            .collect();
        assert!(months.windows(2).all(|w| w[0] <= w[1]), "months out of order in {}: {changes:?}", file.display());
        seen.extend(months);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["2024-01", "2024-02"]);
}

/// Record keys are about as many as the facts: the table's files hold them plain and uncompressed (a dictionary
/// per row group would be as large as the column, and every count would decode it), whether a file was written
/// for a new table or by a delivery that replaces a month (through Delta's own write).
#[test]
fn record_keys_are_written_plain_whichever_way_a_file_is_written() {
    use datafusion::parquet::basic::{Compression, Encoding};
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = project_copy();
    let first = dir.path().join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-02.csv");
    // The month delivered again (another file, another SHA-256): it replaces the month's facts.
    let again = dir.path().join("neuzugewanderte_2024-02_again.csv");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes.extend_from_slice(b"\n");
    std::fs::write(&again, bytes).unwrap();
    for (version, file) in [&first, &again].into_iter().enumerate() {
        let out = cli(dir.path(), &["ingest", "--demo-key", "abh_newcomers", &file.display().to_string()]);
        assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
        assert!(out.stdout.contains(&format!("cube newcomers is at version {version}")), "{}", out.stdout);
    }
    let files: Vec<_> = std::fs::read_dir(dir.path().join("warehouse/facts/newcomers"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert!(files.len() >= 2, "the first write and the replacing one: {files:?}");
    for file in files {
        let reader = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
        for group in reader.metadata().row_groups() {
            let chunk = |name: &str| group.columns().iter().find(|c| c.column_path().string() == name).unwrap();
            let dictionary = |name: &str| chunk(name).encodings().any(|e| e == Encoding::RLE_DICTIONARY);
            assert!(!dictionary("_record_key"), "{}: {:?}", file.display(), chunk("_record_key"));
            assert_eq!(chunk("_record_key").compression(), Compression::UNCOMPRESSED, "{}", file.display());
            assert!(dictionary("district"), "members stay a dictionary: {}", file.display());
        }
    }
}

/// Two exports of the same month in one ingest, through a source that adds (here the authority's source without
/// its replace key, told that its deliveries add): their facts share the month's staged file, and every fact keeps
/// its own file's name and hash.
#[test]
fn two_exports_of_the_same_month_are_staged_together_and_keep_their_provenance() {
    let dir = project_copy();
    let source = dir.path().join("cube-schemas/sources/abh_newcomers.toml");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, text.replace("replace = [\"month\"]", "on_overlap = \"add\"")).unwrap();
    let first = dir.path().join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-06.csv");
    // The same export once more with an empty line at the end: another file (another SHA-256), the same facts.
    let second = dir.path().join("neuzugewanderte_2024-06_again.csv");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes.extend_from_slice(b"\n");
    std::fs::write(&second, bytes).unwrap();
    let out = cli(
        dir.path(),
        &["ingest", "--demo-key", "abh_newcomers", &first.display().to_string(), &second.display().to_string()],
    );
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    // The table's files, read as they are (the SQL views leave the provenance columns out).
    let table = dir.path().join("warehouse/facts/newcomers");
    let ctx = datafusion::prelude::SessionContext::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let batches = runtime
        .block_on(async {
            ctx.register_parquet("facts", table.display().to_string(), Default::default()).await?;
            ctx.sql("SELECT _ingest_file, count(*) AS facts, count(DISTINCT _ingest_hash) AS hashes FROM facts GROUP BY 1 ORDER BY 1").await?.collect().await
        })
        .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
    // Both files with the same facts, each under its own name and one hash.
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.contains(".csv"))
        .map(|l| l.split('|').map(str::trim).filter(|c| !c.is_empty()).collect())
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(
        (rows[0][0], rows[1][0]),
        ("neuzugewanderte_2024-06.csv", "neuzugewanderte_2024-06_again.csv"),
        "{text}"
    );
    assert!(rows[0][1].parse::<usize>().unwrap() > 500 && rows[0][1] == rows[1][1], "{text}");
    assert_eq!((rows[0][2], rows[1][2]), ("1", "1"), "{text}");
}

/// JSON lines: the first line the column names as an array, every other line an object (a key that is not a
/// column is refused), an empty line a record without cells. A format kubus does not know, read by a reader the
/// program registers.
struct JsonLines;

impl kubus::RecordReader for JsonLines {
    fn records(
        &self,
        _name: &str,
        bytes: &[u8],
        _options: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<kubus::Row>, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        let mut columns: Vec<String> = Vec::new();
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let cells = if line.trim().is_empty() {
                Vec::new()
            } else if i == 0 {
                columns = serde_json::from_str(line).map_err(|e| format!("line 1: {e}"))?;
                columns.iter().map(|c| kubus::Cell::Text(c.clone())).collect()
            } else {
                let object: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
                if let Some(key) = object.keys().find(|k| !columns.contains(k)) {
                    return Err(format!("line {}: '{key}' is no column", i + 1));
                }
                let cell = |c: &String| match object.get(c) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                columns.iter().map(|c| kubus::Cell::Text(cell(c))).collect()
            };
            rows.push(kubus::Row { line: i + 1, span: 1, cells });
        }
        Ok(rows)
    }
}

/// A reader that loses a line.
struct LosesALine;

impl kubus::RecordReader for LosesALine {
    fn records(
        &self,
        name: &str,
        bytes: &[u8],
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<kubus::Row>, String> {
        let mut rows = JsonLines.records(name, bytes, options)?;
        rows.remove(2);
        Ok(rows)
    }
}

#[test]
fn a_format_of_the_citys_own_is_read_by_its_registered_reader_and_accounted_for() {
    let dir = project_copy();
    let source = "name = 'offers_jsonl'\ncube = 'course_offers'\n[format]\ntype = 'custom'\nreader = 'json-lines'\n\
        date_formats = ['%Y-%m-%d']\n[fields.provider]\nmember = 'Träger'\n[fields.district]\nmember = 'Stadtteil'\n\
        [fields.language_level]\nmember = 'Niveau'\n[fields.course_type]\nmember = 'Kursart'\n\
        [fields.start_month]\ndate = 'Kursbeginn'\n[fields.seats]\nnumber = 'Plätze'\n";
    std::fs::write(dir.path().join("cube-schemas/sources/offers_jsonl.toml"), source).unwrap();
    // Offers at random, every ninth in a district the city does not have, an empty line among them; the expected
    // seats per district are summed here from the offers written.
    let mut rng = crate::support::Rng(42);
    let districts = ["Innenstadt Ost", "Erlenbach", "Betzenberg", "Kaiserslautern-West"];
    let mut text = String::from(r#"["Träger","Stadtteil","Niveau","Kursart","Kursbeginn","Plätze"]"#);
    text.push('\n');
    let (mut seats, mut bad_lines) = (std::collections::BTreeMap::<&str, u64>::new(), Vec::new());
    for i in 0..300 {
        let line = i + 2;
        if i == 150 {
            text.push('\n');
            continue;
        }
        let district = if i % 9 == 4 { "Atlantis" } else { *rng.pick(&districts) };
        let n = 5 + rng.next(20);
        text.push_str(&format!(
            r#"{{"Träger":"VHS","Stadtteil":"{district}","Niveau":"{}","Kursart":"Integrationskurs","Kursbeginn":"2024-{:02}-01","Plätze":{n}}}"#,
            rng.pick(&["A1", "A2", "B1"]),
            1 + rng.next(12)
        ));
        text.push('\n');
        if district == "Atlantis" {
            bad_lines.push(line);
        } else {
            *seats.entry(district).or_default() += n;
        }
    }
    let file = dir.path().join("offers.jsonl");
    std::fs::write(&file, &text).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ingest = |project: &kubus::Project| {
        rt.block_on(project.ingest_with("offers_jsonl", std::slice::from_ref(&file), Default::default(), &mut |_| {}))
    };

    // Without the reader: the file is refused, nothing is written, and the message says how to add one.
    let project = kubus::Project::open(dir.path()).unwrap();
    let message = ingest(&project).unwrap_err().to_string();
    assert!(message.contains("reader 'json-lines'") && message.contains("Project::with_reader"), "{message}");
    let out = cli(dir.path(), &["ingest", "offers_jsonl", file.to_str().unwrap()]);
    assert!(out.code != ExitCode::SUCCESS && out.stderr.contains("reader 'json-lines'"), "{}", out.stderr);
    // A reader that loses a line is refused too: every line must be accounted for.
    let lossy = kubus::Project::open(dir.path()).unwrap().with_reader("json-lines", LosesALine);
    assert!(ingest(&lossy).unwrap_err().to_string().contains("every line must belong to one record"));
    assert!(!dir.path().join("warehouse/facts/course_offers").exists(), "nothing was written");

    let project = kubus::Project::open(dir.path()).unwrap().with_reader("json-lines", JsonLines);
    let report = ingest(&project).unwrap();
    let t = report.totals();
    assert_eq!((t.lines, t.accepted, t.rejected), (301, 299 - bad_lines.len(), bad_lines.len()));
    assert_eq!(
        t.skipped.iter().map(|(r, n)| (r.to_string(), n)).collect::<Vec<_>>(),
        [("header".to_owned(), 1), ("empty line".to_owned(), 1)]
    );
    assert_eq!(report.rejected.iter().map(|r| r.line).collect::<Vec<_>>(), bad_lines);
    let answer = query(dir.path(), &["course_offers", "-m", "seats", "-d", "district"]);
    let got: std::collections::BTreeMap<String, u64> =
        answer.iter().map(|r| (r[1].clone(), r[2].parse().unwrap())).collect();
    let expected: std::collections::BTreeMap<String, u64> = seats.iter().map(|(d, n)| (d.to_string(), *n)).collect();
    assert_eq!(got, expected);
}
