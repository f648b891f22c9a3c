#!/usr/bin/env python3
"""Item pages benchmark: one finished purge of 1,000 URLs on N nodes (bench/fanout.c's simulated
agents), its items read a page at a time (limit=1000). Prints what one page costs alone (median
latency, bytes, (item, node) results), then a quiet client's one-task GET p50/p99 while four
clients loop those pages — for this build and, with --baseline-build, another one measured the
same way right after it. An unsigned (--dev) engine: no tenant's read bound applies, so this is
the cost of the pages themselves. Not a test.

Usage: bench/item_pages.py [--agents 200] [--seconds 10] [--baseline-build DIR]
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import lab  # noqa: E402

LOOPING_CLIENTS = 4


def timed_get(conn, path):
    started = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, (path, response.status)
    return time.perf_counter() - started, body


def run_pages(agents, seconds):
    """One engine with a finished task on agents nodes; returns a dict of figures."""
    work = tempfile.mkdtemp(prefix="cdr-bench-pages-")
    engine = lab.Engine(os.path.join(work, "engine"), ["--log-level", "warn"]).start()
    sim = None
    try:
        sim = lab.start_simulated_agents(engine, agents)
        task_id = engine.purge([f"https://pages.example/{i}.css" for i in range(1000)])[2]["task_id"]
        engine.wait_task(task_id, timeout=300)
        page = f"/v1/tasks/{task_id}/items?limit=1000"
        conn = http.client.HTTPConnection("127.0.0.1", engine.port, timeout=60)
        alone = []
        for _ in range(30):
            elapsed, body = timed_get(conn, page)
            alone.append(elapsed)
        stop = threading.Event()
        pages, errors = [0], []

        def loop():
            own = http.client.HTTPConnection("127.0.0.1", engine.port, timeout=60)
            try:
                while not stop.is_set():
                    timed_get(own, page)
                    pages[0] += 1
            except Exception as error:  # a loop that stopped leaves the quiet client less load
                errors.append(repr(error))

        looping = [threading.Thread(target=loop) for _ in range(LOOPING_CLIENTS)]
        for thread in looping:
            thread.start()
        quiet = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            quiet.append(timed_get(conn, f"/v1/tasks/{task_id}")[0])
            time.sleep(0.005)
        stop.set()
        for thread in looping:
            thread.join()
        if errors:
            raise RuntimeError(f"a client looping pages failed: {errors[0]}")
    finally:
        lab.stop_bench(engine, sim, work)
    quiet.sort()
    return {"page_ms": 1000 * statistics.median(alone), "page_bytes": len(body),
            "page_results": body.count(b'{"node":'), "pages_per_s": pages[0] / seconds,
            "quiet_p50_ms": 1000 * quiet[len(quiet) // 2],
            "quiet_p99_ms": 1000 * quiet[int(len(quiet) * 0.99)]}


def describe(f):
    return (f"a page {f['page_ms']:.2f} ms alone ({f['page_results']} results, "
            f"{f['page_bytes'] / 1024:.0f} KiB); beside {LOOPING_CLIENTS} clients looping pages "
            f"({f['pages_per_s']:.0f} pages/s) a one-task GET p50 {f['quiet_p50_ms']:.2f} ms, "
            f"p99 {f['quiet_p99_ms']:.2f} ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--baseline-build", help="another build, measured the same way after it")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    lab.raise_open_files()
    if args.child:
        print(json.dumps(run_pages(args.agents, args.seconds)))
        return
    build = os.environ.get("CDR_BUILD_DIR", os.path.join(lab.ROOT, "build"))
    print(f"item pages: a finished purge of 1,000 URLs on {args.agents} nodes, pages of limit=1000, "
          f"{os.cpu_count()} cores")
    child_args = ["--agents", args.agents, "--seconds", args.seconds]
    f = lab.run_in_child(__file__, build, child_args, timeout=900)
    print(f"this build: {describe(f)}")
    if args.baseline_build:
        b = lab.run_in_child(__file__, args.baseline_build, child_args, timeout=900)
        print(f"baseline:   {describe(b)}")
        print(f"ratios: page {b['page_ms'] / f['page_ms']:.1f}x faster per page, "
              f"{(b['page_ms'] / b['page_results']) / (f['page_ms'] / f['page_results']):.1f}x "
              f"per result; quiet p99 {b['quiet_p99_ms'] / f['quiet_p99_ms']:.1f}x lower")
    for key in ("page_ms", "quiet_p50_ms", "quiet_p99_ms"):
        print(f"RESULT item_pages_{key} {f[key]:.2f}")


if __name__ == "__main__":
    main()
