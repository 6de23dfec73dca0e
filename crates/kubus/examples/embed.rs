//! Embedding kubus: open the sample project, ingest one month of the foreigners' authority's export, and ask
//! for persons per area with totals — the way a city tool (a dashboard, the intranet portal) would.
//!
//! Run from the repository root: `cargo run -p kubus --example embed`

use kubus::arrow::util::pretty::pretty_format_batches;
use kubus::{Project, Query};
use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A scratch copy of the project's files, so that the example never touches the demo warehouse.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let scratch = std::env::temp_dir().join(format!("kubus-embed-{}", std::process::id()));
    std::fs::create_dir_all(scratch.join("cube-schemas"))?;
    std::fs::copy(root.join("kubus.toml"), scratch.join("kubus.toml"))?;
    for sub in ["dimensions", "cubes", "sources"] {
        std::fs::create_dir_all(scratch.join("cube-schemas").join(sub))?;
        for entry in std::fs::read_dir(root.join("cube-schemas").join(sub))? {
            let path = entry?.path();
            std::fs::copy(&path, scratch.join("cube-schemas").join(sub).join(path.file_name().unwrap()))?;
        }
    }

    let project = Project::open(&scratch)?;
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
