//! Row → fact conversion: applies each field mapping of a source to a data line (member lookup, dates to months,
//! derived age, numbers with the source's separators, pseudonyms) and appends the fact to Arrow builders, or
//! rejects the whole line with the first problem found. Columns that no field reads never reach a builder.

use crate::rows::{Cell, Row};
use crate::{PseudonymKey, Rejection, Result};
use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{ArrayRef, Float64Builder, Int64Builder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use kubus_model::{ColumnType, Cube, Dimension, Field, FieldKind, Model, Source, month_key, normalise};
use std::sync::Arc;

/// The Arrow schema of a cube's facts as ingest produces them: one non-null text column per dimension role
/// (the member key at the fact level), then the value columns.
pub fn fact_schema(cube: &Cube) -> SchemaRef {
    let mut fields: Vec<ArrowField> =
        cube.dimensions().iter().map(|d| ArrowField::new(d.name(), DataType::Utf8, false)).collect();
    fields.extend(cube.columns().iter().map(|c| {
        let ty = match c.ty() {
            ColumnType::String => DataType::Utf8,
            ColumnType::Integer => DataType::Int64,
            ColumnType::Decimal => DataType::Float64,
        };
        ArrowField::new(c.name(), ty, true)
    }));
    Arc::new(Schema::new(fields))
}

enum Builder {
    Text(StringBuilder),
    Integer(Int64Builder),
    Decimal(Float64Builder),
}

enum Value {
    Text(String),
    Integer(i64),
    Decimal(f64),
}

enum Plan<'a> {
    Member(&'a Dimension, usize),
    Date(&'a Dimension),
    Age(&'a Dimension),
    Number(ColumnType),
    Text,
    Pseudonym,
}

struct FieldPlan<'a> {
    field: &'a Field,
    slot: usize,
    inputs: Vec<usize>,
    plan: Plan<'a>,
}

/// Converts the data lines of one file into facts.
pub struct Converter<'a> {
    source: &'a Source,
    file: &'a str,
    header: &'a [String],
    key: &'a PseudonymKey,
    schema: SchemaRef,
    fields: Vec<FieldPlan<'a>>,
    builders: Vec<Builder>,
    total_markers: Vec<String>,
}

struct Problem {
    column: String,
    value: String,
    problem: &'static str,
    reason: String,
}

fn problem(column: &str, value: &str, problem: &'static str, reason: String) -> Problem {
    Problem { column: column.to_owned(), value: value.to_owned(), problem, reason }
}

impl<'a> Converter<'a> {
    /// Prepares the conversion of a file whose header is `header` (already checked against the source).
    pub fn new(model: &'a Model, source: &'a Source, file: &'a str, header: &'a [String], key: &'a PseudonymKey) -> Result<Self> {
        let cube = model.cube(source.cube())?;
        let schema = fact_schema(cube);
        let builders = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Int64 => Builder::Integer(Int64Builder::new()),
                DataType::Float64 => Builder::Decimal(Float64Builder::new()),
                _ => Builder::Text(StringBuilder::new()),
            })
            .collect();
        let mut fields = Vec::new();
        for field in source.fields() {
            let slot = schema.index_of(field.target())?;
            let inputs = field
                .input_columns()
                .iter()
                .map(|c| header.iter().position(|h| h == c).expect("header checked before conversion"))
                .collect();
            let plan = match (field.kind(), cube.dimension(field.target()), cube.column(field.target())) {
                (FieldKind::Member { .. }, Ok(role), _) => Plan::Member(model.dimension(role.dimension())?, role.fact_level()),
                (FieldKind::Date { .. }, Ok(role), _) => Plan::Date(model.dimension(role.dimension())?),
                (FieldKind::Age { .. }, Ok(role), _) => Plan::Age(model.dimension(role.dimension())?),
                (FieldKind::Number { .. }, _, Some(c)) => Plan::Number(c.ty()),
                (FieldKind::Text { .. }, _, Some(_)) => Plan::Text,
                (FieldKind::Pseudonym { .. }, _, Some(_)) => Plan::Pseudonym,
                _ => unreachable!("the model validated that field {} fits its target", field.target()),
            };
            fields.push(FieldPlan { field, slot, inputs, plan });
        }
        let total_markers = source.total_markers().iter().map(|m| normalise(m)).collect();
        Ok(Converter { source, file, header, key, schema, fields, builders, total_markers })
    }

    /// Converts one line; on success the fact is appended, otherwise the line's rejection is returned.
    pub fn push(&mut self, row: &Row) -> std::result::Result<(), Rejection> {
        let values = self.convert(row).map_err(|p| Rejection {
            file: self.file.to_owned(),
            line: row.line,
            column: p.column,
            value: p.value,
            problem: p.problem,
            reason: p.reason,
        })?;
        for (slot, value) in values {
            match (&mut self.builders[slot], value) {
                (Builder::Text(b), Value::Text(s)) => b.append_value(s),
                (Builder::Integer(b), Value::Integer(i)) => b.append_value(i),
                (Builder::Decimal(b), Value::Decimal(f)) => b.append_value(f),
                _ => unreachable!("plans produce values of their slot's type"),
            }
        }
        Ok(())
    }

    fn convert(&self, row: &Row) -> std::result::Result<Vec<(usize, Value)>, Problem> {
        if row.is_empty() {
            return Err(problem("", "", "empty line", "empty line: no values".into()));
        }
        let first = row.cells.iter().map(Cell::text).find(|t| !t.is_empty()).unwrap_or_default();
        let first_norm = normalise(&first);
        if self.total_markers.iter().any(|m| first_norm.starts_with(m.as_str())) {
            return Err(problem("", &first, "total line", format!("total line ('{first}'): totals are not facts")));
        }
        if row.cells.len() != self.header.len() {
            return Err(problem(
                "",
                "",
                "wrong field count",
                format!("the line has {} fields, the header {}", row.cells.len(), self.header.len()),
            ));
        }
        self.fields.iter().map(|f| Ok((f.slot, self.value(f, row)?))).collect()
    }

    /// The input of one column, after the field's value translations and its default for empty input.
    fn input(&self, f: &FieldPlan<'_>, row: &Row, which: usize) -> std::result::Result<Cell, Problem> {
        let idx = f.inputs[which];
        let column = &self.header[idx];
        let cell = &row.cells[idx];
        let text = cell.text();
        if let Some(mapped) = f.field.values().get(&text) {
            return Ok(Cell::Text(mapped.clone()));
        }
        if !text.is_empty() {
            return Ok(cell.clone());
        }
        match f.field.if_empty() {
            Some(default) => Ok(Cell::Text(default.to_owned())),
            None => Err(problem(column, "", "missing value", format!("missing value in column '{column}'"))),
        }
    }

    fn value(&self, f: &FieldPlan<'_>, row: &Row) -> std::result::Result<Value, Problem> {
        let column = |i: usize| self.header[f.inputs[i]].as_str();
        match &f.plan {
            Plan::Member(dimension, level) => {
                let text = self.input(f, row, 0)?.text();
                let at = dimension
                    .resolve(Some(*level), &text)
                    .map_err(|e| problem(column(0), &text, "unknown member", e.to_string()))?;
                Ok(Value::Text(dimension.member(at).key().to_owned()))
            }
            Plan::Date(dimension) => {
                let date = self.date(&self.input(f, row, 0)?, column(0))?;
                let key = month_key(date.year(), date.month());
                let at = dimension
                    .resolve(Some(dimension.finest()), &key)
                    .map_err(|_| problem(column(0), &key, "invalid date", format!("month {key} lies outside the time dimension")))?;
                Ok(Value::Text(dimension.member(at).key().to_owned()))
            }
            Plan::Age(dimension) => {
                let birth = self.date(&self.input(f, row, 0)?, column(0))?;
                let at = self.date(&self.input(f, row, 1)?, column(1))?;
                let Some(age) = at.years_since(birth) else {
                    return Err(problem(column(0), &birth.to_string(), "invalid age", format!("birth date {birth} lies after the reference date {at}")));
                };
                let found = dimension
                    .resolve(Some(dimension.finest()), &age.to_string())
                    .map_err(|_| problem(column(0), &birth.to_string(), "invalid age", format!("age {age} lies outside the age dimension")))?;
                Ok(Value::Text(dimension.member(found).key().to_owned()))
            }
            Plan::Number(ty) => {
                let cell = self.input(f, row, 0)?;
                let number = match &cell {
                    Cell::Number(n) => Some(*n),
                    other => self.number(&other.text()),
                };
                let text = cell.text();
                let invalid = |what: &str| problem(column(0), &text, "invalid number", format!("'{text}' is not {what}"));
                match (ty, number) {
                    (ColumnType::Integer, Some(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => Ok(Value::Integer(n as i64)),
                    (ColumnType::Integer, _) => Err(invalid("a whole number")),
                    (_, Some(n)) if n.is_finite() => Ok(Value::Decimal(n)),
                    _ => Err(invalid(&format!("a number (decimal separator '{}')", self.source.decimal_separator()))),
                }
            }
            Plan::Text => Ok(Value::Text(self.input(f, row, 0)?.text())),
            Plan::Pseudonym => {
                let parts = (0..f.inputs.len()).map(|i| self.input(f, row, i).map(|c| c.text())).collect::<std::result::Result<Vec<_>, _>>()?;
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                Ok(Value::Text(self.key.pseudonymise(&refs)))
            }
        }
    }

    fn date(&self, cell: &Cell, column: &str) -> std::result::Result<NaiveDate, Problem> {
        if let Cell::Date(d) = cell {
            return Ok(*d);
        }
        let text = cell.text();
        self.source
            .date_formats()
            .iter()
            .find_map(|fmt| NaiveDate::parse_from_str(&text, fmt).ok())
            .ok_or_else(|| {
                let expected: Vec<String> = self.source.date_formats().iter().map(|f| human_format(f)).collect();
                problem(column, &text, "invalid date", format!("'{text}' is not a valid date (expected {})", expected.join(" or ")))
            })
    }

    fn number(&self, text: &str) -> Option<f64> {
        let mut s: String = text.chars().filter(|c| Some(*c) != self.source.thousands_separator()).collect();
        if self.source.decimal_separator() != '.' {
            if s.contains('.') {
                return None;
            }
            s = s.replace(self.source.decimal_separator(), ".");
        }
        s.trim().parse::<f64>().ok()
    }

    /// The accepted facts as one batch.
    pub fn finish(self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = self
            .builders
            .into_iter()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::Text(mut b) => Arc::new(b.finish()),
                    Builder::Integer(mut b) => Arc::new(b.finish()),
                    Builder::Decimal(mut b) => Arc::new(b.finish()),
                }
            })
            .collect();
        Ok(RecordBatch::try_new(self.schema, columns)?)
    }
}

fn human_format(fmt: &str) -> String {
    fmt.replace("%d", "dd").replace("%m", "mm").replace("%Y", "yyyy").replace("%y", "yy")
}
