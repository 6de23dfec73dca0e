//! Reports: `kubus report run` writes every output in one go, byte for byte the same for the same data; the XLSX
//! (re-read with calamine) and the JSON-stat datasets hold the figures and the suppression of the corresponding
//! cube queries.

use crate::support::{cli, csv_rows, suppression_project as demo_project};
use calamine::{Data, Reader, Xlsx};
use std::path::Path;
use std::process::ExitCode;

fn run(out: &Path) -> Vec<String> {
    let r = cli(
        demo_project(),
        &["report", "run", "newcomers_monthly", "--period", "2024-06", "--out", out.to_str().unwrap()],
    );
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.stderr);
    r.stdout.lines().skip(1).map(|l| l.trim().to_owned()).collect()
}

/// The same figures as a cube query (as anyone without a role sees them in a project protected by suppression, the
/// method of reports), as CSV rows.
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
    let per_table = "one JSON-stat dataset per table, chart and map";
    assert_eq!(files.iter().filter(|f| f.ends_with(".json")).count(), 8, "{per_table}");
    assert_eq!(files.iter().filter(|f| f.ends_with(".csv")).count(), 8);
    assert!(files.iter().any(|f| f.ends_with("tables/LIESMICH.txt")));

    // XLSX: the district table equals the cube query, suppressed cells included.
    let by_district = figures(&[
        "newcomers",
        "-m",
        "persons",
        "-m",
        "share_below_b1",
        "-d",
        "district",
        "-c",
        "month=2024-06",
        "--totals",
    ]);
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
    let text: Vec<String> =
        legend.rows().map(|r| r.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")).collect();
    assert!(text.iter().any(|l| l.starts_with("Datenstand newcomers Version")), "{text:?}");
    assert!(text.iter().any(|l| l.contains("Fallzahlen von 1 bis 2 sind gesperrt (.)")), "{text:?}");

    // JSON-stat: the age band × sex table has the query's values and statuses at their positions.
    let stat: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("tables/05_personen-nach-altersgruppe-und-geschlecht.json")).unwrap(),
    )
    .unwrap();
    let by_age_sex =
        figures(&["newcomers", "-m", "persons", "-d", "age_band", "-d", "sex", "-c", "month=2024-06", "--totals"]);
    let size: Vec<usize> = stat["size"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let index = |id: &str, key: &str| {
        stat["dimension"][id]["category"]["index"][if key.is_empty() { "_T" } else { key }].as_u64().unwrap() as usize
    };
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
    let notes: Vec<&str> = stat["note"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert!(
        notes[0].starts_with("Datenstand: newcomers Version") && notes[1].starts_with("Geheimhaltung: Fallzahlen"),
        "{notes:?}"
    );
    let readme = std::fs::read_to_string(dir.join("tables/LIESMICH.txt")).unwrap();
    assert!(
        readme.contains("Datenstand: newcomers Version") && readme.contains("Geheimhaltung:"),
        "the CSV files' notes"
    );
    // The bar and line charts are native Excel charts too, a series per measure.
    let xlsx = std::fs::File::open(dir.join("newcomers_monthly_2024-06.xlsx")).unwrap();
    let mut zip = zip::ZipArchive::new(xlsx).unwrap();
    let series = |zip: &mut zip::ZipArchive<std::fs::File>, part: &str| {
        let mut xml = String::new();
        std::io::Read::read_to_string(&mut zip.by_name(part).unwrap(), &mut xml).unwrap();
        xml.matches("<c:ser>").count()
    };
    let charts: Vec<usize> = (1..=3).map(|n| series(&mut zip, &format!("xl/charts/chart{n}.xml"))).collect();
    assert_eq!(charts, [1, 2, 1], "persons by district; need beside seats; persons over 24 months");

    // The same cell is treated alike in every table of the report: persons by district in the table (with its
    // totals) and in the bar chart (without) are suppressed together.
    let read = |file: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join("tables").join(file)).unwrap()).unwrap()
    };
    let (table, bars) = (read("01_personen-nach-stadtteil.json"), read("02_personen-nach-stadtteil.json"));
    let districts = bars["dimension"]["district"]["category"]["index"].as_object().unwrap();
    for (key, at) in districts {
        let in_bars = &bars["value"][at.as_u64().unwrap() as usize];
        let t = table["dimension"]["district"]["category"]["index"][key].as_u64().unwrap() as usize * 2;
        assert_eq!(in_bars, &table["value"][t], "district {key}");
    }

    // HTML: self-contained (no external resources), the charts inline, the data version and the rule stated.
    let html = std::fs::read_to_string(dir.join("newcomers_monthly_2024-06.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 4, "two bar charts, the line chart and the map");
    assert!(
        !html.contains("http://")
            || html.matches("http://").count() == html.matches("http://www.w3.org/2000/svg").count(),
        "nothing fetched at view time"
    );
    assert!(html.contains("Datenstand: newcomers Version") && html.contains("Geheimhaltung:"));
    // Need beside seats: a bar per measure and district, each the figure of the cube query (a cell the report
    // suppresses, as it is suppressed in another of its tables, has its symbol instead of a bar).
    let demand = figures(&[
        "language_demand",
        "-m",
        "need",
        "-m",
        "seats",
        "-d",
        "district",
        "-c",
        "month=2024-06",
        "-c",
        "start_month.year=2024",
        "-c",
        "language_level=none,A1,A2",
    ]);
    let start = html.find("<h2>Bedarf und Angebot nach Stadtteil</h2>").unwrap();
    let chart = &html[start..start + html[start..].find("</svg>").unwrap()];
    // The titles' text, its characters escaped as the template escapes them.
    let text = |t: &str| {
        let entities =
            [("&#x2f;", "/"), ("&#x27;", "'"), ("&quot;", "\""), ("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&")];
        entities.iter().fold(t.to_owned(), |t, (entity, c)| t.replace(entity, c))
    };
    let bars: Vec<String> = chart.split("<title>").skip(1).map(|t| text(&t[..t.find("</title>").unwrap()])).collect();
    let (mut drawn, mut withheld) = (0, 0);
    for row in &demand {
        for (measure, want) in [("Bedarf: Personen unter B1 ohne Sprachkurs", &row[2]), ("Plätze", &row[3])] {
            let label = format!("{}, {measure}: ", row[1]);
            match bars.iter().find(|b| b.starts_with(&label)) {
                Some(bar) => {
                    assert_eq!(&bar[label.len()..], want, "{label}");
                    drawn += 1;
                }
                None => withheld += 1,
            }
        }
    }
    assert_eq!(drawn + withheld, 2 * demand.len());
    assert_eq!(bars.len(), drawn, "no bar for a district the query does not have");
    assert!(drawn > 20 && withheld > 0, "{drawn} bars drawn, {withheld} withheld");
    assert_eq!(chart.matches(">.</text>").count(), withheld, "each withheld bar's symbol");
    assert!(chart.contains("Plätze</text>"), "a legend names the measures");
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

    // Reading the cubes at stated versions reproduces a run (here the only versions there are).
    let again = cli(
        demo_project(),
        &[
            "report",
            "run",
            "newcomers_monthly",
            "--period",
            "2024-06",
            "--out",
            out.path().to_str().unwrap(),
            "--as-of",
            "newcomers=0",
            "--as-of",
            "course_offers=0",
        ],
    );
    assert_eq!(again.code, ExitCode::SUCCESS, "{}", again.stderr);
    assert_eq!(read_all(&dir), first);
    let bad = cli(
        demo_project(),
        &[
            "report",
            "run",
            "newcomers_monthly",
            "--period",
            "2024-06",
            "--out",
            out.path().to_str().unwrap(),
            "--as-of",
            "newcomers=7",
        ],
    );
    assert!(bad.stderr.contains("version 7"), "{}", bad.stderr);
    let bad = cli(
        demo_project(),
        &["report", "run", "newcomers_monthly", "--period", "2024-13", "--out", out.path().to_str().unwrap()],
    );
    assert_eq!(bad.code, ExitCode::from(2));
    assert!(bad.stderr.contains("'2024-13' is not a report period"), "{}", bad.stderr);
    let bad = cli(demo_project(), &["report", "run", "newcomers_montly", "--period", "2024-06"]);
    assert!(bad.stderr.contains("unknown report 'newcomers_montly'; closest: newcomers_monthly"), "{}", bad.stderr);
}

fn schedule(out: &Path, at: &str, catch_up: &str) -> Vec<String> {
    let r = cli(demo_project(), &["schedule", "--out", out.to_str().unwrap(), "--at", at, "--catch-up", catch_up]);
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.stderr);
    r.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn the_scheduler_runs_what_is_due_once_catches_up_and_never_overlaps() {
    let out = tempfile::tempdir().unwrap();
    let out = out.path();
    // The clock is injected with --at: the scheduler starts in June, the report is due on the first at six.
    assert_eq!(schedule(out, "2024-06-30T12:00:00Z", "last"), ["nothing due"]);
    assert_eq!(
        schedule(out, "2024-07-01T06:00:30Z", "last"),
        ["newcomers_monthly for 2024-06 (due 2024-07-01T06:00:00+00:00): written (20 files)"]
    );
    assert_eq!(schedule(out, "2024-07-01T06:05:00Z", "last"), ["nothing due"], "a run is made once");
    assert!(out.join("newcomers_monthly_2024-06/newcomers_monthly_2024-06.html").exists());

    // Another scheduler (a live process) holds the report's lock: this one does not start it too.
    let lock = out.join(".locks/newcomers_monthly.lock");
    std::fs::write(&lock, std::process::id().to_string()).unwrap();
    assert_eq!(
        schedule(out, "2024-08-01T06:00:05Z", "last"),
        ["newcomers_monthly for 2024-07 (due 2024-08-01T06:00:00+00:00): skipped: already running"]
    );
    // A lock whose process is gone is stale and taken over; the skipped run is still due.
    std::fs::write(&lock, "4194303").unwrap();
    assert_eq!(
        schedule(out, "2024-08-01T06:10:00Z", "last"),
        ["newcomers_monthly for 2024-07 (due 2024-08-01T06:00:00+00:00): written (20 files)"]
    );
    assert!(!lock.exists(), "the lock is released after the run");

    // After a downtime over three first-of-months, all or only the latest missed run is made.
    assert_eq!(schedule(out, "2024-11-05T10:00:00Z", "all").len(), 3);
    for period in ["2024-08", "2024-09", "2024-10"] {
        assert!(out.join(format!("newcomers_monthly_{period}")).is_dir(), "{period}");
    }
    assert_eq!(
        schedule(out, "2025-02-03T10:00:00Z", "last"),
        ["newcomers_monthly for 2025-01 (due 2025-02-01T06:00:00+00:00): written (20 files)"]
    );
    let log = std::fs::read_to_string(out.join("schedule.jsonl")).unwrap();
    assert_eq!(log.lines().filter(|l| l.contains("\"event\":\"run\"")).count(), 6, "one line per run made");
}

const SCHEDULER_CHILD: &str = "KUBUS_SCHEDULER_TEST_CHILD";

#[test]
fn the_scheduler_stops_cleanly_on_sigterm() {
    if let Ok(args) = std::env::var(SCHEDULER_CHILD) {
        // Child mode: act as `kubus schedule` and exit with its status.
        let code =
            kubus_cli::run(args.split('\u{1f}').map(str::to_owned), &mut std::io::sink(), &mut std::io::stderr());
        std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
    }
    let out = tempfile::tempdir().unwrap();
    let args = ["kubus", "-C", demo_project().to_str().unwrap(), "schedule", "--out", out.path().to_str().unwrap()]
        .join("\u{1f}");
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "reports::the_scheduler_stops_cleanly_on_sigterm", "--nocapture", "--test-threads=1"])
        .env(SCHEDULER_CHILD, args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it has made its first pass (the run log records its start), then ask it to stop.
    let log = out.path().join("schedule.jsonl");
    let started = std::time::Instant::now();
    while !log.exists() && started.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(log.exists(), "the scheduler started");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "exit status {:?}", output.status);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("kubus schedule: stopped (SIGTERM)"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The areas of a map in a report's HTML: per `data-key`, its value (empty where hatched) and fill; and its legend's
/// classes: colour, lower and upper bound.
type Drawn = (Vec<(String, String, String)>, Vec<(String, f64, f64)>);

fn drawn_map(html: &str) -> Drawn {
    let attribute = |element: &str, name: &str| -> String {
        let start =
            element.find(&format!(" {name}=\"")).unwrap_or_else(|| panic!("{name} in {element}")) + name.len() + 3;
        element[start..start + element[start..].find('"').unwrap()].to_owned()
    };
    let areas = html
        .split("<path class=\"area\"")
        .skip(1)
        .map(|e| {
            let e = &e[..e.find('>').unwrap()];
            (attribute(e, "data-key"), attribute(e, "data-value"), attribute(e, "fill"))
        })
        .collect();
    let bound = |text: String| match text.as_str() {
        "-Infinity" => f64::NEG_INFINITY,
        "Infinity" => f64::INFINITY,
        t => t.parse().unwrap(),
    };
    let classes = html
        .split("<g class=\"class\"")
        .skip(1)
        .map(|e| {
            let e = &e[..e.find('>').unwrap()];
            (attribute(e, "data-colour"), bound(attribute(e, "data-lower")), bound(attribute(e, "data-upper")))
        })
        .collect();
    (areas, classes)
}

#[test]
fn a_map_in_a_report_colours_each_stadtteil_by_its_figure_in_classes_of_equal_counts_or_chosen_limits() {
    // Köln's population by Stadtteil in 2012 on the city's real boundaries; the figures from the city's file itself.
    let dir = crate::support::project_copy();
    let report = "name = \"karte\"\ntitle = \"Karte\"\n\n[[sections]]\nkind = \"map\"\ntitle = \"Einwohner 2012\"\n\
                  cube = \"koeln_population\"\nmeasures = [\"value\"]\nrows = [\"area.stadtteil\"]\n\
                  cuts = [\"year=2012\", \"topic=005.10\"]\n";
    std::fs::write(dir.path().join("cube-schemas/reports/karte.toml"), report).unwrap();
    let file = dir.path().join("sample-data/realdata/koeln_bevoelkerung_stadtteile_2005-2012.csv");
    let r = cli(dir.path(), &["ingest", "koeln_bevoelkerung", file.to_str().unwrap()]);
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.stderr);
    let out = dir.path().join("out");
    let r = cli(dir.path(), &["report", "run", "karte", "--period", "2024-06", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.stderr);
    let html = std::fs::read_to_string(out.join("karte_2024-06/karte_2024-06.html")).unwrap();
    let (areas, classes) = drawn_map(&html);

    // id,tab_id,tabelle,jahr,raum_id,raum,zei_id,zeile,zahl: table 005 line 10 (Einwohner), Stadtteile 101 and up.
    let text = std::fs::read_to_string(&file).unwrap();
    let residents: Vec<(String, String, f64)> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|r| r[1] == "005" && r[3] == "2012" && r[6] == "10" && r[4] >= "101")
        .map(|r| (r[4].to_owned(), r[5].to_owned(), r[8].parse().unwrap()))
        .collect();
    assert_eq!(areas.len(), residents.len(), "every Stadtteil of the file is drawn, once");
    for name in ["Altstadt/Süd", "Chorweiler", "Porz"] {
        let (key, _, want) = residents.iter().find(|(_, n, _)| n == name).unwrap_or_else(|| panic!("{name}"));
        let (_, value, fill) = areas.iter().find(|(k, _, _)| k == key).unwrap_or_else(|| panic!("{key}"));
        assert_eq!(value.parse::<f64>().unwrap(), *want, "{name}: the city's figure");
        let class = classes.iter().find(|(_, lower, upper)| lower <= want && want < upper).unwrap();
        assert_eq!(fill, &class.0, "{name}: {want} is filled as its class");
    }
    // Five classes of (about) equal counts of areas, in rising colours, that hold every area.
    assert_eq!(classes.len(), 5);
    for (colour, lower, upper) in &classes {
        let members = areas.iter().filter(|(_, _, fill)| fill == colour).count();
        assert!((residents.len() / 5 - 1..=residents.len() / 5 + 2).contains(&members), "{colour}: {members}");
        for (key, value, fill) in &areas {
            let v: f64 = value.parse().unwrap();
            assert_eq!(fill == colour, *lower <= v && v < *upper, "{key}: {v} in {colour}?");
        }
    }
    assert!(html.contains("Kartengrundlage: Stadt Köln, Offene Daten Köln (CC BY)"));
    // The map's table is in the files as for any table.
    assert!(out.join("karte_2024-06/tables/01_einwohner-2012.csv").exists());

    // Limits the report chooses: each Stadtteil in the class its figure falls into by them, the legend open at its
    // ends.
    let limits = [10_000.0, 20_000.0, 30_000.0];
    let chosen = format!("{report}breaks = [10000, 20000, 30000]\n");
    std::fs::write(dir.path().join("cube-schemas/reports/karte.toml"), chosen).unwrap();
    let out = dir.path().join("out-limits");
    let r = cli(dir.path(), &["report", "run", "karte", "--period", "2024-06", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.stderr);
    let html = std::fs::read_to_string(out.join("karte_2024-06/karte_2024-06.html")).unwrap();
    let (areas, classes) = drawn_map(&html);
    let bounds: Vec<(f64, f64)> = classes.iter().map(|(_, lower, upper)| (*lower, *upper)).collect();
    let expected =
        [(f64::NEG_INFINITY, 10_000.0), (10_000.0, 20_000.0), (20_000.0, 30_000.0), (30_000.0, f64::INFINITY)];
    assert_eq!(bounds, expected);
    for (key, name, want) in &residents {
        let (_, _, fill) = areas.iter().find(|(k, _, _)| k == key).unwrap_or_else(|| panic!("{key}"));
        let class = limits.iter().filter(|&&limit| limit <= *want).count();
        assert_eq!(fill, &classes[class].0, "{name}: {want}");
    }
    assert!(html.contains(">unter 10.000<") && html.contains(">30.000 und mehr<"));
}

#[test]
fn a_map_section_needs_a_level_with_a_map() {
    let dir = crate::support::project_copy();
    let report = "name = \"karte\"\ntitle = \"Karte\"\n\n[[sections]]\nkind = \"map\"\ncube = \"newcomers\"\n\
                  measures = [\"persons\"]\nrows = [\"age_band\"]\n";
    std::fs::write(dir.path().join("cube-schemas/reports/karte.toml"), report).unwrap();
    let r = cli(dir.path(), &["check"]);
    assert_ne!(r.code, ExitCode::SUCCESS);
    assert!(r.stderr.contains("level age_band (age_band) has no map: give it `geometry"), "{}", r.stderr);

    // Class limits: for maps only, ascending, at most seven.
    let section = |kind: &str, breaks: &str| {
        format!(
            "name = \"karte\"\ntitle = \"Karte\"\n\n[[sections]]\nkind = \"{kind}\"\ncube = \"newcomers\"\n\
             measures = [\"persons\"]\nrows = [\"district\"]\nbreaks = {breaks}\n"
        )
    };
    for (kind, breaks, said) in [
        ("map", "[20, 10]", "class limits must be numbers in ascending order, each once"),
        ("map", "[1, 2, 3, 4, 5, 6, 7, 8]", "a map takes 1 to 7 class limits, not 8"),
        ("table", "[10]", "class limits (`breaks`) are for maps only"),
    ] {
        std::fs::write(dir.path().join("cube-schemas/reports/karte.toml"), section(kind, breaks)).unwrap();
        let r = cli(dir.path(), &["check"]);
        assert_ne!(r.code, ExitCode::SUCCESS);
        assert!(r.stderr.contains(said), "{breaks}: {}", r.stderr);
    }
    std::fs::write(dir.path().join("cube-schemas/reports/karte.toml"), section("map", "[2.5, 10]")).unwrap();
    assert_eq!(cli(dir.path(), &["check"]).code, ExitCode::SUCCESS, "limits that are numbers in ascending order");

    // Every measure of a chart is drawn: bars and lines side by side on one axis, so amounts and proportions do not
    // mix; a map or a stacked chart has room for one measure, a line for one with its forecast.
    let drawn = |kind: &str, cube: &str, measures: &str, rows: &str| {
        let columns = if kind == "stacked" { "columns = [\"sex\"]\n" } else { "" };
        format!(
            "name = \"karte\"\ntitle = \"Karte\"\n\n[[sections]]\nkind = \"{kind}\"\ncube = \"{cube}\"\n\
             measures = {measures}\nrows = [\"{rows}\"]\n{columns}"
        )
    };
    let one = "a map or stacked chart shows one measure";
    let axis = "a chart draws its measures on one axis: the ratios or shares 'share_below_b1' do not go beside the \
                amounts 'persons'";
    let forecast = "a chart of several measures draws no forecast";
    for (kind, cube, measures, rows, refused) in [
        ("map", "newcomers", "[\"persons\", \"records\"]", "district", Some(one)),
        ("stacked", "newcomers", "[\"persons\", \"records\"]", "district", Some(one)),
        ("stacked", "newcomers", "[\"persons\"]", "district", None),
        ("bars", "newcomers", "[\"persons\", \"records\"]", "district", None),
        ("line", "newcomers", "[\"persons\", \"records\"]", "month", None),
        ("bars", "newcomers", "[\"persons\", \"share_below_b1\"]", "district", Some(axis)),
        ("bars", "newcomers", "[\"share_below_b1\", \"persons_change_yoy_pct\"]", "district", None),
        ("bars", "zuweisungen", "[\"persons\", \"persons_forecast\"]", "month", Some(forecast)),
        ("line", "zuweisungen", "[\"persons\", \"persons_forecast\"]", "month", None),
        ("line", "zuweisungen", "[\"allocations\", \"persons_forecast\"]", "month", Some(forecast)),
        ("table", "newcomers", "[\"persons\", \"share_below_b1\"]", "district", None),
    ] {
        std::fs::write(dir.path().join("cube-schemas/reports/karte.toml"), drawn(kind, cube, measures, rows)).unwrap();
        let r = cli(dir.path(), &["check"]);
        match refused {
            Some(said) => {
                assert_ne!(r.code, ExitCode::SUCCESS, "{kind} of {measures}");
                assert!(r.stderr.contains(said), "{kind} of {measures}: {}", r.stderr);
            }
            None => assert_eq!(r.code, ExitCode::SUCCESS, "{kind} of {measures}: {}", r.stderr),
        }
    }
}

#[test]
fn a_cell_in_two_tables_of_a_report_is_suppressed_in_both() {
    // Two tables of the same cells: one with totals (which need complementary cells), one without.
    let dir = crate::support::project_copy();
    let section = |title: &str, totals: bool| {
        format!(
            "\n[[sections]]\nkind = \"table\"\ntitle = \"{title}\"\ncube = \"newcomers\"\nmeasures = [\"persons\"]\nrows = [\"district\"]\ncolumns = [\"sex\"]\ncuts = [\"month={{period}}\"]\ntotals = {totals}\n"
        )
    };
    let report =
        format!("name = \"pair\"\ntitle = \"Paar\"\n{}{}", section("mit Summen", true), section("ohne Summen", false));
    std::fs::write(dir.path().join("cube-schemas/reports/pair.toml"), report).unwrap();
    assert_eq!(cli(dir.path(), &["demo"]).code, ExitCode::SUCCESS);
    let out = dir.path().join("out");
    let r = cli(dir.path(), &["report", "run", "pair", "--period", "2024-06", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, ExitCode::SUCCESS, "{}", r.stderr);
    let read = |file: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.join("pair_2024-06/tables").join(file)).unwrap()).unwrap()
    };
    let (with, without) = (read("01_mit-summen.json"), read("02_ohne-summen.json"));
    let cell = |v: &serde_json::Value, d: &str, s: &str| -> Option<usize> {
        let size: Vec<usize> = v["size"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
        let i = v["dimension"]["district"]["category"]["index"][d].as_u64()? as usize;
        let j = v["dimension"]["sex"]["category"]["index"][s].as_u64()? as usize;
        Some((i * size[1] + j) * size[2])
    };
    let alone = figures(&["newcomers", "-m", "persons", "-d", "district", "-d", "sex", "-c", "month=2024-06"]);
    let mut complements = 0;
    for row in &alone {
        let (Some(a), Some(b)) = (cell(&with, &row[0], &row[2]), cell(&without, &row[0], &row[2])) else {
            panic!("{row:?}")
        };
        assert_eq!(with["value"][a], without["value"][b], "district {} sex {}", row[0], row[2]);
        // Asked alone, without totals, only the small counts are hidden; in the report the complements are too.
        if row[4] != "." && without["value"][b].is_null() {
            complements += 1;
        }
    }
    assert!(complements > 0, "the table without totals hides the complements the other table needs");
}
