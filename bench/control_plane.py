#!/usr/bin/env python3
"""Control-plane benchmark: how long the operators' reads take with a large fleet connected.
N simulated agents (bench/fanout.c) are welcomed, then GET /v1/stats, /metrics and /v1/nodes are
timed (median of several) for the build under test and, with --baseline-build, for another build
in the same run. The fabric answers /v1/stats and /metrics on its own thread, where no heartbeat,
Work or Result is handled meanwhile, so these times are how long the whole fleet waits. Not a
test: prints figures.

Usage: bench/control_plane.py [--agents N] [--rounds N] [--build DIR] [--baseline-build DIR]
"""
import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
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


def child(agents, rounds):
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
    finally:
        lab.stop_bench(engine, sim, work)


def measure(build, agents, rounds):
    env = dict(os.environ, CDR_BUILD_DIR=os.path.abspath(build))
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--agents",
                          str(agents), "--rounds", str(rounds)], env=env, capture_output=True,
                         text=True, timeout=1800)
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
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.agents, args.rounds)
        return
    builds = [("this build", args.build)] + ([("baseline", args.baseline_build)]
                                             if args.baseline_build else [])
    results = {name: measure(build, args.agents, args.rounds) for name, build in builds}
    agents = int(results["this build"]["agents"])
    print(f"control plane: {agents} simulated agents connected, median of {args.rounds} GETs each, "
          f"{os.cpu_count()} cores")
    print(f"{'build':<12}" + "".join(f"{path:>14}" for path in PATHS))
    for name, figures in results.items():
        print(f"{name:<12}" + "".join(f"{figures[path]:>11.1f} ms" for path in PATHS))
    if args.baseline_build:
        print(f"{'ratio':<12}" + "".join(
            f"{results['baseline'][p] / max(results['this build'][p], 0.01):>13.1f}x" for p in PATHS))
    for path in PATHS:
        print(f"RESULT control_plane_ms{path.replace('/', '_')} {results['this build'][path]:.2f}")


if __name__ == "__main__":
    main()
