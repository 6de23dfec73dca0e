#!/usr/bin/env python3
"""How fast kubus reads allocation notices (PDF), in pages per second.

NOTICES notices are written by sample-data/generate_notices.py (the sample's layouts: portrait tables over pages,
landscape pages, cover letters) with the figures it expects; a copy of the sample project without a warehouse
ingests them all through `add_zuweisungen` in one `kubus ingest` (release build), REPS times, each into a fresh
warehouse. The accounting kubus prints must equal the generator's (lines, accepted, rejected; facts), or the run
fails. Wall time of the process (reading every PDF, the table, converting, one Delta commit), median. Writes the
table into benches/RESULTS.md between the `<!-- pdf -->` markers. Run it through benches/pdf/run.sh.

Usage: run.py KUBUS WORK [--notices N] [--reps R]
"""
import argparse
import csv
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "ingest"))
from ingest_vs_duckdb import measured  # noqa: E402

RESULTS = os.path.join(HERE, "..", "RESULTS.md")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kubus")
    ap.add_argument("work")
    ap.add_argument("--notices", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    kubus = os.path.abspath(a.kubus)
    work = os.path.abspath(os.path.join(a.work, "pdf"))
    notices, expected = os.path.join(work, "notices"), os.path.join(work, "expected")
    subprocess.run([sys.executable, os.path.join(REPO, "sample-data", "generate_notices.py"), "--notices",
                    str(a.notices), "--out", notices, "--expected", expected], check=True)
    with open(os.path.join(expected, "zuweisungen_lines.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    pages = sum(int(r["pages"]) for r in rows)
    lines = sum(int(r["lines"]) for r in rows)
    accepted = sum(int(r["accepted"]) for r in rows)
    rejected = sum(int(r["rejected"]) for r in rows)
    size = sum(os.path.getsize(os.path.join(notices, f)) for f in os.listdir(notices))

    root = os.path.join(work, "project")
    seconds, peaks = [], []
    for rep in range(a.reps):
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        shutil.copy(os.path.join(REPO, "kubus.toml"), root)
        for d in ["cube-schemas", "ptables", "geo"]:
            shutil.copytree(os.path.join(REPO, d), os.path.join(root, d))
        s, rss, out, _ = measured([kubus, "-C", root, "ingest", "--demo-key", "add_zuweisungen", notices])
        total = out.strip().splitlines()
        summary = next(l for l in reversed(total) if l.startswith("lines "))
        want = f"lines {lines} = accepted {accepted} + rejected {rejected} + "
        if not summary.startswith(want):
            sys.exit(f"kubus accounted differently from the generator:\n  {summary}\n  expected {want}…")
        facts = int(re.findall(r"→ (\d+) facts", summary)[-1])
        seconds.append(s)
        peaks.append(rss)
        print(f"round {rep + 1}: {s:.2f} s, peak {rss:.0f} MB: {summary}", flush=True)
    shutil.rmtree(root, ignore_errors=True)

    med = statistics.median(seconds)
    table = "\n".join([
        "<!-- pdf -->",
        f"`kubus ingest` (release) of {len(rows):,} allocation notices written by `sample-data/generate_notices.py` "
        f"({pages:,} pages, {size / 1e6:.1f} MB; portrait tables over pages, landscape pages, cover letters) through "
        f"`add_zuweisungen` in one ingest, on {platform.machine()} with {os.cpu_count()} cores; median of {a.reps} "
        "runs, each into a fresh warehouse, wall time of the process (every PDF read, its table found, converted, one "
        "Delta commit). kubus's accounting equals the generator's in every run. Produced by `benches/pdf/run.sh`; "
        "rerun it to replace this table.",
        "",
        "| notices | pages | text lines | facts | wall s | pages/s | notices/s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
        f"| {len(rows):,} | {pages:,} | {lines:,} | {facts:,} | {med:.2f} | {pages / med:,.0f} | {len(rows) / med:,.0f} "
        f"| {statistics.median(peaks):.0f} |",
        "<!-- /pdf -->",
    ])
    text = open(RESULTS, encoding="utf-8").read()
    if "<!-- pdf -->" in text:
        text = re.sub(r"<!-- pdf -->.*?<!-- /pdf -->", lambda _: table, text, flags=re.S)
    else:
        text = text.replace("## Reference queries against DuckDB",
                            "## Reading allocation notices (PDF)\n\n" + table + "\n\n## Reference queries against DuckDB", 1)
    open(RESULTS, "w", encoding="utf-8").write(text)
    print(table)


if __name__ == "__main__":
    main()
