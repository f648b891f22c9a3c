#!/usr/bin/env python3
"""The cdnrefresh demo: an origin, two nginx edge caches and a Varnish one, the engine and three
agents, all on loopback; a URL cached on every edge is purged and becomes a MISS, a directory is
purged by prefix, tagged objects by tag, a page is invalidated softly (Varnish serves it stale while
revalidating; nginx reports it cannot), another URL is preloaded and becomes a HIT; the CLI shows
tasks and nodes. Everything is stopped and removed at the end."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import lab  # noqa: E402

SITE = "http://www.example.com"


def say(text):
    print(f"\n== {text}", flush=True)


def cli(engine, *args):
    print("$ cdnrefresh " + " ".join(args), flush=True)
    result = subprocess.run([lab.CLI_BIN, "--engine", engine.url, *args], text=True, capture_output=True)
    sys.stdout.write(result.stdout)
    sys.stdout.write(result.stderr)
    sys.stdout.flush()
    return result


def show_cache(edges, path):
    states = []
    for name, edge in edges:
        status, cache, _ = lab.fetch(edge, SITE + path)
        states.append(f"{name}: {status} {cache}")
    print(f"GET {SITE}{path} -> " + ", ".join(states), flush=True)


def main():
    work = tempfile.mkdtemp(prefix="cdnrefresh-demo-")
    processes = []
    try:
        say("starting an origin, two nginx edge caches and a Varnish one, the engine and three agents"
            " on 127.0.0.1")
        origin = lab.start_origin(work, {"/index.html": b"<h1>hello</h1>", "/app.css": b"body{}",
                                         "/video.mp4": b"v" * 65536, "/images/logo.png": b"p" * 512,
                                         "/images/hero.jpg": b"j" * 2048,
                                         "/tagged/product-42.html": b"<p>product 42</p>"})
        processes.append(origin)
        edges = [("edge-eu", lab.start_edge(work, "edge-eu", origin))]
        processes.append(edges[-1][1])
        edges.append(("edge-us", lab.start_edge(work, "edge-us", origin)))
        processes.append(edges[-1][1])
        edges.append(("edge-ap", lab.Varnish(work, "edge-ap", origin).start()))
        processes.append(edges[-1][1])
        engine = lab.Engine(os.path.join(work, "engine")).start()
        processes.append(engine)
        for (name, edge), group in zip(edges, ("eu", "us", "ap")):
            processes.append(lab.Agent(work, name, engine.agent_address, cache=edge, groups=group).start())
        engine.wait_online("edge-eu", "edge-us", "edge-ap")
        cli(engine, "nodes")

        say("visitors fetch pages: the first request fills each edge cache, the next is a HIT")
        for path in ("/index.html", "/images/logo.png", "/images/hero.jpg", "/tagged/product-42.html"):
            show_cache(edges, path)
            show_cache(edges, path)

        say("the site changed: purge /index.html on every edge and wait for the result")
        result = cli(engine, "purge", SITE + "/index.html", "--wait", "--timeout", "30")
        task_id = result.stdout.split()[0]
        cli(engine, "items", task_id)
        show_cache(edges, "/index.html")

        say("purge a whole directory by prefix")
        cli(engine, "purge", "--prefix", SITE + "/images/", "--wait", "--timeout", "30")
        show_cache(edges, "/images/logo.png")
        show_cache(edges, "/images/hero.jpg")

        say("product 42 changed: purge everything the origin tagged product-42 (Surrogate-Key)")
        cli(engine, "purge", "--tag", "product-42", "--wait", "--timeout", "30")
        show_cache(edges, "/tagged/product-42.html")
        show_cache(edges, "/tagged/product-42.html")

        say("soft purge: mark /index.html stale, to be revalidated with the origin on the next "
            "request (Varnish can; nginx reports it cannot, per node)")
        result = cli(engine, "purge", SITE + "/index.html", "--mode", "invalidate", "--wait",
                     "--timeout", "30")
        cli(engine, "items", result.stdout.split()[0])
        show_cache(edges, "/index.html")

        say("a launch is coming: preload the video so the first visitor gets a HIT")
        cli(engine, "preload", SITE + "/video.mp4", "--wait", "--timeout", "30")
        show_cache(edges, "/video.mp4")

        say("the task list and the nodes")
        cli(engine, "tasks")
        cli(engine, "nodes")
    finally:
        for process in reversed(processes):
            process.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\nDemo finished; every process was stopped.")


if __name__ == "__main__":
    main()
