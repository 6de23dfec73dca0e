#!/usr/bin/env bash
# The warehouse on a disk and in a bucket (the tests' S3 server on loopback), in one run: ingest time, the ten
# reference queries compared, and their times from the facts and through rollups. Writes benches/RESULTS.md.
# Usage: benches/storage/run.sh [ROWS] [REPS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-10000000}
reps=${2:-5}
cargo build --release --locked -p kubus-cli -p kubus-benches
cargo build --release --locked --manifest-path tests/s3-server/Cargo.toml --target-dir target/s3-server
venv=benches/.work/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet duckdb numpy polars pyarrow datafusion chdb deltalake
"$venv/bin/python" benches/storage/run.py target/release/kubus target/release/query_timing \
  target/s3-server/release/kubus-test-s3 benches/.work --rows "$rows" --reps "$reps" --results
