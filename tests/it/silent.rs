//! No wrong number stored in silence: each way found to store one (thousands grouping, a key made of separators,
//! the same data delivered twice, stale quarantine after a replace across sources) on small files made for it, a
//! cube of offences by year with an English-format and a German-format source. Expected numbers are those the
//! files were written with.

use crate::support::{Output, cli, csv_rows, project_copy};
use std::path::Path;
use std::process::ExitCode;

const OFFENCE: &str = r#"name = "offence"
label = "Straftat"
label_en = "Offence"

[[levels]]
name = "offence"
label = "Straftat"
label_en = "Offence"

[[members]]
level = "offence"
key = "------"
label = "Straftaten insgesamt"

[[members]]
level = "offence"
key = "110"
label = "Diebstahl"

[[members]]
level = "offence"
key = "120"
label = "Betrug"

[[members]]
level = "offence"
key = "130"
label = "Betrug, gewerbsmäßig"
"#;

const CUBE: &str = r#"name = "offences"
label = "Straftaten"
label_en = "Offences"

[[dimensions]]
name = "offence"

[[dimensions]]
name = "year"
dimension = "time"
level = "year"

[[columns]]
name = "cases"
type = "integer"

[[measures]]
name = "cases"
label = "Fälle"
label_en = "Cases"
aggregate = "sum"
column = "cases"
"#;

/// The English-format source: `,` between fields, `.` for decimals, `,` between thousands.
const ENGLISH: &str = r#"name = "offences_en"
cube = "offences"

[format]
type = "csv"
encoding = "utf-8"
delimiter = ","
decimal_separator = "."
thousands_separator = ","

[fields.offence]
member = "Key"

[fields.year]
member = "Year"

[fields.cases]
number = "Cases"
"#;

/// The German-format source: `;` between fields, `.` between thousands.
const GERMAN: &str = r#"name = "offences_de"
cube = "offences"

[format]
type = "csv"
encoding = "utf-8"
delimiter = ";"
decimal_separator = ","
thousands_separator = "."

[fields.offence]
member = "Schlüssel"

[fields.year]
member = "Jahr"

[fields.cases]
number = "Fälle"
"#;

/// A copy of the sample project with the offences cube and its two sources, the German one with `extra` lines
/// (a replace key, an overlap rule) at its top.
fn offences_project(english_extra: &str, german_extra: &str) -> tempfile::TempDir {
    let dir = project_copy();
    let schemas = dir.path().join("cube-schemas");
    std::fs::write(schemas.join("dimensions/offence.toml"), OFFENCE).unwrap();
    std::fs::write(schemas.join("cubes/offences.toml"), CUBE).unwrap();
    std::fs::write(schemas.join("sources/offences_en.toml"), format!("{english_extra}\n{ENGLISH}")).unwrap();
    std::fs::write(schemas.join("sources/offences_de.toml"), format!("{german_extra}\n{GERMAN}")).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn ingest(dir: &Path, source: &str, files: &[&str]) -> Output {
    let mut args = vec!["ingest", source];
    args.extend_from_slice(files);
    cli(dir, &args)
}

/// Cases per offence and year as the table holds them, sorted.
fn cases(dir: &Path) -> Vec<(String, String, String)> {
    let out = cli(
        dir,
        &[
            "--role",
            "statistik",
            "sql",
            "SELECT offence, year, sum(cases) FROM offences GROUP BY 1, 2 ORDER BY 1, 2",
            "-f",
            "csv",
        ],
    );
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    csv_rows(&out.stdout).into_iter().map(|r| (r[0].clone(), r[1].clone(), r[2].clone())).collect()
}

fn row(offence: &str, year: &str, cases: &str) -> (String, String, String) {
    (offence.to_owned(), year.to_owned(), cases.to_owned())
}

fn quarantine(dir: &Path) -> String {
    let out = cli(dir, &["--role", "datenpflege", "quarantine"]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    out.stdout
}

#[test]
fn a_number_grouped_the_wrong_way_is_rejected_not_multiplied() {
    let dir = offences_project("", "");
    // `9,96` and `2,2512` are German decimals in an English file; `1,234` is one thousand two hundred thirty-four.
    let file =
        write(dir.path(), "en.csv", "Key,Year,Cases\n110,2023,\"1,234\"\n120,2023,\"9,96\"\n------,2023,\"2,2512\"\n");
    let out = ingest(dir.path(), "offences_en", &[&file]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    assert!(out.stdout.contains("rejected 2"), "{}", out.stdout);
    assert_eq!(cases(dir.path()), [row("110", "2023", "1234")]);
    let lines = quarantine(dir.path());
    assert!(lines.contains("'9,96' is not a whole number in the format 1,234"), "{lines}");
    assert!(lines.contains("'2,2512' is not a whole number in the format 1,234"), "{lines}");
}

#[test]
fn a_key_made_of_separators_is_no_other_members_key() {
    let dir = offences_project("", "");
    let file = write(dir.path(), "en.csv", "Key,Year,Cases\n-,2023,5\n------,2023,7\n/,2023,9\n");
    let out = ingest(dir.path(), "offences_en", &[&file]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    // Only the line that names the total exactly is its fact.
    assert_eq!(cases(dir.path()), [row("------", "2023", "7")]);
    let lines = quarantine(dir.path());
    assert_eq!(lines.matches("unknown member '").count(), 2, "{lines}");
    // A cut made of a separator is an unknown member too, with the closest members to choose from.
    let cut = cli(dir.path(), &["query", "offences", "-m", "cases", "-c", "offence=/"]);
    assert_eq!(cut.code, ExitCode::from(2), "{}", cut.stdout);
    assert!(cut.stderr.contains("unknown member"), "{}", cut.stderr);
    let exact = cli(
        dir.path(),
        &["--role", "statistik", "query", "offences", "-m", "cases", "-c", "offence=------", "-f", "csv"],
    );
    assert_eq!(exact.code, ExitCode::SUCCESS, "{}", exact.stderr);
    assert_eq!(csv_rows(&exact.stdout), [["7"]], "{}", exact.stdout);
}

const FIRST: &str = "Key,Year,Cases\n110,2023,\"1,500\"\n120,2023,300\n";

#[test]
fn the_same_data_delivered_again_is_refused_with_the_overlap() {
    let dir = offences_project("", "");
    let first = write(dir.path(), "first.csv", FIRST);
    assert_eq!(ingest(dir.path(), "offences_en", &[&first]).code, ExitCode::SUCCESS);
    let before = cases(dir.path());
    assert_eq!(before, [row("110", "2023", "1500"), row("120", "2023", "300")]);

    // The same data once more in another file (appended), through the other source (another format), and two
    // files of one ingest: each refused with the file, the count of cells and one of them; nothing committed.
    let again = write(dir.path(), "again.csv", &format!("{FIRST}120,2022,10\n"));
    let refused = ingest(dir.path(), "offences_en", &[&again]);
    assert_eq!(refused.code, ExitCode::from(2), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("again.csv brings 2 cells that first.csv, already in the table, holds too"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("for example offence=110, year=2023"), "{}", refused.stderr);
    assert!(refused.stderr.contains("on_overlap = \"add\""), "{}", refused.stderr);
    let german = write(dir.path(), "de.csv", "Schlüssel;Jahr;Fälle\n120;2023;300\n110;2024;1.500\n");
    let refused = ingest(dir.path(), "offences_de", &[&german]);
    assert!(refused.stderr.contains("de.csv brings 1 cell that first.csv, already in the table"), "{}", refused.stderr);
    let a = write(dir.path(), "a.csv", "Key,Year,Cases\n110,2021,1\n");
    let b = write(dir.path(), "b.csv", "Key,Year,Cases\n120,2021,2\n110,2021,1\n");
    let refused = ingest(dir.path(), "offences_en", &[&a, &b]);
    assert!(
        refused.stderr.contains("b.csv brings 1 cell that a.csv, in this ingest too, holds too"),
        "{}",
        refused.stderr
    );
    assert_eq!(cases(dir.path()), before, "no refused fact was committed");

    // Facts for other cells are added as before.
    let other = write(dir.path(), "other.csv", "Key,Year,Cases\n110,2022,40\n");
    assert_eq!(ingest(dir.path(), "offences_en", &[&other]).code, ExitCode::SUCCESS);
    assert_eq!(cases(dir.path()), [row("110", "2022", "40"), row("110", "2023", "1500"), row("120", "2023", "300")]);
}

#[test]
fn a_replace_key_or_on_overlap_add_lets_the_cells_meet() {
    // With a replace key, the German file replaces the year 2023 of the English one.
    let dir = offences_project("", "replace = [\"year\"]");
    let first = write(dir.path(), "first.csv", FIRST);
    assert_eq!(ingest(dir.path(), "offences_en", &[&first]).code, ExitCode::SUCCESS);
    let german = write(dir.path(), "de.csv", "Schlüssel;Jahr;Fälle\n110;2023;1.499\n");
    let out = ingest(dir.path(), "offences_de", &[&german]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    assert_eq!(cases(dir.path()), [row("110", "2023", "1499")]);

    // Deliveries that truly add (one booking per line, in files of a day) say so, and are added up.
    let dir = offences_project("on_overlap = \"add\"", "");
    let monday = write(dir.path(), "monday.csv", "Key,Year,Cases\n110,2023,1\n110,2023,1\n");
    let tuesday = write(dir.path(), "tuesday.csv", "Key,Year,Cases\n110,2023,1\n");
    assert_eq!(ingest(dir.path(), "offences_en", &[&monday]).code, ExitCode::SUCCESS);
    let out = ingest(dir.path(), "offences_en", &[&tuesday]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    assert_eq!(cases(dir.path()), [row("110", "2023", "3")]);
}

#[test]
fn a_replace_across_sources_takes_the_replaced_files_quarantine_with_it() {
    let dir = offences_project("replace = [\"year\"]", "replace = [\"year\"]");
    let english = write(dir.path(), "en.csv", "Key,Year,Cases\n110,2023,5\n999,2023,1\n");
    assert_eq!(ingest(dir.path(), "offences_en", &[&english]).code, ExitCode::SUCCESS);
    assert!(quarantine(dir.path()).contains("en.csv"));
    let german = write(dir.path(), "de.csv", "Schlüssel;Jahr;Fälle\n110;2023;6\n120;2023;x\n");
    let out = ingest(dir.path(), "offences_de", &[&german]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    assert!(out.stdout.contains("en.csv (all of them; its quarantine lines are gone)"), "{}", out.stdout);
    let lines = quarantine(dir.path());
    assert!(!lines.contains("en.csv"), "the message and the quarantine agree: {lines}");
    assert!(lines.contains("de.csv"), "{lines}");

    // A corrected file by the same name replaces its own facts and keeps its new quarantine lines.
    let corrected = write(dir.path(), "de.csv", "Schlüssel;Jahr;Fälle\n110;2023;7\n120;2023;y\n");
    assert_eq!(ingest(dir.path(), "offences_de", &[&corrected]).code, ExitCode::SUCCESS);
    let lines = quarantine(dir.path());
    assert!(lines.contains("'y'") && !lines.contains("'x'"), "{lines}");
    assert_eq!(cases(dir.path()), [row("110", "2023", "7")]);
}

/// Published totals of rounded figures differ from the sum of their details by a unit or two: with a tolerance
/// they are taken (and counted as such), without one they go to quarantine; beyond it they always do.
#[test]
fn rounded_totals_match_within_the_sources_tolerance() {
    let lines = "Key,Year,Cases\n110,2022,10\n120,2022,20\nInsgesamt,2022,30\n\
                 110,2023,\"1,001\"\n120,2023,500\nInsgesamt,2023,\"1,502\"\n\
                 110,2024,5\n120,2024,5\nInsgesamt,2024,20\n";
    for (tolerance, within, mismatched) in [
        ("", "", 2),
        ("total_tolerance = 2", "1 within ±2, ", 1),
        ("total_tolerance = \"0.1%\"", "1 within ±0.1 %, ", 1),
    ] {
        let dir = offences_project(tolerance, "");
        let source = dir.path().join("cube-schemas/sources/offences_en.toml");
        let text = std::fs::read_to_string(&source).unwrap();
        std::fs::write(&source, text.replace("member = \"Key\"\n", "member = \"Key\"\ntotals = [\"Insgesamt\"]\n"))
            .unwrap();
        let file = write(dir.path(), "totals.csv", lines);
        let out = ingest(dir.path(), "offences_en", &[&file]);
        assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
        let expected = format!("totals checked: 3 lines: 1 exact, {within}{mismatched} mismatched");
        assert!(out.stdout.contains(&expected), "{tolerance}: {expected} in {}", out.stdout);
        let quarantined = quarantine(dir.path());
        assert_eq!(quarantined.matches("total mismatch").count() - 1, mismatched, "{quarantined}");
        assert!(
            quarantined.contains("total for offence=*, year=2024 is 20, its detail lines add up to 10"),
            "{quarantined}"
        );
    }
}

/// A label with a comma is cut in double quotes; unquoted, the comma separates two members.
#[test]
fn a_label_with_a_comma_is_cut_in_quotes() {
    let dir = offences_project("", "");
    let file = write(dir.path(), "en.csv", "Key,Year,Cases\n120,2023,5\n130,2023,7\n110,2023,11\n");
    assert_eq!(ingest(dir.path(), "offences_en", &[&file]).code, ExitCode::SUCCESS);
    let ask = |cut: &str| {
        let out = cli(dir.path(), &["--role", "statistik", "query", "offences", "-m", "cases", "-c", cut, "-f", "csv"]);
        assert_eq!(out.code, ExitCode::SUCCESS, "{cut}: {}", out.stderr);
        csv_rows(&out.stdout)
    };
    assert_eq!(ask(r#"offence="Betrug, gewerbsmäßig""#), [["7"]]);
    assert_eq!(ask(r#"offence="Betrug, gewerbsmäßig",Diebstahl"#), [["18"]]);
    assert_eq!(ask("offence=Betrug,Diebstahl"), [["16"]]);
}
