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
    /// A table in a PDF's text layer, its columns found by the x positions of its header's cells.
    Pdf {
        /// The column every record fills in its first line (e.g. a running number): a line with it empty
        /// carries the rest of the record above (cells wrapped over lines). `None`: every line is a record.
        record_column: Option<String>,
    },
    /// A format read by a reader the program that embeds kubus registers under `reader` (fixed-width text, a
    /// register's XML): `type = "custom"`, `reader = "…"`, its settings in `[format.options]`.
    Custom {
        /// The name the reader is registered under.
        reader: String,
        /// The reader's settings, as the source gives them.
        options: BTreeMap<String, String>,
    },
}

/// Where a field reads its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A header column by name (matched case- and hyphenation-insensitively), or a name the unpivot defines.
    Column(String),
    /// The n-th column, 1-based (`#2`), for columns without a name.
    Position(usize),
    /// One cell above the header, e.g. a reference date in a title line (`@H3`: column H, line 3).
    Cell {
        /// 1-based line or sheet row.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// Text put together from other inputs: `{tab_id}.{zei_id}`.
    Template(Vec<TemplatePart>),
    /// The file's name (`@file`), for what only the name tells (`bevoelkerung_2023.csv`: with
    /// `extract = '(\d{4})'`, the year).
    FileName,
    /// The field's value given at ingest (`@set`; `kubus ingest … --set year=2023`), for what the file does not
    /// hold but the person ingesting knows; `None` until [`Source::given`] fills it in.
    Given(Option<String>),
}

/// A piece of a template input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Literal text.
    Text(String),
    /// The value of another input.
    Input(Input),
}

impl Input {
    /// Parses the input syntax of source files: `name`, `#2`, `@H3` or `{a}.{b}`.
    pub fn parse(text: &str) -> std::result::Result<Input, String> {
        if text.contains('{') || text.contains('}') {
            let mut parts = Vec::new();
            let mut rest = text;
            while let Some(open) = rest.find('{') {
                if open > 0 {
                    parts.push(TemplatePart::Text(rest[..open].to_owned()));
                }
                let close = rest[open..].find('}').ok_or_else(|| format!("'{text}': '{{' without '}}'"))? + open;
                let inner = Input::parse(&rest[open + 1..close])?;
                if matches!(inner, Input::Template(_)) {
                    return Err(format!("'{text}': templates do not nest"));
                }
                parts.push(TemplatePart::Input(inner));
                rest = &rest[close + 1..];
            }
            if rest.contains('}') {
                return Err(format!("'{text}': '}}' without '{{'"));
            }
            if !rest.is_empty() {
                parts.push(TemplatePart::Text(rest.to_owned()));
            }
            return Ok(Input::Template(parts));
        }
        if let Some(n) = text.strip_prefix('#') {
            return match n.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Input::Position(n)),
                _ => Err(format!("'{text}': a column position is #1, #2, …")),
            };
        }
        if text == "@file" {
            return Ok(Input::FileName);
        }
        if text == "@set" {
            return Ok(Input::Given(None));
        }
        if let Some(cell) = text.strip_prefix('@') {
            let letters: String = cell.chars().take_while(char::is_ascii_alphabetic).collect();
            let digits = &cell[letters.len()..];
            let column = letters
                .to_ascii_uppercase()
                .bytes()
                .try_fold(0usize, |acc, b| acc.checked_mul(26).and_then(|a| a.checked_add(usize::from(b - b'A' + 1))));
            return match (column, digits.parse::<usize>()) {
                (Some(column), Ok(line)) if column >= 1 && line >= 1 => Ok(Input::Cell { line, column }),
                _ => Err(format!(
                    "'{text}': a cell is written like @H3 (column letters, then the line); the file's name is @file, a value given at ingest @set"
                )),
            };
        }
        if text.trim().is_empty() {
            return Err("an input column name must not be empty (use #1, #2, … for unnamed columns)".into());
        }
        Ok(Input::Column(text.to_owned()))
    }

    /// The inputs this one reads (itself, or a template's parts).
    pub fn leaves(&self) -> Vec<&Input> {
        match self {
            Input::Template(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    TemplatePart::Input(i) => Some(i),
                    TemplatePart::Text(_) => None,
                })
                .collect(),
            other => vec![other],
        }
    }

    /// [`Input::leaves`], to change them.
    fn leaves_mut(&mut self) -> Vec<&mut Input> {
        match self {
            Input::Template(parts) => parts
                .iter_mut()
                .filter_map(|p| match p {
                    TemplatePart::Input(i) => Some(i),
                    TemplatePart::Text(_) => None,
                })
                .collect(),
            other => vec![other],
        }
    }
}

/// How one fact column is produced from the input row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    /// Look the input value up as a member of the role's dimension (key, label or alias).
    Member(Input),
    /// Parse a date and take its member at the role's level (time dimensions).
    Date(Input),
    /// Age in whole years at the date in `at`, from a birth date (age dimensions).
    Age { birth: Input, at: Input },
    /// Whole days from the date in `from` to the date in `to` (arrival to allocation), into an integer column.
    Days { from: Input, to: Input },
    /// Parse a number with the field's decimal and thousands separators.
    Number(Input),
    /// Keep text as it is.
    Text(Input),
    /// HMAC-SHA-256 of the normalised values of these columns (identity fields), under the project's key.
    Pseudonym(Vec<Input>),
}

/// One mapped fact column.
#[derive(Debug, Clone)]
pub struct Field {
    target: String,
    kind: FieldKind,
    if_empty: Option<String>,
    values: BTreeMap<String, String>,
    extract: Option<String>,
    pad_zeros: Option<usize>,
    totals: Vec<String>,
    subtotals: bool,
    balances: Vec<Balance>,
    missing: Vec<String>,
    decimal_separator: char,
    thousands_separator: Option<char>,
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
    /// Source-specific value translations applied before anything else.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }
    /// A regular expression whose first group (or whole match) is the value; input that does not match is
    /// rejected.
    pub fn extract(&self) -> Option<&str> {
        self.extract.as_deref()
    }
    /// Restores leading zeros that a spreadsheet took away: all-digit input is padded to this width.
    pub fn pad_zeros(&self) -> Option<usize> {
        self.pad_zeros
    }
    /// Values that mark a total over this role (`Insgesamt`): such facts are checked against the detail facts,
    /// not stored.
    pub fn totals(&self) -> &[String] {
        &self.totals
    }
    /// Whether a member of a coarser level than the role's fact level marks a subtotal (checked, not stored).
    pub fn subtotals(&self) -> bool {
        self.subtotals
    }
    /// Balance lines of this member field (checked against their terms, not stored).
    pub fn balances(&self) -> &[Balance] {
        &self.balances
    }
    /// Symbols that mean "no number here" (`-`, `.`, `x`): the value is null and the symbol is kept as the
    /// fact's cell status.
    pub fn missing(&self) -> &[String] {
        &self.missing
    }
    /// Decimal separator of this field's numbers.
    pub fn decimal_separator(&self) -> char {
        self.decimal_separator
    }
    /// Thousands separator of this field's numbers, if any.
    pub fn thousands_separator(&self) -> Option<char> {
        self.thousands_separator
    }
    /// The inputs it reads.
    pub fn inputs(&self) -> Vec<&Input> {
        match &self.kind {
            FieldKind::Member(i) | FieldKind::Date(i) | FieldKind::Number(i) | FieldKind::Text(i) => vec![i],
            FieldKind::Age { birth, at } | FieldKind::Days { from: birth, to: at } => vec![birth, at],
            FieldKind::Pseudonym(inputs) => inputs.iter().collect(),
        }
    }

    fn inputs_mut(&mut self) -> Vec<&mut Input> {
        match &mut self.kind {
            FieldKind::Member(i) | FieldKind::Date(i) | FieldKind::Number(i) | FieldKind::Text(i) => vec![i],
            FieldKind::Age { birth, at } | FieldKind::Days { from: birth, to: at } => vec![birth, at],
            FieldKind::Pseudonym(inputs) => inputs.iter_mut().collect(),
        }
    }

    /// Whether the field reads a value given at ingest (`@set`).
    pub fn reads_given(&self) -> bool {
        self.inputs().iter().any(|i| i.leaves().iter().any(|l| matches!(l, Input::Given(_))))
    }
}

/// Names of the special categories of personal data (GDPR Art. 9) that a column name may reveal, German and
/// English, lower case.
const SPECIAL_CATEGORIES: &[&str] = &[
    "religion",
    "konfession",
    "glaube",
    "weltanschauung",
    "gesundheit",
    "health",
    "krankheit",
    "diagnos",
    "behinderung",
    "disabilit",
    "ethni",
    "rasse",
    "sexuell",
    "sexual",
    "gewerkschaft",
    "union member",
    "politisch",
    "political",
    "biometr",
    "genetisch",
    "genetic",
];

/// A field that maps a special category of personal data (by its column or target name) needs a stated purpose.
fn check_special_category(
    target: &str,
    kind: &FieldKind,
    purpose: Option<&str>,
    span: Option<std::ops::Range<usize>>,
    path: &str,
    sink: &mut Sink<'_>,
) {
    if purpose.is_some_and(|p| !p.trim().is_empty()) {
        return;
    }
    let inputs = match kind {
        FieldKind::Member(i) | FieldKind::Date(i) | FieldKind::Number(i) | FieldKind::Text(i) => vec![i],
        FieldKind::Age { birth, at } | FieldKind::Days { from: birth, to: at } => vec![birth, at],
        FieldKind::Pseudonym(inputs) => inputs.iter().collect(),
    };
    let names = inputs.into_iter().filter_map(|i| match i {
        Input::Column(name) => Some(name.as_str()),
        _ => None,
    });
    if let Some(name) = std::iter::once(target).chain(names).find(|n| {
        let lower = n.to_lowercase();
        SPECIAL_CATEGORIES.iter().any(|c| lower.contains(c))
    }) {
        sink.at(
            span,
            path.to_owned(),
            format!("'{name}' looks like a special category of personal data (religion, health, origin, ...; GDPR Art. 9): map it only with `special_category = \"<the purpose it serves>\"`, or drop it"),
        );
    }
}

/// Which lines of a file are what: header lines, a line of column numbers, a footer, and lines to skip.
#[derive(Debug, Clone)]
pub struct Layout {
    header_lines: Vec<usize>,
    column_numbers_line: Option<usize>,
    footer: Option<String>,
    skips: Vec<Skip>,
}

/// Lines skipped on purpose, with the reason that the ingest report gives.
#[derive(Debug, Clone)]
pub struct Skip {
    /// Regular expression matched against the line's first non-empty cell, or with `any_cell` against each cell.
    pub pattern: String,
    /// Whether any cell of the line may match (a balance line named in its third column), not only the first.
    pub any_cell: bool,
    /// Reason shown in reports.
    pub reason: String,
}

impl Layout {
    /// 1-based header lines, ascending; the column name joins their non-empty parts with ` / `. Lines above
    /// the first are titles.
    pub fn header_lines(&self) -> &[usize] {
        &self.header_lines
    }
    /// A line holding only column numbers (1, 2, 3, …) after the header.
    pub fn column_numbers_line(&self) -> Option<usize> {
        self.column_numbers_line
    }
    /// Regular expression for the first cell of the footer's first line; that line and all after it are footer.
    pub fn footer(&self) -> Option<&str> {
        self.footer.as_deref()
    }
    /// Other lines to skip.
    pub fn skips(&self) -> &[Skip] {
        &self.skips
    }
}

/// Wide to long: columns whose header matches a pattern become one fact each.
#[derive(Debug, Clone)]
pub struct Unpivot {
    columns: String,
    names: Vec<String>,
    value: String,
    total: Option<Input>,
}

impl Unpivot {
    /// Regular expression over the column names; its named groups become inputs (`(?P<land>.+)`).
    pub fn columns(&self) -> &str {
        &self.columns
    }
    /// The named groups of the pattern.
    pub fn names(&self) -> &[String] {
        &self.names
    }
    /// The input name under which each matched cell's value is read.
    pub fn value(&self) -> &str {
        &self.value
    }
    /// A column holding the line's total of the unpivoted cells; a line whose cells do not add up is rejected.
    pub fn total(&self) -> Option<&Input> {
        self.total.as_ref()
    }
}

/// A validated source mapping.
#[derive(Debug, Clone)]
pub struct Source {
    name: String,
    cube: String,
    description: Option<String>,
    format: Format,
    layout: Layout,
    unpivot: Option<Unpivot>,
    replace: Vec<String>,
    adds_overlaps: bool,
    total_tolerance: Option<Tolerance>,
    date_formats: Vec<String>,
    drop: Vec<String>,
    fields: Vec<Field>,
    form: bool,
}

impl Source {
    /// Whether its input is typed into a form (`type = "form"`): one line per submission, which the server writes
    /// as a UTF-8 CSV with the inputs' names as its header and ingests like any file of the source.
    pub fn is_form(&self) -> bool {
        self.form
    }
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
    /// Which lines are header, titles, footer.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    /// Wide-to-long rule, if the file is wide.
    pub fn unpivot(&self) -> Option<&Unpivot> {
        self.unpivot.as_ref()
    }
    /// The replace key: dimension roles (e.g. the snapshot month) whose values an export covers completely, so
    /// that a newer export for the same values replaces the facts of the earlier one. Empty: facts are appended.
    pub fn replace_key(&self) -> &[String] {
        &self.replace
    }
    /// Whether facts for cells the cube already has from another file are added to them (`on_overlap = "add"`:
    /// deliveries that truly add, such as one booking per line), rather than refused as the same data delivered
    /// twice (the default, `"refuse"`).
    pub fn adds_overlaps(&self) -> bool {
        self.adds_overlaps
    }
    /// How far a total in the file may be from the sum of its detail lines and still be taken as matching them:
    /// published totals of rounded figures differ from the sum of the rounded details by a unit or two. `None`:
    /// they must match exactly.
    pub fn total_tolerance(&self) -> Option<Tolerance> {
        self.total_tolerance
    }
    /// Date formats (chrono `strftime` syntax), tried in order.
    pub fn date_formats(&self) -> &[String] {
        &self.date_formats
    }
    /// Input columns dropped on purpose (names, addresses).
    pub fn dropped(&self) -> &[String] {
        &self.drop
    }
    /// Mapped fields.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The source with the values given at ingest (`--set field=value`) for the fields that read `@set`. Every
    /// such field needs one, and every value given needs such a field: a value given for a field that reads the
    /// file would silently overrule it.
    pub fn given(&self, values: &BTreeMap<String, String>) -> std::result::Result<Source, String> {
        let wanting: Vec<&str> = self.fields.iter().filter(|f| f.reads_given()).map(|f| f.target()).collect();
        if let Some(name) = values.keys().find(|name| !wanting.contains(&name.as_str())) {
            return Err(if wanting.is_empty() {
                format!(
                    "source {} reads no field from --set (none of its fields is `@set`); --set {name} is refused",
                    self.name
                )
            } else {
                format!("source {} reads only {} from --set; --set {name} is refused", self.name, wanting.join(", "))
            });
        }
        if let Some(missing) = wanting.iter().find(|f| !values.contains_key(**f)) {
            return Err(format!(
                "source {} reads {missing} from the ingest (`@set`): give it with --set {missing}=… (in an upload: \
                 a part `set` holding {missing}=…)",
                self.name
            ));
        }
        let mut source = self.clone();
        for field in &mut source.fields {
            let value = values.get(&field.target).cloned();
            for part in field.inputs_mut().into_iter().flat_map(Input::leaves_mut) {
                if let Input::Given(given) = part {
                    given.clone_from(&value);
                }
            }
        }
        Ok(source)
    }
}

/// A balance line of a member field (`"Jahresergebnis = Erträge - Aufwendungen"`): the line whose value (after the
/// field's translations) is `line` is neither a detail nor a sum of details, so it is not stored; its numbers are
/// checked against its terms, added or subtracted, each a member of the role or another balance of the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    line: String,
    terms: Vec<Term>,
}

/// One term of a balance: a member (key, label or alias) or another balance's line, added or subtracted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Whether the term is subtracted.
    pub subtract: bool,
    /// The member or balance line, as written.
    pub name: String,
}

impl Balance {
    /// Reads `LINE = TERM (+|- TERM)…`; the signs stand between spaces, so that a name may hold a hyphen
    /// (`Zu- und Abgänge`). `−` (the minus sign) is a minus too.
    pub fn parse(text: &str) -> Result<Balance, String> {
        let expected = || format!("'{text}' is not a balance: write `LINE = TERM - TERM + TERM`, signs between spaces");
        let (line, rest) = text.split_once('=').ok_or_else(expected)?;
        let line = line.trim();
        let sign = regex::Regex::new(r"(?:^|\s)([+\-−])\s").expect("a valid pattern");
        let rest = format!("{} ", rest.trim());
        let mut terms = Vec::new();
        let mut subtract = false;
        let mut from = 0;
        for caps in sign.captures_iter(&rest) {
            let whole = caps.get(0).expect("the whole match");
            let name = rest[from..whole.start()].trim();
            if !name.is_empty() || from > 0 {
                terms.push(Term { subtract, name: name.to_owned() });
            }
            subtract = &caps[1] != "+";
            from = whole.end();
        }
        terms.push(Term { subtract, name: rest[from..].trim().to_owned() });
        // A sign left at a name's start stood next to another sign (`A + + B`).
        let stray = |name: &str| {
            let mut chars = name.chars();
            matches!(chars.next(), Some('+' | '-' | '−')) && chars.next().is_some_and(char::is_whitespace)
        };
        if line.is_empty() || terms.iter().any(|t| t.name.is_empty() || stray(&t.name)) {
            return Err(expected());
        }
        Ok(Balance { line: line.to_owned(), terms })
    }

    /// The value that marks the balance line.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// What the line must equal, in order.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }
}

impl std::fmt::Display for Balance {
    /// `Jahresergebnis = Erträge − Aufwendungen`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} =", self.line)?;
        for (i, t) in self.terms.iter().enumerate() {
            match (i, t.subtract) {
                (0, false) => write!(f, " {}", t.name)?,
                (_, false) => write!(f, " + {}", t.name)?,
                (_, true) => write!(f, " − {}", t.name)?,
            }
        }
        Ok(())
    }
}

/// The balances of a member field, each checked: it parses, and each term is a member of the role's level or
/// another balance of the field.
fn lower_balances(
    raw: &[toml::Spanned<String>],
    dimension: Option<&Dimension>,
    level: usize,
    path: &str,
    sink: &mut Sink<'_>,
) -> Vec<Balance> {
    let balances: Vec<(Balance, std::ops::Range<usize>)> = raw
        .iter()
        .filter_map(|b| match Balance::parse(b.get_ref()) {
            Ok(balance) => Some((balance, b.span())),
            Err(message) => {
                sink.at(Some(b.span()), format!("{path}.balances"), message);
                None
            }
        })
        .collect();
    let lines: Vec<String> = balances.iter().map(|(b, _)| crate::normalise(b.line())).collect();
    for (balance, span) in &balances {
        for term in balance.terms() {
            let known = lines.contains(&crate::normalise(&term.name))
                || dimension.is_none_or(|d| d.resolve(Some(level), &term.name).is_ok());
            if !known {
                sink.at(
                    Some(span.clone()),
                    format!("{path}.balances"),
                    format!(
                        "'{}' in '{balance}' is neither a member of this role's level nor another balance's line",
                        term.name
                    ),
                );
            }
        }
    }
    balances.into_iter().map(|(b, _)| b).collect()
}

/// How far a total may be from the sum of its detail lines (`total_tolerance`): absolute, or relative to the larger
/// of the two.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// At most this much apart (`total_tolerance = 2`).
    Absolute(f64),
    /// At most this fraction of the larger apart (`total_tolerance = "0.5%"` is 0.005).
    Relative(f64),
}

impl Tolerance {
    /// Whether a stated total and the sum of its details are within the tolerance of each other.
    pub fn allows(self, stated: f64, sum: f64) -> bool {
        let apart = (stated - sum).abs();
        match self {
            Tolerance::Absolute(most) => apart <= most + 1e-9 * stated.abs().max(sum.abs()),
            Tolerance::Relative(fraction) => apart <= fraction * stated.abs().max(sum.abs()),
        }
    }
}

impl std::fmt::Display for Tolerance {
    /// `±2`, `±0.5 %`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tolerance::Absolute(most) => write!(f, "±{most}"),
            Tolerance::Relative(fraction) => write!(f, "±{} %", fraction * 100.0),
        }
    }
}

fn lower_tolerance(raw: Option<&toml::Spanned<crate::raw::RawTolerance>>, sink: &mut Sink<'_>) -> Option<Tolerance> {
    use crate::raw::RawTolerance;
    let raw = raw?;
    let tolerance = match raw.get_ref() {
        RawTolerance::Absolute(most) => Some(Tolerance::Absolute(*most)),
        RawTolerance::Relative(text) => text
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok())
            .map(|percent| Tolerance::Relative(percent / 100.0)),
    };
    match tolerance {
        Some(Tolerance::Absolute(x) | Tolerance::Relative(x)) if x.is_finite() && x >= 0.0 => tolerance,
        _ => {
            sink.at(
                Some(raw.span()),
                "total_tolerance",
                "total_tolerance is a number (absolute, `2`) or a percentage (`\"0.5%\"`), not negative",
            );
            None
        }
    }
}

fn single_char(
    value: Option<&toml::Spanned<String>>,
    default: Option<char>,
    path: &str,
    sink: &mut Sink<'_>,
) -> Option<char> {
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

fn check_regex(pattern: &toml::Spanned<String>, path: &str, sink: &mut Sink<'_>) -> Option<regex::Regex> {
    match regex::Regex::new(pattern.get_ref()) {
        Ok(r) => Some(r),
        Err(e) => {
            sink.at(Some(pattern.span()), path, format!("invalid regular expression: {e}"));
            None
        }
    }
}

fn input(text: &str, span: Option<std::ops::Range<usize>>, path: &str, sink: &mut Sink<'_>) -> Option<Input> {
    Input::parse(text).map_err(|message| sink.at(span, path, message)).ok()
}

fn lower_format(f: &crate::raw::RawFormat, sink: &mut Sink<'_>) -> Option<Format> {
    if f.ty.get_ref() != "custom" && (f.reader.is_some() || !f.options.is_empty()) {
        sink.at(
            f.reader.as_ref().map(|r| r.span()).or(Some(f.ty.span())),
            "format.reader",
            format!("`reader` and `[format.options]` belong to type = \"custom\", not to '{}'", f.ty.get_ref()),
        );
    }
    Some(match f.ty.get_ref().as_str() {
        "csv" => {
            let encoding = match &f.encoding {
                None => None,
                Some(e) if e.get_ref() == "auto" => None,
                Some(e) => {
                    if encoding_rs::Encoding::for_label(e.get_ref().as_bytes()).is_none() {
                        sink.with(
                            Some(e.span()),
                            "format.encoding",
                            format!("unknown encoding '{}'", e.get_ref()),
                            vec![
                                "auto".into(),
                                "utf-8".into(),
                                "windows-1252".into(),
                                "iso-8859-1".into(),
                                "utf-16le".into(),
                            ],
                        );
                    }
                    Some(e.get_ref().clone())
                }
            };
            let delimiter = single_char(f.delimiter.as_ref(), Some(','), "format.delimiter", sink).unwrap_or(',');
            if !delimiter.is_ascii() {
                sink.at(
                    f.delimiter.as_ref().map(|d| d.span()),
                    "format.delimiter",
                    "the delimiter must be an ASCII character",
                );
            }
            Format::Csv { encoding, delimiter: delimiter as u8 }
        }
        "xlsx" | "xls" | "ods" | "workbook" => Format::Xlsx { sheet: f.sheet.clone() },
        "pdf" => Format::Pdf { record_column: f.record_column.clone() },
        "custom" => match &f.reader {
            Some(reader) if !reader.get_ref().trim().is_empty() => {
                Format::Custom { reader: reader.get_ref().clone(), options: f.options.clone() }
            }
            _ => {
                sink.at(
                    Some(f.ty.span()),
                    "format.reader",
                    "a custom format names the reader that reads it: reader = \"…\" (registered by the program \
                     that embeds kubus)",
                );
                return None;
            }
        },
        // A form's submissions are written as UTF-8 CSV by the server (see `Source::is_form`).
        "form" => Format::Csv { encoding: Some("utf-8".into()), delimiter: b',' },
        other => {
            sink.with(
                Some(f.ty.span()),
                "format.type",
                format!("unknown format '{other}'"),
                vec![
                    "csv".into(),
                    "xlsx".into(),
                    "xls".into(),
                    "ods".into(),
                    "pdf".into(),
                    "form".into(),
                    "custom".into(),
                ],
            );
            return None;
        }
    })
}

fn lower_layout(raw: Option<&toml::Spanned<crate::raw::RawLayout>>, sink: &mut Sink<'_>) -> Layout {
    let default = crate::raw::RawLayout::default();
    let (l, span) = match raw {
        Some(s) => (s.get_ref(), Some(s.span())),
        None => (&default, None),
    };
    let header_lines = l.header_lines.as_ref().map(|h| h.get_ref().clone()).unwrap_or_else(|| vec![1]);
    let header_span = l.header_lines.as_ref().map(|h| h.span()).or(span.clone());
    if header_lines.is_empty() || header_lines.contains(&0) || !header_lines.is_sorted_by(|a, b| a < b) {
        sink.at(
            header_span,
            "layout.header_lines",
            "header_lines lists 1-based line numbers in ascending order, e.g. [1] or [4, 5]",
        );
    }
    let last_header = header_lines.last().copied().unwrap_or(1);
    if let Some(n) = l.column_numbers_line.as_ref().filter(|n| *n.get_ref() <= last_header) {
        sink.at(
            Some(n.span()),
            "layout.column_numbers_line",
            "the line of column numbers comes after the header lines",
        );
    }
    if let Some(footer) = &l.footer {
        check_regex(footer, "layout.footer", sink);
    }
    let mut skips = Vec::new();
    for (i, skip) in l.skip.iter().enumerate() {
        let s = skip.get_ref();
        let (pattern, any_cell) = match (&s.first_cell, &s.any_cell) {
            (Some(p), None) => (p, false),
            (None, Some(p)) => (p, true),
            _ => {
                sink.at(Some(skip.span()), format!("layout.skip[{i}]"), "a skip rule has first_cell or any_cell");
                continue;
            }
        };
        let which = if any_cell { "any_cell" } else { "first_cell" };
        check_regex(pattern, &format!("layout.skip[{i}].{which}"), sink);
        skips.push(Skip { pattern: pattern.get_ref().clone(), any_cell, reason: s.reason.clone() });
    }
    Layout {
        header_lines,
        column_numbers_line: l.column_numbers_line.as_ref().map(|n| *n.get_ref()),
        footer: l.footer.as_ref().map(|f| f.get_ref().clone()),
        skips,
    }
}

fn lower_unpivot(raw: Option<&toml::Spanned<crate::raw::RawUnpivot>>, sink: &mut Sink<'_>) -> Option<Unpivot> {
    let u = raw?.get_ref();
    let re = check_regex(&u.columns, "unpivot.columns", sink)?;
    let names: Vec<String> = re.capture_names().flatten().map(str::to_owned).collect();
    if names.is_empty() {
        sink.at(
            Some(u.columns.span()),
            "unpivot.columns",
            "the pattern needs a named group for what the column stands for, e.g. '^(?P<land>.+)$'",
        );
    }
    if names.contains(u.value.get_ref()) {
        sink.at(Some(u.value.span()), "unpivot.value", "the value's name must differ from the pattern's group names");
    }
    let total = u.total.as_ref().and_then(|t| input(t.get_ref(), Some(t.span()), "unpivot.total", sink));
    Some(Unpivot { columns: u.columns.get_ref().clone(), names, value: u.value.get_ref().clone(), total })
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
    if !cube.across().is_empty() {
        sink.at(
            Some(raw.cube.span()),
            "cube",
            format!(
                "cube '{}' combines other cubes and has no facts of its own; feed {}",
                cube.name(),
                cube.across().join(" or ")
            ),
        );
        return None;
    }
    let f = raw.format.get_ref();
    let format = lower_format(f, sink)?;
    let form = f.ty.get_ref() == "form";
    let decimal_separator =
        single_char(f.decimal_separator.as_ref(), Some('.'), "format.decimal_separator", sink).unwrap_or('.');
    let thousands_separator = single_char(f.thousands_separator.as_ref(), None, "format.thousands_separator", sink);
    if thousands_separator == Some(decimal_separator) {
        sink.at(Some(raw.format.span()), "format", "decimal and thousands separators must differ");
    }
    let date_formats = if f.date_formats.is_empty() { vec!["%Y-%m-%d".to_owned()] } else { f.date_formats.clone() };
    let layout = lower_layout(raw.layout.as_ref(), sink);
    let unpivot = lower_unpivot(raw.unpivot.as_ref(), sink);
    for (i, key) in raw.replace.iter().enumerate() {
        if cube.dimension(key.get_ref()).is_err() {
            sink.with(
                Some(key.span()),
                format!("replace[{i}]"),
                format!("the replace key must name a dimension role of cube {}", cube.name()),
                cube.dimensions().iter().map(|d| d.name().to_owned()).collect(),
            );
        }
    }
    let total_tolerance = lower_tolerance(raw.total_tolerance.as_ref(), sink);
    let adds_overlaps = match raw.on_overlap.as_ref().map(|o| (o.get_ref().as_str(), o.span())) {
        None | Some(("refuse", _)) => false,
        Some(("add", _)) => true,
        Some((other, span)) => {
            sink.with(
                Some(span),
                "on_overlap",
                format!("unknown on_overlap '{other}'"),
                vec!["refuse".to_owned(), "add".to_owned()],
            );
            false
        }
    };

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
            sink.with(
                span,
                path,
                format!("cube {} has no dimension or column '{target}'", cube.name()),
                valid_targets.clone(),
            );
            continue;
        }
        let mut parse = |text: &str| input(text, span.clone(), &path, sink);
        let kinds: Vec<Option<FieldKind>> = [
            rf.member.as_deref().map(|c| parse(c).map(FieldKind::Member)),
            rf.date.as_deref().map(|c| parse(c).map(FieldKind::Date)),
            rf.number.as_deref().map(|c| parse(c).map(FieldKind::Number)),
            rf.text.as_deref().map(|c| parse(c).map(FieldKind::Text)),
            rf.pseudonymise
                .as_ref()
                .map(|cs| cs.iter().map(|c| parse(c)).collect::<Option<Vec<_>>>().map(FieldKind::Pseudonym)),
            match (&rf.age_from, &rf.age_at) {
                (Some(birth), Some(at)) => {
                    Some(parse(birth).zip(parse(at)).map(|(birth, at)| FieldKind::Age { birth, at }))
                }
                (None, None) => None,
                _ => {
                    sink.at(
                        span.clone(),
                        &path,
                        "an age field needs both `age_from` (birth date) and `age_at` (reference date)",
                    );
                    continue;
                }
            },
            match (&rf.days_from, &rf.days_to) {
                (Some(from), Some(to)) => {
                    Some(parse(from).zip(parse(to)).map(|(from, to)| FieldKind::Days { from, to }))
                }
                (None, None) => None,
                _ => {
                    sink.at(span.clone(), &path, "a days field needs both `days_from` and `days_to` (dates)");
                    continue;
                }
            },
        ]
        .into_iter()
        .flatten()
        .collect();
        let kind = match <[Option<FieldKind>; 1]>::try_from(kinds) {
            Ok([Some(k)]) => k,
            Ok([None]) => continue,
            Err(_) => {
                sink.with(
                    span,
                    &path,
                    "a field needs exactly one of these keys",
                    vec![
                        "member".into(),
                        "date".into(),
                        "age_from + age_at".into(),
                        "days_from + days_to".into(),
                        "number".into(),
                        "text".into(),
                        "pseudonymise".into(),
                    ],
                );
                continue;
            }
        };
        let fits = match (&kind, role, column) {
            (FieldKind::Member(_), Some(_), _) => Ok(()),
            (FieldKind::Date(_), Some(r), _) => match dimensions.get(r.dimension()) {
                Some(d) if d.kind() == DimensionKind::Time => Ok(()),
                _ => Err("a `date` field fills a time dimension role"),
            },
            (FieldKind::Age { .. }, Some(r), _) => match dimensions.get(r.dimension()) {
                Some(d) if d.kind() == DimensionKind::Age && r.fact_level() == d.finest() => Ok(()),
                _ => Err("an age field fills an age dimension role recorded in single years"),
            },
            (FieldKind::Number(_), _, Some(c)) if c.ty() != ColumnType::String => Ok(()),
            (FieldKind::Days { .. }, _, Some(c)) if c.ty() == ColumnType::Integer => Ok(()),
            (FieldKind::Pseudonym(columns), _, _) if columns.is_empty() => {
                Err("`pseudonymise` needs at least one column")
            }
            (FieldKind::Text(_) | FieldKind::Pseudonym(_), _, Some(c)) if c.ty() == ColumnType::String => Ok(()),
            _ => Err(
                "this kind of field does not fit the target's type (member/date/age fill dimensions; number fills integer or decimal columns; days fill integer columns; text and pseudonymise fill string columns)",
            ),
        };
        if let Err(message) = fits {
            sink.at(span, path, message);
            continue;
        }
        check_special_category(&target, &kind, rf.special_category.as_deref(), span.clone(), &path, sink);
        let is_member = matches!(kind, FieldKind::Member(_));
        if (!rf.totals.is_empty() || rf.subtotals) && !is_member {
            sink.at(span.clone(), &path, "`totals` and `subtotals` belong to member fields");
        }
        let balances = if rf.balances.is_empty() {
            Vec::new()
        } else if !is_member {
            sink.at(span.clone(), &path, "`balances` belong to member fields");
            Vec::new()
        } else {
            let dimension = role.and_then(|r| dimensions.get(r.dimension()));
            lower_balances(&rf.balances, dimension, role.map_or(0, |r| r.fact_level()), &path, sink)
        };
        if rf.subtotals && role.is_some_and(|r| r.fact_level() == 0) {
            sink.at(span.clone(), &path, "`subtotals` needs a role recorded below the dimension's coarsest level");
        }
        if !rf.missing.is_empty() && !matches!(kind, FieldKind::Number(_)) {
            sink.at(span.clone(), &path, "`missing` symbols belong to number fields");
        }
        if let Some(x) = &rf.extract
            && check_regex(x, &format!("{path}.extract"), sink).is_some_and(|re| re.captures_len() > 2)
        {
            sink.at(
                Some(x.span()),
                format!("{path}.extract"),
                "the pattern may have at most one group: the part to keep",
            );
        }
        let decimal = single_char(
            rf.decimal_separator.as_ref(),
            Some(decimal_separator),
            &format!("{path}.decimal_separator"),
            sink,
        )
        .unwrap_or('.');
        let thousands = match &rf.thousands_separator {
            Some(t) if t.get_ref().is_empty() => None,
            Some(_) => single_char(rf.thousands_separator.as_ref(), None, &format!("{path}.thousands_separator"), sink),
            None => thousands_separator.filter(|&t| t != decimal),
        };
        if thousands == Some(decimal) {
            sink.at(span.clone(), &path, "decimal and thousands separators must differ");
        }
        // A form has one input per field, named: the form asks for it by that name.
        if form
            && !matches!(
                &kind,
                FieldKind::Member(Input::Column(_))
                    | FieldKind::Date(Input::Column(_))
                    | FieldKind::Number(Input::Column(_))
                    | FieldKind::Text(Input::Column(_))
            )
        {
            sink.at(span.clone(), &path, "a form's field is a member, date, number or text read from a named input");
        }
        fields.push(Field {
            target,
            kind,
            if_empty: rf.if_empty,
            values: rf.values,
            extract: rf.extract.map(|x| x.into_inner()),
            pad_zeros: rf.pad_zeros,
            totals: rf.totals,
            subtotals: rf.subtotals,
            balances,
            missing: rf.missing,
            decimal_separator: decimal,
            thousands_separator: thousands,
        });
    }
    for target in &valid_targets {
        if !fields.iter().any(|f| &f.target == target) && sink.out.len() == before {
            sink.at(
                Some(raw.name.span()),
                "fields",
                format!("cube {} needs a value for '{target}': add `[fields.{target}]`", cube.name()),
            );
        }
    }
    (sink.out.len() == before).then(|| Source {
        name: raw.name.into_inner(),
        cube: cube.name().to_owned(),
        description: raw.description,
        format,
        layout,
        unpivot,
        replace: raw.replace.into_iter().map(|r| r.into_inner()).collect(),
        adds_overlaps,
        total_tolerance,
        date_formats,
        drop: raw.drop,
        fields,
        form,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_parse_names_positions_cells_and_templates() {
        assert_eq!(Input::parse("Stadtteil"), Ok(Input::Column("Stadtteil".into())));
        assert_eq!(Input::parse("#2"), Ok(Input::Position(2)));
        assert_eq!(Input::parse("@H3"), Ok(Input::Cell { line: 3, column: 8 }));
        assert_eq!(Input::parse("@AA10"), Ok(Input::Cell { line: 10, column: 27 }));
        assert_eq!(
            Input::parse("{tab_id}.{#4}"),
            Ok(Input::Template(vec![
                TemplatePart::Input(Input::Column("tab_id".into())),
                TemplatePart::Text(".".into()),
                TemplatePart::Input(Input::Position(4)),
            ]))
        );
        for bad in ["#0", "#x", "@3", "@H", "{a", "a}", "{{a}}", ""] {
            assert!(Input::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn balances_parse_signs_between_spaces_and_keep_hyphens_in_names() {
        let terms = |text: &str| {
            Balance::parse(text).map(|b| b.terms().iter().map(|t| (t.subtract, t.name.clone())).collect::<Vec<_>>())
        };
        let b = Balance::parse("Jahresergebnis = Erträge - Aufwendungen").unwrap();
        assert_eq!(b.line(), "Jahresergebnis");
        assert_eq!(
            terms("J = Erträge - Aufwendungen").unwrap(),
            [(false, "Erträge".into()), (true, "Aufwendungen".into())]
        );
        assert_eq!(
            terms("Saldo = - Abgänge + Zu- und Zuzüge − X").unwrap(),
            [(true, "Abgänge".into()), (false, "Zu- und Zuzüge".into()), (true, "X".into())]
        );
        assert_eq!(terms("S=A").unwrap(), [(false, "A".into())]);
        assert_eq!(b.to_string(), "Jahresergebnis = Erträge − Aufwendungen");
        for bad in ["Saldo", "= A - B", "S = ", "S = A - ", "S = A + + B", "S = - "] {
            assert!(Balance::parse(bad).is_err(), "{bad}");
        }
    }
}
