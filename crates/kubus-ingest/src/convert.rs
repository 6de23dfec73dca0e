//! Line → fact conversion: applies each field mapping of a source to a data line (value translations, totals,
//! extraction, restored leading zeros, member lookup, dates, derived age, numbers with the field's separators,
//! missing-value symbols, pseudonyms), once per unpivoted cell of a wide line. A line becomes facts, a total
//! (kept out of the facts and checked against their sums when the file is done), or a rejection with the first
//! problem found. Columns that no field reads never reach a builder.

use crate::error::Result;
use crate::header::{Header, Part, Resolved, WideColumn};
use crate::outcome::{Category, Rejection};
use crate::pseudonym::PseudonymKey;
use crate::rows::{Cell, Row};
use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, AsArray, DictionaryArray, Float64Builder, Int32Array, Int32Builder, Int64Builder,
    StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Int32Type, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use kubus_model::{
    ColumnType, Cube, Dimension, FactColumn, Field, FieldKind, Input, MemberRef, Model, Source, normalise, time_key,
};
use regex::Regex;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The fact column holding a cell's status symbol (`-`, `.`, `x`) when its number is missing.
pub const STATUS_COLUMN: &str = "_status";

/// The Arrow schema of a cube's facts as ingest produces them: one non-null column per dimension role (the
/// member key at the fact level, as a dictionary of the dimension's keys: a fact carries a number, not a copy of
/// the key), then the value columns, then the cell status, then — for a cube with units (persons) — each fact's
/// stored record key ([`kubus_model::RECORD_KEY_COLUMN`]), derived from its unit.
pub fn fact_schema(cube: &Cube) -> SchemaRef {
    let member = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let mut fields: Vec<ArrowField> =
        cube.dimensions().iter().map(|d| ArrowField::new(d.name(), member.clone(), false)).collect();
    fields.extend(cube.columns().iter().map(|c| {
        let ty = match c.ty() {
            ColumnType::String => DataType::Utf8,
            ColumnType::Integer => DataType::Int64,
            ColumnType::Decimal => DataType::Float64,
        };
        ArrowField::new(c.name(), ty, true)
    }));
    fields.push(ArrowField::new(STATUS_COLUMN, DataType::Utf8, true));
    if cube.unit_column().is_some() {
        // Delta has no unsigned integers: the 16 bits as a non-negative 32-bit number.
        fields.push(ArrowField::new(kubus_model::RECORD_KEY_COLUMN, DataType::Int32, true));
    }
    Arc::new(Schema::new(fields))
}

enum Builder {
    /// A dimension role's members: their numbers among all the dimension's keys (`values`), level after level
    /// from `offsets[level]` on.
    Member {
        numbers: Int32Builder,
        values: ArrayRef,
        offsets: Vec<i32>,
    },
    Text(StringBuilder),
    Integer(Int64Builder),
    Decimal(Float64Builder),
}

#[derive(Debug, Clone)]
enum Value {
    Member(MemberRef),
    Text(String),
    Integer(i64),
    Decimal(f64),
    /// A missing-value symbol: the number is null, the symbol becomes the cell status.
    Missing(String),
    /// The role's total marker (`Insgesamt`).
    Total,
    /// A member of a coarser level than the fact level: a subtotal.
    Subtotal(MemberRef),
    /// The line of the field's balance with this number: checked against its terms, not stored.
    Balance(usize),
}

impl Value {
    fn number(&self) -> Option<f64> {
        match self {
            Value::Integer(i) => Some(*i as f64),
            Value::Decimal(f) => Some(*f),
            _ => None,
        }
    }
}

enum Plan<'a> {
    Member(&'a Dimension, usize),
    Date(&'a Dimension, usize),
    Age(&'a Dimension),
    Days,
    Number(&'a FactColumn),
    Text,
    Pseudonym,
}

struct FieldPlan<'a> {
    field: &'a Field,
    slot: usize,
    /// Results by input text, for member and date fields read from one column: their few distinct values are
    /// looked up once, not once per line.
    memo: Option<RefCell<datafusion::common::HashMap<String, std::result::Result<Value, Problem>>>>,
    inputs: Vec<(Resolved, String)>,
    plan: Plan<'a>,
    extract: Option<Regex>,
    totals: Vec<String>,
    balances: Vec<BalancePlan>,
}

/// A balance line of a member field, ready to check: its normalised line text, and its terms with their signs.
struct BalancePlan {
    /// As written, for messages.
    text: String,
    line: String,
    terms: Vec<(f64, PartKey)>,
}

/// What a balance's term is: a member, by its key, or another balance of the field, by its normalised line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PartKey {
    Member(String),
    Balance(String),
}

/// A balance line held until the file is done: its numbers, and where its parts are found.
struct PendingBalance {
    line: usize,
    span: usize,
    pure: bool,
    slot: usize,
    balance: usize,
    /// The keys of the other roles (as for totals), the balance's own slot empty.
    others: Vec<String>,
    numbers: Vec<Option<f64>>,
}

/// What a field's input holds: a cell to read, or a mark of the line's kind.
enum Read<'x> {
    Cell(Cow<'x, Cell>),
    /// The role's total marker.
    Total,
    /// The line of this balance of the field.
    Balance(usize),
}

/// How a total fact's roles relate to the detail facts: kept, summed over (`*`), or rolled up to a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Projection {
    Keep,
    Star,
    Level(usize),
}

struct PendingTotal {
    line: usize,
    span: usize,
    pure: bool,
    shape: Option<usize>,
    key: Vec<String>,
    numbers: Vec<Option<f64>>,
}

/// The total checks' material for some lines of a file: the sums of their detail facts, and the totals they
/// hold. Converters of different stretches of one file hand theirs to one that checks them all.
pub struct Totals {
    sums: HashMap<(usize, Vec<String>), Vec<Option<f64>>>,
    pending: Vec<PendingTotal>,
    parts: HashMap<(usize, PartKey, Vec<String>), Vec<Option<f64>>>,
    balances: Vec<PendingBalance>,
}

/// What became of one line.
pub enum Outcome {
    /// The line's facts were appended.
    Facts,
    /// The line holds only totals; whether they match is known when the file is done.
    Total,
    /// The line was rejected.
    Rejected(Rejection),
}

/// The result of the total checks at the end of a file.
pub struct Checked {
    /// Total lines whose every total matched the detail facts: (line, span).
    pub matched: Vec<(usize, usize)>,
    /// Balance lines that matched their terms: (line, span).
    pub balanced: Vec<(usize, usize)>,
    /// How many of them matched only within the source's tolerance, not exactly.
    pub within: usize,
    /// Total and balance lines that did not match, as rejections (with their spans).
    pub mismatched: Vec<(Rejection, usize)>,
    /// Totals on lines that also carry facts and did not match, or could not be checked.
    pub warnings: Vec<String>,
    /// Number of single totals compared.
    pub compared: usize,
}

/// Converts the data lines of one file into facts.
pub struct Converter<'a> {
    file: &'a str,
    /// The header keys of the columns that feed a pseudonym (names, dates of birth): their values identify a
    /// person, so a rejection never keeps them.
    identity: Vec<String>,
    header: &'a Header,
    key: &'a PseudonymKey,
    date_formats: &'a [String],
    /// How far a total may be from the sum of its details (`None`: exactly).
    tolerance: Option<kubus_model::Tolerance>,
    schema: SchemaRef,
    /// The unit column's slot, whose values give each fact's stored record key.
    unit: Option<usize>,
    roles: Vec<&'a Dimension>,
    numeric_slots: Vec<usize>,
    fields: Vec<FieldPlan<'a>>,
    builders: Vec<Builder>,
    status: StringBuilder,
    shapes: Vec<Vec<Projection>>,
    sums: HashMap<(usize, Vec<String>), Vec<Option<f64>>>,
    pending: Vec<PendingTotal>,
    /// The slots of member fields with balances, whose facts' numbers are summed per member for the checks.
    balance_slots: Vec<usize>,
    /// Per balance slot, member (or balance line) and the other roles' keys: the numbers of the file's lines.
    parts: HashMap<(usize, PartKey, Vec<String>), Vec<Option<f64>>>,
    balances: Vec<PendingBalance>,
    /// The number field that reads the unpivoted value, for the line total check.
    value_field: Option<usize>,
    /// The values of the line being converted, one tuple per unpivoted cell (buffers reused across lines).
    tuples: Vec<Vec<Value>>,
    /// How each field is read a chunk at a time; `None` where lines must be converted one by one (wide lines,
    /// line totals, totals to check).
    quick: Option<Vec<Quick>>,
}

/// How a field is read when data lines are converted a chunk at a time ([`Converter::push_chunk`]).
#[derive(Clone, Copy)]
enum Quick {
    /// A member or date read from this column: its number among the dimension's keys, from the field's memo.
    Member(usize),
    /// A number or text read from this column as it is: no translations, patterns, padding or total markers.
    Plain(usize),
    /// Any other field: its value as a single line gets it.
    Other,
}

/// A chunk's values of one field, in line order ([`Converter::push_chunk`]).
enum Staged<'r> {
    Members(Vec<i32>),
    Integers(Vec<i64>),
    Decimals(Vec<f64>),
    Texts(Vec<&'r str>),
    Values(Vec<Value>),
}

/// How many distinct input texts a field remembers; beyond that, values are looked up each time.
const MEMO_LIMIT: usize = 100_000;

/// What a rejection keeps of a value that identifies a person (see [`Converter::push`]).
pub const WITHHELD: &str = "(withheld: it identifies a person)";

#[derive(Clone)]
struct Problem {
    column: String,
    value: String,
    problem: Category,
    reason: String,
}

fn problem(column: &str, value: &str, problem: Category, reason: String) -> Problem {
    Problem { column: column.to_owned(), value: value.to_owned(), problem, reason }
}

/// One cell of a line to convert: the line, and the unpivoted column if the line is wide.
#[derive(Clone, Copy)]
struct At<'r> {
    row: &'r Row,
    wide: Option<&'r WideColumn>,
}

fn input_label(header: &Header, input: &Input) -> String {
    match input {
        Input::Column(name) => name.clone(),
        Input::Position(n) => match header.names.get(n - 1) {
            Some(name) if !name.is_empty() => name.clone(),
            _ => format!("#{n}"),
        },
        Input::Cell { line, column } => format!("cell at line {line}, column {column}"),
        Input::Template(_) => "(template)".to_owned(),
        Input::FileName => "(file name)".to_owned(),
        Input::Given(_) => "(given at ingest)".to_owned(),
    }
}

impl<'a> Converter<'a> {
    /// Prepares the conversion of a file whose header is resolved; `titles` holds the lines above the header.
    pub fn new(
        model: &'a Model,
        source: &'a Source,
        file: &'a str,
        header: &'a mut Header,
        titles: &BTreeMap<usize, Vec<Cell>>,
        key: &'a PseudonymKey,
    ) -> Result<Self> {
        let cube = model.cube(source.cube())?;
        let schema = fact_schema(cube);
        let roles = cube
            .dimensions()
            .iter()
            .map(|r| model.dimension(r.dimension()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // The status and the record key are not read from the line.
        let unit = cube.unit_column().map(|u| schema.index_of(u)).transpose()?;
        let builders = schema
            .fields()
            .iter()
            .take(schema.fields().len() - 1 - usize::from(unit.is_some()))
            .enumerate()
            .map(|(slot, f)| match f.data_type() {
                DataType::Int64 => Builder::Integer(Int64Builder::new()),
                DataType::Float64 => Builder::Decimal(Float64Builder::new()),
                DataType::Dictionary(..) => member_builder(roles[slot]),
                _ => Builder::Text(StringBuilder::new()),
            })
            .collect();
        let numeric_slots = cube
            .columns()
            .iter()
            .enumerate()
            .filter(|(_, c)| c.ty() != ColumnType::String)
            .map(|(i, _)| roles.len() + i)
            .collect();
        let mut fields = Vec::new();
        let mut shapes = Vec::new();
        for field in source.fields() {
            let slot = schema.index_of(field.target())?;
            let inputs = field
                .inputs()
                .into_iter()
                .map(|i| Ok((header.resolve(source, file, i, titles)?, input_label(header, i))))
                .collect::<Result<Vec<_>>>()?;
            let plan = match (field.kind(), cube.dimension(field.target()), cube.column(field.target())) {
                (FieldKind::Member(_), Ok(role), _) => Plan::Member(roles[slot], role.fact_level()),
                (FieldKind::Date(_), Ok(role), _) => Plan::Date(roles[slot], role.fact_level()),
                (FieldKind::Age { .. }, Ok(_), _) => Plan::Age(roles[slot]),
                (FieldKind::Days { .. }, _, Some(_)) => Plan::Days,
                (FieldKind::Number(_), _, Some(c)) => Plan::Number(c),
                (FieldKind::Text(_), _, Some(_)) => Plan::Text,
                (FieldKind::Pseudonym(_), _, Some(_)) => Plan::Pseudonym,
                _ => unreachable!("the model validated that field {} fits its target", field.target()),
            };
            if let Plan::Member(_, level) = plan {
                let star =
                    |p| (0..roles.len()).map(|s| if s == slot { p } else { Projection::Keep }).collect::<Vec<_>>();
                if !field.totals().is_empty() {
                    shapes.push(star(Projection::Star));
                }
                if field.subtotals() {
                    shapes.extend((0..level).map(|l| star(Projection::Level(l))));
                }
            }
            let extract = field.extract().map(|x| Regex::new(x).expect("validated by the model"));
            let totals = field.totals().iter().map(|t| normalise(t)).collect();
            let balances = match &plan {
                Plan::Member(dimension, level) => balance_plans(field, dimension, *level),
                _ => Vec::new(),
            };
            let memo = (matches!(plan, Plan::Member(..) | Plan::Date(..))
                && matches!(inputs[..], [(Resolved::Column(_), _)]))
            .then(|| RefCell::new(datafusion::common::HashMap::default()));
            fields.push(FieldPlan { field, slot, memo, inputs, plan, extract, totals, balances });
        }
        // In slot order, a line's values are its facts' columns as they are.
        fields.sort_by_key(|f| f.slot);
        debug_assert!(fields.iter().enumerate().all(|(i, f)| f.slot == i), "every fact column has exactly one field");
        header.check_unmapped(source, file)?;
        let value_field = fields
            .iter()
            .position(|f| matches!(f.plan, Plan::Number(_)) && matches!(f.inputs.first(), Some((Resolved::Value, _))));
        let balance_slots: Vec<usize> = fields.iter().filter(|f| !f.balances.is_empty()).map(|f| f.slot).collect();
        let quick = (header.wide.is_empty() && header.total.is_none() && shapes.is_empty() && balance_slots.is_empty())
            .then(|| {
                fields
                    .iter()
                    .map(|f| {
                        let plain = f.field.values().is_empty()
                            && f.extract.is_none()
                            && f.field.pad_zeros().is_none()
                            && f.totals.is_empty();
                        match (&f.plan, &f.inputs[..]) {
                            (Plan::Member(..) | Plan::Date(..), [(Resolved::Column(c), _)]) if f.memo.is_some() => {
                                Quick::Member(*c)
                            }
                            (Plan::Number(_) | Plan::Text, [(Resolved::Column(c), _)]) if plain => Quick::Plain(*c),
                            _ => Quick::Other,
                        }
                    })
                    .collect()
            });
        let identity = source
            .fields()
            .iter()
            .filter_map(|f| match f.kind() {
                kubus_model::FieldKind::Pseudonym(inputs) => Some(inputs),
                _ => None,
            })
            .flatten()
            .flat_map(|i| i.leaves())
            .filter_map(|i| match i {
                kubus_model::Input::Column(c) => Some(crate::header::header_key(c)),
                _ => None,
            })
            .collect();
        Ok(Converter {
            file,
            identity,
            header,
            key,
            date_formats: source.date_formats(),
            tolerance: source.total_tolerance(),
            schema,
            unit,
            roles,
            numeric_slots,
            fields,
            builders,
            status: StringBuilder::new(),
            shapes,
            sums: HashMap::new(),
            pending: Vec::new(),
            balance_slots,
            parts: HashMap::new(),
            balances: Vec::new(),
            value_field,
            tuples: Vec::new(),
            quick,
        })
    }

    /// Converts data lines a chunk at a time and tells `each` what became of every line, in order: as
    /// [`Converter::push`] would, one field after the other over all the lines (a member's text is looked up
    /// once per distinct text, numbers are parsed in one loop, no line holds a tuple of values). A line that is
    /// anything but plain facts there — a problem, a missing value, a total — is converted by `push`, in its turn.
    pub fn push_chunk(&mut self, rows: &[Row], mut each: impl FnMut(&Row, Outcome)) {
        let Some(quick) = &self.quick else {
            for row in rows {
                each(row, self.push(row));
            }
            return;
        };
        let width = self.header.names.len();
        let mut plain: Vec<bool> = rows
            .iter()
            .map(|r| r.cells.len() >= width && r.cells[width..].iter().all(|c| c.text().is_empty()))
            .collect();
        let staged: Vec<Staged<'_>> =
            quick.iter().enumerate().map(|(slot, q)| self.stage(slot, *q, rows, &mut plain)).collect();
        if plain.iter().all(|p| *p) {
            for (slot, values) in staged.iter().enumerate() {
                self.append_staged(slot, values, 0..rows.len());
            }
            self.status.append_nulls(rows.len());
            for row in rows {
                each(row, Outcome::Facts);
            }
        } else {
            for (i, row) in rows.iter().enumerate() {
                if plain[i] {
                    for (slot, values) in staged.iter().enumerate() {
                        self.append_staged(slot, values, i..i + 1);
                    }
                    self.status.append_null();
                    each(row, Outcome::Facts);
                } else {
                    each(row, self.push(row));
                }
            }
        }
    }

    /// One field's values over a chunk of lines; a line whose value is not plain facts is marked in `plain`.
    fn stage<'r>(&self, slot: usize, quick: Quick, rows: &'r [Row], plain: &mut [bool]) -> Staged<'r> {
        fn text(row: &Row, column: usize) -> Option<&str> {
            match row.cells.get(column) {
                Some(Cell::Text(t)) => Some(t.as_str()),
                _ => None,
            }
        }
        let f = &self.fields[slot];
        match (quick, &f.plan) {
            (Quick::Member(column), _) => {
                let Builder::Member { offsets, .. } = &self.builders[slot] else {
                    unreachable!("a member field fills a member column")
                };
                let memo = f.memo.as_ref().expect("a quick member field has a memo");
                let mut members = Vec::with_capacity(rows.len());
                for (row, plain) in rows.iter().zip(plain.iter_mut()) {
                    let member = text(row, column).filter(|_| *plain).and_then(|t| {
                        let known =
                            memo.borrow().get(t).map(|r| if let Ok(Value::Member(m)) = r { Some(*m) } else { None });
                        // Not yet in the memo: looked up (and remembered) as for a single line.
                        known.unwrap_or_else(|| {
                            if let Ok(Value::Member(m)) = self.value(f, At { row, wide: None }) {
                                Some(m)
                            } else {
                                None
                            }
                        })
                    });
                    *plain &= member.is_some();
                    members.push(member.map_or(0, |m| offsets[m.level] + m.index as i32));
                }
                Staged::Members(members)
            }
            (Quick::Plain(column), Plan::Text) => {
                let mut texts = Vec::with_capacity(rows.len());
                for (row, plain) in rows.iter().zip(plain.iter_mut()) {
                    let value = text(row, column).map(str::trim).filter(|t| !t.is_empty());
                    *plain &= value.is_some();
                    texts.push(value.unwrap_or_default());
                }
                Staged::Texts(texts)
            }
            (Quick::Plain(column), Plan::Number(fact_column)) => {
                let ty = fact_column.ty();
                let (decimal, thousands, missing) =
                    (f.field.decimal_separator(), f.field.thousands_separator(), f.field.missing());
                let number = |row: &Row| {
                    let t = text(row, column)?.trim();
                    if t.is_empty() || missing.iter().any(|m| m == t) {
                        return None;
                    }
                    parse_number(t, decimal, thousands)
                };
                if ty == ColumnType::Integer {
                    let mut integers = Vec::with_capacity(rows.len());
                    for (row, plain) in rows.iter().zip(plain.iter_mut()) {
                        let n = number(row).filter(|&n| n.fract() == 0.0 && n.abs() < 9.0e15 && fact_column.holds(n));
                        *plain &= n.is_some();
                        integers.push(n.unwrap_or_default() as i64);
                    }
                    Staged::Integers(integers)
                } else {
                    let mut decimals = Vec::with_capacity(rows.len());
                    for (row, plain) in rows.iter().zip(plain.iter_mut()) {
                        let n = number(row).filter(|&n| n.is_finite() && fact_column.holds(n));
                        *plain &= n.is_some();
                        decimals.push(n.unwrap_or_default());
                    }
                    Staged::Decimals(decimals)
                }
            }
            _ => {
                let mut values = Vec::with_capacity(rows.len());
                for (row, plain) in rows.iter().zip(plain.iter_mut()) {
                    let value = if *plain { self.value(f, At { row, wide: None }).ok() } else { None };
                    let value = value.filter(|v| {
                        matches!(v, Value::Member(_) | Value::Text(_) | Value::Integer(_) | Value::Decimal(_))
                    });
                    *plain &= value.is_some();
                    values.push(value.unwrap_or(Value::Total));
                }
                Staged::Values(values)
            }
        }
    }

    /// Appends the staged values of some lines to a field's column.
    fn append_staged(&mut self, slot: usize, staged: &Staged<'_>, lines: std::ops::Range<usize>) {
        match (&mut self.builders[slot], staged) {
            (Builder::Member { numbers, .. }, Staged::Members(v)) => numbers.append_slice(&v[lines]),
            (Builder::Integer(b), Staged::Integers(v)) => b.append_slice(&v[lines]),
            (Builder::Decimal(b), Staged::Decimals(v)) => b.append_slice(&v[lines]),
            (Builder::Text(b), Staged::Texts(v)) => v[lines].iter().for_each(|t| b.append_value(t)),
            (builder, Staged::Values(v)) => v[lines].iter().for_each(|value| put(builder, value)),
            _ => unreachable!("fields are staged as their column's type"),
        }
    }

    /// Converts one data line: [`Converter::push_chunk`]'s way for a line that is not plain facts (tests compare
    /// the chunks with it).
    pub(crate) fn push(&mut self, row: &Row) -> Outcome {
        match self.convert(row) {
            Ok(outcome) => outcome,
            Err(mut p) => {
                if !p.value.is_empty() && self.identity.contains(&crate::header::header_key(&p.column)) {
                    p.reason = p.reason.replace(&format!("'{}'", p.value), "the value");
                    if p.reason.contains(&p.value) {
                        // Said some other way: the reason gives way to the problem alone.
                        p.reason = format!("the value: {}", p.problem);
                    }
                    p.value = WITHHELD.to_owned();
                }
                Outcome::Rejected(Rejection {
                    file: self.file.to_owned(),
                    line: row.line,
                    column: p.column,
                    value: p.value,
                    problem: p.problem,
                    reason: p.reason,
                })
            }
        }
    }

    fn convert(&mut self, row: &Row) -> std::result::Result<Outcome, Problem> {
        let width = self.header.names.len();
        if row.cells.len() < width || row.cells[width.min(row.cells.len())..].iter().any(|c| !c.text().is_empty()) {
            return Err(problem(
                "",
                "",
                Category::WrongFieldCount,
                format!("the line has {} fields, the header {}", row.cells.len(), width),
            ));
        }
        // One tuple per unpivoted cell (one for a long line); the buffers are reused from line to line.
        let mut tuples = std::mem::take(&mut self.tuples);
        let cells = self.header.wide.len().max(1);
        tuples.resize_with(cells, Vec::new);
        for (i, tuple) in tuples.iter_mut().enumerate() {
            let at = At { row, wide: self.header.wide.get(i) };
            tuple.clear();
            for f in &self.fields {
                match self.value(f, at) {
                    Ok(v) => tuple.push(v),
                    Err(p) => {
                        self.tuples = tuples;
                        return Err(p);
                    }
                }
            }
        }
        let outcome = self.check_line_total(row, &tuples).map(|()| {
            let mut facts = 0;
            let held = |tuple: &[Value]| {
                tuple.iter().any(|v| matches!(v, Value::Total | Value::Subtotal(_) | Value::Balance(_)))
            };
            for tuple in tuples.iter().filter(|t| !held(t)) {
                self.append(tuple);
                facts += 1;
            }
            let pure = facts == 0;
            for tuple in tuples.iter().filter(|t| held(t)) {
                if tuple.iter().any(|v| matches!(v, Value::Balance(_))) {
                    self.hold_balance(row, pure, tuple);
                } else {
                    self.hold_total(row, pure, tuple);
                }
            }
            if pure { Outcome::Total } else { Outcome::Facts }
        });
        self.tuples = tuples;
        outcome
    }

    fn numbers(&self, tuple: &[Value]) -> Vec<Option<f64>> {
        self.numeric_slots.iter().map(|&s| tuple[s].number()).collect()
    }

    fn member_key(&self, slot: usize, at: MemberRef) -> String {
        self.roles[slot].member(at).key().to_owned()
    }

    fn append(&mut self, tuple: &[Value]) {
        if !self.balance_slots.is_empty() {
            let numbers = self.numbers(tuple);
            self.note_parts(tuple, &numbers);
        }
        if !self.shapes.is_empty() {
            let numbers = self.numbers(tuple);
            for shape in 0..self.shapes.len() {
                let key = self.shapes[shape]
                    .iter()
                    .enumerate()
                    .map(|(slot, p)| match (p, &tuple[slot]) {
                        (Projection::Star, _) => "*".to_owned(),
                        (Projection::Level(l), Value::Member(m)) => {
                            let ancestor = self.roles[slot].ancestor(*m, *l);
                            self.member_key(slot, MemberRef { level: *l, index: ancestor })
                        }
                        (_, Value::Member(m)) => self.member_key(slot, *m),
                        _ => String::new(),
                    })
                    .collect();
                add_numbers(self.sums.entry((shape, key)).or_insert_with(|| vec![None; numbers.len()]), &numbers);
            }
        }
        let mut status = None;
        for (slot, value) in tuple.iter().enumerate() {
            match (&mut self.builders[slot], value) {
                (builder, Value::Missing(symbol)) => {
                    status.get_or_insert(symbol);
                    match builder {
                        Builder::Integer(b) => b.append_null(),
                        Builder::Decimal(b) => b.append_null(),
                        Builder::Text(b) => b.append_null(),
                        Builder::Member { numbers, .. } => numbers.append_null(),
                    }
                }
                (builder, value) => put(builder, value),
            }
        }
        self.status.append_option(status);
    }

    fn hold_total(&mut self, row: &Row, pure: bool, slots: &[Value]) {
        let projection: Vec<Projection> = (0..self.roles.len())
            .map(|s| match &slots[s] {
                Value::Total => Projection::Star,
                Value::Subtotal(m) => Projection::Level(m.level),
                _ => Projection::Keep,
            })
            .collect();
        let key = self.role_keys(slots, None);
        let numbers = self.numbers(slots);
        if !self.balance_slots.is_empty() {
            self.note_parts(slots, &numbers);
        }
        let shape = self.shapes.iter().position(|s| *s == projection);
        self.pending.push(PendingTotal { line: row.line, span: row.span, pure, shape, key, numbers });
    }

    /// The keys of a tuple's roles as the total and balance checks compare them: a member's key, `*` for a total,
    /// empty otherwise; `except` left empty.
    fn role_keys(&self, tuple: &[Value], except: Option<usize>) -> Vec<String> {
        (0..self.roles.len())
            .map(|s| match &tuple[s] {
                _ if Some(s) == except => String::new(),
                Value::Total => "*".to_owned(),
                Value::Subtotal(m) | Value::Member(m) => self.member_key(s, *m),
                _ => String::new(),
            })
            .collect()
    }

    /// Adds a line's numbers to what its members stand for in the balances of their fields.
    fn note_parts(&mut self, tuple: &[Value], numbers: &[Option<f64>]) {
        for i in 0..self.balance_slots.len() {
            let slot = self.balance_slots[i];
            let part = match &tuple[slot] {
                Value::Member(m) => PartKey::Member(self.member_key(slot, *m)),
                Value::Balance(b) => PartKey::Balance(self.fields[slot].balances[*b].line.clone()),
                _ => continue,
            };
            let others = self.role_keys(tuple, Some(slot));
            add_numbers(self.parts.entry((slot, part, others)).or_insert_with(|| vec![None; numbers.len()]), numbers);
        }
    }

    fn hold_balance(&mut self, row: &Row, pure: bool, tuple: &[Value]) {
        let numbers = self.numbers(tuple);
        self.note_parts(tuple, &numbers);
        let (slot, balance) = tuple
            .iter()
            .enumerate()
            .find_map(|(s, v)| if let Value::Balance(b) = v { Some((s, *b)) } else { None })
            .expect("a balance tuple holds a balance");
        let others = self.role_keys(tuple, Some(slot));
        self.balances.push(PendingBalance { line: row.line, span: row.span, pure, slot, balance, others, numbers });
    }

    /// A wide line with a total column: its unpivoted values must add up to it.
    fn check_line_total(&self, row: &Row, tuples: &[Vec<Value>]) -> std::result::Result<(), Problem> {
        let (Some(column), Some(vf)) = (self.header.total, self.value_field) else { return Ok(()) };
        let f = &self.fields[vf];
        let cell = &row.cells[column];
        let name = &self.header.names[column];
        let stated = match cell {
            Cell::Number(n) => Some(*n),
            other => parse_number(&other.text(), f.field.decimal_separator(), f.field.thousands_separator()),
        };
        let Some(stated) = stated else {
            return if f.field.missing().contains(&cell.text()) {
                Ok(())
            } else {
                Err(problem(
                    name,
                    &cell.text(),
                    Category::InvalidNumber,
                    format!("the line's total '{}' is not a number", cell.text()),
                ))
            };
        };
        // The line's details add up to it: not its unpivoted totals, subtotals or balances (a role that is held in
        // some cells of the line and a detail in others), which would count their parts twice.
        let held = |v: &Value| matches!(v, Value::Total | Value::Subtotal(_) | Value::Balance(_));
        let unpivoted: Vec<usize> = (0..self.fields.len())
            .filter(|&s| tuples.iter().any(|t| held(&t[s])) && tuples.iter().any(|t| !held(&t[s])))
            .collect();
        let details = tuples.iter().filter(|t| !unpivoted.iter().any(|&s| held(&t[s])));
        let sum: f64 = details.filter_map(|t| t[vf].number()).sum();
        if self.matches(stated, sum) {
            Ok(())
        } else {
            Err(problem(
                name,
                &cell.text(),
                Category::TotalMismatch,
                format!("the line's total in '{name}' is {stated}, its cells add up to {sum}"),
            ))
        }
    }

    /// The text of a resolved input at one cell of the line, borrowed from the line where it can be.
    fn cell<'x>(&'x self, input: &'x Resolved, at: At<'x>) -> Cow<'x, Cell> {
        const EMPTY: &Cell = &Cell::Text(String::new());
        match input {
            Resolved::Column(c) => Cow::Borrowed(at.row.cells.get(*c).unwrap_or(EMPTY)),
            Resolved::Group(g) => Cow::Owned(Cell::Text(at.wide.map(|w| w.groups[*g].clone()).unwrap_or_default())),
            Resolved::Value => Cow::Borrowed(at.wide.and_then(|w| at.row.cells.get(w.column)).unwrap_or(EMPTY)),
            Resolved::Fixed(c) => Cow::Borrowed(c),
            Resolved::Template(parts) => Cow::Owned(Cell::Text(
                parts
                    .iter()
                    .map(|p| match p {
                        Part::Text(t) => Cow::Borrowed(t.as_str()),
                        Part::Input(i) => Cow::Owned(self.cell(i, at).text()),
                    })
                    .collect(),
            )),
        }
    }

    /// The input of a field after its value translations, default for empty input, total markers, extraction
    /// and leading zeros. `None` means the input is the role's total marker.
    fn input<'x>(&'x self, f: &'x FieldPlan<'_>, at: At<'x>, which: usize) -> std::result::Result<Read<'x>, Problem> {
        let (resolved, label) = &f.inputs[which];
        let column = match (resolved, at.wide) {
            (Resolved::Value | Resolved::Group(_), Some(w)) => self.header.names[w.column].as_str(),
            _ => label.as_str(),
        };
        let raw = self.cell(resolved, at);
        let text = raw.trimmed();
        let translated = f.field.values().get(text.as_ref());
        let mut cell = if let Some(mapped) = translated {
            Cow::Owned(Cell::Text(mapped.clone()))
        } else if !text.is_empty() {
            drop(text);
            raw
        } else {
            match f.field.if_empty() {
                Some(default) => Cow::Owned(Cell::Text(default.to_owned())),
                None => {
                    return Err(problem(
                        column,
                        "",
                        Category::MissingValue,
                        format!("missing value in column '{column}'"),
                    ));
                }
            }
        };
        if !f.totals.is_empty() || !f.balances.is_empty() {
            let text = normalise(&cell.trimmed());
            if f.totals.contains(&text) {
                return Ok(Read::Total);
            }
            if let Some(b) = f.balances.iter().position(|b| b.line == text) {
                return Ok(Read::Balance(b));
            }
        }
        // A translated value is final: the pattern describes the export's own spelling.
        if let Some(re) = f.extract.as_ref().filter(|_| translated.is_none()) {
            let text = cell.text();
            let Some(caps) = re.captures(&text) else {
                return Err(problem(
                    column,
                    &text,
                    Category::UnexpectedValue,
                    format!("'{text}' does not match the pattern '{}'", re.as_str()),
                ));
            };
            let part = caps.get(1).or_else(|| caps.get(0)).map(|m| m.as_str()).unwrap_or_default();
            cell = Cow::Owned(Cell::Text(part.trim().to_owned()));
        }
        if let Some(width) = f.field.pad_zeros() {
            let text = cell.trimmed();
            if !text.is_empty() && text.len() < width && text.bytes().all(|b| b.is_ascii_digit()) {
                let padded = format!("{text:0>width$}");
                cell = Cow::Owned(Cell::Text(padded));
            }
        }
        Ok(Read::Cell(cell))
    }

    fn value(&self, f: &FieldPlan<'_>, at: At<'_>) -> std::result::Result<Value, Problem> {
        let Some(memo) = &f.memo else { return self.compute(f, at) };
        let text = match (
            &f.inputs[0].0,
            at.row.cells.get(match f.inputs[0].0 {
                Resolved::Column(c) => c,
                _ => usize::MAX,
            }),
        ) {
            (Resolved::Column(_), Some(Cell::Text(t))) => t.as_str(),
            _ => return self.compute(f, at),
        };
        if let Some(known) = memo.borrow().get(text) {
            return known.clone();
        }
        let result = self.compute(f, at);
        let mut memo = memo.borrow_mut();
        if memo.len() < MEMO_LIMIT {
            memo.insert(text.to_owned(), result.clone());
        }
        result
    }

    fn compute(&self, f: &FieldPlan<'_>, at: At<'_>) -> std::result::Result<Value, Problem> {
        let column = |i: usize| match (&f.inputs[i].0, at.wide) {
            (Resolved::Value | Resolved::Group(_), Some(w)) => self.header.names[w.column].clone(),
            _ => f.inputs[i].1.clone(),
        };
        let first = match self.input(f, at, 0)? {
            Read::Cell(cell) => cell,
            Read::Total => return Ok(Value::Total),
            Read::Balance(b) => return Ok(Value::Balance(b)),
        };
        match &f.plan {
            Plan::Member(dimension, level) => {
                let text = first.trimmed();
                let found = if f.field.subtotals() { dimension.resolve_up_to(*level, &text).ok() } else { None };
                match found {
                    Some(m) if m.level != *level => Ok(Value::Subtotal(m)),
                    Some(m) => Ok(Value::Member(m)),
                    None => dimension
                        .resolve(Some(*level), &text)
                        .map(Value::Member)
                        .map_err(|e| problem(&column(0), &text, Category::UnknownMember, e.to_string())),
                }
            }
            Plan::Date(dimension, level) => {
                let date = self.date(&first, &column(0))?;
                let key = time_key(*level, date.year(), date.month());
                dimension.resolve(Some(*level), &key).map(Value::Member).map_err(|_| {
                    problem(
                        &column(0),
                        &first.text(),
                        Category::InvalidDate,
                        format!("{key} lies outside the time dimension"),
                    )
                })
            }
            Plan::Age(dimension) => {
                let birth = self.date(&first, &column(0))?;
                let at_cell = match self.input(f, at, 1)? {
                    Read::Cell(cell) => cell,
                    Read::Total | Read::Balance(_) => Cow::Owned(Cell::Text(String::new())),
                };
                let at_date = self.date(&at_cell, &column(1))?;
                let Some(age) = at_date.years_since(birth) else {
                    return Err(problem(
                        &column(0),
                        &birth.to_string(),
                        Category::InvalidAge,
                        format!("birth date {birth} lies after the reference date {at_date}"),
                    ));
                };
                let max = dimension.members(dimension.finest()).len() as u32 - 1;
                let age = if dimension.is_open_top() { age.min(max) } else { age };
                dimension.resolve(Some(dimension.finest()), &age.to_string()).map(Value::Member).map_err(|_| {
                    problem(
                        &column(0),
                        &birth.to_string(),
                        Category::InvalidAge,
                        format!("age {age} lies outside the age dimension"),
                    )
                })
            }
            Plan::Number(fact_column) => {
                let ty = fact_column.ty();
                let text = first.trimmed();
                if f.field.missing().iter().any(|m| *m == text) {
                    return Ok(Value::Missing(text.into_owned()));
                }
                let number = match first.as_ref() {
                    Cell::Number(n) => Some(*n),
                    _ => parse_number(&text, f.field.decimal_separator(), f.field.thousands_separator()),
                };
                let invalid =
                    |what: &str| problem(&column(0), &text, Category::InvalidNumber, format!("'{text}' is not {what}"));
                match (ty, number) {
                    (_, Some(n)) if n.is_finite() && !fact_column.holds(n) => Err(problem(
                        &column(0),
                        &text,
                        Category::InvalidNumber,
                        format!(
                            "'{text}' lies outside the values of {} ({}: min and max in the cube)",
                            fact_column.name(),
                            fact_column.bounds()
                        ),
                    )),
                    (ColumnType::Integer, Some(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
                        Ok(Value::Integer(n as i64))
                    }
                    (ColumnType::Integer, Some(_)) => Err(invalid("a whole number")),
                    (ColumnType::Integer, None) => Err(invalid(&format!(
                        "a whole number in the format {}",
                        number_format(f.field.decimal_separator(), f.field.thousands_separator(), true)
                    ))),
                    (_, Some(n)) if n.is_finite() => Ok(Value::Decimal(n)),
                    _ => Err(invalid(&format!(
                        "a number in the format {}",
                        number_format(f.field.decimal_separator(), f.field.thousands_separator(), false)
                    ))),
                }
            }
            Plan::Days => {
                let from = self.date(&first, &column(0))?;
                let to_cell = match self.input(f, at, 1)? {
                    Read::Cell(cell) => cell,
                    Read::Total | Read::Balance(_) => Cow::Owned(Cell::Text(String::new())),
                };
                let to = self.date(&to_cell, &column(1))?;
                let days = (to - from).num_days();
                if days < 0 {
                    return Err(problem(
                        &column(1),
                        &to_cell.text(),
                        Category::InvalidDate,
                        format!("{to} lies before {from} ({})", column(0)),
                    ));
                }
                Ok(Value::Integer(days))
            }
            Plan::Text => Ok(Value::Text(first.text())),
            Plan::Pseudonym => {
                let mut parts = vec![first.text()];
                for i in 1..f.inputs.len() {
                    parts.push(match self.input(f, at, i)? {
                        Read::Cell(cell) => cell.text(),
                        Read::Total | Read::Balance(_) => String::new(),
                    });
                }
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                Ok(Value::Text(self.key.pseudonymise(&refs)))
            }
        }
    }

    fn date(&self, cell: &Cell, column: &str) -> std::result::Result<NaiveDate, Problem> {
        if let Cell::Date(d) = cell {
            return Ok(*d);
        }
        let text = cell.trimmed();
        self.date_formats.iter().find_map(|fmt| NaiveDate::parse_from_str(&text, fmt).ok()).ok_or_else(|| {
            let expected: Vec<String> = self.date_formats.iter().map(|f| human_format(f)).collect();
            problem(
                column,
                &text,
                Category::InvalidDate,
                format!("'{text}' is not a valid date (expected {})", expected.join(" or ")),
            )
        })
    }

    /// Compares every held total with the sums of the detail facts, then returns the facts as one batch.
    pub fn finish(mut self) -> Result<(RecordBatch, Checked)> {
        let mut checked = Checked {
            matched: Vec::new(),
            balanced: Vec::new(),
            within: 0,
            mismatched: Vec::new(),
            warnings: Vec::new(),
            compared: 0,
        };
        // Per total or balance line: its span, whether it holds only totals and balances, its problems, whether all
        // its numbers were exact, and whether it is a balance.
        let mut by_line: BTreeMap<usize, (usize, bool, Vec<String>, bool, bool)> = BTreeMap::new();
        let role_names: Vec<&str> =
            self.schema.fields().iter().take(self.roles.len()).map(|f| f.name().as_str()).collect();
        for t in &self.pending {
            let entry = by_line.entry(t.line).or_insert((t.span, t.pure, Vec::new(), true, false));
            let what = role_names.iter().zip(&t.key).map(|(r, k)| format!("{r}={k}")).collect::<Vec<_>>().join(", ");
            let Some(shape) = t.shape else {
                checked.warnings.push(format!(
                    "{}:{}: total ({what}) not checked: it sums over more than one role",
                    self.file, t.line
                ));
                continue;
            };
            let sums = self.sums.get(&(shape, t.key.clone())).cloned().unwrap_or_else(|| vec![None; t.numbers.len()]);
            for (stated, sum) in t.numbers.iter().zip(&sums) {
                checked.compared += 1;
                let (exact, ok) = match (stated, sum) {
                    (None, None) => (true, true),
                    (Some(s), None) => (*s == 0.0, *s == 0.0),
                    (None, Some(_)) => (false, false),
                    (Some(s), Some(x)) => (close(*s, *x), self.matches(*s, *x)),
                };
                entry.3 &= exact;
                if !ok {
                    let show = |v: &Option<f64>| v.map(|v| v.to_string()).unwrap_or_else(|| "missing".into());
                    entry.2.push(format!(
                        "the file's total for {what} is {}, its detail lines add up to {}",
                        show(stated),
                        show(sum)
                    ));
                }
            }
        }
        for t in &self.balances {
            let entry = by_line.entry(t.line).or_insert((t.span, t.pure, Vec::new(), true, true));
            entry.4 = true;
            let plan = &self.fields[t.slot].balances[t.balance];
            let what = role_names
                .iter()
                .zip(&t.others)
                .filter(|(_, k)| !k.is_empty())
                .map(|(r, k)| format!("{r}={k}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut expected: Vec<Option<f64>> = vec![None; t.numbers.len()];
            let mut absent = Vec::new();
            for (sign, part) in &plan.terms {
                let Some(numbers) = self.parts.get(&(t.slot, part.clone(), t.others.clone())) else {
                    absent.push(match part {
                        PartKey::Member(key) | PartKey::Balance(key) => key.clone(),
                    });
                    continue;
                };
                for (e, n) in expected.iter_mut().zip(numbers) {
                    if let Some(n) = n {
                        *e = Some(e.unwrap_or(0.0) + sign * n);
                    }
                }
            }
            let at = if what.is_empty() { String::new() } else { format!(" for {what}") };
            if !absent.is_empty() {
                entry.2.push(format!("'{}'{at} cannot be checked: no line for {}", plan.text, absent.join(", ")));
                continue;
            }
            for (stated, sum) in t.numbers.iter().zip(&expected) {
                checked.compared += 1;
                let (exact, ok) = match (stated, sum) {
                    (None, None) => (true, true),
                    (Some(s), Some(x)) => (close(*s, *x), self.matches(*s, *x)),
                    _ => (false, false),
                };
                entry.3 &= exact;
                if !ok {
                    let show = |v: &Option<f64>| v.map(|v| v.to_string()).unwrap_or_else(|| "missing".into());
                    let (name, terms) = plan.text.split_once(" = ").unwrap_or((&plan.text, ""));
                    entry.2.push(format!("the file's {name}{at} is {}, {terms} make {}", show(stated), show(sum)));
                }
            }
        }
        for (line, (span, pure, problems, exact, balance)) in by_line {
            match (pure, problems.is_empty()) {
                (true, true) => {
                    if balance {
                        checked.balanced.push((line, span));
                    } else {
                        checked.matched.push((line, span));
                    }
                    checked.within += usize::from(!exact);
                }
                (true, false) => checked.mismatched.push((
                    Rejection {
                        file: self.file.to_owned(),
                        line,
                        column: String::new(),
                        value: String::new(),
                        problem: if balance { Category::BalanceMismatch } else { Category::TotalMismatch },
                        reason: summary(&problems),
                    },
                    span,
                )),
                (false, _) => {
                    checked.warnings.extend(problems.into_iter().map(|p| format!("{}:{line}: {p}", self.file)))
                }
            }
        }
        Ok((self.flush()?, checked))
    }

    /// The facts built so far as a batch, if there are any; the builders start over.
    pub fn take_batch(&mut self) -> Result<Option<RecordBatch>> {
        self.full_batch(1)
    }

    /// What the total checks have gathered so far (the detail facts' sums and the totals held), taken out.
    pub fn take_totals(&mut self) -> Totals {
        Totals {
            sums: std::mem::take(&mut self.sums),
            pending: std::mem::take(&mut self.pending),
            parts: std::mem::take(&mut self.parts),
            balances: std::mem::take(&mut self.balances),
        }
    }

    /// Adds what another converter of the same file gathered for its lines (see [`Converter::take_totals`]).
    pub fn absorb(&mut self, totals: Totals) {
        add_sums(&mut self.sums, totals.sums);
        add_sums(&mut self.parts, totals.parts);
        self.pending.extend(totals.pending);
        self.balances.extend(totals.balances);
    }

    /// The facts built so far as a batch, once there are at least `rows` of them; the builders start over.
    pub fn full_batch(&mut self, rows: usize) -> Result<Option<RecordBatch>> {
        if self.status.len() < rows {
            return Ok(None);
        }
        self.flush().map(Some)
    }

    fn flush(&mut self) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|b| -> Result<ArrayRef> {
                Ok(match b {
                    Builder::Member { numbers, values, .. } => {
                        Arc::new(DictionaryArray::<Int32Type>::try_new(numbers.finish(), values.clone())?)
                    }
                    Builder::Text(b) => Arc::new(b.finish()),
                    Builder::Integer(b) => Arc::new(b.finish()),
                    Builder::Decimal(b) => Arc::new(b.finish()),
                })
            })
            .collect::<Result<_>>()?;
        columns.push(Arc::new(self.status.finish()));
        if let Some(unit) = self.unit {
            let units = datafusion::arrow::compute::cast(&columns[unit], &DataType::Utf8)?;
            let keys: Int32Array = units
                .as_string::<i32>()
                .iter()
                .map(|u| u.map(|u| i32::from(kubus_model::stored_record_key(u))))
                .collect();
            columns.push(Arc::new(keys));
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// A member field's balances with their terms resolved: a term that names another balance of the field is that
/// balance's line, else a member of the role's level (the model checked that it is one).
fn balance_plans(field: &Field, dimension: &Dimension, level: usize) -> Vec<BalancePlan> {
    let lines: Vec<String> = field.balances().iter().map(|b| normalise(b.line())).collect();
    field
        .balances()
        .iter()
        .map(|b| BalancePlan {
            text: b.to_string(),
            line: normalise(b.line()),
            terms: b
                .terms()
                .iter()
                .map(|t| {
                    let sign = if t.subtract { -1.0 } else { 1.0 };
                    let name = normalise(&t.name);
                    let part = if lines.contains(&name) {
                        PartKey::Balance(name)
                    } else {
                        // A name the model let through but that is no member matches no line (and fails the check).
                        let key = dimension.resolve(Some(level), &t.name).map(|m| dimension.member(m).key().to_owned());
                        PartKey::Member(key.unwrap_or(t.name.clone()))
                    };
                    (sign, part)
                })
                .collect(),
        })
        .collect()
}

/// Adds numbers to their sums; a missing number leaves its sum as it is (empty, if nothing was added yet).
fn add_numbers(sums: &mut [Option<f64>], numbers: &[Option<f64>]) {
    for (sum, n) in sums.iter_mut().zip(numbers) {
        if let Some(n) = n {
            *sum = Some(sum.unwrap_or(0.0) + n);
        }
    }
}

/// Adds sums gathered elsewhere to `mine`, key by key.
fn add_sums<K: std::hash::Hash + Eq>(mine: &mut HashMap<K, Vec<Option<f64>>>, other: HashMap<K, Vec<Option<f64>>>) {
    for (key, sums) in other {
        match mine.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut mine) => add_numbers(mine.get_mut(), &sums),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(sums);
            }
        }
    }
}

/// Appends a value (no missing one) to its column.
fn put(builder: &mut Builder, value: &Value) {
    match (builder, value) {
        (Builder::Member { numbers, offsets, .. }, Value::Member(m)) => {
            numbers.append_value(offsets[m.level] + m.index as i32)
        }
        (Builder::Text(b), Value::Text(s)) => b.append_value(s),
        (Builder::Integer(b), Value::Integer(i)) => b.append_value(*i),
        (Builder::Decimal(b), Value::Decimal(f)) => b.append_value(*f),
        _ => unreachable!("plans produce values of their slot's type; totals and missing values are held apart"),
    }
}

/// The builder of a role's column: every key of the dimension, level after level, is a value of its dictionary.
fn member_builder(dimension: &Dimension) -> Builder {
    let mut offsets = Vec::new();
    let mut keys = StringBuilder::new();
    for level in 0..dimension.levels().len() {
        offsets.push(keys.len() as i32);
        for member in dimension.members(level) {
            keys.append_value(member.key());
        }
    }
    Builder::Member { numbers: Int32Builder::new(), values: Arc::new(keys.finish()), offsets }
}

/// The first few problems of a line, and how many more there are.
fn summary(problems: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = problems[..problems.len().min(SHOWN)].join("; ");
    if problems.len() > SHOWN {
        text.push_str(&format!("; and {} more totals on this line", problems.len() - SHOWN));
    }
    text
}

impl Converter<'_> {
    /// Whether a stated total matches the sum of its details: exactly (but for floating-point rounding), or
    /// within the source's tolerance.
    fn matches(&self, stated: f64, sum: f64) -> bool {
        close(stated, sum) || self.tolerance.is_some_and(|t| t.allows(stated, sum))
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Parses a number with the given separators; a `.` where the decimal separator is `,` (and `.` is not the
/// thousands separator) makes the text invalid rather than silently a different number.
pub(crate) fn parse_number(text: &str, decimal: char, thousands: Option<char>) -> Option<f64> {
    let text = text.trim();
    if let Some(value) = plain_decimal(text.as_bytes(), decimal) {
        return Some(value);
    }
    if thousands.is_none_or(|t| !text.contains(t)) && (decimal == '.' || !text.contains(decimal)) {
        return if decimal != '.' && text.contains('.') { None } else { text.parse::<f64>().ok() };
    }
    // Without the thousands separators and with a `.` for the decimal separator, on the stack: a number has
    // only ASCII characters, and anything longer than the buffer is no number a file would hold. Thousands
    // separators group the whole part as written, 1 to 3 digits and then exactly three after each: `9,96` and
    // `2,2512` are no numbers in the format 1,234.5 (they are decimals in another one), never 996 and 22512.
    let mut plain = [0u8; 64];
    let mut len = 0;
    let (mut leading, mut group, mut fraction) = (0usize, None::<usize>, false);
    for c in text.chars() {
        if Some(c) == thousands {
            let grouped = match group {
                None => (1..=3).contains(&leading),
                Some(digits) => digits == 3,
            };
            if fraction || !grouped {
                return None;
            }
            group = Some(0);
            continue;
        }
        let c = if c == decimal {
            if fraction || group.is_some_and(|digits| digits != 3) {
                return None;
            }
            fraction = true;
            b'.'
        } else if c == '.' || !c.is_ascii() {
            return None;
        } else {
            if c.is_ascii_digit() && !fraction {
                *group.as_mut().unwrap_or(&mut leading) += 1;
            }
            c as u8
        };
        *plain.get_mut(len)? = c;
        len += 1;
    }
    if !fraction && group.is_some_and(|digits| digits != 3) {
        return None;
    }
    std::str::from_utf8(&plain[..len]).ok()?.parse::<f64>().ok()
}

/// A number written as `[+-]digits[<decimal>digits]` with at most 15 digits, read without the general parser:
/// the digits as a whole number divided by a power of ten. Both are exact in `f64`, so the quotient is the
/// correctly rounded value of the decimal, as `str::parse` gives it. `None` for anything else.
fn plain_decimal(bytes: &[u8], decimal: char) -> Option<f64> {
    const POWERS: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
    let decimal = u8::try_from(decimal).ok()?;
    let (negative, digits) = match bytes.first()? {
        b'-' => (true, &bytes[1..]),
        b'+' => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let (mut mantissa, mut count, mut fraction) = (0u64, 0usize, None);
    for (i, &b) in digits.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                count += 1;
                if count > 15 {
                    return None;
                }
                if let Some(f) = fraction.as_mut() {
                    *f += 1;
                }
            }
            _ if b == decimal && fraction.is_none() && i > 0 && i + 1 < digits.len() => fraction = Some(0),
            _ => return None,
        }
    }
    if count == 0 {
        return None;
    }
    let value = mantissa as f64 / POWERS[fraction.unwrap_or(0)];
    Some(if negative { -value } else { value })
}

/// How the field's numbers are written, as an example: `1,234.5`, `1.234,5`, `1234.5` (`1,234` when `whole`).
fn number_format(decimal: char, thousands: Option<char>, whole: bool) -> String {
    let grouped = thousands.map_or_else(|| "1234".to_owned(), |t| format!("1{t}234"));
    if whole { grouped } else { format!("{grouped}{decimal}5") }
}

fn human_format(fmt: &str) -> String {
    fmt.replace("%d", "dd").replace("%m", "mm").replace("%Y", "yyyy").replace("%y", "yy")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_field_separators() {
        assert_eq!(parse_number("9,965", '.', Some(',')), Some(9965.0));
        assert_eq!(parse_number("6.6", '.', Some(',')), Some(6.6));
        assert_eq!(parse_number("1.234,5", ',', Some('.')), Some(1234.5));
        assert_eq!(parse_number("6.6", ',', None), None);
        assert_eq!(parse_number("1023101.0", '.', None), Some(1023101.0));
        assert_eq!(parse_number("-", '.', None), None);
    }

    #[test]
    fn thousands_separators_group_three_digits() {
        for (text, decimal, thousands, expected) in [
            ("1,234,567.5", '.', Some(','), Some(1_234_567.5)),
            ("-12,345", '.', Some(','), Some(-12_345.0)),
            ("999", '.', Some(','), Some(999.0)),
            ("1.234.567", ',', Some('.'), Some(1_234_567.0)),
            ("1 234,5", ',', Some(' '), Some(1234.5)),
            ("12345,5", ',', Some('.'), Some(12345.5)),
            // A decimal of the other format, or groups of the wrong size: no number, never a larger one.
            ("9,96", '.', Some(','), None),
            ("2,2512", '.', Some(','), None),
            ("1,2345,678", '.', Some(','), None),
            ("1234,567", '.', Some(','), None),
            (",123", '.', Some(','), None),
            ("123,", '.', Some(','), None),
            ("1,23.5", '.', Some(','), None),
            ("1.5,3", ',', Some('.'), None),
            ("1.234,5.6", ',', Some('.'), None),
            ("1,234.5,6", '.', Some(','), None),
            ("1.234,56.789", ',', Some('.'), None),
        ] {
            assert_eq!(parse_number(text, decimal, thousands), expected, "{text} with {decimal} and {thousands:?}");
        }
    }

    #[test]
    fn plain_decimals_read_as_the_general_parser_reads_them() {
        // Against `str::parse` on the same text with a `.`: digits of every length up to past the fast path's
        // limit, the separator anywhere, signs, and texts the fast path must leave to the general parser.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = 1 + (next() % 18) as usize;
            let mut digits: String = (0..len).map(|_| char::from(b'0' + (next() % 10) as u8)).collect();
            if next() % 3 > 0 && len > 1 {
                let at = 1 + (next() as usize % (len - 1));
                digits.insert(at, ',');
            }
            let sign = ["", "-", "+"][(next() % 3) as usize];
            let text = format!("{sign}{digits}");
            let expected: f64 = text.replace(',', ".").parse().unwrap();
            assert_eq!(parse_number(&text, ',', None).map(f64::to_bits), Some(expected.to_bits()), "{text}");
        }
        for odd in ["", "-", "+", ",5", "5,", "1,2,3", "1.5", "1 5", "١٢"] {
            assert_eq!(plain_decimal(odd.as_bytes(), ','), None, "{odd}");
        }
        assert_eq!(parse_number("5,", ',', None), Some(5.0), "left to the general parser, as before");
    }
}
