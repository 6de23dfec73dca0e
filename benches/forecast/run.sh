#!/usr/bin/env bash
# Back-test of the allocations forecast on the sample (benches/forecast/run.py): the last six months held out,
# the error against the generator's own counts. The table lands in benches/RESULTS.md.
# Usage: benches/forecast/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --locked -p kubus-cli
venv=benches/.work/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet numpy
"$venv/bin/python" benches/forecast/run.py target/debug/kubus benches/.work --results
