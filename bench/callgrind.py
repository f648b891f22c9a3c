#!/usr/bin/env python3
"""Instruction counts of the engine (valgrind --tool=callgrind, every thread), steadier than
wall-clock figures: instructions per accepted one-URL purge while wrk keeps 64 connections busy
(counters zeroed before, dumped after, so start-up is left out), and per (item, node) result of a
task sent to simulated agents (bench/fanout.c): the difference of two tasks of different sizes,
divided by the difference in results, so per-task costs and idle timers cancel out. Not a test:
prints figures, for docs/PERFORMANCE.md.

Usage: bench/callgrind.py [--seconds N] [--urls N] [--agents N]
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import lab  # noqa: E402


def instructions(engine, work, label):
    """Dumps the engine's counters since the last zeroing; returns the instructions they hold."""
    before = set(glob.glob(os.path.join(work, "callgrind.out.*")))
    subprocess.run(["callgrind_control", "--dump=" + label, str(engine.proc.pid)], check=True,
                   capture_output=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for path in set(glob.glob(os.path.join(work, "callgrind.out.*"))) - before:
            with open(path) as f:
                match = re.search(r"^(?:summary|totals):\s+(\d+)", f.read(), re.M)
            if match:
                return int(match.group(1))
        time.sleep(0.2)
    sys.exit(f"callgrind: no dump for {label}")


def zero(engine):
    subprocess.run(["callgrind_control", "--zero", str(engine.proc.pid)], check=True, capture_output=True)


def per_task(engine, work, seconds):
    """Instructions per accepted purge under wrk (group commits as under load)."""
    zero(engine)
    out = subprocess.run(["wrk", "-t1", "-c64", f"-d{seconds}s", "-s",
                          os.path.join(os.path.dirname(__file__), "purge.lua"), engine.url + "/v1/purge"],
                         capture_output=True, text=True, check=True).stdout
    accepted = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    accepted -= int(non2xx.group(1)) if non2xx else 0
    time.sleep(1)  # the fabric plans what the writer committed
    return instructions(engine, work, "tasks") / accepted, accepted


def per_result(engine, work, small, large, agents):
    counts = []
    for n in (small, large):
        zero(engine)
        urls = [f"https://cg.example/bulk/{n}/{i}.css" for i in range(n)]
        status, _, body = engine.request("POST", "/v1/purge", {"urls": urls})
        assert status == 202, body
        task = engine.wait_task(body["task_id"], timeout=300)
        assert task["counters"]["succeeded"] == n * agents, task
        time.sleep(1)  # the last progress save
        counts.append(instructions(engine, work, f"results-{n}"))
    return (counts[1] - counts[0]) / ((large - small) * agents)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="of wrk posting purges")
    parser.add_argument("--urls", type=int, default=5000, help="URLs of the larger task")
    parser.add_argument("--agents", type=int, default=10)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="cdr-bench-cg-")
    engine = lab.Engine(os.path.join(work, "engine"), ["--log-level", "warn", "--max-items", str(args.urls),
                                                       "--synchronous", "full"])
    engine.wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/callgrind.out.%p",
                      "--dump-line=no", "--compress-strings=no"]
    engine.start()
    sim = None
    try:
        task_ir, accepted = per_task(engine, work, args.seconds)
        sim = lab.start_simulated_agents(engine, args.agents)
        result_ir = per_result(engine, work, args.urls // 5, args.urls, args.agents)
    finally:
        lab.stop_bench(engine, sim, work)
    print(f"callgrind (every engine thread): {task_ir:,.0f} instructions per accepted one-URL purge "
          f"({accepted} accepted under wrk -c64); {result_ir:,.0f} per (item, node) result "
          f"(tasks of {args.urls // 5} and {args.urls} URLs x {args.agents} simulated agents)")
    print(f"RESULT callgrind_ir_per_task {task_ir:.0f}")
    print(f"RESULT callgrind_ir_per_result {result_ir:.0f}")


if __name__ == "__main__":
    main()
