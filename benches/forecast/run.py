#!/usr/bin/env python3
"""Back-test of the allocations forecast: the last six months of the sample's allocation notices are held out, the
forecast measure `persons_forecast` is asked over the twelve months before them, and its six months are compared
with the generator's own counts (sample-data/expected/zuweisungen_by_month_sex_region.csv, never kubus's).
Twice: from the exact series (the statistics office) and from the published one (the cell key method's noise, as
anyone else sees it). Against the naive forecast (the last observed month carried on). Writes the table into
benches/RESULTS.md with --results.

Usage: run.py KUBUS WORK_DIR [--results]
"""
import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(HERE, "..", "queries"))
from compare import write_section  # noqa: E402

BASIS = "2024-01..2024-12"
HELD_OUT = ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05", "2025-06"]


def actual_counts():
    counts = defaultdict(int)
    with open(os.path.join(REPO, "sample-data", "expected", "zuweisungen_by_month_sex_region.csv")) as f:
        for row in csv.DictReader(f):
            counts[row["month"]] += int(row["persons"])
    return counts


def forecast(kubus, root, role):
    args = [kubus, "-C", root] + (["--role", role] if role else []) + [
        "query", "zuweisungen", "-m", "persons", "-m", "persons_forecast", "-d", "month", "-c", f"month={BASIS}", "-f", "json"]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"kubus query failed: {p.stderr}")
    rows = json.loads(p.stdout)
    observed = [r for r in rows if r["_forecast"] is None]
    ahead = {r["month"]: r for r in rows if r["_forecast"] == "P"}
    return observed, ahead


def scores(ahead, observed, actual):
    errors, naive, covered = [], [], 0
    last = observed[-1]["persons"]
    for month in HELD_OUT:
        row, truth = ahead[month], actual[month]
        errors.append(row["persons_forecast"] - truth)
        naive.append(last - truth)
        covered += row["persons_forecast_lower"] <= truth <= row["persons_forecast_upper"]
    mae = sum(abs(e) for e in errors) / len(errors)
    return {
        "mae": mae,
        "rmse": math.sqrt(sum(e * e for e in errors) / len(errors)),
        "mape": 100 * sum(abs(e) / actual[m] for e, m in zip(errors, HELD_OUT)) / len(errors),
        "naive_mae": sum(abs(e) for e in naive) / len(naive),
        "covered": covered,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kubus")
    ap.add_argument("work")
    ap.add_argument("--results", action="store_true")
    a = ap.parse_args()
    kubus = os.path.abspath(a.kubus)
    root = os.path.join(os.path.abspath(a.work), "forecast-project")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    for item in ["kubus.toml", "cube-schemas", "sample-data", "ptables", "geo"]:
        source = os.path.join(REPO, item)
        (shutil.copytree if os.path.isdir(source) else shutil.copy)(source, os.path.join(root, item))
    subprocess.run([kubus, "-C", root, "demo"], check=True, capture_output=True)
    actual = actual_counts()
    lines = ["| series the forecast is made from | month | actual | forecast | 95 % interval |",
             "|---|---|---|---|---|"]
    summary = []
    for title, role in [("exact (statistics office)", "statistik"), ("published (cell key method)", None)]:
        observed, ahead = forecast(kubus, root, role)
        assert [r["month"] for r in observed][-1] == "2024-12", observed
        for month in HELD_OUT:
            r = ahead[month]
            lines.append(f"| {title} | {month} | {actual[month]} | {r['persons_forecast']} | "
                         f"{r['persons_forecast_lower']} – {r['persons_forecast_upper']} |")
        s = scores(ahead, observed, actual)
        summary.append(f"From the {title.split(' (')[0]} series: mean absolute error {s['mae']:.1f} persons a month "
                       f"(RMSE {s['rmse']:.1f}, MAPE {s['mape']:.0f} %; the last month carried on: {s['naive_mae']:.1f}), "
                       f"{s['covered']} of 6 actual months inside the 95 % interval.")
        print(summary[-1], flush=True)
    print("\n".join(lines))
    if a.results:
        body = "\n".join([
            "<!-- forecast -->",
            f"The allocations forecast (`zuweisungen.persons_forecast`: augurs' AutoETS over additive-error models, from the published monthly persons, "
            f"95 % prediction interval) back-tested on the sample's allocation notices: fitted on {BASIS}, its six months "
            f"compared with the generator's own counts of 2025-01 to 2025-06. Produced by `benches/forecast/run.sh`.",
            "",
            *lines,
            "",
            *summary,
            "<!-- /forecast -->",
        ])
        write_section("forecast", body, "## Forecast back-test")


if __name__ == "__main__":
    main()
