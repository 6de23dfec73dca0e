//! Times `Project::ingest` on a generated Windows-1252 export of N rows and a first query over it; prints rows
//! per second. Usage: `cargo run --release -p kubus-benches --bin ingest_throughput -- [ROWS]`

use std::path::PathBuf;
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows: usize = std::env::args().nth(1).map(|r| r.parse()).transpose()?.unwrap_or(200_000);
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = kubus_benches::scratch_project(&repo)?;
    let file = dir.join("export.csv");
    kubus_benches::write_export(&file, rows)?;
    let bytes = std::fs::metadata(&file)?.len();

    let project = kubus::Project::open(&dir)?;
    let start = Instant::now();
    let report = project
        .ingest_with(
            "abh_newcomers",
            std::slice::from_ref(&file),
            kubus::IngestOptions { demo_key: true, ..Default::default() },
            &mut |_| {},
        )
        .await?;
    let ingest = start.elapsed();
    let t = report.totals();

    let query: kubus::Query = serde_json::from_str(
        r#"{"cube":"newcomers","measures":["persons"],"drilldowns":["district"],"cuts":["month=2024-06"]}"#,
    )?;
    let start = Instant::now();
    let answer = project.query(&query, &kubus::QueryOptions::default()).await?;
    let first_query = start.elapsed();

    println!(
        "rows {rows}, {:.1} MB, lines {} = accepted {} + rejected {} + skipped {}",
        bytes as f64 / 1e6,
        t.lines,
        t.accepted,
        t.rejected,
        t.skipped_lines()
    );
    println!(
        "ingest {:.3} s = {:.0} rows/s ({:.1} MB/s); persons by district: {} rows in {:.1} ms",
        ingest.as_secs_f64(),
        rows as f64 / ingest.as_secs_f64(),
        bytes as f64 / 1e6 / ingest.as_secs_f64(),
        answer.result.num_rows(),
        first_query.as_secs_f64() * 1e3
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
