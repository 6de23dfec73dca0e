//! A project: `kubus.toml`, the schema files under `cube-schemas/` and the warehouse. Reads files (the edge where
//! I/O lives) and wires model, warehouse and query together for queries and SQL.

use crate::access::{self, AuditLog};
use crate::rollups::{RollupUse, Route};
use crate::{Error, Result};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use kubus_ingest::PseudonymKey;
use kubus_model::{Model, ProjectConfig, SchemaFile, SchemaKind};
use kubus_query::disclosure::{self, Protection};
use kubus_query::{Query, QueryResult};
use kubus_warehouse::{QuarantineRow, Warehouse};
use std::path::{Path, PathBuf};

/// An open project.
#[derive(Debug, Clone)]
pub struct Project {
    root: PathBuf,
    config: ProjectConfig,
    model: Model,
    warehouse: Warehouse,
    audit: AuditLog,
    /// The cell key method's perturbation table, if configured.
    ptable: Option<std::sync::Arc<kubus_query::cellkey::PTable>>,
    /// Rollups read into memory, by file (a file name carries the facts version and the definition's fingerprint,
    /// so an entry never goes stale); shared by the clones of a project.
    pub(crate) rollup_cache: crate::rollups::RollupCache,
    /// The memory one query's scan may use (DataFusion's memory pool); unlimited unless set.
    memory_limit: Option<usize>,
    /// Where cube queries over the facts run.
    engine: kubus_model::EngineSettings,
    /// Readers of the custom formats its sources name (see [`Project::with_reader`]).
    pub(crate) readers: kubus_ingest::Readers,
}

/// A query's answer and the warehouse versions it was read from.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The result rows and column meanings (after disclosure control: suppressed values are empty and each
    /// measure has a `<measure>_status` column with the symbol of suppressed and zero cells).
    pub result: QueryResult,
    /// The version of each cube's table that answered (one cube, or the combined cubes of a drill-across).
    pub versions: Vec<(String, u64)>,
    /// What disclosure control suppressed (nothing for a role that may bypass it).
    pub protection: Protection,
    /// How each cube was read: from which rollup, or from the facts.
    pub routes: Vec<Route>,
    /// How the answer's numbers are protected, in words (German, as published), one note per cube.
    pub notes: Vec<String>,
}

/// What the audit log records of an answer besides the question: kept with an answer that is given again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerRecord {
    /// Rows of the answer.
    pub rows: usize,
    /// Cells suppressed (primary and secondary).
    pub suppressed: usize,
    /// How its numbers are protected, in words.
    pub notes: Vec<String>,
}

impl AnswerRecord {
    fn write(&self, entry: &mut serde_json::Value) {
        entry["rows"] = self.rows.into();
        entry["suppressed"] = self.suppressed.into();
        entry["protection"] = self.notes.clone().into();
    }
}

impl Answer {
    /// What the audit log records of this answer.
    pub fn record(&self) -> AnswerRecord {
        AnswerRecord {
            rows: self.result.num_rows(),
            suppressed: self.protection.primary + self.protection.secondary,
            notes: self.notes.clone(),
        }
    }
}

/// The audit log's entry for a query, before its outcome.
fn query_entry(query: &Query, options: &QueryOptions) -> serde_json::Value {
    serde_json::json!({
        "kind": "query",
        "role": options.role,
        "cube": query.cube,
        "query": query,
        "as_of": options.as_of,
    })
}

/// An answer before disclosure control, with the plan that says how its measures are computed.
pub(crate) struct RawAnswer<'m> {
    pub(crate) result: QueryResult,
    /// The plan over the facts (also when a rollup answered): disclosure control reasons in facts.
    pub(crate) plan: kubus_query::CubePlan<'m>,
    pub(crate) versions: Vec<(String, u64)>,
    pub(crate) routes: Vec<Route>,
}

/// How to ask a cube query.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// Read this warehouse version instead of the latest.
    pub as_of: Option<u64>,
    /// Ask as this role of `kubus.toml`; without one the most restrictive default applies.
    pub role: Option<String>,
    /// Whether rollups may answer.
    pub rollups: RollupUse,
    /// Protect with this method instead of the one the role and the project choose (reports, as fixed
    /// publications, ask for suppression).
    pub method: Option<kubus_model::Method>,
    /// Aggregate the facts once per grain of a query with totals (and once more for a share's total) instead of
    /// once at its finest grain: slower, and the same numbers — for checking one way against the other.
    pub per_grain: bool,
}

/// How to run read-only SQL.
#[derive(Debug, Clone, Default)]
pub struct SqlOptions {
    /// Read these cubes at these versions (others at their latest).
    pub as_of: Vec<(String, u64)>,
    /// Run as this role of `kubus.toml`; SQL reads facts row by row, so only a role with `sql = true` may.
    pub role: Option<String>,
}

/// Where the pseudonymisation key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// An environment variable.
    Environment(String),
    /// A key file.
    File(PathBuf),
    /// The project's demo key (sample data only).
    Demo,
}

/// Reads every `*.toml` under `dir/{dimensions,cubes,sources,reports}`, sorted, as schema files: a project's
/// schemas, to which a program that embeds kubus may add its own before [`kubus_model::load_model`].
pub fn schema_files(dir: &Path) -> Result<Vec<SchemaFile>> {
    let mut files = Vec::new();
    let kinds = [
        ("dimensions", SchemaKind::Dimension),
        ("cubes", SchemaKind::Cube),
        ("sources", SchemaKind::Source),
        ("reports", SchemaKind::Report),
    ];
    for (sub, kind) in kinds {
        let sub_dir = dir.join(sub);
        if !sub_dir.is_dir() {
            continue;
        }
        let schema_err = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::SchemaFile { path, source }
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&sub_dir)
            .map_err(schema_err(&sub_dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(schema_err(&path))?;
            files.push(SchemaFile { origin: path.display().to_string(), text, kind });
        }
    }
    Ok(files)
}

/// The project file (`kubus.toml`) in `dir` and the model of the schema files it points to.
fn read_files(dir: &Path) -> Result<(ProjectConfig, Model)> {
    let path = dir.join("kubus.toml");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::ProjectFile { path: path.clone(), source })?;
    let config = ProjectConfig::parse(&path.display().to_string(), &text)?;
    let model = kubus_model::load_model(&schema_files(&dir.join(&config.schemas))?)?;
    Ok((config, model))
}

impl Project {
    /// Opens the project in `dir`: reads `kubus.toml` and validates every schema file. Schema problems come
    /// back all at once as [`kubus_model::Error::Invalid`]. A project file that would protect the warehouse's
    /// answers less than the warehouse records is refused ([`Error::WeakerProtection`]).
    pub fn open(dir: impl AsRef<Path>) -> Result<Project> {
        let (config, model) = read_files(dir.as_ref())?;
        Project::new(dir, config, model)
    }

    /// A project from a configuration and a model made in memory (see [`kubus_model::load_model`]): for a tool
    /// that embeds kubus and keeps its schemas elsewhere than in files (`examples/embed.rs`). The warehouse, the
    /// audit log and the perturbation table are where `config` says, relative to `root`. As with
    /// [`Project::open`], a configuration that would protect the warehouse's answers less than the warehouse
    /// records is refused ([`Error::WeakerProtection`]).
    pub fn new(root: impl AsRef<Path>, config: ProjectConfig, model: Model) -> Result<Project> {
        let project = Project::assemble(root.as_ref(), config, model)?;
        crate::protection::check(&project.warehouse, &project.protection_record())?;
        Ok(project)
    }

    /// The protection this project file asks for, as the warehouse records it.
    pub fn protection_record(&self) -> crate::ProtectionRecord {
        crate::ProtectionRecord::of(&self.config, self.ptable.as_ref().map(|t| t.fingerprint().to_owned()))
    }

    /// The protection the warehouse records, if any.
    pub fn recorded_protection(&self) -> Result<Option<crate::ProtectionRecord>> {
        crate::protection::read(&self.warehouse)
    }

    /// Makes the warehouse record the protection of the project file in `dir`, also a weaker one: an intended
    /// change of the protection, by whoever may write the warehouse. Returns what was recorded before.
    pub fn adopt_protection(
        dir: impl AsRef<Path>,
    ) -> Result<(Option<crate::ProtectionRecord>, crate::ProtectionRecord)> {
        let project = Project::load(dir.as_ref())?;
        let before = project.recorded_protection()?;
        let now = project.protection_record();
        crate::protection::write(&project.warehouse, &now)?;
        Ok((before, now))
    }

    /// The project in `dir`, without checking the protection its warehouse records.
    fn load(dir: &Path) -> Result<Project> {
        let (config, model) = read_files(dir)?;
        Project::assemble(dir, config, model)
    }

    /// The project over `config` and `model`, its files under `root`, without checking the recorded protection.
    fn assemble(root: &Path, config: ProjectConfig, model: Model) -> Result<Project> {
        let root = root.to_owned();
        let warehouse = match config.warehouse.contains("://") {
            true => Warehouse::open_bucket(&config.warehouse, &config.storage.0, &root.join(&config.work))?,
            false => Warehouse::open(&root.join(&config.warehouse))?,
        };
        let audit = AuditLog::new(&root, &config.audit_log);
        let ptable = match &config.disclosure.cell_key {
            Some(settings) => {
                let path = root.join(&settings.ptable);
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| Error::PTableFile { path: path.clone(), source })?;
                Some(std::sync::Arc::new(kubus_query::cellkey::PTable::parse(&settings.ptable, &text, settings.wrap)?))
            }
            None => None,
        };
        let engine = config.engine.clone();
        Ok(Project {
            root,
            config,
            model,
            warehouse,
            audit,
            ptable,
            rollup_cache: Default::default(),
            memory_limit: None,
            engine,
            readers: Default::default(),
        })
    }

    /// Limits the memory one query over the facts may use: a query that needs more fails with an error that says
    /// so, instead of taking the memory of everything else running (the server sets this from `[server]`).
    pub fn with_memory_limit(mut self, bytes: usize) -> Project {
        self.memory_limit = Some(bytes);
        self
    }

    /// Reads the files of sources with `type = "custom"`, `reader = "<name>"` by `reader`: a format of the city's
    /// own (fixed-width text, a register's XML). Its records go through the source's layout and mapping as a CSV
    /// file's do; see `examples/fixed_width.rs`.
    pub fn with_reader(mut self, name: &str, reader: impl kubus_ingest::RecordReader + 'static) -> Project {
        self.readers.add(name, reader);
        self
    }

    /// A DataFusion session for one query, within the memory limit if one is set.
    pub(crate) fn session(&self) -> Result<SessionContext> {
        self.session_with(datafusion::prelude::SessionConfig::new())
    }

    /// Partial aggregations by member keys number the keys' views rather than hash their text
    /// ([`kubus_query::TextGroups`]).
    fn session_with(&self, config: datafusion::prelude::SessionConfig) -> Result<SessionContext> {
        let mut runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new();
        if let Some(limit) = self.memory_limit {
            runtime = runtime.with_memory_limit(limit, 1.0);
        }
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime.build_arc().map_err(kubus_query::Error::from)?)
            .with_default_features()
            .with_physical_optimizer_rule(std::sync::Arc::new(kubus_query::TextGroups))
            .build();
        Ok(SessionContext::new_with_state(state))
    }

    /// Records one entry in the audit log (the server records every request with who asked and from where). A
    /// failed append is an error: then nothing may be answered.
    pub fn audit_entry(&self, entry: serde_json::Value) -> Result<()> {
        self.audit.append(entry)
    }

    /// The project directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The project file's settings.
    pub fn config(&self) -> &ProjectConfig {
        &self.config
    }

    /// The validated model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The append-only audit log.
    pub(crate) fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Refuses an output path (a result file, a report folder) that lies in the warehouse or is the audit log, also
    /// through symbolic links.
    pub fn check_output(&self, path: &Path) -> Result<()> {
        // A warehouse in a bucket is out of reach of a local path; its local work folder holds staged facts.
        let local = self.warehouse.local_dir().unwrap_or(self.warehouse.work_dir());
        access::check_output(path, local, &self.audit, &self.users_path())
    }

    /// The warehouse directory, `None` for a warehouse in a bucket.
    pub fn warehouse_dir(&self) -> Option<&Path> {
        self.warehouse.local_dir()
    }

    /// Where the warehouse is, to show: its directory, or `s3://bucket/prefix/`.
    pub fn warehouse_location(&self) -> String {
        match self.warehouse.local_dir() {
            Some(dir) => dir.display().to_string(),
            None => self.warehouse.location().to_string(),
        }
    }

    /// Whether the warehouse can be reached: its directory is there, or its bucket answers.
    pub fn warehouse_reachable(&self) -> bool {
        match self.warehouse.local_dir() {
            Some(dir) => dir.is_dir(),
            None => self.warehouse.entries().is_ok(),
        }
    }

    /// This machine's folder for staged facts, uploads and ingest locks: the warehouse directory, or `[storage]
    /// work` for a warehouse in a bucket.
    pub fn work_dir(&self) -> &Path {
        self.warehouse.work_dir()
    }

    /// Opens the project in `dir` with an empty warehouse: deletes the warehouse (facts, quarantine, rollups, its
    /// protection record) and records this project file's protection. Used by `kubus demo`. The warehouse's record is
    /// not compared first — nothing it protected survives. Refuses when the directory holds anything kubus did
    /// not write, so a misconfigured `warehouse` never costs data.
    pub fn rebuild(dir: impl AsRef<Path>) -> Result<Project> {
        let mut project = Project::load(dir.as_ref())?;
        project.reset_warehouse()?;
        Ok(project)
    }

    /// Deletes the warehouse and opens an empty one (see [`Project::rebuild`]).
    pub fn reset_warehouse(&mut self) -> Result<()> {
        for name in self.warehouse.entries()? {
            if !["facts", "quarantine", "staging", "rollups", "locks", "uploads", crate::protection::FILE]
                .contains(&name.as_ref())
            {
                return Err(Error::NotAWarehouse { path: self.warehouse.file_location(""), entry: name });
            }
        }
        self.warehouse.remove_all()?;
        crate::protection::write(&self.warehouse, &self.protection_record())?;
        self.rollup_cache = Default::default();
        Ok(())
    }

    pub(crate) fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }

    /// The pseudonymisation key: the environment variable first, then the key file, then the demo key.
    pub fn pseudonym_key(&self, allow_demo: bool) -> Result<(PseudonymKey, KeyOrigin)> {
        let settings = &self.config.pseudonymisation;
        if let Ok(secret) = std::env::var(&settings.key_env)
            && !secret.is_empty()
        {
            return Ok((PseudonymKey::new(secret), KeyOrigin::Environment(settings.key_env.clone())));
        }
        if let Some(file) = &settings.key_file {
            let path = self.root.join(file);
            let secret = std::fs::read(&path).map_err(|source| Error::InputFile { path: path.clone(), source })?;
            return Ok((PseudonymKey::new(secret.trim_ascii().to_vec()), KeyOrigin::File(path)));
        }
        match &settings.demo_key {
            Some(demo) if allow_demo => Ok((PseudonymKey::demo(demo.as_bytes().to_vec()), KeyOrigin::Demo)),
            demo => Err(Error::NoKey { env: settings.key_env.clone(), demo_available: demo.is_some() }),
        }
    }

    /// The latest warehouse version of a cube, `None` before its first ingest.
    pub async fn version(&self, cube: &str) -> Result<Option<u64>> {
        self.model.cube(cube)?;
        Ok(self.warehouse.version(cube).await?)
    }

    /// Answers a cube query at `as_of` (or the latest version; a drill-across query takes no `as_of`, since its
    /// cubes have versions of their own), as a role (or the most restrictive default without one).
    /// Disclosure control applies to every answer unless the role may bypass it; the role's cubes, levels and
    /// row filter apply too. Every query, answered or refused, is recorded in the audit log.
    pub async fn query(&self, query: &Query, options: &QueryOptions) -> Result<Answer> {
        let outcome = self.answer(query, options).await;
        let mut entry = query_entry(query, options);
        access::outcome(&mut entry, &outcome);
        if let Ok(answer) = &outcome {
            answer.record().write(&mut entry);
        }
        self.audit.append(entry)?;
        outcome
    }

    /// Records in the audit log an answer given again unchanged — the same question, role and options at the
    /// same versions (see [`Project::latest_versions`]) — as its first asking was recorded, marked `repeated`.
    pub fn audit_repeated(&self, query: &Query, options: &QueryOptions, record: &AnswerRecord) -> Result<()> {
        let mut entry = query_entry(query, options);
        entry["outcome"] = "answered".into();
        entry["repeated"] = true.into();
        record.write(&mut entry);
        self.audit.append(entry)
    }

    /// The latest version of every cube a query reads (its own, or those a drill-across combines), read from the
    /// tables' logs without loading them; `None` for a cube without facts yet. An answer depends on these, the
    /// question, the role and the options, nothing else: the same again means the same answer.
    pub fn latest_versions(&self, query: &Query) -> Result<Vec<(String, Option<u64>)>> {
        let (inner, _) = crate::forecast::split(&self.model, query)?;
        let plan = kubus_query::plan(&self.model, &inner)?;
        let cubes: Vec<&str> = match plan.sides.is_empty() {
            true => vec![plan.cube.name()],
            false => plan.sides.iter().map(|s| s.cube.name()).collect(),
        };
        cubes.into_iter().map(|c| Ok((c.to_owned(), self.warehouse.latest_version(c)?))).collect()
    }

    async fn answer(&self, query: &Query, options: &QueryOptions) -> Result<Answer> {
        let (inner, forecasts) = crate::forecast::split(&self.model, query)?;
        let raw = self.raw_answer(&inner, options).await?;
        let answer = self.protect(vec![raw], options, None)?.remove(0);
        self.with_forecasts(&inner, &forecasts, answer)
    }

    /// The answer with the forecasts the query asked for (from its published values), and their notes.
    pub(crate) fn with_forecasts(
        &self,
        inner: &Query,
        forecasts: &[crate::forecast::Wanted],
        mut answer: Answer,
    ) -> Result<Answer> {
        let (result, notes) = crate::forecast::apply(&self.model, inner, forecasts, answer.result)?;
        answer.result = result;
        answer.notes.extend(notes);
        Ok(answer)
    }

    /// A query's answer before disclosure control (with its hidden count columns), as the role may ask it.
    pub(crate) async fn raw_answer(&self, query: &Query, options: &QueryOptions) -> Result<RawAnswer<'_>> {
        let role = options.role.as_deref().map(|r| self.config.role(r)).transpose()?;
        access::check_levels(&kubus_query::plan(&self.model, query)?, role)?;
        let restricted = access::restrict(query, role, &self.model)?;
        let mut plan = kubus_query::plan(&self.model, &restricted)?;
        self.add_noise(&mut plan, options)?;
        let session = crate::rollups::FactSession::new(self);
        let (routed, facts, routes) = self.plan_facts(&session, &plan, options).await?;
        let ctx = session.for_routes(&routes)?;
        let result = match crate::rollups::plan_key(&restricted, &routed, &routes) {
            // Read from rollups: planned once, run as often as asked (planning is most of such an answer's time).
            Some(key) => {
                let prepared = match self.rollup_cache.plan(&key) {
                    Some(prepared) => prepared,
                    None => {
                        let prepared = kubus_query::prepare(&ctx, &routed, &facts).await?;
                        self.rollup_cache.keep_plan(key, prepared.clone());
                        prepared
                    }
                };
                kubus_query::run(&ctx, &routed, &prepared).await?
            }
            None => {
                let remote = routes.iter().find(|r| r.runs_on_cluster());
                let work = kubus_query::execute(&ctx, &routed, &facts);
                crate::rollups::on_cluster(remote, self.cluster_timeout(), &ctx, work).await?
            }
        };
        let versions = routes.iter().map(|r| (r.cube.clone(), r.version)).collect();
        Ok(RawAnswer { result, plan, versions, routes })
    }

    /// Sets how each cube of a plan (one cube, or the combined cubes of a drill-across) has its counts perturbed:
    /// with the cell key method where the role and project choose it, the cube is not exempt and has units with
    /// record keys (persons); else not at all (suppression follows in [`Project::protect`], or the role bypasses
    /// protection).
    fn add_noise(&self, plan: &mut kubus_query::CubePlan<'_>, options: &QueryOptions) -> Result<()> {
        let role = options.role.as_deref().map(|r| self.config.role(r)).transpose()?;
        let settings = &self.config.disclosure;
        let decide = |cube: &kubus_model::Cube| {
            let method = options.method.unwrap_or_else(|| settings.method_for(cube.name(), role));
            let protected = !role.is_some_and(|r| r.bypass_disclosure) && settings.threshold_for(cube.name()).is_some();
            match (&self.ptable, cube.unit_column()) {
                (Some(ptable), Some(unit)) if protected && method == kubus_model::Method::CellKey => {
                    let magnitude = settings
                        .cell_key
                        .as_ref()
                        .map_or(kubus_model::CellKeySettings::DEFAULT_MAGNITUDE, |c| c.magnitude);
                    Some(kubus_query::cellkey::Noise { ptable: ptable.clone(), unit: unit.to_owned(), magnitude })
                }
                _ => None,
            }
        };
        plan.noise = decide(plan.cube);
        for side in &mut plan.sides {
            side.noise = decide(side.cube);
        }
        Ok(())
    }

    /// How an answer's numbers are protected, in the words of a publication: per cube it reads.
    fn protection_notes(&self, plan: &kubus_query::CubePlan<'_>, bypass: bool, threshold: Option<u64>) -> Vec<String> {
        let settings = &self.config.disclosure;
        let cubes: Vec<&kubus_query::CubePlan<'_>> =
            if plan.sides.is_empty() { vec![plan] } else { plan.sides.iter().collect() };
        cubes
            .into_iter()
            .map(|p| {
                let cube = p.cube.name();
                // A minimum's, maximum's or median's noise scales with itself (see `kubus_query::published`).
                let own = p.computed.iter().any(|pm| {
                    use kubus_model::Aggregate::{Max, Median, Min};
                    matches!(pm.measure.kind(), kubus_model::MeasureKind::Aggregate { aggregate: Min | Max | Median, .. })
                });
                let how = match (&p.noise, settings.threshold_for(cube)) {
                    _ if bypass => "ungeschützte Zahlen (die Rolle umgeht die Geheimhaltung)".to_owned(),
                    (Some(noise), _) => format!(
                        "Cell-Key-Verfahren: jede Fallzahl ist um bis zu ±{} verändert, jede Summe und jeder \
                         Durchschnitt um bis zu {} % des größten Einzelwerts der Zelle{}, dieselbe Zelle immer gleich \
                         (Tabelle {}); Summen und Anteile ergeben sich daher nicht exakt aus den Einzelwerten",
                        noise.ptable.max_noise(),
                        noise.magnitude,
                        if own {
                            format!(", jedes Minimum, Maximum und jeder Median um bis zu {} % seines Werts", noise.magnitude)
                        } else {
                            String::new()
                        },
                        noise.ptable.fingerprint()
                    ),
                    (None, None) => "keine Geheimhaltung nötig (keine Angaben über Personen)".to_owned(),
                    (None, Some(t)) => format!(
                        "Sperrung: Fallzahlen von 1 bis {} sind gesperrt ({}), ebenso Werte, aus denen sie sich errechnen ließen",
                        threshold.unwrap_or(t),
                        settings.symbol
                    ),
                };
                format!("Geheimhaltung {cube}: {how}")
            })
            .collect()
    }

    /// Disclosure control over answers that are published together (one query, or the tables of one report), unless
    /// the role may bypass it; `threshold` replaces the project's (a report's own).
    pub(crate) fn protect(
        &self,
        raw: Vec<RawAnswer<'_>>,
        options: &QueryOptions,
        threshold: Option<u64>,
    ) -> Result<Vec<Answer>> {
        let role = options.role.as_deref().map(|r| self.config.role(r)).transpose()?;
        if role.is_some_and(|r| r.bypass_disclosure) {
            return raw
                .into_iter()
                .map(|r| {
                    let notes = self.protection_notes(&r.plan, true, threshold);
                    Ok(Answer {
                        result: disclosure::strip_hidden(r.result)?,
                        versions: r.versions,
                        protection: Protection::default(),
                        routes: r.routes,
                        notes,
                    })
                })
                .collect();
        }
        let settings = &self.config.disclosure;
        let rules = disclosure::Rules {
            symbol: settings.symbol.clone(),
            zero_symbol: settings.zero_symbol.clone(),
            dominance: settings.dominance,
        };
        // Counts perturbed by the cell key method are not suppressed as well.
        let perturbed: Vec<&str> = raw
            .iter()
            .flat_map(|r| std::iter::once(&r.plan).chain(&r.plan.sides))
            .filter(|p| p.noise.is_some())
            .map(|p| p.cube.name())
            .collect();
        let threshold_of = |cube: &str| {
            if perturbed.contains(&cube) { None } else { settings.threshold_for(cube).map(|t| threshold.unwrap_or(t)) }
        };
        let (results, rest): (Vec<QueryResult>, Vec<_>) =
            raw.into_iter().map(|r| (r.result, (r.plan, r.versions, r.routes))).unzip();
        let answers = results.into_iter().zip(&rest).map(|(result, (plan, _, _))| (result, plan)).collect();
        let protected = disclosure::protect_together(answers, &threshold_of, &rules)?;
        Ok(protected
            .into_iter()
            .zip(rest)
            .map(|((result, protection), (plan, versions, routes))| {
                let notes = self.protection_notes(&plan, false, threshold);
                Answer { result, versions, protection, routes, notes }
            })
            .collect())
    }

    /// How a cube query is computed: which rollup answers (and why each other one does not), the plan in cube
    /// terms, then DataFusion's logical and physical plans.
    /// The role's checks apply as to the query itself, and every explain is in the audit log.
    pub async fn explain(&self, query: &Query, options: &QueryOptions) -> Result<String> {
        let outcome = self.explain_as(query, options).await;
        let mut entry =
            serde_json::json!({"kind": "explain", "role": options.role, "cube": query.cube, "query": query});
        access::outcome(&mut entry, &outcome);
        self.audit.append(entry)?;
        outcome
    }

    async fn explain_as(&self, query: &Query, options: &QueryOptions) -> Result<String> {
        let role = self.config.role_opt(options.role.as_deref()).map_err(Error::from)?;
        access::check_levels(&kubus_query::plan(&self.model, query)?, role)?;
        let restricted = access::restrict(query, role, &self.model)?;
        let mut plan = kubus_query::plan(&self.model, &restricted)?;
        self.add_noise(&mut plan, options)?;
        let session = crate::rollups::FactSession::new(self);
        let (routed, facts, routes) = self.plan_facts(&session, &plan, options).await?;
        // Explained in the session the query runs in, so that the plan shown is the plan run.
        let ctx = session.for_routes(&routes)?;
        let read: String = routes.iter().map(|r| r.describe(options.rollups)).collect();
        Ok(format!("reads {read}{}", kubus_query::explain(&ctx, &routed, &facts).await?))
    }

    /// The plan to execute (drill-across sides each routed on their own), the table of every cube it reads, and
    /// how each was read.
    async fn plan_facts<'m>(
        &'m self,
        session: &crate::rollups::FactSession<'_>,
        plan: &kubus_query::CubePlan<'m>,
        options: &QueryOptions,
    ) -> Result<(kubus_query::CubePlan<'m>, kubus_query::Facts, Vec<Route>)> {
        if options.as_of.is_some() && !plan.sides.is_empty() {
            return Err(Error::AsOfAcross { cube: plan.cube.name().to_owned() });
        }
        let mut facts = kubus_query::Facts::new();
        let mut routes = Vec::new();
        if plan.sides.is_empty() {
            let (routed, table, route) = self.route(session, plan, options.as_of, options).await?;
            facts.insert(plan.cube.name().to_owned(), table);
            routes.push(route);
            return Ok((routed, facts, routes));
        }
        let mut routed = plan.clone();
        for side in &mut routed.sides {
            let (moved, table, route) = self.route(session, side, None, options).await?;
            facts.insert(side.cube.name().to_owned(), table);
            *side = moved;
            routes.push(route);
        }
        Ok((routed, facts, routes))
    }

    /// A cube's facts at `as_of` (or the latest version), with the version read.
    pub(crate) async fn facts_at(
        &self,
        ctx: &SessionContext,
        cube: &str,
        as_of: Option<u64>,
    ) -> Result<(std::sync::Arc<dyn datafusion::catalog::TableProvider>, u64)> {
        let (table, version, _) = self.facts_sized(ctx, cube, as_of).await?;
        Ok((table, version))
    }

    /// [`Project::facts_at`] with the size of the facts' files in bytes.
    pub(crate) async fn facts_sized(
        &self,
        ctx: &SessionContext,
        cube: &str,
        as_of: Option<u64>,
    ) -> Result<(std::sync::Arc<dyn datafusion::catalog::TableProvider>, u64, u64)> {
        match self.warehouse.facts_sized(ctx, cube, as_of).await? {
            Some(found) => Ok(found),
            None => Err(self.empty_cube(cube)),
        }
    }

    /// How long a query may run on the cluster (`[engine] timeout_s`).
    pub(crate) fn cluster_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.engine.timeout_s)
    }

    /// The cluster that reads facts of at least so many bytes (`[engine]`, or [`Project::with_engine`]).
    pub(crate) fn cluster(&self) -> Option<(&str, u64)> {
        self.engine.cluster.as_deref().map(|c| (c, self.engine.local_below))
    }

    /// Runs cube queries over the facts on the Ballista cluster whose scheduler is at `url` (`ballista://host:port`)
    /// instead of where `[engine]` says, or in this process (`local`); facts below `[engine] local_below_mb` are
    /// still read here, and rollups always are.
    pub fn with_engine(mut self, url: &str) -> Result<Project> {
        self.engine.cluster = match url {
            "local" => None,
            url => Some(kubus_model::EngineSettings::cluster_address(url).map_err(|reason| Error::Engine { reason })?),
        };
        Ok(self)
    }

    /// Reads facts of at least `bytes` on the cluster (0: all of them), the rest here.
    pub fn with_local_below(mut self, bytes: u64) -> Project {
        self.engine.local_below = bytes;
        self
    }

    pub(crate) fn empty_cube(&self, cube: &str) -> Error {
        Error::EmptyCube {
            cube: cube.to_owned(),
            sources: self.model.sources().filter(|s| s.cube() == cube).map(|s| s.name().to_owned()).collect(),
        }
    }

    /// Runs read-only SQL over one view per cube that has facts (named like the cube, with member labels). Each
    /// cube is read at its latest version unless `as_of` names another one for it.
    pub async fn sql(&self, sql: &str, options: &SqlOptions) -> Result<Vec<RecordBatch>> {
        let outcome = self.run_sql(sql, options).await;
        let mut entry = serde_json::json!({"kind": "sql", "role": options.role, "sql": sql});
        access::outcome(&mut entry, &outcome);
        if let Ok(batches) = &outcome {
            entry["rows"] = batches.iter().map(RecordBatch::num_rows).sum::<usize>().into();
        }
        self.audit.append(entry)?;
        outcome
    }

    async fn run_sql(&self, sql: &str, options: &SqlOptions) -> Result<Vec<RecordBatch>> {
        let ctx = self.sql_session(options).await?;
        Ok(kubus_query::run_sql(&ctx, sql).await?)
    }

    /// A DataFusion session with the views of [`Project::sql`] as the role of `options` may read them (only a role
    /// with `sql = true`; only its cubes), and the information schema: for a front that runs statements itself,
    /// like the server's PostgreSQL wire protocol. That front must refuse every statement but queries (DataFusion
    /// itself would create tables or write files) and audit them.
    pub async fn sql_session(&self, options: &SqlOptions) -> Result<SessionContext> {
        let role = self.config.role_opt(options.role.as_deref())?;
        access::check_sql(role)?;
        for (cube, _) in &options.as_of {
            self.model.cube(cube)?;
        }
        let ctx = self.session_with(datafusion::prelude::SessionConfig::new().with_information_schema(true))?;
        self.register_sql_views(&ctx, options).await?;
        Ok(ctx)
    }

    /// Registers (again) in `ctx` one view per cube of the role that has facts, named like the cube, with member
    /// labels: each at the version `options.as_of` names for it, or at the latest. A view registered before is
    /// replaced, so that a long SQL session sees the commits made since; a query planned before keeps reading the
    /// version it was planned on.
    pub async fn register_sql_views(&self, ctx: &SessionContext, options: &SqlOptions) -> Result<()> {
        let role = self.config.role_opt(options.role.as_deref())?;
        let readable = |cube: &str| role.is_none_or(|r| r.cubes.is_empty() || r.cubes.iter().any(|c| c == cube));
        for cube in self.model.cubes().filter(|c| readable(c.name())) {
            let version = options.as_of.iter().find(|(c, _)| c == cube.name()).map(|(_, v)| *v);
            let found = match version {
                Some(_) => Some(self.facts_at(ctx, cube.name(), version).await?),
                None => self.warehouse.facts(ctx, cube.name(), None).await?,
            };
            if let Some((facts, _)) = found {
                let view = kubus_query::cube_view(ctx, &self.model, cube, facts)?;
                ctx.deregister_table(cube.name()).map_err(kubus_query::Error::from)?;
                ctx.register_table(cube.name(), view.into_view()).map_err(kubus_query::Error::from)?;
            }
        }
        Ok(())
    }

    /// The members of a dimension (of one level, or of all levels from coarse to fine): level, key, labels,
    /// aliases and parents (`level=key` for each level directly above, several where hierarchies meet). A role sees
    /// the levels down to its finest of the dimension: all levels means those, and a finer level is refused. Every
    /// listing, allowed or not, is in the audit log.
    pub fn members(&self, dimension: &str, level: Option<&str>, role: Option<&str>) -> Result<RecordBatch> {
        let outcome = self.list_members(dimension, level, role);
        let mut entry = serde_json::json!({"kind": "members", "role": role, "dimension": dimension, "level": level});
        access::outcome(&mut entry, &outcome);
        self.audit.append(entry)?;
        outcome
    }

    fn list_members(&self, dimension: &str, level: Option<&str>, role: Option<&str>) -> Result<RecordBatch> {
        use datafusion::arrow::array::{ArrayRef, StringArray};
        let role = self.config.role_opt(role)?;
        let dim = self.model.dimension(dimension)?;
        let visible = crate::catalog::visible_levels(role, dim);
        let levels: Vec<usize> = match level {
            Some(name) => {
                let at = dim.level_index(name)?;
                if let Some(role) = role.filter(|_| !visible.contains(&at)) {
                    let finest = role.finest.iter().find(|(d, _)| d == dim.name()).map_or("", |(_, l)| l.as_str());
                    let rule = format!("it may see {} down to level {finest}, not {name}", dim.name());
                    return Err(Error::Refused { role: role.name.clone(), rule });
                }
                vec![at]
            }
            None => visible,
        };
        let mut columns: [Vec<Option<String>>; 6] = Default::default();
        for &l in &levels {
            for (index, m) in dim.members(l).iter().enumerate() {
                let parents: Vec<String> = dim
                    .parents(kubus_model::MemberRef { level: l, index })
                    .into_iter()
                    .map(|p| format!("{}={}", dim.levels()[p.level].name(), dim.member(p).key()))
                    .collect();
                let values = [
                    Some(dim.levels()[l].name().to_owned()),
                    Some(m.key().to_owned()),
                    Some(m.label().to_owned()),
                    Some(m.label_en().to_owned()),
                    (!m.aliases().is_empty()).then(|| m.aliases().join("; ")),
                    (!parents.is_empty()).then(|| parents.join("; ")),
                ];
                for (column, value) in columns.iter_mut().zip(values) {
                    column.push(value);
                }
            }
        }
        let names = ["level", "key", "label", "label_en", "aliases", "parents"];
        let arrays =
            names.into_iter().zip(columns).map(|(n, c)| (n, std::sync::Arc::new(StringArray::from(c)) as ArrayRef));
        RecordBatch::try_from_iter(arrays).map_err(|e| kubus_query::Error::from(e).into())
    }

    /// A query result as a table for the output writers: headings, which columns are keys (with the JSON-stat
    /// role of their dimension), labels, measures and the total marker.
    pub fn result_table(&self, cube: &str, result: &QueryResult) -> Result<kubus_report::Table> {
        use kubus_query::ColumnKind as Kind;
        use kubus_report::{Column, ColumnKind, StatRole};
        let cube = self.model.cube(cube)?;
        let mut columns = Vec::new();
        for c in &result.columns {
            let kind = match c.kind {
                Kind::Key => {
                    let dimension = c.dimension.as_deref().map(|d| self.model.dimension(d)).transpose()?;
                    let role = dimension.and_then(|d| match (d.kind(), d.is_geo()) {
                        (kubus_model::DimensionKind::Time, _) => Some(StatRole::Time),
                        (_, true) => Some(StatRole::Geo),
                        _ => None,
                    });
                    ColumnKind::Key { role }
                }
                Kind::Label => ColumnKind::Label,
                Kind::Measure => ColumnKind::Measure,
                Kind::Total => ColumnKind::Total,
                Kind::Status => ColumnKind::Status { measure: c.measure.clone().unwrap_or_default() },
                Kind::Hidden => ColumnKind::Other,
                Kind::Forecast => ColumnKind::Forecast,
            };
            columns.push(Column { name: c.name.clone(), heading: c.heading.clone(), kind });
        }
        Ok(kubus_report::Table {
            title: cube.label().to_owned(),
            schema: result.schema.clone(),
            batches: result.batches.clone(),
            columns,
            notes: Vec::new(),
        })
    }

    /// Whether a role may read the raw values of rejected lines (the quarantine).
    pub fn may_read_quarantine(&self, role: Option<&str>) -> bool {
        self.config.role_opt(role).is_ok_and(|r| access::check_quarantine(r).is_ok())
    }

    /// The rejected lines in quarantine, of one source or of all, with the source's name.
    /// Only a role that may read the quarantine may; every read, allowed or not, is in the audit log.
    pub fn quarantine(&self, source: Option<&str>, role: Option<&str>) -> Result<Vec<(String, QuarantineRow)>> {
        let outcome = self
            .config
            .role_opt(role)
            .map_err(Error::from)
            .and_then(access::check_quarantine)
            .and_then(|()| self.read_quarantine(source));
        let mut entry = serde_json::json!({"kind": "quarantine", "role": role, "source": source});
        access::outcome(&mut entry, &outcome);
        if let Ok(rows) = &outcome {
            entry["rows"] = rows.len().into();
        }
        self.audit.append(entry)?;
        outcome
    }

    fn read_quarantine(&self, source: Option<&str>) -> Result<Vec<(String, QuarantineRow)>> {
        let names: Vec<String> = match source {
            Some(s) => vec![self.model.source(s)?.name().to_owned()],
            None => self.model.sources().map(|s| s.name().to_owned()).collect(),
        };
        let mut rows = Vec::new();
        for name in names {
            rows.extend(self.warehouse.read_quarantine(&name)?.into_iter().map(|r| (name.clone(), r)));
        }
        Ok(rows)
    }
}

/// Rejected lines as one table: source, file, line, column, value, problem, reason.
pub fn quarantine_batch(rows: &[(String, QuarantineRow)]) -> Result<RecordBatch> {
    use datafusion::arrow::array::{ArrayRef, StringArray, UInt64Array};
    let text = |f: &dyn Fn(&(String, QuarantineRow)) -> String| -> ArrayRef {
        std::sync::Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let line: ArrayRef = std::sync::Arc::new(UInt64Array::from_iter_values(rows.iter().map(|(_, r)| r.line as u64)));
    RecordBatch::try_from_iter([
        ("source", text(&|(s, _)| s.clone())),
        ("file", text(&|(_, r)| r.file.clone())),
        ("line", line),
        ("column", text(&|(_, r)| r.column.clone())),
        ("value", text(&|(_, r)| r.value.clone())),
        ("problem", text(&|(_, r)| r.problem.clone())),
        ("reason", text(&|(_, r)| r.reason.clone())),
    ])
    .map_err(|e| kubus_query::Error::from(e).into())
}
