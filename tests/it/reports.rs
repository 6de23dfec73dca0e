//! Reports: `kubus report run` writes every output in one go, byte for byte the same for the same data; the XLSX
//! (re-read with calamine) and the JSON-stat datasets hold the figures and the suppression of the corresponding
//! cube queries.

use crate::support::{cli, csv_rows, demo_project};
use calamine::{Data, Reader, Xlsx};
use std::path::Path;
use std::process::ExitCode;

fn run(out: &Path) -> Vec<String> {
    let r = cli(demo_project(), &["report", "run", "newcomers_monthly", "--period", "2024-06", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.stderr);
    r.stdout.lines().skip(1).map(|l| l.trim().to_owned()).collect()
}

/// The same figures as a cube query (as anyone without a role sees them), as CSV rows.
fn figures(args: &[&str]) -> Vec<Vec<String>> {
    let out = cli(demo_project(), &[&["query"], args, &["-f", "csv"]].concat());
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    csv_rows(&out.stdout)
}

#[test]
fn the_monthly_report_holds_the_cube_figures_in_every_output() {
    let out = tempfile::tempdir().unwrap();
    let files = run(out.path());
    let dir = out.path().join("newcomers_monthly_2024-06");
    for name in ["newcomers_monthly_2024-06.html", "newcomers_monthly_2024-06.md", "newcomers_monthly_2024-06.xlsx"] {
        assert!(files.iter().any(|f| f.ends_with(name)), "{name} in {files:?}");
    }
    assert_eq!(files.iter().filter(|f| f.ends_with(".json")).count(), 6, "one JSON-stat dataset per table and chart");
    assert_eq!(files.iter().filter(|f| f.ends_with(".csv")).count(), 6);

    // XLSX: the district table equals the cube query, suppressed cells included.
    let by_district = figures(&["newcomers", "-m", "persons", "-m", "share_below_b1", "-d", "district", "-c", "month=2024-06", "--totals"]);
    assert!(by_district.iter().any(|r| r[3] == "."), "the sample month has suppressed shares");
    let mut book: Xlsx<_> = calamine::open_workbook(dir.join("newcomers_monthly_2024-06.xlsx")).unwrap();
    let names = book.sheet_names();
    assert_eq!(names.first().map(String::as_str), Some("01 Personen nach Stadtteil"));
    assert_eq!(names.last().map(String::as_str), Some("Legende"));
    let sheet = book.worksheet_range("01 Personen nach Stadtteil").unwrap();
    let rows: Vec<Vec<Data>> = sheet.rows().skip(1).map(<[Data]>::to_vec).collect();
    assert_eq!(rows.len(), by_district.len());
    for (got, want) in rows.iter().zip(&by_district) {
        assert_eq!(got[0].to_string(), want[0]);
        assert_eq!(got[2], Data::Float(want[2].parse().unwrap()));
        match want[3].as_str() {
            "." => assert_eq!(got[3], Data::String(".".into())),
            v => assert!(matches!(got[3], Data::Float(x) if (x - v.parse::<f64>().unwrap()).abs() < 1e-12)),
        }
    }
    let legend = book.worksheet_range("Legende").unwrap();
    let text: Vec<String> = legend.rows().map(|r| r.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")).collect();
    assert!(text.iter().any(|l| l.starts_with("Datenstand newcomers Version")), "{text:?}");
    assert!(text.iter().any(|l| l.contains("Fallzahlen von 1 bis 2 sind gesperrt (.)")), "{text:?}");

    // JSON-stat: the age band × sex table has the query's values and statuses at their positions.
    let stat: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("tables/04_personen-nach-altersgruppe-und-geschlecht.json")).unwrap()).unwrap();
    let by_age_sex = figures(&["newcomers", "-m", "persons", "-d", "age_band", "-d", "sex", "-c", "month=2024-06", "--totals"]);
    let size: Vec<usize> = stat["size"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let index = |id: &str, key: &str| stat["dimension"][id]["category"]["index"][if key.is_empty() { "_T" } else { key }].as_u64().unwrap() as usize;
    for r in &by_age_sex {
        let at = (index("age_band", &r[0]) * size[1] + index("sex", &r[2])) * size[2];
        if r[4] == "." {
            assert!(stat["value"][at].is_null());
            assert_eq!(stat["status"][at.to_string()], ".");
        } else {
            assert_eq!(stat["value"][at].to_string(), r[4]);
        }
    }
    assert!(stat["label"].as_str().unwrap().ends_with("Personen nach Altersgruppe und Geschlecht"));

    // HTML: self-contained (no external resources), the charts inline, the data version and the rule stated.
    let html = std::fs::read_to_string(dir.join("newcomers_monthly_2024-06.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 2, "the bar and the line chart");
    assert!(!html.contains("http://") || html.matches("http://").count() == html.matches("http://www.w3.org/2000/svg").count(), "nothing fetched at view time");
    assert!(html.contains("Datenstand: newcomers Version") && html.contains("Geheimhaltung:"));
    let md = std::fs::read_to_string(dir.join("newcomers_monthly_2024-06.md")).unwrap();
    assert!(md.contains("| Altersgruppe | männlich | weiblich | divers | Insgesamt |"), "a pivot: sex across");
}

#[test]
fn the_same_data_gives_the_same_bytes_and_a_run_replaces_the_last_whole() {
    let out = tempfile::tempdir().unwrap();
    run(out.path());
    let dir = out.path().join("newcomers_monthly_2024-06");
    let read_all = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        for sub in ["", "tables"] {
            for e in std::fs::read_dir(dir.join(sub)).unwrap() {
                let p = e.unwrap().path();
                if p.is_file() {
                    files.push((p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
                }
            }
        }
        files.sort();
        files
    };
    let first = read_all(&dir);
    std::fs::write(dir.join("stale.txt"), "from an earlier run").unwrap();
    run(out.path());
    assert_eq!(read_all(&dir), first, "byte-identical, and nothing of the earlier folder is left");
    let hidden: Vec<_> = std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(hidden.len(), 1, "no partial or old folders stay behind: {hidden:?}");

    let bad = cli(demo_project(), &["report", "run", "newcomers_monthly", "--period", "2024-13", "--out", out.path().to_str().unwrap()]);
    assert_eq!(bad.code, ExitCode::from(2));
    assert!(bad.stderr.contains("'2024-13' is not a report period"), "{}", bad.stderr);
    let bad = cli(demo_project(), &["report", "run", "newcomers_montly", "--period", "2024-06"]);
    assert!(bad.stderr.contains("unknown report 'newcomers_montly'; closest: newcomers_monthly"), "{}", bad.stderr);
}
