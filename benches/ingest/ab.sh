#!/usr/bin/env bash
# A/B of two kubus binaries on the ingest's conversion: interleaved dry runs (`kubus ingest --dry-run`: read,
# decode, parse, convert and check every line, commit nothing) of the benchmark file, each in a fresh scratch
# project; prints wall and CPU seconds (user + system) of every run and the medians. Interleaving and medians,
# because single runs on a shared 2-core machine vary by 10-30 %.
# Usage: benches/ingest/ab.sh BINARY_A BINARY_B [ROWS] [PAIRS]  (defaults 10000000 and 5; the file comes from
# benches/ingest/run.sh, which generates it).
set -euo pipefail
cd "$(dirname "$0")/../.."
a="$1"; b="$2"; rows="${3:-10000000}"; pairs="${4:-5}"
file="benches/.work/newcomers_$rows.csv"
[ -f "$file" ] || { echo "no $file: run benches/ingest/run.sh $rows first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
benches/.work/venv/bin/python -c "import sys; sys.path.insert(0, 'benches'); from workload import project; project('$work/project', with_rollups=False)"
for i in $(seq "$pairs"); do
  for side in A B; do
    bin=$a; [ "$side" = B ] && bin=$b
    /usr/bin/time -f "$side %e %U %S" -o "$work/time" "$bin" -C "$work/project" ingest --dry-run abh "$file" >/dev/null
    awk '{ printf "%s wall %.2f s, cpu %.2f s\n", $1, $2, $3 + $4 }' "$work/time" | tee -a "$work/runs"
  done
done
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for side in A B; do
  wall=$(grep "^$side " "$work/runs" | awk '{ print $3 }' | median)
  cpu=$(grep "^$side " "$work/runs" | awk '{ print $6 }' | median)
  echo "$side median: wall $wall s, cpu $cpu s"
done
