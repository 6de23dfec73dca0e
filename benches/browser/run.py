#!/usr/bin/env python3
"""The explorer's click-to-answer time at ROWS facts (issue 19's goal: a median of at most 100 ms for questions a
rollup answers). The reference workload (benches/workload.py) in a fresh project, `kubus serve` (release) over it,
and benches/browser/click.mjs in Debian's headless Chromium: per reference question that fits the explorer's two
axes, open its view, then click "swap rows and columns" ten times; each click's time from the click to the drawn
table and chart comes from the page's Performance API. Writes its section into benches/RESULTS.md with --results.

Usage: run.py KUBUS WORK [--rows N] [--clicks N] [--results]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "queries"))
from workload import bench_user, ingest, prepare, serve, url_of  # noqa: E402
from compare import KUBUS, write_section  # noqa: E402


def view_of(query):
    """The explorer's URL for a reference query: its first drilldown as rows, the second as columns."""
    params = [("cube", query["cube"])] + [("m", m) for m in query["measures"]]
    drilldowns = query.get("drilldowns", [])
    if drilldowns:
        params.append(("rows", drilldowns[0]))
    if len(drilldowns) > 1:
        params.append(("cols", drilldowns[1]))
    params += [("c", c) for c in query.get("cuts", [])]
    if query.get("totals"):
        params.append(("totals", "1"))
    return "?" + urllib.parse.urlencode(params)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kubus")
    ap.add_argument("work")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--clicks", type=int, default=10)
    ap.add_argument("--results", action="store_true")
    a = ap.parse_args()
    kubus = os.path.abspath(a.kubus)
    root = os.path.join(a.work, "browser-project")
    newcomers_csv, offers_csv = prepare(a.work, a.rows, root)
    ingest(kubus, root, newcomers_csv, offers_csv)
    token = bench_user(kubus, root)
    # The explorer has two axes: the questions with more drilldowns, or an order and limit, are left out.
    fitting = {n: q for n, (q, _) in KUBUS.items() if len(q.get("drilldowns", [])) <= 2 and "limit" not in q}
    questions = os.path.join(a.work, "browser-questions.json")
    json.dump({n: view_of(q) for n, q in fitting.items()}, open(questions, "w"))
    server, base = serve(kubus, root, os.path.join(a.work, "browser-serve.log"))
    try:
        reads = {}
        for name, q in fitting.items():
            url = url_of(base, q).replace("/query?", "/explain?")
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
            reads[name] = urllib.request.urlopen(request).read().decode().splitlines()[0]
        out = subprocess.run(["node", os.path.join(HERE, "click.mjs"), base, f"bench:{token}", questions, str(a.clicks)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"click.mjs failed:\n{out.stdout}\n{out.stderr}")
    finally:
        server.terminate()
        server.wait()
    runs = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    lines = ["| question | read | clicks | median ms | p90 ms | max ms |", "|---|---|---|---|---|---|"]
    every = []
    for r in runs:
        ms = sorted(r["ms"])
        every += ms
        p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
        lines.append(f"| {r['question']} | {reads[r['question']]} | {len(ms)} | {statistics.median(ms):.1f} | {p90:.1f} | {ms[-1]:.1f} |")
        print(lines[-1], flush=True)
    summary = (f"All {len(every)} clicks: median {statistics.median(every):.1f} ms, max {max(every):.1f} ms "
               f"(goal: median ≤ 100 ms).")
    print(summary)
    if a.results:
        body = "\n".join([
            f"<!-- browser:{a.rows} -->",
            f"### {a.rows:,} facts",
            "",
            "The explorer in Debian's headless Chromium (playwright-core) against `kubus serve` (release) on this "
            f"machine ({os.cpu_count()} cores), as the statistics office. Per reference question that fits the "
            f"explorer's two axes, its view is opened, then \"Zeilen und Spalten tauschen\" clicked {a.clicks} times; "
            "each click asks the server anew and redraws the table and chart. Time from the click to the drawn answer "
            "by the page's Performance API (`kubus-asked` → `kubus-answer`). Produced by "
            f"`benches/browser/run.sh {a.rows}`.",
            "",
            *lines,
            "",
            summary,
            f"<!-- /browser:{a.rows} -->",
        ])
        write_section(f"browser:{a.rows}", body, "## The explorer in the browser")


if __name__ == "__main__":
    main()
