#!/usr/bin/env python3
"""Offline-node benchmark: N simulated nodes online (bench/fanout.c) and one more registered node
whose agent has gone, while wrk posts one-URL purges (purge_each.lua) for S seconds to an engine
with its default durable settings. Every task then waits for the offline node until its deadline,
so what each costs the engine while it waits is what this measures: the engine's RSS every 5 s,
its growth per accepted task over the load, the same from the 5 s sample on (what each more task
adds once the engine's working set — the tasks of the last second or two in memory, records kept
for reuse, caches — has grown), and the tasks unfinished (a run in which any accepted task is no
longer waiting at the end exits 1 without a figure) — for this build and, with
--baseline-build, another one measured the same way right after it. Not a test.

Usage: bench/offline.py [--agents 1000] [--seconds 30] [--connections 32] [--baseline-build DIR]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import lab  # noqa: E402


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def running(engine):
    """Tasks not finished: every accepted one, while each waits for the offline node."""
    counts = engine.admin("GET", "/v1/stats")[2]["tasks_by_state"]
    return counts.get("queued", 0) + counts.get("running", 0)


def run_offline(agents, seconds, connections):
    """One engine, one node gone and agents online, seconds of load; returns a dict of figures."""
    work = tempfile.mkdtemp(prefix="cdr-bench-offline-")
    engine = lab.Engine(os.path.join(work, "engine"), ["--log-level", "warn"],
                        synchronous="full").start()
    sim = None
    try:
        gone = lab.Agent(work, "edge-offline", engine.agent_address,
                         f"http://127.0.0.1:{lab.free_port()}").start()
        engine.wait_online("edge-offline")
        gone.stop()
        sim = lab.start_simulated_agents(engine, agents)
        lab.wait_until(lambda: engine.admin("GET", "/v1/stats")[2]["fabric"]["nodes_online"] == agents,
                       timeout=120, interval=0.5, what="every simulated node online")
        samples = []  # (seconds since the load started, RSS bytes, tasks running)
        stop = threading.Event()
        started = time.monotonic()

        def sample():
            while True:
                samples.append((time.monotonic() - started, rss_bytes(engine.proc.pid), running(engine)))
                if stop.wait(5):
                    return
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        script = os.path.join(os.path.dirname(__file__), "purge_each.lua")
        wrk = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script,
                              engine.url + "/v1/purge"], capture_output=True, text=True,
                             timeout=seconds + 60)
        stop.set()
        sampler.join()
        samples.append((time.monotonic() - started, rss_bytes(engine.proc.pid), running(engine)))
    finally:
        lab.stop_bench(engine, sim, work)
    requests = int(re.search(r"(\d+) requests in", wrk.stdout).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk.stdout)
    accepted = requests - (int(non2xx.group(1)) if non2xx else 0)
    growth = samples[-1][1] - samples[0][1]
    later = samples[-1][2] - samples[1][2]  # tasks accepted after the 5 s sample
    return {"accepted": accepted, "refused": requests - accepted, "samples": samples,
            "rss_start": samples[0][1], "rss_end": samples[-1][1],
            "bytes_per_task": growth / accepted if accepted else 0.0,
            "marginal_bytes_per_task": (samples[-1][1] - samples[1][1]) / later if later > 0 else 0.0}


def describe(f):
    table = ", ".join(f"{t:.0f} s: {rss / 2**20:.0f} MiB / {n}" for t, rss, n in f["samples"])
    return (f"{f['accepted']} accepted, {f['refused']} refused; RSS {f['rss_start'] / 2**20:.0f} -> "
            f"{f['rss_end'] / 2**20:.0f} MiB: {f['bytes_per_task']:.0f} bytes per accepted task, "
            f"{f['marginal_bytes_per_task']:.0f} per task after the first 5 s "
            f"(RSS / tasks unfinished: {table})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--baseline-build", help="another build, measured the same way after it")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    lab.raise_open_files()
    if args.child:
        print(json.dumps(run_offline(args.agents, args.seconds, args.connections)))
        return
    build = os.environ.get("CDR_BUILD_DIR", os.path.join(lab.ROOT, "build"))
    print(f"offline: {args.agents} nodes online and one offline, wrk -c{args.connections} one-URL "
          f"purges for {args.seconds} s, default durable settings, {os.cpu_count()} cores")
    child_args = ["--agents", args.agents, "--seconds", args.seconds, "--connections", args.connections]
    f = lab.run_in_child(__file__, build, child_args, timeout=args.seconds + 600)
    print(f"this build: {describe(f)}")
    if args.baseline_build:
        b = lab.run_in_child(__file__, args.baseline_build, child_args, timeout=args.seconds + 600)
        print(f"baseline:   {describe(b)}")
        if f["bytes_per_task"] > 0 and f["marginal_bytes_per_task"] > 0:
            print(f"ratio: {b['bytes_per_task'] / f['bytes_per_task']:.1f}x fewer bytes per waiting task, "
                  f"{b['marginal_bytes_per_task'] / f['marginal_bytes_per_task']:.1f}x after the first 5 s")
    # Only a run whose accepted tasks all waited measured what a waiting task costs.
    if f["accepted"] == 0 or f["samples"][-1][2] < 0.99 * f["accepted"]:
        print("this build: not every accepted task was still waiting at the end: no figure")
        sys.exit(1)
    print(f"RESULT offline_bytes_per_task {f['bytes_per_task']:.0f}")
    print(f"RESULT offline_marginal_bytes_per_task {f['marginal_bytes_per_task']:.0f}")


if __name__ == "__main__":
    main()
