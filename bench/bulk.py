#!/usr/bin/env python3
"""Bulk benchmark: one purge of N URLs to M simulated agents (bench/fanout.c, one process, each
answering all work at once), i.e. N x M (item, node) results; prints results/s from the 202 to the
task being done, and the engine's RSS before the task, at its highest during it, and the growth
per (item, node). Not a test: prints figures. Goals: >= 2,000,000 results/s, <= 8 bytes of engine
memory per (item, node), at 100,000 URLs x 100 nodes.

The growth includes everything the task costs in memory: its targets, their per-node records and
queues, the parsed request and the store's page cache; the per-(item, node) part alone is the
2-bit record.

Usage: bench/bulk.py [--urls N] [--agents N] [--window N]
"""
import argparse
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import lab  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


class RssWatch(threading.Thread):
    """Samples a process's RSS every few milliseconds until stopped; keeps the highest."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.005)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=100000)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--window", type=int, default=1024, help="each simulated agent's window")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="cdr-bench-bulk-")
    urls = [f"https://bulk.example/static/{i:06d}/app.css" for i in range(args.urls)]
    body = json.dumps({"urls": urls})
    engine = lab.Engine(os.path.join(work, "engine"), [
        "--log-level", "warn", "--max-items", str(args.urls), "--max-body-bytes", str(len(body) + 4096),
        "--max-window", str(args.window)]).start()
    sim = lab.start_simulated_agents(engine, args.agents, "--window", str(args.window))
    try:
        lab.wait_until(lambda: engine.admin("GET", "/v1/stats")[2]["fabric"]["nodes_online"] == args.agents,
                       timeout=30, what="every node online")
        time.sleep(1)
        rss_before = rss_kib(engine.proc.pid)
        watch = RssWatch(engine.proc.pid)
        watch.start()
        status, _, answer = engine.request("POST", "/v1/purge", raw=body)
        accepted = time.monotonic()
        assert status == 202, answer
        task = engine.wait_task(answer["task_id"], timeout=600)
        elapsed = time.monotonic() - accepted
        watch.running = False
        watch.join()
        rss_after = rss_kib(engine.proc.pid)
    finally:
        lab.stop_bench(engine, sim, work)
    results = args.urls * args.agents
    counters = task["counters"]
    per_result = (watch.peak - rss_before) * 1024 / results
    print(f"bulk: one purge of {args.urls} URLs x {args.agents} simulated agents (window {args.window}) "
          f"= {results} (item, node) results, {os.cpu_count()} cores")
    print(f"task {task['status']}: {counters['succeeded']} of {counters['total']} succeeded, "
          f"{counters['failed']} failed")
    print(f"202 -> done in {elapsed:.2f} s: {results / elapsed:,.0f} results/s (goal >= 2,000,000/s)")
    print(f"engine RSS: {rss_before / 1024:.1f} MiB before, {watch.peak / 1024:.1f} MiB at most during, "
          f"{rss_after / 1024:.1f} MiB after; {per_result:.2f} B per (item, node) (goal <= 8 B)")
    print(f"RESULT bulk_results_per_s {results / elapsed:.0f}")
    print(f"RESULT bulk_bytes_per_result {per_result:.2f}")


if __name__ == "__main__":
    main()
