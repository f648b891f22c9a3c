#!/usr/bin/env python3
"""Fan-out benchmark: the engine with N simulated agents (bench/fanout.c, one process) that answer
work at once; one-URL purges submitted one after another; prints p50/p99 of the time from the 202
to the last node's result. Not a test: prints figures. Goals: p50 < 10 ms, p99 < 50 ms.

Usage: bench/fanout.py [--agents N] [--tasks N] [--build DIR]
"""
import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import lab  # noqa: E402


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()
    raise_fd_limit()  # inherited by the engine and the simulator
    work = tempfile.mkdtemp(prefix="cdr-bench-fanout-")
    engine = lab.Engine(os.path.join(work, "engine"), ["--log-level", "warn"]).start()
    try:
        result = subprocess.run([os.path.join(lab.BUILD_DIR, "cdr-bench-fanout"), engine.url,
                                 engine.agent_address, str(args.agents), str(args.tasks)],
                                capture_output=True, text=True, timeout=600)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
    finally:
        engine.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
