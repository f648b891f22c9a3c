#!/usr/bin/env python3
"""API ingest benchmark: wrk posting one-URL purges to the engine (durable group commit on), and
in the same run wrk against nginx answering 204 on the same machine. Prints requests/s, p50/p99
latency for both and the ratio. Not a test: it asserts nothing and prints figures.

The engine runs on each store backend in turn (--store both, the default): SQLite in a data dir,
then PostgreSQL on a server of the benchmark's own (tests/pg-server; fsync on, synchronous_commit
on: its defaults), each figure next to the other and to nginx.

With --signed the engine runs without --dev and every purge is signed by a tenant (one signature,
replayed within the replay window), so the figure includes the signature check and the tenant's
quota charge.

Usage: bench/api_ingest.py [--seconds N] [--connections N] [--threads N] [--build DIR] [--signed]
                           [--store sqlite|postgres|both]
"""
import argparse
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PACED_SCRIPT = os.path.join(ROOT, "bench", "paced.lua")
PG_SERVER = os.path.join(ROOT, "tests", "pg-server")
PACED_PROBE_CONNECTIONS = 8  # connections of the short run that measures one paced connection's rate


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, what):
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.05)
    sys.exit(f"{what} did not answer on {url}")


def run_wrk(url, seconds, connections, threads, script=None, script_args=()):
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        args += ["-s", script]
    out = subprocess.run(args + [url, "--", *script_args], capture_output=True, text=True,
                         check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def percentile(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": percentile(50), "p99": percentile(99),
            "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else "none"}


def start_nginx(tmp, port):
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp};
  proxy_temp_path {tmp};
  fastcgi_temp_path {tmp};
  uwsgi_temp_path {tmp};
  scgi_temp_path {tmp};
  server {{ listen 127.0.0.1:{port}; keepalive_requests 1000000; location / {{ return 204; }} }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", conf, "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/", proc, "nginx")
    return proc


def signed_script(engine_bin, tmp, store):
    """Adds a tenant to the bench store and writes a wrk script whose purge carries its signature."""
    added = subprocess.run([engine_bin, "tenant", "add", "bench", "--hosts", "bench.example", "--json",
                            "--store", store], capture_output=True, text=True, check=True)
    tenant = json.loads(added.stdout)
    body = '{"urls":["https://bench.example/static/app.css"]}'
    timestamp = int(time.time())
    text = f"POST\n/v1/purge\n{timestamp}\n{hashlib.sha256(body.encode()).hexdigest()}"
    signature = hmac.new(tenant["secret"].encode(), text.encode(), hashlib.sha256).hexdigest()
    path = os.path.join(tmp, f"signed-{len(os.listdir(tmp))}.lua")
    with open(path, "w") as f:
        f.write(f"""wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Cdnrefresh-Key"] = "{tenant['access_key']}"
wrk.headers["X-Cdnrefresh-Timestamp"] = "{timestamp}"
wrk.headers["X-Cdnrefresh-Signature"] = "{signature}"
""")
    return path


def measure_engine(args, tmp, store):
    """Starts the engine on store, loads it at full speed then at half of it; returns the figures
    (peak, paced, paced connections)."""
    engine_port = free_port()
    engine_bin = os.path.join(args.build, "cdnrefresh-engine")
    script = os.path.join(ROOT, "bench", "purge.lua")
    mode = ["--dev"]
    if args.signed:
        script, mode = signed_script(engine_bin, tmp, store), []
    engine = subprocess.Popen([engine_bin, *mode, "--store", store,
                               "--api-listen", f"127.0.0.1:{engine_port}", "--synchronous", "full",
                               "--log-level", "warn"])
    try:
        wait_http(f"http://127.0.0.1:{engine_port}/healthz", engine, "engine")
        url = f"http://127.0.0.1:{engine_port}/v1/purge"
        ours = run_wrk(url, args.seconds, args.connections, args.threads, script)
        # p99 at half the peak: connections that each wait 1 ms between requests (wrk's delay()),
        # as many as make about half the peak rate; a short run first measures one's rate.
        probe = run_wrk(url, 2, PACED_PROBE_CONNECTIONS, args.threads, PACED_SCRIPT, [script])
        per_connection = probe["rps"] / PACED_PROBE_CONNECTIONS
        paced_connections = max(1, round(ours["rps"] * 0.5 / per_connection))
        paced = run_wrk(url, args.seconds, paced_connections, args.threads, PACED_SCRIPT, [script])
    finally:
        engine.send_signal(signal.SIGTERM)
        engine.wait(timeout=30)
    return ours, paced, paced_connections


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--signed", action="store_true", help="signed requests of a tenant, no --dev")
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="cdr-bench-")
    pg_dir = tempfile.mkdtemp(prefix="cdr-bench-pg-")  # not in tmp: its server runs as postgres
    results = {}  # backend: (peak, paced, paced connections)
    nginx = None
    try:
        if args.store in ("sqlite", "both"):
            results["sqlite"] = measure_engine(args, tmp, f"sqlite:{tmp}/data")
        if args.store in ("postgres", "both"):
            address = subprocess.run([PG_SERVER, "start", pg_dir], capture_output=True, text=True,
                                     check=True).stdout.strip()
            results["postgres"] = measure_engine(args, tmp, address)
        nginx_port = free_port()
        nginx = start_nginx(tmp, nginx_port)
        ref = run_wrk(f"http://127.0.0.1:{nginx_port}/", args.seconds, args.connections, args.threads)
    finally:
        if nginx:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(timeout=30)
        subprocess.run([PG_SERVER, "stop", pg_dir])
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"api ingest: wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, {os.cpu_count()} cores, "
          f"engine with durable group commit (SQLite synchronous=full; PostgreSQL fsync and "
          f"synchronous_commit on), {'signed requests of a tenant' if args.signed else 'unsigned (--dev)'}")
    print(f"{'':30} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}  errors")
    for backend, (ours, paced, paced_connections) in results.items():
        print(f"{'engine (' + backend + ') POST /v1/purge':30} {ours['rps']:>10.0f} {ours['p50']:>8.2f} "
              f"{ours['p99']:>8.2f}  non-2xx {ours['non2xx']}, socket {ours['socket_errors']}")
        print(f"{'  at half the peak':30} {paced['rps']:>10.0f} {paced['p50']:>8.2f} {paced['p99']:>8.2f}  "
              f"non-2xx {paced['non2xx']}, socket {paced['socket_errors']} "
              f"({paced_connections} connections pausing 1 ms; {paced['rps'] / ours['rps']:.0%} of the peak)")
    print(f"{'nginx return 204':30} {ref['rps']:>10.0f} {ref['p50']:>8.2f} {ref['p99']:>8.2f}  "
          f"non-2xx {ref['non2xx']}, socket {ref['socket_errors']}")
    for backend, (ours, _, _) in results.items():
        print(f"ratio engine ({backend})/nginx: {ours['rps'] / ref['rps']:.2f}  (goal >= 0.50; goal >= "
              f"100000 accepted purges/s; p99 < 5 ms at half the peak)")
    if len(results) == 2:
        print(f"ratio PostgreSQL/SQLite: {results['postgres'][0]['rps'] / results['sqlite'][0]['rps']:.2f}"
              f"  (goal >= 0.50)")
    for backend, (ours, paced, _) in results.items():
        suffix = "" if backend == "sqlite" else "_postgres"
        print(f"RESULT ingest{suffix}_per_s {ours['rps']:.0f}")
        print(f"RESULT ingest{suffix}_half_peak_p99_ms {paced['p99']:.2f}")
        print(f"RESULT ingest{suffix}_half_peak_per_s {paced['rps']:.0f}")
    print(f"RESULT ingest_nginx_per_s {ref['rps']:.0f}")


if __name__ == "__main__":
    main()
