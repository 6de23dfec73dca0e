//! Attacks on the cell key method, as an analyst with many questions would try them on the sample warehouse:
//! two answers that differ by a few persons (by negation, sets, ranges of ages and months, measure filters, two
//! levels of one hierarchy, an average next to a sum) are subtracted to recover the count of those persons. Each
//! attack counts its instances (true difference 1 or 2, from the statistics office's exact numbers), its hits (the
//! published difference equals the true one), and the hits the noise allows by chance: for two cells with true
//! values a and b, the published difference is exact exactly when both get the same noise, with probability
//! Σ_d p_a(d)·p_b(d) from the perturbation table. The attacker must do no better than that, and can never tell a
//! hit from a miss. Consistency is checked alongside: the same cell has the same value in every query, format,
//! order, limit, with or without totals, and from a rollup or the facts.

use crate::support::{cli, csv_rows, demo_project, repo};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::ExitCode;

/// One measure of an answer, by the row's drilldown keys joined with `|` (totals have empty keys).
fn answer(dir: &Path, role: Option<&str>, args: &[&str], measure: &str) -> HashMap<String, i64> {
    decimals(dir, role, args, measure).into_iter().map(|(k, v)| (k, v.round() as i64)).collect()
}

/// [`answer`] for a measure with decimals.
fn decimals(dir: &Path, role: Option<&str>, args: &[&str], measure: &str) -> HashMap<String, f64> {
    let mut all: Vec<&str> = role.map(|r| vec!["--role", r]).unwrap_or_default();
    all.push("query");
    all.extend_from_slice(args);
    all.extend_from_slice(&["-f", "csv"]);
    let out = cli(dir, &all);
    assert_eq!(out.code, ExitCode::SUCCESS, "{all:?}: {}", out.stderr);
    let header: Vec<String> = out.stdout.lines().next().unwrap().split(',').map(str::to_owned).collect();
    let keys: Vec<usize> = (0..header.len()).filter(|&i| header.contains(&format!("{}_label", header[i]))).collect();
    let at = header.iter().position(|h| h == measure).unwrap_or_else(|| panic!("no {measure} in {header:?}"));
    csv_rows(&out.stdout)
        .into_iter()
        .filter(|r| !r[at].is_empty())
        // A count published as 0 next to others that are not shows the zero symbol.
        .map(|r| {
            (
                keys.iter().map(|&k| r[k].as_str()).collect::<Vec<_>>().join("|"),
                if r[at] == "–" { 0.0 } else { r[at].parse::<f64>().unwrap() },
            )
        })
        .collect()
}

/// The published and the true values of one measure of a query.
struct Pair {
    published: HashMap<String, i64>,
    truth: HashMap<String, i64>,
}

fn pair(dir: &Path, args: &[&str], measure: &str) -> Pair {
    Pair { published: answer(dir, None, args, measure), truth: answer(dir, Some("statistik"), args, measure) }
}

/// The noise distribution of each cell value, from the sample project's perturbation table.
struct Noise(kubus::PTable);

impl Noise {
    fn load() -> Noise {
        let text = std::fs::read_to_string(repo().join("ptables/d3_v2_small2.csv")).unwrap();
        Noise(kubus::PTable::parse("d3_v2_small2.csv", &text, 1).unwrap())
    }

    fn distribution(&self, value: i64) -> Vec<(i32, f64)> {
        if value <= 0 { vec![(0, 1.0)] } else { self.0.distribution(value as u32) }
    }

    /// The chance that two cells with true values `a` and `b` get the same noise.
    fn same_noise(&self, a: i64, b: i64) -> f64 {
        let pb = self.distribution(b);
        self.distribution(a).iter().map(|(d, p)| p * pb.iter().find(|(e, _)| e == d).map_or(0.0, |(_, q)| *q)).sum()
    }
}

/// The attacker's score in one class of attacks.
#[derive(Default)]
struct Tally {
    instances: usize,
    hits: usize,
    expected: f64,
    variance: f64,
}

impl Tally {
    /// Subtracts answer `b` from answer `a` cell by cell, where the truth differs by one or two persons.
    fn subtract(&mut self, noise: &Noise, a: &Pair, b: &Pair) {
        let keys: BTreeSet<&String> = a.truth.keys().chain(b.truth.keys()).collect();
        for key in keys {
            let (ta, tb) = (a.truth.get(key).copied().unwrap_or(0), b.truth.get(key).copied().unwrap_or(0));
            if !(1..=2).contains(&(ta - tb)) {
                continue;
            }
            let guess = a.published.get(key).copied().unwrap_or(0) - b.published.get(key).copied().unwrap_or(0);
            let p = noise.same_noise(ta, tb);
            self.instances += 1;
            self.hits += usize::from(guess == ta - tb);
            self.expected += p;
            self.variance += p * (1.0 - p);
        }
    }

    /// The attack was tried often enough, never recovered every count, and did no better than chance allows.
    fn check(&self, class: &str) {
        let rate = self.hits as f64 / self.instances.max(1) as f64;
        let allowed = self.expected + 3.0 * self.variance.sqrt() + 2.0;
        eprintln!(
            "{class}: {} instances, {} hits ({:.1} %), chance allows {:.1} ({:.1} %)",
            self.instances,
            self.hits,
            rate * 100.0,
            self.expected,
            self.expected / self.instances.max(1) as f64 * 100.0
        );
        assert!(self.instances >= 20, "{class}: the attack found only {} cells to recover", self.instances);
        assert!(self.hits < self.instances, "{class}: every count was recovered");
        assert!((self.hits as f64) <= allowed, "{class}: {} hits where chance allows {:.1}", self.hits, self.expected);
    }
}

const MONTHS: [&str; 4] = ["2023-09", "2024-03", "2024-06", "2024-12"];
const DISTRICTS: [&str; 5] = ["01", "04", "07", "11", "16"];

#[test]
fn differencing_by_negation_sets_and_ranges_recovers_no_person() {
    let dir = demo_project();
    let noise = Noise::load();
    let persons = |args: &[&str]| pair(dir, &[&["newcomers", "-m", "persons"], args].concat(), "persons");

    // The whole city by single years of age, against the city without one district.
    let mut negation = Tally::default();
    // Two districts against one of them.
    let mut sets = Tally::default();
    // Ages a and a+1 against age a, per district.
    let mut ages = Tally::default();
    // A range of months against the same range one month shorter.
    let mut months = Tally::default();
    for (i, month) in MONTHS.iter().enumerate() {
        let m = format!("month={month}");
        let all = persons(&["-d", "age", "-c", &m]);
        for (j, district) in DISTRICTS.iter().enumerate() {
            let without = persons(&["-d", "age", "-c", &m, "-c", &format!("district!={district}")]);
            negation.subtract(&noise, &all, &without);
            let other = DISTRICTS[(j + 1) % DISTRICTS.len()];
            let both = persons(&["-d", "age", "-c", &m, "-c", &format!("district={district},{other}")]);
            let one = persons(&["-d", "age", "-c", &m, "-c", &format!("district={district}")]);
            sets.subtract(&noise, &both, &one);
            let range = format!("month=2023-0{}..{month}", i + 1);
            let shorter = format!("month=2023-0{}..{}", i + 1, previous_month(month));
            let long = persons(&["-d", "age_band", "-d", "sex", "-c", &range, "-c", &format!("district={district}")]);
            let short =
                persons(&["-d", "age_band", "-d", "sex", "-c", &shorter, "-c", &format!("district={district}")]);
            months.subtract(&noise, &long, &short);
        }
        for age in [19, 23, 30, 41] {
            let two = persons(&["-d", "district", "-c", &m, "-c", &format!("age={age}..{}", age + 1)]);
            let one = persons(&["-d", "district", "-c", &m, "-c", &format!("age={age}")]);
            ages.subtract(&noise, &two, &one);
        }
    }
    negation.check("negation (district!=d)");
    sets.check("sets (district=a,b against a)");
    ages.check("ranges of ages");
    months.check("ranges of months");
}

fn previous_month(month: &str) -> String {
    let (year, m) = month.split_once('-').unwrap();
    let (year, m): (u32, u32) = (year.parse().unwrap(), m.parse().unwrap());
    if m == 1 { format!("{}-12", year - 1) } else { format!("{year}-{:02}", m - 1) }
}

#[test]
fn measure_filters_and_drill_across_recover_no_person() {
    let dir = demo_project();
    let noise = Noise::load();
    // Persons below B1 against the need (those of them in no course): the difference is those in a course.
    let mut filters = Tally::default();
    for month in MONTHS {
        let m = format!("month={month}");
        let args =
            |measure: &'static str| ["newcomers", "-m", measure, "-d", "district", "-d", "age_band", "-c", m.as_str()];
        let below = pair(dir, &args("persons_below_b1"), "persons_below_b1");
        let need = pair(dir, &args("need"), "need");
        filters.subtract(&noise, &below, &need);
    }
    filters.check("measure filters (below B1 against need)");

    // The drill-across cube publishes the very cells of the newcomers cube: the same need, never a second look.
    let across = answer(
        dir,
        None,
        &[
            "language_demand",
            "-m",
            "need",
            "-d",
            "district",
            "-d",
            "language_level",
            "-c",
            "month=2024-06",
            "-c",
            "start_month=2024",
        ],
        "need",
    );
    let direct = answer(
        dir,
        None,
        &["newcomers", "-m", "need", "-d", "district", "-d", "language_level", "-c", "month=2024-06"],
        "need",
    );
    assert!(!direct.is_empty());
    for (key, value) in &direct {
        assert_eq!(across.get(key).copied().unwrap_or(0), *value, "need at {key}");
    }
}

#[test]
fn two_levels_of_one_hierarchy_and_an_average_next_to_a_sum_recover_no_person() {
    let dir = demo_project();
    let noise = Noise::load();
    // An area's total against all its districts but one: the last district is the rest. The published rest
    // carries the noise of every district subtracted, so its chance is at most that of two cells.
    let mut levels = Tally::default();
    for month in MONTHS {
        let m = format!("month={month}");
        for age in ["18-24", "25-34", "45-54", "65-74"] {
            let cut = format!("age_band={age}");
            let areas =
                pair(dir, &["newcomers", "-m", "persons", "-d", "district.area", "-c", &m, "-c", &cut], "persons");
            let districts =
                pair(dir, &["newcomers", "-m", "persons", "-d", "district", "-c", &m, "-c", &cut], "persons");
            let area_of = |d: &str| if d.parse::<u32>().unwrap() >= 10 { "O" } else { "K" };
            for last in districts.truth.keys() {
                let rest = |values: &HashMap<String, i64>| -> i64 {
                    values.iter().filter(|(d, _)| *d != last && area_of(d) == area_of(last)).map(|(_, v)| v).sum()
                };
                let key = area_of(last).to_owned();
                let a = Pair {
                    published: HashMap::from([(last.clone(), areas.published.get(&key).copied().unwrap_or(0))]),
                    truth: HashMap::from([(last.clone(), areas.truth.get(&key).copied().unwrap_or(0))]),
                };
                let b = Pair {
                    published: HashMap::from([(last.clone(), rest(&districts.published))]),
                    truth: HashMap::from([(last.clone(), rest(&districts.truth))]),
                };
                levels.subtract(&noise, &a, &b);
            }
        }
    }
    levels.check("two levels of one hierarchy (area minus its other districts)");

    // Course hours and hours per record: their quotient is the count of records, which the noise protects too.
    let args = [
        "newcomers",
        "-m",
        "course_hours",
        "-m",
        "avg_course_hours",
        "-m",
        "records",
        "-d",
        "district",
        "-d",
        "age_band",
        "-c",
        "month=2024-06",
    ];
    let hours = decimals(dir, None, &args, "course_hours");
    let average = decimals(dir, None, &args, "avg_course_hours");
    let records = answer(dir, Some("statistik"), &args, "records");
    let (mut small, mut exact) = (0, 0);
    for (key, &truth) in &records {
        if !(1..=2).contains(&truth) {
            continue;
        }
        small += 1;
        if let (Some(&h), Some(&a)) = (hours.get(key), average.get(key))
            && a != 0.0
            && (h / a).round() as i64 == truth
        {
            exact += 1;
        }
    }
    assert!(small >= 10, "the sample has cells with one or two records: {small}");
    assert!(exact * 2 < small, "{exact} of {small} small record counts recovered from a sum and its average");
}

#[test]
fn differencing_sums_recovers_no_persons_value() {
    let dir = demo_project();
    // All districts against all but one, per age and month: where the two differ by one record, the difference of
    // the exact sums is that person's course hours. The published sums carry noise scaled to each cell's largest
    // value, so the difference is that person's hours only by chance (within half an hour).
    let (mut instances, mut hits) = (0, 0);
    for month in MONTHS {
        let m = format!("month={month}");
        let all = ["newcomers", "-m", "course_hours", "-m", "records", "-d", "age", "-c", m.as_str()];
        let (published_all, true_all) =
            (decimals(dir, None, &all, "course_hours"), decimals(dir, Some("statistik"), &all, "course_hours"));
        let records_all = answer(dir, Some("statistik"), &all, "records");
        for district in DISTRICTS {
            let not = format!("district!={district}");
            let rest: Vec<&str> = all.iter().copied().chain(["-c", not.as_str()]).collect();
            let (published_rest, true_rest) =
                (decimals(dir, None, &rest, "course_hours"), decimals(dir, Some("statistik"), &rest, "course_hours"));
            let records_rest = answer(dir, Some("statistik"), &rest, "records");
            for (age, &n) in &records_all {
                let hours = true_all.get(age).copied().unwrap_or(0.0) - true_rest.get(age).copied().unwrap_or(0.0);
                if n - records_rest.get(age).copied().unwrap_or(0) != 1 || hours == 0.0 {
                    continue;
                }
                let guess =
                    published_all.get(age).copied().unwrap_or(0.0) - published_rest.get(age).copied().unwrap_or(0.0);
                instances += 1;
                hits += usize::from((guess - hours).abs() < 0.5);
            }
        }
    }
    eprintln!("sums by negation: {instances} persons' course hours, {hits} recovered within half an hour");
    assert!(instances >= 20, "the attack found only {instances} persons");
    assert!(hits * 10 <= instances, "{hits} of {instances} persons' course hours recovered");

    // A sum over one record alone is never published as that record's value.
    let args =
        ["newcomers", "-m", "course_hours", "-m", "records", "-d", "district", "-d", "age", "-c", "month=2024-06"];
    let (published, truth) =
        (decimals(dir, None, &args, "course_hours"), decimals(dir, Some("statistik"), &args, "course_hours"));
    let records = answer(dir, Some("statistik"), &args, "records");
    let single: Vec<&String> =
        records.iter().filter(|(k, n)| **n == 1 && truth.get(*k).is_some_and(|h| *h > 4.0)).map(|(k, _)| k).collect();
    assert!(single.len() >= 10, "the sample has cells of one record with course hours: {}", single.len());
    for key in single {
        let (shown, value) = (published.get(key).copied(), truth[key]);
        // Shown, it lies 12.5 to 25 % away from the value (the sample's magnitude is 25 %); or not shown at all.
        assert!(
            shown.is_none_or(|s| ((s - value).abs() / value - 0.1875).abs() <= 0.0626),
            "{key}: {shown:?} for {value}"
        );
    }
}

#[test]
fn a_cell_has_one_value_in_every_answer() {
    let dir = demo_project();
    let base = ["newcomers", "-m", "persons", "-d", "district", "-d", "age_band", "-d", "sex", "-c", "month=2024-06"];
    let plain = answer(dir, None, &base, "persons");
    // With totals (three drilldowns), from the facts instead of a rollup, and as JSON: the same cells.
    let totals = answer(dir, None, &[&base[..], &["--totals"]].concat(), "persons");
    let facts = answer(dir, None, &[&base[..], &["--no-rollups"]].concat(), "persons");
    for (key, value) in &plain {
        assert_eq!(totals.get(key), Some(value), "{key} with totals");
        assert_eq!(facts.get(key), Some(value), "{key} from the facts");
    }
    assert_eq!(facts.len(), plain.len(), "the same cells from the facts and from a rollup");
    // A magnitude too: the same noise from a rollup's stored values as from the facts.
    let hours = [&base[..], &["-m", "course_hours", "-m", "avg_course_hours"]].concat();
    for measure in ["course_hours", "avg_course_hours"] {
        let (rolled, scanned) = (
            decimals(dir, None, &hours, measure),
            decimals(dir, None, &[&hours[..], &["--no-rollups"]].concat(), measure),
        );
        assert_eq!(rolled.len(), scanned.len(), "{measure}: the same cells");
        for (key, value) in &rolled {
            assert!(
                (value - scanned[key]).abs() < 1e-6,
                "{measure} {key}: {value} from a rollup, {} from the facts",
                scanned[key]
            );
        }
    }
    // At a rollup's own levels (month × district) each group is one stored cell, read as its stored count and key
    // instead of a union of bitmaps: the same values as from the facts.
    let at_cells = ["newcomers", "-m", "persons", "-d", "month", "-d", "district", "-c", "month.year=2024"];
    let explained = cli(dir, &[&["explain"], &at_cells[..]].concat());
    assert!(explained.stdout.contains("persons__n"), "{}", explained.stdout);
    let stored = answer(dir, None, &at_cells, "persons");
    assert_eq!(stored, answer(dir, None, &[&at_cells[..], &["--no-rollups"]].concat(), "persons"));
    assert!(stored.len() > 100, "{} cells", stored.len());
    // A total row is the cell of the query that asks for it alone.
    let by_district =
        answer(dir, None, &["newcomers", "-m", "persons", "-d", "district", "-c", "month=2024-06"], "persons");
    for (key, value) in &by_district {
        assert_eq!(totals.get(&format!("{key}||")), Some(value), "district {key} as a subtotal and on its own");
    }
    // Totals of counts and magnitudes from the facts (aggregated once at the finest grain, each grain then from
    // those cells): each total is the cell of the query that asks for it alone (one aggregation of the facts).
    let grains: [&[&str]; 3] = [&["-d", "district", "-d", "sex"], &["-d", "district"], &[]];
    let facts = ["newcomers", "-m", "records", "-m", "course_hours", "-m", "avg_course_hours"];
    let cut = ["-c", "month.year=2024", "--no-rollups"];
    let with_totals = [&facts[..], grains[0], &cut[..], &["--totals"]].concat();
    let explained = cli(dir, &[&["explain"], &with_totals[..]].concat());
    assert!(explained.stdout.contains("aggregated once at the query's finest grain"), "{}", explained.stdout);
    for measure in ["records", "course_hours", "avg_course_hours"] {
        let totals = decimals(dir, None, &with_totals, measure);
        let mut alone = 0;
        for (grain, pad) in grains.iter().zip(["", "|", "|"]) {
            for (key, value) in decimals(dir, None, &[&facts[..], grain, &cut[..]].concat(), measure) {
                let total = totals.get(&format!("{key}{pad}"));
                assert!(total.is_some_and(|t| (t - value).abs() < 1e-6), "{measure} {key}: {value}, {total:?}");
                alone += 1;
            }
        }
        assert_eq!(alone, totals.len(), "{measure}: every row of the totals is a cell asked alone");
    }
    let json = cli(dir, &[&["query"], &base[..], &["-f", "json"]].concat());
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json.stdout).unwrap();
    for r in &rows {
        let key = format!(
            "{}|{}|{}",
            r["district"].as_str().unwrap(),
            r["age_band"].as_str().unwrap(),
            r["sex"].as_str().unwrap()
        );
        assert_eq!(r["persons"].as_i64(), plain.get(&key).copied(), "{key} in JSON");
    }
    // No published row tells that a cell has persons while showing none: a cell published as 0 is no row.
    for (key, value) in &plain {
        assert_ne!(*value, 0, "{key} is shown as a row of 0 persons");
    }
    // No count is published as 1 or 2, and none is further than ±3 from the truth.
    let truth = answer(dir, Some("statistik"), &[&base[..], &["--totals"]].concat(), "persons");
    for (key, value) in &totals {
        assert!(!(1..=2).contains(value), "{key} published as {value}");
        assert!(
            (value - truth.get(key).copied().unwrap_or(0)).abs() <= 3,
            "{key}: {value} against {:?}",
            truth.get(key)
        );
    }
    assert!(totals.iter().any(|(k, v)| truth.get(k) != Some(v)), "the noise changes some cells");
}

#[test]
fn a_minimum_maximum_or_median_moves_with_itself_and_a_median_reads_the_facts() {
    // The sample has no minimum, maximum or median; a copy gets them, and a role protected by suppression. Their
    // noise is scaled to the value itself, so a published extreme or median is 12.5–25 % away from the true one
    // (the sample's magnitude is 25 %), never exact.
    let dir = crate::support::project_copy();
    let cube = dir.path().join("cube-schemas/cubes/newcomers.toml");
    let added = [("least_hours", "min"), ("most_hours", "max"), ("median_hours", "median")]
        .map(|(name, aggregate)| {
            format!("\n[[measures]]\nname = \"{name}\"\nlabel = \"{name}\"\naggregate = \"{aggregate}\"\ncolumn = \"course_hours\"\n")
        })
        .concat();
    let text = std::fs::read_to_string(&cube).unwrap();
    let at = text.find("\n# Rollups").expect("the cube's rollups follow its measures");
    std::fs::write(&cube, format!("{}{added}{}", &text[..at], &text[at..])).unwrap();
    let settings = dir.path().join("kubus.toml");
    let roles = std::fs::read_to_string(&settings).unwrap() + "\n[roles.amt]\nmethod = \"suppression\"\n";
    std::fs::write(&settings, roles).unwrap();
    assert_eq!(cli(dir.path(), &["demo"]).code, ExitCode::SUCCESS);
    let args = [
        "newcomers",
        "-m",
        "least_hours",
        "-m",
        "most_hours",
        "-m",
        "median_hours",
        "-d",
        "district",
        "-c",
        "month=2024-06",
        "-c",
        "in_course=ja",
    ];
    for measure in ["least_hours", "most_hours", "median_hours"] {
        let (published, truth) =
            (decimals(dir.path(), None, &args, measure), decimals(dir.path(), Some("statistik"), &args, measure));
        let moved: Vec<f64> = truth
            .iter()
            .filter(|(_, t)| **t > 0.0)
            .filter_map(|(k, t)| published.get(k).map(|p| (p - t).abs() / t))
            .collect();
        assert!(moved.len() >= 10, "{measure}: {} districts", moved.len());
        assert!(moved.iter().all(|m| (0.125 - 1e-9..=0.25 + 1e-9).contains(m)), "{measure}: moved by {moved:?}");
    }

    // No rollup holds a median, so it is computed from the facts, and says why.
    let only = cli(dir.path(), &[&["query", "--rollups-only"], &args[..]].concat());
    assert_ne!(only.code, ExitCode::SUCCESS);
    assert!(
        only.stderr.contains("stores no median_hours (no rollup can: a median needs every value)"),
        "{}",
        only.stderr
    );
    let declared = std::fs::read_to_string(&cube).unwrap()
        + "\n[[rollups]]\nname = \"medians\"\nlevels = [\"district\"]\nmeasures = [\"median_hours\"]\n";
    std::fs::write(&cube, declared).unwrap();
    let check = cli(dir.path(), &["check"]);
    assert_ne!(check.code, ExitCode::SUCCESS);
    assert!(check.stderr.contains("'median_hours' is a median, which cannot be aggregated again"), "{}", check.stderr);
    std::fs::write(&cube, format!("{}{added}{}", &text[..at], &text[at..])).unwrap();

    // Suppressed, a median over one or two courses is that person's or two persons' hours: never shown.
    let cells = [&["query"], &args[..], &["-m", "records", "-d", "age.age_band", "-f", "csv"]].concat();
    let suppressed = csv_rows(&cli(dir.path(), &[&["--role", "amt"], &cells[..]].concat()).stdout);
    let exact = csv_rows(&cli(dir.path(), &[&["--role", "statistik"], &cells[..]].concat()).stdout);
    // district, its label, age band, its label, least, most, median, records.
    let exact: HashMap<(String, String), (String, i64)> =
        exact.iter().map(|r| ((r[0].clone(), r[2].clone()), (r[6].clone(), r[7].parse().unwrap()))).collect();
    let (mut few, mut shown) = (0, 0);
    for r in &suppressed {
        let (median, records) = &exact[&(r[0].clone(), r[2].clone())];
        if *records <= 2 && !median.is_empty() {
            few += 1;
            assert_eq!(r[6], ".", "{r:?}: a median over {records} courses is that person's or two persons' hours");
        } else if r[6] == *median {
            shown += 1;
        }
    }
    assert!(few >= 3 && shown >= 10, "the sample has cells of one or two courses ({few}) and larger ones ({shown})");
}

#[test]
fn a_table_written_before_record_keys_were_stored_answers_the_same() {
    // Facts written by an older kubus have no record-key column: queries then compute each key from the person,
    // and further ingests add none. Made here as kubus makes a table for a cube without units (no distinct count),
    // whose first month is ingested before the cube gets its units back.
    let dir = crate::support::project_copy();
    let cube = dir.path().join("cube-schemas/cubes/newcomers.toml");
    let text = std::fs::read_to_string(&cube).unwrap();
    std::fs::write(
        &cube,
        text.replace("aggregate = \"count_distinct\"\ncolumn = \"person_key\"", "aggregate = \"count\""),
    )
    .unwrap();
    let ingest = |files: &str| {
        let out = cli(dir.path(), &["ingest", "--demo-key", "abh_newcomers", files]);
        assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    };
    ingest("sample-data/auslaenderbehoerde/neuzugewanderte_2023-01.csv");
    std::fs::write(&cube, text).unwrap();
    ingest("sample-data/auslaenderbehoerde");
    let stored = demo_project();
    let plan = |dir: &Path| cli(dir, &["explain", "newcomers", "-m", "records", "--no-rollups"]).stdout;
    assert!(plan(dir.path()).contains("kubus_published_count(?table?.person_key)"), "keys computed from the person");
    assert!(plan(stored).contains("kubus_published_count(?table?._record_key)"), "keys read from the facts");
    for month in ["month=2023-01", "month=2024-06"] {
        let base = [
            "newcomers",
            "-m",
            "persons",
            "-m",
            "records",
            "-m",
            "course_hours",
            "-m",
            "avg_course_hours",
            "-d",
            "district",
            "-d",
            "age_band",
            "-c",
            month,
            "--totals",
        ];
        for way in [&[][..], &["--no-rollups"][..]] {
            let args = [&base[..], way].concat();
            for measure in ["persons", "records", "course_hours", "avg_course_hours"] {
                let (old, new) = (decimals(dir.path(), None, &args, measure), decimals(stored, None, &args, measure));
                assert_eq!(old.len(), new.len(), "{measure} {way:?}: the same cells");
                for (key, value) in &new {
                    assert!(
                        old.get(key).is_some_and(|o| (o - value).abs() < 1e-6),
                        "{measure} {key} {way:?}: {:?} without stored keys, {value} with",
                        old.get(key)
                    );
                }
            }
        }
    }
}

#[test]
fn order_and_limit_sort_by_the_published_values() {
    let dir = demo_project();
    let args = ["newcomers", "-m", "persons", "-d", "district", "-d", "age_band", "-c", "month=2024-06"];
    let all = answer(dir, None, &args, "persons");
    let out = cli(dir, &[&["query"], &args[..], &["--order=-persons", "--limit", "12", "-f", "csv"]].concat());
    let rows = csv_rows(&out.stdout);
    assert_eq!(rows.len(), 12);
    let shown: Vec<i64> = rows.iter().map(|r| r[4].parse().unwrap()).collect();
    assert!(shown.windows(2).all(|w| w[0] >= w[1]), "sorted by the published values: {shown:?}");
    let mut expected: Vec<i64> = all.values().copied().collect();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(shown, expected[..12], "the limit keeps the largest published values");
    for r in &rows {
        assert_eq!(all.get(&format!("{}|{}", r[0], r[2])).copied(), r[4].parse().ok(), "the limit changes no value");
    }
}

#[test]
fn every_answer_says_how_it_is_protected() {
    let dir = demo_project();
    let out = cli(dir, &["query", "newcomers", "-m", "persons", "-d", "district.area", "-c", "month=2024-06"]);
    assert!(out.stdout.contains("Geheimhaltung newcomers: Cell-Key-Verfahren"), "{}", out.stdout);
    let out = cli(
        dir,
        &["--role", "statistik", "query", "newcomers", "-m", "persons", "-d", "district.area", "-c", "month=2024-06"],
    );
    assert!(out.stdout.contains("ungeschützte Zahlen"), "{}", out.stdout);
    let out = cli(
        dir,
        &["query", "newcomers", "-m", "persons", "-d", "district.area", "-c", "month=2024-06", "-f", "json-stat"],
    );
    let stat: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(stat["note"].to_string().contains("Cell-Key-Verfahren"), "{}", stat["note"]);
    let explain = cli(dir, &["explain", "newcomers", "-m", "persons", "-d", "district.area", "-c", "month=2024-06"]);
    assert!(explain.stdout.contains("counts perturbed by the cell key method"), "{}", explain.stdout);
}

#[test]
fn outputs_never_land_in_the_warehouse_or_on_the_audit_log() {
    let dir = crate::support::project_copy();
    let root = dir.path();
    assert_eq!(cli(root, &["demo"]).code, ExitCode::SUCCESS);
    let elsewhere = tempfile::tempdir().unwrap();
    let audit = root.join("audit.jsonl");
    let before = std::fs::read(&audit).unwrap();
    let query = ["query", "newcomers", "-m", "persons", "-d", "district", "-c", "month=2024-06"];
    let refused = |out: &Path, format: &str, what: &str| {
        let run = cli(root, &[&query[..], &["-f", format, "-o", out.to_str().unwrap()]].concat());
        assert_eq!(run.code, ExitCode::from(2), "{} must be refused", out.display());
        assert!(run.stderr.contains(&format!("refusing to write {}: {what}", out.display())), "{}", run.stderr);
    };
    let table = root.join("warehouse/facts/newcomers/part-new.parquet");
    refused(&table, "parquet", "it lies in the warehouse");
    assert!(!table.exists());
    refused(&audit, "csv", "it is the audit log");
    // Through links: one to the audit log, one dangling into the warehouse (writing would create its target).
    let link = elsewhere.path().join("answer.csv");
    std::os::unix::fs::symlink(&audit, &link).unwrap();
    refused(&link, "csv", "it is the audit log");
    let dangling = elsewhere.path().join("dangling.csv");
    std::os::unix::fs::symlink(root.join("warehouse/quarantine/new.csv"), &dangling).unwrap();
    refused(&dangling, "csv", "it lies in the warehouse");
    assert!(!root.join("warehouse/quarantine/new.csv").exists());
    let report = cli(
        root,
        &[
            "report",
            "run",
            "newcomers_monthly",
            "--period",
            "2024-06",
            "--out",
            root.join("warehouse/reports").to_str().unwrap(),
        ],
    );
    assert_eq!(report.code, ExitCode::from(2), "{}", report.stdout);
    assert!(std::fs::read(&audit).unwrap().starts_with(&before), "the audit log was only appended to");
    // Anywhere else is fine.
    let fine = elsewhere.path().join("persons.csv");
    assert_eq!(cli(root, &[&query[..], &["-f", "csv", "-o", fine.to_str().unwrap()]].concat()).code, ExitCode::SUCCESS);
    assert!(std::fs::read_to_string(&fine).unwrap().starts_with("district,district_label,persons"));
}

#[test]
fn another_project_file_cannot_weaken_the_warehouse() {
    let dir = crate::support::project_copy();
    let root = dir.path();
    assert_eq!(cli(root, &["demo"]).code, ExitCode::SUCCESS);
    let original = std::fs::read_to_string(root.join("kubus.toml")).unwrap();
    let query = ["query", "newcomers", "-m", "persons", "-c", "month=2024-06"];
    let with = |config: &str| {
        std::fs::write(root.join("kubus.toml"), config).unwrap();
        cli(root, &query)
    };
    let refused = |config: String, why: &str| {
        let out = with(&config);
        assert_eq!(out.code, ExitCode::from(2), "{why}: {}", out.stdout);
        assert!(out.stderr.contains("refusing to open the warehouse") && out.stderr.contains(why), "{}", out.stderr);
    };
    refused(
        original.replacen("method = \"cell_key\"", "method = \"suppression\"", 1),
        "method suppression instead of cell_key",
    );
    refused(original.replace("threshold = 2 ", "threshold = 1 "), "threshold 1 instead of 2");
    refused(
        original.replace("exempt = [\"course_offers\"", "exempt = [\"newcomers\", \"course_offers\""),
        "exempt cubes newcomers",
    );
    refused(original.clone() + "\n[roles.gast]\nbypass_disclosure = true\n", "roles that bypass protection: gast");
    refused(original.clone() + "\n[roles.gast]\nmethod = \"suppression\"\n", "for roles gast");
    // Another perturbation table: answers under two tables could be set against each other.
    let other = root.join("ptables/other.csv");
    let generated = cli(root, &["ptable", "--max-noise", "2", "--variance", "1", "-o", other.to_str().unwrap()]);
    assert_eq!(generated.code, ExitCode::SUCCESS, "{}", generated.stderr);
    refused(original.replace("ptables/d3_v2_small2.csv", "ptables/other.csv"), "perturbation table");
    // Stricter is fine; an intended change is adopted explicitly, and then holds.
    assert_eq!(with(&original.replace("threshold = 2 ", "threshold = 3 ")).code, ExitCode::SUCCESS);
    let weaker = original.replacen("method = \"cell_key\"", "method = \"suppression\"", 1);
    std::fs::write(root.join("kubus.toml"), &weaker).unwrap();
    let adopt = cli(root, &["protection", "--adopt"]);
    assert_eq!(adopt.code, ExitCode::SUCCESS, "{}", adopt.stderr);
    assert!(
        adopt.stdout.contains("\"method\":\"suppression\"") && adopt.stdout.contains("it recorded before"),
        "{}",
        adopt.stdout
    );
    assert_eq!(with(&weaker).code, ExitCode::SUCCESS);
}

#[test]
fn an_earlier_version_against_a_corrected_export_recovers_no_person() {
    let dir = crate::support::project_copy();
    let root = dir.path();
    assert_eq!(cli(root, &["demo"]).code, ExitCode::SUCCESS);
    let version = || {
        let project = kubus::Project::open(root).unwrap();
        tokio::runtime::Runtime::new().unwrap().block_on(project.version("newcomers")).unwrap().unwrap()
    };
    let before = version();
    // The authority corrects June: every tenth person of the month was listed by mistake.
    let name = "neuzugewanderte_2024-06.csv";
    let raw = std::fs::read(root.join("sample-data/auslaenderbehoerde").join(name)).unwrap();
    let mut data = 0;
    let mut kept: Vec<&[u8]> = Vec::new();
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"ABH-") {
            data += 1;
            if data % 10 == 0 {
                continue;
            }
        }
        kept.push(line);
    }
    let corrected = tempfile::tempdir().unwrap();
    std::fs::write(corrected.path().join(name), kept.concat()).unwrap();
    let ingest = cli(root, &["ingest", "--demo-key", "abh_newcomers", corrected.path().join(name).to_str().unwrap()]);
    assert_eq!(ingest.code, ExitCode::SUCCESS, "{}", ingest.stderr);
    assert!(version() > before);
    // The attacker subtracts the corrected answer from the earlier version's, cell by cell.
    let noise = Noise::load();
    let mut versions = Tally::default();
    let old = before.to_string();
    for drilldowns in
        [["-d", "age", "-d", "sex"], ["-d", "district", "-d", "age_band"], ["-d", "age", "-d", "district.area"]]
    {
        let now = [&["newcomers", "-m", "persons", "-c", "month=2024-06"][..], &drilldowns[..]].concat();
        let then = [&now[..], &["--as-of", old.as_str()]].concat();
        versions.subtract(&noise, &pair(root, &then, "persons"), &pair(root, &now, "persons"));
    }
    versions.check("--as-of against a corrected export");
}

#[test]
fn the_quarantine_and_explain_follow_the_role_and_every_command_is_audited() {
    let dir = crate::support::project_copy();
    let root = dir.path();
    assert_eq!(cli(root, &["demo"]).code, ExitCode::SUCCESS);
    let log = root.join("audit.jsonl");
    let seen = std::fs::read_to_string(&log).unwrap().lines().count();
    // Rejected lines hold raw values of persons (a birth date, a district as typed).
    for role in [None, Some("analyst")] {
        let args: Vec<&str> =
            role.map(|r| vec!["--role", r]).unwrap_or_default().into_iter().chain(["quarantine"]).collect();
        let out = cli(root, &args);
        assert_eq!(out.code, ExitCode::from(2), "{role:?}: {}", out.stdout);
        assert!(out.stderr.contains("rejected lines hold raw values of persons"), "{}", out.stderr);
        assert!(!out.stdout.contains("31.02.1991"));
    }
    let steward = cli(root, &["--role", "datenpflege", "quarantine", "-f", "csv"]);
    assert_eq!(steward.code, ExitCode::SUCCESS, "{}", steward.stderr);
    assert!(steward.stdout.contains("31.02.1991"), "{}", steward.stdout);
    // Explain checks the role as the query would.
    let out = cli(root, &["--role", "jugendhilfe", "explain", "newcomers", "-m", "persons", "-d", "district"]);
    assert_eq!(out.code, ExitCode::from(2));
    assert!(out.stderr.contains("it may see district down to level area"), "{}", out.stderr);
    let entries: Vec<serde_json::Value> =
        std::fs::read_to_string(&log).unwrap().lines().skip(seen).map(|l| serde_json::from_str(l).unwrap()).collect();
    let got: Vec<(&str, &str)> =
        entries.iter().map(|e| (e["kind"].as_str().unwrap(), e["outcome"].as_str().unwrap())).collect();
    assert_eq!(
        got,
        [("quarantine", "refused"), ("quarantine", "refused"), ("quarantine", "answered"), ("explain", "refused")]
    );
    assert_eq!(entries[2]["role"], "datenpflege");
}
