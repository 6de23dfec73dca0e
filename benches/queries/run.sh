#!/usr/bin/env bash
# Builds kubus (release), installs DuckDB in a private venv, and compares the ten reference queries at ROWS
# generated rows (default 1000000), and times each query warm (kubus through the library, DuckDB on its own
# tables, in the same run); the result table lands in benches/RESULTS.md.
# Usage: benches/queries/run.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rows="${1:-1000000}"
cargo build --release --locked -p kubus-cli -p kubus-benches
venv=benches/.work/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet duckdb numpy
"$venv/bin/python" benches/queries/compare.py target/release/kubus benches/.work --rows "$rows" --results \
  --timing target/release/query_timing
