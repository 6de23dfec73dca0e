//! Roles and the audit log: what a role may ask — which cubes, down to which level of each dimension, over which
//! rows, and whether through SQL — and the append-only record of every query and SQL run. The roles come from
//! `kubus.toml`; without a role the most restrictive default applies (disclosure control, no SQL).

use crate::{Error, Result};
use kubus_model::{Cut, Model, Role};
use kubus_query::{CubePlan, Query, ResolvedCut};
use std::io::Write;
use std::path::{Path, PathBuf};

fn refused(role: &Role, rule: String) -> Error {
    Error::Refused { role: role.name.clone(), rule }
}

/// The query as the role may ask it: its cube must be one the role may read, and the role's row filter is added
/// to the cuts (so totals, too, count only the role's rows).
pub(crate) fn restrict(query: &Query, role: Option<&Role>, model: &Model) -> Result<Query> {
    let Some(role) = role else { return Ok(query.clone()) };
    let cube = model.cube(&query.cube)?;
    let read: Vec<&str> =
        if cube.across().is_empty() { vec![cube.name()] } else { cube.across().iter().map(String::as_str).collect() };
    if !role.cubes.is_empty()
        && let Some(c) = read.iter().find(|c| !role.cubes.iter().any(|r| r == *c))
    {
        return Err(refused(role, format!("it may read the cubes {}, not {c}", role.cubes.join(", "))));
    }
    let mut query = query.clone();
    for text in &role.filter {
        let cut: Cut = text.parse()?;
        let on = cut.target.split_once('.').map_or(cut.target.as_str(), |(r, _)| r);
        if let Some(c) = read.iter().find(|c| model.cube(c).is_ok_and(|c| c.dimension(on).is_err())) {
            return Err(refused(
                role,
                format!("its row filter {cut} cannot be applied to cube {c}, which has no {on}"),
            ));
        }
        query.cuts.push(cut);
    }
    Ok(query)
}

/// Every drilldown and every cut of the plan (and of a drill-across's sides) stays at or above the finest level the
/// role may see of its dimension. Checked on the query as asked, before the role's own row filter is added.
pub(crate) fn check_levels(plan: &CubePlan<'_>, role: Option<&Role>) -> Result<()> {
    let Some(role) = role else { return Ok(()) };
    let too_fine = |dimension: &kubus_model::Dimension, level: usize| -> Option<String> {
        let (_, name) = role.finest.iter().find(|(d, _)| d == dimension.name())?;
        let finest = dimension.level_index(name).ok()?;
        (!dimension.rolls_up(finest, level)).then(|| {
            format!("it may see {} down to level {name}, not {}", dimension.name(), dimension.levels()[level].name())
        })
    };
    for p in std::iter::once(plan).chain(plan.sides.iter()) {
        let drilled = p.drilldowns.iter().map(|(l, _)| (l.dimension, l.level));
        let cut =
            p.cuts.iter().flat_map(|c: &ResolvedCut<'_>| c.given_levels.iter().map(move |&level| (c.dimension, level)));
        if let Some(rule) = drilled.chain(cut).find_map(|(d, level)| too_fine(d, level)) {
            return Err(refused(role, rule));
        }
    }
    Ok(())
}

/// SQL reads facts row by row, past disclosure control, levels and row filters: only a role that may bypass all
/// of them may run it.
pub(crate) fn check_sql(role: Option<&Role>) -> Result<()> {
    let rule = "SQL reads facts row by row, past disclosure control; only a role with `sql = true` (and no level limits or row filter) may";
    match role {
        Some(r) if r.sql && r.finest.is_empty() && r.filter.is_empty() => Ok(()),
        Some(r) => Err(refused(r, rule.into())),
        None => Err(Error::Refused { role: "(none)".into(), rule: rule.into() }),
    }
}

/// Where writing to `path` would land: symbolic links followed (also dangling ones, which writing would create),
/// then the deepest existing directory made canonical.
pub(crate) fn resolve(path: &Path) -> PathBuf {
    let mut path = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_owned())
    };
    for _ in 0..40 {
        match std::fs::read_link(&path) {
            Ok(target) if target.is_relative() => path = path.parent().map(|p| p.join(&target)).unwrap_or(target),
            Ok(target) => path = target,
            Err(_) => break,
        }
    }
    if let Ok(canonical) = path.canonicalize() {
        return canonical;
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => resolve(parent).join(name),
        _ => path,
    }
}

/// Refuses an output path that lies in the warehouse or is the audit log or the users file (also through symbolic links): a result
/// file must never alter or replace what kubus keeps.
pub(crate) fn check_output(path: &Path, warehouse: &Path, audit: &AuditLog, users: &Path) -> Result<()> {
    let target = resolve(path);
    let what = if target.starts_with(resolve(warehouse)) {
        "it lies in the warehouse"
    } else if target == resolve(audit.path()) {
        "it is the audit log"
    } else if target == resolve(users) {
        "it is the users file"
    } else {
        return Ok(());
    };
    Err(Error::ProtectedPath { path: path.to_owned(), what })
}

/// Rejected lines hold the raw values of persons as the office delivered them: only a role that may read the
/// quarantine (or that sees exact numbers anyway) may.
pub(crate) fn check_quarantine(role: Option<&Role>) -> Result<()> {
    let rule = "rejected lines hold raw values of persons; only a role with `quarantine = true` may read them";
    match role {
        Some(r) if r.quarantine || r.bypass_disclosure => Ok(()),
        Some(r) => Err(refused(r, rule.into())),
        None => Err(Error::Refused { role: "(none)".into(), rule: rule.into() }),
    }
}

/// The outcome of a command for the audit log: `answered`, `refused` or `failed`, with the error.
pub(crate) fn outcome<T>(entry: &mut serde_json::Value, result: &Result<T>) {
    match result {
        Ok(_) => entry["outcome"] = "answered".into(),
        Err(e) => {
            entry["outcome"] = if matches!(e, Error::Refused { .. }) { "refused" } else { "failed" }.into();
            entry["error"] = e.to_string().into();
        }
    }
}

/// The append-only query log: one JSON line per query or SQL run, written with a single append, never rewritten.
#[derive(Debug, Clone)]
pub(crate) struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    pub(crate) fn new(root: &Path, configured: &str) -> AuditLog {
        AuditLog { path: root.join(configured) }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry: time, role, what was asked, and how it ended.
    pub(crate) fn append(&self, mut entry: serde_json::Value) -> Result<()> {
        entry["time"] = serde_json::json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        let mut line = serde_json::to_string(&entry).expect("a JSON value serialises");
        line.push('\n');
        let io = |source| Error::AuditLog { path: self.path.clone(), source };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(io)?;
        file.write_all(line.as_bytes()).map_err(io)
    }
}
