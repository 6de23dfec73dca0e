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
            // Only the members the role may see (a row filter may leave some out).
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
