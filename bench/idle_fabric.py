#!/usr/bin/env python3
"""Idle fabric benchmark: N simulated agents (bench/fanout.c, one process) connected to the engine
with heartbeats every 10 s and no work; prints the engine's CPU (percent of one core, from
/proc/PID/stat over a quiet window) and its RSS per connection (RSS with the fleet connected minus
RSS before, over N). Not a test: prints figures. Goals: CPU < 2 % of one core, RSS < 4 KiB per
connection at 50,000 connections. The engine needs a descriptor per connection: where the hard
limit on open files is lower and cannot be raised (no CAP_SYS_RESOURCE), the fleet is as big as
that limit allows, and the script says so.

Usage: bench/idle_fabric.py [--agents N] [--seconds N] [--heartbeat-ms N]
"""
import argparse
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import lab  # noqa: E402

PORTS_PER_SOURCE = 25000  # of the ~28,000 ephemeral ports one loopback source address has


SPARE_FDS = 500  # the engine's own files, listeners and store


def raise_fd_limit(agents):
    """Raises the open-file limit (inherited by the engine and the simulator, one end each) to fit
    agents connections; returns how many connections fit."""
    needed = agents + SPARE_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(needed, hard), max(needed, hard)))
        return agents
    except (ValueError, PermissionError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return min(agents, hard - SPARE_FDS)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def online_nodes(engine):
    return engine.admin("GET", "/v1/stats")[2]["fabric"]["nodes_online"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=50000)
    parser.add_argument("--seconds", type=int, default=30, help="the quiet window CPU is measured over")
    parser.add_argument("--heartbeat-ms", type=int, default=10000)
    args = parser.parse_args()
    wanted = args.agents
    args.agents = raise_fd_limit(wanted)
    if args.agents < wanted:
        print(f"idle fabric: {wanted} connections wanted, but the hard limit on open files is "
              f"{resource.getrlimit(resource.RLIMIT_NOFILE)[1]} and cannot be raised here: "
              f"measuring {args.agents}")
    work = tempfile.mkdtemp(prefix="cdr-bench-idle-")
    engine = lab.Engine(os.path.join(work, "engine"), ["--log-level", "warn", "--heartbeat-ms",
                                                       str(args.heartbeat_ms)]).start()
    sim = None
    try:
        time.sleep(1)
        rss_before = rss_kib(engine.proc.pid)
        sources = (args.agents + PORTS_PER_SOURCE - 1) // PORTS_PER_SOURCE
        started = time.monotonic()
        sim = lab.start_simulated_agents(engine, args.agents, "--sources", str(sources))
        connect_s = time.monotonic() - started
        # Registrations are saved by the store writer; let that finish before measuring quiet.
        lab.wait_until(lambda: online_nodes(engine) == args.agents, timeout=120, interval=0.5,
                       what="every node online")
        time.sleep(max(2.0, args.heartbeat_ms / 1000))
        cpu_start, wall_start = cpu_seconds(engine.proc.pid), time.monotonic()
        time.sleep(args.seconds)
        cpu = (cpu_seconds(engine.proc.pid) - cpu_start) / (time.monotonic() - wall_start)
        rss_after = rss_kib(engine.proc.pid)
        online = online_nodes(engine)
    finally:
        lab.stop_bench(engine, sim, work)
    per_conn = (rss_after - rss_before) * 1024 / args.agents
    print(f"idle fabric: {args.agents} agent connections over {sources} source addresses, "
          f"heartbeats every {args.heartbeat_ms} ms both ways, {os.cpu_count()} cores")
    print(f"connected and welcomed in {connect_s:.1f} s; {online} online after the quiet window")
    print(f"engine CPU over {args.seconds} s: {cpu * 100:.2f} % of one core (goal < 2 %)")
    print(f"engine RSS: {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB connected, "
          f"{per_conn:.0f} B per connection (goal < 4096 B)")
    print(f"RESULT idle_cpu_percent {cpu * 100:.3f}")
    print(f"RESULT idle_rss_bytes_per_conn {per_conn:.0f}")


if __name__ == "__main__":
    main()
