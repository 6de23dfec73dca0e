//! Every schema file of the repository loads clean; invalid examples give exactly their expected diagnostics.

use kubus_model::{SchemaFile, SchemaKind, load_model};

#[test]
fn every_committed_schema_loads_clean() {
    let project = kubus::Project::open(crate::support::repo()).expect("the sample project's schemas are valid");
    let model = project.model();
    let names = |it: Vec<&str>| it.join(",");
    assert_eq!(
        names(model.dimensions().map(|d| d.name()).collect()),
        "age,age_to_90,course_participation,course_type,district,koeln_area,koeln_topic,language_level,nationality,provider,\
         region,residence_status,sex,time"
    );
    assert_eq!(
        names(model.cubes().map(|c| c.name()).collect()),
        "arrivals,course_offers,koeln_population,language_demand,newcomers,population_by_kreis,population_by_land,\
         zuweisungen"
    );
    let district = model.dimension("district").unwrap();
    assert_eq!(district.members(2).len(), 18);
    let kernstadt: Vec<&str> = district.members(2).iter().filter(|m| m.parent() == Some(0)).map(|m| m.key()).collect();
    assert_eq!(kernstadt, ["01", "02", "03", "04", "05", "06", "07", "08", "09"]);
    let age = model.dimension("age").unwrap();
    assert_eq!(age.members(0).len(), 12, "the twelve bands of education monitoring");
}

fn diagnostics(files: &[(&str, SchemaKind, &str)]) -> Vec<String> {
    let files: Vec<SchemaFile> = files
        .iter()
        .map(|(origin, kind, text)| SchemaFile { origin: (*origin).into(), text: (*text).into(), kind: *kind })
        .collect();
    match load_model(&files) {
        Ok(_) => Vec::new(),
        Err(kubus_model::Error::Invalid(d)) => d.0.iter().map(ToString::to_string).collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

const SEX: &str = r#"name = "sex"
label = "Geschlecht"

[[levels]]
name = "sex"
label = "Geschlecht"

[[members]]
level = "sex"
key = "m"
label = "männlich"
"#;

#[test]
fn invalid_examples_give_their_diagnostics() {
    let cube = r#"name = "c"
label = "C"

[[dimensions]]
name = "sex"
level = "gender"

[[dimensions]]
name = "age"

[[measures]]
name = "n"
label = "N"
aggregate = "sum"
"#;
    assert_eq!(
        diagnostics(&[("sex.toml", SchemaKind::Dimension, SEX), ("c.toml", SchemaKind::Cube, cube)]),
        [
            "c.toml:6: dimensions[0].level: unknown level 'gender' of dimension sex (valid: sex)",
            "c.toml:9: dimensions[1].dimension: unknown dimension 'age'",
            "c.toml:14: measures[0].column: aggregate 'sum' needs a column",
        ]
    );

    let dimension = r#"name = "d"
label = "D"
colour = "blue"
"#;
    assert_eq!(
        diagnostics(&[("d.toml", SchemaKind::Dimension, dimension)]),
        [
            "d.toml:3: unknown field `colour`, expected one of `name`, `label`, `label_en`, `kind`, `levels`, `members`, `years`, `max_age`, `open_top`, `bands`, `ordered`, `geo`, `additive`, `hierarchies`"
        ]
    );

    let members = r#"name = "d"
label = "D"

[[levels]]
name = "area"
label = "Area"

[[levels]]
name = "district"
label = "District"

[[members]]
level = "area"
key = "K"
label = "Kernstadt"

[[members]]
level = "district"
key = "01"
label = "Ost"
parent = "X"
"#;
    assert_eq!(
        diagnostics(&[("d.toml", SchemaKind::Dimension, members)]),
        ["d.toml:21: members[1].parent: unknown parent 'X' on level area"]
    );

    let source = r#"name = "s"
cube = "c"

[format]
type = "csv"
delimiter = ";;"

[fields.sex]
member = "Geschlecht"
number = "Zahl"
"#;
    let cube_ok = "name = \"c\"\nlabel = \"C\"\n\n[[dimensions]]\nname = \"sex\"\n\n[[measures]]\nname = \"n\"\nlabel = \"N\"\naggregate = \"count\"\n";
    assert_eq!(
        diagnostics(&[
            ("sex.toml", SchemaKind::Dimension, SEX),
            ("c.toml", SchemaKind::Cube, cube_ok),
            ("s.toml", SchemaKind::Source, source)
        ]),
        [
            "s.toml:6: format.delimiter: ';;' must be exactly one character",
            "s.toml:8: fields.sex: a field needs exactly one of these keys (valid: member, date, age_from + age_at, days_from + days_to, number, text, pseudonymise)",
        ]
    );
}

#[test]
fn invalid_layouts_unpivots_and_field_options_give_their_diagnostics() {
    let cube = "name = \"c\"\nlabel = \"C\"\n\n[[dimensions]]\nname = \"sex\"\n\n[[columns]]\nname = \"n\"\ntype = \"integer\"\n\n[[measures]]\nname = \"n\"\nlabel = \"N\"\naggregate = \"sum\"\ncolumn = \"n\"\n";
    let source = r##"name = "s"
cube = "c"
replace = ["month"]

[format]
type = "csv"

[layout]
header_lines = [2, 1]
footer = '^(_+$'

[unpivot]
columns = '^Bevölkerung / .+$'
value = "einwohner"

[fields.sex]
member = "#0"
missing = ["-"]

[fields.n]
number = "einwohner"
totals = ["Insgesamt"]
extract = '(\d+)-(\d+)'
"##;
    let got = diagnostics(&[
        ("sex.toml", SchemaKind::Dimension, SEX),
        ("c.toml", SchemaKind::Cube, cube),
        ("s.toml", SchemaKind::Source, source),
    ]);
    let expected_parts = [
        ("s.toml:9: layout.header_lines:", "ascending order"),
        ("s.toml:10: layout.footer:", "invalid regular expression"),
        ("s.toml:13: unpivot.columns:", "needs a named group"),
        ("s.toml:3: replace[0]:", "must name a dimension role of cube c (valid: sex)"),
        ("s.toml:16: fields.sex:", "a column position is #1, #2"),
        ("s.toml:20: fields.n:", "`totals` and `subtotals` belong to member fields"),
        ("s.toml:23: fields.n.extract:", "at most one group"),
    ];
    for (prefix, text) in expected_parts {
        assert!(got.iter().any(|d| d.starts_with(prefix) && d.contains(text)), "missing {prefix} … {text} in {got:#?}");
    }
    assert_eq!(got.len(), expected_parts.len(), "{got:#?}");
}

#[test]
fn invalid_measures_give_their_diagnostics() {
    let cube = r#"name = "c"
label = "C"

[[dimensions]]
name = "sex"

[[measures]]
name = "n"
label = "N"
aggregate = "count"
filter = ["sex<m", "sex=x"]

[[measures]]
name = "m"
label = "M"
aggregate = "count"
ratio = ["n", "n"]

[[measures]]
name = "r"
label = "R"
ratio = ["n", "later"]

[[measures]]
name = "s"
label = "S"
share = "m"
over = "age"

[[measures]]
name = "p"
label = "P"
previous = "r"
over_time = "last"

[[measures]]
name = "f"
label = "F"
from = "x.y"
"#;
    let across = r#"name = "a"
label = "A"
across = ["c", "nope"]

[[measures]]
name = "x"
label = "X"
from = "c.n"
"#;
    assert_eq!(
        diagnostics(&[
            ("sex.toml", SchemaKind::Dimension, SEX),
            ("c.toml", SchemaKind::Cube, cube),
            ("a.toml", SchemaKind::Cube, across)
        ]),
        [
            "c.toml:11: measures[0].filter[0]: dimension sex has no member order; use = or != instead of sex<m",
            "c.toml:11: measures[0].filter[1]: unknown member 'x' in sex",
            "c.toml:17: measures[1].ratio: a measure has exactly one of: aggregate, ratio, difference, share, previous, last_year, change, forecast",
            "c.toml:22: measures[2].ratio: unknown measure 'later': a derived measure uses measures declared before it",
            "c.toml:28: measures[3].over: unknown dimension role 'age' (valid: sex)",
            "c.toml:34: measures[4].over_time: `over_time` belongs to `aggregate`",
            "c.toml:33: measures[4].previous: this needs the cube to have exactly one role with a time dimension",
            "c.toml:39: measures[5].from: `from` belongs to drill-across cubes (with `across = [...]`)",
            // Cube c is invalid, so the drill-across cube cannot find it either.
            "a.toml:3: across[0]: unknown cube 'c'",
            "a.toml:3: across[1]: unknown cube 'nope'",
        ]
    );
}

#[test]
fn invalid_hierarchies_give_their_diagnostics() {
    let age = r#"name = "age"
label = "Alter"
kind = "age"
max_age = 20

[[levels]]
name = "band"
label = "Band"

[[levels]]
name = "year"
label = "Jahr"

[[bands]]
key = "all"
label = "alle"
from = 0

[[hierarchies]]
name = "band"
label = "again"

[[hierarchies]]
name = "minor"
label = "Minderjährig"

[[hierarchies.bands]]
key = "minor"
label = "minderjährig"
from = 0
to = 18
"#;
    let with_hierarchy = format!("{SEX}\n[[hierarchies]]\nname = \"x\"\nlabel = \"X\"\n");
    assert_eq!(
        diagnostics(&[("age.toml", SchemaKind::Dimension, age), ("sex.toml", SchemaKind::Dimension, &with_hierarchy)]),
        [
            "age.toml:20: hierarchies[0].name: level 'band' is declared twice",
            "age.toml:27: hierarchies[1].bands: age 18 lies in 0 bands; bands must cover 0..=20 exactly once",
            "sex.toml:13: hierarchies[0]: further hierarchies exist for time dimensions (kind = \"school_year\") and age dimensions (bands)",
        ]
    );
}

#[test]
fn special_categories_of_personal_data_need_a_stated_purpose() {
    let cube = "name = \"c\"\nlabel = \"C\"\n\n[[dimensions]]\nname = \"sex\"\n\n[[columns]]\nname = \"belief\"\ntype = \"string\"\n\n[[measures]]\nname = \"n\"\nlabel = \"N\"\naggregate = \"count\"\n";
    let source = |extra: &str| {
        format!(
            "name = \"s\"\ncube = \"c\"\n\n[format]\ntype = \"csv\"\n\n[fields.sex]\nmember = \"Geschlecht\"\n\n[fields.belief]\ntext = \"Religionszugehörigkeit\"\n{extra}"
        )
    };
    let load = |source: &str| {
        diagnostics(&[
            ("sex.toml", SchemaKind::Dimension, SEX),
            ("c.toml", SchemaKind::Cube, cube),
            ("s.toml", SchemaKind::Source, source),
        ])
    };
    assert_eq!(
        load(&source("")),
        [
            "s.toml:10: fields.belief: 'Religionszugehörigkeit' looks like a special category of personal data (religion, health, origin, ...; GDPR Art. 9): map it only with `special_category = \"<the purpose it serves>\"`, or drop it"
        ]
    );
    assert!(load(&source("special_category = \"Seelsorge-Angebote planen (Beschluss 2025/17)\"\n")).is_empty());
}

#[test]
fn invalid_rollups_give_their_diagnostics() {
    let cube = r#"name = "c"
label = "C"

[[dimensions]]
name = "sex"

[[measures]]
name = "n"
label = "N"
aggregate = "count"

[[rollups]]
name = "by sex"
levels = ["sex", "sex.gender", "age"]
measures = ["n", "m"]

[[rollups]]
name = "twice"
levels = ["sex", "sex"]

[[rollups]]
name = "twice"
levels = []
"#;
    let across = r#"name = "a"
label = "A"
across = ["c", "c2"]

[[measures]]
name = "x"
label = "X"
from = "c.n"

[[rollups]]
name = "r"
levels = []
"#;
    assert_eq!(
        diagnostics(&[
            ("sex.toml", SchemaKind::Dimension, SEX),
            ("c.toml", SchemaKind::Cube, cube),
            ("a.toml", SchemaKind::Cube, across)
        ]),
        [
            "c.toml:13: rollups[0].name: rollup name 'by sex' must be lower-case letters, digits and _ (it names a warehouse table)",
            "c.toml:14: rollups[0].levels[1]: 'sex.gender' is not a level at or above the one sex is recorded at (valid: sex.sex)",
            "c.toml:14: rollups[0].levels[2]: unknown dimension role 'age' (valid: sex)",
            "c.toml:15: rollups[0].measures[1]: unknown measure 'm'",
            "c.toml:19: rollups[1].levels[1]: role sex is listed twice",
            "c.toml:22: rollups[2].name: duplicate rollup 'twice'",
            "a.toml:3: across[0]: unknown cube 'c'",
            "a.toml:3: across[1]: unknown cube 'c2'",
            "a.toml:10: rollups: a drill-across cube has no facts to roll up: declare rollups on the cubes it combines",
        ]
    );
}

#[test]
fn a_custom_format_names_its_reader_and_only_it_takes_one() {
    let cube = "name = \"c\"\nlabel = \"C\"\n\n[[dimensions]]\nname = \"sex\"\n\n[[measures]]\nname = \"n\"\nlabel = \"N\"\naggregate = \"count\"\n";
    let stray = "name = \"s\"\ncube = \"c\"\n\n[format]\ntype = \"csv\"\nreader = \"fixed-width\"\n\n[fields.sex]\nmember = \"G\"\n";
    let nameless = "name = \"t\"\ncube = \"c\"\n\n[format]\ntype = \"custom\"\n\n[format.options]\nwidths = \"1\"\n\n[fields.sex]\nmember = \"G\"\n";
    let good = "name = \"u\"\ncube = \"c\"\n\n[format]\ntype = \"custom\"\nreader = \"fixed-width\"\n\n[format.options]\nwidths = \"1\"\n\n[fields.sex]\nmember = \"G\"\n";
    let got = diagnostics(&[
        ("sex.toml", SchemaKind::Dimension, SEX),
        ("c.toml", SchemaKind::Cube, cube),
        ("s.toml", SchemaKind::Source, stray),
        ("t.toml", SchemaKind::Source, nameless),
        ("u.toml", SchemaKind::Source, good),
    ]);
    let expected_parts = [
        ("s.toml:6: format.reader:", "belong to type = \"custom\", not to 'csv'"),
        ("t.toml:5: format.reader:", "names the reader that reads it"),
    ];
    for (prefix, text) in expected_parts {
        assert!(got.iter().any(|d| d.starts_with(prefix) && d.contains(text)), "missing {prefix} … {text} in {got:#?}");
    }
    assert_eq!(got.len(), expected_parts.len(), "{got:#?}");
}
