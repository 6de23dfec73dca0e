"""`kubus serve` under load: the reference questions over HTTP at ROWS generated facts (10,000,000 by default).

Generates the reference workload (`../workload.py`) into a scratch project with the rollups the questions need,
ingests it with the release build, starts `kubus serve` on it, and asks the ten reference questions of
`../queries/compare.py` as GET URLs (the CLI's syntax, as a bookmarked URL or Excel asks) with the load generator
oha: 32 concurrent clients for 60 s over all questions at random, then per question 32 clients for 10 s and one
client for 5 s (latency without queueing: with 32 clients always waiting, latency is 32 ÷ throughput). Reports
queries per second, p50/p99 latency, the status codes, and the server's peak RSS; then a soak of 10 minutes under
the same load with its RSS before and after — all with every answer computed (`answer_cache_mb = 0`); then the
mixed load and each question again with answers kept (the default). Writes the tables into `../RESULTS.md` with
`--results`.

Usage: benches/server/run.sh [ROWS]   (builds the release binary and oha first)
       python run.py KUBUS OHA WORK [--rows N] [--seconds 60] [--soak 600] [--results]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "queries"))
from workload import bench_user, ingest, prepare, serve, url_of  # noqa: E402
from compare import KUBUS, write_section  # noqa: E402

CLIENTS = 32
# Offered loads (queries per second over the 32 clients) at which the latency of computed answers is measured.
RATES = [1000, 1500, 2000, 2500]


def memory_kb(pid, field):
    """`VmRSS` (now) or `VmHWM` (peak) of a process, in kB."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def oha(binary, token, seconds, urls_file=None, url=None, clients=CLIENTS, rate=None):
    """One load run (requests in flight at the end are waited for, not counted as errors); oha's JSON summary. With
    a `rate`, the clients send that many queries per second in all, and a request's latency counts from when it was
    due, not from when a busy client got to send it (oha's correction for coordinated omission)."""
    args = [binary, "-c", str(clients), "-z", f"{seconds}s", "--wait-ongoing-requests-after-deadline", "--no-tui",
            "--output-format", "json", "-H", f"Authorization: Bearer {token}"]
    if rate:
        args += ["-q", str(rate), "--latency-correction"]
    args += ["--urls-from-file", urls_file] if urls_file else [url]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"oha failed: {p.stderr}")
    return json.loads(p.stdout)


def summary(result):
    """Queries per second, p50 and p99 in ms, and the status codes of one oha run."""
    percentiles = result["latencyPercentiles"]
    codes = result.get("statusCodeDistribution", {})
    return {
        "qps": result["summary"]["requestsPerSec"],
        "p50": percentiles["p50"] * 1000,
        "p99": percentiles["p99"] * 1000,
        "codes": ", ".join(f"{c}×{n:,}" for c, n in sorted(codes.items())),
        "errors": sum(result.get("errorDistribution", {}).values()),
    }


def measure(a, token, urls, urls_file):
    """The mixed load, then each question with 32 clients and with one: their summaries."""
    print(f"all questions at random: {CLIENTS} clients, {a.seconds} s", flush=True)
    mixed = summary(oha(a.oha, token, a.seconds, urls_file=urls_file))
    print(mixed, flush=True)
    single, alone = {}, {}
    for name, url in urls.items():
        single[name] = summary(oha(a.oha, token, a.per_question, url=url))
        alone[name] = summary(oha(a.oha, token, 5, url=url, clients=1))
        print(name, single[name], alone[name], flush=True)
    return mixed, single, alone


def table(a, reads, mixed, single, alone):
    """The Markdown table of one configuration's runs."""
    lines = [
        f"| load | {CLIENTS} clients: queries/s | p50 ms | p99 ms | answers | 1 client: p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
        f"| all ten at random, {a.seconds} s | {mixed['qps']:,.0f} | {mixed['p50']:.2f} | {mixed['p99']:.2f} | {mixed['codes']} | | |",
    ]
    for name, s in single.items():
        one = alone[name]
        lines.append(f"| {name} ({reads[name]}), {a.per_question} s | {s['qps']:,.0f} | {s['p50']:.2f} | {s['p99']:.2f} "
                     f"| {s['codes']} | {one['p50']:.2f} | {one['p99']:.2f} |")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kubus")
    ap.add_argument("oha")
    ap.add_argument("work")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--per-question", type=int, default=10)
    ap.add_argument("--soak", type=int, default=600)
    ap.add_argument("--results", action="store_true")
    a = ap.parse_args()
    kubus = os.path.abspath(a.kubus)
    os.makedirs(a.work, exist_ok=True)
    root = os.path.join(a.work, "server-project")
    newcomers_csv, offers_csv = prepare(a.work, a.rows, root)
    ingest(kubus, root, newcomers_csv, offers_csv)
    # First every answer computed (no kept answers), then with the default 64 MB of kept answers.
    token = bench_user(kubus, root, "\n[server]\nmax_queries = 4\nqueue = 256\nanswer_cache_mb = 0\n")
    config = os.path.join(root, "kubus.toml")
    server, base = serve(kubus, root, os.path.join(a.work, "serve.log"))
    try:
        urls = {name: url_of(base, q) for name, (q, _) in KUBUS.items()}
        reads = {}
        for name, url in urls.items():
            request = urllib.request.Request(url.replace("/query?", "/explain?"),
                                             headers={"Authorization": f"Bearer {token}"})
            reads[name] = urllib.request.urlopen(request).read().decode().splitlines()[0]
            print(f"{name:32} {reads[name]}", flush=True)
        urls_file = os.path.join(a.work, "urls.txt")
        open(urls_file, "w").write("\n".join(urls.values()) + "\n")
        rss_start = memory_kb(server.pid, "VmRSS")
        computed = measure(a, token, urls, urls_file)
        offered = {}
        for rate in RATES:
            offered[rate] = summary(oha(a.oha, token, a.seconds // 2, urls_file=urls_file, rate=rate))
            print(f"{rate} queries/s offered", offered[rate], flush=True)
        peak = memory_kb(server.pid, "VmHWM")

        rss_before = memory_kb(server.pid, "VmRSS")
        print(f"soak: {CLIENTS} clients, {a.soak} s", flush=True)
        soak = summary(oha(a.oha, token, a.soak, urls_file=urls_file))
        rss_after = memory_kb(server.pid, "VmRSS")
        print(soak, rss_before, rss_after, flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    text = open(config).read().replace("answer_cache_mb = 0", "answer_cache_mb = 64")
    open(config, "w").write(text)
    server, kept_base = serve(kubus, root, os.path.join(a.work, "serve-kept.log"))
    try:
        urls = {name: url.replace(base, kept_base) for name, url in urls.items()}
        open(urls_file, "w").write("\n".join(urls.values()) + "\n")
        kept = measure(a, token, urls, urls_file)
        kept_peak = memory_kb(server.pid, "VmHWM")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    growth = (rss_after - rss_before) / rss_before * 100
    oha_version = subprocess.run([a.oha, "--version"], capture_output=True, text=True).stdout.strip()
    lines = [
        f"<!-- server:{a.rows} -->",
        f"### {a.rows:,} facts",
        "",
        f"`kubus serve` (release) on this machine ({os.cpu_count()} cores), `[server] max_queries = 4`, asked by "
        f"{oha_version} on the same machine with {CLIENTS} concurrent clients over HTTP/1.1 keep-alive, as the "
        "statistics office (bearer token; every request authenticated and appended to the audit log). The questions "
        "are the ten reference queries as GET URLs in the CLI's syntax. Produced by `benches/server/run.sh "
        f"{a.rows}`; rerun it to replace this section.",
        "",
        "**Every answer computed** (`answer_cache_mb = 0`): each request plans nothing anew (prepared plans) but "
        "reads its rollup, protects and writes the answer. With 32 clients always waiting, latency is 32 ÷ "
        "throughput.",
        "",
        *table(a, reads, *computed),
        "",
        f"The same mixed load offered at a steady rate ({CLIENTS} clients sending that many queries per second in "
        f"all, {a.seconds // 2} s each; a request's latency counts from when it was due, so a queue shows): the "
        "latency a user sees while the server is busy but not saturated.",
        "",
        "| offered queries/s | answered queries/s | p50 ms | p99 ms | answers |",
        "|---|---|---|---|---|",
        *[f"| {rate:,} | {o['qps']:,.0f} | {o['p50']:.2f} | {o['p99']:.2f} | {o['codes']} |" for rate, o in offered.items()],
        "",
        f"Server RSS: {rss_start / 1024:,.0f} MB after start-up and one answer per question, peak "
        f"{peak / 1024:,.0f} MB under load. Soak of {a.soak} s under the mixed load ({soak['qps']:,.0f} queries/s, "
        f"p99 {soak['p99']:.2f} ms, {soak['codes']}): RSS {rss_before / 1024:,.0f} MB before, "
        f"{rss_after / 1024:,.0f} MB after ({growth:+.1f} %).",
        "",
        "**Answers kept** (`answer_cache_mb = 64`, the default): the same question at the same warehouse versions "
        "is given the answer computed at its first asking (still authenticated, and recorded in the audit log as "
        "asked). Ten questions asked again and again are the best case: a dashboard many open, Excel refreshing.",
        "",
        *table(a, reads, *kept),
        "",
        f"Server peak RSS with answers kept: {kept_peak / 1024:,.0f} MB.",
        f"<!-- /server:{a.rows} -->",
    ]
    print("\n".join(lines))
    if a.results:
        write_section(f"server:{a.rows}", "\n".join(lines), "## kubus serve under load")


if __name__ == "__main__":
    main()
