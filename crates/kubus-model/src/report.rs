//! Report definitions (`cube-schemas/reports/*.toml`): a title, the period parameter, and sections — text, indicator
//! tiles, tables, charts and maps — each of them a cube query whose cuts may name the period (`{period}`,
//! `{period-12}`). Validation checks cubes, measures, drilldown roles and that a map's level has a map; the query
//! planner checks the rest when the report runs.

use crate::diagnostic::Sink;
use crate::raw::{RawReport, RawSection};
use crate::{Cube, Dimension, Level, closest};
use std::collections::BTreeMap;

/// What a section shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionKind {
    /// A paragraph (a template: `{{ period_label }}`, `{{ title }}`).
    Text(String),
    /// One tile per measure: its value for the whole cut, and the values of `change` measures beside it.
    Tiles,
    /// A table: the first `rows` drilldowns down the side, the rest across.
    Table {
        /// How many of the drilldowns are row levels; the others are column levels.
        rows: usize,
    },
    /// A chart of its measures: bars or lines side by side (a line chart of one measure also with its forecast), a
    /// stacked chart of one.
    Chart(ChartKind),
    /// A thematic map (choropleth) of its one measure over the drilldown's level, which has a `geometry`.
    Map,
}

/// A chart's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    /// Horizontal bars, one per member of the drilldown (and measure: a group per member).
    Bars,
    /// A line (per measure) over the members of the (time) drilldown.
    Line,
    /// Bars stacked by the second drilldown.
    Stacked,
}

/// One section of a report.
#[derive(Debug, Clone)]
pub struct Section {
    /// Heading.
    pub title: String,
    /// What it shows.
    pub kind: SectionKind,
    /// The cube it asks (empty for text).
    pub cube: String,
    /// Measures.
    pub measures: Vec<String>,
    /// Drilldowns (rows first for tables).
    pub drilldowns: Vec<String>,
    /// Cuts, with `{period}` / `{period-N}` placeholders.
    pub cuts: Vec<String>,
    /// Whether to add totals.
    pub totals: bool,
    /// A note under the section.
    pub note: Option<String>,
    /// A map's class limits, ascending: a value below the first is in the first class, one at or above the last
    /// in the last. Empty: five classes of equal counts.
    pub breaks: Vec<f64>,
}

/// The most class limits a map takes: its colour scheme has at most eight classes.
pub const MAX_BREAKS: usize = 7;

/// A validated report definition.
#[derive(Debug, Clone)]
pub struct Report {
    name: String,
    title: String,
    description: Option<String>,
    schedule: Option<String>,
    threshold: Option<u64>,
    sections: Vec<Section>,
}

impl Report {
    /// Report name, as in `kubus report run <name>`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Title (a template like the text sections).
    pub fn title(&self) -> &str {
        &self.title
    }
    /// Free-text description.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// When the scheduler runs it (a cron expression), if at all.
    pub fn schedule(&self) -> Option<&str> {
        self.schedule.as_deref()
    }
    /// A disclosure threshold of its own, stricter or looser than the project's.
    pub fn threshold(&self) -> Option<u64> {
        self.threshold
    }
    /// Its sections, in order.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }
}

/// Why a chart or map cannot draw `measures`, if it cannot.
fn undrawn(cube: &Cube, cubes: &BTreeMap<String, Cube>, kind: &SectionKind, measures: &[String]) -> Option<String> {
    let forecast_of = |m: &str| match cube.measure(m).map(crate::Measure::kind) {
        Ok(crate::MeasureKind::Forecast { of, .. }) => Some(of.as_str()),
        _ => None,
    };
    match (kind, measures) {
        (_, [_]) => None,
        (SectionKind::Chart(ChartKind::Line), [m, f]) if forecast_of(f) == Some(m) => None,
        (SectionKind::Map | SectionKind::Chart(ChartKind::Stacked), _) => Some(
            "a map or stacked chart shows one measure: give the others sections of their own, or show them in a table"
                .to_owned(),
        ),
        _ if measures.iter().any(|m| forecast_of(m).is_some()) => Some(
            "a chart of several measures draws no forecast: a line chart shows one measure with its forecast"
                .to_owned(),
        ),
        _ => {
            let (proportions, amounts): (Vec<&String>, Vec<&String>) =
                measures.iter().partition(|m| is_proportion(cube, cubes, m));
            (!proportions.is_empty() && !amounts.is_empty()).then(|| {
                format!(
                    "a chart draws its measures on one axis: the ratios or shares {} do not go beside the amounts {}; \
                     give them a chart of their own",
                    names(&proportions),
                    names(&amounts)
                )
            })
        }
    }
}

fn names(measures: &[&String]) -> String {
    measures.iter().map(|m| format!("'{m}'")).collect::<Vec<_>>().join(", ")
}

/// Whether a measure is a ratio, a share or a change in percent (rather than an amount of persons, hours, …).
fn is_proportion(cube: &Cube, cubes: &BTreeMap<String, Cube>, measure: &str) -> bool {
    use crate::MeasureKind as K;
    match cube.measure(measure).map(crate::Measure::kind) {
        Ok(K::Ratio { .. } | K::Share { .. }) => true,
        Ok(K::TimeComparison { change: crate::Change::Percent, .. }) => true,
        Ok(K::TimeComparison { of, .. } | K::Forecast { of, .. } | K::Difference { minuend: of, .. }) => {
            is_proportion(cube, cubes, of)
        }
        Ok(K::From { cube: other, measure }) => cubes.get(other).is_some_and(|c| is_proportion(c, cubes, measure)),
        _ => false,
    }
}

/// The cuts of a section with the period filled in: `{period}` is the month key, `{period-N}` the month N months
/// earlier, `{period_year}` its year. `None` for a period that is not a month key (`2024-06`) or a placeholder it cannot read.
pub fn fill_period(cut: &str, period: &str) -> Option<String> {
    let (year, month) = period.split_once('-')?;
    let (year, month): (i32, i32) = (year.parse().ok()?, month.parse().ok()?);
    if !(1..=12).contains(&month) || period.len() != 7 {
        return None;
    }
    let mut out = String::new();
    let replaced = cut.replace("{period_year}", &format!("{year:04}"));
    let mut rest = replaced.as_str();
    while let Some(start) = rest.find("{period") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}')? + start;
        let back: i32 = match &rest[start + 7..end] {
            "" => 0,
            n => n.strip_prefix('-')?.parse().ok()?,
        };
        let index = year * 12 + month - 1 - back;
        out.push_str(&format!("{:04}-{:02}", index.div_euclid(12), index.rem_euclid(12) + 1));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

pub(crate) fn lower(
    raw: RawReport,
    cubes: &BTreeMap<String, Cube>,
    dimensions: &BTreeMap<String, Dimension>,
    sink: &mut Sink<'_>,
) -> Option<Report> {
    let before = sink.out.len();
    let mut sections = Vec::new();
    for (i, s) in raw.sections.iter().enumerate() {
        if let Some(section) = lower_section(s.get_ref(), &format!("sections[{i}]"), s.span(), cubes, dimensions, sink)
        {
            sections.push(section);
        }
    }
    if raw.sections.is_empty() {
        sink.at(Some(raw.name.span()), "sections", "a report needs at least one section");
    }
    (sink.out.len() == before).then(|| Report {
        name: raw.name.into_inner(),
        title: raw.title,
        description: raw.description,
        schedule: raw.schedule,
        threshold: raw.threshold,
        sections,
    })
}

fn lower_section(
    s: &RawSection,
    path: &str,
    span: std::ops::Range<usize>,
    cubes: &BTreeMap<String, Cube>,
    dimensions: &BTreeMap<String, Dimension>,
    sink: &mut Sink<'_>,
) -> Option<Section> {
    let kinds = ["text", "tiles", "table", "bars", "line", "stacked", "map"];
    let kind = match s.kind.get_ref().as_str() {
        "text" => SectionKind::Text(s.text.clone().unwrap_or_default()),
        "tiles" => SectionKind::Tiles,
        "table" => SectionKind::Table { rows: s.rows.len() },
        "bars" => SectionKind::Chart(ChartKind::Bars),
        "line" => SectionKind::Chart(ChartKind::Line),
        "stacked" => SectionKind::Chart(ChartKind::Stacked),
        "map" => SectionKind::Map,
        other => {
            sink.with(
                Some(s.kind.span()),
                format!("{path}.kind"),
                format!("unknown section kind '{other}'"),
                kinds.map(String::from).to_vec(),
            );
            return None;
        }
    };
    let drilldowns: Vec<String> = s.rows.iter().chain(&s.columns).cloned().collect();
    let section = Section {
        title: s.title.clone().unwrap_or_default(),
        kind: kind.clone(),
        cube: s.cube.as_ref().map(|c| c.get_ref().clone()).unwrap_or_default(),
        measures: s.measures.clone(),
        drilldowns,
        cuts: s.cuts.clone(),
        totals: s.totals,
        note: s.note.clone(),
        breaks: s.breaks.as_ref().map(|b| b.get_ref().clone()).unwrap_or_default(),
    };
    if let Some(breaks) = &s.breaks {
        let at = Some(breaks.span());
        let limits = breaks.get_ref();
        if kind != SectionKind::Map {
            sink.at(at, format!("{path}.breaks"), "class limits (`breaks`) are for maps only");
        } else if limits.is_empty() || limits.len() > MAX_BREAKS {
            let message = format!("a map takes 1 to {MAX_BREAKS} class limits, not {}", limits.len());
            sink.at(at, format!("{path}.breaks"), message);
        } else if limits.iter().any(|b| !b.is_finite()) || limits.windows(2).any(|w| w[0] >= w[1]) {
            sink.at(at, format!("{path}.breaks"), "class limits must be numbers in ascending order, each once");
        }
    }
    if let SectionKind::Text(text) = &kind {
        if text.is_empty() {
            sink.at(Some(span), format!("{path}.text"), "a text section needs `text`");
            return None;
        }
        return Some(section);
    }
    let Some(cube_name) = &s.cube else {
        sink.at(Some(span), format!("{path}.cube"), "this section asks a cube: name it with `cube`");
        return None;
    };
    let Some(cube) = cubes.get(cube_name.get_ref()) else {
        sink.with(
            Some(cube_name.span()),
            format!("{path}.cube"),
            format!("unknown cube '{}'", cube_name.get_ref()),
            closest(cube_name.get_ref(), cubes.keys().map(String::as_str)),
        );
        return None;
    };
    let before = sink.out.len();
    if section.measures.is_empty() {
        sink.at(Some(span.clone()), format!("{path}.measures"), "this section needs at least one measure");
    }
    for m in &section.measures {
        if let Err(e) = cube.measure(m) {
            sink.at(Some(span.clone()), format!("{path}.measures"), e.to_string());
        }
    }
    for d in &section.drilldowns {
        let role = d.split_once('.').map_or(d.as_str(), |(r, _)| r);
        let known = cube.dimensions().iter().any(|r| r.name() == role) || !d.contains('.');
        if !known {
            sink.at(
                Some(span.clone()),
                format!("{path}.rows"),
                format!("cube {} has no dimension role '{role}'", cube.name()),
            );
        }
    }
    for c in &section.cuts {
        if fill_period(c, "2024-06").is_none() {
            sink.at(
                Some(span.clone()),
                format!("{path}.cuts"),
                format!(
                    "cannot read the period placeholder in '{c}': write {{period}}, {{period-12}} or {{period_year}}"
                ),
            );
        }
    }
    // Every measure of a chart or map is drawn: bars and lines side by side on one axis (so amounts and proportions
    // do not mix), a line also with its forecast; a stacked chart or a map has room for one.
    if matches!(kind, SectionKind::Chart(_) | SectionKind::Map)
        && sink.out.len() == before
        && let Some(problem) = undrawn(cube, cubes, &kind, &section.measures)
    {
        sink.at(Some(span.clone()), format!("{path}.measures"), problem);
    }
    match &kind {
        SectionKind::Chart(ChartKind::Stacked) if section.drilldowns.len() != 2 => {
            sink.at(
                Some(span),
                path.to_owned(),
                "a stacked chart needs two drilldowns: the bars, then what they stack",
            );
        }
        SectionKind::Chart(ChartKind::Bars | ChartKind::Line) if section.drilldowns.len() != 1 => {
            sink.at(Some(span), path.to_owned(), "a bar or line chart needs one drilldown");
        }
        SectionKind::Table { .. } if section.drilldowns.is_empty() => {
            sink.at(Some(span), path.to_owned(), "a table needs at least one row drilldown (`rows`)");
        }
        SectionKind::Map if section.drilldowns.len() != 1 => {
            sink.at(Some(span), path.to_owned(), "a map needs one drilldown: the level whose areas it colours");
        }
        SectionKind::Map => {
            let drilldown = &section.drilldowns[0];
            match level_of(cube, dimensions, drilldown) {
                Some(level) if level.geometry().is_some() => {}
                Some(level) => sink.at(
                    Some(span),
                    format!("{path}.rows"),
                    format!(
                        "level {} ({drilldown}) has no map: give it `geometry = {{ file = \"geo/….geojson\", key = \"…\" }}` in its dimension's schema",
                        level.name()
                    ),
                ),
                // An unknown drilldown is reported above, or by the query when it is a level name it cannot place.
                None => {}
            }
        }
        _ => {}
    }
    (sink.out.len() == before).then_some(section)
}

/// The level a drilldown names in a cube: `role.level`, a role alone (its recorded level), or a level name that
/// one role's dimension has. `None` where it names none of these, or a level of several roles.
fn level_of<'a>(cube: &Cube, dimensions: &'a BTreeMap<String, Dimension>, drilldown: &str) -> Option<&'a Level> {
    let levels = |role: &crate::CubeDimension| dimensions.get(role.dimension()).map(Dimension::levels);
    if let Some((role, level)) = drilldown.split_once('.') {
        return levels(cube.dimension(role).ok()?)?.iter().find(|l| l.name() == level);
    }
    if let Ok(role) = cube.dimension(drilldown) {
        return levels(role)?.get(role.fact_level());
    }
    let mut found =
        cube.dimensions().iter().filter_map(levels).filter_map(|ls| ls.iter().find(|l| l.name() == drilldown));
    match (found.next(), found.next()) {
        (Some(level), None) => Some(level),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::fill_period;

    #[test]
    fn period_placeholders_count_months_back() {
        assert_eq!(fill_period("month={period}", "2024-06").as_deref(), Some("month=2024-06"));
        assert_eq!(fill_period("month={period-23}..{period}", "2024-06").as_deref(), Some("month=2022-07..2024-06"));
        assert_eq!(fill_period("month={period-6}", "2024-03").as_deref(), Some("month=2023-09"));
        assert_eq!(fill_period("start_month.year={period_year}", "2024-06").as_deref(), Some("start_month.year=2024"));
        assert_eq!(fill_period("month={period}", "2024-13"), None);
        assert_eq!(fill_period("month={periodX}", "2024-06"), None);
    }
}
