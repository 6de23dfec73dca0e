//! Times cube queries through the kubus library, warm (the project opened once, each query run several times):
//! prints one JSON line per query with the median and minimum in milliseconds and the row count.
//! Usage: `query_timing PROJECT QUERIES.json [REPS] [ROLE] [ROLLUPS] [ENGINE]` where QUERIES.json is
//! `{"name": <query JSON>, ...}`, ROLLUPS is `prefer` (default) or `never` and ENGINE `ballista://HOST:PORT` (every
//! facts query on that cluster, however small) or `local` (default). Each line also names the rollups that
//! answered, and the bytes this process read per run (`rchar` of /proc/self/io: files and sockets).

use std::time::Instant;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, project, queries, ..] = args.as_slice() else {
        anyhow::bail!("usage: query_timing PROJECT QUERIES.json [REPS] [ROLE] [ROLLUPS] [ENGINE]");
    };
    let reps: usize = args.get(3).map(|r| r.parse()).transpose()?.unwrap_or(5);
    let role = args.get(4).cloned().filter(|r| !r.is_empty());
    let rollups = match args.get(5).map(String::as_str) {
        None | Some("prefer") => kubus::RollupUse::Prefer,
        Some("never") => kubus::RollupUse::Never,
        Some(other) => anyhow::bail!("ROLLUPS is prefer or never, not {other}"),
    };
    let project = match args.get(6) {
        Some(engine) => kubus::Project::open(project)?.with_engine(engine)?.with_local_below(0),
        None => kubus::Project::open(project)?,
    };
    let queries: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(queries)?)?;
    let options = kubus::QueryOptions { as_of: None, role, rollups, ..Default::default() };
    for (name, query) in queries {
        let query: kubus::Query = serde_json::from_value(query)?;
        // One run to warm caches (file metadata, the Delta log), then the timed ones.
        let first = project.query(&query, &options).await?;
        let mut rows = first.result.num_rows();
        let routes: Vec<String> =
            first.routes.iter().map(|r| r.rollup.clone().unwrap_or_else(|| "facts".into())).collect();
        let mut times = Vec::with_capacity(reps);
        let read_before = read_bytes();
        for _ in 0..reps {
            let start = Instant::now();
            rows = project.query(&query, &options).await?.result.num_rows();
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        let read = (read_bytes() - read_before) / reps.max(1) as u64;
        times.sort_by(f64::total_cmp);
        println!(
            "{}",
            serde_json::json!({"query": name, "median_ms": times[times.len() / 2], "min_ms": times[0], "rows": rows, "read": routes.join(" + "), "read_bytes": read})
        );
    }
    Ok(())
}

/// The bytes this process has read through system calls so far (files and sockets; 0 where /proc is missing).
fn read_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("rchar: ")).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}
