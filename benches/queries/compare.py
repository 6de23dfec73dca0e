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
from workload import ingest, prepare  # noqa: E402
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


def kubus_rows(kubus, root, name, q, fields, extra=()):
    """kubus's answer as rows of `fields`: asked as JSON and with CLI options (through rollups where one answers),
    and with `--no-rollups` from the facts; the three must agree. `extra`: further global options (`--engine …`)."""
    # As the statistics office: DuckDB knows no disclosure control, so the comparison reads unsuppressed numbers.
    role = [*extra, "--role", "statistik"]
    by_json = subprocess.run([kubus, "-C", root, *role, "query", "--json", json.dumps(q), "-f", "csv"], capture_output=True, text=True)
    by_cli = subprocess.run([kubus, "-C", root, *role, *cli_args(q), "-f", "csv"], capture_output=True, text=True)
    by_facts = subprocess.run([kubus, "-C", root, *role, *cli_args(q), "--no-rollups", "-f", "csv"], capture_output=True, text=True)
    for p in (by_json, by_cli, by_facts):
        if p.returncode != 0:
            sys.exit(f"{name}: kubus failed: {p.stderr}")
    if by_json.stdout != by_cli.stdout:
        sys.exit(f"{name}: the JSON and the CLI form of the query answer differently")

    def parse(text):
        rows = []
        for r in csv.DictReader(io.StringIO(text)):
            row = []
            for f in fields:
                if f.endswith(":key"):
                    row.append(canonical(r[f[:-4]]))
                elif f + "_label" in r:
                    row.append(None if r[f] == "" else canonical(r[f + "_label"]))
                else:
                    row.append(canonical(r[f]))
            rows.append(row)
        return rows
    rows = parse(by_json.stdout)
    if rows != parse(by_facts.stdout):
        sys.exit(f"{name}: the answer through rollups differs from the answer from the facts (--no-rollups)")
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


def median_ms(run, reps):
    """Warm: one run first, then the median of `reps` timed runs, in milliseconds."""
    import statistics
    import time
    run()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        run()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def peers(con, parquet):
    """The engines a user would pick instead, each on the same data: DuckDB on the Parquet files and on its own
    tables, Polars, DataFusion and chDB on the Parquet files (an engine that is not installed is left out)."""
    engines = {"DuckDB (own tables)": lambda q: con.execute(q).fetchall()}
    import duckdb
    on_files = duckdb.connect()
    on_files.execute("SET threads = 2")
    on_files.execute(f"CREATE VIEW f AS SELECT * FROM read_parquet('{parquet}/newcomers/*.parquet')")
    on_files.execute(f"CREATE VIEW o AS SELECT * FROM read_parquet('{parquet}/course_offers.parquet')")
    engines["DuckDB (Parquet)"] = lambda q: on_files.execute(q).fetchall()
    try:
        import polars as pl
        ctx = pl.SQLContext(f=pl.scan_parquet(f"{parquet}/newcomers/*.parquet"), o=pl.scan_parquet(f"{parquet}/course_offers.parquet"))
        engines["Polars"] = lambda q: ctx.execute(q).collect()
    except ImportError:
        print("polars is not installed: left out", flush=True)
    try:
        import datafusion
        dctx = datafusion.SessionContext()
        dctx.register_parquet("f", f"{parquet}/newcomers/")
        dctx.register_parquet("o", f"{parquet}/course_offers.parquet")
        engines["DataFusion"] = lambda q: dctx.sql(q).to_arrow_table()
    except ImportError:
        print("datafusion is not installed: left out", flush=True)
    try:
        import chdb
        session = chdb.session.Session()
        session.query(f"CREATE VIEW f AS SELECT * FROM file('{parquet}/newcomers/*.parquet', Parquet)")
        session.query(f"CREATE VIEW o AS SELECT * FROM file('{parquet}/course_offers.parquet', Parquet)")
        engines["chDB"] = lambda q: session.query(q, "Arrow")
    except ImportError:
        print("chdb is not installed: left out", flush=True)
    return engines


def kubus_timings(binary, root, reps, mode):
    spec = os.path.join(root, "queries.json")
    json.dump({name: q for name, (q, _) in KUBUS.items()}, open(spec, "w"))
    p = subprocess.run([binary, root, spec, str(reps), "statistik", mode], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"query_timing failed: {p.stderr}")
    return {j["query"]: j for j in map(json.loads, p.stdout.splitlines())}


def startup_ms(kubus, work, runs=11):
    """`kubus query` on the sample project, from process start to the answer (median wall time of `runs`)."""
    import statistics
    import time
    repo = os.path.join(HERE, "..", "..")
    sample = os.path.join(work, "sample-project")
    shutil.rmtree(sample, ignore_errors=True)
    os.makedirs(sample)
    shutil.copy(os.path.join(repo, "kubus.toml"), sample)
    for sub in ["cube-schemas", "sample-data", "ptables", "geo"]:
        shutil.copytree(os.path.join(repo, sub), os.path.join(sample, sub))
    subprocess.run([kubus, "-C", sample, "demo"], check=True, capture_output=True)
    out = {}
    for label, extra in [("rollups", []), ("facts", ["--no-rollups"])]:
        args = [kubus, "-C", sample, "query", "newcomers", "-m", "persons", "-d", "district", "-c", "month=2024-06", *extra]
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run(args, check=True, capture_output=True)
            times.append((time.perf_counter() - t) * 1000)
        out[label] = statistics.median(times)
    return out


def time_all(a, kubus, root, con, work):
    """Each reference query warm, in one run: kubus through the library with and without rollups, and every peer
    on the same data; medians, ratios to the fastest peer; then the rollups' build time and size, and start-up."""
    parquet = os.path.join(work, f"parquet-{a.rows}")
    shutil.rmtree(parquet, ignore_errors=True)
    os.makedirs(os.path.join(parquet, "newcomers"))
    con.execute(f"COPY f TO '{parquet}/newcomers/part-0.parquet' (FORMAT parquet)")
    con.execute(f"COPY o TO '{parquet}/course_offers.parquet' (FORMAT parquet)")
    engines = peers(con, parquet)
    routed = kubus_timings(a.timing, root, a.reps, "prefer")
    facts = kubus_timings(a.timing, root, a.reps, "never")
    names = list(engines)
    lines = ["| query | kubus, rollups ms | read | kubus, facts ms | " + " | ".join(f"{n} ms" for n in names)
             + " | fastest peer | fastest peer ÷ kubus rollups | kubus facts ÷ DuckDB (Parquet) | kubus facts ÷ DuckDB (own tables) |",
             "|---|---|---|---|" + "---|" * len(names) + "---|---|---|---|"]
    for name, sql in QUERIES.items():
        times = {}
        for engine, run in engines.items():
            try:
                times[engine] = median_ms(lambda: run(sql), a.reps)
            except Exception as e:  # an engine that cannot run a query is shown as such, not fatal
                print(f"{engine} failed on {name}: {str(e)[:120]}", flush=True)
        fastest = min(times, key=times.get)
        r, f = routed[name]["median_ms"], facts[name]["median_ms"]
        cells = " | ".join(f"{times[n]:.1f}" if n in times else "failed" for n in names)
        lines.append(f"| {name} | {r:.2f} | {routed[name]['read']} | {f:.1f} | {cells} | {fastest} | {times[fastest] / r:.0f}× "
                     f"| {f / times['DuckDB (Parquet)']:.2f} | {f / times['DuckDB (own tables)']:.2f} |")
        print(lines[-1], flush=True)
    p = subprocess.run([kubus, "-C", root, "rollups", "-f", "json"], capture_output=True, text=True, check=True)
    built = json.loads(p.stdout)
    build = ["| cube | rollup | levels | rows | bytes | build ms | built with |", "|---|---|---|---|---|---|---|"]
    for r in built:
        build.append(f"| {r['cube']} | {r['rollup']} | {r['levels']} | {r['rows']:,} | {r['bytes']:,} | {r['build_ms']:,} "
                     f"| {r['built_with']} |")
    start = startup_ms(kubus, work)
    import duckdb
    return "\n".join([
        f"<!-- speed:{a.rows} -->",
        f"### {a.rows:,} rows",
        "",
        f"Warm medians of {a.reps} runs after one warm-up, all in one run of `benches/queries/run.sh {a.rows}` on this "
        f"machine ({os.cpu_count()} cores). kubus through the library (`query_timing`), as the statistics office "
        "(no disclosure control, as the peers have none); `read` names the rollup that answered. Peers on the same data: "
        f"DuckDB {duckdb.__version__} on its own tables (loaded from the same CSV) and on a Parquet copy of them, and "
        "Polars, DataFusion (Python) and chDB on that Parquet copy.",
        "",
        *lines,
        "",
        "Rollups, built after the ingest: one aggregation over the facts (grouping sets) for the rollups that store the "
        "same distinct counts, whose time each of them shows (`built with`); distinct counts as bitmaps:",
        "",
        *build,
        "",
        f"`kubus query newcomers -m persons -d district -c month=2024-06` on the sample project, process start to answer "
        f"(median of 11): {start['rollups']:.0f} ms through a rollup, {start['facts']:.0f} ms with `--no-rollups`.",
        f"<!-- /speed:{a.rows} -->",
    ])


def write_section(marker, body, heading):
    """Replaces `<!-- marker -->…<!-- /marker -->` in RESULTS.md (appending it under `heading` the first time)."""
    text = open(RESULTS).read()
    begin, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    if begin not in text:
        if heading not in text:
            text += f"\n{heading}\n"
        text += f"\n{begin}\n{end}\n"
    start, stop = text.index(begin), text.index(end) + len(end)
    open(RESULTS, "w").write(text[:start] + body + text[stop:])


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
    root = os.path.join(a.work, "query-project")
    newcomers_csv, offers_csv = prepare(a.work, a.rows, root)
    ingest(kubus, root, newcomers_csv, offers_csv)
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
    if a.results and a.timing:
        write_section(f"speed:{a.rows}", time_all(a, kubus, root, con, a.work), "## Query speed: kubus with and without rollups against the peers")
    if a.results:
        import duckdb
        table = (f"<!-- queries:{a.rows} -->\n### {a.rows:,} rows\n\nThe ten reference queries of `../shared/peers/queries.py` at {a.rows:,} generated rows, "
                 f"answered by kubus cube queries (JSON and CLI form through rollups, and CLI form from the facts with `--no-rollups`, "
                 f"which all agree) and by DuckDB {duckdb.__version__} on the "
                 "same CSV files, compared row for row after sorting. Produced by `benches/queries/run.sh`.\n\n"
                 "| query | kubus query | rows | kubus vs DuckDB |\n|---|---|---|---|\n" + "\n".join(lines)
                 + f"\n\n{len(QUERIES) - failed} of {len(QUERIES)} equal. For q09, kubus's drill-across also lists the "
                 "districts and levels with seats but no need (members on one side only appear); the rows with a need "
                 f"are compared with DuckDB's LEFT JOIN from the need side.\n<!-- /queries:{a.rows} -->")
        write_section(f"queries:{a.rows}", table, "## Reference queries against DuckDB")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
