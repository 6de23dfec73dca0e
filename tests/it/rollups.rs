//! Rollups answer exactly what the facts answer. Property test: random facts in a scratch cube with every kind of
//! measure, random rollups over random levels, random queries (drilldowns at any level, cuts of every kind,
//! totals); each query is answered from the facts one grain at a time (`RollupUse::Never`, `per_grain`), from the
//! facts aggregated once at its finest grain (where it has several grains), and as routed, and the three answers
//! must be equal cell for cell. A second ingest makes a new version: its rollups are built, and the first version's are
//! still the ones read `--as-of` it.

use crate::support::{Rng, repo};
use datafusion::arrow::array::{Array, Float64Array};
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
fn scratch_project(dir: &Path, rng: &mut Rng, model: &Model) {
    let schemas = dir.join("cube-schemas");
    for sub in ["cubes", "sources", "dimensions"] {
        std::fs::create_dir_all(schemas.join(sub)).unwrap();
    }
    for (_, dim) in ROLES {
        let file = format!("{dim}.toml");
        std::fs::copy(repo().join("cube-schemas/dimensions").join(&file), schemas.join("dimensions").join(&file))
            .unwrap();
    }
    std::fs::write(dir.join("kubus.toml"), "name = \"p\"\n\n[roles.statistik]\nbypass_disclosure = true\n").unwrap();
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
    std::fs::write(schemas.join("sources/s.toml"), source).unwrap();
}

/// Random facts over a few months of 2023 and 2024, persons drawn from a small pool so that they repeat.
fn facts_csv(path: &Path, rng: &mut Rng, model: &Model, rows: usize) {
    let keys = |dim: &str| -> Vec<String> {
        let d = model.dimension(dim).unwrap();
        d.members(d.finest()).iter().map(|m| m.key().to_owned()).collect()
    };
    let (districts, sexes, levels, providers) =
        (keys("district"), keys("sex"), keys("language_level"), keys("provider"));
    let mut text = String::from("person;month;district;age;sex;level;provider;hours;n\n");
    for _ in 0..rows {
        let month = 1 + rng.next(24);
        let hours = if rng.chance(15) { String::new() } else { format!("{}.{}", rng.next(40), rng.next(10)) };
        text += &format!(
            "p{};{}-{:02}-01;{};{};{};{};{};{hours};{}\n",
            rng.next(60),
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
fn random_query(rng: &mut Rng, model: &Model, at: Option<&Rollup>) -> Query {
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
fn cells(answer: &kubus::Answer) -> Vec<Vec<String>> {
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
        facts_csv(&first, &mut rng, &model, rows);
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
        // A second ingest is a new version with rollups of its own; the first version's still answer as of it.
        let second = dir.path().join("second.csv");
        facts_csv(&second, &mut rng, &model, 100);
        let report = project.ingest("s", &[second], &mut |_| {}).await.unwrap();
        assert_eq!(report.version, Some(1));
        assert!(!report.rollups.is_empty());
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
    }
    assert!(routed * 4 >= asked, "the random queries must exercise the rollups: {routed} of {asked} routed");
    assert!(once * 10 >= asked, "and the finest grain: {once} of {asked} aggregated once from the facts");
}
