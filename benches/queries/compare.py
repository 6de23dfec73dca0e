#!/usr/bin/env python3
"""The ten reference queries of ../shared/peers/queries.py, answered by kubus and by DuckDB on the same data, and
compared row for row (both sides sorted).

Generates the reference workload as office exports (benches/workload.py), ingests it with `kubus ingest` into a
scratch project, and loads the same CSV files into DuckDB as the tables `f` and `o` of the peers' queries, which
run verbatim (a copy is in peer_queries.py; when ../shared/peers is there, the copy is checked against it).
kubus answers each question as a cube query, once as JSON (`--json`) and once with CLI options, which must agree.

Differences by design, applied before comparing: kubus labels members (district names, levels) where DuckDB has
the raw values, which are the same text here; months and years are compared as `YYYY-MM` and numbers; for q09,
kubus's drill-across also keeps districts and levels that only have seats (members on one side only appear), so
only the rows with a need are compared with DuckDB's LEFT JOIN from the need side.

Usage: compare.py KUBUS_BINARY WORK_DIR [--rows N] [--results]   (--results writes the table into RESULTS.md)
Exits 1 if any answer differs.
"""
import argparse
import csv
import datetime
import io
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from workload import generate, generate_offers, project  # noqa: E402
from peer_queries import QUERIES  # noqa: E402

RESULTS = os.path.join(HERE, "..", "RESULTS.md")
PEERS = os.path.join(HERE, "..", "..", "..", "shared", "peers", "queries.py")

# Each reference query as a kubus cube query, and the output fields that line up with DuckDB's columns: a
# drilldown (its label, or nothing on a total row), `name:key` for its key, or a measure.
KUBUS = {
    "q01_rollup_district": ({"cube": "newcomers", "measures": ["records"], "drilldowns": ["district"]},
                            ["district", "records"]),
    "q02_slice_year_dice_level": ({"cube": "newcomers", "measures": ["records"], "drilldowns": ["district", "language_level"],
                                   "cuts": ["month.year=2024"]},
                                  ["district", "language_level", "records"]),
    "q03_distinct_persons_ageband": ({"cube": "newcomers", "measures": ["persons"], "drilldowns": ["district", "age.age_band"]},
                                     ["district", "age_band", "persons"]),
    "q04_drilldown_month": ({"cube": "newcomers", "measures": ["records", "hours"], "drilldowns": ["month"],
                             "cuts": ["district=Betzenberg"]},
                            ["month:key", "records", "hours"]),
    "q05_ratio_below_b1": ({"cube": "newcomers", "measures": ["share_below_b1"], "drilldowns": ["district"]},
                           ["district", "share_below_b1"]),
    "q06_topn_nationality": ({"cube": "newcomers", "measures": ["records"], "drilldowns": ["nationality"],
                              "cuts": ["district=Innenstadt-Ost,Kaiserslautern-West,Betzenberg"], "order": ["-records"], "limit": 10},
                             ["nationality", "records"]),
    "q07_yoy_district": ({"cube": "newcomers", "measures": ["records", "records_change"], "drilldowns": ["district", "month.year"]},
                         ["district", "year:key", "records", "records_change"]),
    "q08_subtotals": ({"cube": "newcomers", "measures": ["records"], "drilldowns": ["district", "language_level"], "totals": True},
                      ["district", "language_level", "records"]),
    "q09_demand_vs_supply": ({"cube": "language_demand", "measures": ["need", "seats"], "drilldowns": ["district", "language_level"],
                              "cuts": ["month=2024-06", "start_month=2024"]},
                             ["district", "language_level", "need", "seats"]),
    "q10_multi_dim": ({"cube": "newcomers", "measures": ["records", "avg_age"],
                       "drilldowns": ["district", "residence_status", "sex", "language_level"], "cuts": ["in_course=ja"]},
                      ["district", "residence_status", "sex:key", "language_level", "records", "avg_age"]),
}


def canonical(value):
    """One comparable form: None, a number rounded to 9 significant digits, `YYYY-MM` for dates, or text."""
    if value is None or value == "":
        return None
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f"{value.year:04d}-{value.month:02d}"
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(f"{float(value):.9g}")
    text = str(value)
    try:
        return float(f"{float(text):.9g}") if text.lstrip("-").replace(".", "", 1).isdigit() else text
    except ValueError:
        return text


def ordered(rows):
    return sorted(rows, key=lambda r: [(v is None, str(v)) for v in r])


def cli_args(q):
    args = ["query", q["cube"]]
    for m in q["measures"]:
        args += ["-m", m]
    for d in q.get("drilldowns", []):
        args += ["-d", d]
    for c in q.get("cuts", []):
        args += ["-c", c]
    if q.get("totals"):
        args.append("--totals")
    for o in q.get("order", []):
        args += ["--order", o]
    if q.get("limit") is not None:
        args += ["--limit", str(q["limit"])]
    return args


def kubus_rows(kubus, root, name, q, fields):
    # As the statistics office: DuckDB knows no disclosure control, so the comparison reads unsuppressed numbers.
    role = ["--role", "statistik"]
    by_json = subprocess.run([kubus, "-C", root, *role, "query", "--json", json.dumps(q), "-f", "csv"], capture_output=True, text=True)
    by_cli = subprocess.run([kubus, "-C", root, *role, *cli_args(q), "-f", "csv"], capture_output=True, text=True)
    for p in (by_json, by_cli):
        if p.returncode != 0:
            sys.exit(f"{name}: kubus failed: {p.stderr}")
    if by_json.stdout != by_cli.stdout:
        sys.exit(f"{name}: the JSON and the CLI form of the query answer differently")
    rows = []
    for r in csv.DictReader(io.StringIO(by_json.stdout)):
        row = []
        for f in fields:
            if f.endswith(":key"):
                row.append(canonical(r[f[:-4]]))
            elif f + "_label" in r:
                row.append(None if r[f] == "" else canonical(r[f + "_label"]))
            else:
                row.append(canonical(r[f]))
        rows.append(row)
    if name == "q09_demand_vs_supply":
        rows = [r for r in rows if r[2] and r[2] > 0]
    return rows


def duckdb_connection(newcomers_csv, offers_csv):
    import duckdb
    con = duckdb.connect()
    con.execute("SET threads = 2")
    quoted = lambda p: "'" + p.replace("'", "''") + "'"  # noqa: E731
    con.execute(f"""CREATE TABLE f AS SELECT CAST(Personennummer AS BIGINT) AS person_id,
        CAST(strptime(Stichtag, '%d.%m.%Y') AS DATE) AS month, Stadtteil AS district, CAST(Alter AS INTEGER) AS age,
        Geschlecht AS sex, "Staatsangehörigkeit" AS nationality, Aufenthaltsstatus AS residence_status,
        Sprachniveau AS language_level, Kursteilnahme = 'ja' AS in_course, "Kursträger" AS provider_id,
        CAST(replace(Kursstunden, ',', '.') AS DOUBLE) AS course_hours
        FROM read_csv({quoted(newcomers_csv)}, delim=';', header=true, all_varchar=true, encoding='latin-1')""")
    con.execute(f"""CREATE TABLE o AS SELECT "Träger" AS provider_id, Stadtteil AS district, Niveau AS language_level,
        CAST(strptime(Kursbeginn, '%d.%m.%Y') AS DATE) AS month, CAST("Plätze" AS INTEGER) AS seats
        FROM read_csv({quoted(offers_csv)}, delim=';', header=true, all_varchar=true, encoding='latin-1')""")
    return con


def time_queries(binary, root, con, reps):
    """Each query warm: kubus through the library (query_timing), DuckDB on its own tables; medians and ratios."""
    import statistics
    import time
    spec = os.path.join(root, "queries.json")
    json.dump({name: q for name, (q, _) in KUBUS.items()}, open(spec, "w"))
    p = subprocess.run([binary, root, spec, str(reps), "statistik"], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"query_timing failed: {p.stderr}")
    kubus = {j["query"]: j for j in map(json.loads, p.stdout.splitlines())}
    lines = ["", "Warm timings in the same run (median of %d; kubus through the library with disclosure control bypassed, "
             "DuckDB on its own in-memory tables):" % reps, "",
             "| query | kubus ms | DuckDB ms | kubus / DuckDB |", "|---|---|---|---|"]
    for name, sql in QUERIES.items():
        con.execute(sql).fetchall()
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            con.execute(sql).fetchall()
            times.append((time.perf_counter() - t) * 1000)
        duck = statistics.median(times)
        k = kubus[name]["median_ms"]
        lines.append(f"| {name} | {k:.1f} | {duck:.1f} | {k / duck:.1f}× |")
        print(f"{name:32} kubus {k:8.1f} ms   DuckDB {duck:8.1f} ms   {k / duck:5.1f}×", flush=True)
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kubus")
    ap.add_argument("work")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--results", action="store_true")
    ap.add_argument("--timing", help="the query_timing binary: also time each query warm, kubus and DuckDB, in this run")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    if os.path.exists(PEERS) and open(PEERS).read() != open(os.path.join(HERE, "peer_queries.py")).read():
        sys.exit("benches/queries/peer_queries.py differs from ../shared/peers/queries.py: copy it again")
    kubus = os.path.abspath(a.kubus)
    os.makedirs(a.work, exist_ok=True)
    newcomers_csv = os.path.join(a.work, f"newcomers_{a.rows}.csv")
    offers_csv = os.path.join(a.work, "offers.csv")
    if not os.path.exists(newcomers_csv):
        print(f"generating {a.rows} rows → {newcomers_csv}", flush=True)
        generate(newcomers_csv, a.rows)
    generate_offers(offers_csv)
    root = os.path.join(a.work, "query-project")
    shutil.rmtree(root, ignore_errors=True)
    project(root)
    for source, path in [("abh", newcomers_csv), ("offers", offers_csv)]:
        p = subprocess.run([kubus, "-C", root, "ingest", source, path], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"kubus ingest {source} failed:\n{p.stdout}\n{p.stderr}")
        print(f"kubus ingest {source}: {[l for l in p.stdout.splitlines() if l.startswith('lines ')][-1]}", flush=True)
    con = duckdb_connection(newcomers_csv, offers_csv)

    lines, failed = [], 0
    for name, sql in QUERIES.items():
        q, fields = KUBUS[name]
        want = ordered([[canonical(v) for v in row] for row in con.execute(sql).fetchall()])
        got = ordered(kubus_rows(kubus, root, name, q, fields))
        same = got == want
        failed += not same
        print(f"{name:32} {'equal' if same else 'DIFFERENT'}  kubus {len(got)} rows, DuckDB {len(want)} rows", flush=True)
        if not same:
            for g, w in zip(got, want):
                if g != w:
                    print(f"  first difference: kubus {g} vs DuckDB {w}")
                    break
        lines.append(f"| {name} | `{' '.join(cli_args(q)[1:])}` | {len(want)} | {'equal' if same else '**different**'} |")
    print(f"{len(QUERIES) - failed} of {len(QUERIES)} reference queries answer as DuckDB does", flush=True)
    timing = time_queries(a.timing, root, con, a.reps) if a.timing else None
    if a.results:
        import duckdb
        table = (f"<!-- queries -->\nThe ten reference queries of `../shared/peers/queries.py` at {a.rows:,} generated rows, "
                 f"answered by kubus cube queries (JSON and CLI form, which agree) and by DuckDB {duckdb.__version__} on the "
                 "same CSV files, compared row for row after sorting. Produced by `benches/queries/run.sh`.\n\n"
                 "| query | kubus query | rows | kubus vs DuckDB |\n|---|---|---|---|\n" + "\n".join(lines)
                 + f"\n\n{len(QUERIES) - failed} of {len(QUERIES)} equal. For q09, kubus's drill-across also lists the "
                 "districts and levels with seats but no need (members on one side only appear); the rows with a need "
                 "are compared with DuckDB's LEFT JOIN from the need side.\n<!-- /queries -->")
        if timing:
            table = table.replace("<!-- /queries -->", timing + "\n<!-- /queries -->")
        text = open(RESULTS).read()
        if "<!-- queries -->" not in text:
            text += "\n## Reference queries against DuckDB\n\n<!-- queries -->\n<!-- /queries -->\n"
        start, end = text.index("<!-- queries -->"), text.index("<!-- /queries -->") + len("<!-- /queries -->")
        open(RESULTS, "w").write(text[:start] + table + text[end:])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
