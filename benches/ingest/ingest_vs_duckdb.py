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
import resource
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "..", "RESULTS.md")

DISTRICTS = ["Innenstadt-West/Kotten", "Innenstadt-Nord/Kaiserberg", "Grübentälchen/Volkspark",
             "Betzenberg", "Lämmchesberg/Uniwohnstadt", "Bännjerrück/Karl-Pfaff-Siedlung",
             "Kaiserslautern-West", "Kaiserslautern-Ost", "Innenstadt-Südwest", "Innenstadt-Ost",
             "Morlautern", "Erlenbach", "Dansenberg", "Hohenecken", "Erfenbach", "Siegelbach",
             "Mölschbach", "Einsiedlerhof"]
LEVELS = ["none", "A1", "A2", "B1", "B2", "C1", "C2"]
STATUS = ["Asylbewerber", "anerkannt", "subsidiär", "geduldet", "EU-Freizügigkeit",
          "Familiennachzug", "Fachkraft", "Studium", "Ukraine §24"]
NATIONS = [f"N{i:03d}" for i in range(120)]
HEADER = ["Personennummer", "Stichtag", "Stadtteil", "Alter", "Geschlecht", "Staatsangehörigkeit",
          "Aufenthaltsstatus", "Sprachniveau", "Kursteilnahme", "Kursträger", "Kursstunden"]


def generate(path, rows, seed=42):
    """The peers' distributions (seed 42), written as the authority's CSV, in chunks."""
    rng = np.random.default_rng(seed)
    months = [(y, m) for y in range(2015, 2027) for m in range(1, 13)]
    dist_p = rng.dirichlet(np.ones(len(DISTRICTS)) * 2)
    nat_p = rng.zipf(1.6, len(NATIONS)).astype(float)
    nat_p /= nat_p.sum()
    stichtag = np.array([f"01.{m:02d}.{y}" for y, m in months])
    with open(path, "w", encoding="cp1252", newline="") as f:
        f.write(";".join(HEADER) + "\r\n")
        chunk = 500_000
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            pid = rng.integers(0, max(1, rows // 24), n)
            month = stichtag[rng.integers(0, len(months), n)]
            district = np.array(DISTRICTS)[rng.choice(len(DISTRICTS), n, p=dist_p)]
            age = np.clip(rng.gamma(3.0, 9.0, n), 0, 99).astype(int)
            sex = rng.choice(np.array(["m", "w", "d"]), n, p=[0.55, 0.445, 0.005])
            nat = np.array(NATIONS)[rng.choice(len(NATIONS), n, p=nat_p)]
            status = np.array(STATUS)[rng.integers(0, len(STATUS), n)]
            level = np.array(LEVELS)[rng.choice(len(LEVELS), n, p=[.25, .2, .2, .17, .1, .05, .03])]
            course = rng.random(n) < 0.3
            provider = np.where(rng.random(n) < 0.3, rng.integers(1, 41, n), 0)
            hours = np.round(rng.random(n) * 100, 1)
            f.write("".join(
                f"{p};{mo};{d};{a};{s};{na};{st};{lv};{'ja' if c else 'nein'};{f'P{pr:02d}' if pr else ''};{str(h).replace('.', ',')}\r\n"
                for p, mo, d, a, s, na, st, lv, c, pr, h in zip(pid, month, district, age, sex, nat, status, level, course, provider, hours)
            ))


def member(level, key, label, parent=None):
    text = f'\n[[members]]\nlevel = "{level}"\nkey = "{key}"\nlabel = "{label}"\n'
    return text + (f'parent = "{parent}"\n' if parent else "")


def enumerated(name, keys_labels, aliases=None):
    text = f'name = "{name}"\nlabel = "{name}"\n\n[[levels]]\nname = "{name}"\nlabel = "{name}"\n'
    for key, label in keys_labels:
        text += member(name, key, label)
    return text


def project(root):
    """A scratch kubus project with the peers' dimensions, one cube and the authority's source mapping."""
    for sub in ["dimensions", "cubes", "sources"]:
        os.makedirs(os.path.join(root, "cube-schemas", sub), exist_ok=True)
    open(os.path.join(root, "kubus.toml"), "w").write('name = "ingest-bench"\n')
    dims = {
        "district": enumerated("district", [(f"D{i + 1:02d}", d) for i, d in enumerate(DISTRICTS)]),
        "sex": enumerated("sex", [("m", "männlich"), ("w", "weiblich"), ("d", "divers")]),
        "nationality": enumerated("nationality", [(n, n) for n in NATIONS]),
        "residence_status": enumerated("residence_status", [(f"S{i + 1}", s) for i, s in enumerate(STATUS)]),
        "language_level": enumerated("language_level", [(lv, lv) for lv in LEVELS]),
        "in_course": enumerated("in_course", [("ja", "ja"), ("nein", "nein")]),
        "provider": enumerated("provider", [("none", "kein Träger")] + [(f"P{i:02d}", f"Träger {i}") for i in range(1, 41)]),
        "time": 'name = "time"\nlabel = "Zeit"\nkind = "time"\nyears = [2015, 2026]\n'
                + "".join(f'\n[[levels]]\nname = "{lv}"\nlabel = "{lv}"\n' for lv in ["year", "quarter", "month"]),
        "age": 'name = "age"\nlabel = "Alter"\nkind = "age"\nmax_age = 99\n'
               '\n[[levels]]\nname = "age_band"\nlabel = "Altersgruppe"\n\n[[levels]]\nname = "age_year"\nlabel = "Alter"\n'
               + "".join(f'\n[[bands]]\nkey = "{k}"\nlabel = "{k}"\nfrom = {a}\n' + (f"to = {b}\n" if b else "")
                         for k, a, b in [("0-17", 0, 18), ("18-64", 18, 65), ("65+", 65, None)]),
    }
    for name, text in dims.items():
        open(os.path.join(root, "cube-schemas", "dimensions", name + ".toml"), "w").write(text)
    roles = ["month", "district", "age", "sex", "nationality", "residence_status", "language_level", "in_course", "provider"]
    cube = 'name = "newcomers"\nlabel = "Neuzugewanderte"\n'
    for r in roles:
        cube += f'\n[[dimensions]]\nname = "{r}"\n' + ('dimension = "time"\n' if r == "month" else "")
    cube += '\n[[columns]]\nname = "person_id"\ntype = "string"\n\n[[columns]]\nname = "course_hours"\ntype = "decimal"\n'
    cube += '\n[[measures]]\nname = "records"\nlabel = "Datensätze"\naggregate = "count"\n'
    open(os.path.join(root, "cube-schemas", "cubes", "newcomers.toml"), "w").write(cube)
    source = ('name = "abh"\ncube = "newcomers"\n\n[format]\ntype = "csv"\nencoding = "windows-1252"\ndelimiter = ";"\n'
              'decimal_separator = ","\ndate_formats = ["%d.%m.%Y"]\n')
    fields = {"person_id": 'text = "Personennummer"', "month": 'date = "Stichtag"', "district": 'member = "Stadtteil"',
              "age": 'member = "Alter"', "sex": 'member = "Geschlecht"', "nationality": 'member = "Staatsangehörigkeit"',
              "residence_status": 'member = "Aufenthaltsstatus"', "language_level": 'member = "Sprachniveau"',
              "in_course": 'member = "Kursteilnahme"', "provider": 'member = "Kursträger"\nif_empty = "none"',
              "course_hours": 'number = "Kursstunden"'}
    for target, body in fields.items():
        source += f"\n[fields.{target}]\n{body}\n"
    open(os.path.join(root, "cube-schemas", "sources", "abh.toml"), "w", encoding="utf-8").write(source)


def measured(cmd, cwd=None):
    """Runs `cmd` in a child of a fresh Python process; returns (seconds, peak RSS in MB of that child, stdout)."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); dt = time.perf_counter() - t; "
             "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr); "
             "print(f'@@{dt} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}'); sys.exit(p.returncode)")
    p = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, cwd=cwd)
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    out, last = p.stdout.rsplit("@@", 1)
    seconds, kb = last.split()
    return float(seconds), int(kb) / 1024, out


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
    csv = os.path.join(a.work, f"newcomers_{a.rows}.csv")
    if not os.path.exists(csv):
        print(f"generating {a.rows} rows → {csv}", flush=True)
        generate(csv, a.rows)
    size_mb = os.path.getsize(csv) / 1e6
    duck_script = os.path.join(a.work, "duckdb_ingest.py")
    open(duck_script, "w").write(DUCKDB)

    kubus_runs, duck_runs = [], []
    for rep in range(a.reps):
        root = os.path.join(a.work, "project")
        shutil.rmtree(root, ignore_errors=True)
        project(root)
        seconds, rss, out = measured([kubus, "-C", root, "ingest", "abh", csv])
        summary = [l for l in out.splitlines() if l.startswith("lines ")][-1]
        print(f"kubus  run {rep + 1}: {seconds:.1f} s, peak {rss:.0f} MB — {summary}", flush=True)
        kubus_runs.append((seconds, rss, summary))
        parquet = os.path.join(a.work, "duckdb.parquet")
        seconds, rss, out = measured([sys.executable, duck_script, csv, parquet])
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
