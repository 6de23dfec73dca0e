//! Measures that know how they add up, checked against the generator's own records (`sample-data/expected/`,
//! written by `generate.py`, never by kubus): stocks take the last snapshot instead of adding months, distinct
//! counts and ratios are computed at every level from their parts, shares and time comparisons join the right
//! cells.

use crate::support::{cli, demo_project, fixture, query};
use std::collections::BTreeMap;
use std::process::ExitCode;

/// The generator's per-month numbers: month → (records, persons, persons below B1, need).
fn months() -> BTreeMap<String, [u64; 4]> {
    fixture("newcomers_by_month.csv")
        .into_iter()
        .map(|r| (r[0].clone(), [1, 2, 3, 4].map(|i| r[i].parse().unwrap())))
        .collect()
}

fn number(cell: &str) -> Option<f64> {
    (!cell.is_empty()).then(|| cell.parse().unwrap_or_else(|_| panic!("not a number: {cell}")))
}

#[test]
fn a_stock_takes_the_last_snapshot_and_never_adds_up_months() {
    let dir = demo_project();
    let months = months();
    let records = |month: &str| months[month][0];
    // By quarter and year with totals: each cell is the records of its last month, the total that of 2024-12.
    let rows = query(dir, &["newcomers", "-m", "stock", "-m", "records", "-d", "month.quarter", "--totals"]);
    assert_eq!(rows.len(), 9, "eight quarters and the total: {rows:?}");
    for row in &rows[..8] {
        let (year, q) = row[0].split_once("-Q").unwrap();
        let q: u32 = q.parse().unwrap();
        assert_eq!(row[2], records(&format!("{year}-{:02}", q * 3)).to_string(), "quarter {}", row[0]);
        let in_quarter = |m: &str| m.starts_with(year) && m[5..].parse::<u32>().unwrap().div_ceil(3) == q;
        let added: u64 = months.iter().filter(|(m, _)| in_quarter(m)).map(|(_, v)| v[0]).sum();
        assert_eq!(row[3], added.to_string(), "records, unlike the stock, add up the quarter's months");
        assert_ne!(row[2], row[3], "a stock over three months is not their sum");
    }
    assert_eq!((rows[8][1].as_str(), rows[8][2].clone()), ("Insgesamt", records("2024-12").to_string()));

    // A cut to a range ends at its last month, also when time is not drilled at all.
    let rows = query(dir, &["newcomers", "-m", "stock", "-c", "month=2023-03..2023-07"]);
    assert_eq!(rows, [[records("2023-07").to_string()]]);
    // By district the stock adds up: the districts of one month sum to that month's records.
    let rows = query(dir, &["newcomers", "-m", "stock", "-d", "district", "-c", "month.year=2024"]);
    let sum: u64 = rows.iter().map(|r| r[2].parse::<u64>().unwrap()).sum();
    assert_eq!(sum, records("2024-12"));
}

#[test]
fn distinct_counts_filters_and_ratios_are_right_at_every_level() {
    let dir = demo_project();
    // Per month: the filtered distinct counts against the generator's records.
    let rows = query(dir, &["newcomers", "-m", "persons", "-m", "persons_below_b1", "-m", "need", "-d", "month"]);
    let months = months();
    assert_eq!(rows.len(), months.len());
    for row in &rows {
        let [_, persons, below, need] = months[&row[0]];
        assert_eq!(row[2..5], [persons.to_string(), below.to_string(), need.to_string()], "month {}", row[0]);
    }
    // Per year and over both years: distinct persons are not the sum of the months, and the share below B1 is
    // the ratio of the distinct counts at that level, not an average of finer ratios.
    let rows = query(
        dir,
        &[
            "newcomers",
            "-m",
            "persons",
            "-m",
            "persons_below_b1",
            "-m",
            "share_below_b1",
            "-d",
            "month.year",
            "--totals",
        ],
    );
    let years = fixture("persons_by_year.csv");
    assert_eq!(rows.len(), years.len());
    for (row, year) in rows.iter().zip(&years) {
        assert_eq!(row[2..4], year[1..3], "year {}", year[0]);
        let share = year[2].parse::<f64>().unwrap() / year[1].parse::<f64>().unwrap();
        assert!((number(&row[4]).unwrap() - share).abs() < 1e-12, "share {} vs {share}", row[4]);
    }
    assert_eq!(rows[2][5], "true", "the last row is the total");
    // In every hierarchy and at every subtotal, the ratio is that of its own row's parts.
    for drill in [["-d", "school_year"], ["-d", "course_age"], ["-d", "district.area"]] {
        let args = [
            &["newcomers", "-m", "persons", "-m", "persons_below_b1", "-m", "share_below_b1"][..],
            &drill[..],
            &["-d", "sex", "--totals"],
        ]
        .concat();
        for row in query(dir, &args) {
            let (persons, below) = (number(&row[4]).unwrap(), number(&row[5]).unwrap());
            assert!((number(&row[6]).unwrap() - below / persons).abs() < 1e-12, "{drill:?}: {row:?}");
        }
    }
}

#[test]
fn shares_are_of_the_total_over_their_dimension() {
    let dir = demo_project();
    let expected = fixture("persons_by_district_2024-06.csv");
    let total: f64 = expected.iter().map(|r| r[1].parse::<f64>().unwrap()).sum();
    let rows = query(
        dir,
        &["newcomers", "-m", "persons", "-m", "persons_share", "-d", "district", "-c", "month=2024-06", "--totals"],
    );
    for (row, e) in rows.iter().zip(&expected) {
        assert_eq!(row[0], e[0]);
        let share = e[1].parse::<f64>().unwrap() / total;
        assert!((number(&row[3]).unwrap() - share).abs() < 1e-12, "district {}: {} vs {share}", e[0], row[3]);
    }
    assert_eq!(rows.last().unwrap()[3], "1.0", "the total is all of itself");
}

#[test]
fn time_comparisons_look_at_the_previous_period_and_last_year() {
    let dir = demo_project();
    let months = months();
    let persons = |m: &str| months.get(m).map(|v| v[1] as i64);
    let rows = query(
        dir,
        &[
            "newcomers",
            "-m",
            "persons",
            "-m",
            "persons_previous",
            "-m",
            "persons_change",
            "-m",
            "persons_change_yoy_pct",
            "-d",
            "month",
        ],
    );
    // From the facts too (read once, the earlier periods taken from the same aggregation), not only from rollups.
    let mut facts = vec!["newcomers", "-m", "persons", "-m", "persons_previous", "-m", "persons_change"];
    facts.extend(["-m", "persons_change_yoy_pct", "-d", "month", "--no-rollups"]);
    assert_eq!(query(dir, &facts), rows, "the facts give what the rollups give");
    let keys: Vec<&String> = months.keys().collect();
    for (i, row) in rows.iter().enumerate() {
        let now = persons(&row[0]).unwrap();
        let previous = i.checked_sub(1).and_then(|p| persons(keys[p]));
        assert_eq!(number(&row[3]).map(|v| v as i64), previous, "previous of {}", row[0]);
        assert_eq!(number(&row[4]).map(|v| v as i64), previous.map(|p| now - p), "change of {}", row[0]);
        let year_before = format!("{}-{}", row[0][..4].parse::<i32>().unwrap() - 1, &row[0][5..]);
        let yoy = persons(&year_before).map(|then| (now - then) as f64 / then as f64 * 100.0);
        match (number(&row[5]), yoy) {
            (Some(got), Some(want)) => assert!((got - want).abs() < 1e-9, "{}: {got} vs {want}", row[0]),
            (got, want) => assert_eq!(got, want, "{}: no month a year before, no change", row[0]),
        }
    }
    // Without a time drilldown, the previous period of a cut is the range of the same length before it.
    let rows = query(dir, &["newcomers", "-m", "persons_previous", "-c", "month=2024-06"]);
    assert_eq!(rows, [[persons("2024-05").unwrap().to_string()]]);
    // Neither drilled nor cut, there is no period to compare.
    let out = cli(dir, &["query", "newcomers", "-m", "persons_change"]);
    assert_eq!(out.code, ExitCode::from(2));
    assert!(
        out.stderr.contains("measure persons_change compares periods: drill down by month or cut it to a period"),
        "{}",
        out.stderr
    );
}

#[test]
fn demand_against_supply_combines_two_cubes_without_fanning_out() {
    let dir = demo_project();
    let expected: BTreeMap<(String, String), (i64, i64)> = fixture("need_seats_2024-06.csv")
        .into_iter()
        .map(|r| ((r[0].clone(), r[1].clone()), (r[2].parse().unwrap(), r[3].parse().unwrap())))
        .collect();
    let args = [
        "language_demand",
        "-m",
        "need",
        "-m",
        "seats",
        "-m",
        "gap",
        "-m",
        "coverage",
        "-d",
        "district",
        "-d",
        "language_level",
    ];
    let rows = query(dir, &[&args[..], &["-c", "month=2024-06", "-c", "start_month=2024", "--totals"]].concat());
    let mut seen = 0;
    for row in rows.iter().filter(|r| r[8] == "false") {
        let (need, seats): (i64, i64) = (row[4].parse().unwrap(), row[5].parse().unwrap());
        match expected.get(&(row[0].clone(), row[2].clone())) {
            Some(&want) => {
                assert_eq!((need, seats), want, "district {} level {}", row[0], row[2]);
                seen += 1;
            }
            // A district and level that only has filtered-out newcomers: a cell with nothing on either side.
            None => assert_eq!((need, seats), (0, 0), "district {} level {} is not in the fixture", row[0], row[2]),
        }
        assert_eq!(row[6], (seats - need).to_string(), "gap");
        assert_eq!(number(&row[7]), (need != 0).then(|| seats as f64 / need as f64), "coverage");
    }
    assert_eq!(seen, expected.len(), "every district and level with need or seats appears, on either side alone too");
    // Per district (with the total) the two sides are summed at the district grain before they are joined.
    let rows = query(
        dir,
        &[&args[..5], &["-d", "district", "-c", "month=2024-06", "-c", "start_month=2024", "--totals"]].concat(),
    );
    for row in &rows {
        let in_district = |k: &(String, String)| row[0].is_empty() || k.0 == row[0];
        let need: i64 = expected.iter().filter(|(k, _)| in_district(k)).map(|(_, v)| v.0).sum();
        let seats: i64 = expected.iter().filter(|(k, _)| in_district(k)).map(|(_, v)| v.1).sum();
        assert_eq!(row[2..4], [need.to_string(), seats.to_string()], "district {:?}", row[0]);
    }
    assert_eq!(rows.last().unwrap()[1], "Insgesamt");
    // Drilling by a role only one cube has would repeat the other cube's numbers: refused.
    let out = cli(dir, &["query", "language_demand", "-m", "gap", "-d", "month", "-c", "start_month=2024"]);
    assert_eq!(out.code, ExitCode::from(2), "{}", out.stdout);
    assert!(out.stderr.contains("unknown dimension or level 'month'"), "{}", out.stderr);
}

#[test]
fn further_hierarchies_roll_up_the_same_facts() {
    let dir = demo_project();
    // Age: the integration-course groups and minor/adult, against the generator's ages at the reference date.
    let groups = fixture("persons_by_age_group_2024-06.csv");
    for hierarchy in ["course_age", "majority"] {
        let rows = query(dir, &["newcomers", "-m", "persons", "-d", hierarchy, "-c", "month=2024-06"]);
        let want: Vec<[&str; 2]> =
            groups.iter().filter(|g| g[0] == hierarchy).map(|g| [g[1].as_str(), g[2].as_str()]).collect();
        let got: Vec<[&str; 2]> = rows.iter().map(|r| [r[0].as_str(), r[2].as_str()]).collect();
        assert_eq!(got, want, "{hierarchy}");
    }
    let rows = query(dir, &["newcomers", "-m", "persons", "-c", "age=16-26", "-c", "month=2024-06"]);
    assert_eq!(rows[0][0], groups.iter().find(|g| g[1] == "16-26").unwrap()[2], "a cut on a band of another hierarchy");

    // Time: school years run from August to July; a stock takes the school year's last month with facts.
    let months = months();
    let rows = query(dir, &["newcomers", "-m", "stock", "-m", "persons", "-d", "school_year", "--totals"]);
    let keys: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(keys, ["2022/23", "2023/24", "2024/25", ""]);
    assert_eq!(rows[0][2], months["2023-07"][0].to_string());
    assert_eq!(rows[1][2], months["2024-07"][0].to_string());
    assert_eq!(rows[2][2], months["2024-12"][0].to_string(), "the last month with facts");
    let by_range = query(dir, &["newcomers", "-m", "persons", "-c", "month=2023-08..2024-07"]);
    assert_eq!(rows[1][3], by_range[0][0], "school year 2023/24 is August 2023 to July 2024");
    let by_cut = query(dir, &["newcomers", "-m", "persons", "-c", "school_year=2023/2024"]);
    assert_eq!(by_cut, by_range, "a cut by school year (here by its alias)");
    // The previous period of a school year is the school year before.
    let rows = query(dir, &["newcomers", "-m", "persons", "-m", "persons_previous", "-d", "school_year"]);
    assert_eq!(rows[1][3], rows[0][2]);
    // A cube that records years cannot be drilled by school year.
    let out = cli(dir, &["query", "population_by_land", "-m", "inhabitants", "-d", "school_year"]);
    assert!(
        out.stderr.contains("records reference_date by year, which does not roll up into level school_year"),
        "{}",
        out.stderr
    );
}

#[test]
fn members_and_explain_show_the_cube_in_its_own_terms() {
    let dir = demo_project();
    let out = cli(dir, &["members", "age", "--level", "course_age", "-f", "csv"]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let keys: Vec<String> = crate::support::csv_rows(&out.stdout).into_iter().map(|r| r[1].clone()).collect();
    assert_eq!(keys, ["u16", "16-26", "27+"]);
    // A single year has a parent in each hierarchy.
    let out = cli(dir, &["members", "age", "-f", "csv"]);
    let sixteen =
        crate::support::csv_rows(&out.stdout).into_iter().find(|r| r[0] == "age_year" && r[1] == "16").unwrap();
    assert_eq!(sixteen[5], "age_band=15-17; course_age=16-26; majority=minor");
    let out = cli(dir, &["members", "district", "-l", "district", "-f", "csv"]);
    let rows = crate::support::csv_rows(&out.stdout);
    assert_eq!(rows.len(), 18);
    assert_eq!((rows[0][1].as_str(), rows[0][5].as_str()), ("01", "area=K"));
    let out = cli(dir, &["members", "district", "-l", "quarter"]);
    assert_eq!(out.code, ExitCode::from(2));
    assert!(out.stderr.contains("unknown level 'quarter'"), "{}", out.stderr);

    let explain = [
        "explain",
        "newcomers",
        "-m",
        "share_below_b1",
        "-m",
        "stock",
        "-d",
        "district.area",
        "-c",
        "month=2024-01..2024-06",
        "--totals",
    ];
    let facts = cli(dir, &[&explain[..], &["--no-rollups"]].concat());
    assert_eq!(facts.code, ExitCode::SUCCESS, "{}", facts.stderr);
    assert!(facts.stdout.contains("facts (rollups not used: --no-rollups)"), "{}", facts.stdout);
    let routed = cli(dir, &explain);
    assert_eq!(routed.code, ExitCode::SUCCESS, "{}", routed.stderr);
    for expected in [
        "rollup month_district\n",
        "month_district (432 rows): chosen: the smallest that answers",
        "month_district_age_sex_level (10388 rows): answers, but is larger",
        "district at level area (Stadtbereich) → column area; the rollup holds district",
    ] {
        assert!(routed.stdout.contains(expected), "missing {expected:?} in\n{}", routed.stdout);
    }
    // No rollup holds nationalities: explain says why for each, and rollups-only refuses instead of scanning.
    let by_nationality = ["newcomers", "-m", "persons", "-d", "nationality", "-c", "month=2024-06"];
    let out = cli(dir, &[&["explain"][..], &by_nationality].concat());
    for expected in [
        "facts (no rollup answers this query)",
        "month_district (432 rows): rolls up nationality, which the query drills",
    ] {
        assert!(out.stdout.contains(expected), "missing {expected:?} in\n{}", out.stdout);
    }
    let out = cli(dir, &[&["query"][..], &by_nationality, &["--rollups-only"]].concat());
    assert_eq!(out.code, ExitCode::from(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("no rollup answers this query") && out.stderr.contains("rolls up nationality"),
        "{}",
        out.stderr
    );
    for expected in [
        "district at level area (Stadtbereich) → column area; facts record district",
        "month keeps 6 of",
        "share_below_b1 = persons_below_b1 / persons",
        "persons_below_b1 = count_distinct(person_key) where language_level<B1  (part)",
        "stock = count(*), last snapshot over time",
        "grains: (area), ()",
        "DataFusion logical plan (optimized):",
        "DataFusion physical plan:",
        "AggregateExec",
    ] {
        assert!(facts.stdout.contains(expected), "missing {expected:?} in\n{}", facts.stdout);
    }
}
