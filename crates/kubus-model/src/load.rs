//! Loading: TOML text of every schema file → raw structs → validated [`Model`], collecting every problem of
//! every file before giving up, so `kubus check` can list them all at once.

use crate::diagnostic::Sink;
use crate::raw::{RawCube, RawDimension, RawReport, RawSource};
use crate::{Diagnostic, Diagnostics, Error, Model, Result, cube, dimension, report, source};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

/// What a schema file declares; the caller decides by directory (`dimensions/`, `cubes/`, `sources/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaKind {
    /// A conformed dimension.
    Dimension,
    /// A cube.
    Cube,
    /// A source mapping.
    Source,
    /// A report definition.
    Report,
}

/// One schema file's text with its origin label (usually the path).
#[derive(Debug, Clone)]
pub struct SchemaFile {
    /// Origin label used in diagnostics.
    pub origin: String,
    /// The TOML text.
    pub text: String,
    /// What it declares.
    pub kind: SchemaKind,
}

fn parse<T: DeserializeOwned>(file: &SchemaFile, out: &mut Vec<Diagnostic>) -> Option<T> {
    match toml::from_str::<T>(&file.text) {
        Ok(v) => Some(v),
        Err(e) => {
            let mut sink = Sink { file: &file.origin, text: &file.text, out };
            sink.at(e.span(), "", e.message().trim().to_owned());
            None
        }
    }
}

/// Loads and validates all schema files. Dimensions are lowered first, then cubes, then sources, so that
/// references resolve regardless of file order; every problem of every file is returned together.
pub fn load_model(files: &[SchemaFile]) -> Result<Model> {
    let mut out = Vec::new();
    let of = |kind: SchemaKind| files.iter().filter(move |f| f.kind == kind);

    let mut dimensions = BTreeMap::new();
    for file in of(SchemaKind::Dimension) {
        let Some(raw) = parse::<RawDimension>(file, &mut out) else { continue };
        let span = raw.name.span();
        let mut sink = Sink { file: &file.origin, text: &file.text, out: &mut out };
        if let Some(d) = dimension::lower(raw, &mut sink) {
            if dimensions.contains_key(d.name()) {
                sink.at(Some(span), "name", format!("dimension '{}' is declared twice", d.name()));
            } else {
                dimensions.insert(d.name().to_owned(), d);
            }
        }
    }
    // Cubes with facts first, so that drill-across cubes can refer to them.
    let mut cubes = BTreeMap::new();
    let raw_cubes: Vec<(&SchemaFile, RawCube)> =
        of(SchemaKind::Cube).filter_map(|file| parse::<RawCube>(file, &mut out).map(|raw| (file, raw))).collect();
    let (across, plain): (Vec<_>, Vec<_>) = raw_cubes.into_iter().partition(|(_, raw)| !raw.across.is_empty());
    for (file, raw) in plain.into_iter().chain(across) {
        let span = raw.name.span();
        let mut sink = Sink { file: &file.origin, text: &file.text, out: &mut out };
        if let Some(c) = cube::lower(raw, &dimensions, &cubes, &mut sink) {
            if cubes.contains_key(c.name()) {
                sink.at(Some(span), "name", format!("cube '{}' is declared twice", c.name()));
            } else {
                cubes.insert(c.name().to_owned(), c);
            }
        }
    }
    let mut sources = BTreeMap::new();
    for file in of(SchemaKind::Source) {
        let Some(raw) = parse::<RawSource>(file, &mut out) else { continue };
        let span = raw.name.span();
        let mut sink = Sink { file: &file.origin, text: &file.text, out: &mut out };
        if let Some(s) = source::lower(raw, &cubes, &dimensions, &mut sink) {
            if sources.contains_key(s.name()) {
                sink.at(Some(span), "name", format!("source '{}' is declared twice", s.name()));
            } else {
                sources.insert(s.name().to_owned(), s);
            }
        }
    }
    let mut reports = BTreeMap::new();
    for file in of(SchemaKind::Report) {
        let Some(raw) = parse::<RawReport>(file, &mut out) else { continue };
        let span = raw.name.span();
        let mut sink = Sink { file: &file.origin, text: &file.text, out: &mut out };
        if let Some(r) = report::lower(raw, &cubes, &dimensions, &mut sink) {
            if reports.contains_key(r.name()) {
                sink.at(Some(span), "name", format!("report '{}' is declared twice", r.name()));
            } else {
                reports.insert(r.name().to_owned(), r);
            }
        }
    }
    if out.is_empty() {
        Ok(Model { dimensions, cubes, sources, reports })
    } else {
        Err(Error::Invalid(Diagnostics(out)))
    }
}
