#!/usr/bin/env python3
"""The reference workload on one process and on a Ballista cluster on this machine, in one run per size: the ten
reference queries from the facts (no rollups: the work a cluster is for), timed warm through the library
(`query_timing`) in this process, and with every facts query sent to a `kubus scheduler` with two `kubus executor`s
of one task slot each (the machine's two cores), all on loopback over the same warehouse on the disk.

Bytes read: what the processes that read the facts read through system calls per run (`rchar` of /proc/PID/io:
files and sockets) — the one process; the two executors (shuffles between them included).

Then a projection to 2 billion facts on 8 executors, from the cluster's times at the sizes measured (see the
assumptions written with it).

Usage: run.py KUBUS QUERY_TIMING WORK_DIR --rows N [N ...] [--reps R] [--results]
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "queries"))
from workload import prepare  # noqa: E402
from compare import KUBUS, kubus_rows, ordered, write_section  # noqa: E402

TARGET_FACTS, TARGET_EXECUTORS, EXECUTORS = 2_000_000_000, 8, 2


def rchar(pid):
    with open(f"/proc/{pid}/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


class Cluster:
    """`kubus scheduler` and two `kubus executor`s (one task slot each) for the project at `root`."""

    def __init__(self, kubus, root):
        self.scheduler = subprocess.Popen([kubus, "-C", root, "scheduler", "--listen", "127.0.0.1:0"],
                                          stdout=subprocess.PIPE, text=True)
        line = self.scheduler.stdout.readline()
        self.address = next(w[len("ballista://"):] for w in line.split() if w.startswith("ballista://"))
        self.executors = [subprocess.Popen([kubus, "-C", root, "executor", "--scheduler", self.address, "--cores", "1"],
                                           stdout=subprocess.PIPE, text=True) for _ in range(EXECUTORS)]
        for e in self.executors:
            e.stdout.readline()
        time.sleep(3)  # registered with the scheduler (their first heartbeat)

    def read(self):
        return sum(rchar(e.pid) for e in self.executors)

    def stop(self):
        for p in self.executors + [self.scheduler]:
            p.terminate()
            p.wait()


def timed(timing, root, name, query, reps, engine=None):
    """One query's warm timing through the library: its JSON line (median_ms, read_bytes, …)."""
    spec = os.path.join(root, f"{name}.json")
    json.dump({name: query}, open(spec, "w"))
    args = [timing, root, spec, str(reps), "statistik", "never"] + ([f"ballista://{engine}"] if engine else [])
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"query_timing {name} failed:\n{p.stderr}")
    return json.loads(p.stdout.splitlines()[-1])


def measure(a, kubus, timing, rows):
    root = os.path.join(a.work, f"scale-{rows}")
    newcomers, offers = prepare(a.work, rows, root, with_rollups=False)
    started = time.perf_counter()
    for source, path in [("abh", newcomers), ("offers", offers)]:
        subprocess.run([kubus, "-C", root, "ingest", source, path], check=True, capture_output=True)
    print(f"{rows:,} rows ingested in {time.perf_counter() - started:.1f} s", flush=True)
    cluster = Cluster(kubus, root)
    try:
        engine = f"ballista://{cluster.address}"
        different = [name for name, (q, fields) in KUBUS.items()
                     if ordered(kubus_rows(kubus, root, name, q, fields))
                     != ordered(kubus_rows(kubus, root, name, q, fields, ["--engine", engine]))]
        print(f"answers on the cluster: {len(KUBUS) - len(different)} of {len(KUBUS)} equal", flush=True)
        result = {}
        for name, (query, _) in KUBUS.items():
            local = timed(timing, root, name, query, a.reps)
            before = cluster.read()
            remote = timed(timing, root, name, query, a.reps, cluster.address)
            executors = (cluster.read() - before) / (a.reps + 1)  # the warm-up run read too
            result[name] = (local, remote, executors)
            print(f"{rows:,} {name}: 1 process {local['median_ms']:.0f} ms, cluster {remote['median_ms']:.0f} ms",
                  flush=True)
    finally:
        cluster.stop()
    facts_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in
                      os.walk(os.path.join(root, "warehouse", "facts", "newcomers")) for f in fs if f.endswith(".parquet"))
    return result, different, facts_bytes


def projection(sizes, results, name):
    """The cluster's time at 2 billion facts on 8 executors, from a line through its times at the sizes measured:
    time = fixed + per_fact × facts / executors (fit on two executors)."""
    (n1, n2) = sizes[0], sizes[-1]
    t1, t2 = results[n1][name][1]["median_ms"], results[n2][name][1]["median_ms"]
    per_fact = (t2 - t1) / (n2 - n1) * EXECUTORS  # ms per fact on one executor
    fixed = max(0.0, t1 - per_fact * n1 / EXECUTORS)
    return fixed, fixed + per_fact * TARGET_FACTS / TARGET_EXECUTORS


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kubus")
    parser.add_argument("timing")
    parser.add_argument("work")
    parser.add_argument("--rows", type=int, nargs="+", default=[50_000_000, 200_000_000])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--results", action="store_true")
    a = parser.parse_args()
    kubus, timing = os.path.abspath(a.kubus), os.path.abspath(a.timing)
    sizes = sorted(a.rows)
    results, different, stored = {}, {}, {}
    for rows in sizes:
        results[rows], different[rows], stored[rows] = measure(a, kubus, timing, rows)
    mb = lambda b: f"{b / 1e6:,.0f}"  # noqa: E731
    body = [f"<!-- scale -->\nIn one run of `benches/scale/run.sh {' '.join(map(str, sizes))}` on this machine "
            f"({os.cpu_count()} cores): each reference query from the facts (no rollups), median of {a.reps} warm runs "
            f"through the library, in one process and sent to a Ballista cluster — `kubus scheduler` and {EXECUTORS} "
            f"`kubus executor`s with one task slot each, on loopback, over the same warehouse on the disk. "
            f"Bytes read: per run, through system calls (`rchar`: files and sockets), by the one process and by the "
            f"executors.\n"]
    for rows in sizes:
        equal = len(KUBUS) - len(different[rows])
        body.append(f"\n### {rows:,} facts\n\nFacts {mb(stored[rows])} MB of Parquet. {equal} of {len(KUBUS)} answers "
                    f"on the cluster equal this process's"
                    f"{' (' + ', '.join(different[rows]) + ' differ)' if different[rows] else ''}.\n\n"
                    "| query | 1 process ms | cluster ms | cluster ÷ 1 process | 1 process MB read | executors MB read |\n"
                    "|---|---|---|---|---|---|")
        for name in KUBUS:
            local, remote, executors = results[rows][name]
            body.append(f"| {name} | {local['median_ms']:.0f} | {remote['median_ms']:.0f} | "
                        f"{remote['median_ms'] / local['median_ms']:.2f} | {mb(local['read_bytes'])} | {mb(executors)} |")
    if len(sizes) >= 2:
        body.append(f"\n### Projection: {TARGET_FACTS:,} facts on {TARGET_EXECUTORS} executors\n\n"
                    f"A line through the cluster's times at {sizes[0]:,} and {sizes[-1]:,} facts, per query: a fixed "
                    f"part (planning, scheduling, the answer's few cells) and a part proportional to the facts each "
                    f"executor reads, which {TARGET_EXECUTORS} executors share instead of {EXECUTORS}. Assumed: "
                    f"executors of this machine's per-core speed with one task slot each, the facts spread evenly "
                    f"over their files, storage that serves {TARGET_EXECUTORS} readers as fast as this disk serves "
                    f"{EXECUTORS} (in a bucket, see the storage section's bucket ÷ disk), shuffles of cells (not facts) "
                    f"only, but for a distinct count, whose cells carry bitmaps of persons (q03's executors read 4× what "
                    f"the process reads, the shuffle's bytes through sockets; over a network rather than loopback they "
                    f"cost more). Where the line through two sizes falls below zero at none, the fixed part is taken as "
                    f"0 (the time grew faster than the facts).\n\n"
                    "| query | fixed ms | projected s |\n|---|---|---|")
        for name in KUBUS:
            fixed, projected = projection(sizes, results, name)
            body.append(f"| {name} | {fixed:.0f} | {projected / 1000:.1f} |")
    body.append("<!-- /scale -->")
    if a.results:
        write_section("scale", "\n".join(body), "## Beyond one machine: a Ballista cluster")
    print("\n".join(body))
    sys.exit(1 if any(different.values()) else 0)


if __name__ == "__main__":
    main()
