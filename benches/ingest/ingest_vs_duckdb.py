#!/usr/bin/env python3
"""Ingest benchmark: kubus against DuckDB on the same office-style CSV, in the same run.

Generates the newcomers shape of ../shared/peers (one row per person and month) as the foreigners' authority
exports it: Windows-1252, ';', decimal commas, dd.mm.yyyy dates, German headers. Then times
  kubus:  `kubus ingest` into a scratch project (member lookup, validation, quarantine, one Delta commit)
  DuckDB: read_csv(delim=';', decimal_separator=',', dateformat='%d.%m.%Y', encoding='latin-1') → Parquet
each in its own process, with wall time and peak RSS, and writes the table into benches/RESULTS.md between the
`<!-- ingest -->` markers. Run it through benches/ingest/run.sh, which builds kubus and installs DuckDB.

Usage: ingest_vs_duckdb.py KUBUS_BINARY WORK_DIR [--rows N] [--reps R]
"""
import argparse
import os
import platform
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from workload import newcomers_csv, project  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "..", "RESULTS.md")

def measured(cmd, cwd=None, code=0):
    """Runs `cmd` in a child of a fresh Python process, which must exit with `code`; returns (seconds, peak RSS in
    MB of that child, its stdout, its stderr)."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); dt = time.perf_counter() - t; "
             "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr); "
             "print(f'@@{dt} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}'); sys.exit(p.returncode)")
    p = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, cwd=cwd)
    if p.returncode != code:
        sys.exit(f"failed (exit {p.returncode}, expected {code}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    out, last = p.stdout.rsplit("@@", 1)
    seconds, kb = last.split()
    return float(seconds), int(kb) / 1024, out, p.stderr


DUCKDB = """
import duckdb, sys
con = duckdb.connect()
con.execute("SET threads = 2")
con.execute(\"\"\"COPY (SELECT * FROM read_csv(?, delim=';', header=true, decimal_separator=',', dateformat='%d.%m.%Y',
    encoding='latin-1', columns={
    'Personennummer': 'VARCHAR', 'Stichtag': 'DATE', 'Stadtteil': 'VARCHAR', 'Alter': 'SMALLINT',
    'Geschlecht': 'VARCHAR', 'Staatsangehörigkeit': 'VARCHAR', 'Aufenthaltsstatus': 'VARCHAR',
    'Sprachniveau': 'VARCHAR', 'Kursteilnahme': 'VARCHAR', 'Kursträger': 'VARCHAR', 'Kursstunden': 'DOUBLE'}))
    TO '\"\"\" + sys.argv[2] + \"\"\"' (FORMAT parquet)\"\"\", [sys.argv[1]])
print(con.execute("SELECT count(*) FROM read_parquet(?)", [sys.argv[2]]).fetchone()[0])
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kubus")
    ap.add_argument("work")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=1)
    a = ap.parse_args()
    kubus = os.path.abspath(a.kubus)
    os.makedirs(a.work, exist_ok=True)
    csv = newcomers_csv(a.work, a.rows)
    size_mb = os.path.getsize(csv) / 1e6
    duck_script = os.path.join(a.work, "duckdb_ingest.py")
    open(duck_script, "w").write(DUCKDB)

    kubus_runs, duck_runs = [], []
    for rep in range(a.reps):
        root = os.path.join(a.work, "project")
        shutil.rmtree(root, ignore_errors=True)
        project(root, with_rollups=False)
        seconds, rss, out, _ = measured([kubus, "-C", root, "ingest", "abh", csv])
        summary = [l for l in out.splitlines() if l.startswith("lines ")][-1]
        print(f"kubus  run {rep + 1}: {seconds:.1f} s, peak {rss:.0f} MB — {summary}", flush=True)
        kubus_runs.append((seconds, rss, summary))
        parquet = os.path.join(a.work, "duckdb.parquet")
        seconds, rss, out, _ = measured([sys.executable, duck_script, csv, parquet])
        print(f"duckdb run {rep + 1}: {seconds:.1f} s, peak {rss:.0f} MB — {out.strip()} rows", flush=True)
        duck_runs.append((seconds, rss, out.strip()))

    k = sorted(kubus_runs)[len(kubus_runs) // 2]
    d = sorted(duck_runs)[len(duck_runs) // 2]
    import duckdb
    table = f"""<!-- ingest -->
Ingest of one office-style CSV ({a.rows:,} rows, {size_mb:.0f} MB: Windows-1252, `;`, decimal commas, dd.mm.yyyy),
median of {a.reps} run(s) on {platform.machine()} with {os.cpu_count()} cores, DuckDB {duckdb.__version__} limited to 2
threads. Produced by `benches/ingest/run.sh`; rerun it to replace this table.

| engine | what it does | wall s | rows/s | peak RSS MB |
|---|---|---|---|---|
| kubus (release) | decode, validate every value against the dimensions, quarantine, one Delta commit | {k[0]:.1f} | {a.rows / k[0]:,.0f} | {k[1]:.0f} |
| DuckDB | read_csv with types → Parquet | {d[0]:.1f} | {a.rows / d[0]:,.0f} | {d[1]:.0f} |

kubus / DuckDB throughput ratio: **{d[0] / k[0]:.2f}** (1.0 = as fast as DuckDB); memory ratio {k[1] / d[1]:.1f}×.
kubus accounted for the lines as: `{k[2]}`; DuckDB wrote {d[2]} rows.
<!-- /ingest -->"""
    text = open(RESULTS).read() if os.path.exists(RESULTS) else "# Benchmark results\n\nEvery number here is written by a script; do not edit by hand.\n\n## Ingest\n\n<!-- ingest -->\n<!-- /ingest -->\n"
    start, end = text.index("<!-- ingest -->"), text.index("<!-- /ingest -->") + len("<!-- /ingest -->")
    open(RESULTS, "w").write(text[:start] + table + text[end:])
    print(table)


if __name__ == "__main__":
    main()
