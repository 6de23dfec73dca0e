//! Embedding kubus: a city tool (a dashboard, the intranet portal) hands over the project's configuration and its
//! schemas as text — here read from the sample project, as the tool would from its own store — with a directory for
//! the warehouse; then it ingests one month of the foreigners' authority's export and asks for persons per area with
//! totals.
//!
//! Run from the repository root: `cargo run -p kubus --example embed`

use kubus::arrow::util::pretty::pretty_format_batches;
use kubus::{Project, ProjectConfig, Query, SchemaFile, SchemaKind};
use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config = ProjectConfig::parse("kubus.toml", &std::fs::read_to_string(root.join("kubus.toml"))?)?;
    let mut schemas = Vec::new();
    for (sub, kind) in
        [("dimensions", SchemaKind::Dimension), ("cubes", SchemaKind::Cube), ("sources", SchemaKind::Source)]
    {
        for entry in std::fs::read_dir(root.join("cube-schemas").join(sub))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path)?;
                schemas.push(SchemaFile { origin: path.display().to_string(), text, kind });
            }
        }
    }
    let model = kubus::load_model(&schemas)?;

    // The project's files — the warehouse, the audit log, the perturbation table its configuration names — live in
    // a scratch directory, so that the example never touches the demo warehouse.
    let scratch = std::env::temp_dir().join(format!("kubus-embed-{}", std::process::id()));
    std::fs::create_dir_all(scratch.join("ptables"))?;
    std::fs::copy(root.join("ptables/d3_v2_small2.csv"), scratch.join("ptables/d3_v2_small2.csv"))?;
    let project = Project::new(&scratch, config, model)?;
    let file = root.join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-06.csv");
    let report = project
        .ingest_with(
            "abh_newcomers",
            &[file],
            kubus::IngestOptions { demo_key: true, ..Default::default() },
            &mut |_| {},
        )
        .await?;
    let t = report.totals();
    println!(
        "lines {} = accepted {} + rejected {} + skipped {}; {} facts",
        t.lines,
        t.accepted,
        t.rejected,
        t.skipped_lines(),
        t.facts
    );

    let query: Query = serde_json::from_str(
        r#"{"cube": "newcomers", "measures": ["persons", "avg_course_hours"],
            "drilldowns": ["district.area"], "cuts": ["month=2024-06"], "totals": true}"#,
    )?;
    let answer = project.query(&query, &kubus::QueryOptions::default()).await?;
    println!("warehouse versions {:?}:\n{}", answer.versions, pretty_format_batches(&answer.result.batches)?);
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}
