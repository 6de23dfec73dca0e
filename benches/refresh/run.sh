#!/usr/bin/env bash
# What a monthly ingest costs with rollups (benches/refresh/run.py): a 50,000-row export of one month, and then a
# correction of it, ingested into ROWS facts; the rollups made from the earlier version's against built from all
# the facts, and the two equal.
# The table lands in benches/RESULTS.md. Usage: benches/refresh/run.sh [ROWS] [REPS]   (defaults 10000000 and 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked -p kubus-cli -p kubus-benches
venv=benches/.work/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet numpy duckdb
"$venv/bin/python" benches/refresh/run.py target/release/kubus benches/.work --rows "${1:-10000000}" --reps "${2:-3}"
