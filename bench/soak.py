#!/usr/bin/env python3
"""Soak benchmark: steady submission load (wrk posting one-URL purges) with 100 simulated agents
answering all work, for a configurable time; prints accepted/s, latency and the engine's RSS at
start, middle and end. Not a test: prints figures. Goal: flat RSS, no errors.

Usage: bench/soak.py [--seconds N] [--agents N] [--connections N]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import lab  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="cdr-bench-soak-")
    engine = lab.Engine(os.path.join(work, "engine"), ["--log-level", "warn"]).start()
    sim = lab.start_simulated_agents(engine, args.agents)
    try:
        time.sleep(1)
        script = os.path.join(os.path.dirname(__file__), "purge.lua")
        wrk = subprocess.Popen(["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "--latency",
                                "-s", script, engine.url + "/v1/purge"], stdout=subprocess.PIPE, text=True)
        rss = [rss_kib(engine.proc.pid)]
        time.sleep(args.seconds / 2)
        rss.append(rss_kib(engine.proc.pid))
        out = wrk.communicate()[0]
        rss.append(rss_kib(engine.proc.pid))
        nodes = engine.nodes()
    finally:
        lab.stop_bench(engine, sim, work)
    rps = float(out.split("Requests/sec:")[1].split()[0])
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    done = sum(n["items_done"] for n in nodes.values())
    failed = sum(n["items_failed"] for n in nodes.values())
    print(f"soak: {args.seconds}s, wrk -c{args.connections} one-URL purges, {args.agents} simulated agents")
    print(f"accepted {rps:.0f}/s, p99 {p99}, non-2xx {non2xx.group(1) if non2xx else 0}; "
          f"results {done} succeeded, {failed} failed")
    print(f"engine RSS: start {rss[0] / 1024:.1f} MiB, middle {rss[1] / 1024:.1f} MiB, end {rss[2] / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
