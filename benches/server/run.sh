#!/usr/bin/env bash
# `kubus serve` under load (issue 18): builds kubus (release) and the load generator oha (from crates.io, into
# benches/.work/tools), generates the reference workload at ROWS facts (default 10,000,000) with numpy in
# benches/.work/venv, and runs benches/server/run.py, which writes its section into benches/RESULTS.md.
# Takes about 20 minutes after the builds: one minute of mixed load, ten seconds per question, a ten-minute soak.
# Usage: benches/server/run.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-10000000}
# Both binaries in one build: built apart they would rebuild the shared crates with other features each time.
cargo build --release --locked -p kubus-cli -p kubus-benches
tools=benches/.work/tools
[ -x "$tools/bin/oha" ] || cargo install --locked --root "$tools" oha@1.16.0
venv=benches/.work/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet numpy
"$venv/bin/python" benches/server/run.py target/release/kubus "$tools/bin/oha" benches/.work --rows "$rows" --results
