#!/usr/bin/env python3
"""Read isolation benchmark: a store holding many finished tasks of one tenant (default 224,000,
a few of them failed), and two clients looping the reads that used to scan them all — the
tenant's task list filtered by state, and /v1/stats — while a third, quiet client reads one task
at a time. Prints each read's latency alone and the quiet client's p50/p99 beside it, for the
build under test and, with --baseline-build, for another build on an identical store in the same
run (ratios are what to compare: this machine is shared and noisy). Not a test: it prints figures.

Usage: bench/reads.py [--tasks N] [--seconds N] [--build DIR] [--baseline-build DIR]
"""
import argparse
import http.client
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from api_ingest import free_port, wait_http  # noqa: E402

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def task_id(ms, rng):
    """A task id of the engine's layout (48 bits of ms, 80 random bits, Crockford base32)."""
    value = (ms << 80) | rng.getrandbits(80)
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


class Engine:
    def __init__(self, build, data_dir):
        self.binary = os.path.join(build, "cdnrefresh-engine")
        self.data_dir = data_dir
        self.port = free_port()
        self.proc = None

    def start(self):
        log = open(os.path.join(self.data_dir, "engine.log"), "a")
        self.proc = subprocess.Popen([self.binary, "--dev", "--data-dir", self.data_dir,
                                      "--api-listen", f"127.0.0.1:{self.port}",
                                      "--agent-listen", f"127.0.0.1:{free_port()}",
                                      "--synchronous", "normal"], stdout=log, stderr=log)
        wait_http(f"http://127.0.0.1:{self.port}/healthz", self.proc, "engine")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)

    def get(self, path, conn=None):
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        start = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - start
        if own:
            conn.close()
        return response.status, body, elapsed


def populate(engine, tasks):
    """One real task through the API, then tasks copies of its row written straight into the
    store (ids spread over the last 20 days, one in 2,000 failed), so the store is what months
    of traffic leave."""
    engine.start()
    conn = http.client.HTTPConnection("127.0.0.1", engine.port, timeout=10)
    conn.request("POST", "/v1/purge", json.dumps({"urls": ["https://example.com/a"]}),
                 {"Content-Type": "application/json"})
    assert conn.getresponse().status == 202
    engine.stop()
    db = sqlite3.connect(os.path.join(engine.data_dir, "cdnrefresh.db"))
    columns = [row[1] for row in db.execute("PRAGMA table_info(tasks)")]
    template = dict(zip(columns, db.execute("SELECT * FROM tasks").fetchone()))
    rng = random.Random(7)
    now = int(time.time() * 1000)
    rows = []
    for i in range(tasks):
        row = dict(template)
        row["id"] = task_id(now - 20 * 86400000 + i * (20 * 86400000 // tasks), rng)
        row["state"] = "failed" if i % 2000 == 0 else "done"
        rows.append(tuple(row[c] for c in columns))
    db.executemany(f"INSERT INTO tasks ({','.join(columns)}) VALUES ({','.join('?' * len(columns))})",
                   rows)
    db.commit()
    db.close()
    return rows[len(rows) // 2][0]


def measure(build, tasks, seconds):
    data_dir = tempfile.mkdtemp(prefix="cdr-bench-reads-")
    try:
        engine = Engine(build, data_dir)
        quiet_id = populate(engine, tasks)
        engine.start()
        scan = "/v1/tasks?state=failed&limit=100"
        alone = {}
        for name, path in (("state list", scan), ("stats", "/v1/stats")):
            times = []
            for _ in range(20):
                status, _, elapsed = engine.get(path)
                assert status == 200, (path, status)
                times.append(elapsed)
            alone[name] = statistics.median(times)
        stop = threading.Event()

        def loop(path):
            conn = http.client.HTTPConnection("127.0.0.1", engine.port, timeout=60)
            while not stop.is_set():
                engine.get(path, conn)

        hostile = [threading.Thread(target=loop, args=(p,)) for p in (scan, "/v1/stats")]
        for t in hostile:
            t.start()
        quiet = []
        conn = http.client.HTTPConnection("127.0.0.1", engine.port, timeout=60)
        end = time.time() + seconds
        while time.time() < end:
            status, _, elapsed = engine.get(f"/v1/tasks/{quiet_id}", conn)
            assert status == 200, status
            quiet.append(elapsed)
            time.sleep(0.005)
        stop.set()
        for t in hostile:
            t.join()
        engine.stop()
        quiet.sort()
        return alone, quiet[len(quiet) // 2], quiet[int(len(quiet) * 0.99)]
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=224000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--build", default=os.environ.get("CDR_BUILD_DIR", os.path.join(ROOT, "build")))
    parser.add_argument("--baseline-build")
    args = parser.parse_args()
    builds = [("this build", args.build)] + ([("baseline", args.baseline_build)] if args.baseline_build else [])
    print(f"reads: {args.tasks} finished tasks of one tenant, two clients looping the state-filtered "
          f"list and /v1/stats, one quiet client reading a task")
    print(f"{'build':<12} {'state list alone':>17} {'stats alone':>12} {'quiet p50':>10} {'quiet p99':>10}")
    for name, build in builds:
        alone, p50, p99 = measure(build, args.tasks, args.seconds)
        print(f"{name:<12} {alone['state list'] * 1000:>14.2f} ms {alone['stats'] * 1000:>9.2f} ms "
              f"{p50 * 1000:>7.2f} ms {p99 * 1000:>7.2f} ms")


if __name__ == "__main__":
    main()
