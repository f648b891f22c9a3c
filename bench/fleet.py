#!/usr/bin/env python3
"""Fleet benchmark: one-URL purges (each of a different URL) posted by wrk as fast as the engine
answers, for a while, to an engine with its default durable settings (synchronous=full) and N
simulated agents (bench/fanout.c) answering every item at once. Prints, for each fleet size, the
purges accepted per second, the purges *completed* per second (done in the store while the load
ran), the accept p99, what the API refused (429/503 with Retry-After), the backlog of unfinished
tasks every few seconds and how long it took to drain after the load stopped. Not a test.

Usage: bench/fleet.py [--agents 10,100,1000,10000] [--seconds N] [--connections N]
                      [--unverified] [--baseline-build DIR] [--store sqlite|postgres]
(the build is CDR_BUILD_DIR's, as for every benchmark; a baseline build is measured the same way
right after each fleet size). --unverified: the agents answer every success unverified, as those
of caches that cannot check (Varnish bans) do; the engine then keeps a record per (task, node),
and the figures are named *_unverified. --store postgres: the engine keeps its tasks in PostgreSQL
(a server of the benchmark's own, as the lab starts it: fsync and synchronous_commit on), and
the figures are named *_postgres.
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
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import lab  # noqa: E402

PORTS_PER_SOURCE = 20000
UNFINISHED = ("queued", "running")


def task_counts(engine):
    with urllib.request.urlopen(engine.url + "/v1/stats", timeout=30) as response:
        stats = json.load(response)
    return stats["tasks_by_state"]


def api_p99_ms(engine):
    """The engine's own p99 of its API requests (the bucket bound of its request-duration
    histogram that holds 99 % of them): the time from reading a request to sending its answer,
    without what a request waits for the client and the scheduler before that."""
    with urllib.request.urlopen(engine.url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    buckets = [(float(m.group(1)), int(m.group(2))) for m in re.finditer(
        r'^cdnrefresh_api_request_duration_seconds_bucket\{le="([^"+]+)"\} (\d+)$', text, re.M)]
    total = int(re.search(r"^cdnrefresh_api_request_duration_seconds_count (\d+)$", text,
                          re.M).group(1))
    return next((bound * 1000 for bound, count in buckets if count >= 0.99 * total), None)


def finished(counts):
    return sum(v for k, v in counts.items() if k not in UNFINISHED)


def not_done(counts):
    """Finished tasks that did not succeed on every node, by state: a completion counts only done."""
    return {k: v for k, v in counts.items() if k not in UNFINISHED and k != "done" and v}


def unfinished(counts):
    return sum(counts[k] for k in UNFINISHED)


def run_fleet(agents, seconds, connections, drain_limit, unverified):
    """One engine, agents simulated agents, seconds of load; returns a dict of figures."""
    work = tempfile.mkdtemp(prefix="cdr-bench-fleet-")
    engine = lab.Engine(os.path.join(work, "engine"), ["--log-level", "warn"],
                        synchronous="full").start()
    sim = None
    try:
        sources = (agents + PORTS_PER_SOURCE - 1) // PORTS_PER_SOURCE
        sim = lab.start_simulated_agents(engine, agents, "--sources", str(sources),
                                         *(["--unverified"] if unverified else []))
        lab.wait_until(lambda: engine.admin("GET", "/v1/stats")[2]["fabric"]["nodes_online"] == agents,
                       timeout=120, interval=0.5, what="every node online")
        backlog = []  # (seconds since the load started, unfinished tasks)
        stop = threading.Event()
        started = time.monotonic()

        def sample():
            while not stop.wait(5):
                backlog.append((time.monotonic() - started, unfinished(task_counts(engine))))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        script = os.path.join(os.path.dirname(__file__), "purge_each.lua")
        wrk = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script,
                              engine.url + "/v1/purge"], capture_output=True, text=True,
                             timeout=seconds + 60)
        load_s = time.monotonic() - started
        at_end = task_counts(engine)
        engine_p99_ms = api_p99_ms(engine)
        drained_s = None
        while time.monotonic() - started - load_s < drain_limit:
            counts = task_counts(engine)
            if unfinished(counts) == 0:
                drained_s = time.monotonic() - started - load_s
                break
            time.sleep(0.5)
        stop.set()
        sampler.join()
        final = task_counts(engine)
    finally:
        lab.stop_bench(engine, sim, work)
    out = wrk.stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    refused = int(non2xx.group(1)) if non2xx else 0
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\b", out, re.M)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    accepted = requests - refused
    return {
        "accepted_per_s": accepted / load_s, "refused_per_s": refused / load_s,
        "completed_per_s": at_end.get("done", 0) / load_s, "accept_p99_ms": p99_ms,
        "engine_p99_ms": engine_p99_ms,
        "unfinished_at_end": unfinished(at_end), "drain_s": drained_s,
        "finished_total": finished(final), "accepted_total": accepted, "backlog": backlog,
        "not_done": not_done(final),
    }


def describe(f, limit):
    drain = f"drained {f['drain_s']:.1f} s after" if f["drain_s"] is not None else \
        f"NOT drained {limit} s after"
    return (f"accepted {f['accepted_per_s']:.0f}/s, completed {f['completed_per_s']:.0f}/s, refused "
            f"{f['refused_per_s']:.0f}/s, accept p99 {f['accept_p99_ms']:.1f} ms (the engine's own: "
            f"<= {f['engine_p99_ms'] or float('nan'):g} ms); "
            f"{f['unfinished_at_end']} unfinished at the end of the load, {drain}; "
            f"{f['finished_total']} of {f['accepted_total']} finished"
            f"{', not done: ' + str(f['not_done']) if f['not_done'] else ''}; backlog (s: unfinished) " +
            ", ".join(f"{t:.0f}: {n}" for t, n in f["backlog"]))


def measure(build, agents, seconds, connections, drain_limit, unverified):
    """Runs one fleet size against the build in a child (lab reads CDR_BUILD_DIR at import)."""
    return lab.run_in_child(__file__, build, ["--agents", agents, "--seconds", seconds,
                                              "--connections", connections,
                                              "--drain-limit", drain_limit,
                                              *(["--unverified"] if unverified else [])],
                            timeout=seconds + drain_limit + 600)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", default="10,100,1000,10000", help="fleet sizes, comma-separated")
    parser.add_argument("--seconds", type=int, default=60, help="of load at each fleet size")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--drain-limit", type=int, default=120, help="seconds to wait for the backlog")
    parser.add_argument("--unverified", action="store_true",
                        help="agents answer successes unverified (caches that cannot check)")
    parser.add_argument("--baseline-build", help="another build, measured the same way after each size")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite",
                        help="the engine's store (the lab's CDR_STORE)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["CDR_STORE"] = args.store  # the children's lab reads it
    hard = lab.raise_open_files()
    if args.child:
        f = run_fleet(int(args.agents), args.seconds, args.connections, args.drain_limit, args.unverified)
        print(json.dumps(f))
        return
    build = os.environ.get("CDR_BUILD_DIR", os.path.join(lab.ROOT, "build"))
    print(f"fleet: wrk -c{args.connections} one-URL purges for {args.seconds} s at each size, default "
          f"durable settings (synchronous=full), {args.store} store, simulated agents answering at once"
          f"{' and unverified' if args.unverified else ''}, {os.cpu_count()} cores")
    status = 0
    for agents in (int(a) for a in args.agents.split(",")):
        if agents + 1000 > hard:
            print(f"fleet {agents}: the open-file hard limit is {hard} and cannot be raised here; skipped")
            status = 1
            continue
        f = measure(build, agents, args.seconds, args.connections, args.drain_limit, args.unverified)
        print(f"{agents} nodes, this build: {describe(f, args.drain_limit)}")
        if args.baseline_build:
            try:
                b = measure(args.baseline_build, agents, args.seconds, args.connections, args.drain_limit,
                            args.unverified)
                print(f"{agents} nodes, baseline:   {describe(b, args.drain_limit)}")
            except RuntimeError as error:  # e.g. its /v1/stats stopped answering under the load
                print(f"{agents} nodes, baseline:   could not be measured: "
                      f"{str(error).strip().splitlines()[-1]}")
        if f["drain_s"] is None or f["finished_total"] < f["accepted_total"] or f["not_done"]:
            status = 1
        for key in ("accepted_per_s", "completed_per_s", "refused_per_s", "accept_p99_ms"):
            suffix = ("_unverified" if args.unverified else "") + \
                ("_postgres" if args.store == "postgres" else "")
            print(f"RESULT fleet_{agents}_{key}{suffix} {f[key]:.2f}")
    sys.exit(status)


if __name__ == "__main__":
    main()
