#!/usr/bin/env python3
"""The warehouse on a disk and in a bucket of S3-compatible storage, in one run: the reference workload at `--rows`
rows ingested into both (the same generated files), the ten reference queries answered by both and compared, and
each timed warm through the library (`query_timing`), from the facts and through rollups.

The bucket is served on loopback by the tests' S3 server (tests/s3-server: s3s-fs, files on the same disk), so the
difference is what the S3 protocol costs kubus — requests, signing, HTTP — not what a network or a storage
cluster would add.

Usage: run.py KUBUS QUERY_TIMING S3_SERVER WORK_DIR [--rows N] [--reps R] [--results]
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "queries"))
from workload import prepare  # noqa: E402
from compare import KUBUS, kubus_rows, kubus_timings, ordered, write_section  # noqa: E402

KEY, SECRET = "bench", "bench-secret"


def start_s3(server, root):
    """The S3 server over `root` (bucket `bench`): (process, endpoint). It ends when its standard input closes."""
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, "bench"))
    p = subprocess.Popen([server, root, KEY, SECRET], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return p, p.stdout.readline().strip()


def in_bucket(root, endpoint):
    """Points the project at `root` to `s3://bench/warehouse` on the server at `endpoint`."""
    path = os.path.join(root, "kubus.toml")
    text = open(path).read()
    storage = (f'\n[storage]\nendpoint = "{endpoint}"\nregion = "eu-central-1"\nallow_http = true\n'
               f'access_key_id = "{KEY}"\nsecret_access_key = "{SECRET}"\n')
    open(path, "w").write('warehouse = "s3://bench/warehouse"\n' + text + storage)


def timed_ingest(kubus, root, files):
    """Wall time of ingesting the workload's two files (rollups built), in seconds."""
    started = time.perf_counter()
    for source, path in files:
        p = subprocess.run([kubus, "-C", root, "ingest", source, path], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"kubus ingest {source} into {root} failed:\n{p.stdout}\n{p.stderr}")
    return time.perf_counter() - started


def outside_read(endpoint, bucket_table, disk_table):
    """Facts of the bucket's table as Polars reads them (through delta-rs), against those of the disk's table."""
    import polars as pl
    options = {"aws_endpoint_url": endpoint, "aws_region": "eu-central-1", "aws_allow_http": "true",
               "aws_access_key_id": KEY, "aws_secret_access_key": SECRET}
    return pl.read_delta(bucket_table, storage_options=options).height, pl.read_delta(disk_table).height


def size_of(folder):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kubus")
    ap.add_argument("timing")
    ap.add_argument("server")
    ap.add_argument("work")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--results", action="store_true")
    a = ap.parse_args()
    kubus, timing, server = map(os.path.abspath, [a.kubus, a.timing, a.server])
    os.makedirs(a.work, exist_ok=True)
    disk, bucket = os.path.join(a.work, "storage-disk"), os.path.join(a.work, "storage-bucket")
    newcomers, offers = prepare(a.work, a.rows, disk)
    prepare(a.work, a.rows, bucket)
    s3, endpoint = start_s3(server, os.path.join(a.work, "storage-s3"))
    try:
        in_bucket(bucket, endpoint)
        files = [("abh", newcomers), ("offers", offers)]
        ingest = {"disk": timed_ingest(kubus, disk, files), "bucket": timed_ingest(kubus, bucket, files)}
        print(f"ingest: disk {ingest['disk']:.2f} s, bucket {ingest['bucket']:.2f} s", flush=True)
        different = [name for name, (q, fields) in KUBUS.items()
                     if ordered(kubus_rows(kubus, disk, name, q, fields)) != ordered(kubus_rows(kubus, bucket, name, q, fields))]
        print(f"answers: {len(KUBUS) - len(different)} of {len(KUBUS)} equal", flush=True)
        import polars
        outside = outside_read(endpoint, "s3://bench/warehouse/facts/newcomers", os.path.join(disk, "warehouse", "facts", "newcomers"))
        print(f"Polars {polars.__version__} reads {outside[0]:,} facts from the bucket, {outside[1]:,} from the disk", flush=True)
        times = {(place, mode): kubus_timings(timing, root, a.reps, mode)
                 for place, root in [("disk", disk), ("bucket", bucket)] for mode in ["never", "prefer"]}
    finally:
        s3.stdin.close()
        s3.wait()
    rows = []
    for name in KUBUS:
        cells = [f"{times[(p, m)][name]['median_ms']:.2f}" for m in ["never", "prefer"] for p in ["disk", "bucket"]]
        ratio = [times[("bucket", m)][name]["median_ms"] / times[("disk", m)][name]["median_ms"] for m in ["never", "prefer"]]
        rows.append(f"| {name} | {cells[0]} | {cells[1]} | {ratio[0]:.2f} | {cells[2]} | {cells[3]} | {ratio[1]:.2f} |")
        print(rows[-1], flush=True)
    stored = size_of(os.path.join(a.work, "storage-s3", "bench", "warehouse"))
    body = (f"<!-- storage:{a.rows} -->\n### {a.rows:,} rows\n\n"
            f"The reference workload in a warehouse on the disk and in a bucket served on loopback by the tests' S3 "
            f"server (s3s-fs, on the same disk), in one run of `benches/storage/run.sh {a.rows}`. Ingest of both files "
            f"with the rollups built: disk {ingest['disk']:.2f} s, bucket {ingest['bucket']:.2f} s "
            f"({ingest['bucket'] / ingest['disk']:.2f}×; {stored / 1e6:.0f} MB in the bucket). "
            f"{len(KUBUS) - len(different)} of {len(KUBUS)} answers equal{' (' + ', '.join(different) + ' differ)' if different else ''}; "
            f"Polars {polars.__version__} (through delta-rs) reads {outside[0]:,} facts of newcomers from the bucket, "
            f"{outside[1]:,} from the disk. "
            f"Median of {a.reps} warm runs through the library (`query_timing`), in ms:\n\n"
            "| query | facts, disk | facts, bucket | bucket ÷ disk | rollups, disk | rollups, bucket | bucket ÷ disk |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + f"\n<!-- /storage:{a.rows} -->")
    if a.results:
        write_section(f"storage:{a.rows}", body, "## The warehouse on a disk and in a bucket")
    sys.exit(1 if different or outside[0] != outside[1] else 0)


if __name__ == "__main__":
    main()
