#!/usr/bin/env bash
# What the cell key method costs on the ten reference queries: exact against perturbed, through rollups and from
# the facts, interleaved in one run (benches/cellkey/run.py). The table lands in benches/RESULTS.md.
# Usage: benches/cellkey/run.sh [ROWS]   (default 10,000,000)
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-10000000}
cargo build --release --locked -p kubus-cli -p kubus-benches
venv=benches/.work/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet numpy duckdb
"$venv/bin/python" benches/cellkey/run.py target/release/kubus target/release/query_timing benches/.work --rows "$rows" --results
