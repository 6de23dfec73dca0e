#!/usr/bin/env bash
# Builds kubus (release), installs DuckDB in a private venv, and runs the ingest benchmark; the result table
# lands in benches/RESULTS.md. Usage: benches/ingest/run.sh [ROWS] [REPS] (defaults 10000000 and 3: single runs
# vary by about 10 % on a 2-core machine, so the table shows the median). Needs about 2 GB of disk under
# benches/.work (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
rows="${1:-10000000}"
# Both binaries in one build: built apart they would rebuild the shared crates with other features each time.
cargo build --release --locked -p kubus-cli -p kubus-benches
venv=benches/.work/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet duckdb numpy
"$venv/bin/python" benches/ingest/ingest_vs_duckdb.py target/release/kubus benches/.work --rows "$rows" --reps "${2:-3}"
