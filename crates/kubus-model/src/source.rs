//! Source mappings: how one office's export (file format, encoding, separators, date formats, header line) turns
//! into the facts of a cube, field by field, and which input columns are dropped on purpose.

use crate::diagnostic::Sink;
use crate::raw::RawSource;
use crate::{ColumnType, Cube, Dimension, DimensionKind};
use std::collections::BTreeMap;

/// The file format of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Delimited text.
    Csv {
        /// Declared encoding label (WHATWG name); `None` means detect.
        encoding: Option<String>,
        /// Field delimiter byte.
        delimiter: u8,
    },
    /// An Excel workbook (xlsx, xls, ods: whatever calamine reads).
    Xlsx {
        /// Sheet name; `None` means the first sheet.
        sheet: Option<String>,
    },
}

/// How one fact column is produced from the input row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    /// Look the input value up as a member of the role's dimension (key, label or alias).
    Member { column: String },
    /// Parse a date and take its month member (time dimensions).
    Date { column: String },
    /// Age in whole years at the date in `at`, from a birth date (age dimensions).
    Age { birth: String, at: String },
    /// Parse a number with the source's decimal and thousands separators.
    Number { column: String },
    /// Keep text as it is.
    Text { column: String },
    /// HMAC-SHA-256 of the normalised values of these columns (identity fields), under the project's key.
    Pseudonym { columns: Vec<String> },
}

/// One mapped fact column.
#[derive(Debug, Clone)]
pub struct Field {
    target: String,
    kind: FieldKind,
    if_empty: Option<String>,
    values: BTreeMap<String, String>,
}

impl Field {
    /// The fact column it fills (a dimension role or a value column).
    pub fn target(&self) -> &str {
        &self.target
    }
    /// How it is produced.
    pub fn kind(&self) -> &FieldKind {
        &self.kind
    }
    /// The value used when the input is empty; `None` means an empty input rejects the row.
    pub fn if_empty(&self) -> Option<&str> {
        self.if_empty.as_deref()
    }
    /// Source-specific value translations applied before member lookup.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }
    /// The input columns it reads.
    pub fn input_columns(&self) -> Vec<&str> {
        match &self.kind {
            FieldKind::Member { column }
            | FieldKind::Date { column }
            | FieldKind::Number { column }
            | FieldKind::Text { column } => vec![column],
            FieldKind::Age { birth, at } => vec![birth, at],
            FieldKind::Pseudonym { columns } => columns.iter().map(String::as_str).collect(),
        }
    }
}

/// A validated source mapping.
#[derive(Debug, Clone)]
pub struct Source {
    name: String,
    cube: String,
    description: Option<String>,
    format: Format,
    header_line: usize,
    decimal_separator: char,
    thousands_separator: Option<char>,
    date_formats: Vec<String>,
    total_markers: Vec<String>,
    drop: Vec<String>,
    fields: Vec<Field>,
}

impl Source {
    /// Source name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The cube it feeds.
    pub fn cube(&self) -> &str {
        &self.cube
    }
    /// Free-text description.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// File format.
    pub fn format(&self) -> &Format {
        &self.format
    }
    /// 1-based line (CSV) or row (sheet) of the header; lines above it are titles and are skipped.
    pub fn header_line(&self) -> usize {
        self.header_line
    }
    /// Decimal separator of numbers.
    pub fn decimal_separator(&self) -> char {
        self.decimal_separator
    }
    /// Thousands separator of numbers, if any.
    pub fn thousands_separator(&self) -> Option<char> {
        self.thousands_separator
    }
    /// Date formats (chrono `strftime` syntax), tried in order.
    pub fn date_formats(&self) -> &[String] {
        &self.date_formats
    }
    /// Texts that mark a total line (e.g. `Summe`) when a row's first non-empty cell starts with them.
    pub fn total_markers(&self) -> &[String] {
        &self.total_markers
    }
    /// Input columns dropped on purpose (names, addresses).
    pub fn dropped(&self) -> &[String] {
        &self.drop
    }
    /// Mapped fields.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }
}

fn single_char(value: Option<&toml::Spanned<String>>, default: Option<char>, path: &str, sink: &mut Sink<'_>) -> Option<char> {
    let Some(v) = value else { return default };
    let mut chars = v.get_ref().chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => {
            sink.at(Some(v.span()), path, format!("'{}' must be exactly one character", v.get_ref()));
            default
        }
    }
}

/// Lowers a raw source against the already lowered cubes and dimensions.
pub(crate) fn lower(
    raw: RawSource,
    cubes: &BTreeMap<String, Cube>,
    dimensions: &BTreeMap<String, Dimension>,
    sink: &mut Sink<'_>,
) -> Option<Source> {
    let before = sink.out.len();
    let Some(cube) = cubes.get(raw.cube.get_ref()) else {
        sink.with(
            Some(raw.cube.span()),
            "cube",
            format!("unknown cube '{}'", raw.cube.get_ref()),
            crate::closest(raw.cube.get_ref(), cubes.keys().map(String::as_str)),
        );
        return None;
    };
    let f = raw.format.get_ref();
    let format = match f.ty.get_ref().as_str() {
        "csv" => {
            let encoding = match &f.encoding {
                None => None,
                Some(e) if e.get_ref() == "auto" => None,
                Some(e) => {
                    if encoding_rs::Encoding::for_label(e.get_ref().as_bytes()).is_none() {
                        sink.with(Some(e.span()), "format.encoding", format!("unknown encoding '{}'", e.get_ref()), vec!["auto".into(), "utf-8".into(), "windows-1252".into(), "iso-8859-1".into(), "utf-16le".into()]);
                    }
                    Some(e.get_ref().clone())
                }
            };
            let delimiter = single_char(f.delimiter.as_ref(), Some(','), "format.delimiter", sink).unwrap_or(',');
            if !delimiter.is_ascii() {
                sink.at(f.delimiter.as_ref().map(|d| d.span()), "format.delimiter", "the delimiter must be an ASCII character");
            }
            Format::Csv { encoding, delimiter: delimiter as u8 }
        }
        "xlsx" => Format::Xlsx { sheet: f.sheet.clone() },
        other => {
            sink.with(Some(f.ty.span()), "format.type", format!("unknown format '{other}'"), vec!["csv".into(), "xlsx".into()]);
            return None;
        }
    };
    let decimal_separator = single_char(f.decimal_separator.as_ref(), Some('.'), "format.decimal_separator", sink).unwrap_or('.');
    let thousands_separator = single_char(f.thousands_separator.as_ref(), None, "format.thousands_separator", sink);
    if thousands_separator == Some(decimal_separator) {
        sink.at(Some(raw.format.span()), "format", "decimal and thousands separators must differ");
    }
    if f.header_line == Some(0) {
        sink.at(Some(raw.format.span()), "format.header_line", "header_line is 1-based");
    }
    let date_formats = if f.date_formats.is_empty() { vec!["%Y-%m-%d".to_owned()] } else { f.date_formats.clone() };

    let mut fields = Vec::new();
    let mut valid_targets: Vec<String> = cube.dimensions().iter().map(|d| d.name().to_owned()).collect();
    valid_targets.extend(cube.columns().iter().map(|c| c.name().to_owned()));
    for (target, spanned) in raw.fields {
        let path = format!("fields.{target}");
        let span = Some(spanned.span());
        let rf = spanned.into_inner();
        let role = cube.dimensions().iter().find(|d| d.name() == target);
        let column = cube.column(&target);
        if role.is_none() && column.is_none() {
            sink.with(span, path, format!("cube {} has no dimension or column '{target}'", cube.name()), valid_targets.clone());
            continue;
        }
        let kinds: Vec<FieldKind> = [
            rf.member.clone().map(|column| FieldKind::Member { column }),
            rf.date.clone().map(|column| FieldKind::Date { column }),
            rf.number.clone().map(|column| FieldKind::Number { column }),
            rf.text.clone().map(|column| FieldKind::Text { column }),
            rf.pseudonymise.clone().map(|columns| FieldKind::Pseudonym { columns }),
            match (&rf.age_from, &rf.age_at) {
                (Some(birth), Some(at)) => Some(FieldKind::Age { birth: birth.clone(), at: at.clone() }),
                (None, None) => None,
                _ => {
                    sink.at(span.clone(), &path, "an age field needs both `age_from` (birth date) and `age_at` (reference date)");
                    continue;
                }
            },
        ]
        .into_iter()
        .flatten()
        .collect();
        let kind = match <[FieldKind; 1]>::try_from(kinds) {
            Ok([k]) => k,
            Err(_) => {
                sink.with(span, &path, "a field needs exactly one of these keys", vec!["member".into(), "date".into(), "age_from + age_at".into(), "number".into(), "text".into(), "pseudonymise".into()]);
                continue;
            }
        };
        let fits = match (&kind, role, column) {
            (FieldKind::Member { .. }, Some(_), _) => Ok(()),
            (FieldKind::Date { .. }, Some(r), _) => match dimensions.get(r.dimension()) {
                Some(d) if d.kind() == DimensionKind::Time && r.fact_level() == d.finest() => Ok(()),
                _ => Err("a `date` field fills a time dimension role recorded at month level"),
            },
            (FieldKind::Age { .. }, Some(r), _) => match dimensions.get(r.dimension()) {
                Some(d) if d.kind() == DimensionKind::Age && r.fact_level() == d.finest() => Ok(()),
                _ => Err("an age field fills an age dimension role recorded in single years"),
            },
            (FieldKind::Number { .. }, _, Some(c)) if c.ty() != ColumnType::String => Ok(()),
            (FieldKind::Text { .. } | FieldKind::Pseudonym { .. }, _, Some(c)) if c.ty() == ColumnType::String => Ok(()),
            (FieldKind::Pseudonym { columns }, _, _) if columns.is_empty() => Err("`pseudonymise` needs at least one column"),
            _ => Err("this kind of field does not fit the target's type (member/date/age fill dimensions; number fills integer or decimal columns; text and pseudonymise fill string columns)"),
        };
        if let Err(message) = fits {
            sink.at(span, path, message);
            continue;
        }
        fields.push(Field { target, kind, if_empty: rf.if_empty, values: rf.values });
    }
    for target in &valid_targets {
        if !fields.iter().any(|f| &f.target == target) && sink.out.len() == before {
            sink.at(Some(raw.name.span()), "fields", format!("cube {} needs a value for '{target}': add `[fields.{target}]`", cube.name()));
        }
    }
    (sink.out.len() == before).then(|| Source {
        name: raw.name.into_inner(),
        cube: cube.name().to_owned(),
        description: raw.description,
        format,
        header_line: f.header_line.unwrap_or(1),
        decimal_separator,
        thousands_separator,
        date_formats,
        total_markers: f.total_markers.clone(),
        drop: raw.drop,
        fields,
    })
}
