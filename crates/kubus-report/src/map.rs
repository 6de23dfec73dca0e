//! Thematic maps in report files: a choropleth of a table's first measure over the areas of its drilldown's level,
//! as inline SVG. The classes are the explorer's: five of (about) equal counts of areas, coloured from ColorBrewer's
//! Blues without its lightest shade; an area without a shown value (suppressed, or not in the answer) is hatched.
//! Each area and each legend entry carries its key, value, colour and class bounds as data attributes, so that a
//! test (or a reader's tool) can check a colour against the figure.

use crate::display::{german, html_part, slug};
use crate::{ColumnKind, Result, Table};
use arrow::array::{Array, AsArray, BooleanArray};
use arrow::datatypes::{DataType, Float64Type};
use minijinja::context;

/// The areas a map draws: each member's key, label and outline, and whom the boundaries are from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Areas {
    /// The areas, in the order they are drawn.
    pub areas: Vec<Area>,
    /// The boundaries' source, as their licence asks to name it under the map.
    pub attribution: Option<String>,
}

/// One area of a map.
#[derive(Debug, Clone, PartialEq)]
pub struct Area {
    /// The member key the table's key column holds.
    pub key: String,
    /// The member's label.
    pub label: String,
    /// Its outline: rings of (longitude, latitude) points; holes are rings inside others (drawn even-odd).
    pub rings: Vec<Vec<(f64, f64)>>,
}

/// ColorBrewer's Blues with 3 to 9 classes, as d3's `schemeBlues` has them.
const BLUES: [&str; 7] = [
    "deebf79ecae13182bd",
    "eff3ffbdd7e76baed62171b5",
    "eff3ffbdd7e76baed63182bd08519c",
    "eff3ffc6dbef9ecae16baed63182bd08519c",
    "eff3ffc6dbef9ecae16baed64292c62171b5084594",
    "f7fbffdeebf7c6dbef9ecae16baed64292c62171b5084594",
    "f7fbffdeebf7c6dbef9ecae16baed64292c62171b508519c08306b",
];

const WIDTH: f64 = 560.0;
const MAX_HEIGHT: f64 = 520.0;
const PAD: f64 = 10.0;
const LINE: f64 = 18.0;

/// The class limits of `values` (any order): `count` classes with (about) equal numbers of values, by the
/// quantiles d3's `quantileSorted` takes (linear between the two nearest ranks); equal limits once.
pub fn equal_count_breaks(values: &[f64], count: usize) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut breaks: Vec<f64> = Vec::new();
    if sorted.is_empty() {
        return breaks;
    }
    for i in 1..count {
        let h = (sorted.len() - 1) as f64 * i as f64 / count as f64;
        let low = h.floor() as usize;
        let high = (low + 1).min(sorted.len() - 1);
        let q = sorted[low] + (sorted[high] - sorted[low]) * (h - low as f64);
        if !breaks.contains(&q) {
            breaks.push(q);
        }
    }
    breaks
}

/// The colours of the classes that `breaks` make (one more than there are limits): Blues without the lightest
/// shade, which would look like the white of the hatching.
pub fn palette(breaks: usize) -> Vec<String> {
    let classes = breaks + 1;
    let scheme = BLUES[(breaks + 2).clamp(3, 9) - 3];
    let colours: Vec<String> = (0..scheme.len() / 6).map(|i| format!("#{}", &scheme[i * 6..i * 6 + 6])).collect();
    colours[colours.len().saturating_sub(classes)..].to_vec()
}

/// The class of a value: how many limits lie at or below it.
fn class_of(breaks: &[f64], value: f64) -> usize {
    breaks.iter().filter(|&&b| b <= value).count()
}

/// The table's first measure by member key, over the cells that are no totals (`None` where it is not shown).
fn values_by_key(table: &Table) -> Result<Vec<(String, Option<f64>)>> {
    let key = table.columns.iter().position(|c| matches!(c.kind, ColumnKind::Key { .. }));
    let measure = table.columns.iter().position(|c| c.kind == ColumnKind::Measure);
    let total = table.columns.iter().position(|c| c.kind == ColumnKind::Total);
    let (Some(key), Some(measure)) = (key, measure) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for batch in &table.batches {
        let keys = arrow::compute::cast(batch.column(key), &DataType::Utf8)?;
        let keys = keys.as_string::<i32>();
        let values = arrow::compute::cast(batch.column(measure), &DataType::Float64)?;
        let values = values.as_primitive::<Float64Type>();
        let totals = total.map(|t| batch.column(t).as_any().downcast_ref::<BooleanArray>().cloned());
        for row in 0..batch.num_rows() {
            let is_total = totals.as_ref().and_then(|t| t.as_ref()).is_some_and(|t| t.is_valid(row) && t.value(row));
            if is_total || keys.is_null(row) {
                continue;
            }
            out.push((keys.value(row).to_owned(), values.is_valid(row).then(|| values.value(row))));
        }
    }
    Ok(out)
}

/// A number for the legend and the areas' titles, as German readers write it.
fn shown(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        german(&format!("{value:.0}"), &DataType::Int64)
    } else {
        german(&value.to_string(), &DataType::Float64)
    }
}

/// Web Mercator's y of a latitude (up is larger).
fn mercator(latitude: f64) -> f64 {
    (std::f64::consts::FRAC_PI_4 + latitude.to_radians() / 2.0).tan().ln()
}

/// The map as SVG: the areas filled by their class, hatched where no value is shown, each with a title that says
/// its name and value (or `symbol`); below it the legend of classes and the boundaries' attribution. The classes
/// are split at `limits` (ascending), or where none are given into five of equal counts. `what` names the measure
/// and level for the image's accessible name.
pub fn svg(table: &Table, areas: &Areas, limits: &[f64], what: &str, symbol: &str) -> Result<String> {
    let values = values_by_key(table)?;
    let value_of = |key: &str| values.iter().find(|(k, _)| k == key).and_then(|(_, v)| *v);
    let shown_values: Vec<f64> = areas.areas.iter().filter_map(|a| value_of(&a.key)).collect();
    let chosen = !limits.is_empty();
    let breaks =
        if chosen { limits.to_vec() } else { equal_count_breaks(&shown_values, shown_values.len().clamp(1, 5)) };
    let colours = palette(breaks.len());

    // Fit the areas' Mercator extent into the width, keeping its proportions.
    let points = areas.areas.iter().flat_map(|a| a.rings.iter().flatten());
    let (mut west, mut east, mut south, mut north) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(lon, lat) in points {
        let (x, y) = (lon.to_radians(), mercator(lat));
        (west, east, south, north) = (west.min(x), east.max(x), south.min(y), north.max(y));
    }
    let (dx, dy) = ((east - west).max(1e-9), (north - south).max(1e-9));
    let scale = ((WIDTH - 2.0 * PAD) / dx).min((MAX_HEIGHT - 2.0 * PAD) / dy);
    let map_height = if areas.areas.is_empty() { 0.0 } else { dy * scale + 2.0 * PAD };
    let left = (WIDTH - dx * scale) / 2.0;
    let project =
        |lon: f64, lat: f64| (left + (lon.to_radians() - west) * scale, PAD + (north - mercator(lat)) * scale);

    let legend_lines = colours.len() + 1 + usize::from(areas.attribution.is_some());
    let height = (map_height + LINE * legend_lines as f64 + PAD).ceil();
    // The hatching's id is the map's own: a document with two maps must not have two elements of one id.
    let hatch = format!("hatch-{}", slug(what));
    let mut drawn = Vec::new();
    for area in &areas.areas {
        let mut d = String::new();
        for ring in &area.rings {
            // Points closer than half a pixel to the last one drawn add nothing at this size.
            let mut last: Option<(f64, f64)> = None;
            for (i, &(lon, lat)) in ring.iter().enumerate() {
                let (x, y) = project(lon, lat);
                let near = last.is_some_and(|(lx, ly)| (x - lx).hypot(y - ly) < 0.5);
                if near && i + 1 < ring.len() {
                    continue;
                }
                d += &format!("{}{x:.1},{y:.1}", if last.is_none() { "M" } else { "L" });
                last = Some((x, y));
            }
            if last.is_some() {
                d += "Z";
            }
        }
        let value = value_of(&area.key);
        let fill = value.map_or(format!("url(#{hatch})"), |v| colours[class_of(&breaks, v)].clone());
        let said = value.map_or_else(|| symbol.to_owned(), shown);
        let value = value.map(|v| v.to_string()).unwrap_or_default();
        drawn.push(context! { d, fill, key => area.key, value, label => area.label, said });
    }
    // The legend: one line per class with its bounds (of equal counts: the lowest and highest shown value at the
    // ends; of chosen limits: open at the ends).
    let lowest = shown_values.iter().copied().fold(f64::INFINITY, f64::min);
    let highest = shown_values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut y = map_height + 4.0;
    let mut classes = Vec::new();
    for (i, colour) in colours.iter().enumerate().filter(|_| chosen || !shown_values.is_empty()) {
        let (first, last) = (i == 0, i + 1 == colours.len());
        let lower = if first { lowest } else { breaks[i - 1] };
        let upper = if last { highest } else { breaks[i] };
        let text = match (chosen, first, last) {
            (true, true, _) => format!("unter {}", shown(upper)),
            (true, _, true) => format!("{} und mehr", shown(lower)),
            (false, _, true) => format!("{} bis {}", shown(lower), shown(upper)),
            _ => format!("{} bis unter {}", shown(lower), shown(upper)),
        };
        let (lower, upper) = (
            if first { "-Infinity".to_owned() } else { lower.to_string() },
            if last { "Infinity".to_owned() } else { upper.to_string() },
        );
        classes.push(context! { colour, lower, upper, y => y.to_string(), text_y => (y + 11.0).to_string(), text });
        y += LINE;
    }
    let attribution_y = (y + LINE + 11.0).to_string();
    let map_data = context! {
        what, width => WIDTH.to_string(), height => height.to_string(), hatch, areas => drawn, classes,
        pad => PAD.to_string(), text_x => (PAD + 18.0).to_string(), none_y => y.to_string(),
        none_text_y => (y + 11.0).to_string(), attribution => areas.attribution, attribution_y,
    };
    html_part(context! { part => "map", map_data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Column;
    use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;

    #[test]
    fn breaks_are_the_quantiles_d3_takes() {
        // d3.quantileSorted([1..10], 0.2) = 2.8, 0.4 → 4.6, 0.6 → 6.4, 0.8 → 8.2.
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(equal_count_breaks(&values, 5), vec![2.8, 4.6, 6.4, 8.2]);
        assert_eq!(equal_count_breaks(&[5.0, 5.0, 5.0], 3), vec![5.0], "equal limits once");
        assert_eq!(palette(4), vec!["#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c"]);
        assert_eq!(palette(0), vec!["#3182bd"]);
        assert_eq!(class_of(&[2.8, 4.6], 2.8), 1, "a limit belongs to the class above it");
    }

    /// The fill of the area `key` in a drawn map.
    fn fill_of(svg: &str, key: &str) -> String {
        let at = svg.find(&format!("data-key=\"{key}\"")).unwrap();
        let start = svg[..at].rfind("fill=\"").unwrap() + 6;
        svg[start..start + svg[start..].find('"').unwrap()].to_owned()
    }

    fn square(key: &str, x: f64) -> Area {
        let ring = vec![(x, 49.0), (x + 0.01, 49.0), (x + 0.01, 49.01), (x, 49.01), (x, 49.0)];
        Area { key: key.into(), label: format!("Gebiet {key}"), rings: vec![ring] }
    }

    #[test]
    fn each_area_has_its_class_colour_and_a_hidden_one_is_hatched() {
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("area", DataType::Utf8, true),
            arrow::datatypes::Field::new("persons", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "c"])) as ArrayRef,
                Arc::new(Int64Array::from(vec![Some(10), None, Some(30)])),
            ],
        )
        .unwrap();
        let columns = vec![
            Column { name: "area".into(), heading: "Gebiet".into(), kind: ColumnKind::Key { role: None } },
            Column { name: "persons".into(), heading: "Personen".into(), kind: ColumnKind::Measure },
        ];
        let table = Table { title: "t".into(), schema, batches: vec![batch], columns, notes: Vec::new() };
        let areas = Areas {
            areas: vec![square("a", 7.0), square("b", 7.02), square("c", 7.04), square("d", 7.06)],
            attribution: Some("Stadt X (CC BY)".into()),
        };
        let svg = svg(&table, &areas, &[], "Karte", "•").unwrap();
        assert_eq!(svg.matches("id=\"hatch-karte\"").count(), 1);
        // Two shown values make two classes split at their median, 20.
        let fill = |key: &str| fill_of(&svg, key);
        assert_eq!(palette(1), vec!["#9ecae1", "#3182bd"]);
        assert_eq!((fill("a").as_str(), fill("c").as_str()), ("#9ecae1", "#3182bd"));
        assert_eq!(fill("b"), "url(#hatch-karte)", "a suppressed area");
        assert_eq!(fill("d"), "url(#hatch-karte)", "an area the answer has no row for");
        assert!(svg.contains("<title>Gebiet b: •</title>"));
        assert!(svg.contains("10 bis unter 20") && svg.contains("20 bis 30"), "{svg}");
        assert!(svg.contains("Kartengrundlage: Stadt X (CC BY)"));

        // Chosen limits: 10 is at the first limit (the class above it), 30 in the last; the legend is open at its ends.
        let svg = super::svg(&table, &areas, &[5.0, 10.0, 40.0], "Karte", "•").unwrap();
        let colours = palette(3);
        assert_eq!((fill_of(&svg, "a"), fill_of(&svg, "c")), (colours[2].clone(), colours[2].clone()));
        assert_eq!(fill_of(&svg, "b"), "url(#hatch-karte)");
        for text in ["unter 5", "5 bis unter 10", "10 bis unter 40", "40 und mehr"] {
            assert!(svg.contains(&format!(">{text}<")), "{text} in {svg}");
        }
    }
}
