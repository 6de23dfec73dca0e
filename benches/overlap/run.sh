#!/usr/bin/env bash
# What refusing the same data twice costs at 10,000,000 facts (benches/overlap/run.py): a month ingested into the
# table with the check and without it (`on_overlap = "add"`), the same month again, and the whole file again.
# The table lands in benches/RESULTS.md. Usage: benches/overlap/run.sh [ROWS] [REPS]   (defaults 10000000 and 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked -p kubus-cli -p kubus-benches
venv=benches/.work/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet numpy
"$venv/bin/python" benches/overlap/run.py target/release/kubus benches/.work --rows "${1:-10000000}" --reps "${2:-3}"
