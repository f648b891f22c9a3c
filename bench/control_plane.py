#!/usr/bin/env python3
"""Control-plane benchmark: how long the operators' reads take with a large fleet connected.
N simulated agents (bench/fanout.c) are welcomed, then GET /v1/stats, /metrics and /v1/nodes are
timed (median of several) for the build under test and, with --baseline-build, for another build
in the same run. The fabric answers /v1/stats and /metrics on its own thread, where no heartbeat,
Work or Result is handled meanwhile, so these times are how long the whole fleet waits. Then,
with --fanout-tasks N, the same fleet runs N one-URL purges one after the other (each to every
node) twice, quiet and with /metrics scraped every second, and prints both fan-out p99s: a scrape
must not show in the fan-out. Not a test: prints figures.

Usage: bench/control_plane.py [--agents N] [--rounds N] [--fanout-tasks N] [--build DIR]
                              [--baseline-build DIR]
"""
import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
PATHS = ("/v1/stats", "/metrics", "/v1/nodes")


def timed_get(port, path):
    """Seconds one GET of path took, its whole answer read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.monotonic()
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    elapsed = time.monotonic() - started
    conn.close()
    assert response.status == 200, (path, response.status, body[:200])
    return elapsed


def fanout_p99(lab, engine, agents, sources, tasks, scrape):
    """The fan-out p99 (ms) of tasks one-URL purges to agents fresh simulated agents, with
    /metrics GET every second meanwhile when scrape."""
    stop = threading.Event()

    def scraper():
        while not stop.wait(1.0):
            timed_get(engine.port, "/metrics")
    thread = threading.Thread(target=scraper, daemon=True)
    if scrape:
        thread.start()
    out = subprocess.run([os.path.join(lab.BUILD_DIR, "cdr-bench-fanout"), "--sources", str(sources),
                          engine.url, engine.agent_address, str(agents), str(tasks)],
                         capture_output=True, text=True, timeout=1800)
    stop.set()
    if scrape:
        thread.join()
    found = re.search(r"^RESULT fanout_p99_ms (\S+)$", out.stdout, re.M)
    if out.returncode != 0 or not found:  # a fan-out that failed measured nothing, whatever it printed
        raise RuntimeError(f"fan-out exited {out.returncode}: {out.stdout[-500:]}{out.stderr[-500:]}")
    return float(found.group(1))


def child(agents, rounds, fanout_tasks):
    """Measures the build in CDR_BUILD_DIR; prints RESULT lines."""
    sys.path.insert(0, HERE)
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import lab  # noqa: E402
    from idle_fabric import PORTS_PER_SOURCE, online_nodes, raise_fd_limit  # noqa: E402
    agents = raise_fd_limit(agents)
    work = tempfile.mkdtemp(prefix="cdr-bench-control-")
    engine = lab.Engine(os.path.join(work, "engine"), ["--log-level", "warn"]).start()
    sim = None
    try:
        sources = (agents + PORTS_PER_SOURCE - 1) // PORTS_PER_SOURCE
        sim = lab.start_simulated_agents(engine, agents, "--sources", str(sources))
        lab.wait_until(lambda: online_nodes(engine) == agents, timeout=300, interval=1,
                       what="every node online")
        for path in PATHS:
            times = [timed_get(engine.port, path) for _ in range(rounds)]
            print(f"RESULT {path} {statistics.median(times) * 1000:.2f}")
        print(f"RESULT agents {agents}")
        if fanout_tasks:
            sim.kill()  # the fan-out brings agents of its own, with the same node ids
            sim.wait()
            sim = None
            lab.wait_until(lambda: online_nodes(engine) == 0, timeout=300, interval=1,
                           what="the idle fleet gone")
            for scrape in (False, True):
                p99 = fanout_p99(lab, engine, agents, sources, fanout_tasks, scrape)
                print(f"RESULT fanout_p99_{'scraped' if scrape else 'quiet'} {p99:.2f}")
    finally:
        lab.stop_bench(engine, sim, work)


def measure(build, agents, rounds, fanout_tasks):
    env = dict(os.environ, CDR_BUILD_DIR=os.path.abspath(build))
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--agents",
                          str(agents), "--rounds", str(rounds), "--fanout-tasks", str(fanout_tasks)],
                         env=env, capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"{build}: {out.stdout}{out.stderr}")
    return {line.split()[1]: float(line.split()[2])
            for line in out.stdout.splitlines() if line.startswith("RESULT ")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5, help="GETs of each path; the median counts")
    parser.add_argument("--build", default=os.environ.get("CDR_BUILD_DIR", os.path.join(ROOT, "build")))
    parser.add_argument("--baseline-build")
    parser.add_argument("--fanout-tasks", type=int, default=0,
                        help="then this many fan-outs to the whole fleet, quiet and scraped")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.agents, args.rounds, args.fanout_tasks)
        return
    builds = [("this build", args.build)] + ([("baseline", args.baseline_build)]
                                             if args.baseline_build else [])
    results = {name: measure(build, args.agents, args.rounds, args.fanout_tasks)
               for name, build in builds}
    agents = int(results["this build"]["agents"])
    print(f"control plane: {agents} simulated agents connected, median of {args.rounds} GETs each, "
          f"{os.cpu_count()} cores")
    print(f"{'build':<12}" + "".join(f"{path:>14}" for path in PATHS))
    for name, figures in results.items():
        print(f"{name:<12}" + "".join(f"{figures[path]:>11.1f} ms" for path in PATHS))
    if args.baseline_build:
        print(f"{'ratio':<12}" + "".join(
            f"{results['baseline'][p] / max(results['this build'][p], 0.01):>13.1f}x" for p in PATHS))
    if args.fanout_tasks:
        for name, figures in results.items():
            print(f"{name}: fan-out of {args.fanout_tasks} one-URL purges to all {agents} nodes, p99 "
                  f"{figures['fanout_p99_quiet']:.1f} ms quiet, {figures['fanout_p99_scraped']:.1f} ms "
                  f"with /metrics scraped every second")
        print(f"RESULT control_plane_fanout_p99_quiet_ms {results['this build']['fanout_p99_quiet']:.2f}")
        print(f"RESULT control_plane_fanout_p99_scraped_ms "
              f"{results['this build']['fanout_p99_scraped']:.2f}")
    for path in PATHS:
        print(f"RESULT control_plane_ms{path.replace('/', '_')} {results['this build'][path]:.2f}")


if __name__ == "__main__":
    main()
