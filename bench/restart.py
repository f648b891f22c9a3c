#!/usr/bin/env python3
"""Restart benchmark: an engine with its default durable settings, N registered nodes
(bench/fanout.c's simulated agents, connected once and then gone) and T unfinished one-URL purges
to all of them (posted by wrk while the nodes are offline, so every result is pending), stopped
and started again. Prints how long the restart took until /healthz answered and until a new purge
was accepted, the engine's memory after it, and — with the agents back — how long resuming every
task took and whether every one was done. Not a test.

Usage: bench/restart.py [--agents 1000] [--tasks 100000] [--baseline-build DIR]
                        [--store sqlite|postgres]
(the build is CDR_BUILD_DIR's, as for every benchmark; a baseline build is measured the same way
right after it). --store postgres: the engine keeps its tasks in PostgreSQL (a server of the
benchmark's own, as the lab starts it), and the figures are named *_postgres.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import lab  # noqa: E402

RESTART_LIMIT_S = 300
UNFINISHED = ("queued", "running")


def tasks_by_state(engine):
    return engine.admin("GET", "/v1/stats")[2]["tasks_by_state"]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def online(engine):
    return engine.admin("GET", "/v1/stats")[2]["fabric"]["nodes_online"]


def run_restart(agents, tasks):
    """One engine, filled, restarted and drained; returns a dict of figures."""
    work = tempfile.mkdtemp(prefix="cdr-bench-restart-")
    # No backlog bound: the point is an engine holding that many unfinished tasks.
    engine = lab.Engine(os.path.join(work, "engine"),
                        ["--log-level", "warn", "--max-unfinished-results", "0"],
                        synchronous="full").start()
    sim = None
    try:
        sim = lab.start_simulated_agents(engine, agents)
        lab.wait_until(lambda: online(engine) == agents, timeout=120, interval=0.5,
                       what="every node online")
        sim.kill()
        sim.wait()
        sim = None
        lab.wait_until(lambda: online(engine) == 0, timeout=120, interval=0.5,
                       what="every node offline")
        script = os.path.join(os.path.dirname(__file__), "purge_count.lua")
        filled = time.monotonic()
        wrk = subprocess.Popen(["wrk", "-t1", "-c16", "-d3600s", "-s", script,
                                engine.url + "/v1/purge", "--", str(tasks)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            lab.wait_until(lambda: sum(tasks_by_state(engine).values()) >= tasks, timeout=3600,
                           interval=1, what=f"{tasks} tasks accepted")
        finally:
            wrk.terminate()
            wrk.wait()
        fill_s = time.monotonic() - filled
        unfinished = sum(tasks_by_state(engine)[k] for k in UNFINISHED)
        rss_before = rss_bytes(engine.proc.pid)
        engine.stop()
        started = time.monotonic()
        engine.start(timeout=RESTART_LIMIT_S)
        healthy_s = time.monotonic() - started
        status = engine.purge(["https://restart.example/after-restart.css"])[0]
        accepting_s = time.monotonic() - started
        rss_after = rss_bytes(engine.proc.pid)
        resumed = time.monotonic()
        sim = lab.start_simulated_agents(engine, agents)
        lab.wait_until(lambda: sum(tasks_by_state(engine)[k] for k in UNFINISHED) == 0,
                       timeout=1800, interval=1, what="every task finished")
        drain_s = time.monotonic() - resumed
        counts = tasks_by_state(engine)
    finally:
        lab.stop_bench(engine, sim, work)
    return {"fill_s": fill_s, "unfinished": unfinished, "healthy_s": healthy_s,
            "accepting_s": accepting_s, "accepted_status": status, "rss_before": rss_before,
            "rss_after": rss_after, "drain_s": drain_s, "done": counts.get("done", 0),
            "not_done": sum(v for k, v in counts.items() if k != "done")}


def describe(f, agents):
    return (f"{f['unfinished']} unfinished tasks (filled in {f['fill_s']:.0f} s): /healthz "
            f"{f['healthy_s']:.2f} s after the start, a new purge answered "
            f"{f['accepted_status']} at {f['accepting_s']:.2f} s; RSS {f['rss_before'] / 2**20:.0f} MiB "
            f"before the stop, {f['rss_after'] / 2**20:.0f} MiB after the restart; with the "
            f"{agents} agents back every task finished {f['drain_s']:.1f} s later "
            f"({f['done']} done, {f['not_done']} not)")


def measure(build, agents, tasks):
    """Runs the benchmark against the build in a child (lab reads CDR_BUILD_DIR at import)."""
    return lab.run_in_child(__file__, build, ["--agents", agents, "--tasks", tasks], timeout=7200)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=100000)
    parser.add_argument("--baseline-build", help="another build, measured the same way after it")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite",
                        help="the engine's store (the lab's CDR_STORE)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["CDR_STORE"] = args.store  # the children's lab reads it
    lab.raise_open_files()
    if args.child:
        print(json.dumps(run_restart(args.agents, args.tasks)))
        return
    build = os.environ.get("CDR_BUILD_DIR", os.path.join(lab.ROOT, "build"))
    print(f"restart: {args.agents} nodes, {args.tasks} one-URL purges to all of them unfinished, "
          f"default durable settings, {args.store} store, {os.cpu_count()} cores")
    f = measure(build, args.agents, args.tasks)
    print(f"this build: {describe(f, args.agents)}")
    if args.baseline_build:
        try:
            b = measure(args.baseline_build, args.agents, args.tasks)
            print(f"baseline:   {describe(b, args.agents)}")
        except RuntimeError as error:
            print(f"baseline:   could not be measured: {str(error).strip().splitlines()[-1]}")
    for key in ("healthy_s", "accepting_s", "drain_s"):
        print(f"RESULT restart_{key}{'_postgres' if args.store == 'postgres' else ''} {f[key]:.2f}")
    sys.exit(0 if f["not_done"] == 0 and f["accepted_status"] == 202 else 1)


if __name__ == "__main__":
    main()
