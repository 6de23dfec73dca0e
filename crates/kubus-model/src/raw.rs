//! Raw serde shapes of the schema files, exactly as written (`deny_unknown_fields`), with spans for diagnostics.
//! Nothing here is resolved or checked beyond TOML syntax; `load` lowers these into the validated model.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDimension {
    pub name: S<String>,
    pub label: String,
    pub label_en: Option<String>,
    pub kind: Option<S<String>>,
    pub levels: Vec<S<RawLevel>>,
    #[serde(default)]
    pub members: Vec<S<RawMember>>,
    pub years: Option<S<[i32; 2]>>,
    pub max_age: Option<S<u32>>,
    /// The oldest single year also holds everyone older ("90 Jahre und mehr").
    #[serde(default)]
    pub open_top: bool,
    #[serde(default)]
    pub bands: Vec<S<RawBand>>,
    #[serde(default)]
    pub ordered: bool,
    /// Members are places (for JSON-stat's `geo` role).
    #[serde(default)]
    pub geo: bool,
    /// Whether sums over its members mean anything (`false`: its categories overlap).
    pub additive: Option<bool>,
    /// Further hierarchies over the finest level, each with one level of its own.
    #[serde(default)]
    pub hierarchies: Vec<S<RawHierarchy>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHierarchy {
    /// The hierarchy's name, also the name of its level.
    pub name: S<String>,
    pub label: String,
    pub label_en: Option<String>,
    /// Time dimensions: how the level is generated (`school_year`).
    pub kind: Option<S<String>>,
    /// Age dimensions: the level's bands.
    #[serde(default)]
    pub bands: Vec<S<RawBand>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLevel {
    pub name: S<String>,
    pub label: String,
    pub label_en: Option<String>,
    /// Where the level's members are drawn on a map.
    pub geometry: Option<S<RawGeometry>>,
}

/// A GeoJSON file of the project whose features are a level's members.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeometry {
    pub file: String,
    pub key: String,
    pub pad: Option<usize>,
    pub attribution: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMember {
    pub level: S<String>,
    pub key: S<String>,
    pub label: String,
    pub label_en: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub parent: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBand {
    pub key: S<String>,
    pub label: String,
    pub label_en: Option<String>,
    pub from: u32,
    /// Exclusive upper bound; absent for the open top band ("75 and older").
    pub to: Option<u32>,
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCube {
    pub name: S<String>,
    pub label: String,
    pub label_en: Option<String>,
    pub description: Option<String>,
    /// A drill-across cube: measures of these cubes over their shared dimension roles; it has no facts.
    #[serde(default)]
    pub across: Vec<S<String>>,
    #[serde(default)]
    pub dimensions: Vec<S<RawCubeDimension>>,
    #[serde(default)]
    pub columns: Vec<S<RawColumn>>,
    pub measures: Vec<S<RawMeasure>>,
    /// Pre-aggregates of the facts that queries are routed to.
    #[serde(default)]
    pub rollups: Vec<S<RawRollup>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRollup {
    pub name: S<String>,
    /// `role` (at its recorded level) or `role.level` (a coarser one); roles not listed are rolled up.
    pub levels: Vec<S<String>>,
    /// The measures it can answer (derived ones by their parts); default: every aggregate measure of the cube.
    pub measures: Option<Vec<S<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCubeDimension {
    /// The role name; also the fact column.
    pub name: S<String>,
    /// The conformed dimension; defaults to the role name.
    pub dimension: Option<S<String>>,
    /// The level at which facts are recorded; defaults to the finest.
    pub level: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawColumn {
    pub name: S<String>,
    #[serde(rename = "type")]
    pub ty: S<String>,
    /// For numbers: the least and the greatest value a fact may hold; one outside is rejected at ingest.
    pub min: Option<S<f64>>,
    pub max: Option<S<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMeasure {
    pub name: S<String>,
    pub label: String,
    pub label_en: Option<String>,
    pub description: Option<String>,
    /// In a drill-across cube: `cube.measure`, a measure of one of the cubes it combines.
    pub from: Option<S<String>>,
    /// An aggregation over facts: count, sum, min, max, avg, median, count_distinct.
    pub aggregate: Option<S<String>>,
    pub column: Option<S<String>>,
    /// Cuts the aggregated facts must pass (a filtered measure).
    #[serde(default)]
    pub filter: Vec<S<String>>,
    /// `sum` (default) or `last`: a stock that takes the last snapshot of a time range instead of adding up.
    pub over_time: Option<S<String>>,
    /// For sums: the role whose members contribute (e.g. `provider`); a cell one contributor dominates is suppressed.
    pub dominance: Option<S<String>>,
    /// `[numerator, denominator]`: a ratio of two measures.
    pub ratio: Option<S<[String; 2]>>,
    /// `[minuend, subtrahend]`: the difference of two measures.
    pub difference: Option<S<[String; 2]>>,
    /// A measure's share of its total over the dimension role `over`.
    pub share: Option<S<String>>,
    pub over: Option<S<String>>,
    /// A measure's value in the previous period.
    pub previous: Option<S<String>>,
    /// A measure's value in the same period one year earlier.
    pub last_year: Option<S<String>>,
    /// A measure's change `against` the previous period or last year, absolute or in `percent`.
    pub change: Option<S<String>>,
    pub against: Option<S<String>>,
    #[serde(default)]
    pub percent: bool,
    /// A forecast of a measure over the time dimension: the next `horizon` periods with a prediction interval of
    /// `interval` percent.
    pub forecast: Option<S<String>>,
    pub horizon: Option<S<u32>>,
    pub interval: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub name: S<String>,
    pub cube: S<String>,
    pub description: Option<String>,
    pub format: S<RawFormat>,
    pub layout: Option<S<RawLayout>>,
    pub unpivot: Option<S<RawUnpivot>>,
    #[serde(default)]
    pub replace: Vec<S<String>>,
    pub on_overlap: Option<S<String>>,
    /// How far a published total may be from the sum of its rounded detail lines: a number, or a text `"0.5%"`.
    pub total_tolerance: Option<S<RawTolerance>>,
    #[serde(default)]
    pub drop: Vec<String>,
    pub fields: BTreeMap<String, S<RawField>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawTolerance {
    Absolute(f64),
    Relative(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLayout {
    pub header_lines: Option<S<Vec<usize>>>,
    pub column_numbers_line: Option<S<usize>>,
    pub footer: Option<S<String>>,
    #[serde(default)]
    pub skip: Vec<S<RawSkip>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSkip {
    pub first_cell: Option<S<String>>,
    pub any_cell: Option<S<String>>,
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUnpivot {
    pub columns: S<String>,
    pub value: S<String>,
    pub total: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFormat {
    #[serde(rename = "type")]
    pub ty: S<String>,
    pub encoding: Option<S<String>>,
    pub delimiter: Option<S<String>>,
    pub sheet: Option<String>,
    pub record_column: Option<String>,
    pub reader: Option<S<String>>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    pub decimal_separator: Option<S<String>>,
    pub thousands_separator: Option<S<String>>,
    #[serde(default)]
    pub date_formats: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    pub member: Option<String>,
    pub date: Option<String>,
    pub age_from: Option<String>,
    pub age_at: Option<String>,
    pub days_from: Option<String>,
    pub days_to: Option<String>,
    pub number: Option<String>,
    pub text: Option<String>,
    pub pseudonymise: Option<Vec<String>>,
    pub if_empty: Option<String>,
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    pub extract: Option<S<String>>,
    pub pad_zeros: Option<usize>,
    #[serde(default)]
    pub totals: Vec<String>,
    #[serde(default)]
    pub subtotals: bool,
    /// Balance lines: `"Jahresergebnis = Erträge - Aufwendungen"`.
    #[serde(default)]
    pub balances: Vec<S<String>>,
    #[serde(default)]
    pub missing: Vec<String>,
    pub decimal_separator: Option<S<String>>,
    pub thousands_separator: Option<S<String>>,
    /// The stated purpose for which a special category of personal data (religion, health, ...) is mapped.
    pub special_category: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProject {
    pub name: String,
    pub warehouse: Option<String>,
    pub schemas: Option<String>,
    pub pseudonymisation: Option<RawPseudonymisation>,
    pub disclosure: Option<RawDisclosure>,
    /// The append-only log of queries, relative to the project (default `audit.jsonl`).
    pub audit_log: Option<String>,
    #[serde(default)]
    pub roles: BTreeMap<String, RawRole>,
    /// Sets of cubes a role may be given by name.
    #[serde(default)]
    pub topics: BTreeMap<String, RawTopic>,
    /// User groups of `kubus serve`: the role each acts as, and the sources it may upload to.
    #[serde(default)]
    pub groups: BTreeMap<String, RawGroup>,
    pub server: Option<RawServer>,
    pub rollups: Option<RawRollups>,
    pub demo: Option<RawDemo>,
    /// How a warehouse in a bucket is reached: settings of the S3 client (`endpoint`, `region`, `allow_http`, …),
    /// and `work`, this machine's folder for staged facts.
    #[serde(default)]
    pub storage: BTreeMap<String, toml::Value>,
    /// Where cube queries over the facts run: here, or on a Ballista cluster.
    pub engine: Option<RawEngine>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    /// `ballista://host:port`: the cluster's scheduler.
    pub cluster: Option<String>,
    /// Facts smaller than this many megabytes are read here even with a cluster.
    pub local_below_mb: Option<u64>,
    /// Seconds a query on the cluster may take.
    pub timeout_s: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRollups {
    /// How many of the latest facts versions keep their rollups.
    pub keep_versions: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTopic {
    pub description: Option<String>,
    pub cubes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub description: Option<String>,
    /// The role of `[roles]` the group's members ask as.
    pub role: String,
    /// Sources the group may upload files to.
    #[serde(default)]
    pub ingest: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub sql_listen: Option<String>,
    pub users: Option<String>,
    pub trusted_header: Option<String>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub anonymous: bool,
    pub max_upload_mb: Option<u64>,
    pub max_queries: Option<usize>,
    pub queue: Option<usize>,
    pub query_memory_mb: Option<u64>,
    pub answer_cache_mb: Option<u64>,
    pub timeout_seconds: Option<u64>,
    pub reports: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDisclosure {
    pub threshold: Option<u64>,
    /// Share of a sum that one contributor may hold before the cell is suppressed (default 0.85).
    pub dominance: Option<f64>,
    pub symbol: Option<String>,
    pub zero_symbol: Option<String>,
    /// Cubes without data about persons, published without suppression.
    #[serde(default)]
    pub exempt: Vec<String>,
    /// Per-cube thresholds and methods.
    #[serde(default)]
    pub cubes: BTreeMap<String, RawDisclosureCube>,
    /// How ad-hoc answers are protected: `cell_key` or `suppression`.
    pub method: Option<String>,
    /// The cell key method's perturbation table.
    pub cell_key: Option<RawCellKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDisclosureCube {
    pub threshold: Option<u64>,
    pub method: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCellKey {
    /// The ptable file (CSV: pcv, ckey, pvalue), relative to the project.
    pub ptable: String,
    /// Values above the table's last row reuse its last `wrap` rows (default 1; the ONS tables use 250).
    pub wrap: Option<u32>,
    /// A magnitude's largest noise in percent of the cell's largest single value (default 25).
    pub magnitude: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    pub description: Option<String>,
    /// May see unsuppressed numbers (the statistics office).
    #[serde(default)]
    pub bypass_disclosure: bool,
    /// May run SQL over the facts.
    #[serde(default)]
    pub sql: bool,
    /// The cubes the role may read (default: all).
    #[serde(default)]
    pub cubes: Vec<String>,
    /// Per dimension, the finest level the role may see.
    #[serde(default)]
    pub finest: BTreeMap<String, String>,
    /// Cuts applied to every query of the role (an office sees its own rows).
    #[serde(default)]
    pub filter: Vec<String>,
    /// How the role's answers are protected (`cell_key` or `suppression`), instead of the project's method.
    pub method: Option<String>,
    /// May read the quarantine (rejected lines hold raw values of persons).
    #[serde(default)]
    pub quarantine: bool,
    /// Topics (sets of cubes, `[topics]`) the role may read, besides `cubes`.
    #[serde(default)]
    pub topics: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPseudonymisation {
    pub key_env: Option<String>,
    pub key_file: Option<String>,
    pub demo_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDemo {
    #[serde(default)]
    pub ingest: Vec<RawDemoIngest>,
    #[serde(default)]
    pub queries: Vec<RawDemoQuery>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDemoIngest {
    pub source: String,
    pub files: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDemoQuery {
    pub title: String,
    pub cube: String,
    pub measures: Vec<String>,
    #[serde(default)]
    pub drilldowns: Vec<String>,
    #[serde(default)]
    pub cuts: Vec<String>,
    #[serde(default)]
    pub totals: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReport {
    pub name: S<String>,
    pub title: String,
    pub description: Option<String>,
    /// A cron expression for `kubus schedule`.
    pub schedule: Option<String>,
    /// A disclosure threshold for this report.
    pub threshold: Option<u64>,
    #[serde(default)]
    pub sections: Vec<S<RawSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSection {
    /// text | tiles | table | bars | line | stacked | map
    pub kind: S<String>,
    pub title: Option<String>,
    pub text: Option<String>,
    pub cube: Option<S<String>>,
    #[serde(default)]
    pub measures: Vec<String>,
    #[serde(default)]
    pub rows: Vec<String>,
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default)]
    pub cuts: Vec<String>,
    #[serde(default)]
    pub totals: bool,
    pub note: Option<String>,
    /// A map's class limits, ascending.
    pub breaks: Option<S<Vec<f64>>>,
}
