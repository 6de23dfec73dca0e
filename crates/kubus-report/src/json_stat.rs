//! JSON-stat 2.0: a cube result as one dataset. Each drilled level is a dimension (categories in result order,
//! `_T` for the total), the measures form a `measure` dimension with the `metric` role, values are stored row
//! major in `id` order, and a cell without a value carries a status: `-` where the cube has no facts for it,
//! `x` where the value is not defined (a ratio over 0, a period with no earlier one). In a forecast row (see
//! [`ColumnKind::Forecast`]) a value has the row's symbol as its status (`P`, a forecast) and an empty cell `…`
//! (not observed yet).

use crate::{ColumnKind, Error, Result, StatRole, Table};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use serde_json::{Map, Value, json};

/// The key of total categories.
pub const TOTAL_KEY: &str = "_T";

struct Dim {
    key: usize,
    label: usize,
    /// Category keys in order of appearance, with their labels.
    categories: Vec<(String, String)>,
}

/// One row of an answer as a cell: its position along each dimension, its values and their statuses.
type Cell = (Vec<usize>, Vec<Value>, Vec<Option<String>>);

/// The dataset as a JSON value.
pub(crate) fn dataset(table: &Table) -> Result<Value> {
    let mut dims: Vec<Dim> = Vec::new();
    for (i, c) in table.columns.iter().enumerate() {
        if let ColumnKind::Key { .. } = c.kind {
            let label = table.columns.get(i + 1).filter(|l| l.kind == ColumnKind::Label).map_or(i, |_| i + 1);
            dims.push(Dim { key: i, label, categories: Vec::new() });
        }
    }
    let measures: Vec<usize> =
        (0..table.columns.len()).filter(|&i| table.columns[i].kind == ColumnKind::Measure).collect();
    if measures.is_empty() {
        return Err(Error::NotACube { what: "a table without measures".to_owned() });
    }
    let status_of = table.status_columns();
    let forecast = table.columns.iter().position(|c| c.kind == ColumnKind::Forecast);
    let mut forecasts = false;
    // First pass: categories, and each row's cell coordinates, values and statuses.
    let mut rows: Vec<Cell> = Vec::new();
    for batch in &table.batches {
        let text = |i: usize| -> Result<ArrayRef> { Ok(cast(batch.column(i), &DataType::Utf8)?) };
        let keys = dims.iter().map(|d| text(d.key)).collect::<Result<Vec<_>>>()?;
        let labels = dims.iter().map(|d| text(d.label)).collect::<Result<Vec<_>>>()?;
        for r in 0..batch.num_rows() {
            let mut at = Vec::with_capacity(dims.len());
            for (d, dim) in dims.iter_mut().enumerate() {
                let key = if keys[d].is_null(r) { TOTAL_KEY } else { keys[d].as_string::<i32>().value(r) };
                let label = if labels[d].is_null(r) { key } else { labels[d].as_string::<i32>().value(r) };
                let index = match dim.categories.iter().position(|(k, _)| k == key) {
                    Some(i) => i,
                    None => {
                        dim.categories.push((key.to_owned(), label.to_owned()));
                        dim.categories.len() - 1
                    }
                };
                at.push(index);
            }
            let values = measures.iter().map(|&m| number(batch.column(m), r)).collect::<Result<Vec<_>>>()?;
            let mark = forecast.map(|f| cast(batch.column(f), &DataType::Utf8)).transpose()?;
            let mark = mark.filter(|m| m.is_valid(r)).map(|m| m.as_string::<i32>().value(r).to_owned());
            forecasts |= mark.is_some();
            let statuses = measures
                .iter()
                .zip(&values)
                .map(|(&m, value)| {
                    if let Some(mark) = &mark {
                        return Ok(Some(if value.is_null() { "…".to_owned() } else { mark.clone() }));
                    }
                    let Some(s) = status_of[m] else { return Ok(None) };
                    let s = cast(batch.column(s), &DataType::Utf8)?;
                    Ok((!s.is_null(r)).then(|| s.as_string::<i32>().value(r).to_owned()))
                })
                .collect::<Result<Vec<_>>>()?;
            rows.push((at, values, statuses));
        }
    }
    let mut size: Vec<usize> = dims.iter().map(|d| d.categories.len()).collect();
    size.push(measures.len());
    let cells: usize = size.iter().product();
    let mut value = vec![Value::Null; cells];
    let mut present = vec![false; cells];
    let mut status = Map::new();
    for (at, values, statuses) in rows {
        let base = at.iter().zip(&size).fold(0, |acc, (&i, &n)| acc * n + i) * measures.len();
        for (m, (v, s)) in values.into_iter().zip(statuses).enumerate() {
            value[base + m] = v;
            present[base + m] = true;
            if let Some(s) = s {
                status.insert((base + m).to_string(), json!(s));
            }
        }
    }
    for (i, v) in value.iter().enumerate() {
        if v.is_null() && !status.contains_key(&i.to_string()) {
            status.insert(i.to_string(), json!(if present[i] { "x" } else { "-" }));
        }
    }

    let mut id: Vec<String> = dims.iter().map(|d| table.columns[d.key].name.clone()).collect();
    id.push("measure".to_owned());
    let mut dimension = Map::new();
    let mut roles: Map<String, Value> = Map::new();
    for d in &dims {
        let column = &table.columns[d.key];
        let index: Map<String, Value> =
            d.categories.iter().enumerate().map(|(i, (k, _))| (k.clone(), json!(i))).collect();
        let label: Map<String, Value> = d.categories.iter().map(|(k, l)| (k.clone(), json!(l))).collect();
        dimension.insert(
            column.name.clone(),
            json!({"label": column.heading, "category": {"index": index, "label": label}}),
        );
        if let ColumnKind::Key { role: Some(role) } = column.kind {
            let name = match role {
                StatRole::Time => "time",
                StatRole::Geo => "geo",
            };
            roles.entry(name).or_insert_with(|| json!([])).as_array_mut().expect("an array").push(json!(column.name));
        }
    }
    let index: Map<String, Value> =
        measures.iter().enumerate().map(|(i, &m)| (table.columns[m].name.clone(), json!(i))).collect();
    let label: Map<String, Value> =
        measures.iter().map(|&m| (table.columns[m].name.clone(), json!(table.columns[m].heading))).collect();
    dimension.insert("measure".to_owned(), json!({"label": "Kennzahl", "category": {"index": index, "label": label}}));
    roles.insert("metric".to_owned(), json!(["measure"]));
    let mut notes = table.notes.clone();
    if forecasts {
        notes.push("P = Prognose (vorhergesagt, kein beobachteter Wert); … = Angabe fällt später an".to_owned());
    }
    Ok(json!({
        "version": "2.0",
        "class": "dataset",
        "label": table.title,
        "source": "kubus",
        "id": id,
        "size": size,
        "role": roles,
        "dimension": dimension,
        "value": value,
        "status": status,
        "note": notes,
    }))
}

/// A measure cell as a JSON number (integers stay integers), or null.
fn number(array: &ArrayRef, r: usize) -> Result<Value> {
    if array.is_null(r) {
        return Ok(Value::Null);
    }
    Ok(match array.data_type() {
        t if t.is_integer() => json!(cast(&array.slice(r, 1), &DataType::Int64)?.as_primitive::<Int64Type>().value(0)),
        _ => {
            let v = cast(&array.slice(r, 1), &DataType::Float64)?.as_primitive::<Float64Type>().value(0);
            if v.is_finite() { json!(v) } else { Value::Null }
        }
    })
}
