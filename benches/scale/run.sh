#!/usr/bin/env bash
# The reference workload in one process and on a Ballista cluster on this machine (kubus scheduler + 2 kubus
# executors on loopback), at each size given (default 50M and 200M facts), and a projection to 2 billion facts on 8
# executors. Writes benches/RESULTS.md. Outside CI: generating and ingesting 200M facts takes a while and ~20 GB.
# Usage: benches/scale/run.sh [ROWS ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=("${@:-50000000 200000000}")
cargo build --release --locked -p kubus-cli -p kubus-benches
venv=benches/.work/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet duckdb numpy polars pyarrow datafusion chdb deltalake
# shellcheck disable=SC2068
"$venv/bin/python" benches/scale/run.py target/release/kubus target/release/query_timing benches/.work \
  --rows ${rows[@]} --results
