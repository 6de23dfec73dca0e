#!/usr/bin/env bash
# How fast kubus reads allocation notices (PDF): 1,000 notices written by sample-data/generate_notices.py, ingested
# through add_zuweisungen by the release binary; pages per second. The table lands in benches/RESULTS.md.
# Usage: benches/pdf/run.sh [NOTICES] [REPS]   (defaults 1000 and 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked -p kubus-cli -p kubus-benches
venv=benches/.work/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet fpdf2 pillow numpy
"$venv/bin/python" benches/pdf/run.py target/release/kubus benches/.work --notices "${1:-1000}" --reps "${2:-3}"
