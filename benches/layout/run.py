#!/usr/bin/env python3
"""How the layout of the facts' Parquet files changes the speed of kubus's queries over the facts (the base path).

Takes the Parquet files of a kubus warehouse's `newcomers` facts (as `kubus ingest` wrote them), rewrites the same
rows in several layouts, and times the base-path form of five reference queries on each with DataFusion (Python,
the engine version kubus embeds), with Parquet filter pushdown on and off. The queries are written as kubus runs
them over the facts: dimension columns hold member keys as text, a period cut is a list of months.

Usage: run.py FACTS_DIR [--rows N] [--reps 5] [--results]   (--results writes the table into benches/RESULTS.md)
"""
import argparse
import glob
import os
import shutil
import statistics
import sys
import time

import datafusion
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "queries"))
from compare import write_section  # noqa: E402

MONTHS_2024 = ", ".join(f"'2024-{m:02d}'" for m in range(1, 13))
QUERIES = {
    "q01 all facts by district": "SELECT district, count(*) FROM f GROUP BY district",
    "q02 one year by district, level": f"SELECT district, language_level, count(*) FROM f WHERE month IN ({MONTHS_2024}) GROUP BY 1, 2",
    "q04 one district by month": "SELECT month, count(*), sum(course_hours) FROM f WHERE district = 'D03' GROUP BY month",
    "q09 one month, distinct persons": "SELECT district, language_level, count(DISTINCT person_id) FROM f WHERE month = '2024-06' "
                                       "AND in_course = 'nein' AND language_level IN ('none', 'A1', 'A2') GROUP BY 1, 2",
    "q10 four dimensions": "SELECT district, residence_status, sex, language_level, count(*), avg(age_years) FROM f "
                           "WHERE in_course = 'ja' GROUP BY 1, 2, 3, 4",
}
COLUMNS = ["month", "district", "age", "sex", "nationality", "residence_status", "language_level", "in_course",
           "provider", "person_id", "course_hours", "age_years"]


def layouts(table):
    """(name, table, row group rows): the layouts to compare, each holding the same rows."""
    by_month = table.sort_by([("month", "ascending")])
    return [
        ("as ingested (file order), 1M-row groups", table, 1 << 20),
        ("as ingested, 128k-row groups", table, 1 << 17),
        ("sorted by month, 1M-row groups", by_month, 1 << 20),
        ("sorted by month, 128k-row groups", by_month, 1 << 17),
    ]


def median_ms(ctx, sql, reps):
    ctx.sql(sql).collect()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        ctx.sql(sql).collect()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("facts")
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--results", action="store_true")
    a = p.parse_args()
    parts, rows = [], 0
    for f in sorted(glob.glob(os.path.join(a.facts, "*.parquet"))):
        t = pq.read_table(f, columns=COLUMNS)
        parts.append(t.slice(0, a.rows - rows))
        rows += parts[-1].num_rows
        if rows >= a.rows:
            break
    table = pa.concat_tables(parts)
    work = os.path.join(HERE, "..", ".work", "layout")
    header = "| layout | pushdown | " + " | ".join(QUERIES) + " | bytes |"
    lines = [header, "|---|---|" + "---|" * len(QUERIES) + "---|"]
    for name, t, group in layouts(table):
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        path = os.path.join(work, "part-0.parquet")
        pq.write_table(t, path, row_group_size=group, compression="snappy", write_page_index=True)
        size = os.path.getsize(path)
        for pushdown in (False, True):
            config = datafusion.SessionConfig().set("datafusion.execution.parquet.pushdown_filters", str(pushdown).lower())
            ctx = datafusion.SessionContext(config)
            ctx.register_parquet("f", work)
            cells = [f"{median_ms(ctx, sql, a.reps):.0f}" for sql in QUERIES.values()]
            lines.append(f"| {name} | {'on' if pushdown else 'off'} | " + " | ".join(cells) + f" | {size:,} |")
            print(lines[-1], flush=True)
    if a.results:
        body = "\n".join([
            f"<!-- layout:{rows} -->",
            f"### Layout of the facts, {rows:,} rows",
            "",
            f"Produced by `benches/layout/run.py` over the newcomers facts that `kubus ingest` wrote ({rows:,} of them), "
            f"rewritten in each layout; warm medians of {a.reps} runs in ms, DataFusion {datafusion.__version__} "
            f"(Python; the engine kubus embeds), {os.cpu_count()} cores, Parquet filter pushdown off (kubus's setting) "
            "and on. Queries in the form kubus runs them over the facts (member keys as text, a year as its months).",
            "",
            *lines,
            f"<!-- /layout:{rows} -->",
        ])
        write_section(f"layout:{rows}", body, "## Layout of the facts (base path)")


if __name__ == "__main__":
    main()
