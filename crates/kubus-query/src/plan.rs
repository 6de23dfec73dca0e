//! Planning in cube terms, without data: resolves a query's names against the model (roles, levels, measures,
//! members by key, label or alias) and turns every cut into the set of fact-level member keys it keeps. A pure
//! function: model + query → plan, testable without a warehouse.

use crate::query::{Cut, CutOp, Query};
use crate::{Error, Result};
use kubus_model::{Cube, Dimension, Measure, MeasureKind, MemberRef, Model};

/// A level of a dimension role.
#[derive(Debug, Clone)]
pub struct LevelRef<'m> {
    /// The cube's role (= fact column).
    pub role: &'m str,
    /// The conformed dimension.
    pub dimension: &'m Dimension,
    /// The level index in the dimension.
    pub level: usize,
    /// The level at which the role's facts are recorded.
    pub fact_level: usize,
}

impl LevelRef<'_> {
    /// The level's name.
    pub fn level_name(&self) -> &str {
        self.dimension.levels()[self.level].name()
    }
}

/// A cut resolved to fact-level members.
#[derive(Debug, Clone)]
pub struct ResolvedCut<'m> {
    /// The role it filters.
    pub role: &'m str,
    /// The role's dimension.
    pub dimension: &'m Dimension,
    /// The level the role's facts are recorded at.
    pub fact_level: usize,
    /// Indices of the kept (or, negated, the dropped) fact-level members, in member order.
    pub members: Vec<usize>,
    /// Keep the rows whose member is *not* listed.
    pub negated: bool,
    /// The levels of the members the cut names (before they became fact-level members).
    pub given_levels: Vec<usize>,
}

impl ResolvedCut<'_> {
    /// The fact-level keys of the listed members.
    pub fn keys(&self) -> Vec<&str> {
        let level = self.dimension.members(self.fact_level);
        self.members.iter().map(|&i| level[i].key()).collect()
    }
}

/// A measure the query computes, requested or needed as a part, with its filter resolved.
#[derive(Debug, Clone)]
pub struct PlannedMeasure<'m> {
    /// The measure.
    pub measure: &'m Measure,
    /// Its filter cuts (aggregates only).
    pub filter: Vec<ResolvedCut<'m>>,
}

/// The name of the rollup a query builds from its facts as it runs (see [`crate::rollup::finest_grain`]).
pub const FINEST_GRAIN: &str = "__finest_grain";

/// A validated query plan in cube terms.
#[derive(Debug, Clone)]
pub struct CubePlan<'m> {
    /// The cube.
    pub cube: &'m Cube,
    /// Drilldown levels, in query order, with their output column names.
    pub drilldowns: Vec<(LevelRef<'m>, String)>,
    /// Cuts.
    pub cuts: Vec<ResolvedCut<'m>>,
    /// Requested measures, in query order.
    pub measures: Vec<&'m Measure>,
    /// Every measure computed: the requested ones and their parts, in declaration order (parts first).
    pub computed: Vec<PlannedMeasure<'m>>,
    /// The cube's time role at its fact level, when a stock or a time comparison needs it.
    pub time: Option<LevelRef<'m>>,
    /// Whether totals are requested.
    pub totals: bool,
    /// Totals keep the first this many drilldowns: those up to the last role whose dimension is not additive
    /// (a total over it would add up overlapping members). 0: every total.
    pub total_floor: usize,
    /// Order: measure name and descending flag.
    pub order: Vec<(String, bool)>,
    /// Row limit.
    pub limit: Option<usize>,
    /// For a drill-across cube, one plan per combined cube that the query needs, at the same drilldowns.
    pub sides: Vec<CubePlan<'m>>,
    /// The rollup that answers it (see [`crate::rollup::at_rollup`]), `None` for the facts.
    pub rollup: Option<String>,
    /// How the cube's counts are perturbed (the cell key method), `None` for exact counts. Set by the caller
    /// that decides the protection; [`plan`] leaves it empty.
    pub noise: Option<crate::cellkey::Noise>,
}

impl CubePlan<'_> {
    /// The plan in cube terms: drilled levels, cuts, measures and how each is computed, and the grains.
    pub fn describe(&self) -> String {
        let mut out = format!("cube {} ({})\n", self.cube.name(), self.cube.label());
        if self.rollup.as_deref() == Some(FINEST_GRAIN) {
            out += "  aggregated once from the facts at the recorded levels of the roles it drills and cuts, each grain then from those cells\n";
        } else if let Some(rollup) = &self.rollup {
            out += &format!(
                "  answered from rollup {rollup}: levels below are the rollup's, measures aggregated again from its cells\n"
            );
        }
        if let Some(noise) = &self.noise {
            out += &format!(
                "  counts perturbed by the cell key method: ptable {} ({} keys, noise up to ±{}), cell keys from the record keys of {}\n",
                noise.ptable.fingerprint(),
                noise.ptable.keys(),
                noise.ptable.max_noise(),
                noise.unit
            );
        }
        if !self.cube.across().is_empty() {
            out += &format!(
                "  drill-across of {}: each cube is aggregated at the grain, then full-joined on its keys\n",
                self.cube.across().join(", ")
            );
        }
        out += "drilldowns:\n";
        if self.drilldowns.is_empty() {
            out += "  (none: one row)\n";
        }
        for (l, name) in &self.drilldowns {
            let recorded = l.dimension.levels()[l.fact_level].name();
            let source = match self.rollup.as_deref() {
                Some(FINEST_GRAIN) | None => "facts record",
                Some(_) => "the rollup holds",
            };
            out += &format!(
                "  {} at level {} ({}) → column {name}; {source} {recorded}\n",
                l.role,
                l.level_name(),
                l.dimension.levels()[l.level].label()
            );
        }
        let cuts: Vec<&ResolvedCut<'_>> =
            self.cuts.iter().chain(self.sides.iter().flat_map(|s| s.cuts.iter())).collect();
        if !cuts.is_empty() {
            out += "cuts:\n";
        }
        for c in cuts {
            let keys = c.keys();
            let shown = if keys.len() > 6 {
                format!("{} … {}", keys[..3].join(", "), keys[keys.len() - 2..].join(", "))
            } else {
                keys.join(", ")
            };
            let total = c.dimension.members(c.fact_level).len();
            let verb = if c.negated { "drops" } else { "keeps" };
            out += &format!(
                "  {} {verb} {} of {total} {} members: {shown}\n",
                c.role,
                keys.len(),
                c.dimension.levels()[c.fact_level].name()
            );
        }
        out += "measures:\n";
        for pm in &self.computed {
            let requested = if self.measures.iter().any(|m| m.name() == pm.measure.name()) { "" } else { "  (part)" };
            out += &format!("  {} = {}{requested}\n", pm.measure.name(), pm.measure.describe());
        }
        for side in &self.sides {
            for pm in &side.computed {
                out += &format!("  {}.{} = {}\n", side.cube.name(), pm.measure.name(), pm.measure.describe());
            }
        }
        let names: Vec<&str> = self.drilldowns.iter().map(|(_, n)| n.as_str()).collect();
        let grains: Vec<String> = self.grains().into_iter().map(|k| format!("({})", names[..k].join(", "))).collect();
        out += &format!(
            "grains: {} — one aggregation each{}\n",
            grains.join(", "),
            if grains.len() > 1 { ", stacked; rows of coarser grains are totals" } else { "" }
        );
        if self.totals && self.total_floor > 0 {
            let (l, name) = &self.drilldowns[self.total_floor - 1];
            out += &format!(
                "no totals over {name}: {} is not additive (its members overlap), so its members are never summed\n",
                l.dimension.name()
            );
        }
        out
    }

    /// The grains the query aggregates at, as how many of the drilldowns each keeps: all of them, then with
    /// totals every shorter prefix down to the grand total, or to the last drilldown that is not additive.
    pub fn grains(&self) -> Vec<usize> {
        let n = self.drilldowns.len();
        if self.totals && n > 0 { (self.total_floor..=n).rev().collect() } else { vec![n] }
    }
}

/// Refuses a sum over the members of a role whose dimension is not additive, unless the query keeps them apart
/// (drills down by the role's recorded level) or cuts the role to one of them; returns how many drilldowns the
/// totals must keep, so that no total adds them up.
fn check_additive(
    cube: &Cube,
    drilldowns: &[(LevelRef<'_>, String)],
    cuts: &[ResolvedCut<'_>],
    computed: &[PlannedMeasure<'_>],
    model: &Model,
) -> Result<usize> {
    let adds = computed.iter().find(|pm| {
        matches!(pm.measure.kind(), MeasureKind::Aggregate { aggregate, .. } if crate::aggregates::weighs_each_fact(*aggregate))
    });
    let Some(adds) = adds else { return Ok(0) };
    let mut floor = 0;
    for role in cube.dimensions() {
        let dimension = model.dimension(role.dimension())?;
        if dimension.is_additive() {
            continue;
        }
        let one = cuts.iter().any(|c| c.role == role.name() && !c.negated && c.members.len() == 1);
        let drilled = drilldowns.iter().position(|(l, _)| l.role == role.name() && l.level == l.fact_level);
        match drilled {
            _ if one => {}
            Some(at) => floor = floor.max(at + 1),
            None => {
                return Err(Error::NotAdditive {
                    measure: adds.measure.name().to_owned(),
                    role: role.name().to_owned(),
                    dimension: dimension.name().to_owned(),
                    level: dimension.levels()[role.fact_level()].name().to_owned(),
                });
            }
        }
    }
    Ok(floor)
}

/// Resolves `role`, `role.level` or a level name unique among the cube's roles. `None` as level means the role
/// was named alone.
pub fn resolve_target<'m>(model: &'m Model, cube: &'m Cube, name: &str) -> Result<(LevelRef<'m>, bool)> {
    let roles = cube.dimensions();
    let level_ref = |role: &'m kubus_model::CubeDimension, level: usize| -> Result<LevelRef<'m>> {
        Ok(LevelRef {
            role: role.name(),
            dimension: model.dimension(role.dimension())?,
            level,
            fact_level: role.fact_level(),
        })
    };
    if let Some((role_name, level_name)) = name.split_once('.') {
        let role = cube.dimension(role_name)?;
        let dim = model.dimension(role.dimension())?;
        return Ok((level_ref(role, dim.level_index(level_name)?)?, false));
    }
    if let Some(role) = roles.iter().find(|r| r.name() == name) {
        return Ok((level_ref(role, role.fact_level())?, true));
    }
    let mut found = Vec::new();
    for role in roles {
        let dim = model.dimension(role.dimension())?;
        if let Ok(level) = dim.level_index(name) {
            found.push(level_ref(role, level)?);
        }
    }
    match found.len() {
        1 => Ok((found.remove(0), false)),
        0 => {
            let mut valid: Vec<String> = roles.iter().map(|r| r.name().to_owned()).collect();
            for role in roles {
                let dim = model.dimension(role.dimension())?;
                valid.extend(dim.levels().iter().map(|l| format!("{}.{}", role.name(), l.name())));
            }
            Err(kubus_model::unknown("dimension or level", name, valid.iter()).into())
        }
        _ => Err(kubus_model::Error::Ambiguous {
            name: name.to_owned(),
            candidates: found.iter().map(|l| format!("{}.{}", l.role, l.level_name())).collect(),
        }
        .into()),
    }
}

fn check_recorded(l: &LevelRef<'_>, cube: &Cube) -> Result<()> {
    if l.dimension.rolls_up(l.fact_level, l.level) {
        return Ok(());
    }
    let (cube, role) = (cube.name().to_owned(), l.role.to_owned());
    let (level, recorded) = (l.level_name().to_owned(), l.dimension.levels()[l.fact_level].name().to_owned());
    Err(if l.dimension.rolls_up(l.level, l.fact_level) {
        Error::TooFine { cube, role, level, recorded }
    } else {
        Error::NotAbove { cube, role, level, recorded }
    })
}

/// Resolves a cut to the fact-level members it keeps (or drops).
pub fn resolve_cut<'m>(model: &'m Model, cube: &'m Cube, cut: &Cut) -> Result<ResolvedCut<'m>> {
    let (l, role_only) = resolve_target(model, cube, &cut.target)?;
    let dim = l.dimension;
    let level = (!role_only).then_some(l.level);
    // A role named alone means its recorded level or a coarser one: `land=Berlin` is the Land, not the Kreis of
    // the same name.
    let resolve = |value: &str, level: Option<usize>| -> Result<MemberRef> {
        let at = match level {
            Some(level) => dim.resolve(Some(level), value)?,
            // A member only on a finer level is worth a precise "finer than recorded" error.
            None => dim.resolve_up_to(l.fact_level, value).or_else(|e| dim.resolve(None, value).map_err(|_| e))?,
        };
        let target = LevelRef { level: at.level, ..l.clone() };
        check_recorded(&target, cube)?;
        Ok(at)
    };
    let (members, negated): (Vec<MemberRef>, bool) = match &cut.op {
        CutOp::In(values) | CutOp::NotIn(values) => {
            if values.is_empty() {
                return Err(Error::BadCut { text: cut.to_string() });
            }
            let members = values.iter().map(|v| resolve(v, level)).collect::<Result<Vec<_>>>()?;
            (members, matches!(cut.op, CutOp::NotIn(_)))
        }
        CutOp::Range { from, to } => {
            let from_ref = resolve(from, level)?;
            let to_ref = resolve(to, Some(from_ref.level))?;
            if to_ref.index < from_ref.index {
                return Err(Error::EmptyRange { cut: cut.to_string() });
            }
            let members =
                (from_ref.index..=to_ref.index).map(|index| MemberRef { level: from_ref.level, index }).collect();
            (members, false)
        }
        CutOp::Compare(comparison, value) => {
            if !dim.is_ordered() {
                return Err(Error::Unordered { cut: cut.to_string(), dimension: dim.name().to_owned() });
            }
            let pivot = resolve(value, level)?;
            let members = (0..dim.members(pivot.level).len())
                .filter(|&index| comparison.holds(index, pivot.index))
                .map(|index| MemberRef { level: pivot.level, index })
                .collect();
            (members, false)
        }
    };
    let mut given_levels: Vec<usize> = members.iter().map(|m| m.level).collect();
    given_levels.sort_unstable();
    given_levels.dedup();
    let mut indices: Vec<usize> = members.into_iter().flat_map(|m| dim.descendants(m, l.fact_level)).collect();
    indices.sort_unstable();
    indices.dedup();
    Ok(ResolvedCut { role: l.role, dimension: dim, fact_level: l.fact_level, members: indices, negated, given_levels })
}

/// Plans a query against the model.
pub fn plan<'m>(model: &'m Model, query: &Query) -> Result<CubePlan<'m>> {
    let cube = model.cube(&query.cube)?;
    if query.measures.is_empty() {
        return Err(Error::NoMeasure {
            cube: cube.name().to_owned(),
            valid: cube.measures().iter().map(|m| m.name().to_owned()).collect(),
        });
    }
    let measures = query.measures.iter().map(|m| cube.measure(m)).collect::<kubus_model::Result<Vec<_>>>()?;
    if let Some(twice) = (1..measures.len()).find(|&i| measures[..i].iter().any(|m| m.name() == measures[i].name())) {
        return Err(Error::DuplicateMeasure { measure: measures[twice].name().to_owned() });
    }
    if let Some(m) = measures.iter().find(|m| matches!(m.kind(), MeasureKind::Forecast { .. })) {
        return Err(Error::Forecast { measure: m.name().to_owned() });
    }

    let mut drilldowns: Vec<(LevelRef<'m>, String)> = Vec::new();
    for name in &query.drilldowns {
        let (l, _) = resolve_target(model, cube, name)?;
        check_recorded(&l, cube)?;
        if drilldowns.iter().any(|(d, _)| d.role == l.role) {
            return Err(Error::DuplicateDrilldown { role: l.role.to_owned() });
        }
        drilldowns.push((l, String::new()));
    }
    // Output column names: the role for its fact level, else the level's name, qualified only on a clash.
    let plain: Vec<String> = drilldowns
        .iter()
        .map(|(l, _)| if l.level == l.fact_level { l.role.to_owned() } else { l.level_name().to_owned() })
        .collect();
    for (i, (l, name)) in drilldowns.iter_mut().enumerate() {
        let clash = plain.iter().filter(|p| **p == plain[i]).count() > 1
            || (l.level != l.fact_level && cube.dimensions().iter().any(|r| r.name() == plain[i]));
        *name = if clash { format!("{}_{}", l.role, l.level_name()) } else { plain[i].clone() };
    }

    let cuts = if cube.across().is_empty() {
        query.cuts.iter().map(|cut| resolve_cut(model, cube, cut)).collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };

    // The closure of the requested measures over their parts, in declaration order so that parts come first.
    let mut wanted: Vec<&str> = query.measures.iter().map(String::as_str).collect();
    let mut i = 0;
    while i < wanted.len() {
        for part in cube.measure(wanted[i])?.parts() {
            if !wanted.contains(&part) {
                wanted.push(part);
            }
        }
        i += 1;
    }
    let mut computed = Vec::new();
    let mut time = None;
    for m in cube.measures().iter().filter(|m| wanted.contains(&m.name())) {
        let filter = match m.kind() {
            MeasureKind::Aggregate { filter, .. } => {
                filter.iter().map(|c| resolve_cut(model, cube, c)).collect::<Result<Vec<_>>>()?
            }
            _ => Vec::new(),
        };
        let timed = match m.kind() {
            MeasureKind::Aggregate { last_snapshot, .. } => *last_snapshot,
            MeasureKind::TimeComparison { .. } => true,
            _ => false,
        };
        if timed && time.is_none() {
            let role = cube.time_role().expect("validated: stocks and time comparisons have a time role");
            let (l, _) = resolve_target(model, cube, role.name())?;
            time = Some(l);
        }
        if let MeasureKind::TimeComparison { .. } = m.kind() {
            let role = cube.time_role().expect("validated").name();
            let drilled = drilldowns.iter().any(|(l, _)| l.role == role);
            if !drilled && !cuts.iter().any(|c| c.role == role && !c.negated) {
                return Err(Error::NoPeriod { measure: m.name().to_owned(), role: role.to_owned() });
            }
        }
        computed.push(PlannedMeasure { measure: m, filter });
    }

    let order = query
        .order
        .iter()
        .map(|o| {
            if query.measures.contains(&o.measure) {
                Ok((o.measure.clone(), o.descending))
            } else {
                Err(Error::BadOrderMeasure { measure: o.measure.clone(), valid: query.measures.clone() })
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let sides = plan_sides(model, cube, query, &drilldowns, &computed)?;
    let total_floor = check_additive(cube, &drilldowns, &cuts, &computed, model)?;
    Ok(CubePlan {
        cube,
        drilldowns,
        cuts,
        measures,
        computed,
        time,
        totals: query.totals,
        total_floor,
        order,
        limit: query.limit,
        sides,
        rollup: None,
        noise: None,
    })
}

/// The per-cube plans of a drill-across query: each combined cube whose measures are wanted, with the same
/// drilldowns (at the same levels) and the cuts that apply to it. A cut applies to every combined cube that has
/// its role or level, and must apply to one.
fn plan_sides<'m>(
    model: &'m Model,
    cube: &'m Cube,
    query: &Query,
    drilldowns: &[(LevelRef<'m>, String)],
    computed: &[PlannedMeasure<'m>],
) -> Result<Vec<CubePlan<'m>>> {
    if cube.across().is_empty() {
        return Ok(Vec::new());
    }
    let side_cubes = cube.across().iter().map(|name| model.cube(name)).collect::<kubus_model::Result<Vec<_>>>()?;
    // A cut naming a role applies to the cubes with that role (`month` is the newcomers' month, not the month
    // level of the offers' start month); a bare level name applies to every cube that has the level.
    let applies = |side: &'m Cube, target: &str| -> bool {
        let role = target.split_once('.').map_or(target, |(r, _)| r);
        if side_cubes.iter().any(|c| c.dimension(role).is_ok()) {
            side.dimension(role).is_ok() && resolve_target(model, side, target).is_ok()
        } else {
            resolve_target(model, side, target).is_ok()
        }
    };
    for cut in &query.cuts {
        if !side_cubes.iter().any(|c| applies(c, &cut.target)) {
            let valid: Vec<String> =
                side_cubes.iter().flat_map(|c| c.dimensions().iter().map(|r| r.name().to_owned())).collect();
            return Err(kubus_model::unknown("dimension or level", &cut.target, valid.iter()).into());
        }
    }
    let mut sides = Vec::new();
    for &side in &side_cubes {
        let mut measures: Vec<String> = Vec::new();
        for pm in computed {
            if let MeasureKind::From { cube: c, measure } = pm.measure.kind()
                && c == side.name()
                && !measures.contains(measure)
            {
                measures.push(measure.clone());
            }
        }
        if measures.is_empty() {
            continue;
        }
        let side_query = Query {
            cube: side.name().to_owned(),
            measures,
            drilldowns: drilldowns.iter().map(|(l, _)| format!("{}.{}", l.role, l.level_name())).collect(),
            cuts: query.cuts.iter().filter(|c| applies(side, &c.target)).cloned().collect(),
            totals: query.totals,
            order: Vec::new(),
            limit: None,
        };
        sides.push(plan(model, &side_query)?);
    }
    Ok(sides)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kubus_model::{SchemaFile, SchemaKind, load_model};

    pub(crate) fn model() -> Model {
        let file = |origin: &str, kind, text: &str| SchemaFile { origin: origin.into(), text: text.into(), kind };
        let cube = r#"name = "c"
label = "C"
[[dimensions]]
name = "district"
[[dimensions]]
name = "age"
[[dimensions]]
name = "month"
dimension = "time"
level = "quarter"
[[measures]]
name = "n"
label = "N"
aggregate = "count"
"#;
        load_model(&[
            file(
                "district.toml",
                SchemaKind::Dimension,
                include_str!("../../../cube-schemas/dimensions/district.toml"),
            ),
            file("age.toml", SchemaKind::Dimension, include_str!("../../../cube-schemas/dimensions/age.toml")),
            file("time.toml", SchemaKind::Dimension, include_str!("../../../cube-schemas/dimensions/time.toml")),
            file("c.toml", SchemaKind::Cube, cube),
        ])
        .unwrap()
    }

    fn query(drilldowns: &[&str], cuts: &[&str]) -> Query {
        Query {
            cube: "c".into(),
            measures: vec!["n".into()],
            drilldowns: drilldowns.iter().map(|d| (*d).to_owned()).collect(),
            cuts: cuts.iter().map(|c| c.parse().unwrap()).collect(),
            ..Query::default()
        }
    }

    fn cut_keys(cut: &str) -> Vec<String> {
        let model = model();
        let plan = plan(&model, &query(&[], &[cut])).unwrap();
        plan.cuts[0].keys().into_iter().map(str::to_owned).collect()
    }

    #[test]
    fn cuts_on_coarse_levels_expand_to_fact_keys() {
        assert_eq!(cut_keys("area=Ortsbezirke"), ["10", "11", "12", "13", "14", "15", "16", "17", "18"]);
        assert_eq!(cut_keys("district=Kernstadt").len(), 9, "a role-only cut finds members on any level");
        assert_eq!(cut_keys("district=KL").len(), 18);
        assert_eq!(cut_keys("age_band=15-17"), ["15", "16", "17"]);
        assert_eq!(cut_keys("age=16..19"), ["16", "17", "18", "19"]);
        assert_eq!(cut_keys("age=15-17..18-24").len(), 10, "ranges work on bands too");
        assert_eq!(cut_keys("year=2024"), ["2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4"]);
    }

    #[test]
    fn drilldown_names_and_levels() {
        let model = model();
        let p = plan(&model, &query(&["district.area", "age_band", "month.year"], &[])).unwrap();
        let names: Vec<&str> = p.drilldowns.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["area", "age_band", "year"]);
        let p = plan(&model, &query(&["month"], &[])).unwrap();
        assert_eq!(p.drilldowns[0].0.level_name(), "quarter", "a role drills at the level its facts are recorded");
    }

    #[test]
    fn levels_finer_than_the_facts_are_refused() {
        let model = model();
        let err = plan(&model, &query(&["month.month"], &[])).unwrap_err();
        assert_eq!(err.to_string(), "cube c records month by quarter; level month is finer than that");
        let err = plan(&model, &query(&[], &["month=2024-06"])).unwrap_err();
        assert!(matches!(err, Error::TooFine { .. }), "{err}");
    }
}
