"""Exactness under kill -9, checked against an independent oracle: what the caches hold and what
the agents were sent and answered, never the engine's own reading of its results.

A fleet of three real nginx edges and SIMULATED agents (bench/fanout.c, which log every item
they answer); a stream of one-URL and prefix purges, some of objects every edge holds, some of
paths the odd-numbered simulated agents refuse (403), some canceled right after the 202; one
edge's purges behind a proxy that answers 503 at random, with two attempts, so some fail for
good; one edge's agent stopped through part of the run. The engine is killed with SIGKILL at
random moments 0.5-4 s apart, so kills land before, during and after its once-a-second saves of
the watermarks. After the drain:
- every task that got a 202 is final, and each of its items reads one result per node, no more;
- a task reads canceled only if its DELETE was sent, and does if the DELETE answered 200;
- a simulated node reads succeeded only for what it answered succeeded, failed (http_403) only
  for what it refused, and (unless the task was canceled) exactly what it answered;
- an edge reads succeeded only where its cache no longer holds the object (no cache file with
  its key, and a MISS through the cache), failed only with the 503s the proxy gave that path;
- objects never purged are still HITs."""
import http.client
import os
import random
import threading
import time

from conftest import fetch, start_simulated_agents, wait_until, warm
from lab import Agent, FaultProxy

HOST = "oracle.example"
SIMULATED = 200
KILLS = 12
EDGES = ("edge-a", "edge-b", "edge-c")  # edge-b: purges through the fault proxy; edge-c: away
FINAL = {"done", "partial", "failed", "canceled"}


def object_pool():
    """The objects every edge holds before the run: URLs purged one by one, prefixes (two objects
    each) and objects kept, never purged. Half of each over HTTPS."""
    scheme = lambda i: "https" if i % 2 else "http"  # noqa: E731
    urls = [f"{scheme(i)}://{HOST}/w/{scheme(i)}-{i}.css" for i in range(80)]
    prefixes = [f"{scheme(i)}://{HOST}/p/{scheme(i)}-{i}/" for i in range(16)]
    kept = [f"{scheme(i)}://{HOST}/keep/{scheme(i)}-{i}.css" for i in range(10)]
    return urls, prefixes, kept


def path_of(url):
    return "/" + url.split("://", 1)[1].partition("/")[2]


def task_specs(rng, urls, prefixes):
    """The stream of tasks: (body, cancel right after the 202)."""
    urls, prefixes = list(urls), list(prefixes)
    n = 0
    while True:
        n += 1
        kind = n % 10
        if kind < 4 and urls:
            yield {"urls": [urls.pop(rng.randrange(len(urls)))]}, False
        elif kind == 4 and prefixes:
            yield {"prefixes": [prefixes.pop(rng.randrange(len(prefixes)))]}, False
        elif kind == 5:
            yield {"urls": [f"https://{HOST}/refuse/{n}.css"]}, False
        elif kind == 6:
            yield {"urls": [f"http://{HOST}/n/{n}.css", f"https://{HOST}/refuse/{n}.css"]}, True
        else:
            yield {"urls": [f"{'https' if n % 2 else 'http'}://{HOST}/n/{n}.css"]}, False


class Submitter(threading.Thread):
    """Posts the tasks, a few a second, through the kills; remembers each that got a 202 (with
    its targets) and cancels those meant to be canceled."""

    def __init__(self, engine, specs):
        super().__init__(daemon=True)
        self.engine, self.specs = engine, specs
        self.stopping = threading.Event()
        self.accepted = {}  # task id -> its targets
        self.cancels = {}  # task id -> what its DELETE got: the status, or None (the engine died)
        self.lock = threading.Lock()

    def run(self):
        for body, cancel in self.specs:
            if self.stopping.wait(0.12):
                return
            try:
                status, _, task = self.engine.request("POST", "/v1/purge", body)
            except (OSError, http.client.HTTPException):
                continue  # the engine is down: this one may or may not exist; it is not counted
            if status != 202:
                continue
            with self.lock:
                self.accepted[task["task_id"]] = body.get("urls", []) + body.get("prefixes", [])
            if cancel:
                try:
                    answer = self.engine.request("DELETE", f"/v1/tasks/{task['task_id']}")[0]
                except (OSError, http.client.HTTPException):
                    answer = None  # killed meanwhile: the task runs on, or was canceled
                with self.lock:
                    self.cancels[task["task_id"]] = answer


def simulated_answers(log_path):
    """What each simulated node answered, from its own log: (node, target) -> {"S", "F"}."""
    answers = {}
    with open(log_path) as f:
        for line in f:
            node, outcome, target = line.rstrip("\n").split("\t")
            answers.setdefault((node, target), set()).add(outcome)
    return answers


def cached_keys(cache_dir):
    """The keys of every object in an nginx cache directory (each file's KEY: line)."""
    keys = set()
    for root, _, files in os.walk(cache_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                head = f.read(4096)
            at = head.find(b"\nKEY: ")
            if at >= 0:
                keys.add(head[at + 6:head.index(b"\n", at + 6)].decode())
    return keys


def engine_lines(engine, task_id):
    return [line for line in engine.read_log().splitlines() if task_id in line][-20:]


def task_items(engine, task_id):
    items, cursor = [], None
    while True:
        page = engine.request("GET", f"/v1/tasks/{task_id}/items?limit=1000" +
                              (f"&cursor={cursor}" if cursor else ""))[2]
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def check_task(engine, task_id, targets, cancel, nodes, answers, proxy, purged, seen):
    """Checks one task's results against the oracle (cancel: what its DELETE got, absent when
    none was sent); counts what it saw in seen and adds the objects each edge says it purged to
    purged."""
    task = engine.task(task_id)
    canceled = task["status"] == "canceled"
    assert not canceled or cancel != "none sent", f"{task_id} canceled, never asked to be"
    assert cancel not in (200, 409) or canceled == (cancel == 200), (cancel, task)
    seen["canceled"] += canceled
    items = task_items(engine, task_id)
    assert [item["target"] for item in items] == targets, task
    tally = {"succeeded": 0, "failed": 0, "unsupported": 0, "canceled": 0}
    for item in items:
        target = item["target"]
        by_node = {}
        for result in item["nodes"]:
            assert result["node"] not in by_node, f"{task_id} {target}: two results of one node"
            by_node[result["node"]] = result
        assert set(by_node) == nodes, f"{task_id} {target}: results of {len(by_node)} nodes"
        for node, result in by_node.items():
            state = result["state"]
            where = f"{task_id} {target} on {node}: {result}"
            assert state in ("succeeded", "failed", "unsupported") or (canceled and state == "canceled"), where
            if state in tally:
                tally[state] += 1
            if node.startswith("sim-"):
                said = answers.get((node, target), set())
                refuses = "/refuse/" in target and int(node[4:]) % 2 == 1
                if state == "succeeded":
                    assert said == {"S"}, f"{where}: reported succeeded, never answered so"
                elif state == "failed":
                    assert said == {"F"} and result["reason"] == "http_403", where
                    seen["refused"] += 1
                else:
                    assert state == "canceled", where
                if not canceled:
                    assert state == ("failed" if refuses else "succeeded"), where
                continue
            paths = proxy.answers.get(path_of(target), []) if node == "edge-b" else None
            if state == "succeeded":
                purged[node].add(target)
                if node == "edge-b":
                    assert any(a in (200, 404) for a in paths), f"{where}: the proxy never let a purge by"
            elif state == "failed":
                assert node == "edge-b" and result["reason"] == "http_503", where
                tries = 1 if canceled else 2  # a canceled task's failures are not tried again
                assert paths.count(503) >= tries, f"{where}: the proxy answered fewer 503s there ({paths})"
                seen["edge-b http_503"] += 1
            elif state == "unsupported":  # a prefix, on the edge without its index
                assert node == "edge-b" and target.endswith("/"), where
            if not canceled and node != "edge-b":
                assert state == "succeeded", where
    # The counters agree with the results, a canceled task's unfinished ones counted pending.
    counters = task["counters"]
    tally["pending"] = tally.pop("canceled")
    assert {state: counters[state] for state in tally} == tally, task


def test_results_match_what_caches_and_agents_did_through_kill9(lab):
    rng = random.Random(20261207)
    urls, prefixes, kept = object_pool()
    objects = urls + [p + name for p in prefixes for name in ("a.css", "b.css")] + kept
    origin = lab.origin({path_of(url): b"body of " + url.encode() for url in objects})
    edges = {name: lab.edge(name, origin) for name in EDGES}
    for edge in edges.values():
        for url in objects:
            warm(edge, url)
    proxy = lab.add(FaultProxy(edges["edge-b"], fail_ratio=0.3, port=edges["edge-b"].purge_port).start())
    engine = lab.engine("--max-attempts", "2", "--retry-base-ms", "20", "--retry-max-ms", "200")
    sim_log = os.path.join(lab.dir, "simulated-answers.log")
    sim = start_simulated_agents(engine, SIMULATED, "--window", "16", "--refuse", "/refuse/",
                                 "--log", sim_log)
    try:
        def edge_agent(name):
            if name == "edge-b":  # no cache index: exact purges through the purge server's proxy
                return lab.add(Agent(lab.dir, name, engine.agent_address, cache_url=edges[name].url,
                                     extra_args=("--nginx-purge-url", proxy.url)).start())
            return lab.agent(engine, name, edges[name])
        agents = {name: edge_agent(name) for name in EDGES}
        engine.wait_online(*EDGES)
        nodes = set(EDGES) | {f"sim-{i:05d}" for i in range(SIMULATED)}
        submitter = Submitter(engine, task_specs(rng, urls, prefixes))
        submitter.start()
        try:
            for kill in range(KILLS):
                time.sleep(rng.uniform(0.5, 4.0))
                if kill == 2:
                    agents["edge-c"].kill9()  # away through the next kills: tasks wait for it
                if kill == 7:
                    agents["edge-c"] = edge_agent("edge-c")
                engine.kill9()
                engine.start()
        finally:
            submitter.stopping.set()
            submitter.join(timeout=15)
        with submitter.lock:
            accepted = dict(submitter.accepted)
            assert 200 in submitter.cancels.values(), "no cancel was answered 200"
        assert len(accepted) > 4 * KILLS, "too few tasks were accepted between the kills"

        def online():
            return sum(n["state"] == "online" for n in engine.nodes().values()) == len(nodes)
        wait_until(online, timeout=60, interval=0.5, what="every node online again")

        def unfinished():
            return [i for i in accepted if engine.task(i)["status"] not in FINAL]
        wait_until(lambda: not unfinished(), timeout=120, interval=0.5, what="every task final")
    finally:
        sim.kill()
        sim.wait()

    answers = simulated_answers(sim_log)
    keys = {name: cached_keys(edge.cache_dir) for name, edge in edges.items()}
    purged = {name: set() for name in EDGES}  # objects an edge says it purged
    seen = {"canceled": 0, "edge-b http_503": 0, "refused": 0}
    for task_id, targets in accepted.items():
        try:
            check_task(engine, task_id, targets, submitter.cancels.get(task_id, "none sent"), nodes,
                       answers, proxy, purged, seen)
        except AssertionError as failure:  # with what the engine logged of the task
            raise AssertionError(f"{failure}\nthe engine's log of it: {engine_lines(engine, task_id)}") from None
    assert seen["canceled"] > 0 and seen["refused"] > 0 and seen["edge-b http_503"] > 0, seen

    # What the edges hold: every object an edge with its index says it purged is gone from it;
    # the kept ones stay everywhere. (edge-b's purge server removes only a variant-less key, and
    # this origin sends Vary, as docs/CACHES.md warns: its successes were checked against what
    # the proxy let by, not against its cache.)
    checked = 0
    for name, edge in edges.items():
        for target in purged[name] if name != "edge-b" else ():
            gone = [target] if not target.endswith("/") else [target + "a.css", target + "b.css"]
            for url in (u for u in gone if u in objects):
                assert url not in keys[name], f"{name} reported {target} purged; its cache file remains"
                assert fetch(edge, url)[1] == "MISS", f"{name} reported {target} purged; it still serves it"
                checked += 1
        for url in kept:
            assert url in keys[name] and fetch(edge, url)[1] == "HIT", f"{name} lost {url}, never purged"
    assert checked >= 40, f"only {checked} purged objects were checked in the caches"
