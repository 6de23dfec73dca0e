#!/usr/bin/env python3
"""What the cell key method costs: the ten reference queries answered with exact counts (as the statistics office,
which bypasses protection) and with the cell key method's noise (as anyone else), through rollups and from the
facts, interleaved in one run on the same warehouse. Writes the table into benches/RESULTS.md with --results.

The workload is the reference one (benches/workload.py); the project gets the sample project's perturbation table
and `method = "cell_key"`. Its person numbers are plain text, not pseudonyms, so record keys are hashed from the
text (see `kubus_model::record_key`) at ingest, which stores them with the facts; distinct counts hash the text of
each distinct person again.

Usage: run.py KUBUS QUERY_TIMING WORK_DIR [--rows N] [--rounds R] [--reps N] [--rollup-reps N] [--results]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "queries"))
from workload import ingest, prepare  # noqa: E402
from compare import KUBUS, write_section  # noqa: E402

PTABLE = "d3_v2_small2.csv"


def timings(binary, root, spec, reps, role, mode):
    p = subprocess.run([binary, root, spec, str(reps), role, mode], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"query_timing failed: {p.stderr}")
    return {j["query"]: j for j in map(json.loads, p.stdout.splitlines())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kubus")
    ap.add_argument("timing")
    ap.add_argument("work")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5)
    # Answers from rollups take a fraction of a millisecond: many more runs, for medians the machine's noise does not
    # move by the tens of microseconds the method costs.
    ap.add_argument("--rollup-reps", type=int, default=200)
    ap.add_argument("--results", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    root = os.path.join(a.work, f"cellkey-project-{a.rows}")
    newcomers_csv, offers_csv = prepare(a.work, a.rows, root)
    os.makedirs(os.path.join(root, "ptables"))
    shutil.copy(os.path.join(REPO, "ptables", PTABLE), os.path.join(root, "ptables", PTABLE))
    with open(os.path.join(root, "kubus.toml"), "a") as f:
        f.write(f'\n[disclosure]\nmethod = "cell_key"\nexempt = ["course_offers"]\n\n[disclosure.cell_key]\nptable = "ptables/{PTABLE}"\n')
    ingest(a.kubus, root, newcomers_csv, offers_csv)
    spec = os.path.join(root, "queries.json")
    json.dump({name: q for name, (q, _) in KUBUS.items()}, open(spec, "w"))

    # Interleaved: each round times all four ways once; per query the median over the rounds of each way's median.
    ways = [("rollups", "prefer", "statistik"), ("rollups", "prefer", ""), ("facts", "never", "statistik"), ("facts", "never", "")]
    runs = {w: [] for w in ways}
    for r in range(a.rounds):
        for w in ways:
            runs[w].append(timings(a.timing, root, spec, a.rollup_reps if w[0] == "rollups" else a.reps, w[2], w[1]))
        print(f"round {r + 1} of {a.rounds} done", flush=True)
    median = {w: {q: statistics.median(run[q]["median_ms"] for run in runs[w]) for q in KUBUS} for w in ways}
    lines = ["| query | rollups, exact ms | rollups, cell key ms | cost | facts, exact ms | facts, cell key ms | cost |",
             "|---|---|---|---|---|---|---|"]
    costs = {"rollups": [], "facts": []}
    for q in KUBUS:
        cells = []
        for path in ["rollups", "facts"]:
            exact, noisy = median[(path, "prefer" if path == "rollups" else "never", "statistik")][q], median[(path, "prefer" if path == "rollups" else "never", "")][q]
            costs[path].append(noisy / exact)
            digits = 2 if path == "rollups" else 1
            cells += [f"{exact:.{digits}f}", f"{noisy:.{digits}f}", f"{(noisy / exact - 1) * 100:+.0f} %"]
        lines.append(f"| {q} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    summary = (f"Median cost over the ten queries: {(statistics.median(costs['rollups']) - 1) * 100:+.0f} % through rollups, "
               f"{(statistics.median(costs['facts']) - 1) * 100:+.0f} % from the facts; largest: "
               f"{(max(costs['rollups']) - 1) * 100:+.0f} % and {(max(costs['facts']) - 1) * 100:+.0f} %.")
    print(summary)
    if a.results:
        body = "\n".join([
            f"<!-- cellkey:{a.rows} -->",
            f"### {a.rows:,} rows",
            "",
            f"The ten reference queries through the library (`query_timing`), exact (role `statistik`, which bypasses "
            f"protection) and with the cell key method (no role), through rollups and from the facts (`--no-rollups`; "
            "subtotals aggregate the facts once, at the finest grain); "
            f"{a.rounds} interleaved rounds of {a.rollup_reps} (rollups) or {a.reps} (facts) warm runs each, per query "
            "the median of the rounds' medians. "
            f"Produced by `benches/cellkey/run.sh {a.rows}` on this machine ({os.cpu_count()} cores). Record keys are "
            "stored with the facts at ingest (`_record_key`, plain and uncompressed: a row group holds nearly as many "
            "distinct keys as facts); distinct counts hash each distinct person's text. Warm "
            "runs of a question answered from rollups run the physical plan prepared at its first asking (each "
            "published number is one aggregate with or without noise: the noise costs reading and adding record keys).",
            "",
            *lines,
            "",
            summary,
            f"<!-- /cellkey:{a.rows} -->",
        ])
        write_section(f"cellkey:{a.rows}", body, "## What the cell key method costs")


if __name__ == "__main__":
    main()
