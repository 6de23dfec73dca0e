//! The three real exports of `sample-data/realdata/` ingest through their committed mappings: every line is
//! accounted for, and the facts reproduce the files' own totals. Expected numbers come from naive readings of
//! the raw files in this test, from the other publication, or from Destatis' published figure — not from kubus.

use crate::support::{cli, csv_rows, project_copy, query, repo};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

fn raw(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("sample-data/realdata").join(name)).unwrap()
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// Ingests one file through `source` and returns the CLI's stdout.
fn check_ingest(dir: &Path, source: &str, file: &Path, expected_accounting: &str) -> String {
    let out = cli(dir, &["ingest", source, &file.display().to_string()]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(expected_accounting), "expected {expected_accounting} in\n{}", out.stdout);
    out.stdout
}

const GENESIS: &str = "destatis_genesis_12411-0012_bundeslaender_altersjahre.csv";
const KREISE: &str = "bka_bevoelkerung_2023_kreise.xlsx";
const KOELN: &str = "koeln_bevoelkerung_stadtteile_2005-2012.csv";

/// The GENESIS file's own "Insgesamt" lines: (year, column index of the Land) → value or "-".
fn genesis_totals() -> (Vec<String>, BTreeMap<(String, usize), String>) {
    let text = latin1(&raw(GENESIS));
    let lines: Vec<&str> = text.lines().collect();
    let laender: Vec<String> = lines[5].split(';').skip(2).map(str::to_owned).collect();
    let mut totals = BTreeMap::new();
    for line in &lines {
        let cells: Vec<&str> = line.split(';').collect();
        if cells.len() == 18 && cells[1] == "Insgesamt" {
            for (i, v) in cells[2..].iter().enumerate() {
                totals.insert((cells[0][6..].to_owned(), i), (*v).to_owned());
            }
        }
    }
    (laender, totals)
}

#[test]
fn genesis_lines_are_accounted_for_and_totals_reproduced() {
    let dir = project_copy();
    let text = latin1(&raw(GENESIS));
    let lines = text.matches('\n').count();
    let data = text.lines().filter(|l| l.len() > 11 && l.as_bytes()[2] == b'.' && l.as_bytes()[10] == b';').count();
    let total_lines = text.lines().filter(|l| l.contains(";Insgesamt;")).count();
    let footer = lines - 6 - data;
    let accepted = data - total_lines;
    let expected = format!(
        "lines {lines} = accepted {accepted} + rejected 0 + skipped {} (title 4, header 2, footer {footer}, total (checked) {total_lines}) → {} facts",
        4 + 2 + footer + total_lines,
        accepted * 16
    );
    check_ingest(dir.path(), "genesis_12411_0012", &dir.path().join("sample-data/realdata").join(GENESIS), &expected);

    let (laender, totals) = genesis_totals();
    let rows = query(dir.path(), &["population_by_land", "-m", "inhabitants", "-d", "reference_date", "-d", "land"]);
    assert_eq!(rows.len(), totals.len());
    for row in rows {
        let (year, land_label, value) = (&row[0], &row[3], &row[4]);
        let column = laender.iter().position(|l| l == land_label).unwrap_or_else(|| panic!("{land_label}"));
        let stated = &totals[&(year.clone(), column)];
        // "-" (no number: the new Länder before 1990) is a missing value, not a zero.
        let stated = if stated == "-" { "" } else { stated.as_str() };
        assert_eq!(value, stated, "{land_label} {year}");
    }
}

#[test]
fn kreise_add_up_to_germany_and_to_the_laender_of_the_other_publication() {
    let dir = project_copy();
    // 406 used rows: 3 title lines, 2 header lines, 1 line of column numbers, 400 Kreise.
    check_ingest(
        dir.path(),
        "destatis_kreise",
        &dir.path().join("sample-data/realdata").join(KREISE),
        "lines 406 = accepted 400 + rejected 0 + skipped 6 (title 3, header 2, column numbers 1) → 800 facts",
    );
    // Destatis: Germany's population on 31.12.2022 was 84,358,845.
    let germany = query(dir.path(), &["population_by_kreis", "-m", "inhabitants", "-c", "reference_date=2022"]);
    assert_eq!(germany[0][0], "84358845");
    // Kaiserslautern, the city (07312) and the Landkreis (07335) of the same name, as the XLSX lists them.
    let kl = query(
        dir.path(),
        &["population_by_kreis", "-m", "inhabitants", "-d", "kreis", "-d", "sex", "-c", "kreis=07312,07335"],
    );
    let kl: Vec<(&str, &str, &str)> = kl.iter().map(|r| (r[0].as_str(), r[2].as_str(), r[4].as_str())).collect();
    assert_eq!(
        kl,
        [("07312", "m", "50948"), ("07312", "w", "50280"), ("07335", "m", "53113"), ("07335", "w", "55103")]
    );
    // By name: "Kaiserslautern" names both, and the message says what to type; the label with its comma, quoted,
    // names the Landkreis.
    let both = cli(
        dir.path(),
        &["--role", "statistik", "query", "population_by_kreis", "-m", "inhabitants", "-c", "kreis=Kaiserslautern"],
    );
    assert_eq!(both.code, ExitCode::from(2), "{}", both.stdout);
    assert!(both.stderr.contains("type the key (07312 or 07335)"), "{}", both.stderr);
    let landkreis =
        query(dir.path(), &["population_by_kreis", "-m", "inhabitants", "-c", r#"kreis="Kaiserslautern, Landkreis""#]);
    assert_eq!(landkreis[0][0], (53113 + 55103).to_string());
    // The Kreise of each Land add up to the Land in GENESIS 12411-0012 on the same date.
    let (laender, totals) = genesis_totals();
    let by_land = query(dir.path(), &["population_by_kreis", "-m", "inhabitants", "-d", "kreis.land"]);
    assert_eq!(by_land.len(), 16);
    for row in by_land {
        let column = laender.iter().position(|l| *l == row[1]).unwrap();
        assert_eq!(row[2], totals[&("2022".to_owned(), column)], "{}", row[1]);
    }
}

#[test]
fn koeln_subtotals_are_checked_and_reproduced() {
    let dir = project_copy();
    let text = String::from_utf8(raw(KOELN)).unwrap();
    let lines = text.matches('\n').count();
    let rows: Vec<Vec<&str>> = text.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let subtotals = rows.iter().filter(|r| r[4].starts_with("00")).count();
    let expected = format!(
        "lines {lines} = accepted {} + rejected 0 + skipped {} (header 1, total (checked) {subtotals}) → {} facts",
        rows.len() - subtotals,
        subtotals + 1,
        rows.len() - subtotals
    );
    let path = dir.path().join("sample-data/realdata").join(KOELN);
    let first = check_ingest(dir.path(), "koeln_bevoelkerung", &path, &expected);
    assert!(first.contains("cube koeln_population is at version 0"), "{first}");
    // The same export again, twice in one ingest: each time its hash is found while it is being read, and
    // nothing changes.
    let again =
        cli(dir.path(), &["ingest", "koeln_bevoelkerung", &path.display().to_string(), &path.display().to_string()]);
    assert_eq!(again.code, ExitCode::SUCCESS, "{}", again.stderr);
    assert_eq!(again.stdout.matches("already ingested").count(), 2, "{}", again.stdout);
    assert!(again.stdout.contains("cube koeln_population is at version 0"), "{}", again.stdout);
    // The city's own lines (raum_id 000) equal the sum of its Stadtteile, per year and category.
    let city: BTreeMap<(String, String), String> = rows
        .iter()
        .filter(|r| r[4] == "000")
        .map(|r| ((r[3].to_owned(), format!("{}.{}", r[1], r[6])), r[8].trim_end_matches(".0").to_owned()))
        .collect();
    let sums = query(dir.path(), &["koeln_population", "-m", "value", "-d", "year", "-d", "topic"]);
    assert_eq!(sums.len(), city.len());
    for row in sums {
        assert_eq!(row[4], city[&(row[0].clone(), row[2].clone())], "{row:?}");
    }
    // The same name on two levels resolves by level.
    let muelheim = query(
        dir.path(),
        &["koeln_population", "-m", "value", "-c", "area.stadtteil=Mülheim", "-c", "year=2012", "-c", "topic=005.10"],
    );
    let muelheim_901 = query(
        dir.path(),
        &["koeln_population", "-m", "value", "-c", "area=901", "-c", "year=2012", "-c", "topic=005.10"],
    );
    assert_eq!(muelheim, muelheim_901);
}

#[test]
fn an_export_with_every_kind_of_broken_line_loses_nothing() {
    let dir = project_copy();
    let real = latin1(&raw(GENESIS));
    let head: Vec<&str> = real.lines().take(6).collect();
    let ones = vec!["1"; 16].join(";");
    let body = [
        format!("31.12.2020;unter 1 Jahr;{ones}"),                        // 7 accepted
        format!("31.12.2020;1-Jährige;2a;{}", vec!["1"; 15].join(";")),   // 8 invalid number
        format!("31.12.2020;Hundertjährige;{ones}"),                      // 9 unexpected value
        "31.12.2020;2-Jährige;1;1".to_owned(),                            // 10 wrong field count
        format!("31.13.2020;3-Jährige;{ones}"),                           // 11 invalid date
        format!("31.12.2020;4-Jährige;;{}", vec!["1"; 15].join(";")),     // 12 missing value
        String::new(),                                                    // 13 empty line
        format!("31.12.2020;Insgesamt;2;{}", vec!["1"; 15].join(";")),    // 14 total mismatch (1 + nothing ≠ 2)
        format!("31.12.2021;unter 1 Jahr;.;{}", vec!["3"; 15].join(";")), // 15 accepted, status "."
        format!("31.12.2021;Insgesamt;.;{}", vec!["3"; 15].join(";")),    // 16 total (checked)
        "31.12.2021;5-Jährige;1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;Bayern".to_owned(), // 17 invalid number
        "__________".to_owned(),                                          // 18 footer
        "\"Fußnote über".to_owned(),                                      // 19 footer (quoted, two lines)
        "zwei Zeilen\"".to_owned(),                                       // 20
        "© Statistisches Bundesamt (Destatis), 2023".to_owned(),          // 21 footer
    ];
    let text = head.iter().map(|s| s.to_string()).chain(body).collect::<Vec<_>>().join("\n") + "\n";
    let file = dir.path().join("broken.csv");
    std::fs::write(&file, text.chars().map(|c| u8::try_from(u32::from(c)).unwrap()).collect::<Vec<u8>>()).unwrap();
    check_ingest(
        dir.path(),
        "genesis_12411_0012",
        &file,
        "lines 21 = accepted 2 + rejected 7 + skipped 12 (title 4, header 2, empty line 1, footer 4, total (checked) 1) → 32 facts",
    );
    let quarantine = std::fs::read_to_string(dir.path().join("warehouse/quarantine/genesis_12411_0012.csv")).unwrap();
    let got: Vec<(String, String)> = csv_rows(&quarantine).into_iter().map(|r| (r[1].clone(), r[4].clone())).collect();
    let expected: Vec<(String, String)> = [
        (8, "invalid number"),
        (9, "unexpected value"),
        (10, "wrong field count"),
        (11, "invalid date"),
        (12, "missing value"),
        (14, "total mismatch"),
        (17, "invalid number"),
    ]
    .iter()
    .map(|(l, p)| (l.to_string(), (*p).to_owned()))
    .collect();
    assert_eq!(got, expected, "{quarantine}");
    // The "." cell is kept as a status with no number; its Land's other cells are there.
    let rows = query(
        dir.path(),
        &[
            "population_by_land",
            "-m",
            "inhabitants",
            "-d",
            "land",
            "-c",
            "reference_date=2021",
            "-c",
            "land=Baden-Württemberg,Bayern",
        ],
    );
    let got: Vec<(&str, &str)> = rows.iter().map(|r| (r[1].as_str(), r[2].as_str())).collect();
    assert_eq!(got, [("Baden-Württemberg", ""), ("Bayern", "3")]);
}
