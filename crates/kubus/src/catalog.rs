//! What a role may ask about: its cubes with their dimensions (down to the finest level the role may see), measures
//! and labels, and the members of a level. The server's catalogue and member search read from here, so a tool
//! built on them never offers a question the role would be refused.

use crate::{Error, Project, Result};
use kubus_model::Role;
use serde::Serialize;

/// A cube as a role sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CubeInfo {
    /// Cube name.
    pub name: String,
    /// Label (German).
    pub label: String,
    /// Label (English).
    pub label_en: String,
    /// What it holds.
    pub description: Option<String>,
    /// The cubes it combines (drill-across), empty for a cube with facts of its own.
    pub across: Vec<String>,
    /// Its dimensions.
    pub dimensions: Vec<DimensionInfo>,
    /// Its measures.
    pub measures: Vec<MeasureInfo>,
}

/// A dimension of a cube: its role name and the levels the role may drill to or cut on, coarse to fine.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DimensionInfo {
    /// The role name in the cube (used in drilldowns and cuts).
    pub name: String,
    /// The conformed dimension.
    pub dimension: String,
    /// Label (German).
    pub label: String,
    /// Label (English).
    pub label_en: String,
    /// `time`, `geo` or `standard`.
    #[schema(value_type = String)]
    pub kind: &'static str,
    /// The levels the role may see, coarse to fine.
    pub levels: Vec<LevelInfo>,
}

/// A level of a dimension.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LevelInfo {
    /// Level name.
    pub name: String,
    /// Label (German).
    pub label: String,
    /// Label (English).
    pub label_en: String,
    /// Number of members.
    pub members: usize,
    /// Whether the level has a map (its members' areas, from `.../geometry?level=`).
    pub map: bool,
}

/// A measure of a cube.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MeasureInfo {
    /// Measure name.
    pub name: String,
    /// Label (German).
    pub label: String,
    /// Label (English).
    pub label_en: String,
    /// What it is.
    pub description: Option<String>,
    /// How it is computed, in words.
    pub computed: String,
}

/// A source a caller may deliver to (upload files, or fill in its form).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SourceInfo {
    /// Source name (`POST /sources/{source}/files`).
    pub name: String,
    /// What it is.
    pub description: Option<String>,
    /// The cube it feeds.
    pub cube: String,
    /// The cube's label.
    pub cube_label: String,
    /// Whether it is a form (`POST /sources/{source}/form`) rather than files.
    pub form: bool,
    /// A form's fields, in the order of the cube's dimensions and then its value columns (empty for file sources).
    pub fields: Vec<FormField>,
    /// The fields whose value the files do not hold and a delivery gives (`@set` in the mapping): each needs a
    /// part `set` = `FIELD=VALUE` in the upload, as `kubus ingest --set FIELD=VALUE` on the command line.
    pub given: Vec<String>,
}

/// One field of a form: the input it fills and what the value must be.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FormField {
    /// The input's name (the key of the submitted value).
    pub input: String,
    /// What it is asked as (the input's name, as in the office's exports).
    pub label: String,
    /// `member`, `date`, `number` or `text`.
    #[schema(value_type = String)]
    pub kind: &'static str,
    /// For a member: the cube's dimension (role) whose members are valid, and the level they are at.
    pub dimension: Option<String>,
    /// For a member: the level.
    pub level: Option<String>,
    /// Whether it may be left empty.
    pub optional: bool,
}

/// A member of a level, as the member search returns it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemberInfo {
    /// Key.
    pub key: String,
    /// Label (German).
    pub label: String,
    /// Label (English).
    pub label_en: String,
    /// Other names it is known by.
    pub aliases: Vec<String>,
}

/// Whether a role may read a cube (and every cube it combines).
fn may_read(role: Option<&Role>, cube: &kubus_model::Cube) -> bool {
    let Some(role) = role.filter(|r| !r.cubes.is_empty()) else { return true };
    let read: Vec<&str> =
        if cube.across().is_empty() { vec![cube.name()] } else { cube.across().iter().map(String::as_str).collect() };
    read.iter().all(|c| role.cubes.iter().any(|r| r == c))
}

/// The levels of a dimension a role may see: those at or above its finest level for the dimension.
pub(crate) fn visible_levels(role: Option<&Role>, dimension: &kubus_model::Dimension) -> Vec<usize> {
    let finest = role
        .and_then(|r| r.finest.iter().find(|(d, _)| d == dimension.name()))
        .and_then(|(_, level)| dimension.level_index(level).ok());
    (0..dimension.levels().len()).filter(|&l| finest.is_none_or(|f| dimension.rolls_up(f, l))).collect()
}

impl Project {
    /// The cubes a role may read, with what it may ask of each.
    pub fn catalog(&self, role: Option<&str>) -> Result<Vec<CubeInfo>> {
        let role = self.config().role_opt(role)?;
        let model = self.model();
        let mut cubes = Vec::new();
        for cube in model.cubes().filter(|c| may_read(role, c)) {
            let mut dimensions = Vec::new();
            for d in cube.dimensions() {
                let dimension = model.dimension(d.dimension())?;
                let levels = visible_levels(role, dimension)
                    .into_iter()
                    .filter(|&l| dimension.rolls_up(d.fact_level(), l))
                    .map(|l| {
                        let level = &dimension.levels()[l];
                        LevelInfo {
                            name: level.name().to_owned(),
                            label: level.label().to_owned(),
                            label_en: level.label_en().to_owned(),
                            members: dimension.members(l).len(),
                            map: level.geometry().is_some(),
                        }
                    })
                    .collect();
                let kind = match (dimension.kind(), dimension.is_geo()) {
                    (kubus_model::DimensionKind::Time, _) => "time",
                    (_, true) => "geo",
                    _ => "standard",
                };
                dimensions.push(DimensionInfo {
                    name: d.name().to_owned(),
                    dimension: dimension.name().to_owned(),
                    label: dimension.label().to_owned(),
                    label_en: dimension.label_en().to_owned(),
                    kind,
                    levels,
                });
            }
            let measures = cube
                .measures()
                .iter()
                .map(|m| MeasureInfo {
                    name: m.name().to_owned(),
                    label: m.label().to_owned(),
                    label_en: m.label_en().to_owned(),
                    description: m.description().map(str::to_owned),
                    computed: m.describe(),
                })
                .collect();
            cubes.push(CubeInfo {
                name: cube.name().to_owned(),
                label: cube.label().to_owned(),
                label_en: cube.label_en().to_owned(),
                description: cube.description().map(str::to_owned),
                across: cube.across().to_vec(),
                dimensions,
                measures,
            });
        }
        Ok(cubes)
    }

    /// The members of a level of one of a cube's dimensions (by role name in the cube), as the role may see them,
    /// whose key, label or alias contains `search` (ignoring case; all without). A cube or level the role may not
    /// see is refused, naming the rule.
    pub fn search_members(
        &self,
        role: Option<&str>,
        cube: &str,
        dimension: &str,
        level: &str,
        search: Option<&str>,
    ) -> Result<Vec<MemberInfo>> {
        let role = self.config().role_opt(role)?;
        let model = self.model();
        let cube = model.cube(cube)?;
        let refused =
            |rule: String| Error::Refused { role: role.map_or_else(|| "(none)".to_owned(), |r| r.name.clone()), rule };
        if !may_read(role, cube) {
            return Err(refused(format!("it may not read cube {}", cube.name())));
        }
        let dim = model.dimension(cube.dimension(dimension)?.dimension())?;
        let at = dim.level_index(level)?;
        if !visible_levels(role, dim).contains(&at) {
            return Err(refused(format!("it may not see {} down to level {level}", dim.name())));
        }
        let needle = search.map(str::to_lowercase).filter(|s| !s.trim().is_empty());
        let hit = |m: &kubus_model::Member| match &needle {
            None => true,
            Some(n) => std::iter::once(m.key())
                .chain([m.label(), m.label_en()])
                .chain(m.aliases().iter().map(String::as_str))
                .any(|text| text.to_lowercase().contains(n.trim())),
        };
        Ok(dim
            .members(at)
            .iter()
            .filter(|m| hit(m))
            .map(|m| MemberInfo {
                key: m.key().to_owned(),
                label: m.label().to_owned(),
                label_en: m.label_en().to_owned(),
                aliases: m.aliases().to_vec(),
            })
            .collect())
    }

    /// The sources an identity may deliver to: those its groups list under `ingest`, with a form's fields.
    pub fn deliverable_sources(&self, identity: &crate::Identity) -> Vec<SourceInfo> {
        let model = self.model();
        model
            .sources()
            .filter(|s| self.check_upload(identity, s.name()).is_ok())
            .map(|s| {
                let cube = model.cube(s.cube()).ok();
                let mut fields: Vec<(usize, FormField)> = match cube {
                    Some(cube) if s.is_form() => s
                        .fields()
                        .iter()
                        .filter_map(|f| Some((form_order(cube, f.target()), form_field(model, s, f)?)))
                        .collect(),
                    _ => Vec::new(),
                };
                fields.sort_by_key(|(at, _)| *at);
                let fields = fields.into_iter().map(|(_, f)| f).collect();
                SourceInfo {
                    name: s.name().to_owned(),
                    description: s.description().map(str::to_owned),
                    cube: s.cube().to_owned(),
                    cube_label: cube.map_or_else(|| s.cube().to_owned(), |c| c.label().to_owned()),
                    form: s.is_form(),
                    fields,
                    given: s.fields().iter().filter(|f| f.reads_given()).map(|f| f.target().to_owned()).collect(),
                }
            })
            .collect()
    }

    /// The map of a level (its dimension schema's `geometry`) as a GeoJSON FeatureCollection of the members the role
    /// may see, each feature's properties reduced to the member's `key` and `label`, with the file's `attribution`
    /// as a member of the collection. Refused like the member search;
    /// a level without a map, a file that is not a FeatureCollection, and a feature whose key is no member of the
    /// level are errors that say so (a map that silently lost an area would show it as empty).
    pub fn geometry(&self, role: Option<&str>, cube: &str, dimension: &str, level: &str) -> Result<serde_json::Value> {
        let visible: std::collections::HashMap<String, String> =
            self.search_members(role, cube, dimension, level, None)?.into_iter().map(|m| (m.key, m.label)).collect();
        let model = self.model();
        let dim = model.dimension(model.cube(cube)?.dimension(dimension)?.dimension())?;
        let at = dim.level_index(level)?;
        let failed = |reason: String| Error::Geometry { level: format!("{}.{level}", dim.name()), reason };
        let Some(geometry) = dim.levels()[at].geometry() else {
            return Err(Error::NoMap { level: format!("{}.{level}", dim.name()) });
        };
        let path = self.root().join(&geometry.file);
        let text =
            std::fs::read_to_string(&path).map_err(|e| failed(format!("cannot read {}: {e}", path.display())))?;
        let mut document: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| failed(format!("{} is not JSON: {e}", path.display())))?;
        let collection = document.get("type").and_then(|t| t.as_str()) == Some("FeatureCollection");
        let features = match (collection, document.get_mut("features")) {
            (true, Some(serde_json::Value::Array(features))) => std::mem::take(features),
            _ => return Err(failed(format!("{} is not a GeoJSON FeatureCollection", path.display()))),
        };
        let known: std::collections::HashSet<&str> = dim.members(at).iter().map(|m| m.key()).collect();
        let mut kept = Vec::new();
        for (i, mut feature) in features.into_iter().enumerate() {
            let value = feature.pointer(&format!("/properties/{}", geometry.key)).cloned().unwrap_or_default();
            let key = member_key(geometry, &value).filter(|k| known.contains(k.as_str())).ok_or_else(|| {
                failed(format!("feature {i} of {}: {} = {value} is no member", path.display(), geometry.key))
            })?;
            // The member search's members: the level's, once the role may see it (it lists no fewer: members are
            // metadata, a role's row filter limits facts, not the level's members).
            if let Some(label) = visible.get(&key) {
                feature["properties"] = serde_json::json!({ "key": key, "label": label });
                kept.push(feature);
            }
        }
        let mut collection = serde_json::json!({ "type": "FeatureCollection", "features": kept });
        if let Some(attribution) = &geometry.attribution {
            collection["attribution"] = attribution.clone().into();
        }
        Ok(collection)
    }
}

/// Where a form asks for a field: in the order of the cube's dimensions, then of its value columns.
fn form_order(cube: &kubus_model::Cube, target: &str) -> usize {
    let dimensions = cube.dimensions().iter().map(|d| d.name());
    let columns = cube.columns().iter().map(|c| c.name());
    dimensions.chain(columns).position(|name| name == target).unwrap_or(usize::MAX)
}

/// A form's field as the form asks for it (validated by the model: a named input of a member, date, number or text).
fn form_field(
    model: &kubus_model::Model,
    source: &kubus_model::Source,
    field: &kubus_model::Field,
) -> Option<FormField> {
    use kubus_model::{FieldKind, Input};
    let (kind, input) = match field.kind() {
        FieldKind::Member(Input::Column(c)) => ("member", c),
        FieldKind::Date(Input::Column(c)) => ("date", c),
        FieldKind::Number(Input::Column(c)) => ("number", c),
        FieldKind::Text(Input::Column(c)) => ("text", c),
        _ => return None,
    };
    let cube = model.cube(source.cube()).ok()?;
    let role = cube.dimension(field.target()).ok();
    let dimension = role.and_then(|r| model.dimension(r.dimension()).ok());
    Some(FormField {
        input: input.clone(),
        // The input's own name: the word of the office's export, which the person entering knows.
        label: input.clone(),
        kind,
        dimension: (kind == "member").then(|| field.target().to_owned()),
        level: match (kind, role, dimension) {
            ("member", Some(r), Some(d)) => Some(d.levels()[r.fact_level()].name().to_owned()),
            _ => None,
        },
        optional: field.if_empty().is_some(),
    })
}

/// The member key a feature's property value names: text as it is, a whole number without decimals; then padded
/// with zeros to the declared width. `None` for anything else.
fn member_key(geometry: &kubus_model::Geometry, value: &serde_json::Value) -> Option<String> {
    let text = match value {
        serde_json::Value::String(s) => s.trim().to_owned(),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
            _ => return None,
        },
        _ => return None,
    };
    match geometry.pad {
        _ if text.is_empty() => None,
        Some(width) => Some(format!("{text:0>width$}")),
        None => Some(text),
    }
}
