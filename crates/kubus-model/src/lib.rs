//! The cube vocabulary: dimensions, cubes, measures, source mappings and the project file, parsed from TOML
//! text and validated into a model with private fields. Sans-I/O: callers hand in `(origin, text)` pairs; this
//! crate never touches the file system and knows nothing of Arrow or DataFusion.

mod cube;
mod cut;
mod diagnostic;
mod dimension;
mod load;
mod project;
mod raw;
mod record;
mod report;
mod source;

pub use cube::{Aggregate, Change, ColumnType, Cube, CubeDimension, FactColumn, Measure, MeasureKind, Period, Rollup};
pub use cut::{BadCut, Comparison, Cut, CutOp};
pub use diagnostic::{Diagnostic, Diagnostics};
pub use dimension::{Dimension, DimensionKind, Geometry, Level, Member, MemberRef, month_key, normalise, time_key};
pub use load::{SchemaFile, SchemaKind, load_model};
pub use project::{
    CellKeySettings, DemoIngest, DemoQuery, DisclosureSettings, EngineSettings, Group, Method, ProjectConfig,
    PseudonymSettings, Role, ServerSettings, StorageSettings, Topic,
};
pub use record::{RECORD_KEY_COLUMN, record_key, stored_record_key};
pub use report::{ChartKind, Report, Section, SectionKind, fill_period};
pub use source::{
    Balance, Field, FieldKind, Format, Input, Layout, Skip, Source, TemplatePart, Term, Tolerance, Unpivot,
};

use std::collections::BTreeMap;

/// Errors of the model crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One or more schema files are invalid; every problem found is listed.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// A value does not name any member of a dimension level.
    #[error("unknown member '{value}' in {dimension}{}{}", level_suffix(.level), closest_suffix(.closest))]
    UnknownMember { dimension: String, level: Option<String>, value: String, closest: Vec<String> },
    /// A name does not match any cube, measure, dimension or level. The closest of the `valid` names are found
    /// when the error is shown: a lookup tried as a probe costs no comparison of names.
    #[error("unknown {what} '{name}'{}", closest_suffix(&closest(.name, .valid.iter().map(String::as_str))))]
    UnknownName { what: &'static str, name: String, valid: Vec<String> },
    /// A name matches more than one thing and must be qualified.
    #[error("'{name}' is ambiguous: it could be {}; qualify it", .candidates.join(" or "))]
    Ambiguous { name: String, candidates: Vec<String> },
    /// A value names more than one member (a label two members share): the key tells them apart.
    #[error(
        "'{value}' is ambiguous in {dimension}: it could be {}; type the key ({}) or a whole label, in double quotes \
         if it has a comma",
        .candidates.join(" or "),
        .keys.join(" or ")
    )]
    AmbiguousMember { value: String, dimension: String, candidates: Vec<String>, keys: Vec<String> },
}

fn level_suffix(level: &Option<String>) -> String {
    level.as_ref().map(|l| format!(" (level {l})")).unwrap_or_default()
}

/// `"; closest: a, b"`, or nothing when there are no candidates; for error messages.
pub fn closest_suffix(closest: &[String]) -> String {
    if closest.is_empty() { String::new() } else { format!("; closest: {}", closest.join(", ")) }
}

/// Result type of the model crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The validated model of a project: its dimensions, cubes and sources.
#[derive(Debug, Clone)]
pub struct Model {
    dimensions: BTreeMap<String, Dimension>,
    cubes: BTreeMap<String, Cube>,
    sources: BTreeMap<String, Source>,
    reports: BTreeMap<String, Report>,
}

impl Model {
    /// All dimensions by name.
    pub fn dimensions(&self) -> impl Iterator<Item = &Dimension> {
        self.dimensions.values()
    }

    /// All cubes by name.
    pub fn cubes(&self) -> impl Iterator<Item = &Cube> {
        self.cubes.values()
    }

    /// All sources by name.
    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        self.sources.values()
    }

    /// All report definitions by name.
    pub fn reports(&self) -> impl Iterator<Item = &Report> {
        self.reports.values()
    }

    /// A report by name.
    pub fn report(&self, name: &str) -> Result<&Report> {
        self.reports.get(name).ok_or_else(|| unknown("report", name, self.reports.keys()))
    }

    /// A dimension by name.
    pub fn dimension(&self, name: &str) -> Result<&Dimension> {
        self.dimensions.get(name).ok_or_else(|| unknown("dimension", name, self.dimensions.keys()))
    }

    /// A cube by name.
    pub fn cube(&self, name: &str) -> Result<&Cube> {
        self.cubes.get(name).ok_or_else(|| unknown("cube", name, self.cubes.keys()))
    }

    /// A source by name.
    pub fn source(&self, name: &str) -> Result<&Source> {
        self.sources.get(name).ok_or_else(|| unknown("source", name, self.sources.keys()))
    }
}

/// Builds an [`Error::UnknownName`], which shows the closest of the `valid` names.
pub fn unknown<'a>(what: &'static str, name: &str, valid: impl IntoIterator<Item = &'a String>) -> Error {
    Error::UnknownName { what, name: name.to_owned(), valid: valid.into_iter().cloned().collect() }
}

/// The up to three candidates closest to `name` (Jaro-Winkler on normalised text), best first.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let wanted = normalise(name);
    // A candidate with the typed text as a word of it ("Heidekreis" in "Landkreis Heidekreis") comes first, one
    // with it inside a word next, then the others by similarity.
    let score = |candidate: &str| {
        let text = normalise(candidate);
        if wanted.chars().count() >= 3 && text.split(' ').any(|w| w == wanted) && text != wanted {
            2.0
        } else if wanted.chars().count() >= 4 && text.contains(&wanted) && text != wanted {
            1.5
        } else {
            strsim::jaro_winkler(&wanted, &text)
        }
    };
    let mut scored: Vec<(f64, &str)> =
        candidates.into_iter().map(|c| (score(c), c)).filter(|(score, _)| *score > 0.6).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, c)| c.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_closest_names_prefer_those_that_hold_the_typed_word() {
        let kreise = ["Heidenheim", "Landkreis Heidekreis", "Heide", "Kreis Heinsberg", "Landkreis Kaiserslautern"];
        assert_eq!(super::closest("Heidekreis", kreise)[0], "Landkreis Heidekreis");
        assert_eq!(super::closest("kaiserslautern", kreise)[0], "Landkreis Kaiserslautern");
        assert_eq!(super::closest("Heidenhaim", kreise)[0], "Heidenheim");
    }
}
