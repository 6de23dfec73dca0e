#!/usr/bin/env bash
# The explorer's click-to-answer time in headless Chromium at ROWS facts (default 10,000,000): builds kubus
# (release), generates the reference workload (numpy, benches/.work/venv), installs playwright-core (npm, into
# tests/browser) and runs benches/browser/run.py, which writes its section into benches/RESULTS.md.
# Usage: benches/browser/run.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-10000000}
# Both binaries in one build: built apart they would rebuild the shared crates with other features each time.
cargo build --release --locked -p kubus-cli -p kubus-benches
[ -d tests/browser/node_modules/playwright-core ] || npm ci --prefix tests/browser --no-audit --no-fund --silent
venv=benches/.work/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet numpy
"$venv/bin/python" benches/browser/run.py target/release/kubus benches/.work --rows "$rows" --results
