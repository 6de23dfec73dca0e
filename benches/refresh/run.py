#!/usr/bin/env python3
"""What a monthly ingest costs with rollups, at ROWS facts of the reference workload.

The workload's newcomers file without one month (June 2020) is ingested into a project with the reference
rollups once (version 0, its rollups built from all the facts; the source gets the replace key `month`). Then, each
from a copy of that project, in REPS interleaved rounds:
  new month:   a 50,000-row export of June 2020 ingested (version 1); its rollups merged from version 0's and the
               added facts' cells (kubus's way), against built from all the facts (version 0's rollups out of reach,
               their manifest removed: what every ingest did before)
  correction:  that export corrected (every 50th person moved up one language level) ingested after it (version 2),
               replacing June's facts; the rollups that hold the month keep version 1's rows of the other months and
               build June's again, the others are built from all the facts — against all built from all the facts
               (the manifests of versions 0 and 1 removed: from version 0's, where the export is not yet, the
               correction is a plain addition again)
Wall times of the `kubus ingest` process (release build), medians. After the last round the rollups of each pair are
read with DuckDB, cell for cell (bitmaps compared by the distinct counts and keys stored beside them, floating-point
sums to 12 significant digits): they must be equal. Writes the table into benches/RESULTS.md between the
`<!-- refresh:ROWS -->` markers. Run it through benches/refresh/run.sh.

Usage: run.py KUBUS WORK [--rows N] [--reps R]
"""
import argparse
import json
import os
import platform
import re
import shutil
import statistics
import sys

import duckdb

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "ingest"))
from workload import newcomers_csv, project, split_month  # noqa: E402
from ingest_vs_duckdb import measured  # noqa: E402

RESULTS = os.path.join(HERE, "..", "RESULTS.md")
EXPORT_ROWS = 50_000
CUBE = "newcomers"


def corrected(month, path):
    """The export with every 50th fact's language level one step up (C2 stays): a corrected delivery."""
    levels = ["none", "A1", "A2", "B1", "B2", "C1", "C2"]
    with open(month, "rb") as src, open(path, "wb") as out:
        out.write(src.readline())
        for i, line in enumerate(src):
            if i % 50 == 0:
                cells = line.split(b";")
                level = cells[7].decode()
                cells[7] = levels[min(levels.index(level) + 1, len(levels) - 1)].encode()
                line = b";".join(cells)
            out.write(line)


def rollups_dir(root):
    return os.path.join(root, "warehouse", "rollups", CUBE)


def ingest(kubus, root, path, expected):
    """Times `kubus ingest` of a file; the rollups must be made from the earlier version's (`expected` is that
    version: all of them for an append, some for a correction) or all built from all the facts (`None`)."""
    seconds, rss, out, _ = measured([kubus, "-C", root, "ingest", "abh", path])
    line = next(l for l in out.splitlines() if l.startswith("rollups for this version"))
    made = line.count(f"merged from version {expected}") if expected is not None else 0
    if (expected is None and "merged from" in line) or (expected is not None and made == 0):
        sys.exit(f"expected the rollups {'built' if expected is None else f'made from version {expected}'}:\n{out}")
    return seconds, rss, made


def fresh(pristine, root, hide=()):
    """A copy of `pristine`, the manifests of the rollups of the versions in `hide` removed."""
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(pristine, root)
    for version in hide:
        os.remove(os.path.join(rollups_dir(root), f"v{version}.json"))


def stored_cells(root, version):
    """Every rollup of a version as DuckDB reads it: name → sorted rows without the bitmaps."""
    manifest = json.load(open(os.path.join(rollups_dir(root), f"v{version}.json"), encoding="utf-8"))
    con = duckdb.connect()
    cells = {}
    for r in manifest:
        path = os.path.join(rollups_dir(root), r["file"])
        kinds = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()
        columns = [f'"{name}"' for name, kind, *_ in kinds if kind != "BLOB"]
        rows = con.execute(f"SELECT {', '.join(columns)} FROM read_parquet(?)", [path]).fetchall()
        rounded = [tuple(float(f"{v:.12g}") if isinstance(v, float) else v for v in row) for row in rows]
        cells[r["name"]] = sorted(rounded, key=lambda row: tuple((v is None, str(v)) for v in row))
    return manifest, cells


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kubus")
    ap.add_argument("work")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    kubus = os.path.abspath(a.kubus)
    work = os.path.abspath(os.path.join(a.work, "refresh"))
    os.makedirs(work, exist_ok=True)
    csv = newcomers_csv(a.work, a.rows)
    base, month = os.path.join(work, "base.csv"), os.path.join(work, "june_2020.csv")
    export_rows = split_month(csv, base, month, limit=EXPORT_ROWS)

    pristine = os.path.join(work, "pristine")
    shutil.rmtree(pristine, ignore_errors=True)
    project(pristine)
    source = os.path.join(pristine, "cube-schemas", "sources", "abh.toml")
    text = open(source, encoding="utf-8").read()
    open(source, "w", encoding="utf-8").write(text.replace('cube = "newcomers"\n', 'cube = "newcomers"\nreplace = ["month"]\n', 1))
    seconds, _, out, _ = measured([kubus, "-C", pristine, "ingest", "abh", base])
    table = int(re.findall(r"→ (\d+) facts", out)[-1])
    print(f"table: {table} facts in {seconds:.1f} s (rollups built); the export: {export_rows} facts", flush=True)
    fix = os.path.join(work, "june_2020_corrected.csv")
    corrected(month, fix)
    with_month = os.path.join(work, "with_month")
    fresh(pristine, with_month)
    ingest(kubus, with_month, month, 0)

    # (case, made from the earlier version?) → (copy of, hidden manifests, file, expected earlier version)
    cases = {
        ("month", True): (pristine, (), month, 0),
        ("month", False): (pristine, (0,), month, None),
        ("correction", True): (with_month, (), fix, 1),
        ("correction", False): (with_month, (0, 1), fix, None),
    }
    times = {case: [] for case in cases}
    rss = {case: 0.0 for case in cases}
    made = {}
    roots = {case: os.path.join(work, f"{case[0]}_{'made' if case[1] else 'built'}") for case in cases}
    for rep in range(a.reps):
        for case, (origin, hide, path, expected) in cases.items():
            fresh(origin, roots[case], hide)
            seconds, peak, made[case] = ingest(kubus, roots[case], path, expected)
            times[case].append(seconds)
            rss[case] = max(rss[case], peak)
        print(f"round {rep + 1}: " + ", ".join(f"{c[0]} {'made' if c[1] else 'built'} {t[-1]:.2f} s" for c, t in times.items()),
              flush=True)
    compared = {}
    for kind, version in [("month", 1), ("correction", 2)]:
        manifest, made_cells = stored_cells(roots[(kind, True)], version)
        _, built_cells = stored_cells(roots[(kind, False)], version)
        if made_cells != built_cells:
            differing = [n for n in made_cells if made_cells[n] != built_cells.get(n)]
            sys.exit(f"{kind}: the rollups made from the earlier version's differ from a build: {differing}")
        compared[kind] = sum(len(rows) for rows in made_cells.values())
        if kind == "correction":
            rebuilt = [r["name"] for r in manifest if r.get("merged_from") is None]
        print(f"{kind}: equal, {len(made_cells)} rollups, {compared[kind]} cells", flush=True)
    for root in [*roots.values(), with_month]:
        shutil.rmtree(root, ignore_errors=True)

    med = statistics.median
    m = {case: med(t) for case, t in times.items()}
    n = len(manifest)
    table_md = "\n".join([
        f"<!-- refresh:{a.rows} -->",
        f"### {a.rows:,} rows",
        "",
        f"`kubus ingest` (release) into {table:,} facts of the reference workload with its {n} rollups, on "
        f"{platform.machine()} with {os.cpu_count()} cores: a {export_rows:,}-row export of one month (June 2020), and "
        "after it that export corrected (every 50th fact one language level up; the source's replace key `month` "
        f"replaces June's facts). Medians of {a.reps} interleaved rounds, wall time of the process (reading, "
        "converting, the overlap check, the commit, the rollups of the new version). Produced by "
        f"`benches/refresh/run.sh {a.rows}`; rerun it to replace this table.",
        "",
        "| ingest | rollups of the new version | wall s | peak RSS MB |",
        "|---|---|---|---|",
        f"| the new month | merged from the earlier version's with the added facts' cells ({made[('month', True)]} of {n}) "
        f"| {m[('month', True)]:.2f} | {rss[('month', True)]:,.0f} |",
        f"| the new month | built from all the facts | {m[('month', False)]:.2f} | {rss[('month', False)]:,.0f} |",
        f"| the correction | the month's cells built again, the other months' kept ({made[('correction', True)]} of {n}; "
        f"the others built from all the facts) | {m[('correction', True)]:.2f} | {rss[('correction', True)]:,.0f} |",
        f"| the correction | built from all the facts | {m[('correction', False)]:.2f} | {rss[('correction', False)]:,.0f} |",
        "",
        f"A new month's ingest is **{m[('month', False)] / m[('month', True)]:.1f}× faster** "
        f"({m[('month', False)]:.2f} → {m[('month', True)]:.2f} s), a correction's "
        f"**{m[('correction', False)] / m[('correction', True)]:.1f}×** ({m[('correction', False)]:.2f} → "
        f"{m[('correction', True)]:.2f} s): a correction still builds each rollup that does not hold the month from "
        f"all the facts ({', '.join(rebuilt) or 'none'}): replaced facts are not taken out of cells (from a bitmap of "
        "persons, a minimum or a largest value they cannot be). DuckDB read the rollups of each pair afterwards: all equal "
        f"({compared['month']:,} and {compared['correction']:,} cells; bitmaps compared through the distinct counts "
        "and cell keys stored beside them).",
        f"<!-- /refresh:{a.rows} -->",
    ])
    text = open(RESULTS, encoding="utf-8").read()
    marker = f"<!-- refresh:{a.rows} -->"
    if marker in text:
        text = re.sub(f"{marker}.*?<!-- /refresh:{a.rows} -->", lambda _: table_md, text, flags=re.S)
    elif "## A monthly ingest with rollups" in text:
        text = text.replace("## A monthly ingest with rollups\n", "## A monthly ingest with rollups\n\n" + table_md + "\n", 1)
    else:
        text = text.replace("## Reading allocation notices (PDF)",
                            "## A monthly ingest with rollups\n\n" + table_md + "\n\n## Reading allocation notices (PDF)", 1)
    open(RESULTS, "w", encoding="utf-8").write(text)
    print(table_md)


if __name__ == "__main__":
    main()
