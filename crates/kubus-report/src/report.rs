//! Reports: a sequence of sections (text, indicator tiles, tables, charts, maps), each holding a result table,
//! rendered as self-contained HTML (inline SVG charts and maps, printable on A4), Markdown, one XLSX workbook (a sheet per table and a
//! legend), and one German CSV and one JSON-stat dataset per table. HTML and Markdown come from minijinja templates
//! the office may replace. The output depends on the document only, so the same data gives the same bytes.

pub use crate::display::german;
use crate::display::{html_part, slug};
use crate::map::Areas;
use crate::text::display_rows;
use crate::{Format, Result, Table, xlsx};
use arrow::datatypes::DataType;
use minijinja::{Environment, Value, context};
use std::path::{Path, PathBuf};

/// The default HTML template.
pub const HTML_TEMPLATE: &str = include_str!("../templates/report.html.j2");
/// The default Markdown template.
pub const MARKDOWN_TEMPLATE: &str = include_str!("../templates/report.md.j2");

/// A chart's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    /// Horizontal bars.
    Bars,
    /// A line over the categories.
    Line,
    /// Bars stacked by a second drilldown.
    Stacked,
}

/// An indicator tile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tile {
    /// What it shows.
    pub label: String,
    /// The value as shown (or a suppression symbol).
    pub value: String,
    /// A line under the value (the change against last year).
    pub detail: Option<String>,
}

/// What a section holds.
#[derive(Debug, Clone)]
pub enum Body {
    /// A paragraph.
    Text(String),
    /// Indicator tiles.
    Tiles(Vec<Tile>),
    /// A table whose first `rows` drilldowns go down the side, the others across.
    Table {
        /// The result.
        table: Table,
        /// Number of row drilldowns.
        rows: usize,
    },
    /// A chart of the table's measures (a line with a forecast: its observed measure and the forecast).
    Chart {
        /// The result.
        table: Table,
        /// Its form.
        chart: Chart,
    },
    /// A thematic map of the table's first measure over the areas of its drilldown's level.
    Map {
        /// The result.
        table: Table,
        /// The level's areas.
        areas: Areas,
        /// The class limits, ascending (empty: five classes of equal counts).
        breaks: Vec<f64>,
    },
}

/// One section of a report.
#[derive(Debug, Clone)]
pub struct Part {
    /// Heading.
    pub title: String,
    /// Content.
    pub body: Body,
    /// A note under it.
    pub note: Option<String>,
}

/// A report ready to render.
#[derive(Debug, Clone)]
pub struct Document {
    /// Report name (file names).
    pub name: String,
    /// Title.
    pub title: String,
    /// Who publishes it.
    pub organisation: String,
    /// The period key (`2024-06`).
    pub period: String,
    /// The period for people (`Juni 2024`).
    pub period_label: String,
    /// Which data it was computed from (cube versions), e.g. `newcomers Version 3`.
    pub provenance: String,
    /// The disclosure rule it applied, for people.
    pub disclosure: String,
    /// Its sections.
    pub parts: Vec<Part>,
}

/// Templates for HTML and Markdown (the defaults unless the project has its own).
#[derive(Debug, Clone)]
pub struct Templates {
    /// HTML template.
    pub html: String,
    /// Markdown template.
    pub markdown: String,
}

impl Default for Templates {
    fn default() -> Self {
        Templates { html: HTML_TEMPLATE.to_owned(), markdown: MARKDOWN_TEMPLATE.to_owned() }
    }
}

/// A table laid out for reading: header lines, then rows of cells (row labels first), with total rows marked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    /// Column headings.
    pub header: Vec<String>,
    /// Cells, as shown.
    pub rows: Vec<Vec<String>>,
    /// Which rows are totals.
    pub totals: Vec<bool>,
    /// Which columns hold numbers.
    pub numeric: Vec<bool>,
}

/// Lays a result out as a grid: the labels of the first `rows` drilldowns down the side; with further drilldowns,
/// one column per member of them (and measure), in the order they first appear.
pub fn grid(table: &Table, rows: usize) -> Result<Grid> {
    use crate::ColumnKind;
    let shown = display_rows(table, Some(2), false)?;
    let col = |name: &str| shown.names.iter().position(|n| n == name);
    let labels: Vec<usize> =
        table.columns.iter().filter(|c| c.kind == ColumnKind::Label).filter_map(|c| col(&c.name)).collect();
    let measures: Vec<usize> =
        table.columns.iter().filter(|c| c.kind == ColumnKind::Measure).filter_map(|c| col(&c.name)).collect();
    let total = table.columns.iter().find(|c| c.kind == ColumnKind::Total).and_then(|c| col(&c.name));
    let heading = |i: usize| {
        table.columns.iter().find(|c| c.name == shown.names[i]).map_or(shown.names[i].clone(), |c| c.heading.clone())
    };
    let cell = |row: &[Option<String>], i: usize| german(row[i].as_deref().unwrap_or(""), &shown.types[i]);
    let (side, across) = labels.split_at(rows.min(labels.len()));
    let mut header: Vec<String> = side.iter().map(|&i| heading(i).replace(" (Bezeichnung)", "")).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut totals = Vec::new();
    if across.is_empty() {
        header.extend(measures.iter().map(|&i| heading(i)));
        for row in &shown.rows {
            out.push(side.iter().chain(&measures).map(|&i| cell(row, i)).collect());
            totals.push(total.is_some_and(|t| row[t].as_deref() == Some("true")));
        }
    } else {
        let mut keys: Vec<Vec<String>> = Vec::new();
        let mut columns: Vec<Vec<String>> = Vec::new();
        for row in &shown.rows {
            let key: Vec<String> = side.iter().map(|&i| cell(row, i)).collect();
            let column: Vec<String> = across.iter().map(|&i| cell(row, i)).collect();
            if !keys.contains(&key) {
                keys.push(key);
            }
            if !columns.contains(&column) {
                columns.push(column);
            }
        }
        // Members in the order the answer brings them, totals last.
        columns.sort_by_key(|c| c.iter().any(|k| k == crate::TOTAL_LABEL));
        for column in &columns {
            for &m in &measures {
                let name = column.join(" / ");
                header.push(if measures.len() > 1 { format!("{name}: {}", heading(m)) } else { name });
            }
        }
        for key in &keys {
            let mut line = key.clone();
            let mut is_total = false;
            for column in &columns {
                let found = shown.rows.iter().find(|r| {
                    side.iter().map(|&i| cell(r, i)).eq(key.iter().cloned())
                        && across.iter().map(|&i| cell(r, i)).eq(column.iter().cloned())
                });
                for &m in &measures {
                    line.push(found.map(|r| cell(r, m)).unwrap_or_default());
                }
                is_total |= key.iter().any(|k| k == crate::TOTAL_LABEL);
            }
            out.push(line);
            totals.push(is_total);
        }
    }
    let numeric = (0..header.len()).map(|i| i >= side.len()).collect();
    Ok(Grid { header, rows: out, totals, numeric })
}

/// The HTML of a table (see `templates/parts.html.j2`).
fn html_table(g: &Grid) -> Result<String> {
    let rows: Vec<Value> =
        g.rows.iter().zip(&g.totals).map(|(cells, total)| context! { cells, total => *total }).collect();
    html_part(context! { part => "table", grid => context! { header => g.header, rows, numeric => g.numeric } })
}

fn markdown_table(g: &Grid) -> String {
    let line = |cells: &[String]| {
        format!("| {} |", cells.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | "))
    };
    let mut out = vec![
        line(&g.header),
        format!("|{}|", g.numeric.iter().map(|n| if *n { "---:" } else { "---" }).collect::<Vec<_>>().join("|")),
    ];
    for (row, total) in g.rows.iter().zip(&g.totals) {
        let cells: Vec<String> =
            row.iter().map(|c| if *total && !c.is_empty() { format!("**{c}**") } else { c.clone() }).collect();
        out.push(line(&cells));
    }
    out.join("\n")
}

/// A chart's data: the headings of its measures, and per row its category label, its stack label (a second
/// drilldown's member) and each measure's value (`None` if suppressed); forecast rows are not among them (see
/// [`forecast_points`]).
struct Points {
    measures: Vec<String>,
    rows: Vec<Point>,
}

/// One row of a chart: its category, its stack, and the measures' values.
type Point = (String, String, Vec<Option<f64>>);

impl Points {
    fn of(table: &Table) -> Result<Points> {
        use crate::ColumnKind;
        let shown = display_rows(table, None, false)?;
        let col = |name: &str| shown.names.iter().position(|n| n == name);
        let labels: Vec<usize> =
            table.columns.iter().filter(|c| c.kind == ColumnKind::Label).filter_map(|c| col(&c.name)).collect();
        let forecast = table.columns.iter().find(|c| c.kind == ColumnKind::Forecast).and_then(|c| col(&c.name));
        let measures: Vec<(usize, &str)> = charted(table)
            .into_iter()
            .filter_map(|i| Some((col(&table.columns[i].name)?, table.columns[i].heading.as_str())))
            .collect();
        let total = table.columns.iter().find(|c| c.kind == ColumnKind::Total).and_then(|c| col(&c.name));
        let rows = shown
            .rows
            .iter()
            .filter(|r| total.is_none_or(|t| r[t].as_deref() != Some("true")))
            .filter(|r| forecast.is_none_or(|f| r[f].is_none()))
            .map(|r| {
                let text = |i: Option<&usize>| i.and_then(|&i| r[i].clone()).unwrap_or_default();
                let values = measures.iter().map(|&(m, _)| r[m].as_deref()?.parse::<f64>().ok()).collect();
                (text(labels.first()), text(labels.get(1)), values)
            })
            .collect();
        Ok(Points { measures: measures.iter().map(|&(_, h)| h.to_owned()).collect(), rows })
    }

    /// The smallest (at most 0) and the largest value drawn (at least 1): a chart's scale.
    fn range(&self) -> (f64, f64) {
        let values = || self.rows.iter().flat_map(|r| r.2.iter().flatten());
        (values().fold(0.0_f64, |a, &b| a.min(b)), values().fold(1.0_f64, |a, &b| a.max(b)))
    }
}

/// The columns of the measures a chart draws as series of their own: every measure, but of a line with a forecast
/// only its observed one (the forecast's point and bounds have values on the forecast rows only, drawn apart).
fn charted(table: &Table) -> Vec<usize> {
    use crate::ColumnKind;
    let forecast = table.columns.iter().any(|c| c.kind == ColumnKind::Forecast);
    let measures = (0..table.columns.len()).filter(|&i| table.columns[i].kind == ColumnKind::Measure);
    measures.take(if forecast { 1 } else { usize::MAX }).collect()
}

/// A forecast row of a chart: its label, the forecast and the bounds of its interval.
type Forecast = (String, f64, f64, f64);

/// The forecast rows of a table (no totals): the first label, and in the row the first measure with a value (the
/// forecast; the observed measures are empty there) with the two after it (its interval's bounds).
fn forecast_points(table: &Table) -> Result<Vec<Forecast>> {
    use crate::ColumnKind;
    let shown = display_rows(table, None, false)?;
    let col = |name: &str| shown.names.iter().position(|n| n == name);
    let Some(forecast) = table.columns.iter().find(|c| c.kind == ColumnKind::Forecast).and_then(|c| col(&c.name))
    else {
        return Ok(Vec::new());
    };
    let label = table.columns.iter().find(|c| c.kind == ColumnKind::Label).and_then(|c| col(&c.name));
    let measures: Vec<usize> =
        table.columns.iter().filter(|c| c.kind == ColumnKind::Measure).filter_map(|c| col(&c.name)).collect();
    let number = |r: &[Option<String>], i: Option<&usize>| i.and_then(|&i| r[i].as_deref()?.parse::<f64>().ok());
    Ok(shown
        .rows
        .iter()
        .filter(|r| r[forecast].is_some())
        .filter_map(|r| {
            let first = measures.iter().position(|&m| r[m].is_some())?;
            let (point, lower, upper) = (
                number(r, measures.get(first))?,
                number(r, measures.get(first + 1))?,
                number(r, measures.get(first + 2))?,
            );
            Some((label.and_then(|l| r[l].clone()).unwrap_or_default(), point, lower, upper))
        })
        .collect())
}

const COLOURS: [&str; 7] = ["#00589c", "#7fb2dc", "#f0a202", "#3b8f5a", "#a8324a", "#6c5b7b", "#99a3ad"];

/// A chart's marks, as `templates/parts.html.j2` draws them: every number already written as the chart shows it.
mod mark {
    use minijinja::{Value, context};

    /// A text at (`x`, `y`), its end or middle there if `anchor` says so.
    pub fn label(x: String, y: String, anchor: Option<&str>, text: &str) -> Value {
        context! { kind => "label", x, y, anchor, text }
    }

    /// A bar with its value in words (`title`).
    pub fn bar(x: String, y: String, width: String, height: String, fill: &str, title: String) -> Value {
        context! { kind => "bar", x, y, width, height, fill, title }
    }

    /// A legend's coloured square.
    pub fn swatch(x: String, y: String, fill: &str) -> Value {
        context! { kind => "swatch", x, y, fill }
    }

    /// A grey line across the chart at `y`, dashed for the zero line.
    pub fn rule(x1: String, x2: String, y: String, dashed: bool) -> Value {
        context! { kind => "rule", x1, x2, y, dashed }
    }

    /// A point of a line with its value in words; a forecast's point is white with a `stroke`.
    pub fn dot(x: String, y: String, fill: &str, stroke: Option<&str>, title: String) -> Value {
        context! { kind => "dot", x, y, fill, stroke, title }
    }

    /// A line through the points `d` (an SVG path), dashed for a forecast.
    pub fn line(class: Option<&str>, d: String, stroke: &str, dashed: bool) -> Value {
        context! { kind => "line", class, d, stroke, dashed }
    }

    /// A forecast's interval: the area between its bounds.
    pub fn band(points: String, fill: &str) -> Value {
        context! { kind => "band", points, fill }
    }
}

/// A chart: its size, its marks, and its legend (marks drawn from y = 0) moved down to `legend_y`.
fn chart_html(width: f64, height: f64, marks: Vec<Value>, legend: Vec<Value>, legend_y: f64) -> Result<String> {
    let chart_data = context! {
        width => width.to_string(), height => height.to_string(), marks, legend, legend_y => legend_y.to_string(),
    };
    html_part(context! { part => "chart", chart_data })
}

fn svg(table: &Table, chart: Chart, symbol: &str) -> Result<String> {
    let points = Points::of(table)?;
    let (low, max) = points.range();
    let shown = |v: f64| german(&v.to_string(), &DataType::Float64).trim_end_matches(",00").to_owned();
    let mut marks = Vec::new();
    match chart {
        Chart::Bars => {
            // One bar per measure, side by side in each member's row.
            let n = points.measures.len().max(1);
            let (w, bar) = (560.0, if n == 1 { 15.0 } else { 12.0 });
            let row = bar * n as f64 + 5.0;
            let (legend, legend_height) =
                if n > 1 { chart_legend(&points.measures, 20.0, w - 10.0) } else { (Vec::new(), 0.0) };
            let bars_end = row * points.rows.len() as f64 + 10.0;
            // A bar runs from zero to its value: to the left for a value below zero.
            let x = |v: f64| 250.0 + (v - low) / (max - low) * 260.0;
            for (i, (label, _, values)) in points.rows.iter().enumerate() {
                let y = i as f64 * row + 5.0;
                let middle = y + bar * n as f64 / 2.0 + 4.0;
                marks.push(mark::label("245".into(), middle.to_string(), Some("end"), label));
                for (m, value) in values.iter().enumerate() {
                    let y = y + bar * m as f64;
                    let base = (y + bar - 2.0).to_string();
                    let what = if n > 1 { format!("{}: ", points.measures[m]) } else { String::new() };
                    match value {
                        Some(v) => {
                            let (from, to) = (x(0.0).min(x(*v)), x(0.0).max(x(*v)));
                            let title = format!("{label}{}{what}{}", if n > 1 { ", " } else { ": " }, shown(*v));
                            let (width, height) = (format!("{:.1}", to - from), (bar - 1.0).to_string());
                            let fill = COLOURS[m % COLOURS.len()];
                            marks.push(mark::bar(format!("{from:.1}"), y.to_string(), width, height, fill, title));
                            marks.push(mark::label(format!("{:.1}", to + 5.0), base, None, &shown(*v)));
                        }
                        None => marks.push(mark::label(format!("{:.1}", x(0.0) + 5.0), base, None, symbol)),
                    }
                }
            }
            chart_html(w, bars_end + legend_height, marks, legend, bars_end)
        }
        Chart::Line => {
            let (w, h, left, top, bottom) = (560.0, 220.0, 50.0, 10.0, 190.0);
            let forecasts = forecast_points(table)?;
            let max = forecasts.iter().map(|f| f.3).fold(max, f64::max);
            let low = forecasts.iter().map(|f| f.2).fold(low, f64::min);
            let all = points.rows.len() + forecasts.len();
            let step = if all > 1 { (w - left - 10.0) / (all - 1) as f64 } else { 0.0 };
            // At most seven labels on the axis, evenly spaced: a month's label is wider than a month.
            let every = all.div_ceil(7).max(1);
            let n = points.measures.len();
            let (legend, legend_height) =
                if n > 1 { chart_legend(&points.measures, left, w - 10.0) } else { (Vec::new(), 0.0) };
            // A line across the chart at `y`, and a value at the axis' foot of `y`.
            let across =
                |y: f64, dashed| mark::rule(left.to_string(), (w - 10.0).to_string(), format!("{y:.1}"), dashed);
            let at_axis = |y: f64, value: f64| {
                let value = german(&format!("{value:.0}"), &DataType::Int64);
                mark::label((left - 5.0).to_string(), y.to_string(), Some("end"), &value)
            };
            marks.push(across(bottom, false));
            marks.push(at_axis(top + 10.0, max));
            if low < 0.0 {
                // Values below zero: the zero line, and the lowest value at the foot of the axis.
                marks.push(across(bottom - -low / (max - low) * (bottom - top), true));
                marks.push(at_axis(bottom, low));
            }
            let axis_label = |x: f64, label: &str| {
                mark::label(format!("{x:.1}"), (bottom + 16.0).to_string(), Some("middle"), label)
            };
            for (i, (label, _, _)) in points.rows.iter().enumerate() {
                if i.is_multiple_of(every) {
                    marks.push(axis_label(left + step * i as f64, label));
                }
            }
            // One line per measure; a suppressed member breaks it.
            for m in 0..n {
                let colour = COLOURS[m % COLOURS.len()];
                let mut path = String::new();
                let mut drawing = false;
                for (i, (label, _, values)) in points.rows.iter().enumerate() {
                    let x = left + step * i as f64;
                    let Some(v) = values[m] else {
                        drawing = false;
                        continue;
                    };
                    let y = bottom - (v - low) / (max - low) * (bottom - top);
                    path += &format!("{}{x:.1},{y:.1} ", if drawing { "L" } else { "M" });
                    drawing = true;
                    let what = if n > 1 { format!(", {}", points.measures[m]) } else { String::new() };
                    let title = format!("{label}{what}: {}", shown(v));
                    marks.push(mark::dot(format!("{x:.1}"), format!("{y:.1}"), colour, None, title));
                }
                marks.push(mark::line(None, path.trim_end().to_owned(), colour, false));
            }
            if !forecasts.is_empty() {
                let observed: Vec<Option<f64>> = points.rows.iter().map(|r| r.2.first().copied().flatten()).collect();
                forecast_marks(&forecasts, &observed, (left, step, top, bottom, low, max), every, &mut marks);
            }
            chart_html(w, h + legend_height, marks, legend, h)
        }
        Chart::Stacked => {
            // Each bar with its stacks' values, in the order they come.
            let mut bars: Vec<(String, Vec<Stacked>)> = Vec::new();
            let mut stacks: Vec<String> = Vec::new();
            for (bar, stack, values) in points.rows {
                let value = values.first().copied().flatten();
                if !stacks.contains(&stack) {
                    stacks.push(stack.clone());
                }
                match bars.iter_mut().find(|(b, _)| *b == bar) {
                    Some((_, parts)) => parts.push((stack, value)),
                    None => bars.push((bar, vec![(stack, value)])),
                }
            }
            let max = bars.iter().map(|(_, p)| p.iter().filter_map(|x| x.1).sum::<f64>()).fold(1.0_f64, f64::max);
            let (w, row) = (560.0, 20.0);
            let (legend, legend_height) = chart_legend(&stacks, 250.0, w - 10.0);
            let bars_end = row * bars.len() as f64 + 10.0;
            for (i, (bar, parts)) in bars.iter().enumerate() {
                let y = i as f64 * row + 5.0;
                marks.push(mark::label("245".into(), (y + 13.0).to_string(), Some("end"), bar));
                let mut x = 250.0;
                for (stack, value) in parts {
                    let colour = COLOURS[stacks.iter().position(|s| s == stack).unwrap_or(0) % COLOURS.len()];
                    if let Some(v) = value {
                        let bw = v / max * 290.0;
                        let title = format!("{stack}: {}", german(&v.to_string(), &DataType::Float64));
                        let (x_at, width) = (format!("{x:.1}"), format!("{bw:.1}"));
                        marks.push(mark::bar(x_at, y.to_string(), width, "15".into(), colour, title));
                        x += bw;
                    }
                }
            }
            chart_html(w, bars_end + legend_height, marks, legend, bars_end)
        }
    }
}

/// A chart's legend: a coloured square and the name of each series, from `x` to at most `right`, in as many lines as
/// the names need. Returns its marks (drawn from y = 0) and its height.
fn chart_legend(names: &[String], x: f64, right: f64) -> (Vec<Value>, f64) {
    const LINE: f64 = 16.0;
    let mut marks = Vec::new();
    let (mut at, mut y) = (x, 11.0);
    for (i, name) in names.iter().enumerate() {
        // About 6 px per character of 11 px text, and room to the next.
        let width = 24.0 + 6.0 * name.chars().count() as f64;
        if at > x && at + width > right {
            (at, y) = (x, y + LINE);
        }
        marks.push(mark::swatch(at.to_string(), (y - 9.0).to_string(), COLOURS[i % COLOURS.len()]));
        marks.push(mark::label((at + 14.0).to_string(), y.to_string(), None, name));
        at += width;
    }
    (marks, y + 5.0)
}

/// The forecast of a line chart: its interval as a light band, the forecast as a dashed line continuing the last
/// observed point, their labels on the axis (every `every`-th point's), and a legend line. `frame` is the chart's
/// (left, step, top, bottom, low, max).
fn forecast_marks(
    forecasts: &[Forecast],
    observed: &[Option<f64>],
    frame: (f64, f64, f64, f64, f64, f64),
    every: usize,
    marks: &mut Vec<Value>,
) {
    let (left, step, top, bottom, low, max) = frame;
    let y = |v: f64| bottom - (v - low) / (max - low) * (bottom - top);
    let x = |i: usize| left + step * (observed.len() + i) as f64;
    let start = observed.last().copied().flatten().map(|v| (left + step * (observed.len() - 1) as f64, y(v)));
    let mut band: Vec<(f64, f64)> = start.into_iter().collect();
    band.extend(forecasts.iter().enumerate().map(|(i, f)| (x(i), y(f.3))));
    band.extend(forecasts.iter().enumerate().rev().map(|(i, f)| (x(i), y(f.2))));
    let polygon: Vec<String> = band.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    marks.push(mark::band(polygon.join(" "), COLOURS[1]));
    let mut line: Vec<(f64, f64)> = start.into_iter().collect();
    line.extend(forecasts.iter().enumerate().map(|(i, f)| (x(i), y(f.1))));
    let d: Vec<String> =
        line.iter().enumerate().map(|(i, (x, y))| format!("{}{x:.1},{y:.1}", if i == 0 { "M" } else { "L" })).collect();
    marks.push(mark::line(Some("forecast"), d.join(" "), COLOURS[0], true));
    let number = |v: f64| german(&format!("{v}"), &DataType::Float64).trim_end_matches(",00").to_owned();
    for (i, (label, point, lower, upper)) in forecasts.iter().enumerate() {
        let title = format!("{label}: Prognose {} ({} bis {})", number(*point), number(*lower), number(*upper));
        marks.push(mark::dot(format!("{:.1}", x(i)), format!("{:.1}", y(*point)), "#fff", Some(COLOURS[0]), title));
        if (observed.len() + i).is_multiple_of(every) {
            marks.push(mark::label(format!("{:.1}", x(i)), (bottom + 16.0).to_string(), Some("middle"), label));
        }
    }
    let end = left + step * (observed.len() + forecasts.len()).saturating_sub(1) as f64;
    let text = "gestrichelt: Prognose, Fläche: Vorhersageintervall";
    marks.push(mark::label(format!("{end:.1}"), (top + 10.0).to_string(), Some("end"), text));
}

fn tiles_html(tiles: &[Tile]) -> Result<String> {
    let tile_list: Vec<Value> =
        tiles.iter().map(|t| context! { label => t.label, value => t.value, detail => t.detail }).collect();
    html_part(context! { part => "tiles", tile_list })
}

/// The document as the data of a live dashboard: its heading lines, and each part with its title, kind and note —
/// a text rendered as in the report files, tiles as shown, a table, chart or map as a JSON-stat dataset of exactly
/// the cells the report files hold (the same run, the same protection), a map also as the report files draw it
/// (`symbol` marks its areas without a shown value).
pub fn live(doc: &Document, symbol: &str) -> Result<serde_json::Value> {
    let env = Environment::new();
    let mut parts = Vec::new();
    for p in &doc.parts {
        let mut part = serde_json::json!({ "title": p.title, "note": p.note });
        match &p.body {
            Body::Text(t) => {
                let context = context! { period => doc.period, period_label => doc.period_label, title => doc.title };
                part["kind"] = "text".into();
                part["text"] = env.render_str(t, context)?.into();
            }
            Body::Tiles(tiles) => {
                part["kind"] = "tiles".into();
                part["tiles"] = tiles
                    .iter()
                    .map(|t| serde_json::json!({ "label": t.label, "value": t.value, "detail": t.detail }))
                    .collect();
            }
            Body::Table { table, rows } => {
                part["kind"] = "table".into();
                part["rows"] = (*rows).into();
                part["dataset"] = crate::json_stat::dataset(table)?;
            }
            Body::Chart { table, chart } => {
                part["kind"] = match chart {
                    Chart::Bars => "bars",
                    Chart::Line => "line",
                    Chart::Stacked => "stacked",
                }
                .into();
                part["dataset"] = crate::json_stat::dataset(table)?;
                // Several measures are drawn side by side, a series each.
                part["by_measure"] = (charted(table).len() > 1).into();
            }
            Body::Map { table, areas, breaks } => {
                // Drawn as in the report files (the dashboard shows the same picture, and the table under it).
                part["kind"] = "map".into();
                part["dataset"] = crate::json_stat::dataset(table)?;
                part["svg"] = crate::map::svg(table, areas, breaks, &p.title, symbol)?.into();
            }
        }
        parts.push(part);
    }
    Ok(serde_json::json!({
        "name": doc.name,
        "title": doc.title,
        "organisation": doc.organisation,
        "period": doc.period,
        "period_label": doc.period_label,
        "provenance": doc.provenance,
        "disclosure": doc.disclosure,
        "parts": parts,
    }))
}

/// The parts of the document as template values, with bodies rendered for `html` or Markdown.
fn parts(doc: &Document, html: bool, symbol: &str) -> Result<Vec<Value>> {
    // Text sections are rendered without escaping, then escaped once for HTML.
    let env = Environment::new();
    doc.parts
        .iter()
        .map(|p| {
            let (kind, body) = match &p.body {
                Body::Text(t) => {
                    // A text section is a template too: {{ period_label }}, {{ title }}.
                    let text = env.render_str(
                        t,
                        context! { period => doc.period, period_label => doc.period_label, title => doc.title },
                    )?;
                    ("text", if html { html_part(context! { part => "text", text })? } else { text })
                }
                Body::Tiles(tiles) if html => ("tiles", tiles_html(tiles)?),
                Body::Tiles(tiles) => (
                    "tiles",
                    tiles
                        .iter()
                        .map(|t| {
                            format!(
                                "- **{}**: {}{}",
                                t.label,
                                t.value,
                                t.detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                Body::Table { table, rows } => {
                    let g = grid(table, *rows)?;
                    ("table", if html { html_table(&g)? } else { markdown_table(&g) })
                }
                Body::Chart { table, chart } if html => ("chart", svg(table, *chart, symbol)?),
                Body::Chart { table, .. } => ("chart", markdown_table(&grid(table, table_rows(table))?)),
                Body::Map { table, areas, breaks } if html => {
                    ("map", crate::map::svg(table, areas, breaks, &p.title, symbol)?)
                }
                Body::Map { table, .. } => ("map", markdown_table(&grid(table, 1)?)),
            };
            let body = if html { Value::from_safe_string(body) } else { Value::from(body) };
            Ok(context! { kind, title => p.title, body, note => p.note })
        })
        .collect()
}

/// All label columns of a table go down the side (charts as tables).
fn table_rows(table: &Table) -> usize {
    table.columns.iter().filter(|c| c.kind == crate::ColumnKind::Label).count()
}

fn render(doc: &Document, template: &str, html: bool, symbol: &str) -> Result<String> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(move |_| if html { minijinja::AutoEscape::Html } else { minijinja::AutoEscape::None });
    env.add_template("report", template)?;
    let sections = parts(doc, html, symbol)?;
    let out = env.get_template("report")?.render(context! {
        title => doc.title, organisation => doc.organisation, period => doc.period, period_label => doc.period_label,
        provenance => doc.provenance, disclosure => doc.disclosure, sections,
    })?;
    Ok(out)
}

/// Writes every output of the report into `dir`: `<name>_<period>.html`, `.md`, `.xlsx`, and per table section
/// `tables/NN_<title>.csv` (German) and `.json` (JSON-stat). Returns the files written, in order.
pub fn write_all(doc: &Document, templates: &Templates, symbol: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    let base = format!("{}_{}", doc.name, doc.period);
    let mut written = Vec::new();
    let mut put = |path: PathBuf, bytes: &[u8]| -> Result<()> {
        std::fs::write(&path, bytes)?;
        written.push(path);
        Ok(())
    };
    put(dir.join(format!("{base}.html")), render(doc, &templates.html, true, symbol)?.as_bytes())?;
    put(dir.join(format!("{base}.md")), render(doc, &templates.markdown, false, symbol)?.as_bytes())?;

    let mut workbook = xlsx::new_workbook()?;
    let tables: Vec<(usize, &Part, &Table)> = doc
        .parts
        .iter()
        .filter_map(|p| match &p.body {
            Body::Table { table, .. } | Body::Chart { table, .. } | Body::Map { table, .. } => Some((p, table)),
            _ => None,
        })
        .enumerate()
        .map(|(i, (p, t))| (i + 1, p, t))
        .collect();
    for (n, part, table) in &tables {
        let name = xlsx::sheet_name(&format!("{n:02} {}", part.title));
        xlsx::add_sheet(&mut workbook, table, &name)?;
        if let Body::Chart { chart: chart @ (Chart::Bars | Chart::Line), .. } = part.body {
            native_chart(&mut workbook, &name, table, chart, &part.title)?;
        }
    }
    legend(&mut workbook, doc)?;
    put(dir.join(format!("{base}.xlsx")), &workbook.save_to_buffer()?)?;

    let tables_dir = dir.join("tables");
    std::fs::create_dir_all(&tables_dir)?;
    // CSV has no room for notes: they stand next to the files.
    let readme = format!(
        "{}\nBerichtsmonat {}\nDatenstand: {}\nGeheimhaltung: {}\nCSV: Semikolon, Dezimalkomma, UTF-8 mit BOM. JSON: JSON-stat 2.0, ein Datensatz je Tabelle.\n",
        doc.title, doc.period_label, doc.provenance, doc.disclosure
    );
    put(tables_dir.join("LIESMICH.txt"), readme.as_bytes())?;
    for (n, part, table) in &tables {
        let stem = format!("{n:02}_{}", slug(&part.title));
        let mut csv = Vec::new();
        crate::write(table, Format::CsvGerman, &mut csv)?;
        put(tables_dir.join(format!("{stem}.csv")), &csv)?;
        let mut titled = (*table).clone();
        titled.title = format!("{} — {}", doc.title, part.title);
        titled.notes = vec![format!("Datenstand: {}", doc.provenance), format!("Geheimhaltung: {}", doc.disclosure)];
        let mut json = Vec::new();
        crate::write(&titled, Format::JsonStat, &mut json)?;
        put(tables_dir.join(format!("{stem}.json")), &json)?;
    }
    Ok(written)
}

/// An Excel chart next to a one-drilldown table: its labels as categories, a series per measure (a line with a
/// forecast: its observed measure; a suppressed cell holds its symbol, which Excel leaves out of the chart).
fn native_chart(
    workbook: &mut rust_xlsxwriter::Workbook,
    sheet: &str,
    table: &Table,
    chart: Chart,
    title: &str,
) -> Result<()> {
    use crate::ColumnKind;
    use rust_xlsxwriter::{Chart as ExcelChart, ChartType};
    let shown: Vec<usize> = (0..table.columns.len()).filter(|&i| !table.is_status(i)).collect();
    let at = |kind: &ColumnKind| shown.iter().position(|&i| table.columns[i].kind == *kind).map(|p| p as u16);
    let charted = charted(table);
    let measures: Vec<u16> = (0..shown.len() as u16).filter(|&p| charted.contains(&shown[p as usize])).collect();
    let Some(label) = at(&ColumnKind::Label) else {
        return Ok(());
    };
    let rows = table.batches.iter().map(|b| b.num_rows()).sum::<usize>() as u32;
    if rows == 0 || measures.is_empty() {
        return Ok(());
    }
    let mut excel = ExcelChart::new(if chart == Chart::Bars { ChartType::Bar } else { ChartType::Line });
    excel.title().set_name(title);
    if measures.len() == 1 {
        excel.legend().set_hidden();
    }
    for &m in &measures {
        excel
            .add_series()
            .set_name((sheet, 0, m))
            .set_categories((sheet, 1, label, rows, label))
            .set_values((sheet, 1, m, rows, m));
    }
    if chart == Chart::Bars {
        // Excel draws bar charts bottom up; the first member belongs on top.
        excel.y_axis().set_reverse();
    }
    let worksheet = workbook.worksheet_from_name(sheet)?;
    worksheet.insert_chart(1, shown.len() as u16 + 1, &excel)?;
    Ok(())
}

/// The legend sheet: what the report is, which data it was computed from, and what the symbols mean.
fn legend(workbook: &mut rust_xlsxwriter::Workbook, doc: &Document) -> Result<()> {
    let sheet = workbook.add_worksheet();
    sheet.set_name("Legende")?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let lines = [
        ("Bericht", doc.title.as_str()),
        ("Berichtsmonat", doc.period_label.as_str()),
        ("Herausgeber", doc.organisation.as_str()),
        ("Datenstand", doc.provenance.as_str()),
        ("Geheimhaltung", doc.disclosure.as_str()),
    ];
    for (row, (key, value)) in lines.iter().enumerate() {
        sheet.write_string_with_format(row as u32, 0, *key, &bold)?;
        sheet.write_string(row as u32, 1, *value)?;
    }
    sheet.set_column_width(0, 16)?;
    sheet.set_column_width(1, 100)?;
    Ok(())
}

/// One stack of a bar and its value (none where the cell is suppressed).
type Stacked = (String, Option<f64>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Column, ColumnKind};
    use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;

    /// A table of districts (key and label) and two measures.
    fn table(need: Vec<Option<i64>>, gap: Vec<Option<i64>>) -> Table {
        let keys: Vec<String> = (1..=need.len()).map(|i| format!("{i:02}")).collect();
        let labels: Vec<String> = keys.iter().map(|k| format!("Stadtteil {k}")).collect();
        let fields = [("district", DataType::Utf8), ("district_label", DataType::Utf8)]
            .into_iter()
            .chain([("need", DataType::Int64), ("gap", DataType::Int64)])
            .map(|(name, ty)| arrow::datatypes::Field::new(name, ty, true));
        let schema = Arc::new(arrow::datatypes::Schema::new(fields.collect::<Vec<_>>()));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(keys)) as ArrayRef,
                Arc::new(StringArray::from(labels)),
                Arc::new(Int64Array::from(need)),
                Arc::new(Int64Array::from(gap)),
            ],
        )
        .unwrap();
        let column = |name: &str, heading: &str, kind| Column { name: name.into(), heading: heading.into(), kind };
        let columns = vec![
            column("district", "Stadtteil", ColumnKind::Key { role: None }),
            column("district_label", "Stadtteil", ColumnKind::Label),
            column("need", "Bedarf", ColumnKind::Measure),
            column("gap", "Plätze abzüglich Bedarf", ColumnKind::Measure),
        ];
        Table { title: "t".into(), schema, batches: vec![batch], columns, notes: Vec::new() }
    }

    /// Each bar's title with its left edge and width.
    fn bars(svg: &str) -> Vec<(String, f64, f64)> {
        let attr = |rect: &str, name: &str| -> f64 {
            let at = rect.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
            rect[at..at + rect[at..].find('"').unwrap()].parse().unwrap()
        };
        svg.split("<rect ")
            .skip(1)
            .filter(|r| r.contains("<title>"))
            .map(|r| {
                let title = &r[r.find("<title>").unwrap() + 7..r.find("</title>").unwrap()];
                let rect = format!(" {}", &r[..r.find('>').unwrap()]);
                (title.to_owned(), attr(&rect, "x"), attr(&rect, "width"))
            })
            .collect()
    }

    #[test]
    fn every_chart_escapes_the_text_it_draws() {
        // A label and measure headings with markup in them, as a member's label or a report's heading could hold.
        let mut t = table(vec![Some(4), Some(1)], vec![Some(2), None]);
        let labels = StringArray::from(vec![r#"<b onclick="x()">Süd</b>"#, "A & B's"]);
        let batch = &t.batches[0];
        let mut columns = batch.columns().to_vec();
        columns[1] = Arc::new(labels);
        t.batches = vec![RecordBatch::try_new(t.schema.clone(), columns).unwrap()];
        t.columns[3].heading = "<i>Plätze</i>".into();
        for chart in [Chart::Bars, Chart::Line, Chart::Stacked] {
            let drawn = svg(&t, chart, "<x>").unwrap();
            assert!(drawn.starts_with("<svg ") && drawn.ends_with("</svg>"), "{drawn}");
            for raw in ["<b", "<i>", "<x>", " & ", "onclick=\"", "B's"] {
                assert!(!drawn.contains(raw), "{chart:?}: {raw} drawn as it is in {drawn}");
            }
            assert!(drawn.contains("&lt;b onclick=&quot;x()&quot;&gt;Süd&lt;&#x2f;b&gt;"), "{drawn}");
        }
    }

    #[test]
    fn bars_of_two_measures_stand_side_by_side_from_zero_also_below_it() {
        let svg =
            svg(&table(vec![Some(40), Some(10), None], vec![Some(-20), Some(60), Some(5)]), Chart::Bars, ".").unwrap();
        let drawn = bars(&svg);
        let titles: Vec<&str> = drawn.iter().map(|b| b.0.as_str()).collect();
        assert_eq!(
            titles,
            [
                "Stadtteil 01, Bedarf: 40",
                "Stadtteil 01, Plätze abzüglich Bedarf: -20",
                "Stadtteil 02, Bedarf: 10",
                "Stadtteil 02, Plätze abzüglich Bedarf: 60",
                "Stadtteil 03, Plätze abzüglich Bedarf: 5",
            ],
            "a bar per district and measure; the suppressed need of district 03 has none"
        );
        // The scale runs from -20 to 60: zero at a quarter of the 260 px, each bar's length its value's share.
        let zero = 250.0 + 260.0 / 4.0;
        for ((title, x, width), value) in drawn.iter().zip([40.0, -20.0, 10.0, 60.0, 5.0]) {
            let length = value / 80.0 * 260.0_f64;
            assert!((width - length.abs()).abs() < 0.1, "{title}: {width} for {value}");
            let left = if value < 0.0 { zero + length } else { zero };
            assert!((x - left).abs() < 0.1, "{title}: starts at {x}, not {left}");
        }
        let at_zero = format!("<text x=\"{:.1}\" y=", zero + 5.0);
        let texts: Vec<&str> =
            svg.split(&at_zero).skip(1).map(|t| &t[t.find('>').unwrap() + 1..t.find('<').unwrap()]).collect();
        assert_eq!(texts, ["-20", "."], "right of zero: the value of a bar below it, and the symbol of a hidden one");
        for name in ["Bedarf", "Plätze abzüglich Bedarf"] {
            assert!(svg.contains(&format!(">{name}</text>")), "the legend names {name}");
        }
    }
}
