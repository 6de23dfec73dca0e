#!/usr/bin/env python3
"""kubus's cell key method against the ONS reference implementation (PyPI: cell-key-perturbation), cell for cell.

A copy of the sample project gets a random perturbation table in the ONS format (750 rows, 256 cell keys, noise
that depends on the key, values above 750 reusing rows 501-750 as the ONS package does: `wrap = 250`). The
microdata are the sample warehouse's facts, read as the statistics office may (`kubus sql`); each fact's record key
for the ONS package is its unit's record key as kubus defines it (the first 64 bits of the pseudonym) modulo 256.
For random questions (one to three of district, area, age band, sex, language level, month; a random cut of
months, sometimes of districts), the ONS package's `create_perturbed_table` counts and perturbs the microdata
(records: one row per fact; persons: one row per person and cell), and kubus answers the same question as a cube
query, from its rollups and from the facts. Every cell must agree; kubus publishes a cell perturbed to 0 as no row.

Usage: ons_cell_key.py KUBUS_BINARY WORK_DIR [--questions N]     Exits 1 on the first difference.
"""
import argparse
import contextlib
import csv
import io
import os
import random
import shutil
import subprocess
import sys

import pandas as pd
from cell_key_perturbation.create_perturbed_table import create_perturbed_table

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

# Cube drilldown -> column of the SQL view.
LEVELS = {
    "district": "district",
    "district.area": "district_area",
    "age.age_band": "age_age_band",
    "sex": "sex",
    "language_level": "language_level",
    "month": "month",
}


def run(kubus, root, *args):
    out = subprocess.run([kubus, "-C", root, *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"kubus {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


def make_ptable(rng):
    rows = []
    for pcv in range(1, 751):
        for ckey in range(256):
            noise = rng.choice([-2, -1, 0, 0, 1, 2])
            rows.append((pcv, ckey, max(noise, -pcv)))
    return pd.DataFrame(rows, columns=["pcv", "ckey", "pvalue"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kubus")
    parser.add_argument("work")
    parser.add_argument("--questions", type=int, default=60)
    args = parser.parse_args()
    rng = random.Random(20261204)

    root = os.path.join(args.work, "ons")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    for name in ["cube-schemas", "sample-data"]:
        shutil.copytree(os.path.join(REPO, name), os.path.join(root, name))
    os.makedirs(os.path.join(root, "ptables"))
    ptable = make_ptable(rng)
    ptable.to_csv(os.path.join(root, "ptables", "ons_random.csv"), index=False)
    config = open(os.path.join(REPO, "kubus.toml")).read()
    start = config.index("[disclosure.cell_key]")
    end = config.index("\n[", start + 1)
    config = config[:start] + '[disclosure.cell_key]\nptable = "ptables/ons_random.csv"\nwrap = 250\n' + config[end:]
    open(os.path.join(root, "kubus.toml"), "w").write(config)
    run(args.kubus, root, "demo")

    columns = ", ".join(f"{c} AS \"{c}\"" for c in sorted(set(LEVELS.values())))
    facts = pd.read_csv(io.StringIO(run(args.kubus, root, "--role", "statistik", "sql",
                                        f"SELECT person_key, {columns} FROM newcomers", "-f", "csv")), dtype=str)
    facts["record_key"] = facts["person_key"].map(lambda p: int(p[:16], 16) % 256)
    months = sorted(facts["month"].unique())
    districts = sorted(facts["district"].unique())

    compared = cells = with_totals = 0
    for q in range(args.questions):
        drilldowns = rng.sample(sorted(LEVELS), rng.randint(1, 3))
        if "district" in drilldowns and "district.area" in drilldowns:
            drilldowns.remove("district.area")
        measure = rng.choice(["persons", "records"])
        first = rng.randrange(len(months))
        last = min(len(months) - 1, first + rng.choice([0, 0, 2, 11, 23]))
        cuts = [f"month={months[first]}..{months[last]}"]
        data = facts[(facts["month"] >= months[first]) & (facts["month"] <= months[last])]
        if rng.random() < 0.3:
            chosen = rng.sample(districts, 3)
            cuts.append("district=" + ",".join(chosen))
            data = data[data["district"].isin(chosen)]
        tab_vars = [LEVELS[d] for d in drilldowns]
        # A third of the questions ask for totals too: each prefix of the drilldowns is a table of its own (the
        # grand total one cell, shown even where it is published as 0), keyed by its members and empty keys for
        # the drilldowns it rolls up.
        totals = bool(len(data)) and rng.random() < 0.35
        expected = {}
        for k in (range(len(tab_vars) + 1) if totals else [len(tab_vars)]):
            table = data.assign(all="all")
            table_vars = tab_vars[:k] or ["all"]
            if measure == "persons":
                table = table.drop_duplicates(["person_key", *table_vars])
            # The package prints its input checks (and warns when a sample of record keys misses the top key).
            with contextlib.redirect_stdout(io.StringIO()):
                ons = create_perturbed_table(data=table, ptable=ptable, geog=[], tab_vars=table_vars,
                                             record_key="record_key", use_existing_ons_id=False, threshold=0)
            for _, r in ons.iterrows():
                if int(r["count"]) != 0 or k == 0:
                    key = tuple(str(r[v]) for v in tab_vars[:k]) + ("",) * (len(tab_vars) - k)
                    expected[key] = int(r["count"])
        query = ["query", "newcomers", "-m", measure, *sum((["-d", d] for d in drilldowns), []), *sum((["-c", c] for c in cuts), []), "-f", "csv",
                 *(["--totals"] if totals else [])]
        for extra in ([], ["--no-rollups"]):
            rows = list(csv.reader(io.StringIO(run(args.kubus, root, *query, *extra))))
            header, rows = rows[0], rows[1:]
            keys = [i for i, h in enumerate(header) if f"{h}_label" in header]
            at = header.index(measure)
            got = {tuple(r[i] for i in keys): int(r[at]) for r in rows}
            if got != expected:
                diff = sorted(set(got.items()) ^ set(expected.items()))[:10]
                sys.exit(f"question {q} {query} {extra}: kubus and the ONS package differ, e.g. {diff}")
            compared += 1
            cells += len(got)
            with_totals += totals
    print(f"ONS cell-key-perturbation and kubus agree on {compared} answers ({cells} cells, {with_totals} answers "
          "with totals), rollups and facts")


if __name__ == "__main__":
    main()
