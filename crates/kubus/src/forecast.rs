//! Forecasts (a measure with `forecast = "<measure>"`): made after an answer is computed and protected, from its
//! published values only, so a forecast reveals nothing the answer does not. Per series — the measure along the
//! drilled time level, for each combination of the other drilldowns — exponential smoothing with automatic model
//! choice (augurs' AutoETS: additive errors, no, additive or damped trend, by AICc; see [`search`]) continues the
//! series for the measure's horizon, with a prediction interval. The forecast periods are rows of their own after
//! the observed ones, marked `P` in the `_forecast` column; a forecast never shares a cell with an observed value.
//! A series with a hidden (suppressed) value, fewer than [`MIN_PERIODS`] periods or no model that fits it is not
//! forecast, and a note says so.

use crate::{Error, Result};
use augurs_core::{Fit, Predict};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use kubus_model::{MeasureKind, Model};
use kubus_query::{ColumnKind, QueryResult, ResultColumn};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The fewest observed periods a series needs: AutoETS fits a trend (four parameters) only to more than eight.
pub const MIN_PERIODS: usize = 9;
/// The column that marks forecast rows, and its symbol.
pub const FORECAST_COLUMN: &str = "_forecast";
/// The symbol of a forecast row (and, in JSON-stat, of its values).
pub const FORECAST_SYMBOL: &str = "P";

/// A forecast measure a query asks for.
#[derive(Debug, Clone)]
pub(crate) struct Wanted {
    name: String,
    label: String,
    of: String,
    over: String,
    horizon: u32,
    interval: u32,
    /// Whether the query did not ask for the forecast's measure itself (it is computed, then left out).
    of_added: bool,
}

/// The query without its forecast measures (and with the measures they continue), and the forecasts it asks
/// for. A forecast needs the cube's time dimension drilled, and an answer in time order (no `order`, no `limit`).
pub(crate) fn split(model: &Model, query: &kubus_query::Query) -> Result<(kubus_query::Query, Vec<Wanted>)> {
    let cube = model.cube(&query.cube)?;
    let mut inner = query.clone();
    let mut wanted: Vec<Wanted> = Vec::new();
    inner.measures.clear();
    for name in &query.measures {
        let measure = cube.measure(name)?;
        match measure.kind() {
            MeasureKind::Forecast { of, over, horizon, interval } => wanted.push(Wanted {
                name: name.clone(),
                label: measure.label().to_owned(),
                of: of.clone(),
                over: over.clone(),
                horizon: *horizon,
                interval: *interval,
                of_added: !query.measures.contains(of),
            }),
            _ => inner.measures.push(name.clone()),
        }
    }
    let Some(first) = wanted.first() else { return Ok((inner, wanted)) };
    let roles = query
        .drilldowns
        .iter()
        .map(|d| kubus_query::resolve_target(model, cube, d).map(|(l, _)| l.role))
        .collect::<kubus_query::Result<Vec<&str>>>()?;
    if let Some(w) = wanted.iter().find(|w| !roles.contains(&w.over.as_str())) {
        let time = &w.over;
        return Err(Error::Forecast {
            measure: w.name.clone(),
            reason: format!("it continues a series over time: drill down by {time} (e.g. -d {time})"),
        });
    }
    if wanted.iter().any(|w| w.over != first.over) {
        return Err(Error::Forecast {
            measure: first.name.clone(),
            reason: "the forecasts of one answer go along one time role".into(),
        });
    }
    if !query.order.is_empty() || query.limit.is_some() {
        return Err(Error::Forecast {
            measure: first.name.clone(),
            reason: "a forecast answer is in time order: leave out --order and --limit".into(),
        });
    }
    for w in &wanted {
        if !inner.measures.contains(&w.of) {
            inner.measures.push(w.of.clone());
        }
    }
    Ok((inner, wanted))
}

/// The model search: exponential smoothing with additive errors and no, additive or damped trend, chosen by AICc.
/// Not multiplicative errors: their prediction intervals are approximations that widen without bound on a series
/// with one outlying month (a sample month of three times the usual allocations gave 0 to 379 around 35).
pub fn search() -> augurs_ets::AutoETS {
    augurs_ets::AutoETS::new(1, "AZN").expect("a valid model specification")
}

/// A forecast period: the member index of the period, the point forecast and the interval's bounds.
type Step = (usize, f64, f64, f64);

/// One series of an answer: its rows in time order, and the member index of each row's period.
struct Series {
    rows: Vec<usize>,
    periods: Vec<usize>,
}

/// The answer with the forecasts appended (rows of their own, in the answer's order), and a note per forecast.
pub(crate) fn apply(
    model: &Model,
    inner: &kubus_query::Query,
    wanted: &[Wanted],
    result: QueryResult,
) -> Result<(QueryResult, Vec<String>)> {
    if wanted.is_empty() {
        return Ok((result, Vec::new()));
    }
    let plan = kubus_query::plan(model, inner)?;
    let time_role = wanted[0].over.as_str();
    let at = plan.drilldowns.iter().position(|(l, _)| l.role == time_role).expect("split checked the drilldown");
    let (time_level, time_name) = &plan.drilldowns[at];
    let members = time_level.dimension.members(time_level.level);
    let period_index: BTreeMap<&str, usize> = members.iter().enumerate().map(|(i, m)| (m.key(), i)).collect();

    let rows = concat_batches(&result.schema, &result.batches).map_err(kubus_query::Error::from)?;
    let column = |name: &str| -> Result<ArrayRef> {
        let at = rows.schema().index_of(name).map_err(kubus_query::Error::from)?;
        Ok(rows.column(at).clone())
    };
    let text = |name: &str| -> Result<StringArray> {
        Ok(cast(&column(name)?, &DataType::Utf8).map_err(kubus_query::Error::from)?.as_string::<i32>().clone())
    };
    let keys: Vec<StringArray> = plan.drilldowns.iter().map(|(_, name)| text(name)).collect::<Result<_>>()?;

    // The series: rows by the keys of the other drilldowns, each in time order; rows rolled up over time are none.
    let mut series: BTreeMap<Vec<Option<String>>, Series> = BTreeMap::new();
    for row in 0..rows.num_rows() {
        let Some(period) = keys[at].is_valid(row).then(|| period_index.get(keys[at].value(row))).flatten() else {
            continue;
        };
        let id: Vec<Option<String>> = keys
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != at)
            .map(|(_, k)| k.is_valid(row).then(|| k.value(row).to_owned()))
            .collect();
        let s = series.entry(id).or_insert(Series { rows: Vec::new(), periods: Vec::new() });
        s.rows.push(row);
        s.periods.push(*period);
    }
    for s in series.values_mut() {
        let mut order: Vec<usize> = (0..s.rows.len()).collect();
        order.sort_by_key(|&i| s.periods[i]);
        (s.rows, s.periods) =
            (order.iter().map(|&i| s.rows[i]).collect(), order.iter().map(|&i| s.periods[i]).collect());
    }

    // Per forecast and series: the fitted continuation, as (period, point, lower, upper).
    let mut notes = Vec::new();
    let mut forecasts: Vec<Vec<(&Series, Vec<Step>)>> = Vec::new();
    for w in wanted {
        let observed = cast(&column(&w.of)?, &DataType::Float64).map_err(kubus_query::Error::from)?;
        let observed = observed.as_primitive::<Float64Type>();
        let (mut hidden, mut short) = (0, 0);
        // Series the model search found no fit for, and the first reason it gave.
        let mut unfit: (usize, Option<String>) = (0, None);
        let mut per_series = Vec::new();
        for s in series.values() {
            let (first, last) = (s.periods[0], *s.periods.last().expect("a series has a row"));
            // A period without a row has no facts (or its counts were all published as 0): it counts as 0.
            let mut y = vec![0.0; last - first + 1];
            let mut complete = true;
            for (&row, &period) in s.rows.iter().zip(&s.periods) {
                if observed.is_null(row) {
                    complete = false;
                }
                y[period - first] = observed.value(row);
            }
            if !complete {
                hidden += 1;
                continue;
            }
            if y.len() < MIN_PERIODS {
                short += 1;
                continue;
            }
            let fitted = search().fit(&y);
            let forecast = fitted.and_then(|m| m.predict(w.horizon as usize, f64::from(w.interval) / 100.0));
            let (forecast, intervals) = match forecast {
                Ok(f) => match f.intervals.clone() {
                    Some(intervals) => (f, intervals),
                    None => {
                        unfit = (unfit.0 + 1, unfit.1.or(Some("kein Vorhersageintervall".into())));
                        continue;
                    }
                },
                Err(e) => {
                    unfit = (unfit.0 + 1, unfit.1.or(Some(e.to_string())));
                    continue;
                }
            };
            // Counts and other measures that never go below 0 are not forecast below it either.
            let floor = if y.iter().all(|v| *v >= 0.0) { 0.0 } else { f64::NEG_INFINITY };
            let steps = (1..=w.horizon as usize)
                .take_while(|k| last + k < members.len())
                .map(|k| {
                    let i = k - 1;
                    let clamp = |v: f64| v.max(floor);
                    (last + k, clamp(forecast.point[i]), clamp(intervals.lower[i]), clamp(intervals.upper[i]))
                })
                .collect();
            per_series.push((s, steps));
        }
        let level = time_level.dimension.levels()[time_level.level].label();
        let of = plan.cube.measure(&w.of).map_or(w.of.as_str(), |m| m.label());
        notes.push(format!(
            "Prognose ({FORECAST_SYMBOL}) {}: die nächsten {} Perioden (Ebene {level}) nach der letzten beobachteten, \
             aus den veröffentlichten Werten von {of} mit exponentieller Glättung (AutoETS), Vorhersageintervall {} %; \
             keine beobachteten Werte",
            w.label, w.horizon, w.interval
        ));
        if hidden > 0 {
            notes.push(format!("{}: keine Prognose für {hidden} Reihe(n) mit gesperrten Werten", w.label));
        }
        if let (n @ 1.., Some(reason)) = &unfit {
            notes.push(format!("{}: keine Prognose für {n} Reihe(n), zu denen kein Modell passt ({reason})", w.label));
        }
        if short > 0 {
            notes.push(format!(
                "{}: keine Prognose für {short} Reihe(n) mit weniger als {MIN_PERIODS} Perioden",
                w.label
            ));
        }
        forecasts.push(per_series);
    }

    // The new rows: per series and forecast period, one row (shared by all forecasts of the same series).
    let mut added: Vec<(usize, usize)> = Vec::new(); // (row the keys come from, period)
    for per_series in &forecasts {
        for (s, steps) in per_series {
            let source = *s.rows.last().expect("a series has a row");
            for (period, ..) in steps {
                if !added.contains(&(source, *period)) {
                    added.push((source, *period));
                }
            }
        }
    }
    let observed_rows = rows.num_rows();
    let all = observed_rows + added.len();
    let source_of: Vec<u32> =
        (0..observed_rows).map(|r| r as u32).chain(added.iter().map(|(r, _)| *r as u32)).collect();
    let source_of = datafusion::arrow::array::UInt32Array::from(source_of);

    let mut fields: Vec<Field> = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut columns: Vec<ResultColumn> = Vec::new();
    let dropped: Vec<String> =
        wanted.iter().filter(|w| w.of_added).flat_map(|w| [w.of.clone(), format!("{}_status", w.of)]).collect();
    let last_measure = result.columns.iter().rposition(|c| c.kind == ColumnKind::Measure);
    for (i, c) in result.columns.iter().enumerate() {
        if !dropped.contains(&c.name) {
            let original = rows.column(i);
            let array = if c.name == *time_name || c.name == format!("{time_name}_label") {
                // The forecast rows' periods: their members' keys and labels.
                let label = c.name != *time_name;
                let values: StringArray = (0..all)
                    .map(|r| match r.checked_sub(observed_rows) {
                        None => keys_or_labels(original, r),
                        Some(a) => {
                            let m = &members[added[a].1];
                            Some(if label { m.label().to_owned() } else { m.key().to_owned() })
                        }
                    })
                    .collect();
                cast(&values, original.data_type()).map_err(kubus_query::Error::from)?
            } else if matches!(c.kind, ColumnKind::Key | ColumnKind::Label | ColumnKind::Total) {
                take(original.as_ref(), &source_of, None).map_err(kubus_query::Error::from)?
            } else {
                // Measures and statuses: nothing in a forecast row.
                extended_with_nulls(original, added.len())?
            };
            fields.push(Field::new(c.name.as_str(), array.data_type().clone(), true));
            arrays.push(array);
            columns.push(c.clone());
        }
        if Some(i) != last_measure {
            continue;
        }
        for (w, per_series) in wanted.iter().zip(&forecasts) {
            let integral = matches!(result.schema.field_with_name(&w.of).map(|f| f.data_type().is_integer()), Ok(true));
            let mut values = vec![[None; 3]; all];
            for (s, steps) in per_series {
                let source = *s.rows.last().expect("a series has a row");
                for &(period, point, lower, upper) in steps {
                    let at = added.iter().position(|&a| a == (source, period)).expect("added above");
                    values[observed_rows + at] = [Some(point), Some(lower), Some(upper)];
                }
            }
            let headings = [
                w.label.clone(),
                format!("{}, untere Grenze ({} %)", w.label, w.interval),
                format!("{}, obere Grenze ({} %)", w.label, w.interval),
            ];
            let names = [w.name.clone(), format!("{}_lower", w.name), format!("{}_upper", w.name)];
            for (k, (name, heading)) in names.into_iter().zip(headings).enumerate() {
                let array: ArrayRef = if integral {
                    Arc::new(values.iter().map(|v| v[k].map(|x| x.round() as i64)).collect::<Int64Array>())
                } else {
                    Arc::new(values.iter().map(|v| v[k]).collect::<Float64Array>())
                };
                fields.push(Field::new(name.as_str(), array.data_type().clone(), true));
                arrays.push(array);
                columns.push(ResultColumn { name, kind: ColumnKind::Measure, heading, dimension: None, measure: None });
            }
        }
    }
    let marks: StringArray = (0..all).map(|r| (r >= observed_rows).then_some(FORECAST_SYMBOL)).collect();
    fields.push(Field::new(FORECAST_COLUMN, DataType::Utf8, true));
    arrays.push(Arc::new(marks));
    columns.push(ResultColumn {
        name: FORECAST_COLUMN.to_owned(),
        kind: ColumnKind::Forecast,
        heading: "Prognose".to_owned(),
        dimension: None,
        measure: None,
    });

    // Every row in the order of its drilldowns' members (totals last), as the answer was: forecast periods after
    // the observed ones of their series.
    let ranks: Vec<Vec<usize>> = plan
        .drilldowns
        .iter()
        .enumerate()
        .map(|(d, (l, _))| {
            let members = l.dimension.members(l.level);
            let index: BTreeMap<&str, usize> = members.iter().enumerate().map(|(i, m)| (m.key(), i)).collect();
            (0..all)
                .map(|r| match r.checked_sub(observed_rows) {
                    Some(a) if d == at => added[a].1,
                    _ => {
                        let source = source_of.value(r) as usize;
                        if keys[d].is_null(source) {
                            members.len() + 1
                        } else {
                            index.get(keys[d].value(source)).copied().unwrap_or(members.len())
                        }
                    }
                })
                .collect()
        })
        .collect();
    let mut order: Vec<u32> = (0..all as u32).collect();
    order.sort_by_key(|&r| ranks.iter().map(|rank| rank[r as usize]).collect::<Vec<_>>());
    let order = datafusion::arrow::array::UInt32Array::from(order);
    let arrays = arrays
        .iter()
        .map(|a| take(a.as_ref(), &order, None))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(kubus_query::Error::from)?;
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(kubus_query::Error::from)?;
    Ok((QueryResult { schema, batches: vec![batch], columns }, notes))
}

/// Row `r` of a key or label column as text.
fn keys_or_labels(array: &ArrayRef, r: usize) -> Option<String> {
    let text = cast(&array.slice(r, 1), &DataType::Utf8).ok()?;
    let text = text.as_string::<i32>();
    text.is_valid(0).then(|| text.value(0).to_owned())
}

/// A column with `more` empty cells after its own.
fn extended_with_nulls(array: &ArrayRef, more: usize) -> Result<ArrayRef> {
    let nulls = datafusion::arrow::array::new_null_array(array.data_type(), more);
    Ok(datafusion::arrow::compute::concat(&[array.as_ref(), nulls.as_ref()]).map_err(kubus_query::Error::from)?)
}
