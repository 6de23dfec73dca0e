#!/usr/bin/env python3
"""What refusing the same data twice costs (kubus ingest's overlap check), at ROWS facts of the reference workload.

The workload's newcomers file without one month (June 2020) is ingested into a table once; then, each from a copy
of that project, in REPS interleaved rounds:
  month, checked:   the missing month ingested (its facts overlap nothing; the check reads the table's June)
  month, added:     the same with `on_overlap = "add"` (no check: the ingest as before the check existed)
  month again:      the month, then the month once more as another file → refused; the time of the refusal
and once: the whole file again as another file → refused (every cell of the table overlaps: the worst case),
with its time and peak memory. Wall times of the `kubus ingest` process (release build), medians. Writes the table
into benches/RESULTS.md between the `<!-- overlap -->` markers. Run it through benches/overlap/run.sh.

Usage: run.py KUBUS WORK [--rows N] [--reps R]
"""
import argparse
import os
import platform
import re
import shutil
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "ingest"))
from workload import newcomers_csv, project, split_month  # noqa: E402
from ingest_vs_duckdb import measured  # noqa: E402

RESULTS = os.path.join(HERE, "..", "RESULTS.md")


def again(path, copy):
    """The same facts as another file: the bytes and one empty line more (another SHA-256)."""
    shutil.copyfile(path, copy)
    with open(copy, "ab") as f:
        f.write(b"\r\n")


def ingest(kubus, root, path, expect_ok=True):
    """Times `kubus ingest`; a refusal (exit 2) must name the overlap."""
    seconds, rss, out, err = measured([kubus, "-C", root, "ingest", "abh", path], code=0 if expect_ok else 2)
    if not expect_ok and "holds too" not in err:
        sys.exit(f"expected a refusal of {path} for an overlap:\n{err}")
    return seconds, rss, out if expect_ok else err.strip()


def fresh(pristine, root, adds=False):
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(pristine, root)
    if adds:
        path = os.path.join(root, "cube-schemas", "sources", "abh.toml")
        text = open(path, encoding="utf-8").read()
        open(path, "w", encoding="utf-8").write(text.replace('cube = "newcomers"\n', 'cube = "newcomers"\non_overlap = "add"\n', 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kubus")
    ap.add_argument("work")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    kubus = os.path.abspath(a.kubus)
    work = os.path.abspath(os.path.join(a.work, "overlap"))
    os.makedirs(work, exist_ok=True)
    csv = newcomers_csv(a.work, a.rows)
    base, month = os.path.join(work, "base.csv"), os.path.join(work, "june_2020.csv")
    split_month(csv, base, month)
    month_again, base_again = os.path.join(work, "june_2020_again.csv"), os.path.join(work, "base_again.csv")
    again(month, month_again)
    again(base, base_again)

    pristine, root = os.path.join(work, "pristine"), os.path.join(work, "project")
    shutil.rmtree(pristine, ignore_errors=True)
    project(pristine, with_rollups=False)
    seconds, _, out, _ = measured([kubus, "-C", pristine, "ingest", "abh", base])
    table = int(re.findall(r"→ (\d+) facts", out)[-1])
    month_facts = sum(1 for _ in open(month, "rb")) - 1
    print(f"table: {table} facts in {seconds:.1f} s; the month: {month_facts} facts", flush=True)

    checked, added, refused = [], [], []
    for rep in range(a.reps):
        fresh(pristine, root)
        checked.append(ingest(kubus, root, month)[0])
        refused.append(ingest(kubus, root, month_again, expect_ok=False)[0])
        fresh(pristine, root, adds=True)
        added.append(ingest(kubus, root, month)[0])
        print(f"round {rep + 1}: checked {checked[-1]:.2f} s, added {added[-1]:.2f} s, refused again {refused[-1]:.2f} s",
              flush=True)
    fresh(pristine, root)
    whole_s, whole_rss, message = ingest(kubus, root, base_again, expect_ok=False)
    print(f"whole file again: refused in {whole_s:.1f} s, peak {whole_rss:.0f} MB: {message[:200]}", flush=True)
    shutil.rmtree(root, ignore_errors=True)

    med = statistics.median
    cost = med(checked) - med(added)
    table_md = "\n".join([
        "<!-- overlap -->",
        f"`kubus ingest` (release) into a table of {table:,} facts of the reference workload (all months but June 2020), "
        f"on {platform.machine()} with {os.cpu_count()} cores; medians of {a.reps} interleaved rounds, wall time of the "
        "process (reading, converting, the check, the commit). Produced by `benches/overlap/run.sh`; rerun it to "
        "replace this table.",
        "",
        "| ingest | facts in the file | wall s |",
        "|---|---|---|",
        f"| June 2020, checked for overlaps (the default) | {month_facts:,} | {med(checked):.2f} |",
        f"| June 2020, `on_overlap = \"add\"` (no check) | {month_facts:,} | {med(added):.2f} |",
        f"| June 2020 again, as another file → refused | {month_facts:,} | {med(refused):.2f} |",
        f"| the whole file again, as another file → refused | {table:,} | {whole_s:.1f} (peak RSS {whole_rss:,.0f} MB) |",
        "",
        f"The check costs **{cost:+.2f} s** ({cost / med(added) * 100:+.0f} %) on a monthly ingest: it reads only the "
        "table's facts of the new file's months. The ingest benchmark above (one file into an empty table) runs no "
        "check: there is nothing to overlap.",
        "<!-- /overlap -->",
    ])
    text = open(RESULTS, encoding="utf-8").read()
    if "<!-- overlap -->" in text:
        text = re.sub(r"<!-- overlap -->.*?<!-- /overlap -->", lambda _: table_md, text, flags=re.S)
    else:
        text = text.replace("## Reference queries against DuckDB",
                            "## Refusing the same data twice\n\n" + table_md + "\n\n## Reference queries against DuckDB", 1)
    open(RESULTS, "w", encoding="utf-8").write(text)
    print(table_md)


if __name__ == "__main__":
    main()
