//! Conformed dimensions: levels from coarse to fine, members with keys, labels and aliases, and member lookup
//! (key first, then label, then alias; case-, space- and punctuation-insensitive). Time and age members are
//! generated from a year range and age bands rather than listed.

use crate::diagnostic::Sink;
use crate::raw::{RawBand, RawDimension};
use crate::{Error, Result, closest};
use std::collections::HashMap;

/// How a dimension's members come about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DimensionKind {
    /// Members listed in the schema file.
    Enumerated,
    /// Calendar: levels year → quarter → month, generated for a range of years.
    Time,
    /// Age: single years 0..=max, grouped into bands.
    Age,
}

/// One level of a dimension. The `levels` of the schema form the main hierarchy from coarse to fine; each further
/// hierarchy adds a level directly above the finest one (age bands of another kind, the school year).
#[derive(Debug, Clone)]
pub struct Level {
    name: String,
    label: String,
    label_en: Option<String>,
    finer: Option<usize>,
    hierarchy: Option<String>,
    geometry: Option<Geometry>,
}

/// Where a level's members are drawn on a map: a GeoJSON file of the project (a relative path inside it) whose
/// features carry the member key in a property, possibly left-padded with zeros to `pad` characters (a file that
/// numbers Stadtbezirke `7` for the member `007`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// The file, relative to the project folder.
    pub file: std::path::PathBuf,
    /// The feature property holding the member key.
    pub key: String,
    /// The width the key is left-padded to with zeros, if the file's keys are not padded as the members' are.
    pub pad: Option<usize>,
    /// Whom the boundaries are from, as their licence asks to say under the map.
    pub attribution: Option<String>,
}

impl Level {
    /// The level's name, e.g. `district`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The German label.
    pub fn label(&self) -> &str {
        &self.label
    }
    /// The English label, falling back to the German one.
    pub fn label_en(&self) -> &str {
        self.label_en.as_deref().unwrap_or(&self.label)
    }
    /// The level directly below this one in its hierarchy (`None` for the finest level).
    pub fn finer(&self) -> Option<usize> {
        self.finer
    }
    /// The further hierarchy this level belongs to (`None` for the main one).
    pub fn hierarchy(&self) -> Option<&str> {
        self.hierarchy.as_deref()
    }
    /// Where its members are drawn on a map, if anywhere.
    pub fn geometry(&self) -> Option<&Geometry> {
        self.geometry.as_ref()
    }
}

/// A member of one level.
#[derive(Debug, Clone)]
pub struct Member {
    key: String,
    label: String,
    label_en: Option<String>,
    aliases: Vec<String>,
    parent: Option<usize>,
}

impl Member {
    /// The member's key, e.g. `06`.
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The German label.
    pub fn label(&self) -> &str {
        &self.label
    }
    /// The English label, falling back to the German one.
    pub fn label_en(&self) -> &str {
        self.label_en.as_deref().unwrap_or(&self.label)
    }
    /// Other spellings that resolve to this member.
    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }
    /// Index of the parent member in the next coarser level of the main hierarchy.
    pub fn parent(&self) -> Option<usize> {
        self.parent
    }
}

/// A member's position: level index and index within the level (declaration order = member order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemberRef {
    /// Level index, 0 = coarsest.
    pub level: usize,
    /// Index within the level.
    pub index: usize,
}

#[derive(Debug, Clone, Default)]
struct LevelIndex {
    keys: HashMap<String, usize>,
    labels: HashMap<String, Vec<usize>>,
    aliases: HashMap<String, Vec<usize>>,
}

/// A validated conformed dimension.
#[derive(Debug, Clone)]
pub struct Dimension {
    name: String,
    label: String,
    label_en: Option<String>,
    kind: DimensionKind,
    ordered: bool,
    geo: bool,
    additive: bool,
    open_top: bool,
    levels: Vec<Level>,
    members: Vec<Vec<Member>>,
    /// For each level of a further hierarchy: the index of the parent of each member of the finest level.
    hierarchy_parents: Vec<Vec<usize>>,
    /// Per level, its members by normalised key, label and alias: made at the first lookup in the level, since a
    /// run of the CLI looks up members of few levels (the time dimension alone has some 8,000 names to fold).
    index: Vec<std::sync::OnceLock<LevelIndex>>,
}

/// Normal form for matching names: lower case, separators (`-`, `_`, `/`, `.`, `,`) and runs of white space
/// folded into one space.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // A space is written only before the next word, so runs fold into one and none leads or trails.
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() || matches!(c, '-' | '_' | '/' | '.' | ',') {
            space = !out.is_empty();
            continue;
        }
        if std::mem::take(&mut space) {
            out.push(' ');
        }
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

impl Dimension {
    /// The dimension's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The German label.
    pub fn label(&self) -> &str {
        &self.label
    }
    /// The English label, falling back to the German one.
    pub fn label_en(&self) -> &str {
        self.label_en.as_deref().unwrap_or(&self.label)
    }
    /// How the members come about.
    pub fn kind(&self) -> DimensionKind {
        self.kind
    }
    /// Whether member order is meaningful (CEFR levels, ages, months), so ranges make sense.
    pub fn is_ordered(&self) -> bool {
        self.ordered
    }
    /// Whether the members are places (districts, regions).
    pub fn is_geo(&self) -> bool {
        self.geo
    }
    /// Whether a sum over its members means anything. `additive = false` declares categories that overlap (an
    /// offence key and its sub-keys, "darunter" lines): summed over them, a count counts some facts several
    /// times, so a query sums only within one member of its finest level.
    pub fn is_additive(&self) -> bool {
        self.additive
    }
    /// Whether the last single year of an age dimension also holds everyone older.
    pub fn is_open_top(&self) -> bool {
        self.open_top
    }
    /// Levels from coarse to fine.
    pub fn levels(&self) -> &[Level] {
        &self.levels
    }
    /// Index of the finest level (the last of the main hierarchy; further hierarchies' levels follow it).
    pub fn finest(&self) -> usize {
        self.levels.iter().position(|l| l.finer.is_none()).expect("validated: a dimension has a finest level")
    }
    /// The levels from `level` down to the finest, following its hierarchy.
    fn chain_down(&self, level: usize) -> Vec<usize> {
        let mut chain = vec![level];
        while let Some(finer) = self.levels[*chain.last().expect("not empty")].finer {
            chain.push(finer);
        }
        chain
    }
    /// Whether members of `from` roll up into `to` (the same level, or one above it in a hierarchy).
    pub fn rolls_up(&self, from: usize, to: usize) -> bool {
        self.chain_down(to).contains(&from)
    }
    /// The levels that members of `level` roll up into, `level` first, then the coarser ones.
    pub fn levels_above(&self, level: usize) -> Vec<usize> {
        let mut above: Vec<usize> = (0..self.levels.len()).filter(|&l| l != level && self.rolls_up(level, l)).collect();
        above.sort_by_key(|&l| self.chain_down(l).len());
        std::iter::once(level).chain(above).collect()
    }
    /// For time dimensions, how many months a member of `level` spans (year 12, quarter 3, month 1, school year 12).
    pub fn months_per_member(&self, level: usize) -> Option<usize> {
        (self.kind == DimensionKind::Time).then(|| match self.levels[level].name.as_str() {
            "quarter" => 3,
            "month" => 1,
            _ => 12,
        })
    }
    /// Members of a level, in order.
    pub fn members(&self, level: usize) -> &[Member] {
        &self.members[level]
    }
    /// One member.
    pub fn member(&self, at: MemberRef) -> &Member {
        &self.members[at.level][at.index]
    }

    /// The index of a level by name.
    pub fn level_index(&self, name: &str) -> Result<usize> {
        self.levels
            .iter()
            .position(|l| l.name == name)
            .ok_or_else(|| crate::unknown("level", name, self.levels.iter().map(|l| &l.name)))
    }

    /// The ancestor of `at` at `level`, which its level must roll up into (see [`Dimension::rolls_up`]).
    pub fn ancestor(&self, at: MemberRef, level: usize) -> usize {
        let chain = self.chain_down(level);
        let from = chain.iter().position(|&l| l == at.level).expect("callers check that the level rolls up");
        let mut index = at.index;
        for step in (0..from).rev() {
            let (coarser, finer) = (chain[step], chain[step + 1]);
            index = if self.levels[coarser].hierarchy.is_some() {
                self.hierarchy_parents[coarser][index]
            } else {
                self.members[finer][index].parent.expect("validated: every non-root member has a parent")
            };
        }
        index
    }

    /// The direct parents of a member: one in each level directly above its level (several for the finest level
    /// of a dimension with further hierarchies), as `(level, index)`.
    pub fn parents(&self, at: MemberRef) -> Vec<MemberRef> {
        (0..self.levels.len())
            .filter(|&l| self.levels[l].finer == Some(at.level))
            .map(|l| MemberRef { level: l, index: self.ancestor(at, l) })
            .collect()
    }

    /// The members of `level` below `at`, in order (empty when `level` does not roll up into `at`'s level).
    pub fn descendants(&self, at: MemberRef, level: usize) -> Vec<usize> {
        if level == at.level {
            return vec![at.index];
        }
        if !self.rolls_up(level, at.level) {
            return Vec::new();
        }
        (0..self.members[level].len())
            .filter(|&i| self.ancestor(MemberRef { level, index: i }, at.level) == at.index)
            .collect()
    }

    /// Resolves text to a member: on `level` if given, else on every level from finest to coarsest. Keys win
    /// over labels, labels over aliases.
    pub fn resolve(&self, level: Option<usize>, value: &str) -> Result<MemberRef> {
        match level {
            Some(l) => self.resolve_in(&[l], level, value),
            None => self.resolve_up_to(self.finest(), value),
        }
    }

    /// Resolves text to a member of `finest` or a level it rolls up into, trying the finer levels first.
    pub fn resolve_up_to(&self, finest: usize, value: &str) -> Result<MemberRef> {
        self.resolve_in(&self.levels_above(finest), None, value)
    }

    fn resolve_in(&self, levels: &[usize], level: Option<usize>, value: &str) -> Result<MemberRef> {
        let wanted = normalise(value);
        let exact = value.trim();
        // A value without a letter or digit (`-`, `/`, `*`) matches only a key, label or alias written exactly so:
        // folded, it would be empty or all separators and match another member (`-` the total `------`). So does
        // one with a separator next to a digit at its start or end (`-1`, `.5`, `5-`, `5.`): folding would drop a
        // sign (a trailing minus in SAP's exports), a decimal point or an ordinal's dot, and take a negative age or
        // a fraction for the member `1` or `5`.
        let separator = |c: Option<char>| matches!(c, Some('-' | '_' | '/' | '.' | ','));
        let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
        let (mut ahead, mut behind) = (exact.chars(), exact.chars().rev());
        let signed =
            (separator(ahead.next()) && digit(ahead.next())) || (separator(behind.next()) && digit(behind.next()));
        let symbols = signed || !value.chars().any(char::is_alphanumeric);
        for table in [0, 1, 2] {
            for &l in levels {
                let idx = self.index_of(l);
                let exactly: Vec<usize>;
                let hits: &[usize] = if symbols {
                    exactly = (self.members[l].iter().enumerate())
                        .filter(|(_, m)| match table {
                            0 => m.key == exact,
                            1 => m.label == exact || m.label_en.as_deref() == Some(exact),
                            _ => m.aliases.iter().any(|a| a == exact),
                        })
                        .map(|(i, _)| i)
                        .collect();
                    &exactly
                } else {
                    match table {
                        0 => idx.keys.get(&wanted).map(std::slice::from_ref).unwrap_or(&[]),
                        1 => idx.labels.get(&wanted).map(Vec::as_slice).unwrap_or(&[]),
                        _ => idx.aliases.get(&wanted).map(Vec::as_slice).unwrap_or(&[]),
                    }
                };
                match hits {
                    [] => {}
                    [one] => return Ok(MemberRef { level: l, index: *one }),
                    many => {
                        let members: Vec<&Member> = many.iter().map(|&i| &self.members[l][i]).collect();
                        return Err(Error::AmbiguousMember {
                            value: value.to_owned(),
                            dimension: self.name.clone(),
                            candidates: members.iter().map(|m| format!("{} ({})", m.key, m.label)).collect(),
                            keys: members.iter().map(|m| crate::cut::quoted(&m.key).into_owned()).collect(),
                        });
                    }
                }
            }
        }
        let candidates: Vec<String> = levels
            .iter()
            .flat_map(|&l| self.members[l].iter())
            .flat_map(|m| std::iter::once(&m.label).chain(std::iter::once(&m.key)).chain(m.aliases.iter()))
            .cloned()
            .collect();
        let near = closest(value, candidates.iter().map(String::as_str));
        // Report each suggestion as "key (label)" so the user can copy either.
        let mut shown: Vec<String> = Vec::new();
        for n in near {
            if let Ok(r) = self.resolve(level, &n) {
                let m = self.member(r);
                let s = format!("{} ({})", m.key, m.label);
                if !shown.contains(&s) {
                    shown.push(s);
                }
            }
        }
        Err(Error::UnknownMember {
            dimension: self.name.clone(),
            level: level.map(|l| self.levels[l].name.clone()),
            value: value.to_owned(),
            closest: shown,
        })
    }

    /// The index of level `l`'s members, made at its first use.
    fn index_of(&self, l: usize) -> &LevelIndex {
        self.index[l].get_or_init(|| {
            let mut idx = LevelIndex::default();
            for (i, m) in self.members[l].iter().enumerate() {
                idx.keys.insert(normalise(&m.key), i);
                for label in std::iter::once(&m.label).chain(m.label_en.iter()) {
                    let entry = idx.labels.entry(normalise(label)).or_default();
                    if !entry.contains(&i) {
                        entry.push(i);
                    }
                }
                for alias in &m.aliases {
                    let entry = idx.aliases.entry(normalise(alias)).or_default();
                    if !entry.contains(&i) {
                        entry.push(i);
                    }
                }
            }
            idx
        })
    }
}

const MONTHS_DE: [&str; 12] = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn member(key: String, label: String, label_en: Option<String>, aliases: Vec<String>, parent: Option<usize>) -> Member {
    Member { key, label, label_en, aliases, parent }
}

/// The key of the month member for a calendar date; used by ingest for date fields.
pub fn month_key(year: i32, month: u32) -> String {
    format!("{year:04}-{month:02}")
}

/// The key of the member of a time dimension's level (0 year, 1 quarter, 2 month, 3 school year) that holds a
/// calendar date.
pub fn time_key(level: usize, year: i32, month: u32) -> String {
    match level {
        0 => format!("{year:04}"),
        1 => format!("{year:04}-Q{}", month.div_ceil(3)),
        2 => month_key(year, month),
        _ => school_year_key(year, month),
    }
}

fn time_members(from: i32, to: i32) -> Vec<Vec<Member>> {
    let (mut years, mut quarters, mut months) = (Vec::new(), Vec::new(), Vec::new());
    for (yi, y) in (from..=to).enumerate() {
        years.push(member(y.to_string(), y.to_string(), None, vec![], None));
        for q in 1..=4u32 {
            let qi = quarters.len();
            quarters.push(member(
                format!("{y}-Q{q}"),
                format!("{q}. Quartal {y}"),
                Some(format!("Q{q} {y}")),
                vec![format!("Q{q} {y}"), format!("{y} Q{q}")],
                Some(yi),
            ));
            for m in (q - 1) * 3 + 1..=q * 3 {
                months.push(member(
                    month_key(y, m),
                    format!("{} {y}", MONTHS_DE[m as usize - 1]),
                    Some(format!("{} {y}", MONTHS_EN[m as usize - 1])),
                    vec![format!("{m:02}.{y}"), format!("{m}.{y}"), format!("{y}-{m}")],
                    Some(qi),
                ));
            }
        }
    }
    vec![years, quarters, months]
}

fn age_members(max_age: u32, open_top: bool, bands: &[&RawBand]) -> Vec<Vec<Member>> {
    let band_members = bands
        .iter()
        .map(|b| member(b.key.get_ref().clone(), b.label.clone(), b.label_en.clone(), b.aliases.clone(), None))
        .collect();
    let years = (0..=max_age)
        .map(|a| {
            let parent = bands.iter().position(|b| a >= b.from && b.to.is_none_or(|to| a < to));
            if open_top && a == max_age {
                member(
                    a.to_string(),
                    format!("{a} Jahre und älter"),
                    Some(format!("{a} years and older")),
                    vec![format!("{a}+")],
                    parent,
                )
            } else {
                member(a.to_string(), a.to_string(), None, vec![], parent)
            }
        })
        .collect();
    vec![band_members, years]
}

/// Lowers a raw dimension, reporting every problem into `sink`.
pub(crate) fn lower(raw: RawDimension, sink: &mut Sink<'_>) -> Option<Dimension> {
    let before = sink.out.len();
    let name = raw.name.get_ref().clone();
    let kind = match raw.kind.as_ref().map(|k| k.get_ref().as_str()) {
        None | Some("enumerated") => DimensionKind::Enumerated,
        Some("time") => DimensionKind::Time,
        Some("age") => DimensionKind::Age,
        Some(other) => {
            sink.with(
                raw.kind.as_ref().map(|k| k.span()),
                "kind",
                format!("unknown dimension kind '{other}'"),
                vec!["enumerated".into(), "time".into(), "age".into()],
            );
            DimensionKind::Enumerated
        }
    };
    let main = raw.levels.len();
    let mut levels: Vec<Level> = raw
        .levels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let l = l.get_ref();
            let finer = (i + 1 < main).then_some(i + 1);
            Level {
                name: l.name.get_ref().clone(),
                label: l.label.clone(),
                label_en: l.label_en.clone(),
                finer,
                hierarchy: None,
                geometry: None,
            }
        })
        .collect();
    for (i, l) in raw.levels.iter().enumerate() {
        let Some(g) = &l.get_ref().geometry else { continue };
        let file = std::path::PathBuf::from(&g.get_ref().file);
        // Inside the project: the server reads the file for anyone who may see the level.
        let inside = file.is_relative()
            && file.components().all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
        if !inside {
            sink.at(
                Some(g.span()),
                format!("levels[{i}].geometry.file"),
                "a path inside the project folder, such as geo/areas.geojson",
            );
        } else if g.get_ref().key.trim().is_empty() {
            sink.at(
                Some(g.span()),
                format!("levels[{i}].geometry.key"),
                "the feature property that holds the member key",
            );
        } else {
            let g = g.get_ref();
            levels[i].geometry = Some(Geometry {
                file,
                key: g.key.clone(),
                pad: g.pad.filter(|&p| p > 0),
                attribution: g.attribution.clone(),
            });
        }
    }
    if levels.is_empty() {
        sink.at(Some(raw.name.span()), "levels", "a dimension needs at least one level");
        return None;
    }
    for (i, l) in raw.levels.iter().enumerate() {
        if raw.levels[..i].iter().any(|p| p.get_ref().name.get_ref() == l.get_ref().name.get_ref()) {
            sink.at(Some(l.span()), format!("levels[{i}].name"), "duplicate level name");
        }
    }
    let level_names: Vec<String> = levels.iter().map(|l| l.name.clone()).collect();
    let mut members = match kind {
        DimensionKind::Time => {
            if level_names != ["year", "quarter", "month"] {
                sink.with(
                    Some(raw.levels[0].span()),
                    "levels",
                    "a time dimension has the levels year, quarter, month",
                    vec!["year, quarter, month".into()],
                );
                return None;
            }
            let Some(years) = raw.years.as_ref() else {
                sink.at(Some(raw.name.span()), "years", "a time dimension needs `years = [first, last]`");
                return None;
            };
            let [from, to] = *years.get_ref();
            if from > to || to - from > 500 {
                sink.at(
                    Some(years.span()),
                    "years",
                    "years must be [first, last] with first <= last, at most 500 years",
                );
                return None;
            }
            time_members(from, to)
        }
        DimensionKind::Age => {
            if levels.len() != 2 {
                sink.at(
                    Some(raw.levels[0].span()),
                    "levels",
                    "an age dimension has two levels: bands, then single years",
                );
                return None;
            }
            let max_age = raw.max_age.as_ref().map(|m| *m.get_ref()).unwrap_or(110);
            let bands: Vec<&RawBand> = raw.bands.iter().map(|b| b.get_ref()).collect();
            check_bands(&bands, max_age, raw.bands.first().map(|b| b.span()).unwrap_or(raw.name.span()), "bands", sink);
            age_members(max_age, raw.open_top, &bands)
        }
        DimensionKind::Enumerated => lower_members(&raw, &level_names, sink),
    };
    let hierarchy_parents = lower_hierarchies(&raw, kind, &mut levels, &mut members, sink);
    let index = members.iter().map(|_| std::sync::OnceLock::new()).collect();
    let dim = Dimension {
        name,
        label: raw.label,
        label_en: raw.label_en,
        kind,
        ordered: raw.ordered || kind != DimensionKind::Enumerated,
        geo: raw.geo,
        additive: raw.additive.unwrap_or(true),
        open_top: raw.open_top,
        levels,
        members,
        hierarchy_parents,
        index,
    };
    (sink.out.len() == before).then_some(dim)
}

/// Bands must cover every age from 0 to `max_age` exactly once.
fn check_bands(bands: &[&RawBand], max_age: u32, span: std::ops::Range<usize>, path: &str, sink: &mut Sink<'_>) {
    for age in 0..=max_age {
        let covering = bands.iter().filter(|b| age >= b.from && b.to.is_none_or(|to| age < to)).count();
        if covering != 1 {
            sink.at(
                Some(span),
                path.to_owned(),
                format!("age {age} lies in {covering} bands; bands must cover 0..={max_age} exactly once"),
            );
            break;
        }
    }
}

/// The levels of further hierarchies, each directly above the finest level: age bands of another kind, or the
/// school year (August to July) of a time dimension. Returns, per level, the parent of each finest member.
fn lower_hierarchies(
    raw: &RawDimension,
    kind: DimensionKind,
    levels: &mut Vec<Level>,
    members: &mut Vec<Vec<Member>>,
    sink: &mut Sink<'_>,
) -> Vec<Vec<usize>> {
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); levels.len()];
    let finest = levels.len() - 1;
    if members.len() != levels.len() {
        return parents;
    }
    for (i, h) in raw.hierarchies.iter().enumerate() {
        let path = format!("hierarchies[{i}]");
        let h_span = h.span();
        let h = h.get_ref();
        let name = h.name.get_ref().clone();
        if levels.iter().any(|l| l.name == name) {
            sink.at(Some(h.name.span()), format!("{path}.name"), format!("level '{name}' is declared twice"));
            continue;
        }
        let (level_members, up): (Vec<Member>, Vec<usize>) = match (kind, h.kind.as_ref().map(|k| k.get_ref().as_str()))
        {
            (DimensionKind::Time, Some("school_year")) => {
                school_years(&members[finest], levels[finest].name == "month")
            }
            (DimensionKind::Time, other) => {
                let span = h.kind.as_ref().map(|k| k.span()).unwrap_or(h_span);
                let what = other
                    .map_or("a time hierarchy needs a kind".to_owned(), |o| format!("unknown hierarchy kind '{o}'"));
                sink.with(Some(span), format!("{path}.kind"), what, vec!["school_year".into()]);
                continue;
            }
            (DimensionKind::Age, None) => {
                let bands: Vec<&RawBand> = h.bands.iter().map(|b| b.get_ref()).collect();
                let max_age = members[finest].len() as u32 - 1;
                let before = sink.out.len();
                check_bands(
                    &bands,
                    max_age,
                    h.bands.first().map(|b| b.span()).unwrap_or(h_span.clone()),
                    &format!("{path}.bands"),
                    sink,
                );
                if sink.out.len() != before {
                    continue;
                }
                let level_members = bands
                    .iter()
                    .map(|b| {
                        member(b.key.get_ref().clone(), b.label.clone(), b.label_en.clone(), b.aliases.clone(), None)
                    })
                    .collect();
                let up = (0..=max_age)
                    .map(|a| {
                        bands
                            .iter()
                            .position(|b| a >= b.from && b.to.is_none_or(|to| a < to))
                            .expect("checked: bands cover every age")
                    })
                    .collect();
                (level_members, up)
            }
            _ => {
                sink.at(
                    Some(h_span),
                    path,
                    "further hierarchies exist for time dimensions (kind = \"school_year\") and age dimensions (bands)",
                );
                continue;
            }
        };
        if level_members.is_empty() {
            sink.at(Some(h_span), path, "this hierarchy has no members (a school year needs months)");
            continue;
        }
        levels.push(Level {
            name,
            label: h.label.clone(),
            label_en: h.label_en.clone(),
            finer: Some(finest),
            hierarchy: Some(h.name.get_ref().clone()),
            geometry: None,
        });
        members.push(level_members);
        parents.push(up);
    }
    parents
}

/// School years (August to July) over the months of a time dimension: `2023/24`, "Schuljahr 2023/24".
fn school_years(months: &[Member], finest_is_month: bool) -> (Vec<Member>, Vec<usize>) {
    if !finest_is_month {
        return (Vec::new(), Vec::new());
    }
    let mut years: Vec<Member> = Vec::new();
    let mut up = Vec::with_capacity(months.len());
    for m in months {
        let (year, month) = m
            .key
            .split_once('-')
            .and_then(|(y, mo)| Some((y.parse::<i32>().ok()?, mo.parse::<u32>().ok()?)))
            .expect("generated month keys");
        let key = school_year_key(year, month);
        if years.last().is_none_or(|y| y.key != key) {
            let start = if month >= 8 { year } else { year - 1 };
            years.push(member(
                key.clone(),
                format!("Schuljahr {key}"),
                Some(format!("School year {key}")),
                vec![format!("{start}/{}", start + 1), format!("SJ {key}")],
                None,
            ));
        }
        up.push(years.len() - 1);
    }
    (years, up)
}

/// The key of the school year (August to July) that holds a month: `2023/24`.
pub fn school_year_key(year: i32, month: u32) -> String {
    let start = if month >= 8 { year } else { year - 1 };
    format!("{start}/{:02}", (start + 1).rem_euclid(100))
}

fn lower_members(raw: &RawDimension, level_names: &[String], sink: &mut Sink<'_>) -> Vec<Vec<Member>> {
    let mut members: Vec<Vec<Member>> = vec![Vec::new(); level_names.len()];
    let mut keys: Vec<HashMap<String, usize>> = vec![HashMap::new(); level_names.len()];
    // Members may be listed in any order; resolve parents after all keys are known.
    let mut pending: Vec<(usize, usize, &toml::Spanned<String>, usize)> = Vec::new();
    for (i, m) in raw.members.iter().enumerate() {
        let path = format!("members[{i}]");
        let raw_m = m.get_ref();
        let Some(level) = level_names.iter().position(|l| l == raw_m.level.get_ref()) else {
            sink.with(
                Some(raw_m.level.span()),
                format!("{path}.level"),
                format!("unknown level '{}'", raw_m.level.get_ref()),
                level_names.to_vec(),
            );
            continue;
        };
        let key = raw_m.key.get_ref().clone();
        if key.trim().is_empty() {
            sink.at(Some(raw_m.key.span()), format!("{path}.key"), "a member key must not be empty");
            continue;
        }
        if keys[level].insert(normalise(&key), members[level].len()).is_some() {
            sink.at(
                Some(raw_m.key.span()),
                format!("{path}.key"),
                format!("duplicate member key '{key}' on level {}", level_names[level]),
            );
            continue;
        }
        match (&raw_m.parent, level) {
            (None, 0) => {}
            (Some(p), 0) => {
                sink.at(Some(p.span()), format!("{path}.parent"), "a member of the coarsest level has no parent")
            }
            (None, _) => sink.at(
                Some(m.span()),
                format!("{path}.parent"),
                format!("a member of level {} needs a parent on level {}", level_names[level], level_names[level - 1]),
            ),
            (Some(p), _) => pending.push((level, members[level].len(), p, i)),
        }
        members[level].push(member(key, raw_m.label.clone(), raw_m.label_en.clone(), raw_m.aliases.clone(), None));
    }
    for (level, index, parent, i) in pending {
        match keys[level - 1].get(&normalise(parent.get_ref())) {
            Some(&p) => members[level][index].parent = Some(p),
            None => {
                let valid: Vec<String> = members[level - 1].iter().map(|m| m.key.clone()).collect();
                sink.with(
                    Some(parent.span()),
                    format!("members[{i}].parent"),
                    format!("unknown parent '{}' on level {}", parent.get_ref(), level_names[level - 1]),
                    closest(parent.get_ref(), valid.iter().map(String::as_str)),
                );
            }
        }
    }
    for (l, ms) in members.iter().enumerate() {
        if ms.is_empty() {
            sink.at(Some(raw.name.span()), "members", format!("level {} has no members", level_names[l]));
        }
    }
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_folds_case_space_and_separators() {
        assert_eq!(normalise("  Innenstadt-Ost "), "innenstadt ost");
        assert_eq!(normalise("KL_West/Kotten"), "kl west kotten");
        assert_eq!(normalise("Lämmchesberg"), "lämmchesberg");
        assert_eq!(normalise(" - / "), "", "separators alone fold to nothing");
        // The same as folding, lowering and splitting at white space one after the other, on every kind of text.
        let stepwise = |text: &str| {
            let mapped: String = text
                .chars()
                .map(|c| if matches!(c, '-' | '_' | '/' | '.' | ',') { ' ' } else { c })
                .flat_map(char::to_lowercase)
                .collect();
            mapped.split_whitespace().collect::<Vec<_>>().join(" ")
        };
        let pieces = ["A", "ß", "İ", "Ö", "x", "7", " ", "\t", "\u{a0}", "\u{3000}", "-", "_", "/", ".", ",", "ǅ", "Σ"];
        let mut state = 7u64;
        for _ in 0..5000 {
            let text: String = (0..(state % 9))
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    pieces[(state >> 33) as usize % pieces.len()]
                })
                .collect();
            assert_eq!(normalise(&text), stepwise(&text), "{text:?}");
        }
    }

    #[test]
    fn time_members_link_months_to_quarters_and_years() {
        let levels = time_members(2023, 2024);
        assert_eq!(levels[0].len(), 2);
        assert_eq!(levels[1].len(), 8);
        assert_eq!(levels[2].len(), 24);
        let june_2024 = &levels[2][17];
        assert_eq!(june_2024.key, "2024-06");
        assert_eq!(levels[1][june_2024.parent.unwrap()].key, "2024-Q2");
    }
}
