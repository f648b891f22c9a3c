#!/usr/bin/env python3
"""Executor benchmark: an agent purging (then preloading) N URLs on one local edge cache (nginx,
Varnish, Traffic Server or Squid), next to `xargs -P8 curl` on the same purge requests and to wrk
making them (the ceiling), in one run; and the agent's purges with the check of the cache after
each purge or preload (verify, the default) against the same ones unverified. Not a test: prints
figures.
Goals (issues): agent >= 10x xargs, >= 0.8x wrk; verified >= 0.7x unverified.

Usage: bench/executor.py [--cache nginx|varnish|ats|squid] [--urls N]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import lab  # noqa: E402

SITE = "http://bench.example"


MALLOC_COUNT_LIB = os.path.join(lab.BUILD_DIR, "libcdr-bench-malloc-count.so")


def allocations(count_file):
    """The agent's heap allocations so far, as bench/malloc_count.c last wrote them (every 20 ms)."""
    time.sleep(0.05)
    with open(count_file) as f:
        return int(f.read().strip() or 0)


def agent_rate(engine, kind, urls, count_file, **fields):
    """URLs/s of one task through the agent, and the agent's heap allocations per URL in it."""
    path = "/v1/purge" if kind == "purge" else "/v1/preload"
    before = allocations(count_file)
    start = time.monotonic()
    status, _, body = engine.request("POST", path, {"urls": urls, **fields})
    assert status == 202, body
    task = engine.wait_task(body["task_id"], timeout=600)
    elapsed = time.monotonic() - start
    if task["counters"]["succeeded"] != len(urls):
        failed = engine.request("GET", f"/v1/tasks/{body['task_id']}/items?state=failed&limit=3")[2]
        raise AssertionError(f"{task}: {failed['items']}")
    return len(urls) / elapsed, (allocations(count_file) - before) / len(urls)


# How each cache is asked to purge one URL outside the agent: a GET on nginx's loopback purge
# server (the cache-purge module), or the PURGE method.
PURGE_METHOD = {"nginx": "GET", "varnish": "PURGE", "ats": "PURGE", "squid": "PURGE"}


def purge_base(edge, kind):
    return edge.purge_url if kind == "nginx" else edge.url


def xargs_rate(base, paths, method):
    lines = "".join(f"{base}{p}\n" for p in paths)
    start = time.monotonic()
    subprocess.run(["xargs", "-P8", "-n1", "curl", "-s", "-o", "/dev/null", "-X", method,
                    "-H", "Host: bench.example"], input=lines, text=True, check=True)
    return len(paths) / (time.monotonic() - start)


def wrk_rate(base, prefix, count, seconds, method="GET", once=False):
    """wrk's requests/s over the paths; with once, each path exactly once (then it stops)."""
    script = os.path.join(os.path.dirname(__file__), "paths.lua")
    # With once, the script stops wrk after the last path; the duration only bounds a cache that
    # cannot keep up (nginx purging 50,000 files from a slow disk took longer than 5 s).
    duration = max(seconds, 120) if once else seconds
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{duration}s", "-s", script, base, "--",
                          "bench.example", prefix, str(count), method, "once" if once else ""],
                         capture_output=True, text=True, check=True).stdout
    return float(out.split("ONCE ")[1].split()[0] if once else out.split("Requests/sec:")[1].split()[0])



def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", choices=sorted(PURGE_METHOD), default="nginx")
    parser.add_argument("--urls", type=int, default=50000,
                        help="URLs of each task: enough that a task's fixed costs (accept, last save) fade")
    parser.add_argument("--xargs-urls", type=int, default=2000, help="xargs spawns a curl per URL")
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="cdr-bench-exec-")
    processes = []
    try:
        files = {f"/static/{i}.css": b"x" * 128 for i in range(args.urls)}
        origin = lab.start_origin(work, files)
        edge = lab.start_cache(args.cache, work, "edge", origin)
        engine = lab.Engine(os.path.join(work, "engine"), ["--max-items", str(args.urls),
                                                           "--max-body-bytes", str(64 * args.urls + 4096),
                                                           "--log-level", "warn"]).start()
        processes += [origin, edge, engine]
        agent = lab.Agent(work, "edge-1", engine.agent_address, cache=edge,
                          extra_args=("--concurrency", "16", "--window", "1024", "--log-level", "warn"))
        count_file = os.path.join(work, "agent-allocations")
        agent.wrapper = ["env", f"LD_PRELOAD={MALLOC_COUNT_LIB}", f"CDR_MALLOC_COUNT_FILE={count_file}"]
        agent.start()
        processes.append(agent)
        engine.wait_online("edge-1")
        urls = [f"{SITE}/static/{i}.css" for i in range(args.urls)]
        paths = [f"/static/{i}.css" for i in range(args.urls)]

        cold, _ = agent_rate(engine, "preload", urls, count_file)  # fills the cache from the origin
        preload, preload_allocs = agent_rate(engine, "preload", urls, count_file)  # warm, like wrk's GETs
        preload_unverified, _ = agent_rate(engine, "preload", urls, count_file, verify=False)
        wrk_get = wrk_rate(edge.url, "/static/", args.urls, args.seconds)
        method, base = PURGE_METHOD[args.cache], purge_base(edge, args.cache)
        purge, purge_allocs = agent_rate(engine, "purge", urls, count_file)
        # The same purges on the same warm cache each time: fill it again, then each URL once.
        agent_rate(engine, "preload", urls, count_file)
        unverified, _ = agent_rate(engine, "purge", urls, count_file, verify=False)
        agent_rate(engine, "preload", urls, count_file)
        wrk_purge = wrk_rate(base, "/static/", args.urls, args.seconds, method, once=True)
        xargs = xargs_rate(base, paths[: args.xargs_urls], method)
    finally:
        for process in reversed(processes):
            process.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"executor: {args.urls} URLs on one local {args.cache}, agent concurrency 16, {os.cpu_count()} cores")
    print(f"{'':34} {'URLs/s':>10}")
    print(f"{'agent purge (submit -> done)':34} {purge:>10.0f}")
    print(f"{'agent purge, verify: false':34} {unverified:>10.0f}   verified/unverified "
          f"{purge / unverified:.2f} (goal >= 0.7)")
    print(f"{'xargs -P8 curl purge':34} {xargs:>10.0f}   agent/xargs {purge / xargs:.1f}x (goal >= 10x)")
    ceiling = f"wrk -c16 {method} /... once each"
    print(f"{ceiling:34} {wrk_purge:>10.0f}   agent/wrk {purge / wrk_purge:.2f} (goal >= 0.8)")
    print(f"{'agent preload, cold cache':34} {cold:>10.0f}")
    print(f"{'agent preload, warm (submit->done)':34} {preload:>10.0f}")
    print(f"{'agent preload, warm, verify: false':34} {preload_unverified:>10.0f}   verified/unverified "
          f"{preload / preload_unverified:.2f}")
    print(f"{'wrk -c16 GET through the cache':34} {wrk_get:>10.0f}   agent/wrk {preload / wrk_get:.2f} (goal >= 0.8)")
    print(f"agent heap allocations per URL (malloc counter): purge {purge_allocs:.1f}, warm preload "
          f"{preload_allocs:.1f} (goal 0)")
    print(f"RESULT executor_purge_per_s {purge:.0f}")
    print(f"RESULT executor_unverified_purge_per_s {unverified:.0f}")
    print(f"RESULT executor_purge_allocations {purge_allocs:.2f}")
    print(f"RESULT executor_preload_allocations {preload_allocs:.2f}")
    print(f"RESULT executor_wrk_purge_per_s {wrk_purge:.0f}")
    print(f"RESULT executor_preload_per_s {preload:.0f}")
    print(f"RESULT executor_unverified_preload_per_s {preload_unverified:.0f}")
    print(f"RESULT executor_wrk_get_per_s {wrk_get:.0f}")


if __name__ == "__main__":
    main()
