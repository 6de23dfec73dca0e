//! No wrong number stored in silence: each way found to store one (thousands grouping, a key made of separators,
//! the same data delivered twice, stale quarantine after a replace across sources) on small files made for it, a
//! cube of offences by year with an English-format and a German-format source. Expected numbers are those the
//! files were written with.

use crate::support::{Output, cli, csv_rows, project_copy};
use std::path::{Path, PathBuf};
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
pub(crate) fn offences_project(english_extra: &str, german_extra: &str) -> tempfile::TempDir {
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
pub(crate) fn cases(dir: &Path) -> Vec<(String, String, String)> {
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

pub(crate) fn row(offence: &str, year: &str, cases: &str) -> (String, String, String) {
    (offence.to_owned(), year.to_owned(), cases.to_owned())
}

fn quarantine(dir: &Path) -> String {
    let out = cli(dir, &["--role", "datenpflege", "quarantine"]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    out.stdout
}

/// Ingests `csv` with the English-format source: `rejected` of its lines go to quarantine, the table holds `kept`.
/// Returns the quarantine's listing.
fn ingest_rejecting(dir: &Path, csv: &str, rejected: usize, kept: &[(String, String, String)]) -> String {
    let file = write(dir, "en.csv", csv);
    let out = ingest(dir, "offences_en", &[&file]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    assert!(out.stdout.contains(&format!("rejected {rejected}")), "{}", out.stdout);
    assert_eq!(cases(dir), kept);
    quarantine(dir)
}

#[test]
fn a_number_grouped_the_wrong_way_is_rejected_not_multiplied() {
    let dir = offences_project("", "");
    // `9,96` and `2,2512` are German decimals in an English file; `1,234` is one thousand two hundred thirty-four.
    let csv = "Key,Year,Cases\n110,2023,\"1,234\"\n120,2023,\"9,96\"\n------,2023,\"2,2512\"\n";
    let lines = ingest_rejecting(dir.path(), csv, 2, &[row("110", "2023", "1234")]);
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

#[test]
fn a_sign_or_a_decimal_point_next_to_a_key_makes_no_other_member() {
    let dir = offences_project("", "");
    // Folded like a label, `-110`, `.110` and `110-` would be the member 110: a negative (SAP writes its minus
    // behind the number) or a fraction taken for a key.
    let csv = "Key,Year,Cases\n-110,2023,5\n.110,2023,6\n/110,2023,8\n110-,2023,9\n110,2023,7\n";
    let lines = ingest_rejecting(dir.path(), csv, 4, &[row("110", "2023", "7")]);
    for key in ["-110", ".110", "/110", "110-"] {
        assert!(lines.contains(&format!("unknown member '{key}'")), "{key}: {lines}");
    }
    // So does a cut: `age=-1..-5` is no range of ages 1 to 5.
    for cut in ["offence=-110", "offence=.110"] {
        let out = cli(dir.path(), &["query", "offences", "-m", "cases", "-c", cut]);
        assert_eq!(out.code, ExitCode::from(2), "{cut}: {}", out.stdout);
        assert!(out.stderr.contains("unknown member") && out.stderr.contains("110 (Diebstahl)"), "{}", out.stderr);
    }
    let ages = cli(dir.path(), &["query", "newcomers", "-m", "persons", "-d", "age", "-c", "age=-1..-5"]);
    assert_eq!(ages.code, ExitCode::from(2), "{}", ages.stdout);
    assert!(ages.stderr.contains("unknown member '-1'"), "{}", ages.stderr);
}

#[test]
fn a_number_outside_the_columns_bounds_is_rejected() {
    let dir = offences_project("", "");
    let cube = dir.path().join("cube-schemas/cubes/offences.toml");
    let bounded = CUBE.replace("type = \"integer\"", "type = \"integer\"\nmin = 0\nmax = 500");
    std::fs::write(&cube, &bounded).unwrap();
    let csv = "Key,Year,Cases\n110,2023,500\n120,2023,0\n130,2023,-3\n------,2023,501\n";
    let lines = ingest_rejecting(dir.path(), csv, 2, &[row("110", "2023", "500"), row("120", "2023", "0")]);
    for value in ["-3", "501"] {
        assert!(
            lines.contains(&format!("'{value}' lies outside the values of cases (from 0 to 500")),
            "{value}: {lines}"
        );
    }
    // Bounds belong to numbers, the least first.
    for (wrong, expected) in [
        (bounded.replace("max = 500", "max = -1"), "max -1 is less than min 0"),
        (bounded.replace("min = 0", "min = nan"), "a min or max is a finite number"),
        (bounded.replace("type = \"integer\"", "type = \"string\""), "only a number column has a min or max"),
    ] {
        std::fs::write(&cube, wrong).unwrap();
        let check = cli(dir.path(), &["check"]);
        assert_eq!(check.code, ExitCode::from(2), "{}", check.stdout);
        assert!(check.stderr.contains(expected), "{}", check.stderr);
    }
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
    // The refusal still accounts for the lines read.
    let accounted = "again.csv (UTF-8): lines 4 = accepted 3 + rejected 0 + skipped 1 (header 1) → 3 facts";
    assert!(refused.stdout.contains("nothing committed; the files read were"), "{}", refused.stdout);
    assert!(refused.stdout.contains(accounted), "{}", refused.stdout);
    // A dry run says the same before anything is tried, and fails as the ingest would.
    let dry = cli(dir.path(), &["ingest", "offences_en", &again, "--dry-run"]);
    assert_eq!(dry.code, ExitCode::from(2), "{}", dry.stdout);
    assert!(dry.stdout.contains(accounted), "{}", dry.stdout);
    assert!(
        dry.stdout.contains(
            "an ingest would be refused at its commit: offences: again.csv brings 2 cells that first.csv, already in \
             the table, holds too"
        ),
        "{}",
        dry.stdout
    );
    assert!(dry.stderr.contains("would be refused (see above)"), "{}", dry.stderr);
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
    let dry = cli(dir.path(), &["ingest", "offences_de", &german, "--dry-run"]);
    assert_eq!(dry.code, ExitCode::SUCCESS, "{}", dry.stderr);
    assert!(
        dry.stdout.contains(
            "would replace 2 facts of first.csv (all of them; its quarantine lines would go): this ingest would \
             bring their year again"
        ),
        "{}",
        dry.stdout
    );
    assert_eq!(cases(dir.path()), [row("110", "2023", "1500"), row("120", "2023", "300")], "a dry run commits nothing");
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

    // A file of the other source by the same name, whose facts are all replaced: its lines go, the new ones stay.
    let english = write(dir.path(), "data.csv", "Key,Year,Cases\n110,2024,5\n999,2024,1\n");
    assert_eq!(ingest(dir.path(), "offences_en", &[&english]).code, ExitCode::SUCCESS);
    let german = write(dir.path(), "data.csv", "Schlüssel;Jahr;Fälle\n110;2024;6\n120;2024;z\n");
    let out = ingest(dir.path(), "offences_de", &[&german]);
    assert!(out.stdout.contains("data.csv (all of them; its quarantine lines are gone)"), "{}", out.stdout);
    let lines = quarantine(dir.path());
    assert!(lines.contains("'z'") && !lines.contains("999"), "{lines}");
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

/// A file whose last line has no line break may have been cut short: it is read, and the ingest says so.
#[test]
fn a_last_line_without_a_line_break_is_noted() {
    let dir = offences_project("", "");
    let cut = write(dir.path(), "cut.csv", "Key,Year,Cases\n110,2023,5\n120,2023,7");
    let out = ingest(dir.path(), "offences_en", &[&cut]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    assert!(out.stderr.contains("cut.csv: the last line (3) has no line break"), "{}", out.stderr);
    let whole = write(dir.path(), "whole.csv", "Key,Year,Cases\n110,2022,5\n");
    let out = ingest(dir.path(), "offences_en", &[&whole]);
    assert!(!out.stderr.contains("line break"), "{}", out.stderr);
}

/// A byte order mark decides a file's encoding over the source's declaration: the ingest says so, and a byte the
/// file then does not keep to is explained as that, not answered with advice to declare another encoding.
#[test]
fn a_byte_order_mark_says_that_it_decides_the_encoding() {
    let dir = offences_project("", "");
    let source = dir.path().join("cube-schemas/sources/offences_de.toml");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, text.replace("encoding = \"utf-8\"", "encoding = \"windows-1252\"")).unwrap();
    let bom = |name: &str, body: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, [b"\xef\xbb\xbf".as_slice(), body].concat()).unwrap();
        path.display().to_string()
    };
    let utf8 = bom("bom.csv", "Schlüssel;Jahr;Fälle\n110;2023;5\n".as_bytes());
    let out = ingest(dir.path(), "offences_de", &[&utf8]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    assert!(out.stderr.contains("bom.csv: the file begins with a UTF-8 byte order mark, which decides its encoding: it was read as UTF-8, not as the declared windows-1252"), "{}", out.stderr);
    let broken = bom("broken.csv", b"Schl\xc3\xbcssel;Jahr;F\xc3\xa4lle\n110;2022;5\n120;2022;\xe4\n");
    let out = ingest(dir.path(), "offences_de", &[&broken]);
    assert_eq!(out.code, ExitCode::from(2), "{}", out.stdout);
    assert!(out.stderr.contains("broken.csv: the file begins with a UTF-8 byte order mark"), "{}", out.stderr);
    assert!(!out.stderr.contains("set `encoding"), "no advice that changes nothing: {}", out.stderr);
}

/// The files a table holds are known from its log where kubus wrote the table's files (each names the delivered
/// files whose facts it holds), and read where Delta's own write rewrote them (a replacement): a file delivered
/// again is recognised either way.
#[test]
fn a_file_held_is_known_from_the_log_or_read_where_a_replacement_rewrote_it() {
    let dir = offences_project("replace = [\"year\"]", "");
    let a = write(dir.path(), "a.csv", "Key,Year,Cases\n110,2022,5\n120,2023,7\n");
    let b = write(dir.path(), "b.csv", "Key,Year,Cases\n110,2024,1\n");
    assert_eq!(ingest(dir.path(), "offences_en", &[&a, &b]).code, ExitCode::SUCCESS);
    // With the facts unreadable, the log still tells which files they came from.
    let facts = dir.path().join("warehouse/facts/offences");
    let saved: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&facts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    assert!(!saved.is_empty());
    for (path, _) in &saved {
        std::fs::write(path, b"not parquet").unwrap();
    }
    let again = ingest(dir.path(), "offences_en", &[&a, &b]);
    assert_eq!(again.code, ExitCode::SUCCESS, "{}", again.stderr);
    assert_eq!(again.stdout.matches("already ingested").count(), 2, "{}", again.stdout);
    for (path, bytes) in &saved {
        std::fs::write(path, bytes).unwrap();
    }
    // A correction of 2023 replaces a's fact of that year; its fact of 2022 stays, in a file Delta's write made.
    let c = write(dir.path(), "c.csv", "Key,Year,Cases\n120,2023,8\n");
    assert_eq!(ingest(dir.path(), "offences_en", &[&c]).code, ExitCode::SUCCESS);
    let again = ingest(dir.path(), "offences_en", &[&a, &c]);
    assert_eq!(again.code, ExitCode::SUCCESS, "{}", again.stderr);
    assert_eq!(again.stdout.matches("already ingested").count(), 2, "{}", again.stdout);
    assert_eq!(cases(dir.path()), vec![row("110", "2022", "5"), row("110", "2024", "1"), row("120", "2023", "8")]);
}

/// A dry run of a file the warehouse already holds still shows its facts, and says that an ingest would skip it.
#[test]
fn a_dry_run_of_a_file_already_ingested_still_previews() {
    let dir = offences_project("", "");
    let file = write(dir.path(), "en.csv", "Key,Year,Cases\n110,2023,5\n120,2023,7\n");
    assert_eq!(ingest(dir.path(), "offences_en", &[&file]).code, ExitCode::SUCCESS);
    let out = cli(dir.path(), &["ingest", "offences_en", &file, "--dry-run"]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    assert!(out.stdout.contains("already holds this file (same SHA-256): an ingest would skip it"), "{}", out.stdout);
    assert!(out.stdout.contains("first 2 facts:"), "{}", out.stdout);
    let again = ingest(dir.path(), "offences_en", &[&file]);
    assert!(again.stdout.contains("already ingested (same SHA-256), nothing changed"), "{}", again.stdout);
}

/// A classification whose keys overlap (an offence key and its sub-keys, the all-offences line) is declared not
/// additive: a sum over its members is refused, a cut to one member or a drilldown by it answers, and totals
/// leave its members apart.
#[test]
fn a_dimension_that_is_not_additive_is_never_summed() {
    let dir = offences_project("", "");
    let path = dir.path().join("cube-schemas/dimensions/offence.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("label_en = \"Offence\"\n", "label_en = \"Offence\"\nadditive = false\n", 1))
        .unwrap();
    // All offences 30 = theft 10 + fraud 20 (its commercial kind, 5, is a part of fraud), in two years.
    let file = write(
        dir.path(),
        "en.csv",
        "Key,Year,Cases\n------,2022,30\n110,2022,10\n120,2022,20\n130,2022,5\n------,2023,3\n110,2023,1\n120,2023,2\n130,2023,1\n",
    );
    let out = ingest(dir.path(), "offences_en", &[&file]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let ask = |args: &[&str]| {
        let mut all = vec!["--role", "statistik", "query", "offences", "-m", "cases", "-f", "csv"];
        all.extend_from_slice(args);
        cli(dir.path(), &all)
    };
    for summed in [&[][..], &["-d", "year"], &["-c", "offence=110,120"], &["-c", "offence!=------"]] {
        let out = ask(summed);
        assert_eq!(out.code, ExitCode::from(2), "{summed:?}: {}", out.stdout);
        assert!(
            out.stderr.contains("measure cases would add up the members of offence, which overlap (offence is not additive): cut offence to one offence"),
            "{summed:?}: {}",
            out.stderr
        );
    }
    let one = ask(&["-c", "offence=------", "-d", "year"]);
    assert_eq!(csv_rows(&one.stdout).iter().map(|r| r[2].as_str()).collect::<Vec<_>>(), ["30", "3"], "{}", one.stderr);
    // Totals over the years within each offence, none over the offences.
    let out = ask(&["-d", "offence", "-d", "year", "--totals"]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let rows = csv_rows(&out.stdout);
    let totals: Vec<(&str, &str)> =
        rows.iter().filter(|r| r[2].is_empty()).map(|r| (r[0].as_str(), r[4].as_str())).collect();
    assert_eq!(totals, [("------", "33"), ("110", "11"), ("120", "22"), ("130", "6")], "{}", out.stdout);
    assert!(rows.iter().all(|r| !r[0].is_empty()), "no grand total: {}", out.stdout);
    let explain =
        cli(dir.path(), &["--role", "statistik", "explain", "offences", "-m", "cases", "-d", "offence", "--totals"]);
    assert!(explain.stdout.contains("no totals over offence: offence is not additive"), "{}", explain.stdout);
}

/// A file without its year, whose name holds it: the year is read from the name, so that a replace key works.
#[test]
fn the_year_can_come_from_the_file_name() {
    let dir = offences_project("replace = [\"year\"]", "");
    let source = dir.path().join("cube-schemas/sources/offences_en.toml");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, text.replace("member = \"Year\"", "member = \"@file\"\nextract = '_(\\d{4})\\.csv$'"))
        .unwrap();
    let first = write(dir.path(), "offences_2021.csv", "Key,Cases\n110,4\n120,6\n");
    let out = ingest(dir.path(), "offences_en", &[&first]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let corrected = write(dir.path(), "corrected_offences_2021.csv", "Key,Cases\n110,5\n");
    assert_eq!(ingest(dir.path(), "offences_en", &[&corrected]).code, ExitCode::SUCCESS);
    let other = write(dir.path(), "offences_2022.csv", "Key,Cases\n110,1\n");
    assert_eq!(ingest(dir.path(), "offences_en", &[&other]).code, ExitCode::SUCCESS);
    assert_eq!(cases(dir.path()), [row("110", "2021", "5"), row("110", "2022", "1")]);
    // A name without the year: every line is rejected with the reason, nothing is guessed.
    let nameless = write(dir.path(), "offences.csv", "Key,Cases\n110,1\n");
    let out = ingest(dir.path(), "offences_en", &[&nameless]);
    assert!(out.stdout.contains("rejected 1"), "{}", out.stdout);
    assert!(quarantine(dir.path()).contains("offences.csv"));
}

/// A balance line ("Saldo = Zugänge − Abgänge") is neither a detail nor a sum; named in a column other than the
/// first, a skip rule on any cell skips it with its reason, accounted for.
#[test]
fn a_skip_rule_may_match_any_cell_of_a_line() {
    let dir = offences_project("drop = [\"Note\"]", "");
    let source = dir.path().join("cube-schemas/sources/offences_en.toml");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, format!("{text}\n[[layout.skip]]\nany_cell = '^Saldo'\nreason = \"balance line\"\n"))
        .unwrap();
    let file =
        write(dir.path(), "en.csv", "Key,Year,Cases,Note\n110,2023,50,\n120,2023,10,\n,2023,40,Saldo (110 − 120)\n");
    let out = ingest(dir.path(), "offences_en", &[&file]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    assert!(
        out.stdout.contains("lines 4 = accepted 2 + rejected 0 + skipped 2 (header 1, balance line 1) → 2 facts"),
        "{}",
        out.stdout
    );
}

/// Balance lines ("Saldo = Zugänge − Abgänge", and one built on it) are checked against their terms, never stored:
/// one that matches is skipped as checked, one that does not, or whose terms have no line, goes to quarantine
/// with the numbers; a term that is no member is refused by `kubus check`.
#[test]
fn balance_lines_are_checked_against_their_terms_not_stored() {
    let dir = offences_project("", "");
    let source = dir.path().join("cube-schemas/sources/offences_en.toml");
    let text = std::fs::read_to_string(&source).unwrap();
    let balances = "balances = [\"Saldo = 110 - Betrug\", \"Gesamt = Saldo + 130\"]\n";
    std::fs::write(&source, text.replace("member = \"Key\"\n", &format!("member = \"Key\"\n{balances}"))).unwrap();
    let file = write(
        dir.path(),
        "balances.csv",
        "Key,Year,Cases\n110,2023,50\n120,2023,10\n130,2023,5\nSaldo,2023,40\nGesamt,2023,45\n\
         110,2024,30\n120,2024,12\nSaldo,2024,20\nGesamt,2024,18\n",
    );
    let out = ingest(dir.path(), "offences_en", &[&file]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    assert!(
        out.stdout.contains("lines 10 = accepted 5 + rejected 2 + skipped 3 (header 1, balance (checked) 2) → 5 facts"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("totals checked: 4 lines: 2 exact, 2 mismatched"), "{}", out.stdout);
    assert_eq!(
        cases(dir.path()),
        [
            row("110", "2023", "50"),
            row("110", "2024", "30"),
            row("120", "2023", "10"),
            row("120", "2024", "12"),
            row("130", "2023", "5")
        ]
    );
    let quarantined = quarantine(dir.path());
    assert!(quarantined.contains("the file's Saldo for year=2024 is 20, 110 − Betrug make 18"), "{quarantined}");
    assert!(
        quarantined.contains("'Gesamt = Saldo + 130' for year=2024 cannot be checked: no line for 130"),
        "{quarantined}"
    );
    assert!(quarantined.contains("offences_en: 2 balance mismatch"), "{quarantined}");

    std::fs::write(
        &source,
        text.replace("member = \"Key\"\n", "member = \"Key\"\nbalances = [\"Saldo = 110 - 999\"]\n"),
    )
    .unwrap();
    let out = cli(dir.path(), &["check"]);
    assert_ne!(out.code, ExitCode::SUCCESS);
    assert!(
        out.stderr.contains(
            "'999' in 'Saldo = 110 − 999' is neither a member of this role's level nor another balance's line"
        ),
        "{}",
        out.stderr
    );
}

/// A wide file's line total adds up the line's detail cells: not its unpivoted balance or total columns, which are
/// checked against their terms as in a long file.
#[test]
fn a_wide_lines_total_leaves_out_its_balance_and_total_cells() {
    let dir = offences_project("", "");
    let wide = r#"name = "offences_wide"
cube = "offences"

[format]
type = "csv"
encoding = "utf-8"
delimiter = ","

[unpivot]
columns = '^(?P<offence>110|120|Saldo|Alle)$'
value = "cases"
total = "Summe"

[fields.offence]
member = "offence"
totals = ["Alle"]
balances = ["Saldo = 110 - 120"]

[fields.year]
member = "Year"

[fields.cases]
number = "cases"
"#;
    std::fs::write(dir.path().join("cube-schemas/sources/offences_wide.toml"), wide).unwrap();
    // 2023: 50 + 10 = 60, Saldo 40, Alle 60; 2024: Saldo and Alle right, but its line total is not 30 + 12.
    let file =
        write(dir.path(), "wide.csv", "Year,110,120,Saldo,Alle,Summe\n2023,50,10,40,60,60\n2024,30,12,18,42,43\n");
    let out = ingest(dir.path(), "offences_wide", &[&file]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    assert!(out.stdout.contains("lines 3 = accepted 1 + rejected 1 + skipped 1"), "{}", out.stdout);
    assert_eq!(cases(dir.path()), [row("110", "2023", "50"), row("120", "2023", "10")]);
    let quarantined = quarantine(dir.path());
    assert!(quarantined.contains("the line's total in 'Summe' is 43, its cells add up to 42"), "{quarantined}");
}

/// A year neither the file nor its name holds, given by the person ingesting: `@set` in the mapping, `--set` at
/// the ingest; refused without it, and a value for a field that reads the file is refused too.
#[test]
fn a_value_the_file_lacks_is_given_at_ingest() {
    let dir = offences_project("replace = [\"year\"]", "");
    let source = dir.path().join("cube-schemas/sources/offences_en.toml");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, text.replace("member = \"Year\"", "member = \"@set\"")).unwrap();
    let file = write(dir.path(), "offences.csv", "Key,Cases\n110,4\n120,6\n");
    let without = ingest(dir.path(), "offences_en", &[&file]);
    assert_eq!(without.code, ExitCode::from(2));
    assert!(
        without.stderr.contains("source offences_en reads year from the ingest (`@set`): give it with --set year=…"),
        "{}",
        without.stderr
    );
    let wrong = cli(dir.path(), &["ingest", "offences_en", &file, "--set", "year=2021", "--set", "cases=7"]);
    assert!(
        wrong.stderr.contains("source offences_en reads only year from --set; --set cases is refused"),
        "{}",
        wrong.stderr
    );
    let out = cli(dir.path(), &["ingest", "offences_en", &file, "--set", "year=2021"]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let corrected = write(dir.path(), "corrected.csv", "Key,Cases\n110,5\n");
    assert_eq!(cli(dir.path(), &["ingest", "offences_en", &corrected, "--set", "year=2021"]).code, ExitCode::SUCCESS);
    assert_eq!(cases(dir.path()), [row("110", "2021", "5")]);
    // The same bytes with another value are another delivery, not one already ingested; with the same value they are.
    let out = cli(dir.path(), &["ingest", "offences_en", &corrected, "--set", "year=2022"]);
    assert!(out.stdout.contains("lines 2 = accepted 1"), "{}", out.stdout);
    assert_eq!(cases(dir.path()), [row("110", "2021", "5"), row("110", "2022", "5")]);
    let out = cli(dir.path(), &["ingest", "offences_en", &corrected, "--set", "year=2022"]);
    assert!(out.stdout.contains("already ingested"), "{}", out.stdout);
    // A given value is checked as any value: no member, no fact.
    let other = write(dir.path(), "other.csv", "Key,Cases\n110,1\n");
    let out = cli(dir.path(), &["ingest", "offences_en", &other, "--set", "year=20x2"]);
    assert!(out.stdout.contains("rejected 1"), "{}", out.stdout);
}

/// The same persons delivered twice: refused, and the refusal names the cell but never the person (whoever
/// ingests would learn that another file holds them).
#[test]
fn a_refusal_over_persons_does_not_name_the_person() {
    let dir = project_copy();
    let source = dir.path().join("cube-schemas/sources/abh_newcomers.toml");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, text.replace("replace = [\"month\"]", "")).unwrap();
    let june = dir.path().join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-06.csv");
    let again = dir.path().join("neuzugewanderte_2024-06_again.csv");
    let mut bytes = std::fs::read(&june).unwrap();
    bytes.extend_from_slice(b"\n");
    std::fs::write(&again, bytes).unwrap();
    let first = cli(dir.path(), &["ingest", "--demo-key", "abh_newcomers", &june.display().to_string()]);
    assert_eq!(first.code, ExitCode::SUCCESS, "{}", first.stderr);
    let out = cli(dir.path(), &["ingest", "--demo-key", "abh_newcomers", &again.display().to_string()]);
    assert_eq!(out.code, ExitCode::from(2), "{}", out.stdout);
    assert!(out.stderr.contains("neuzugewanderte_2024-06_again.csv brings"), "{}", out.stderr);
    assert!(
        out.stderr.contains("month=2024-06") && out.stderr.contains("and one person_key in both"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("person_key="), "{}", out.stderr);
}
