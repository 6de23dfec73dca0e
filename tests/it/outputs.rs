//! Every output format round-trips: German CSV and XLSX (re-read with calamine) and Parquet (re-read with the
//! parquet crate) give back the plain CSV's cells; JSON-stat has the structure of the standard, with roles, and
//! its values at the positions its `id` and `size` say.

use crate::support::{cli, csv_rows, demo_project};
use calamine::{Data, Reader, Xlsx};
use std::process::ExitCode;

const QUERY: [&str; 12] = [
    "query",
    "newcomers",
    "-m",
    "persons",
    "-m",
    "share_below_b1",
    "-d",
    "district.area",
    "-c",
    "month=2024-06",
    "--totals",
    "-f",
];

fn run(format: &str, out: Option<&std::path::Path>) -> String {
    let mut args: Vec<String> = QUERY.iter().map(|s| (*s).to_owned()).collect();
    args.push(format.to_owned());
    if let Some(path) = out {
        args.extend(["--out".to_owned(), path.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cli(demo_project(), &args);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    out.stdout
}

/// The plain CSV: the reference the other formats are compared with.
fn reference() -> (Vec<String>, Vec<Vec<String>>) {
    let text = run("csv", None);
    let header = text.lines().next().unwrap().split(',').map(str::to_owned).collect();
    (header, csv_rows(&text))
}

#[test]
fn german_csv_has_semicolons_decimal_commas_and_a_bom() {
    let (header, rows) = reference();
    let text = run("csv-de", None);
    let body = text.strip_prefix('\u{feff}').expect("a byte-order mark for Excel");
    let mut reader = csv::ReaderBuilder::new().delimiter(b';').from_reader(body.as_bytes());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), header);
    let back: Vec<Vec<String>> =
        reader.records().map(|r| r.unwrap().iter().map(|c| c.replace(',', ".")).collect()).collect();
    assert_eq!(back, rows);
    assert!(body.contains(";0,"), "decimals use a comma: {body}");
}

#[test]
fn xlsx_reads_back_with_calamine() {
    let (_, rows) = reference();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.xlsx");
    run("xlsx", Some(&path));
    let mut book: Xlsx<_> = calamine::open_workbook(&path).unwrap();
    assert_eq!(book.sheet_names(), ["Neuzugewanderte (Monatsbestand)", "Hinweise"], "named after the cube");
    let notes = book.worksheet_range("Hinweise").unwrap();
    let notes: Vec<String> = notes.rows().map(|r| r[0].to_string()).collect();
    assert!(notes.iter().any(|n| n.starts_with("Geheimhaltung newcomers:")), "how it is protected: {notes:?}");
    let sheet = book.worksheet_range("Neuzugewanderte (Monatsbestand)").unwrap();
    let cells: Vec<Vec<Data>> = sheet.rows().map(<[Data]>::to_vec).collect();
    let heading: Vec<String> = cells[0].iter().map(ToString::to_string).collect();
    assert_eq!(heading, ["Stadtbereich", "Stadtbereich (Bezeichnung)", "Personen", "Anteil unter B1", "Insgesamt"]);
    assert_eq!(cells.len() - 1, rows.len());
    for (got, want) in cells[1..].iter().zip(&rows) {
        assert_eq!(got[0].to_string(), want[0]);
        assert_eq!(got[1].to_string(), want[1]);
        assert_eq!(got[2], Data::Float(want[2].parse().unwrap()), "persons are numbers, not text");
        assert_eq!(got[3], Data::Float(want[3].parse().unwrap()));
        assert_eq!(got[4], Data::Bool(want[4] == "true"));
    }
    // Binary formats go to a file, never to the terminal.
    let out = cli(demo_project(), &[&QUERY[..], &["xlsx"]].concat());
    assert_eq!(out.code, ExitCode::from(2));
    assert!(out.stderr.contains("xlsx is a binary format; write it to a file with --out FILE"), "{}", out.stderr);
}

#[test]
fn parquet_reads_back_with_the_same_values() {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let (header, rows) = reference();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.parquet");
    run("parquet", Some(&path));
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap()).unwrap().build().unwrap();
    let mut back = Vec::new();
    let mut names = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        names = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        let options = FormatOptions::default();
        let formatters: Vec<_> =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
        for r in 0..batch.num_rows() {
            back.push(formatters.iter().map(|f| f.value(r).to_string()).collect::<Vec<_>>());
        }
    }
    // Parquet keeps the disclosure status of each measure in columns of its own (empty: nothing is suppressed
    // at this level); the text formats fold them into the values.
    assert_eq!(names, [header.clone(), vec!["persons_status".into(), "share_below_b1_status".into()]].concat());
    assert!(back.iter().all(|r| r[header.len()..].iter().all(String::is_empty)), "{back:?}");
    let back: Vec<Vec<String>> = back.into_iter().map(|r| r[..header.len()].to_vec()).collect();
    assert_eq!(back, rows);
}

/// Need and persons by district and quarter of 2024 at level C1, exact; the format follows.
const NEED_BY_QUARTER: [&str; 17] = [
    "--role",
    "statistik",
    "query",
    "newcomers",
    "-m",
    "need",
    "-m",
    "persons",
    "-d",
    "district",
    "-d",
    "month.quarter",
    "-c",
    "month.year=2024",
    "-c",
    "language_level=C1",
    "-f",
];

#[test]
fn json_stat_is_a_dataset_with_roles_and_statuses() {
    let out = cli(demo_project(), &[&NEED_BY_QUARTER[..], &["json-stat"]].concat());
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!((v["version"].as_str(), v["class"].as_str()), (Some("2.0"), Some("dataset")));
    assert_eq!(v["id"], serde_json::json!(["district", "quarter", "measure"]));
    assert_eq!(v["role"]["geo"], serde_json::json!(["district"]));
    assert_eq!(v["role"]["time"], serde_json::json!(["quarter"]));
    assert_eq!(v["role"]["metric"], serde_json::json!(["measure"]));
    let size: Vec<usize> = v["size"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap() as usize).collect();
    let values = v["value"].as_array().unwrap();
    assert_eq!(values.len(), size.iter().product::<usize>());
    assert_eq!(size[2], 2);
    for (i, id) in ["district", "quarter"].iter().enumerate() {
        let index = v["dimension"][id]["category"]["index"].as_object().unwrap();
        assert_eq!(index.len(), size[i], "{id}");
        let labels = v["dimension"][id]["category"]["label"].as_object().unwrap();
        assert!(index.keys().all(|k| labels.contains_key(k)), "every category has a label");
    }
    // Each row of the CSV answer sits at the position id and size give it; the cells no row fills say "-".
    let csv = cli(demo_project(), &[&NEED_BY_QUARTER[..], &["csv"]].concat());
    let rows = csv_rows(&csv.stdout);
    let index = |id: &str, key: &str| v["dimension"][id]["category"]["index"][key].as_u64().unwrap() as usize;
    for row in &rows {
        let at = (index("district", &row[0]) * size[1] + index("quarter", &row[2])) * 2;
        assert_eq!(values[at].to_string(), row[4]);
        assert_eq!(values[at + 1].to_string(), row[5]);
    }
    let status = v["status"].as_object().unwrap();
    let absent = (size[0] * size[1] - rows.len()) * 2;
    assert!(absent > 0, "the test needs a district with no C1 newcomers in some quarter");
    assert_eq!(status.values().filter(|s| *s == "-").count(), absent);
    assert!(status.keys().all(|k| values[k.parse::<usize>().unwrap()].is_null()));
}
