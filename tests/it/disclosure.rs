//! Disclosure control: small counts are suppressed with complementary cells, nothing can be recovered from the
//! totals (an attacker tries subtraction along every total and exact linear algebra over all of them, on the
//! sample project and on random tables), every format shows the same cells suppressed, and roles decide who may
//! see unsuppressed numbers or run SQL. These tests protect the sample project by suppression (the method of fixed
//! publications); the cell key method of ad-hoc answers has its attacks in `attacks.rs`.

use crate::support::{Rng, cli, csv_rows, suppression_project as demo_project};
use calamine::{Data, Reader, Xlsx};
use kubus_query::disclosure::{Suppression, suppress};
use std::collections::HashMap;
use std::process::ExitCode;

const QUERY: [&str; 13] = [
    "query",
    "newcomers",
    "-m",
    "persons",
    "-d",
    "district",
    "-d",
    "age_band",
    "-d",
    "sex",
    "-c",
    "month=2024-06",
    "--totals",
];

/// One answer as (keys with `None` for totals, the shown text of the measure).
fn cells(rows: &[Vec<String>], measure: usize) -> Vec<(Vec<Option<String>>, String)> {
    rows.iter()
        .map(|r| {
            let keys = [0, 2, 4].iter().map(|&i| (!r[i].is_empty()).then(|| r[i].clone())).collect();
            (keys, r[measure].clone())
        })
        .collect()
}

/// Equations of an answer with totals: each total row and the rows one drilldown finer below it.
fn equations(keys: &[Vec<Option<String>>]) -> Vec<(usize, Vec<usize>)> {
    let depth = |k: &[Option<String>]| k.iter().filter(|x| x.is_some()).count();
    let mut out = Vec::new();
    for (t, tk) in keys.iter().enumerate() {
        let d = depth(tk);
        let children: Vec<usize> =
            (0..keys.len()).filter(|&c| depth(&keys[c]) == d + 1 && keys[c][..d] == tk[..d]).collect();
        if d < tk.len() && !children.is_empty() {
            out.push((t, children));
        }
    }
    out
}

/// The attacker: which hidden cells can be recovered from the shown ones. First by subtraction, repeatedly, along
/// every equation with one unknown; then exactly (rational Gauss-Jordan elimination): a hidden cell is recovered
/// when the equations pin it down, i.e. its unit vector lies in their row space.
fn recoverable(keys: &[Vec<Option<String>>], hidden: &[bool]) -> Vec<usize> {
    let eqs = equations(keys);
    let mut known: Vec<bool> = hidden.iter().map(|h| !h).collect();
    loop {
        let mut progress = false;
        for (t, children) in &eqs {
            let unknown: Vec<usize> =
                std::iter::once(*t).chain(children.iter().copied()).filter(|&c| !known[c]).collect();
            if let [one] = unknown[..] {
                known[one] = true;
                progress = true;
            }
        }
        if !progress {
            break;
        }
    }
    let mut found: Vec<usize> = (0..hidden.len()).filter(|&c| hidden[c] && known[c]).collect();
    // Exact elimination over the hidden cells, with fractions (numerator, denominator).
    let vars: Vec<usize> = (0..hidden.len()).filter(|&c| hidden[c]).collect();
    let mut m: Vec<Vec<(i128, i128)>> = eqs
        .iter()
        .map(|(t, children)| {
            vars.iter()
                .map(|v| {
                    (
                        if v == t {
                            -1
                        } else if children.contains(v) {
                            1
                        } else {
                            0
                        },
                        1,
                    )
                })
                .collect()
        })
        .collect();
    fn gcd(a: i128, b: i128) -> i128 {
        if b == 0 { a.abs().max(1) } else { gcd(b, a % b) }
    }
    let norm = |(n, d): (i128, i128)| {
        let g = gcd(n, d) * d.signum();
        (n / g, d / g)
    };
    let (mut row, mut pivots) = (0, Vec::new());
    for col in 0..vars.len() {
        let Some(p) = (row..m.len()).find(|&r| m[r][col].0 != 0) else { continue };
        m.swap(row, p);
        let (pn, pd) = m[row][col];
        for x in m[row].iter_mut() {
            *x = norm((x.0 * pd, x.1 * pn));
        }
        for r in (0..m.len()).filter(|&r| r != row) {
            let (fn_, fd) = m[r][col];
            if fn_ == 0 {
                continue;
            }
            let pivot = m[row].clone();
            for (a, b) in m[r].iter_mut().zip(pivot) {
                *a = norm((a.0 * b.1 * fd - b.0 * fn_ * a.1, a.1 * b.1 * fd));
            }
        }
        pivots.push((row, col));
        row += 1;
    }
    for (r, col) in pivots {
        if (0..vars.len()).all(|j| j == col || m[r][j].0 == 0) && !found.contains(&vars[col]) {
            found.push(vars[col]);
        }
    }
    found
}

#[test]
fn small_cells_are_suppressed_with_complements_and_nothing_can_be_recovered() {
    let dir = demo_project();
    let shown = cli(dir, &[&QUERY[..], &["-f", "csv"]].concat());
    assert_eq!(shown.code, ExitCode::SUCCESS, "{}", shown.stderr);
    let truth = cli(dir, &[&["--role", "statistik"], &QUERY[..], &["-f", "csv"]].concat());
    let (shown, truth) = (cells(&csv_rows(&shown.stdout), 6), cells(&csv_rows(&truth.stdout), 6));
    assert_eq!(shown.len(), truth.len());
    let keys: Vec<Vec<Option<String>>> = shown.iter().map(|(k, _)| k.clone()).collect();
    let hidden: Vec<bool> = shown.iter().map(|(_, v)| v == ".").collect();
    let value = |i: usize| truth[i].1.parse::<u64>().unwrap();
    let mut complementary = 0;
    for i in 0..shown.len() {
        assert_eq!(shown[i].0, truth[i].0);
        match (hidden[i], value(i)) {
            (false, v) => {
                assert!(v == 0 || v > 2, "a count of {v} is shown at {:?}", keys[i]);
                assert_eq!(shown[i].1, v.to_string(), "shown values are the true ones");
            }
            (true, v) if v > 2 => complementary += 1,
            (true, _) => {}
        }
    }
    let primary = (0..shown.len()).filter(|&i| (1..=2).contains(&value(i))).count();
    assert!(primary > 10, "the sample has small cells by district × age band × sex: {primary}");
    assert!(complementary > 0, "and needs complementary cells to protect them");
    assert!(keys.iter().zip(&hidden).any(|(k, h)| k.iter().any(Option::is_none) && !h), "totals stay visible");
    let recovered = recoverable(&keys, &hidden);
    assert!(
        recovered.is_empty(),
        "recovered {:?}",
        recovered.iter().map(|&i| (&keys[i], value(i))).collect::<Vec<_>>()
    );
    let values: Vec<i64> = (0..shown.len()).map(|i| value(i) as i64).collect();
    assert_eq!(
        bounded_small(&keys, &hidden, &values, 2),
        Vec::<usize>::new(),
        "no hidden cell is bounded to a small count"
    );
}

/// The attacker's bound: under a shown total, the k hidden children sum to S and each is at least 1, so each is at
/// most S − (k − 1). Returns the hidden cells that this bounds to the threshold or less.
fn bounded_small(keys: &[Vec<Option<String>>], hidden: &[bool], values: &[i64], threshold: i64) -> Vec<usize> {
    let mut found = Vec::new();
    for (total, children) in equations(keys) {
        if hidden[total] {
            continue;
        }
        let shown: i64 = children.iter().filter(|&&c| !hidden[c]).map(|&c| values[c]).sum();
        let secret: Vec<usize> = children.into_iter().filter(|&c| hidden[c]).collect();
        if !secret.is_empty() && values[total] - shown - (secret.len() as i64 - 1) <= threshold {
            found.extend(secret);
        }
    }
    found
}

#[test]
fn the_same_cells_are_suppressed_in_every_format() {
    let dir = demo_project();
    let run = |format: &str, out: Option<&std::path::Path>| {
        let mut args: Vec<String> = QUERY.iter().map(|s| (*s).to_owned()).chain(["-f".into(), format.into()]).collect();
        if let Some(p) = out {
            args.extend(["-o".into(), p.display().to_string()]);
        }
        let out = cli(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
        out.stdout
    };
    let csv = csv_rows(&run("csv", None));
    let key = |r: &[String]| format!("{}|{}|{}", r[0], r[2], r[4]);
    let hidden: Vec<String> = csv.iter().filter(|r| r[6] == ".").map(|r| key(r)).collect();
    assert!(!hidden.is_empty());

    let german = run("csv-de", None);
    let mut reader =
        csv::ReaderBuilder::new().delimiter(b';').from_reader(german.trim_start_matches('\u{feff}').as_bytes());
    let rows: Vec<Vec<String>> = reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect();
    assert_eq!(rows.iter().filter(|r| r[6] == ".").map(|r| key(r)).collect::<Vec<_>>(), hidden, "csv-de");

    let json: Vec<serde_json::Value> = serde_json::from_str(&run("json", None)).unwrap();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    let from_json: Vec<String> = json
        .iter()
        .filter(|r| r["persons_status"] == ".")
        .inspect(|r| assert!(r["persons"].is_null(), "a suppressed value is empty in JSON"))
        .map(|r| format!("{}|{}|{}", text(&r["district"]), text(&r["age_band"]), text(&r["sex"])))
        .collect();
    assert_eq!(from_json, hidden, "json");

    let dir_out = tempfile::tempdir().unwrap();
    let path = dir_out.path().join("a.xlsx");
    run("xlsx", Some(&path));
    let mut book: Xlsx<_> = calamine::open_workbook(&path).unwrap();
    let sheet = book.worksheet_range(&book.sheet_names()[0]).unwrap();
    let cell = |r: &[Data], i: usize| if r[i] == Data::Empty { String::new() } else { r[i].to_string() };
    let from_xlsx: Vec<String> = sheet
        .rows()
        .skip(1)
        .filter(|r| r[6] == Data::String(".".into()))
        .map(|r| format!("{}|{}|{}", cell(r, 0), cell(r, 2), cell(r, 4)))
        .collect();
    assert_eq!(from_xlsx, hidden, "xlsx");

    let stat: serde_json::Value = serde_json::from_str(&run("json-stat", None)).unwrap();
    let ids: Vec<&str> = stat["id"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let size: Vec<usize> = stat["size"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let index: Vec<HashMap<usize, String>> = ids[..3]
        .iter()
        .map(|id| {
            stat["dimension"][id]["category"]["index"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (v.as_u64().unwrap() as usize, k.clone()))
                .collect()
        })
        .collect();
    let mut from_stat: Vec<(usize, String)> = Vec::new();
    for (position, symbol) in stat["status"].as_object().unwrap() {
        if symbol != "." {
            continue;
        }
        let mut p = position.parse::<usize>().unwrap() / size[3];
        let mut parts = vec![String::new(); 3];
        for d in (0..3).rev() {
            let k = &index[d][&(p % size[d])];
            parts[d] = if k == "_T" { String::new() } else { k.clone() };
            p /= size[d];
        }
        from_stat.push((position.parse().unwrap(), parts.join("|")));
    }
    from_stat.sort();
    let mut from_stat: Vec<String> = from_stat.into_iter().map(|(_, k)| k).collect();
    let mut expected = hidden.clone();
    from_stat.sort();
    expected.sort();
    assert_eq!(from_stat, expected, "json-stat");
}

#[test]
fn roles_decide_who_sees_what() {
    let dir = demo_project();
    let out = cli(dir, &["sql", "SELECT count(*) FROM newcomers"]);
    assert_eq!(out.code, ExitCode::from(2));
    assert!(out.stderr.contains("refused for role (none): SQL reads facts row by row"), "{}", out.stderr);
    let out = cli(dir, &["--role", "analyst", "sql", "SELECT count(*) FROM newcomers"]);
    assert!(out.stderr.contains("refused for role analyst"), "{}", out.stderr);
    let out = cli(dir, &["--role", "statistic", "query", "newcomers", "-m", "persons"]);
    assert!(out.stderr.contains("unknown role 'statistic'; closest: statistik"), "{}", out.stderr);
    // An analyst gets the same protected answer as no role at all.
    let plain = cli(dir, &[&QUERY[..], &["-f", "csv"]].concat()).stdout;
    assert_eq!(cli(dir, &[&["--role", "analyst"], &QUERY[..], &["-f", "csv"]].concat()).stdout, plain);
    // A derived measure of a suppressed count is suppressed with it, also where its own value looks harmless.
    let out = cli(
        dir,
        &[
            "query",
            "newcomers",
            "-m",
            "persons",
            "-m",
            "share_below_b1",
            "-d",
            "district",
            "-d",
            "sex",
            "-c",
            "month=2024-06",
            "-f",
            "csv",
        ],
    );
    for row in csv_rows(&out.stdout) {
        if row[4] == "." {
            assert_eq!(row[5], ".", "{row:?}");
        }
    }
}

#[test]
fn on_random_tables_no_suppressed_cell_can_be_recovered() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut protected_cells = 0;
    for _ in 0..300 {
        // Two or three drilldowns with totals (every prefix), small random counts with zeros and gaps.
        let depth = 2 + rng.next(2) as usize;
        let sizes: Vec<u64> = (0..depth).map(|_| 1 + rng.next(4)).collect();
        let mut leaves: Vec<(Vec<String>, i64)> = Vec::new();
        let mut stack = vec![Vec::<String>::new()];
        while let Some(prefix) = stack.pop() {
            if prefix.len() == depth {
                if rng.next(5) != 0 {
                    leaves.push((prefix, rng.next(12) as i64));
                }
                continue;
            }
            for i in 0..sizes[prefix.len()] {
                stack.push([prefix.clone(), vec![format!("k{i}")]].concat());
            }
        }
        let mut totals: HashMap<Vec<Option<String>>, i64> = HashMap::new();
        for (k, v) in &leaves {
            for d in 0..=depth {
                let key: Vec<Option<String>> = (0..depth).map(|i| (i < d).then(|| k[i].clone())).collect();
                *totals.entry(key).or_default() += v;
            }
        }
        let (keys, values): (Vec<_>, Vec<_>) = totals.into_iter().map(|(k, v)| (k, Some(v))).unzip();
        let state = suppress(&keys, &values, 2);
        let hidden: Vec<bool> = state.iter().map(|s| *s != Suppression::None).collect();
        for (i, s) in state.iter().enumerate() {
            let v = values[i].unwrap();
            assert_eq!(*s == Suppression::Primary, (1..=2).contains(&v), "primary exactly for 1..=2");
        }
        protected_cells += hidden.iter().filter(|h| **h).count();
        let all: Vec<i64> = values.iter().map(|v| v.unwrap()).collect();
        let bounded = bounded_small(&keys, &hidden, &all, 2);
        assert!(bounded.is_empty(), "bounded {:?}", bounded.iter().map(|&i| (&keys[i], values[i])).collect::<Vec<_>>());
        let recovered = recoverable(&keys, &hidden);
        assert!(
            recovered.is_empty(),
            "recovered {:?} from {:?}",
            recovered.iter().map(|&i| (&keys[i], values[i])).collect::<Vec<_>>(),
            keys.iter().zip(&values).zip(&hidden).collect::<Vec<_>>()
        );
    }
    assert!(protected_cells > 300, "the random tables must exercise suppression: {protected_cells}");
}

#[test]
fn a_role_sees_its_levels_and_its_rows_only() {
    let dir = demo_project();
    let refused = |args: &[&str], rule: &str| {
        let out = cli(dir, args);
        assert_eq!(out.code, ExitCode::from(2), "{args:?} must be refused: {}", out.stdout);
        assert!(out.stderr.contains(rule), "{args:?}: {}", out.stderr);
    };
    // Limited to areas and age bands: no single district or year of age, neither drilled nor cut, nor via SQL.
    let role = ["--role", "jugendhilfe", "query", "newcomers", "-m", "persons", "-c", "month=2024-06"];
    refused(
        &[&role[..], &["-d", "district"]].concat(),
        "refused for role jugendhilfe: it may see district down to level area, not district",
    );
    refused(&[&role[..], &["-c", "district=Betzenberg"]].concat(), "not district");
    refused(&[&role[..], &["-d", "age"]].concat(), "it may see age down to level age_band, not age_year");
    refused(&[&role[..], &["-c", "age=16..20"]].concat(), "not age_year");
    refused(&["--role", "jugendhilfe", "sql", "SELECT * FROM newcomers"], "refused for role jugendhilfe");
    let out =
        cli(dir, &[&role[..], &["-d", "district.area", "-d", "age_band", "-c", "age=Jugendintegrationskurs"]].concat());
    assert!(
        out.stderr.contains("unknown member"),
        "a member of another hierarchy is looked up, not refused: {}",
        out.stderr
    );
    let out = cli(
        dir,
        &[&role[..], &["-d", "district.area", "-d", "age_band", "-c", "district=Ortsbezirke", "-f", "csv"]].concat(),
    );
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);

    // The Ortsbezirke's office sees its nine districts, and its totals add up its own rows only.
    let own = cli(
        dir,
        &[
            "--role",
            "ortsbezirke",
            "query",
            "newcomers",
            "-m",
            "records",
            "-d",
            "district",
            "-c",
            "month=2024-06",
            "--totals",
            "-f",
            "csv",
        ],
    );
    let rows = csv_rows(&own.stdout);
    let keys: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(keys, ["10", "11", "12", "13", "14", "15", "16", "17", "18", ""]);
    let all = crate::support::query(dir, &["newcomers", "-m", "records", "-d", "district.area", "-c", "month=2024-06"]);
    let ortsbezirke = all.iter().find(|r| r[0] == "O").unwrap();
    assert_eq!(rows.last().unwrap()[2], ortsbezirke[2], "the total is the Ortsbezirke's, not the city's");
    let sum: u64 = rows[..9].iter().map(|r| r[2].parse::<u64>().unwrap()).sum();
    assert_eq!(sum.to_string(), ortsbezirke[2]);
}

#[test]
fn every_query_is_in_the_audit_log() {
    let dir = crate::support::suppression_copy();
    assert_eq!(cli(dir.path(), &["demo"]).code, ExitCode::SUCCESS);
    let log = dir.path().join("audit.jsonl");
    let lines = |from: usize| -> Vec<serde_json::Value> {
        std::fs::read_to_string(&log).unwrap().lines().skip(from).map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let demo = lines(0);
    let kinds: Vec<&str> = demo.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["ingest", "ingest", "ingest", "ingest", "query", "query", "query"],
        "the demo's four ingests and three queries"
    );
    assert_eq!(demo[0]["files"].as_array().unwrap().len(), 24, "the ingest names its files");
    let before = std::fs::read(&log).unwrap();

    let answered = cli(dir.path(), &[&QUERY[..], &["-f", "csv"]].concat());
    let refused = cli(dir.path(), &["--role", "jugendhilfe", "query", "newcomers", "-m", "persons", "-d", "district"]);
    let sql = cli(dir.path(), &["sql", "SELECT 1"]);
    let bad = cli(dir.path(), &["query", "newcomers", "-m", "nope"]);
    assert_eq!(
        [&answered, &refused, &sql, &bad].map(|o| o.code),
        [ExitCode::SUCCESS, ExitCode::from(2), ExitCode::from(2), ExitCode::from(2)]
    );
    let entries = lines(demo.len());
    assert_eq!(entries.len(), 4, "one line per query, answered or not");
    assert!(std::fs::read(&log).unwrap().starts_with(&before), "earlier lines are never rewritten");
    for e in &entries {
        assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    }
    let rows = csv_rows(&answered.stdout);
    assert_eq!(entries[0]["outcome"], "answered");
    assert_eq!(entries[0]["role"], serde_json::Value::Null);
    assert_eq!(entries[0]["query"]["drilldowns"], serde_json::json!(["district", "age_band", "sex"]));
    assert_eq!(entries[0]["rows"], rows.len());
    assert_eq!(
        entries[0]["suppressed"],
        rows.iter().filter(|r| r[6] == ".").count(),
        "one measure: suppressed cells = dots"
    );
    assert_eq!((entries[1]["outcome"].as_str(), entries[1]["role"].as_str()), (Some("refused"), Some("jugendhilfe")));
    assert!(entries[1]["error"].as_str().unwrap().contains("not district"));
    assert_eq!((entries[2]["kind"].as_str(), entries[2]["outcome"].as_str()), (Some("sql"), Some("refused")));
    assert_eq!(entries[3]["outcome"], "failed");
    // The demo key used by the demo's ingest is not in the log.
    assert!(!std::fs::read_to_string(&log).unwrap().contains("kubus-demo-key"));
}

#[test]
fn a_sum_one_contributor_dominates_is_suppressed() {
    let dir = demo_project();
    // The truth, per district and provider, from the statistics office's view.
    let detail = crate::support::query(
        dir,
        &["course_offers", "-m", "seats", "-d", "district", "-d", "provider", "-c", "year=2024"],
    );
    let mut by_district: HashMap<String, Vec<u64>> = HashMap::new();
    for r in &detail {
        by_district.entry(r[0].clone()).or_default().push(r[4].parse().unwrap());
    }
    let out = cli(
        dir,
        &["query", "course_offers", "-m", "seats", "-d", "district", "-c", "year=2024", "--totals", "-f", "csv"],
    );
    let rows = csv_rows(&out.stdout);
    let mut dominated = 0;
    for r in rows.iter().filter(|r| !r[0].is_empty()) {
        let seats = &by_district[&r[0]];
        let (sum, top) = (seats.iter().sum::<u64>(), *seats.iter().max().unwrap());
        if top as f64 / sum as f64 >= 0.85 {
            dominated += 1;
            assert_eq!(r[2], ".", "district {}: one provider offers {top} of {sum} seats", r[0]);
        } else if r[2] != "." {
            assert_eq!(r[2], sum.to_string());
        }
    }
    assert!(dominated > 0, "the sample has districts one provider dominates");
    // A level above the districts too: the area of a dominated district, cut down to that district.
    let (district, seats) = by_district
        .iter()
        .find(|(_, s)| *s.iter().max().unwrap() as f64 / s.iter().sum::<u64>() as f64 >= 0.85)
        .unwrap();
    let cut = format!("district={district}");
    let args = ["query", "course_offers", "-m", "seats", "-d", "district.area", "-c", "year=2024", "-c", &cut];
    let area = cli(dir, &[&args[..], &["-f", "csv"]].concat());
    assert_eq!(area.code, ExitCode::SUCCESS, "{}", area.stderr);
    let area = csv_rows(&area.stdout);
    assert_eq!(area.len(), 1, "{area:?}");
    assert_eq!(area[0][2], ".", "district {district}'s area: one provider offers {seats:?} seats");
    let keys: Vec<Vec<Option<String>>> = rows.iter().map(|r| vec![(!r[0].is_empty()).then(|| r[0].clone())]).collect();
    let hidden: Vec<bool> = rows.iter().map(|r| r[2] == ".").collect();
    assert!(
        hidden.iter().filter(|h| **h).count() > dominated || dominated > 1,
        "a complement protects a single dominated cell"
    );
    assert!(recoverable(&keys, &hidden).is_empty());
    // The rule follows the sum into a drill-across cube.
    let across = cli(
        dir,
        &[
            "query",
            "language_demand",
            "-m",
            "seats",
            "-m",
            "gap",
            "-d",
            "district",
            "-c",
            "month=2024-06",
            "-c",
            "start_month=2024",
            "-f",
            "csv",
        ],
    );
    for r in csv_rows(&across.stdout) {
        if rows.iter().any(|d| d[0] == r[0] && d[2] == ".") {
            assert_eq!(r[2..4], [".", "."], "district {} is dominated here too", r[0]);
        }
    }
}

#[test]
fn a_magnitude_over_few_records_is_suppressed_like_their_count() {
    let dir = demo_project();
    let args = [
        "query",
        "newcomers",
        "-m",
        "course_hours",
        "-m",
        "avg_course_hours",
        "-d",
        "district",
        "-d",
        "age",
        "-c",
        "month=2024-06",
        "-f",
        "csv",
    ];
    let shown = csv_rows(&cli(dir, &args).stdout);
    let truth = csv_rows(&cli(dir, &[&["--role", "statistik"], &args[..], &["-m", "records"]].concat()).stdout);
    let truth: HashMap<(String, String), (String, i64)> =
        truth.iter().map(|r| ((r[0].clone(), r[2].clone()), (r[4].clone(), r[6].parse().unwrap()))).collect();
    let mut small = 0;
    for r in &shown {
        let (hours, records) = &truth[&(r[0].clone(), r[2].clone())];
        // Hours over one or two records (the threshold) are that person's or two persons' hours.
        if (1..=2).contains(records) && !hours.is_empty() {
            small += 1;
            assert_eq!((r[4].as_str(), r[5].as_str()), (".", "."), "{r:?}: sum and average over {records} records");
        }
    }
    assert!(small >= 10, "the sample has small cells with course hours: {small}");
}

#[test]
fn members_show_a_role_its_levels_only_and_are_audited() {
    let dir = crate::support::project_copy();
    let refused = cli(dir.path(), &["--role", "jugendhilfe", "members", "district", "-l", "district", "-f", "csv"]);
    assert_eq!(refused.code, ExitCode::from(2));
    assert!(refused.stderr.contains("it may see district down to level area, not district"), "{}", refused.stderr);
    let listed = cli(dir.path(), &["--role", "jugendhilfe", "members", "district", "-f", "csv"]);
    assert_eq!(listed.code, ExitCode::SUCCESS, "{}", listed.stderr);
    let mut levels: Vec<String> = csv_rows(&listed.stdout).into_iter().map(|r| r[0].clone()).collect();
    levels.dedup();
    assert_eq!(levels, ["city", "area"], "the role's levels, not the districts");
    let all = cli(dir.path(), &["--role", "statistik", "members", "district", "-l", "district", "-f", "csv"]);
    assert_eq!(csv_rows(&all.stdout).len(), 18, "the eighteen districts of the sample dimension");
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let outcomes: Vec<(String, String)> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["kind"] == "members")
        .map(|e| (e["role"].as_str().unwrap().to_owned(), e["outcome"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [("jugendhilfe", "refused"), ("jugendhilfe", "answered"), ("statistik", "answered")];
    assert_eq!(outcomes, expected.map(|(r, o)| (r.to_owned(), o.to_owned())));
}
