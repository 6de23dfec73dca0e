#!/usr/bin/env bash
# Builds kubus (release), installs DuckDB, Polars, DataFusion and chDB in a private venv, and for each row count
# (default: 10,000,000 and 50,000,000) generates the reference workload, ingests it with kubus (which builds the
# rollups), compares the ten reference queries with DuckDB row for row, and times them warm in one run: kubus with
# and without rollups, and every peer on the same data. The tables land in benches/RESULTS.md.
# Usage: benches/queries/run.sh [ROWS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000000 50000000)
cargo build --release --locked -p kubus-cli -p kubus-benches
venv=benches/.work/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet duckdb numpy polars pyarrow datafusion chdb
for rows in "${sizes[@]}"; do
  "$venv/bin/python" benches/queries/compare.py target/release/kubus benches/.work --rows "$rows" --results \
    --timing target/release/query_timing
done
