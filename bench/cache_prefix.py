#!/usr/bin/env python3
"""Prefix and regex purges over a full cache: a cache (nginx, Varnish, Traffic Server) holding N
objects (100,000 by default) preloaded through the agent; then one prefix purge and one regex purge
each matching about a tenth of them, timed from submit to done, next to purging the same URLs one
by one through the agent (the reference, same run). Checks a sample afterwards: matched objects
miss, the others still hit. Not a test: prints figures.

Usage: bench/cache_prefix.py [--cache nginx|varnish|ats] [--objects N]
"""
import argparse
import os
import random
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import lab  # noqa: E402

SITE = "http://bench.example"


def timed_task(engine, path, fields):
    start = time.monotonic()
    status, _, body = engine.request("POST", path, fields)
    assert status == 202, body
    task = engine.wait_task(body["task_id"], timeout=900)
    assert task["status"] == "done", task
    return time.monotonic() - start


def start_cache(kind, work, origin, objects):
    """The cache, sized to hold every object (the deploy/ defaults are for the tests)."""
    if kind == "nginx":
        return lab.start_cache(kind, work, "edge", origin)
    if kind == "varnish":
        return lab.Varnish(work, "edge", origin, storage=f"{max(256, objects // 200)}m").start()
    ats = lab.TrafficServer(work, "edge", origin)
    etc = os.path.join(ats.prefix, "etc")
    with open(os.path.join(etc, "storage.config"), "w") as f:
        f.write(f"{os.path.join(ats.prefix, 'cache')} {max(256, objects // 200)}M\n")
    with open(os.path.join(etc, "records.config"), "a") as f:
        f.write("CONFIG proxy.config.cache.min_average_object_size INT 1024\n")
    return ats.start()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", choices=["nginx", "varnish", "ats"], default="varnish")
    parser.add_argument("--objects", type=int, default=100000)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="cdr-bench-prefix-")
    processes = []
    try:
        paths = [f"/static/{i}.css" for i in range(args.objects)]
        origin = lab.start_origin(work, {p: b"x" * 64 for p in paths})
        processes.append(origin)
        cache = start_cache(args.cache, work, origin, args.objects)
        processes.append(cache)
        engine = lab.Engine(os.path.join(work, "engine"), [
            "--max-items", str(args.objects), "--max-body-bytes", str(64 * args.objects + 4096),
            "--log-level", "warn"]).start()
        processes.append(engine)
        agent = lab.Agent(work, "edge-1", engine.agent_address, cache=cache,
                          extra_args=("--concurrency", "16", "--window", "1024", "--log-level", "warn")).start()
        processes.append(agent)
        engine.wait_online("edge-1")

        fill = timed_task(engine, "/v1/preload", {"urls": [SITE + p for p in paths]})
        time.sleep(1.1)  # ATS rules cover objects stored before the second the rule loads in
        prefix_matched = [p for p in paths if p.startswith("/static/7")]
        prefix = timed_task(engine, "/v1/purge", {"prefixes": [SITE + "/static/7"]})
        regex_text = r"^http://bench\.example/static/[0-9]*3\.css$"
        regex_matched = [p for p in paths if re.match(r"^/static/[0-9]*3\.css$", p)]
        regex = timed_task(engine, "/v1/purge", {"regexes": [regex_text]})
        matched = set(prefix_matched) | set(regex_matched)
        sample = random.Random(7)
        gone = sample.sample(sorted(matched), 20)
        kept = sample.sample(sorted(set(paths) - matched), 20)
        states_gone = [lab.fetch(cache, SITE + p)[1] for p in gone]
        states_kept = [lab.fetch(cache, SITE + p)[1] for p in kept]
        # The reference: the prefix's URLs purged one by one (they are cached again first).
        timed_task(engine, "/v1/preload", {"urls": [SITE + p for p in prefix_matched]})
        one_by_one = timed_task(engine, "/v1/purge", {"urls": [SITE + p for p in prefix_matched]})
    finally:
        for process in reversed(processes):
            process.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"prefix/regex purge: {args.objects} objects in one local {args.cache}, {os.cpu_count()} cores")
    print(f"{'fill: preload every object (submit -> done)':52} {fill:8.2f} s  ({args.objects / fill:.0f}/s)")
    print(f"{'prefix purge, ' + str(len(prefix_matched)) + ' objects match (submit -> done)':52} {prefix * 1000:8.1f} ms")
    print(f"{'regex purge, ' + str(len(regex_matched)) + ' objects match (submit -> done)':52} {regex * 1000:8.1f} ms")
    print(f"{'the prefix URLs purged one by one (reference)':52} {one_by_one * 1000:8.1f} ms"
          f"  ratio one-by-one / prefix {one_by_one / prefix:.1f}")
    print(f"sample after the purges: matched {sorted(set(states_gone))} (want MISS), others "
          f"{sorted(set(states_kept))} (want HIT)")
    if set(states_gone) != {"MISS"} or set(states_kept) != {"HIT"}:
        sys.exit("purged the wrong objects")


if __name__ == "__main__":
    main()
