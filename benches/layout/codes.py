#!/usr/bin/env python3
"""Would facts stored as integer codes answer faster than facts stored as member keys (text)?

Takes the Parquet files of a kubus warehouse's `newcomers` facts (as `kubus ingest` wrote them) and writes the same
rows twice: as they are (member keys as text, Parquet dictionary-encoded) and with every member column replaced by
a small integer code (the member's number in a dictionary of the column's keys). Times six of the reference
queries' base-path forms on both with DataFusion (Python, the engine version kubus embeds) and DuckDB, in one run.
The queries differ only in naming members by key or by code.

Usage: codes.py FACTS_DIR [--reps 7] [--results]   (--results writes the table into benches/RESULTS.md)
"""
import argparse
import glob
import os
import shutil
import statistics
import sys
import time

import datafusion
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "queries"))
from compare import write_section  # noqa: E402

MEMBERS = ["month", "district", "age", "sex", "nationality", "residence_status", "language_level", "in_course"]
COLUMNS = MEMBERS + ["course_hours", "age_years"]
BELOW_B1 = ["none", "A1", "A2"]


def queries(member):
    """(name, SQL) with each member named by `member(column, key)`, a literal of the layout."""
    levels = ", ".join(member("language_level", k) for k in BELOW_B1)
    districts = ", ".join(member("district", k) for k in ("D01", "D02", "D03"))
    return [
        ("q01 count by district", "SELECT district, count(*) FROM f GROUP BY district"),
        ("q04 one district by month",
         f"SELECT month, count(*), sum(course_hours) FROM f WHERE district = {member('district', 'D04')} GROUP BY month"),
        ("q05 share below B1 by district",
         f"SELECT district, count(*) FILTER (WHERE language_level IN ({levels})), count(*) FROM f GROUP BY district"),
        ("q06 top nationalities of three districts",
         f"SELECT nationality, count(*) AS n FROM f WHERE district IN ({districts}) GROUP BY nationality "
         "ORDER BY n DESC LIMIT 10"),
        ("q07 by district and month", "SELECT district, month, count(*) FROM f GROUP BY district, month"),
        ("q10 four dimensions",
         "SELECT district, residence_status, sex, language_level, count(*), avg(age_years) FROM f "
         f"WHERE in_course = {member('in_course', 'ja')} GROUP BY 1, 2, 3, 4"),
    ]


def median_ms(run, reps):
    run()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("facts")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--results", action="store_true")
    a = p.parse_args()
    files = sorted(glob.glob(os.path.join(a.facts, "*.parquet")))
    text = pa.concat_tables([pq.read_table(f, columns=COLUMNS) for f in files])
    codes, dictionaries = {}, {}
    for name in COLUMNS:
        column = text.column(name)
        if name in MEMBERS:
            encoded = pc.dictionary_encode(column.cast(pa.string())).combine_chunks()
            dictionaries[name] = encoded.dictionary.to_pylist()
            column = encoded.indices.cast(pa.int32())
        codes[name] = column
    work = os.path.join(HERE, "..", ".work", "codes")
    shutil.rmtree(work, ignore_errors=True)
    layouts = []
    for layout, table, member in [
        ("text", text, lambda column, key: f"'{key}'"),
        ("codes", pa.table(codes), lambda column, key: str(dictionaries[column].index(key))),
    ]:
        path = os.path.join(work, layout, "part-0.parquet")
        os.makedirs(os.path.dirname(path))
        pq.write_table(table, path, row_group_size=1 << 17, compression="snappy")
        layouts.append((layout, path, queries(member), os.path.getsize(path)))
    times = {}
    for layout, path, qs, _ in layouts:
        config = datafusion.SessionConfig().with_target_partitions(os.cpu_count())
        ctx = datafusion.SessionContext(config)
        ctx.register_parquet("f", path)
        con = duckdb.connect()
        con.execute(f"SET threads = {os.cpu_count()}")
        con.execute(f"CREATE VIEW f AS SELECT * FROM read_parquet('{path}')")
        for name, sql in qs:
            times[(layout, "DataFusion", name)] = median_ms(lambda: ctx.sql(sql).collect(), a.reps)
            times[(layout, "DuckDB", name)] = median_ms(lambda: con.execute(sql).fetchall(), a.reps)
            print(layout, name, f"{times[(layout, 'DataFusion', name)]:.1f}", f"{times[(layout, 'DuckDB', name)]:.1f}",
                  flush=True)
    names = [name for name, _ in layouts[0][2]]
    lines = ["| query | DataFusion, text ms | DataFusion, codes ms | codes ÷ text | DuckDB, text ms | DuckDB, codes ms |",
             "|---|---|---|---|---|---|"]
    for name in names:
        t, c = times[("text", "DataFusion", name)], times[("codes", "DataFusion", name)]
        lines.append(f"| {name} | {t:.1f} | {c:.1f} | {c / t:.2f} | {times[('text', 'DuckDB', name)]:.1f} | "
                     f"{times[('codes', 'DuckDB', name)]:.1f} |")
    sizes = ", ".join(f"{layout} {size:,} bytes" for layout, _, _, size in layouts)
    print("\n".join(lines))
    if a.results:
        rows = text.num_rows
        body = "\n".join([
            f"<!-- codes:{rows} -->",
            f"### Member keys or integer codes in the facts, {rows:,} rows",
            "",
            f"Produced by `benches/layout/codes.py` over the newcomers facts that `kubus ingest` wrote ({rows:,} of "
            "them), written once as they are (member keys as text) and once with every member column as an integer "
            f"code ({sizes}; 128k-row groups, Snappy); warm medians of {a.reps} runs, DataFusion "
            f"{datafusion.__version__} (Python; the engine kubus embeds) and DuckDB {duckdb.__version__}, "
            f"{os.cpu_count()} cores, the queries in the form of kubus's base path.",
            "",
            *lines,
            f"<!-- /codes:{rows} -->",
        ])
        write_section(f"codes:{rows}", body, "## Layout of the facts (base path)")


if __name__ == "__main__":
    main()
