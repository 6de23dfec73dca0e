//! A format of the city's own: a provider's booking system exports its course offers as text of fixed width (each
//! column a number of characters, as mainframe and register software still write). A `RecordReader` cuts the
//! lines at the widths a source gives in `[format.options]`; kubus then reads the records as it reads a CSV file's —
//! header, mapping, members checked, every line accounted for — and the course offers are queried.
//!
//! Run from the repository root: `cargo run -p kubus --example fixed_width`

use kubus::arrow::util::pretty::pretty_format_batches;
use kubus::{Cell, Project, ProjectConfig, Query, RecordReader, Row, SchemaFile, SchemaKind};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Lines cut into cells at fixed widths (`widths = "22,16,…"`: characters, not bytes), each cell trimmed; a line
/// longer than the widths is refused, since its rest would be lost. Every line is a record; an empty line a
/// record without cells.
struct FixedWidth;

impl RecordReader for FixedWidth {
    fn records(&self, _name: &str, bytes: &[u8], options: &BTreeMap<String, String>) -> Result<Vec<Row>, String> {
        let widths = options.get("widths").ok_or("the source's [format.options] give no widths")?;
        let widths: Vec<usize> = widths
            .split(',')
            .map(|w| w.trim().parse().map_err(|_| format!("the width '{w}' is no number of characters")))
            .collect::<Result<_, _>>()?;
        let text = std::str::from_utf8(bytes).map_err(|e| format!("it is not UTF-8 (byte {})", e.valid_up_to()))?;
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let mut chars = line.chars();
            let cells: Vec<Cell> = if line.trim().is_empty() {
                Vec::new()
            } else {
                widths
                    .iter()
                    .map(|&w| Cell::Text(chars.by_ref().take(w).collect::<String>().trim().to_owned()))
                    .collect()
            };
            if chars.any(|c| !c.is_whitespace()) {
                return Err(format!("line {} is longer than the widths {widths:?} add up to", i + 1));
            }
            rows.push(Row { line: i + 1, span: 1, cells });
        }
        Ok(rows)
    }
}

/// The export: a header line, offers, a blank line, one line whose district is no district of the city.
const EXPORT: &str = "\
TRAEGER                 STADTTEIL       NIVEAU  KURSART               BEGINN      PLAETZE
VHS Kaiserslautern      Innenstadt Ost  B1      Integrationskurs      01.03.2024       20
VHS Kaiserslautern      Erlenbach       A2      Integrationskurs      01.03.2024       18
Sprachschule Westpfalz  Innenstadt Ost  B1      Berufssprachkurs      02.04.2024       12

Bildungswerk Lauter     Atlantis        A1      Alphabetisierungskurs 08.04.2024       10
Kolleg Barbarossa       Erlenbach       B2      Berufssprachkurs      15.04.2024       16
";

const SOURCE: &str = r#"
name = "booking_fixed"
cube = "course_offers"
description = "Buchungssystem eines Trägers: Kursangebote als Text fester Breite"

[format]
type = "custom"
reader = "fixed-width"
date_formats = ["%d.%m.%Y"]

[format.options]
widths = "24,16,8,22,12,7"

[fields.provider]
member = "TRAEGER"

[fields.district]
member = "STADTTEIL"

[fields.language_level]
member = "NIVEAU"

[fields.course_type]
member = "KURSART"

[fields.start_month]
date = "BEGINN"

[fields.seats]
number = "PLAETZE"
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config = ProjectConfig::parse("kubus.toml", &std::fs::read_to_string(root.join("kubus.toml"))?)?;
    // The sample project's schemas, and the source of the booking system beside them.
    let mut schemas = kubus::schema_files(&root.join("cube-schemas"))?;
    schemas.push(SchemaFile { origin: "booking_fixed.toml".into(), text: SOURCE.into(), kind: SchemaKind::Source });
    let model = kubus::load_model(&schemas)?;

    // The warehouse, the audit log and the perturbation table live in a scratch directory.
    let scratch = std::env::temp_dir().join(format!("kubus-fixed-width-{}", std::process::id()));
    std::fs::create_dir_all(scratch.join("ptables"))?;
    std::fs::copy(root.join("ptables/d3_v2_small2.csv"), scratch.join("ptables/d3_v2_small2.csv"))?;
    let file = scratch.join("angebote_2024.txt");
    std::fs::write(&file, EXPORT)?;
    let project = Project::new(&scratch, config, model)?.with_reader("fixed-width", FixedWidth);
    let report = project.ingest_with("booking_fixed", &[file], Default::default(), &mut |_| {}).await?;
    let t = report.totals();
    let skipped: Vec<String> = t.skipped.iter().map(|(reason, n)| format!("{reason} {n}")).collect();
    println!(
        "lines {} = accepted {} + rejected {} + skipped {} ({}); {} facts",
        t.lines,
        t.accepted,
        t.rejected,
        t.skipped_lines(),
        skipped.join(", "),
        t.facts
    );
    for r in &report.rejected {
        println!("rejected: line {}, {}: {}", r.line, r.column, r.reason);
    }

    let query: Query = serde_json::from_str(
        r#"{"cube": "course_offers", "measures": ["seats"], "drilldowns": ["district"], "totals": true}"#,
    )?;
    let answer = project.query(&query, &kubus::QueryOptions::default()).await?;
    println!("{}", pretty_format_batches(&answer.result.batches)?);
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}
