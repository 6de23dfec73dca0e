//! Running a report: each section's cube query with the period filled in (and the report's disclosure threshold),
//! assembled into a document for the report crate's renderers, and written so that a reader never sees half a
//! report: into a hidden folder next to the target, then moved in place.

use crate::project::{Project, QueryOptions};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use kubus_model::{ChartKind, SectionKind, fill_period};
use kubus_query::Query;
use kubus_report::map::{Area, Areas};
use kubus_report::report::{Body, Chart, Document, Part, Templates, Tile};
use kubus_report::schedule::{self, CatchUp, Due, Job};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How to run a report.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// The month reported on (`2024-06`).
    pub period: String,
    /// Run as this role (without one: the most restrictive default, as for every published figure).
    pub role: Option<String>,
    /// Read these cubes at these warehouse versions (others at their latest), to reproduce an earlier run.
    pub as_of: Vec<(String, u64)>,
}

/// A report run: the document and what it was computed from.
#[derive(Debug, Clone)]
pub struct ReportRun {
    /// The report, ready to render.
    pub document: Document,
    /// Cube versions it read.
    pub versions: Vec<(String, u64)>,
    /// Cells suppressed across all sections.
    pub suppressed: usize,
}

impl Project {
    /// Computes a report's sections for a period.
    pub async fn build_report(&self, name: &str, options: &ReportOptions) -> Result<ReportRun> {
        let report = self.model().report(name)?;
        let period_label = self.period_label(&options.period)?;
        for (cube, _) in &options.as_of {
            self.model().cube(cube)?;
        }
        // A report is a fixed publication: its tables are protected together by suppression, which keeps every
        // shown number exact.
        let query_options = QueryOptions {
            as_of: None,
            role: options.role.clone(),
            method: Some(kubus_model::Method::Suppression),
            ..QueryOptions::default()
        };
        // Every section's query first; then disclosure control over all of them together, so that a cell shown in
        // two tables is treated alike in both and no table's totals give away another's hidden cell.
        let mut raw = Vec::new();
        // Per section with a query: the query without its forecasts, and the forecasts made from its answer.
        let mut asked = Vec::new();
        for section in report.sections() {
            if let SectionKind::Text(_) = &section.kind {
                continue;
            }
            let cuts = section
                .cuts
                .iter()
                .map(|c| {
                    fill_period(c, &options.period)
                        .ok_or_else(|| Error::BadPeriod { period: options.period.clone() })?
                        .parse()
                        .map_err(Error::from)
                })
                .collect::<Result<Vec<_>>>()?;
            let query = Query {
                cube: section.cube.clone(),
                measures: section.measures.clone(),
                drilldowns: section.drilldowns.clone(),
                cuts,
                totals: section.totals,
                order: Vec::new(),
                limit: None,
            };
            let as_of = options.as_of.iter().find(|(c, _)| *c == section.cube).map(|(_, v)| *v);
            let (inner, forecasts) = crate::forecast::split(self.model(), &query)?;
            raw.push(self.raw_answer(&inner, &QueryOptions { as_of, ..query_options.clone() }).await?);
            asked.push((inner, forecasts));
        }
        let protected = self.protect(raw, &query_options, report.threshold())?;
        let mut answers = protected
            .into_iter()
            .zip(&asked)
            .map(|(answer, (inner, forecasts))| {
                // The forecasts' notes go under their section; the protection notes are the report's own.
                let before = answer.notes.len();
                let mut answer = self.with_forecasts(inner, forecasts, answer)?;
                let notes = answer.notes.split_off(before);
                Ok((answer, notes))
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter();
        let mut versions: Vec<(String, u64)> = Vec::new();
        let mut suppressed = 0;
        let mut parts = Vec::new();
        for section in report.sections() {
            let mut note = section.note.clone();
            let body = if let SectionKind::Text(text) = &section.kind {
                Body::Text(text.clone())
            } else {
                let (answer, forecast_notes) = answers.next().expect("one answer per section with a query");
                if !forecast_notes.is_empty() {
                    note = Some(note.into_iter().chain(forecast_notes).collect::<Vec<_>>().join(" "));
                }
                for v in &answer.versions {
                    if !versions.contains(v) {
                        versions.push(v.clone());
                    }
                }
                suppressed += answer.protection.primary + answer.protection.secondary;
                let table = self.result_table(&section.cube, &answer.result)?;
                match &section.kind {
                    SectionKind::Tiles => Body::Tiles(tiles(&table)?),
                    SectionKind::Table { rows } => Body::Table { table, rows: *rows },
                    SectionKind::Chart(kind) => Body::Chart {
                        table,
                        chart: match kind {
                            ChartKind::Bars => Chart::Bars,
                            ChartKind::Line => Chart::Line,
                            ChartKind::Stacked => Chart::Stacked,
                        },
                    },
                    SectionKind::Map => {
                        let areas = self.areas(&section.cube, &section.drilldowns[0], options.role.as_deref())?;
                        Body::Map { table, areas, breaks: section.breaks.clone() }
                    }
                    SectionKind::Text(_) => unreachable!("handled above"),
                }
            };
            parts.push(Part { title: section.title.clone(), body, note });
        }
        let settings = &self.config().disclosure;
        let threshold = report.threshold().unwrap_or(settings.threshold);
        let disclosure = format!(
            "Fallzahlen von 1 bis {threshold} sind gesperrt ({symbol}), ebenso Werte, aus denen sie sich errechnen ließen, \
             und Summen, zu denen ein Beitragender {share:.0} % oder mehr beiträgt. {zero} = nichts vorhanden.",
            symbol = settings.symbol,
            share = settings.dominance * 100.0,
            zero = settings.zero_symbol,
        );
        let read: Vec<String> = versions.iter().map(|(c, v)| format!("{c} Version {v}")).collect();
        let document = Document {
            name: report.name().to_owned(),
            title: report.title().replace("{period_label}", &period_label),
            organisation: self.config().name.clone(),
            period: options.period.clone(),
            period_label,
            provenance: read.join(", "),
            disclosure,
            parts,
        };
        Ok(ReportRun { document, versions, suppressed })
    }

    /// The areas of the level a map section drills into, as the role may see them (see [`Project::geometry`]).
    fn areas(&self, cube: &str, drilldown: &str, role: Option<&str>) -> Result<Areas> {
        let (level, _) = kubus_query::resolve_target(self.model(), self.model().cube(cube)?, drilldown)?;
        let level_name = level.dimension.levels()[level.level].name();
        let collection = self.geometry(role, cube, level.role, level_name)?;
        let failed =
            |reason: String| Error::Geometry { level: format!("{}.{level_name}", level.dimension.name()), reason };
        let features = collection["features"].as_array().cloned().unwrap_or_default();
        let mut areas = Vec::with_capacity(features.len());
        for (i, feature) in features.iter().enumerate() {
            let text = |name: &str| feature["properties"][name].as_str().unwrap_or_default().to_owned();
            let rings = rings(&feature["geometry"])
                .ok_or_else(|| failed(format!("feature {i} ({}) is no Polygon or MultiPolygon", text("key"))))?;
            areas.push(Area { key: text("key"), label: text("label"), rings });
        }
        Ok(Areas { areas, attribution: collection["attribution"].as_str().map(str::to_owned) })
    }

    /// The latest month for which the cube of a report's first query answers the role: where a live dashboard of
    /// the report opens. `None` if the report has no query or its cube no time dimension or no facts.
    pub async fn latest_report_period(&self, name: &str, role: Option<&str>) -> Result<Option<String>> {
        let report = self.model().report(name)?;
        let Some(section) = report.sections().iter().find(|s| !matches!(s.kind, SectionKind::Text(_))) else {
            return Ok(None);
        };
        let cube = self.model().cube(&section.cube)?;
        // The role the section's period cut names (`month={period}`; a cube may have several time roles), else the
        // cube's time role.
        let cut = section.cuts.iter().find(|c| c.contains("{period}")).and_then(|c| c.split_once('='));
        let named = cut.and_then(|(target, _)| cube.dimension(target.split('.').next().unwrap_or(target)).ok());
        let time = named.or(cube.time_role()).map(|r| r.name().to_owned());
        let measure = cube.measures().iter().find(|m| matches!(m.kind(), kubus_model::MeasureKind::Aggregate { .. }));
        let (Some(time), Some(measure)) = (time, measure) else { return Ok(None) };
        let query = Query {
            cube: cube.name().to_owned(),
            measures: vec![measure.name().to_owned()],
            drilldowns: vec![time],
            cuts: Vec::new(),
            totals: false,
            order: Vec::new(),
            limit: None,
        };
        let answer =
            self.query(&query, &QueryOptions { role: role.map(str::to_owned), ..QueryOptions::default() }).await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(Error::EmptyCube { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut latest: Option<String> = None;
        for batch in &answer.result.batches {
            let keys = datafusion::arrow::compute::cast(batch.column(0), &datafusion::arrow::datatypes::DataType::Utf8)
                .map_err(kubus_query::Error::from)?;
            for key in datafusion::arrow::array::AsArray::as_string::<i32>(&keys).iter().flatten() {
                if latest.as_deref().is_none_or(|l| key > l) {
                    latest = Some(key.to_owned());
                }
            }
        }
        Ok(latest)
    }

    /// Runs a report and writes its outputs into `out/<name>_<period>/`, replacing an earlier run of the same period
    /// only once every file of the new one is written. Returns the run and the files.
    pub async fn run_report(
        &self,
        name: &str,
        options: &ReportOptions,
        out: &Path,
    ) -> Result<(ReportRun, Vec<PathBuf>)> {
        let outcome = match self.check_output(out) {
            Ok(()) => self.build_report(name, options).await,
            Err(e) => Err(e),
        };
        let mut entry =
            serde_json::json!({"kind": "report", "report": name, "period": options.period, "role": options.role});
        crate::access::outcome(&mut entry, &outcome);
        if let Ok(run) = &outcome {
            entry["suppressed"] = run.suppressed.into();
        }
        self.audit().append(entry)?;
        let run = outcome?;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Output { path, source }
        };
        let final_dir = out.join(format!("{}_{}", name, options.period));
        let partial = out.join(format!(".{}_{}.partial-{}", name, options.period, std::process::id()));
        std::fs::create_dir_all(&partial).map_err(io(&partial))?;
        let templates = self.report_templates()?;
        let files =
            kubus_report::report::write_all(&run.document, &templates, &self.config().disclosure.symbol, &partial)
                .map_err(Error::Report)?;
        let old = out.join(format!(".{}_{}.old-{}", name, options.period, std::process::id()));
        if final_dir.exists() {
            std::fs::rename(&final_dir, &old).map_err(io(&final_dir))?;
        }
        std::fs::rename(&partial, &final_dir).map_err(io(&final_dir))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        let files = files.into_iter().map(|f| final_dir.join(f.strip_prefix(&partial).unwrap_or(&f))).collect();
        Ok((run, files))
    }

    /// The HTML and Markdown templates: the project's own under `<schemas>/reports/templates/`, else the defaults.
    fn report_templates(&self) -> Result<Templates> {
        let dir = self.root().join(&self.config().schemas).join("reports").join("templates");
        let mut templates = Templates::default();
        for (file, slot) in [("report.html.j2", &mut templates.html), ("report.md.j2", &mut templates.markdown)] {
            let path = dir.join(file);
            if path.exists() {
                *slot = std::fs::read_to_string(&path).map_err(|source| Error::SchemaFile { path, source })?;
            }
        }
        Ok(templates)
    }

    /// A month key as people read it (`Juni 2024`), from the project's time dimension.
    fn period_label(&self, period: &str) -> Result<String> {
        let bad = || Error::BadPeriod { period: period.to_owned() };
        fill_period("{period}", period).ok_or_else(bad)?;
        let time = self.model().dimensions().find(|d| d.kind() == kubus_model::DimensionKind::Time).ok_or_else(bad)?;
        let month = time.level_index("month").map_err(|_| bad())?;
        let at = time.resolve(Some(month), period).map_err(|_| bad())?;
        Ok(time.member(at).label().to_owned())
    }
}

/// One tile per measure of a one-row answer: its heading and its value as shown (or its suppression symbol).
fn tiles(table: &kubus_report::Table) -> Result<Vec<Tile>> {
    let shown = kubus_report::display_rows(table, Some(1), true).map_err(Error::Report)?;
    let row = shown.rows.first().cloned().unwrap_or_default();
    Ok(table
        .columns
        .iter()
        .filter(|c| c.kind == kubus_report::ColumnKind::Measure)
        .filter_map(|c| {
            let i = shown.names.iter().position(|n| *n == c.name)?;
            let value = row.get(i).cloned().flatten().unwrap_or_default();
            Some(Tile {
                label: c.heading.clone(),
                value: kubus_report::report::german(&value.replace(',', "."), &shown.types[i]),
                detail: None,
            })
        })
        .collect())
}

/// How the scheduler runs reports.
#[derive(Debug, Clone)]
pub struct ScheduleOptions {
    /// Where reports are written (each run into `<out>/<name>_<period>/`); the run log is `<out>/schedule.jsonl`.
    pub out: PathBuf,
    /// What to do about runs missed while the scheduler was not running.
    pub catch_up: CatchUp,
}

/// One run the scheduler made (or skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledRun {
    /// What was due.
    pub due: Due,
    /// `written`, `failed: …` or `skipped: already running`.
    pub outcome: String,
}

impl Project {
    /// The reports with a schedule.
    pub fn scheduled_jobs(&self) -> Result<Vec<Job>> {
        self.model()
            .reports()
            .filter_map(|r| r.schedule().map(|cron| (r.name(), cron)))
            .map(|(name, cron)| {
                Job::new(name, cron).map_err(|e| Error::BadSchedule { report: name.to_owned(), reason: e.to_string() })
            })
            .collect()
    }

    /// One pass of the scheduler at `now`: runs every report that is due (one at a time, never one that another
    /// scheduler is running), and appends each run to the run log.
    pub async fn schedule_tick(&self, now: DateTime<Utc>, options: &ScheduleOptions) -> Result<Vec<ScheduledRun>> {
        let jobs = self.scheduled_jobs()?;
        let log = RunLog { path: options.out.join("schedule.jsonl") };
        let (since, last_runs) = log.read(now)?;
        let mut runs = Vec::new();
        for due in schedule::due(&jobs, &last_runs, since, now, options.catch_up) {
            let Some(_lock) = Lock::take(&options.out, &due.report)? else {
                runs.push(ScheduledRun { due, outcome: "skipped: already running".into() });
                continue;
            };
            let report_options = ReportOptions { period: due.period.clone(), ..Default::default() };
            let outcome = match self.run_report(&due.report, &report_options, &options.out).await {
                Ok((_, files)) => format!("written ({} files)", files.len()),
                Err(e) => format!("failed: {e}"),
            };
            log.append(serde_json::json!({
                "event": "run", "report": due.report, "scheduled_for": due.at.to_rfc3339(), "period": due.period,
                "finished": chrono::Utc::now().to_rfc3339(), "outcome": outcome,
            }))?;
            runs.push(ScheduledRun { due, outcome });
        }
        Ok(runs)
    }
}

/// Each report's last scheduled run.
type LastRuns = HashMap<String, DateTime<Utc>>;

/// The scheduler's run log: one JSON line per run, and one for the first start (from which never-run reports are
/// caught up).
struct RunLog {
    path: PathBuf,
}

impl RunLog {
    /// The first start (recorded now if there is none) and each report's last scheduled run.
    fn read(&self, now: DateTime<Utc>) -> Result<(DateTime<Utc>, LastRuns)> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(Error::Output { path: self.path.clone(), source }),
        };
        let mut since = None;
        let mut last: HashMap<String, DateTime<Utc>> = HashMap::new();
        for line in text.lines() {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            let time = |key: &str| {
                entry[key].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc))
            };
            match entry["event"].as_str() {
                Some("start") => since = since.or(time("time")),
                Some("run") => {
                    if let (Some(report), Some(at)) = (entry["report"].as_str(), time("scheduled_for")) {
                        let slot = last.entry(report.to_owned()).or_insert(at);
                        *slot = (*slot).max(at);
                    }
                }
                _ => {}
            }
        }
        let since = match since {
            Some(s) => s,
            None => {
                self.append(serde_json::json!({"event": "start", "time": now.to_rfc3339()}))?;
                now
            }
        };
        Ok((since, last))
    }

    fn append(&self, entry: serde_json::Value) -> Result<()> {
        use std::io::Write;
        let io = |source| Error::Output { path: self.path.clone(), source };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(io)?;
        file.write_all(format!("{entry}\n").as_bytes()).map_err(io)
    }
}

/// A report's run lock (`<out>/.locks/<report>.lock` with the process id): released when dropped; a lock whose
/// process is gone is taken over.
struct Lock {
    path: PathBuf,
}

impl Lock {
    fn take(out: &Path, report: &str) -> Result<Option<Lock>> {
        let dir = out.join(".locks");
        let path = dir.join(format!("{report}.lock"));
        let io = |source| Error::Output { path: path.clone(), source };
        std::fs::create_dir_all(&dir).map_err(io)?;
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    use std::io::Write;
                    file.write_all(std::process::id().to_string().as_bytes()).map_err(io)?;
                    return Ok(Some(Lock { path }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    let alive =
                        holder.trim().parse::<u32>().is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                    if alive {
                        return Ok(None);
                    }
                    // The process that held it is gone: the lock is stale.
                    let _ = std::fs::remove_file(&path);
                }
                Err(source) => return Err(Error::Output { path, source }),
            }
        }
        Ok(None)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The rings of a GeoJSON Polygon or MultiPolygon as (longitude, latitude) points; `None` for anything else.
fn rings(geometry: &serde_json::Value) -> Option<Vec<Vec<(f64, f64)>>> {
    let ring = |r: &serde_json::Value| -> Option<Vec<(f64, f64)>> {
        r.as_array()?.iter().map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?))).collect()
    };
    let polygon = |p: &serde_json::Value| -> Option<Vec<Vec<(f64, f64)>>> { p.as_array()?.iter().map(ring).collect() };
    let coordinates = geometry.get("coordinates")?;
    match geometry.get("type")?.as_str()? {
        "Polygon" => polygon(coordinates),
        "MultiPolygon" => {
            let polygons: Option<Vec<_>> = coordinates.as_array()?.iter().map(polygon).collect();
            Some(polygons?.into_iter().flatten().collect())
        }
        _ => None,
    }
}
