//! Rollups answer exactly what the facts answer. Property test: random facts in a scratch cube with every kind of
//! measure, random rollups over random levels, random queries (drilldowns at any level, cuts of every kind,
//! totals); each query is answered from the facts one grain at a time (`RollupUse::Never`, `per_grain`), from the
//! facts aggregated once at its finest grain (where it has several grains), and as routed, and the three answers
//! must be equal cell for cell. Further ingests make new versions: an append's rollups are merged from the earlier
//! version's with the added facts' cells, a replacing ingest's keep the earlier rows of the periods it did not
//! touch (where they hold the time role; the others are built from all the facts), and every one equals a build
//! from all the facts, stored row for stored row; the earlier versions' rollups are still the ones read `--as-of`
//! them.

use crate::support::{Rng, copy_dir, repo};
use datafusion::arrow::array::{Array, Float64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::array_value_to_string;
use kubus::{Project, Query, QueryOptions, RollupUse};
use kubus_model::{Model, Rollup};
use std::path::Path;

const ROLES: [(&str, &str); 6] = [
    ("month", "time"),
    ("district", "district"),
    ("age", "age"),
    ("sex", "sex"),
    ("language_level", "language_level"),
    ("provider", "provider"),
];

const MEASURES: &str = r#"
[[measures]]
name = "records"
label = "records"
aggregate = "count"

[[measures]]
name = "persons"
label = "persons"
aggregate = "count_distinct"
column = "person"

[[measures]]
name = "below_b1"
label = "below B1"
aggregate = "count_distinct"
column = "person"
filter = ["language_level<B1"]

[[measures]]
name = "hours"
label = "hours"
aggregate = "sum"
column = "hours"

[[measures]]
name = "hours_avg"
label = "hours per record"
aggregate = "avg"
column = "hours"

[[measures]]
name = "n_min"
label = "n min"
aggregate = "min"
column = "n"

[[measures]]
name = "n_max"
label = "n max"
aggregate = "max"
column = "n"

[[measures]]
name = "stock"
label = "stock"
aggregate = "count"
over_time = "last"

[[measures]]
name = "share_b1"
label = "share below B1"
ratio = ["below_b1", "persons"]

[[measures]]
name = "persons_share"
label = "share of all districts"
share = "persons"
over = "district"

[[measures]]
name = "records_share"
label = "share of all districts' records"
share = "records"
over = "district"

[[measures]]
name = "persons_previous"
label = "persons before"
previous = "persons"

[[measures]]
name = "records_yoy"
label = "records change on last year"
change = "records"
against = "last_year"
"#;

const MEASURE_NAMES: [&str; 13] = [
    "records",
    "persons",
    "below_b1",
    "hours",
    "hours_avg",
    "n_min",
    "n_max",
    "stock",
    "share_b1",
    "persons_share",
    "records_share",
    "persons_previous",
    "records_yoy",
];

/// A scratch project: the sample's dimensions, a cube `c` with every kind of measure, and random rollups.
pub(crate) fn scratch_project(dir: &Path, rng: &mut Rng, model: &Model) {
    let schemas = dir.join("cube-schemas");
    for sub in ["cubes", "sources", "dimensions"] {
        std::fs::create_dir_all(schemas.join(sub)).unwrap();
    }
    for (_, dim) in ROLES {
        let file = format!("{dim}.toml");
        std::fs::copy(repo().join("cube-schemas/dimensions").join(&file), schemas.join("dimensions").join(&file))
            .unwrap();
    }
    // Rollups kept for three versions: the fourth ingest removes the first version's.
    let settings = "name = \"p\"\n\n[rollups]\nkeep_versions = 3\n\n[roles.statistik]\nbypass_disclosure = true\n";
    std::fs::write(dir.join("kubus.toml"), settings).unwrap();
    let mut cube = String::from("name = \"c\"\nlabel = \"c\"\n");
    for (role, dim) in ROLES {
        cube += &format!("\n[[dimensions]]\nname = \"{role}\"\ndimension = \"{dim}\"\n");
    }
    cube += "\n[[columns]]\nname = \"person\"\ntype = \"string\"\n\n[[columns]]\nname = \"hours\"\ntype = \"decimal\"\n\n[[columns]]\nname = \"n\"\ntype = \"integer\"\n";
    cube += MEASURES;
    for r in 0..1 + rng.next(3) {
        let mut levels = Vec::new();
        for (role, dim) in ROLES {
            if rng.chance(80) {
                let dim = model.dimension(dim).unwrap();
                let level = *rng.pick(&dim.levels_above(dim.finest()));
                levels.push(format!("\"{role}.{}\"", dim.levels()[level].name()));
            }
        }
        cube += &format!("\n[[rollups]]\nname = \"r{r}\"\nlevels = [{}]\n", levels.join(", "));
        if rng.chance(40) {
            let measures: Vec<String> =
                MEASURE_NAMES.iter().filter(|_| rng.chance(50)).map(|m| format!("\"{m}\"")).collect();
            cube += &format!("measures = [{}]\n", measures.join(", "));
        }
    }
    std::fs::write(schemas.join("cubes/c.toml"), cube).unwrap();
    let mut source = String::from(
        "name = \"s\"\ncube = \"c\"\n\n[format]\ntype = \"csv\"\ndelimiter = \";\"\ndate_formats = [\"%Y-%m-%d\"]\n",
    );
    for (field, body) in [
        ("person", "text = \"person\""),
        ("month", "date = \"month\""),
        ("district", "member = \"district\""),
        ("age", "member = \"age\""),
        ("sex", "member = \"sex\""),
        ("language_level", "member = \"level\""),
        ("provider", "member = \"provider\""),
        ("hours", "number = \"hours\""),
        ("n", "number = \"n\""),
    ] {
        source += &format!("\n[fields.{field}]\n{body}\n");
    }
    std::fs::write(schemas.join("sources/s.toml"), &source).unwrap();
    // The same export as a correction: its months' facts replace those already in the cube.
    let source = source.replace("name = \"s\"\n", "name = \"t\"\nreplace = [\"month\"]\n");
    std::fs::write(schemas.join("sources/t.toml"), source).unwrap();
}

/// Random facts over `months` (counted from January 2023, at most 24), persons drawn from a small pool so that
/// they repeat.
pub(crate) fn facts_csv(
    path: &Path,
    rng: &mut Rng,
    model: &Model,
    rows: usize,
    persons: std::ops::Range<u64>,
    months: std::ops::Range<u64>,
) {
    let keys = |dim: &str| -> Vec<String> {
        let d = model.dimension(dim).unwrap();
        d.members(d.finest()).iter().map(|m| m.key().to_owned()).collect()
    };
    let (districts, sexes, levels, providers) =
        (keys("district"), keys("sex"), keys("language_level"), keys("provider"));
    let mut text = String::from("person;month;district;age;sex;level;provider;hours;n\n");
    for _ in 0..rows {
        let month = 1 + months.start + rng.next(months.end - months.start);
        let hours = if rng.chance(15) { String::new() } else { format!("{}.{}", rng.next(40), rng.next(10)) };
        text += &format!(
            "p{};{}-{:02}-01;{};{};{};{};{};{hours};{}\n",
            persons.start + rng.next(persons.end - persons.start),
            2022 + month.div_ceil(12),
            (month - 1) % 12 + 1,
            rng.pick(&districts),
            rng.next(80),
            rng.pick(&sexes),
            rng.pick(&levels),
            rng.pick(&providers),
            rng.next(1000),
        );
    }
    std::fs::write(path, text).unwrap();
}

/// A cut of a random kind on a random level of a role, naming members by key.
fn random_cut(rng: &mut Rng, model: &Model) -> String {
    let (role, dim_name) = *rng.pick(&ROLES);
    let dim = model.dimension(dim_name).unwrap();
    let level = *rng.pick(&dim.levels_above(dim.finest()));
    let members = keys(dim, level);
    let target = format!("{role}.{}", dim.levels()[level].name());
    let (a, b) = (rng.next(members.len() as u64) as usize, rng.next(members.len() as u64) as usize);
    match rng.next(5) {
        0 => format!("{target}!={}", members[a]),
        1 => format!("{target}={}..{}", members[a.min(b)], members[a.max(b)]),
        2 if dim.is_ordered() => format!("{target}<={}", members[a]),
        // One member: where it is at a rollup's level, each group is one of its cells.
        3 => format!("{target}={}", members[a]),
        _ => format!("{target}={},{}", members[a], members[b]),
    }
}

/// The keys of a level's members, for time those of the years the facts are in.
fn keys(dim: &kubus_model::Dimension, level: usize) -> Vec<&str> {
    let mut members: Vec<&str> = dim.members(level).iter().map(|m| m.key()).collect();
    if dim.name() == "time" {
        members.retain(|k| k.contains("2023") || k.contains("2024") || k.starts_with("2022/"));
    }
    members
}

/// A random query; with `at`, it drills exactly the levels that rollup holds or cuts some of them to one member
/// (each group one of its cells) or to two (each group two cells).
pub(crate) fn random_query(rng: &mut Rng, model: &Model, at: Option<&Rollup>) -> Query {
    let mut measures: Vec<&str> = (0..1 + rng.next(3))
        .map(|_| *rng.pick(&MEASURE_NAMES))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut drilldowns = Vec::new();
    let mut roles: Vec<(&str, &str)> = ROLES.to_vec();
    for _ in 0..rng.next(4) {
        let (role, dim_name) = roles.remove(rng.next(roles.len() as u64) as usize);
        let dim = model.dimension(dim_name).unwrap();
        let level = *rng.pick(&dim.levels_above(dim.finest()));
        drilldowns.push(format!("{role}.{}", dim.levels()[level].name()));
    }
    let mut cuts: Vec<String> = Vec::new();
    if let Some(rollup) = at {
        // The distinct count whose stored counts such a query reads.
        if !measures.contains(&"persons") {
            measures.insert(0, "persons");
        }
        drilldowns.clear();
        for (role, level) in rollup.levels() {
            let (_, dim) = ROLES.iter().find(|(r, _)| r == role).unwrap();
            let dim = model.dimension(dim).unwrap();
            let target = format!("{role}.{}", dim.levels()[*level].name());
            let members = keys(dim, *level);
            let (a, b) = (rng.next(members.len() as u64) as usize, rng.next(members.len() as u64) as usize);
            match rng.next(4) {
                0 => cuts.push(format!("{target}={}", members[a])),
                1 => cuts.push(format!("{target}={},{}", members[a], members[b])),
                _ => drilldowns.push(target),
            }
        }
    }
    cuts.extend((0..rng.next(3)).map(|_| random_cut(rng, model)));
    serde_json::from_value(serde_json::json!({"cube": "c", "measures": measures, "drilldowns": drilldowns, "cuts": cuts, "totals": rng.chance(50)})).unwrap()
}

/// A random query with totals of measures that the facts answer at its finest grain once: no distinct counts, no
/// time comparisons; a share over a drilled role makes it aggregate twice even without totals.
fn finest_grain_query(rng: &mut Rng, model: &Model) -> Query {
    const ONCE: [&str; 7] = ["records", "hours", "hours_avg", "n_min", "n_max", "stock", "records_share"];
    let mut query = serde_json::to_value(random_query(rng, model, None)).unwrap();
    let measures: std::collections::BTreeSet<&str> = (0..1 + rng.next(3)).map(|_| *rng.pick(&ONCE)).collect();
    query["measures"] = serde_json::json!(measures);
    query["totals"] = serde_json::json!(true);
    serde_json::from_value(query).unwrap()
}

/// An answer's cells as text, decimals to 9 significant digits (sums of decimals may differ in the last bits).
pub(crate) fn cells(answer: &kubus::Answer) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for batch in &answer.result.batches {
        for i in 0..batch.num_rows() {
            let row = batch
                .columns()
                .iter()
                .map(|c| match c.as_any().downcast_ref::<Float64Array>() {
                    Some(f) if f.is_valid(i) => format!("{:.8e}", f.value(i)),
                    _ => array_value_to_string(c, i).unwrap(),
                })
                .collect();
            rows.push(row);
        }
    }
    rows
}

/// Answers a query from the facts and as routed; both must agree (or fail with the same message). Returns
/// whether a rollup answered.
/// How a query was answered: whether a stored rollup answered, and whether the facts were aggregated once at its
/// finest grain.
#[derive(Default)]
struct Read {
    routed: bool,
    finest_grain: bool,
}

/// Asks a query from the facts one grain at a time, from the facts at its finest grain once (where it has several
/// grains), and as routed; the three answers must be equal.
async fn same_answer(project: &Project, query: &Query, as_of: Option<u64>) -> Read {
    let options = |rollups, per_grain| QueryOptions {
        as_of,
        role: Some("statistik".into()),
        rollups,
        per_grain,
        ..Default::default()
    };
    let facts = project.query(query, &options(RollupUse::Never, true)).await;
    let once = project.query(query, &options(RollupUse::Never, false)).await;
    let routed = project.query(query, &options(RollupUse::Prefer, false)).await;
    let json = serde_json::to_string(query).unwrap();
    match (facts, once, routed) {
        (Ok(facts), Ok(once), Ok(routed)) => {
            assert!(facts.routes.iter().all(|r| r.rollup.is_none() && !r.finest_grain));
            assert!(once.routes.iter().all(|r| r.rollup.is_none()));
            assert_eq!(cells(&facts), cells(&once), "{json} from the facts at its finest grain");
            assert_eq!(cells(&facts), cells(&routed), "{json} answered from {:?}", routed.routes);
            assert_eq!(facts.versions, routed.versions, "{json}");
            assert_eq!(facts.versions, once.versions, "{json}");
            Read {
                routed: routed.routes.iter().any(|r| r.rollup.is_some()),
                finest_grain: once.routes.iter().any(|r| r.finest_grain),
            }
        }
        (Err(a), Err(b), Err(c)) => {
            assert_eq!(a.to_string(), b.to_string(), "{json}");
            assert_eq!(a.to_string(), c.to_string(), "{json}");
            Read::default()
        }
        (a, b, c) => panic!(
            "{json}: facts {:?}, at the finest grain {:?}, routed {:?}",
            a.map(|x| x.routes),
            b.map(|x| x.routes),
            c.map(|x| x.routes)
        ),
    }
}

/// The rollups directory holds the manifests of `versions` and the files they name, nothing else.
fn kept_rollups_only(project: &Project, versions: &[u64]) {
    let dir = project.warehouse_dir().unwrap().join("rollups/c");
    let mut want: Vec<String> = versions.iter().map(|v| format!("v{v}.json")).collect();
    for v in versions {
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(format!("v{v}.json"))).unwrap()).unwrap();
        for stored in manifest.as_array().unwrap() {
            want.push(stored["file"].as_str().unwrap().to_owned());
            want.extend(stored["dictionaries"].as_object().unwrap().values().map(|f| f.as_str().unwrap().to_owned()));
        }
    }
    want.sort();
    want.dedup();
    let mut have: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    have.sort();
    assert_eq!(have, want);
}

/// Every rollup of an ingest is stored, merged from the earlier version's given (or built from all the facts).
fn merged_from(report: &kubus::IngestReport, version: Option<u64>) {
    assert_eq!(report.rollup_problem, None);
    assert!(!report.rollups.is_empty());
    for r in &report.rollups {
        assert_eq!(r.merged_from, version, "{}: merged from {:?}, expected {version:?}", r.name, r.merged_from);
    }
}

/// The stored rows of every rollup of the latest version (bitmaps as the distinct counts and keys stored beside
/// them), sorted, by rollup name.
async fn stored_rows(project: &Project) -> Vec<(String, Vec<Vec<String>>)> {
    let ctx = datafusion::prelude::SessionContext::new();
    let mut all = Vec::new();
    for status in project.rollup_status(Some("c")).unwrap() {
        let stored = status.stored.expect("every rollup is built");
        let path = project.warehouse_dir().unwrap().join("rollups/c").join(&stored.file);
        let df = ctx.read_parquet(path.display().to_string(), Default::default()).await.unwrap();
        let mut rows = Vec::new();
        for batch in df.collect().await.unwrap() {
            for i in 0..batch.num_rows() {
                let row = batch
                    .columns()
                    .iter()
                    .filter(|c| !matches!(c.data_type(), DataType::Binary | DataType::BinaryView))
                    .map(|c| match c.as_any().downcast_ref::<Float64Array>() {
                        Some(f) if f.is_valid(i) => format!("{:.8e}", f.value(i)),
                        _ => array_value_to_string(c, i).unwrap(),
                    })
                    .collect();
                rows.push(row);
            }
        }
        rows.sort();
        all.push((stored.name, rows));
    }
    all
}

/// The rollups stored for the latest version equal, row for row, a build from all its facts (in a copy of the
/// project that keeps no rollups of earlier versions to merge from).
async fn stored_as_built(project: &Project, dir: &Path) {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir, copy.path());
    let warehouse = project.warehouse_dir().unwrap().strip_prefix(dir.canonicalize().unwrap()).unwrap();
    let rollups = copy.path().join(warehouse).join("rollups/c");
    std::fs::remove_dir_all(&rollups).unwrap();
    let built = Project::open(copy.path()).unwrap();
    assert!(built.build_rollups("c").await.unwrap().iter().all(|r| r.merged_from.is_none()));
    let (stored, built) = (stored_rows(project).await, stored_rows(&built).await);
    assert_eq!(stored.len(), built.len());
    for ((name, rows), (_, expected)) in stored.iter().zip(&built) {
        let first = rows.iter().zip(expected).position(|(a, b)| a != b);
        assert!(
            first.is_none() && rows.len() == expected.len(),
            "rollup {name} as stored ({} rows) against a build ({} rows), first difference: {:?} against {:?}",
            rows.len(),
            expected.len(),
            first.map(|i| &rows[i]),
            first.map(|i| &expected[i]),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_through_rollups_equal_answers_from_the_facts() {
    let model = Project::open(repo()).unwrap().model().clone();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut asked, mut routed, mut once) = (0, 0, 0);
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        scratch_project(dir.path(), &mut rng, &model);
        let first = dir.path().join("first.csv");
        let rows = 300 + rng.next(300) as usize;
        facts_csv(&first, &mut rng, &model, rows, 0..60, 0..24);
        let project = Project::open(dir.path()).unwrap();
        let report = project.ingest("s", &[first], &mut |_| {}).await.unwrap();
        assert_eq!(report.rollup_problem, None);
        assert_eq!(
            report.rollups.len(),
            project.model().cube("c").unwrap().rollups().len(),
            "every rollup is built after the ingest"
        );
        let rollups = project.model().cube("c").unwrap().rollups();
        let mut first_asked = Vec::new();
        for i in 0..40 {
            // Half at a rollup's own levels, where distinct counts are read from the cells' stored counts.
            let at = (i % 2 == 0).then(|| &rollups[rng.next(rollups.len() as u64) as usize]);
            asked += 1;
            let query = random_query(&mut rng, &model, at);
            let read = same_answer(&project, &query, None).await;
            (routed, once) = (routed + usize::from(read.routed), once + usize::from(read.finest_grain));
            first_asked.push(query);
        }
        for _ in 0..15 {
            asked += 1;
            let read = same_answer(&project, &finest_grain_query(&mut rng, &model), None).await;
            (routed, once) = (routed + usize::from(read.routed), once + usize::from(read.finest_grain));
        }
        // An appended export (new persons among them) is a new version whose rollups are merged from the first
        // version's; the first version's still answer as of it.
        let second = dir.path().join("second.csv");
        facts_csv(&second, &mut rng, &model, 100, 40..90, 0..24);
        let report = project.ingest("s", &[second], &mut |_| {}).await.unwrap();
        assert_eq!(report.version, Some(1));
        merged_from(&report, Some(0));
        for as_of in [Some(0), None] {
            for _ in 0..5 {
                asked += 1;
                let read = same_answer(&project, &random_query(&mut rng, &model, None), as_of).await;
                (routed, once) = (routed + usize::from(read.routed), once + usize::from(read.finest_grain));
            }
            // Asked again: as of the first version from the plans prepared for its rollups, at the latest from
            // the new version's (a plan prepared for the first version's cells must not answer for the second).
            for query in &first_asked[..20] {
                asked += 1;
                let read = same_answer(&project, query, as_of).await;
                (routed, once) = (routed + usize::from(read.routed), once + usize::from(read.finest_grain));
            }
        }
        stored_as_built(&project, dir.path()).await;
        // A correction replaces three months: a rollup that holds the month keeps the earlier rows of the other
        // months and builds those three again, the others are built from all the facts. The next append merges.
        let third = dir.path().join("third.csv");
        facts_csv(&third, &mut rng, &model, 60, 0..100, 6..9);
        let report = project.ingest("t", &[third], &mut |_| {}).await.unwrap();
        assert_eq!((report.version, report.replaced.is_empty(), report.rollup_problem), (Some(2), false, None));
        for r in &report.rollups {
            let rollup = rollups.iter().find(|x| x.name() == r.name).unwrap();
            let holds_month = rollup.levels().iter().any(|(role, _)| role == "month");
            assert_eq!(r.merged_from, holds_month.then_some(1), "{}", r.name);
        }
        stored_as_built(&project, dir.path()).await;
        let fourth = dir.path().join("fourth.csv");
        facts_csv(&fourth, &mut rng, &model, 60, 80..130, 20..24);
        let report = project.ingest("s", &[fourth], &mut |_| {}).await.unwrap();
        assert_eq!(report.version, Some(3));
        merged_from(&report, Some(2));
        let pruned = report.pruned.as_ref().unwrap();
        assert_eq!((&pruned.versions[..], pruned.files > 0), (&[0][..], true), "{pruned:?}");
        kept_rollups_only(&project, &[1, 2, 3]);
        // As of the first version, from its facts now; as of the third, from its rollups still.
        for as_of in [Some(0), Some(2), None] {
            for i in 0..8 {
                let at = (i % 2 == 0).then(|| &rollups[rng.next(rollups.len() as u64) as usize]);
                asked += 1;
                let read = same_answer(&project, &random_query(&mut rng, &model, at), as_of).await;
                (routed, once) = (routed + usize::from(read.routed), once + usize::from(read.finest_grain));
            }
        }
        stored_as_built(&project, dir.path()).await;
    }
    assert!(routed * 4 >= asked, "the random queries must exercise the rollups: {routed} of {asked} routed");
    assert!(once * 10 >= asked, "and the finest grain: {once} of {asked} aggregated once from the facts");
}

#[test]
fn rollups_are_kept_for_at_least_the_latest_version() {
    let text = std::fs::read_to_string(repo().join("kubus.toml")).unwrap();
    assert!(text.contains("keep_versions = 12"), "the sample project states the default");
    let config =
        kubus::ProjectConfig::parse("kubus.toml", &text.replace("keep_versions = 12", "keep_versions = 2")).unwrap();
    assert_eq!(config.rollup_versions, 2);
    let refused = kubus::ProjectConfig::parse("kubus.toml", &text.replace("keep_versions = 12", "keep_versions = 0"));
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("rollups.keep_versions: keep_versions must be at least 1"), "{message}");
}
